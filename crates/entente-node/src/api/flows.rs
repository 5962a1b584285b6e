//! Data flows: a datum held for a case, its share to another party under the agreements in force
//! (minimized, with the conditions that travel with it, through the outbox), and the
//! originator's consent to an onward transfer.

use super::ProblemDetails;
use crate::server::{ApiResult, AppState, Problem, authenticated, json, parse_json};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use entente_core::Obligation;
use entente_core::domain::Conditions;
use entente_store::{GateCommand, OutboxMessage, Principal, Verdict};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::atomic::Ordering;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(add_datum))
        .routes(routes!(share_datum))
        .routes(routes!(give_consent))
}

/// A datum to record for a case.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddDatum {
    /// The datum's id.
    pub(crate) id: String,
    /// The case it is held for.
    pub(crate) case_id: String,
    /// Its category.
    #[schema(schema_with = super::data_category)]
    pub(crate) category: entente_core::domain::DataCategory,
    /// Its content (fields are minimized on a share as the agreement says).
    #[schema(value_type = Object)]
    pub(crate) content: serde_json::Map<String, Value>,
}

/// A datum recorded.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct DatumAdded {
    /// The datum's id.
    pub(crate) id: String,
    /// The ledger entry that recorded it.
    pub(crate) ledger_index: u64,
}

/// Where a datum goes and why.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShareDatum {
    /// The receiving party.
    #[schema(schema_with = super::party)]
    pub(crate) to: entente_core::PartyCode,
    /// The purpose of the flow.
    #[schema(schema_with = super::purpose)]
    pub(crate) purpose: entente_core::domain::Purpose,
    /// The kind of request it answers, if any.
    #[serde(default)]
    #[schema(schema_with = super::request_kind, required = false)]
    pub(crate) request_kind: Option<entente_core::domain::RequestKind>,
}

/// The originator's consent to pass a datum on.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GiveConsent {
    /// The party that holds the datum.
    #[schema(schema_with = super::party)]
    pub(crate) holder: entente_core::PartyCode,
    /// The party it may now be passed to.
    #[schema(schema_with = super::party)]
    pub(crate) recipient: entente_core::PartyCode,
}

/// A duty that comes with a permit.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[schema(as = Obligation)]
pub(crate) enum ObligationView {
    /// Keep the datum no longer than this instant (RFC 3339, UTC).
    RetainUntil {
        /// The retention limit.
        until: String,
    },
    /// Transform a field before the datum leaves the node.
    Minimize {
        /// The field to transform.
        field: String,
        /// The transform (`drop`, `redact`, `pseudonymize`, `truncate-ip`, `coarsen-time`).
        transform: String,
    },
    /// No onward transfer without the consent of this party.
    NoOnwardTransferWithoutConsent {
        /// The party whose consent is needed.
        #[schema(schema_with = super::party)]
        of: String,
    },
    /// The datum must not be used for commercial purposes.
    NoCommercialUse,
    /// The originating party must be told.
    Notify {
        /// The party to notify.
        #[schema(schema_with = super::party)]
        party: String,
    },
}

impl From<&Obligation> for ObligationView {
    fn from(o: &Obligation) -> Self {
        match o {
            Obligation::RetainUntil { until } => {
                ObligationView::RetainUntil { until: until.clone() }
            }
            Obligation::Minimize { field, transform } => {
                ObligationView::Minimize { field: field.clone(), transform: transform.clone() }
            }
            Obligation::NoOnwardTransferWithoutConsent { of } => {
                ObligationView::NoOnwardTransferWithoutConsent { of: of.to_string() }
            }
            Obligation::NoCommercialUse => ObligationView::NoCommercialUse,
            Obligation::Notify { party } => ObligationView::Notify { party: party.to_string() },
        }
    }
}

/// The conditions that travel with a datum sent under an agreement and bind its receiver.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = Conditions)]
pub(crate) struct ConditionsView {
    /// The party that originated the datum.
    #[schema(schema_with = super::party)]
    pub(crate) originator: String,
    /// The agreement it travels under.
    pub(crate) agreement: String,
    /// Purposes the receiver may use it for.
    #[schema(schema_with = super::purposes)]
    pub(crate) purposes: Vec<String>,
    /// Keep no longer than this (RFC 3339, UTC), if the agreement limits retention.
    pub(crate) retain_until: Option<String>,
    /// The onward-transfer rule.
    #[schema(schema_with = super::onward_transfer)]
    pub(crate) onward_transfer: String,
    /// Whether commercial use is prohibited.
    pub(crate) commercial_use_prohibited: bool,
    /// The agreement's travelling conditions, by id.
    pub(crate) conditions: Vec<String>,
}

impl From<&Conditions> for ConditionsView {
    fn from(c: &Conditions) -> Self {
        ConditionsView {
            originator: c.originator.to_string(),
            agreement: c.agreement.clone(),
            purposes: c.purposes.iter().map(|p| p.as_str().to_owned()).collect(),
            retain_until: c.retain_until.clone(),
            onward_transfer: c.onward_transfer.as_str().to_owned(),
            commercial_use_prohibited: c.commercial_use_prohibited,
            conditions: c.conditions.clone(),
        }
    }
}

