//! Evidence with a chain of custody, without a database.
//!
//! - [`keys`] — the node's master age key (`node.age.key`): packages addressed to the node
//!   are encrypted to it, and it wraps the data key of every blob.
//! - [`blob`] — the encrypted, content-addressed blob store and streaming ingest: a file is
//!   read once, its SHA-256 computed while it is encrypted (age, ChaCha20-Poly1305 in 64 KiB
//!   chunks) to its own fresh X25519 data key, in constant memory; size and modification time
//!   are compared before and after to detect a file that changes while it is read. Destroying
//!   the wrapped data key makes the blob unrecoverable (crypto-shredding).
//! - [`custody`] — custody events, hash-chained, each recorded by the gate as one ledger entry
//!   holding the event's digest.
//! - [`ustar`] — a strict POSIX ustar reader and writer (every header, padding and end block
//!   checked, so that no byte of a package goes unchecked).
//! - [`package`] — evidence packages: `manifest.json` (RFC 8785), its Ed25519 signature, the
//!   payloads, a CASE/UCO case file, the custody events with their ledger inclusion proofs and
//!   the signed checkpoint they prove against; optionally age-encrypted to the recipient.
//!   Offline verification reports precisely what is wrong. Format: `docs/package-format.md`.
//! - [`s3`] — the blob store in an S3-compatible bucket (`object_store`).
//! - [`case_uco`] — the CASE/UCO JSON-LD export.
#![warn(missing_docs)]

pub mod blob;
pub mod case_uco;
pub mod custody;
pub mod keys;
pub mod package;
pub mod s3;
pub mod ustar;

pub use blob::{BlobRef, BlobStore, BlobWrite, Ingested, LocalBlobStore};
pub use custody::{CustodyEvent, CustodyKind};
pub use keys::MasterKey;

/// Errors of ingest, the blob store and keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// A file system operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The path is a directory or another non-regular file.
    #[error("{path}: not a regular file ({kind}); give the files inside it one by one")]
    NotAFile {
        /// The path.
        path: std::path::PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// The file changed while it was read; nothing was stored.
    #[error(
        "{path} changed while it was read ({detail}); nothing was stored. Acquire it again once it no longer changes (for a live file, take a snapshot first)"
    )]
    FileChanged {
        /// The path.
        path: std::path::PathBuf,
        /// What differed.
        detail: String,
    },
    /// A key file is missing or unusable.
    #[error("key {path}: {detail}")]
    Key {
        /// The key file.
        path: std::path::PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Encryption or decryption failed (a wrong or destroyed key, or a damaged blob).
    #[error("{0}")]
    Crypto(String),
}

/// Returns `n` random bytes from the operating system, hex-encoded.
///
/// # Errors
/// If the system has no randomness source.
pub fn random_hex(n: usize) -> Result<String, EvidenceError> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf)
        .map_err(|e| EvidenceError::Crypto(format!("no system randomness: {e}")))?;
    Ok(hex::encode(buf))
}
