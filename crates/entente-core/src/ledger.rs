//! The ledger's entries, Merkle tree arithmetic and signed checkpoints.
//!
//! - Entries are RFC 8785 canonical JSON ([`LedgerEntry`]); the leaf hash of an entry is
//!   `SHA-256(0x00 || entry)` (RFC 6962 §2.1, RFC 9162 §2.1.1).
//! - Interior nodes are `SHA-256(0x01 || left || right)`. Hashes of complete subtrees are
//!   numbered as in Go's `sumdb/tlog` ([`stored_hash_index`]), which is also the numbering that
//!   C2SP tlog-tiles hash tiles are cut from.
//! - Checkpoints are C2SP tlog-checkpoint bodies in a C2SP signed-note, signed with Ed25519.

use crate::action::{Action, Actor, Subject};
use crate::canonical::{CanonicalError, to_canonical_vec};
use crate::decision::{Obligation, Outcome};
use crate::ids::PartyCode;
use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

pub use tlog_tiles::{
    Hash, RecordProof, TreeProof, check_record, check_tree, node_hash, record_hash,
    split_stored_hash_index, stored_hash_count, stored_hash_index,
};

/// Version of the ledger entry format written by this code.
pub const ENTRY_FORMAT: u32 = 1;

/// The height of hash tiles (C2SP tlog-tiles fixes it at 8: 256 hashes a tile).
pub const TILE_HEIGHT: u8 = 8;

/// Width of a full tile.
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;

/// One ledger entry: a gate decision and what it touched, by id and digest only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerEntry {
    /// Entry format version ([`ENTRY_FORMAT`]).
    pub v: u32,
    /// Position in the log, from 0.
    pub index: u64,
    /// When the gate decided (RFC 3339, UTC).
    pub time: String,
    /// The party whose node wrote the entry.
    pub node: PartyCode,
    /// Who asked.
    pub actor: Actor,
    /// What was asked.
    pub action: Action,
    /// What it was about.
    pub subjects: Vec<Subject>,
    /// Permit or deny.
    pub decision: Outcome,
    /// The rules that decided.
    pub rules: Vec<String>,
    /// Obligations attached to a permit.
    pub obligations: Vec<Obligation>,
    /// The decision's reason in words.
    pub reason: String,
    /// Digests (`sha256:<hex>`) of the payloads the action carried or produced, by name.
    pub payload_hashes: BTreeMap<String, String>,
    /// The unverified (status U) facts a permit rests on, by citation
    /// ([`crate::Decision::unverified_basis`]); absent when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unverified_basis: Vec<String>,
}

/// Why bytes are not a valid ledger entry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// The bytes are not a JSON ledger entry.
    #[error("not a ledger entry: {0}")]
    Malformed(String),
    /// The entry parses but its bytes are not in RFC 8785 canonical form.
    #[error("entry is not in RFC 8785 canonical form")]
    NotCanonical,
    /// The entry could not be encoded.
    #[error(transparent)]
    Canonical(#[from] CanonicalError),
}

impl LedgerEntry {
    /// Returns the canonical bytes of the entry: what is hashed and stored.
    ///
    /// # Errors
    /// Only if a field cannot be encoded as canonical JSON.
    pub fn encode(&self) -> Result<Vec<u8>, EntryError> {
        Ok(to_canonical_vec(self)?)
    }

    /// Parses stored entry bytes, requiring canonical form so that one entry has one encoding.
    ///
    /// # Errors
    /// If the bytes are not an entry, or not canonical.
    pub fn decode(bytes: &[u8]) -> Result<Self, EntryError> {
        let entry: LedgerEntry =
            serde_json::from_slice(bytes).map_err(|e| EntryError::Malformed(e.to_string()))?;
        if entry.encode()? != bytes {
            return Err(EntryError::NotCanonical);
        }
        Ok(entry)
    }
}

/// The RFC 6962 hash of the empty tree, `SHA-256()`.
pub fn empty_tree_hash() -> Hash {
    Hash(Sha256::digest([]).into())
}

