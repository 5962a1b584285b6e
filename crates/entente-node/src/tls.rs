//! TLS of both listeners: the crypto provider (hybrid post-quantum key exchange preferred),
//! the user-facing API's server configuration, and the count of handshakes by negotiated
//! group that `/metrics` exports.
//!
//! - **Key exchange.** rustls with aws-lc-rs and its `prefer-post-quantum` feature: the
//!   hybrid `X25519MLKEM768` (ML-KEM-768, FIPS 203, combined with X25519) is offered and
//!   chosen first, on the federation (node to node, both sides Entente) and on the API. A
//!   client that offers only classical groups (OpenSSL 3.0, older browsers) still gets
//!   X25519 or P-256: the hybrid is preferred, not required. What stays classical and the
//!   migration path are in `docs/operations.md`.
//! - **The API over HTTPS.** TAXII 2.1 requires HTTPS (§1.6.1). `serve --tls` (or
//!   `[api] tls = true`) serves the API, TAXII and the web interface over TLS with
//!   the configured certificate chain and key (`[api] cert`, `[api] key`, PEM), or with the
//!   node's own certificate when none is configured. Plain HTTP is served on loopback only,
//!   unless `[api] plain_http_beyond_loopback = true` says that a TLS-terminating proxy is in
//!   front.

use crate::config::ApiConfig;
use crate::identity::{CERT_FILE, KEY_FILE};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The crypto provider of every TLS connection the node makes or accepts: aws-lc-rs, its
/// key-exchange groups in rustls' order with `prefer-post-quantum` (X25519MLKEM768 first).
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// What cannot be served over TLS, or not without it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file cannot be read or holds no usable PEM.
    #[error("{path}: {detail}")]
    File {
        /// The file.
        path: String,
        /// What is wrong with it.
        detail: String,
    },
    /// rustls refused the certificate and key.
    #[error("the API's certificate and key cannot be used for TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// Only one of `[api] cert` and `[api] key` is set.
    #[error(
        "[api] sets {set} but not {missing}: give both (a PEM certificate chain and its PEM \
         key), or neither to serve with the node's own certificate"
    )]
    HalfConfigured {
        /// The field that is set.
        set: &'static str,
        /// The field that is not.
        missing: &'static str,
    },
    /// Plain HTTP on an address beyond loopback without the operator saying why.
    #[error(
        "{addr} is not a loopback address and the API would be plain HTTP: run `entente serve \
         --tls` (or set `[api] tls = true`) to serve HTTPS, or set `[api] \
         plain_http_beyond_loopback = true` if a TLS-terminating proxy is in front"
    )]
    PlainBeyondLoopback {
        /// The listen address.
        addr: SocketAddr,
    },
}

/// Refuses plain HTTP beyond loopback unless configured.
///
/// # Errors
/// [`TlsError::PlainBeyondLoopback`].
pub fn check_plain(addr: SocketAddr, tls: bool, config: &ApiConfig) -> Result<(), TlsError> {
    if tls || addr.ip().is_loopback() || config.plain_http_beyond_loopback {
        Ok(())
    } else {
        Err(TlsError::PlainBeyondLoopback { addr })
    }
}

fn resolve(data_dir: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() { p.to_owned() } else { data_dir.join(p) }
}

/// The certificate chain and key files the API serves with: `[api] cert`/`key` (relative to
/// the data directory unless absolute), or the node's own.
///
/// # Errors
/// [`TlsError::HalfConfigured`].
pub fn api_identity_files(
    data_dir: &Path,
    config: &ApiConfig,
) -> Result<(PathBuf, PathBuf), TlsError> {
    match (&config.cert, &config.key) {
        (Some(c), Some(k)) => Ok((resolve(data_dir, c), resolve(data_dir, k))),
        (None, None) => Ok((data_dir.join(CERT_FILE), data_dir.join(KEY_FILE))),
        (Some(_), None) => Err(TlsError::HalfConfigured { set: "`cert`", missing: "`key`" }),
        (None, Some(_)) => Err(TlsError::HalfConfigured { set: "`key`", missing: "`cert`" }),
    }
}

