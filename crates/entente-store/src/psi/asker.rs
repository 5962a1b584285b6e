//! The asker's side: partners' keys and sets, queries, their results.

use super::holder::{EvaluationRecord, KeyStatus, read_evaluations, read_keys};
use super::{LIMITS, agreement_between, json, mode_name, open, parse_mode, psi_error, seal};
use crate::gate::{
    DecideCx, EffectCx, GateCommand, GateError, PayloadDigests, Ruling, decided_by_role,
    digest_json,
};
use crate::store::{StoreError, opt_stamp, stamp, to_i64, to_u64};
use entente_core::{Action, Actor, CaseId, Decision, PartyCode, Stamp, Subject, SubjectKind, ids};

use entente_psi::{
    CardinalityQuery, Label, LabelledQuery, Mode, PublicKey, Selector, SetChunk, SetReceiver,
    selector,
};
use entente_wire::{MessageKind, PsiEvaluationMessage, PsiKeyMessage, PsiQueryMessage};
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// A partner's published key and a chunk of its prepared set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivePsiKey {
    pub(crate) message: PsiKeyMessage,
}

/// What is known of the epoch the chunk belongs to.
#[derive(Debug)]
pub struct KeyFacts {
    /// `(agreement, mode, public key, set size, set digest, total, received)`.
    existing: Option<(String, String, String, u64, String, u64, u64)>,
}

impl GateCommand for ReceivePsiKey {
    type Output = ();
    type Facts = KeyFacts;

