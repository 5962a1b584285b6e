//! The public transparency report: counts per partner country and half-year in the shape
//! large providers publish (requests, selectors specified, share answered with some data,
//! share refused), each with discrete Laplace noise, so that no case can be singled out.
//!
//! - **Privacy unit: the case.** Every request and every deconfliction query belongs to a
//!   case; a person's data is normally held within one case, so protecting the case protects
//!   the person (a person in `k` cases has `k` times the budget spent on them: group privacy).
//!   The node cannot bound contributions per person, as it holds no identities in the clear.
//! - **Bounded contributions.** Per case and period at most `requests_per_case` requests are
//!   counted (the earliest, then by id) and at most `selectors_per_case` selectors. Each
//!   counted request adds 1 to `requests` and at most 1 to `answered with data` or `refused`,
//!   so the L1 sensitivity of the whole table is `2·requests_per_case + selectors_per_case`.
//! - **Mechanism:** every cell gets independent discrete Laplace noise of scale
//!   `sensitivity/ε` (pure ε-differential privacy for the whole release).
//! - **Post-processing** (free under differential privacy): clamped to non-negative
//!   integers with `answered + refused ≤ requests`, totals summed from the published cells,
//!   shares computed from the published integers.
//! - **Rows do not depend on the data:** one per partner party of the node's agreements and
//!   direction, whether or not anything happened.

use crate::ReportError;
use crate::dp::{self, Ratio};
use crate::facts::Facts;
use crate::period::Period;
use entente_core::PartyCode;
use jiff::Timestamp;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The format name of a public report.
pub const FORMAT: &str = "entente-transparency/1";

/// Contribution bounds per privacy unit (case) and period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    /// Requests counted per case.
    pub requests_per_case: u32,
    /// Deconfliction selectors counted per case.
    pub selectors_per_case: u32,
}

impl Default for Bounds {
    fn default() -> Bounds {
        Bounds { requests_per_case: 2, selectors_per_case: 8 }
    }
}

impl Bounds {
    /// The L1 sensitivity of the table under these bounds.
    pub fn sensitivity(self) -> u64 {
        2 * u64::from(self.requests_per_case) + u64::from(self.selectors_per_case)
    }

    /// Checks the bounds are usable (1–100 requests, 0–1000 selectors).
    ///
    /// # Errors
    /// A bound out of range.
    pub fn check(self) -> Result<(), ReportError> {
        if !(1..=100).contains(&self.requests_per_case) {
            return Err(ReportError::Parameter(format!(
                "requests per case {}: expected 1 to 100",
                self.requests_per_case
            )));
        }
        if self.selectors_per_case > 1000 {
            return Err(ReportError::Parameter(format!(
                "selectors per case {}: expected 0 to 1000",
                self.selectors_per_case
            )));
        }
        Ok(())
    }
}

/// The mechanism of a release, as published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mechanism {
    /// `discrete-laplace`.
    pub name: String,
    /// ε of this release (pure differential privacy).
    pub epsilon: Ratio,
    /// The privacy unit: `case`.
    pub unit: String,
    /// Contribution bounds per unit.
    pub bounds: Bounds,
    /// L1 sensitivity of the table.
    pub sensitivity: u64,
    /// Noise scale: sensitivity / ε.
    pub scale: Ratio,
    /// 95% of the noise added to a cell is within ± this (before clamping).
    pub noise_95: u64,
}

/// The budget of the period, as published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// ε the node allows per period.
    pub per_period: Ratio,
    /// ε spent on this period, this release included.
    pub spent: Ratio,
    /// ε left for the period (`0` when none).
    pub remaining: String,
}

/// One published row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicRow {
    /// The partner party.
    pub partner: String,
    /// `received` (requests from the partner) or `issued` (requests to it).
    pub direction: String,
    /// Requests (noisy).
    pub requests: u64,
    /// Selectors specified in deconfliction queries to the partner (noisy; issued only).
    pub selectors: Option<u64>,
    /// Requests answered with some data (noisy, at most `requests`).
    pub answered_with_data: u64,
    /// Requests refused (noisy, at most `requests − answered_with_data`).
    pub refused: u64,
}

