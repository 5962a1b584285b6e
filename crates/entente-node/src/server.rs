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

use crate::identity::Node;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use entente_core::Decision;
use entente_core::ledger::{self, TileRef};
use entente_store::Principal;
use entente_store::{GateCommand, GateError, StoreError, Verdict};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest request body accepted.
pub const MAX_BODY: usize = 1 << 20;

/// Counters exported at `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    permits: AtomicU64,
    denies: AtomicU64,
    responses_2xx: AtomicU64,
    responses_4xx: AtomicU64,
    responses_5xx: AtomicU64,
}

#[derive(Clone)]
struct AppState {
    node: Node,
    metrics: Arc<Metrics>,
    /// The shipped lexicon (validated by the test suite); `None` only if it failed to load,
    /// in which case provision checks answer 500 rather than guess.
    lexicon: Option<Arc<entente_core::lexicon::Lexicon>>,
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
}

impl Problem {
    pub(crate) fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self { status, slug, title, detail: detail.into(), ledger_index: None, rules: Vec::new() }
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
        let mut body = json!({
            "type": format!("urn:entente:problem:{}", self.slug),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Some(i) = self.ledger_index {
            body["ledger_index"] = json!(i);
        }
        if !self.rules.is_empty() {
            body["rules"] = json!(self.rules);
        }
        let mut resp = (self.status, body.to_string()).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

type ApiResult = Result<Response, Problem>;

/// Builds the node's router.
pub fn router(node: Node) -> Router {
    let lexicon = match entente_core::lexicon::Lexicon::builtin() {
        Ok(l) => Some(Arc::new(l)),
        Err(e) => {
            tracing::error!(error = %e, "the shipped lexicon does not load");
            None
        }
    };
    let state = AppState { node, metrics: Arc::new(Metrics::default()), lexicon };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/ledger/checkpoint", get(checkpoint))
        .route("/ledger/key", get(verifier_key))
        .route("/ledger/cosigned-checkpoint", get(cosigned_checkpoint))
        .route("/ledger/tile/{*path}", get(tile))
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/cases", post(open_case))
        .route("/api/v1/cases/{id}", get(read_case))
        .route("/api/v1/cases/{id}/members", post(add_case_member))
        .route("/api/v1/cases/{id}/status", get(case_status))
        .route("/api/v1/incidents/notifications", get(incident_notifications))
        .route("/api/v1/cases/{id}/members/{party}", axum::routing::delete(remove_case_member))
        .route("/api/v1/requests", post(create_request))
        .route("/api/v1/requests/{id}", get(read_request))
        .route("/api/v1/requests/{id}/events", post(request_event))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/complaints", post(file_complaint))
        .route("/api/v1/complaints/{id}", get(read_complaint))
        .route("/api/v1/complaints/{id}/answer", post(answer_complaint))
        .route("/api/v1/data", post(add_datum))
        .route("/api/v1/data/{id}/share", post(share_datum))
        .route("/api/v1/data/{id}/consents", post(give_consent))
        .route("/api/v1/ledger/entries", get(ledger_entries))
        .route("/api/v1/ledger/proof/inclusion", get(inclusion_proof))
        .route("/api/v1/ledger/proof/consistency", get(consistency_proof))
        // Threat intelligence: the TAXII 2.1 server (crates/entente-node/src/taxii.rs), with
        // its own media types, error format and body limit.
        .merge(crate::taxii::router(state.node.clone()))
        // Evidence uploads: streamed, with their own body limit (crates/entente-node/src/evidence_api.rs).
        .merge(crate::evidence_api::router(state.node.clone()))
        .fallback(|| async {
            Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                "no such endpoint; see /openapi.json",
            )
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), count_responses))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes.
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve(
    node: Node,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(node)).with_graceful_shutdown(shutdown).await
}

async fn count_responses(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let resp = next.run(req).await;
    let counter = match resp.status().as_u16() {
        200..=399 => &state.metrics.responses_2xx,
        400..=499 => &state.metrics.responses_4xx,
        _ => &state.metrics.responses_5xx,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    resp
}

/// Who is calling: a user by bearer token, or anonymous.
/// The API's token extractor: the user whose bearer token this is, else anonymous.
pub(crate) async fn actor(node: &Node, headers: &HeaderMap) -> Result<Principal, Problem> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Principal::anonymous());
    };
    let token = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).unwrap_or_default();
    Ok(node.store.authenticate_token(token).await?)
}

