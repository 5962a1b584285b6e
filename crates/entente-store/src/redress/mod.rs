//! Redress in the gate: an individual's complaint about the data this node holds on an
//! identifier (an e-mail address, an account, an IP address). Private to the crate; reached
//! only from [`crate::gate`].
//!
//! The identifier is never stored: the gate keeps its keyed hash (HMAC-SHA-256 under a key
//! derived from the node secret, [`index_key`]), and the same keyed hashes of the string
//! values of every datum recorded or received ([`index_datum`]) let a complaint find the data
//! items concerning it, and the outbox the flows of those items out of this node. The ledger
//! receives digests only.

use crate::gate::{EffectCx, GateCommand, GateError, PayloadDigests, Ruling, decided_by_role};
use crate::store::{StoreError, opt_stamp, stamp, to_i64, to_u64};
use entente_core::canonical::canonical_digest;
use entente_core::{Action, Stamp, Subject, SubjectKind};

use entente_policy::minimize::{PSEUDONYM_PREFIX, PseudonymKey};
use jiff::SignedDuration;
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::Row;
use std::collections::BTreeSet;

/// Days a complaint may stay open before its answer is due.
///
/// Entente's operating default: the project's legal research notes
/// (`legal-facts.md`) give no deadline for answering a redress complaint, so 30 calendar days
/// from filing is used until a sourced figure replaces it.
pub const ANSWER_DAYS: i64 = 30;

/// Where the deadline comes from, shown with every complaint.
pub const DEADLINE_BASIS: &str = "Entente operating default of 30 days from filing: the research notes give no deadline for answering a redress complaint";

/// The decisions a complaint can receive.
pub const DECISIONS: &[&str] = &["granted", "refused", "partially-granted"];

/// A data item found for a complaint's identifier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ComplaintItem {
    /// Datum id.
    pub id: String,
    /// Its category.
    pub category: String,
    /// The party that originated it.
    pub originator: String,
    /// The party it was received from, if it was received.
    pub received_from: Option<String>,
    /// The agreement it was received under, if it was received.
    pub origin_agreement: Option<String>,
    /// Whether its content has been destroyed.
    pub destroyed: bool,
    /// Ledger index of its recording.
    pub ledger_index: u64,
}

/// A flow out of this node of a data item found for a complaint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ComplaintFlow {
    /// Datum id.
    pub datum_id: String,
    /// The receiving party.
    pub recipient: String,
    /// The category the datum was sent as.
    pub category: String,
    /// The agreement the share was decided under.
    pub agreement: String,
    /// Ledger index of the share.
    pub ledger_index: u64,
}

/// A complaint as it stands, with what was found for its identifier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Complaint {
    /// Complaint id.
    pub id: String,
    /// `open` or `answered`.
    pub state: String,
    /// Who filed it (the DPO who took it).
    pub filed_by: String,
    /// When it was filed.
    pub filed_at: Stamp,
    /// When its answer is due.
    pub due_at: Stamp,
    /// Where the deadline comes from.
    pub deadline_basis: String,
    /// The decision, once answered.
    pub decision: Option<String>,
    /// The answer to the complainant, once answered.
    pub answer: Option<String>,
    /// When it was answered.
    pub answered_at: Option<Stamp>,
    /// Ledger index of the filing.
    pub ledger_index: u64,
    /// Ledger index of the answer.
    pub answer_ledger_index: Option<u64>,
    /// The data items whose content names the identifier.
    pub items: Vec<ComplaintItem>,
    /// The flows of those items out of this node.
    pub flows: Vec<ComplaintFlow>,
}

/// The node-local key of the identifier index.
fn index_key(secret: &[u8; 32]) -> PseudonymKey {
    PseudonymKey::derive(secret, "redress-index")
}

/// The keyed hash of one identifier-like value: trimmed and lower-cased (a pseudonym `pse:…`
/// is only trimmed, it is hashed as it is).
pub(crate) fn identifier_hash(secret: &[u8; 32], value: &str) -> String {
    let v = value.trim();
    let normalized = if v.starts_with(PSEUDONYM_PREFIX) { v.to_owned() } else { v.to_lowercase() };
    index_key(secret).pseudonym(normalized.as_bytes())
}

