//! Federation between nodes: mutual TLS with pinned certificates, signed envelopes in,
//! the outbox delivered out.
//!
//! - **Trust.** A partner is trusted only through its pinned certificate (`entente peer add`):
//!   the TLS layer proves that the caller holds the key of the certificate it presents (any
//!   self-signed certificate within its validity); the endpoint then looks the certificate up
//!   among the pins and refuses, and records, anything else. As a client this node accepts
//!   only the exact pinned certificate of the partner it calls. The node's certificate and
//!   key are those of `entente init`: the Ed25519 key that signs the ledger also signs
//!   envelopes and acknowledgements.
//! - **In.** `POST /federation/v1/envelopes` takes a batch of envelopes from one partner; each
//!   is checked (sender = pinned party, recipient, payload digest, signature, freshness), then
//!   applied by the gate exactly once and in the sender's order; the answer is an
//!   acknowledgement signed by this node. A pinned partner's batch refused by a check is
//!   recorded in the ledger with the check that failed and answered with an RFC 9457 problem;
//!   refusals that reach no decision are counted per source and recorded in aggregate.
//! - **Out.** [`Deliverer`] sends what the gate wrote to the outbox, in sequence order per
//!   partner, with exponential backoff and jitter while a partner is unreachable, and marks
//!   messages delivered only on a verified, recorded acknowledgement.
//! - **Hostile clients.** TLS handshakes and request headers have deadlines (`[limits]`),
//!   bodies have a size limit and a read deadline. Handshakes under way are bounded per
//!   address and in total, the oldest giving way to a newcomer; a completed connection counts
//!   in the partners' budget when its certificate is pinned and in the unpinned budget
//!   otherwise, so unpinned clients never starve a partner. Refusals that reach no decision
//!   (an unpinned client, a sequence gap or reuse, a body over the limit) are counted per
//!   source and recorded in aggregate (`refusals.record`), never one entry per attempt.

use crate::conns::Registry;
use crate::identity::{CERT_FILE, KEY_FILE, Node};
use crate::tls::provider;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use ed25519_dalek::VerifyingKey;
use entente_core::PartyCode;
use entente_core::canonical::sha256_tagged;
use entente_store::Principal;
use entente_store::{GateError, PeerRecord, Verdict, VerifiedEnvelope};
use entente_wire::envelope::{Ack, AckItem, AckStatus, Batch, Envelope, EnvelopeError};
use jiff::{SignedDuration, Timestamp};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use serde::Deserialize;
use serde_json::json;
use sha2::Digest as _;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Path of the envelope endpoint.
pub const ENVELOPES_PATH: &str = "/federation/v1/envelopes";
/// Largest envelope batch body accepted (bytes).
pub const MAX_BATCH_BODY: usize = 16 << 20;
/// Most envelopes in one batch.
pub use entente_wire::MAX_BATCH;
/// Deadline for a request's body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// A federation failure outside the envelope checks (files, TLS set-up, transport).
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// A certificate or key file that cannot be used.
    #[error("{path}: {detail}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// A certificate that cannot be pinned.
    #[error("certificate: {0}")]
    Certificate(String),
    /// TLS configuration.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// Transport to a partner.
    #[error("delivery to {party}: {detail}")]
    Delivery {
        /// The partner.
        party: PartyCode,
        /// What went wrong.
        detail: String,
    },
    /// The gate refused or failed.
    #[error(transparent)]
    Gate(#[from] GateError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] entente_store::StoreError),
}

/// What is pinned of a partner's certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// The certificate, PEM.
    pub pem: String,
    /// SHA-256 of its DER, hex.
    pub sha256: String,
    /// The Ed25519 key inside it, hex.
    pub signing_key: String,
    /// Its subject.
    pub subject: String,
    /// Start of validity (RFC 3339).
    pub not_before: String,
    /// End of validity (RFC 3339).
    pub not_after: String,
}

/// Reads a node certificate: PEM, X.509, an Ed25519 key (the kind `entente init` makes).
///
/// # Errors
/// Not PEM, not X.509, or not an Ed25519 key.
pub fn cert_info(pem: &str) -> Result<CertInfo, FederationError> {
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
        FederationError::Certificate(format!(
            "not a PEM certificate (expected `-----BEGIN CERTIFICATE-----`): {e}"
        ))
    })?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| FederationError::Certificate(format!("not an X.509 certificate: {e}")))?;
    let spki = cert.public_key();
    if spki.algorithm.algorithm.to_id_string() != "1.3.101.112" {
        return Err(FederationError::Certificate(format!(
            "the certificate's key is {}, not Ed25519 (1.3.101.112) as node keys are",
            spki.algorithm.algorithm.to_id_string()
        )));
    }
    let key = spki.subject_public_key.data.as_ref();
    if key.len() != 32 {
        return Err(FederationError::Certificate("Ed25519 key is not 32 bytes".into()));
    }
    Ok(CertInfo {
        pem: pem.trim().to_owned() + "\n",
        sha256: hex::encode(sha2::Sha256::digest(der.as_ref())),
        signing_key: hex::encode(key),
        subject: cert.subject().to_string(),
        not_before: rfc3339(cert.validity().not_before.timestamp()),
        not_after: rfc3339(cert.validity().not_after.timestamp()),
    })
}

fn rfc3339(secs: i64) -> String {
    Timestamp::from_second(secs).map(|t| t.to_string()).unwrap_or_else(|_| secs.to_string())
}

/// Checks that a certificate is within its validity at `now`.
fn check_validity(der: &[u8], now: UnixTime) -> Result<(), rustls::Error> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if now < cert.validity().not_before.timestamp() {
        return Err(rustls::Error::InvalidCertificate(CertificateError::NotValidYet));
    }
    if now > cert.validity().not_after.timestamp() {
        return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
    }
    Ok(())
}

