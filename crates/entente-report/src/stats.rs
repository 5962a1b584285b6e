//! Exact statistics for oversight bodies: every figure counted from the facts, every row
//! traceable to the ledger entries it counts (`Statistics::explain`).

use crate::facts::{EntryFact, Facts, RequestFact};
use crate::period::Period;
use entente_core::PartyCode;
use jiff::Timestamp;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// The format name of a statistics document.
pub const FORMAT: &str = "entente-statistics/1";

/// A legal source for a table or row, with its verification status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Citation {
    /// The provision.
    pub text: String,
    /// V1, V2, P or U (as in the project's legal facts).
    pub status: &'static str,
    /// Where the text was read.
    pub source: &'static str,
}

/// One value of a row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Cell {
    /// A label (partner, kind, agreement, …).
    Text(String),
    /// A count.
    Count(u64),
    /// A duration in seconds (`null`: nothing to measure).
    Seconds(Option<u64>),
    /// A figure the node cannot compute, and why.
    NotAvailable {
        /// Why.
        not_available: String,
    },
}

impl Cell {
    /// The cell as text (durations as `3d 4h 5m`).
    pub fn render(&self) -> String {
        match self {
            Cell::Text(t) => t.clone(),
            Cell::Count(n) => n.to_string(),
            Cell::Seconds(None) => "–".to_owned(),
            Cell::Seconds(Some(s)) => duration_text(*s),
            Cell::NotAvailable { .. } => "n/a".to_owned(),
        }
    }
}

/// `3d 4h 5m`, `4h 0m`, `12m`, `40s`.
pub fn duration_text(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
    if d > 0 {
        format!("{d}d {h}h {m}m")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{secs}s")
    }
}

/// A row: its id (`table.n`), its cells, and the ledger entries it counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Row {
    /// `requests-issued.3`: what `--explain` takes.
    pub id: String,
    /// Values, in the table's column order.
    pub cells: Vec<Cell>,
    /// Its legal source, where a row has its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub citation: Option<Citation>,
    /// How many ledger entries it counts.
    pub entries: usize,
    /// The ledger indexes it counts (not serialised: `--explain` lists them).
    #[serde(skip)]
    pub ledger: Vec<u64>,
}

/// A table of statistics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Table {
    /// Stable id.
    pub id: &'static str,
    /// Title.
    pub title: &'static str,
    /// How it is counted.
    pub note: String,
    /// Legal source of the whole table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub citation: Option<Citation>,
    /// Column names.
    pub columns: Vec<&'static str>,
    /// Rows.
    pub rows: Vec<Row>,
}

/// The exact statistics of one node for one period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Statistics {
    /// [`FORMAT`].
    pub format: &'static str,
    /// The node's party.
    pub node: PartyCode,
    /// The period.
    pub period: Period,
    /// Counted up to this instant (the period's end, or now for a running period).
    pub as_of: Timestamp,
    /// The ledger size the facts were read at.
    pub watermark: u64,
    /// The partner the statistics are restricted to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner: Option<PartyCode>,
    /// The tables.
    pub tables: Vec<Table>,
}

impl Statistics {
    /// The row `id` with its table.
    pub fn explain(&self, id: &str) -> Option<(&Table, &Row)> {
        self.tables.iter().find_map(|t| t.rows.iter().find(|r| r.id == id).map(|r| (t, r)))
    }

    /// Every row id, for the error that names a row that does not exist.
    pub fn row_ids(&self) -> Vec<&str> {
        self.tables.iter().flat_map(|t| t.rows.iter().map(|r| r.id.as_str())).collect()
    }

