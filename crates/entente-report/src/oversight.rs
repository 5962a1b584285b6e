//! Oversight views of the ledger: entries per action and outcome, denials by rule, witness
//! cosignature coverage, alarms, and anomalies to look at (not verdicts).

use crate::facts::EntryRef;
use crate::period::Period;
use entente_core::PartyCode;
use jiff::Timestamp;
use serde::Serialize;
use std::collections::BTreeMap;

/// The format name of a ledger oversight view.
pub const FORMAT: &str = "entente-ledger-oversight/1";

/// A partner's cosignature of this node's ledger, as the node holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WitnessFact {
    /// The partner (witness).
    pub partner: String,
    /// The checkpoint size it cosigned (`None`: no valid cosignature held).
    pub size: Option<u64>,
    /// When it cosigned (its cosignature's time, seconds since the epoch).
    pub at: Option<u64>,
    /// `cosigned`, `missing` or `invalid`.
    pub status: String,
}

/// Entries of one action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActionRow {
    /// Action.
    pub action: String,
    /// Permits.
    pub permits: u64,
    /// Denies.
    pub denies: u64,
}

/// Denials of one rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleRow {
    /// The rule.
    pub rule: String,
    /// Denies it decided.
    pub denies: u64,
}

/// A week in which someone's activity stands out from their own usual level.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Anomaly {
    /// `reads` (a user's recorded reads) or `denials` (refusals of a partner's messages).
    pub kind: String,
    /// Who: the user or the partner.
    pub who: String,
    /// First day of the week (7 days from the period's start).
    pub week: String,
    /// Count in that week.
    pub count: u64,
    /// Median count over the weeks of the period.
    pub median: u64,
    /// The entries counted that week.
    pub entries: Vec<u64>,
}

/// The oversight view of the ledger for a period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LedgerView {
    /// [`FORMAT`].
    pub format: &'static str,
    /// The node.
    pub node: PartyCode,
    /// The period.
    pub period: Period,
    /// Counted up to.
    pub as_of: Timestamp,
    /// The ledger size read at.
    pub watermark: u64,
    /// Entries in the period.
    pub entries: u64,
    /// Per action.
    pub actions: Vec<ActionRow>,
    /// Denials per rule.
    pub denials: Vec<RuleRow>,
    /// Cosignatures of partners.
    pub witnesses: Vec<WitnessFact>,
    /// `witness.alarm` entries in the period.
    pub alarms: Vec<u64>,
    /// Weeks to look at.
    pub anomalies: Vec<Anomaly>,
}

fn is_read(action: &str) -> bool {
    action.ends_with(".read")
        || matches!(action, "case.status" | "psi.status" | "report.stats" | "report.ledger")
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(0)
}

/// Flags the weeks whose count is above both `floor` and three times the median week.
fn flag(
    kind: &str,
    weeks: usize,
    per_who: BTreeMap<String, BTreeMap<usize, Vec<u64>>>,
    floor: u64,
    period: &Period,
) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for (who, by_week) in per_who {
        let counts: Vec<u64> =
            (0..weeks).map(|w| by_week.get(&w).map_or(0, |v| v.len() as u64)).collect();
        let m = median(counts.clone());
        for (w, entries) in by_week {
            let count = entries.len() as u64;
            if count > floor && count > 3 * m {
                let start = period
                    .from
                    .checked_add(jiff::SignedDuration::from_hours(24 * 7 * w as i64))
                    .map_or_else(|_| String::new(), |t| t.to_string()[..10].to_owned());
                out.push(Anomaly {
                    kind: kind.to_owned(),
                    who: who.clone(),
                    week: start,
                    count,
                    median: m,
                    entries,
                });
            }
        }
    }
    out
}

/// The oversight counts of a period's entries, fed one entry at a time (the store reads the
/// ledger page by page; nothing but the counts is kept).
#[derive(Clone, Debug)]
pub struct Tally {
    from: Timestamp,
    entries: u64,
    actions: BTreeMap<String, (u64, u64)>,
    denials: BTreeMap<String, u64>,
    alarms: Vec<u64>,
    reads: BTreeMap<String, BTreeMap<usize, Vec<u64>>>,
    refused: BTreeMap<String, BTreeMap<usize, Vec<u64>>>,
}

impl Tally {
    /// An empty tally for `period`.
    pub fn new(period: &Period) -> Tally {
        Tally {
            from: period.from,
            entries: 0,
            actions: BTreeMap::new(),
            denials: BTreeMap::new(),
            alarms: Vec::new(),
            reads: BTreeMap::new(),
            refused: BTreeMap::new(),
        }
    }

