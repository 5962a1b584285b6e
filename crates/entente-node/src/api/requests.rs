//! Cross-border requests: drafting one under an agreement, moving it through its states, reading
//! it (with the incoming check the requested party's central authority sees), and the alerts on
//! the legal clocks of open requests.

use super::ProblemDetails;
use crate::server::{ApiResult, AppState, Problem, authenticated, json, parse_json, through_gate};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use entente_core::Stamp;
use entente_policy::request::{Clock, ClockStatus, Request, RequestEvent};
use entente_store::{GateCommand, Principal};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_request))
        .routes(routes!(read_request))
        .routes(routes!(request_event))
        .routes(routes!(alerts))
}

/// A request to draft.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRequest {
    /// The request's id.
    pub(crate) id: String,
    /// The case it is made for.
    pub(crate) case_id: String,
    /// Its kind.
    #[schema(schema_with = super::request_kind)]
    pub(crate) kind: entente_policy::agreement::RequestKind,
    /// The agreement it is made under.
    pub(crate) agreement: String,
    /// The requested party.
    #[schema(schema_with = super::party)]
    pub(crate) to: entente_core::PartyCode,
    /// Whether it is an emergency request.
    #[serde(default)]
    pub(crate) emergency: bool,
    /// The provisions of this party's law the conduct falls under (lexicon ids).
    #[serde(default)]
    pub(crate) provisions: Vec<String>,
}

/// An event of a request's life.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RequestEvent)]
pub(crate) struct RequestEventBody {
    /// `submit`, `receive`, `start-review`, `approve`, `approve-partially`, `refuse`,
    /// `start-execution`, `answer`, `close`, `withdraw`, `expire`, `extend`, `suspend` or
    /// `resume`.
    pub(crate) event: String,
    /// The refusal grounds of a refusal or partial approval.
    #[serde(default)]
    pub(crate) grounds: Vec<String>,
}

/// One applied event.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct HistoryEntry {
    /// The event's name.
    pub(crate) event: String,
    /// The refusal grounds it carried.
    pub(crate) grounds: Vec<String>,
    /// When (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub(crate) at: Stamp,
}

/// A legal clock at the instant of the response.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct ClockView {
    /// What it measures.
    pub(crate) kind: String,
    /// The duration as written (`PT8H`, `P10D`).
    pub(crate) duration: String,
    /// The rule's citation.
    pub(crate) basis: String,
    /// Its verification status (V1, V2, P, U).
    pub(crate) status_of_basis: String,
    /// True when the basis is unverified (U).
    pub(crate) unverified: bool,
    /// The event that started it.
    pub(crate) start_event: String,
    /// When it started (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub(crate) started_at: Stamp,
    /// The due instant (UTC).
    #[schema(value_type = String, format = DateTime)]
    pub(crate) due_utc: Stamp,
    /// The due instant in the clock's time zone.
    pub(crate) due_local: String,
    /// The IANA time zone used.
    pub(crate) time_zone: String,
    /// Why this time zone (a documented default, not a legal designation).
    pub(crate) time_zone_note: String,
    /// Seconds left (negative when overdue).
    pub(crate) remaining_seconds: i64,
    /// Running, met, missed, stopped, ….
    pub(crate) status: String,
}

impl ClockView {
    fn new(c: &Clock, now: Timestamp) -> Self {
        ClockView {
            kind: c.kind.name().to_owned(),
            duration: c.duration.text.clone(),
            basis: c.basis.citation.clone(),
            status_of_basis: c.basis.status.as_str().to_owned(),
            unverified: c.unverified(),
            start_event: c.start_event.to_owned(),
            started_at: Stamp::new(c.started_at),
            due_utc: Stamp::new(c.due),
            due_local: c.due_local().to_string(),
            time_zone: c.time_zone_name.to_owned(),
            time_zone_note: c.time_zone_note.clone(),
            remaining_seconds: c.remaining(now).as_secs(),
            status: c.status(now).to_string(),
        }
    }
}