/// Runs a command through the gate and turns a deny into 401/403.
async fn through_gate<C: GateCommand>(
    state: &AppState,
    actor: Principal,
    command: C,
) -> Result<(u64, C::Output), Problem> {
    let authenticated = actor.is_authenticated();
    match state.node.gate.submit(actor, command, Timestamp::now()).await? {
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

fn parse_json<T: serde::de::DeserializeOwned>(
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

async fn healthz(State(state): State<AppState>) -> ApiResult {
    let (size, _) = state.node.store.ledger_head().await?;
    Ok(Json(json!({"status": "ok", "party": state.node.config.party, "ledger_size": size}))
        .into_response())
}

async fn metrics(State(state): State<AppState>) -> ApiResult {
    let (size, _) = state.node.store.ledger_head().await?;
    let overdue =
        match state.node.store.overdue_clocks(state.node.gate.engine(), Timestamp::now()).await {
            Ok(n) => n.to_string(),
            Err(e) => {
                tracing::error!(error = %e, "cannot count overdue requests");
                "NaN".to_owned()
            }
        };
    let m = &state.metrics;
    let text = format!(
        "# HELP entente_ledger_entries Entries in the node's ledger.\n\
         # TYPE entente_ledger_entries gauge\n\
         entente_ledger_entries {size}\n\
         # HELP entente_requests_overdue_clocks Legal clocks of open requests past their due instant.\n\
         # TYPE entente_requests_overdue_clocks gauge\n\
         entente_requests_overdue_clocks {overdue}\n\
         # HELP entente_gate_decisions_total Gate decisions taken through the API.\n\
         # TYPE entente_gate_decisions_total counter\n\
         entente_gate_decisions_total{{outcome=\"permit\"}} {}\n\
         entente_gate_decisions_total{{outcome=\"deny\"}} {}\n\
         # HELP entente_http_responses_total HTTP responses by status class.\n\
         # TYPE entente_http_responses_total counter\n\
         entente_http_responses_total{{class=\"2xx\"}} {}\n\
         entente_http_responses_total{{class=\"4xx\"}} {}\n\
         entente_http_responses_total{{class=\"5xx\"}} {}\n",
        m.permits.load(Ordering::Relaxed),
        m.denies.load(Ordering::Relaxed),
        m.responses_2xx.load(Ordering::Relaxed),
        m.responses_4xx.load(Ordering::Relaxed),
        m.responses_5xx.load(Ordering::Relaxed),
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

async fn openapi() -> Response {
    Json(crate::server::openapi_document()).into_response()
}

async fn checkpoint(State(state): State<AppState>) -> ApiResult {
    match state.node.store.ledger_head().await? {
        (_, Some(note)) => {
            Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
        }
        (_, None) => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            "the ledger has no checkpoint yet",
        )),
    }
}

async fn verifier_key(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", state.node.verifier_key()),
    )
        .into_response()
}

/// The latest checkpoint partners have cosigned, with their cosignatures (C2SP
/// tlog-cosignature), for auditors who require a witness threshold.
async fn cosigned_checkpoint(State(state): State<AppState>) -> ApiResult {
    let path = state.node.data_dir.join(crate::witness::COSIGNED_FILE);
    match std::fs::read(&path) {
        Ok(note) => {
            Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
        }
        Err(_) => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            "no partner has cosigned a checkpoint of this ledger yet",
        )),
    }
}

async fn tile(State(state): State<AppState>, Path(path): Path<String>) -> ApiResult {
    let tile = ledger::parse_tile_path(&path)
        .map_err(|e| Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", e))?;
    let bytes = state.node.store.tile(tile).await?;
    let full = match tile {
        TileRef::Hashes { width, .. } | TileRef::Entries { width, .. } => {
            width == ledger::TILE_WIDTH
        }
    };
    // Full tiles never change; partial ones are superseded as the log grows.
    let cache = if full { "public, max-age=31536000, immutable" } else { "no-cache" };
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream"), (header::CACHE_CONTROL, cache)],
        bytes,
    )
        .into_response())
}

