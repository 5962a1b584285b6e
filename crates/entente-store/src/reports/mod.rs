//! Transparency and oversight reports (`docs/transparency.md`), on `entente-report`.
//!
//! Reports read a lot (the period's ledger entries and the state tables), so they are read
//! outside the gate's writer, like a deconfliction set: the role is decided first
//! ([`read_decision`], pure and cheap: nothing is read for a caller who may not see it), the
//! facts are read in one read transaction with the ledger size they correspond to
//! ([`Store::report_facts`]), the report is computed by the pure crate, and the read is
//! recorded through the gate with the digest of what was served ([`RecordReportRead`]).
//! A public release ([`PublishReport`]) is decided in the gate, where the budget spent on
//! the period is read and the noisy figures are drawn (from the operating system's generator)
//! and stored in the transaction that records them.

use crate::gate::{
    DecideCx, EffectCx, GateCommand, GateError, PayloadDigests, Ruling, role_decision,
};
use crate::store::{Store, StoreError, to_i64, to_u64};
use entente_core::{Action, Actor, Decision, PartyCode, Subject, SubjectKind};
use entente_report::facts::{
    ComplaintFact, EntryRef, EventFact, IncidentFact, PackageFact, PsiAnsweredFact, PsiAskedFact,
    RequestFact, STATISTICS_ACTIONS,
};
use entente_report::oversight::LedgerView;
use entente_report::public::{self, ReleaseParams};
use entente_report::{Bounds, Facts, Period, PublicReport, Ratio, ReportError, Statistics};
use jiff::Timestamp;
use sqlx::Row;
use std::collections::{BTreeMap, BTreeSet};

/// Ledger entries read per query while the facts are gathered.
const PAGE: u64 = 10_000;

/// Requests read per query (with all their events) while the facts are gathered.
const REQUEST_PAGE: u32 = 5_000;

fn ts(s: &str, what: &str) -> Result<Timestamp, StoreError> {
    s.parse().map_err(|e| StoreError::Inconsistent(format!("{what} `{s}`: {e}")))
}

fn number(s: &str, what: &str) -> Result<u64, StoreError> {
    s.parse().map_err(|e| StoreError::Inconsistent(format!("{what} `{s}`: {e}")))
}

fn party(s: &str, what: &str) -> Result<PartyCode, StoreError> {
    s.parse().map_err(|e| StoreError::Inconsistent(format!("{what} `{s}`: {e}")))
}

fn report_subject(label: &str) -> Subject {
    Subject::new(SubjectKind::Report, label)
}

/// Whether `actor` may have `action` (`report.stats`, `report.ledger` or `report.publish`)
/// for `period`: the role rule. Pure and cheap: what a caller decides before reading
/// anything. The gate decides the same again when the report is recorded.
pub fn read_decision(
    action: Action,
    period: &Period,
    actor: &Actor,
    party: &PartyCode,
    now: Timestamp,
) -> Decision {
    role_decision(action, &[report_subject(&period.label)], actor, party, now)
}

