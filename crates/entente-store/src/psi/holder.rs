//! The holder's side: key epochs, the prepared set of the node's holdings, evaluations.

use super::{
    CHUNK_ELEMENTS, LIMITS, agreement_between, json, mode_name, open, parse_mode, psi_error, seal,
    window_start,
};
use crate::gate::{
    DecideCx, EffectCx, GateCommand, GateError, PayloadDigests, Ruling, digest_json,
};
use crate::store::{to_i64, to_u64};
use entente_core::{Action, Actor, Decision, PartyCode, Subject, SubjectKind, ids};
use entente_psi::{HolderKey, Label, Selector, SelectorKind, SetSummary, selector};
use entente_wire::{MessageKind, PsiEvaluationMessage, PsiKeyMessage, PsiQueryMessage};
use serde::Serialize;
use sqlx::Row;

/// Longest contact point a label carries.
pub const MAX_CONTACT: usize = 200;

/// Rotate this node's deconfliction key for `agreement`: a new epoch, the node's holdings of
/// the selector kinds the agreement names PRF'd under it (each labelled with its case
/// reference and `contact`), the previous epoch's key destroyed, and the new public key with
/// the prepared set sent to every other party of the agreement's `[deconfliction]` that is
/// pinned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotatePsiKey {
    /// The deconfliction agreement.
    pub agreement: String,
    /// Whom to ask about a match (a desk, an address): the contact point of every label.
    pub contact: String,
}

/// What a rotation made and sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RotationReport {
    /// The agreement.
    pub agreement: String,
    /// The new epoch (hex).
    pub epoch: String,
    /// Distinct selectors in the prepared set.
    pub set_size: u64,
    /// Chunks it is sent in.
    pub chunks: u64,
    /// Partners it was sent to.
    pub sent_to: Vec<PartyCode>,
    /// Parties of the agreement that are not pinned here (nothing sent).
    pub not_pinned: Vec<PartyCode>,
    /// The epochs whose keys this rotation destroyed.
    pub destroyed: Vec<String>,
}

/// What a rotation reads: the holdings, and which parties are pinned.
#[derive(Debug)]
pub struct Holdings {
    found: Vec<(Selector, Label)>,
    pinned: Vec<PartyCode>,
}