async fn whoami(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    let actor = actor(&state.node, &headers).await?;
    Ok(Json(json!({"actor": actor.actor(), "party": state.node.config.party})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenCase {
    id: String,
    title: String,
    #[serde(default)]
    concepts: Vec<String>,
}

async fn open_case(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult {
    // A body over MAX_BODY is refused as a problem, like every other error.
    let body = body.map_err(|e| {
        Problem::new(
            e.status(),
            "body",
            "The request body cannot be read",
            format!("{} (the limit is {MAX_BODY} bytes)", e.body_text()),
        )
    })?;
    let actor = actor(&state.node, &headers).await?;
    let req: OpenCase = parse_json(&headers, &body)?;
    let id = req.id.clone();
    let (index, _) = through_gate(
        &state,
        actor,
        entente_store::cases::OpenCase { id: req.id, title: req.title, concepts: req.concepts },
    )
    .await?;
    let mut resp =
        (StatusCode::CREATED, Json(json!({"id": id, "ledger_index": index}))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/cases/{id}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    id: String,
    case_id: String,
    kind: entente_policy::agreement::RequestKind,
    agreement: String,
    to: entente_core::PartyCode,
    #[serde(default)]
    emergency: bool,
    #[serde(default)]
    provisions: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestEventBody {
    event: String,
    #[serde(default)]
    grounds: Vec<String>,
}

/// A request as JSON: state, history and each legal clock at `now`.
fn request_json(r: &entente_policy::request::Request, now: Timestamp) -> Value {
    json!({
        "id": r.id, "kind": r.kind, "agreement": r.agreement, "from": r.from, "to": r.to,
        "emergency": r.emergency, "state": r.state.to_string(), "grounds": r.grounds,
        "time_zone": r.time_zone_name(),
        "history": r.history.iter().map(|(e, at)| json!({"event": e.name(), "grounds": e.grounds(), "at": at.to_string()})).collect::<Vec<_>>(),
        "clocks": r.clocks.iter().map(|c| json!({
            "kind": c.kind.name(), "duration": c.duration.text, "basis": c.basis.citation,
            "status_of_basis": c.basis.status.as_str(), "unverified": c.unverified(),
            "start_event": c.start_event, "started_at": c.started_at.to_string(),
            "due_utc": c.due.to_string(), "due_local": c.due_local().to_string(),
            "time_zone": c.time_zone_name, "time_zone_note": c.time_zone_note,
            "remaining_seconds": c.remaining(now).as_secs(), "status": c.status(now).to_string(),
        })).collect::<Vec<_>>(),
    })
}

async fn request_response<C: GateCommand<Output = entente_policy::request::Request>>(
    state: &AppState,
    actor: Principal,
    command: C,
    created: bool,
) -> ApiResult {
    let (index, r) = through_gate(state, actor, command).await?;
    let mut body = request_json(&r, Timestamp::now());
    body["ledger_index"] = json!(index);
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(body)).into_response())
}

async fn create_request(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let actor = actor(&state.node, &headers).await?;
    let req: CreateRequest = parse_json(&headers, &body)?;
    // Each provision must be one of this party's in the lexicon (close matches otherwise).
    if !req.provisions.is_empty() {
        let lexicon =
            state.lexicon.as_ref().ok_or_else(|| Problem::internal("the lexicon is not loaded"))?;
        let party = state.node.config.party.as_str();
        for p in &req.provisions {
            lexicon.jurisdiction(party).and_then(|j| j.provision(p)).map_err(|e| {
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid",
                    "The request is invalid",
                    format!("provisions: {e}"),
                )
            })?;
        }
    }
    let command = entente_store::requests::CreateRequest {
        id: req.id,
        case_id: req.case_id,
        kind: req.kind,
        agreement: req.agreement,
        to: req.to,
        emergency: req.emergency,
        provisions: req.provisions,
    };
    request_response(&state, actor, command, true).await
}

async fn request_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let actor = actor(&state.node, &headers).await?;
    let req: RequestEventBody = parse_json(&headers, &body)?;
    let event = entente_policy::request::RequestEvent::from_name(&req.event, req.grounds).ok_or_else(|| {
        Problem::bad_request(format!(
            "event `{}`: expected one of submit, receive, start-review, approve, approve-partially, refuse, start-execution, answer, close, withdraw, expire, extend, suspend, resume",
            req.event
        ))
    })?;
    let command = entente_store::requests::TransitionRequest { id, event };
    request_response(&state, actor, command, false).await
}

/// The legal clocks of every open request; overdue and due-within-24-h ones are flagged.
async fn alerts(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    let actor = actor(&state.node, &headers).await?;
    let now = Timestamp::now();
    let (index, requests) =
        through_gate(&state, actor, entente_store::requests::ReadAlerts).await?;
    let mut alerts = Vec::new();
    for r in &requests {
        for c in &r.clocks {
            let status = c.status(now);
            let remaining = c.remaining(now).as_secs();
            let alert = match status {
                entente_policy::request::ClockStatus::Missed => "overdue",
                entente_policy::request::ClockStatus::Running if remaining < 24 * 3600 => {
                    "due-soon"
                }
                _ => continue,
            };
            alerts.push(json!({
                "alert": alert, "request": r.id, "kind": r.kind, "to": r.to, "clock": c.kind.name(),
                "due_utc": c.due.to_string(), "due_local": c.due_local().to_string(),
                "remaining_seconds": remaining, "unverified": c.unverified(),
            }));
        }
    }
    Ok(Json(
        json!({"open_requests": requests.len(), "alerts": alerts, "access_ledger_index": index}),
    )
    .into_response())
}

async fn read_request(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let actor = actor(&state.node, &headers).await?;
    let (index, r) =
        through_gate(&state, actor, entente_store::requests::ReadRequest { id: id.clone() })
            .await?;
    let now = Timestamp::now();
    let mut body = request_json(&r, now);
    body["ledger_index"] = json!(index);
    // The incoming check for the requested party's central authority.
    let provisions = state.node.store.request_provisions(&id).await?;
    if let (Some(lexicon), Some(agreement)) =
        (&state.lexicon, state.node.gate.engine().agreement(&r.agreement))
    {
        let check =
            entente_policy::incoming::incoming_check(&r, &provisions, agreement, lexicon, now);
        body["incoming_check"] = serde_json::to_value(&check)
            .map_err(|_| Problem::internal("cannot encode the check"))?;
    }
    Ok(Json(body).into_response())
}

/// Answers a complaint command with the complaint (items, flows, deadline, state).
async fn complaint_response<C: GateCommand<Output = entente_store::Complaint>>(
    state: &AppState,
    actor: Principal,
    command: C,
    created: bool,
) -> ApiResult {
    let (index, c) = through_gate(state, actor, command).await?;
    let mut body =
        serde_json::to_value(&c).map_err(|_| Problem::internal("complaint not serializable"))?;
    body["ledger_index"] = json!(index);
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(body)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileComplaint {
    id: String,
    identifier: String,
}

async fn file_complaint(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let actor = actor(&state.node, &headers).await?;
    let req: FileComplaint = parse_json(&headers, &body)?;
    let command = entente_store::redress::FileComplaint { id: req.id, identifier: req.identifier };
    complaint_response(&state, actor, command, true).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerComplaint {
    decision: String,
    answer: String,
}

async fn answer_complaint(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let actor = actor(&state.node, &headers).await?;
    let req: AnswerComplaint = parse_json(&headers, &body)?;
    let command =
        entente_store::redress::AnswerComplaint { id, decision: req.decision, answer: req.answer };
    complaint_response(&state, actor, command, false).await
}

async fn read_complaint(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let actor = actor(&state.node, &headers).await?;
    complaint_response(&state, actor, entente_store::redress::ReadComplaint { id }, false).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddDatum {
    id: String,
    case_id: String,
    category: entente_policy::agreement::DataCategory,
    content: serde_json::Map<String, Value>,
}

async fn add_datum(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let actor = actor(&state.node, &headers).await?;
    let req: AddDatum = parse_json(&headers, &body)?;
    let id = req.id.clone();
    let command = entente_store::flows::AddDatum {
        id: req.id,
        case_id: req.case_id,
        category: req.category,
        content: req.content,
    };
    let (index, _) = through_gate(&state, actor, command).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id, "ledger_index": index}))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShareDatum {
    to: entente_core::PartyCode,
    purpose: entente_policy::agreement::Purpose,
    #[serde(default)]
    request_kind: Option<entente_policy::agreement::RequestKind>,
}

/// Shares a datum: on a permit the minimized datum and its conditions are in the outbox for
/// the receiving party; on a deny the problem names the agreement rules that refused it.
async fn share_datum(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let actor = actor(&state.node, &headers).await?;
    let req: ShareDatum = parse_json(&headers, &body)?;
    let command = entente_store::flows::ShareDatum {
        id,
        to: req.to,
        purpose: req.purpose,
        request_kind: req.request_kind,
    };
    outbox_response(&state, actor, command).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GiveConsent {
    holder: entente_core::PartyCode,
    recipient: entente_core::PartyCode,
}

async fn give_consent(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(datum_id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let actor = actor(&state.node, &headers).await?;
    let req: GiveConsent = parse_json(&headers, &body)?;
    let command = entente_store::flows::GiveConsent {
        datum_id,
        holder: req.holder,
        recipient: req.recipient,
    };
    outbox_response(&state, actor, command).await
}

async fn outbox_response<C: GateCommand<Output = entente_store::OutboxMessage>>(
    state: &AppState,
    actor: Principal,
    command: C,
) -> ApiResult {
    let authenticated = actor.is_authenticated();
    match state.node.gate.submit(actor, command, Timestamp::now()).await? {
        Verdict::Permitted { index, decision, output: m } => {
            state.metrics.permits.fetch_add(1, Ordering::Relaxed);
            Ok(Json(json!({
                "ledger_index": index,
                "rules": decision.rules,
                "reason": decision.reason,
                "obligations": decision.obligations,
                "outbox": {"id": m.id, "recipient": m.recipient, "kind": m.kind, "payload": m.payload},
            }))
            .into_response())
        }
        Verdict::Denied { index, decision } => {
            state.metrics.denies.fetch_add(1, Ordering::Relaxed);
            Err(Problem::denied(index, &decision, authenticated))
        }
    }
}

async fn read_case(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let actor = actor(&state.node, &headers).await?;
    let (index, case) = through_gate(&state, actor, entente_store::cases::ReadCase { id }).await?;
    Ok(Json(json!({"case": case, "access_ledger_index": index})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddCaseMember {
    party: entente_core::PartyCode,
    agreement: String,
}

async fn add_case_member(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let actor = actor(&state.node, &headers).await?;
    let req: AddCaseMember = parse_json(&headers, &body)?;
    let command = entente_store::cases::AddCaseMember {
        case_id: id.clone(),
        party: req.party.clone(),
        agreement: req.agreement.clone(),
    };
    let (index, _) = through_gate(&state, actor, command).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"case_id": id, "party": req.party, "role": "member", "agreement": req.agreement, "ledger_index": index})),
    )
        .into_response())
}

/// Removes a partner party from a case this node leads; the members and the party removed
/// receive the case update.
async fn remove_case_member(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, party)): Path<(String, String)>,
) -> ApiResult {
    let actor = actor(&state.node, &headers).await?;
    let party: entente_core::PartyCode = party
        .parse()
        .map_err(|e: entente_core::ids::UnknownParty| Problem::bad_request(e.to_string()))?;
    let command =
        entente_store::cases::RemoveCaseMember { case_id: id.clone(), party: party.clone() };
    let (index, _) = through_gate(&state, actor, command).await?;
    Ok(Json(json!({"case_id": id, "party": party, "removed": true, "ledger_index": index}))
        .into_response())
}

/// A case's status (members and timeline). A peer outside the case gets the 404 of a case
/// that does not exist (the gate's answer).
async fn case_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let actor = actor(&state.node, &headers).await?;
    let read = entente_store::cases::ReadCaseStatus { case_id: id };
    let (index, s) = through_gate(&state, actor, read).await?;
    let mut body =
        serde_json::to_value(&s).map_err(|_| Problem::internal("case status not serializable"))?;
    body["access_ledger_index"] = json!(index);
    Ok(Json(body).into_response())
}

