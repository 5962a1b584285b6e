//! The commands of cross-border requests: draft, move through states, read, alerts, and the
//! two messages a partner sends (a submitted request, an event on a shared request).

use super::{Side, insert_event, load, mirror, parse_record, side_of, validate_message};
use crate::gate::{EffectCx, GateCommand, GateError, PayloadDigests, Ruling, decided_by_role};
use crate::store::to_i64;
use entente_core::{Action, CaseId, PartyCode, RequestId, Subject, SubjectKind, ids};
use entente_policy::agreement::RequestKind;
use entente_policy::request::{Request, RequestEvent};
use entente_wire::{RequestEventMessage, RequestMessage};
use jiff::Timestamp;

/// Draft a cross-border request from this party under an agreement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateRequest {
    /// Request id.
    pub id: RequestId,
    /// The case it serves.
    pub case_id: CaseId,
    /// The kind of request.
    pub kind: RequestKind,
    /// The agreement that grounds it.
    pub agreement: String,
    /// The requested party.
    pub to: PartyCode,
    /// Whether it is an emergency request.
    pub emergency: bool,
    /// The requesting party's national provisions it is made for (citations).
    pub provisions: Vec<String>,
}

/// A request's terms as its `request.create` entry records them.
pub(crate) struct Terms<'a, P: serde::Serialize> {
    pub(crate) id: &'a str,
    pub(crate) case_id: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) agreement: &'a str,
    pub(crate) to: &'a str,
    pub(crate) emergency: bool,
    pub(crate) provisions: &'a P,
}

/// What a request entry records (`request`), also rebuilt from a row by `ledger verify --state`.
pub(crate) fn payload<P: serde::Serialize>(t: &Terms<'_, P>) -> serde_json::Value {
    serde_json::json!({"id": t.id, "case_id": t.case_id, "kind": t.kind, "agreement": t.agreement,
        "to": t.to, "emergency": t.emergency, "provisions": t.provisions})
}

impl GateCommand for CreateRequest {
    type Output = Request;
    type Facts = ();

    fn action(&self) -> Action {
        Action::RequestCreate
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![
            Subject::new(SubjectKind::Request, &self.id),
            Subject::new(SubjectKind::Case, &self.case_id),
            Subject::new(SubjectKind::Party, self.to.as_str()),
        ]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        PayloadDigests::canonical([(
            "request",
            payload(&Terms {
                id: self.id.as_str(),
                case_id: self.case_id.as_str(),
                kind: self.kind.as_str(),
                agreement: &self.agreement,
                to: self.to.as_str(),
                emergency: self.emergency,
                provisions: &self.provisions,
            }),
        )])
    }

    fn validate(&self) -> Result<(), GateError> {
        let p = &self.provisions;
        if p.len() > 20 || p.iter().any(|p| p.trim().is_empty() || p.len() > 100) {
            return Err(GateError::Invalid(
                "provisions: expected at most 20 citations of 1 to 100 characters".into(),
            ));
        }
        ids::check_identifier("agreement id", &self.agreement).map_err(GateError::Invalid)
    }

    decided_by_role!();

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<Request, GateError> {
        let CreateRequest { id, case_id, kind, agreement, to, emergency, provisions } = self;
        let (id, case_id) = (String::from(id), String::from(case_id));
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM requests WHERE id = $1")
            .bind(&id)
            .fetch_optional(&mut **cx.tx)
            .await?;
        if exists.is_some() {
            return Err(GateError::Conflict(format!("request `{id}` already exists")));
        }
        let case: Option<i64> = sqlx::query_scalar("SELECT 1 FROM cases WHERE id = $1")
            .bind(&case_id)
            .fetch_optional(&mut **cx.tx)
            .await?;
        if case.is_none() {
            return Err(GateError::NotFound(format!("case `{case_id}`")));
        }
        let a = cx.engine.agreement(&agreement).ok_or_else(|| {
            let loaded: Vec<&str> = cx.engine.agreements().iter().map(|a| a.id.as_str()).collect();
            GateError::Invalid(format!(
                "agreement `{agreement}` is not loaded; loaded: {}",
                loaded.join(", ")
            ))
        })?;
        // The legal basis: in force now, binding both parties, providing this kind.
        let mut request = Request::new(kind, a, cx.party.clone(), to.clone(), emergency, cx.now)
            .map_err(|e| GateError::Invalid(e.to_string()))?;
        request.id = id.clone();
        sqlx::query(
            "INSERT INTO requests (id, case_id, kind, agreement, requesting, requested, emergency, created_at, ledger_index, provisions) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&id)
        .bind(&case_id)
        .bind(kind.as_str())
        .bind(&agreement)
        .bind(cx.party.as_str())
        .bind(to.as_str())
        .bind(i64::from(emergency))
        .bind(cx.now.to_string())
        .bind(to_i64(cx.index)?)
        .bind(serde_json::to_string(&provisions).map_err(GateError::encoding)?)
        .execute(&mut **cx.tx)
        .await?;
        Ok(request)
    }
}

/// Move a request through its states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransitionRequest {
    /// Request id.
    pub id: RequestId,
    /// The event.
    pub event: RequestEvent,
}