impl PublicRow {
    /// Share answered with some data, in per mille of the published requests.
    pub fn answered_per_mille(&self) -> Option<u64> {
        per_mille(self.answered_with_data, self.requests)
    }

    /// Share refused, in per mille.
    pub fn refused_per_mille(&self) -> Option<u64> {
        per_mille(self.refused, self.requests)
    }
}

fn per_mille(part: u64, whole: u64) -> Option<u64> {
    (whole > 0).then(|| (part * 1000 + whole / 2) / whole)
}

/// `66.7%`, or `–` with nothing to share.
pub fn share_text(per_mille: Option<u64>) -> String {
    per_mille.map_or_else(|| "–".to_owned(), |p| format!("{}.{}%", p / 10, p % 10))
}

/// A published report: the file whose digest the ledger records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicReport {
    /// [`FORMAT`].
    pub format: String,
    /// The node's party.
    pub node: String,
    /// The period's label (`2026-H2`).
    pub period: String,
    /// First instant of the period.
    pub from: Timestamp,
    /// First instant after the period.
    pub to: Timestamp,
    /// Counted up to this instant.
    pub as_of: Timestamp,
    /// Release number within the period (1, 2, …): each spends its own ε.
    pub release: u32,
    /// The ledger entry that records this release.
    pub ledger_index: u64,
    /// The ledger size the counts were read at.
    pub watermark: u64,
    /// The mechanism and its parameters.
    pub mechanism: Mechanism,
    /// The period's budget after this release.
    pub budget: Budget,
    /// Rows per partner and direction.
    pub rows: Vec<PublicRow>,
    /// Totals per direction (sums of the published rows).
    pub totals: Vec<PublicRow>,
}

impl PublicReport {
    /// The canonical bytes of the report (RFC 8785): the published file, whose SHA-256 the
    /// ledger records.
    ///
    /// # Errors
    /// Encoding faults.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ReportError> {
        entente_core::canonical::to_canonical_vec(self)
            .map_err(|e| ReportError::Internal(e.to_string()))
    }

    /// Reads a published file: canonical JSON of this format, internally consistent.
    ///
    /// # Errors
    /// What is wrong with the file, naming the field.
    pub fn from_bytes(bytes: &[u8]) -> Result<PublicReport, ReportError> {
        let r: PublicReport = serde_json::from_slice(bytes).map_err(|e| {
            ReportError::File(format!("line {} column {}: {e}", e.line(), e.column()))
        })?;
        if r.format != FORMAT {
            return Err(ReportError::File(format!("format: `{}`, expected `{FORMAT}`", r.format)));
        }
        if r.to_bytes()? != bytes {
            return Err(ReportError::File(
                "the file is not in canonical form (RFC 8785): it was re-encoded or edited"
                    .to_owned(),
            ));
        }
        for (i, row) in r.rows.iter().chain(&r.totals).enumerate() {
            if row.answered_with_data.checked_add(row.refused).is_none_or(|s| s > row.requests) {
                return Err(ReportError::File(format!(
                    "rows[{i}] ({} {}): answered + refused exceed requests",
                    row.partner, row.direction
                )));
            }
        }
        for t in &r.totals {
            let rows = r.rows.iter().filter(|x| x.direction == t.direction);
            let sum = |f: fn(&PublicRow) -> u64| rows.clone().map(f).sum::<u64>();
            if sum(|x| x.requests) != t.requests
                || sum(|x| x.answered_with_data) != t.answered_with_data
                || sum(|x| x.refused) != t.refused
            {
                return Err(ReportError::File(format!(
                    "totals ({}): not the sums of the rows",
                    t.direction
                )));
            }
        }
        Ok(r)
    }
}

/// A request of a case: when, its id, partner, direction, answered, refused.
type Counted<'a> = (Timestamp, &'a str, String, &'static str, bool, bool);

