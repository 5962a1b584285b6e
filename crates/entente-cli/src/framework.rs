//! `entente framework`: agreement files (treaties, protocols, regulations, bilateral MLA
//! treaties, MOUs, JIT agreements; the format is `docs/agreements.md`).
//!
//! Exit codes: 0 when every file is valid; 2 when a file is missing, unreadable or invalid
//! (each problem printed as `file:line:col: field: message`); 1 if the shipped data does not
//! validate.

use crate::{Failure, fail};
use clap::Subcommand;
use entente_core::lexicon::{Lexicon, VerificationStatus};
use entente_policy::agreement::{Agreement, builtin_agreements, parse_agreements};
use std::io::Write as _;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(crate) enum FrameworkCmd {
    /// Validate agreement files; print each problem as file:line:col: field: message
    Validate {
        /// Agreement files (TOML, see docs/agreements.md)
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the agreements shipped with Entente (data/agreements/)
    List,
}

pub(crate) async fn run(cmd: FrameworkCmd) -> Result<(), Failure> {
    let lexicon = Lexicon::builtin().map_err(|e| fail(1, e))?;
    match cmd {
        FrameworkCmd::Validate { files } => validate(&lexicon, &files),
        FrameworkCmd::List => {
            let all = builtin_agreements(&lexicon).map_err(|e| fail(1, e))?;
            print(&list(&all))
        }
    }
}

fn validate(lexicon: &Lexicon, files: &[PathBuf]) -> Result<(), Failure> {
    let mut texts: Vec<(String, String)> = Vec::new();
    let mut unreadable = Vec::new();
    for f in files {
        let name = f.display().to_string();
        match std::fs::read_to_string(f) {
            Ok(t) => texts.push((name, t)),
            Err(e) => unreadable.push(format!("{name}: cannot read the file: {e}")),
        }
    }
    let pairs: Vec<(&str, &str)> = texts.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let result = parse_agreements(&pairs, lexicon);
    let mut problems = unreadable;
    match result {
        Ok(all) if problems.is_empty() => {
            let lines: Vec<String> = all.iter().map(summary).collect();
            print(&lines.join("\n"))
        }
        Ok(_) => report(problems, files.len()),
        Err(errors) => {
            problems.extend(errors.0.iter().map(ToString::to_string));
            report(problems, files.len())
        }
    }
}

fn report(problems: Vec<String>, files: usize) -> Result<(), Failure> {
    let mut stderr = std::io::stderr().lock();
    for p in &problems {
        // Nothing more useful to do if stderr is gone; the exit code still says it.
        let _ = writeln!(stderr, "{p}");
    }
    let n = problems.len();
    Err(fail(
        2,
        format!(
            "{n} problem{} in {files} agreement file{}",
            if n == 1 { "" } else { "s" },
            if files == 1 { "" } else { "s" }
        ),
    ))
}

fn parties(a: &Agreement) -> String {
    a.parties.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(" ")
}

fn in_force(a: &Agreement) -> String {
    match a.in_force_until {
        Some(u) => format!("{} to {u}", a.in_force_from),
        None => format!("from {}", a.in_force_from),
    }
}

fn categories(a: &Agreement) -> String {
    a.categories.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
}

/// Citations (legal basis, requests, grounds, conditions) whose status is U.
fn unverified(a: &Agreement) -> usize {
    a.legal_basis
        .iter()
        .chain(a.requests.iter().map(|r| &r.basis))
        .chain(a.refusal_grounds.iter().map(|g| &g.basis))
        .chain(a.travelling_conditions.iter().map(|c| &c.basis))
        .filter(|c| c.status == VerificationStatus::U)
        .count()
}

fn summary(a: &Agreement) -> String {
    format!(
        "ok {}: {}; parties {}; in force {}; categories {}; {} unverified citation{}",
        a.id,
        a.kind,
        parties(a),
        in_force(a),
        categories(a),
        unverified(a),
        if unverified(a) == 1 { "" } else { "s" }
    )
}

fn list(all: &[Agreement]) -> String {
    let headers = ["id", "kind", "parties", "in force", "requests", "U", "categories"];
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|a| {
            vec![
                a.id.clone(),
                a.kind.to_string(),
                parties(a),
                in_force(a),
                a.requests.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>().join(", "),
                unverified(a).to_string(),
                categories(a),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (cell, w) in cells.iter().zip(&widths) {
            l.push_str(cell);
            l.push_str(&" ".repeat(w.saturating_sub(cell.chars().count()) + 2));
        }
        l.trim_end().to_owned()
    };
    let mut out = vec![
        line(&headers.map(str::to_owned)),
        line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>()),
    ];
    out.extend(rows.iter().map(|r| line(r)));
    out.push(String::new());
    out.push("U: citations with status U (unverified; see docs/agreements.md)".to_owned());
    out.join("\n")
}

fn print(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{}", text.trim_end()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(fail(1, format!("cannot write to standard output: {e}"))),
    }
}
