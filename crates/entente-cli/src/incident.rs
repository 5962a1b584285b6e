//! `entente incident`: incident-notification obligations (regimes in `data/incidents/`).
//!
//! Exit codes: 0 when the incident was assessed (whatever it found, questions included);
//! 2 when the facts file is missing, unreadable or invalid (each problem printed as
//! `file:line:col: field: message`); 1 if the shipped regimes do not validate.
//!
//! `incident notify` sends the incident's facts and assessment to a partner through the gate
//! (decided by the agreements in force, purpose incident-response; exit 3 when denied, with
//! the ledger entry of the denial); `incident received` lists the notifications sent and
//! received (one recorded reading).

use clap::Subcommand;
use entente_console::{Exit, Failure, fail};
use entente_core::PartyCode;
use entente_node::Node;
use entente_policy::incident::{Assessment, Due, assess, builtin_regimes, parse_facts};
use entente_store::Verdict;
use jiff::Timestamp;
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
    /// Notify a partner (its CSIRT or authority) of the incident over the federation: the facts
    /// and the assessment travel under the agreement in force that grounds an incident-response
    /// flow to it, with that agreement's conditions
    Notify {
        /// The incident facts file (TOML)
        file: PathBuf,
        /// The partner party to notify (e.g. DE)
        #[arg(long)]
        to: String,
        /// The agreement expected to ground the notification (refused if another one does)
        #[arg(long)]
        agreement: Option<String>,
        /// The user of this node who notifies (a CSIRT, central authority or investigator)
        #[arg(long)]
        user: String,
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List the incident notifications this node sent and received
    Received {
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(cmd: IncidentCmd) -> Result<(), Failure> {
    match cmd {
        IncidentCmd::Assess { file, json } => {
            let name = file.display().to_string();
            let text = std::fs::read_to_string(&file)
                .map_err(|e| fail(Exit::BadInput, format!("{name}: cannot read the file: {e}")))?;
            let facts = parse_facts(&name, &text).map_err(|e| fail(Exit::BadInput, e))?;
            let regimes = builtin_regimes().map_err(|e| fail(Exit::Failed, e))?;
            let a = assess(&facts, &regimes);
            if json {
                let s = serde_json::to_string_pretty(&a).map_err(|e| fail(Exit::Failed, e))?;
                print(&s)
            } else {
                print(&render(&a))
            }
        }
        IncidentCmd::Notify { file, to, agreement, user, data_dir, json } => {
            let name = file.display().to_string();
            let text = std::fs::read_to_string(&file)
                .map_err(|e| fail(Exit::BadInput, format!("{name}: cannot read the file: {e}")))?;
            let facts = parse_facts(&name, &text).map_err(|e| fail(Exit::BadInput, e))?;
            let to: PartyCode =
                to.parse().map_err(|e| fail(Exit::BadInput, format!("--to {to}: {e}")))?;
            let regimes = builtin_regimes().map_err(|e| fail(Exit::Failed, e))?;
            let notice = entente_store::notice_of(&facts, &assess(&facts, &regimes));
            let node = Node::open(&data_dir).await?;
            let actor = crate::evidence::user_actor(&node, &user).await?;
            let command =
                entente_store::incidents::NotifyIncident { to: to.clone(), agreement, notice };
            match node.gate.submit(actor, command, Timestamp::now()).await? {
                Verdict::Permitted { index, decision, output: m } => {
                    let id = m.payload.get("id").cloned().unwrap_or_default();
                    let conditions = m.payload.get("conditions").cloned().unwrap_or_default();
                    if json {
                        let body = serde_json::json!({
                            "id": id, "to": to, "ledger_index": index, "seq": m.seq,
                            "rules": decision.rules, "conditions": conditions,
                        });
                        print(&serde_json::to_string_pretty(&body)?)
                    } else {
                        print(&format!(
                            "notification {} of incident {} to {to}: permitted by {} (ledger entry {index}); \
                             queued as message {} to {to}, delivered by `entente serve`\nconditions: {}",
                            id.as_str().unwrap_or_default(),
                            facts.id,
                            decision.rules.join(", "),
                            m.seq,
                            conditions
                        ))
                    }
                }
                Verdict::Denied { index, decision } => Err(fail(
                    Exit::Denied,
                    format!(
                        "notification of incident {} to {to} denied by {} (ledger entry {index}): {}",
                        facts.id,
                        decision.rules.join(", "),
                        decision.reason
                    ),
                )),
            }
        }
        IncidentCmd::Received { data_dir, json } => {
            let node = Node::open(&data_dir).await?;
            let v = node
                .gate
                .submit(
                    node.operator(),
                    entente_store::incidents::ReadIncidentNotifications,
                    Timestamp::now(),
                )
                .await?;
            let (index, list) = entente_console::permitted(v)?;
            if json {
                let body = serde_json::json!({"notifications": list, "ledger_index": index});
                return print(&serde_json::to_string_pretty(&body)?);
            }
            let mut out = String::new();
            if list.is_empty() {
                out.push_str("no incident notifications sent or received\n");
            }
            for n in &list {
                let (arrow, verb) =
                    if n.direction == "sent" { ("to", "sent") } else { ("from", "received") };
                let _ = write!(
                    out,
                    "{} {verb} {arrow} {} at {} (ledger entry {})",
                    n.id, n.party, n.at, n.ledger_index
                );
                let Some(notice) = &n.notice else {
                    let _ = writeln!(
                        out,
                        ": destroyed at {} (retention limit passed; digest {})",
                        n.destroyed_at.map_or_else(|| "-".to_owned(), |t| t.to_string()),
                        n.notice_sha256
                    );
                    continue;
                };
                let _ = writeln!(
                    out,
                    ": incident {} ({}, time zone {})",
                    notice.incident,
                    notice.jurisdictions.iter().map(|j| j.as_str()).collect::<Vec<_>>().join(", "),
                    notice.time_zone
                );
                let _ = writeln!(
                    out,
                    "  under {}: purposes {}; keep until {}; onward transfer {}; commercial use {}",
                    n.agreement,
                    n.conditions.purposes.iter().map(kebab).collect::<Vec<_>>().join(", "),
                    n.retain_until.map_or_else(|| "no limit".to_owned(), |t| t.to_string()),
                    kebab(&n.conditions.onward_transfer),
                    if n.conditions.commercial_use_prohibited { "prohibited" } else { "allowed" }
                );
                for o in &notice.obligations {
                    let mark = if o.unverified { " UNVERIFIED" } else { "" };
                    let _ = writeln!(
                        out,
                        "  {}/{} {} -> {}: due {} ({}){mark}",
                        o.regime, o.report, o.report_name, o.recipient, o.due, o.status
                    );
                }
                for q in &notice.questions {
                    let _ = writeln!(out, "  question: {q}");
                }
            }
            let _ = write!(out, "(this reading is ledger entry {index})");
            print(&out)
        }
    }
}

fn kebab<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
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
        Err(e) => Err(fail(Exit::Failed, format!("cannot write to standard output: {e}"))),
    }
}
