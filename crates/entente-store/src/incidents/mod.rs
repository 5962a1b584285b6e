//! Incident notifications between partners, in the gate: a CSIRT or authority of this party
//! notifies a partner of an incident under an agreement in force (decided by the agreement
//! engine, purpose `incident-response`, category `case-information`), the notice travels in an
//! `incident.notification` envelope with the conditions of that agreement, and the partner
//! keeps it in its received notifications. Private to the crate; reached only from
//! [`crate::gate`].
//!
//! What travels is the incident's facts as the notifying party states them (identifiers,
//! jurisdictions, sector, entity types, yes/no facts, instants, time zone) and its assessment
//! of the obligations (regime, report, recipient, deadline in words, due instant or why it is
//! unknown, verification status), computed from the shipped regimes: no deadline is made up
//! here, and no personal data is part of a notice. The ledger holds digests only.

use crate::flows::OutboxMessage;
use crate::gate::{
    DecideCx, EffectCx, GateCommand, GateError, PayloadDigests, Ruling, decided_by_role,
};
use crate::store::{StoreError, opt_stamp, stamp, to_i64, to_u64};
use entente_core::canonical::canonical_digest;
use entente_core::{Action, Actor, Decision, PartyCode, Stamp, Subject, SubjectKind, ids};

use entente_policy::agreement::{DataCategory, Purpose};
use entente_policy::engine::{Conditions, Flow};
use entente_policy::incident::{Assessment, Due, IncidentFacts};
use entente_wire::{IncidentNotice, IncidentNotificationMessage, MessageKind, NoticeObligation};
use jiff::Timestamp;
use serde::Serialize;
use sqlx::Row;

/// The notice of an incident from its facts and their assessment.
pub fn notice_of(facts: &IncidentFacts, a: &Assessment) -> IncidentNotice {
    IncidentNotice {
        incident: facts.id.clone(),
        jurisdictions: facts.jurisdictions.clone(),
        sector: facts.sector.map(|s| s.as_str().to_owned()),
        entity_types: facts.entity_types.iter().flatten().map(|e| e.as_str().to_owned()).collect(),
        personal_data: facts.personal_data,
        ransom_paid: facts.ransom_paid,
        time_zone: facts.time_zone_name.clone(),
        instants: facts.instants.iter().map(|(k, v)| (k.clone(), v.to_string())).collect(),
        obligations: a
            .obligations
            .iter()
            .map(|o| NoticeObligation {
                regime: o.regime.clone(),
                report: o.report.clone(),
                report_name: o.report_name.clone(),
                recipient: o.recipient.clone(),
                deadline: o.deadline.clone(),
                due: match &o.due {
                    Due::At { utc, provisional: None, .. } => utc.to_string(),
                    Due::At { utc, provisional: Some(_), .. } => format!("{utc} (latest)"),
                    Due::WithoutUndueDelay => "without undue delay".into(),
                    Due::Unknown { missing } => {
                        format!("unknown: needs {}", missing.join(", "))
                    }
                },
                status: o.status.as_str().to_owned(),
                unverified: o.unverified,
            })
            .collect(),
        questions: a.questions.iter().map(|q| format!("{}: {}", q.regime, q.field)).collect(),
    }
}

/// A notification sent or received, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NotificationRecord {
    /// `sent` or `received`.
    pub direction: String,
    /// The recipient (sent) or the sender (received).
    pub party: String,
    /// Notification id.
    pub id: String,
    /// The agreement it travelled under.
    pub agreement: String,
    /// The conditions that travelled with it.
    pub conditions: Conditions,
    /// The notice (none once destroyed).
    pub notice: Option<IncidentNotice>,
    /// `sha256:` digest of the notice (kept after destruction).
    pub notice_sha256: String,
    /// Keep no longer than this, if limited.
    pub retain_until: Option<Stamp>,
    /// When the notice was destroyed (its retention limit passed).
    pub destroyed_at: Option<Stamp>,
    /// When it was sent or received.
    pub at: Stamp,
    /// Ledger entry of the sending or receiving.
    pub ledger_index: u64,
}

fn digest(v: &impl Serialize) -> Result<String, GateError> {
    canonical_digest(v).map_err(|e| GateError::Encoding(e.to_string()))
}

fn flow<'a>(from: &'a PartyCode, to: &'a PartyCode) -> Flow<'a> {
    Flow {
        from,
        to,
        originator: from,
        origin_agreement: None,
        category: DataCategory::CaseInformation,
        purpose: Purpose::IncidentResponse,
        concepts: &[],
        request_kind: None,
        consents: &[],
    }
}

