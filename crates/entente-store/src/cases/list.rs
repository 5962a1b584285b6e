//! The listing of the cases this node holds: its own and the partner-led ones it mirrors, a
//! page at a time in order of case id (keyset pagination: a page costs the same on the first
//! case as on the millionth), each with its members and where its requests stand across
//! borders. One `case.list` ledger entry per page read.

use crate::gate::{
    EffectCx, GateCommand, GateError, PayloadDigests, Ruling, decided_by_role, placeholders,
};
use crate::store::{StoreError, stamp, to_i64};
use entente_core::{Action, CaseId, Stamp, Subject, SubjectKind};
use entente_policy::request::ClockStatus;
use entente_wire::CaseMember;
use serde::Serialize;
use sqlx::Row;
use std::collections::BTreeMap;

/// The most cases one page holds.
pub const MAX_PAGE: u32 = 200;

/// List the cases this node holds, `limit` of them after case id `after` (from the first
/// when none). Made only by [`ListCases::new`], which checks the page size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListCases {
    after: Option<CaseId>,
    // INVARIANT: 1 to MAX_PAGE.
    limit: u32,
}

/// One case of the listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CaseSummary {
    /// Case id.
    pub id: String,
    /// The title; none for a partner-led case (the title stays with the lead).
    pub title: Option<String>,
    /// The lead party.
    pub lead: String,
    /// True for a case this node's party leads.
    pub led_here: bool,
    /// Offence concepts (lexicon ids).
    pub concepts: Vec<String>,
    /// Member parties, the lead first.
    pub members: Vec<String>,
    /// When it was opened (for a mirror: when this node first learnt of it).
    pub opened_at: Stamp,
    /// For a partner-led case: the lead's last change applied here, and when.
    pub last_change: Option<(String, Stamp)>,
    /// Requests of the case that are still open.
    pub open_requests: u64,
    /// Open requests with a clock past its deadline.
    pub overdue_requests: u64,
    /// The earliest deadline still running among its open requests.
    pub next_due: Option<NextDeadline>,
}

/// A deadline of the listing, with the request it belongs to and the rule that set it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NextDeadline {
    /// When it falls due.
    pub due: Stamp,
    /// The request whose clock it is.
    pub request: String,
    /// The rule that set it (its citation).
    pub rule: String,
    /// The rule's verification status (V1, V2, P, U).
    pub status: String,
}

/// A page of the listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CaseListing {
    /// The cases, in order of id.
    pub cases: Vec<CaseSummary>,
    /// The id to ask the next page after; none on the last page.
    pub next_after: Option<String>,
}

impl ListCases {
    /// A page of `limit` cases after `after` (the last id of the previous page).
    ///
    /// # Errors
    /// [`GateError::Invalid`] for a page size outside 1 to [`MAX_PAGE`].
    pub fn new(after: Option<CaseId>, limit: u32) -> Result<ListCases, GateError> {
        if (1..=MAX_PAGE).contains(&limit) {
            Ok(ListCases { after, limit })
        } else {
            Err(GateError::Invalid(format!("limit {limit}: expected 1 to {MAX_PAGE} cases a page")))
        }
    }
}

impl GateCommand for ListCases {
    type Output = CaseListing;
    type Facts = ();

    fn action(&self) -> Action {
        Action::CaseList
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Cases, self.after.as_ref().map_or("first", |a| a.as_str()))]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        PayloadDigests::canonical([("limit", serde_json::json!(self.limit))])
    }

    decided_by_role!();

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        _: (),
        _: &Ruling,
    ) -> Result<CaseListing, GateError> {
        let limit = self.limit;

        let after = self.after.as_ref().map_or("", |a| a.as_str());
        // One more than the page, to know whether another page follows. A case id is in
        // `cases` or in `case_mirrors`, never both (a mirror is only made for a case led by
        // another party, and an id this node holds cannot be opened again).
        let rows = sqlx::query(
            "SELECT id, title, concepts, NULL, opened_at, NULL, NULL FROM cases WHERE id > $1 \
             UNION ALL \
             SELECT case_id, NULL, concepts, lead, first_at, change, updated_at FROM case_mirrors \
             WHERE case_id > $1 ORDER BY 1 LIMIT $2",
        )
        .bind(after)
        .bind(to_i64(u64::from(limit) + 1)?)
        .fetch_all(&mut **cx.tx)
        .await?;
        let more = rows.len() > limit as usize;
        let party = cx.party.as_str().to_owned();
        let mut cases = Vec::with_capacity(rows.len().min(limit as usize));
        for r in rows.iter().take(limit as usize) {
            let id: String = r.try_get(0)?;
            let bad = |e: serde_json::Error| StoreError::Inconsistent(format!("case {id}: {e}"));
            let concepts: String = r.try_get(2)?;
            let lead: Option<String> = r.try_get(3)?;
            let change: Option<String> = r.try_get(5)?;
            let last_change = match change {
                Some(c) => Some((c, stamp(r, 6)?)),
                None => None,
            };
            cases.push(CaseSummary {
                title: r.try_get(1)?,
                led_here: lead.is_none(),
                lead: lead.unwrap_or_else(|| party.clone()),
                concepts: serde_json::from_str(&concepts).map_err(bad)?,
                members: Vec::new(),
                opened_at: stamp(r, 4)?,
                last_change,
                open_requests: 0,
                overdue_requests: 0,
                next_due: None,
                id,
            });
        }
        members_of(cx, &mut cases).await?;
        requests_of(cx, &mut cases).await?;
        let next_after = if more { cases.last().map(|c| c.id.clone()) } else { None };
        Ok(CaseListing { cases, next_after })
    }
}