    fn action(&self) -> Action {
        Action::PsiKeyReceive
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::PsiKey, self.message.chunk.epoch().to_string())]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        PayloadDigests::canonical([("chunk", json(&self.message)?)])
    }

    fn validate(&self) -> Result<(), GateError> {
        let m = &self.message;
        ids::check_identifier("agreement id", &m.agreement).map_err(GateError::Invalid)?;
        let bytes = hex::decode(&m.public_key)
            .map_err(|_| GateError::Invalid("public_key: expected 64 hex digits".into()))?;
        let pk = PublicKey::from_bytes(&bytes).map_err(|e| GateError::Invalid(e.to_string()))?;
        if pk.epoch() != m.chunk.epoch() {
            return Err(GateError::Invalid(format!(
                "chunk.epoch: found {}; the public key's epoch is {}",
                m.chunk.epoch(),
                pk.epoch()
            )));
        }
        if m.chunk.len() > LIMITS.max_chunk_elements
            || m.chunk.set_size() > LIMITS.max_set_elements as u64
        {
            return Err(GateError::Invalid(format!(
                "chunk: {} elements of a set of {}; at most {} per chunk and {} per set are accepted",
                m.chunk.len(),
                m.chunk.set_size(),
                LIMITS.max_chunk_elements,
                LIMITS.max_set_elements
            )));
        }
        Ok(())
    }

    async fn load(&self, cx: &mut EffectCx<'_>) -> Result<KeyFacts, GateError> {
        let Actor::Peer { party } = cx.actor else { return Ok(KeyFacts { existing: None }) };
        let row = sqlx::query(
            "SELECT agreement, mode, public_key, set_size, set_digest, total, received FROM psi_peer_keys \
             WHERE peer = $1 AND epoch = $2",
        )
        .bind(party.as_str())
        .bind(self.message.chunk.epoch().to_string())
        .fetch_optional(&mut **cx.tx)
        .await?;
        let existing = match row {
            Some(r) => Some((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                to_u64(r.try_get(3)?)?,
                r.try_get(4)?,
                to_u64(r.try_get(5)?)?,
                to_u64(r.try_get(6)?)?,
            )),
            None => None,
        };
        Ok(KeyFacts { existing })
    }

    fn decide(&self, cx: &DecideCx<'_>, facts: &KeyFacts) -> Ruling {
        let m = &self.message;
        let Actor::Peer { party: holder } = cx.actor else {
            return Ruling::of(Decision::deny("peer.only", "only a partner node publishes keys"));
        };
        let deny = |rule: &str, reason: String| {
            Ruling::of(cx.role.followed_by(Decision::deny(rule, reason)))
        };
        let (a, d) =
            match agreement_between(cx.engine, cx.party, holder, Some(&m.agreement), cx.now) {
                Ok(x) => x,
                Err(why) => return deny("psi.no-agreement", why),
            };
        let c = &m.chunk;
        if c.mode() != d.mode {
            return deny(
                "psi.mode",
                format!("the set is in {} mode; {} provides for {} mode", c.mode(), a.id, d.mode),
            );
        }
        let expected = match &facts.existing {
            None => 0,
            Some((agreement, mode, pk, size, digest, total, received)) => {
                let same = agreement == &m.agreement
                    && mode == mode_name(c.mode())
                    && pk == &m.public_key
                    && *size == c.set_size()
                    && digest == &c.set_digest().to_string()
                    && *total == c.total();
                if !same {
                    return deny(
                        "psi.chunk",
                        format!(
                            "chunk {} of epoch {} belongs to another set than the chunks before",
                            c.index(),
                            c.epoch()
                        ),
                    );
                }
                *received
            }
        };
        if c.index() != expected {
            return deny(
                "psi.chunk",
                format!(
                    "chunk {} of epoch {} is out of order: expected chunk {expected}",
                    c.index(),
                    c.epoch()
                ),
            );
        }
        Ruling::of(cx.role.followed_by(Decision::permit(
            &format!("{}#deconfliction", a.id),
            format!(
                "{holder}'s deconfliction key for {}: chunk {} of {} of a set of {}",
                a.id,
                c.index() + 1,
                c.total(),
                c.set_size()
            ),
            Vec::new(),
        )))
    }

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        facts: KeyFacts,
        _: &Ruling,
    ) -> Result<(), GateError> {
        let Actor::Peer { party } = cx.actor else {
            return Err(GateError::Invalid("only a partner node publishes keys".into()));
        };
        let (party, now_text, index) = (party.clone(), cx.now_text(), cx.index);
        let m = self.message;
        let c = &m.chunk;
        let epoch = c.epoch().to_string();
        let bytes = c.to_json().map_err(GateError::encoding)?;
        if facts.existing.is_none() {
            sqlx::query(
                "INSERT INTO psi_peer_keys (peer, epoch, agreement, mode, public_key, set_size, set_digest, total, \
                 received, rotated_at, received_at, ledger_index) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $11)",
            )
            .bind(party.as_str())
            .bind(&epoch)
            .bind(&m.agreement)
            .bind(mode_name(c.mode()))
            .bind(&m.public_key)
            .bind(to_i64(c.set_size())?)
            .bind(c.set_digest().to_string())
            .bind(to_i64(c.total())?)
            .bind(format!("{:.6}", m.rotated_at))
            .bind(&now_text)
            .bind(to_i64(index)?)
            .execute(&mut **cx.tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO psi_peer_chunks (peer, epoch, idx, chunk) VALUES ($1, $2, $3, $4)",
        )
        .bind(party.as_str())
        .bind(&epoch)
        .bind(to_i64(c.index())?)
        .bind(bytes)
        .execute(&mut **cx.tx)
        .await?;
        sqlx::query(
            "UPDATE psi_peer_keys SET received = received + 1, received_at = $1 WHERE peer = $2 AND epoch = $3",
        )
        .bind(&now_text)
        .bind(party.as_str())
        .bind(&epoch)
        .execute(&mut **cx.tx)
        .await?;
        if c.index() + 1 == c.total() {
            // Complete: the partner's earlier epochs of this agreement are superseded.
            sqlx::query(
                "DELETE FROM psi_peer_chunks WHERE peer = $1 AND epoch <> $2 AND epoch IN \
                 (SELECT epoch FROM psi_peer_keys WHERE peer = $1 AND agreement = $3)",
            )
            .bind(party.as_str())
            .bind(&epoch)
            .bind(&m.agreement)
            .execute(&mut **cx.tx)
            .await?;
            sqlx::query(
                "DELETE FROM psi_peer_keys WHERE peer = $1 AND agreement = $2 AND epoch <> $3",
            )
            .bind(party.as_str())
            .bind(&m.agreement)
            .bind(&epoch)
            .execute(&mut **cx.tx)
            .await?;
        }
        Ok(())
    }
}

/// Ask the partner `to`, by private set intersection, whether it holds anything on
/// `selectors`, for this node's case `case_id`, under the deconfliction agreement in force
/// between the two parties. The query is padded to the agreement's size; its state (the
/// selectors and the blinds) is kept sealed until the answer is finalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PsiQuery {
    /// This node's case.
    pub case_id: CaseId,
    /// The partner asked.
    pub to: PartyCode,
    /// The deconfliction agreement to ask under; without one, the first in force (by id)
    /// whose `[deconfliction]` names both parties.
    pub agreement: Option<String>,
    /// The selectors (normalised; email addresses again under the agreement's rules).
    pub selectors: Vec<Selector>,
}