/// Indexes datum `id` under the keyed hashes of the string values of its top-level fields.
pub(crate) async fn index_datum(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    secret: &[u8; 32],
    id: &str,
    content: &Map<String, Value>,
) -> Result<(), GateError> {
    let hashes: BTreeSet<String> = content
        .values()
        .filter_map(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(|s| identifier_hash(secret, s))
        .collect();
    if hashes.is_empty() {
        return Ok(());
    }
    // One statement for all of the datum's values (a datum has a handful of fields).
    let groups: Vec<String> =
        (0..hashes.len()).map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2)).collect();
    let sql = format!("INSERT INTO identifier_index (hash, datum_id) VALUES {}", groups.join(","));
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for h in hashes {
        q = q.bind(h).bind(id);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

fn digest(v: &impl Serialize) -> Result<String, GateError> {
    canonical_digest(v).map_err(|e| GateError::Encoding(e.to_string()))
}

fn opt_u64(v: Option<i64>) -> Result<Option<u64>, StoreError> {
    v.map(to_u64).transpose()
}

/// Reads complaint `id` with the items and flows found for its identifier.
async fn load(tx: &mut sqlx::Transaction<'_, sqlx::Any>, id: &str) -> Result<Complaint, GateError> {
    let row = sqlx::query(
        "SELECT identifier_hash, filed_by, filed_at, due_at, state, decision, answer, answered_at, \
         ledger_index, answer_ledger_index FROM complaints WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| GateError::NotFound(format!("complaint `{id}`")))?;
    let hash: String = row.try_get(0)?;
    let rows = sqlx::query(
        "SELECT d.id, d.category, d.originator, d.received_from, d.origin_agreement, d.destroyed_at, \
         d.ledger_index FROM identifier_index i JOIN data_items d ON d.id = i.datum_id \
         WHERE i.hash = $1 ORDER BY d.id",
    )
    .bind(&hash)
    .fetch_all(&mut **tx)
    .await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        let destroyed: Option<String> = r.try_get(5)?;
        items.push(ComplaintItem {
            id: r.try_get(0)?,
            category: r.try_get(1)?,
            originator: r.try_get(2)?,
            received_from: r.try_get(3)?,
            origin_agreement: r.try_get(4)?,
            destroyed: destroyed.is_some(),
            ledger_index: to_u64(r.try_get(6)?)?,
        });
    }
    let mut flows = Vec::new();
    if !items.is_empty() {
        let wanted: BTreeSet<&str> = items.iter().map(|i| i.id.as_str()).collect();
        // Every datum share leaves exactly one outbox row, written in the share's transaction
        // with its ledger index; the payload names the datum, its category and the agreement.
        let rows = sqlx::query(
            "SELECT recipient, payload, ledger_index FROM outbox WHERE kind = 'datum' ORDER BY id",
        )
        .fetch_all(&mut **tx)
        .await?;
        for r in &rows {
            let payload: Vec<u8> = r.try_get(1)?;
            let message: Value = serde_json::from_slice(&payload)
                .map_err(|e| StoreError::Inconsistent(format!("outbox payload: {e}")))?;
            let Some(datum_id) = message["id"].as_str().filter(|d| wanted.contains(d)) else {
                continue;
            };
            flows.push(ComplaintFlow {
                datum_id: datum_id.to_owned(),
                recipient: r.try_get(0)?,
                category: message["category"].as_str().unwrap_or_default().to_owned(),
                agreement: message["conditions"]["agreement"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                ledger_index: to_u64(r.try_get(2)?)?,
            });
        }
    }
    Ok(Complaint {
        id: id.to_owned(),
        state: row.try_get(4)?,
        filed_by: row.try_get(1)?,
        filed_at: stamp(&row, 2)?,
        due_at: stamp(&row, 3)?,
        deadline_basis: DEADLINE_BASIS.to_owned(),
        decision: row.try_get(5)?,
        answer: row.try_get(6)?,
        answered_at: opt_stamp(&row, 7)?,
        ledger_index: to_u64(row.try_get(8)?)?,
        answer_ledger_index: opt_u64(row.try_get(9)?)?,
        items,
        flows,
    })
}

fn check_id(id: &str) -> Result<(), GateError> {
    entente_core::ids::check_identifier("complaint id", id).map_err(GateError::Invalid)
}

/// File an individual's complaint about the data held on an identifier. Filed at the
/// gate's `now`; the answer is due [`ANSWER_DAYS`] later. Only the keyed hash of the
/// identifier is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileComplaint {
    /// Complaint id.
    pub id: String,
    /// The identifier the complaint is about (e-mail, account, IP address).
    pub identifier: String,
}

impl GateCommand for FileComplaint {
    type Output = Complaint;
    type Facts = ();

    fn action(&self) -> Action {
        Action::ComplaintFile
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Complaint, &self.id)]
    }

    /// The identifier's keyed hash and the deadline, computed when the complaint is filed.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    fn validate(&self) -> Result<(), GateError> {
        check_id(&self.id)?;
        let n = self.identifier.trim().chars().count();
        if n == 0 || n > 1000 {
            return Err(GateError::Invalid("identifier: expected 1 to 1000 characters".into()));
        }
        Ok(())
    }

    decided_by_role!();

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<Complaint, GateError> {
        let FileComplaint { id, identifier } = self;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM complaints WHERE id = $1")
            .bind(&id)
            .fetch_optional(&mut **cx.tx)
            .await?;
        if exists.is_some() {
            return Err(GateError::Conflict(format!("complaint `{id}` already exists")));
        }
        let hash = identifier_hash(cx.secret, &identifier);
        let due = cx
            .now
            .checked_add(SignedDuration::from_hours(ANSWER_DAYS * 24))
            .map_err(|e| GateError::Invalid(format!("deadline: {e}")))?;
        sqlx::query(
            "INSERT INTO complaints (id, identifier_hash, filed_by, filed_at, due_at, state, \
             decision, answer, answered_at, ledger_index, answer_ledger_index) \
             VALUES ($1, $2, $3, $4, $5, 'open', NULL, NULL, NULL, $6, NULL)",
        )
        .bind(&id)
        .bind(&hash)
        .bind(cx.actor.to_string())
        .bind(cx.now_text())
        .bind(format!("{due:.6}"))
        .bind(to_i64(cx.index)?)
        .execute(&mut **cx.tx)
        .await?;
        let complaint = load(cx.tx, &id).await?;
        // The keyed hash is already unlinkable without the node key; the ledger holds only
        // its digest, with the deadline.
        let filed = digest(&serde_json::json!({"id": id, "identifier_hash": hash}))?;
        cx.record_digests(vec![
            ("identifier".into(), filed),
            ("due_at".into(), digest(&format!("{due:.6}"))?),
        ]);
        Ok(complaint)
    }
}

