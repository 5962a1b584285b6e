//! The holder's prepared set: its selectors PRF'd once per epoch, cached and handed to askers
//! in chunks.
//!
//! Each element is a tag (and, in labelled mode, a sealed label); the set is sorted by tag,
//! so its order says nothing of the holder's records. Its digest is a hash chain over the
//! elements in that order:
//!
//! ```text
//! c_0     = SHA-256("entente-psi/v1 set" || mode || epoch || u64be(n))
//! c_{i+1} = SHA-256(c_i || tag_i || u32be(len(label_i)) || label_i)
//! digest  = c_n
//! ```
//!
//! (`mode` is one byte, 0 labelled, 1 cardinality; a cardinality element has an empty label.)
//! A [`SetChunk`] carries the chain value before its first element, so a receiver resuming a
//! transfer checks that the chunk continues exactly what it already has, and the last chunk
//! ends at the digest the holder names in every chunk and every evaluation.

use crate::derive::{self, Label, Tag};
use crate::error::PsiError;
use crate::key::{EpochId, HolderKey, encode_element};
use crate::selector::Selector;
use crate::wire::{Limits, Mode, SetChunk};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

const SET_DOMAIN: &[u8] = b"entente-psi/v1 set";

/// A selector the holder holds, with every holding it has on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HolderEntry {
    /// The selector.
    pub selector: Selector,
    /// The holdings on it (case references and contacts); unused in cardinality mode.
    pub labels: Vec<Label>,
}

/// The holder's records grouped by selector: one entry per selector, its labels in order and
/// without repeats.
pub fn group_holdings(holdings: impl IntoIterator<Item = (Selector, Label)>) -> Vec<HolderEntry> {
    let mut by: BTreeMap<Selector, Vec<Label>> = BTreeMap::new();
    for (s, l) in holdings {
        by.entry(s).or_default().push(l);
    }
    by.into_iter()
        .map(|(selector, mut labels)| {
            labels.sort();
            labels.dedup();
            HolderEntry { selector, labels }
        })
        .collect()
}

/// One element of a prepared set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreparedElement {
    pub(crate) tag: Tag,
    /// `nonce || ciphertext` of the labels (labelled mode), or none (cardinality mode).
    #[serde(with = "crate::wire::b64_opt", default, skip_serializing_if = "Option::is_none")]
    pub(crate) label: Option<Vec<u8>>,
}

impl PreparedElement {
    /// The element's lookup tag.
    pub fn tag(&self) -> &Tag {
        &self.tag
    }
}

/// The digest of a prepared set: the last value of its hash chain.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SetDigest(pub(crate) [u8; 32]);

impl SetDigest {
    /// A digest from its bytes (as stored by the holder).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SetDigest(bytes)
    }

    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for SetDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for SetDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SetDigest({self})")
    }
}

impl Serialize for SetDigest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SetDigest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let mut b = [0u8; 32];
        hex::decode_to_slice(&text, &mut b).map_err(|_| {
            serde::de::Error::custom(format!(
                "found `{text}`; expected a set digest of 64 hex digits"
            ))
        })?;
        Ok(SetDigest(b))
    }
}

fn mode_byte(mode: Mode) -> u8 {
    match mode {
        Mode::Labelled => 0,
        Mode::Cardinality => 1,
    }
}

/// `c_0` of a set of `n` elements.
pub(crate) fn chain_start(mode: Mode, epoch: &EpochId, n: u64) -> [u8; 32] {
    Sha256::new()
        .chain_update(SET_DOMAIN)
        .chain_update([mode_byte(mode)])
        .chain_update(epoch.as_bytes())
        .chain_update(n.to_be_bytes())
        .finalize()
        .into()
}

/// `c_{i+1}` from `c_i` and element `i`.
pub(crate) fn chain_next(chain: &[u8; 32], e: &PreparedElement) -> [u8; 32] {
    let label = e.label.as_deref().unwrap_or(&[]);
    let len = u32::try_from(label.len()).unwrap_or(u32::MAX);
    Sha256::new()
        .chain_update(chain)
        .chain_update(e.tag.0)
        .chain_update(len.to_be_bytes())
        .chain_update(label)
        .finalize()
        .into()
}

/// What identifies a prepared set: its epoch, mode, size and digest (what an evaluation
/// names), without its elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetSummary {
    /// The epoch it was prepared under.
    pub epoch: EpochId,
    /// Its mode.
    pub mode: Mode,
    /// Its number of elements.
    pub size: u64,
    /// Its digest.
    pub digest: SetDigest,
}

/// The holder's set of one epoch and mode, PRF'd and sorted by tag.
///
/// To cache it, store its [`PreparedSet::chunks`] and read them back with a [`SetReceiver`],
/// which checks them again.
///
// INVARIANT: `elements` is strictly ascending by tag, every element has a label exactly in
// labelled mode, and `digest` is the hash chain over them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedSet {
    epoch: EpochId,
    mode: Mode,
    elements: Vec<PreparedElement>,
    digest: SetDigest,
}

