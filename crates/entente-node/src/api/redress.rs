//! Redress: an individual's complaint about an identifier, what the node holds and sent of it,
//! and the answer.

use super::ProblemDetails;
use crate::server::{ApiResult, AppState, authenticated, json, parse_json, through_gate};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use entente_core::Stamp;
use entente_store::{Complaint, ComplaintFlow, ComplaintItem, GateCommand, Principal};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(file_complaint))
        .routes(routes!(read_complaint))
        .routes(routes!(answer_complaint))
}

/// A complaint to file.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileComplaint {
    /// The complaint's id.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub(crate) id: String,
    /// The identifier it is about (e-mail, account, IP address); only its keyed hash is stored.
    #[schema(min_length = 1, max_length = 1000)]
    pub(crate) identifier: String,
}

/// The decision on a complaint and the answer to the complainant.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnswerComplaint {
    /// `granted`, `refused` or `partially-granted`.
    #[schema(schema_with = decision)]
    pub(crate) decision: String,
    /// The answer.
    #[schema(min_length = 1, max_length = 20000)]
    pub(crate) answer: String,
}

fn decision() -> utoipa::openapi::schema::Object {
    super::vocabulary("the decision on a complaint", entente_store::DECISIONS.iter().copied())
}

/// A data item found for a complaint's identifier.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = ComplaintItem)]
pub(crate) struct ComplaintItemView {
    /// Datum id.
    pub(crate) id: String,
    /// Its category.
    #[schema(schema_with = super::data_category)]
    pub(crate) category: String,
    /// The party that originated it.
    #[schema(schema_with = super::party)]
    pub(crate) originator: String,
    /// The party it was received from, if it was received.
    pub(crate) received_from: Option<String>,
    /// The agreement it was received under, if it was received.
    pub(crate) origin_agreement: Option<String>,
    /// Whether its content has been destroyed.
    pub(crate) destroyed: bool,
    /// Ledger index of its recording.
    pub(crate) ledger_index: u64,
}

impl From<&ComplaintItem> for ComplaintItemView {
    fn from(i: &ComplaintItem) -> Self {
        ComplaintItemView {
            id: i.id.clone(),
            category: i.category.clone(),
            originator: i.originator.clone(),
            received_from: i.received_from.clone(),
            origin_agreement: i.origin_agreement.clone(),
            destroyed: i.destroyed,
            ledger_index: i.ledger_index,
        }
    }
}

/// A flow out of this node of a data item found for a complaint.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = ComplaintFlow)]
pub(crate) struct ComplaintFlowView {
    /// Datum id.
    pub(crate) datum_id: String,
    /// The receiving party.
    #[schema(schema_with = super::party)]
    pub(crate) recipient: String,
    /// The category the datum was sent as.
    #[schema(schema_with = super::data_category)]
    pub(crate) category: String,
    /// The agreement the share was decided under.
    pub(crate) agreement: String,
    /// Ledger index of the share.
    pub(crate) ledger_index: u64,
}

impl From<&ComplaintFlow> for ComplaintFlowView {
    fn from(f: &ComplaintFlow) -> Self {
        ComplaintFlowView {
            datum_id: f.datum_id.clone(),
            recipient: f.recipient.clone(),
            category: f.category.clone(),
            agreement: f.agreement.clone(),
            ledger_index: f.ledger_index,
        }
    }
}

/// A complaint as it stands, with what was found for its identifier.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = Complaint)]
pub(crate) struct ComplaintView {
    /// The complaint's id.
    pub(crate) id: String,
    /// `open` or `answered`.
    pub(crate) state: String,
    /// Who filed it (the DPO who took it).
    pub(crate) filed_by: String,
    /// When it was filed (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub(crate) filed_at: Stamp,
    /// When its answer is due (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub(crate) due_at: Stamp,
    /// Where the deadline comes from.
    pub(crate) deadline_basis: String,
    /// The decision, once answered.
    pub(crate) decision: Option<String>,
    /// The answer to the complainant, once answered.
    pub(crate) answer: Option<String>,
    /// When it was answered.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub(crate) answered_at: Option<Stamp>,
    /// The ledger entry of this command (the filing, the reading or the answer).
    pub(crate) ledger_index: u64,
    /// Ledger index of the answer.
    pub(crate) answer_ledger_index: Option<u64>,
    /// The data items whose content names the identifier.
    pub(crate) items: Vec<ComplaintItemView>,
    /// The flows of those items out of this node.
    pub(crate) flows: Vec<ComplaintFlowView>,
}

