//! Evidence in the gate: items, their encrypted blobs' wrapped data keys, and custody events.
//! Private to the crate; reached only from [`crate::gate`].
//!
//! Every touch of an item is a custody event recorded as one ledger entry whose
//! `payload_hashes.custody` is the event's canonical digest (`entente_evidence::custody`);
//! the entry holds ids and digests, never content. Releasing an item to another party
//! (`ExportEvidence`) is decided by the agreements in force like any other flow and returns
//! the conditions that travel with it; receiving one (`ReceiveEvidence`) binds the sender's
//! conditions to it, the earlier retention limit winning. An item flagged as possibly
//! privileged (`FlagPrivilege`) is not exported until a filter team reviews it
//! (`ReviewPrivilege`).

mod commands;
mod privilege;

pub use commands::{
    AddEvidence, DestroyEvidence, EvidenceCustody, ExportEvidence, ExportFacts, ReadEvidence,
    ReceiveEvidence, ReceiveFacts,
};
pub(crate) use privilege::payload as privilege_payload;
pub use privilege::{FlagPrivilege, PrivilegeStatus, ReviewOutcome, ReviewPrivilege};

use crate::gate::GateError;
use crate::store::{StoreError, opt_stamp, to_i64, to_u64};
use entente_core::canonical::to_canonical_vec;
use entente_core::{CaseId, ItemId, PartyCode, Stamp};
use entente_evidence::{BlobRef, CustodyEvent};
use entente_policy::agreement::{DataCategory, RequestKind};
use entente_policy::engine::Conditions;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// The tool named in custody events the gate records.
pub const TOOL: &str = concat!("entente ", env!("CARGO_PKG_VERSION"));

/// An item taken in by this node: its content already ingested into the blob store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEvidence {
    /// Item id.
    pub id: ItemId,
    /// The case it is bound to.
    pub case_id: CaseId,
    /// SHA-256 of the content, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Data category (decides with which agreements it may travel).
    pub category: DataCategory,
    /// Media type.
    pub media_type: String,
    /// Description.
    pub description: String,
    /// Original file name.
    pub file_name: Option<String>,
    /// Where it came from (a system, a provider, a person's device).
    pub source: Option<String>,
    /// When it was collected (RFC 3339).
    pub collected_at: Option<String>,
    /// Where it was acquired.
    pub location: Option<String>,
    /// The tool that acquired it, with version.
    pub tool: String,
    /// The blob and its wrapped data key.
    pub blob: BlobRef,
    /// Why it was acquired.
    pub reason: String,
    /// Legal basis (a request or agreement id).
    pub legal_basis: Option<String>,
}

/// An item taken in from a verified package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceivedEvidence {
    /// Item id (as the sender names it).
    pub id: String,
    /// The local case it is bound to.
    pub case_id: String,
    /// SHA-256 of the content, hex (verified).
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Data category.
    pub category: DataCategory,
    /// Media type.
    pub media_type: String,
    /// Description.
    pub description: String,
    /// Original file name.
    pub file_name: Option<String>,
    /// Source.
    pub source: Option<String>,
    /// When it was collected.
    pub collected_at: Option<String>,
    /// The blob it was stored in here.
    pub blob: BlobRef,
    /// The sending party.
    pub from: PartyCode,
    /// The custody chain as verified (the sender's `exported` event last).
    pub chain: Vec<CustodyEvent>,
    /// The conditions that travel with it.
    pub conditions: Conditions,
    /// SHA-256 of the package's manifest, hex.
    pub package_sha256: String,
    /// The request it answers.
    pub request: Option<String>,
    /// The request's kind as the package states it (used when this node does not hold the
    /// request).
    pub request_kind: Option<RequestKind>,
}

/// A custody event with the index of the ledger entry that recorded it here (`None` for
/// events of earlier holders).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainEvent {
    /// The event.
    pub event: CustodyEvent,
    /// This node's ledger entry.
    pub ledger_index: Option<u64>,
}

/// An evidence item as held by this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceRecord {
    /// Item id.
    pub id: String,
    /// Case.
    pub case_id: String,
    /// SHA-256 of the content, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Data category.
    pub category: DataCategory,
    /// Media type.
    pub media_type: String,
    /// Description.
    pub description: String,
    /// Original file name.
    pub file_name: Option<String>,
    /// Source.
    pub source: Option<String>,
    /// When collected.
    pub collected_at: Option<String>,
    /// The party that acquired it.
    pub originator: PartyCode,
    /// The party it was received from.
    pub received_from: Option<PartyCode>,
    /// The conditions bound to it on receipt, or (in the answer to an export) the conditions
    /// that travel with it.
    pub conditions: Option<Conditions>,
    /// Keep no longer than this.
    pub retain_until: Option<Stamp>,
    /// When it was destroyed.
    pub destroyed_at: Option<Stamp>,
    /// Its blob; `None` once destroyed.
    pub blob: Option<BlobRef>,
    /// Whether the content was already held (de-duplicated: the blob given was not used).
    pub deduplicated: bool,
    /// The blob left without a key by a destruction, for the caller to remove.
    pub shredded_blob: Option<String>,
    /// The custody chain.
    pub chain: Vec<ChainEvent>,
}