/// The selectors in the string values of a JSON value (nested), as the agreement types them.
fn selectors_in(
    v: &serde_json::Value,
    rules: entente_psi::EmailRules,
    kinds: &[SelectorKind],
    out: &mut Vec<Selector>,
) {
    match v {
        serde_json::Value::String(s) if s.len() <= 2048 => {
            if let Ok(sel) = selector::parse_line(s, rules)
                && kinds.contains(&sel.kind())
            {
                out.push(sel);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| selectors_in(x, rules, kinds, out)),
        serde_json::Value::Object(m) => {
            m.values().for_each(|x| selectors_in(x, rules, kinds, out));
        }
        _ => {}
    }
}

/// The selectors a STIX cyber-observable carries, by its type.
fn stix_selectors(
    raw: &serde_json::Value,
    rules: entente_psi::EmailRules,
    kinds: &[SelectorKind],
) -> Vec<Selector> {
    let mut out = Vec::new();
    let value = raw.get("value").and_then(|v| v.as_str());
    let typed = |kind: SelectorKind, text: &str, out: &mut Vec<Selector>| {
        if kinds.contains(&kind)
            && let Ok(s) = selector::parse(kind, text, rules)
        {
            out.push(s);
        }
    };
    match (raw.get("type").and_then(|t| t.as_str()), value) {
        (Some("ipv4-addr" | "ipv6-addr"), Some(v)) => typed(SelectorKind::Ip, v, &mut out),
        (Some("domain-name"), Some(v)) => typed(SelectorKind::Domain, v, &mut out),
        (Some("url"), Some(v)) => typed(SelectorKind::Url, v, &mut out),
        (Some("email-addr"), Some(v)) => typed(SelectorKind::Email, v, &mut out),
        (Some("file"), _) => {
            if let Some(h) = raw.get("hashes").and_then(|h| h.as_object()) {
                for (name, kind) in [
                    ("MD5", SelectorKind::Md5),
                    ("SHA-1", SelectorKind::Sha1),
                    ("SHA-256", SelectorKind::Sha256),
                ] {
                    if let Some(v) = h.get(name).and_then(|v| v.as_str()) {
                        typed(kind, v, &mut out);
                    }
                }
            }
        }
        _ => {}
    }
    out
}

impl GateCommand for RotatePsiKey {
    type Output = RotationReport;
    type Facts = Holdings;

    fn action(&self) -> Action {
        Action::PsiKeyRotate
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::PsiKey, &self.agreement)]
    }

    /// The new epoch, the set's size and digest and the recipients, known once made.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    fn validate(&self) -> Result<(), GateError> {
        ids::check_identifier("agreement id", &self.agreement).map_err(GateError::Invalid)?;
        let c = self.contact.trim();
        if c.is_empty() || c.len() > MAX_CONTACT || c.chars().any(char::is_control) {
            return Err(GateError::Invalid(format!(
                "contact: expected a contact point of 1 to {MAX_CONTACT} bytes without control characters (e.g. `deconfliction desk, BKA`)"
            )));
        }
        Ok(())
    }

    async fn load(&self, cx: &mut EffectCx<'_>) -> Result<Holdings, GateError> {
        let Some(d) = cx.engine.agreement(&self.agreement).and_then(|a| a.deconfliction.as_ref())
        else {
            return Ok(Holdings { found: Vec::new(), pinned: Vec::new() });
        };
        let (rules, kinds) = (d.email, d.selectors.clone());
        let label = |case: String| Label { case_reference: case, contact: self.contact.clone() };
        let mut found = Vec::new();
        let rows = sqlx::query(
            "SELECT case_id, content FROM data_items WHERE destroyed_at IS NULL AND content IS NOT NULL ORDER BY id",
        )
        .fetch_all(&mut **cx.tx)
        .await?;
        for r in &rows {
            let case: String = r.try_get(0)?;
            let content: String = r.try_get(1)?;
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&content) else { continue };
            let mut sels = Vec::new();
            selectors_in(&v, rules, &kinds, &mut sels);
            found.extend(sels.into_iter().map(|s| (s, label(case.clone()))));
        }
        if kinds.contains(&SelectorKind::Sha256) {
            let rows = sqlx::query(
                "SELECT case_id, sha256 FROM evidence_items WHERE destroyed_at IS NULL ORDER BY id",
            )
            .fetch_all(&mut **cx.tx)
            .await?;
            for r in &rows {
                let case: String = r.try_get(0)?;
                let sha: String = r.try_get(1)?;
                let hex = sha.strip_prefix("sha256:").unwrap_or(&sha);
                if let Ok(s) = selector::parse(SelectorKind::Sha256, hex, rules) {
                    found.push((s, label(case)));
                }
            }
        }
        let rows = sqlx::query(
            "SELECT collection_id, raw FROM intel_objects WHERE latest = 1 AND kind IN \
             ('ipv4-addr', 'ipv6-addr', 'domain-name', 'url', 'email-addr', 'file') ORDER BY seq",
        )
        .fetch_all(&mut **cx.tx)
        .await?;
        for r in &rows {
            let collection: String = r.try_get(0)?;
            let raw: String = r.try_get(1)?;
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&raw) else { continue };
            for s in stix_selectors(&v, rules, &kinds) {
                found.push((s, label(format!("intel collection {collection}"))));
            }
        }
        let pinned: Vec<String> = sqlx::query_scalar("SELECT party FROM peers ORDER BY party")
            .fetch_all(&mut **cx.tx)
            .await?;
        let pinned = pinned.iter().filter_map(|p| p.parse().ok()).collect();
        Ok(Holdings { found, pinned })
    }

    fn decide(&self, cx: &DecideCx<'_>, facts: &Holdings) -> Ruling {
        let Some(a) = cx.engine.agreement(&self.agreement) else {
            return Ruling::of(cx.role.followed_by(Decision::deny(
                "psi.agreement",
                format!("no agreement `{}` is loaded", self.agreement),
            )));
        };
        let day = cx.now.to_zoned(jiff::tz::TimeZone::UTC).date();
        let refusal = match &a.deconfliction {
            None => Some(format!("agreement {} has no [deconfliction] section", a.id)),
            Some(_) if !a.in_force_on(day) => {
                Some(format!("agreement {} is not in force on {day}", a.id))
            }
            Some(d) if !d.parties.contains(cx.party) => {
                Some(format!("agreement {}'s [deconfliction] does not name {}", a.id, cx.party))
            }
            Some(_) => None,
        };
        if let Some(reason) = refusal {
            return Ruling::of(cx.role.followed_by(Decision::deny("psi.agreement", reason)));
        }
        Ruling::of(cx.role.followed_by(Decision::permit(
            &format!("{}#deconfliction", a.id),
            format!(
                "a new deconfliction key epoch for {}: {} holdings of the kinds it names",
                a.id,
                facts.found.len()
            ),
            Vec::new(),
        )))
    }

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        facts: Holdings,
        _: &Ruling,
    ) -> Result<RotationReport, GateError> {
        let agreement = cx
            .engine
            .agreement(&self.agreement)
            .ok_or_else(|| GateError::Internal("a permitted rotation has no agreement".into()))?;
        let d = agreement
            .deconfliction
            .as_ref()
            .ok_or_else(|| GateError::Internal("a permitted rotation has no section".into()))?;
        let mode = d.mode;
        let mut rng = rand::rngs::OsRng;
        let key = HolderKey::generate(&mut rng).map_err(psi_error)?;
        let entries = entente_psi::group_holdings(facts.found);
        let set = key
            .prepare_set(mode, &entries, CHUNK_ELEMENTS, &mut rng, |_, _| {})
            .map_err(psi_error)?;
        drop(entries);
        let chunks = set.chunks(CHUNK_ELEMENTS);
        let epoch = key.epoch().to_string();
        let public_key = hex::encode(key.public_key().to_bytes());
        let summary = set.summary();
        drop(set);
        let (now_text, index) = (cx.now_text(), cx.index);
        let sealed_secret = seal(cx.secret, "psi key", &epoch, key.to_bytes().as_ref())?;

        let destroyed: Vec<String> = sqlx::query_scalar(
            "SELECT epoch FROM psi_keys WHERE agreement = $1 AND destroyed_at IS NULL ORDER BY epoch",
        )
        .bind(&self.agreement)
        .fetch_all(&mut **cx.tx)
        .await?;
        sqlx::query(
            "DELETE FROM psi_set_chunks WHERE epoch IN (SELECT epoch FROM psi_keys WHERE agreement = $1)",
        )
        .bind(&self.agreement)
        .execute(&mut **cx.tx)
        .await?;
        sqlx::query(
            "UPDATE psi_keys SET sealed_secret = NULL, destroyed_at = $1 WHERE agreement = $2 AND destroyed_at IS NULL",
        )
        .bind(&now_text)
        .bind(&self.agreement)
        .execute(&mut **cx.tx)
        .await?;
        sqlx::query(
            "INSERT INTO psi_keys (epoch, agreement, mode, public_key, sealed_secret, set_size, set_digest, \
             chunks, created_at, destroyed_at, ledger_index) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10)",
        )
        .bind(&epoch)
        .bind(&self.agreement)
        .bind(mode_name(mode))
        .bind(&public_key)
        .bind(sealed_secret)
        .bind(to_i64(summary.size)?)
        .bind(summary.digest.to_string())
        .bind(to_i64(chunks.len() as u64)?)
        .bind(&now_text)
        .bind(to_i64(index)?)
        .execute(&mut **cx.tx)
        .await?;
        let recipients: Vec<PartyCode> = d
            .parties
            .iter()
            .filter(|p| *p != cx.party && facts.pinned.contains(p))
            .cloned()
            .collect();
        let not_pinned: Vec<PartyCode> = d
            .parties
            .iter()
            .filter(|p| *p != cx.party && !facts.pinned.contains(p))
            .cloned()
            .collect();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let bytes = chunk.to_json().map_err(GateError::encoding)?;
            let sealed = seal(cx.secret, "psi set", &format!("{epoch}/{i}"), &bytes)?;
            sqlx::query("INSERT INTO psi_set_chunks (epoch, idx, sealed) VALUES ($1, $2, $3)")
                .bind(&epoch)
                .bind(to_i64(i as u64)?)
                .bind(sealed)
                .execute(&mut **cx.tx)
                .await?;
            let message = PsiKeyMessage {
                agreement: self.agreement.clone(),
                public_key: public_key.clone(),
                rotated_at: cx.now,
                chunk,
            };
            let payload = json(&message)?;
            for to in &recipients {
                crate::flows::outbox(cx.tx, to, MessageKind::PsiKey, &payload, &now_text, index)
                    .await?;
            }
        }
        let total = summary.size.div_ceil(CHUNK_ELEMENTS as u64).max(1);
        let report = RotationReport {
            agreement: self.agreement,
            epoch,
            set_size: summary.size,
            chunks: total,
            sent_to: recipients,
            not_pinned,
            destroyed,
        };
        cx.record_digests(vec![(
            "rotation".into(),
            digest_json(&serde_json::json!({
                "epoch": report.epoch,
                "public_key": public_key,
                "set_size": report.set_size,
                "set_digest": summary.digest.to_string(),
                "chunks": report.chunks,
                "sent_to": report.sent_to,
                "destroyed": report.destroyed,
            }))?,
        )]);
        Ok(report)
    }
}

