//! What is derived from an OPRF output: the element's lookup tag and its label key, and the
//! sealing of labels.
//!
//! Labelled mode: `y` is the RFC 9497 VOPRF output of the selector's input (64 bytes,
//! §3.3.2 Finalize). `prk = HKDF-Extract(salt = "entente-psi/v1", y)` (RFC 5869, SHA-256);
//! `tag = HKDF-Expand(prk, "entente-psi/v1 tag" || epoch, 16)`;
//! `label key = HKDF-Expand(prk, "entente-psi/v1 label key" || epoch, 32)`. The two `info`
//! strings separate the tag (which everyone holding the prepared set sees) from the key
//! (which only the holder of the selector can compute).
//!
//! Cardinality mode: `z = k·HashToGroup(input)` (the unblinded element, 32 bytes);
//! `tag = HKDF-Expand(HKDF-Extract("entente-psi/v1", z), "entente-psi/v1 cardinality tag" ||
//! epoch, 16)`. It is not the RFC's Finalize, which hashes the input too: the asker of a
//! cardinality query cannot tell which input an evaluated element belongs to.
//!
//! A label is the holder's entries for the selector as JSON, padded (ISO/IEC 7816-4: `0x80`
//! then zeros) to a multiple of [`LABEL_PAD`] bytes, sealed with XChaCha20-Poly1305 under the
//! label key with a random 24-byte nonce and associated data
//! `"entente-psi/v1 label" || epoch || tag`; the sealed label is `nonce || ciphertext`.

use crate::error::PsiError;
use crate::key::{ELEMENT_LEN, Elem, EpochId, Suite};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Sha256, Sha512};
use voprf::Group;
use zeroize::Zeroizing;

/// Length of an element's lookup tag.
pub const TAG_LEN: usize = 16;
/// Labels are padded to a multiple of this many bytes, so their length says little.
pub const LABEL_PAD: usize = 64;
/// Length of a sealed label's nonce.
pub(crate) const NONCE_LEN: usize = 24;
/// Length of the AEAD's authentication tag.
pub(crate) const AEAD_TAG_LEN: usize = 16;

const SALT: &[u8] = b"entente-psi/v1";
const INFO_TAG: &[u8] = b"entente-psi/v1 tag";
const INFO_LABEL_KEY: &[u8] = b"entente-psi/v1 label key";
const INFO_CARDINALITY_TAG: &[u8] = b"entente-psi/v1 cardinality tag";
const LABEL_AD: &[u8] = b"entente-psi/v1 label";

/// RFC 9497 §3.1 DST of HashToGroup in VOPRF mode for ristretto255-SHA512:
/// `"HashToGroup-" || "OPRFV1-" || I2OSP(0x01, 1) || "-" || "ristretto255-SHA512"`.
const HASH_TO_GROUP_DST: [&[u8]; 5] =
    [b"HashToGroup-", b"OPRFV1-", &[0x01], b"-", b"ristretto255-SHA512"];

/// An element's lookup tag in a prepared set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(pub(crate) [u8; TAG_LEN]);

impl Tag {
    /// The tag's bytes.
    pub fn as_bytes(&self) -> &[u8; TAG_LEN] {
        &self.0
    }
}

/// One holding the holder has on a selector: its case reference and whom to contact. Only an
/// asker who holds the selector can read it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Label {
    /// The holder's case reference.
    pub case_reference: String,
    /// The contact point for the case (a desk, an address).
    pub contact: String,
}

fn expand<const N: usize>(prk: &Hkdf<Sha256>, info: &[&[u8]]) -> Result<[u8; N], PsiError> {
    let mut out = [0u8; N];
    prk.expand_multi_info(info, &mut out).map_err(|_| PsiError::Label("hkdf length".to_owned()))?;
    Ok(out)
}

/// The tag and label key of a labelled-mode OPRF output.
pub(crate) fn labelled(
    output: &[u8],
    epoch: &EpochId,
) -> Result<(Tag, Zeroizing<[u8; 32]>), PsiError> {
    let prk = Hkdf::<Sha256>::new(Some(SALT), output);
    let tag = Tag(expand(&prk, &[INFO_TAG, epoch.as_bytes()])?);
    let key = Zeroizing::new(expand(&prk, &[INFO_LABEL_KEY, epoch.as_bytes()])?);
    Ok((tag, key))
}

/// The tag of a cardinality-mode unblinded element.
pub(crate) fn cardinality(element: &[u8; ELEMENT_LEN], epoch: &EpochId) -> Result<Tag, PsiError> {
    let prk = Hkdf::<Sha256>::new(Some(SALT), element);
    Ok(Tag(expand(&prk, &[INFO_CARDINALITY_TAG, epoch.as_bytes()])?))
}

