//! `entente request show`: a request's state, history and legal clocks, read through the gate.

use clap::Subcommand;
use entente_console::{Exit, Failure, fail};
use entente_node::Node;
use entente_store::requests::ReadRequest;
use entente_store::{GateError, Verdict};
use std::path::PathBuf;

#[derive(Subcommand)]
pub(crate) enum RequestCmd {
    /// Show a request: state, history, each legal clock (due UTC and local, remaining, status)
    Show {
        /// The request id
        id: entente_core::RequestId,
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// The instant to evaluate the clocks at (RFC 3339); default: now
        #[arg(long)]
        now: Option<String>,
    },
}

pub(crate) async fn run(cmd: RequestCmd) -> Result<(), Failure> {
    let RequestCmd::Show { id, data_dir, now } = cmd;
    let now = entente_console::instant(now)?;
    let node = Node::open(&data_dir).await?;
    match node.gate.submit(node.operator(), ReadRequest { id: id.clone() }, now).await {
        Ok(Verdict::Permitted { output: r, index, .. }) => {
            print!("{}", r.show(now));
            println!("(this read is recorded at ledger entry {index})");
            Ok(())
        }
        Ok(Verdict::Denied { decision, .. }) => Err(fail(Exit::Denied, decision.reason)),
        Err(GateError::NotFound(what)) => {
            Err(fail(Exit::BadInput, format!("{what} not found in {}", data_dir.display())))
        }
        Err(e) => Err(e.into()),
    }
}