impl std::fmt::Display for PsiQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "psi query of {} selectors to {}", self.selectors.len(), self.to)
    }
}

/// What a query was sent as.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PsiQueryOutput {
    /// The query's id (`<party>-<ledger index>`).
    pub id: String,
    /// The partner asked.
    pub to: PartyCode,
    /// The agreement.
    pub agreement: String,
    /// Distinct selectors asked about.
    pub selectors: u64,
    /// Elements sent (the agreement's padded size).
    pub padded: u64,
}

/// What a query needs to be decided.
#[derive(Debug)]
pub struct QueryFacts {
    case: bool,
    pinned: bool,
    /// `(epoch, mode, public key, rotated at)` of the partner's complete key for the agreement.
    key: Option<(String, String, String, String)>,
    agreement: Option<String>,
    recent: u64,
}

impl GateCommand for PsiQuery {
    type Output = PsiQueryOutput;
    type Facts = QueryFacts;

    fn action(&self) -> Action {
        Action::PsiQuery
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![
            Subject::new(SubjectKind::Case, &self.case_id),
            Subject::new(SubjectKind::Party, self.to.as_str()),
        ]
    }

    /// The digest of the blinded query sent (never of the selectors), known once made.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    fn validate(&self) -> Result<(), GateError> {
        if let Some(a) = &self.agreement {
            ids::check_identifier("agreement id", a).map_err(GateError::Invalid)?;
        }
        let max = LIMITS.max_query_elements;
        if self.selectors.is_empty() || self.selectors.len() > max {
            return Err(GateError::Invalid(format!(
                "selectors: found {}; expected 1 to {max}",
                self.selectors.len()
            )));
        }
        Ok(())
    }

    async fn load(&self, cx: &mut EffectCx<'_>) -> Result<QueryFacts, GateError> {
        let row = sqlx::query(
            "SELECT (SELECT 1 FROM cases WHERE id = $1), (SELECT 1 FROM peers WHERE party = $2)",
        )
        .bind(self.case_id.as_str())
        .bind(self.to.as_str())
        .fetch_one(&mut **cx.tx)
        .await?;
        let case: Option<i64> = row.try_get(0)?;
        let pinned: Option<i64> = row.try_get(1)?;
        let mut facts = QueryFacts {
            case: case.is_some(),
            pinned: pinned.is_some(),
            key: None,
            agreement: None,
            recent: 0,
        };
        let Ok((a, d)) =
            agreement_between(cx.engine, cx.party, &self.to, self.agreement.as_deref(), cx.now)
        else {
            return Ok(facts);
        };
        facts.agreement = Some(a.id.clone());
        let key = sqlx::query(
            "SELECT epoch, mode, public_key, rotated_at FROM psi_peer_keys WHERE peer = $1 AND agreement = $2 \
             AND received = total ORDER BY ledger_index DESC LIMIT 1",
        )
        .bind(self.to.as_str())
        .bind(&a.id)
        .fetch_optional(&mut **cx.tx)
        .await?;
        facts.key = key
            .map(|r| -> Result<_, GateError> {
                Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?))
            })
            .transpose()?;
        let since = super::window_start(cx.now, &d.per)?;
        let recent: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM psi_queries WHERE case_id = $1 AND peer = $2 AND agreement = $3 \
             AND created_at > $4",
        )
        .bind(self.case_id.as_str())
        .bind(self.to.as_str())
        .bind(&a.id)
        .bind(since)
        .fetch_one(&mut **cx.tx)
        .await?;
        facts.recent = to_u64(recent)?;
        Ok(facts)
    }

    fn decide(&self, cx: &DecideCx<'_>, facts: &QueryFacts) -> Ruling {
        let deny = |rule: &str, reason: String| {
            Ruling::of(cx.role.followed_by(Decision::deny(rule, reason)))
        };
        let (a, d) = match agreement_between(
            cx.engine,
            cx.party,
            &self.to,
            self.agreement.as_deref(),
            cx.now,
        ) {
            Ok(x) => x,
            Err(why) => return deny("psi.no-agreement", why),
        };
        if !facts.case {
            return deny("psi.case", format!("case {} is not a case of this node", self.case_id));
        }
        if !facts.pinned {
            return deny(
                "psi.not-pinned",
                format!("no partner node is pinned for {} (entente peer add)", self.to),
            );
        }
        let mut refused: Vec<&str> = self
            .selectors
            .iter()
            .map(|s| s.kind())
            .filter(|k| !d.selectors.contains(k))
            .map(|k| k.name())
            .collect();
        refused.sort_unstable();
        refused.dedup();
        if !refused.is_empty() {
            return deny(
                "psi.selector-kind",
                format!(
                    "{} does not provide for selectors of kind {}; it names {}",
                    a.id,
                    refused.join(", "),
                    d.selectors.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
                ),
            );
        }
        if self.selectors.len() > d.max_selectors as usize {
            return deny(
                "psi.max-selectors",
                format!(
                    "{} selectors; {} allows at most {} per query",
                    self.selectors.len(),
                    a.id,
                    d.max_selectors
                ),
            );
        }
        if facts.recent >= u64::from(d.max_queries) {
            return deny(
                "psi.max-queries",
                format!(
                    "{} queries for case {} to {} in the last {}; {} allows {}",
                    facts.recent, self.case_id, self.to, d.per.text, a.id, d.max_queries
                ),
            );
        }
        let Some((epoch, mode, _, rotated_at)) = &facts.key else {
            return deny(
                "psi.no-key",
                format!(
                    "{} has not published a complete deconfliction key for {} yet (it rotates with `entente psi rotate`)",
                    self.to, a.id
                ),
            );
        };
        let expired = rotated_at.parse::<jiff::Timestamp>().ok().and_then(|at| {
            at.to_zoned(jiff::tz::TimeZone::UTC).checked_add(d.key_rotation.span).ok()
        });
        if expired.is_none_or(|until| until.timestamp() < cx.now) {
            return deny(
                "psi.key-expired",
                format!(
                    "{}'s deconfliction key for {} dates from {rotated_at}; {} rotates keys every {} and {} has not rotated since",
                    self.to, a.id, a.id, d.key_rotation.text, self.to
                ),
            );
        }
        if mode != mode_name(d.mode) {
            return deny(
                "psi.mode",
                format!("{}'s key is in {mode} mode; {} provides for {}", self.to, a.id, d.mode),
            );
        }
        Ruling::of(cx.role.followed_by(Decision::permit(
            &format!("{}#deconfliction", a.id),
            format!(
                "{} selectors padded to {} for case {} to {} under {} ({} mode, epoch {epoch}; query {} of {} in {})",
                self.selectors.len(),
                d.max_selectors,
                self.case_id,
                self.to,
                a.id,
                d.mode,
                facts.recent + 1,
                d.max_queries,
                d.per.text
            ),
            Vec::new(),
        )))
    }

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        facts: QueryFacts,
        _: &Ruling,
    ) -> Result<PsiQueryOutput, GateError> {
        let missing = || GateError::Internal("a permitted query has no agreement or key".into());
        let agreement_id = facts.agreement.ok_or_else(missing)?;
        let (epoch, _, public_key, _) = facts.key.ok_or_else(missing)?;
        let d = cx
            .engine
            .agreement(&agreement_id)
            .and_then(|a| a.deconfliction.as_ref())
            .ok_or_else(missing)?;
        let (mode, padded, rules) = (d.mode, d.max_selectors as usize, d.email);
        let pk = hex::decode(&public_key)
            .ok()
            .and_then(|b| PublicKey::from_bytes(&b).ok())
            .ok_or_else(|| StoreError::Inconsistent(format!("public key of epoch {epoch}")))?;
        // Email addresses again under the agreement's rules (plus-addressing).
        let selectors = self
            .selectors
            .iter()
            .map(|s| selector::parse(s.kind(), s.canonical(), rules))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| GateError::Invalid(format!("selector: {e}")))?;
        let mut rng = rand::rngs::OsRng;
        let (state, query, distinct) = match mode {
            Mode::Labelled => {
                let (q, m) = LabelledQuery::new(&pk, &selectors, padded, &LIMITS, &mut rng)
                    .map_err(psi_error)?;
                (q.to_state().map_err(psi_error)?, m, q.selectors())
            }
            Mode::Cardinality => {
                let (q, m) = CardinalityQuery::new(&pk, &selectors, padded, &LIMITS, &mut rng)
                    .map_err(psi_error)?;
                let mut seen = selectors.clone();
                seen.sort();
                seen.dedup();
                (q.to_state().map_err(psi_error)?, m, seen.len())
            }
        };
        drop(selectors);
        let (party, index, now_text) = (cx.party.clone(), cx.index, cx.now_text());
        let id = format!("{party}-{index}");
        let message = PsiQueryMessage {
            id: id.clone(),
            agreement: agreement_id.clone(),
            case_ref: self.case_id.to_string(),
            query,
        };
        let payload = json(&message)?;
        let query_sha256 = digest_json(&payload)?;
        let sealed = seal(cx.secret, "psi query", &id, &state)?;
        sqlx::query(
            "INSERT INTO psi_queries (id, case_id, peer, agreement, epoch, mode, selectors, padded, query_sha256, \
             sealed_state, status, matched, sealed_result, reason, created_at, answered_at, ledger_index, answer_ledger_index) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', NULL, NULL, NULL, $11, NULL, $12, NULL)",
        )
        .bind(&id)
        .bind(self.case_id.as_str())
        .bind(self.to.as_str())
        .bind(&agreement_id)
        .bind(&epoch)
        .bind(mode_name(mode))
        .bind(to_i64(distinct as u64)?)
        .bind(to_i64(padded as u64)?)
        .bind(&query_sha256)
        .bind(sealed)
        .bind(&now_text)
        .bind(to_i64(index)?)
        .execute(&mut **cx.tx)
        .await?;
        crate::flows::outbox(cx.tx, &self.to, MessageKind::PsiQuery, &payload, &now_text, index)
            .await?;
        cx.record_digests(vec![("query".into(), query_sha256)]);
        Ok(PsiQueryOutput {
            id,
            to: self.to,
            agreement: agreement_id,
            selectors: distinct as u64,
            padded: padded as u64,
        })
    }
}

