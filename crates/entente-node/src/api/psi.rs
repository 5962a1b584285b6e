//! Deconfliction by private set intersection (`docs/psi.md`): queries to partners, the
//! status with the results, key rotation.

use super::ProblemDetails;
use crate::server::{
    ApiResult, AppState, Problem, authenticated, body_of, json, parse_json, through_gate,
};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use entente_core::PartyCode;
use entente_core::Stamp;
use entente_psi::{EmailRules, selector};
use entente_store::Verdict;
use entente_store::psi::{PsiStatus, ReadPsiStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(psi_query))
        .routes(routes!(psi_status))
        .routes(routes!(psi_rotate))
}

/// A deconfliction query to one or more partners.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewPsiQuery {
    /// This node's case the query is for.
    pub(crate) case: String,
    /// The partners asked (party codes).
    pub(crate) to: Vec<String>,
    /// The deconfliction agreement to ask under (default: the first in force, by id, whose
    /// `[deconfliction]` names both parties).
    #[serde(default)]
    pub(crate) agreement: Option<String>,
    /// The selectors, as lines of a selector file (`kind:value`, or the value alone where its
    /// kind is clear).
    pub(crate) selectors: Vec<String>,
}

/// A query sent to one partner.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct PsiQuerySent {
    /// The query's id.
    pub(crate) id: String,
    /// The partner asked.
    #[schema(schema_with = super::party)]
    pub(crate) to: String,
    /// The agreement it is asked under.
    pub(crate) agreement: String,
    /// Distinct selectors asked about.
    pub(crate) selectors: u64,
    /// Elements sent (the agreement's padded size).
    pub(crate) padded: u64,
    /// The ledger entry of the query.
    pub(crate) ledger_index: u64,
}

/// The queries sent.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct PsiQueriesSent {
    /// One per partner.
    pub(crate) queries: Vec<PsiQuerySent>,
}

/// Ask partners, by private set intersection, whether they hold anything on selectors.
#[utoipa::path(post, path = "/api/v1/psi/queries", tag = "psi",
    summary = "Ask partners whether they hold anything on selectors (private set intersection): one padded, blinded query per partner under the deconfliction agreement in force, sent over the federation; the answer is read with GET /api/v1/psi/status; investigator",
    security(("bearer" = [])), request_body = NewPsiQuery,
    responses((status = 202, description = "the queries, recorded and queued", body = PsiQueriesSent), super::UploadProblems))]
async fn psi_query(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult {
    let body = body_of(body)?;
    let actor = authenticated(&state.node, &headers).await?;
    let req: NewPsiQuery = parse_json(&headers, &body)?;
    let case_id: entente_core::CaseId = crate::server::parse_id(req.case.clone())?;
    let text = req.selectors.join("\n");
    let selectors = selector::parse_file("selectors", &text, EmailRules::default())
        .map_err(|e| Problem::bad_request(e.to_string()))?;
    if selectors.is_empty() || req.to.is_empty() {
        return Err(Problem::bad_request("expected at least one selector and one partner in `to`"));
    }
    let mut parties = Vec::with_capacity(req.to.len());
    for p in &req.to {
        let party: PartyCode =
            p.parse().map_err(|e| Problem::bad_request(format!("to: `{p}`: {e}")))?;
        parties.push(party);
    }
    let mut queries = Vec::new();
    for to in parties {
        let command = entente_store::psi::PsiQuery {
            case_id: case_id.clone(),
            to,
            agreement: req.agreement.clone(),
            selectors: selectors.clone(),
        };
        let (index, q) = through_gate(&state, actor.clone(), command).await?;
        queries.push(PsiQuerySent {
            id: q.id,
            to: q.to.as_str().to_owned(),
            agreement: q.agreement,
            selectors: q.selectors,
            padded: q.padded,
            ledger_index: index,
        });
    }
    json(StatusCode::ACCEPTED, &PsiQueriesSent { queries })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatusQuery {
    /// Only the queries of this case.
    case: Option<String>,
}

/// A selector a partner holds, with its labels.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct PsiMatchView {
    /// The selector (`kind:canonical`).
    pub(crate) selector: String,
    /// The partner's holdings on it.
    pub(crate) labels: Vec<PsiLabelView>,
}

/// One of a partner's holdings on a selector.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct PsiLabelView {
    /// The partner's case reference.
    pub(crate) case_reference: String,
    /// Whom at the partner to ask.
    pub(crate) contact: String,
}

