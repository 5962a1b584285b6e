//! The wire messages: JSON, binary fields in standard base64 (RFC 4648 §4, padded), epoch ids
//! and digests in lower-case hex, every message with `version` ([`PROTOCOL_VERSION`]) and
//! `mode`.
//!
//! - [`QueryMessage`] asker → holder: the blinded elements (RFC 9497 §3.3.2 Blind), padded;
//! - [`EvaluationMessage`] holder → asker: the evaluated elements and the batch DLEQ proof
//!   (§3.3.2 BlindEvaluate, §2.2.1 GenerateProof), naming the prepared set it belongs to;
//! - [`SetChunk`] holder → asker: a chunk of the prepared set, with its place in the hash
//!   chain (see [`crate::set`]).
//!
//! Decoding untrusted bytes goes through each message's `decode(bytes, limits)`: the
//! message's size and element counts are bounded by [`Limits`], every element has its exact
//! length and is a valid ristretto255 point other than the identity, proofs are canonical
//! scalars, unknown fields are refused, and each error names its field. Serde's
//! `Deserialize` on the messages applies the same checks under [`Limits::PROTOCOL`].

use crate::derive::{AEAD_TAG_LEN, LABEL_PAD, NONCE_LEN, TAG_LEN, Tag};
use crate::error::WireError;
use crate::key::{ELEMENT_LEN, EpochId, PROOF_LEN, decode_element};
use crate::set::{PreparedElement, SetDigest};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The version of the wire messages.
pub const PROTOCOL_VERSION: u16 = 1;

/// What the asker learns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Which of its selectors the holder holds, with the holder's labels for those.
    Labelled,
    /// Only how many of its selectors the holder holds.
    Cardinality,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Labelled => "labelled",
            Mode::Cardinality => "cardinality",
        }
    }

    fn parse(text: &str, field: &str) -> Result<Self, WireError> {
        match text {
            "labelled" => Ok(Mode::Labelled),
            "cardinality" => Ok(Mode::Cardinality),
            _ => Err(WireError::new(
                field,
                format!("found `{text}`; expected labelled or cardinality"),
            )),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Bounds on untrusted messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Elements in one query (the padded size) or evaluation.
    pub max_query_elements: usize,
    /// Elements in one set chunk.
    pub max_chunk_elements: usize,
    /// Elements in a prepared set.
    pub max_set_elements: usize,
    /// Bytes of one sealed label.
    pub max_label_bytes: usize,
    /// Bytes of one encoded message.
    pub max_message_bytes: usize,
}

impl Limits {
    /// The protocol's own bounds, applied by serde's `Deserialize` on the messages.
    pub const PROTOCOL: Limits = Limits {
        max_query_elements: 65_536,
        max_chunk_elements: 1 << 20,
        max_set_elements: 1 << 28,
        max_label_bytes: 1 << 16,
        max_message_bytes: 1 << 30,
    };
}

impl Default for Limits {
    /// A query of up to 1,024 elements, chunks of up to 50,000 elements, a set of up to ten
    /// million, labels of up to 4 KiB, messages of up to 64 MiB.
    fn default() -> Self {
        Limits {
            max_query_elements: 1024,
            max_chunk_elements: 50_000,
            max_set_elements: 10_000_000,
            max_label_bytes: 4096,
            max_message_bytes: 64 << 20,
        }
    }
}

/// Standard base64 of a byte field.
pub(crate) mod b64_opt {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| STANDARD.decode(t).map_err(serde::de::Error::custom)).transpose()
    }
}

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn unb64(text: &str, field: &str) -> Result<Vec<u8>, WireError> {
    STANDARD.decode(text).map_err(|_| WireError::new(field, "not standard base64"))
}

fn fixed<const N: usize>(text: &str, field: &str, what: &str) -> Result<[u8; N], WireError> {
    let bytes = unb64(text, field)?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| {
        WireError::new(field, format!("found {} bytes; expected a {N}-byte {what}", bytes.len()))
    })
}

fn element(text: &str, field: &str) -> Result<[u8; ELEMENT_LEN], WireError> {
    let bytes = unb64(text, field)?;
    decode_element(&bytes, field)?;
    <[u8; ELEMENT_LEN]>::try_from(bytes.as_slice())
        .map_err(|_| WireError::new(field, "not a ristretto255 element"))
}

fn hex32(text: &str, field: &str, what: &str) -> Result<[u8; 32], WireError> {
    let mut b = [0u8; 32];
    hex::decode_to_slice(text, &mut b).map_err(|_| {
        WireError::new(field, format!("found `{text}`; expected {what} of 64 hex digits"))
    })?;
    Ok(b)
}