    /// Long-form CSV: `table,row,column,value`, one line per cell.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("table,row,column,value\n");
        for t in &self.tables {
            for r in &t.rows {
                for (c, v) in t.columns.iter().zip(&r.cells) {
                    let value = match v {
                        Cell::Seconds(Some(s)) => s.to_string(),
                        Cell::Seconds(None) => String::new(),
                        other => other.render(),
                    };
                    out.push_str(&format!("{},{},{},{}\n", t.id, r.id, csv(c), csv(&value)));
                }
            }
        }
        out
    }

    /// The statistics as aligned text tables, for a terminal.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "Statistics of {}{} for {} ({} to {}), counted as of {:.0}, ledger size {}\n",
            self.node,
            self.partner.as_ref().map(|p| format!(" with {p}")).unwrap_or_default(),
            self.period.label,
            self.period.from,
            self.period.to,
            self.as_of,
            self.watermark
        );
        for t in &self.tables {
            out.push_str(&format!("\n{} [{}]\n", t.title, t.id));
            if let Some(c) = &t.citation {
                out.push_str(&format!("  {} ({})\n", c.text, c.status));
            }
            out.push_str(&format!("  {}\n", t.note));
            let mut grid: Vec<Vec<String>> = vec![
                std::iter::once("row".to_owned())
                    .chain(t.columns.iter().map(|c| (*c).to_owned()))
                    .collect(),
            ];
            for r in &t.rows {
                grid.push(
                    std::iter::once(r.id.clone()).chain(r.cells.iter().map(Cell::render)).collect(),
                );
            }
            if t.rows.is_empty() {
                out.push_str("  (nothing in this period)\n");
                continue;
            }
            let widths: Vec<usize> = (0..grid[0].len())
                .map(|i| {
                    grid.iter()
                        .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            for line in grid {
                let cells: Vec<String> =
                    line.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}", w = *w)).collect();
                out.push_str(&format!("  {}\n", cells.join("  ").trim_end()));
            }
        }
        out
    }
}

fn csv(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Rows keyed by their labels, each with counts and the ledger indexes behind them.
struct Grid {
    width: usize,
    rows: BTreeMap<Vec<String>, (Vec<u64>, BTreeSet<u64>)>,
}

impl Grid {
    fn new(width: usize) -> Grid {
        Grid { width, rows: BTreeMap::new() }
    }

    fn slot(&mut self, key: Vec<String>) -> &mut (Vec<u64>, BTreeSet<u64>) {
        let width = self.width;
        self.rows.entry(key).or_insert_with(|| (vec![0; width], BTreeSet::new()))
    }

    fn add(&mut self, key: Vec<String>, col: usize, n: u64, indexes: &[u64]) {
        let slot = self.slot(key);
        if let Some(c) = slot.0.get_mut(col) {
            *c = c.saturating_add(n);
        }
        slot.1.extend(indexes);
    }

    fn into_rows(self, table: &str) -> Vec<Row> {
        self.rows
            .into_iter()
            .enumerate()
            .map(|(i, (key, (counts, ledger)))| Row {
                id: format!("{table}.{}", i + 1),
                cells: key
                    .into_iter()
                    .map(Cell::Text)
                    .chain(counts.into_iter().map(Cell::Count))
                    .collect(),
                citation: None,
                entries: ledger.len(),
                ledger: ledger.into_iter().collect(),
            })
            .collect()
    }
}

/// Nearest-rank percentile `p` (in per cent) of sorted values.
fn percentile(sorted: &[u64], p: u64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len() as u64;
    let rank = (p * n).div_ceil(100).max(1);
    sorted.get(usize::try_from(rank - 1).ok()?).copied()
}

fn yes_no(b: bool) -> String {
    if b { "emergency".to_owned() } else { "not emergency".to_owned() }
}

fn seconds_between(a: Timestamp, b: Timestamp) -> u64 {
    u64::try_from(b.as_second().saturating_sub(a.as_second())).unwrap_or(0)
}

/// A request counted in the period: issued (its `submit`) or received (its `receive`) in it.
struct Counted<'a> {
    r: &'a RequestFact,
    issued: bool,
    start: &'a crate::facts::EventFact,
}

fn counted<'a>(
    facts: &'a Facts,
    node: &PartyCode,
    period: &Period,
    as_of: Timestamp,
) -> Vec<Counted<'a>> {
    facts
        .requests
        .iter()
        .filter_map(|r| {
            let issued = &r.requesting == node;
            let start = r.first(if issued { "submit" } else { "receive" }, as_of)?;
            period.contains(start.at).then_some(Counted { r, issued, start })
        })
        .collect()
}

const OUTCOMES: [&str; 6] =
    ["approve", "approve-partially", "refuse", "answer", "withdraw", "expire"];