#[expect(clippy::too_many_arguments, reason = "one row of incident_notifications")]
async fn insert(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    direction: &str,
    party: &PartyCode,
    id: &str,
    notice: &IncidentNotice,
    conditions: &Conditions,
    now: &str,
    index: u64,
) -> Result<String, GateError> {
    let exists: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM incident_notifications WHERE direction = $1 AND party = $2 AND id = $3",
    )
    .bind(direction)
    .bind(party.as_str())
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    if exists.is_some() {
        return Err(GateError::Conflict(format!(
            "incident notification `{id}` ({direction}, {party}) is already recorded"
        )));
    }
    let sha = digest(notice)?;
    sqlx::query(
        "INSERT INTO incident_notifications (direction, party, id, incident, agreement, conditions, notice, \
         notice_sha256, retain_until, at, ledger_index) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(direction)
    .bind(party.as_str())
    .bind(id)
    .bind(&notice.incident)
    .bind(&conditions.agreement)
    .bind(json(conditions)?)
    .bind(json(notice)?)
    .bind(&sha)
    .bind(conditions.retain_until.clone())
    .bind(now)
    .bind(to_i64(index)?)
    .execute(&mut **tx)
    .await?;
    Ok(sha)
}

fn json(v: &impl Serialize) -> Result<String, GateError> {
    serde_json::to_string(v).map_err(|e| GateError::Encoding(e.to_string()))
}

/// Notify a partner (a CSIRT or authority) of an incident, under the agreement in force that
/// grounds an `incident-response` flow of case information to it; the notice travels with
/// that agreement's conditions.
#[derive(Clone, Debug, PartialEq)]
pub struct NotifyIncident {
    /// The receiving party.
    pub to: PartyCode,
    /// The agreement the notifier expects to ground it; another one is a deny.
    pub agreement: Option<String>,
    /// The incident's facts and assessment.
    pub notice: IncidentNotice,
}

impl GateCommand for NotifyIncident {
    type Output = OutboxMessage;
    type Facts = ();

    fn action(&self) -> Action {
        Action::IncidentNotify
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![
            Subject::new(SubjectKind::Incident, &self.notice.incident),
            Subject::new(SubjectKind::Party, self.to.as_str()),
        ]
    }

    /// The notice and the conditions it travels with, known once the agreement is decided.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    fn validate(&self) -> Result<(), GateError> {
        if let Some(a) = &self.agreement {
            ids::check_identifier("agreement id", a).map_err(GateError::Invalid)?;
        }
        self.notice.validate().map_err(GateError::Invalid)
    }

    async fn load(&self, _cx: &mut EffectCx<'_>) -> Result<(), GateError> {
        Ok(())
    }

    fn decide(&self, cx: &DecideCx<'_>, _: &()) -> Ruling {
        let (party, to) = (cx.party, &self.to);
        let d = cx.engine.decide_flow(&flow(party, to), cx.now);
        if let Some(named) = &self.agreement
            && d.decision.is_permit()
            && d.agreement.as_deref() != Some(named.as_str())
        {
            let grounded = d.agreement.unwrap_or_default();
            return Ruling::of(cx.role.followed_by(Decision::deny(
                    "incident.agreement-mismatch",
                    format!(
                        "--agreement {named} was asked, but a notification from {party} to {to} is grounded on `{grounded}` (the most specific agreement in force)"
                    ),
                ),
            ));
        }
        Ruling { decision: cx.role.followed_by(d.decision), conditions: d.conditions }
    }

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        _: (),
        ruling: &Ruling,
    ) -> Result<OutboxMessage, GateError> {
        let NotifyIncident { to, notice, .. } = self;
        let (party, index, now_text) = (cx.party, cx.index, cx.now_text());
        let Some(conditions) = &ruling.conditions else {
            return Err(GateError::Internal("a permitted notification has no conditions".into()));
        };
        let pinned: Option<i64> = sqlx::query_scalar("SELECT 1 FROM peers WHERE party = $1")
            .bind(to.as_str())
            .fetch_optional(&mut **cx.tx)
            .await?;
        if pinned.is_none() {
            return Err(GateError::Invalid(format!(
                "no partner node is pinned for {to}; pin its node first (entente peer add --party {to})"
            )));
        }
        let message = IncidentNotificationMessage {
            id: format!("{party}-{index}"),
            notice,
            conditions: conditions.clone(),
        };
        let sha =
            insert(cx.tx, "sent", &to, &message.id, &message.notice, conditions, &now_text, index)
                .await?;
        let payload =
            serde_json::to_value(&message).map_err(|e| GateError::Encoding(e.to_string()))?;
        let (out_id, seq) = crate::flows::outbox(
            cx.tx,
            &to,
            MessageKind::IncidentNotification,
            &payload,
            &now_text,
            index,
        )
        .await?;
        cx.record_digests(vec![("notice".into(), sha), ("conditions".into(), digest(conditions)?)]);
        Ok(OutboxMessage {
            id: out_id,
            seq,
            recipient: to,
            kind: MessageKind::IncidentNotification,
            payload,
        })
    }
}

