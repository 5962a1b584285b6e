//! Incident notifications this node sent to and received from partners.

use super::ProblemDetails;
use super::flows::ConditionsView;
use crate::server::{ApiResult, AppState, authenticated, json, through_gate};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use entente_core::Stamp;
use entente_store::NotificationRecord;
use entente_wire::{IncidentNotice, NoticeObligation};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(incident_notifications))
}

/// An obligation the sender's assessment found.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = NoticeObligation)]
pub(crate) struct NoticeObligationView {
    /// Regime id (`nis2`, `gdpr`, …).
    pub(crate) regime: String,
    /// Report id within the regime.
    pub(crate) report: String,
    /// Report name.
    pub(crate) report_name: String,
    /// Who receives the report under the regime.
    pub(crate) recipient: String,
    /// The deadline in words, as the regime states it.
    pub(crate) deadline: String,
    /// The due instant (RFC 3339, UTC), `without undue delay`, or `unknown: needs …`.
    pub(crate) due: String,
    /// Verification status of the deadline (V1, V2, P, U).
    pub(crate) status: String,
    /// True when the deadline is unverified.
    pub(crate) unverified: bool,
}

impl From<&NoticeObligation> for NoticeObligationView {
    fn from(o: &NoticeObligation) -> Self {
        NoticeObligationView {
            regime: o.regime.clone(),
            report: o.report.clone(),
            report_name: o.report_name.clone(),
            recipient: o.recipient.clone(),
            deadline: o.deadline.clone(),
            due: o.due.clone(),
            status: o.status.clone(),
            unverified: o.unverified,
        }
    }
}

/// An incident as notified: facts and the sender's assessment.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = IncidentNotice)]
pub(crate) struct NoticeView {
    /// The incident's identifier.
    pub(crate) incident: String,
    /// Where the entity is established or the incident has effect.
    pub(crate) jurisdictions: Vec<String>,
    /// The entity's sector, if stated.
    pub(crate) sector: Option<String>,
    /// What the entity is under the regimes.
    pub(crate) entity_types: Vec<String>,
    /// Personal data involved, if known (the fact only, never the data).
    pub(crate) personal_data: Option<bool>,
    /// Ransom paid, if known.
    pub(crate) ransom_paid: Option<bool>,
    /// The incident's IANA time zone.
    pub(crate) time_zone: String,
    /// Instants by fact name (`occurred_at`, `aware_at`, …), RFC 3339.
    pub(crate) instants: BTreeMap<String, String>,
    /// The obligations the sender found.
    pub(crate) obligations: Vec<NoticeObligationView>,
    /// Facts the sender's assessment still asks for (`regime: field`).
    pub(crate) questions: Vec<String>,
}

impl From<&IncidentNotice> for NoticeView {
    fn from(n: &IncidentNotice) -> Self {
        NoticeView {
            incident: n.incident.clone(),
            jurisdictions: n.jurisdictions.iter().map(ToString::to_string).collect(),
            sector: n.sector.clone(),
            entity_types: n.entity_types.clone(),
            personal_data: n.personal_data,
            ransom_paid: n.ransom_paid,
            time_zone: n.time_zone.clone(),
            instants: n.instants.clone(),
            obligations: n.obligations.iter().map(Into::into).collect(),
            questions: n.questions.clone(),
        }
    }
}

/// A notification sent or received.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = IncidentNotification)]
pub(crate) struct NotificationView {
    /// `sent` or `received`.
    pub(crate) direction: String,
    /// The recipient (sent) or the sender (received).
    #[schema(schema_with = super::party)]
    pub(crate) party: String,
    /// The notification's id (`<sender party>-<sender ledger index>`).
    pub(crate) id: String,
    /// The agreement it travelled under.
    pub(crate) agreement: String,
    /// The conditions that travelled with it.
    pub(crate) conditions: ConditionsView,
    /// The notice (none once destroyed).
    pub(crate) notice: Option<NoticeView>,
    /// `sha256:` digest of the notice (kept after destruction).
    pub(crate) notice_sha256: String,
    /// Keep no longer than this, if limited.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub(crate) retain_until: Option<Stamp>,
    /// When the notice was destroyed (its retention limit passed).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub(crate) destroyed_at: Option<Stamp>,
    /// When it was sent or received (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub(crate) at: Stamp,
    /// The ledger entry of the sending or receiving.
    pub(crate) ledger_index: u64,
}

impl From<&NotificationRecord> for NotificationView {
    fn from(n: &NotificationRecord) -> Self {
        NotificationView {
            direction: n.direction.clone(),
            party: n.party.clone(),
            id: n.id.clone(),
            agreement: n.agreement.clone(),
            conditions: (&n.conditions).into(),
            notice: n.notice.as_ref().map(Into::into),
            notice_sha256: n.notice_sha256.clone(),
            retain_until: n.retain_until,

            destroyed_at: n.destroyed_at,
            at: n.at,
            ledger_index: n.ledger_index,
        }
    }
}

/// The notifications, read (the reading is recorded).
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct Notifications {
    /// Sent and received.
    pub(crate) notifications: Vec<NotificationView>,
    /// The ledger entry that recorded this reading.
    pub(crate) access_ledger_index: u64,
}

/// The incident notifications this node sent and received, with their conditions (the
/// reading is recorded).
#[utoipa::path(get, path = "/api/v1/incidents/notifications", tag = "incidents",
    summary = "The incident notifications this node sent to and received from partners: the notice (incident facts and the sender's assessment of the obligations), the agreement and the conditions that travelled with it (the access is recorded); CSIRT, central authority, investigator, DPO",
    security(("bearer" = [])),
    responses((status = 200, description = "the notifications", body = Notifications),
        (status = 401, response = ProblemDetails), (status = 403, response = ProblemDetails)))]
async fn incident_notifications(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    let actor = authenticated(&state.node, &headers).await?;
    let read = entente_store::incidents::ReadIncidentNotifications;
    let (index, list) = through_gate(&state, actor, read).await?;
    json(
        StatusCode::OK,
        &Notifications {
            notifications: list.iter().map(Into::into).collect(),
            access_ledger_index: index,
        },
    )
}