/// Record the decision on a complaint and the answer given to the complainant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerComplaint {
    /// Complaint id.
    pub id: String,
    /// `granted`, `refused` or `partially-granted` (see [`DECISIONS`]).
    pub decision: String,
    /// The answer's text (stored with the complaint; only its digest is recorded).
    pub answer: String,
}

impl GateCommand for AnswerComplaint {
    type Output = Complaint;
    type Facts = ();

    fn action(&self) -> Action {
        Action::ComplaintAnswer
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Complaint, &self.id)]
    }

    /// What the complainant was told, with the flows listed (known once the complaint loads).
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    fn validate(&self) -> Result<(), GateError> {
        check_id(&self.id)?;
        if !DECISIONS.contains(&self.decision.as_str()) {
            return Err(GateError::Invalid(format!(
                "decision `{}`: expected one of {}",
                self.decision,
                DECISIONS.join(", ")
            )));
        }
        let n = self.answer.trim().chars().count();
        if n == 0 || n > 20_000 {
            return Err(GateError::Invalid("answer: expected 1 to 20000 characters".into()));
        }
        Ok(())
    }

    decided_by_role!();

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<Complaint, GateError> {
        let AnswerComplaint { id, decision, answer } = self;
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM complaints WHERE id = $1")
                .bind(&id)
                .fetch_optional(&mut **cx.tx)
                .await?;
        match state.as_deref() {
            None => return Err(GateError::NotFound(format!("complaint `{id}`"))),
            Some("open") => {}
            Some(s) => {
                return Err(GateError::Conflict(format!("complaint `{id}` is already {s}")));
            }
        }
        sqlx::query(
            "UPDATE complaints SET state = 'answered', decision = $1, answer = $2, \
             answered_at = $3, answer_ledger_index = $4 WHERE id = $5",
        )
        .bind(&decision)
        .bind(&answer)
        .bind(cx.now_text())
        .bind(to_i64(cx.index)?)
        .bind(&id)
        .execute(&mut **cx.tx)
        .await?;
        let complaint = load(cx.tx, &id).await?;
        // What the complainant was told: the decision, the text and the listing of who
        // received which categories under which agreement.
        let told = serde_json::json!({
            "id": id,
            "decision": decision,
            "answer": answer,
            "flows": complaint.flows,
        });
        cx.record_digests(vec![("answer".into(), digest(&told)?)]);
        Ok(complaint)
    }
}

/// Read a complaint with the data items and flows found for its identifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadComplaint {
    /// Complaint id.
    pub id: String,
}

impl GateCommand for ReadComplaint {
    type Output = Complaint;
    type Facts = ();

    fn action(&self) -> Action {
        Action::ComplaintRead
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Complaint, &self.id)]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::SubjectsOnly)
    }

    fn validate(&self) -> Result<(), GateError> {
        check_id(&self.id)
    }

    decided_by_role!();

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<Complaint, GateError> {
        load(cx.tx, &self.id).await
    }
}