/// A selector of the asker's that the partner holds, with the partner's labels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PsiMatch {
    /// The selector (`kind:canonical`).
    pub selector: String,
    /// The partner's case references and contact points for it.
    pub labels: Vec<Label>,
}

/// The sealed result of an answered query.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Outcome {
    matched: u64,
    #[serde(default)]
    matches: Vec<PsiMatch>,
}

/// A partner's evaluation of one of this node's queries, or its refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivePsiEvaluation {
    pub(crate) message: PsiEvaluationMessage,
}

/// What the evaluation is checked against, and what finalising it gave.
#[derive(Debug)]
pub struct EvaluationFacts {
    /// `(peer, status)` of the query named.
    query: Option<(String, String)>,
    /// The finalised result, or the rule and reason it failed.
    outcome: Option<Result<Vec<u8>, (String, String)>>,
}

impl ReceivePsiEvaluation {
    /// Verifies and finalises the evaluation against the stored query state and the
    /// partner's prepared set: the sealed outcome's plaintext, or why it fails.
    async fn finalise(
        &self,
        cx: &mut EffectCx<'_>,
        peer: &str,
        mode: &str,
        epoch: &str,
        sealed_state: &[u8],
    ) -> Result<Result<Vec<u8>, (String, String)>, GateError> {
        let Some(evaluation) = &self.message.evaluation else {
            return Ok(Err(("psi.refused".into(), String::new())));
        };
        let fail = |rule: &str, e: String| Ok(Err((rule.to_owned(), e)));
        let key: Option<String> = sqlx::query_scalar(
            "SELECT public_key FROM psi_peer_keys WHERE peer = $1 AND epoch = $2",
        )
        .bind(peer)
        .bind(epoch)
        .fetch_optional(&mut **cx.tx)
        .await?;
        let Some(key) = key else {
            return fail(
                "psi.no-key",
                format!("{peer}'s key of epoch {epoch} is no longer held here (it rotated)"),
            );
        };
        let pk = hex::decode(&key)
            .ok()
            .and_then(|b| PublicKey::from_bytes(&b).ok())
            .ok_or_else(|| StoreError::Inconsistent(format!("public key of epoch {epoch}")))?;
        let chunks = sqlx::query(
            "SELECT chunk FROM psi_peer_chunks WHERE peer = $1 AND epoch = $2 ORDER BY idx",
        )
        .bind(peer)
        .bind(epoch)
        .fetch_all(&mut **cx.tx)
        .await?;
        let mut receiver = SetReceiver::new();
        for r in &chunks {
            let bytes: Vec<u8> = r.try_get(0)?;
            let chunk = match SetChunk::decode(&bytes, &LIMITS) {
                Ok(c) => c,
                Err(e) => return fail("psi.set", e.to_string()),
            };
            if let Err(e) = receiver.receive(chunk, &LIMITS) {
                return fail("psi.set", format!("{peer}'s prepared set: {e}"));
            }
        }
        let set = match receiver.finish() {
            Ok(s) => s,
            Err(e) => return fail("psi.set", format!("{peer}'s prepared set: {e}")),
        };
        let state = open(cx.secret, "psi query", &self.message.query, sealed_state)?;
        let verdict = |e: entente_psi::PsiError| {
            let rule = if matches!(e, entente_psi::PsiError::ProofInvalid { .. }) {
                "psi.proof"
            } else {
                "psi.evaluation"
            };
            (rule.to_owned(), format!("{peer}'s evaluation is refused: {e}"))
        };
        let outcome = match parse_mode(mode)? {
            Mode::Labelled => {
                let q = LabelledQuery::from_state(&state).map_err(psi_error)?;
                match q.finish(&pk, evaluation, &set) {
                    Ok(matches) => Outcome {
                        matched: matches.len() as u64,
                        matches: matches
                            .into_iter()
                            .map(|m| PsiMatch {
                                selector: m.selector.to_string(),
                                labels: m.labels,
                            })
                            .collect(),
                    },
                    Err(e) => return Ok(Err(verdict(e))),
                }
            }
            Mode::Cardinality => {
                let q = CardinalityQuery::from_state(&state).map_err(psi_error)?;
                match q.finish(&pk, evaluation, &set) {
                    Ok(n) => Outcome { matched: n as u64, matches: Vec::new() },
                    Err(e) => return Ok(Err(verdict(e))),
                }
            }
        };
        Ok(Ok(serde_json::to_vec(&outcome).map_err(GateError::encoding)?))
    }
}

