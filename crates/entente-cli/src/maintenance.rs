//! `entente backup`, `entente restore`, `entente maintenance sweep` and `entente status`:
//! arguments and printing over `entente_node::maintenance` and `entente_node::status`.

use clap::Subcommand;
use entente_console::{Exit, Failure, fail};
use entente_node::Node;
use entente_node::maintenance::{self, MaintenanceError};
use jiff::Timestamp;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub(crate) enum MaintenanceCmd {
    /// Remove crash leftovers from the blob store (temporary parts, blobs no committed row names)
    Sweep {
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// Seconds a leftover must have been untouched (default: [maintenance] sweep_grace_secs, an hour)
        #[arg(long)]
        grace: Option<u64>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Decrypt and hash every evidence blob again; name each damaged one with its items (exit 1)
    Scrub {
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// At most this many MiB read per second, so that a serving node keeps its disk (0: no limit)
        #[arg(long, default_value_t = 64)]
        rate_mib: u64,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

fn failure(e: MaintenanceError) -> Failure {
    match e {
        MaintenanceError::BadInput(m) => fail(Exit::BadInput, m),
        MaintenanceError::Failed(m) => fail(Exit::Failed, m),
        MaintenanceError::Node(e) => Failure::from(e),
        other => fail(Exit::Failed, other),
    }
}

/// `entente backup --data-dir D --to DIR`.
pub(crate) async fn backup(data_dir: &Path, to: &Path) -> Result<(), Failure> {
    let node = Node::open(data_dir).await?;
    let r = maintenance::backup(&node, to, Timestamp::now()).await.map_err(failure)?;
    let bytes: u64 = r.manifest.files.iter().map(|f| f.size).sum();
    println!(
        "backup of {} in {}: {} files, {bytes} bytes, ledger of {} entries, root {}",
        r.manifest.node.party,
        r.dir.display(),
        r.manifest.files.len(),
        r.manifest.ledger.size,
        r.manifest.ledger.root
    );
    println!("  manifest        {} ({})", maintenance::MANIFEST_FILE, r.manifest_sha256);
    println!("  recorded        ledger entry {} (node.backup)", r.ledger_index);
    println!(
        "  keys            copied as they are: protect {} like the data directory",
        r.dir.display()
    );
    if let Some(g) = r.pg_dump {
        println!("  database        {g}");
    }
    if r.manifest.blob_store != "local" {
        println!(
            "  blobs           in the object store, not in this backup: back the bucket up by its own means (versioning, replication)"
        );
    }
    Ok(())
}

/// `entente restore --from DIR --data-dir NEW`.
pub(crate) async fn restore(from: &Path, data_dir: &Path) -> Result<(), Failure> {
    let r = maintenance::restore(from, data_dir).await.map_err(failure)?;
    println!(
        "restored node {} ({}) into {}: ledger sound, {} entries, {} checkpoints, root at the backup's size {} is the manifest's {}",
        r.manifest.node.party,
        r.manifest.node.name,
        r.data_dir.display(),
        r.entries,
        r.checkpoints,
        r.manifest.ledger.size,
        r.manifest.ledger.root
    );
    println!("next: entente serve --data-dir {}", r.data_dir.display());
    Ok(())
}

pub(crate) async fn run(cmd: MaintenanceCmd) -> Result<(), Failure> {
    match cmd {
        MaintenanceCmd::Sweep { data_dir, grace, json } => {
            let node = Node::open(&data_dir).await?;
            let grace = grace.unwrap_or(node.config.maintenance.sweep_grace_secs);
            let r =
                maintenance::sweep(&node, std::time::Duration::from_secs(grace), Timestamp::now())
                    .await
                    .map_err(failure)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
                return Ok(());
            }
            if let Some(why) = &r.skipped {
                println!("nothing swept: {why}");
                return Ok(());
            }
            println!(
                "swept {} temporary parts ({} bytes) and {} blobs with no committed row ({} bytes); {} younger than {grace} s kept",
                r.parts, r.part_bytes, r.orphans, r.orphan_bytes, r.kept
            );
            if let Some(i) = r.ledger_index {
                println!("  recorded        ledger entry {i} (maintenance.sweep)");
            }
            Ok(())
        }
        MaintenanceCmd::Scrub { data_dir, rate_mib, json } => {
            let node = Node::open(&data_dir).await?;
            let bar = entente_console::progress_bar(0, "scrubbing");
            let shown = bar.clone();
            let progress = move |done: u64, total: u64| {
                shown.set_length(total);
                shown.set_position(done);
            };
            let r = maintenance::scrub(
                &node,
                rate_mib.saturating_mul(1 << 20),
                &progress,
                Timestamp::now(),
            )
            .await
            .map_err(failure);
            bar.finish_and_clear();
            let r = r?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "scrubbed {} evidence blobs ({} bytes): {} damaged",
                    r.blobs,
                    r.bytes,
                    r.damaged.len()
                );
                for d in &r.damaged {
                    println!("  damaged  {} (items {}): {}", d.blob, d.items.join(", "), d.what);
                }
                if let Some(i) = r.ledger_index {
                    println!("  recorded ledger entry {i} (maintenance.scrub)");
                }
            }
            if r.damaged.is_empty() {
                Ok(())
            } else {
                Err(fail(Exit::Failed, format!("{} evidence blob(s) are damaged", r.damaged.len())))
            }
        }
    }
}

