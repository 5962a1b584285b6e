//! Data items and the flows between parties: the part of the gate that puts agreement
//! policy to work. Private to the crate; reached only from [`crate::gate`].
//!
//! A flow is decided in three steps that all happen inside the gate's transaction:
//! the facts are read (the datum, its case, its conditions, the consents recorded), the
//! agreement engine decides (pure), and the effect is applied (minimize, write the outbox
//! message with the conditions that travel, or record a received datum with its conditions).

use crate::gate::{Command, GateError, Output};
use crate::store::{StoreError, to_i64, to_u64};
use entente_core::canonical::canonical_digest;
use entente_core::{Actor, Decision, Obligation, PartyCode};
use entente_policy::agreement::{DataCategory, Purpose};
use entente_policy::engine::{Conditions, Engine, Flow};
use entente_policy::minimize::{PseudonymKey, minimize};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::Row;

/// A datum as it travels to another party: minimized content and the conditions that bind
/// the receiver.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatumMessage {
    /// The datum's id (kept across parties).
    pub id: String,
    /// The case it serves (as the sender names it).
    pub case_id: String,
    /// Its category.
    pub category: DataCategory,
    /// Offence concepts of the case.
    pub concepts: Vec<String>,
    /// The purpose it is sent for.
    pub purpose: Purpose,
    /// The minimized content.
    pub content: Map<String, Value>,
    /// The conditions that travel with it.
    pub conditions: Conditions,
    /// The transforms applied before it left (field and transform names only).
    pub minimized: Vec<String>,
}

/// An originator's consent to the onward transfer of one datum to one party.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentMessage {
    /// The datum.
    pub datum_id: String,
    /// The party it may now be passed to.
    pub recipient: PartyCode,
}

/// A message for a partner, written to the outbox in the gate's transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Outbox row id.
    pub id: i64,
    /// Sequence number among the messages to this recipient (from 1).
    pub seq: u64,
    /// The receiving party.
    pub recipient: PartyCode,
    /// `datum` or `consent`.
    pub kind: String,
    /// The payload (JSON).
    pub payload: Value,
}

/// What the gate reads before deciding a flow.
#[derive(Clone, Debug)]
pub(crate) struct Facts {
    category: DataCategory,
    originator: PartyCode,
    origin_agreement: Option<String>,
    concepts: Vec<String>,
    consents: Vec<PartyCode>,
    content: Option<Map<String, Value>>,
    case_id: String,
}

fn parse_kebab<T: for<'de> Deserialize<'de>>(what: &str, s: &str) -> Result<T, StoreError> {
    serde_json::from_value(Value::String(s.to_owned()))
        .map_err(|_| StoreError::Inconsistent(format!("stored {what} `{s}` is not known")))
}

fn kebab<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// Reads the facts a flow decision needs (for commands that are flows).
pub(crate) async fn load_facts(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    command: &Command,
) -> Result<Option<Facts>, GateError> {
    match command {
        Command::ShareDatum { id, to, .. } => {
            let row = sqlx::query(
                "SELECT d.category, d.originator, d.origin_agreement, d.content, d.case_id, d.destroyed_at, \
                 COALESCE(c.concepts, d.concepts) FROM data_items d LEFT JOIN cases c ON c.id = d.case_id WHERE d.id = $1",
            )
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| GateError::NotFound(format!("datum `{id}`")))?;
            let destroyed: Option<String> = row.try_get(5)?;
            if destroyed.is_some() {
                return Err(GateError::Conflict(format!(
                    "datum `{id}` was destroyed (retention expired)"
                )));
            }
            let content: Option<String> = row.try_get(3)?;
            let content = content
                .map(|c| serde_json::from_str::<Map<String, Value>>(&c))
                .transpose()
                .map_err(|e| StoreError::Inconsistent(format!("datum {id} content: {e}")))?;
            let concepts: String = row.try_get(6)?;
            let consents: Vec<String> = sqlx::query_scalar(
                "SELECT given_by FROM consents WHERE datum_id = $1 AND recipient = $2",
            )
            .bind(id)
            .bind(to.as_str())
            .fetch_all(&mut **tx)
            .await?;
            let category: String = row.try_get(0)?;
            let originator: String = row.try_get(1)?;
            Ok(Some(Facts {
                category: parse_kebab("category", &category)?,
                originator: originator
                    .parse()
                    .map_err(|e| StoreError::Inconsistent(format!("{e}")))?,
                origin_agreement: row.try_get(2)?,
                concepts: serde_json::from_str(&concepts)
                    .map_err(|e| StoreError::Inconsistent(format!("case concepts: {e}")))?,
                consents: consents.iter().filter_map(|c| c.parse().ok()).collect(),
                content,
                case_id: row.try_get(4)?,
            }))
        }
        Command::ReceiveDatum { message } => Ok(Some(Facts {
            category: message.category,
            originator: message.conditions.originator.clone(),
            origin_agreement: None,
            concepts: message.concepts.clone(),
            consents: Vec::new(),
            content: Some(message.content.clone()),
            case_id: message.case_id.clone(),
        })),
        Command::ReceiveConsent { message } => {
            let row = sqlx::query("SELECT originator, received_from FROM data_items WHERE id = $1")
                .bind(&message.datum_id)
                .fetch_optional(&mut **tx)
                .await?
                .ok_or_else(|| GateError::NotFound(format!("datum `{}`", message.datum_id)))?;
            let originator: String = row.try_get(0)?;
            Ok(Some(Facts {
                category: DataCategory::CaseInformation,
                originator: originator
                    .parse()
                    .map_err(|e| StoreError::Inconsistent(format!("{e}")))?,
                origin_agreement: None,
                concepts: Vec::new(),
                consents: Vec::new(),
                content: None,
                case_id: String::new(),
            }))
        }
        _ => Ok(None),
    }
}

