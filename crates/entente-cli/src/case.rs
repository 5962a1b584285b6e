//! `entente case status`: a case's members and timeline, read through the gate as the local
//! operator (one recorded access).

use clap::Subcommand;
use entente_console::{Failure, permitted};
use entente_node::Node;
use jiff::Timestamp;
use std::path::PathBuf;

/// `entente case …`
#[derive(Subcommand)]
pub(crate) enum CaseCmd {
    /// Show a case's status: the case, its member parties and the timeline of its ledger entries
    Status {
        /// Case id
        id: entente_core::CaseId,
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(command: CaseCmd) -> Result<(), Failure> {
    let CaseCmd::Status { id, data_dir, json } = command;
    let node = Node::open(&data_dir).await?;
    let command = entente_store::cases::ReadCaseStatus { case_id: id };
    let (index, status) =
        permitted(node.gate.submit(node.operator(), command, Timestamp::now()).await?)?;
    if json {
        let mut body = serde_json::to_value(&status)?;
        body["ledger_index"] = serde_json::json!(index);
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let c = &status.case;
    println!("case {}: {}", c.id, c.title);
    println!(
        "  offence concepts  {}",
        if c.concepts.is_empty() { "-".into() } else { c.concepts.join(", ") }
    );
    println!(
        "  opened            {} by {} (ledger entry {})",
        c.opened_at, c.opened_by, c.ledger_index
    );
    if let Some(m) = &status.mirror {
        println!(
            "  led by            {} (this node's mirror, as of {}'s ledger entry {}: {}; applied {})",
            m.lead, m.lead, m.lead_index, m.change, m.updated_at
        );
        println!(
            "  travelled under   {} (keep until {}; conditions {})",
            m.conditions.agreement,
            m.conditions.retain_until.as_deref().unwrap_or("no limit"),
            m.conditions.conditions.join(", ")
        );
    }
    println!("members:");
    println!("  {:<8} {:<8} {:<28} {:<30} entry", "party", "role", "agreement", "since");
    for m in &status.members {
        println!(
            "  {:<8} {:<8} {:<28} {:<30} {}",
            m.party,
            m.role,
            m.agreement.as_deref().unwrap_or("-"),
            m.added_at,
            m.ledger_index
        );
    }
    println!("timeline:");
    println!("  {:<6} {:<30} {:<20} {:<32} decision", "entry", "time", "action", "actor");
    for e in &status.timeline {
        println!("  {:<6} {:<30} {:<20} {:<32} {}", e.index, e.time, e.action, e.actor, e.decision);
    }
    println!("(this reading is ledger entry {index})");
    Ok(())
}