/// The right edge of a Merkle tree: the roots of its complete subtrees, largest first.
/// Enough to append leaves and compute the root without reading the rest of the tree.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Frontier {
    size: u64,
    // (level, hash), strictly decreasing levels; levels are the set bits of `size`.
    nodes: Vec<(u8, Hash)>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Stored-hash indexes of the complete subtrees that make up a tree of `size` leaves,
    /// largest first: what [`Frontier::from_hashes`] needs.
    pub fn indexes_for(size: u64) -> Vec<u64> {
        let mut out = Vec::new();
        let mut start = 0u64;
        for level in (0..64u8).rev() {
            if size & (1u64 << level) != 0 {
                out.push(stored_hash_index(level, start >> level));
                start += 1u64 << level;
            }
        }
        out
    }

    /// Rebuilds the frontier of a tree of `size` leaves from the hashes at
    /// [`Frontier::indexes_for`]`(size)`, in that order. Returns `None` if the count is wrong.
    pub fn from_hashes(size: u64, hashes: &[Hash]) -> Option<Self> {
        let levels: Vec<u8> = (0..64u8).rev().filter(|l| size & (1u64 << l) != 0).collect();
        if levels.len() != hashes.len() {
            return None;
        }
        Some(Self { size, nodes: levels.into_iter().zip(hashes.iter().copied()).collect() })
    }

    /// Appends a leaf hash. Returns the stored hashes that the append completes, as
    /// `(stored hash index, hash)`: the leaf itself, then each newly completed subtree.
    pub fn push(&mut self, leaf: Hash) -> Vec<(u64, Hash)> {
        let n = self.size;
        let mut out = vec![(stored_hash_index(0, n), leaf)];
        let mut hash = leaf;
        let mut level = 0u8;
        while let Some(&(l, left)) = self.nodes.last() {
            if l != level {
                break;
            }
            self.nodes.pop();
            hash = node_hash(left, hash);
            level += 1;
            out.push((stored_hash_index(level, n >> level), hash));
        }
        self.nodes.push((level, hash));
        self.size += 1;
        out
    }

    /// The RFC 6962 root hash of the tree.
    pub fn root(&self) -> Hash {
        let mut iter = self.nodes.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else {
            return empty_tree_hash();
        };
        for &(_, left) in iter {
            acc = node_hash(left, acc);
        }
        acc
    }
}

/// A ledger's signing identity: the C2SP key name (the log origin) and the Ed25519 key.
pub struct LogSigner<'a> {
    origin: String,
    key: &'a SigningKey,
    key_id: u32,
}

/// Returns the log origin for a node: `entente/<PARTY>/<first 8 hex digits of SHA-256 of the
/// public key>`, unique per node key and a valid signed-note key name.
pub fn origin_for(party: &PartyCode, key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    format!("entente/{party}/{}", hex::encode(&digest[..4]))
}

/// The C2SP signed-note verifier key of `key` under `name`: `<name>+<hex id>+<base64(0x01 || key)>`.
pub fn verifier_key(name: &str, key: &VerifyingKey) -> String {
    signed_note::new_ed25519_verifier_key(name, key)
}

impl<'a> LogSigner<'a> {
    /// A signer for the log `origin` with `key`.
    pub fn new(origin: &str, key: &'a SigningKey) -> Self {
        let mut encoded = vec![0x01u8];
        encoded.extend_from_slice(key.verifying_key().as_bytes());
        let key_id = signed_note::key_id(origin, &encoded);
        Self { origin: origin.to_owned(), key, key_id }
    }

    /// The log origin (also the signature's key name).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Signs a checkpoint for a tree of `size` leaves with root `root`. Returns the signed note.
    ///
    /// # Errors
    /// If the origin is not a valid key name.
    pub fn sign_checkpoint(&self, size: u64, root: Hash) -> Result<Vec<u8>, CheckpointError> {
        let body = format!("{}\n{size}\n{}\n", self.origin, BASE64_STANDARD.encode(root.0));
        let mut note = signed_note::Note::new(body.as_bytes(), &[])
            .map_err(|e| CheckpointError::Malformed(e.to_string()))?;
        note.add_sigs(&[self]).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
        Ok(note.to_bytes())
    }
}

impl signed_note::Signer for LogSigner<'_> {
    fn name(&self) -> &str {
        &self.origin
    }
    fn key_id(&self) -> u32 {
        self.key_id
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        Ok(self.key.sign(msg).to_bytes().to_vec())
    }
}

/// A checkpoint whose signature has been verified.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedCheckpoint {
    /// The log origin.
    pub origin: String,
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
}

/// Why a checkpoint was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The note or its body is not well-formed.
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    /// No valid signature by the expected key, or a signature that fails.
    #[error("checkpoint signature does not verify with key `{key}`: {detail}")]
    BadSignature {
        /// The verifier key expected.
        key: String,
        /// What the signed-note verifier said.
        detail: String,
    },
    /// The checkpoint is for another log.
    #[error("checkpoint origin is `{found}`, expected `{expected}`")]
    WrongOrigin {
        /// The origin expected.
        expected: String,
        /// The origin found.
        found: String,
    },
}

