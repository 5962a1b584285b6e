//! Cases: opening, reading, the parties that share one (JIT members) and its status.

use super::ProblemDetails;
use super::flows::ConditionsView;
use crate::server::{
    ApiResult, AppState, MAX_BODY, Problem, authenticated, json, parse_id, parse_json, through_gate,
};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use entente_core::Stamp;
use entente_store::CaseRecord;
use entente_store::cases::{CaseListing, CaseMirror, CaseStatus, ListCases, TimelineEntry};
use entente_wire::CaseMember;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(open_case, list_cases))
        .routes(routes!(read_case))
        .routes(routes!(add_case_member))
        .routes(routes!(remove_case_member))
        .routes(routes!(case_status))
}

/// A case to open.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpenCase {
    /// The case's id.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub(crate) id: String,
    /// Its title (never enters the ledger).
    #[schema(min_length = 1, max_length = 500)]
    pub(crate) title: String,
    /// Offence concepts (lexicon ids).
    #[serde(default)]
    pub(crate) concepts: Vec<String>,
}

/// A case opened.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct CaseOpened {
    /// The case's id.
    pub(crate) id: String,
    /// The ledger entry that recorded the opening.
    pub(crate) ledger_index: u64,
}

/// A case.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = Case)]
pub(crate) struct CaseView {
    /// The case's id.
    pub(crate) id: String,
    /// Its title.
    pub(crate) title: String,
    /// Offence concepts (lexicon ids).
    pub(crate) concepts: Vec<String>,
    /// Who opened it.
    pub(crate) opened_by: String,
    /// When (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub(crate) opened_at: Stamp,
    /// The ledger entry that recorded the opening.
    pub(crate) ledger_index: u64,
}

impl From<&CaseRecord> for CaseView {
    fn from(c: &CaseRecord) -> Self {
        CaseView {
            id: c.id.clone(),
            title: c.title.clone(),
            concepts: c.concepts.clone(),
            opened_by: c.opened_by.clone(),
            opened_at: c.opened_at,
            ledger_index: c.ledger_index,
        }
    }
}

/// A case, read (the reading is recorded).
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct CaseRead {
    /// The case.
    pub(crate) case: CaseView,
    /// The ledger entry that recorded this reading.
    pub(crate) access_ledger_index: u64,
}

/// A party to add to a case.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddCaseMember {
    /// ISO 3166-1 alpha-2 or EU.
    #[schema(schema_with = super::party)]
    pub(crate) party: entente_core::PartyCode,
    /// The JIT agreement it joins under.
    pub(crate) agreement: String,
}

/// A member added.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct MemberAdded {
    /// The case.
    pub(crate) case_id: String,
    /// The party added.
    #[schema(schema_with = super::party)]
    pub(crate) party: String,
    /// Always `member`.
    pub(crate) role: String,
    /// The JIT agreement.
    pub(crate) agreement: String,
    /// The ledger entry that recorded it.
    pub(crate) ledger_index: u64,
}

/// A member removed.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct MemberRemoved {
    /// The case.
    pub(crate) case_id: String,
    /// The party removed.
    #[schema(schema_with = super::party)]
    pub(crate) party: String,
    /// Always true.
    pub(crate) removed: bool,
    /// The ledger entry that recorded it.
    pub(crate) ledger_index: u64,
}

/// A party that shares a case.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = CaseMember)]
pub(crate) struct CaseMemberView {
    /// The member party.
    #[schema(schema_with = super::party)]
    pub(crate) party: String,
    /// `lead` (the party that opened the case) or `member`.
    pub(crate) role: String,
    /// The JIT agreement the party was added under (none for the lead).
    pub(crate) agreement: Option<String>,
    /// When it became a member (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub(crate) added_at: Stamp,
    /// The ledger entry that recorded it.
    pub(crate) ledger_index: u64,
}

impl From<&CaseMember> for CaseMemberView {
    fn from(m: &CaseMember) -> Self {
        CaseMemberView {
            party: m.party.clone(),
            role: m.role.clone(),
            agreement: m.agreement.clone(),
            added_at: m.added_at,
            ledger_index: m.ledger_index,
        }
    }
}

