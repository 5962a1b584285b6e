//! Cases shared across borders in the gate: the members of a case (the node's own party as
//! `lead`, partner parties added under a JIT agreement) and the case's status (the case, its
//! members, and a timeline of every recorded action on it). Private to the crate; reached only
//! from [`crate::gate`].
//!
//! Visibility: a partner node (`Actor::Peer`) sees the status of a case only if its party is
//! a member. For any other party the gate answers exactly as for a case that does not exist
//! (`GateError::NotFound` with the same message), before anything is recorded, so neither the
//! answer nor the ledger tells that party the case exists.

mod list;
mod members;
mod open;

pub use list::{CaseListing, CaseSummary, ListCases, MAX_PAGE, NextDeadline};
pub(crate) use members::payload as member_payload;

pub use members::{AddCaseMember, ReadCaseStatus, ReceiveCaseUpdate, RemoveCaseMember};
pub(crate) use open::payload as case_payload;
pub use open::{OpenCase, ReadCase};

use crate::gate::GateError;
use crate::store::{CaseRecord, StoreError, stamp, to_u64};
use entente_core::canonical::canonical_digest;
use entente_core::ledger::LedgerEntry;
use entente_core::{Actor, Decision, PartyCode, Stamp};
use entente_policy::agreement::{Agreement, AgreementKind, DataCategory};
use entente_policy::engine::{Conditions, Engine};
use entente_wire::{CaseMember, CaseUpdateMessage, MessageKind};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;
use sqlx::Row;
use std::collections::HashSet;

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

/// A case's status: the case, its members, its timeline and the requests made for it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CaseStatus {
    /// The case.
    pub case: CaseRecord,
    /// Its members, the lead first.
    pub members: Vec<CaseMember>,
    /// Every recorded action on it, oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// For a case led by a partner: this node's mirror of it, as the lead's last update gave
    /// it (the members above are the lead's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<CaseMirror>,
    /// The cross-border requests this node holds for the case, in order of id, with their
    /// legal clocks (read in the same command, for the web interface's case page). A partner
    /// reading the status gets none; the JSON API lists them by id elsewhere.
    #[serde(skip)]
    pub requests: Vec<entente_policy::request::Request>,
}