/// A message written to the outbox for a partner.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = OutboxMessage)]
pub(crate) struct OutboxView {
    /// The outbox row.
    pub(crate) id: i64,
    /// The receiving party.
    #[schema(schema_with = super::party)]
    pub(crate) recipient: String,
    /// `datum` or `consent`.
    pub(crate) kind: String,
    /// What travels: the minimized datum and its conditions, or the consent.
    #[schema(value_type = Object)]
    pub(crate) payload: Value,
}

impl From<&OutboxMessage> for OutboxView {
    fn from(m: &OutboxMessage) -> Self {
        OutboxView {
            id: m.id,
            recipient: m.recipient.to_string(),
            kind: m.kind.as_str().to_owned(),
            payload: m.payload.clone(),
        }
    }
}

/// A permitted flow: the decision and the message in the outbox.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct FlowPermitted {
    /// The ledger entry that recorded the decision.
    pub(crate) ledger_index: u64,
    /// The rules that permitted it (role rule and `agreement#rule`).
    pub(crate) rules: Vec<String>,
    /// Why.
    pub(crate) reason: String,
    /// The duties that come with the permit.
    pub(crate) obligations: Vec<ObligationView>,
    /// The unverified (status U) facts the permit rests on, by citation: when present, the
    /// flow's legal basis is unverified (also in the reason and the ledger entry).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub(crate) unverified_basis: Vec<String>,
    /// The message for the receiving party.
    pub(crate) outbox: OutboxView,
}

#[utoipa::path(post, path = "/api/v1/data", tag = "flows",
    summary = "Record a datum held for a case", security(("bearer" = [])), request_body = AddDatum,
    responses((status = 201, description = "recorded", body = DatumAdded), super::WriteProblems))]
async fn add_datum(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let actor = authenticated(&state.node, &headers).await?;
    let req: AddDatum = parse_json(&headers, &body)?;
    let id = req.id.clone();
    let command = entente_store::flows::AddDatum {
        id: crate::server::parse_id(req.id)?,
        case_id: crate::server::parse_id(req.case_id)?,
        category: req.category,
        content: req.content,
    };
    let (index, _) = crate::server::through_gate(&state, actor, command).await?;
    json(StatusCode::CREATED, &DatumAdded { id, ledger_index: index })
}

/// Shares a datum: on a permit the minimized datum and its conditions are in the outbox for
/// the receiving party; on a deny the problem names the agreement rules that refused it.
#[utoipa::path(post, path = "/api/v1/data/{id}/share", tag = "flows",
    summary = "Send a datum to another party under the agreements in force (minimized, with its travelling conditions, via the outbox)",
    security(("bearer" = [])), params(("id" = String, Path, description = "the datum's id")),
    request_body = ShareDatum,
    responses((status = 200, description = "permitted; the outbox message", body = FlowPermitted), super::WriteProblems))]
async fn share_datum(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let actor = authenticated(&state.node, &headers).await?;
    let req: ShareDatum = parse_json(&headers, &body)?;
    let command = entente_store::flows::ShareDatum {
        id: crate::server::parse_id(id)?,
        to: req.to,
        purpose: req.purpose,
        request_kind: req.request_kind,
    };
    outbox_response(&state, actor, command).await
}

#[utoipa::path(post, path = "/api/v1/data/{id}/consents", tag = "flows",
    summary = "As originator, consent to the onward transfer of a datum",
    security(("bearer" = [])), params(("id" = String, Path, description = "the datum's id")),
    request_body = GiveConsent,
    responses((status = 200, description = "permitted; the outbox message", body = FlowPermitted),
        (status = 400, response = ProblemDetails), (status = 401, response = ProblemDetails),
        (status = 403, response = ProblemDetails), (status = 404, response = ProblemDetails),
        (status = 409, response = ProblemDetails), (status = 415, response = ProblemDetails)))]
async fn give_consent(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(datum_id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let actor = authenticated(&state.node, &headers).await?;
    let req: GiveConsent = parse_json(&headers, &body)?;
    let command = entente_store::flows::GiveConsent {
        datum_id: crate::server::parse_id(datum_id)?,
        holder: req.holder,
        recipient: req.recipient,
    };
    outbox_response(&state, actor, command).await
}

async fn outbox_response<C: GateCommand<Output = OutboxMessage>>(
    state: &AppState,
    actor: Principal,
    command: C,
) -> ApiResult {
    let authenticated = actor.is_authenticated();
    match state.node.gate.submit(actor, command, Timestamp::now()).await? {
        Verdict::Permitted { index, decision, output: m } => {
            state.metrics.permits.fetch_add(1, Ordering::Relaxed);
            json(
                StatusCode::OK,
                &FlowPermitted {
                    ledger_index: index,
                    rules: decision.rules.clone(),
                    reason: decision.reason.clone(),
                    obligations: decision.obligations.iter().map(Into::into).collect(),
                    unverified_basis: decision.unverified_basis.clone(),
                    outbox: (&m).into(),
                },
            )
        }
        Verdict::Denied { index, decision } => {
            state.metrics.denies.fetch_add(1, Ordering::Relaxed);
            Err(Problem::denied(index, &decision, authenticated))
        }
    }
}