impl PreparedSet {
    /// The set of prepared chunks (from [`HolderKey::prepare_chunk`], in any order, perhaps
    /// from several threads), sorted.
    ///
    /// # Errors
    /// The same selector twice ([`PsiError::DuplicateElement`]), or an element without a
    /// label in labelled mode or with one in cardinality mode.
    pub fn assemble(
        epoch: EpochId,
        mode: Mode,
        chunks: impl IntoIterator<Item = Vec<PreparedElement>>,
    ) -> Result<Self, PsiError> {
        let mut elements: Vec<PreparedElement> = chunks.into_iter().flatten().collect();
        elements.sort_by_key(|e| e.tag);
        PreparedSet::from_sorted(epoch, mode, elements)
    }

    fn from_sorted(
        epoch: EpochId,
        mode: Mode,
        elements: Vec<PreparedElement>,
    ) -> Result<Self, PsiError> {
        if elements.windows(2).any(|w| matches!(w, [a, b] if a.tag >= b.tag)) {
            return Err(PsiError::DuplicateElement);
        }
        let labelled = mode == Mode::Labelled;
        if elements.iter().any(|e| e.label.is_some() != labelled) {
            return Err(PsiError::Label(format!("an element does not fit {mode} mode")));
        }
        let mut chain = chain_start(mode, &epoch, elements.len() as u64);
        for e in &elements {
            chain = chain_next(&chain, e);
        }
        Ok(PreparedSet { epoch, mode, elements, digest: SetDigest(chain) })
    }

    /// The set's epoch, mode, size and digest.
    pub fn summary(&self) -> SetSummary {
        SetSummary {
            epoch: self.epoch,
            mode: self.mode,
            size: self.elements.len() as u64,
            digest: self.digest,
        }
    }

    /// The epoch the set was prepared under.
    pub fn epoch(&self) -> EpochId {
        self.epoch
    }

    /// The set's mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.elements.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    /// The set's digest.
    pub fn digest(&self) -> SetDigest {
        self.digest
    }

    /// The elements, sorted by tag.
    pub fn elements(&self) -> &[PreparedElement] {
        &self.elements
    }

    /// The element with `tag`.
    pub(crate) fn find(&self, tag: &Tag) -> Option<&PreparedElement> {
        self.elements.binary_search_by(|e| e.tag.cmp(tag)).ok().and_then(|i| self.elements.get(i))
    }

    /// The set in chunks of at most `per_chunk` elements (at least one; one empty chunk for an
    /// empty set), to send.
    pub fn chunks(&self, per_chunk: usize) -> Vec<SetChunk> {
        let per_chunk = per_chunk.max(1);
        let total = self.elements.len().div_ceil(per_chunk).max(1) as u64;
        let mut chain = chain_start(self.mode, &self.epoch, self.elements.len() as u64);
        let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
        let mut first = 0usize;
        for index in 0..total {
            let end = (first + per_chunk).min(self.elements.len());
            let elements = self.elements.get(first..end).unwrap_or(&[]).to_vec();
            let before = chain;
            for e in &elements {
                chain = chain_next(&chain, e);
            }
            out.push(SetChunk {
                mode: self.mode,
                epoch: self.epoch,
                set_size: self.elements.len() as u64,
                set_digest: self.digest,
                index,
                total,
                first: first as u64,
                chain: before,
                elements,
            });
            first = end;
        }
        out
    }
}

/// Receives a prepared set chunk by chunk, checking each continues the ones before. It can be
/// stored between chunks (it is serialisable) and a transfer resumed from
/// [`SetReceiver::next_index`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SetReceiver {
    header: Option<Header>,
    next_index: u64,
    chain: [u8; 32],
    elements: Vec<PreparedElement>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Header {
    mode: Mode,
    epoch: EpochId,
    set_size: u64,
    set_digest: SetDigest,
    total: u64,
}

impl Default for SetReceiver {
    fn default() -> Self {
        SetReceiver::new()
    }
}

impl SetReceiver {
    /// A receiver that has nothing yet.
    pub fn new() -> Self {
        SetReceiver { header: None, next_index: 0, chain: [0; 32], elements: Vec::new() }
    }

    /// The index of the chunk to ask for next.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Whether every chunk has been received.
    pub fn is_complete(&self) -> bool {
        self.header.is_some_and(|h| self.next_index == h.total)
    }