/// Fills in the members: this node's rows for its own cases, the lead's list for mirrors.
async fn members_of(cx: &mut EffectCx<'_>, cases: &mut [CaseSummary]) -> Result<(), GateError> {
    if cases.is_empty() {
        return Ok(());
    }
    let own: Vec<&str> = cases.iter().filter(|c| c.led_here).map(|c| c.id.as_str()).collect();
    let mirrored: Vec<&str> = cases.iter().filter(|c| !c.led_here).map(|c| c.id.as_str()).collect();
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if !own.is_empty() {
        let sql = format!(
            "SELECT case_id, party FROM case_members WHERE case_id IN ({}) \
             ORDER BY case_id, ledger_index, party",
            placeholders(cx.backend, 1, own.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in &own {
            q = q.bind(*id);
        }
        for r in q.fetch_all(&mut **cx.tx).await? {
            found.entry(r.try_get(0)?).or_default().push(r.try_get(1)?);
        }
    }
    if !mirrored.is_empty() {
        let sql = format!(
            "SELECT case_id, members FROM case_mirrors WHERE case_id IN ({})",
            placeholders(cx.backend, 1, mirrored.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in &mirrored {
            q = q.bind(*id);
        }
        for r in q.fetch_all(&mut **cx.tx).await? {
            let id: String = r.try_get(0)?;
            let members: String = r.try_get(1)?;
            let members: Vec<CaseMember> = serde_json::from_str(&members)
                .map_err(|e| StoreError::Inconsistent(format!("case mirror {id} members: {e}")))?;
            found.insert(id, members.into_iter().map(|m| m.party).collect());
        }
    }
    for c in cases.iter_mut() {
        c.members = found.remove(&c.id).unwrap_or_default();
    }
    Ok(())
}

/// Fills in where the cases' requests stand: how many are open, how many overdue, and the
/// earliest deadline still running.
async fn requests_of(cx: &mut EffectCx<'_>, cases: &mut [CaseSummary]) -> Result<(), GateError> {
    if cases.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT id, case_id FROM requests WHERE case_id IN ({}) ORDER BY case_id, id",
        placeholders(cx.backend, 1, cases.len())
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for c in cases.iter() {
        q = q.bind(c.id.as_str());
    }
    let rows = q.fetch_all(&mut **cx.tx).await?;
    let mut by_case: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &rows {
        by_case.entry(r.try_get(1)?).or_default().push(r.try_get(0)?);
    }
    for c in cases.iter_mut() {
        for rid in by_case.remove(&c.id).unwrap_or_default() {
            let request = crate::requests::load(cx.tx, cx.engine, &rid).await?;
            if !request.state.is_open() {
                continue;
            }
            c.open_requests += 1;
            if request.clocks.iter().any(|k| k.status(cx.now) == ClockStatus::Missed) {
                c.overdue_requests += 1;
            }
            for k in request.clocks.iter().filter(|k| k.status(cx.now) == ClockStatus::Running) {
                let due = Stamp::new(k.due);
                if c.next_due.as_ref().is_none_or(|n| due < n.due) {
                    c.next_due = Some(NextDeadline {
                        due,
                        request: rid.clone(),
                        rule: k.basis.citation.clone(),
                        status: k.basis.status.as_str().to_owned(),
                    });
                }
            }
        }
    }
    Ok(())
}