/// A partner's deconfliction query, evaluated with this node's key of the epoch (or refused,
/// and the refusal sent back).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivePsiQuery {
    pub(crate) message: PsiQueryMessage,
}

/// What an evaluation needs: the agreement's current key and how many queries the asker made.
#[derive(Debug)]
pub struct QueryFacts {
    key: Option<CurrentKey>,
    recent: u64,
    seen: bool,
}

#[derive(Debug)]
struct CurrentKey {
    epoch: String,
    mode: String,
    sealed_secret: Vec<u8>,
    set_size: u64,
    set_digest: String,
}

impl GateCommand for ReceivePsiQuery {
    type Output = ();
    type Facts = QueryFacts;

    fn action(&self) -> Action {
        Action::PsiQueryReceive
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::PsiQuery, &self.message.id)]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::Of(
            [("query".to_owned(), digest_json(&json(&self.message)?)?)].into_iter().collect(),
        ))
    }

    fn validate(&self) -> Result<(), GateError> {
        let m = &self.message;
        if m.id.is_empty() || m.id.len() > 200 {
            return Err(GateError::Invalid("query id: expected 1 to 200 characters".into()));
        }
        ids::check_identifier("agreement id", &m.agreement).map_err(GateError::Invalid)?;
        ids::check_identifier("case reference", &m.case_ref).map_err(GateError::Invalid)?;
        if m.query.is_empty() || m.query.len() > LIMITS.max_query_elements {
            return Err(GateError::Invalid(format!(
                "query.elements: found {}; expected 1 to {}",
                m.query.len(),
                LIMITS.max_query_elements
            )));
        }
        Ok(())
    }

    async fn load(&self, cx: &mut EffectCx<'_>) -> Result<QueryFacts, GateError> {
        let Actor::Peer { party: asker } = cx.actor else {
            return Ok(QueryFacts { key: None, recent: 0, seen: false });
        };
        let m = &self.message;
        let key = sqlx::query(
            "SELECT epoch, mode, sealed_secret, set_size, set_digest FROM psi_keys \
             WHERE agreement = $1 AND destroyed_at IS NULL",
        )
        .bind(&m.agreement)
        .fetch_optional(&mut **cx.tx)
        .await?
        .map(|r| -> Result<CurrentKey, GateError> {
            Ok(CurrentKey {
                epoch: r.try_get(0)?,
                mode: r.try_get(1)?,
                sealed_secret: r.try_get::<Option<Vec<u8>>, _>(2)?.unwrap_or_default(),
                set_size: to_u64(r.try_get(3)?)?,
                set_digest: r.try_get(4)?,
            })
        })
        .transpose()?;
        let per = cx
            .engine
            .agreement(&m.agreement)
            .and_then(|a| a.deconfliction.as_ref())
            .map(|d| window_start(cx.now, &d.per))
            .transpose()?;
        let recent: i64 = match per {
            Some(since) => {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM psi_evaluations WHERE asker = $1 AND case_ref = $2 \
                     AND agreement = $3 AND status = 'evaluated' AND at > $4",
                )
                .bind(asker.as_str())
                .bind(&m.case_ref)
                .bind(&m.agreement)
                .bind(since)
                .fetch_one(&mut **cx.tx)
                .await?
            }
            None => 0,
        };
        let seen: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM psi_evaluations WHERE asker = $1 AND query_id = $2")
                .bind(asker.as_str())
                .bind(&m.id)
                .fetch_optional(&mut **cx.tx)
                .await?;
        Ok(QueryFacts { key, recent: to_u64(recent)?, seen: seen.is_some() })
    }

    fn decide(&self, cx: &DecideCx<'_>, facts: &QueryFacts) -> Ruling {
        let m = &self.message;
        let Actor::Peer { party: asker } = cx.actor else {
            return Ruling::of(Decision::deny("peer.only", "only a partner node sends queries"));
        };
        let deny = |rule: &str, reason: String| {
            Ruling::of(cx.role.followed_by(Decision::deny(rule, reason)))
        };
        let (a, d) = match agreement_between(cx.engine, cx.party, asker, Some(&m.agreement), cx.now)
        {
            Ok(x) => x,
            Err(why) => return deny("psi.no-agreement", why),
        };
        if facts.seen {
            return deny("psi.duplicate", format!("query {} was answered before", m.id));
        }
        let Some(key) = &facts.key else {
            return deny(
                "psi.no-key",
                format!("{} has no deconfliction key for {} (psi rotate)", cx.party, a.id),
            );
        };
        let epoch = m.query.epoch().to_string();
        if epoch != key.epoch {
            return deny(
                "psi.epoch",
                format!(
                    "the query is for epoch {epoch}; the current epoch of {} for {} is {} (the key rotated)",
                    cx.party, a.id, key.epoch
                ),
            );
        }
        if mode_name(m.query.mode()) != key.mode || m.query.mode() != d.mode {
            return deny(
                "psi.mode",
                format!(
                    "the query is in {} mode; {} provides for {} mode",
                    m.query.mode(),
                    a.id,
                    d.mode
                ),
            );
        }
        if m.query.len() > d.max_selectors as usize {
            return deny(
                "psi.max-selectors",
                format!(
                    "the query has {} elements; {} allows at most {} per query",
                    m.query.len(),
                    a.id,
                    d.max_selectors
                ),
            );
        }
        if facts.recent >= u64::from(d.max_queries) {
            return deny(
                "psi.max-queries",
                format!(
                    "{asker} has made {} queries for case {} in the last {}; {} allows {}",
                    facts.recent, m.case_ref, d.per.text, a.id, d.max_queries
                ),
            );
        }
        Ruling::of(cx.role.followed_by(Decision::permit(
            &format!("{}#deconfliction", a.id),
            format!(
                "{asker}'s query of {} elements for case {} evaluated under {} (epoch {}, query {} of {} in {})",
                m.query.len(),
                m.case_ref,
                a.id,
                key.epoch,
                facts.recent + 1,
                d.max_queries,
                d.per.text
            ),
            Vec::new(),
        )))
    }

    async fn on_deny(
        &self,
        cx: &mut EffectCx<'_>,
        facts: Option<&QueryFacts>,
        decision: &Decision,
    ) -> Result<(), GateError> {
        let Actor::Peer { party: asker } = cx.actor else { return Ok(()) };
        if facts.is_none_or(|f| f.seen) {
            return Ok(());
        }
        let asker = asker.clone();
        let m = &self.message;
        insert_evaluation(cx, &asker, m, "refused", Some(&decision.reason)).await?;
        let answer = PsiEvaluationMessage {
            query: m.id.clone(),
            agreement: m.agreement.clone(),
            evaluation: None,
            refused: Some(decision.reason.clone()),
        };
        let (now_text, index) = (cx.now_text(), cx.index);
        crate::flows::outbox(
            cx.tx,
            &asker,
            MessageKind::PsiEvaluation,
            &json(&answer)?,
            &now_text,
            index,
        )
        .await?;
        Ok(())
    }

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        facts: QueryFacts,
        _: &Ruling,
    ) -> Result<(), GateError> {
        let Actor::Peer { party: asker } = cx.actor else {
            return Err(GateError::Invalid("only a partner node sends queries".into()));
        };
        let asker = asker.clone();
        let key = facts
            .key
            .ok_or_else(|| GateError::Internal("a permitted evaluation has no key".into()))?;
        let secret = open(cx.secret, "psi key", &key.epoch, &key.sealed_secret)?;
        let holder = HolderKey::from_bytes(&secret).map_err(psi_error)?;
        let digest: [u8; 32] = hex::decode(&key.set_digest)
            .ok()
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| GateError::Internal("a stored set digest is not 32 bytes".into()))?;
        let summary = SetSummary {
            epoch: holder.epoch(),
            mode: parse_mode(&key.mode)?,
            size: key.set_size,
            digest: entente_psi::SetDigest::from_bytes(digest),
        };
        let m = self.message;
        let evaluation = holder
            .evaluate_for(&summary, &m.query, &LIMITS, &mut rand::rngs::OsRng)
            .map_err(psi_error)?;
        let answer = PsiEvaluationMessage {
            query: m.id.clone(),
            agreement: m.agreement.clone(),
            evaluation: Some(evaluation),
            refused: None,
        };
        let payload = json(&answer)?;
        insert_evaluation(cx, &asker, &m, "evaluated", None).await?;
        let (now_text, index) = (cx.now_text(), cx.index);
        crate::flows::outbox(cx.tx, &asker, MessageKind::PsiEvaluation, &payload, &now_text, index)
            .await?;
        cx.record_digests(vec![("evaluation".into(), digest_json(&payload)?)]);
        Ok(())
    }
}