/// The incident notifications this node sent and received, with their conditions (the
/// reading is recorded).
async fn incident_notifications(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    let actor = actor(&state.node, &headers).await?;
    let read = entente_store::incidents::ReadIncidentNotifications;
    let (index, list) = through_gate(&state, actor, read).await?;
    Ok(Json(json!({"notifications": list, "access_ledger_index": index})).into_response())
}

#[derive(Deserialize)]
struct Range {
    from: u64,
    to: u64,
}

async fn ledger_entries(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<Range>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(range) =
        q.map_err(|e| Problem::bad_request(format!("{e}; expected ?from=N&to=M")))?;
    let actor = actor(&state.node, &headers).await?;
    let read = entente_store::ledger_reads::ReadLedger { from: range.from, to: range.to };
    let (index, entries) = through_gate(&state, actor, read).await?;
    let list: Vec<Value> = entries
        .iter()
        .map(|(_, bytes)| serde_json::from_slice(bytes).unwrap_or(Value::Null))
        .collect();
    Ok(Json(json!({"entries": list, "access_ledger_index": index})).into_response())
}

#[derive(Deserialize)]
struct InclusionQuery {
    index: u64,
    size: Option<u64>,
}

async fn head_size(state: &AppState, size: Option<u64>) -> Result<(u64, Vec<u8>), Problem> {
    let (head, note) = state.node.store.ledger_head().await?;
    let note = note.ok_or_else(|| {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", "the ledger is empty")
    })?;
    match size {
        None => Ok((head, note)),
        Some(s) if s <= head => {
            let cps = state.node.store.checkpoints().await?;
            cps.into_iter().find(|(cs, _)| *cs == s).ok_or_else(|| {
                Problem::bad_request(format!(
                    "no checkpoint was published at size {s}; omit size to use the latest ({head})"
                ))
            })
        }
        Some(s) => Err(Problem::bad_request(format!("size {s} exceeds the ledger size {head}"))),
    }
}

