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
    /// List the cases this node holds, its own and the partner-led ones it mirrors, in order of id, with their parties and open requests
    List {
        /// Start after this case id (the `next` of the previous page)
        #[arg(long)]
        after: Option<entente_core::CaseId>,
        /// Cases on the page (1 to 200)
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(command: CaseCmd) -> Result<(), Failure> {
    let (id, data_dir, json) = match command {
        CaseCmd::Status { id, data_dir, json } => (id, data_dir, json),
        CaseCmd::List { after, limit, data_dir, json } => {
            return list(after, limit, &data_dir, json).await;
        }
    };
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

/// `entente case list`: one page of the listing, recorded as one `case.list` entry.
async fn list(
    after: Option<entente_core::CaseId>,
    limit: u32,
    data_dir: &std::path::Path,
    json: bool,
) -> Result<(), Failure> {
    let command = entente_store::cases::ListCases::new(after, limit)
        .map_err(|e| entente_console::fail(entente_console::Exit::BadInput, e))?;
    let node = Node::open(data_dir).await?;
    let (index, page) =
        permitted(node.gate.submit(node.operator(), command, Timestamp::now()).await?)?;
    if json {
        let mut body = serde_json::to_value(&page)?;
        body["ledger_index"] = serde_json::json!(index);
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    println!(
        "{:<20} {:<8} {:<16} {:<28} {:>5} {:>7}  {:<44} title",
        "case", "lead", "parties", "opened", "open", "overdue", "next deadline"
    );
    for c in &page.cases {
        let lead = if c.led_here { format!("{} (us)", c.lead) } else { c.lead.clone() };
        let next = c.next_due.as_ref().map_or_else(
            || "-".to_owned(),
            |n| format!("{} ({}; {}, {})", n.due, n.request, n.rule, n.status),
        );
        println!(
            "{:<20} {:<8} {:<16} {:<28} {:>5} {:>7}  {next:<44} {}",
            c.id,
            lead,
            c.members.join(","),
            c.opened_at.to_string(),
            c.open_requests,
            c.overdue_requests,
            c.title.as_deref().unwrap_or("(the title stays with the lead)")
        );
    }
    if page.cases.is_empty() {
        println!("(no case on this page)");
    }
    if let Some(next) = &page.next_after {
        println!("more: entente case list --after {next}");
    }
    println!("(this reading is ledger entry {index})");
    Ok(())
}