async fn insert_evaluation(
    cx: &mut EffectCx<'_>,
    asker: &PartyCode,
    m: &PsiQueryMessage,
    status: &str,
    reason: Option<&str>,
) -> Result<(), GateError> {
    sqlx::query(
        "INSERT INTO psi_evaluations (asker, query_id, case_ref, agreement, epoch, elements, status, reason, at, ledger_index) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (asker, query_id) DO NOTHING",
    )
    .bind(asker.as_str())
    .bind(&m.id)
    .bind(&m.case_ref)
    .bind(&m.agreement)
    .bind(m.query.epoch().to_string())
    .bind(to_i64(m.query.len() as u64)?)
    .bind(status)
    .bind(reason.map(str::to_owned))
    .bind(cx.now_text())
    .bind(to_i64(cx.index)?)
    .execute(&mut **cx.tx)
    .await?;
    Ok(())
}

/// One of this node's key epochs, as the status shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyStatus {
    /// The agreement.
    pub agreement: String,
    /// The epoch (hex).
    pub epoch: String,
    /// `labelled` or `cardinality`.
    pub mode: String,
    /// Distinct selectors in its prepared set.
    pub set_size: u64,
    /// When it was made.
    pub created_at: String,
    /// When its key was destroyed (the next rotation), if it was.
    pub destroyed_at: Option<String>,
    /// Ledger entry of the rotation.
    pub ledger_index: u64,
}