impl GateCommand for ReceivePsiEvaluation {
    type Output = ();
    type Facts = EvaluationFacts;

    fn action(&self) -> Action {
        Action::PsiEvaluationReceive
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::PsiQuery, &self.message.query)]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        PayloadDigests::canonical([("evaluation", json(&self.message)?)])
    }

    fn validate(&self) -> Result<(), GateError> {
        let m = &self.message;
        if m.query.is_empty() || m.query.len() > 200 {
            return Err(GateError::Invalid("query id: expected 1 to 200 characters".into()));
        }
        ids::check_identifier("agreement id", &m.agreement).map_err(GateError::Invalid)?;
        if let Some(e) = &m.evaluation
            && e.len() > LIMITS.max_query_elements
        {
            return Err(GateError::Invalid(format!(
                "evaluation: {} elements; at most {} are accepted",
                e.len(),
                LIMITS.max_query_elements
            )));
        }
        m.validate().map_err(GateError::Invalid)
    }

    async fn load(&self, cx: &mut EffectCx<'_>) -> Result<EvaluationFacts, GateError> {
        let row = sqlx::query(
            "SELECT peer, status, mode, epoch, sealed_state FROM psi_queries WHERE id = $1",
        )
        .bind(&self.message.query)
        .fetch_optional(&mut **cx.tx)
        .await?;
        let Some(r) = row else { return Ok(EvaluationFacts { query: None, outcome: None }) };
        let (peer, status, mode, epoch): (String, String, String, String) =
            (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
        let sealed: Option<Vec<u8>> = r.try_get(4)?;
        let from_peer = matches!(cx.actor, Actor::Peer { party } if party.as_str() == peer);
        let outcome = match sealed {
            Some(state)
                if from_peer && status == "pending" && self.message.evaluation.is_some() =>
            {
                Some(self.finalise(cx, &peer, &mode, &epoch, &state).await?)
            }
            _ => None,
        };
        Ok(EvaluationFacts { query: Some((peer, status)), outcome })
    }

    fn decide(&self, cx: &DecideCx<'_>, facts: &EvaluationFacts) -> Ruling {
        let m = &self.message;
        let Actor::Peer { party } = cx.actor else {
            return Ruling::of(Decision::deny("peer.only", "only a partner node answers queries"));
        };
        let deny = |rule: &str, reason: String| {
            Ruling::of(cx.role.followed_by(Decision::deny(rule, reason)))
        };
        let Some((peer, status)) = &facts.query else {
            return deny("psi.unknown-query", format!("this node made no query {}", m.query));
        };
        if peer != party.as_str() {
            return deny(
                "psi.sender",
                format!("query {} was sent to {peer}, not {party}", m.query),
            );
        }
        if status != "pending" {
            return deny("psi.answered", format!("query {} is {status} already", m.query));
        }
        if let Some(Err((rule, reason))) = &facts.outcome {
            return deny(rule, reason.clone());
        }
        let reason = match &m.refused {
            Some(r) => format!("{party} refused query {}: {r}", m.query),
            None => format!("{party}'s evaluation of query {} verified and finalised", m.query),
        };
        Ruling::of(cx.role.followed_by(Decision::permit(
            &format!("{}#deconfliction", m.agreement),
            reason,
            Vec::new(),
        )))
    }

    async fn on_deny(
        &self,
        cx: &mut EffectCx<'_>,
        facts: Option<&EvaluationFacts>,
        decision: &Decision,
    ) -> Result<(), GateError> {
        // A forged or inconsistent evaluation ends the query: it is failed, its state gone.
        let Some(EvaluationFacts { outcome: Some(Err(_)), .. }) = facts else { return Ok(()) };
        sqlx::query(
            "UPDATE psi_queries SET status = 'failed', sealed_state = NULL, reason = $1, answered_at = $2, \
             answer_ledger_index = $3 WHERE id = $4 AND status = 'pending'",
        )
        .bind(&decision.reason)
        .bind(cx.now_text())
        .bind(to_i64(cx.index)?)
        .bind(&self.message.query)
        .execute(&mut **cx.tx)
        .await?;
        Ok(())
    }

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        facts: EvaluationFacts,
        _: &Ruling,
    ) -> Result<(), GateError> {
        let m = self.message;
        let (status, matched, sealed) = match (&m.refused, facts.outcome) {
            (Some(_), _) => ("refused", None, None),
            (None, Some(Ok(plain))) => {
                let outcome: Outcome =
                    serde_json::from_slice(&plain).map_err(GateError::encoding)?;
                let sealed = seal(cx.secret, "psi result", &m.query, &plain)?;
                ("answered", Some(to_i64(outcome.matched)?), Some(sealed))
            }
            _ => return Err(GateError::Internal("a permitted evaluation has no outcome".into())),
        };
        sqlx::query(
            "UPDATE psi_queries SET status = $1, matched = $2, sealed_result = $3, reason = $4, sealed_state = NULL, \
             answered_at = $5, answer_ledger_index = $6 WHERE id = $7",
        )
        .bind(status)
        .bind(matched)
        .bind(sealed)
        .bind(m.refused.clone())
        .bind(cx.now_text())
        .bind(to_i64(cx.index)?)
        .bind(&m.query)
        .execute(&mut **cx.tx)
        .await?;
        Ok(())
    }
}

