//! Cases shared across borders in the gate: the members of a case (the node's own party as
//! `lead`, partner parties added under a JIT agreement) and the case's status (the case, its
//! members, and a timeline of every recorded action on it). Private to the crate; reached only
//! from [`crate::gate`].
//!
//! Visibility: a partner node (`Actor::Peer`) sees the status of a case only if its party is
//! a member. For any other party the gate answers exactly as for a case that does not exist
//! (`GateError::NotFound` with the same message), before anything is recorded, so neither the
//! answer nor the ledger tells that party the case exists.

use crate::gate::{Command, GateError, Output};
use crate::store::{CaseRecord, StoreError, to_i64, to_u64};
use entente_core::ledger::LedgerEntry;
use entente_core::{Actor, PartyCode};
use entente_policy::agreement::AgreementKind;
use entente_policy::engine::Engine;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;
use sqlx::Row;
use std::collections::HashSet;

/// A party that shares a case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CaseMember {
    /// The member party.
    pub party: String,
    /// `lead` (the party that opened the case) or `member`.
    pub role: String,
    /// The JIT agreement the party was added under (none for the lead).
    pub agreement: Option<String>,
    /// When it became a member (RFC 3339).
    pub added_at: String,
    /// Ledger index of the entry that recorded it.
    pub ledger_index: u64,
}

/// One recorded action on a case, its requests or its data items.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    /// Ledger index.
    pub index: u64,
    /// When (RFC 3339).
    pub time: String,
    /// Who asked.
    pub actor: String,
    /// The action (`case.open`, `datum.share`, …).
    pub action: String,
    /// `permit` or `deny`.
    pub decision: String,
}

/// A case's status: the case, its members and its timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CaseStatus {
    /// The case.
    pub case: CaseRecord,
    /// Its members, the lead first.
    pub members: Vec<CaseMember>,
    /// Every recorded action on it, oldest first.
    pub timeline: Vec<TimelineEntry>,
}

fn not_found(id: &str) -> GateError {
    GateError::NotFound(format!("case `{id}`"))
}

