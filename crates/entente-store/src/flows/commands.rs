//! The commands of data flows: record a datum, share it under the agreements in force,
//! receive one from a partner, consent to onward transfer as originator, receive that
//! consent, destroy a datum whose retention limit has passed.

use super::{
    Item, OutboxMessage, ShareFacts, digest, earlier, ensure_new, insert_item, load_share_facts,
    outbox,
};
use crate::gate::{
    DecideCx, EffectCx, GateCommand, GateError, PayloadDigests, Ruling, decided_by_role,
};
use crate::store::{StoreError, to_i64};
use entente_core::{
    Action, Actor, CaseId, DatumId, Decision, Obligation, PartyCode, Subject, SubjectKind, ids,
};
use entente_policy::agreement::{DataCategory, Purpose, RequestKind};
use entente_policy::engine::Flow;
use entente_policy::minimize::{PseudonymKey, minimize};
use entente_wire::{ConsentMessage, DatumMessage, MessageKind};
use jiff::Timestamp;
use serde_json::{Map, Value};
use sqlx::Row;

fn datum_id(id: &str) -> Result<(), GateError> {
    ids::check_identifier("datum id", id).map_err(GateError::Invalid)
}

/// Record a datum this party holds for a case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddDatum {
    /// Datum id.
    pub id: DatumId,
    /// The case it serves.
    pub case_id: CaseId,
    /// Its category.
    pub category: DataCategory,
    /// Its content (a JSON object).
    pub content: Map<String, Value>,
}

impl GateCommand for AddDatum {
    type Output = ();
    type Facts = ();

    fn action(&self) -> Action {
        Action::DatumAdd
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![
            Subject::new(SubjectKind::Datum, &self.id),
            Subject::new(SubjectKind::Case, &self.case_id),
        ]
    }

    /// The content's digest, recorded with the effect.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    decided_by_role!();

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<(), GateError> {
        let AddDatum { id, case_id, category, content } = self;
        let (id, case_id) = (String::from(id), String::from(case_id));
        ensure_new(cx.tx, &id).await?;
        let sha = digest(&content)?;
        // This party's case, or a partner-led case it is a member of (its mirror).
        let concepts: Option<String> = sqlx::query_scalar(
            "SELECT concepts FROM cases WHERE id = $1 UNION ALL SELECT concepts FROM case_mirrors WHERE case_id = $1",
        )
        .bind(&case_id)
        .fetch_optional(&mut **cx.tx)
        .await?;
        let Some(concepts) = concepts else {
            return Err(GateError::NotFound(format!("case `{case_id}`")));
        };
        let item = Item {
            id: &id,
            case_id: &case_id,
            category,
            concepts: &concepts,
            originator: cx.party,
        };
        insert_item(cx.tx, &item, None, None, &content, &sha, None, cx.index).await?;
        crate::redress::index_datum(cx.tx, cx.secret, &id, &content).await?;
        cx.record_digests(vec![("content".into(), sha)]);
        Ok(())
    }
}

/// Send a datum to another party under the agreements in force: minimized as the agreement
/// requires, with the conditions that travel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareDatum {
    /// Datum id.
    pub id: DatumId,
    /// The receiving party.
    pub to: PartyCode,
    /// The purpose the receiver will use it for.
    pub purpose: Purpose,
    /// The request answered, if any.
    pub request_kind: Option<RequestKind>,
}

impl GateCommand for ShareDatum {
    type Output = OutboxMessage;
    type Facts = ShareFacts;

    fn action(&self) -> Action {
        Action::DatumShare
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![
            Subject::new(SubjectKind::Datum, &self.id),
            Subject::new(SubjectKind::Party, self.to.as_str()),
        ]
    }