/// Verifies a signed checkpoint note against a C2SP verifier key and returns its contents.
///
/// # Errors
/// If the note is malformed, is not signed by the key, or names another origin.
pub fn verify_checkpoint(
    note: &[u8],
    verifier_key: &str,
) -> Result<VerifiedCheckpoint, CheckpointError> {
    let verifier = signed_note::StandardVerifier::new(verifier_key).map_err(|e| {
        CheckpointError::BadSignature { key: verifier_key.to_owned(), detail: e.to_string() }
    })?;
    let name = signed_note::Verifier::name(&verifier).to_owned();
    let parsed = signed_note::Note::from_bytes(note)
        .map_err(|e| CheckpointError::Malformed(e.to_string()))?;
    let list = signed_note::VerifierList::new(vec![Box::new(verifier)]);
    parsed.verify(&list).map_err(|e| CheckpointError::BadSignature {
        key: verifier_key.to_owned(),
        detail: e.to_string(),
    })?;
    let cp = tlog_tiles::Checkpoint::from_bytes(parsed.text())
        .map_err(|e| CheckpointError::Malformed(e.to_string()))?;
    if cp.origin() != name {
        return Err(CheckpointError::WrongOrigin { expected: name, found: cp.origin().to_owned() });
    }
    Ok(VerifiedCheckpoint { origin: cp.origin().to_owned(), size: cp.size(), root: *cp.hash() })
}

/// Encodes entries as a C2SP tlog-tiles entry bundle: each entry as a big-endian `u16` length
/// followed by its bytes.
///
/// # Errors
/// If an entry is longer than 65,535 bytes.
pub fn encode_entry_bundle<'a>(
    entries: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for e in entries {
        let len = u16::try_from(e.len()).map_err(|_| {
            format!("entry of {} bytes exceeds the 65535-byte bundle limit", e.len())
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// Splits a C2SP tlog-tiles entry bundle into its entries.
///
/// # Errors
/// If a length prefix runs past the end of the bundle.
pub fn decode_entry_bundle(bundle: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut out = Vec::new();
    let mut rest = bundle;
    while !rest.is_empty() {
        let [a, b, tail @ ..] = rest else {
            return Err(format!("truncated length prefix at byte {}", bundle.len() - rest.len()));
        };
        let len = usize::from(u16::from_be_bytes([*a, *b]));
        if tail.len() < len {
            return Err(format!(
                "entry at byte {} claims {len} bytes but only {} remain",
                bundle.len() - rest.len(),
                tail.len()
            ));
        }
        out.push(&tail[..len]);
        rest = &tail[len..];
    }
    Ok(out)
}

/// Path of a hash tile per C2SP tlog-tiles: `tile/<L>/<N>[.p/<W>]`, N in 3-digit groups with
/// `x` prefixes on all but the last.
pub fn tile_path(level: u8, index: u64, width: u64) -> String {
    let mut p = format!("tile/{level}/{}", encode_tile_index(index));
    if width < TILE_WIDTH {
        p.push_str(&format!(".p/{width}"));
    }
    p
}

/// Path of an entry bundle: `tile/entries/<N>[.p/<W>]`.
pub fn entries_path(index: u64, width: u64) -> String {
    let mut p = format!("tile/entries/{}", encode_tile_index(index));
    if width < TILE_WIDTH {
        p.push_str(&format!(".p/{width}"));
    }
    p
}

fn encode_tile_index(mut n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        groups.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

/// A parsed tile request path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TileRef {
    /// Hash tile at `level`, tile index `index`, `width` hashes.
    Hashes {
        /// Tile level.
        level: u8,
        /// Tile index within the level.
        index: u64,
        /// Number of hashes (256 for a full tile).
        width: u64,
    },
    /// Entry bundle number `index` with `width` entries.
    Entries {
        /// Bundle index.
        index: u64,
        /// Number of entries.
        width: u64,
    },
}

/// Parses a path below `tile/` (for example `0/x001/234.p/7` or `entries/000`).
///
/// # Errors
/// A description of what is malformed.
pub fn parse_tile_path(path: &str) -> Result<TileRef, String> {
    let bad = || {
        format!("malformed tile path `{path}`: expected <level>/<N>[.p/<W>] or entries/<N>[.p/<W>]")
    };
    let (first, rest) = path.split_once('/').ok_or_else(bad)?;
    let (index_part, width) = match rest.split_once(".p/") {
        Some((i, w)) => {
            let w: u64 = w.parse().map_err(|_| bad())?;
            if w == 0
                || w >= TILE_WIDTH
                || w.to_string() != rest.split_once(".p/").map(|x| x.1).unwrap_or("")
            {
                return Err(bad());
            }
            (i, w)
        }
        None => (rest, TILE_WIDTH),
    };
    let groups: Vec<&str> = index_part.split('/').collect();
    let mut index = 0u64;
    for (i, g) in groups.iter().enumerate() {
        let last = i + 1 == groups.len();
        let digits = if last { *g } else { g.strip_prefix('x').ok_or_else(bad)? };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let d: u64 = digits.parse().map_err(|_| bad())?;
        index = index.checked_mul(1000).and_then(|x| x.checked_add(d)).ok_or_else(bad)?;
    }
    if encode_tile_index(index) != index_part {
        return Err(bad());
    }
    if first == "entries" {
        return Ok(TileRef::Entries { index, width });
    }
    let level: u8 = first.parse().map_err(|_| bad())?;
    if level.to_string() != first || level > 63 / TILE_HEIGHT {
        return Err(bad());
    }
    Ok(TileRef::Hashes { level, index, width })
}

/// Stored-hash indexes of the hashes in a hash tile: level `level * 8`, positions
/// `index * 256 .. index * 256 + width`.
pub fn tile_hash_indexes(level: u8, index: u64, width: u64) -> Vec<u64> {
    let l = level * TILE_HEIGHT;
    (0..width).map(|i| stored_hash_index(l, index * TILE_WIDTH + i)).collect()
}

/// The widest tile `(level, index)` may have in a tree of `size` leaves: 0 if the tile does not
/// exist yet. A tile of this width is the one a client should ask for.
pub fn tile_width_in_tree(level: u8, index: u64, size: u64) -> u64 {
    // Number of complete subtrees of height level*8 in the tree.
    let shift = u32::from(level) * u32::from(TILE_HEIGHT);
    let complete = if shift >= 64 { 0 } else { size >> shift };
    complete.saturating_sub(index * TILE_WIDTH).min(TILE_WIDTH)
}

/// A [`tlog_tiles::HashReader`] over hashes already in memory, keyed by stored-hash index.
#[derive(Debug, Default)]
pub struct MapHashReader(pub std::collections::HashMap<u64, Hash>);

impl tlog_tiles::HashReader for MapHashReader {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|i| self.0.get(i).copied().ok_or(tlog_tiles::Error::IndexesNotInTree))
            .collect()
    }
}

/// Records which stored hashes a proof needs, answering with zero hashes; the first pass of
/// proving against a store that is read asynchronously.
#[derive(Debug, Default)]
struct RecordingReader(std::cell::RefCell<Vec<u64>>);

impl tlog_tiles::HashReader for RecordingReader {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        self.0.borrow_mut().extend_from_slice(indexes);
        Ok(vec![Hash::default(); indexes.len()])
    }
}