/// One of this node's queries.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct PsiQueryView {
    /// The query's id.
    pub(crate) id: String,
    /// This node's case.
    pub(crate) case: String,
    /// The partner asked.
    #[schema(schema_with = super::party)]
    pub(crate) to: String,
    /// The agreement.
    pub(crate) agreement: String,
    /// `labelled` or `cardinality`.
    pub(crate) mode: String,
    /// Distinct selectors asked about.
    pub(crate) selectors: u64,
    /// Elements sent.
    pub(crate) padded: u64,
    /// `pending`, `answered`, `refused` (by the partner) or `failed` (its evaluation did not
    /// verify).
    pub(crate) status: String,
    /// How many of the selectors the partner holds.
    pub(crate) matched: Option<u64>,
    /// Which (labelled mode).
    pub(crate) matches: Vec<PsiMatchView>,
    /// Why it was refused or failed.
    pub(crate) reason: Option<String>,
    /// When it was sent (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub(crate) created_at: Stamp,
    /// When it was answered.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub(crate) answered_at: Option<Stamp>,
    /// The ledger entry of the query.
    pub(crate) ledger_index: u64,
}

/// A partner's query this node evaluated or refused.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct PsiEvaluationView {
    /// The asking party.
    #[schema(schema_with = super::party)]
    pub(crate) asker: String,
    /// Its query id.
    pub(crate) query: String,
    /// Its case reference.
    pub(crate) case_ref: String,
    /// The agreement.
    pub(crate) agreement: String,
    /// Elements in the query.
    pub(crate) elements: u64,
    /// `evaluated` or `refused`.
    pub(crate) status: String,
    /// Why it was refused.
    pub(crate) reason: Option<String>,
    /// When (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub(crate) at: Stamp,
}

/// A partner's published key epoch and how much of its prepared set has arrived.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct PsiPeerKeyView {
    /// The partner.
    #[schema(schema_with = super::party)]
    pub(crate) peer: String,
    /// The deconfliction agreement.
    pub(crate) agreement: String,
    /// The key epoch (hex).
    pub(crate) epoch: String,
    /// `labelled` or `cardinality`.
    pub(crate) mode: String,
    /// Elements of the partner's prepared set.
    pub(crate) set_size: u64,
    /// Chunks of the set received; queries wait until all have.
    pub(crate) received: u64,
    /// Chunks of the set.
    pub(crate) total: u64,
    /// When the partner rotated to it (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub(crate) rotated_at: Stamp,
}

/// The deconfliction status (the reading is recorded).
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct PsiStatusView {
    /// This node's queries and their results.
    pub(crate) queries: Vec<PsiQueryView>,
    /// Partners' keys this node holds, so an investigator sees whom she can ask yet.
    pub(crate) peer_keys: Vec<PsiPeerKeyView>,
    /// Partners' queries this node evaluated or refused.
    pub(crate) evaluations: Vec<PsiEvaluationView>,
    /// The ledger entry that recorded this reading.
    pub(crate) access_ledger_index: u64,
}