    /// The datum as it left (minimized) and its conditions, recorded with the effect.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    async fn load(&self, cx: &mut EffectCx<'_>) -> Result<ShareFacts, GateError> {
        load_share_facts(cx.tx, self.id.as_str(), &self.to).await
    }

    fn decide(&self, cx: &DecideCx<'_>, facts: &ShareFacts) -> Ruling {
        // Content that differs from what the ledger recorded never leaves (the denial is the
        // record; `on_deny` raises the alarm).
        if let Some(why) = &facts.tampered {
            return Ruling::of(cx.role.followed_by(Decision::deny(
                "integrity.content-digest",
                format!("not sent: {why}"),
            )));
        }
        let flow = Flow {
            from: cx.party,
            to: &self.to,
            originator: &facts.originator,
            origin_agreement: facts.origin_agreement.as_deref(),
            category: facts.category,
            purpose: self.purpose,
            concepts: &facts.concepts,
            request_kind: self.request_kind,
            consents: &facts.consents,
        };
        let d = cx.engine.decide_flow(&flow, cx.now);
        Ruling { decision: cx.role.followed_by(d.decision), conditions: d.conditions }
    }

    /// A share refused because the content was altered is an alarm: an operator must
    /// find out who changed the database (`entente ledger verify --state` names the rows).
    async fn on_deny(
        &self,
        _cx: &mut EffectCx<'_>,
        facts: Option<&ShareFacts>,
        _decision: &Decision,
    ) -> Result<(), GateError> {
        if let Some(why) = facts.and_then(|f| f.tampered.as_deref()) {
            tracing::error!(datum = %self.id, to = %self.to, %why, "integrity alarm: altered content refused at the border");
        }
        Ok(())
    }

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        facts: ShareFacts,
        ruling: &Ruling,
    ) -> Result<OutboxMessage, GateError> {
        let ShareDatum { id, to, purpose, .. } = self;
        let Some(conditions) = &ruling.conditions else {
            return Err(GateError::Internal("a permitted share has no conditions".into()));
        };
        crate::cases::check_share(cx.tx, &facts.case_id, &to).await?;
        let content = facts.content.clone().unwrap_or_default();
        let agreement = cx.engine.agreement(&conditions.agreement).ok_or_else(|| {
            GateError::Invalid(format!("agreement `{}` is not loaded", conditions.agreement))
        })?;
        let key = PseudonymKey::derive(cx.secret, &agreement.id);
        let minimized =
            minimize(&content, facts.category, &agreement.minimization, &key).map_err(|e| {
                GateError::Invalid(format!(
                    "datum `{id}` cannot leave as the agreement requires: {e}"
                ))
            })?;
        // Invariant: every minimization the decision requires was applied (or its field is
        // absent).
        let missed = ruling.decision.obligations.iter().find_map(|o| match o {
            Obligation::Minimize { field, .. }
                if content.contains_key(field)
                    && !minimized.applied.iter().any(|a| &a.field == field) =>
            {
                Some(field)
            }
            _ => None,
        });
        if let Some(field) = missed {
            return Err(GateError::Invalid(format!("field `{field}` was not minimized")));
        }
        let message = DatumMessage {
            id: id.into(),
            case_id: facts.case_id,
            category: facts.category,
            concepts: facts.concepts,
            purpose,
            content: minimized.datum,
            conditions: conditions.clone(),
            minimized: minimized
                .applied
                .iter()
                .map(|a| {
                    format!("{}:{}", a.field, entente_policy::minimize::transform_name(a.transform))
                })
                .collect(),
        };
        let payload = serde_json::to_value(&message).map_err(GateError::encoding)?;
        let sent = digest(&message)?;
        let (now_text, index) = (cx.now_text(), cx.index);
        let (out_id, seq) =
            outbox(cx.tx, &to, MessageKind::Datum, &payload, &now_text, index).await?;
        cx.record_digests(vec![("sent".into(), sent), ("conditions".into(), digest(conditions)?)]);
        Ok(OutboxMessage { id: out_id, seq, recipient: to, kind: MessageKind::Datum, payload })
    }
}

/// Accept a datum delivered by a partner, with its travelling conditions.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceiveDatum {
    /// The message as delivered.
    pub(crate) message: DatumMessage,
}

impl GateCommand for ReceiveDatum {
    type Output = ();
    type Facts = ();

    fn action(&self) -> Action {
        Action::DatumReceive
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![
            Subject::new(SubjectKind::Datum, &self.message.id),
            Subject::new(SubjectKind::Case, &self.message.case_id),
        ]
    }

