//! Evidence in the gate: items, their encrypted blobs' wrapped data keys, and custody events.
//! Private to the crate; reached only from [`crate::gate`].
//!
//! Every touch of an item is a custody event recorded as one ledger entry whose
//! `payload_hashes.custody` is the event's canonical digest (`entente_evidence::custody`);
//! the entry holds ids and digests, never content. Releasing an item to another party
//! (`ExportEvidence`) is decided by the agreements in force like any other flow and returns
//! the conditions that travel with it; receiving one (`ReceiveEvidence`) binds the sender's
//! conditions to it, the earlier retention limit winning.

use crate::gate::{Command, GateError, Output};
use crate::store::{StoreError, to_i64, to_u64};
use entente_core::canonical::to_canonical_vec;
use entente_core::{Actor, Decision, PartyCode};
use entente_evidence::{BlobRef, CustodyEvent, CustodyKind};
use entente_policy::agreement::{DataCategory, Purpose, RequestKind};
use entente_policy::engine::{Conditions, Engine, Flow};
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
    pub id: String,
    /// The case it is bound to.
    pub case_id: String,
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
    pub retain_until: Option<String>,
    /// When it was destroyed.
    pub destroyed_at: Option<String>,
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

/// Checks a command's own data.
pub(crate) fn validate(command: &Command) -> Result<(), GateError> {
    let id_ok = |what: &str, s: &str| {
        entente_core::ids::check_identifier(what, s).map_err(GateError::Invalid)
    };
    let sha_ok = |s: &str| {
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            Ok(())
        } else {
            Err(GateError::Invalid("sha256: expected 64 lowercase hex digits".into()))
        }
    };
    let reason_ok = |r: &str| {
        if r.trim().is_empty() || r.len() > 1000 {
            Err(GateError::Invalid("reason: expected 1 to 1000 characters".into()))
        } else {
            Ok(())
        }
    };
    match command {
        Command::AddEvidence { item } => {
            id_ok("evidence id", &item.id)?;
            id_ok("case id", &item.case_id)?;
            sha_ok(&item.sha256)?;
            reason_ok(&item.reason)?;
            if item.description.trim().is_empty() || item.description.len() > 2000 {
                return Err(GateError::Invalid(
                    "description: expected 1 to 2000 characters".into(),
                ));
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
        Command::EvidenceCustody { id, event, reason, .. } => {
            id_ok("evidence id", id)?;
            reason_ok(reason)?;
            match event {
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
        Command::ExportEvidence { id, request, retain_until, .. } => {
            id_ok("evidence id", id)?;
            if let Some(at) = retain_until {
                at.parse::<Timestamp>().map_err(|e| {
                    GateError::Invalid(format!(
                        "retain_until `{at}`: {e}; expected RFC 3339 such as 2028-04-08T00:00:00Z"
                    ))
                })?;
            }
            id_ok("request id", request)
        }
        Command::ReceiveEvidence { item } => {
            id_ok("evidence id", &item.id)?;
            id_ok("case id", &item.case_id)?;
            sha_ok(&item.sha256)?;
            entente_evidence::custody::check_chain(&item.id, &item.sha256, &item.chain)
                .map_err(|e| GateError::Invalid(format!("custody chain: {e}")))?;
            if item.conditions.agreement.is_empty() {
                return Err(GateError::Invalid(
                    "conditions.agreement: evidence must travel with the agreement it is sent under".into(),
                ));
            }
            Ok(())
        }
        Command::ReadEvidence { id } | Command::DestroyEvidence { id } => id_ok("evidence id", id),
        _ => Err(GateError::Invalid("not an evidence command".into())),
    }
}

/// Decides the flows among evidence commands with the agreement engine (after the role rule
/// permitted): an export to another party, a receipt from one. Other commands keep `role`.
pub(crate) async fn decide(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    engine: &Engine,
    party: &PartyCode,
    command: &Command,
    role: Decision,
    now: Timestamp,
) -> Result<(Decision, Option<Conditions>), GateError> {
    let combine = |flow: Decision| {
        let mut rules = role.rules.clone();
        rules.extend(flow.rules);
        Decision {
            outcome: flow.outcome,
            rules,
            obligations: flow.obligations,
            reason: flow.reason,
        }
    };
    match command {
        Command::ExportEvidence { id, to, request, request_kind, purpose, retain_until } => {
            let item = load_item(tx, id).await?;
            if item.destroyed_at.is_some() {
                return Err(GateError::Conflict(format!("evidence `{id}` was destroyed")));
            }
            let kind = match request_kind {
                Some(k) => Some(*k),
                None => {
                    let k: Option<String> =
                        sqlx::query_scalar("SELECT kind FROM requests WHERE id = $1")
                            .bind(request)
                            .fetch_optional(&mut **tx)
                            .await?;
                    k.map(|k| parse_text::<RequestKind>("request kind", &k)).transpose()?
                }
            };
            let concepts = case_concepts(tx, &item.case_id).await?;
            let consents: Vec<String> = sqlx::query_scalar(
                "SELECT given_by FROM consents WHERE datum_id = $1 AND recipient = $2",
            )
            .bind(id)
            .bind(to.as_str())
            .fetch_all(&mut **tx)
            .await?;
            let consents: Vec<PartyCode> = consents.iter().filter_map(|c| c.parse().ok()).collect();
            let origin_agreement = item.conditions.as_ref().map(|c| c.agreement.clone());
            let flow = Flow {
                from: party,
                to,
                originator: &item.originator,
                origin_agreement: origin_agreement.as_deref(),
                category: item.category,
                purpose: *purpose,
                concepts: &concepts,
                request_kind: kind,
                consents: &consents,
            };
            let d = engine.decide_flow(&flow, now);
            // What the receiver must honour: the agreement's conditions, and for evidence we
            // received, the originator's conditions as well (the earlier limit wins).
            let conditions = d.conditions.map(|mut c| {
                if let Some(theirs) = &item.conditions {
                    c.originator = theirs.originator.clone();
                    c.retain_until = earlier(c.retain_until, theirs.retain_until.clone());
                }
                c.retain_until = earlier(c.retain_until, retain_until.clone());
                c
            });
            Ok((combine(d.decision), conditions))
        }
        Command::ReceiveEvidence { item } => {
            let purpose =
                item.conditions.purposes.first().copied().unwrap_or(Purpose::CriminalInvestigation);
            let concepts = case_concepts(tx, &item.case_id).await?;
            // The answer to a request this node made flows under that request's kind.
            let kind: Option<String> = match &item.request {
                Some(r) => {
                    sqlx::query_scalar("SELECT kind FROM requests WHERE id = $1 AND requested = $2")
                        .bind(r)
                        .bind(item.from.as_str())
                        .fetch_optional(&mut **tx)
                        .await?
                }
                None => None,
            };
            let kind = kind
                .map(|k| parse_text::<RequestKind>("request kind", &k))
                .transpose()?
                .or(item.request_kind);
            let flow = Flow {
                from: &item.from,
                to: party,
                originator: &item.conditions.originator,
                origin_agreement: None,
                category: item.category,
                purpose,
                concepts: &concepts,
                request_kind: kind,
                consents: &[],
            };
            let d = engine.decide_flow(&flow, now);
            if d.decision.is_permit()
                && d.agreement.as_deref() != Some(item.conditions.agreement.as_str())
            {
                let named = &item.conditions.agreement;
                let in_force = d.agreement.unwrap_or_default();
                return Ok((
                    combine(Decision::deny(
                        "conditions.agreement-mismatch",
                        format!(
                            "the evidence travels under `{named}`, but the flow is grounded on `{in_force}`"
                        ),
                    )),
                    None,
                ));
            }
            let mut bound = item.conditions.clone();
            let ours = d.conditions.and_then(|c| c.retain_until);
            bound.retain_until = earlier(bound.retain_until, ours);
            Ok((combine(d.decision), Some(bound)))
        }
        _ => Ok((role, None)),
    }
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

/// Applies a permitted evidence command. Checks run before any write.
pub(crate) async fn apply(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    party: &PartyCode,
    actor: &Actor,
    command: &Command,
    conditions: Option<&Conditions>,
    now: Timestamp,
    index: u64,
) -> Result<(Output, Vec<(String, String)>), GateError> {
    let now_text = format!("{now:.6}");
    let event = |item: &str,
                 seq: u64,
                 kind,
                 sha256: &str,
                 reason: &str,
                 basis: Option<&String>,
                 prev: Option<String>| CustodyEvent {
        item: item.to_owned(),
        seq,
        event: kind,
        party: party.clone(),
        actor: actor.to_string(),
        at: now_text.clone(),
        reason: reason.to_owned(),
        legal_basis: basis.cloned(),
        location: Some(format!("Entente node {party}")),
        tool: TOOL.to_owned(),
        sha256: sha256.to_owned(),
        prev,
    };
    match command {
        Command::AddEvidence { item } => {
            ensure_new(tx, &item.id).await?;
            case_concepts(tx, &item.case_id).await?;
            let deduplicated = upsert_blob(tx, &item.sha256, item.size, &item.blob, index).await?;
            insert_item(
                tx,
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
                    originator: party,
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
                &item.id,
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
            let digest = insert_event(tx, &e, index).await?;
            let mut record = load_item(tx, &item.id).await?;
            record.deduplicated = deduplicated;
            Ok((Output::Evidence(Box::new(record)), vec![("custody".into(), digest)]))
        }
        Command::EvidenceCustody { id, event: kind, reason, legal_basis } => {
            let item = live_item(tx, id).await?;
            let (seq, prev) = next_link(&item);
            let e = event(id, seq, *kind, &item.sha256, reason, legal_basis.as_ref(), prev);
            let digest = insert_event(tx, &e, index).await?;
            let mut record = item;
            record.chain.push(ChainEvent { event: e, ledger_index: Some(index) });
            Ok((Output::Evidence(Box::new(record)), vec![("custody".into(), digest)]))
        }
        Command::ExportEvidence { id, to, request, .. } => {
            let item = live_item(tx, id).await?;
            let Some(conditions) = conditions else {
                return Err(GateError::Invalid("a permitted export has no conditions".into()));
            };
            let (seq, prev) = next_link(&item);
            let reason = format!("released to {to} in an evidence package");
            let e =
                event(id, seq, CustodyKind::Exported, &item.sha256, &reason, Some(request), prev);
            let digest = insert_event(tx, &e, index).await?;
            // The record as loaded, with the event just written (no second read).
            let mut record = item;
            record.chain.push(ChainEvent { event: e, ledger_index: Some(index) });
            record.conditions = Some(conditions.clone());
            Ok((Output::Evidence(Box::new(record)), vec![("custody".into(), digest)]))
        }
        Command::ReceiveEvidence { item } => {
            ensure_new(tx, &item.id).await?;
            let Some(bound) = conditions else {
                return Err(GateError::Invalid("a permitted receipt has no conditions".into()));
            };
            let deduplicated = upsert_blob(tx, &item.sha256, item.size, &item.blob, index).await?;
            insert_item(
                tx,
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
                &item.id,
                item.chain.len() as u64,
                CustodyKind::Received,
                &item.sha256,
                &reason,
                basis.as_ref(),
                prev,
            );
            let digest = insert_event(tx, &e, index).await?;
            let mut record = load_item(tx, &item.id).await?;
            record.deduplicated = deduplicated;
            Ok((Output::Evidence(Box::new(record)), vec![("custody".into(), digest)]))
        }
        Command::ReadEvidence { id } => {
            Ok((Output::Evidence(Box::new(load_item(tx, id).await?)), Vec::new()))
        }
        Command::DestroyEvidence { id } => {
            let item = live_item(tx, id).await?;
            let expired = item
                .retain_until
                .as_deref()
                .and_then(|u| u.parse::<Timestamp>().ok())
                .is_some_and(|u| u <= now);
            if !expired {
                return Err(GateError::Conflict(format!(
                    "evidence `{id}` may be kept until {}; it is not due for destruction",
                    item.retain_until.as_deref().unwrap_or("no limit")
                )));
            }
            let (seq, prev) = next_link(&item);
            let reason = format!(
                "retention limit {} passed: data key destroyed",
                item.retain_until.as_deref().unwrap_or("-")
            );
            let basis = item.conditions.as_ref().map(|c| c.agreement.clone());
            let e =
                event(id, seq, CustodyKind::Destroyed, &item.sha256, &reason, basis.as_ref(), prev);
            let digest = insert_event(tx, &e, index).await?;
            sqlx::query("UPDATE evidence_items SET destroyed_at = $1 WHERE id = $2")
                .bind(&now_text)
                .bind(id)
                .execute(&mut **tx)
                .await?;
            // The data key goes when no live item needs the content any more.
            let live: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM evidence_items WHERE sha256 = $1 AND destroyed_at IS NULL",
            )
            .bind(&item.sha256)
            .fetch_optional(&mut **tx)
            .await?;
            let mut shredded = None;
            if live.is_none() {
                shredded =
                    sqlx::query_scalar("SELECT blob_name FROM evidence_blobs WHERE sha256 = $1")
                        .bind(&item.sha256)
                        .fetch_optional(&mut **tx)
                        .await?;
                sqlx::query(
                    "UPDATE evidence_blobs SET wrapped_key = NULL, destroyed_at = $1 WHERE sha256 = $2",
                )
                .bind(&now_text)
                .bind(&item.sha256)
                .execute(&mut **tx)
                .await?;
            }
            let mut record = load_item(tx, id).await?;
            record.shredded_blob = shredded;
            Ok((
                Output::Evidence(Box::new(record)),
                vec![
                    ("custody".into(), digest),
                    ("content".into(), format!("sha256:{}", item.sha256)),
                ],
            ))
        }
        _ => Err(GateError::Invalid("not an evidence command".into())),
    }
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
    serde_json::to_string(v).map_err(|e| GateError::Invalid(e.to_string()))
}

async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    e: &CustodyEvent,
    index: u64,
) -> Result<String, GateError> {
    let bytes = to_canonical_vec(e).map_err(|e| GateError::Invalid(e.to_string()))?;
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
    let destroyed_at: Option<String> = row.try_get(13)?;
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
        retain_until: row.try_get(12)?,
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
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, retain_until FROM evidence_items WHERE destroyed_at IS NULL AND retain_until IS NOT NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut due = Vec::new();
        for r in &rows {
            let until: String = r.try_get(1)?;
            let until: Timestamp = until
                .parse()
                .map_err(|e| StoreError::Inconsistent(format!("retain_until `{until}`: {e}")))?;
            if until <= now {
                due.push(r.try_get(0)?);
            }
        }
        Ok(due)
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
    pub async fn evidence_of_case(&self, case_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM evidence_items WHERE case_id = $1 AND destroyed_at IS NULL ORDER BY id",
        )
        .bind(case_id)
        .fetch_all(&self.pool)
        .await?)
    }
}