#[derive(Default, Clone, Copy)]
struct TrueCell {
    requests: u64,
    answered: u64,
    refused: u64,
    selectors: u64,
}

/// The true counts, per (partner, direction), with contributions bounded per case.
fn true_cells(
    facts: &Facts,
    node: &PartyCode,
    period: &Period,
    as_of: Timestamp,
    bounds: Bounds,
) -> BTreeMap<(String, &'static str), TrueCell> {
    let mut per_case: BTreeMap<&str, Vec<Counted<'_>>> = BTreeMap::new();
    for r in &facts.requests {
        let issued = &r.requesting == node;
        let Some(start) = r.first(if issued { "submit" } else { "receive" }, as_of) else {
            continue;
        };
        if !period.contains(start.at) {
            continue;
        }
        let answered = r.first("answer", as_of).is_some();
        let refused = !answered && r.first("refuse", as_of).is_some();
        let (partner, dir) =
            if issued { (&r.requested, "issued") } else { (&r.requesting, "received") };
        per_case.entry(&r.case_id).or_default().push((
            start.at,
            &r.id,
            partner.to_string(),
            dir,
            answered,
            refused,
        ));
    }
    let mut cells: BTreeMap<(String, &'static str), TrueCell> = BTreeMap::new();
    for (_, mut reqs) in per_case {
        reqs.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        for (_, _, partner, dir, answered, refused) in
            reqs.into_iter().take(bounds.requests_per_case as usize)
        {
            let c = cells.entry((partner, dir)).or_default();
            c.requests += 1;
            c.answered += u64::from(answered);
            c.refused += u64::from(refused);
        }
    }
    let mut asked: BTreeMap<&str, Vec<(Timestamp, String, u64)>> = BTreeMap::new();
    for q in facts.psi_asked.iter().filter(|q| period.contains(q.at) && q.at < as_of) {
        asked.entry(&q.case_id).or_default().push((q.at, q.partner.to_string(), q.selectors));
    }
    for (_, mut qs) in asked {
        qs.sort();
        let mut left = u64::from(bounds.selectors_per_case);
        for (_, partner, n) in qs {
            let take = n.min(left);
            left -= take;
            cells.entry((partner, "issued")).or_default().selectors += take;
        }
    }
    cells
}

/// What a release is drawn with.
#[derive(Clone, Debug)]
pub struct ReleaseParams {
    /// The node's party.
    pub node: PartyCode,
    /// The period.
    pub period: Period,
    /// Counted up to this instant.
    pub as_of: Timestamp,
    /// ε of this release.
    pub epsilon: Ratio,
    /// Contribution bounds.
    pub bounds: Bounds,
    /// ε allowed per period.
    pub per_period: Ratio,
    /// ε already spent on the period by earlier releases.
    pub spent_before: Option<Ratio>,
    /// Release number.
    pub release: u32,
    /// The ledger entry that will record it.
    pub ledger_index: u64,
}

/// The budget after a release of `epsilon`, or the refusal that names what is left.
///
/// # Errors
/// [`ReportError::Budget`] when the release would exceed the period's budget.
pub fn spend(
    per_period: Ratio,
    spent_before: Option<Ratio>,
    epsilon: Ratio,
) -> Result<(Ratio, Option<Ratio>), ReportError> {
    let spent = match spent_before {
        Some(s) => s.checked_add(epsilon),
        None => Some(epsilon),
    }
    .ok_or_else(|| ReportError::Parameter("ε out of range".to_owned()))?;
    if !spent.le(per_period) {
        let left = spent_before.map_or(Some(per_period), |s| per_period.checked_sub(s));
        return Err(ReportError::Budget(format!(
            "a release of ε = {epsilon} would spend {spent} of the period's budget of {per_period}; left: {}",
            left.map_or_else(|| "0".to_owned(), |l| l.to_string())
        )));
    }
    Ok((spent, per_period.checked_sub(spent)))
}

/// Draws a release: the true counts, bounded per case, plus noise from `rng`, post-processed.
///
/// # Errors
/// Parameters out of range, a budget exceeded, or a sum that overflows.
pub fn release<R: RngCore + CryptoRng>(
    facts: &Facts,
    p: &ReleaseParams,
    rng: &mut R,
) -> Result<PublicReport, ReportError> {
    p.bounds.check()?;
    let (spent, remaining) = spend(p.per_period, p.spent_before, p.epsilon)?;
    let sensitivity = p.bounds.sensitivity();
    let scale = Ratio::int_div(sensitivity, p.epsilon)
        .ok_or_else(|| ReportError::Parameter(format!("ε = {}: out of range", p.epsilon)))?;
    let cells = true_cells(facts, &p.node, &p.period, p.as_of, p.bounds);
    let mut noisy = |v: u64| -> Result<u64, ReportError> {
        let n = dp::discrete_laplace(rng, scale);
        let v = i64::try_from(v).map_err(|_| ReportError::Internal("count overflow".into()))?;
        Ok(u64::try_from(v.checked_add(n).unwrap_or(i64::MAX).max(0)).unwrap_or(0))
    };
    let mut partners: Vec<String> =
        p.partners_sorted(facts).into_iter().map(|x| x.to_string()).collect();
    partners.dedup();
    let mut rows = Vec::new();
    for partner in &partners {
        for dir in ["received", "issued"] {
            let t = cells.get(&(partner.clone(), dir)).copied().unwrap_or_default();
            let requests = noisy(t.requests)?;
            let answered = noisy(t.answered)?.min(requests);
            let refused = noisy(t.refused)?.min(requests - answered);
            let selectors = if dir == "issued" { Some(noisy(t.selectors)?) } else { None };
            rows.push(PublicRow {
                partner: partner.clone(),
                direction: dir.to_owned(),
                requests,
                selectors,
                answered_with_data: answered,
                refused,
            });
        }
    }
    let mut totals = Vec::new();
    for dir in ["received", "issued"] {
        let mut t = PublicRow {
            partner: "all".to_owned(),
            direction: dir.to_owned(),
            requests: 0,
            selectors: (dir == "issued").then_some(0),
            answered_with_data: 0,
            refused: 0,
        };
        let overflow = || ReportError::Internal("a total overflows".to_owned());
        for r in rows.iter().filter(|r| r.direction == dir) {
            t.requests = t.requests.checked_add(r.requests).ok_or_else(overflow)?;
            t.answered_with_data =
                t.answered_with_data.checked_add(r.answered_with_data).ok_or_else(overflow)?;
            t.refused = t.refused.checked_add(r.refused).ok_or_else(overflow)?;
            if let (Some(a), Some(b)) = (t.selectors, r.selectors) {
                t.selectors = Some(a.checked_add(b).ok_or_else(overflow)?);
            }
        }
        totals.push(t);
    }
    Ok(PublicReport {
        format: FORMAT.to_owned(),
        node: p.node.to_string(),
        period: p.period.label.clone(),
        from: p.period.from,
        to: p.period.to,
        as_of: p.as_of,
        release: p.release,
        ledger_index: p.ledger_index,
        watermark: facts.watermark,
        mechanism: Mechanism {
            name: "discrete-laplace".to_owned(),
            epsilon: p.epsilon,
            unit: "case".to_owned(),
            bounds: p.bounds,
            sensitivity,
            scale,
            noise_95: dp::half_width(scale, 0.95),
        },
        budget: Budget {
            per_period: p.per_period,
            spent,
            remaining: remaining.map_or_else(|| "0".to_owned(), |r| r.to_string()),
        },
        rows,
        totals,
    })
}

impl ReleaseParams {
    fn partners_sorted(&self, facts: &Facts) -> Vec<PartyCode> {
        let mut v: Vec<PartyCode> =
            facts.partners.iter().filter(|p| **p != self.node).cloned().collect();
        v.sort();
        v
    }
}