fn check_version(version: u16, msg: &str) -> Result<(), WireError> {
    if version == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(WireError::new(
            format!("{msg}.version"),
            format!("found {version}; expected {PROTOCOL_VERSION}"),
        ))
    }
}

fn check_count(n: usize, limit: usize, field: &str) -> Result<(), WireError> {
    if n > limit {
        Err(WireError::new(field, format!("found {n} elements; at most {limit} are accepted")))
    } else {
        Ok(())
    }
}

/// The JSON `bytes` of a message, bounded, as the raw shape `R`.
fn parse_raw<R: DeserializeOwned>(
    bytes: &[u8],
    limits: &Limits,
    msg: &str,
) -> Result<R, WireError> {
    if bytes.len() > limits.max_message_bytes {
        return Err(WireError::new(
            msg,
            format!(
                "found {} bytes; at most {} are accepted",
                bytes.len(),
                limits.max_message_bytes
            ),
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| WireError::new(msg, e.to_string()))
}

fn to_json<T: Serialize>(v: &T, msg: &str) -> Result<Vec<u8>, WireError> {
    serde_json::to_vec(v).map_err(|e| WireError::new(msg, e.to_string()))
}

/// Asker → holder: blinded elements, padded to the query's size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryMessage {
    pub(crate) mode: Mode,
    pub(crate) epoch: EpochId,
    pub(crate) elements: Vec<[u8; ELEMENT_LEN]>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuery {
    version: u16,
    mode: String,
    epoch: String,
    elements: Vec<String>,
}

impl QueryMessage {
    /// The mode asked for.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The holder's epoch the query is for.
    pub fn epoch(&self) -> EpochId {
        self.epoch
    }

    /// The number of elements (the padded size).
    pub fn len(&self) -> usize {
        self.elements.len()
    }

    /// Whether the query has no elements.
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    /// The message as JSON.
    ///
    /// # Errors
    /// Only those of the JSON writer.
    pub fn to_json(&self) -> Result<Vec<u8>, WireError> {
        to_json(self, "query")
    }

    /// The message from untrusted JSON `bytes`, checked under `limits`.
    ///
    /// # Errors
    /// The first field that is malformed, too long or not a valid element.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Self, WireError> {
        QueryMessage::from_raw(parse_raw(bytes, limits, "query")?, limits)
    }

    fn from_raw(raw: RawQuery, limits: &Limits) -> Result<Self, WireError> {
        check_version(raw.version, "query")?;
        let mode = Mode::parse(&raw.mode, "query.mode")?;
        let epoch = EpochId::from_hex(&raw.epoch, "query.epoch")?;
        check_count(raw.elements.len(), limits.max_query_elements, "query.elements")?;
        let elements = raw
            .elements
            .iter()
            .enumerate()
            .map(|(i, e)| element(e, &format!("query.elements[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(QueryMessage { mode, epoch, elements })
    }

    fn to_raw(&self) -> RawQuery {
        RawQuery {
            version: PROTOCOL_VERSION,
            mode: self.mode.name().to_owned(),
            epoch: self.epoch.to_string(),
            elements: self.elements.iter().map(|e| b64(e)).collect(),
        }
    }
}

/// Holder → asker: the evaluated elements (shuffled in cardinality mode) and the DLEQ proof
/// that they were made with the epoch's published key, naming the prepared set to intersect
/// with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvaluationMessage {
    pub(crate) mode: Mode,
    pub(crate) epoch: EpochId,
    pub(crate) set_size: u64,
    pub(crate) set_digest: SetDigest,
    pub(crate) evaluations: Vec<[u8; ELEMENT_LEN]>,
    pub(crate) proof: [u8; PROOF_LEN],
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvaluation {
    version: u16,
    mode: String,
    epoch: String,
    set_size: u64,
    set_digest: String,
    evaluations: Vec<String>,
    proof: String,
}

impl EvaluationMessage {
    /// The mode evaluated in.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The holder's epoch.
    pub fn epoch(&self) -> EpochId {
        self.epoch
    }

    /// The size of the holder's prepared set.
    pub fn set_size(&self) -> u64 {
        self.set_size
    }

    /// The digest of the holder's prepared set.
    pub fn set_digest(&self) -> SetDigest {
        self.set_digest
    }

    /// The number of evaluated elements.
    pub fn len(&self) -> usize {
        self.evaluations.len()
    }

    /// Whether there are no evaluated elements.
    pub fn is_empty(&self) -> bool {
        self.evaluations.is_empty()
    }

    /// The message as JSON.
    ///
    /// # Errors
    /// Only those of the JSON writer.
    pub fn to_json(&self) -> Result<Vec<u8>, WireError> {
        to_json(self, "evaluation")
    }

    /// The message from untrusted JSON `bytes`, checked under `limits`.
    ///
    /// # Errors
    /// The first field that is malformed, too long or not a valid element or proof.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Self, WireError> {
        EvaluationMessage::from_raw(parse_raw(bytes, limits, "evaluation")?, limits)
    }

    fn from_raw(raw: RawEvaluation, limits: &Limits) -> Result<Self, WireError> {
        check_version(raw.version, "evaluation")?;
        let mode = Mode::parse(&raw.mode, "evaluation.mode")?;
        let epoch = EpochId::from_hex(&raw.epoch, "evaluation.epoch")?;
        if usize::try_from(raw.set_size).map_or(true, |n| n > limits.max_set_elements) {
            return Err(WireError::new(
                "evaluation.set_size",
                format!("found {}; at most {} are accepted", raw.set_size, limits.max_set_elements),
            ));
        }
        let set_digest =
            SetDigest(hex32(&raw.set_digest, "evaluation.set_digest", "a set digest")?);
        check_count(raw.evaluations.len(), limits.max_query_elements, "evaluation.evaluations")?;
        let evaluations = raw
            .evaluations
            .iter()
            .enumerate()
            .map(|(i, e)| element(e, &format!("evaluation.evaluations[{i}]")))
            .collect::<Result<_, _>>()?;
        let proof: [u8; PROOF_LEN] = fixed(&raw.proof, "evaluation.proof", "DLEQ proof")?;
        voprf::Proof::<crate::key::Suite>::deserialize(&proof).map_err(|_| {
            WireError::new("evaluation.proof", "not two canonical non-zero scalars")
        })?;
        Ok(EvaluationMessage {
            mode,
            epoch,
            set_size: raw.set_size,
            set_digest,
            evaluations,
            proof,
        })
    }

    fn to_raw(&self) -> RawEvaluation {
        RawEvaluation {
            version: PROTOCOL_VERSION,
            mode: self.mode.name().to_owned(),
            epoch: self.epoch.to_string(),
            set_size: self.set_size,
            set_digest: self.set_digest.to_string(),
            evaluations: self.evaluations.iter().map(|e| b64(e)).collect(),
            proof: b64(&self.proof),
        }
    }
}

/// Holder → asker: chunk `index` of `total` of a prepared set, starting at element `first`,
/// with the hash-chain value before it (see [`crate::set`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetChunk {
    pub(crate) mode: Mode,
    pub(crate) epoch: EpochId,
    pub(crate) set_size: u64,
    pub(crate) set_digest: SetDigest,
    pub(crate) index: u64,
    pub(crate) total: u64,
    pub(crate) first: u64,
    pub(crate) chain: [u8; 32],
    pub(crate) elements: Vec<PreparedElement>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChunk {
    version: u16,
    mode: String,
    epoch: String,
    set_size: u64,
    set_digest: String,
    index: u64,
    total: u64,
    first: u64,
    chain: String,
    elements: Vec<RawElement>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawElement {
    tag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    label: Option<String>,
}

impl SetChunk {
    /// The mode of the set the chunk belongs to.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The epoch of the set.
    pub fn epoch(&self) -> EpochId {
        self.epoch
    }

    /// The size of the whole set.
    pub fn set_size(&self) -> u64 {
        self.set_size
    }

    /// The digest of the whole set.
    pub fn set_digest(&self) -> SetDigest {
        self.set_digest
    }

    /// The chunk's index.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The number of chunks of the set.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The number of elements in this chunk.
    pub fn len(&self) -> usize {
        self.elements.len()
    }

    /// Whether this chunk has no elements.
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    /// The message as JSON.
    ///
    /// # Errors
    /// Only those of the JSON writer.
    pub fn to_json(&self) -> Result<Vec<u8>, WireError> {
        to_json(self, "set_chunk")
    }

    /// The chunk from untrusted JSON `bytes`, checked under `limits`.
    ///
    /// # Errors
    /// The first field that is malformed, too long, or inconsistent with the chunk's place.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Self, WireError> {
        SetChunk::from_raw(parse_raw(bytes, limits, "set_chunk")?, limits)
    }

    fn from_raw(raw: RawChunk, limits: &Limits) -> Result<Self, WireError> {
        check_version(raw.version, "set_chunk")?;
        let mode = Mode::parse(&raw.mode, "set_chunk.mode")?;
        let epoch = EpochId::from_hex(&raw.epoch, "set_chunk.epoch")?;
        if usize::try_from(raw.set_size).map_or(true, |n| n > limits.max_set_elements) {
            return Err(WireError::new(
                "set_chunk.set_size",
                format!("found {}; at most {} are accepted", raw.set_size, limits.max_set_elements),
            ));
        }
        let set_digest = SetDigest(hex32(&raw.set_digest, "set_chunk.set_digest", "a set digest")?);
        if raw.total == 0 || raw.index >= raw.total {
            return Err(WireError::new(
                "set_chunk.index",
                format!(
                    "found chunk {} of {}; expected an index below a non-zero total",
                    raw.index, raw.total
                ),
            ));
        }
        let chain = hex32(&raw.chain, "set_chunk.chain", "a chain value")?;
        check_count(raw.elements.len(), limits.max_chunk_elements, "set_chunk.elements")?;
        let fits =
            raw.first.checked_add(raw.elements.len() as u64).is_some_and(|end| end <= raw.set_size);
        if !fits {
            return Err(WireError::new(
                "set_chunk.first",
                format!(
                    "found {} elements from element {}; the set has {}",
                    raw.elements.len(),
                    raw.first,
                    raw.set_size
                ),
            ));
        }
        let elements = raw
            .elements
            .iter()
            .enumerate()
            .map(|(i, e)| element_of(e, mode, limits, &format!("set_chunk.elements[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(SetChunk {
            mode,
            epoch,
            set_size: raw.set_size,
            set_digest,
            index: raw.index,
            total: raw.total,
            first: raw.first,
            chain,
            elements,
        })
    }

    fn to_raw(&self) -> RawChunk {
        RawChunk {
            version: PROTOCOL_VERSION,
            mode: self.mode.name().to_owned(),
            epoch: self.epoch.to_string(),
            set_size: self.set_size,
            set_digest: self.set_digest.to_string(),
            index: self.index,
            total: self.total,
            first: self.first,
            chain: hex::encode(self.chain),
            elements: self
                .elements
                .iter()
                .map(|e| RawElement { tag: b64(&e.tag.0), label: e.label.as_deref().map(b64) })
                .collect(),
        }
    }
}

fn element_of(
    e: &RawElement,
    mode: Mode,
    limits: &Limits,
    field: &str,
) -> Result<PreparedElement, WireError> {
    let tag = Tag(fixed::<TAG_LEN>(&e.tag, &format!("{field}.tag"), "tag")?);
    let label_field = format!("{field}.label");
    let label = match (mode, &e.label) {
        (Mode::Cardinality, None) => None,
        (Mode::Cardinality, Some(_)) => {
            return Err(WireError::new(label_field, "found a label; cardinality mode has none"));
        }
        (Mode::Labelled, None) => {
            return Err(WireError::new(label_field, "missing; labelled mode has one per element"));
        }
        (Mode::Labelled, Some(text)) => {
            let bytes = unb64(text, &label_field)?;
            let overhead = NONCE_LEN + AEAD_TAG_LEN;
            let body = bytes.len().checked_sub(overhead);
            if bytes.len() > limits.max_label_bytes
                || body.is_none_or(|b| b == 0 || b % LABEL_PAD != 0)
            {
                return Err(WireError::new(
                    label_field,
                    format!(
                        "found {} bytes; expected {overhead} plus a non-zero multiple of {LABEL_PAD}, at most {}",
                        bytes.len(),
                        limits.max_label_bytes
                    ),
                ));
            }
            Some(bytes)
        }
    };
    Ok(PreparedElement { tag, label })
}

/// Serde support for tags (standard base64 of 16 bytes).
impl Serialize for Tag {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&b64(&self.0))
    }
}

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        fixed::<TAG_LEN>(&text, "tag", "tag").map(Tag).map_err(serde::de::Error::custom)
    }
}

macro_rules! serde_via_raw {
    ($ty:ty, $raw:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.to_raw().serialize(s)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = <$raw>::deserialize(d)?;
                <$ty>::from_raw(raw, &Limits::PROTOCOL).map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_via_raw!(QueryMessage, RawQuery);
serde_via_raw!(EvaluationMessage, RawEvaluation);
serde_via_raw!(SetChunk, RawChunk);