/// One recorded action on a case, its requests or its data items.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = TimelineEntry)]
pub(crate) struct TimelineEntryView {
    /// Ledger index.
    pub(crate) index: u64,
    /// When (RFC 3339).
    pub(crate) time: String,
    /// Who asked.
    pub(crate) actor: String,
    /// The action (`case.open`, `datum.share`, …).
    pub(crate) action: String,
    /// `permit` or `deny`.
    pub(crate) decision: String,
}

impl From<&TimelineEntry> for TimelineEntryView {
    fn from(e: &TimelineEntry) -> Self {
        TimelineEntryView {
            index: e.index,
            time: e.time.clone(),
            actor: e.actor.clone(),
            action: e.action.clone(),
            decision: e.decision.clone(),
        }
    }
}

/// What a member node knows of a partner-led case: the lead and its last update.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = CaseMirror)]
pub(crate) struct CaseMirrorView {
    /// The lead party (the only one whose updates are applied).
    #[schema(schema_with = super::party)]
    pub(crate) lead: String,
    /// The lead's ledger index of the change last applied.
    pub(crate) lead_index: u64,
    /// That change (`member-added DE`, …).
    pub(crate) change: String,
    /// When the last update was applied here (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub(crate) updated_at: Stamp,
    /// The conditions the update travelled with.
    pub(crate) conditions: ConditionsView,
}

impl From<&CaseMirror> for CaseMirrorView {
    fn from(m: &CaseMirror) -> Self {
        CaseMirrorView {
            lead: m.lead.clone(),
            lead_index: m.lead_index,
            change: m.change.clone(),
            updated_at: m.updated_at,
            conditions: (&m.conditions).into(),
        }
    }
}

/// A case's status: the case, its members and its timeline (the reading is recorded).
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = CaseStatus)]
pub(crate) struct CaseStatusView {
    /// The case.
    pub(crate) case: CaseView,
    /// Its members, the lead first.
    pub(crate) members: Vec<CaseMemberView>,
    /// Every recorded action on it, oldest first.
    pub(crate) timeline: Vec<TimelineEntryView>,
    /// For a case led by a partner: this node's mirror of it, as the lead's last update gave it
    /// (the members above are the lead's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) mirror: Option<CaseMirrorView>,
    /// The ledger entry that recorded this reading.
    pub(crate) access_ledger_index: u64,
}

impl CaseStatusView {
    pub(crate) fn new(s: &CaseStatus, access_ledger_index: u64) -> Self {
        CaseStatusView {
            case: (&s.case).into(),
            members: s.members.iter().map(Into::into).collect(),
            timeline: s.timeline.iter().map(Into::into).collect(),
            mirror: s.mirror.as_ref().map(Into::into),
            access_ledger_index,
        }
    }
}

/// Which page of the case listing.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// The last case id of the previous page (its `next_after`); none for the first page.
    after: Option<String>,
    /// How many cases at most, 1 to 200 (default 50).
    limit: Option<u32>,
}

/// One case of the listing, with where it stands across borders.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = CaseSummary)]
pub(crate) struct CaseSummaryView {
    /// The case's id.
    pub(crate) id: String,
    /// Its title; none for a partner-led case (the title stays with the lead).
    pub(crate) title: Option<String>,
    /// The lead party.
    #[schema(schema_with = super::party)]
    pub(crate) lead: String,
    /// True for a case this node's party leads.
    pub(crate) led_here: bool,
    /// Offence concepts (lexicon ids).
    pub(crate) concepts: Vec<String>,
    /// Member parties, the lead first.
    pub(crate) members: Vec<String>,
    /// When it was opened (for a partner-led case: when this node first learnt of it).
    #[schema(value_type = String, format = DateTime)]
    pub(crate) opened_at: Stamp,
    /// For a partner-led case: the lead's last change applied here (`member-added DE`, …).
    pub(crate) last_change: Option<String>,
    /// When that change was applied here.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub(crate) last_change_at: Option<Stamp>,
    /// Requests of the case still open.
    pub(crate) open_requests: u64,
    /// Open requests with a clock past its deadline.
    pub(crate) overdue_requests: u64,
    /// The earliest deadline still running among its open requests.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub(crate) next_due: Option<Stamp>,
    /// The request that deadline belongs to.
    pub(crate) next_due_request: Option<String>,
    /// The rule that set that deadline (its citation).
    pub(crate) next_due_rule: Option<String>,
    /// That rule's verification status (V1, V2, P, U).
    pub(crate) next_due_rule_status: Option<String>,
}