/// As a server: a client must present a certificate within its validity and prove it holds
/// its key; which certificates are pinned is checked by the endpoint (so that a refusal can be
/// recorded and explained).
#[derive(Debug)]
struct AnyValidClientCert {
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyValidClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        check_validity(end_entity.as_ref(), now)?;
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// As a client: only the exact pinned certificate of the partner called.
#[derive(Debug)]
struct PinnedServerCert {
    der: Vec<u8>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedServerCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() != self.der.as_slice() {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        check_validity(end_entity.as_ref(), now)?;
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// The node's TLS identity: its certificate and key from `entente init`. Private to this
/// crate: what leaves under it is what the gate released (the outbox, intelligence released
/// to the partner, packages offered to it).
#[derive(Debug)]
pub(crate) struct TlsIdentity {
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl TlsIdentity {
    /// Loads `node.cert.pem` and `node.key.pem` from the data directory.
    ///
    /// # Errors
    /// Missing or unreadable files.
    pub(crate) fn load(data_dir: &Path) -> Result<TlsIdentity, FederationError> {
        let file_err = |p: &Path, e: &dyn std::fmt::Display| FederationError::File {
            path: p.display().to_string(),
            detail: e.to_string(),
        };
        let cert_path = data_dir.join(CERT_FILE);
        let key_path = data_dir.join(KEY_FILE);
        let certs = CertificateDer::pem_file_iter(&cert_path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| file_err(&cert_path, &e))?;
        let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| file_err(&key_path, &e))?;
        Ok(TlsIdentity { certs, key })
    }

    /// The server side: TLS 1.3, client certificate required.
    ///
    /// # Errors
    /// A key rustls cannot use.
    pub(crate) fn server_config(&self) -> Result<rustls::ServerConfig, FederationError> {
        let provider = provider();
        let verifier = AnyValidClientCert { algs: provider.signature_verification_algorithms };
        Ok(rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_single_cert(self.certs.clone(), self.key.clone_key())?)
    }

    /// The client side towards the partner whose certificate is `pinned_pem`.
    ///
    /// # Errors
    /// An unreadable pin or a key rustls cannot use.
    pub(crate) fn client_config(
        &self,
        pinned_pem: &str,
    ) -> Result<rustls::ClientConfig, FederationError> {
        let der = CertificateDer::from_pem_slice(pinned_pem.as_bytes())
            .map_err(|e| FederationError::Certificate(e.to_string()))?;
        let provider = provider();
        let verifier = PinnedServerCert {
            der: der.as_ref().to_vec(),
            algs: provider.signature_verification_algorithms,
        };
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_auth_cert(self.certs.clone(), self.key.clone_key())?)
    }
}

/// The TLS client certificate of a federation connection.
#[derive(Clone, Debug)]
pub(crate) struct PeerConn {
    pub(crate) cert_sha256: String,
    pub(crate) addr: std::net::SocketAddr,
    /// The partner pinned with the certificate when the connection was made.
    pub(crate) pinned: Option<PartyCode>,
}

#[derive(Clone)]
pub(crate) struct FedState {
    pub(crate) node: Node,
    skew: SignedDuration,
}

/// Serves the federation endpoint on `listener` (mutual TLS) until `shutdown` completes.
///
/// # Errors
/// The node's certificate or key cannot be used for TLS.
pub async fn serve(
    node: Node,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), FederationError> {
    let tls = TlsIdentity::load(&node.data_dir)?.server_config()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let skew = SignedDuration::from_secs(i64::from(node.config.clock_skew_secs));
    let limits = fed_limits(&node.config.limits);
    let st_node = node.clone();
    let app = Router::new()
        .route(ENVELOPES_PATH, post(receive))
        .route("/federation/v1/checkpoint", axum::routing::get(checkpoint))
        .route("/federation/v1/consistency", axum::routing::get(consistency))
        .route("/federation/v1/cosignatures", post(cosignature))
        .route("/federation/v1/witnessed", post(witnessed))
        .route(
            &format!("{}/{{sha256}}", crate::transfer::PACKAGES_PATH),
            axum::routing::get(crate::transfer::serve_package),
        )
        .merge(
            crate::taxii::router_for_peers(node.clone())
                .layer(axum::middleware::from_fn(mark_peer)),
        )
        .layer(axum::middleware::from_fn(crate::server::errors_are_problems))
        .layer(axum::middleware::from_fn_with_state(node.clone(), count_refusals))
        .layer(DefaultBodyLimit::max(MAX_BATCH_BODY))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
        .with_state(FedState { node, skew });
    let handshakes = Registry::new(limits.handshakes_per_address, limits.unpinned);
    // Past the handshake, an unpinned certificate's connections count per address too, so one
    // client cannot hold the whole unpinned budget.
    let unpinned = Registry::new(limits.unpinned_per_address, limits.unpinned);
    let partners = Arc::new(tokio::sync::Semaphore::new(limits.partners));
    tokio::pin!(shutdown);
    loop {
        let (tcp, addr) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "federation accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // A handshake holds a place among its address's and all handshakes under way; when
        // they are full, the oldest gives way to the newcomer (a partner's handshake takes
        // milliseconds, a hostile one holds its place until the deadline at most).
        let Some(mut pending) = handshakes.admit(addr.ip()) else {
            tracing::debug!(%addr, "federation connection refused: no handshake place");
            continue;
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let (unpinned, partners) = (unpinned.clone(), partners.clone());
        let node = st_node.clone();
        tokio::spawn(async move {
            let accept = crate::conns::accept_tls(
                &acceptor,
                tcp,
                limits.handshake_timeout,
                &mut pending.evicted,
                addr,
            );
            let Some(stream) = accept.await else { return };
            drop(pending);
            node.handshakes.note(crate::tls::Endpoint::Federation, stream.get_ref().1);
            let Some(cert) = stream.get_ref().1.peer_certificates().and_then(|c| c.first()) else {
                return;
            };
            let cert_sha256 = hex::encode(sha2::Sha256::digest(cert));
            // A pinned partner's connection counts in the partners' budget, any other in the
            // unpinned one: unpinned clients never take a partner's place.
            let pinned = match node.store.peer_by_cert(&cert_sha256).await {
                Ok(p) => p.map(|p| p.party),
                Err(e) => {
                    tracing::error!(error = %e, "peer lookup failed");
                    return;
                }
            };
            let (_partner_slot, mut unpinned_slot) = if pinned.is_some() {
                let Ok(slot) = partners.try_acquire_owned() else {
                    tracing::debug!(%addr, "federation connection refused: the partners' budget is full");
                    return;
                };
                (Some(slot), None)
            } else {
                // Within its address's budget (its own oldest closed to make room) and the
                // unpinned total.
                let Some(slot) = unpinned.admit(addr.ip()) else {
                    tracing::debug!(%addr, "federation connection refused: the unpinned budget is full");
                    return;
                };
                (None, Some(slot))
            };
            let conn = PeerConn { cert_sha256, addr, pinned };
            let svc = hyper_util::service::TowerToHyperService::new(app.layer(Extension(conn)));
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let served = http.serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            let evicted = async {
                match unpinned_slot.as_mut() {
                    Some(slot) => {
                        let _ = (&mut slot.evicted).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                r = served => if let Err(e) = r {
                    tracing::info!(%addr, error = %e, "federation connection closed with an error");
                },
                () = evicted => {
                    tracing::debug!(%addr, "unpinned federation connection closed to make room for another");
                }
            }
        });
    }
}

/// The federation port's deadlines and budgets (`[limits]` in entente.toml).
#[derive(Clone, Copy, Debug)]
struct FedLimits {
    handshake_timeout: Duration,
    header_timeout: Duration,
    handshakes_per_address: usize,
    unpinned: usize,
    unpinned_per_address: usize,
    partners: usize,
}

fn fed_limits(l: &crate::config::LimitsConfig) -> FedLimits {
    use crate::config::LimitsConfig;
    FedLimits {
        handshake_timeout: LimitsConfig::secs(l.handshake_timeout_secs),
        header_timeout: LimitsConfig::secs(l.header_timeout_secs),
        handshakes_per_address: LimitsConfig::count(l.max_handshakes_per_address),
        unpinned: LimitsConfig::count(l.max_unpinned_connections),
        unpinned_per_address: LimitsConfig::count(l.max_unpinned_per_address),
        partners: LimitsConfig::count(l.max_partner_connections),
    }
}

/// An RFC 9457 problem from the federation endpoint.
pub(crate) fn problem(
    status: StatusCode,
    slug: &str,
    title: &str,
    detail: &str,
    ledger_index: Option<u64>,
) -> Response {
    let mut body = json!({
        "type": format!("https://entente.invalid/problems/{slug}"),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    if let Some(i) = ledger_index {
        body["ledger_index"] = json!(i);
    }
    (status, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response()
}

/// A refusal not recorded on its own: the problem, marked so that the port's counting layer
/// counts it for the connection's source (recorded in aggregate, `refusals.record`).
fn refused_unrecorded(status: StatusCode, rule: &str, title: &str, detail: &str) -> Response {
    let slug = rule.trim_start_matches("federation#");
    let mut resp = problem(status, slug, title, detail, None);
    resp.extensions_mut().insert(crate::refusals::Unrecorded(rule.to_owned()));
    resp
}

/// Counts the refusals the gate did not record (unpinned clients, refused batches that
/// never reached a decision), for the connection's source: the pinned partner, else the
/// keyed hash of the address.
async fn count_refusals(
    State(node): State<Node>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let conn = req.extensions().get::<PeerConn>().cloned();
    let route = crate::refusals::route_of(&req);
    let resp = next.run(req).await;
    if let Some(crate::refusals::Unrecorded(rule)) = resp.extensions().get() {
        let source = match conn {
            Some(PeerConn { pinned: Some(p), .. }) => entente_store::peers::RefusalSource::Peer(p),
            Some(c) => node.gate.source(c.addr.ip()),
            None => entente_store::peers::RefusalSource::Others,
        };
        node.refusals.count(source, rule, &route, Timestamp::now());
    }
    resp
}

/// Records a refused batch in the ledger and answers with the problem. From a client that is
/// no pinned partner nothing is recorded on its own: the refusal is counted for its source.
async fn refuse(
    st: &FedState,
    conn: &PeerConn,
    from: Option<&PartyCode>,
    status: StatusCode,
    rule: &str,
    reason: String,
    body_sha256: String,
) -> Response {
    // Recorded as the partner the connection's pinned certificate names, if any.
    let actor = match st.node.store.peer_by_certificate(&conn.cert_sha256).await {
        Ok(Some(p)) => p,
        _ => {
            // Not logged above debug: one line per attempt would be the ledger's flood again.
            tracing::debug!(addr = %conn.addr, rule, "federation batch of an unpinned client refused");
            return refused_unrecorded(status, rule, "Envelope batch refused", &reason);
        }
    };
    let command = entente_store::peers::RejectEnvelope {
        from: from.cloned(),
        cert_sha256: Some(conn.cert_sha256.clone()),
        rule: rule.to_owned(),
        reason: reason.clone(),
        body_sha256,
    };
    tracing::warn!(addr = %conn.addr, rule, %reason, "federation batch refused");
    let index = match st.node.gate.submit(actor, command, Timestamp::now()).await {
        Ok(Verdict::Denied { index, .. } | Verdict::Permitted { index, .. }) => Some(index),
        Err(e) => {
            tracing::error!(error = %e, "could not record a refused federation batch");
            None
        }
    };
    let slug = rule.trim_start_matches("federation#");
    problem(status, slug, "Envelope batch refused", &reason, index)
}

fn status_for(e: &EnvelopeError) -> StatusCode {
    match e {
        EnvelopeError::Signature { .. } => StatusCode::FORBIDDEN,
        EnvelopeError::Recipient { .. } => StatusCode::MISDIRECTED_REQUEST,
        EnvelopeError::Version { .. }
        | EnvelopeError::PayloadDigest { .. }
        | EnvelopeError::Stale { .. }
        | EnvelopeError::Canonical(_) => StatusCode::BAD_REQUEST,
    }
}

async fn receive(
    State(st): State<FedState>,
    Extension(conn): Extension<PeerConn>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    // A body over the limit (or one that broke off) is refused before anything is decided:
    // counted for the connection's source, recorded in aggregate.
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            let status = e.status();
            let rule = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "federation#too-large"
            } else {
                "federation#body"
            };
            let detail = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!("a batch body is at most {MAX_BATCH_BODY} bytes")
            } else {
                e.body_text()
            };
            return refused_unrecorded(status, rule, "Envelope batch refused", &detail);
        }
    };
    let body_sha256 = sha256_tagged(&body);
    let peer = match st.node.store.peer_by_cert(&conn.cert_sha256).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            let reason = format!(
                "the client certificate (SHA-256 {}) is not pinned on node {}; its operator pins partners with `entente peer add`",
                conn.cert_sha256, st.node.config.party
            );
            return refuse(
                &st,
                &conn,
                None,
                StatusCode::FORBIDDEN,
                "federation#unpinned",
                reason,
                body_sha256,
            )
            .await;
        }
        Err(e) => {
            tracing::error!(error = %e, "peer lookup failed");
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Try again later",
                "the node's store is unavailable",
                None,
            );
        }
    };
    let from = Some(&peer.party);
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.starts_with("application/json") {
        let reason = format!("expected Content-Type: application/json, got `{ct}`");
        return refuse(
            &st,
            &conn,
            from,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "federation#media-type",
            reason,
            body_sha256,
        )
        .await;
    }
    let batch: Batch = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            let reason = format!(
                "the body is not an envelope batch {{\"envelopes\": [...]}}: {e} (line {}, column {})",
                e.line(),
                e.column()
            );
            return refuse(
                &st,
                &conn,
                from,
                StatusCode::BAD_REQUEST,
                "federation#malformed",
                reason,
                body_sha256,
            )
            .await;
        }
    };
    if batch.envelopes.is_empty() || batch.envelopes.len() > MAX_BATCH {
        let reason =
            format!("a batch holds 1 to {MAX_BATCH} envelopes, not {}", batch.envelopes.len());
        return refuse(
            &st,
            &conn,
            from,
            StatusCode::BAD_REQUEST,
            "federation#malformed",
            reason,
            body_sha256,
        )
        .await;
    }
    let key = match peer_key(&peer) {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "stored peer key unusable");
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "a stored pin is unusable",
                None,
            );
        }
    };
    let now = Timestamp::now();
    let me = &st.node.config.party;
    for env in &batch.envelopes {
        if env.from != peer.party {
            let reason = format!(
                "envelope {} claims to come from {}, but the connection's certificate is pinned for {}",
                env.id, env.from, peer.party
            );
            return refuse(
                &st,
                &conn,
                from,
                StatusCode::FORBIDDEN,
                "federation#sender",
                reason,
                body_sha256,
            )
            .await;
        }
    }
    // Signatures and digests on both cores (the first failure, in batch order, is reported):
    // each envelope that passes becomes a `VerifiedEnvelope`, the only kind the gate takes.
    let skew = st.skew;
    let me2 = me.clone();
    let cert = conn.cert_sha256.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let check = |envs: Vec<Envelope>| -> Vec<Result<VerifiedEnvelope, EnvelopeError>> {
            envs.into_iter()
                .map(|env| entente_store::verify_envelope(env, &key, &cert, &me2, now, skew))
                .collect()
        };
        let mut envs = batch.envelopes;
        if envs.len() < PARALLEL_FROM {
            return check(envs);
        }
        let second_half = envs.split_off(envs.len() / 2);
        std::thread::scope(|s| {
            let first = s.spawn(|| check(envs));
            let second = check(second_half);
            first.join().map(|mut v| {
                v.extend(second);
                v
            })
        })
        .unwrap_or_default()
    })
    .await;
    let Ok(checked) = checked else {
        return problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the batch could not be checked",
            None,
        );
    };
    if checked.is_empty() {
        return problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the batch could not be checked",
            None,
        );
    }
    let mut commands = Vec::with_capacity(checked.len());
    for c in checked {
        match c {
            Ok(v) => commands.push(v),
            Err(e) => {
                return refuse(
                    &st,
                    &conn,
                    from,
                    status_for(&e),
                    e.rule(),
                    e.to_string(),
                    body_sha256,
                )
                .await;
            }
        }
    }
    let digests: Vec<(String, u64)> =
        commands.iter().map(|v| (v.id().to_owned(), v.seq())).collect();
    let principal = match st.node.store.peer_by_certificate(&conn.cert_sha256).await {
        Ok(Some(p)) => p,
        _ => Principal::anonymous(),
    };
    let results = st.node.gate.receive_many(principal, commands, now).await;
    let mut items = Vec::with_capacity(results.len());
    let mut stop = None;
    for ((id, seq), r) in digests.into_iter().zip(results) {
        let item = match r {
            Ok(Verdict::Permitted { index, .. }) => AckItem {
                id,
                seq,
                status: AckStatus::Applied,
                ledger_index: index,
                replayed: false,
                reason: None,
                next_seq: None,
            },
            Ok(Verdict::Denied { index, decision }) => AckItem {
                id,
                seq,
                status: if decision.rules.iter().any(|r| r.starts_with("federation#")) {
                    AckStatus::Rejected
                } else {
                    AckStatus::Denied
                },
                ledger_index: index,
                replayed: false,
                reason: Some(decision.reason),
                next_seq: None,
            },
            Err(GateError::Replayed(item)) => item,
            // A reused number or a gap ends the acknowledgement (nothing after it was
            // admitted): the sender numbers again, or sends again, from `next_seq`.
            Err(GateError::SendAgain(item)) => {
                items.push(item);
                break;
            }
            Err(e) => {
                stop = Some(e);
                break;
            }
        };
        items.push(item);
    }
    if items.is_empty() {
        let (status, slug, detail) = match stop {
            // A gap, or a sequence number another message used: refused before any decision,
            // counted for the partner and recorded in aggregate.
            Some(GateError::Conflict(d)) => {
                return refused_unrecorded(
                    StatusCode::CONFLICT,
                    "federation#out-of-order",
                    "Envelope batch not applied",
                    &d,
                );
            }
            Some(GateError::Invalid(d)) => (StatusCode::FORBIDDEN, "unpinned", d),
            Some(e) => {
                tracing::error!(error = %e, "applying a federation batch failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the node could not apply the batch; send it again".into(),
                )
            }
            None => (StatusCode::BAD_REQUEST, "malformed", "empty batch".into()),
        };
        return problem(status, slug, "Envelope batch not applied", &detail, None);
    }
    // A batch that starts with a gap applied nothing: still the out-of-order refusal (409,
    // counted for the partner, not recorded one by one), now with the signed acknowledgement
    // that asks the sender to send again from the number expected.
    let gap_only = matches!(items.as_slice(), [i] if i.status == AckStatus::Resend);
    match Ack::seal(&st.node.key, me.clone(), peer.party.clone(), items, Timestamp::now()) {
        Ok(ack) if gap_only => {
            let detail = ack.items[0].reason.clone().unwrap_or_default();
            let body = json!({
                "type": "https://entente.invalid/problems/out-of-order",
                "title": "Envelope batch not applied",
                "status": StatusCode::CONFLICT.as_u16(),
                "detail": detail,
                "ack": ack,
            });
            let mut resp = (
                StatusCode::CONFLICT,
                [(header::CONTENT_TYPE, "application/problem+json")],
                body.to_string(),
            )
                .into_response();
            resp.extensions_mut()
                .insert(crate::refusals::Unrecorded("federation#out-of-order".to_owned()));
            resp
        }
        Ok(ack) => (StatusCode::OK, Json(ack)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot sign an acknowledgement");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "cannot sign the acknowledgement",
                None,
            )
        }
    }
}