/// One of this node's queries, with its result once answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PsiQueryStatus {
    /// The query's id.
    pub id: String,
    /// This node's case.
    pub case_id: String,
    /// The partner asked.
    pub peer: String,
    /// The agreement.
    pub agreement: String,
    /// `labelled` or `cardinality`.
    pub mode: String,
    /// Distinct selectors asked about.
    pub selectors: u64,
    /// Elements sent.
    pub padded: u64,
    /// `pending` (not answered yet; the partner may be down), `answered`, `refused` (by the
    /// partner) or `failed` (its evaluation did not verify).
    pub status: String,
    /// How many of the selectors the partner holds, once answered.
    pub matched: Option<u64>,
    /// Which (labelled mode), with the partner's case references and contacts.
    pub matches: Vec<PsiMatch>,
    /// Why it was refused or failed.
    pub reason: Option<String>,
    /// When it was sent.
    pub created_at: Stamp,
    /// When it was answered.
    pub answered_at: Option<Stamp>,
    /// Ledger entry of the query.
    pub ledger_index: u64,
    /// Ledger entry of the answer.
    pub answer_ledger_index: Option<u64>,
}

/// A partner's key as held here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerKeyStatus {
    /// The partner.
    pub peer: String,
    /// The agreement.
    pub agreement: String,
    /// The epoch.
    pub epoch: String,
    /// `labelled` or `cardinality`.
    pub mode: String,
    /// Elements of its prepared set.
    pub set_size: u64,
    /// Chunks received of all.
    pub received: u64,
    /// Chunks of the set.
    pub total: u64,
    /// When the partner rotated to it.
    pub rotated_at: Stamp,
}