    /// The content's digest and the conditions bound, recorded with the effect.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    fn validate(&self) -> Result<(), GateError> {
        let message = &self.message;
        datum_id(&message.id)?;
        ids::check_identifier("case id", &message.case_id).map_err(GateError::Invalid)?;
        if message.conditions.agreement.is_empty() {
            return Err(GateError::Invalid(
                "conditions.agreement: a datum must travel with the agreement it is sent under"
                    .into(),
            ));
        }
        for c in &message.concepts {
            ids::check_identifier("offense concept", c).map_err(GateError::Invalid)?;
        }
        Ok(())
    }

    async fn load(&self, _cx: &mut EffectCx<'_>) -> Result<(), GateError> {
        Ok(())
    }

    fn decide(&self, cx: &DecideCx<'_>, _: &()) -> Ruling {
        let message = &self.message;
        let Actor::Peer { party: sender } = cx.actor else {
            return Ruling::of(Decision::deny("peer.only", "only a partner node delivers data"));
        };
        // The datum must arrive with the conditions of an agreement that lets it flow from the
        // sender to this party now.
        let flow = Flow {
            from: sender,
            to: cx.party,
            originator: &message.conditions.originator,
            origin_agreement: None,
            category: message.category,
            purpose: message.purpose,
            concepts: &message.concepts,
            request_kind: None,
            consents: &[],
        };
        let d = cx.engine.decide_flow(&flow, cx.now);
        if let Some(refused) =
            crate::flows::travels_as_grounded(&d, &message.conditions.agreement, "datum")
        {
            return Ruling::of(cx.role.followed_by(refused));
        }
        // Data that must stay within some jurisdictions is not kept by a node whose store
        // is elsewhere.
        if let Some(refused) =
            cx.engine.storage_denial(&message.conditions.agreement, message.category)
        {
            return Ruling::of(cx.role.followed_by(refused));
        }
        // The receiver binds itself to the sender's conditions, and keeps the data no longer
        // than its own copy of the agreement allows either: the earlier limit wins.
        let mut bound = message.conditions.clone();
        let ours = d.conditions.and_then(|c| c.retain_until);
        bound.retain_until = earlier(bound.retain_until, ours);
        Ruling { decision: cx.role.followed_by(d.decision), conditions: Some(bound) }
    }

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), ruling: &Ruling) -> Result<(), GateError> {
        let message = self.message;
        let sender = match cx.actor {
            Actor::Peer { party } => Some(party.clone()),
            _ => None,
        };
        let bound = ruling.conditions.as_ref().unwrap_or(&message.conditions);
        let conditions_json = serde_json::to_string(bound).map_err(GateError::encoding)?;
        let sha = digest(&message.content)?;
        let concepts = serde_json::to_string(&message.concepts).map_err(GateError::encoding)?;
        let item = Item {
            id: &message.id,
            case_id: &message.case_id,
            category: message.category,
            concepts: &concepts,
            originator: &message.conditions.originator,
        };
        insert_item(
            cx.tx,
            &item,
            sender.as_ref(),
            Some((&message.conditions.agreement, &conditions_json)),
            &message.content,
            &sha,
            bound.retain_until.as_deref(),
            cx.index,
        )
        .await?;
        crate::redress::index_datum(cx.tx, cx.secret, &message.id, &message.content).await?;
        cx.record_digests(vec![
            ("content".into(), sha),
            ("conditions".into(), digest(&message.conditions)?),
        ]);
        Ok(())
    }
}

/// As originator, consent to `holder` passing a datum on to `recipient`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GiveConsent {
    /// Datum id.
    pub datum_id: DatumId,
    /// The party holding the datum.
    pub holder: PartyCode,
    /// The party it may be passed to.
    pub recipient: PartyCode,
}

impl GateCommand for GiveConsent {
    type Output = OutboxMessage;
    type Facts = ();

    fn action(&self) -> Action {
        Action::ConsentGive
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![
            Subject::new(SubjectKind::Datum, &self.datum_id),
            Subject::new(SubjectKind::Party, self.recipient.as_str()),
        ]
    }

    /// The consent message sent, recorded with the effect.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    decided_by_role!();

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        _: (),
        _: &Ruling,
    ) -> Result<OutboxMessage, GateError> {
        let GiveConsent { datum_id, holder, recipient } = self;
        let datum_id = String::from(datum_id);
        let row: Option<String> =
            sqlx::query_scalar("SELECT originator FROM data_items WHERE id = $1")
                .bind(&datum_id)
                .fetch_optional(&mut **cx.tx)
                .await?;
        match row {
            None => return Err(GateError::NotFound(format!("datum `{datum_id}`"))),
            Some(o) if o != cx.party.as_str() => {
                return Err(GateError::Conflict(format!(
                    "datum `{datum_id}` originated at {o}; only the originator consents"
                )));
            }
            Some(_) => {}
        }
        let message = ConsentMessage { datum_id, recipient };
        let payload = serde_json::to_value(&message).map_err(GateError::encoding)?;
        let (now_text, index) = (cx.now_text(), cx.index);
        let (out_id, seq) =
            outbox(cx.tx, &holder, MessageKind::Consent, &payload, &now_text, index).await?;
        cx.record_digests(vec![("consent".into(), digest(&message)?)]);
        Ok(OutboxMessage {
            id: out_id,
            seq,
            recipient: holder,
            kind: MessageKind::Consent,
            payload,
        })
    }
}

/// Record a consent delivered by the originator of a datum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiveConsent {
    /// The message as delivered.
    pub(crate) message: ConsentMessage,
}

impl GateCommand for ReceiveConsent {
    type Output = ();
    /// The datum's originator, the only party whose consent counts.
    type Facts = PartyCode;

    fn action(&self) -> Action {
        Action::ConsentReceive
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![
            Subject::new(SubjectKind::Datum, &self.message.datum_id),
            Subject::new(SubjectKind::Party, self.message.recipient.as_str()),
        ]
    }