fn request_tables(
    facts: &Facts,
    node: &PartyCode,
    period: &Period,
    as_of: Timestamp,
) -> Vec<Table> {
    let counted = counted(facts, node, period, as_of);
    let mut issued = Grid::new(8);
    let mut received = Grid::new(8);
    let mut grounds = Grid::new(1);
    let mut times: BTreeMap<Vec<String>, (Vec<u64>, BTreeSet<u64>)> = BTreeMap::new();
    let mut by_month = Grid::new(1);
    let mut bins: BTreeMap<(&'static str, usize), (u64, Vec<u64>)> = BTreeMap::new();
    for c in &counted {
        let dir = if c.issued { "issued" } else { "received" };
        let month = c.start.at.to_zoned(jiff::tz::TimeZone::UTC).strftime("%Y-%m").to_string();
        by_month.add(vec![month, dir.to_owned()], 0, 1, &[c.start.index]);
        let r = c.r;
        let partner = if c.issued { &r.requested } else { &r.requesting };
        let key =
            vec![partner.to_string(), r.kind.clone(), r.agreement.clone(), yes_no(r.emergency)];
        let grid = if c.issued { &mut issued } else { &mut received };
        grid.add(key.clone(), 0, 1, &[c.start.index]);
        let mut closed = false;
        for (col, name) in OUTCOMES.iter().enumerate() {
            if let Some(e) = r.first(name, as_of) {
                grid.add(key.clone(), col + 1, 1, &[e.index]);
                closed |= matches!(*name, "refuse" | "answer" | "withdraw" | "expire");
                if matches!(*name, "refuse" | "approve-partially") {
                    for g in &e.grounds {
                        let dir = if c.issued { "issued" } else { "received" };
                        grounds.add(
                            vec![
                                dir.to_owned(),
                                partner.to_string(),
                                r.agreement.clone(),
                                (*name).to_owned(),
                                g.clone(),
                            ],
                            0,
                            1,
                            &[e.index],
                        );
                    }
                }
            }
        }
        if !closed {
            grid.add(key.clone(), 7, 1, &[]);
        }
        if let Some(a) = r.first("answer", as_of) {
            let secs = seconds_between(c.start.at, a.at);
            let slot =
                times.entry(vec![dir.to_owned(), r.kind.clone(), partner.to_string()]).or_default();
            slot.0.push(secs);
            slot.1.extend([c.start.index, a.index]);
            let b = bins.entry((dir, bin_of(secs))).or_default();
            b.0 += 1;
            b.1.extend([c.start.index, a.index]);
        }
    }
    let cols = vec![
        "partner",
        "kind",
        "legal basis",
        "emergency",
        "count",
        "approved",
        "partially approved",
        "refused",
        "answered",
        "withdrawn",
        "expired",
        "pending",
    ];
    let note_common = "outcomes as of the end of the count; a request approved and then answered is in both columns; pending: neither refused, answered, withdrawn nor expired";
    let time_rows = times
        .into_iter()
        .enumerate()
        .map(|(i, (key, (mut d, ledger)))| {
            d.sort_unstable();
            Row {
                id: format!("time-to-answer.{}", i + 1),
                cells: key
                    .into_iter()
                    .map(Cell::Text)
                    .chain([
                        Cell::Count(d.len() as u64),
                        Cell::Seconds(percentile(&d, 50)),
                        Cell::Seconds(percentile(&d, 90)),
                    ])
                    .collect(),
                citation: None,
                entries: ledger.len(),
                ledger: ledger.into_iter().collect(),
            }
        })
        .collect();
    let mut histogram = Vec::new();
    for dir in ["issued", "received"] {
        for (i, label) in BINS.iter().enumerate() {
            let (n, ledger) = bins.remove(&(dir, i)).unwrap_or_default();
            histogram.push(Row {
                id: format!("time-to-answer-distribution.{}", histogram.len() + 1),
                cells: vec![
                    Cell::Text(dir.to_owned()),
                    Cell::Text((*label).to_owned()),
                    Cell::Count(n),
                ],
                citation: None,
                entries: ledger.len(),
                ledger,
            });
        }
    }
    vec![
        Table {
            id: "requests-issued",
            title: "Requests issued by this node",
            note: format!("requests this node submitted in the period, by requested party, kind, agreement and emergency; {note_common}"),
            citation: None,
            columns: cols.clone(),
            rows: issued.into_rows("requests-issued"),
        },
        Table {
            id: "requests-received",
            title: "Requests received by this node",
            note: format!("requests this node received in the period, by requesting party, kind, agreement and emergency; {note_common}"),
            citation: None,
            columns: cols,
            rows: received.into_rows("requests-received"),
        },
        Table {
            id: "refusal-grounds",
            title: "Refusals and partial approvals by ground",
            note: "each ground named in a refusal or partial approval of a request counted above".to_owned(),
            citation: None,
            columns: vec!["direction", "partner", "legal basis", "event", "ground", "count"],
            rows: grounds.into_rows("refusal-grounds"),
        },
        Table {
            id: "time-to-answer",
            title: "Time to answer",
            note: "from submission (issued) or receipt (received) to the answer, for requests counted above that were answered by the end of the count; median and 90th percentile by nearest rank".to_owned(),
            citation: None,
            columns: vec!["direction", "kind", "partner", "answered", "median", "p90"],
            rows: time_rows,
        },
        Table {
            id: "time-to-answer-distribution",
            title: "Time to answer, distribution",
            note: "the answered requests of the table above, by how long the answer took".to_owned(),
            citation: None,
            columns: vec!["direction", "time to answer", "answered"],
            rows: histogram,
        },
        Table {
            id: "requests-by-month",
            title: "Requests over time",
            note: "requests counted above by the month (UTC) they were submitted or received".to_owned(),
            citation: None,
            columns: vec!["month", "direction", "requests"],
            rows: by_month.into_rows("requests-by-month"),
        },
    ]
}

/// The bins of the time-to-answer distribution.
pub const BINS: [&str; 7] = [
    "under 1 hour",
    "1-8 hours",
    "8-24 hours",
    "1-3 days",
    "3-10 days",
    "10-30 days",
    "over 30 days",
];

fn bin_of(secs: u64) -> usize {
    const H: u64 = 3_600;
    const D: u64 = 86_400;
    match secs {
        s if s < H => 0,
        s if s < 8 * H => 1,
        s if s < D => 2,
        s if s < 3 * D => 3,
        s if s < 10 * D => 4,
        s if s < 30 * D => 5,
        _ => 6,
    }
}

/// Direction of a flow action, and the kind of item it moves.
fn flow_of(action: &str) -> Option<(&'static str, &'static str)> {
    Some(match action {
        "datum.share" => ("sent", "datum"),
        "datum.receive" => ("received", "datum"),
        "evidence.export" => ("sent", "evidence"),
        "evidence.receive" => ("received", "evidence"),
        "incident.notify" => ("sent", "incident"),
        "incident.receive" => ("received", "incident"),
        _ => return None,
    })
}

fn category_of(facts: &Facts, e: &EntryFact, item: &str) -> String {
    if item == "incident" {
        return "case-information".to_owned();
    }
    e.subject(item)
        .and_then(|id| facts.categories.get(&format!("{item}:{id}")))
        .cloned()
        .unwrap_or_else(|| "unknown".to_owned())
}

fn non_role_rules(e: &EntryFact) -> String {
    let rules: Vec<&str> =
        e.rules.iter().map(String::as_str).filter(|r| !r.starts_with("role.")).collect();
    if rules.is_empty() { e.rules.join(" + ") } else { rules.join(" + ") }
}

fn flow_tables(facts: &Facts) -> Vec<Table> {
    let mut flows = Grid::new(1);
    let mut denials = Grid::new(1);
    let mut consents = Grid::new(1);
    for e in &facts.entries {
        if let Some((dir, item)) = flow_of(&e.action) {
            let partner = e.partner().unwrap_or_else(|| "unknown".to_owned());
            if e.permit {
                let key = vec![
                    dir.to_owned(),
                    partner,
                    item.to_owned(),
                    category_of(facts, e, item),
                    e.agreement().unwrap_or("none").to_owned(),
                ];
                flows.add(key, 0, 1, &[e.index]);
            } else {
                let consent = e.rules.iter().any(|r| r.ends_with("#onward-transfer-needs-consent"));
                if consent && e.action == "datum.share" {
                    consents.add(
                        vec![
                            "onward transfer refused: no consent of the originator".to_owned(),
                            partner.clone(),
                        ],
                        0,
                        1,
                        &[e.index],
                    );
                }
                denials.add(
                    vec![dir.to_owned(), partner, e.action.clone(), non_role_rules(e)],
                    0,
                    1,
                    &[e.index],
                );
            }
        }
        match (e.action.as_str(), e.permit) {
            ("consent.give", true) => consents.add(
                vec!["consent given (as originator)".to_owned(), e.partner().unwrap_or_default()],
                0,
                1,
                &[e.index],
            ),
            ("consent.receive", true) => consents.add(
                vec![
                    "consent received from the originator".to_owned(),
                    e.partner().unwrap_or_default(),
                ],
                0,
                1,
                &[e.index],
            ),
            _ => {}
        }
    }
    vec![
        Table {
            id: "data-flows",
            title: "Data flows",
            note: "data items, evidence items and incident notifications sent and received in the period, permitted, by partner, category and the agreement that grounded each".to_owned(),
            citation: None,
            columns: vec!["direction", "partner", "item", "category", "agreement", "count"],
            rows: flows.into_rows("data-flows"),
        },
        Table {
            id: "flow-denials",
            title: "Flows denied, by rule",
            note: "flows refused in the period, by the rules that decided (role rules left out when an agreement rule decided)".to_owned(),
            citation: None,
            columns: vec!["direction", "partner", "action", "rule", "count"],
            rows: denials.into_rows("flow-denials"),
        },
        Table {
            id: "onward-transfer",
            title: "Onward transfer and consent",
            note: "consents this node gave as originator, consents it received from originators, and onward transfers refused for want of the originator's consent (the node has no separate consent request: a refused transfer is how a consent comes to be asked)".to_owned(),
            citation: None,
            columns: vec!["what", "party", "count"],
            rows: consents.into_rows("onward-transfer"),
        },
    ]
}

fn other_tables(facts: &Facts, period: &Period, as_of: Timestamp) -> Vec<Table> {
    let mut incidents = Grid::new(4);
    for n in facts.incidents.iter().filter(|n| period.contains(n.at)) {
        let dir = if n.sent { "sent" } else { "received" };
        let regimes: Vec<(String, Option<Timestamp>)> = if n.regimes.is_empty() {
            vec![("(notice destroyed)".to_owned(), None)]
        } else {
            n.regimes.iter().map(|(k, v)| (k.clone(), *v)).collect()
        };
        for (regime, due) in regimes {
            let key = vec![dir.to_owned(), n.partner.to_string(), regime];
            incidents.add(key.clone(), 0, 1, &[n.index]);
            let col = match due {
                Some(d) if n.at <= d => 1,
                Some(_) => 2,
                None => 3,
            };
            incidents.add(key, col, 1, &[]);
        }
    }
    let mut complaints = Grid::new(1);
    for c in facts.complaints.iter().filter(|c| period.contains(c.filed_at)) {
        complaints.add(vec!["1 filed".to_owned()], 0, 1, &[c.index]);
        match c.answered_at.filter(|a| *a < as_of) {
            Some(a) => {
                let idx: Vec<u64> = c.answer_index.into_iter().collect();
                complaints.add(vec!["2 answered".to_owned()], 0, 1, &idx);
                let when = if a <= c.due_at {
                    "3 answered within the deadline"
                } else {
                    "4 answered after the deadline"
                };
                complaints.add(vec![when.to_owned()], 0, 1, &idx);
            }
            None => {
                complaints.add(vec!["5 open".to_owned()], 0, 1, &[c.index]);
                if c.due_at < as_of {
                    complaints.add(vec!["6 open and overdue".to_owned()], 0, 1, &[c.index]);
                }
            }
        }
    }
    let mut psi = Grid::new(2);
    for q in facts.psi_asked.iter().filter(|q| period.contains(q.at)) {
        psi.add(
            vec!["asked".to_owned(), q.partner.to_string(), q.status.clone()],
            0,
            1,
            &[q.index],
        );
        psi.add(
            vec!["asked".to_owned(), q.partner.to_string(), q.status.clone()],
            1,
            q.selectors,
            &[],
        );
    }
    for q in facts.psi_answered.iter().filter(|q| period.contains(q.at)) {
        psi.add(
            vec!["answered".to_owned(), q.partner.to_string(), q.status.clone()],
            0,
            1,
            &[q.index],
        );
    }
    let mut packages = Grid::new(2);
    for p in facts.packages.iter().filter(|p| period.contains(p.at)) {
        let dir = if p.sent { "sent" } else { "received" };
        let key = vec![dir.to_owned(), p.partner.to_string(), p.status.clone()];
        packages.add(key.clone(), 0, 1, &[p.index]);
        packages.add(key, 1, p.size, &[]);
    }
    let mut psi_rows = psi.into_rows("psi");
    for r in &mut psi_rows {
        // The holder learns only the padded size of a partner's query: no selector count.
        if matches!(r.cells.first(), Some(Cell::Text(t)) if t == "answered")
            && let Some(c) = r.cells.get_mut(4)
        {
            *c = Cell::NotAvailable {
                not_available: "the holder learns only the padded size".to_owned(),
            };
        }
    }
    vec![
        Table {
            id: "incident-notifications",
            title: "Incident notifications",
            note: "notifications sent and received in the period, per regime the notice names: on time when sent or received by the earliest fixed due instant of that regime's obligations".to_owned(),
            citation: None,
            columns: vec!["direction", "partner", "regime", "notifications", "on time", "late", "no fixed deadline"],
            rows: incidents.into_rows("incident-notifications"),
        },
        Table {
            id: "complaints",
            title: "Complaints (redress)",
            note: "complaints filed in the period; answered and open as of the end of the count".to_owned(),
            citation: None,
            columns: vec!["measure", "count"],
            rows: complaints.into_rows("complaints"),
        },
        Table {
            id: "psi",
            title: "Deconfliction queries (counts only)",
            note: "private set intersection queries this node asked and partners asked it, in the period; no selector, no result".to_owned(),
            citation: None,
            columns: vec!["direction", "partner", "status", "queries", "selectors"],
            rows: psi_rows,
        },
        Table {
            id: "packages",
            title: "Evidence packages",
            note: "packages sent and offered to this node in the period, by status".to_owned(),
            citation: None,
            columns: vec!["direction", "partner", "status", "packages", "bytes"],
            rows: packages.into_rows("packages"),
        },
    ]
}

const ART28_SOURCE: &str =
    "https://gesetze.legal/eu/vo_eu_2023_1543/28 (German text of the Regulation)";

fn art28(item: char, status: &'static str) -> Citation {
    Citation {
        text: format!("Regulation (EU) 2023/1543 Art 28(2)({item})"),
        status,
        source: ART28_SOURCE,
    }
}

/// The e-Evidence Regulation's statistics, Art 28(2) (a)–(j), for orders this node issued.
fn art28_table(facts: &Facts, node: &PartyCode, period: &Period, as_of: Timestamp) -> Table {
    const REG: &str = "eu-2023-1543";
    let instrument = |k: &str| match k {
        "production" => Some("EPOC"),
        "preservation" => Some("EPOC-PR"),
        _ => None,
    };
    let type_na = "type of data: not recorded per order (all types)";
    let mut rows: Vec<(char, &'static str, String, Cell, Vec<u64>)> = Vec::new();
    let mut a: BTreeMap<(String, String, bool), Vec<u64>> = BTreeMap::new();
    let mut b: Vec<u64> = Vec::new();
    let mut c: BTreeMap<(String, String, bool, &str), Vec<u64>> = BTreeMap::new();
    let mut d: BTreeMap<(String, bool, String), Vec<u64>> = BTreeMap::new();
    let mut e: BTreeMap<(String, bool), (Vec<u64>, Vec<u64>)> = BTreeMap::new();
    for k in
        counted(facts, node, period, as_of).into_iter().filter(|k| k.issued && k.r.agreement == REG)
    {
        let Some(inst) = instrument(&k.r.kind) else { continue };
        let (to, em) = (k.r.requested.to_string(), k.r.emergency);
        a.entry((inst.to_owned(), to.clone(), em)).or_default().push(k.start.index);
        if inst == "EPOC" && em {
            b.push(k.start.index);
        }
        if let Some(ans) = k.r.first("answer", as_of) {
            c.entry((inst.to_owned(), to.clone(), em, "complied with"))
                .or_default()
                .push(ans.index);
            if inst == "EPOC" {
                let slot = e.entry((to.clone(), em)).or_default();
                slot.0.push(seconds_between(k.start.at, ans.at));
                slot.1.extend([k.start.index, ans.index]);
            }
        } else if let Some(x) = k.r.first("refuse", as_of).or_else(|| k.r.first("expire", as_of)) {
            c.entry((inst.to_owned(), to.clone(), em, "not complied with"))
                .or_default()
                .push(x.index);
            if inst == "EPOC" {
                let grounds =
                    if x.grounds.is_empty() { vec![x.name.clone()] } else { x.grounds.clone() };
                for g in grounds {
                    d.entry((to.clone(), em, g)).or_default().push(x.index);
                }
            }
        }
    }
    let em = |b: bool| if b { "emergency" } else { "not emergency" };
    for ((inst, to, e2), idx) in a {
        rows.push((
            'a',
            "V1",
            format!("{inst} issued to {to}, {}; {type_na}", em(e2)),
            Cell::Count(idx.len() as u64),
            idx,
        ));
    }
    rows.push(('b', "V1", "EPOCs issued as emergency orders (whether the order was issued without prior validation is not recorded)".to_owned(), Cell::Count(b.len() as u64), b));
    for ((inst, to, e2, what), idx) in c {
        rows.push((
            'c',
            "V1",
            format!("{inst} to {to}, {}, {what}; {type_na}", em(e2)),
            Cell::Count(idx.len() as u64),
            idx,
        ));
    }
    rows.push((
        'd',
        "V1",
        "notifications to enforcing authorities under Art 8".to_owned(),
        Cell::NotAvailable {
            not_available:
                "the node does not model the Art 8 notification of the enforcing State yet"
                    .to_owned(),
        },
        Vec::new(),
    ));
    for ((to, e2, ground), idx) in d {
        rows.push((
            'd',
            "V1",
            format!("EPOC to {to}, {}, not complied with, ground: {ground}; {type_na}", em(e2)),
            Cell::Count(idx.len() as u64),
            idx,
        ));
    }
    for ((to, e2), (secs, idx)) in e {
        let n = secs.len() as u64;
        let mean = secs.iter().map(|s| u128::from(*s)).sum::<u128>() / u128::from(n.max(1));
        rows.push((
            'e',
            "V1",
            format!(
                "EPOC to {to}, {}, complied with ({n}): average time from issue to data; {type_na}",
                em(e2)
            ),
            Cell::Seconds(u64::try_from(mean).ok()),
            idx,
        ));
    }
    for item in ['f', 'g', 'h', 'i', 'j'] {
        rows.push((
            item,
            "U",
            format!("Art 28(2)({item})"),
            Cell::NotAvailable {
                not_available:
                    "the text of this item could not be read from the stored sources; not encoded"
                        .to_owned(),
            },
            Vec::new(),
        ));
    }
    Table {
        id: "e-evidence-art28",
        title: "Regulation (EU) 2023/1543 Art 28(2): statistics for the Commission",
        note: "orders this node issued under eu-2023-1543 in the period (EPOC: production, EPOC-PR: preservation); Member States send the previous calendar year's figures to the Commission by 31 March; complied with: answered; not complied with: refused or expired by the end of the count. Items (a)-(e) read from the German text; (f)-(j) unread (U).".to_owned(),
        citation: Some(Citation {
            text: "Regulation (EU) 2023/1543 Art 28(2): statistics collected from 18 August 2026, sent yearly by 31 March".to_owned(),
            status: "V1",
            source: ART28_SOURCE,
        }),
        columns: vec!["item", "what", "value"],
        rows: rows
            .into_iter()
            .enumerate()
            .map(|(i, (item, status, what, value, ledger))| Row {
                id: format!("e-evidence-art28.{}", i + 1),
                cells: vec![Cell::Text(format!("({item})")), Cell::Text(what), value],
                citation: Some(art28(item, status)),
                entries: ledger.len(),
                ledger,
            })
            .collect(),
    }
}

/// The exact statistics of `node` over `period`, counted up to `as_of`.
pub fn compute(facts: &Facts, node: PartyCode, period: &Period, as_of: Timestamp) -> Statistics {
    let mut tables = request_tables(facts, &node, period, as_of);
    tables.extend(flow_tables(facts));
    tables.extend(other_tables(facts, period, as_of));
    tables.push(art28_table(facts, &node, period, as_of));
    Statistics {
        format: FORMAT,
        node,
        period: period.clone(),
        as_of,
        watermark: facts.watermark,
        partner: None,
        tables,
    }
}

/// The statistics of `node` over `period` restricted to what concerns `partner`.
pub fn compute_for(
    facts: Facts,
    node: PartyCode,
    partner: &PartyCode,
    period: &Period,
    as_of: Timestamp,
) -> Statistics {
    let facts = facts.for_partner(&node, partner);
    let mut s = compute(&facts, node, period, as_of);
    s.partner = Some(partner.clone());
    s
}