/// For the TAXII routes: removes any caller-supplied peer header and sets it to the SHA-256
/// of this connection's client certificate (the TAXII layer then authenticates the partner
/// pinned with it, or answers as to an anonymous caller).
async fn mark_peer(mut req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    req.headers_mut().remove(crate::taxii::PEER_HEADER);
    let cert = req.extensions().get::<PeerConn>().map(|c| c.cert_sha256.clone());
    if let Some(cert) = cert
        && let Ok(v) = axum::http::HeaderValue::from_str(&cert)
    {
        req.headers_mut().insert(crate::taxii::PEER_HEADER, v);
    }
    next.run(req).await
}

/// The pinned partner on this connection, or a refusal (not recorded: reads of public
/// ledger material change nothing).
pub(crate) async fn pinned(st: &FedState, conn: &PeerConn) -> Result<PeerRecord, Response> {
    match st.node.store.peer_by_cert(&conn.cert_sha256).await {
        Ok(Some(p)) => Ok(p),
        // Counted for the connection's source and recorded in aggregate, as on the envelope
        // route: a refusal of an unpinned client on any federation route leaves its trace.
        Ok(None) => Err(refused_unrecorded(
            StatusCode::FORBIDDEN,
            "federation#unpinned",
            "Unknown partner",
            "the client certificate is not pinned on this node",
        )),
        Err(_) => Err(problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Try again later",
            "store unavailable",
            None,
        )),
    }
}