/// Stored-hash indexes needed to prove that leaf `n` is in the tree of size `t`.
///
/// # Errors
/// If `n >= t`.
pub fn inclusion_proof_indexes(t: u64, n: u64) -> Result<Vec<u64>, tlog_tiles::Error> {
    if n >= t {
        return Err(tlog_tiles::Error::InvalidInput(format!(
            "leaf {n} is not in a tree of size {t}"
        )));
    }
    let r = RecordingReader::default();
    tlog_tiles::prove_record(t, n, &r)?;
    Ok(r.0.into_inner())
}

/// Stored-hash indexes needed to prove that the tree of size `n` is a prefix of the tree of
/// size `t` (plus the hashes needed for both roots).
///
/// # Errors
/// If `n > t` or `n == 0`.
pub fn consistency_proof_indexes(t: u64, n: u64) -> Result<Vec<u64>, tlog_tiles::Error> {
    if n == 0 || n > t {
        return Err(tlog_tiles::Error::InvalidInput(format!(
            "no consistency proof from size {n} to size {t}"
        )));
    }
    let r = RecordingReader::default();
    tlog_tiles::prove_tree(t, n, &r)?;
    Ok(r.0.into_inner())
}

/// Proves leaf `n` in the tree of size `t` from hashes read for [`inclusion_proof_indexes`].
///
/// # Errors
/// If a needed hash is missing.
pub fn prove_inclusion(
    t: u64,
    n: u64,
    hashes: &MapHashReader,
) -> Result<RecordProof, tlog_tiles::Error> {
    if n >= t {
        return Err(tlog_tiles::Error::InvalidInput(format!(
            "leaf {n} is not in a tree of size {t}"
        )));
    }
    tlog_tiles::prove_record(t, n, hashes)
}

/// Proves the tree of size `n` is a prefix of the tree of size `t`, from hashes read for
/// [`consistency_proof_indexes`].
///
/// # Errors
/// If a needed hash is missing.
pub fn prove_consistency(
    t: u64,
    n: u64,
    hashes: &MapHashReader,
) -> Result<TreeProof, tlog_tiles::Error> {
    if n == 0 || n > t {
        return Err(tlog_tiles::Error::InvalidInput(format!(
            "no consistency proof from size {n} to size {t}"
        )));
    }
    tlog_tiles::prove_tree(t, n, hashes)
}

#[cfg(test)]
mod tests;