/// The sweep `entente serve` runs at start-up (`[maintenance] sweep_at_start`); a failure is
/// reported and the node serves all the same.
pub(crate) async fn sweep_at_start(node: &Node) {
    let m = &node.config.maintenance;
    if !m.sweep_at_start {
        return;
    }
    let grace = std::time::Duration::from_secs(m.sweep_grace_secs);
    match maintenance::sweep(node, grace, Timestamp::now()).await {
        Ok(r) if r.parts + r.orphans > 0 => eprintln!(
            "swept {} temporary blob parts and {} blobs with no committed row ({} bytes), ledger entry {}",
            r.parts,
            r.orphans,
            r.part_bytes + r.orphan_bytes,
            r.ledger_index.map_or_else(|| "-".to_owned(), |i| i.to_string())
        ),
        Ok(_) => {}
        Err(e) => eprintln!("warning: the start-up sweep of crash leftovers failed: {e}"),
    }
}

/// `entente status --data-dir D [--json]`.
pub(crate) async fn status(data_dir: &Path, json: bool) -> Result<(), Failure> {
    let node = Node::open(data_dir).await?;
    let s = entente_node::status::status(&node).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    let none = || "-".to_owned();
    println!("{:<20} {} ({})", "node", s.party, s.name);
    println!("{:<20} {}", "version", s.version);
    println!("{:<20} {} {}", "database", s.database.backend, s.database.url);
    println!("{:<20} {} {}", "blob store", s.blob_store.kind, s.blob_store.location);
    println!("{:<20} {} entries", "ledger", s.ledger.size);
    println!(
        "{:<20} size {}, root {}",
        "last checkpoint",
        s.ledger.checkpoint_size,
        s.ledger.checkpoint_root.clone().unwrap_or_else(none)
    );
    println!("{:<20} {}", "fetches in flight", s.fetches_in_flight);
    let event = |e: &Option<entente_node::status::EventStatus>| {
        e.as_ref().map_or_else(none, |e| {
            format!("{} (ledger entry {}) {}", e.at, e.ledger_index, e.detail)
        })
    };
    println!("{:<20} {}", "last backup", event(&s.last_backup));
    println!("{:<20} {}", "last sweep", event(&s.last_sweep));
    println!("{:<20} {}", "last scrub", event(&s.last_scrub));
    match &s.hold {
        Some(h) => println!(
            "{:<20} ON HOLD since {} ({}'s checkpoint of {} entries): {}; see `entente ledger release`",
            "ledger hold", h.at, h.witness, h.size, h.reason
        ),
        None => println!("{:<20} none", "ledger hold"),
    }
    println!();
    println!("{:<8} {:<24} {:>14} {:<28}", "witness", "name", "cosigned size", "cosigned at");
    if s.witnesses.is_empty() {
        println!("(no partners pinned)");
    }
    for w in &s.witnesses {
        println!(
            "{:<8} {:<24} {:>14} {:<28}",
            w.party,
            w.witness,
            w.cosigned_size.map_or_else(none, |n| n.to_string()),
            w.cosigned_at.clone().unwrap_or_else(none)
        );
    }
    println!();
    println!("{:<8} {:>10} {:>10} {:>10}", "partner", "pending", "delivered", "refused");
    if s.outbox.is_empty() {
        println!("(no messages to partners)");
    }
    for o in &s.outbox {
        println!("{:<8} {:>10} {:>10} {:>10}", o.partner, o.pending, o.delivered, o.refused);
    }
    Ok(())
}