fn text<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn parse_text<T: for<'de> Deserialize<'de>>(what: &str, s: &str) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| StoreError::Inconsistent(format!("stored {what} `{s}` is not known")))
}

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

async fn case_concepts(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    case_id: &str,
) -> Result<Vec<String>, GateError> {
    let concepts: Option<String> = sqlx::query_scalar("SELECT concepts FROM cases WHERE id = $1")
        .bind(case_id)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(concepts) = concepts else {
        return Err(GateError::NotFound(format!("case `{case_id}`")));
    };
    serde_json::from_str(&concepts)
        .map_err(|e| GateError::Store(StoreError::Inconsistent(format!("case concepts: {e}"))))
}

fn next_link(item: &EvidenceRecord) -> (u64, Option<String>) {
    (item.chain.len() as u64, item.chain.last().map(|e| e.event.digest()))
}

async fn live_item(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
) -> Result<EvidenceRecord, GateError> {
    let item = load_item(tx, id).await?;
    if let Some(at) = &item.destroyed_at {
        return Err(GateError::Conflict(format!("evidence `{id}` was destroyed at {at}")));
    }
    Ok(item)
}

async fn ensure_new(tx: &mut sqlx::Transaction<'_, sqlx::Any>, id: &str) -> Result<(), GateError> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM evidence_items WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    if exists.is_some() {
        return Err(GateError::Conflict(format!("evidence `{id}` already exists")));
    }
    Ok(())
}

/// Records the blob of `sha256` unless a live one is held already. Returns whether the content
/// was already held (the given blob is then not used; the caller removes it).
async fn upsert_blob(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    sha256: &str,
    size: u64,
    blob: &BlobRef,
    index: u64,
) -> Result<bool, GateError> {
    let row = sqlx::query("SELECT wrapped_key FROM evidence_blobs WHERE sha256 = $1")
        .bind(sha256)
        .fetch_optional(&mut **tx)
        .await?;
    match row {
        Some(r) => {
            let key: Option<String> = r.try_get(0)?;
            if key.is_some() {
                return Ok(true);
            }
            // Held once and destroyed: this is a new acquisition with a new key.
            sqlx::query(
                "UPDATE evidence_blobs SET blob_name = $1, wrapped_key = $2, destroyed_at = NULL, ledger_index = $3 WHERE sha256 = $4",
            )
            .bind(&blob.name)
            .bind(&blob.wrapped_key)
            .bind(to_i64(index)?)
            .bind(sha256)
            .execute(&mut **tx)
            .await?;
            Ok(false)
        }
        None => {
            sqlx::query(
                "INSERT INTO evidence_blobs (sha256, size, blob_name, wrapped_key, ledger_index) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(sha256)
            .bind(to_i64(size)?)
            .bind(&blob.name)
            .bind(&blob.wrapped_key)
            .bind(to_i64(index)?)
            .execute(&mut **tx)
            .await?;
            Ok(false)
        }
    }
}

struct ItemRow<'a> {
    id: &'a str,
    case_id: &'a str,
    sha256: &'a str,
    size: u64,
    category: DataCategory,
    media_type: &'a str,
    description: &'a str,
    file_name: Option<&'a str>,
    source: Option<&'a str>,
    collected_at: Option<&'a str>,
    originator: &'a PartyCode,
    received_from: Option<&'a PartyCode>,
    package_sha256: Option<&'a str>,
    conditions: Option<&'a Conditions>,
    earlier_chain: &'a [CustodyEvent],
}