/// What a member node knows of a partner-led case: the lead and its last update.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CaseMirror {
    /// The lead party (the only one whose updates are applied).
    pub lead: String,
    /// The lead's ledger index of the change last applied.
    pub lead_index: u64,
    /// That change (`member-added DE`, …).
    pub change: String,
    /// When the last update was applied here.
    pub updated_at: Stamp,
    /// The conditions the update travelled with.
    pub conditions: Conditions,
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
        opened_at: stamp(&row, 4)?,
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
            added_at: stamp(r, 3)?,
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
    backend: crate::store::Backend,
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
    // The entries that name one of them, through `ledger_subjects` (the writer keeps it
    // complete in the transaction of each append): the page costs what the case has, not what
    // the ledger has.
    let wanted_list: Vec<&String> = wanted.iter().collect();
    let mut rows = Vec::new();
    for chunk in wanted_list.chunks(crate::gate::MAX_PARAMS) {
        // `(p1),(p2),…` is a valid IN list on both backends; the subjects are bound.
        let sql = format!(
            "SELECT e.idx, e.entry FROM ledger_entries e WHERE e.idx IN \
             (SELECT idx FROM ledger_subjects WHERE subject IN ({}))",
            crate::gate::placeholders(backend, 1, chunk.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for s in chunk {
            q = q.bind(s.as_str());
        }
        rows.extend(q.fetch_all(&mut **tx).await?);
    }
    let mut stored = Vec::with_capacity(rows.len());
    for r in &rows {
        stored.push((to_u64(r.try_get(0)?)?, r.try_get::<Vec<u8>, _>(1)?));
    }
    stored.sort_by_key(|(i, _)| *i);
    stored.dedup_by_key(|(i, _)| *i);
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
    case_id: &str,
) -> Result<(), GateError> {
    let Actor::Peer { party } = actor else {
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

fn digest(v: &impl Serialize) -> Result<String, GateError> {
    canonical_digest(v).map_err(|e| GateError::Encoding(e.to_string()))
}

/// The conditions that travel with case information sent by `originator` under `a`.
fn jit_conditions(a: &Agreement, originator: &PartyCode, now: Timestamp) -> Conditions {
    let retain_until = a.retention.get(&DataCategory::CaseInformation).and_then(|d| {
        now.to_zoned(TimeZone::UTC).checked_add(d.span).ok().map(|z| z.timestamp().to_string())
    });
    Conditions {
        originator: originator.clone(),
        agreement: a.id.clone(),
        purposes: a.purposes.clone(),
        retain_until,
        onward_transfer: a.onward_transfer,
        commercial_use_prohibited: a.commercial_use_prohibited,
        conditions: a.travelling_conditions.iter().map(|c| c.id.clone()).collect(),
    }
}

/// Writes a `case.update` to the outbox for every member of case `id` other than this party,
/// each with the conditions of the JIT agreement it is a member under, and to a party just
/// removed (`removed`: it and its agreement) so that it ends its mirror. Returns the digest of
/// the updates for the ledger.
#[expect(clippy::too_many_arguments, reason = "the change and the gate's position")]
async fn send_updates(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    engine: &Engine,
    party: &PartyCode,
    id: &str,
    change: &str,
    removed: Option<(&PartyCode, &str)>,
    now: Timestamp,
    index: u64,
) -> Result<Vec<(String, String)>, GateError> {
    let case = load_case(tx, id).await?;
    let members = members(tx, id).await?;
    let now_text = format!("{now:.6}");
    let mut sent = Vec::new();
    let mut recipients: Vec<(String, String)> = members
        .iter()
        .filter(|m| m.party != party.as_str())
        .filter_map(|m| m.agreement.clone().map(|a| (m.party.clone(), a)))
        .collect();
    if let Some((p, a)) = removed {
        recipients.push((p.as_str().to_owned(), a.to_owned()));
    }
    for (member, agreement) in &recipients {
        let agreement = agreement.as_str();
        let a = engine.agreement(agreement).ok_or_else(|| {
            GateError::Invalid(format!(
                "member {member} of case `{id}` is under agreement `{agreement}`, which is not loaded"
            ))
        })?;
        let to: PartyCode = member
            .parse()
            .map_err(|e| StoreError::Inconsistent(format!("case {id} member `{member}`: {e}")))?;
        let message = CaseUpdateMessage {
            case_id: id.to_owned(),
            lead: party.clone(),
            concepts: case.concepts.clone(),
            members: members.clone(),
            change: change.to_owned(),
            ledger_index: index,
            conditions: jit_conditions(a, party, now),
        };
        let payload =
            serde_json::to_value(&message).map_err(|e| GateError::Encoding(e.to_string()))?;
        crate::flows::outbox(tx, &to, MessageKind::CaseUpdate, &payload, &now_text, index).await?;
        sent.push(format!("{}:{}", to, digest(&message)?));
    }
    Ok(if sent.is_empty() { Vec::new() } else { vec![("updates".into(), digest(&sent)?)] })
}

/// The mirror of a partner-led case: the case as a record (no title travels; `opened_by` is
/// the lead), its members, and the mirror's state.
async fn load_mirror(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
) -> Result<Option<(CaseRecord, Vec<CaseMember>, CaseMirror)>, GateError> {
    let row = sqlx::query(
        "SELECT lead, concepts, members, conditions, change, lead_index, first_at, first_index, updated_at \
         FROM case_mirrors WHERE case_id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let bad = |e: serde_json::Error| StoreError::Inconsistent(format!("case mirror {id}: {e}"));
    let lead: String = r.try_get(0)?;
    let concepts: String = r.try_get(1)?;
    let members: String = r.try_get(2)?;
    let conditions: String = r.try_get(3)?;
    let case = CaseRecord {
        id: id.to_owned(),
        title: format!("(led by {lead}; the title stays with the lead)"),
        concepts: serde_json::from_str(&concepts).map_err(bad)?,
        opened_by: format!("peer {lead}"),
        opened_at: stamp(&r, 6)?,
        ledger_index: to_u64(r.try_get(7)?)?,
    };
    let mirror = CaseMirror {
        lead,
        lead_index: to_u64(r.try_get(5)?)?,
        change: r.try_get(4)?,
        updated_at: stamp(&r, 8)?,
        conditions: serde_json::from_str(&conditions).map_err(bad)?,
    };
    Ok(Some((case, serde_json::from_str(&members).map_err(bad)?, mirror)))
}

/// What a case update's decision reads: whether this node leads a case of that id, and
/// the lead and lead index of the mirror it holds, if any.
#[derive(Debug)]
pub struct UpdateFacts {
    own: bool,
    mirror: Option<(String, u64)>,
}

async fn load_update_facts(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    case: &str,
) -> Result<UpdateFacts, GateError> {
    let own: Option<i64> = sqlx::query_scalar("SELECT 1 FROM cases WHERE id = $1")
        .bind(case)
        .fetch_optional(&mut **tx)
        .await?;
    let mirror = sqlx::query("SELECT lead, lead_index FROM case_mirrors WHERE case_id = $1")
        .bind(case)
        .fetch_optional(&mut **tx)
        .await?;
    let mirror = match mirror {
        Some(r) => Some((r.try_get(0)?, to_u64(r.try_get(1)?)?)),
        None => None,
    };
    Ok(UpdateFacts { own: own.is_some(), mirror })
}

/// A case update is accepted only from the lead of a partner-led case this party is a
/// member of, newer than the last one applied, under the JIT agreement of the membership.
fn decide_update(
    engine: &Engine,
    party: &PartyCode,
    actor: &Actor,
    message: &CaseUpdateMessage,
    facts: &UpdateFacts,
    role: &Decision,
    now: Timestamp,
) -> Decision {
    let Actor::Peer { party: sender } = actor else {
        return Decision::deny("peer.only", "only a partner node sends case updates");
    };
    let deny = |rule: &str, reason: String| role.followed_by(Decision::deny(rule, reason));
    let case = &message.case_id;
    if &message.lead != sender {
        return deny(
            "case.update-lead-only",
            format!(
                "{sender} sent an update of case `{case}` naming {} as its lead; only the lead updates a case",
                message.lead
            ),
        );
    }
    if facts.own {
        return deny(
            "case.update-lead-only",
            format!("case `{case}` is led by this node ({party}); {sender} cannot update it"),
        );
    }
    if let Some((lead, last)) = &facts.mirror {
        if lead != sender.as_str() {
            return deny(
                "case.update-lead-only",
                format!("case `{case}` is led by {lead}; {sender} cannot update it"),
            );
        }
        if message.ledger_index <= *last {
            return deny(
                "case.update-order",
                format!(
                    "update of case `{case}` at {sender}'s ledger entry {} is not newer than the one applied ({last})",
                    message.ledger_index
                ),
            );
        }
    }
    let me = message.members.iter().find(|m| m.party == party.as_str());
    let agreement = match (me, &facts.mirror) {
        (Some(m), _) => m.agreement.clone().unwrap_or_default(),
        // Removed from a case it mirrors: the update ends the mirror.
        (None, Some(_)) => message.conditions.agreement.clone(),
        (None, None) => {
            return deny(
                "case.update-not-member",
                format!("{party} is not a member of case `{case}` in {sender}'s update"),
            );
        }
    };
    if message.conditions.agreement != agreement || message.conditions.originator != *sender {
        return deny(
            "conditions.agreement-mismatch",
            format!(
                "the update travels under `{}` from {}, but {party} is a member under `{agreement}` of {sender}'s case",
                message.conditions.agreement, message.conditions.originator
            ),
        );
    }
    let Some(a) = engine.agreement(&agreement) else {
        return deny(
            "case.update-agreement",
            format!("agreement `{agreement}` is not loaded on this node"),
        );
    };
    let date = now.to_zoned(TimeZone::UTC).date();
    if a.kind != AgreementKind::Jit || !a.in_force_between(sender, party, date) {
        return deny(
            "case.update-agreement",
            format!(
                "agreement `{agreement}` is not a JIT agreement in force on {date} binding {sender} and {party}"
            ),
        );
    }
    role.followed_by(Decision::permit(
        "case.update-from-lead",
        format!("{sender} leads case `{case}`; {party} is a member under `{agreement}`"),
        Vec::new(),
    ))
}

/// For a partner-led case this node mirrors: whether `party` is one of its members. `None`
/// when the case is not mirrored here.
pub(crate) async fn mirror_has_member(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    case_id: &str,
    party: &PartyCode,
) -> Result<Option<bool>, GateError> {
    let members: Option<String> =
        sqlx::query_scalar("SELECT members FROM case_mirrors WHERE case_id = $1")
            .bind(case_id)
            .fetch_optional(&mut **tx)
            .await?;
    let Some(members) = members else { return Ok(None) };
    Ok(Some(mirror_members_include(case_id, &members, party)?))
}

/// Whether the stored member list (JSON) of the mirror of `case_id` includes `party`.
pub(crate) fn mirror_members_include(
    case_id: &str,
    members: &str,
    party: &PartyCode,
) -> Result<bool, GateError> {
    let members: Vec<CaseMember> = serde_json::from_str(members)
        .map_err(|e| StoreError::Inconsistent(format!("case mirror {case_id}: {e}")))?;
    Ok(members.iter().any(|m| m.party == party.as_str()))
}

/// Data about a partner-led case go only to its members.
pub(crate) async fn check_share(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    case_id: &str,
    to: &PartyCode,
) -> Result<(), GateError> {
    match mirror_has_member(tx, case_id, to).await? {
        Some(false) => Err(GateError::Conflict(format!(
            "case `{case_id}` is led by a partner and {to} is not one of its members; data about it go to members only"
        ))),
        _ => Ok(()),
    }
}
