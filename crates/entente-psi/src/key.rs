//! The holder's key of one epoch, its public key and the epoch id.
//!
//! RFC 9497 §3.2 DeriveKeyPair derives the key from a seed (with the key info
//! [`KEY_INFO`]); the public key is `k·G`, 32 bytes in ristretto255's encoding; the epoch id
//! is SHA-256(`"entente-psi/v1 epoch"` || public key).

use crate::error::{PsiError, WireError};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::fmt;
use voprf::{Group, Ristretto255, VoprfServer};
use zeroize::{Zeroize, Zeroizing};

/// The RFC 9497 ciphersuite: ristretto255-SHA512 (identifier `ristretto255-SHA512`).
pub(crate) type Suite = Ristretto255;
/// A ristretto255 point.
pub(crate) type Elem = <Ristretto255 as Group>::Elem;
/// A ristretto255 scalar.
pub(crate) type Scalar = <Ristretto255 as Group>::Scalar;

/// Length of an encoded group element (RFC 9497 §4.1: `Ne` = 32).
pub const ELEMENT_LEN: usize = 32;
/// Length of an encoded scalar (`Ns` = 32).
pub const SCALAR_LEN: usize = 32;
/// Length of an encoded DLEQ proof: two scalars (RFC 9497 §2.2).
pub const PROOF_LEN: usize = 2 * SCALAR_LEN;
/// The `info` of DeriveKeyPair for a holder key.
pub const KEY_INFO: &[u8] = b"entente-psi/v1 holder key";

/// The domain separator of an epoch id.
const EPOCH_DOMAIN: &[u8] = b"entente-psi/v1 epoch";

/// A key epoch: the digest of the holder's public key for that epoch.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EpochId([u8; 32]);

impl EpochId {
    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The id from its lower-case hex.
    ///
    /// # Errors
    /// Not 64 hex digits.
    pub fn from_hex(text: &str, field: &str) -> Result<Self, WireError> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(text, &mut b).map_err(|_| {
            WireError::new(field, format!("found `{text}`; expected an epoch id of 64 hex digits"))
        })?;
        Ok(EpochId(b))
    }
}

impl fmt::Display for EpochId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for EpochId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EpochId({self})")
    }
}

impl Serialize for EpochId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EpochId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        EpochId::from_hex(&text, "epoch").map_err(serde::de::Error::custom)
    }
}

/// The holder's published key for one epoch: what an asker checks every evaluation against.
#[derive(Clone, Copy)]
pub struct PublicKey {
    elem: Elem,
    bytes: [u8; ELEMENT_LEN],
    epoch: EpochId,
}

impl PublicKey {
    fn from_elem(elem: Elem) -> Self {
        let mut bytes = [0u8; ELEMENT_LEN];
        bytes.copy_from_slice(&Suite::serialize_elem(elem));
        let epoch =
            EpochId(Sha256::new().chain_update(EPOCH_DOMAIN).chain_update(bytes).finalize().into());
        PublicKey { elem, bytes, epoch }
    }

    /// The key from its 32-byte encoding, as published by the holder.
    ///
    /// # Errors
    /// Not 32 bytes, or not the encoding of a ristretto255 point other than the identity.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        decode_element(bytes, "public_key").map(PublicKey::from_elem)
    }

    /// The key's 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; ELEMENT_LEN] {
        self.bytes
    }

    /// The epoch of this key.
    pub fn epoch(&self) -> EpochId {
        self.epoch
    }

    pub(crate) fn elem(&self) -> Elem {
        self.elem
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for PublicKey {}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.bytes))
    }
}

/// `bytes` as a ristretto255 point other than the identity (RFC 9497 §4.1
/// DeserializeElement), or the error naming `field`.
pub(crate) fn decode_element(bytes: &[u8], field: &str) -> Result<Elem, WireError> {
    if bytes.len() != ELEMENT_LEN {
        return Err(WireError::new(
            field,
            format!(
                "found {} bytes; expected a {ELEMENT_LEN}-byte ristretto255 element",
                bytes.len()
            ),
        ));
    }
    Suite::deserialize_elem(bytes).map_err(|_| {
        WireError::new(field, "not the encoding of a ristretto255 element other than the identity")
    })
}

/// The 32-byte encoding of a point.
pub(crate) fn encode_element(elem: Elem) -> [u8; ELEMENT_LEN] {
    let mut b = [0u8; ELEMENT_LEN];
    b.copy_from_slice(&Suite::serialize_elem(elem));
    b
}

/// The holder's OPRF key for one epoch. Its secret is the 32-byte scalar of
/// [`HolderKey::to_bytes`], which the caller stores (encrypted at rest) for the epoch's life.
pub struct HolderKey {
    pub(crate) server: VoprfServer<Suite>,
    pub(crate) sk: Scalar,
    public: PublicKey,
}

impl HolderKey {
    /// A new key from 32 random bytes of `rng`.
    ///
    /// # Errors
    /// Only if key derivation fails, which RFC 9497 makes vanishingly unlikely.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Result<Self, PsiError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        HolderKey::from_seed(&seed)
    }

    /// The key derived from `seed` (RFC 9497 §3.2 DeriveKeyPair, info [`KEY_INFO`]).
    ///
    /// # Errors
    /// Only if key derivation fails, which RFC 9497 makes vanishingly unlikely.
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self, PsiError> {
        let server = VoprfServer::<Suite>::new_from_seed(seed, KEY_INFO).map_err(PsiError::oprf)?;
        HolderKey::from_server(server)
    }

    /// The key whose secret scalar is `secret` (as [`HolderKey::to_bytes`] wrote it).
    ///
    /// # Errors
    /// Not a canonical non-zero scalar of 32 bytes.
    pub fn from_bytes(secret: &[u8]) -> Result<Self, PsiError> {
        if secret.len() != SCALAR_LEN {
            return Err(WireError::new(
                "holder_key",
                format!("found {} bytes; expected a {SCALAR_LEN}-byte scalar", secret.len()),
            )
            .into());
        }
        let server = VoprfServer::<Suite>::new_with_key(secret).map_err(|_| {
            WireError::new("holder_key", "not a canonical non-zero ristretto255 scalar")
        })?;
        HolderKey::from_server(server)
    }

    fn from_server(server: VoprfServer<Suite>) -> Result<Self, PsiError> {
        let bytes = Zeroizing::new(server.serialize());
        let sk = bytes
            .get(..SCALAR_LEN)
            .ok_or_else(|| PsiError::Oprf("short server key".to_owned()))
            .and_then(|b| Suite::deserialize_scalar(b).map_err(PsiError::oprf))?;
        let public = PublicKey::from_elem(server.get_public_key());
        Ok(HolderKey { server, sk, public })
    }

    /// The secret scalar, to store. Treat it as key material.
    pub fn to_bytes(&self) -> Zeroizing<[u8; SCALAR_LEN]> {
        let mut b = Zeroizing::new([0u8; SCALAR_LEN]);
        b.copy_from_slice(&Suite::serialize_scalar(self.sk));
        b
    }

    /// The public key to publish for this epoch.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The epoch of this key.
    pub fn epoch(&self) -> EpochId {
        self.public.epoch
    }
}

impl Drop for HolderKey {
    fn drop(&mut self) {
        self.sk.zeroize();
    }
}

impl fmt::Debug for HolderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HolderKey {{ epoch: {} }}", self.epoch())
    }
}
