//! `entente bench`: throughput and latency measurements behind BENCHMARKS.md. Not tests:
//! these machines are shared, so numbers are printed, never asserted.

use crate::{Failure, fail, progress_bar};
use clap::{Subcommand, ValueEnum};
use entente_core::{Actor, PartyCode, Role};
use entente_node::{InitOptions, Node};
use entente_store::{Command, Verdict};
use jiff::Timestamp;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Subcommand)]
pub(crate) enum BenchCmd {
    /// Durable ledger appends per second through the gate (case.open: effect, entry, tree hashes and signed checkpoint committed together)
    Ledger {
        /// Storage backend
        #[arg(long, value_enum, default_value = "sqlite")]
        backend: Backend,
        /// PostgreSQL URL for --backend postgres (a fresh schema is created and dropped)
        #[arg(
            long,
            env = "DATABASE_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/test"
        )]
        database_url: String,
        /// Number of appends
        #[arg(long, default_value_t = 100_000)]
        entries: u64,
        /// Concurrent submitters
        #[arg(long, default_value_t = 256)]
        concurrency: u64,
    },
    /// Inclusion and consistency proof generation latency on a ledger of N entries (SQLite)
    Proofs {
        /// Ledger size
        #[arg(long, default_value_t = 1_000_000)]
        entries: u64,
        /// Proofs of each kind to time
        #[arg(long, default_value_t = 10_000)]
        samples: u64,
    },
}

pub(crate) async fn run(cmd: BenchCmd) -> Result<(), Failure> {
    match cmd {
        BenchCmd::Ledger { backend, database_url, entries, concurrency } => {
            let dir = tempfile::tempdir()?;
            let (url, schema) = match backend {
                Backend::Sqlite => (None, None),
                Backend::Postgres => {
                    let schema = format!("bench_{}", std::process::id());
                    let url = pg_schema(&database_url, &schema).await?;
                    (Some(url), Some(schema))
                }
            };
            let node = make_node(dir.path(), url).await?;
            let rate = append(&node, entries, concurrency, "appending").await?;
            // One signed checkpoint per committed transaction (plus the node's first entry).
            let commits = node.store.checkpoints().await?.len().saturating_sub(1).max(1);
            let sample = node.store.entries(1, 1001).await?;
            let entry_bytes =
                sample.iter().map(|(_, e)| e.len()).sum::<usize>() / sample.len().max(1);
            let (size, _) = node.store.ledger_head().await?;
            let hashes = node.store.hash_range(0, u64::MAX >> 1).await?.len();
            println!(
                "ledger appends ({backend:?}): {entries} durable appends in {:.2} s = {:.0} appends/s ({concurrency} concurrent submitters, {commits} commits, {:.0} appends per commit)",
                rate.0.as_secs_f64(),
                rate.1,
                entries as f64 / commits as f64
            );
            println!(
                "per append: one case row, one ledger entry of {entry_bytes} bytes (mean), {:.2} tree hashes; per commit: one signed checkpoint and the head row",
                hashes as f64 / size.max(1) as f64
            );
            node.store.close().await;
            if let Some(schema) = schema {
                drop_schema(&database_url, &schema).await?;
            }
            Ok(())
        }
        BenchCmd::Proofs { entries, samples } => {
            let dir = tempfile::tempdir()?;
            let node = make_node(dir.path(), None).await?;
            let (took, rate) =
                append(&node, entries.saturating_sub(1), 512, "building ledger").await?;
            println!(
                "built a ledger of {entries} entries in {:.1} s ({rate:.0} appends/s)",
                took.as_secs_f64()
            );
            let (size, _) = node.store.ledger_head().await?;
            let checkpoints: Vec<u64> =
                node.store.checkpoints().await?.into_iter().map(|(s, _)| s).collect();
            let mut rng = Lcg(0x5eed);
            let mut inclusion = Vec::with_capacity(samples as usize);
            for _ in 0..samples {
                let n = rng.next() % size;
                let t = Instant::now();
                node.store.inclusion_proof(size, n).await?;
                inclusion.push(t.elapsed());
            }
            let mut consistency = Vec::with_capacity(samples as usize);
            for _ in 0..samples {
                let old = checkpoints[(rng.next() % checkpoints.len() as u64) as usize];
                let t = Instant::now();
                node.store.consistency_proof(size, old).await?;
                consistency.push(t.elapsed());
            }
            report("inclusion proof", size, &mut inclusion);
            report("consistency proof", size, &mut consistency);
            Ok(())
        }
    }
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 11
    }
}

fn report(what: &str, size: u64, samples: &mut [Duration]) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
    println!(
        "{what} at {size} entries: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs over {} samples",
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        at(1.0).as_secs_f64() * 1e6,
        samples.len()
    );
}

async fn make_node(dir: &std::path::Path, database_url: Option<String>) -> Result<Node, Failure> {
    let party: PartyCode = "NL".parse()?;
    let opts = InitOptions {
        data_dir: dir.join("node"),
        party,
        name: "benchmark node".into(),
        database_url,
        listen: ([127, 0, 0, 1], 0).into(),
    };
    Ok(Node::init(&opts, Timestamp::now()).await?)
}

async fn append(
    node: &Node,
    entries: u64,
    concurrency: u64,
    what: &str,
) -> Result<(Duration, f64), Failure> {
    let bar = progress_bar(entries, what);
    let start = Instant::now();
    let mut tasks = Vec::new();
    let per_task = entries.div_ceil(concurrency.max(1));
    for t in 0..concurrency {
        let gate = node.gate.clone();
        let bar = bar.clone();
        let lo = t * per_task;
        let hi = ((t + 1) * per_task).min(entries);
        tasks.push(tokio::spawn(async move {
            let actor = Actor::User { name: "bench".into(), role: Role::Investigator };
            for i in lo..hi {
                let cmd = Command::OpenCase {
                    id: format!("B{i}"),
                    title: format!("benchmark case {i}"),
                    concepts: vec![],
                };
                match gate.submit(actor.clone(), cmd, Timestamp::now()).await {
                    Ok(Verdict::Permitted { .. }) => bar.inc(1),
                    Ok(v) => return Err(format!("unexpected verdict {v:?}")),
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| fail(1, e))?.map_err(|e| fail(1, e))?;
    }
    let took = start.elapsed();
    bar.finish_and_clear();
    Ok((took, entries as f64 / took.as_secs_f64()))
}

async fn pg_schema(url: &str, schema: &str) -> Result<String, Failure> {
    sqlx_admin(url, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"))
        .await?;
    let sep = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{sep}options=-c%20search_path%3D{schema}"))
}

async fn drop_schema(url: &str, schema: &str) -> Result<(), Failure> {
    sqlx_admin(url, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await
}

async fn sqlx_admin(url: &str, sql: &str) -> Result<(), Failure> {
    entente_store::admin_execute(url, sql).await.map_err(|e| fail(1, format!("{url}: {e}")))
}
