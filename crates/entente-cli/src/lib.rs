//! The `entente` command, as a library: `main.rs` only calls [`main`]. `entente pilot` runs
//! `entente-pilot`, `entente bench` runs `entente-bench`; the exit codes and failures are
//! `entente-console`'s, the operations the node's (`entente-node`).
//!
//! Exit codes: 0 success; 1 a check failed (verification, audit, pilot) or the node failed;
//! 2 bad input (usage, configuration, an existing node, invalid data); 3 the gate denied the
//! action.

mod alerts;
mod case;
mod complaint;
mod evidence;
mod evidence_transfer;
mod framework;
mod incident;
mod intel;
mod lexicon;
mod maintenance;
mod peer;
mod psi;
mod report;
mod request;
mod retention;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use entente_console::{Exit, Failure, fail, progress_bar};
use entente_core::{PartyCode, Role};
use entente_node::identity::random_hex;
use entente_node::{InitOptions, Node};
use entente_store::Verdict;
use jiff::Timestamp;
use sha2::Digest as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "entente",
    version,
    about = "Entente: cross-border cooperation against cyber crime, under law"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a node: identity key, TLS certificate, configuration, database
    Init {
        /// Directory to hold the node (created if missing; must not hold a node)
        #[arg(long)]
        data_dir: PathBuf,
        /// The party the node acts for (ISO 3166-1 alpha-2, e.g. NL)
        #[arg(long)]
        party: String,
        /// The authority running the node
        #[arg(long)]
        name: String,
        /// PostgreSQL URL (default: SQLite file in the data directory)
        #[arg(long)]
        database_url: Option<String>,
        /// Address the API will listen on
        #[arg(long, default_value = "127.0.0.1:7400")]
        listen: std::net::SocketAddr,
        /// Address the federation endpoint (mutual TLS, partner nodes) will listen on
        #[arg(long)]
        federation_listen: Option<std::net::SocketAddr>,
    },
    /// Run the node's HTTP API
    Serve {
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// Override the configured listen address
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Override the configured federation listen address
        #[arg(long)]
        federation_listen: Option<std::net::SocketAddr>,
        /// Serve the API, TAXII and the web interface over HTTPS, with `[api] cert`/`key` or
        /// the node's own certificate (as `[api] tls = true`)
        #[arg(long)]
        tls: bool,
    },
    /// Partner nodes: pin, list, remove
    Peer {
        #[command(subcommand)]
        command: peer::PeerCmd,
    },
    /// Manage users
    User {
        #[command(subcommand)]
        command: UserCmd,
    },
    /// Verify, prove and audit the ledger
    Ledger {
        #[command(subcommand)]
        command: LedgerCmd,
    },
    /// Complaints from individuals (redress)
    Complaint {
        #[command(subcommand)]
        command: complaint::ComplaintCmd,
    },
    /// Cross-border requests
    Request {
        #[command(subcommand)]
        command: request::RequestCmd,
    },
    /// Show the legal clocks of open requests, overdue ones first
    Alerts {
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// The instant to evaluate at (RFC 3339); default: now
        #[arg(long)]
        now: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Cases: status across borders (members and timeline)
    Case {
        #[command(subcommand)]
        command: case::CaseCmd,
    },
    /// Apply retention limits: destroy what has expired
    Retention {
        #[command(subcommand)]
        command: retention::RetentionCmd,
    },
    /// Run Operation Lantern end to end on three pilot nodes
    Pilot {
        /// Directory for the pilot nodes (default: a fresh temporary directory)
        #[arg(long)]
        dir: Option<PathBuf>,
        /// After the run, keep the nodes serving and print each dashboard's address and a
        /// sign-in token per role, until Ctrl-C
        #[arg(long)]
        keep: bool,
    },
    /// Measure throughput and latency (see BENCHMARKS.md)
    Bench {
        #[command(subcommand)]
        command: entente_bench::BenchCmd,
    },
    /// Offence lexicon (ETS 185 Arts 2-11), national provisions, dual-criminality check
    Lexicon {
        #[command(subcommand)]
        command: lexicon::LexiconCmd,
    },
    /// Agreement files: validate, list; gap analysis of scenarios; explain a flow decision
    Framework {
        #[command(subcommand)]
        command: framework::FrameworkCmd,
    },
    /// Incident notifications: every obligation, its clock and due instant, and a timeline
    Incident {
        #[command(subcommand)]
        command: incident::IncidentCmd,
    },
    /// Threat intelligence: STIX 2.1 collections under TLP 2.0, TAXII 2.1 pull and push
    Intel {
        #[command(subcommand)]
        command: intel::IntelCmd,
    },
    /// Evidence: ingest, custody chain, signed packages, offline verification, import
    Evidence {
        #[command(subcommand)]
        command: evidence::EvidenceCmd,
    },
    /// Deconfliction by private set intersection: query partners, status, key rotation
    Psi {
        #[command(subcommand)]
        command: psi::PsiCmd,
    },
    /// Back the node up, consistently, while it may be serving (database snapshot, blobs, keys, configuration, manifest)
    Backup {
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// A new (or empty) directory for the backup
        #[arg(long)]
        to: PathBuf,
    },
    /// Restore a backup into a new data directory, verified before it is put in place
    Restore {
        /// The backup directory (made by `entente backup`)
        #[arg(long)]
        from: PathBuf,
        /// The new data directory (must not exist, or be empty)
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Maintenance: sweep crash leftovers from the blob store
    Maintenance {
        #[command(subcommand)]
        command: maintenance::MaintenanceCmd,
    },
    /// The operator's view: version, database, blob store, ledger, witnesses, outbox, fetches, last backup and sweep
    Status {
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Transparency and oversight: exact statistics, the ledger seen by an oversight body, the
    /// differentially private public report and its verification
    Report {
        #[command(subcommand)]
        command: report::ReportCmd,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add a user with a role; prints the user's API token once
    Add {
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// User name
        #[arg(long)]
        name: String,
        /// Role: admin, investigator, central-authority, csirt, dpo, auditor
        #[arg(long)]
        role: String,
    },
    /// List users
    List {
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum LedgerCmd {
    /// Recompute the tree from the stored entries and check every checkpoint
    Verify {
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// Also check every state row (users, cases, members, peers, requests, data, custody)
        /// against the ledger entry that wrote it, and name each row that differs
        #[arg(long)]
        state: bool,
    },
    /// End a hold of the ledger (a witness holds a checkpoint the ledger does not extend):
    /// the node goes on from the ledger it has; recorded as ledger.release
    Release {
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// Why the node goes on (recorded as a digest), e.g. the lost entries and who was told
        #[arg(long)]
        reason: String,
    },
    /// Print an inclusion proof of entry N against the latest checkpoint
    Prove {
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// Entry index
        #[arg(long)]
        index: u64,
    },
    /// Verify a running node from its published checkpoint and tiles alone
    Audit {
        /// The node's base URL, e.g. http://127.0.0.1:7400
        url: String,
        /// The ledger's verifier key (default: fetched from the node, trust on first use)
        #[arg(long)]
        key: Option<String>,
        /// A checkpoint seen earlier: the audit proves the ledger extends it, then stores the new one there
        #[arg(long)]
        trusted_checkpoint: Option<PathBuf>,
        /// A witness's cosignature verifier key (C2SP cosignature/v1); repeat for each witness
        #[arg(long = "witness")]
        witnesses: Vec<String>,
        /// How many of the --witness keys must have cosigned the node's cosigned checkpoint; the audit then proves the ledger extends that checkpoint
        #[arg(long, default_value_t = 0)]
        witness_threshold: usize,
    },
}

/// The ledger verifier key given with `--key`, or fetched from the node at `url` (trust on
/// first use, said on standard error).
///
/// # Errors
/// The node cannot be reached.
pub(crate) async fn verifier_key(url: &str, key: Option<String>) -> Result<String, Failure> {
    Ok(match key {
        Some(k) => k,
        None => {
            let k = entente_node::audit::fetch_verifier_key(url).await?;
            eprintln!("note: verifier key taken from the node itself ({k}); pin it with --key");
            k
        }
    })
}

/// Parses the arguments, runs the command on a tokio runtime and maps the outcome to the exit
/// code (`Exit`), printing the error chain on failure.
pub fn main() -> ExitCode {
    // A closed standard output (`entente … | head -1`) ends the command quietly with 141
    // (128 + SIGPIPE, as a shell reports a C tool that the signal ended), not with a panic
    // message and 101. What the command did before is committed: each gate command is.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload_as_str().unwrap_or_default();
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        report(info);
    }));
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("ENTENTE_LOG")
        .unwrap_or_else(|_| "warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("ENTENTE_LOG_FORMAT").is_ok_and(|v| v == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {:#}", f.error);
            ExitCode::from(f.code as u8)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Cmd::Init { data_dir, party, name, database_url, listen, federation_listen } => {
            let party: PartyCode = party.parse()?;
            let node = Node::init(
                &InitOptions { data_dir, party, name, database_url, listen, federation_listen },
                Timestamp::now(),
            )
            .await?;
            println!(
                "created node {} ({}) in {}",
                node.config.party,
                node.config.name,
                node.data_dir.display()
            );
            println!("  ledger origin   {}", node.gate.origin());
            println!("  verifier key    {}", node.verifier_key());
            println!(
                "  witness key     {}",
                entente_core::witness::verifier_key(
                    &entente_core::witness::witness_name(&node.config.party),
                    &node.verifying_key()
                )
            );
            println!("  storage         {}", node.store.url());
            println!(
                "next: entente user add --data-dir {} --name NAME --role admin",
                node.data_dir.display()
            );
            Ok(())
        }
        Cmd::Serve { data_dir, listen, federation_listen, tls } => {
            let mut node = Node::open(&data_dir).await?;
            node.config.api.tls |= tls;
            let addr = listen.unwrap_or(node.config.listen);
            // Before anything starts: plain HTTP beyond loopback, or a certificate that cannot
            // be read, is the operator's to fix.
            entente_node::tls::check_plain(addr, node.config.api.tls, &node.config.api)
                .map_err(|e| fail(Exit::BadInput, e))?;
            let api_tls = if node.config.api.tls {
                Some(
                    entente_node::tls::api_tls(&node.data_dir, &node.config.api)
                        .map_err(|e| fail(Exit::BadInput, e))?,
                )
            } else {
                None
            };
            // Crash leftovers of earlier runs, after the grace period (`[maintenance]`).
            maintenance::sweep_at_start(&node).await;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            let local = listener.local_addr()?;
            let scheme = if node.config.api.tls { "https" } else { "http" };
            eprintln!("entente node {} serving on {scheme}://{local}", node.config.party);
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let stopped = move || {
                let mut rx = stop_rx.clone();
                async move {
                    let _ = rx.wait_for(|s| *s).await;
                }
            };
            // The outbox is delivered whether or not this node listens for partners.
            let deliverer = entente_node::federation::Deliverer::new(node.clone())?;
            let delivery = tokio::spawn(deliverer.run(stopped()));
            let witness = entente_node::witness::Witness::new(node.clone())?;
            let witnessing = tokio::spawn(witness.run(stopped()));
            // Packages partners offer are fetched (streamed, resumable) in the background.
            let fetcher = entente_node::transfer::Fetcher::new(node.clone())?;
            let fetching = tokio::spawn(fetcher.run(stopped()));
            // Deconfliction keys rotated on the agreements' schedule, and sent to partners
            // pinned since.
            let rotator = entente_node::psi::Rotator::new(node.clone());
            let rotating = tokio::spawn(rotator.run(stopped()));
            // Refusals of unauthenticated callers, recorded per source and window.
            let flusher = entente_node::refusals::Flusher::new(node.clone());
            let flushing = tokio::spawn(flusher.run(stopped()));
            let federation = match federation_listen.or(node.config.federation_listen) {
                Some(faddr) => {
                    let fl = tokio::net::TcpListener::bind(faddr)
                        .await
                        .with_context(|| format!("cannot listen on {faddr}"))?;
                    eprintln!(
                        "entente node {} federation (mutual TLS) on https://{}",
                        node.config.party,
                        fl.local_addr()?
                    );
                    Some(tokio::spawn(entente_node::federation::serve(node.clone(), fl, stopped())))
                }
                None => None,
            };
            let shutdown = async move {
                let _ = tokio::signal::ctrl_c().await;
                let _ = stop_tx.send(true);
            };
            entente_node::server::serve_with(node.clone(), listener, api_tls, shutdown).await?;
            let _ = delivery.await;
            let _ = witnessing.await;
            let _ = fetching.await;
            let _ = rotating.await;
            let _ = flushing.await;
            let served = match federation {
                Some(f) => f.await.map_err(|e| fail(Exit::Failed, e)).and_then(|r| Ok(r?)),
                None => Ok(()),
            };
            // What was counted after the flusher stopped (the listeners' last calls).
            entente_node::refusals::flush_all(&node).await;
            served
        }
        Cmd::Peer { command } => peer::run(command).await,
        Cmd::Psi { command } => psi::run(command).await,
        Cmd::Report { command } => report::run(command).await,
        Cmd::Backup { data_dir, to } => maintenance::backup(&data_dir, &to).await,
        Cmd::Restore { from, data_dir } => maintenance::restore(&from, &data_dir).await,
        Cmd::Maintenance { command } => maintenance::run(command).await,
        Cmd::Status { data_dir, json } => maintenance::status(&data_dir, json).await,
        Cmd::User { command: UserCmd::Add { data_dir, name, role } } => {
            let role: Role = role.parse()?;
            let node = Node::open(&data_dir).await?;
            let token = random_hex(32)?;
            let digest = hex::encode(sha2::Sha256::digest(token.as_bytes()));
            let verdict = node
                .gate
                .submit(
                    node.operator(),
                    entente_store::users::AddUser {
                        name: name.clone(),
                        role,
                        token_sha256: digest,
                    },
                    Timestamp::now(),
                )
                .await?;
            match verdict {
                Verdict::Permitted { index, .. } => {
                    println!("added user {name} ({role}), ledger entry {index}");
                    println!("token (shown once, store it safely): {token}");
                    Ok(())
                }
                Verdict::Denied { index, decision } => {
                    Err(fail(Exit::Denied, entente_console::denial(index, &decision)))
                }
            }
        }
        Cmd::User { command: UserCmd::List { data_dir } } => {
            let node = Node::open(&data_dir).await?;
            println!("{:<24} {:<18} created", "name", "role");
            for u in node.store.users().await? {
                println!("{:<24} {:<18} {}", u.name, u.role, u.created_at);
            }
            Ok(())
        }
        Cmd::Ledger { command } => ledger(command).await,
        Cmd::Pilot { dir, keep } => entente_pilot::run(dir, keep).await,
        Cmd::Retention { command } => retention::run(command).await,
        Cmd::Request { command } => request::run(command).await,
        Cmd::Complaint { command } => complaint::run(command).await,
        Cmd::Alerts { data_dir, now, json } => alerts::run(data_dir, now, json).await,
        Cmd::Bench { command } => entente_bench::run(command).await,
        Cmd::Case { command } => case::run(command).await,
        Cmd::Lexicon { command } => lexicon::run(command),
        Cmd::Framework { command } => framework::run(command).await,
        Cmd::Incident { command } => incident::run(command).await,
        Cmd::Intel { command } => intel::run(command).await,
        Cmd::Evidence { command } => evidence::run(command).await,
    }
}

async fn ledger(command: LedgerCmd) -> Result<(), Failure> {
    match command {
        LedgerCmd::Verify { data_dir, state } => {
            let node = Node::open(&data_dir).await?;
            let (size, _) = node.store.ledger_head().await?;
            let bar = progress_bar(size, "verifying");
            let result = entente_store::verify::verify_ledger(
                &node.store,
                &node.config.party,
                &node.verifier_key(),
                &mut |d, _| bar.set_position(d),
            )
            .await;
            bar.finish_and_clear();
            match result {
                Ok(r) => {
                    println!(
                        "ledger of {} is sound: {} entries, {} checkpoints verified, root {}",
                        node.config.party, r.entries, r.checkpoints, r.root
                    );
                }
                Err(e) => {
                    return Err(fail(
                        Exit::Failed,
                        format!("ledger of {} is NOT sound: {e}", node.config.party),
                    ));
                }
            }
            if state { verify_state(&node).await } else { Ok(()) }
        }
        LedgerCmd::Release { data_dir, reason } => {
            let node = Node::open(&data_dir).await?;
            let (index, hold) = entente_node::hold::release(&node, &reason).await?;
            println!(
                "hold released (ledger entry {index}, ledger.release): {} goes on from its ledger of {} entries; {}'s witness holds a checkpoint of {} entries it does not extend and will keep alarming until its operator re-pins {}",
                node.config.party,
                node.store.ledger_head().await?.0,
                hold.witness,
                hold.size,
                node.config.party
            );
            Ok(())
        }
        LedgerCmd::Prove { data_dir, index } => {
            let node = Node::open(&data_dir).await?;
            let (size, note) = node.store.ledger_head().await?;
            let note =
                note.ok_or_else(|| fail(Exit::Failed, "the ledger has no checkpoint yet"))?;
            if index >= size {
                return Err(fail(
                    Exit::BadInput,
                    format!(
                        "--index {index} is out of range: the ledger has {size} entries (0..{})",
                        size.saturating_sub(1)
                    ),
                ));
            }
            let proof = node.store.inclusion_proof(size, index).await?;
            let entry = node.store.entries(index, index + 1).await?;
            let bytes = entry
                .first()
                .map(|(_, b)| b.clone())
                .ok_or_else(|| fail(Exit::Failed, format!("entry {index} is missing")))?;
            let cp = entente_core::ledger::verify_checkpoint(&note, &node.verifier_key())?;
            entente_core::ledger::check_record(
                &proof,
                size,
                cp.root,
                index,
                entente_core::ledger::record_hash(&bytes),
            )
            .map_err(|e| fail(Exit::Failed, format!("the proof does not verify: {e}")))?;
            let out = serde_json::json!({
                "index": index,
                "tree_size": size,
                "entry": String::from_utf8_lossy(&bytes),
                "leaf_hash": entente_core::ledger::record_hash(&bytes).to_string(),
                "proof": proof.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "checkpoint": String::from_utf8_lossy(&note),
                "verifier_key": node.verifier_key(),
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        LedgerCmd::Audit { url, key, trusted_checkpoint, witnesses, witness_threshold } => {
            let key = verifier_key(&url, key).await?;
            if witness_threshold > witnesses.len() {
                return Err(fail(
                    Exit::BadInput,
                    format!(
                        "--witness-threshold {witness_threshold} needs at least that many --witness keys ({} given)",
                        witnesses.len()
                    ),
                ));
            }
            let mut trusted = match &trusted_checkpoint {
                Some(p) if p.exists() => {
                    Some(std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?)
                }
                _ => None,
            };
            if witness_threshold > 0 {
                let w =
                    entente_node::audit::check_witnesses(&url, &key, &witnesses, witness_threshold)
                        .await
                        .map_err(|e| fail(Exit::Failed, format!("audit of {url} FAILED: {e}")))?;
                println!(
                    "witnesses: checkpoint of size {} cosigned by {} ({} required)",
                    w.checkpoint.size,
                    w.cosigned_by.join(", "),
                    witness_threshold
                );
                if trusted.is_none() {
                    trusted = Some(w.note);
                }
            }
            let bar = progress_bar(0, "auditing");
            let result = entente_node::audit::audit(&url, &key, trusted.as_deref(), &mut |d, t| {
                bar.set_length(t);
                bar.set_position(d);
            })
            .await;
            bar.finish_and_clear();
            let report =
                result.map_err(|e| fail(Exit::Failed, format!("audit of {url} FAILED: {e}")))?;
            println!(
                "audit of {url}: sound. {} entries, root {}, {} entry bundles and {} hash tiles checked",
                report.checkpoint.size, report.checkpoint.root, report.bundles, report.hash_tiles
            );
            if let Some(old) = report.consistent_with {
                println!("  extends the trusted checkpoint of size {old}");
            }
            println!("  {:<16} {:<8} {:>8}", "action", "decision", "entries");
            for ((action, decision), n) in &report.actions {
                println!("  {action:<16} {decision:<8} {n:>8}");
            }
            if let Some(p) = trusted_checkpoint {
                std::fs::write(&p, &report.note)
                    .with_context(|| format!("cannot write {}", p.display()))?;
                println!("  trusted checkpoint updated in {}", p.display());
            }
            Ok(())
        }
    }
}

/// `ledger verify --state`: every state row against the entry that wrote it, as a table;
/// each difference on a line of its own; exit 1 when any.
async fn verify_state(node: &Node) -> Result<(), Failure> {
    let bar = progress_bar(entente_store::verify::state::Table::ALL.len() as u64, "checking state");
    let report = entente_store::verify::verify_state(&node.store, &mut |t, d, _| {
        bar.set_message(t.to_owned());
        bar.set_position(d);
    })
    .await;
    bar.finish_and_clear();
    let report = report?;
    println!("{:<18} {:>10} {:>22}", "table", "rows", "checked by entry only");
    for t in &report.tables {
        println!("{:<18} {:>10} {:>22}", t.table, t.rows, t.entry_only);
    }
    if report.differences.is_empty() {
        println!(
            "state of {} agrees with its ledger: {} rows in {} tables",
            node.config.party,
            report.rows(),
            report.tables.len()
        );
        return Ok(());
    }
    for d in &report.differences {
        println!("differs: {d}");
    }
    Err(fail(
        Exit::Failed,
        format!(
            "state of {} does NOT agree with its ledger: {} difference(s) in {} rows",
            node.config.party,
            report.differences.len(),
            report.rows()
        ),
    ))
}
