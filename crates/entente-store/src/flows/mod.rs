//! Data items and the flows between parties: the part of the gate that puts agreement
//! policy to work. Private to the crate; reached only from [`crate::gate`].
//!
//! A flow is decided in three steps that all happen inside the gate's transaction:
//! the facts are read (the datum, its case, its conditions, the consents recorded), the
//! agreement engine decides (pure), and the effect is applied (minimize, write the outbox
//! message with the conditions that travel, or record a received datum with its conditions).

mod commands;

pub use commands::{
    AddDatum, DestroyDatum, GiveConsent, ReadDatum, ReceiveConsent, ReceiveDatum, ShareDatum,
};

use crate::gate::GateError;
use crate::store::{StoreError, to_i64, to_u64};
use entente_core::PartyCode;
use entente_core::canonical::canonical_digest;
use entente_policy::agreement::DataCategory;
use entente_wire::MessageKind;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::Row;

/// A message for a partner, written to the outbox in the gate's transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Outbox row id.
    pub id: i64,
    /// Sequence number among the messages to this recipient (from 1).
    pub seq: u64,
    /// The receiving party.
    pub recipient: PartyCode,
    /// Its kind.
    pub kind: MessageKind,
    /// The payload (JSON).
    pub payload: Value,
}

/// What the gate reads before deciding a flow.
#[derive(Clone, Debug)]
pub struct ShareFacts {
    category: DataCategory,
    originator: PartyCode,
    origin_agreement: Option<String>,
    concepts: Vec<String>,
    consents: Vec<PartyCode>,
    content: Option<Map<String, Value>>,
    case_id: String,
    /// Why the content may not leave: it differs from the digest its ledger entry holds.
    tampered: Option<String>,
}

fn parse_kebab<T: for<'de> Deserialize<'de>>(what: &str, s: &str) -> Result<T, StoreError> {
    serde_json::from_value(Value::String(s.to_owned()))
        .map_err(|_| StoreError::Inconsistent(format!("stored {what} `{s}` is not known")))
}

fn kebab<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// Reads what a share's decision needs: the datum, its case's offence concepts and the
/// originators' consents to passing it on to `to`.
pub(crate) async fn load_share_facts(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    to: &PartyCode,
) -> Result<ShareFacts, GateError> {
    let row = sqlx::query(
            "SELECT d.category, d.originator, d.origin_agreement, d.content, d.case_id, d.destroyed_at, \
             COALESCE(c.concepts, d.concepts), d.content_sha256, d.ledger_index \
             FROM data_items d LEFT JOIN cases c ON c.id = d.case_id WHERE d.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| GateError::NotFound(format!("datum `{id}`")))?;
    let destroyed: Option<String> = row.try_get(5)?;
    if destroyed.is_some() {
        return Err(GateError::Conflict(format!("datum `{id}` was destroyed (retention expired)")));
    }
    let content: Option<String> = row.try_get(3)?;
    let content = content
        .map(|c| serde_json::from_str::<Map<String, Value>>(&c))
        .transpose()
        .map_err(|e| StoreError::Inconsistent(format!("datum {id} content: {e}")))?;
    let concepts: String = row.try_get(6)?;
    let tampered = match &content {
        Some(c) => {
            let index = crate::store::to_u64(row.try_get(8)?)?;
            content_tampered(tx, id, c, &row.try_get::<String, _>(7)?, index).await?
        }
        None => None,
    };
    let consents: Vec<String> =
        sqlx::query_scalar("SELECT given_by FROM consents WHERE datum_id = $1 AND recipient = $2")
            .bind(id)
            .bind(to.as_str())
            .fetch_all(&mut **tx)
            .await?;
    let category: String = row.try_get(0)?;
    let originator: String = row.try_get(1)?;
    Ok(ShareFacts {
        category: parse_kebab("category", &category)?,
        originator: originator.parse().map_err(|e| StoreError::Inconsistent(format!("{e}")))?,
        origin_agreement: row.try_get(2)?,
        concepts: serde_json::from_str(&concepts)
            .map_err(|e| StoreError::Inconsistent(format!("case concepts: {e}")))?,
        consents: consents.iter().filter_map(|c| c.parse().ok()).collect(),
        content,
        case_id: row.try_get(4)?,
        tampered,
    })
}

/// Checks a datum's content against its recorded `content_sha256` and against the `content`
/// digest of the ledger entry that wrote it, before the content leaves the node. Returns
/// what differs, or `None` when both agree.
async fn content_tampered(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    content: &Map<String, Value>,
    column: &str,
    index: u64,
) -> Result<Option<String>, GateError> {
    let now = digest(content)?;
    if now != column {
        return Ok(Some(format!(
            "datum `{id}`: its content hashes to {now}, not to its recorded digest {column}"
        )));
    }
    let entry: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT entry FROM ledger_entries WHERE idx = $1")
            .bind(crate::store::to_i64(index)?)
            .fetch_optional(&mut **tx)
            .await?;
    let Some(bytes) = entry else {
        return Ok(Some(format!("datum `{id}`: its ledger entry {index} does not exist")));
    };
    let entry = match entente_core::ledger::LedgerEntry::decode(&bytes) {
        Ok(e) => e,
        Err(e) => {
            return Ok(Some(format!(
                "datum `{id}`: its ledger entry {index} does not decode: {e}"
            )));
        }
    };
    Ok(match entry.payload_hashes.get("content") {
        Some(r) if *r == now => None,
        Some(r) => Some(format!(
            "datum `{id}`: its content hashes to {now}, but ledger entry {index} recorded {r}"
        )),
        None => Some(format!("datum `{id}`: ledger entry {index} holds no digest of its content")),
    })
}

/// The refusal of a partner's message whose conditions name another agreement than the one
/// that grounds the flow now (`what` travels under `named`), or `None` when they agree.
pub(crate) fn travels_as_grounded(
    d: &entente_policy::engine::FlowDecision,
    named: &str,
    what: &str,
) -> Option<entente_core::Decision> {
    if !d.decision.is_permit() || d.agreement.as_deref() == Some(named) {
        return None;
    }
    let in_force = d.agreement.as_deref().unwrap_or_default();
    Some(entente_core::Decision::deny(
        "conditions.agreement-mismatch",
        format!("the {what} travels under `{named}`, but the flow is grounded on `{in_force}`"),
    ))
}

/// The earlier of two RFC 3339 limits; an unparsable one is kept over a parsable one so that
/// a malformed limit is never silently dropped (it then fails at retention time, loudly).
fn earlier(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => match (a.parse::<Timestamp>(), b.parse::<Timestamp>()) {
            (Ok(x), Ok(y)) => Some(if x <= y { a } else { b }),
            (Err(_), _) => Some(a),
            (_, Err(_)) => Some(b),
        },
        (a, b) => a.or(b),
    }
}