/// Accept an incident notification from a partner, with its travelling conditions.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceiveIncidentNotification {
    /// The notification as delivered.
    pub(crate) message: IncidentNotificationMessage,
}

impl GateCommand for ReceiveIncidentNotification {
    type Output = ();
    type Facts = ();

    fn action(&self) -> Action {
        Action::IncidentReceive
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![
            Subject::new(SubjectKind::Incident, &self.message.notice.incident),
            Subject::new(SubjectKind::Party, self.message.conditions.originator.as_str()),
        ]
    }

    /// The notice and the conditions bound to it, recorded when it is accepted.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    fn validate(&self) -> Result<(), GateError> {
        let message = &self.message;
        if message.id.is_empty() || message.id.len() > 100 {
            return Err(GateError::Invalid("notification id: expected 1 to 100 characters".into()));
        }
        if message.conditions.agreement.is_empty() {
            return Err(GateError::Invalid(
                "conditions.agreement: a notification must travel with the agreement it is sent under".into(),
            ));
        }
        message.notice.validate().map_err(GateError::Invalid)
    }

    async fn load(&self, _cx: &mut EffectCx<'_>) -> Result<(), GateError> {
        Ok(())
    }

    fn decide(&self, cx: &DecideCx<'_>, _: &()) -> Ruling {
        let message = &self.message;
        let Actor::Peer { party: sender } = cx.actor else {
            return Ruling::of(Decision::deny(
                "peer.only",
                "only a partner node delivers notifications",
            ));
        };
        if &message.conditions.originator != sender {
            return Ruling::of(cx.role.followed_by(Decision::deny(
                "conditions.originator",
                format!(
                    "the notification names {} as its originator, but {sender} sent it",
                    message.conditions.originator
                ),
            )));
        }
        let d = cx.engine.decide_flow(&flow(sender, cx.party), cx.now);
        if let Some(refused) =
            crate::flows::travels_as_grounded(&d, &message.conditions.agreement, "notification")
        {
            return Ruling::of(cx.role.followed_by(refused));
        }
        Ruling {
            decision: cx.role.followed_by(d.decision),
            conditions: Some(message.conditions.clone()),
        }
    }

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), ruling: &Ruling) -> Result<(), GateError> {
        let message = self.message;
        let Actor::Peer { party: sender } = cx.actor else {
            return Err(GateError::Invalid("only a partner node delivers notifications".into()));
        };
        let (index, now_text) = (cx.index, cx.now_text());
        let bound = ruling.conditions.as_ref().unwrap_or(&message.conditions);
        let sha = insert(
            cx.tx,
            "received",
            sender,
            &message.id,
            &message.notice,
            bound,
            &now_text,
            index,
        )
        .await?;
        cx.record_digests(vec![("notice".into(), sha), ("conditions".into(), digest(bound)?)]);
        Ok(())
    }
}

/// Read the incident notifications sent and received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadIncidentNotifications;

impl GateCommand for ReadIncidentNotifications {
    type Output = Vec<NotificationRecord>;
    type Facts = ();