/// RFC 9497 HashToGroup in VOPRF mode (hash_to_ristretto255 with SHA-512, RFC 9380).
pub(crate) fn hash_to_group(input: &[u8]) -> Result<Elem, PsiError> {
    Suite::hash_to_curve::<Sha512>(&[input], &HASH_TO_GROUP_DST)
        .map_err(|_| PsiError::Oprf("input too long for hash-to-group".to_owned()))
}

fn ad(epoch: &EpochId, tag: &Tag) -> Vec<u8> {
    [LABEL_AD, epoch.as_bytes(), &tag.0].concat()
}

/// `labels` sealed under `key`: `nonce || ciphertext`.
pub(crate) fn seal<R: RngCore + CryptoRng>(
    labels: &[Label],
    key: &[u8; 32],
    epoch: &EpochId,
    tag: &Tag,
    rng: &mut R,
) -> Result<Vec<u8>, PsiError> {
    let json = serde_json::to_vec(labels).map_err(|e| PsiError::Label(e.to_string()))?;
    let mut plain = Zeroizing::new(json);
    plain.push(0x80);
    let padded = plain.len().div_ceil(LABEL_PAD) * LABEL_PAD;
    plain.resize(padded, 0);
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let cipher = XChaCha20Poly1305::new(key.into());
    let aad = ad(epoch, tag);
    let sealed = cipher
        .encrypt(&XNonce::from(nonce), Payload { msg: &plain, aad: &aad })
        .map_err(|_| PsiError::Label("cannot seal".to_owned()))?;
    Ok([nonce.as_slice(), &sealed].concat())
}

/// The labels of `sealed`, opened with `key`.
pub(crate) fn open(
    sealed: &[u8],
    key: &[u8; 32],
    epoch: &EpochId,
    tag: &Tag,
) -> Result<Vec<Label>, PsiError> {
    let (nonce, body) = sealed
        .split_at_checked(NONCE_LEN)
        .ok_or_else(|| PsiError::Label("shorter than its nonce".to_owned()))?;
    let nonce: [u8; NONCE_LEN] =
        nonce.try_into().map_err(|_| PsiError::Label("shorter than its nonce".to_owned()))?;
    let cipher = XChaCha20Poly1305::new(key.into());
    let aad = ad(epoch, tag);
    let plain = Zeroizing::new(
        cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: body, aad: &aad })
            .map_err(|_| PsiError::Label("does not open under the selector's key".to_owned()))?,
    );
    let end = plain.iter().rposition(|b| *b != 0).filter(|i| plain.get(*i) == Some(&0x80));
    let json = end
        .and_then(|i| plain.get(..i))
        .ok_or_else(|| PsiError::Label("bad padding".to_owned()))?;
    serde_json::from_slice(json).map_err(|e| PsiError::Label(format!("not a list of labels: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn epoch() -> EpochId {
        EpochId::from_hex(&"ab".repeat(32), "epoch").unwrap()
    }

    #[test]
    fn tag_and_label_key_are_separate_derivations() {
        let (tag, key) = labelled(&[7u8; 64], &epoch()).unwrap();
        assert_ne!(tag.0.as_slice(), key.get(..TAG_LEN).unwrap());
        let (tag2, _) = labelled(&[8u8; 64], &epoch()).unwrap();
        assert_ne!(tag, tag2);
        // The cardinality tag of the same bytes is another derivation again.
        let card = cardinality(&[7u8; 32], &epoch()).unwrap();
        let (lab, _) = labelled(&[7u8; 32], &epoch()).unwrap();
        assert_ne!(card, lab);
    }

    #[test]
    fn a_label_opens_only_under_its_key_epoch_and_tag() {
        let mut rng = StdRng::seed_from_u64(1);
        let labels = vec![Label {
            case_reference: "DE-2026-0042".into(),
            contact: "desk@bka.example".into(),
        }];
        let (tag, key) = labelled(&[1u8; 64], &epoch()).unwrap();
        let sealed = seal(&labels, &key, &epoch(), &tag, &mut rng).unwrap();
        assert_eq!((sealed.len() - NONCE_LEN - AEAD_TAG_LEN) % LABEL_PAD, 0);
        assert_eq!(open(&sealed, &key, &epoch(), &tag).unwrap(), labels);
        let (other_tag, other_key) = labelled(&[2u8; 64], &epoch()).unwrap();
        assert!(open(&sealed, &other_key, &epoch(), &tag).is_err());
        assert!(open(&sealed, &key, &epoch(), &other_tag).is_err());
        let other_epoch = EpochId::from_hex(&"cd".repeat(32), "epoch").unwrap();
        assert!(open(&sealed, &key, &other_epoch, &tag).is_err());
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(open(&flipped, &key, &epoch(), &tag).is_err());
        assert!(open(&sealed[..10], &key, &epoch(), &tag).is_err());
    }
}
