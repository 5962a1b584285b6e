//! `entente lexicon`: the common offence lexicon (ETS 185 Arts 2–11), national provisions and
//! the dual-criminality check, on the data shipped with Entente (`data/lexicon/`).
//!
//! Exit codes: 0 when the command ran (whatever the verdict of a check); 2 for an unknown
//! jurisdiction, provision or concept; 1 if the shipped data does not validate.

use clap::Subcommand;
use entente_console::{Exit, Failure, fail};
use entente_core::lexicon::{
    Assessed, Concept, DualCriminality, Finding, Jurisdiction, Lexicon, Provision, Verdict,
    VerificationStatus, normalize_citation,
};
use std::fmt::Write as _;
use std::io::Write as _;

#[derive(Subcommand)]
pub(crate) enum LexiconCmd {
    /// Print a jurisdiction's provisions: citation, ETS 185 concepts, maximum penalty, status
    Show {
        /// Party code (ISO 3166-1 alpha-2; UK is accepted for GB) or name
        code: String,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Print a concept (ETS 185 article) and the national provisions implementing it
    Concept {
        /// Concept id (e.g. illegal-access) or article number (e.g. 2)
        id: String,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Check dual criminality on the conduct (ETS 185 Art 25(5)): for extradition against a
    /// penalty threshold (the default), for mutual assistance on the conduct alone (--mla)
    DualCriminality {
        /// Requesting party (whose provision describes the conduct)
        #[arg(long)]
        from: String,
        /// The requesting party's provision, e.g. "Sr 138ab"
        #[arg(long)]
        provision: String,
        /// Requested party
        #[arg(long)]
        to: String,
        /// Minimum maximum custodial penalty under the governing agreement, in months (default: 12, ETS 185 Art 24(1)(a))
        #[arg(long, conflicts_with = "mla")]
        threshold_months: Option<u32>,
        /// The maximum must exceed the threshold ("more than one year", as the EU–US
        /// Extradition Agreement Art 4(1) has it) rather than reach it ("at least")
        #[arg(long, conflicts_with = "mla")]
        more_than: bool,
        /// Mutual assistance: compare the conduct only, no penalty threshold (ETS 185 Art 25(5))
        #[arg(long)]
        mla: bool,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(cmd: LexiconCmd) -> Result<(), Failure> {
    let lexicon = Lexicon::builtin().map_err(|e| fail(Exit::Failed, e))?;
    let out = match cmd {
        LexiconCmd::Show { code, json } => {
            let j = lexicon.jurisdiction(&code).map_err(|e| fail(Exit::BadInput, e))?;
            if json { serde_json::to_string_pretty(j)? } else { show(&lexicon, j) }
        }
        LexiconCmd::Concept { id, json } => {
            let k = lexicon.concept(&id).map_err(|e| fail(Exit::BadInput, e))?;
            if json {
                let provisions: Vec<serde_json::Value> = lexicon
                    .implementing(&k.id)
                    .map(|(j, p)| serde_json::json!({ "party": j.party, "provision": p }))
                    .collect();
                serde_json::to_string_pretty(
                    &serde_json::json!({ "concept": k, "provisions": provisions }),
                )?
            } else {
                concept(&lexicon, k)
            }
        }
        LexiconCmd::DualCriminality {
            from,
            provision,
            to,
            threshold_months,
            more_than,
            mla,
            json,
        } => {
            if threshold_months == Some(0) {
                return Err(fail(Exit::BadInput, "--threshold-months must be at least 1"));
            }
            let test = if mla {
                lexicon.conduct_test()
            } else {
                let mut t = lexicon.default_threshold();
                if let Some(months) = threshold_months {
                    t.months = months;
                }
                t.more_than = more_than;
                if threshold_months.is_some() || more_than {
                    t.basis = format!("given: a maximum custodial penalty of {}", t.words());
                }
                entente_core::lexicon::DcTest::Penalty(t)
            };
            let r = lexicon
                .check_dual_criminality_under(&from, &provision, &to, &test)
                .map_err(|e| fail(Exit::BadInput, e))?;
            if json {
                serde_json::to_string_pretty(&r)?
            } else {
                let mut text = String::new();
                if normalize_citation(&provision) != normalize_citation(&r.from.provision.citation)
                {
                    text = format!(
                        "(`{provision}` is {} {})\n",
                        r.from.party, r.from.provision.citation
                    );
                }
                text.push_str(&dual(&lexicon, &r));
                text
            }
        }
    };
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{}", out.trim_end()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(fail(Exit::Failed, format!("cannot write to standard output: {e}"))),
    }
}

/// Aligned columns, two spaces apart; the last column is not padded.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let n = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<String>| {
        let mut l = String::from("  ");
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 < n {
                let pad = widths[i].saturating_sub(cell.chars().count());
                l.push_str(cell);
                l.push_str(&" ".repeat(pad + 2));
            } else {
                l.push_str(cell);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(headers.iter().map(|h| (*h).to_owned()).collect());
    line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for r in rows {
        line(r.clone());
    }
    out
}

fn articles(lexicon: &Lexicon, p: &Provision) -> String {
    if p.concepts.is_empty() {
        return "none".to_owned();
    }
    let arts: Vec<String> = p
        .concepts
        .iter()
        .map(|id| {
            lexicon
                .concepts
                .iter()
                .find(|k| &k.id == id)
                .map_or_else(|| id.clone(), |k| k.article.to_string())
        })
        .collect();
    format!("Art {}", arts.join(", "))
}

/// The status cell: offence/penalty tags, with unverified and partial facts flagged.
fn status_cell(p: &Provision) -> String {
    let o = p.status;
    let pen = p.penalty.status;
    let tags = if o == pen { o.to_string() } else { format!("offence {o}, penalty {pen}") };
    let u = VerificationStatus::U;
    if o == u || pen == u {
        format!("[U] unverified ({tags})")
    } else if p.penalty.max_months.is_none() {
        format!("[U] no penalty figure ({tags})")
    } else if o == VerificationStatus::P || pen == VerificationStatus::P {
        format!("[P] partial ({tags})")
    } else {
        tags
    }
}

const LEGEND: &str = "status: V1 primary text, V2 secondary source, [P] partially verified, [U] unverified (never a basis for a decision)";

fn show(lexicon: &Lexicon, j: &Jurisdiction) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} {}: {}", j.party, j.name, j.law);
    if let Some(note) = &j.note {
        let _ = writeln!(out, "note: {note}");
    }
    let _ = writeln!(out, "{LEGEND}\n");
    let rows: Vec<Vec<String>> = j
        .provisions
        .iter()
        .map(|p| {
            vec![
                p.citation.clone(),
                articles(lexicon, p),
                p.penalty.summary(),
                status_cell(p),
                p.concepts.join(", "),
            ]
        })
        .collect();
    out.push_str(&table(&["PROVISION", "ETS 185", "MAX PENALTY", "STATUS", "CONCEPTS"], &rows));
    let _ = writeln!(out, "\nDetails");
    for p in &j.provisions {
        let _ = writeln!(out, "  {}", p.citation);
        details(&mut out, p, "    ");
    }
    out
}

fn details(out: &mut String, p: &Provision, indent: &str) {
    let _ = writeln!(out, "{indent}{}", p.description);
    if !p.aliases.is_empty() {
        let _ = writeln!(out, "{indent}also cited as: {}", p.aliases.join(", "));
    }
    if let Some(note) = &p.note {
        let _ = writeln!(out, "{indent}note: {note}");
    }
    let _ = writeln!(out, "{indent}penalty: {} [{}]", p.penalty.text, p.penalty.status);
    if let Some(proc) = &p.procedure {
        let _ = writeln!(out, "{indent}procedure: {proc}");
    }
    let _ = writeln!(
        out,
        "{indent}status: offence {} ({}), penalty {} ({}){}",
        p.status,
        p.status.meaning(),
        p.penalty.status,
        p.penalty.status.meaning(),
        p.status_note.as_ref().map(|n| format!("; research note: {n}")).unwrap_or_default()
    );
    let sources = if p.sources.is_empty() { "none".to_owned() } else { p.sources.join(", ") };
    let _ = writeln!(out, "{indent}sources: {sources}");
}

fn concept(lexicon: &Lexicon, k: &Concept) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} — ETS 185 Art {}: {}", k.id, k.article, k.name);
    let _ = writeln!(out, "  elements: {}", k.elements);
    let _ = writeln!(out, "  limits/reservations: {}", k.limits.as_deref().unwrap_or("none"));
    let _ = writeln!(
        out,
        "  status: {} ({}); sources: {}",
        k.status,
        k.status.meaning(),
        k.sources.join(", ")
    );
    let _ = writeln!(out, "\nProvisions implementing it ({LEGEND})\n");
    let rows: Vec<Vec<String>> = lexicon
        .implementing(&k.id)
        .map(|(j, p)| {
            vec![j.party.to_string(), p.citation.clone(), p.penalty.summary(), status_cell(p)]
        })
        .collect();
    if rows.is_empty() {
        let _ = writeln!(out, "  none in the lexicon");
    } else {
        out.push_str(&table(&["PARTY", "PROVISION", "MAX PENALTY", "STATUS"], &rows));
    }
    out
}