/// Decides a flow with the agreement engine; `role` is the role decision already taken.
pub(crate) fn decide(
    engine: &Engine,
    party: &PartyCode,
    actor: &Actor,
    command: &Command,
    facts: &Facts,
    role: Decision,
    now: Timestamp,
) -> (Decision, Option<Conditions>) {
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
        Command::ShareDatum { to, purpose, request_kind, .. } => {
            let flow = Flow {
                from: party,
                to,
                originator: &facts.originator,
                origin_agreement: facts.origin_agreement.as_deref(),
                category: facts.category,
                purpose: *purpose,
                concepts: &facts.concepts,
                request_kind: *request_kind,
                consents: &facts.consents,
            };
            let d = engine.decide_flow(&flow, now);
            (combine(d.decision), d.conditions)
        }
        Command::ReceiveDatum { message } => {
            let Actor::Peer { party: sender } = actor else {
                return (Decision::deny("peer.only", "only a partner node delivers data"), None);
            };
            // The datum must arrive with the conditions of an agreement that lets it flow
            // from the sender to this party now.
            let flow = Flow {
                from: sender,
                to: party,
                originator: &message.conditions.originator,
                origin_agreement: None,
                category: message.category,
                purpose: message.purpose,
                concepts: &message.concepts,
                request_kind: None,
                consents: &[],
            };
            let d = engine.decide_flow(&flow, now);
            if d.decision.is_permit()
                && d.agreement.as_deref() != Some(message.conditions.agreement.as_str())
            {
                let named = &message.conditions.agreement;
                let in_force = d.agreement.unwrap_or_default();
                return (
                    combine(Decision::deny(
                        "conditions.agreement-mismatch",
                        format!(
                            "the datum travels under `{named}`, but the flow is grounded on `{in_force}`"
                        ),
                    )),
                    None,
                );
            }
            // The receiver binds itself to the sender's conditions, and keeps the data no longer
            // than its own copy of the agreement allows either: the earlier limit wins.
            let mut bound = message.conditions.clone();
            let ours = d.conditions.and_then(|c| c.retain_until);
            bound.retain_until = earlier(bound.retain_until, ours);
            (combine(d.decision), Some(bound))
        }
        Command::ReceiveConsent { .. } => {
            let Actor::Peer { party: sender } = actor else {
                return (
                    Decision::deny("peer.only", "only a partner node delivers consents"),
                    None,
                );
            };
            if sender != &facts.originator {
                return (
                    combine(Decision::deny(
                        "consent.originator-only",
                        format!(
                            "only {} (the originator) can consent; {sender} cannot",
                            facts.originator
                        ),
                    )),
                    None,
                );
            }
            (
                combine(Decision::permit(
                    "consent.from-originator",
                    format!("{sender} originated the datum and consents"),
                    Vec::new(),
                )),
                None,
            )
        }
        _ => (role, None),
    }
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
    canonical_digest(v).map_err(|e| GateError::Invalid(e.to_string()))
}

