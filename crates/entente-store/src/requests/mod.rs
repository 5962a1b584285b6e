//! Cross-border requests in the gate, event-sourced: the row holds what the request was
//! drafted as; its events, replayed through `entente_policy::request` under its agreement,
//! give its state and legal clocks. Private to the crate; reached only from [`crate::gate`].
//!
//! Requests travel: submitting one writes a `request` message (the draft and its events) to
//! the outbox for the requested party, in the same transaction; from then on every event
//! either side records is written as a `request-event` message for the other, and a node
//! applies a partner's event only if that party's side of the request records it (the
//! requested party receives, reviews, approves, refuses, executes, answers, suspends and
//! resumes; the requesting party submits, withdraws, extends, closes; either lets it expire)
//! and only in sequence, with the instant the other side recorded, so that both copies show
//! the same state and the same clocks.

mod commands;

pub use commands::{
    CreateRequest, ReadAlerts, ReadRequest, ReceiveRequest, ReceiveRequestEvent, TransitionRequest,
};
pub(crate) use commands::{Terms as RequestTerms, payload as request_payload};

use crate::gate::GateError;
use crate::store::{StoreError, to_i64};
use entente_core::{PartyCode, Stamp};
use entente_policy::agreement::RequestKind;
use entente_policy::engine::Engine;
use entente_policy::request::{Request, RequestEvent};
use entente_wire::{EventRecord, MessageKind, RequestEventMessage, RequestMessage};
use jiff::Timestamp;
use sqlx::Row;

use entente_policy::request::Side;

fn side_of(event: &RequestEvent) -> Side {
    event.side()
}

pub(crate) fn validate_message(m: &RequestMessage) -> Result<(), GateError> {
    entente_core::ids::check_identifier("request id", &m.id).map_err(GateError::Invalid)?;
    entente_core::ids::check_identifier("case id", &m.case_id).map_err(GateError::Invalid)?;
    entente_core::ids::check_identifier("agreement id", &m.agreement)
        .map_err(GateError::Invalid)?;
    if m.events.is_empty() || m.events.len() > 50 || m.provisions.len() > 20 {
        return Err(GateError::Invalid(
            "a submitted request carries 1 to 50 events and at most 20 provisions".into(),
        ));
    }
    Ok(())
}