    /// Adds the next chunk (already decoded under `limits`).
    ///
    /// # Errors
    /// [`PsiError::ChunkOutOfOrder`] for a chunk that is not the next one, of another set,
    /// does not continue the hash chain, is not sorted after the elements before it, or (the
    /// last) does not end at the set's digest; the receiver is unchanged then.
    pub fn receive(&mut self, chunk: SetChunk, limits: &Limits) -> Result<(), PsiError> {
        let bad = |message: String| PsiError::ChunkOutOfOrder { index: chunk.index, message };
        let header = Header {
            mode: chunk.mode,
            epoch: chunk.epoch,
            set_size: chunk.set_size,
            set_digest: chunk.set_digest,
            total: chunk.total,
        };
        match self.header {
            Some(h) if h != header => {
                return Err(bad(
                    "belongs to another set (mode, epoch, size, digest or total)".into()
                ));
            }
            None if chunk.index == 0 => {}
            None => return Err(bad("expected chunk 0 first".into())),
            Some(_) => {}
        }
        if usize::try_from(chunk.set_size).map_or(true, |n| n > limits.max_set_elements) {
            return Err(bad(format!(
                "set of {} elements exceeds the limit of {}",
                chunk.set_size, limits.max_set_elements
            )));
        }
        if chunk.index != self.next_index {
            return Err(bad(format!("expected chunk {}", self.next_index)));
        }
        if chunk.first != self.elements.len() as u64 {
            return Err(bad(format!(
                "starts at element {}; expected {}",
                chunk.first,
                self.elements.len()
            )));
        }
        let start = if chunk.index == 0 {
            chain_start(chunk.mode, &chunk.epoch, chunk.set_size)
        } else {
            self.chain
        };
        if chunk.chain != start {
            return Err(bad("does not continue the hash chain of the chunks before".into()));
        }
        let mut prev = self.elements.last().map(|e| e.tag);
        let mut chain = start;
        for e in &chunk.elements {
            if prev.is_some_and(|p| p >= e.tag) {
                return Err(bad("elements are not in ascending tag order".into()));
            }
            prev = Some(e.tag);
            chain = chain_next(&chain, e);
        }
        let have = self.elements.len() as u64 + chunk.elements.len() as u64;
        let last = chunk.index + 1 == chunk.total;
        if have > chunk.set_size || (last && have != chunk.set_size) {
            return Err(bad(format!(
                "brings the set to {have} elements; it has {}",
                chunk.set_size
            )));
        }
        if last && chain != chunk.set_digest.0 {
            return Err(bad("the set does not end at its digest".into()));
        }
        self.header = Some(header);
        self.chain = chain;
        self.next_index += 1;
        self.elements.extend(chunk.elements);
        Ok(())
    }

    /// The set received.
    ///
    /// # Errors
    /// [`PsiError::ChunkOutOfOrder`] when chunks are missing.
    pub fn finish(self) -> Result<PreparedSet, PsiError> {
        let Some(h) = self.header.filter(|h| self.next_index == h.total) else {
            return Err(PsiError::ChunkOutOfOrder {
                index: self.next_index,
                message: "the transfer is not complete".into(),
            });
        };
        let set = PreparedSet::from_sorted(h.epoch, h.mode, self.elements)?;
        if set.digest != h.set_digest {
            return Err(PsiError::SetMismatch {
                found: set.digest.to_string(),
                expected: h.set_digest.to_string(),
            });
        }
        Ok(set)
    }
}

impl HolderKey {
    /// Prepares `entries` (a chunk of the holder's set, ideally from [`group_holdings`]) for
    /// `mode`: each selector's OPRF output under this key ([`voprf::VoprfServer::evaluate`]),
    /// its tag and, in labelled mode, its labels sealed. Chunks may be prepared in parallel
    /// by the caller and put together with [`PreparedSet::assemble`].
    ///
    /// # Errors
    /// Only if the OPRF or the AEAD fails on an input, which well-formed selectors never do.
    pub fn prepare_chunk<R: RngCore + CryptoRng>(
        &self,
        mode: Mode,
        entries: &[HolderEntry],
        rng: &mut R,
    ) -> Result<Vec<PreparedElement>, PsiError> {
        let epoch = self.epoch();
        entries
            .iter()
            .map(|entry| {
                let input = entry.selector.oprf_input();
                match mode {
                    Mode::Labelled => {
                        let output = self.server.evaluate(&input).map_err(PsiError::oprf)?;
                        let (tag, key) = derive::labelled(&output, &epoch)?;
                        let label = derive::seal(&entry.labels, &key, &epoch, &tag, rng)?;
                        Ok(PreparedElement { tag, label: Some(label) })
                    }
                    Mode::Cardinality => {
                        let z = derive::hash_to_group(&input)? * self.sk;
                        let tag = derive::cardinality(&encode_element(z), &epoch)?;
                        Ok(PreparedElement { tag, label: None })
                    }
                }
            })
            .collect()
    }

    /// Prepares the whole set in chunks of `chunk_size`, calling `progress(done, total)` after
    /// each chunk. One thread; for more, call [`HolderKey::prepare_chunk`] per thread.
    ///
    /// # Errors
    /// As [`HolderKey::prepare_chunk`] and [`PreparedSet::assemble`].
    pub fn prepare_set<R: RngCore + CryptoRng>(
        &self,
        mode: Mode,
        entries: &[HolderEntry],
        chunk_size: usize,
        rng: &mut R,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<PreparedSet, PsiError> {
        let mut chunks = Vec::new();
        let mut done = 0;
        for chunk in entries.chunks(chunk_size.max(1)) {
            chunks.push(self.prepare_chunk(mode, chunk, rng)?);
            done += chunk.len();
            progress(done, entries.len());
        }
        PreparedSet::assemble(self.epoch(), mode, chunks)
    }
}
