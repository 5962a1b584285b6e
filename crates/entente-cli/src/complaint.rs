//! `entente complaint show`: a complaint (redress), what was found for its identifier and
//! where it went, read through the gate.

use clap::Subcommand;
use entente_console::{Exit, Failure, fail};
use entente_node::Node;
use entente_store::redress::ReadComplaint;
use entente_store::{GateError, Verdict};
use jiff::Timestamp;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(crate) enum ComplaintCmd {
    /// Show a complaint: deadline, state, the data found for its identifier and the flows out of this node
    Show {
        /// The complaint id
        id: String,
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(cmd: ComplaintCmd) -> Result<(), Failure> {
    let ComplaintCmd::Show { id, data_dir, json } = cmd;
    let node = Node::open(&data_dir).await?;
    let c = match node
        .gate
        .submit(node.operator(), ReadComplaint { id: id.clone() }, Timestamp::now())
        .await
    {
        Ok(Verdict::Permitted { output: c, .. }) => c,
        Ok(Verdict::Denied { decision, .. }) => return Err(fail(Exit::Denied, decision.reason)),
        Err(GateError::NotFound(what)) => {
            return Err(fail(
                Exit::BadInput,
                format!("{what} not found in {}", data_dir.display()),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&c)?);
        return Ok(());
    }
    println!(
        "complaint {}: {} (filed {} by {}, answer due {} — {})",
        c.id, c.state, c.filed_at, c.filed_by, c.due_at, c.deadline_basis
    );
    if let Some(d) = &c.decision {
        println!(
            "decision: {d}, answered {}",
            c.answered_at.map_or_else(|| "?".to_owned(), |t| t.to_string())
        );
    }
    println!("data held on the identifier: {}", c.items.len());
    for i in &c.items {
        println!(
            "  {:<24} {:<32} originator {:<3} from {:<3} under {:<20} {}",
            i.id,
            i.category,
            i.originator,
            i.received_from.as_deref().unwrap_or("-"),
            i.origin_agreement.as_deref().unwrap_or("-"),
            if i.destroyed { "destroyed" } else { "held" }
        );
    }
    println!("flows out of this node: {}", c.flows.len());
    for f in &c.flows {
        println!(
            "  {:<24} to {:<3} {:<32} under {:<20} (ledger entry {})",
            f.datum_id, f.recipient, f.category, f.agreement, f.ledger_index
        );
    }
    Ok(())
}
