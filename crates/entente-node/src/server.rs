//! The node's HTTP API.
//!
//! - `/healthz`, `/metrics` (Prometheus text format), `/openapi.json` (OpenAPI 3.1);
//! - `/ledger/checkpoint`, `/ledger/key`, `/ledger/tile/…`: the ledger as a C2SP tlog-tiles
//!   log, public so that auditors and witnesses need no account (it holds no personal data);
//! - `/api/v1/…`: authenticated with `Authorization: Bearer <token>`; every call that acts or
//!   discloses data goes through the gate, and so does every refusal (401 and 403 responses
//!   carry the index of the ledger entry that recorded them).
//!
//! Errors are RFC 9457 problem details (`application/problem+json`).
//!
//! The handlers, with their request and response types, are in [`crate::api`], one module per
//! capability; they are registered with their OpenAPI operations (utoipa-axum), so the document
//! at `/openapi.json` is generated from the routes the router serves.

use crate::config::LimitsConfig;
use crate::identity::Node;
use crate::refusals::ClientAddr;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use entente_core::Decision;
use entente_store::Principal;
use entente_store::{GateCommand, GateError, StoreError, Verdict};
use jiff::Timestamp;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest request body accepted.
pub const MAX_BODY: usize = 1 << 20;

/// Counters exported at `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    pub(crate) permits: AtomicU64,
    pub(crate) denies: AtomicU64,
    pub(crate) responses_2xx: AtomicU64,
    pub(crate) responses_4xx: AtomicU64,
    pub(crate) responses_5xx: AtomicU64,
}

/// What every handler of the API shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) node: Node,
    pub(crate) metrics: Arc<Metrics>,
    /// The shipped lexicon (validated by the test suite); `None` only if it failed to load,
    /// in which case provision checks answer 500 rather than guess.
    pub(crate) lexicon: Option<Arc<entente_core::lexicon::Lexicon>>,
    /// The evidence vault; `None` if it cannot be opened, in which case uploads answer 500.
    pub(crate) vault: Option<crate::vault::Vault>,
    /// The OpenAPI document, generated once from the routes (served at `/openapi.json`).
    pub(crate) openapi: Arc<Value>,
}

/// An RFC 9457 problem.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    ledger_index: Option<u64>,
    rules: Vec<String>,
    /// A refusal the gate did not record (an unauthenticated caller's, by its first rule),
    /// counted by the listener for the caller's source.
    unrecorded: bool,
}

impl Problem {
    pub(crate) fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            slug,
            title,
            detail: detail.into(),
            ledger_index: None,
            rules: Vec::new(),
            unrecorded: false,
        }
    }

    /// A 401 for a caller no authenticator admitted: not recorded on its own (it has no
    /// ledger index); counted for its source and recorded in aggregate.
    pub(crate) fn unauthenticated(decision: &Decision) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            slug: "unauthenticated",
            title: "Authentication required",
            detail: format!(
                "{}; refusals of unauthenticated callers are recorded in aggregate, per source and time window",
                decision.reason
            ),
            ledger_index: None,
            rules: decision.rules.clone(),
            unrecorded: true,
        }
    }

    /// A 500 whose detail reveals nothing of the node's internals; the cause goes to the log.
    pub(crate) fn internal(detail: &str) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error", detail)
    }

    pub(crate) fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", "The request is malformed", detail)
    }

    pub(crate) fn denied(index: u64, decision: &Decision, authenticated: bool) -> Self {
        let (status, slug, title) = if authenticated {
            (StatusCode::FORBIDDEN, "denied", "The action was denied")
        } else {
            (StatusCode::UNAUTHORIZED, "unauthenticated", "Authentication required")
        };
        Self {
            status,
            slug,
            title,
            detail: decision.reason.clone(),
            ledger_index: Some(index),
            rules: decision.rules.clone(),
            unrecorded: false,
        }
    }
}

impl From<GateError> for Problem {
    fn from(e: GateError) -> Self {
        match e {
            GateError::Invalid(d) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "The request is invalid",
                d,
            ),
            GateError::Conflict(d) => Problem::new(
                StatusCode::CONFLICT,
                "conflict",
                "The request conflicts with the current state",
                d,
            ),
            GateError::NotFound(d) => Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                format!("{d} not found"),
            ),
            GateError::Unauthenticated(decision) => Problem::unauthenticated(&decision),
            GateError::Held(d) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ledger-held",
                "The ledger is on hold until the node's operator decides",
                d,
            ),
            other => {
                tracing::error!(error = %other, "gate failure");
                Problem::internal("the node could not complete the action; nothing was changed")
            }
        }
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(d) => Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                format!("{d} not found"),
            ),
            other => {
                tracing::error!(error = %other, "store failure");
                Problem::internal("the node could not read its store")
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let unrecorded = self
            .unrecorded
            .then(|| self.rules.first().cloned().unwrap_or_else(|| "authn.required".to_owned()));
        let body = crate::api::ProblemBody {
            kind: format!("urn:entente:problem:{}", self.slug),
            title: self.title.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail,
            ledger_index: self.ledger_index,
            rules: self.rules,
        };
        // A struct of strings and integers always serializes.
        let text = serde_json::to_string(&body).unwrap_or_default();
        let mut resp = (self.status, text).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(rule) = unrecorded {
            resp.extensions_mut().insert(crate::refusals::Unrecorded(rule));
        }
        resp
    }
}