/// This node's latest signed checkpoint, for witnesses.
async fn checkpoint(State(st): State<FedState>, Extension(conn): Extension<PeerConn>) -> Response {
    if let Err(r) = pinned(&st, &conn).await {
        return r;
    }
    match st.node.store.ledger_head().await {
        Ok((_, Some(note))) => {
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response()
        }
        _ => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "No checkpoint",
            "the ledger has no checkpoint yet",
            None,
        ),
    }
}

#[derive(Deserialize)]
struct ConsistencyQuery {
    old: u64,
    new: u64,
}

/// A consistency proof between two sizes of this node's ledger, for witnesses.
async fn consistency(
    State(st): State<FedState>,
    Extension(conn): Extension<PeerConn>,
    q: Result<axum::extract::Query<ConsistencyQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(r) = pinned(&st, &conn).await {
        return r;
    }
    let Ok(axum::extract::Query(q)) = q else {
        return problem(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad query",
            "expected ?old=N&new=M",
            None,
        );
    };
    let size = st.node.store.ledger_head().await.map(|(s, _)| s).unwrap_or(0);
    if q.old == 0 || q.old > q.new || q.new > size {
        let detail = format!("need 0 < old <= new <= {size}");
        return problem(StatusCode::BAD_REQUEST, "bad-request", "Bad sizes", &detail, None);
    }
    match st.node.store.consistency_proof(q.new, q.old).await {
        Ok(proof) => {
            use base64::Engine as _;
            let hashes: Vec<String> =
                proof.iter().map(|h| base64::prelude::BASE64_STANDARD.encode(h.0)).collect();
            Json(json!({"old": q.old, "new": q.new, "hashes": hashes})).into_response()
        }
        Err(e) => problem(StatusCode::BAD_REQUEST, "bad-request", "No proof", &e.to_string(), None),
    }
}