fn b64_list(hashes: &[ledger::Hash]) -> Vec<String> {
    hashes.iter().map(|h| BASE64_STANDARD.encode(h.0)).collect()
}

async fn inclusion_proof(
    State(state): State<AppState>,
    q: Result<Query<InclusionQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(q) =
        q.map_err(|e| Problem::bad_request(format!("{e}; expected ?index=N[&size=M]")))?;
    let (size, note) = head_size(&state, q.size).await?;
    if q.index >= size {
        return Err(Problem::bad_request(format!(
            "index {} is not below the tree size {size}",
            q.index
        )));
    }
    let proof = state.node.store.inclusion_proof(size, q.index).await?;
    let entry = state.node.store.entries(q.index, q.index + 1).await?;
    let leaf = entry.first().map(|(_, e)| BASE64_STANDARD.encode(ledger::record_hash(e).0));
    Ok(Json(json!({
        "index": q.index, "tree_size": size, "leaf_hash": leaf,
        "proof": b64_list(&proof), "checkpoint": String::from_utf8_lossy(&note),
    }))
    .into_response())
}

#[derive(Deserialize)]
struct ConsistencyQuery {
    old: u64,
    size: Option<u64>,
}

async fn consistency_proof(
    State(state): State<AppState>,
    q: Result<Query<ConsistencyQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| Problem::bad_request(format!("{e}; expected ?old=N[&size=M]")))?;
    let (size, note) = head_size(&state, q.size).await?;
    if q.old == 0 || q.old > size {
        return Err(Problem::bad_request(format!(
            "old size {} must be between 1 and {size}",
            q.old
        )));
    }
    let proof = state.node.store.consistency_proof(size, q.old).await?;
    Ok(Json(json!({
        "old_size": q.old, "tree_size": size, "proof": b64_list(&proof),
        "checkpoint": String::from_utf8_lossy(&note),
    }))
    .into_response())
}