/// A request: its state, history and each legal clock at the instant of the response.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = Request)]
pub(crate) struct RequestView {
    /// The request's id.
    pub(crate) id: String,
    /// Its kind.
    #[schema(schema_with = super::request_kind)]
    pub(crate) kind: String,
    /// The agreement it is made under.
    pub(crate) agreement: String,
    /// The requesting party.
    #[schema(schema_with = super::party)]
    pub(crate) from: String,
    /// The requested party.
    #[schema(schema_with = super::party)]
    pub(crate) to: String,
    /// Whether it is an emergency request.
    pub(crate) emergency: bool,
    /// Its state.
    pub(crate) state: String,
    /// Refusal-ground ids of a refusal or partial approval.
    pub(crate) grounds: Vec<String>,
    /// The requested party's IANA time zone.
    pub(crate) time_zone: String,
    /// Every applied event, in order.
    pub(crate) history: Vec<HistoryEntry>,
    /// The legal clocks.
    pub(crate) clocks: Vec<ClockView>,
    /// The ledger entry of this command (the drafting, the event, or the reading).
    pub(crate) ledger_index: u64,
    /// On a reading: the incoming check for the requested party's central authority (dual
    /// criminality per provision, legal basis, refusal grounds, clocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub(crate) incoming_check: Option<Value>,
}

impl RequestView {
    fn new(r: &Request, now: Timestamp, ledger_index: u64) -> Self {
        RequestView {
            id: r.id.clone(),
            kind: r.kind.as_str().to_owned(),
            agreement: r.agreement.clone(),
            from: r.from.to_string(),
            to: r.to.to_string(),
            emergency: r.emergency,
            state: r.state.to_string(),
            grounds: r.grounds.clone(),
            time_zone: r.time_zone_name().to_owned(),
            history: r
                .history
                .iter()
                .map(|(e, at)| HistoryEntry {
                    event: e.name().to_owned(),
                    grounds: e.grounds().to_vec(),
                    at: Stamp::new(*at),
                })
                .collect(),
            clocks: r.clocks.iter().map(|c| ClockView::new(c, now)).collect(),
            ledger_index,
            incoming_check: None,
        }
    }
}

/// A clock overdue or due within 24 hours.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct Alert {
    /// `overdue` or `due-soon`.
    pub(crate) alert: String,
    /// The request's id.
    pub(crate) request: String,
    /// Its kind.
    #[schema(schema_with = super::request_kind)]
    pub(crate) kind: String,
    /// The requested party.
    #[schema(schema_with = super::party)]
    pub(crate) to: String,
    /// The clock.
    pub(crate) clock: String,
    /// The due instant (UTC).
    #[schema(value_type = String, format = DateTime)]
    pub(crate) due_utc: Stamp,
    /// The due instant in the clock's time zone.
    pub(crate) due_local: String,
    /// Seconds left (negative when overdue).
    pub(crate) remaining_seconds: i64,
    /// True when the clock's basis is unverified.
    pub(crate) unverified: bool,
}

/// The alerts on the legal clocks of open requests (the reading is recorded).
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct Alerts {
    /// How many requests are open.
    pub(crate) open_requests: usize,
    /// The alerts.
    pub(crate) alerts: Vec<Alert>,
    /// The ledger entry that recorded this reading.
    pub(crate) access_ledger_index: u64,
}

async fn request_response<C: GateCommand<Output = Request>>(
    state: &AppState,
    actor: Principal,
    command: C,
    created: bool,
) -> ApiResult {
    let (index, r) = through_gate(state, actor, command).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    json(status, &RequestView::new(&r, Timestamp::now(), index))
}

#[utoipa::path(post, path = "/api/v1/requests", tag = "requests",
    summary = "Draft a cross-border request under an agreement (the legal basis is checked: in force, parties bound, kind provided)",
    security(("bearer" = [])), request_body = CreateRequest,
    responses((status = 201, description = "the request with its clocks", body = RequestView), super::WriteProblems))]
async fn create_request(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let actor = authenticated(&state.node, &headers).await?;
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
        id: crate::server::parse_id(req.id)?,
        case_id: crate::server::parse_id(req.case_id)?,
        kind: req.kind,
        agreement: req.agreement,
        to: req.to,
        emergency: req.emergency,
        provisions: req.provisions,
    };
    request_response(&state, actor, command, true).await
}