/// A partner's cosignature of one of this node's checkpoints.
async fn cosignature(
    State(st): State<FedState>,
    Extension(conn): Extension<PeerConn>,
    body: Bytes,
) -> Response {
    let peer = match pinned(&st, &conn).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match crate::witness::accept_cosignature(&st.node, &peer, &body) {
        Ok(n) => Json(json!({"cosignatures": n})).into_response(),
        Err(e) => problem(StatusCode::BAD_REQUEST, "cosignature", "Cosignature refused", &e, None),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Witnessed {
    log: PartyCode,
    note: String,
}

/// A checkpoint of a third partner that a partner witnessed, for comparison with this
/// node's own view.
async fn witnessed(
    State(st): State<FedState>,
    Extension(conn): Extension<PeerConn>,
    body: Bytes,
) -> Response {
    let peer = match pinned(&st, &conn).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let w: Witnessed = match serde_json::from_slice(&body) {
        Ok(w) => w,
        Err(e) => {
            let detail = format!("expected {{\"log\": PARTY, \"note\": CHECKPOINT}}: {e}");
            return problem(StatusCode::BAD_REQUEST, "malformed", "Malformed", &detail, None);
        }
    };
    match crate::witness::accept_witnessed(&st.node, &peer, &w.log, w.note.as_bytes()).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => problem(StatusCode::BAD_REQUEST, "witnessed", "Checkpoint refused", &e, None),
    }
}

/// The Ed25519 key pinned for a partner.
pub(crate) fn peer_key(peer: &PeerRecord) -> Result<VerifyingKey, FederationError> {
    let bytes: [u8; 32] = hex::decode(&peer.signing_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| FederationError::Certificate(format!("stored key of {}", peer.party)))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|e| FederationError::Certificate(format!("stored key of {}: {e}", peer.party)))
}