    /// The consent received, recorded with the effect.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    fn validate(&self) -> Result<(), GateError> {
        datum_id(&self.message.datum_id)
    }

    async fn load(&self, cx: &mut EffectCx<'_>) -> Result<PartyCode, GateError> {
        let id = &self.message.datum_id;
        let row = sqlx::query("SELECT originator FROM data_items WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **cx.tx)
            .await?
            .ok_or_else(|| GateError::NotFound(format!("datum `{id}`")))?;
        let originator: String = row.try_get(0)?;
        Ok(originator.parse().map_err(|e| StoreError::Inconsistent(format!("{e}")))?)
    }

    fn decide(&self, cx: &DecideCx<'_>, originator: &PartyCode) -> Ruling {
        let Actor::Peer { party: sender } = cx.actor else {
            return Ruling::of(Decision::deny(
                "peer.only",
                "only a partner node delivers consents",
            ));
        };
        if sender != originator {
            return Ruling::of(cx.role.followed_by(Decision::deny(
                "consent.originator-only",
                format!("only {originator} (the originator) can consent; {sender} cannot"),
            )));
        }
        Ruling::of(cx.role.followed_by(Decision::permit(
            "consent.from-originator",
            format!("{sender} originated the datum and consents"),
            Vec::new(),
        )))
    }

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        originator: PartyCode,
        _: &Ruling,
    ) -> Result<(), GateError> {
        let message = self.message;
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM consents WHERE datum_id = $1 AND recipient = $2")
                .bind(&message.datum_id)
                .bind(message.recipient.as_str())
                .fetch_optional(&mut **cx.tx)
                .await?;
        if exists.is_none() {
            sqlx::query("INSERT INTO consents (datum_id, recipient, given_by, ledger_index) VALUES ($1, $2, $3, $4)")
                .bind(&message.datum_id)
                .bind(message.recipient.as_str())
                .bind(originator.to_string())
                .bind(to_i64(cx.index)?)
                .execute(&mut **cx.tx)
                .await?;
        }
        cx.record_digests(vec![("consent".into(), digest(&message)?)]);
        Ok(())
    }
}

/// Destroy a datum whose retention limit has passed (its content is cleared, its digest
/// kept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestroyDatum {
    /// Datum id.
    pub id: DatumId,
}

impl GateCommand for DestroyDatum {
    type Output = ();
    type Facts = ();

    fn action(&self) -> Action {
        Action::DatumDestroy
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Datum, &self.id)]
    }

    /// The digest of the content destroyed, read from the store.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    decided_by_role!();

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<(), GateError> {
        let id = self.id.as_str();
        let row = sqlx::query(
            "SELECT retain_until, destroyed_at, content_sha256 FROM data_items WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut **cx.tx)
        .await?
        .ok_or_else(|| GateError::NotFound(format!("datum `{id}`")))?;
        let until: Option<String> = row.try_get(0)?;
        let destroyed: Option<String> = row.try_get(1)?;
        let sha: String = row.try_get(2)?;
        if destroyed.is_some() {
            return Err(GateError::Conflict(format!("datum `{id}` is already destroyed")));
        }
        let expired =
            until.as_deref().and_then(|u| u.parse::<Timestamp>().ok()).is_some_and(|u| u <= cx.now);
        if !expired {
            return Err(GateError::Conflict(format!(
                "datum `{id}` may be kept until {}; it is not due for destruction",
                until.as_deref().unwrap_or("no limit")
            )));
        }
        sqlx::query("UPDATE data_items SET content = NULL, destroyed_at = $1 WHERE id = $2")
            .bind(cx.now_text())
            .bind(id)
            .execute(&mut **cx.tx)
            .await?;
        cx.record_digests(vec![("content".into(), sha)]);
        Ok(())
    }
}

/// Read the content of a datum this party holds: personal data, so the read is a recorded
/// command like any other (who read which datum, when, under which role rule).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadDatum {
    /// Datum id.
    pub id: DatumId,
}

impl GateCommand for ReadDatum {
    /// The content; `None` once retention has destroyed it (its digest stays in the ledger).
    type Output = Option<Map<String, Value>>;
    type Facts = ();

    fn action(&self) -> Action {
        Action::DatumRead
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Datum, &self.id)]
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
    ) -> Result<Option<Map<String, Value>>, GateError> {
        let id = self.id.as_str();
        let content: Option<Option<String>> =
            sqlx::query_scalar("SELECT content FROM data_items WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut **cx.tx)
                .await?;
        let Some(content) = content else {
            return Err(GateError::NotFound(format!("datum `{id}`")));
        };
        content
            .map(|c| {
                serde_json::from_str(&c).map_err(|e| {
                    GateError::Store(StoreError::Inconsistent(format!("datum {id}: {e}")))
                })
            })
            .transpose()
    }
}
