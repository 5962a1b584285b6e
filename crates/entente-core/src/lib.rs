//! Entente's domain core: parties, roles, actors, gate actions and decisions, ledger entries,
//! the Merkle tree arithmetic of the ledger and its signed checkpoints.
//!
//! This crate is pure. It does no I/O, reads no clock and holds no key material beyond what
//! callers pass in: time arrives as an argument (`now`), signing goes through
//! [`ledger::CheckpointSigner`]. Storage, networking and the process clock live in
//! `entente-store`, `entente-node` and `entente-cli`.
//!
//! Specifications implemented here:
//! - RFC 6962 / RFC 9162 §2.1 Merkle tree hashing (through `tlog_tiles`, a port of Go's
//!   `golang.org/x/mod/sumdb/tlog`), with the stored-hash numbering used by tlog-tiles;
//! - C2SP `tlog-checkpoint` and `signed-note` (Ed25519) for checkpoints;
//! - C2SP `tlog-tiles` entry bundles;
//! - RFC 8785 (JCS) canonical JSON for ledger entries;
//! - the Budapest Convention (ETS 185) Arts 2-11 offence lexicon and its dual-criminality
//!   test (Arts 24(1)(a), 25(5)), in [`lexicon`].
#![warn(missing_docs)]

pub mod action;
pub mod canonical;
pub mod decision;
pub mod digest;
pub mod domain;
pub mod ids;
pub mod ledger;
pub mod lexicon;
pub mod policy;
pub mod source_error;
pub mod stamp;
pub mod witness;

pub use action::{Action, Actor, Subject, SubjectKind};
pub use decision::{Decision, Obligation, Outcome};
pub use ids::{CaseId, CollectionId, DatumId, ItemId, PartyCode, RequestId, Role};
pub use stamp::Stamp;