async fn insert_item(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    r: ItemRow<'_>,
    now_text: &str,
    index: u64,
) -> Result<(), GateError> {
    let conditions = r.conditions.map(to_json).transpose()?;
    let chain = to_json(&r.earlier_chain)?;
    sqlx::query(
        "INSERT INTO evidence_items (id, case_id, sha256, size, category, media_type, description, file_name, source, \
         collected_at, originator, received_from, package_sha256, conditions, retain_until, earlier_chain, created_at, ledger_index) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
    )
    .bind(r.id)
    .bind(r.case_id)
    .bind(r.sha256)
    .bind(to_i64(r.size)?)
    .bind(text(&r.category))
    .bind(r.media_type)
    .bind(r.description)
    .bind(r.file_name)
    .bind(r.source)
    .bind(r.collected_at)
    .bind(r.originator.as_str())
    .bind(r.received_from.map(PartyCode::as_str))
    .bind(r.package_sha256)
    .bind(conditions)
    .bind(r.conditions.and_then(|c| c.retain_until.clone()))
    .bind(chain)
    .bind(now_text)
    .bind(to_i64(index)?)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn to_json<T: Serialize + ?Sized>(v: &T) -> Result<String, GateError> {
    serde_json::to_string(v).map_err(|e| GateError::Encoding(e.to_string()))
}

async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    e: &CustodyEvent,
    index: u64,
) -> Result<String, GateError> {
    let bytes = to_canonical_vec(e).map_err(|e| GateError::Encoding(e.to_string()))?;
    // The digest of the canonical bytes just made (what `CustodyEvent::digest` computes).
    let digest = entente_core::canonical::sha256_tagged(&bytes);
    sqlx::query(
        "INSERT INTO evidence_custody (item_id, seq, event, digest, ledger_index) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&e.item)
    .bind(to_i64(e.seq)?)
    .bind(String::from_utf8_lossy(&bytes).into_owned())
    .bind(&digest)
    .bind(to_i64(index)?)
    .execute(&mut **tx)
    .await?;
    Ok(digest)
}

/// Reads an item with its chain (earlier holders' events, then this node's).
pub(crate) async fn load_item(
    conn: &mut sqlx::AnyConnection,
    id: &str,
) -> Result<EvidenceRecord, GateError> {
    let row = sqlx::query(
        "SELECT i.case_id, i.sha256, i.size, i.category, i.media_type, i.description, i.file_name, i.source, \
         i.collected_at, i.originator, i.received_from, i.conditions, i.retain_until, i.destroyed_at, \
         i.earlier_chain, b.blob_name, b.wrapped_key FROM evidence_items i \
         LEFT JOIN evidence_blobs b ON b.sha256 = i.sha256 WHERE i.id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| GateError::NotFound(format!("evidence `{id}`")))?;
    let bad = |what: &str, e: String| {
        GateError::Store(StoreError::Inconsistent(format!("evidence {id} {what}: {e}")))
    };
    let category: String = row.try_get(3)?;
    let originator: String = row.try_get(9)?;
    let received_from: Option<String> = row.try_get(10)?;
    let conditions: Option<String> = row.try_get(11)?;
    let earlier: String = row.try_get(14)?;
    let destroyed_at = opt_stamp(&row, 13)?;
    let blob_name: Option<String> = row.try_get(15)?;
    let wrapped_key: Option<String> = row.try_get(16)?;
    let earlier: Vec<CustodyEvent> =
        serde_json::from_str(&earlier).map_err(|e| bad("earlier chain", e.to_string()))?;
    let mut chain: Vec<ChainEvent> =
        earlier.into_iter().map(|event| ChainEvent { event, ledger_index: None }).collect();
    let rows = sqlx::query(
        "SELECT event, ledger_index FROM evidence_custody WHERE item_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let text: String = r.try_get(0)?;
        let event: CustodyEvent =
            serde_json::from_str(&text).map_err(|e| bad("custody event", e.to_string()))?;
        chain.push(ChainEvent { event, ledger_index: Some(to_u64(r.try_get(1)?)?) });
    }
    Ok(EvidenceRecord {
        id: id.to_owned(),
        case_id: row.try_get(0)?,
        sha256: row.try_get(1)?,
        size: to_u64(row.try_get(2)?)?,
        category: parse_text("category", &category)?,
        media_type: row.try_get(4)?,
        description: row.try_get(5)?,
        file_name: row.try_get(6)?,
        source: row.try_get(7)?,
        collected_at: row.try_get(8)?,
        originator: originator.parse().map_err(|e| bad("originator", format!("{e}")))?,
        received_from: received_from
            .map(|p| p.parse())
            .transpose()
            .map_err(|e| bad("received_from", format!("{e}")))?,
        conditions: conditions
            .map(|c| serde_json::from_str(&c))
            .transpose()
            .map_err(|e| bad("conditions", e.to_string()))?,
        retain_until: opt_stamp(&row, 12)?,

        blob: match (destroyed_at.is_some(), blob_name, wrapped_key) {
            (false, Some(name), Some(wrapped_key)) => Some(BlobRef { name, wrapped_key }),
            _ => None,
        },
        destroyed_at,
        deduplicated: false,
        shredded_blob: None,
        chain,
    })
}

impl crate::store::Store {
    /// Ids of the evidence items not destroyed whose retention limit is at or before `now`.
    ///
    /// # Errors
    /// Database errors, or a stored limit that does not parse.
    pub async fn evidence_due_for_destruction(
        &self,
        now: Timestamp,
    ) -> Result<Vec<ItemId>, StoreError> {
        self.due_for_destruction("evidence_items", now).await
    }

    /// Whether a case with this id exists (to refuse an upload to an unknown case before
    /// reading its body; the gate checks again when it records the item).
    ///
    /// # Errors
    /// Database errors.
    pub async fn case_exists(&self, case_id: &str) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM cases WHERE id = $1")
            .bind(case_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    /// Ids of the evidence items of a case that are not destroyed.
    ///
    /// # Errors
    /// Database errors.
    pub async fn evidence_of_case(&self, case_id: &str) -> Result<Vec<ItemId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM evidence_items WHERE case_id = $1 AND destroyed_at IS NULL ORDER BY id",
        )
        .bind(case_id)
        .fetch_all(&self.pool)
        .await?;
        ids.into_iter()
            .map(|id| ItemId::try_from(id).map_err(|e| StoreError::Inconsistent(e.to_string())))
            .collect()
    }
}
