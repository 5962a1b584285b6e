//! Entente's storage and its gate.
//!
//! One [`Store`] over SQLite (the embedded default, a file in the node's data directory) or
//! PostgreSQL (production), chosen by URL; the SQL is shared and the few dialect differences
//! live in [`Backend`] and in the per-backend migrations under `migrations/`.
//!
//! The [`gate`] is the only way to change state: it decides (pure policy from
//! `entente-core`), applies the effect and appends the ledger entry, its tree hashes, a
//! signed checkpoint and any outbox messages in one database transaction. This crate exposes
//! no other write path: the `Store` methods that are public only read.
#![warn(missing_docs)]

pub mod cases;
pub mod evidence;
mod federation;
pub mod flows;
pub mod gate;
pub mod incidents;
pub mod intel;
pub mod ledger_reads;
pub mod maintenance;
pub mod packages;
pub mod peers;
mod principal;
pub mod psi;
pub mod redress;
pub mod reports;
pub mod requests;
mod schema;
mod store;
pub mod users;
pub mod verify;

#[cfg(test)]
mod tests;

pub use cases::{CaseMirror, CaseStatus, TimelineEntry};
pub use evidence::{ChainEvent, EvidenceRecord, NewEvidence, ReceivedEvidence, TOOL};
pub use federation::{
    OutboxSummary, PeerRecord, PendingMessage, VerifiedEnvelope, verify_envelope,
};
pub use flows::OutboxMessage;
pub use gate::{Gate, GateCommand, GateError, PayloadDigests, Verdict};
pub use incidents::{NotificationRecord, notice_of};
pub use intel::{
    IntelCollection, IntelPage, IntelQuery, IntelRow, IntelStatus, IntelView, MAX_PAGE,
    StatusDetail, governing_agreement,
};
pub use packages::{MAX_PACKAGE_BYTES, PackageRecord};
pub use principal::{DataDirLock, LOCK_FILE, Principal};
pub use redress::{
    ANSWER_DAYS, Complaint, ComplaintFlow, ComplaintItem, DEADLINE_BASIS, DECISIONS,
};
pub use store::{Backend, CaseRecord, Store, StoreError, UserRecord, drop_schema, fresh_schema};
