//! The commands of evidence: take an item in, record a custody event, release it to another
//! party (decided by the agreements), take it in from a verified package, read it, destroy it.

use super::{
    ChainEvent, EvidenceRecord, ItemRow, NewEvidence, ReceivedEvidence, TOOL, case_concepts,
    earlier, ensure_new, insert_event, insert_item, live_item, load_item, next_link, parse_text,
    upsert_blob,
};
use crate::gate::{
    DecideCx, EffectCx, GateCommand, GateError, PayloadDigests, Ruling, decided_by_role,
};
use entente_core::{Action, ItemId, PartyCode, RequestId, Subject, SubjectKind};
use entente_evidence::{CustodyEvent, CustodyKind};
use entente_policy::agreement::{Purpose, RequestKind};
use entente_policy::engine::Flow;
use jiff::Timestamp;

fn sha_ok(s: &str) -> Result<(), GateError> {
    // The bare 64 lowercase hex digits, as the store keeps them (no `sha256:` tag).
    match s.parse::<entente_core::digest::Sha256>() {
        Ok(_) if !s.contains(':') => Ok(()),
        _ => Err(GateError::Invalid("sha256: expected 64 lowercase hex digits".into())),
    }
}

fn reason_ok(r: &str) -> Result<(), GateError> {
    if r.trim().is_empty() || r.len() > 1000 {
        Err(GateError::Invalid("reason: expected 1 to 1000 characters".into()))
    } else {
        Ok(())
    }
}

/// The custody event this node records now, as `cx`'s actor.
#[expect(clippy::too_many_arguments, reason = "the fields of one custody event")]
fn event(
    cx: &EffectCx<'_>,
    item: &str,
    seq: u64,
    kind: CustodyKind,
    sha256: &str,
    reason: &str,
    basis: Option<&String>,
    prev: Option<String>,
) -> CustodyEvent {
    CustodyEvent {
        item: item.to_owned(),
        seq,
        event: kind,
        party: cx.party.clone(),
        actor: cx.actor.to_string(),
        at: cx.now_text(),
        reason: reason.to_owned(),
        legal_basis: basis.cloned(),
        location: Some(format!("Entente node {}", cx.party)),
        tool: TOOL.to_owned(),
        sha256: sha256.to_owned(),
        prev,
    }
}

/// Take in an evidence item whose content was ingested into the blob store (custody event
/// `acquired`). Content already held is de-duplicated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddEvidence {
    /// The item.
    pub item: NewEvidence,
}

impl GateCommand for AddEvidence {
    type Output = EvidenceRecord;
    type Facts = ();

    fn action(&self) -> Action {
        Action::EvidenceAdd
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![
            Subject::new(SubjectKind::Evidence, &self.item.id),
            Subject::new(SubjectKind::Case, &self.item.case_id),
        ]
    }

    /// The custody event's digest, known once its place in the chain is.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    fn validate(&self) -> Result<(), GateError> {
        let item = &self.item;
        sha_ok(&item.sha256)?;
        reason_ok(&item.reason)?;
        if item.description.trim().is_empty() || item.description.len() > 2000 {
            return Err(GateError::Invalid("description: expected 1 to 2000 characters".into()));
        }
        if let Some(at) = &item.collected_at {
            at.parse::<Timestamp>().map_err(|e| {
                GateError::Invalid(format!(
                    "collected_at `{at}`: {e}; expected RFC 3339 such as 2026-04-02T09:30:00Z"
                ))
            })?;
        }
        Ok(())
    }

    decided_by_role!();

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        _: (),
        _: &Ruling,
    ) -> Result<EvidenceRecord, GateError> {
        let item = self.item;
        let (index, now_text) = (cx.index, cx.now_text());
        ensure_new(cx.tx, item.id.as_str()).await?;
        case_concepts(cx.tx, item.case_id.as_str()).await?;
        let deduplicated = upsert_blob(cx.tx, &item.sha256, item.size, &item.blob, index).await?;
        insert_item(
            cx.tx,
            ItemRow {
                id: item.id.as_str(),
                case_id: item.case_id.as_str(),
                sha256: &item.sha256,
                size: item.size,
                category: item.category,
                media_type: &item.media_type,
                description: &item.description,
                file_name: item.file_name.as_deref(),
                source: item.source.as_deref(),
                collected_at: item.collected_at.as_deref(),
                originator: cx.party,
                received_from: None,
                package_sha256: None,
                conditions: None,
                earlier_chain: &[],
            },
            &now_text,
            index,
        )
        .await?;
        let mut e = event(
            cx,
            item.id.as_str(),
            0,
            CustodyKind::Acquired,
            &item.sha256,
            &item.reason,
            item.legal_basis.as_ref(),
            None,
        );
        e.tool.clone_from(&item.tool);
        if item.location.is_some() {
            e.location.clone_from(&item.location);
        }
        let digest = insert_event(cx.tx, &e, index).await?;
        let mut record = load_item(cx.tx, item.id.as_str()).await?;
        record.deduplicated = deduplicated;
        cx.record_digests(vec![("custody".into(), digest)]);
        Ok(record)
    }
}