#[utoipa::path(post, path = "/api/v1/requests/{id}/events", tag = "requests",
    summary = "Move a request through its states (illegal transitions: 409)",
    security(("bearer" = [])), params(("id" = String, Path, description = "the request's id")),
    request_body = RequestEventBody,
    responses((status = 200, description = "the request", body = RequestView),
        (status = 400, response = ProblemDetails), (status = 401, response = ProblemDetails),
        (status = 403, response = ProblemDetails), (status = 404, response = ProblemDetails),
        (status = 409, response = ProblemDetails), (status = 415, response = ProblemDetails)))]
async fn request_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let actor = authenticated(&state.node, &headers).await?;
    let req: RequestEventBody = parse_json(&headers, &body)?;
    let event = RequestEvent::from_name(&req.event, req.grounds).ok_or_else(|| {
        Problem::bad_request(format!(
            "event `{}`: expected one of submit, receive, start-review, approve, approve-partially, refuse, start-execution, answer, close, withdraw, expire, extend, suspend, resume",
            req.event
        ))
    })?;
    let command =
        entente_store::requests::TransitionRequest { id: crate::server::parse_id(id)?, event };
    request_response(&state, actor, command, false).await
}

/// The legal clocks of every open request; overdue and due-within-24-h ones are flagged.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "requests",
    summary = "Alerts on the legal clocks of open requests: overdue, or due within 24 hours (the access is recorded)",
    security(("bearer" = [])),
    responses((status = 200, description = "alerts", body = Alerts),
        (status = 401, response = ProblemDetails), (status = 403, response = ProblemDetails)))]
async fn alerts(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    let actor = authenticated(&state.node, &headers).await?;
    let now = Timestamp::now();
    let (index, requests) =
        through_gate(&state, actor, entente_store::requests::ReadAlerts).await?;
    let mut alerts = Vec::new();
    for r in &requests {
        for c in &r.clocks {
            let status = c.status(now);
            let remaining = c.remaining(now).as_secs();
            let alert = match status {
                ClockStatus::Missed => "overdue",
                ClockStatus::Running if remaining < 24 * 3600 => "due-soon",
                _ => continue,
            };
            alerts.push(Alert {
                alert: alert.to_owned(),
                request: r.id.clone(),
                kind: r.kind.as_str().to_owned(),
                to: r.to.to_string(),
                clock: c.kind.name().to_owned(),
                due_utc: Stamp::new(c.due),
                due_local: c.due_local().to_string(),
                remaining_seconds: remaining,
                unverified: c.unverified(),
            });
        }
    }
    json(
        StatusCode::OK,
        &Alerts { open_requests: requests.len(), alerts, access_ledger_index: index },
    )
}

#[utoipa::path(get, path = "/api/v1/requests/{id}", tag = "requests",
    summary = "A request: state, history, legal clocks (the access is recorded)",
    security(("bearer" = [])), params(("id" = String, Path, description = "the request's id")),
    responses((status = 200, description = "the request", body = RequestView), super::ReadProblems))]
async fn read_request(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let actor = authenticated(&state.node, &headers).await?;
    let (index, r) = through_gate(
        &state,
        actor,
        entente_store::requests::ReadRequest { id: crate::server::parse_id(id.clone())? },
    )
    .await?;
    let now = Timestamp::now();
    let mut view = RequestView::new(&r, now, index);
    // The incoming check for the requested party's central authority.
    let provisions = state.node.store.request_provisions(&id).await?;
    if let (Some(lexicon), Some(agreement)) =
        (&state.lexicon, state.node.gate.engine().agreement(&r.agreement))
    {
        let check =
            entente_policy::incoming::incoming_check(&r, &provisions, agreement, lexicon, now);
        view.incoming_check = Some(
            serde_json::to_value(&check)
                .map_err(|_| Problem::internal("cannot encode the check"))?,
        );
    }
    json(StatusCode::OK, &view)
}