async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    seq: usize,
    event: &RequestEvent,
    at: Timestamp,
    index: u64,
) -> Result<(), GateError> {
    let grounds =
        serde_json::to_string(event.grounds()).map_err(|e| GateError::Encoding(e.to_string()))?;
    sqlx::query(
        "INSERT INTO request_events (request_id, seq, event, grounds, at, ledger_index) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(i64::try_from(seq).map_err(|_| GateError::Invalid("too many events".into()))?)
    .bind(event.name())
    .bind(grounds)
    .bind(at.to_string())
    .bind(to_i64(index)?)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn record_of(seq: usize, event: &RequestEvent, at: Timestamp) -> EventRecord {
    EventRecord {
        seq: seq as u64,
        event: event.name().to_owned(),
        grounds: event.grounds().to_vec(),
        at: Stamp::new(at),
    }
}

fn parse_record(r: &EventRecord) -> Result<(RequestEvent, Timestamp), GateError> {
    let event = RequestEvent::from_name(&r.event, r.grounds.clone())
        .ok_or_else(|| GateError::Invalid(format!("unknown request event `{}`", r.event)))?;
    Ok((event, r.at.timestamp()))
}

/// After `event` was recorded on this node: the message for the other party, if the request
/// travels (it has been submitted) and this node recorded the event itself.
async fn mirror(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    party: &PartyCode,
    request: &Request,
    event: &RequestEvent,
    at: Timestamp,
    now_text: &str,
    index: u64,
) -> Result<(), GateError> {
    let seq = request.history.len().saturating_sub(1);
    if matches!(event, RequestEvent::Submit) && &request.from == party {
        let row = sqlx::query("SELECT case_id, provisions FROM requests WHERE id = $1")
            .bind(&request.id)
            .fetch_one(&mut **tx)
            .await?;
        let case_id: String = row.try_get(0)?;
        let provisions: Option<String> = row.try_get(1)?;
        let provisions: Vec<String> = provisions
            .map(|p| serde_json::from_str(&p))
            .transpose()
            .map_err(|e| StoreError::Inconsistent(format!("request provisions: {e}")))?
            .unwrap_or_default();
        let message = RequestMessage {
            id: request.id.clone(),
            case_id,
            kind: request.kind,
            agreement: request.agreement.clone(),
            requesting: request.from.clone(),
            requested: request.to.clone(),
            emergency: request.emergency,
            created_at: Stamp::new(request.created_at),

            provisions,
            events: request
                .history
                .iter()
                .enumerate()
                .map(|(i, (e, t))| record_of(i, e, *t))
                .collect(),
        };
        let payload =
            serde_json::to_value(&message).map_err(|e| GateError::Encoding(e.to_string()))?;
        crate::flows::outbox(tx, &request.to, MessageKind::Request, &payload, now_text, index)
            .await?;
        return Ok(());
    }
    let submitted = request.history.iter().any(|(e, _)| matches!(e, RequestEvent::Submit));
    if submitted {
        let other = if &request.from == party { &request.to } else { &request.from };
        let message =
            RequestEventMessage { id: request.id.clone(), record: record_of(seq, event, at) };
        let payload =
            serde_json::to_value(&message).map_err(|e| GateError::Encoding(e.to_string()))?;
        crate::flows::outbox(tx, other, MessageKind::RequestEvent, &payload, now_text, index)
            .await?;
    }
    Ok(())
}

fn kind_from(s: &str) -> Result<RequestKind, StoreError> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| StoreError::Inconsistent(format!("stored request kind `{s}` is not known")))
}

/// Rebuilds request `id` from its row and events.
pub(crate) async fn load(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    engine: &Engine,
    id: &str,
) -> Result<Request, GateError> {
    let row = sqlx::query(
        "SELECT kind, agreement, requesting, requested, emergency, created_at FROM requests WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| GateError::NotFound(format!("request `{id}`")))?;
    let kind: String = row.try_get(0)?;
    let agreement_id: String = row.try_get(1)?;
    let from: String = row.try_get(2)?;
    let to: String = row.try_get(3)?;
    let emergency: i64 = row.try_get(4)?;
    let created: String = row.try_get(5)?;
    let bad = |what: &str| StoreError::Inconsistent(format!("request {id}: {what}"));
    let agreement = engine
        .agreement(&agreement_id)
        .ok_or_else(|| bad(&format!("agreement `{agreement_id}` is no longer loaded")))?;
    let created: Timestamp = created.parse().map_err(|_| bad("created_at"))?;
    let mut request = Request::new(
        kind_from(&kind)?,
        agreement,
        from.parse::<PartyCode>().map_err(|_| bad("requesting party"))?,
        to.parse::<PartyCode>().map_err(|_| bad("requested party"))?,
        emergency != 0,
        created,
    )
    .map_err(|e| bad(&e.to_string()))?;
    request.id = id.to_owned();
    let events = sqlx::query(
        "SELECT event, grounds, at FROM request_events WHERE request_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    for e in &events {
        let name: String = e.try_get(0)?;
        let grounds: String = e.try_get(1)?;
        let at: String = e.try_get(2)?;
        let grounds: Vec<String> =
            serde_json::from_str(&grounds).map_err(|_| bad("event grounds"))?;
        let event = RequestEvent::from_name(&name, grounds)
            .ok_or_else(|| bad(&format!("event `{name}`")))?;
        let at: Timestamp = at.parse().map_err(|_| bad("event time"))?;
        request.apply(event, at, agreement).map_err(|e| bad(&format!("replaying {name}: {e}")))?;
    }
    Ok(request)
}