pub(crate) type ApiResult = Result<Response, Problem>;

/// Builds the node's router.
pub fn router(node: Node) -> Router {
    let lexicon = match entente_core::lexicon::Lexicon::builtin() {
        Ok(l) => Some(Arc::new(l)),
        Err(e) => {
            tracing::error!(error = %e, "the shipped lexicon does not load");
            None
        }
    };
    let vault = match node.vault() {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(error = %e, "the evidence store cannot be opened; uploads answer 500");
            None
        }
    };
    // Every API route is registered with its OpenAPI operation (crates/entente-node/src/api/).
    let (api, doc) = crate::api::routes().split_for_parts();
    let openapi = Arc::new(crate::api::document(doc));
    let state = AppState { node, metrics: Arc::new(Metrics::default()), lexicon, vault, openapi };
    api
        // Threat intelligence: the TAXII 2.1 server (crates/entente-node/src/taxii.rs), with
        // its own media types, error format and body limit; described in the document by
        // `api::intel`.
        .merge(crate::taxii::router(state.node.clone()))
        // The web interface, HTML under /ui/ (crates/entente-node/src/ui/, docs/ui.md).
        .merge(crate::ui::routes())
        .fallback(|| async {
            Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                "no such endpoint; see /openapi.json",
            )
        })
        .layer(axum::middleware::from_fn(errors_are_problems))
        .layer(axum::middleware::from_fn_with_state(state.clone(), count_responses))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// The OpenAPI 3.1 description of this API, generated from the routes and their types.
pub fn openapi_document() -> Value {
    crate::api::document(crate::api::routes().into_openapi())
}

/// Serves `router` on `listener` until `shutdown` completes: over TLS when `[api] tls` is
/// set (`crate::tls`), plain HTTP otherwise (on loopback only, unless configured).
///
/// # Errors
/// I/O errors of the listener; an unusable certificate or key; plain HTTP beyond loopback.
pub async fn serve(
    node: Node,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = if node.config.api.tls {
        Some(crate::tls::api_tls(&node.data_dir, &node.config.api).map_err(std::io::Error::other)?)
    } else {
        None
    };
    serve_with(node, listener, tls, shutdown).await
}

/// [`serve`] with the API's TLS configuration already read (`entente serve` reads it once,
/// before anything starts, to refuse an unusable certificate): HTTPS with `tls`, plain HTTP
/// otherwise.
///
/// # Errors
/// I/O errors of the listener; plain HTTP beyond loopback.
pub async fn serve_with(
    node: Node,
    listener: tokio::net::TcpListener,
    tls: Option<crate::tls::ApiTls>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = &node.config.limits;
    let conns = crate::conns::Limits {
        header_timeout: LimitsConfig::secs(limits.header_timeout_secs),
        idle_timeout: LimitsConfig::secs(limits.idle_timeout_secs),
        max_connections: LimitsConfig::count(limits.max_connections),
        max_per_address: LimitsConfig::count(limits.max_connections_per_address),
    };
    let tls = if let Some(crate::tls::ApiTls(config)) = tls {
        Some(crate::conns::Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(config),
            handshakes: node.handshakes.clone(),
        })
    } else {
        crate::tls::check_plain(listener.local_addr()?, false, &node.config.api)
            .map_err(std::io::Error::other)?;
        None
    };
    crate::conns::serve(listener, router(node), conns, tls, shutdown).await
}

