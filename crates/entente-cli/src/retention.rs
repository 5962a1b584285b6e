//! `entente retention run`: destroys the data (and the received incident notifications) whose
//! retention limit has passed, each through the gate (one ledger entry per item, keeping its
//! digest as proof of what was destroyed).

use clap::Subcommand;
use entente_console::{Exit, Failure, denial, fail};
use entente_node::Node;
use entente_store::Verdict;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(crate) enum RetentionCmd {
    /// Destroy every datum whose retention limit has passed
    Run {
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// The instant to apply the limits at (RFC 3339, e.g. 2028-11-27T00:00:00Z); default: now
        #[arg(long)]
        now: Option<String>,
    },
}

pub(crate) async fn run(cmd: RetentionCmd) -> Result<(), Failure> {
    let RetentionCmd::Run { data_dir, now } = cmd;
    let now = entente_console::instant(now)?;
    let node = Node::open(&data_dir).await?;
    // Evidence past its limit: the data key is destroyed (crypto-shredding).
    for (id, index) in entente_node::packages::run_retention(&node, now).await? {
        println!("destroyed evidence {id}: data key destroyed (ledger entry {index})");
    }
    // Received incident notifications past the limit that travelled with them.
    let mut refused = 0usize;
    for (from, id) in node.store.notifications_due_for_destruction(now).await? {
        let from: entente_core::PartyCode = from.parse()?;
        let command = entente_store::incidents::DestroyIncidentNotification {
            from: from.clone(),
            id: id.clone(),
        };
        match node.gate.submit(node.operator(), command, now).await? {
            Verdict::Permitted { index, .. } => {
                println!("destroyed incident notification {id} from {from} (ledger entry {index})");
            }
            Verdict::Denied { index, decision } => {
                refused += 1;
                println!("NOT destroyed incident notification {id}: {}", denial(index, &decision));
            }
        }
    }
    if refused > 0 {
        return Err(fail(
            Exit::Denied,
            "some expired incident notifications could not be destroyed",
        ));
    }
    let due = node.store.data_due_for_destruction(now).await?;
    if due.is_empty() {
        println!("retention at {now}: nothing has expired");
        return Ok(());
    }
    let mut destroyed = 0usize;
    for id in &due {
        match node
            .gate
            .submit(node.operator(), entente_store::flows::DestroyDatum { id: id.clone() }, now)
            .await?
        {
            Verdict::Permitted { index, .. } => {
                destroyed += 1;
                println!("destroyed {id} (ledger entry {index})");
            }
            Verdict::Denied { index, decision } => {
                println!("NOT destroyed {id}: {}", denial(index, &decision));
            }
        }
    }
    println!("retention at {now}: {destroyed} of {} expired data items destroyed", due.len());
    if destroyed < due.len() {
        return Err(fail(Exit::Denied, "some expired data could not be destroyed"));
    }
    Ok(())
}
