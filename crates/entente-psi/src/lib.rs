//! Private set intersection for deconfliction: before a formal request, an asker learns
//! whether a partner (the holder) holds anything on her selectors, without showing them, and
//! the holder shows nothing of its holdings but their number.
//!
//! The protocol is built on the RFC 9497 OPRF in verifiable mode (VOPRF), ciphersuite
//! ristretto255-SHA512, through the `voprf` crate: the holder PRFs its own set once per key
//! epoch ([`HolderKey::prepare_set`], cached as a [`PreparedSet`] and sent in
//! [`SetChunk`]s); an asker blinds her selectors, padded to a fixed size
//! ([`LabelledQuery::new`], [`CardinalityQuery::new`]); the holder evaluates them and proves it
//! used its published key ([`HolderKey::evaluate`]); the asker verifies, finalises and
//! intersects locally ([`LabelledQuery::finish`] → matches with their labels,
//! [`CardinalityQuery::finish`] → a count). `docs/psi.md` says what each side learns and
//! what the protocol does not defend against.
//!
//! Selectors are normalised before they are hashed, so the same selector matches however it
//! is written: see [`selector`].
//!
//! This crate is pure. It does no I/O, reads no clock, starts no thread and reads no
//! environment: randomness comes from the caller's RNG (`rand_core` 0.6, re-exported), bytes
//! from and to the caller. Where the messages travel, who may ask how often, and where keys
//! are stored are the node's business.
//!
//! Specifications implemented here:
//! - RFC 9497 VOPRF (ristretto255-SHA512), through `voprf`; RFC 9380 hash-to-curve;
//! - RFC 5869 HKDF-SHA256 for tags and label keys; XChaCha20-Poly1305
//!   (draft-irtf-cfrg-xchacha, RFC 8439) for labels;
//! - for selectors: RFC 5952 IPv6 text, UTS #46 / IDNA, the WHATWG URL standard, ITU-T E.164,
//!   Bitcoin base58check, BIP-173/BIP-350 segwit addresses, EIP-55.
#![warn(missing_docs)]

pub mod asker;
mod derive;
pub mod error;
mod holder;
pub mod key;
pub mod selector;
pub mod set;
pub mod wire;

#[cfg(test)]
mod tests;

pub use asker::{CardinalityQuery, LabelledQuery, Match};
pub use derive::{LABEL_PAD, Label, TAG_LEN, Tag};
pub use error::{PsiError, WireError};
pub use key::{EpochId, HolderKey, PublicKey};
pub use rand_core;
pub use selector::{EmailRules, Selector, SelectorKind};
pub use set::{HolderEntry, PreparedElement, PreparedSet, SetDigest, SetReceiver, group_holdings};
pub use wire::{EvaluationMessage, Limits, Mode, PROTOCOL_VERSION, QueryMessage, SetChunk};