impl GateCommand for TransitionRequest {
    type Output = Request;
    type Facts = ();

    fn action(&self) -> Action {
        Action::RequestTransition
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Request, &self.id)]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        PayloadDigests::canonical([(
            "event",
            serde_json::json!({"id": self.id, "event": self.event.name(), "grounds": self.event.grounds()}),
        )])
    }

    decided_by_role!();

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<Request, GateError> {
        let (now, index) = (cx.now, cx.index);
        let mut request = load(cx.tx, cx.engine, self.id.as_str()).await?;
        let agreement = cx.engine.agreement(&request.agreement).ok_or_else(|| {
            GateError::Invalid(format!("agreement `{}` is not loaded", request.agreement))
        })?;
        request
            .apply(self.event.clone(), now, agreement)
            .map_err(|e| GateError::Conflict(e.to_string()))?;
        let seq = request.history.len().saturating_sub(1);
        insert_event(cx.tx, self.id.as_str(), seq, &self.event, now, index).await?;
        mirror(cx.tx, cx.party, &request, &self.event, now, &format!("{now:.6}"), index).await?;
        Ok(request)
    }
}

/// Read a request with its history and clocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadRequest {
    /// Request id.
    pub id: RequestId,
}

impl GateCommand for ReadRequest {
    type Output = Request;
    type Facts = ();

    fn action(&self) -> Action {
        Action::RequestRead
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Request, &self.id)]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::SubjectsOnly)
    }

    decided_by_role!();

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<Request, GateError> {
        load(cx.tx, cx.engine, self.id.as_str()).await
    }
}

/// Read every open request with its clocks (for alerts on overdue ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadAlerts;

impl GateCommand for ReadAlerts {
    type Output = Vec<Request>;
    type Facts = ();

    fn action(&self) -> Action {
        Action::AlertsRead
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Requests, "open")]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::SubjectsOnly)
    }

    decided_by_role!();

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        _: (),
        _: &Ruling,
    ) -> Result<Vec<Request>, GateError> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM requests ORDER BY id")
            .fetch_all(&mut **cx.tx)
            .await?;
        let mut open = Vec::new();
        for id in ids {
            let r = load(cx.tx, cx.engine, &id).await?;
            if r.state.is_open() {
                open.push(r);
            }
        }
        Ok(open)
    }
}

/// A request submitted by a partner to this party (delivered in an envelope).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiveRequest {
    /// The request as the requesting party drafted and submitted it.
    pub(crate) message: RequestMessage,
}

impl GateCommand for ReceiveRequest {
    type Output = Request;
    type Facts = ();

    fn action(&self) -> Action {
        Action::RequestReceive
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![
            Subject::new(SubjectKind::Request, &self.message.id),
            Subject::new(SubjectKind::Party, self.message.requesting.as_str()),
        ]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        PayloadDigests::canonical([(
            "request",
            serde_json::to_value(&self.message).map_err(GateError::encoding)?,
        )])
    }

    fn validate(&self) -> Result<(), GateError> {
        validate_message(&self.message)
    }