/// The deconfliction status of this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PsiStatus {
    /// This node's queries (of one case when asked so).
    pub queries: Vec<PsiQueryStatus>,
    /// Partners' keys.
    pub peer_keys: Vec<PeerKeyStatus>,
    /// This node's key epochs.
    pub keys: Vec<KeyStatus>,
    /// Partners' queries this node evaluated or refused.
    pub evaluations: Vec<EvaluationRecord>,
}

/// Read the deconfliction status: queries and their results (a recorded read: results name
/// selectors), partners' keys, this node's epochs and the evaluations it made.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ReadPsiStatus {
    /// Only the queries of this case.
    pub case_id: Option<CaseId>,
}

impl GateCommand for ReadPsiStatus {
    type Output = PsiStatus;
    type Facts = ();

    fn action(&self) -> Action {
        Action::PsiStatus
    }

    fn subjects(&self) -> Vec<Subject> {
        match &self.case_id {
            Some(c) => vec![Subject::new(SubjectKind::Case, c)],
            None => vec![Subject::new(SubjectKind::PsiQueries, "all")],
        }
    }

    /// Which queries were served, known once read.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    decided_by_role!();

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<PsiStatus, GateError> {
        const COLUMNS: &str = "SELECT id, case_id, peer, agreement, mode, selectors, padded, status, matched, \
             sealed_result, reason, created_at, answered_at, ledger_index, answer_ledger_index FROM psi_queries";
        let rows = match &self.case_id {
            Some(c) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{COLUMNS} WHERE case_id = $1 ORDER BY ledger_index"
                )))
                .bind(c.as_str())
                .fetch_all(&mut **cx.tx)
                .await?
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!("{COLUMNS} ORDER BY ledger_index")))
                    .fetch_all(&mut **cx.tx)
                    .await?
            }
        };
        let mut queries = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: String = r.try_get(0)?;
            let sealed: Option<Vec<u8>> = r.try_get(9)?;
            let matches = match sealed {
                Some(s) => {
                    let plain = open(cx.secret, "psi result", &id, &s)?;
                    let o: Outcome = serde_json::from_slice(&plain)
                        .map_err(|e| StoreError::Inconsistent(format!("psi result {id}: {e}")))?;
                    o.matches
                }
                None => Vec::new(),
            };
            queries.push(PsiQueryStatus {
                id,
                case_id: r.try_get(1)?,
                peer: r.try_get(2)?,
                agreement: r.try_get(3)?,
                mode: r.try_get(4)?,
                selectors: to_u64(r.try_get(5)?)?,
                padded: to_u64(r.try_get(6)?)?,
                status: r.try_get(7)?,
                matched: r.try_get::<Option<i64>, _>(8)?.map(to_u64).transpose()?,
                matches,
                reason: r.try_get(10)?,
                created_at: stamp(r, 11)?,
                answered_at: opt_stamp(r, 12)?,
                ledger_index: to_u64(r.try_get(13)?)?,
                answer_ledger_index: r.try_get::<Option<i64>, _>(14)?.map(to_u64).transpose()?,
            });
        }
        let rows = sqlx::query(
            "SELECT peer, agreement, epoch, mode, set_size, received, total, rotated_at FROM psi_peer_keys \
             ORDER BY peer, agreement, ledger_index",
        )
        .fetch_all(&mut **cx.tx)
        .await?;
        let mut peer_keys = Vec::with_capacity(rows.len());
        for r in &rows {
            peer_keys.push(PeerKeyStatus {
                peer: r.try_get(0)?,
                agreement: r.try_get(1)?,
                epoch: r.try_get(2)?,
                mode: r.try_get(3)?,
                set_size: to_u64(r.try_get(4)?)?,
                received: to_u64(r.try_get(5)?)?,
                total: to_u64(r.try_get(6)?)?,
                rotated_at: stamp(r, 7)?,
            });
        }
        let keys = read_keys(cx).await?;
        let evaluations = read_evaluations(cx).await?;
        let served: Vec<&str> = queries.iter().map(|q| q.id.as_str()).collect();
        cx.record_digests(vec![("served".into(), digest_json(&json(&served)?)?)]);
        Ok(PsiStatus { queries, peer_keys, keys, evaluations })
    }
}
