//! Cross-border requests in the gate, event-sourced: the row holds what the request was
//! drafted as; its events, replayed through `entente_policy::request` under its agreement,
//! give its state and legal clocks. Private to the crate; reached only from [`crate::gate`].

use crate::gate::{Command, GateError, Output};
use crate::store::{StoreError, to_i64};
use entente_core::PartyCode;
use entente_policy::agreement::RequestKind;
use entente_policy::engine::Engine;
use entente_policy::request::{Request, RequestEvent};
use jiff::Timestamp;
use sqlx::Row;

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

/// Applies a permitted request command.
pub(crate) async fn apply(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    engine: &Engine,
    party: &PartyCode,
    command: &Command,
    now: Timestamp,
    index: u64,
) -> Result<(Output, Vec<(String, String)>), GateError> {
    match command {
        Command::CreateRequest { id, case_id, kind, agreement, to, emergency, provisions } => {
            let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM requests WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut **tx)
                .await?;
            if exists.is_some() {
                return Err(GateError::Conflict(format!("request `{id}` already exists")));
            }
            let case: Option<i64> = sqlx::query_scalar("SELECT 1 FROM cases WHERE id = $1")
                .bind(case_id)
                .fetch_optional(&mut **tx)
                .await?;
            if case.is_none() {
                return Err(GateError::NotFound(format!("case `{case_id}`")));
            }
            let a = engine.agreement(agreement).ok_or_else(|| {
                let loaded: Vec<&str> = engine.agreements().iter().map(|a| a.id.as_str()).collect();
                GateError::Invalid(format!(
                    "agreement `{agreement}` is not loaded; loaded: {}",
                    loaded.join(", ")
                ))
            })?;
            // The legal basis: in force now, binding both parties, providing this kind.
            let mut request = Request::new(*kind, a, party.clone(), to.clone(), *emergency, now)
                .map_err(|e| GateError::Invalid(e.to_string()))?;
            request.id = id.clone();
            sqlx::query(
                "INSERT INTO requests (id, case_id, kind, agreement, requesting, requested, emergency, created_at, ledger_index, provisions) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(id)
            .bind(case_id)
            .bind(kind.as_str())
            .bind(agreement)
            .bind(party.as_str())
            .bind(to.as_str())
            .bind(i64::from(*emergency))
            .bind(now.to_string())
            .bind(to_i64(index)?)
            .bind(serde_json::to_string(provisions).map_err(|e| GateError::Invalid(e.to_string()))?)
            .execute(&mut **tx)
            .await?;
            Ok((Output::Request(Box::new(request)), Vec::new()))
        }
        Command::TransitionRequest { id, event } => {
            let mut request = load(tx, engine, id).await?;
            let agreement = engine.agreement(&request.agreement).ok_or_else(|| {
                GateError::Invalid(format!("agreement `{}` is not loaded", request.agreement))
            })?;
            request
                .apply(event.clone(), now, agreement)
                .map_err(|e| GateError::Conflict(e.to_string()))?;
            let seq = request.history.len().saturating_sub(1);
            let grounds = serde_json::to_string(event.grounds())
                .map_err(|e| GateError::Invalid(e.to_string()))?;
            sqlx::query(
                "INSERT INTO request_events (request_id, seq, event, grounds, at, ledger_index) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(i64::try_from(seq).map_err(|_| GateError::Invalid("too many events".into()))?)
            .bind(event.name())
            .bind(grounds)
            .bind(now.to_string())
            .bind(to_i64(index)?)
            .execute(&mut **tx)
            .await?;
            Ok((Output::Request(Box::new(request)), Vec::new()))
        }
        Command::ReadRequest { id } => {
            Ok((Output::Request(Box::new(load(tx, engine, id).await?)), Vec::new()))
        }
        Command::ReadAlerts => {
            let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM requests ORDER BY id")
                .fetch_all(&mut **tx)
                .await?;
            let mut open = Vec::new();
            for id in ids {
                let r = load(tx, engine, &id).await?;
                if r.state.is_open() {
                    open.push(r);
                }
            }
            Ok((Output::Requests(open), Vec::new()))
        }
        _ => Err(GateError::Invalid("not a request command".into())),
    }
}