impl Store {
    /// The facts of `period`, read in one read transaction: requests with their events, the
    /// ledger entries of the period that the statistics count (flows and consents; with
    /// `each`, every entry of the period is also handed to it, page by page, for counts that
    /// keep nothing else; without, the other entries are not even decoded), the categories of the items they name, incident notifications, complaints,
    /// deconfliction queries and evidence packages, and the ledger size as the watermark.
    /// `partners` are the fixed rows of the public report. Rows are read in pages, so memory
    /// stays bounded by what is kept, not by the ledger's length.
    ///
    /// # Errors
    /// Database errors, or stored data that contradicts itself.
    pub async fn report_facts(
        &self,
        partners: Vec<PartyCode>,
        period: &Period,
        mut each: Option<&mut (dyn FnMut(&EntryRef<'_>) + Send)>,
    ) -> Result<Facts, StoreError> {
        let mut tx = self.pool.begin().await?;
        if self.backend() == crate::store::Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        let watermark = to_u64(
            sqlx::query_scalar("SELECT size FROM ledger_head WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?,
        )?;
        let mut facts = Facts { watermark, partners, ..Facts::default() };

        // Requests and their events, a page of requests at a time (keyset pagination by id),
        // each page as two rows: its requests and its events, fields joined by a unit
        // separator and records by a record separator in the database (neither can occur in
        // ids, names, timestamps or the grounds' JSON), so that 100,000 requests and their
        // events cross the driver as a few dozen rows.
        let (unit, record) = ("\u{1f}", "\u{1e}");
        let agg = |expr: &str, sep: &str| match self.backend() {
            crate::store::Backend::Sqlite => format!("group_concat({expr}, {sep})"),
            crate::store::Backend::Postgres => format!("string_agg({expr}, {sep})"),
        };
        let requests_sql = format!(
            "SELECT {} FROM (SELECT * FROM requests WHERE id > $1 ORDER BY id LIMIT {REQUEST_PAGE}) AS page",
            agg(
                "id || $2 || case_id || $2 || kind || $2 || agreement || $2 || requesting || $2 || requested || $2 || CAST(emergency AS TEXT) || $2 || CAST(ledger_index AS TEXT)",
                "$3"
            )
        );
        let events_sql = format!(
            "SELECT {} FROM request_events WHERE request_id > $1 AND request_id <= $2",
            agg(
                "request_id || $3 || CAST(seq AS TEXT) || $3 || event || $3 || grounds || $3 || at || $3 || CAST(ledger_index AS TEXT)",
                "$4"
            )
        );
        let bad = |what: &str| StoreError::Inconsistent(format!("{what}: a field is missing"));
        let mut last = String::new();
        loop {
            let page: Option<String> =
                sqlx::query_scalar(sqlx::AssertSqlSafe(requests_sql.clone()))
                    .bind(&last)
                    .bind(unit)
                    .bind(record)
                    .fetch_one(&mut *tx)
                    .await?;
            let Some(page) = page.filter(|p| !p.is_empty()) else { break };
            let first = facts.requests.len();
            for rec in page.split(record) {
                let f: Vec<&str> = rec.split(unit).collect();
                let [id, case_id, kind, agreement, requesting, requested, emergency, index] =
                    f.as_slice()
                else {
                    return Err(bad("request"));
                };
                facts.requests.push(RequestFact {
                    events: Vec::new(),
                    id: (*id).to_owned(),
                    case_id: (*case_id).to_owned(),
                    kind: (*kind).to_owned(),
                    agreement: (*agreement).to_owned(),
                    requesting: party(requesting, "requesting party")?,
                    requested: party(requested, "requested party")?,
                    emergency: *emergency != "0",
                    index: number(index, "request ledger index")?,
                });
            }
            let page = &mut facts.requests[first..];
            page.sort_by(|a, b| a.id.cmp(&b.id));
            let end = page.last().map(|r| r.id.clone()).unwrap_or_default();
            let events: Option<String> =
                sqlx::query_scalar(sqlx::AssertSqlSafe(events_sql.clone()))
                    .bind(&last)
                    .bind(&end)
                    .bind(unit)
                    .bind(record)
                    .fetch_one(&mut *tx)
                    .await?;
            let mut seqs: BTreeMap<usize, Vec<(u64, EventFact)>> = BTreeMap::new();
            for rec in events.as_deref().unwrap_or_default().split(record).filter(|r| !r.is_empty())
            {
                let f: Vec<&str> = rec.split(unit).collect();
                let [id, seq, name, grounds, at, index] = f.as_slice() else {
                    return Err(bad("request event"));
                };
                let event = EventFact {
                    name: (*name).to_owned(),
                    grounds: serde_json::from_str(grounds).map_err(|e| {
                        StoreError::Inconsistent(format!("request event grounds: {e}"))
                    })?,
                    at: ts(at, "request event time")?,
                    index: number(index, "request event ledger index")?,
                };
                if let Ok(k) = page.binary_search_by(|q| q.id.as_str().cmp(id)) {
                    seqs.entry(k).or_default().push((number(seq, "request event seq")?, event));
                }
            }
            for (k, mut evs) in seqs {
                evs.sort_by_key(|(seq, _)| *seq);
                page[k].events = evs.into_iter().map(|(_, e)| e).collect();
            }
            last = end;
        }

        // The period's entries, a page at a time, each page as one row: the entries' canonical
        // JSON (which never holds a raw newline) joined by newlines, so that a million entries
        // cross the driver as a hundred rows. Without a caller for every entry, only flows and
        // consents are read: the database compares each entry's first bytes (its canonical
        // first key is the action) with theirs.
        let prefixes: Vec<Vec<u8>> = if each.is_some() {
            Vec::new()
        } else {
            STATISTICS_ACTIONS
                .iter()
                .map(|a| format!("{{\"action\":\"{a}\"").into_bytes())
                .collect()
        };
        let filter: String = if prefixes.is_empty() {
            String::new()
        } else {
            let terms: Vec<String> = (0..prefixes.len())
                .map(|k| format!("substr(entry, 1, {}) = ${}", prefixes[k].len(), k + 4))
                .collect();
            format!(" AND ({})", terms.join(" OR "))
        };
        let join = match self.backend() {
            crate::store::Backend::Sqlite => "group_concat(CAST(entry AS TEXT), $3)",
            crate::store::Backend::Postgres => "string_agg(convert_from(entry, 'UTF8'), $3)",
        };
        // Only constants and `$N` bind markers are formatted into the SQL; every value is bound.
        let sql = format!(
            "SELECT {join} FROM (SELECT entry FROM ledger_entries WHERE idx >= $1 AND idx < $2{filter}) AS page"
        );
        let mut from = 0u64;
        while from < watermark {
            let to = (from + PAGE).min(watermark);
            let mut q = sqlx::query_scalar::<_, Option<String>>(sqlx::AssertSqlSafe(sql.clone()))
                .bind(to_i64(from)?)
                .bind(to_i64(to)?)
                .bind("\n");
            for p in &prefixes {
                q = q.bind(p.clone());
            }
            let page = q.fetch_one(&mut *tx).await?.unwrap_or_default();
            for line in page.split('\n').filter(|l| !l.is_empty()) {
                let bad = |e: String| StoreError::Inconsistent(format!("ledger entry: {e}"));
                let e = EntryRef::decode(line.as_bytes()).map_err(bad)?;
                if period.contains(e.time) {
                    if let Some(f) = each.as_mut() {
                        f(&e);
                    }
                    if e.counted_by_statistics() {
                        facts.entries.push(e.to_fact().map_err(bad)?);
                    }
                }
            }
            from = to;
        }
        let mut wanted: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for e in &facts.entries {
            let item = match e.action.as_str() {
                "datum.share" | "datum.receive" => "datum",
                "evidence.export" | "evidence.receive" => "evidence",
                _ => continue,
            };
            if let Some(id) = e.subject(item) {
                wanted.entry(item).or_default().insert(id.to_owned());
            }
        }
        for (item, ids) in wanted {
            let table = if item == "datum" { "data_items" } else { "evidence_items" };
            let ids: Vec<String> = ids.into_iter().collect();
            for chunk in ids.chunks(crate::gate::MAX_PARAMS) {
                // `(p1),(p2),…` is a valid IN list on both backends (the gate's own helper);
                // only the table name (one of two constants) is formatted in, every id bound.
                let list = crate::gate::placeholders(self.backend(), 1, chunk.len());
                let sql = format!("SELECT id, category FROM {table} WHERE id IN ({list})");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for id in chunk {
                    q = q.bind(id);
                }
                for r in q.fetch_all(&mut *tx).await? {
                    let id: String = r.try_get(0)?;
                    facts.categories.insert(format!("{item}:{id}"), r.try_get(1)?);
                }
            }
        }

        for r in sqlx::query("SELECT direction, party, notice, at, ledger_index FROM incident_notifications ORDER BY at")
            .fetch_all(&mut *tx)
            .await?
        {
            let direction: String = r.try_get(0)?;
            let partner: String = r.try_get(1)?;
            let notice: Option<String> = r.try_get(2)?;
            let at: String = r.try_get(3)?;
            let mut regimes: BTreeMap<String, Option<Timestamp>> = BTreeMap::new();
            if let Some(n) = notice {
                let n: entente_wire::IncidentNotice = serde_json::from_str(&n)
                    .map_err(|e| StoreError::Inconsistent(format!("incident notice: {e}")))?;
                for o in n.obligations {
                    let due = o.due.parse::<Timestamp>().ok();
                    let slot = regimes.entry(o.regime).or_insert(due);
                    *slot = match (*slot, due) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
            }
            facts.incidents.push(IncidentFact {
                sent: direction == "sent",
                partner: party(&partner, "incident notification party")?,
                at: ts(&at, "incident notification time")?,
                index: to_u64(r.try_get(4)?)?,
                regimes,
            });
        }
        for r in sqlx::query(
            "SELECT filed_at, due_at, answered_at, decision, ledger_index, answer_ledger_index FROM complaints ORDER BY filed_at",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            let (filed, due): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            let answered: Option<String> = r.try_get(2)?;
            let answer_index: Option<i64> = r.try_get(5)?;
            facts.complaints.push(ComplaintFact {
                filed_at: ts(&filed, "complaint filed_at")?,
                due_at: ts(&due, "complaint due_at")?,
                answered_at: answered.as_deref().map(|a| ts(a, "complaint answered_at")).transpose()?,
                decision: r.try_get(3)?,
                index: to_u64(r.try_get(4)?)?,
                answer_index: answer_index.map(to_u64).transpose()?,
            });
        }
        for r in sqlx::query(
            "SELECT case_id, peer, selectors, status, created_at, ledger_index FROM psi_queries ORDER BY created_at",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            let (peer, at): (String, String) = (r.try_get(1)?, r.try_get(4)?);
            facts.psi_asked.push(PsiAskedFact {
                case_id: r.try_get(0)?,
                partner: party(&peer, "deconfliction peer")?,
                selectors: to_u64(r.try_get(2)?)?,
                status: r.try_get(3)?,
                at: ts(&at, "deconfliction query time")?,
                index: to_u64(r.try_get(5)?)?,
            });
        }
        for r in
            sqlx::query("SELECT asker, status, at, ledger_index FROM psi_evaluations ORDER BY at")
                .fetch_all(&mut *tx)
                .await?
        {
            let (asker, at): (String, String) = (r.try_get(0)?, r.try_get(2)?);
            facts.psi_answered.push(PsiAnsweredFact {
                partner: party(&asker, "deconfliction asker")?,
                status: r.try_get(1)?,
                at: ts(&at, "deconfliction evaluation time")?,
                index: to_u64(r.try_get(3)?)?,
            });
        }
        for r in sqlx::query(
            "SELECT recipient, size, sent_at, ledger_index FROM packages_out ORDER BY sent_at",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            let (to, at): (String, String) = (r.try_get(0)?, r.try_get(2)?);
            facts.packages.push(PackageFact {
                sent: true,
                partner: party(&to, "package recipient")?,
                size: to_u64(r.try_get(1)?)?,
                status: "sent".to_owned(),
                at: ts(&at, "package sent_at")?,
                index: to_u64(r.try_get(3)?)?,
            });
        }
        for r in sqlx::query("SELECT sender, size, status, offered_at, offer_index FROM packages_in ORDER BY offered_at")
            .fetch_all(&mut *tx)
            .await?
        {
            let (from, at): (String, String) = (r.try_get(0)?, r.try_get(3)?);
            facts.packages.push(PackageFact {
                sent: false,
                partner: party(&from, "package sender")?,
                size: to_u64(r.try_get(1)?)?,
                status: r.try_get(2)?,
                at: ts(&at, "package offered_at")?,
                index: to_u64(r.try_get(4)?)?,
            });
        }
        tx.commit().await?;
        Ok(facts)
    }

    /// The releases of `period` so far: `(release, ε)` in order, and the latest file.
    ///
    /// # Errors
    /// Database errors.
    pub async fn report_releases(&self, period: &str) -> Result<Releases, StoreError> {
        let mut conn = self.pool.acquire().await?;
        releases(&mut conn, period).await
    }
}

/// The releases of one period.
#[derive(Clone, Debug, Default)]
pub struct Releases {
    /// `(release, ε)` of each, in order.
    pub spent: Vec<(u32, Ratio)>,
    /// The latest release's file.
    pub latest: Option<Vec<u8>>,
}

impl Releases {
    /// ε spent on the period (`None`: nothing yet).
    ///
    /// # Errors
    /// A sum beyond the exact range: the budget is then treated as spent (fail closed).
    pub fn total(&self) -> Result<Option<Ratio>, String> {
        self.spent.iter().try_fold(None, |acc: Option<Ratio>, (_, e)| match acc {
            None => Ok(Some(*e)),
            Some(a) => a
                .checked_add(*e)
                .map(Some)
                .ok_or_else(|| "the ε spent on the period cannot be summed exactly".to_owned()),
        })
    }
}

async fn releases(conn: &mut sqlx::AnyConnection, period: &str) -> Result<Releases, StoreError> {
    let rows = sqlx::query(
        "SELECT release, epsilon, report FROM report_releases WHERE period = $1 ORDER BY release",
    )
    .bind(period)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Releases::default();
    for r in rows {
        let n = u32::try_from(r.try_get::<i64, _>(0)?)
            .map_err(|_| StoreError::Inconsistent("release number out of range".into()))?;
        let e: String = r.try_get(1)?;
        let e = Ratio::parse(&e).map_err(|m| StoreError::Inconsistent(format!("release ε {m}")))?;
        out.spent.push((n, e));
        out.latest = Some(r.try_get(2)?);
    }
    Ok(out)
}

/// What a recorded report read served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportRead {
    /// Exact statistics (`report.stats`).
    Statistics,
    /// The oversight view of the ledger (`report.ledger`).
    Ledger,
}

/// Records a report read through the gate: the period, the ledger size the facts were read
/// at and the digest of what is served (RFC 8785 form). Built from the report itself, so the
/// digest is that of what the caller gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordReportRead {
    read: ReportRead,
    label: String,
    digest: Option<String>,
    watermark: u64,
}

impl RecordReportRead {
    /// The read of `s`.
    ///
    /// # Errors
    /// Encoding faults.
    pub fn statistics(s: &Statistics) -> Result<Self, GateError> {
        Self::served(ReportRead::Statistics, &s.period, s.watermark, s)
    }

    /// The read of `v`.
    ///
    /// # Errors
    /// Encoding faults.
    pub fn ledger(v: &LedgerView) -> Result<Self, GateError> {
        Self::served(ReportRead::Ledger, &v.period, v.watermark, v)
    }

    fn served(
        read: ReportRead,
        period: &Period,
        watermark: u64,
        report: &impl serde::Serialize,
    ) -> Result<Self, GateError> {
        let digest =
            entente_core::canonical::canonical_digest(report).map_err(GateError::encoding)?;
        Ok(RecordReportRead { read, label: period.label.clone(), digest: Some(digest), watermark })
    }

    /// A read refused before anything was read ([`read_decision`] denied): recorded so.
    pub fn refused(read: ReportRead, period: &Period) -> Self {
        RecordReportRead { read, label: period.label.clone(), digest: None, watermark: 0 }
    }
}

impl GateCommand for RecordReportRead {
    type Output = ();
    type Facts = ();

    fn action(&self) -> Action {
        match self.read {
            ReportRead::Statistics => Action::ReportStats,
            ReportRead::Ledger => Action::ReportLedger,
        }
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![report_subject(&self.label)]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(match &self.digest {
            Some(d) => PayloadDigests::Of(BTreeMap::from([
                ("report".to_owned(), d.clone()),
                ("watermark".to_owned(), self.watermark.to_string()),
            ])),
            None => PayloadDigests::SubjectsOnly,
        })
    }

    async fn load(&self, _cx: &mut EffectCx<'_>) -> Result<(), GateError> {
        Ok(())
    }

    fn decide(&self, cx: &DecideCx<'_>, _: &()) -> Ruling {
        if self.digest.is_none() {
            // Decided as refused beforehand; a role granted since does not make a read of
            // nothing into a permitted read.
            return Ruling::of(cx.role.followed_by(Decision::deny(
                "report.refused-before-read",
                "the read was refused before anything was read",
            )));
        }
        Ruling::of(cx.role.clone())
    }

    async fn apply(self, _cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<(), GateError> {
        Ok(())
    }
}

/// A published release, as the gate returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// The report.
    pub report: PublicReport,
    /// The published file (canonical JSON).
    pub bytes: Vec<u8>,
    /// `sha256:<hex>` of the file, as the ledger records it.
    pub digest: String,
    /// Whether this is the stored release again (no budget spent).
    pub reissued: bool,
}

/// Publish the public report of a period: the stored release again, or (`new_release`, or
/// none yet) a new one drawn from `facts`, if the period's budget allows its ε.
#[derive(Clone, Debug)]
pub struct PublishReport {
    period: Period,
    as_of: Timestamp,
    epsilon: Ratio,
    bounds: Bounds,
    per_period: Ratio,
    new_release: bool,
    facts: Option<Box<Facts>>,
}

impl PublishReport {
    /// The stored release of `period` again (no facts read, nothing spent).
    pub fn reissue(
        period: Period,
        as_of: Timestamp,
        epsilon: Ratio,
        bounds: Bounds,
        per_period: Ratio,
    ) -> Self {
        PublishReport {
            period,
            as_of,
            epsilon,
            bounds,
            per_period,
            new_release: false,
            facts: None,
        }
    }

    /// A new release drawn from `facts` (read by [`Store::report_facts`]).
    pub fn draw(
        period: Period,
        as_of: Timestamp,
        epsilon: Ratio,
        bounds: Bounds,
        per_period: Ratio,
        facts: Facts,
    ) -> Self {
        PublishReport {
            period,
            as_of,
            epsilon,
            bounds,
            per_period,
            new_release: true,
            facts: Some(Box::new(facts)),
        }
    }
}

/// What the publish decision reads: the releases of the period so far.
pub struct PublishFacts(Releases);

fn invalid(e: ReportError) -> GateError {
    GateError::Invalid(e.to_string())
}

impl GateCommand for PublishReport {
    type Output = Published;
    type Facts = PublishFacts;

    fn action(&self) -> Action {
        Action::ReportPublish
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![report_subject(&self.period.label)]
    }

    /// The digest of the published file, known once it is drawn or read back.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    fn validate(&self) -> Result<(), GateError> {
        self.bounds.check().map_err(invalid)?;
        if !self.epsilon.le(self.per_period) {
            return Err(invalid(ReportError::Parameter(format!(
                "ε = {} exceeds the period's whole budget of {}",
                self.epsilon, self.per_period
            ))));
        }
        Ok(())
    }

    async fn load(&self, cx: &mut EffectCx<'_>) -> Result<PublishFacts, GateError> {
        Ok(PublishFacts(releases(&mut *cx.tx, &self.period.label).await?))
    }

    fn decide(&self, cx: &DecideCx<'_>, facts: &PublishFacts) -> Ruling {
        let r = &facts.0;
        if r.latest.is_some() && (!self.new_release || self.facts.is_none()) {
            return Ruling::of(cx.role.followed_by(Decision::permit(
                "report.same-release",
                format!(
                    "release {} of {} again: the stored figures, no budget spent",
                    r.spent.len(),
                    self.period.label
                ),
                Vec::new(),
            )));
        }
        if self.facts.is_none() {
            return Ruling::of(cx.role.followed_by(Decision::deny(
                "report.no-release",
                format!(
                    "{} has no release yet; a first release draws new figures",
                    self.period.label
                ),
            )));
        }
        let b = self.bounds;
        let mechanism = format!(
            "discrete Laplace, ε = {}, unit: case, at most {} requests and {} selectors per case, L1 sensitivity {}",
            self.epsilon,
            b.requests_per_case,
            b.selectors_per_case,
            b.sensitivity()
        );
        let spent = match r.total() {
            Ok(s) => s,
            Err(e) => return Ruling::of(cx.role.followed_by(Decision::deny("report.budget", e))),
        };
        match public::spend(self.per_period, spent, self.epsilon) {
            Ok((spent, left)) => Ruling::of(cx.role.followed_by(Decision::permit(
                "report.budget",
                format!(
                    "release {} of {}: {mechanism}; budget {}: spent {spent}, remaining {}",
                    r.spent.len() + 1,
                    self.period.label,
                    self.per_period,
                    left.map_or_else(|| "0".to_owned(), |l| l.to_string())
                ),
                Vec::new(),
            ))),
            Err(e) => Ruling::of(
                cx.role.followed_by(Decision::deny("report.budget", format!("{e}; {mechanism}"))),
            ),
        }
    }

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        facts: PublishFacts,
        ruling: &Ruling,
    ) -> Result<Published, GateError> {
        let r = facts.0;
        let reissue = ruling.decision.rules.iter().any(|x| x == "report.same-release");
        let spent_before = r.total().map_err(GateError::Internal)?;
        let (report, bytes, reissued) = match (reissue, r.latest, self.facts) {
            (true, Some(bytes), _) => {
                let report = PublicReport::from_bytes(&bytes).map_err(|e| {
                    GateError::Store(StoreError::Inconsistent(format!("stored release: {e}")))
                })?;
                (report, bytes, true)
            }
            (_, _, Some(f)) => {
                let release = u32::try_from(r.spent.len() + 1)
                    .map_err(|_| GateError::Internal("too many releases".into()))?;
                let params = ReleaseParams {
                    node: cx.party.clone(),
                    period: self.period.clone(),
                    as_of: self.as_of,
                    epsilon: self.epsilon,
                    bounds: self.bounds,
                    per_period: self.per_period,
                    spent_before,
                    release,
                    ledger_index: cx.index,
                };
                let report =
                    public::release(&f, &params, &mut rand::rngs::OsRng).map_err(|e| match e {
                        ReportError::Internal(m) => GateError::Internal(m),
                        other => invalid(other),
                    })?;
                let bytes = report.to_bytes().map_err(|e| GateError::Internal(e.to_string()))?;
                sqlx::query(
                    "INSERT INTO report_releases (period, release, epsilon, report, report_sha256, created_at, ledger_index) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&self.period.label)
                .bind(i64::from(release))
                .bind(self.epsilon.to_string())
                .bind(bytes.clone())
                .bind(entente_core::canonical::sha256_tagged(&bytes))
                .bind(cx.now_text())
                .bind(to_i64(cx.index)?)
                .execute(&mut **cx.tx)
                .await?;
                (report, bytes, false)
            }
            _ => {
                return Err(GateError::Internal(
                    "a publish with neither a release nor facts".into(),
                ));
            }
        };
        let digest = entente_core::canonical::sha256_tagged(&bytes);
        cx.record_digests(vec![("report".to_owned(), digest.clone())]);
        Ok(Published { report, bytes, digest, reissued })
    }
}
