//! `entente report stats|ledger|publish|verify`: transparency and oversight reports
//! (`docs/transparency.md`), every one recorded through the gate.

use clap::Subcommand;
use entente_console::{Exit, Failure, fail, instant, permitted, progress_bar};
use entente_node::Node;
use entente_node::reports::{self, ReportsError, VerifyError};
use entente_report::render;
use entente_report::{Period, Ratio};
use entente_store::{GateError, Principal};
use jiff::Timestamp;
use std::path::{Path, PathBuf};

/// The period of a report: `--period 2026-H2`, or `--from` and `--to`.
#[derive(clap::Args)]
pub(crate) struct PeriodArgs {
    /// A half-year (2026-H2) or a calendar year (2026)
    #[arg(long, conflicts_with_all = ["from", "to"])]
    period: Option<String>,
    /// Start of the period (RFC 3339 instant or YYYY-MM-DD, UTC), with --to
    #[arg(long, requires = "to")]
    from: Option<String>,
    /// End of the period, exclusive (RFC 3339 instant or YYYY-MM-DD, UTC), with --from
    #[arg(long, requires = "from")]
    to: Option<String>,
}

/// `entente report …`
#[derive(Subcommand)]
pub(crate) enum ReportCmd {
    /// Exact statistics of a period for oversight bodies and the Commission, computed from the
    /// ledger and the store; each row names the ledger entries it counts (--explain ROW)
    Stats {
        #[command(flatten)]
        period: PeriodArgs,
        /// Only what concerns this partner party (e.g. DE)
        #[arg(long)]
        partner: Option<entente_core::PartyCode>,
        /// List the ledger entries one row counts (a row id such as requests-issued.2)
        #[arg(long)]
        explain: Option<String>,
        /// Print JSON
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print CSV (table,row,column,value)
        #[arg(long)]
        csv: bool,
        /// Also write a self-contained HTML report with charts to this file
        #[arg(long)]
        html: Option<PathBuf>,
        /// Read as this user of the node (an auditor or DPO; default: the operator)
        #[arg(long)]
        user: Option<String>,
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// Count as of this instant (RFC 3339; default: now)
        #[arg(long)]
        now: Option<String>,
    },
    /// The oversight view of the ledger for a period: entries per action and outcome, denials by
    /// rule, witness cosignatures, alarms, and weeks to look at
    Ledger {
        #[command(flatten)]
        period: PeriodArgs,
        /// Print JSON
        #[arg(long)]
        json: bool,
        /// Read as this user of the node (an auditor or DPO; default: the operator)
        #[arg(long)]
        user: Option<String>,
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// Count as of this instant (RFC 3339; default: now)
        #[arg(long)]
        now: Option<String>,
    },
    /// Publish the differentially private public report of a half-year (JSON, CSV, HTML):
    /// the stored release again, or a new release that spends privacy budget (--new-release)
    Publish {
        /// The half-year (2026-H2) or calendar year (2026)
        #[arg(long)]
        period: String,
        /// ε of a new release (default: [reports] epsilon of entente.toml)
        #[arg(long)]
        epsilon: Option<String>,
        /// Draw a new release even if the period has one (spends its ε)
        #[arg(long)]
        new_release: bool,
        /// Directory the report files are written to
        #[arg(long)]
        out: PathBuf,
        /// The data-protection officer of this node who publishes
        #[arg(long)]
        user: String,
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
        /// Count as of this instant (RFC 3339; default: now)
        #[arg(long)]
        now: Option<String>,
    },
    /// Check a published report against the ledger a node publishes (its tiles): the file is
    /// the one the ledger records, in a ledger that audits against its signed checkpoint
    Verify {
        /// The report's JSON file
        file: PathBuf,
        /// The node's base URL, e.g. http://127.0.0.1:7400
        #[arg(long)]
        url: String,
        /// The ledger's verifier key (default: fetched from the node, trust on first use)
        #[arg(long)]
        key: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

fn reports_failure(e: ReportsError) -> Failure {
    match e {
        ReportsError::Report(e) => fail(Exit::BadInput, e),
        ReportsError::Gate(e) => {
            let internal = matches!(
                e,
                GateError::Store(_)
                    | GateError::Encoding(_)
                    | GateError::Internal(_)
                    | GateError::Closed
            );
            fail(if internal { Exit::Failed } else { Exit::BadInput }, e)
        }
        other => fail(Exit::Failed, other),
    }
}

fn bound(flag: &str, text: &str) -> Result<Timestamp, Failure> {
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    text.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| {
            fail(
                Exit::BadInput,
                format!(
                    "{flag} `{text}`: expected an RFC 3339 instant or a date such as 2026-07-01"
                ),
            )
        })
}

fn period_of(p: PeriodArgs) -> Result<Period, Failure> {
    match (p.period, p.from, p.to) {
        (Some(p), None, None) => Period::parse(&p).map_err(|e| fail(Exit::BadInput, e)),
        (None, Some(f), Some(t)) => Period::between(bound("--from", &f)?, bound("--to", &t)?)
            .map_err(|e| fail(Exit::BadInput, e)),
        _ => Err(fail(Exit::BadInput, "give --period (e.g. 2026-H2) or both --from and --to")),
    }
}

async fn who(node: &Node, user: Option<&str>) -> Result<Principal, Failure> {
    Ok(match user {
        Some(u) => node.operator_for(u).await?,
        None => node.operator(),
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    std::fs::write(path, bytes)
        .map_err(|e| fail(Exit::Failed, format!("cannot write {}: {e}", path.display())))
}

pub(crate) async fn run(cmd: ReportCmd) -> Result<(), Failure> {
    match cmd {
        ReportCmd::Stats { period, partner, explain, json, csv, html, user, data_dir, now } => {
            let period = period_of(period)?;
            let now = instant(now)?;
            let node = Node::open(&data_dir).await?;
            let who = who(&node, user.as_deref()).await?;
            let verdict = reports::statistics(&node, who, &period, partner.as_ref(), now)
                .await
                .map_err(reports_failure)?;
            let (index, stats) = permitted(verdict)?;
            if let Some(path) = &html {
                write(path, render::statistics_html(&stats).as_bytes())?;
            }
            if let Some(row) = explain {
                let Some((table, r)) = stats.explain(&row) else {
                    let ids = stats.row_ids();
                    let some: Vec<&str> = ids.iter().take(12).copied().collect();
                    return Err(fail(
                        Exit::BadInput,
                        format!(
                            "--explain {row}: no such row in these statistics; rows are named TABLE.N, e.g. {}",
                            if some.is_empty() {
                                "none in this period".to_owned()
                            } else {
                                some.join(", ")
                            }
                        ),
                    ));
                };
                if json {
                    println!(
                        "{}",
                        serde_json::json!({ "row": r.id, "table": table.id, "cells": r.cells, "ledger": r.ledger, "access_ledger_index": index })
                    );
                } else {
                    let cells: Vec<String> = table
                        .columns
                        .iter()
                        .zip(&r.cells)
                        .map(|(c, v)| format!("{c}: {}", v.render()))
                        .collect();
                    println!("{} — {}\n  {}", r.id, table.title, cells.join("; "));
                    println!(
                        "  counts {} ledger entries: {}",
                        r.ledger.len(),
                        r.ledger.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
                    );
                }
                return Ok(());
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else if csv {
                print!("{}", stats.to_csv());
            } else {
                print!("{}", stats.to_text());
                println!("\n(read recorded at ledger entry {index})");
                if let Some(path) = &html {
                    println!("HTML report: {}", path.display());
                }
            }
            Ok(())
        }
        ReportCmd::Ledger { period, json, user, data_dir, now } => {
            let period = period_of(period)?;
            let now = instant(now)?;
            let node = Node::open(&data_dir).await?;
            let who = who(&node, user.as_deref()).await?;
            let verdict =
                reports::ledger_view(&node, who, &period, now).await.map_err(reports_failure)?;
            let (index, view) = permitted(verdict)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print!("{}", view.to_text());
                println!("\n(read recorded at ledger entry {index})");
            }
            Ok(())
        }
        ReportCmd::Publish { period, epsilon, new_release, out, user, data_dir, json, now } => {
            let period = Period::parse(&period).map_err(|e| fail(Exit::BadInput, e))?;
            let epsilon = epsilon
                .map(|e| {
                    Ratio::parse(&e).map_err(|m| fail(Exit::BadInput, format!("--epsilon {m}")))
                })
                .transpose()?;
            let now = instant(now)?;
            std::fs::create_dir_all(&out)
                .map_err(|e| fail(Exit::BadInput, format!("--out {}: {e}", out.display())))?;
            let node = Node::open(&data_dir).await?;
            let who = node.operator_for(&user).await?;
            let verdict = reports::publish(&node, who, &period, epsilon, new_release, now)
                .await
                .map_err(reports_failure)?;
            let (index, p) = permitted(verdict)?;
            let r = &p.report;
            let stem =
                out.join(format!("transparency-{}-{}-release-{}", r.node, r.period, r.release));
            let (jf, cf, hf) = (
                stem.with_extension("json"),
                stem.with_extension("csv"),
                stem.with_extension("html"),
            );
            write(&jf, &p.bytes)?;
            write(&cf, render::public_csv(r).as_bytes())?;
            write(&hf, render::public_html(r, &p.digest).as_bytes())?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "period": r.period, "release": r.release, "reissued": p.reissued,
                        "digest": p.digest, "ledger_index": r.ledger_index, "access_ledger_index": index,
                        "epsilon": r.mechanism.epsilon, "noise_95": r.mechanism.noise_95, "budget": r.budget,
                        "totals": r.totals, "files": { "json": jf, "csv": cf, "html": hf },
                    })
                );
            } else {
                println!(
                    "{} release {} of {} for {} (ledger entry {}, this publication entry {index}); ε = {}, 95% of the noise within ± {}; budget: {} spent of {}, {} left",
                    if p.reissued { "the stored" } else { "new" },
                    r.release,
                    r.node,
                    r.period,
                    r.ledger_index,
                    r.mechanism.epsilon,
                    r.mechanism.noise_95,
                    r.budget.spent,
                    r.budget.per_period,
                    r.budget.remaining
                );
                for t in &r.totals {
                    println!(
                        "  requests {}: {} (answered with some data {}, refused {})",
                        t.direction,
                        t.requests,
                        entente_report::public::share_text(t.answered_per_mille()),
                        entente_report::public::share_text(t.refused_per_mille())
                    );
                }
                println!(
                    "  {}\n  {}\n  {}\n  SHA-256 {}",
                    jf.display(),
                    cf.display(),
                    hf.display(),
                    p.digest
                );
            }
            Ok(())
        }
        ReportCmd::Verify { file, url, key, json } => {
            let bytes = std::fs::read(&file)
                .map_err(|e| fail(Exit::BadInput, format!("{}: {e}", file.display())))?;
            let key = crate::verifier_key(&url, key).await?;
            let bar = progress_bar(0, "auditing the ledger");
            let result = reports::verify(&bytes, &url, &key, &mut |d, t| {
                bar.set_length(t);
                bar.set_position(d);
            })
            .await;
            bar.finish_and_clear();
            let v = result.map_err(|e| match e {
                VerifyError::File(e) => fail(Exit::BadInput, format!("{}: {e}", file.display())),
                other => fail(Exit::Failed, format!("{} FAILED: {other}", file.display())),
            })?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "verified": true, "digest": v.digest, "ledger_index": v.entry.index, "checkpoint_size": v.checkpoint_size, "node": v.report.node, "period": v.report.period, "release": v.report.release })
                );
            } else {
                println!(
                    "{}: OK — release {} of {} for {}, SHA-256 {}, recorded at ledger entry {} ({}); the ledger audits at checkpoint size {} ({} entry bundles)",
                    file.display(),
                    v.report.release,
                    v.report.node,
                    v.report.period,
                    v.digest,
                    v.entry.index,
                    v.entry.reason,
                    v.checkpoint_size,
                    v.bundles
                );
            }
            Ok(())
        }
    }
}
