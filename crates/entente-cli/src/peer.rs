//! `entente peer add|list|remove`: the partner nodes this node trusts, each pinned by its TLS
//! certificate (and the Ed25519 key inside it, which signs its envelopes). Pinning and
//! unpinning go through the gate as the operator, so the ledger shows who was trusted when.

use clap::Subcommand;
use entente_console::{Exit, Failure, denial, fail};
use entente_core::PartyCode;
use entente_node::Node;
use entente_node::federation::cert_info;
use entente_store::Verdict;
use jiff::Timestamp;
use std::path::PathBuf;

/// `entente peer …`
#[derive(Subcommand)]
pub(crate) enum PeerCmd {
    /// Pin a partner node: its party, federation URL and TLS certificate (node.cert.pem)
    Add {
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// The partner's party (e.g. DE)
        #[arg(long)]
        party: String,
        /// The partner's federation endpoint, https://host:port
        #[arg(long)]
        url: String,
        /// The partner's certificate (PEM), as its operator handed it over
        #[arg(long)]
        cert: PathBuf,
        /// The partner node's age recipient (age1…, from its `entente evidence recipient`):
        /// evidence packages for the partner are encrypted to it
        #[arg(long)]
        age_recipient: Option<String>,
    },
    /// List pinned partners with the delivery state of the messages to each
    List {
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Remove a partner's pin: nothing from it is accepted, nothing is sent to it
    Remove {
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// The partner's party
        #[arg(long)]
        party: String,
    },
}

fn verdict<O>(v: Verdict<O>) -> Result<u64, Failure> {
    match v {
        Verdict::Permitted { index, .. } => Ok(index),
        Verdict::Denied { index, decision } => Err(fail(Exit::Denied, denial(index, &decision))),
    }
}

pub(crate) async fn run(command: PeerCmd) -> Result<(), Failure> {
    match command {
        PeerCmd::Add { data_dir, party, url, cert, age_recipient } => {
            let age_recipient = match age_recipient {
                Some(r) => {
                    let r = r.trim().to_owned();
                    entente_evidence::keys::parse_recipient(&r)
                        .map_err(|e| fail(Exit::BadInput, format!("--age-recipient: {e}")))?;
                    Some(r)
                }
                None => None,
            };
            let party: PartyCode =
                party.parse().map_err(|e| fail(Exit::BadInput, format!("--party: {e}")))?;
            let text = std::fs::read_to_string(&cert).map_err(|e| {
                fail(
                    Exit::BadInput,
                    format!("{}: cannot read the certificate: {e}", cert.display()),
                )
            })?;
            let info = cert_info(&text)
                .map_err(|e| fail(Exit::BadInput, format!("{}: {e}", cert.display())))?;
            let now = Timestamp::now();
            if info.not_after.parse::<Timestamp>().is_ok_and(|t| t < now) {
                return Err(fail(
                    Exit::BadInput,
                    format!("{}: the certificate expired on {}", cert.display(), info.not_after),
                ));
            }
            let node = Node::open(&data_dir).await?;
            let command = entente_store::peers::AddPeer {
                party: party.clone(),
                url: url.trim_end_matches('/').to_owned(),
                cert_pem: info.pem.clone(),
                cert_sha256: info.sha256.clone(),
                signing_key: info.signing_key.clone(),
                age_recipient: age_recipient.clone(),
            };
            let index = verdict(node.gate.submit(node.operator(), command, now).await?)?;
            println!("pinned peer {party} at {url} (ledger entry {index})");
            println!("  certificate  {}", info.subject);
            println!("  SHA-256      {}", info.sha256);
            println!("  signing key  {} (Ed25519)", info.signing_key);
            println!("  valid        {} to {}", info.not_before, info.not_after);
            if let Some(r) = &age_recipient {
                println!("  packages to  {r} (age)");
            }
            // A deconfliction key rotated before the partner was pinned is owed to it now.
            match entente_node::psi::send_pending(&node, now).await {
                Ok(sent) => {
                    for (agreement, to, result) in sent {
                        match result {
                            Ok(Verdict::Permitted { index, output: epoch, .. }) => println!(
                                "  deconfliction key {}… of {agreement} queued for {to} (ledger entry {index})",
                                epoch.get(..12).unwrap_or(&epoch)
                            ),
                            Ok(Verdict::Denied { index, decision }) => eprintln!(
                                "warning: deconfliction key of {agreement} for {to} denied (ledger entry {index}): {}",
                                decision.reason
                            ),
                            Err(e) => eprintln!(
                                "warning: deconfliction key of {agreement} for {to} not sent: {e}"
                            ),
                        }
                    }
                }
                Err(e) => {
                    eprintln!("warning: cannot find the deconfliction keys owed to partners: {e}")
                }
            }
            Ok(())
        }
        PeerCmd::List { data_dir, json } => {
            let node = Node::open(&data_dir).await?;
            let peers = node.store.peers().await?;
            let summary = node.store.outbox_summary().await?;
            let counts = |p: &str| {
                summary
                    .iter()
                    .find(|s| s.recipient == p)
                    .map_or((0, 0, 0), |s| (s.delivered, s.pending, s.refused))
            };
            if json {
                let list: Vec<_> = peers
                    .iter()
                    .map(|p| {
                        let (delivered, pending, refused) = counts(p.party.as_str());
                        serde_json::json!({
                            "party": p.party, "url": p.url, "cert_sha256": p.cert_sha256,
                            "signing_key": p.signing_key, "added_at": p.added_at,
                            "ledger_index": p.ledger_index,
                            "age_recipient": p.age_recipient,
                            "messages": {"delivered": delivered, "pending": pending, "refused": refused},
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            println!(
                "{:<6} {:<32} {:<18} {:>9} {:>7} {:>7}",
                "party", "url", "certificate", "delivered", "pending", "refused"
            );
            for p in &peers {
                let (d, w, r) = counts(p.party.as_str());
                println!(
                    "{:<6} {:<32} {:<18} {d:>9} {w:>7} {r:>7}",
                    p.party.as_str(),
                    p.url,
                    format!("{}…", &p.cert_sha256[..16.min(p.cert_sha256.len())]),
                );
            }
            for s in
                summary.iter().filter(|s| !peers.iter().any(|p| p.party.as_str() == s.recipient))
            {
                println!(
                    "{:<6} {:<32} {:<18} {:>9} {:>7} {:>7}",
                    s.recipient,
                    "(not pinned: messages wait)",
                    "-",
                    s.delivered,
                    s.pending,
                    s.refused
                );
            }
            Ok(())
        }
        PeerCmd::Remove { data_dir, party } => {
            let party: PartyCode =
                party.parse().map_err(|e| fail(Exit::BadInput, format!("--party: {e}")))?;
            let node = Node::open(&data_dir).await?;
            let index = verdict(
                node.gate
                    .submit(
                        node.operator(),
                        entente_store::peers::RemovePeer { party: party.clone() },
                        Timestamp::now(),
                    )
                    .await?,
            )?;
            println!("removed peer {party} (ledger entry {index})");
            Ok(())
        }
    }
}