    fn action(&self) -> Action {
        Action::IncidentRead
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::IncidentNotifications, "all")]
    }

    /// Which notifications were served, known once they are read.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    decided_by_role!();

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        _: (),
        _: &Ruling,
    ) -> Result<Vec<NotificationRecord>, GateError> {
        let rows = sqlx::query(
            "SELECT direction, party, id, agreement, conditions, notice, retain_until, at, ledger_index, \
             notice_sha256, destroyed_at FROM incident_notifications ORDER BY ledger_index, party, id",
        )
        .fetch_all(&mut **cx.tx)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let conditions: String = r.try_get(4)?;
            let notice: Option<String> = r.try_get(5)?;
            let bad = |e: serde_json::Error| StoreError::Inconsistent(format!("notification: {e}"));
            out.push(NotificationRecord {
                direction: r.try_get(0)?,
                party: r.try_get(1)?,
                id: r.try_get(2)?,
                agreement: r.try_get(3)?,
                conditions: serde_json::from_str(&conditions).map_err(bad)?,
                notice: notice.map(|n| serde_json::from_str(&n)).transpose().map_err(bad)?,
                notice_sha256: r.try_get(9)?,
                retain_until: opt_stamp(r, 6)?,
                destroyed_at: opt_stamp(r, 10)?,
                at: stamp(r, 7)?,
                ledger_index: to_u64(r.try_get(8)?)?,
            });
        }
        let ids: Vec<String> =
            out.iter().map(|n| format!("{}:{}:{}", n.direction, n.party, n.id)).collect();
        cx.record_digests(vec![("served".into(), digest(&ids)?)]);
        Ok(out)
    }
}

/// Destroy a received incident notification whose retention limit has passed (its notice is
/// cleared, its digest kept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestroyIncidentNotification {
    /// The party that sent it.
    pub from: PartyCode,
    /// Notification id.
    pub id: String,
}

impl GateCommand for DestroyIncidentNotification {
    type Output = ();
    type Facts = ();

    fn action(&self) -> Action {
        Action::IncidentDestroy
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![
            Subject::new(SubjectKind::IncidentNotification, &self.id),
            Subject::new(SubjectKind::Party, self.from.as_str()),
        ]
    }

    /// The digest of the notice destroyed, read from the store.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    fn validate(&self) -> Result<(), GateError> {
        if self.id.is_empty() || self.id.len() > 100 {
            return Err(GateError::Invalid("notification id: expected 1 to 100 characters".into()));
        }
        Ok(())
    }

    decided_by_role!();

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<(), GateError> {
        let DestroyIncidentNotification { from, id } = self;
        let row = sqlx::query(
            "SELECT retain_until, destroyed_at, notice_sha256 FROM incident_notifications \
             WHERE direction = 'received' AND party = $1 AND id = $2",
        )
        .bind(from.as_str())
        .bind(&id)
        .fetch_optional(&mut **cx.tx)
        .await?
        .ok_or_else(|| {
            GateError::NotFound(format!("incident notification `{id}` received from {from}"))
        })?;
        let until: Option<String> = row.try_get(0)?;
        let destroyed: Option<String> = row.try_get(1)?;
        let sha: String = row.try_get(2)?;
        if destroyed.is_some() {
            return Err(GateError::Conflict(format!(
                "incident notification `{id}` is already destroyed"
            )));
        }
        let expired =
            until.as_deref().and_then(|u| u.parse::<Timestamp>().ok()).is_some_and(|u| u <= cx.now);
        if !expired {
            return Err(GateError::Conflict(format!(
                "incident notification `{id}` may be kept until {}; it is not due for destruction",
                until.as_deref().unwrap_or("no limit")
            )));
        }
        sqlx::query(
            "UPDATE incident_notifications SET notice = NULL, destroyed_at = $1 \
             WHERE direction = 'received' AND party = $2 AND id = $3",
        )
        .bind(cx.now_text())
        .bind(from.as_str())
        .bind(&id)
        .execute(&mut **cx.tx)
        .await?;
        cx.record_digests(vec![("notice".into(), sha)]);
        Ok(())
    }
}

impl crate::Store {
    /// Received incident notifications whose retention limit has passed at `now` and that are
    /// not destroyed yet: `(sender, id)`.
    ///
    /// # Errors
    /// Database errors, or a stored limit that is not an instant.
    pub async fn notifications_due_for_destruction(
        &self,
        now: Timestamp,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT party, id, retain_until FROM incident_notifications \
             WHERE direction = 'received' AND destroyed_at IS NULL AND retain_until IS NOT NULL ORDER BY party, id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut due = Vec::new();
        for r in &rows {
            let until: String = r.try_get(2)?;
            let until: Timestamp = until
                .parse()
                .map_err(|e| StoreError::Inconsistent(format!("retain_until `{until}`: {e}")))?;
            if until <= now {
                due.push((r.try_get(0)?, r.try_get(1)?));
            }
        }
        Ok(due)
    }
}