/// A page of the case listing (the reading is recorded).
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct CaseList {
    /// The cases, in order of id.
    pub(crate) cases: Vec<CaseSummaryView>,
    /// The `after` of the next page; none on the last page.
    pub(crate) next_after: Option<String>,
    /// The ledger entry that recorded this reading.
    pub(crate) access_ledger_index: u64,
}

impl CaseList {
    pub(crate) fn new(l: &CaseListing, access_ledger_index: u64) -> Self {
        CaseList {
            cases: l
                .cases
                .iter()
                .map(|c| CaseSummaryView {
                    id: c.id.clone(),
                    title: c.title.clone(),
                    lead: c.lead.clone(),
                    led_here: c.led_here,
                    concepts: c.concepts.clone(),
                    members: c.members.clone(),
                    opened_at: c.opened_at,
                    last_change: c.last_change.as_ref().map(|(what, _)| what.clone()),
                    last_change_at: c.last_change.as_ref().map(|(_, at)| *at),
                    open_requests: c.open_requests,
                    overdue_requests: c.overdue_requests,
                    next_due: c.next_due.as_ref().map(|n| n.due),
                    next_due_request: c.next_due.as_ref().map(|n| n.request.clone()),
                    next_due_rule: c.next_due.as_ref().map(|n| n.rule.clone()),
                    next_due_rule_status: c.next_due.as_ref().map(|n| n.status.clone()),
                })
                .collect(),
            next_after: l.next_after.clone(),
            access_ledger_index,
        }
    }
}

/// The page size when none is asked.
pub(crate) const DEFAULT_PAGE: u32 = 50;

#[utoipa::path(get, path = "/api/v1/cases", tag = "cases",
    summary = "The cases this node holds, its own and the partner-led ones it mirrors, a page at a time in order of id, with their members and open requests (investigator, central authority, DPO; each page read is recorded)",
    security(("bearer" = [])), params(ListQuery),
    responses((status = 200, description = "a page of cases", body = CaseList),
        (status = 400, response = ProblemDetails), (status = 401, response = ProblemDetails),
        (status = 403, response = ProblemDetails), (status = 422, response = ProblemDetails)))]
async fn list_cases(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let actor = authenticated(&state.node, &headers).await?;
    let Query(q) =
        q.map_err(|e| Problem::bad_request(format!("{e}; expected ?after=CASE-ID&limit=N")))?;
    let after = q.after.map(parse_id).transpose()?;
    let command = ListCases::new(after, q.limit.unwrap_or(DEFAULT_PAGE))?;

    let (index, listing) = through_gate(&state, actor, command).await?;
    json(StatusCode::OK, &CaseList::new(&listing, index))
}

#[utoipa::path(post, path = "/api/v1/cases", tag = "cases", summary = "Open a case",
    security(("bearer" = [])), request_body = OpenCase,
    responses((status = 201, description = "opened", body = CaseOpened,
            headers(("Location" = String, description = "the case's URL"))),
        (status = 400, response = ProblemDetails), (status = 401, response = ProblemDetails),
        (status = 403, response = ProblemDetails), (status = 409, response = ProblemDetails),
        (status = 413, response = ProblemDetails), (status = 415, response = ProblemDetails),
        (status = 422, response = ProblemDetails)))]
async fn open_case(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult {
    let actor = authenticated(&state.node, &headers).await?;
    // A body over MAX_BODY is refused as a problem, like every other error.
    let body = body.map_err(|e| {
        Problem::new(
            e.status(),
            "body",
            "The request body cannot be read",
            format!("{} (the limit is {MAX_BODY} bytes)", e.body_text()),
        )
    })?;
    let req: OpenCase = parse_json(&headers, &body)?;
    let id = req.id.clone();
    let (index, _) = through_gate(
        &state,
        actor,
        entente_store::cases::OpenCase {
            id: parse_id(req.id)?,
            title: req.title,
            concepts: req.concepts,
        },
    )
    .await?;
    let mut resp = json(StatusCode::CREATED, &CaseOpened { id: id.clone(), ledger_index: index })?;
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/cases/{id}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

#[utoipa::path(get, path = "/api/v1/cases/{id}", tag = "cases",
    summary = "Read a case (the access is recorded)", security(("bearer" = [])),
    params(("id" = String, Path, description = "the case's id")),
    responses((status = 200, description = "the case", body = CaseRead), super::ReadProblems))]