/// Record a custody event on an evidence item: sealed, accessed, copied, verified, analysed
/// or returned (the others are recorded by their own commands).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvidenceCustody {
    /// Item id.
    pub id: ItemId,
    /// The event.
    pub event: CustodyKind,
    /// Why.
    pub reason: String,
    /// The legal basis (a request or agreement id).
    pub legal_basis: Option<String>,
}

impl GateCommand for EvidenceCustody {
    type Output = EvidenceRecord;
    type Facts = ();

    fn action(&self) -> Action {
        Action::EvidenceCustody
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Evidence, &self.id)]
    }

    /// The custody event's digest, known once its place in the chain is.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    fn validate(&self) -> Result<(), GateError> {
        reason_ok(&self.reason)?;
        match self.event {
            CustodyKind::Sealed
            | CustodyKind::Accessed
            | CustodyKind::Copied
            | CustodyKind::Verified
            | CustodyKind::Analysed
            | CustodyKind::Returned => Ok(()),
            other => Err(GateError::Invalid(format!(
                "custody event `{other}` is recorded by its own action (add, export, import, destroy), not directly"
            ))),
        }
    }

    decided_by_role!();

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        _: (),
        _: &Ruling,
    ) -> Result<EvidenceRecord, GateError> {
        let EvidenceCustody { id, event: kind, reason, legal_basis } = self;
        let id = String::from(id);
        let index = cx.index;
        let item = live_item(cx.tx, &id).await?;
        let (seq, prev) = next_link(&item);
        let e = event(cx, &id, seq, kind, &item.sha256, &reason, legal_basis.as_ref(), prev);
        let digest = insert_event(cx.tx, &e, index).await?;
        let mut record = item;
        record.chain.push(ChainEvent { event: e, ledger_index: Some(index) });
        cx.record_digests(vec![("custody".into(), digest)]);
        Ok(record)
    }
}

/// Release an evidence item into a package for another party under a request (custody event
/// `exported`), decided by the agreements in force; the answer carries the conditions that
/// travel with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportEvidence {
    /// Item id.
    pub id: ItemId,
    /// The receiving party.
    pub to: PartyCode,
    /// The request answered.
    pub request: RequestId,
    /// Its kind, when the request is not held by this node.
    pub request_kind: Option<RequestKind>,
    /// The purpose the receiver will use it for.
    pub purpose: Purpose,
    /// A retention limit the sender imposes (RFC 3339); the earlier of it and the agreement's
    /// limit travels.
    pub retain_until: Option<String>,
}

/// What an export's decision reads: the item, the request's kind, the case's offence
/// concepts and the originators' consents to passing it on to the recipient.
#[derive(Debug)]
pub struct ExportFacts {
    item: EvidenceRecord,
    /// Why the item may not leave under privilege review, if so.
    privilege: Option<String>,
    kind: Option<RequestKind>,
    concepts: Vec<String>,
    consents: Vec<PartyCode>,
}

impl GateCommand for ExportEvidence {
    type Output = EvidenceRecord;
    type Facts = ExportFacts;

    fn action(&self) -> Action {
        Action::EvidenceExport
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![
            Subject::new(SubjectKind::Evidence, &self.id),
            Subject::new(SubjectKind::Party, self.to.as_str()),
        ]
    }