    decided_by_role!();

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<Request, GateError> {
        let m = self.message;
        let (party, index) = (cx.party, cx.index);
        if &m.requested != party {
            return Err(GateError::Invalid(format!(
                "request {} is addressed to {}, not to this node ({party})",
                m.id, m.requested
            )));
        }
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM requests WHERE id = $1")
            .bind(&m.id)
            .fetch_optional(&mut **cx.tx)
            .await?;
        if exists.is_some() {
            return Err(GateError::Conflict(format!("request `{}` already exists", m.id)));
        }
        let a = cx.engine.agreement(&m.agreement).ok_or_else(|| {
            GateError::Invalid(format!("agreement `{}` is not loaded on this node", m.agreement))
        })?;
        let created: Timestamp = m.created_at.timestamp();

        let mut request = Request::new(
            m.kind,
            a,
            m.requesting.clone(),
            m.requested.clone(),
            m.emergency,
            created,
        )
        .map_err(|e| GateError::Invalid(e.to_string()))?;
        request.id = m.id.clone();
        for (i, r) in m.events.iter().enumerate() {
            let (event, at) = parse_record(r)?;
            if i as u64 != r.seq || side_of(&event) == Side::Requested {
                return Err(GateError::Invalid(format!(
                    "event {} `{}` of request {} is out of sequence or not the requesting party's",
                    r.seq, r.event, m.id
                )));
            }
            request.apply(event, at, a).map_err(|e| GateError::Invalid(e.to_string()))?;
        }
        if !request.history.iter().any(|(e, _)| matches!(e, RequestEvent::Submit)) {
            return Err(GateError::Invalid(format!("request {} was not submitted", m.id)));
        }
        sqlx::query(
            "INSERT INTO requests (id, case_id, kind, agreement, requesting, requested, emergency, created_at, ledger_index, provisions) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&m.id)
        .bind(&m.case_id)
        .bind(m.kind.as_str())
        .bind(&m.agreement)
        .bind(m.requesting.as_str())
        .bind(m.requested.as_str())
        .bind(i64::from(m.emergency))
        .bind(created.to_string())
        .bind(to_i64(index)?)
        .bind(serde_json::to_string(&m.provisions).map_err(GateError::encoding)?)
        .execute(&mut **cx.tx)
        .await?;
        for (i, (event, at)) in request.history.iter().enumerate() {
            insert_event(cx.tx, &m.id, i, event, *at, index).await?;
        }
        Ok(request)
    }
}

/// A transition of a shared request recorded by the other party (delivered in an
/// envelope), applied to this node's copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiveRequestEvent {
    /// The event.
    pub(crate) message: RequestEventMessage,
}

impl GateCommand for ReceiveRequestEvent {
    type Output = Request;
    type Facts = ();

    fn action(&self) -> Action {
        Action::RequestUpdate
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Request, &self.message.id)]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        PayloadDigests::canonical([(
            "event",
            serde_json::to_value(&self.message).map_err(GateError::encoding)?,
        )])
    }

    fn validate(&self) -> Result<(), GateError> {
        ids::check_identifier("request id", &self.message.id).map_err(GateError::Invalid)
    }

    decided_by_role!();

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<Request, GateError> {
        let m = self.message;
        let (party, index) = (cx.party, cx.index);
        let mut request = load(cx.tx, cx.engine, &m.id).await?;
        let other = if &request.from == party {
            Side::Requested
        } else if &request.to == party {
            Side::Requesting
        } else {
            return Err(GateError::Invalid(format!(
                "request {} is not between this node and a partner",
                m.id
            )));
        };
        let (event, at) = parse_record(&m.record)?;
        let side = side_of(&event);
        if side != other && side != Side::Either {
            return Err(GateError::Invalid(format!(
                "`{}` on request {} is recorded by the other side, not by the party that sent it",
                m.record.event, m.id
            )));
        }
        let expected = request.history.len() as u64;
        if m.record.seq != expected {
            return Err(GateError::Conflict(format!(
                "event {} of request {} is out of sequence: this node holds {expected} events",
                m.record.seq, m.id
            )));
        }
        let agreement = cx.engine.agreement(&request.agreement).ok_or_else(|| {
            GateError::Invalid(format!("agreement `{}` is not loaded", request.agreement))
        })?;
        request
            .apply(event.clone(), at, agreement)
            .map_err(|e| GateError::Conflict(e.to_string()))?;
        insert_event(cx.tx, &m.id, request.history.len().saturating_sub(1), &event, at, index)
            .await?;
        Ok(request)
    }
}