    /// Counts one entry of the period.
    pub fn add(&mut self, e: &EntryRef<'_>) {
        self.entries += 1;
        let action = e.action();
        if !self.actions.contains_key(action) {
            self.actions.insert(action.to_owned(), (0, 0));
        }
        let permit = e.permit();
        if let Some(slot) = self.actions.get_mut(action) {
            if permit { slot.0 += 1 } else { slot.1 += 1 }
        }
        if !permit {
            for r in e.rules() {
                *self.denials.entry((*r).to_owned()).or_default() += 1;
            }
        }
        if action == "witness.alarm" {
            self.alarms.push(e.index());
        }
        let secs = e.time.as_second().saturating_sub(self.from.as_second());
        let week = usize::try_from(secs / (7 * 86_400)).unwrap_or(0);
        if let Some(p) = e.peer() {
            if !permit {
                self.refused
                    .entry(p.to_owned())
                    .or_default()
                    .entry(week)
                    .or_default()
                    .push(e.index());
            }
        } else if is_read(action)
            && let Ok(who) = e.actor()
            && who != "anonymous caller"
        {
            self.reads.entry(who).or_default().entry(week).or_default().push(e.index());
        }
    }
}

/// The ledger oversight view for `period`, from the tally of its entries.
pub fn ledger_view(
    tally: Tally,
    watermark: u64,
    node: PartyCode,
    period: &Period,
    as_of: Timestamp,
    witnesses: Vec<WitnessFact>,
) -> LedgerView {
    let span = as_of.as_second().saturating_sub(period.from.as_second());
    let weeks = usize::try_from(span / (7 * 86_400) + 1).unwrap_or(1);
    let mut anomalies = flag("reads", weeks, tally.reads, 20, period);
    anomalies.extend(flag("denials", weeks, tally.refused, 5, period));
    LedgerView {
        format: FORMAT,
        node,
        period: period.clone(),
        as_of,
        watermark,
        entries: tally.entries,
        actions: tally
            .actions
            .into_iter()
            .map(|(a, (p, d))| ActionRow { action: a, permits: p, denies: d })
            .collect(),
        denials: tally.denials.into_iter().map(|(r, n)| RuleRow { rule: r, denies: n }).collect(),
        witnesses,
        alarms: tally.alarms,
        anomalies,
    }
}

impl LedgerView {
    /// The view as text, for a terminal.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "Ledger of {} for {}: {} entries in the period (ledger size {})\n\nEntries per action\n",
            self.node, self.period.label, self.entries, self.watermark
        );
        let w = self.actions.iter().map(|a| a.action.len()).max().unwrap_or(6).max(6);
        out.push_str(&format!("  {:<w$}  {:>8}  {:>8}\n", "action", "permit", "deny"));
        for a in &self.actions {
            out.push_str(&format!("  {:<w$}  {:>8}  {:>8}\n", a.action, a.permits, a.denies));
        }
        out.push_str("\nDenials by rule\n");
        if self.denials.is_empty() {
            out.push_str("  none\n");
        }
        for r in &self.denials {
            out.push_str(&format!("  {:>8}  {}\n", r.denies, r.rule));
        }
        out.push_str("\nWitness cosignatures of this ledger\n");
        if self.witnesses.is_empty() {
            out.push_str("  no partner pinned\n");
        }
        for wf in &self.witnesses {
            let what = match (wf.size, wf.at) {
                (Some(s), Some(t)) => format!(
                    "cosigned the checkpoint of size {s} ({} behind) at {}",
                    self.watermark.saturating_sub(s),
                    Timestamp::from_second(i64::try_from(t).unwrap_or(0))
                        .map_or_else(|_| t.to_string(), |x| x.to_string())
                ),
                _ => wf.status.clone(),
            };
            out.push_str(&format!("  {}: {what}\n", wf.partner));
        }
        out.push_str(&format!(
            "\nwitness.alarm entries: {}\n",
            if self.alarms.is_empty() {
                "none".to_owned()
            } else {
                self.alarms.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
            }
        ));
        out.push_str("\nTo look at (not verdicts): weeks well above the usual level\n");
        if self.anomalies.is_empty() {
            out.push_str("  none\n");
        }
        for a in &self.anomalies {
            out.push_str(&format!(
                "  {} of {} in the week of {}: {} (median week {}); entries {}\n",
                a.kind,
                a.who,
                a.week,
                a.count,
                a.median,
                a.entries.iter().take(20).map(u64::to_string).collect::<Vec<_>>().join(", ")
            ));
        }
        out
    }
}