    /// The `exported` custody event's digest, known once its place in the chain is.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    fn validate(&self) -> Result<(), GateError> {
        if let Some(at) = &self.retain_until {
            at.parse::<Timestamp>().map_err(|e| {
                GateError::Invalid(format!(
                    "retain_until `{at}`: {e}; expected RFC 3339 such as 2028-04-08T00:00:00Z"
                ))
            })?;
        }
        Ok(())
    }

    async fn load(&self, cx: &mut EffectCx<'_>) -> Result<ExportFacts, GateError> {
        let id = self.id.as_str();
        let item = load_item(cx.tx, id).await?;
        if item.destroyed_at.is_some() {
            return Err(GateError::Conflict(format!("evidence `{id}` was destroyed")));
        }
        let kind = match self.request_kind {
            Some(k) => Some(k),
            None => {
                let k: Option<String> =
                    sqlx::query_scalar("SELECT kind FROM requests WHERE id = $1")
                        .bind(self.request.as_str())
                        .fetch_optional(&mut **cx.tx)
                        .await?;
                k.map(|k| parse_text::<RequestKind>("request kind", &k)).transpose()?
            }
        };
        let concepts = case_concepts(cx.tx, &item.case_id).await?;
        let consents: Vec<String> = sqlx::query_scalar(
            "SELECT given_by FROM consents WHERE datum_id = $1 AND recipient = $2",
        )
        .bind(id)
        .bind(self.to.as_str())
        .fetch_all(&mut **cx.tx)
        .await?;
        let consents = consents.iter().filter_map(|c| c.parse().ok()).collect();
        let privilege = super::privilege::hold(cx.tx, id).await?;
        Ok(ExportFacts { item, privilege, kind, concepts, consents })
    }

    fn decide(&self, cx: &DecideCx<'_>, facts: &ExportFacts) -> Ruling {
        // Possibly privileged material stays until a filter team has reviewed it.
        if let Some(why) = &facts.privilege {
            return Ruling::of(
                cx.role.followed_by(entente_core::Decision::deny("privilege.hold", why.clone())),
            );
        }
        let item = &facts.item;
        let origin_agreement = item.conditions.as_ref().map(|c| c.agreement.clone());
        let flow = Flow {
            from: cx.party,
            to: &self.to,
            originator: &item.originator,
            origin_agreement: origin_agreement.as_deref(),
            category: item.category,
            purpose: self.purpose,
            concepts: &facts.concepts,
            request_kind: facts.kind,
            consents: &facts.consents,
        };
        let d = cx.engine.decide_flow(&flow, cx.now);
        // What the receiver must honour: the agreement's conditions, and for evidence we
        // received, the originator's conditions as well (the earlier limit wins).
        let conditions = d.conditions.map(|mut c| {
            if let Some(theirs) = &item.conditions {
                c.originator = theirs.originator.clone();
                c.retain_until = earlier(c.retain_until, theirs.retain_until.clone());
            }
            c.retain_until = earlier(c.retain_until, self.retain_until.clone());
            c
        });
        Ruling { decision: cx.role.followed_by(d.decision), conditions }
    }

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        facts: ExportFacts,
        ruling: &Ruling,
    ) -> Result<EvidenceRecord, GateError> {
        let ExportEvidence { id, to, request, .. } = self;
        let (id, request) = (String::from(id), String::from(request));
        let index = cx.index;
        // Loaded, and checked not destroyed, by `load` in this transaction.
        let item = facts.item;
        let Some(conditions) = &ruling.conditions else {
            return Err(GateError::Internal("a permitted export has no conditions".into()));
        };
        let (seq, prev) = next_link(&item);
        let reason = format!("released to {to} in an evidence package");
        let e =
            event(cx, &id, seq, CustodyKind::Exported, &item.sha256, &reason, Some(&request), prev);
        let digest = insert_event(cx.tx, &e, index).await?;
        // The record as loaded, with the event just written (no second read).
        let mut record = item;
        record.chain.push(ChainEvent { event: e, ledger_index: Some(index) });
        record.conditions = Some(conditions.clone());
        cx.record_digests(vec![("custody".into(), digest)]);
        Ok(record)
    }
}

/// Take in an evidence item from a verified package (custody event `received`), binding its
/// travelling conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiveEvidence {
    /// The item.
    pub item: ReceivedEvidence,
}

