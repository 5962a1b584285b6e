//! Transparency and oversight reports as a capability of the node (`docs/transparency.md`):
//! exact statistics ([`statistics`]), the oversight view of the ledger ([`ledger_view`]), the
//! differentially private public report ([`publish`]) and its check against a node's
//! published ledger ([`verify`]).
//!
//! Each report decides the role first (nothing is read for a caller who may not see it; the
//! refusal is recorded), reads its facts outside the gate's writer, computes the report in
//! the pure `entente-report`, and records it through the gate, which decides again.

use crate::Node;
use crate::audit::{self, AuditError};
use entente_core::ledger::LedgerEntry;
use entente_core::{Action, Outcome, PartyCode, witness};
use entente_policy::engine::Engine;
use entente_report::oversight::{LedgerView, Tally, WitnessFact};
use entente_report::{Period, PublicReport, Ratio, ReportError, Statistics};
use entente_store::reports::{
    PublishReport, Published, RecordReportRead, ReportRead, read_decision,
};
use entente_store::{GateError, Principal, Verdict};
use jiff::Timestamp;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportsError {
    /// Bad input (period, parameter): nothing was read, spent or recorded.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The gate or the store failed.
    #[error(transparent)]
    Gate(#[from] GateError),
}

impl From<entente_store::StoreError> for ReportsError {
    fn from(e: entente_store::StoreError) -> Self {
        ReportsError::Gate(GateError::Store(e))
    }
}

/// The partner parties of the node's agreements: the fixed rows of the public report.
pub fn partners(engine: &Engine, party: &PartyCode) -> Vec<PartyCode> {
    let mut v: Vec<PartyCode> = engine
        .agreements()
        .iter()
        .flat_map(|a| a.parties.iter().cloned())
        .filter(|p| p != party && p.as_str() != "EU")
        .collect();
    v.sort();
    v.dedup();
    v
}

fn refused<T>(v: Verdict<()>) -> Result<Verdict<T>, ReportsError> {
    match v {
        Verdict::Denied { index, decision } => Ok(Verdict::Denied { index, decision }),
        Verdict::Permitted { .. } => Err(GateError::Internal(
            "a report read refused beforehand was recorded as permitted".into(),
        )
        .into()),
    }
}

fn with<T>(v: Verdict<()>, output: T) -> Verdict<T> {
    match v {
        Verdict::Permitted { index, decision, .. } => {
            Verdict::Permitted { index, decision, output }
        }
        Verdict::Denied { index, decision } => Verdict::Denied { index, decision },
    }
}

/// The exact statistics of `period` for `who` at `now`, restricted to `partner` if given.
///
/// # Errors
/// A period in the future or a partner no agreement names (nothing recorded); store or gate
/// failures.
pub async fn statistics(
    node: &Node,
    who: Principal,
    period: &Period,
    partner: Option<&PartyCode>,
    now: Timestamp,
) -> Result<Verdict<Statistics>, ReportsError> {
    let as_of = period.as_of(now)?;
    let gate = &node.gate;
    let known = partners(gate.engine(), gate.party());
    if let Some(p) = partner.filter(|p| !known.contains(p)) {
        let names: Vec<&str> = known.iter().map(PartyCode::as_str).collect();
        return Err(ReportError::Parameter(format!(
            "partner {p}: no agreement of this node names it; the partners are {}",
            names.join(", ")
        ))
        .into());
    }
    let decision = read_decision(Action::ReportStats, period, who.actor(), gate.party(), now);
    if !decision.is_permit() {
        let v = gate.submit(who, RecordReportRead::refused(ReportRead::Statistics, period), now);
        return refused(v.await?);
    }
    let facts = node.store.report_facts(known, period, None).await?;
    let party = gate.party().clone();
    let stats = match partner {
        Some(p) => entente_report::stats::compute_for(facts, party, p, period, as_of),
        None => entente_report::stats::compute(&facts, party, period, as_of),
    };
    let v = gate.submit(who, RecordReportRead::statistics(&stats)?, now).await?;
    Ok(with(v, stats))
}

/// Which pinned partners have cosigned this node's ledger, and how far (`cosigned.note`).
///
/// # Errors
/// Store failures.
pub async fn witness_coverage(node: &Node) -> Result<Vec<WitnessFact>, ReportsError> {
    let note = std::fs::read(node.data_dir.join(crate::witness::COSIGNED_FILE)).ok();
    let size = note
        .as_deref()
        .and_then(|n| entente_core::ledger::verify_checkpoint(n, &node.verifier_key()).ok())
        .map(|c| c.size);
    let mut out = Vec::new();
    for peer in node.store.peers().await? {
        let name = witness::witness_name(&peer.party);
        let checked = match (note.as_deref(), crate::federation::peer_key(&peer)) {
            (Some(n), Ok(key)) => Some(witness::verify_cosignature(n, &name, &key)),
            _ => None,
        };
        let (status, at) = match checked {
            Some(Ok(t)) => ("cosigned", Some(t)),
            Some(Err(witness::CosignatureError::Missing(_))) | None => ("missing", None),
            Some(Err(_)) => ("invalid", None),
        };
        out.push(WitnessFact {
            partner: peer.party.to_string(),
            size: at.and(size),
            at,
            status: status.to_owned(),
        });
    }
    Ok(out)
}

/// The oversight view of the ledger for `period`.
///
/// # Errors
/// A period in the future (nothing recorded); store or gate failures.
pub async fn ledger_view(
    node: &Node,
    who: Principal,
    period: &Period,
    now: Timestamp,
) -> Result<Verdict<LedgerView>, ReportsError> {
    let as_of = period.as_of(now)?;
    let gate = &node.gate;
    let decision = read_decision(Action::ReportLedger, period, who.actor(), gate.party(), now);
    if !decision.is_permit() {
        let v = gate.submit(who, RecordReportRead::refused(ReportRead::Ledger, period), now);
        return refused(v.await?);
    }
    let mut tally = Tally::new(period);
    let facts = node.store.report_facts(Vec::new(), period, Some(&mut |e| tally.add(e))).await?;
    let witnesses = witness_coverage(node).await?;
    let view = entente_report::oversight::ledger_view(
        tally,
        facts.watermark,
        gate.party().clone(),
        period,
        as_of,
        witnesses,
    );
    let v = gate.submit(who, RecordReportRead::ledger(&view)?, now).await?;
    Ok(with(v, view))
}

/// Publishes the public report of `period` as `who`: the stored release again, or with
/// `new_release` (or when there is none yet) a new one of `epsilon` (default: the node's
/// `[reports] epsilon`), within the period's budget (`[reports] budget`).
///
/// # Errors
/// A period in the future or a parameter out of range (nothing read, spent or recorded);
/// store or gate failures. A budget exceeded is a recorded [`Verdict::Denied`].
pub async fn publish(
    node: &Node,
    who: Principal,
    period: &Period,
    epsilon: Option<Ratio>,
    new_release: bool,
    now: Timestamp,
) -> Result<Verdict<Published>, ReportsError> {
    let as_of = period.as_of(now)?;
    let cfg = &node.config.reports;
    let epsilon = epsilon.unwrap_or(cfg.epsilon);
    let bounds = cfg.bounds();
    bounds.check()?;
    if !epsilon.le(cfg.budget) {
        return Err(ReportError::Parameter(format!(
            "ε = {epsilon} exceeds the whole budget of a period ({}, [reports] budget)",
            cfg.budget
        ))
        .into());
    }
    let gate = &node.gate;
    let decision = read_decision(Action::ReportPublish, period, who.actor(), gate.party(), now);
    let existing = node.store.report_releases(&period.label).await?;
    let reissue = !decision.is_permit() || (existing.latest.is_some() && !new_release);
    let command = if reissue {
        // A refusal is recorded by the gate, which decides the role by the same rules; a
        // release already drawn is returned again, nothing read or spent.
        PublishReport::reissue(period.clone(), as_of, epsilon, bounds, cfg.budget)
    } else {
        let partners = partners(gate.engine(), gate.party());
        let facts = node.store.report_facts(partners, period, None).await?;
        PublishReport::draw(period.clone(), as_of, epsilon, bounds, cfg.budget, facts)
    };
    Ok(gate.submit(who, command, now).await?)
}

/// What [`verify`] established.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The report.
    pub report: PublicReport,
    /// `sha256:<hex>` of the file.
    pub digest: String,
    /// The ledger entry that records it.
    pub entry: LedgerEntry,
    /// The size of the checkpoint the ledger was audited at.
    pub checkpoint_size: u64,
    /// Entry bundles fetched by the audit.
    pub bundles: u64,
}