/// The API's server configuration: rustls' safe default versions (TLS 1.3, and 1.2 where
/// built in), no client certificate (users present
/// their token), ALPN `http/1.1`.
///
/// # Errors
/// Unreadable or unusable certificate or key.
pub(crate) fn api_server_config(
    data_dir: &Path,
    config: &ApiConfig,
) -> Result<rustls::ServerConfig, TlsError> {
    let (cert_path, key_path) = api_identity_files(data_dir, config)?;
    let file_err =
        |p: &Path, detail: String| TlsError::File { path: p.display().to_string(), detail };
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_err(&cert_path, e.to_string()))?;
    if certs.is_empty() {
        return Err(file_err(&cert_path, "holds no PEM certificate".to_owned()));
    }
    let key =
        PrivateKeyDer::from_pem_file(&key_path).map_err(|e| file_err(&key_path, e.to_string()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The API's TLS configuration, read once: loading it before the node starts checks that
/// the certificate and key load and fit together, and the server then uses this one.
#[derive(Clone, Debug)]
pub struct ApiTls(pub(crate) Arc<rustls::ServerConfig>);

/// Reads the API's certificate and key ([`api_identity_files`]) into an [`ApiTls`].
///
/// # Errors
/// As [`api_server_config`].
pub fn api_tls(data_dir: &Path, config: &ApiConfig) -> Result<ApiTls, TlsError> {
    api_server_config(data_dir, config).map(|c| ApiTls(Arc::new(c)))
}

/// Which listener a handshake was on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Endpoint {
    /// The user-facing API (`serve --tls`).
    Api,
    /// The federation port (mutual TLS).
    Federation,
}

impl Endpoint {
    fn label(self) -> &'static str {
        match self {
            Endpoint::Api => "api",
            Endpoint::Federation => "federation",
        }
    }
}

/// Completed server-side handshakes by listener and negotiated key-exchange group, since the
/// process started.
#[derive(Debug, Default)]
pub(crate) struct Handshakes {
    counts: Mutex<BTreeMap<(Endpoint, String), u64>>,
}

impl Handshakes {
    /// Counts a completed handshake of `conn` on `endpoint`.
    pub(crate) fn note(&self, endpoint: Endpoint, conn: &rustls::ServerConnection) {
        let group = conn
            .negotiated_key_exchange_group()
            .map_or_else(|| "none".to_owned(), |g| format!("{:?}", g.name()));
        tracing::debug!(endpoint = endpoint.label(), %group, "TLS handshake completed");
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *counts.entry((endpoint, group)).or_insert(0) += 1;
    }

    /// The counts in the Prometheus text exposition format.
    pub(crate) fn prometheus(&self) -> String {
        let counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut text = String::from(
            "# HELP entente_tls_handshakes_total Completed TLS handshakes by listener and negotiated key-exchange group.\n\
             # TYPE entente_tls_handshakes_total counter\n",
        );
        for ((endpoint, group), n) in counts.iter() {
            text.push_str(&format!(
                "entente_tls_handshakes_total{{endpoint=\"{}\",group=\"{group}\"}} {n}\n",
                endpoint.label()
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hybrid_post_quantum_group_is_offered_first() {
        let groups: Vec<_> = provider().kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(groups.first(), Some(&rustls::NamedGroup::X25519MLKEM768), "{groups:?}");
        // Classical groups stay for clients that offer nothing else.
        assert!(groups.contains(&rustls::NamedGroup::X25519), "{groups:?}");
    }

    #[test]
    fn plain_http_is_refused_beyond_loopback_unless_configured() {
        let cfg = ApiConfig::default();
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let lo6: SocketAddr = "[::1]:8080".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(check_plain(lo, false, &cfg).is_ok());
        assert!(check_plain(lo6, false, &cfg).is_ok());
        assert!(check_plain(any, true, &cfg).is_ok());
        let err = check_plain(any, false, &cfg).unwrap_err().to_string();
        assert!(err.contains("0.0.0.0:8080") && err.contains("--tls"), "{err}");
        let proxied = ApiConfig { plain_http_beyond_loopback: true, ..ApiConfig::default() };
        assert!(check_plain(any, false, &proxied).is_ok());
    }

    #[test]
    fn a_certificate_without_its_key_is_named() {
        let cfg = ApiConfig { cert: Some("api.pem".into()), ..ApiConfig::default() };
        let err = api_identity_files(Path::new("/d"), &cfg).unwrap_err().to_string();
        assert!(err.contains("`cert`") && err.contains("`key`"), "{err}");
        let both = ApiConfig {
            cert: Some("api.pem".into()),
            key: Some("/etc/k.pem".into()),
            ..ApiConfig::default()
        };
        let (c, k) = api_identity_files(Path::new("/d"), &both).unwrap();
        assert_eq!((c.as_path(), k.as_path()), (Path::new("/d/api.pem"), Path::new("/etc/k.pem")));
        let (c, _) = api_identity_files(Path::new("/d"), &ApiConfig::default()).unwrap();
        assert_eq!(c, Path::new("/d").join(CERT_FILE));
    }

    #[test]
    fn unreadable_and_empty_pem_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.pem"), "not a certificate\n").unwrap();
        std::fs::write(dir.path().join("k.pem"), "").unwrap();
        let cfg = ApiConfig {
            cert: Some("c.pem".into()),
            key: Some("k.pem".into()),
            ..ApiConfig::default()
        };
        let err = api_server_config(dir.path(), &cfg).unwrap_err().to_string();
        assert!(err.contains("c.pem") && err.contains("no PEM certificate"), "{err}");
        let missing = ApiConfig { cert: Some("nope.pem".into()), ..cfg };
        let err = api_server_config(dir.path(), &missing).unwrap_err().to_string();
        assert!(err.contains("nope.pem"), "{err}");
    }
}