/// Batches at least this long are signed and checked on two threads.
const PARALLEL_FROM: usize = 64;

/// Most envelopes sent in one batch by the deliverer.
pub const DELIVERY_BATCH: u32 = 1000;
/// Most payload bytes sent in one batch by the deliverer (at least one message is sent), well
/// below the receiver's [`MAX_BATCH_BODY`]: large messages (a deconfliction set's chunks) go
/// in several batches.
pub const DELIVERY_BATCH_BYTES: usize = 6 << 20;
/// Idle polling interval of the outbox.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// First retry delay after a failed delivery; doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest retry delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Delivery state of one partner.
#[derive(Debug, Default)]
struct PeerState {
    failures: u32,
    next_attempt: Option<tokio::time::Instant>,
    client: Option<(String, reqwest::Client)>,
}

/// Sends the outbox to partners: in sequence order per partner, retried with exponential
/// backoff and jitter, marked delivered only on a verified, recorded acknowledgement.
#[derive(Debug)]
pub struct Deliverer {
    node: Node,
    tls: TlsIdentity,
    peers: HashMap<String, PeerState>,
}

/// What one delivery round did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Envelopes acknowledged.
    pub delivered: usize,
    /// Partners that could not be reached or refused (with the error).
    pub failed: Vec<(String, String)>,
}

impl Deliverer {
    /// A deliverer for `node`.
    ///
    /// # Errors
    /// The node's TLS identity cannot be loaded.
    pub fn new(node: Node) -> Result<Deliverer, FederationError> {
        let tls = TlsIdentity::load(&node.data_dir)?;
        Ok(Deliverer { node, tls, peers: HashMap::new() })
    }

    /// Delivers until `shutdown` completes.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let report = self.round().await;
            for (party, error) in &report.failed {
                tracing::warn!(%party, %error, "delivery failed; will retry with backoff");
            }
            if report.delivered > 0 {
                continue;
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    }

    /// One pass over the partners with messages waiting (those not in backoff).
    pub async fn round(&mut self) -> RoundReport {
        let mut report = RoundReport::default();
        let waiting = match self.node.store.recipients_waiting().await {
            Ok(w) => w,
            Err(e) => {
                report.failed.push(("*".into(), e.to_string()));
                return report;
            }
        };
        let now = tokio::time::Instant::now();
        for recipient in waiting {
            let due =
                self.peers.get(&recipient).and_then(|s| s.next_attempt).is_none_or(|t| t <= now);
            if !due {
                continue;
            }
            match self.deliver(&recipient).await {
                Ok(n) => {
                    report.delivered += n;
                    let s = self.peers.entry(recipient).or_default();
                    s.failures = 0;
                    s.next_attempt = None;
                }
                Err(e) => {
                    let s = self.peers.entry(recipient.clone()).or_default();
                    s.failures = s.failures.saturating_add(1);
                    s.next_attempt = Some(tokio::time::Instant::now() + backoff(s.failures));
                    if matches!(e, FederationError::Certificate(_) | FederationError::Tls(_)) {
                        s.client = None;
                    }
                    report.failed.push((recipient, e.to_string()));
                }
            }
        }
        report
    }