impl ComplaintView {
    /// The complaint as answered to the command recorded at `ledger_index`.
    pub(crate) fn new(c: &Complaint, ledger_index: u64) -> Self {
        ComplaintView {
            id: c.id.clone(),
            state: c.state.clone(),
            filed_by: c.filed_by.clone(),
            filed_at: c.filed_at,
            due_at: c.due_at,
            deadline_basis: c.deadline_basis.clone(),
            decision: c.decision.clone(),
            answer: c.answer.clone(),
            answered_at: c.answered_at,
            ledger_index,
            answer_ledger_index: c.answer_ledger_index,
            items: c.items.iter().map(Into::into).collect(),
            flows: c.flows.iter().map(Into::into).collect(),
        }
    }
}

/// Answers a complaint command with the complaint (items, flows, deadline, state).
async fn complaint_response<C: GateCommand<Output = Complaint>>(
    state: &AppState,
    actor: Principal,
    command: C,
    created: bool,
) -> ApiResult {
    let (index, c) = through_gate(state, actor, command).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    json(status, &ComplaintView::new(&c, index))
}

#[utoipa::path(post, path = "/api/v1/complaints", tag = "redress",
    summary = "File an individual's complaint (redress) about an identifier (e-mail, account, IP address); only its keyed hash is stored, the answer is due in 30 days (Entente's operating default: the research notes give no redress deadline); the answer lists the data items and flows found",
    security(("bearer" = [])), request_body = FileComplaint,
    responses((status = 201, description = "the complaint: deadline, state, data items and flows found", body = ComplaintView),
        (status = 400, response = ProblemDetails), (status = 401, response = ProblemDetails),
        (status = 403, response = ProblemDetails), (status = 409, response = ProblemDetails),
        (status = 415, response = ProblemDetails), (status = 422, response = ProblemDetails)))]
async fn file_complaint(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let actor = authenticated(&state.node, &headers).await?;
    let req: FileComplaint = parse_json(&headers, &body)?;
    let command = entente_store::redress::FileComplaint { id: req.id, identifier: req.identifier };
    complaint_response(&state, actor, command, true).await
}

#[utoipa::path(post, path = "/api/v1/complaints/{id}/answer", tag = "redress",
    summary = "Record the decision on a complaint and the answer to the complainant (once; again: 409); only digests enter the ledger",
    security(("bearer" = [])), params(("id" = String, Path, description = "the complaint's id")),
    request_body = AnswerComplaint,
    responses((status = 200, description = "the answered complaint", body = ComplaintView), super::WriteProblems))]
async fn answer_complaint(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let actor = authenticated(&state.node, &headers).await?;
    let req: AnswerComplaint = parse_json(&headers, &body)?;
    let command =
        entente_store::redress::AnswerComplaint { id, decision: req.decision, answer: req.answer };
    complaint_response(&state, actor, command, false).await
}

#[utoipa::path(get, path = "/api/v1/complaints/{id}", tag = "redress",
    summary = "A complaint: deadline, state, decision, and the data items and flows out of this node (recipient, category, agreement, ledger index) found for its identifier (the access is recorded)",
    security(("bearer" = [])), params(("id" = String, Path, description = "the complaint's id")),
    responses((status = 200, description = "the complaint", body = ComplaintView), super::ReadProblems))]
async fn read_complaint(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let actor = authenticated(&state.node, &headers).await?;
    complaint_response(&state, actor, entente_store::redress::ReadComplaint { id }, false).await
}