fn digest(v: &impl Serialize) -> Result<String, GateError> {
    canonical_digest(v).map_err(|e| GateError::Encoding(e.to_string()))
}

async fn ensure_new(tx: &mut sqlx::Transaction<'_, sqlx::Any>, id: &str) -> Result<(), GateError> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM data_items WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    if exists.is_some() {
        return Err(GateError::Conflict(format!("datum `{id}` already exists")));
    }
    Ok(())
}

/// What identifies a data item and what it is about.
struct Item<'a> {
    id: &'a str,
    case_id: &'a str,
    category: DataCategory,
    /// Offence concepts, JSON array.
    concepts: &'a str,
    originator: &'a PartyCode,
}

#[expect(clippy::too_many_arguments, reason = "one row of data_items")]
async fn insert_item(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    item: &Item<'_>,
    received_from: Option<&PartyCode>,
    agreement_and_conditions: Option<(&String, &String)>,
    content: &Map<String, Value>,
    sha: &str,
    retain_until: Option<&str>,
    index: u64,
) -> Result<(), GateError> {
    let content = serde_json::to_string(content).map_err(|e| GateError::Encoding(e.to_string()))?;
    let inserted = sqlx::query(
        "INSERT INTO data_items (id, case_id, category, concepts, originator, received_from, origin_agreement, \
         conditions, content, content_sha256, retain_until, destroyed_at, ledger_index) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, $12) ON CONFLICT (id) DO NOTHING",
    )
    .bind(item.id)
    .bind(item.case_id)
    .bind(kebab(&item.category))
    .bind(item.concepts)
    .bind(item.originator.as_str())
    .bind(received_from.map(|p| p.as_str().to_owned()))
    .bind(agreement_and_conditions.map(|(a, _)| a.clone()))
    .bind(agreement_and_conditions.map(|(_, c)| c.clone()))
    .bind(content)
    .bind(sha)
    .bind(retain_until.map(str::to_owned))
    .bind(to_i64(index)?)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    // The insert is the effect's first write: nothing is changed when the id is taken.
    if inserted == 0 {
        return Err(GateError::Conflict(format!("datum `{}` already exists", item.id)));
    }
    Ok(())
}

pub(crate) async fn outbox(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    recipient: &PartyCode,
    kind: MessageKind,
    payload: &Value,
    now: &str,
    index: u64,
) -> Result<(i64, u64), GateError> {
    let seq = crate::federation::next_seq(tx, recipient).await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO outbox (recipient, kind, payload, created_at, ledger_index, seq) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(recipient.as_str())
    .bind(kind.as_str())
    .bind(payload.to_string().into_bytes())
    .bind(now)
    .bind(to_i64(index)?)
    .bind(seq)
    .fetch_one(&mut **tx)
    .await?;
    Ok((id, to_u64(seq)?))
}