/// Applies a permitted flow command.
#[expect(clippy::too_many_arguments, reason = "the gate passes its whole state for one effect")]
pub(crate) async fn apply(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    engine: &Engine,
    party: &PartyCode,
    secret: &[u8; 32],
    actor: &Actor,
    command: &Command,
    facts: Option<&Facts>,
    decision: &Decision,
    conditions: Option<&Conditions>,
    now: Timestamp,
    index: u64,
) -> Result<(Output, Vec<(String, String)>), GateError> {
    let now_text = format!("{now:.6}");
    match command {
        Command::AddDatum { id, case_id, category, content } => {
            ensure_new(tx, id).await?;
            let sha = digest(content)?;
            // This party's case, or a partner-led case it is a member of (its mirror).
            let concepts: Option<String> = sqlx::query_scalar(
                "SELECT concepts FROM cases WHERE id = $1 UNION ALL SELECT concepts FROM case_mirrors WHERE case_id = $1",
            )
            .bind(case_id)
            .fetch_optional(&mut **tx)
            .await?;
            let Some(concepts) = concepts else {
                return Err(GateError::NotFound(format!("case `{case_id}`")));
            };
            let item =
                Item { id, case_id, category: *category, concepts: &concepts, originator: party };
            insert_item(tx, &item, None, None, content, &sha, None, index).await?;
            crate::redress::index_datum(tx, secret, id, content).await?;
            Ok((Output::Done, vec![("content".into(), sha)]))
        }
        Command::ShareDatum { id, to, purpose, .. } => {
            let (Some(facts), Some(conditions)) = (facts, conditions) else {
                return Err(GateError::Invalid("a permitted share has no conditions".into()));
            };
            crate::cases::check_share(tx, &facts.case_id, to).await?;
            let content = facts.content.clone().unwrap_or_default();
            let agreement = engine.agreement(&conditions.agreement).ok_or_else(|| {
                GateError::Invalid(format!("agreement `{}` is not loaded", conditions.agreement))
            })?;
            let key = PseudonymKey::derive(secret, &agreement.id);
            let minimized = minimize(&content, facts.category, &agreement.minimization, &key)
                .map_err(|e| {
                    GateError::Invalid(format!(
                        "datum `{id}` cannot leave as the agreement requires: {e}"
                    ))
                })?;
            // Invariant: every minimization the decision requires was applied (or its field is absent).
            let missed = decision.obligations.iter().find_map(|o| match o {
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
                id: id.clone(),
                case_id: facts.case_id.clone(),
                category: facts.category,
                concepts: facts.concepts.clone(),
                purpose: *purpose,
                content: minimized.datum,
                conditions: conditions.clone(),
                minimized: minimized
                    .applied
                    .iter()
                    .map(|a| {
                        format!(
                            "{}:{}",
                            a.field,
                            entente_policy::minimize::transform_name(a.transform)
                        )
                    })
                    .collect(),
            };
            let payload =
                serde_json::to_value(&message).map_err(|e| GateError::Invalid(e.to_string()))?;
            let sent = digest(&message)?;
            let (out_id, seq) = outbox(tx, to, "datum", &payload, &now_text, index).await?;
            Ok((
                Output::Message(OutboxMessage {
                    id: out_id,
                    seq,
                    recipient: to.clone(),
                    kind: "datum".into(),
                    payload,
                }),
                vec![("sent".into(), sent), ("conditions".into(), digest(conditions)?)],
            ))
        }
        Command::ReceiveDatum { message } => {
            let sender = match actor {
                Actor::Peer { party } => Some(party.clone()),
                _ => None,
            };
            let bound = conditions.unwrap_or(&message.conditions);
            let conditions_json =
                serde_json::to_string(bound).map_err(|e| GateError::Invalid(e.to_string()))?;
            let sha = digest(&message.content)?;
            let concepts = serde_json::to_string(&message.concepts)
                .map_err(|e| GateError::Invalid(e.to_string()))?;
            let item = Item {
                id: &message.id,
                case_id: &message.case_id,
                category: message.category,
                concepts: &concepts,
                originator: &message.conditions.originator,
            };
            insert_item(
                tx,
                &item,
                sender.as_ref(),
                Some((&message.conditions.agreement, &conditions_json)),
                &message.content,
                &sha,
                bound.retain_until.as_deref(),
                index,
            )
            .await?;
            crate::redress::index_datum(tx, secret, &message.id, &message.content).await?;
            Ok((
                Output::Done,
                vec![("content".into(), sha), ("conditions".into(), digest(&message.conditions)?)],
            ))
        }
        Command::GiveConsent { datum_id, holder, recipient } => {
            let row: Option<String> =
                sqlx::query_scalar("SELECT originator FROM data_items WHERE id = $1")
                    .bind(datum_id)
                    .fetch_optional(&mut **tx)
                    .await?;
            match row {
                None => return Err(GateError::NotFound(format!("datum `{datum_id}`"))),
                Some(o) if o != party.as_str() => {
                    return Err(GateError::Conflict(format!(
                        "datum `{datum_id}` originated at {o}; only the originator consents"
                    )));
                }
                Some(_) => {}
            }
            let message =
                ConsentMessage { datum_id: datum_id.clone(), recipient: recipient.clone() };
            let payload =
                serde_json::to_value(&message).map_err(|e| GateError::Invalid(e.to_string()))?;
            let (out_id, seq) = outbox(tx, holder, "consent", &payload, &now_text, index).await?;
            Ok((
                Output::Message(OutboxMessage {
                    id: out_id,
                    seq,
                    recipient: holder.clone(),
                    kind: "consent".into(),
                    payload,
                }),
                vec![("consent".into(), digest(&message)?)],
            ))
        }
        Command::ReceiveConsent { message } => {
            let by = facts.map(|f| f.originator.to_string()).unwrap_or_default();
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM consents WHERE datum_id = $1 AND recipient = $2")
                    .bind(&message.datum_id)
                    .bind(message.recipient.as_str())
                    .fetch_optional(&mut **tx)
                    .await?;
            if exists.is_none() {
                sqlx::query("INSERT INTO consents (datum_id, recipient, given_by, ledger_index) VALUES ($1, $2, $3, $4)")
                    .bind(&message.datum_id)
                    .bind(message.recipient.as_str())
                    .bind(by)
                    .bind(to_i64(index)?)
                    .execute(&mut **tx)
                    .await?;
            }
            Ok((Output::Done, vec![("consent".into(), digest(message)?)]))
        }
        Command::DestroyDatum { id } => {
            let row = sqlx::query(
                "SELECT retain_until, destroyed_at, content_sha256 FROM data_items WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| GateError::NotFound(format!("datum `{id}`")))?;
            let until: Option<String> = row.try_get(0)?;
            let destroyed: Option<String> = row.try_get(1)?;
            let sha: String = row.try_get(2)?;
            if destroyed.is_some() {
                return Err(GateError::Conflict(format!("datum `{id}` is already destroyed")));
            }
            let expired = until
                .as_deref()
                .and_then(|u| u.parse::<Timestamp>().ok())
                .is_some_and(|u| u <= now);
            if !expired {
                return Err(GateError::Conflict(format!(
                    "datum `{id}` may be kept until {}; it is not due for destruction",
                    until.as_deref().unwrap_or("no limit")
                )));
            }
            sqlx::query("UPDATE data_items SET content = NULL, destroyed_at = $1 WHERE id = $2")
                .bind(&now_text)
                .bind(id)
                .execute(&mut **tx)
                .await?;
            Ok((Output::Done, vec![("content".into(), sha)]))
        }
        _ => Err(GateError::Invalid("not a flow command".into())),
    }
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
    let content = serde_json::to_string(content).map_err(|e| GateError::Invalid(e.to_string()))?;
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
    kind: &str,
    payload: &Value,
    now: &str,
    index: u64,
) -> Result<(i64, u64), GateError> {
    let seq = crate::federation::next_seq(tx, recipient).await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO outbox (recipient, kind, payload, created_at, ledger_index, seq) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(recipient.as_str())
    .bind(kind)
    .bind(payload.to_string().into_bytes())
    .bind(now)
    .bind(to_i64(index)?)
    .bind(seq)
    .fetch_one(&mut **tx)
    .await?;
    Ok((id, to_u64(seq)?))
}