impl PsiStatusView {
    fn new(s: &PsiStatus, access_ledger_index: u64) -> Self {
        PsiStatusView {
            queries: s
                .queries
                .iter()
                .map(|q| PsiQueryView {
                    id: q.id.clone(),
                    case: q.case_id.clone(),
                    to: q.peer.clone(),
                    agreement: q.agreement.clone(),
                    mode: q.mode.clone(),
                    selectors: q.selectors,
                    padded: q.padded,
                    status: q.status.clone(),
                    matched: q.matched,
                    matches: q
                        .matches
                        .iter()
                        .map(|m| PsiMatchView {
                            selector: m.selector.clone(),
                            labels: m
                                .labels
                                .iter()
                                .map(|l| PsiLabelView {
                                    case_reference: l.case_reference.clone(),
                                    contact: l.contact.clone(),
                                })
                                .collect(),
                        })
                        .collect(),
                    reason: q.reason.clone(),
                    created_at: q.created_at,
                    answered_at: q.answered_at,
                    ledger_index: q.ledger_index,
                })
                .collect(),
            peer_keys: s
                .peer_keys
                .iter()
                .map(|k| PsiPeerKeyView {
                    peer: k.peer.clone(),
                    agreement: k.agreement.clone(),
                    epoch: k.epoch.clone(),
                    mode: k.mode.clone(),
                    set_size: k.set_size,
                    received: k.received,
                    total: k.total,
                    rotated_at: k.rotated_at,
                })
                .collect(),
            evaluations: s
                .evaluations
                .iter()
                .map(|e| PsiEvaluationView {
                    asker: e.asker.clone(),
                    query: e.query.clone(),
                    case_ref: e.case_ref.clone(),
                    agreement: e.agreement.clone(),
                    elements: e.elements,
                    status: e.status.clone(),
                    reason: e.reason.clone(),
                    at: e.at,
                })
                .collect(),
            access_ledger_index,
        }
    }
}

/// The deconfliction status: this node's queries with their results, and the partners'
/// queries it evaluated.
#[utoipa::path(get, path = "/api/v1/psi/status", tag = "psi",
    summary = "This node's deconfliction queries with their results (which selectors a partner holds, its case reference and contact), and the partners' queries it evaluated (the access is recorded); investigator, central authority",
    security(("bearer" = [])), params(StatusQuery),
    responses((status = 200, description = "the status", body = PsiStatusView),
        (status = 400, response = ProblemDetails), (status = 401, response = ProblemDetails),
        (status = 403, response = ProblemDetails), (status = 422, response = ProblemDetails)))]
async fn psi_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<StatusQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let actor = authenticated(&state.node, &headers).await?;
    let Query(q) = q.map_err(|e| Problem::bad_request(format!("{e}; expected ?case=ID")))?;
    let (index, status) = through_gate(
        &state,
        actor,
        ReadPsiStatus { case_id: q.case.map(crate::server::parse_id).transpose()? },
    )
    .await?;
    json(StatusCode::OK, &PsiStatusView::new(&status, index))
}

/// A key rotation.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewPsiKey {
    /// The deconfliction agreement.
    pub(crate) agreement: String,
    /// Whom a partner with a match should ask.
    pub(crate) contact: String,
}

/// What a rotation made.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct PsiKeyRotated {
    /// The new epoch (hex).
    pub(crate) epoch: String,
    /// Distinct selectors in the prepared set.
    pub(crate) set_size: u64,
    /// Partners the key and set were sent to.
    pub(crate) sent_to: Vec<String>,
    /// The ledger entry of the rotation.
    pub(crate) ledger_index: u64,
}

/// Rotate this node's deconfliction key for an agreement.
#[utoipa::path(post, path = "/api/v1/psi/keys", tag = "psi",
    summary = "Rotate this node's deconfliction key for an agreement: a new epoch, the node's holdings PRF'd under it, the previous key destroyed, the public key and prepared set sent to the agreement's partners; admin",
    security(("bearer" = [])), request_body = NewPsiKey,
    responses((status = 201, description = "rotated", body = PsiKeyRotated), super::UploadProblems))]
async fn psi_rotate(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult {
    let body = body_of(body)?;
    let actor = authenticated(&state.node, &headers).await?;
    let req: NewPsiKey = parse_json(&headers, &body)?;
    let authenticated = actor.is_authenticated();
    // Decided before the holdings are read; the set is prepared outside the gate's writer.
    let verdict = crate::psi::rotate(
        &state.node,
        actor,
        &req.agreement,
        &req.contact,
        jiff::Timestamp::now(),
        |_, _| {},
    )
    .await?;
    let (index, r) = match verdict {
        Verdict::Permitted { index, output, .. } => {
            state.metrics.permits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            (index, output)
        }
        Verdict::Denied { index, decision } => {
            state.metrics.denies.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(Problem::denied(index, &decision, authenticated));
        }
    };
    json(
        StatusCode::CREATED,
        &PsiKeyRotated {
            epoch: r.epoch,
            set_size: r.set_size,
            sent_to: r.sent_to.iter().map(|p| p.as_str().to_owned()).collect(),
            ledger_index: index,
        },
    )
}