    fn client(&mut self, peer: &PeerRecord) -> Result<reqwest::Client, FederationError> {
        let state = self.peers.entry(peer.party.as_str().to_owned()).or_default();
        if let Some((sha, c)) = &state.client
            && sha == &peer.cert_sha256
        {
            return Ok(c.clone());
        }
        let config = self.tls.client_config(&peer.cert_pem)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| FederationError::Delivery {
                party: peer.party.clone(),
                detail: format!("cannot build the TLS client: {e}"),
            })?;
        state.client = Some((peer.cert_sha256.clone(), client.clone()));
        Ok(client)
    }

    async fn deliver(&mut self, recipient: &str) -> Result<usize, FederationError> {
        let party: PartyCode = recipient.parse().map_err(|_| {
            FederationError::Certificate(format!("outbox recipient `{recipient}` is not a party"))
        })?;
        let fail = |detail: String| FederationError::Delivery { party: party.clone(), detail };
        let peer =
            self.node.store.peer(&party).await?.ok_or_else(|| {
                fail("no peer is pinned for this party (entente peer add)".into())
            })?;
        let client = self.client(&peer)?;
        let mut pending = self.node.store.pending_messages(&party, DELIVERY_BATCH).await?;
        if pending.is_empty() {
            return Ok(0);
        }
        let mut bytes = 0usize;
        let fits = pending
            .iter()
            .position(|m| {
                bytes = bytes.saturating_add(m.size);
                bytes > DELIVERY_BATCH_BYTES
            })
            .map_or(pending.len(), |i| i.max(1));
        pending.truncate(fits);
        let now = Timestamp::now();
        let me = &self.node.config.party;
        let sealed = seal(&self.node, &party, pending, now).await.map_err(fail)?;
        let mut envelopes = Vec::with_capacity(sealed.len());
        let mut sent = Vec::with_capacity(sealed.len());
        for env in sealed {
            let env = env.map_err(|e| fail(e.to_string()))?;
            sent.push((env.id.clone(), env.seq));
            envelopes.push(env);
        }
        let ack = post_envelopes(&client, &peer, &envelopes).await.map_err(fail)?;
        let key = peer_key(&peer)?;
        // The receiver may acknowledge a prefix of the batch; the rest is sent again.
        let answered = ack.items.len().min(sent.len());
        ack.verify(&key, &party, me, &sent[..answered])
            .map_err(|e| fail(format!("acknowledgement refused: {e}")))?;
        if answered == 0 {
            return Err(fail("the acknowledgement answers no envelope".into()));
        }
        let ack_sha256 = ack.digest().map_err(|e| fail(e.to_string()))?;
        // A `resequence` or `resend` item is not a delivery: its message goes again.
        let delivered = ack.items.iter().filter(|i| !i.status.asks_again()).count();
        let command =
            entente_store::peers::RecordAcks { peer: party.clone(), ack_sha256, items: ack.items };
        // The acknowledgement came from the pinned partner and verified under its key.
        let who = self
            .node
            .store
            .peer_by_certificate(&peer.cert_sha256)
            .await?
            .ok_or_else(|| fail(format!("{party} is no longer pinned")))?;
        match self.node.gate.submit(who, command, Timestamp::now()).await? {
            Verdict::Permitted { .. } => Ok(delivered),
            Verdict::Denied { decision, .. } => {
                Err(fail(format!("recording the acknowledgement was denied: {}", decision.reason)))
            }
        }
    }
}

/// Seals `pending` outbox messages for `to` with the node's key, on two threads for a long
/// batch.
async fn seal(
    node: &Node,
    to: &PartyCode,
    pending: Vec<entente_store::PendingMessage>,
    now: Timestamp,
) -> Result<Vec<Result<Envelope, EnvelopeError>>, String> {
    let (key, from, to) = (node.key.clone(), node.config.party.clone(), to.clone());
    // Signed on both cores.
    tokio::task::spawn_blocking(move || {
        let seal =
            |ms: Vec<entente_store::PendingMessage>| -> Vec<Result<Envelope, EnvelopeError>> {
                ms.into_iter()
                    .map(|m| {
                        Envelope::seal(
                            &key,
                            from.clone(),
                            to.clone(),
                            m.kind,
                            m.seq,
                            m.payload,
                            now,
                        )
                    })
                    .collect()
            };
        if pending.len() < PARALLEL_FROM {
            return Ok(seal(pending));
        }
        let mut first = pending;
        let second = first.split_off(first.len() / 2);
        std::thread::scope(|s| {
            let a = s.spawn(|| seal(first));
            let b = seal(second);
            a.join().map(|mut v| {
                v.extend(b);
                v
            })
        })
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|_| "a signing thread failed".to_owned())
}

/// POSTs `envelopes` to `peer`'s federation endpoint; its acknowledgement, read but not yet
/// verified.
async fn post_envelopes(
    client: &reqwest::Client,
    peer: &PeerRecord,
    envelopes: &[Envelope],
) -> Result<Ack, String> {
    let body = serde_json::to_vec(&json!({ "envelopes": envelopes })).map_err(|e| e.to_string())?;
    let url = format!("{}{ENVELOPES_PATH}", peer.url.trim_end_matches('/'));
    let resp = client
        .post(&url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("{url}: {}", error_chain(&e)))?;
    let status = resp.status();
    let text = resp.bytes().await.map_err(|e| format!("{url}: {e}"))?;
    // An out-of-order refusal may carry the partner's signed acknowledgement asking for the
    // messages from an earlier number again (it was restored): verified by the caller.
    if status == StatusCode::CONFLICT
        && let Some(ack) = serde_json::from_slice::<serde_json::Value>(&text)
            .ok()
            .and_then(|mut v| v.get_mut("ack").map(serde_json::Value::take))
            .and_then(|a| serde_json::from_value::<Ack>(a).ok())
    {
        return Ok(ack);
    }
    if !status.is_success() {
        let detail = serde_json::from_slice::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&text).chars().take(300).collect());
        return Err(format!("{url} answered {status}: {detail}"));
    }
    serde_json::from_slice(&text).map_err(|e| format!("the acknowledgement is not readable: {e}"))
}