/// Every error answer is a problem (RFC 9457), or on the TAXII routes a TAXII error: the
/// handlers' own errors already are, and this turns the framework's (a method not allowed, a
/// body over the limit, a path that does not decode, an extractor's rejection) into one, its
/// text as the detail and its `Allow` header kept.
pub(crate) async fn errors_are_problems(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let taxii = req.uri().path().starts_with("/taxii2/");
    // The web interface answers its errors as pages.
    let ui = req.uri().path() == "/ui" || req.uri().path().starts_with("/ui/");
    let resp = next.run(req).await;
    let status = resp.status();
    if ui || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let ct = resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if ct.starts_with("application/problem+json") || ct.starts_with("application/taxii+json") {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let allow = parts.headers.get(header::ALLOW).cloned();
    let (slug, title) = match status {
        StatusCode::METHOD_NOT_ALLOWED => ("method-not-allowed", "Method not allowed"),
        StatusCode::PAYLOAD_TOO_LARGE => ("too-large", "The request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("media-type", "Unsupported media type"),
        StatusCode::NOT_FOUND => ("not-found", "Not found"),
        s if s.is_server_error() => ("internal", "The node could not complete the action"),
        _ => ("bad-request", "The request is malformed"),
    };
    let detail = match (&allow, text.is_empty()) {
        (_, false) => text,
        (Some(a), true) => format!("this endpoint answers {}", a.to_str().unwrap_or("")),
        (None, true) => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    let mut out = if taxii {
        crate::taxii::error_response(status, title, detail)
    } else {
        Problem::new(status, slug, title, detail).into_response()
    };
    if let Some(a) = allow {
        out.headers_mut().insert(header::ALLOW, a);
    }
    out
}

async fn count_responses(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let addr = req.extensions().get::<ClientAddr>().copied();
    let route = crate::refusals::route_of(&req);
    let resp = next.run(req).await;
    crate::refusals::count_response(&state.node, addr, &route, &resp);
    let counter = match resp.status().as_u16() {
        200..=399 => &state.metrics.responses_2xx,
        400..=499 => &state.metrics.responses_4xx,
        _ => &state.metrics.responses_5xx,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    resp
}

/// The API's token extractor: the user whose bearer token this is, else anonymous.
pub(crate) async fn actor(node: &Node, headers: &HeaderMap) -> Result<Principal, Problem> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Principal::anonymous());
    };
    let token = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).unwrap_or_default();
    Ok(node.store.authenticate_token(token).await?)
}

/// The caller, who must be authenticated: an anonymous caller (no token, or one nobody holds)
/// is refused here, before its path, query or body is looked at, so that it learns nothing
/// of what would be valid. Every gate command refuses an unauthenticated caller anyway; the
/// refusal is counted in aggregate like the gate's (`unrecorded`).
///
/// # Errors
/// 401 for an anonymous caller; the store's error if the token cannot be checked.
pub(crate) async fn authenticated(node: &Node, headers: &HeaderMap) -> Result<Principal, Problem> {
    let principal = actor(node, headers).await?;
    if principal.is_authenticated() {
        Ok(principal)
    } else {
        Err(Problem::unauthenticated(&Decision::deny(
            "authn.required",
            "this operation needs an authenticated caller: a bearer token of one of this node's users",
        )))
    }
}

/// An id from a path or a body, parsed at the edge (parse, don't validate): a malformed one
/// is the caller's mistake, refused as 422 before anything reaches the gate.
pub(crate) fn parse_id<T>(text: impl Into<String>) -> Result<T, Problem>
where
    T: TryFrom<String, Error = entente_core::ids::InvalidIdentifier>,
{
    T::try_from(text.into()).map_err(|e| GateError::Invalid(e.to_string()).into())
}

/// Runs a command through the gate and turns a deny into 401/403.
pub(crate) async fn through_gate<C: GateCommand>(
    state: &AppState,
    actor: Principal,
    command: C,
) -> Result<(u64, C::Output), Problem> {
    let authenticated = actor.is_authenticated();
    let verdict = state.node.gate.submit(actor, command, Timestamp::now()).await?;
    settle(state, verdict, authenticated)
}

/// A verdict as the API answers it: a permit's index and output, or a deny as 401/403 (the
/// response counters updated either way).
pub(crate) fn settle<T>(
    state: &AppState,
    verdict: Verdict<T>,
    authenticated: bool,
) -> Result<(u64, T), Problem> {
    match verdict {
        Verdict::Permitted { index, output, .. } => {
            state.metrics.permits.fetch_add(1, Ordering::Relaxed);
            Ok((index, output))
        }
        Verdict::Denied { index, decision } => {
            state.metrics.denies.fetch_add(1, Ordering::Relaxed);
            Err(Problem::denied(index, &decision, authenticated))
        }
    }
}

/// A request body as read by axum, or the problem that says why it could not be (over
/// [`MAX_BODY`], a broken stream).
pub(crate) fn body_of(
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Bytes, Problem> {
    body.map_err(|e| {
        Problem::new(
            e.status(),
            "body",
            "The request body cannot be read",
            format!("{} (the limit is {MAX_BODY} bytes)", e.body_text()),
        )
    })
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, Problem> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "media-type",
            "Unsupported media type",
            format!("expected Content-Type: application/json, got `{ct}`"),
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        Problem::bad_request(format!("request body, line {} column {}: {e}", e.line(), e.column()))
    })
}

/// A JSON response with `status`.
pub(crate) fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> ApiResult {
    Ok((status, axum::Json(body)).into_response())
}
