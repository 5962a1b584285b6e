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
//! - [`packages`]: evidence as a capability — files taken in, signed packages built for a
//!   partner and offered to it, verified and imported, retention;
//! - [`taxii_client`]: a TAXII 2.1 client, and a pinned partner's TAXII server called as this
//!   node (pushing only what the gate released);
//! - [`psi`]: deconfliction keys rotated with the set prepared outside the gate's writer, on
//!   the agreements' schedule in `entente serve`, and sent to partners pinned since;
//! - [`refusals`]: refusals of unauthenticated callers counted per source and window, and
//!   recorded in aggregate (never one entry per call, never the caller's text);
//! - [`maintenance`]: backups, verified restores and the sweep of crash leftovers;
//!   [`status`]: the operator's view (`entente status`, gauges on `/metrics`);
//! - [`audit`]: verifying a running node from its checkpoint and tiles alone, as an outside
//!   auditor would.
//!
//! Every endpoint that acts goes through [`entente_store::Gate`]; this crate has no database
//! write path of its own. The node's signing key and TLS identity stay inside this crate:
//! outside it, [`Node::verifying_key`] is the public key, and what is signed or sent under
//! them is what a gate-recorded action produced (packages, the outbox through
//! [`federation::seal_pending`] and [`federation::PeerLink`], intelligence released through
//! [`taxii_client::PeerTaxii`]).
#![warn(missing_docs)]

mod api;
pub mod audit;
pub mod config;
mod conns;
pub mod federation;
pub mod hold;
pub mod identity;
pub mod maintenance;
pub mod packages;
pub mod psi;
pub mod refusals;
pub mod reports;
pub mod server;
pub mod status;
pub mod taxii;
pub mod taxii_client;
pub mod tls;
pub mod transfer;
mod ui;
pub mod vault;
pub mod witness;

pub use identity::{InitOptions, Node, NodeError};

/// For Entente's own tests only (the `danger` feature, enabled by dev-dependencies, never in
/// the shipped binary): what bypasses the gate, under a name a reviewer greps for.
#[cfg(feature = "danger")]
pub mod danger {
    use crate::federation::{FederationError, TlsIdentity};
    use std::path::Path;

    /// A TLS client configuration presenting the certificate and key of the node in
    /// `data_dir` and trusting exactly `pinned_pem`: a test acting as that partner node
    /// (hostile clients, envelopes of its own making) without going through its gate.
    ///
    /// # Errors
    /// Unreadable files, a pin or key rustls cannot use.
    pub fn client_config_as(
        data_dir: &Path,
        pinned_pem: &str,
    ) -> Result<rustls::ClientConfig, FederationError> {
        TlsIdentity::load(data_dir)?.client_config(pinned_pem)
    }
}
pub use vault::Vault;