/// Reads case `id`.
pub(crate) async fn load_case(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
) -> Result<CaseRecord, GateError> {
    let row = sqlx::query(
        "SELECT id, title, concepts, opened_by, opened_at, ledger_index FROM cases WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| not_found(id))?;
    let concepts: String = row.try_get(2)?;
    Ok(CaseRecord {
        id: row.try_get(0)?,
        title: row.try_get(1)?,
        concepts: serde_json::from_str(&concepts)
            .map_err(|e| StoreError::Inconsistent(format!("case {id} concepts: {e}")))?,
        opened_by: row.try_get(3)?,
        opened_at: row.try_get(4)?,
        ledger_index: to_u64(row.try_get(5)?)?,
    })
}

async fn members(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
) -> Result<Vec<CaseMember>, GateError> {
    let rows = sqlx::query(
        "SELECT party, role, agreement, added_at, ledger_index FROM case_members \
         WHERE case_id = $1 ORDER BY ledger_index, party",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(CaseMember {
            party: r.try_get(0)?,
            role: r.try_get(1)?,
            agreement: r.try_get(2)?,
            added_at: r.try_get(3)?,
            ledger_index: to_u64(r.try_get(4)?)?,
        });
    }
    Ok(out)
}

/// The timeline of case `id`: the entries whose subjects name the case, one of its requests
/// or one of its data items. `pending` are the entries of the current batch, not yet written.
///
/// Every ledger entry is read and filtered here: fine at the size of a node's ledger today;
/// an index of subjects (a table written with the entries) replaces the scan when it is not.
async fn timeline(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    pending: &[(u64, Vec<u8>)],
) -> Result<Vec<TimelineEntry>, GateError> {
    let mut wanted: HashSet<String> = HashSet::from([format!("case:{id}")]);
    let requests: Vec<String> = sqlx::query_scalar("SELECT id FROM requests WHERE case_id = $1")
        .bind(id)
        .fetch_all(&mut **tx)
        .await?;
    wanted.extend(requests.into_iter().map(|r| format!("request:{r}")));
    let data: Vec<String> = sqlx::query_scalar("SELECT id FROM data_items WHERE case_id = $1")
        .bind(id)
        .fetch_all(&mut **tx)
        .await?;
    wanted.extend(data.into_iter().map(|d| format!("datum:{d}")));
    let rows = sqlx::query("SELECT idx, entry FROM ledger_entries ORDER BY idx")
        .fetch_all(&mut **tx)
        .await?;
    let mut stored = Vec::with_capacity(rows.len());
    for r in &rows {
        stored.push((to_u64(r.try_get(0)?)?, r.try_get::<Vec<u8>, _>(1)?));
    }
    let mut out = Vec::new();
    for (index, bytes) in stored.iter().chain(pending) {
        let entry = LedgerEntry::decode(bytes)
            .map_err(|e| StoreError::Inconsistent(format!("ledger entry {index}: {e}")))?;
        if entry.subjects.iter().any(|s| wanted.contains(&s.to_string())) {
            out.push(TimelineEntry {
                index: *index,
                time: entry.time.clone(),
                actor: entry.actor.to_string(),
                action: entry.action.to_string(),
                decision: match entry.decision {
                    entente_core::decision::Outcome::Permit => "permit".into(),
                    entente_core::decision::Outcome::Deny => "deny".into(),
                },
            });
        }
    }
    Ok(out)
}

/// Checks, before anything is recorded, that `actor` may learn that case `id` exists: a peer
/// only if its party is a member; users and the operator of this node always (their role
/// was decided already). Anything else gets the answer given for a case that does not exist.
async fn check_visible(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    actor: &Actor,
    command: &Command,
) -> Result<(), GateError> {
    let (Actor::Peer { party }, Command::CaseStatus { case_id }) = (actor, command) else {
        return Ok(());
    };
    let member: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM case_members WHERE case_id = $1 AND party = $2")
            .bind(case_id)
            .bind(party.as_str())
            .fetch_optional(&mut **tx)
            .await?;
    match member {
        Some(_) => Ok(()),
        None => Err(not_found(case_id)),
    }
}

/// Applies a permitted case command; returns the output and the digests for the ledger.
#[expect(
    clippy::too_many_arguments,
    reason = "the gate passes its state and the batch's pending entries"
)]
pub(crate) async fn apply(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    engine: &Engine,
    party: &PartyCode,
    actor: &Actor,
    command: &Command,
    pending: &[(u64, Vec<u8>)],
    now: Timestamp,
    index: u64,
) -> Result<(Output, Vec<(String, String)>), GateError> {
    match command {
        Command::AddCaseMember { case_id, party: member, agreement } => {
            load_case(tx, case_id).await?;
            let a = engine.agreement(agreement).ok_or_else(|| {
                GateError::Invalid(format!("agreement `{agreement}` is not loaded"))
            })?;
            if a.kind != AgreementKind::Jit {
                return Err(GateError::Invalid(format!(
                    "agreement `{agreement}` is not a JIT agreement (it is a {})",
                    a.kind.as_str()
                )));
            }
            let date = now.to_zoned(TimeZone::UTC).date();
            if !a.in_force_on(date) {
                return Err(GateError::Invalid(format!(
                    "agreement `{agreement}` is not in force on {date} (from {})",
                    a.in_force_from
                )));
            }
            if !a.binds(party, member) {
                return Err(GateError::Invalid(format!(
                    "agreement `{agreement}` does not bind {party} and {member}"
                )));
            }
            let existing: Option<String> = sqlx::query_scalar(
                "SELECT role FROM case_members WHERE case_id = $1 AND party = $2",
            )
            .bind(case_id)
            .bind(member.as_str())
            .fetch_optional(&mut **tx)
            .await?;
            if let Some(role) = existing {
                return Err(GateError::Conflict(format!(
                    "{member} is already a member of case `{case_id}` ({role})"
                )));
            }
            sqlx::query(
                "INSERT INTO case_members (case_id, party, role, agreement, added_at, ledger_index) \
                 VALUES ($1, $2, 'member', $3, $4, $5)",
            )
            .bind(case_id)
            .bind(member.as_str())
            .bind(agreement)
            .bind(format!("{now:.6}"))
            .bind(to_i64(index)?)
            .execute(&mut **tx)
            .await?;
            Ok((Output::Done, Vec::new()))
        }
        Command::CaseStatus { case_id } => {
            // A peer outside the case gets the not-found error here: the gate records nothing
            // for a command whose effect fails, so its question leaves no trace either.
            check_visible(tx, actor, command).await?;
            let case = load_case(tx, case_id).await?;
            let members = members(tx, case_id).await?;
            let timeline = timeline(tx, case_id, pending).await?;
            Ok((Output::CaseStatus(Box::new(CaseStatus { case, members, timeline })), Vec::new()))
        }
        _ => Err(GateError::Invalid("not a case command".into())),
    }
}