/// The first `limit` outbox messages for `peer` that the gate recorded and that are not yet
/// delivered, sealed by this node now (signed envelopes, in sequence order). Nothing else can
/// be sealed with the node's key from outside this crate.
///
/// # Errors
/// The store fails, or a message cannot be sealed.
pub async fn seal_pending(
    node: &Node,
    peer: &PartyCode,
    limit: u32,
) -> Result<Vec<Envelope>, FederationError> {
    let fail = |detail: String| FederationError::Delivery { party: peer.clone(), detail };
    let pending = node.store.pending_messages(peer, limit).await?;
    seal(node, peer, pending, Timestamp::now())
        .await
        .map_err(fail)?
        .into_iter()
        .map(|e| e.map_err(|e| fail(e.to_string())))
        .collect()
}

/// This node's mutual-TLS link to a pinned partner's federation endpoint (its certificate
/// presented, only the partner's pinned one accepted). It carries envelopes only, and
/// envelopes are only what [`seal_pending`] sealed from the outbox.
#[derive(Debug)]
pub struct PeerLink {
    node: Node,
    peer: PeerRecord,
    client: reqwest::Client,
}

impl PeerLink {
    /// A link to the pinned partner `party`.
    ///
    /// # Errors
    /// `party` is not pinned; the node's TLS identity or the pin cannot be used.
    pub async fn open(node: &Node, party: &PartyCode) -> Result<PeerLink, FederationError> {
        let peer = node.store.peer(party).await?.ok_or_else(|| FederationError::Delivery {
            party: party.clone(),
            detail: "no peer is pinned for this party (entente peer add)".into(),
        })?;
        let tls = TlsIdentity::load(&node.data_dir)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls.client_config(&peer.cert_pem)?)
            .build()
            .map_err(|e| FederationError::Delivery {
                party: party.clone(),
                detail: format!("cannot build the TLS client: {e}"),
            })?;
        Ok(PeerLink { node: node.clone(), peer, client })
    }

    /// Sends `envelopes` and returns the partner's acknowledgement of all of them, verified
    /// under its pinned key (not yet recorded: [`PeerLink::record`]).
    ///
    /// # Errors
    /// The partner cannot be reached, answers an error, or acknowledges other than all of
    /// `envelopes` under its key.
    pub async fn send(&self, envelopes: &[Envelope]) -> Result<Ack, FederationError> {
        let party = &self.peer.party;
        let fail = |detail: String| FederationError::Delivery { party: party.clone(), detail };
        let ack = post_envelopes(&self.client, &self.peer, envelopes).await.map_err(fail)?;
        let sent: Vec<(String, u64)> = envelopes.iter().map(|e| (e.id.clone(), e.seq)).collect();
        ack.verify(&peer_key(&self.peer)?, party, &self.node.config.party, &sent)
            .map_err(|e| fail(format!("acknowledgement refused: {e}")))?;
        Ok(ack)
    }

    /// Records a verified acknowledgement through the gate, as the partner (it came from the
    /// pinned partner and verified under its key): the messages it answers are delivered.
    ///
    /// # Errors
    /// The partner is no longer pinned; the gate fails or denies.
    pub async fn record(&self, ack: Ack) -> Result<(), FederationError> {
        let party = &self.peer.party;
        let fail = |detail: String| FederationError::Delivery { party: party.clone(), detail };
        let ack_sha256 = ack.digest().map_err(|e| fail(e.to_string()))?;
        let command =
            entente_store::peers::RecordAcks { peer: party.clone(), ack_sha256, items: ack.items };
        let who = self
            .node
            .store
            .peer_by_certificate(&self.peer.cert_sha256)
            .await?
            .ok_or_else(|| fail(format!("{party} is no longer pinned")))?;
        match self.node.gate.submit(who, command, Timestamp::now()).await? {
            Verdict::Permitted { .. } => Ok(()),
            Verdict::Denied { decision, .. } => {
                Err(fail(format!("recording the acknowledgement was denied: {}", decision.reason)))
            }
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Exponential backoff with jitter: `FIRST_BACKOFF · 2^(failures-1)`, capped at
/// `MAX_BACKOFF`, times a random factor in [0.5, 1.5).
pub(crate) fn backoff(failures: u32) -> Duration {
    let exp = FIRST_BACKOFF.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let base = exp.min(MAX_BACKOFF);
    let mut b = [0u8; 2];
    let r = if getrandom::fill(&mut b).is_ok() { u16::from_le_bytes(b) } else { 32768 };
    base.mul_f64(0.5 + f64::from(r) / 65536.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for f in 1..40 {
            let d = backoff(f);
            assert!(d >= FIRST_BACKOFF / 2 && d < MAX_BACKOFF.mul_f64(1.5), "{f}: {d:?}");
        }
        assert!(backoff(1) < Duration::from_millis(300));
        assert!(backoff(30) >= MAX_BACKOFF / 2);
    }

    #[test]
    fn certificates_that_are_not_node_certificates_are_refused() {
        let e = cert_info("hello").unwrap_err().to_string();
        assert!(e.contains("not a PEM certificate"), "{e}");
        let rsa_like = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let e = cert_info(rsa_like).unwrap_err().to_string();
        assert!(e.contains("not an X.509 certificate"), "{e}");
    }
}