/// A partner's query this node evaluated or refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EvaluationRecord {
    /// The asking party.
    pub asker: String,
    /// Its query id.
    pub query: String,
    /// Its case reference.
    pub case_ref: String,
    /// The agreement.
    pub agreement: String,
    /// The epoch the query named.
    pub epoch: String,
    /// Elements in the (padded) query.
    pub elements: u64,
    /// `evaluated` or `refused`.
    pub status: String,
    /// Why it was refused.
    pub reason: Option<String>,
    /// When.
    pub at: String,
    /// Ledger entry.
    pub ledger_index: u64,
}

pub(crate) async fn read_keys(cx: &mut EffectCx<'_>) -> Result<Vec<KeyStatus>, GateError> {
    let rows = sqlx::query(
        "SELECT agreement, epoch, mode, set_size, created_at, destroyed_at, ledger_index FROM psi_keys \
         ORDER BY ledger_index",
    )
    .fetch_all(&mut **cx.tx)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(KeyStatus {
                agreement: r.try_get(0)?,
                epoch: r.try_get(1)?,
                mode: r.try_get(2)?,
                set_size: to_u64(r.try_get(3)?)?,
                created_at: r.try_get(4)?,
                destroyed_at: r.try_get(5)?,
                ledger_index: to_u64(r.try_get(6)?)?,
            })
        })
        .collect()
}

pub(crate) async fn read_evaluations(
    cx: &mut EffectCx<'_>,
) -> Result<Vec<EvaluationRecord>, GateError> {
    let rows = sqlx::query(
        "SELECT asker, query_id, case_ref, agreement, epoch, elements, status, reason, at, ledger_index \
         FROM psi_evaluations ORDER BY ledger_index",
    )
    .fetch_all(&mut **cx.tx)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(EvaluationRecord {
                asker: r.try_get(0)?,
                query: r.try_get(1)?,
                case_ref: r.try_get(2)?,
                agreement: r.try_get(3)?,
                epoch: r.try_get(4)?,
                elements: to_u64(r.try_get(5)?)?,
                status: r.try_get(6)?,
                reason: r.try_get(7)?,
                at: r.try_get(8)?,
                ledger_index: to_u64(r.try_get(9)?)?,
            })
        })
        .collect()
}