/// Why a published report does not check out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The file itself is malformed or inconsistent.
    #[error(transparent)]
    File(#[from] ReportError),
    /// The node's published ledger did not audit.
    #[error("the ledger does not audit: {0}")]
    Audit(#[from] AuditError),
    /// The ledger does not record this file.
    #[error("{0}")]
    NotRecorded(String),
}

/// Checks a published report `bytes` against the ledger a node publishes at `base_url`
/// (signed by `verifier_key`): the file is canonical and consistent; the whole ledger audits
/// against its signed checkpoint (every entry bundle and hash tile); and the entry the file
/// names, read from the audited tree, is a permitted `report.publish` of this node whose
/// `report` digest is the file's SHA-256.
///
/// # Errors
/// The first problem found.
pub async fn verify(
    bytes: &[u8],
    base_url: &str,
    verifier_key: &str,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Verified, VerifyError> {
    let report = PublicReport::from_bytes(bytes)?;
    let digest = entente_core::canonical::sha256_tagged(bytes);
    let index = report.ledger_index;
    let (audited, mut kept) =
        audit::audit_keeping(base_url, verifier_key, None, &[index], progress).await?;
    let Some(raw) = kept.remove(&index) else {
        return Err(VerifyError::NotRecorded(format!(
            "the report names ledger entry {index}, but the node's signed checkpoint covers {} entries",
            audited.checkpoint.size
        )));
    };
    let entry = LedgerEntry::decode(&raw).map_err(|e| {
        VerifyError::NotRecorded(format!("ledger entry {index} does not decode: {e}"))
    })?;
    let recorded = entry.payload_hashes.get("report");
    if entry.action != Action::ReportPublish
        || entry.decision != Outcome::Permit
        || recorded != Some(&digest)
        || entry.node.as_str() != report.node
    {
        return Err(VerifyError::NotRecorded(format!(
            "ledger entry {index} is {} ({:?}) by {} recording report digest {}; the file's SHA-256 is {digest}: the file was altered, or it is not the release the ledger records",
            entry.action,
            entry.decision,
            entry.node,
            recorded.map_or("none", String::as_str)
        )));
    }
    Ok(Verified {
        report,
        digest,
        entry,
        checkpoint_size: audited.checkpoint.size,
        bundles: audited.bundles,
    })
}