fn finding(a: &Assessed, conduct_only: bool) -> &'static str {
    match a.finding {
        Finding::Meets if conduct_only => "an offence",
        Finding::Meets => "meets threshold",
        Finding::Below => "below threshold",
        Finding::Open => "open",
    }
}

fn dual(lexicon: &Lexicon, r: &DualCriminality) -> String {
    let mut out = String::new();
    let verdict = match r.verdict {
        Verdict::Satisfied => "SATISFIED".to_owned(),
        Verdict::NotSatisfied => "NOT SATISFIED".to_owned(),
        Verdict::Undetermined => {
            "UNDETERMINED (depends on unverified, missing or case-specific facts, listed below)"
                .to_owned()
        }
    };
    let _ = writeln!(
        out,
        "Dual criminality: {} {} -> {}",
        r.from.party, r.from.provision.citation, r.to
    );
    let _ = writeln!(out, "  verdict:   {verdict}");
    let _ = writeln!(out, "  conduct:   {}", r.conduct_basis);
    match &r.threshold {
        Some(t) => {
            let _ = writeln!(out, "  threshold: {} — {}", t.words(), t.basis);
        }
        None => {
            let _ = writeln!(out, "  threshold: none (mutual assistance: the conduct decides)");
        }
    }
    let _ = writeln!(out, "  {LEGEND}\n");

    let row = |a: &Assessed| {
        vec![
            a.party.to_string(),
            a.provision.citation.clone(),
            a.shared_concepts.join(", "),
            a.provision.penalty.summary(),
            status_cell(&a.provision),
            finding(a, r.threshold.is_none()).to_owned(),
        ]
    };
    let mut rows = vec![row(&r.from)];
    rows.extend(r.matching.iter().map(row));
    let _ = writeln!(
        out,
        "Requesting provision (first row) and the requested party's provisions implementing the same conduct:"
    );
    out.push_str(&table(
        &["PARTY", "PROVISION", "SHARED CONDUCT", "MAX PENALTY", "STATUS", "FINDING"],
        &rows,
    ));
    if r.matching.is_empty() {
        let _ = writeln!(out, "  ({} has no provision in the lexicon for this conduct)", r.to);
    }
    let _ = writeln!(out, "\nReason: {}", r.reason);
    if !r.open_facts.is_empty() {
        let _ = writeln!(out, "\nOpen facts the verdict depends on:");
        for f in &r.open_facts {
            let _ = writeln!(out, "  - {f}");
        }
    }
    if !r.caveats.is_empty() {
        let _ = writeln!(out, "\nRelies on partially verified facts:");
        for c in &r.caveats {
            let _ = writeln!(out, "  - {c}");
        }
    }
    let _ = writeln!(out, "\nProvisions");
    for a in std::iter::once(&r.from).chain(&r.matching) {
        let _ = writeln!(out, "  {} {} — {}", a.party, a.provision.citation, a.explanation);
        details(&mut out, &a.provision, "    ");
    }
    let mut keys: Vec<&String> =
        std::iter::once(&r.from).chain(&r.matching).flat_map(|a| &a.provision.sources).collect();
    keys.sort();
    keys.dedup();
    if !keys.is_empty() {
        let _ = writeln!(out, "\nSources");
        for k in keys {
            let text = lexicon.source(k).map_or("(not in sources.toml)", |s| s.text.as_str());
            let _ = writeln!(out, "  {k}: {text}");
        }
    }
    out
}
