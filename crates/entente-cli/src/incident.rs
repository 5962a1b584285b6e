//! `entente incident`: incident-notification obligations (regimes in `data/incidents/`).
//!
//! Exit codes: 0 when the incident was assessed (whatever it found, questions included);
//! 2 when the facts file is missing, unreadable or invalid (each problem printed as
//! `file:line:col: field: message`); 1 if the shipped regimes do not validate.

use crate::{Failure, fail};
use clap::Subcommand;
use entente_policy::incident::{Assessment, Due, assess, builtin_regimes, parse_facts};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(crate) enum IncidentCmd {
    /// List every notification obligation of an incident, with due instants in UTC and local
    /// time, the questions that decide applicability, and a timeline
    Assess {
        /// The incident facts file (TOML)
        file: PathBuf,
        /// Print the assessment as JSON
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(cmd: IncidentCmd) -> Result<(), Failure> {
    match cmd {
        IncidentCmd::Assess { file, json } => {
            let name = file.display().to_string();
            let text = std::fs::read_to_string(&file)
                .map_err(|e| fail(2, format!("{name}: cannot read the file: {e}")))?;
            let facts = parse_facts(&name, &text).map_err(|e| fail(2, e))?;
            let regimes = builtin_regimes().map_err(|e| fail(1, e))?;
            let a = assess(&facts, &regimes);
            if json {
                let s = serde_json::to_string_pretty(&a).map_err(|e| fail(1, e))?;
                print(&s)
            } else {
                print(&render(&a))
            }
        }
    }
}

fn local(z: &jiff::Zoned) -> String {
    z.strftime("%Y-%m-%d %H:%M %Z").to_string()
}

fn render(a: &Assessment) -> String {
    let mut rows: Vec<[String; 7]> = vec![[
        "REGIME".into(),
        "REPORT".into(),
        "RECIPIENT".into(),
        "CLOCK STARTS AT (FACT)".into(),
        "DUE UTC".into(),
        "DUE LOCAL".into(),
        "STATUS".into(),
    ]];
    for o in &a.obligations {
        let (utc, loc) = match &o.due {
            Due::At { utc, local: l, provisional } => {
                let mark = if provisional.is_some() { " (latest)" } else { "" };
                (format!("{utc}{mark}"), local(l))
            }
            Due::WithoutUndueDelay => ("without undue delay".into(), "-".into()),
            Due::Unknown { missing } => {
                (format!("unknown: needs {}", missing.join(", ")), "-".into())
            }
        };
        let mut status = o.status.as_str().to_owned();
        if o.unverified {
            status.push_str(" UNVERIFIED");
        }
        if o.stage != entente_policy::incident::Stage::InForce {
            let _ = write!(status, " ({})", o.stage);
        }
        rows.push([
            o.regime.clone(),
            o.report_name.clone(),
            o.recipient.clone(),
            o.clock_starts.clone(),
            utc,
            loc,
            status,
        ]);
    }
    let mut widths = [0usize; 7];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = format!("Incident {} (time zone {})\n\nObligations\n", a.incident, a.time_zone);
    if a.obligations.is_empty() {
        out.push_str("  none established (see the questions)\n");
    } else {
        for r in &rows {
            let cells: Vec<String> =
                r.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
            let _ = writeln!(out, "  {}", cells.join("  ").trim_end());
        }
        out.push_str("\nWhy each applies, and caveats\n");
        for o in &a.obligations {
            let _ = writeln!(
                out,
                "  {}/{}: {} ({}); applies because {}",
                o.regime,
                o.report,
                o.deadline,
                o.regime_title,
                o.applies_because.join("; ")
            );
            for n in &o.notes {
                let _ = writeln!(out, "      note: {n}");
            }
        }
    }
    out.push_str("\nQuestions (facts that decide applicability or a deadline; not assumed)\n");
    if a.questions.is_empty() {
        out.push_str("  none\n");
    }
    for q in &a.questions {
        let _ = writeln!(out, "  [{}] {}: {}", q.regime, q.field, q.text);
    }
    out.push_str("\nTimeline (by due instant)\n");
    if a.timeline.is_empty() {
        out.push_str("  nothing dated yet\n");
    }
    for e in &a.timeline {
        let mut flags = String::new();
        if e.provisional {
            flags.push_str(" (latest, prior report not yet submitted)");
        }
        if e.unverified {
            flags.push_str(" UNVERIFIED");
        }
        let _ = writeln!(
            out,
            "  {}  {}  {}: {} -> {}{flags}",
            e.utc,
            local(&e.local),
            e.regime,
            e.report_name,
            e.recipient
        );
    }
    if !a.unused_answers.is_empty() {
        let _ = writeln!(out, "\nAnswers no regime asks: {}", a.unused_answers.join(", "));
    }
    let _ = write!(
        out,
        "\nNot applicable: {}",
        a.not_applicable.iter().map(|n| n.regime.as_str()).collect::<Vec<_>>().join(", ")
    );
    out
}

fn print(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{}", text.trim_end()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(fail(1, format!("cannot write to standard output: {e}"))),
    }
}