/// What a receipt's decision reads: the local case's offence concepts and the kind of the
/// request it answers.
#[derive(Debug)]
pub struct ReceiveFacts {
    concepts: Vec<String>,
    kind: Option<RequestKind>,
}

impl GateCommand for ReceiveEvidence {
    type Output = EvidenceRecord;
    type Facts = ReceiveFacts;

    fn action(&self) -> Action {
        Action::EvidenceReceive
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![
            Subject::new(SubjectKind::Evidence, &self.item.id),
            Subject::new(SubjectKind::Case, &self.item.case_id),
            Subject::new(SubjectKind::Party, self.item.from.as_str()),
        ]
    }

    /// The `received` custody event's digest, known once its place in the chain is.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    fn validate(&self) -> Result<(), GateError> {
        let item = &self.item;
        sha_ok(&item.sha256)?;
        entente_evidence::custody::check_chain(&item.id, &item.sha256, &item.chain)
            .map_err(|e| GateError::Invalid(format!("custody chain: {e}")))?;
        if item.conditions.agreement.is_empty() {
            return Err(GateError::Invalid(
                "conditions.agreement: evidence must travel with the agreement it is sent under"
                    .into(),
            ));
        }
        Ok(())
    }

    async fn load(&self, cx: &mut EffectCx<'_>) -> Result<ReceiveFacts, GateError> {
        let item = &self.item;
        let concepts = case_concepts(cx.tx, &item.case_id).await?;
        // The answer to a request this node made flows under that request's kind.
        let kind: Option<String> = match &item.request {
            Some(r) => {
                sqlx::query_scalar("SELECT kind FROM requests WHERE id = $1 AND requested = $2")
                    .bind(r)
                    .bind(item.from.as_str())
                    .fetch_optional(&mut **cx.tx)
                    .await?
            }
            None => None,
        };
        let kind = kind
            .map(|k| parse_text::<RequestKind>("request kind", &k))
            .transpose()?
            .or(item.request_kind);
        Ok(ReceiveFacts { concepts, kind })
    }

    fn decide(&self, cx: &DecideCx<'_>, facts: &ReceiveFacts) -> Ruling {
        let item = &self.item;
        let purpose =
            item.conditions.purposes.first().copied().unwrap_or(Purpose::CriminalInvestigation);
        let flow = Flow {
            from: &item.from,
            to: cx.party,
            originator: &item.conditions.originator,
            origin_agreement: None,
            category: item.category,
            purpose,
            concepts: &facts.concepts,
            request_kind: facts.kind,
            consents: &[],
        };
        let d = cx.engine.decide_flow(&flow, cx.now);
        if let Some(refused) =
            crate::flows::travels_as_grounded(&d, &item.conditions.agreement, "evidence")
        {
            return Ruling::of(cx.role.followed_by(refused));
        }
        // Evidence that must stay within some jurisdictions is not kept by a node whose
        // blob store is elsewhere.
        if let Some(refused) = cx.engine.storage_denial(&item.conditions.agreement, item.category) {
            return Ruling::of(cx.role.followed_by(refused));
        }
        let mut bound = item.conditions.clone();
        let ours = d.conditions.and_then(|c| c.retain_until);
        bound.retain_until = earlier(bound.retain_until, ours);
        Ruling { decision: cx.role.followed_by(d.decision), conditions: Some(bound) }
    }

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        _: ReceiveFacts,
        ruling: &Ruling,
    ) -> Result<EvidenceRecord, GateError> {
        let item = self.item;
        let (index, now_text) = (cx.index, cx.now_text());
        ensure_new(cx.tx, &item.id).await?;
        let Some(bound) = &ruling.conditions else {
            return Err(GateError::Internal("a permitted receipt has no conditions".into()));
        };
        let deduplicated = upsert_blob(cx.tx, &item.sha256, item.size, &item.blob, index).await?;
        insert_item(
            cx.tx,
            ItemRow {
                id: &item.id,
                case_id: &item.case_id,
                sha256: &item.sha256,
                size: item.size,
                category: item.category,
                media_type: &item.media_type,
                description: &item.description,
                file_name: item.file_name.as_deref(),
                source: item.source.as_deref(),
                collected_at: item.collected_at.as_deref(),
                originator: &bound.originator,
                received_from: Some(&item.from),
                package_sha256: Some(&item.package_sha256),
                conditions: Some(bound),
                earlier_chain: &item.chain,
            },
            &now_text,
            index,
        )
        .await?;
        let prev = item.chain.last().map(CustodyEvent::digest);
        let reason = format!(
            "received from {} in package sha256:{}, conditions of {} bound",
            item.from, item.package_sha256, bound.agreement
        );
        let basis = item.request.clone().or_else(|| Some(bound.agreement.clone()));
        let e = event(
            cx,
            &item.id,
            item.chain.len() as u64,
            CustodyKind::Received,
            &item.sha256,
            &reason,
            basis.as_ref(),
            prev,
        );
        let digest = insert_event(cx.tx, &e, index).await?;
        let mut record = load_item(cx.tx, &item.id).await?;
        record.deduplicated = deduplicated;
        cx.record_digests(vec![("custody".into(), digest)]);
        Ok(record)
    }
}