/// The OpenAPI 3.1 description of this API.
pub fn openapi_document() -> Value {
    let problem = json!({"description": "RFC 9457 problem details", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
    let ok_json = |d: &str| json!({"description": d, "content": {"application/json": {}}});
    let bearer = json!([{"bearer": []}]);
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "Entente node API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Every action goes through the node's gate and is recorded in its ledger; refusals (401, 403) carry the ledger index of their record."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Problem": {"type": "object", "required": ["type", "title", "status", "detail"], "properties": {
                    "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                    "detail": {"type": "string"}, "ledger_index": {"type": "integer"},
                    "rules": {"type": "array", "items": {"type": "string"}}}},
                "OpenCase": {"type": "object", "required": ["id", "title"], "additionalProperties": false, "properties": {
                    "id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
                    "title": {"type": "string", "minLength": 1, "maxLength": 500},
                    "concepts": {"type": "array", "items": {"type": "string"}}}}
            }
        },
        "paths": {
            "/healthz": {"get": {"summary": "Liveness and ledger size", "responses": {"200": ok_json("healthy")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition format", "content": {"text/plain": {}}}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": ok_json("OpenAPI 3.1")}}},
            "/ledger/checkpoint": {"get": {"summary": "Latest signed checkpoint (C2SP tlog-checkpoint in a signed note)", "responses": {"200": {"description": "signed note", "content": {"text/plain": {}}}, "404": problem}}},
            "/ledger/key": {"get": {"summary": "The ledger's C2SP signed-note verifier key (pin it out of band)", "responses": {"200": {"description": "verifier key", "content": {"text/plain": {}}}}}},
            "/ledger/tile/{path}": {"get": {"summary": "C2SP tlog-tiles hash tile or entry bundle", "parameters": [{"name": "path", "in": "path", "required": true, "schema": {"type": "string"}}], "responses": {"200": {"description": "tile bytes", "content": {"application/octet-stream": {}}}, "404": problem}}},
            "/api/v1/whoami": {"get": {"summary": "The caller as the node sees it", "security": bearer, "responses": {"200": ok_json("actor")}}},
            "/api/v1/cases": {"post": {"summary": "Open a case", "security": bearer,
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OpenCase"}}}},
                "responses": {"201": ok_json("opened"), "400": problem, "401": problem, "403": problem, "409": problem, "413": problem, "415": problem, "422": problem}}},
            "/api/v1/requests": {"post": {"summary": "Draft a cross-border request under an agreement (the legal basis is checked: in force, parties bound, kind provided)", "security": bearer,
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["id", "case_id", "kind", "agreement", "to"], "additionalProperties": false, "properties": {
                    "id": {"type": "string"}, "case_id": {"type": "string"},
                    "kind": {"enum": ["preservation", "production", "subscriber-data", "traffic-data", "emergency-disclosure", "mla", "jit-invitation"]},
                    "agreement": {"type": "string"}, "to": {"type": "string"}, "emergency": {"type": "boolean"}}}}}},
                "responses": {"201": ok_json("the request with its clocks"), "400": problem, "401": problem, "403": problem, "404": problem, "409": problem, "415": problem, "422": problem}}},
            "/api/v1/requests/{id}": {"get": {"summary": "A request: state, history, legal clocks (the access is recorded)", "security": bearer,
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": ok_json("the request"), "401": problem, "403": problem, "404": problem}}},
            "/api/v1/requests/{id}/events": {"post": {"summary": "Move a request through its states (illegal transitions: 409)", "security": bearer,
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["event"], "additionalProperties": false, "properties": {
                    "event": {"type": "string"}, "grounds": {"type": "array", "items": {"type": "string"}}}}}}},
                "responses": {"200": ok_json("the request"), "400": problem, "401": problem, "403": problem, "404": problem, "409": problem, "415": problem}}},
            "/api/v1/data": {"post": {"summary": "Record a datum held for a case", "security": bearer,
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["id", "case_id", "category", "content"], "additionalProperties": false, "properties": {
                    "id": {"type": "string"}, "case_id": {"type": "string"},
                    "category": {"enum": ["subscriber", "traffic", "content", "threat-intel", "personal-data-of-third-parties", "case-information"]},
                    "content": {"type": "object"}}}}}},
                "responses": {"201": ok_json("recorded"), "400": problem, "401": problem, "403": problem, "404": problem, "409": problem, "415": problem, "422": problem}}},
            "/api/v1/data/{id}/share": {"post": {"summary": "Send a datum to another party under the agreements in force (minimized, with its travelling conditions, via the outbox)", "security": bearer,
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["to", "purpose"], "additionalProperties": false, "properties": {
                    "to": {"type": "string"},
                    "purpose": {"enum": ["criminal-investigation", "prosecution", "incident-response", "threat-intelligence", "joint-investigation"]},
                    "request_kind": {"enum": ["preservation", "production", "subscriber-data", "traffic-data", "emergency-disclosure", "mla", "jit-invitation"]}}}}}},
                "responses": {"200": ok_json("permitted; the outbox message"), "400": problem, "401": problem, "403": problem, "404": problem, "409": problem, "415": problem, "422": problem}}},
            "/api/v1/data/{id}/consents": {"post": {"summary": "As originator, consent to the onward transfer of a datum", "security": bearer,
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["holder", "recipient"], "additionalProperties": false, "properties": {
                    "holder": {"type": "string"}, "recipient": {"type": "string"}}}}}},
                "responses": {"200": ok_json("permitted; the outbox message"), "400": problem, "401": problem, "403": problem, "404": problem, "409": problem, "415": problem}}},
            "/api/v1/cases/{id}": {"get": {"summary": "Read a case (the access is recorded)", "security": bearer,
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": ok_json("the case"), "401": problem, "403": problem, "404": problem}}},
            "/api/v1/ledger/entries": {"get": {"summary": "Ledger entries from..to (oversight roles; the access is recorded)", "security": bearer,
                "parameters": [{"name": "from", "in": "query", "required": true, "schema": {"type": "integer"}}, {"name": "to", "in": "query", "required": true, "schema": {"type": "integer"}}],
                "responses": {"200": ok_json("entries"), "400": problem, "401": problem, "403": problem, "422": problem}}},
            "/api/v1/ledger/proof/inclusion": {"get": {"summary": "Inclusion proof of an entry",
                "parameters": [{"name": "index", "in": "query", "required": true, "schema": {"type": "integer"}}, {"name": "size", "in": "query", "required": false, "schema": {"type": "integer"}}],
                "responses": {"200": ok_json("proof"), "400": problem, "404": problem}}},
            "/api/v1/ledger/proof/consistency": {"get": {"summary": "Consistency proof between two tree sizes",
                "parameters": [{"name": "old", "in": "query", "required": true, "schema": {"type": "integer"}}, {"name": "size", "in": "query", "required": false, "schema": {"type": "integer"}}],
                "responses": {"200": ok_json("proof"), "400": problem, "404": problem}}}
        }
    });
    // Cases across borders (kept apart: one `json!` of every path exceeds the macro
    // recursion limit).
    doc["paths"]["/api/v1/alerts"] = json!({"get": {"summary": "Alerts on the legal clocks of open requests: overdue, or due within 24 hours (the access is recorded)", "security": bearer,
        "responses": {"200": {"description": "alerts", "content": {"application/json": {}}}, "401": problem, "403": problem}}});
    doc["paths"]["/api/v1/cases/{id}/members"] = json!({"post": {"summary": "Add a party to a case under a JIT agreement that is loaded, in force and binds this node's party and it (otherwise 422; already a member: 409); central authority", "security": bearer,
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["party", "agreement"], "additionalProperties": false, "properties": {
                    "party": {"type": "string", "description": "ISO 3166-1 alpha-2 or EU"},
                    "agreement": {"type": "string"}}}}}},
                "responses": {"201": ok_json("the member added, with the ledger index"), "400": problem, "401": problem, "403": problem, "404": problem, "409": problem, "415": problem, "422": problem}}});
    doc["paths"]["/api/v1/cases/{id}/members/{party}"] = json!({"delete": {"summary": "Remove a partner party from a case this node leads (it leaves the JIT); the remaining members and the party removed receive the case update; the lead cannot be removed (409); central authority", "security": bearer,
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}, {"name": "party", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": ok_json("the member removed, with the ledger index"), "400": problem, "401": problem, "403": problem, "404": problem, "409": problem}}});
    doc["paths"]["/api/v1/incidents/notifications"] = json!({"get": {"summary": "The incident notifications this node sent to and received from partners: the notice (incident facts and the sender's assessment of the obligations), the agreement and the conditions that travelled with it (the access is recorded); CSIRT, central authority, investigator, DPO", "security": bearer,
                "responses": {"200": ok_json("the notifications"), "401": problem, "403": problem}}});
    doc["paths"]["/api/v1/cases/{id}/status"] = json!({"get": {"summary": "A case's status: the case, its member parties (lead and JIT members) and the timeline of the ledger entries on the case, its requests and its data items (the access is recorded); a party outside the case gets 404 as for a case that does not exist", "security": bearer,
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": ok_json("the case status"), "401": problem, "403": problem, "404": problem}}});
    // Evidence: a streamed upload (crates/entente-node/src/evidence_api.rs).
    let q = |name: &str, required: bool, d: &str| json!({"name": name, "in": "query", "required": required, "description": d, "schema": {"type": "string"}});
    doc["paths"]["/api/v1/cases/{id}/evidence"] = json!({"post": {"summary": "Add an evidence item to a case: the raw body is its content, streamed into the encrypted blob store (SHA-256 computed while it is stored, never held in memory whole); custody event `acquired` with the caller as actor. An expected digest (Repr-Digest or Content-Digest `sha-256=:<base64>:`, RFC 9530, or the sha256 parameter) that differs: 422 and nothing stored; a body over the node's max_upload_bytes: 413; a body that breaks off: nothing stored", "security": bearer,
        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
            q("description", true, "what the content is"), q("id", false, "item id (default: CASE-<first 12 hex digits of its SHA-256>)"),
            q("file_name", false, "original file name"), q("source", false, "where it came from"),
            q("collected_at", false, "when it was collected (RFC 3339)"),
            q("category", false, "subscriber, traffic, content (default), threat-intel, personal-data-of-third-parties, case-information"),
            q("reason", false, "why it is acquired"), q("legal_basis", false, "request or agreement id"),
            q("sha256", false, "expected SHA-256, 64 hex digits"),
            {"name": "Repr-Digest", "in": "header", "required": false, "schema": {"type": "string"}, "description": "sha-256=:<base64>: (RFC 9530)"}],
        "requestBody": {"required": true, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}, "*/*": {"schema": {"type": "string", "format": "binary"}}}},
        "responses": {"201": ok_json("the item: id, sha256, size, custody chain, ledger index (Repr-Digest of the content in the response headers)"), "400": problem, "401": problem, "403": problem, "404": problem, "409": problem, "413": problem, "422": problem}}});
    // Redress (kept apart: one `json!` of every path exceeds the macro recursion limit).
    doc["paths"]["/api/v1/complaints"] = json!({"post": {"summary": "File an individual's complaint (redress) about an identifier (e-mail, account, IP address); only its keyed hash is stored, the answer is due in 30 days (Entente's operating default: the research notes give no redress deadline); the answer lists the data items and flows found", "security": bearer,
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["id", "identifier"], "additionalProperties": false, "properties": {
                    "id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
                    "identifier": {"type": "string", "minLength": 1, "maxLength": 1000}}}}}},
                "responses": {"201": ok_json("the complaint: deadline, state, data items and flows found"), "400": problem, "401": problem, "403": problem, "409": problem, "415": problem, "422": problem}}});
    doc["paths"]["/api/v1/complaints/{id}"] = json!({"get": {"summary": "A complaint: deadline, state, decision, and the data items and flows out of this node (recipient, category, agreement, ledger index) found for its identifier (the access is recorded)", "security": bearer,
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": ok_json("the complaint"), "401": problem, "403": problem, "404": problem}}});
    doc["paths"]["/api/v1/complaints/{id}/answer"] = json!({"post": {"summary": "Record the decision on a complaint and the answer to the complainant (once; again: 409); only digests enter the ledger", "security": bearer,
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["decision", "answer"], "additionalProperties": false, "properties": {
                    "decision": {"enum": ["granted", "refused", "partially-granted"]},
                    "answer": {"type": "string", "minLength": 1, "maxLength": 20000}}}}}},
                "responses": {"200": ok_json("the answered complaint"), "400": problem, "401": problem, "403": problem, "404": problem, "409": problem, "415": problem, "422": problem}}});
    // Threat intelligence: TAXII 2.1 (crates/entente-node/src/taxii.rs); TAXII media types and
    // error messages, described by the TAXII 2.1 specification.
    let taxii = |summary: &str| json!({"summary": summary, "security": bearer, "responses": {"200": {"description": "application/taxii+json;version=2.1"}, "202": {"description": "status resource (POST)"}, "400": {"description": "TAXII error message"}, "401": {"description": "TAXII error message"}, "403": {"description": "TAXII error message"}, "404": {"description": "TAXII error message"}, "406": {"description": "TAXII error message"}, "409": {"description": "TAXII error message"}, "413": {"description": "TAXII error message"}, "415": {"description": "TAXII error message"}, "422": {"description": "TAXII error message"}}});
    for (path, summary) in [
        ("/taxii2/", "TAXII 2.1 discovery"),
        ("/taxii2/api/", "TAXII 2.1 API root"),
        ("/taxii2/api/status/{id}/", "Status of an import"),
        ("/taxii2/api/collections/", "Collections"),
        ("/taxii2/api/collections/{id}/", "A collection"),
        (
            "/taxii2/api/collections/{id}/manifest/",
            "Manifest (each object decided under TLP 2.0; the page is recorded)",
        ),
        (
            "/taxii2/api/collections/{id}/objects/{object_id}/",
            "An object (decided under TLP 2.0; recorded)",
        ),
        (
            "/taxii2/api/collections/{id}/objects/{object_id}/versions/",
            "Versions of an object (decided under TLP 2.0; recorded)",
        ),
    ] {
        doc["paths"][path] = json!({"get": taxii(summary)});
    }
    doc["paths"]["/taxii2/api/collections/{id}/objects/"] = json!({
        "get": taxii("Objects: added_after, limit, next (stateless, HMAC-bound to the query), match[id|type|version|spec_version]; each object decided under TLP 2.0; one ledger entry per page"),
        "post": taxii("Add objects (an envelope, all or nothing): 202 with the status resource; 409, 413, 415, 422 as TAXII error messages")});
    doc
}