async fn read_case(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let actor = authenticated(&state.node, &headers).await?;
    let (index, case) =
        through_gate(&state, actor, entente_store::cases::ReadCase { id: parse_id(id)? }).await?;
    json(StatusCode::OK, &CaseRead { case: (&case).into(), access_ledger_index: index })
}

#[utoipa::path(post, path = "/api/v1/cases/{id}/members", tag = "cases",
    summary = "Add a party to a case under a JIT agreement that is loaded, in force and binds this node's party and it (otherwise 422; already a member: 409); central authority",
    security(("bearer" = [])), params(("id" = String, Path, description = "the case's id")),
    request_body = AddCaseMember,
    responses((status = 201, description = "the member added, with the ledger index", body = MemberAdded), super::WriteProblems))]
async fn add_case_member(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let actor = authenticated(&state.node, &headers).await?;
    let req: AddCaseMember = parse_json(&headers, &body)?;
    let command = entente_store::cases::AddCaseMember {
        case_id: parse_id(id.clone())?,
        party: req.party.clone(),
        agreement: req.agreement.clone(),
    };
    let (index, _) = through_gate(&state, actor, command).await?;
    json(
        StatusCode::CREATED,
        &MemberAdded {
            case_id: id,
            party: req.party.to_string(),
            role: "member".to_owned(),
            agreement: req.agreement,
            ledger_index: index,
        },
    )
}

/// Removes a partner party from a case this node leads; the members and the party removed
/// receive the case update.
#[utoipa::path(delete, path = "/api/v1/cases/{id}/members/{party}", tag = "cases",
    summary = "Remove a partner party from a case this node leads (it leaves the JIT); the remaining members and the party removed receive the case update; the lead cannot be removed (409); central authority",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the case's id"),
        ("party" = String, Path, description = "the party to remove (ISO 3166-1 alpha-2 or EU)")),
    responses((status = 200, description = "the member removed, with the ledger index", body = MemberRemoved),
        (status = 400, response = ProblemDetails), (status = 401, response = ProblemDetails),
        (status = 403, response = ProblemDetails), (status = 404, response = ProblemDetails),
        (status = 409, response = ProblemDetails), (status = 422, response = ProblemDetails)))]
async fn remove_case_member(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, party)): Path<(String, String)>,
) -> ApiResult {
    let actor = authenticated(&state.node, &headers).await?;
    let party: entente_core::PartyCode = party
        .parse()
        .map_err(|e: entente_core::ids::UnknownParty| Problem::bad_request(e.to_string()))?;
    let command = entente_store::cases::RemoveCaseMember {
        case_id: parse_id(id.clone())?,
        party: party.clone(),
    };
    let (index, _) = through_gate(&state, actor, command).await?;
    json(
        StatusCode::OK,
        &MemberRemoved {
            case_id: id,
            party: party.to_string(),
            removed: true,
            ledger_index: index,
        },
    )
}

/// A case's status (members and timeline). A peer outside the case gets the 404 of a case
/// that does not exist (the gate's answer).
#[utoipa::path(get, path = "/api/v1/cases/{id}/status", tag = "cases",
    summary = "A case's status: the case, its member parties (lead and JIT members) and the timeline of the ledger entries on the case, its requests and its data items (the access is recorded); a party outside the case gets 404 as for a case that does not exist",
    security(("bearer" = [])), params(("id" = String, Path, description = "the case's id")),
    responses((status = 200, description = "the case status", body = CaseStatusView), super::ReadProblems))]
async fn case_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let actor = authenticated(&state.node, &headers).await?;
    let read = entente_store::cases::ReadCaseStatus { case_id: parse_id(id)? };
    let (index, s) = through_gate(&state, actor, read).await?;
    json(StatusCode::OK, &CaseStatusView::new(&s, index))
}