/// Read an evidence item with its custody chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadEvidence {
    /// Item id.
    pub id: ItemId,
}

impl GateCommand for ReadEvidence {
    type Output = EvidenceRecord;
    type Facts = ();

    fn action(&self) -> Action {
        Action::EvidenceRead
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Evidence, &self.id)]
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
    ) -> Result<EvidenceRecord, GateError> {
        load_item(cx.tx, self.id.as_str()).await
    }
}

/// Destroy an evidence item whose retention limit has passed: its data key is destroyed
/// (crypto-shredding), the custody event `destroyed` recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestroyEvidence {
    /// Item id.
    pub id: ItemId,
}

impl GateCommand for DestroyEvidence {
    type Output = EvidenceRecord;
    type Facts = ();

    fn action(&self) -> Action {
        Action::EvidenceDestroy
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Evidence, &self.id)]
    }

    /// The `destroyed` custody event's digest and the content's, known once the item loads.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    decided_by_role!();

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        _: (),
        _: &Ruling,
    ) -> Result<EvidenceRecord, GateError> {
        let id = self.id.as_str();
        let (index, now, now_text) = (cx.index, cx.now, cx.now_text());
        let item = live_item(cx.tx, id).await?;
        let Some(until) = item.retain_until.filter(|u| u.timestamp() <= now) else {
            return Err(GateError::Conflict(format!(
                "evidence `{id}` may be kept until {}; it is not due for destruction",
                item.retain_until.map_or_else(|| "no limit".to_owned(), |u| u.to_string())
            )));
        };
        let (seq, prev) = next_link(&item);
        let reason = format!("retention limit {until} passed: data key destroyed");

        let basis = item.conditions.as_ref().map(|c| c.agreement.clone());
        let e =
            event(cx, id, seq, CustodyKind::Destroyed, &item.sha256, &reason, basis.as_ref(), prev);
        let digest = insert_event(cx.tx, &e, index).await?;
        sqlx::query("UPDATE evidence_items SET destroyed_at = $1 WHERE id = $2")
            .bind(&now_text)
            .bind(id)
            .execute(&mut **cx.tx)
            .await?;
        // The data key goes when no live item needs the content any more.
        let live: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM evidence_items WHERE sha256 = $1 AND destroyed_at IS NULL",
        )
        .bind(&item.sha256)
        .fetch_optional(&mut **cx.tx)
        .await?;
        let mut shredded = None;
        if live.is_none() {
            shredded = sqlx::query_scalar("SELECT blob_name FROM evidence_blobs WHERE sha256 = $1")
                .bind(&item.sha256)
                .fetch_optional(&mut **cx.tx)
                .await?;
            sqlx::query(
                "UPDATE evidence_blobs SET wrapped_key = NULL, destroyed_at = $1 WHERE sha256 = $2",
            )
            .bind(&now_text)
            .bind(&item.sha256)
            .execute(&mut **cx.tx)
            .await?;
        }
        let mut record = load_item(cx.tx, id).await?;
        record.shredded_blob = shredded;
        cx.record_digests(vec![
            ("custody".into(), digest),
            ("content".into(), format!("sha256:{}", item.sha256)),
        ]);
        Ok(record)
    }
}
