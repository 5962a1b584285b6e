//! The holder's side: evaluations of partners' queries, and the status of its key epochs.
//! Key epochs are made by `rotation.rs`.

use super::{
    LIMITS, agreement_between, json, mode_name, open, parse_mode, psi_error, window_start,
};
use crate::gate::{
    DecideCx, EffectCx, GateCommand, GateError, PayloadDigests, Ruling, digest_json,
};
use crate::store::{opt_stamp, stamp, to_i64, to_u64};
use entente_core::{Action, Actor, Decision, PartyCode, Stamp, Subject, SubjectKind, ids};

use entente_psi::{HolderKey, SetSummary};
use entente_wire::{MessageKind, PsiEvaluationMessage, PsiQueryMessage};
use serde::Serialize;
use sqlx::Row;

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
        PayloadDigests::canonical([("query", json(&self.message)?)])
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
    pub created_at: Stamp,
    /// When its key was destroyed (the next rotation), if it was.
    pub destroyed_at: Option<Stamp>,
    /// The ledger size its holdings were read at (none for an epoch prepared before this was
    /// recorded).
    pub holdings_at: Option<u64>,
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
    pub at: Stamp,
    /// Ledger entry.
    pub ledger_index: u64,
}

pub(crate) async fn read_keys(cx: &mut EffectCx<'_>) -> Result<Vec<KeyStatus>, GateError> {
    let rows = sqlx::query(
        "SELECT agreement, epoch, mode, set_size, created_at, destroyed_at, ledger_index, holdings_at \
         FROM psi_keys ORDER BY ledger_index",
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
                created_at: stamp(r, 4)?,
                destroyed_at: opt_stamp(r, 5)?,
                ledger_index: to_u64(r.try_get(6)?)?,
                holdings_at: r.try_get::<Option<i64>, _>(7)?.map(to_u64).transpose()?,
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
                at: stamp(r, 8)?,
                ledger_index: to_u64(r.try_get(9)?)?,
            })
        })
        .collect()
}
