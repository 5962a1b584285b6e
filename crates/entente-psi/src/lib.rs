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
//! ```
//! use entente_psi::*;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # use rand::SeedableRng;
//! # let mut rng = rand::rngs::StdRng::seed_from_u64(7);
//! let rules = EmailRules::default();
//! let limits = Limits::default();
//!
//! // The holder (DE), once per epoch: a key, its published public key, the prepared set.
//! let key = HolderKey::generate(&mut rng)?;
//! let published = key.public_key().to_bytes();
//! let holdings = selector::parse_file("de.txt", "ip:203.0.113.7\nransom@mail.example\n", rules)?;
//! let label = Label { case_reference: "DE-2026-0042".into(), contact: "desk@bka.example".into() };
//! let entries = group_holdings(holdings.into_iter().map(|s| (s, label.clone())));
//! let set = key.prepare_set(Mode::Labelled, &entries, 10_000, &mut rng, |_done, _total| {})?;
//!
//! // The asker (NL): her selectors, blinded and padded to 8.
//! let holder = PublicKey::from_bytes(&published)?;
//! let mine = [selector::parse_line("203.0.113.7", rules)?, selector::parse_line("198.51.100.1", rules)?];
//! let (query, message) = LabelledQuery::new(&holder, &mine, 8, &limits, &mut rng)?;
//!
//! // The holder evaluates; the messages travel as JSON.
//! let message = QueryMessage::decode(&message.to_json()?, &limits)?;
//! let evaluation = key.evaluate(&set, &message, &limits, &mut rng)?;
//! let evaluation = EvaluationMessage::decode(&evaluation.to_json()?, &limits)?;
//! let mut receiver = SetReceiver::new();
//! for chunk in set.chunks(1000) {
//!     receiver.receive(SetChunk::decode(&chunk.to_json()?, &limits)?, &limits)?;
//! }
//!
//! // The asker verifies, finalises and intersects.
//! let matches = query.finish(&holder, &evaluation, &receiver.finish()?)?;
//! assert_eq!(matches.len(), 1);
//! assert_eq!(matches[0].selector.to_string(), "ip:203.0.113.7");
//! assert_eq!(matches[0].labels, [label]);
//! # Ok(())
//! # }
//! ```
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
pub use set::{
    HolderEntry, PreparedElement, PreparedSet, SetDigest, SetReceiver, SetSummary, group_holdings,
};
pub use wire::{EvaluationMessage, Limits, Mode, PROTOCOL_VERSION, QueryMessage, SetChunk};
