//! An Entente node: its configuration and identity on disk, and its HTTP server.
//!
//! - [`config`]: `entente.toml`, parsed with errors that name the file, line, column and key;
//! - [`identity`]: `entente init` (Ed25519 key in PKCS#8 PEM, self-signed X.509 certificate,
//!   configuration, the ledger's first entry) and loading a node from its data directory;
//! - [`server`]: the HTTP API (axum): RFC 9457 problem details, OpenAPI 3.1 document,
//!   Prometheus metrics, C2SP tlog-tiles serving of the ledger;
//! - [`federation`]: mutual TLS with pinned partner certificates, signed envelopes in,
//!   the outbox delivered out with retries and signed acknowledgements;
//! - [`taxii`]: the TAXII 2.1 server (threat intelligence under TLP 2.0, through the gate);
//! - [`vault`]: the node's evidence master key and blob store (local, or S3-compatible);
//! - [`audit`]: verifying a running node from its checkpoint and tiles alone, as an outside
//!   auditor would.
//!
//! Every endpoint that acts goes through [`entente_store::Gate`]; this crate has no database
//! write path of its own.
#![warn(missing_docs)]

mod api;
pub mod audit;
pub mod config;
pub mod federation;
pub mod identity;
pub mod server;
pub mod taxii;
pub mod transfer;
pub mod vault;
pub mod witness;

pub use identity::{InitOptions, Node, NodeError};
pub use vault::Vault;
