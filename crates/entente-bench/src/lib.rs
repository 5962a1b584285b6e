//! `entente bench`: throughput and latency measurements behind BENCHMARKS.md. Not tests:
//! these machines are shared, so numbers are printed, never asserted.

mod evidence;
mod federation;
mod hostile;
mod intel;
mod psi;
mod report;
mod transfer;
mod ui;

use clap::{Subcommand, ValueEnum};
use entente_console::{Exit, Failure, fail, progress_bar};
use entente_core::{PartyCode, Role};
use entente_node::{InitOptions, Node};
use entente_store::Principal;
use entente_store::Verdict;
use jiff::Timestamp;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Envelopes between two node processes over mutual TLS: round-trip latency and delivery throughput, both sides committing
    Federation {
        /// Envelopes for the throughput run
        #[arg(long, default_value_t = 20_000)]
        messages: u64,
        /// Envelopes sent one at a time for the round-trip latency
        #[arg(long, default_value_t = 1_000)]
        round_trips: u64,
    },
    /// A partner's envelopes/s while the node is attacked (anonymous API flood, held sockets at every budget, anonymous 16 MiB TAXII posts), beside the same run without attack; NL's ledger entries, peak RSS and CPU per attack
    Hostile {
        /// Envelopes DE delivers to NL under each attack
        #[arg(long, default_value_t = 10_000)]
        messages: u64,
        /// Target rate of the anonymous API requests (requests/s)
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        /// Keep-alive connections the anonymous API requests are spread over
        #[arg(long, default_value_t = 8)]
        connections: usize,
        /// Attacks to run, in order (repeat `none` to see the drift of the baseline; the baseline runs first if not given)
        #[arg(
            long = "attack",
            value_enum,
            value_delimiter = ',',
            default_values_t = [hostile::Scenario::None, hostile::Scenario::AnonApi, hostile::Scenario::HeldSockets, hostile::Scenario::TaxiiAmplification, hostile::Scenario::None]
        )]
        attacks: Vec<hostile::Scenario>,
        /// Source addresses 127.0.0.1..=127.0.0.N the held sockets come from (16 fill NL's default totals; 1 is one client)
        #[arg(long, default_value_t = 16)]
        sources: u8,
        /// Seconds an attack runs before DE's process starts
        #[arg(long, default_value_t = 2)]
        warmup_secs: u64,
        /// Hard cap on each attack, in seconds
        #[arg(long, default_value_t = 600)]
        max_attack_secs: u64,
    },
    /// One evidence package between two node processes over mutual TLS (offered, fetched, hashed, fsync'd, recorded) against curl fetching the same file
    Transfer {
        /// Size of the evidence file packaged, in MiB
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
        /// How many times curl fetches it (the best time is compared)
        #[arg(long, default_value_t = 2)]
        curl_runs: u32,
    },
    /// Evidence: ingest of one large file (vs openssl, sha256sum, case_file), peak RSS, package and verify of many small files
    Evidence {
        /// Size of the large file in MiB
        #[arg(long, default_value_t = 2048)]
        size_mib: u64,
        /// Number of small files packaged and verified
        #[arg(long, default_value_t = 1000)]
        files: usize,
        /// Size of each small file in bytes
        #[arg(long, default_value_t = 4096)]
        file_size: usize,
    },
    /// Deconfliction by private set intersection against openmined-psi (PyPI) on the same items: CPU per phase, bytes, and two node processes over mutual TLS
    Psi {
        /// Selectors the holder holds
        #[arg(long, default_value_t = 100_000)]
        holder: usize,
        /// Selectors the asker asks about (half of them the holder's)
        #[arg(long, default_value_t = 1_000)]
        asker: usize,
        /// Queries the asker makes between the node processes, for the online time
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// The Python that has openmined-psi (scripts/pyenv.sh installs it in .venv)
        #[arg(long, default_value = ".venv/bin/python")]
        python: String,
        /// Only the protocol and the peer, no node processes
        #[arg(long)]
        no_nodes: bool,
    },
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
    /// Web interface page latency on a node holding N ledger entries (SQLite): an investigator's home, the case listing (first and a middle page), a case's page, and the listing as JSON, over HTTP on loopback, each view recorded
    Ui {
        /// Cases opened through the gate first (one ledger entry each)
        #[arg(long, default_value_t = 1_000_000)]
        entries: u64,
        /// Views of each page
        #[arg(long, default_value_t = 50)]
        samples: u64,
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
    /// Flow decision latency and throughput with N synthetic agreements compiled into Cedar policy, and the cost of compiling them
    Decisions {
        /// Synthetic agreements to generate and compile
        #[arg(long, default_value_t = 200)]
        agreements: usize,
        /// Flows to decide (single-thread latency run, then the throughput run)
        #[arg(long, default_value_t = 200_000)]
        decisions: usize,
        /// Threads deciding concurrently in the throughput run
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// Transparency reports over a ledger of N entries holding M requests generated through the gate: exact statistics, the ledger's oversight view and a public release, each by a fresh process (wall time, peak RSS)
    Report {
        /// Ledger entries (filled up with case openings after the requests' own entries)
        #[arg(long, default_value_t = 1_000_000)]
        entries: u64,
        /// Requests, each drafted, submitted and received, half of them answered and a fifth refused
        #[arg(long, default_value_t = 100_000)]
        requests: u64,
        /// Runs of each report command
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// Keep the generated node in this directory (a node already there is reused as is)
        #[arg(long)]
        keep: Option<std::path::PathBuf>,
    },
    /// TAXII 2.1 server vs medallion (same collection, same run): POST envelopes and paged GET; bundle import vs stix2.parse
    Intel {
        /// Indicators in the collection
        #[arg(long, default_value_t = 10_000)]
        objects: usize,
        /// GET page size
        #[arg(long, default_value_t = 100)]
        page: usize,
        /// Objects per POSTed envelope
        #[arg(long, default_value_t = 100)]
        per_envelope: usize,
        /// Indicators in the imported bundle
        #[arg(long, default_value_t = 100_000)]
        import: usize,
        /// The medallion command (from .venv)
        #[arg(long, default_value = "medallion")]
        medallion: String,
        /// The Python with the stix2 library
        #[arg(long, default_value = "python3")]
        python: String,
    },
}

/// Runs one benchmark and prints its results.
///
/// # Errors
/// A step of the benchmark failed.
pub async fn run(cmd: BenchCmd) -> Result<(), Failure> {
    match cmd {
        BenchCmd::Federation { messages, round_trips } => {
            crate::federation::run(messages, round_trips).await
        }
        BenchCmd::Hostile {
            messages,
            rate,
            connections,
            attacks,
            sources,
            warmup_secs,
            max_attack_secs,
        } => {
            crate::hostile::run(crate::hostile::Options {
                messages,
                scenarios: attacks,
                rate,
                connections,
                sources,
                warmup: Duration::from_secs(warmup_secs),
                max_attack: Duration::from_secs(max_attack_secs),
            })
            .await
        }
        BenchCmd::Transfer { size_mib, curl_runs } => {
            crate::transfer::run(size_mib, curl_runs).await
        }
        BenchCmd::Evidence { size_mib, files, file_size } => {
            crate::evidence::run(size_mib, files, file_size).await
        }
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
        BenchCmd::Ui { entries, samples } => ui::run(entries, samples).await,
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
            // What an auditor's full checks cost at this size: the ledger replayed, then
            // every state row against its entry (`ledger verify --state`).
            let t = Instant::now();
            entente_store::verify::verify_ledger(
                &node.store,
                &node.config.party,
                &node.verifier_key(),
                &mut |_, _| {},
            )
            .await
            .map_err(|e| fail(Exit::Failed, e))?;
            let took = t.elapsed().as_secs_f64();
            println!(
                "ledger verify at {size} entries: {took:.2} s ({:.0} entries/s)",
                size as f64 / took
            );
            let t = Instant::now();
            let state = entente_store::verify::verify_state(&node.store, &mut |_, _, _| {}).await?;
            let took = t.elapsed().as_secs_f64();
            if !state.differences.is_empty() {
                return Err(fail(Exit::Failed, format!("state differs: {}", state.differences[0])));
            }
            println!(
                "ledger verify --state at {size} entries: {} rows in {took:.2} s ({:.0} rows/s)",
                state.rows(),
                state.rows() as f64 / took
            );
            Ok(())
        }
        BenchCmd::Decisions { agreements, decisions, threads } => {
            decisions::run(agreements, decisions, threads)
        }
        BenchCmd::Psi { holder, asker, rounds, python, no_nodes } => {
            crate::psi::run(holder, asker, rounds, &python, !no_nodes).await
        }
        BenchCmd::Report { entries, requests, runs, keep } => {
            crate::report::run(entries, requests, runs, keep).await
        }
        BenchCmd::Intel { objects, page, per_envelope, import, medallion, python } => {
            crate::intel::run(objects, page, per_envelope, import, &medallion, &python).await
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

pub(crate) async fn make_node(
    dir: &std::path::Path,
    database_url: Option<String>,
) -> Result<Node, Failure> {
    let party: PartyCode = "NL".parse()?;
    let opts = InitOptions {
        data_dir: dir.join("node"),
        party,
        name: "benchmark node".into(),
        database_url,
        listen: ([127, 0, 0, 1], 0).into(),
        federation_listen: None,
    };
    Ok(Node::init(&opts, Timestamp::now()).await?)
}

/// A user of `node` with `role`, added with a fresh token, as its token authenticates it: the
/// benchmarks act as a user would, through the same authenticator.
pub(crate) async fn bench_user(node: &Node, role: Role) -> Result<Principal, Failure> {
    let token = bench_token(node, &format!("bench-{role}"), role).await?;
    Ok(node.store.authenticate_token(&token).await?)
}

/// Adds user `name` with `role` through the gate; its bearer token.
pub(crate) async fn bench_token(node: &Node, name: &str, role: Role) -> Result<String, Failure> {
    let token = entente_node::identity::random_hex(32)?;
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()));
    let add = entente_store::users::AddUser { name: name.into(), role, token_sha256: digest };
    entente_console::permitted(node.gate.submit(node.operator(), add, Timestamp::now()).await?)?;
    Ok(token)
}

pub(crate) async fn append(
    node: &Node,
    entries: u64,
    concurrency: u64,
    what: &str,
) -> Result<(Duration, f64), Failure> {
    let bar = progress_bar(entries, what);
    let start = Instant::now();
    let mut tasks = Vec::new();
    let per_task = entries.div_ceil(concurrency.max(1));
    let investigator = bench_user(node, Role::Investigator).await?;
    for t in 0..concurrency {
        let gate = node.gate.clone();
        let actor = investigator.clone();
        let bar = bar.clone();
        let lo = t * per_task;
        let hi = ((t + 1) * per_task).min(entries);
        tasks.push(tokio::spawn(async move {
            for i in lo..hi {
                let cmd = entente_store::cases::OpenCase {
                    id: format!("B{i}").parse().map_err(|e| format!("{e}"))?,
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
        t.await.map_err(|e| fail(Exit::Failed, e))?.map_err(|e| fail(Exit::Failed, e))?;
    }
    let took = start.elapsed();
    bar.finish_and_clear();
    Ok((took, entries as f64 / took.as_secs_f64()))
}

async fn pg_schema(url: &str, schema: &str) -> Result<String, Failure> {
    entente_store::fresh_schema(url, schema)
        .await
        .map_err(|e| fail(Exit::Failed, format!("{url}: {e}")))
}

async fn drop_schema(url: &str, schema: &str) -> Result<(), Failure> {
    entente_store::drop_schema(url, schema)
        .await
        .map_err(|e| fail(Exit::Failed, format!("{url}: {e}")))
}

/// `entente bench decisions`: synthetic agreements (generated deterministically; the shipped
/// real agreements are only five), compiled into Cedar policy, and flows decided against them.
mod decisions {
    use super::Lcg;
    use entente_console::{Exit, Failure, fail};
    use entente_core::PartyCode;
    use entente_core::lexicon::VerificationStatus;
    use entente_policy::agreement::{
        Agreement, AgreementKind, Citation, ConceptScope, DataCategory, IsoDuration,
        MinimizationRule, OnwardTransfer, Purpose, RequestKind, RequestRule, Transform,
        TravellingCondition,
    };
    use entente_policy::engine::{Engine, Flow};
    use jiff::Timestamp;
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    const EU27: [&str; 27] = [
        "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT",
        "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
    ];
    const OTHERS: [&str; 33] = [
        "US", "GB", "CA", "AU", "JP", "KR", "NZ", "CH", "NO", "IS", "BR", "AR", "CL", "MX", "ZA",
        "NG", "IN", "SG", "IL", "TR", "UA", "MA", "GH", "SN", "PH", "LK", "CO", "PE", "CR", "DO",
        "GE", "MD", "ME",
    ];
    /// Offence concepts of ETS 185 in `data/lexicon/concepts.toml`.
    const CONCEPTS: [&str; 10] = [
        "illegal-access",
        "illegal-interception",
        "data-interference",
        "system-interference",
        "misuse-of-devices",
        "computer-related-forgery",
        "computer-related-fraud",
        "child-sexual-abuse-material",
        "copyright-infringement",
        "aiding-abetting-attempt",
    ];
    const RETENTION: [&str; 4] = ["P90D", "P1Y", "P2Y", "P5Y"];
    const DEADLINES: [&str; 3] = ["P10D", "P30D", "P45D"];
    const EMERGENCY: [&str; 2] = ["PT8H", "P3D"];
    const FIELDS: [&str; 5] = ["third_party_ip", "victim_name", "email", "timestamp", "device_id"];

    struct Rng(Lcg);
    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            (self.0.next() % n.max(1) as u64) as usize
        }
        fn range(&mut self, lo: usize, hi: usize) -> usize {
            lo + self.below(hi - lo + 1)
        }
        fn chance(&mut self, percent: usize) -> bool {
            self.below(100) < percent
        }
        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[self.below(items.len())]
        }
        /// `k` distinct items, in the order drawn.
        fn distinct<T: Clone>(&mut self, items: &[T], k: usize) -> Vec<T> {
            let mut idx: Vec<usize> = (0..items.len()).collect();
            let k = k.min(items.len());
            for i in 0..k {
                let j = i + self.below(items.len() - i);
                idx.swap(i, j);
            }
            idx[..k].iter().map(|&i| items[i].clone()).collect()
        }
    }

    fn party(s: &str) -> Result<PartyCode, Failure> {
        s.parse::<PartyCode>().map_err(|e| fail(Exit::Failed, e))
    }

    fn dur(s: &str) -> Result<IsoDuration, Failure> {
        let span: jiff::Span = s.parse().map_err(|e| fail(Exit::Failed, format!("{s}: {e}")))?;
        Ok(IsoDuration { text: s.to_owned(), span })
    }

    fn cite(s: String) -> Citation {
        Citation { citation: s, status: VerificationStatus::V2, sources: vec![] }
    }

    fn date(rng: &mut Rng, from_year: usize, to_year: usize) -> jiff::civil::Date {
        let y = rng.range(from_year, to_year) as i16;
        jiff::civil::date(y, rng.range(1, 12) as i8, rng.range(1, 28) as i8)
    }

    /// `n` agreements: per 20, one multilateral treaty or protocol (10–60 parties), one
    /// regulation (20–27 EU parties), five JIT agreements (2–4 parties), two MOUs and eleven
    /// bilateral MLA treaties (pairs among 40 parties).
    pub(super) fn synthetic(n: usize, seed: u64) -> Result<Vec<Agreement>, Failure> {
        let mut rng = Rng(Lcg(seed));
        let world: Vec<&str> = EU27.iter().chain(OTHERS.iter()).copied().collect();
        let mla_pool: Vec<&str> = EU27[..20].iter().chain(OTHERS[..20].iter()).copied().collect();
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let (kind, parties, prefix): (AgreementKind, Vec<&str>, &str) = match i % 20 {
                0 => {
                    let k = rng.range(10, 60);
                    let kind = if rng.chance(50) {
                        AgreementKind::Treaty
                    } else {
                        AgreementKind::Protocol
                    };
                    (kind, rng.distinct(&world, k), "multi")
                }
                1 => {
                    let k = if rng.chance(60) { 27 } else { rng.range(20, 27) };
                    (AgreementKind::Regulation, rng.distinct(&EU27, k), "reg")
                }
                2..=6 => {
                    let k = rng.range(2, 4);
                    let mut p = rng.distinct(&EU27, k);
                    if rng.chance(20) {
                        p.push(*rng.pick(&OTHERS[..10]));
                    }
                    (AgreementKind::Jit, p, "jit")
                }
                7 | 8 => (AgreementKind::Mou, rng.distinct(&mla_pool, 2), "mou"),
                _ => (AgreementKind::BilateralMla, rng.distinct(&mla_pool, 2), "mla"),
            };
            let id = format!("{prefix}-{i:03}-{}", parties[..2].join("-").to_lowercase());
            let parties: Vec<PartyCode> =
                parties.iter().map(|p| party(p)).collect::<Result<_, _>>()?;
            let (in_force_from, in_force_until) = if kind == AgreementKind::Jit {
                let from = date(&mut rng, 2023, 2026);
                // Two-year JITs, some already ended.
                (from, from.checked_add(jiff::Span::new().years(2)).ok())
            } else {
                let from = date(&mut rng, 1995, 2025);
                (from, if rng.chance(8) { Some(date(&mut rng, 2021, 2025)) } else { None })
            };
            let in_force_until = in_force_until.filter(|u| *u > in_force_from);
            let offences = if rng.chance(30) {
                ConceptScope::AnyOffence
            } else {
                let k = rng.range(2, 5);
                ConceptScope::Concepts(
                    rng.distinct(&CONCEPTS, k).into_iter().map(str::to_owned).collect(),
                )
            };
            let k = rng.range(2, 5);
            let categories = rng.distinct(DataCategory::ALL, k);
            let k = rng.range(1, 3);
            let mut purposes = rng.distinct(Purpose::ALL, k);
            if kind == AgreementKind::Jit && !purposes.contains(&Purpose::JointInvestigation) {
                purposes[0] = Purpose::JointInvestigation;
            }
            let mut retention = BTreeMap::new();
            for c in &categories {
                if rng.chance(60) {
                    retention.insert(*c, dur(rng.pick::<&str>(&RETENTION))?);
                }
            }
            let onward_transfer = match rng.below(4) {
                0 => OnwardTransfer::Forbidden,
                1 => OnwardTransfer::Free,
                _ => OnwardTransfer::ConsentOfOriginator,
            };
            let mut minimization = Vec::new();
            for _ in 0..rng.range(0, 3) {
                minimization.push(MinimizationRule {
                    category: *rng.pick(&categories),
                    field: (*rng.pick(&FIELDS)).to_owned(),
                    transform: *rng.pick(&[
                        Transform::Drop,
                        Transform::Redact,
                        Transform::Pseudonymize,
                        Transform::TruncateIp,
                        Transform::CoarsenTime,
                    ]),
                });
            }
            let k = rng.range(1, 3);
            let mut requests = Vec::new();
            for rk in rng.distinct(RequestKind::ALL, k) {
                let preservation = rk == RequestKind::Preservation;
                requests.push(RequestRule {
                    kind: rk,
                    categories: rng.distinct(&categories, 1),
                    deadline: Some(dur(rng.pick::<&str>(&DEADLINES))?),
                    emergency_deadline: if rng.chance(40) {
                        Some(dur(rng.pick::<&str>(&EMERGENCY))?)
                    } else {
                        None
                    },
                    period: if preservation { Some(dur("P60D")?) } else { None },
                    extension: if preservation { Some(dur("P30D")?) } else { None },
                    dual_criminality: None,
                    issuing_conditions: None,
                    basis: cite(format!("{id} Art {}", rng.range(2, 30))),
                });
            }
            out.push(Agreement {
                title: format!("Synthetic {} {id}", kind.as_str()),
                kind,
                template: false,
                legal_basis: vec![cite(format!("{id} Art 1"))],
                parties,
                in_force_from,
                in_force_until,
                offences,
                categories,
                purposes,
                retention,
                onward_transfer,
                commercial_use_prohibited: rng.chance(80),
                minimization,
                requests,
                refusal_grounds: vec![],
                travelling_conditions: vec![TravellingCondition {
                    id: "purpose-limitation".into(),
                    text: "use only for the purposes of the agreement".into(),
                    basis: cite(format!("{id} Art 3")),
                }],
                dual_criminality_months: if rng.chance(50) { Some(12) } else { None },
                deconfliction: None,
                residency: Vec::new(),
                ratifications: Vec::new(),
                reservations: Vec::new(),
                id,
            });
        }
        Ok(out)
    }

    /// An owned flow; [`Spec::flow`] lends it to the engine.
    struct Spec {
        from: PartyCode,
        to: PartyCode,
        originator: PartyCode,
        origin_agreement: Option<String>,
        category: DataCategory,
        purpose: Purpose,
        concepts: Vec<String>,
        request_kind: Option<RequestKind>,
    }

    impl Spec {
        fn flow(&self) -> Flow<'_> {
            Flow {
                from: &self.from,
                to: &self.to,
                originator: &self.originator,
                origin_agreement: self.origin_agreement.as_deref(),
                category: self.category,
                purpose: self.purpose,
                concepts: &self.concepts,
                request_kind: self.request_kind,
                consents: &[],
            }
        }
    }

    fn concepts_of(rng: &mut Rng, a: &Agreement) -> Vec<String> {
        let k = rng.range(1, 2);
        match &a.offences {
            ConceptScope::AnyOffence => {
                rng.distinct(&CONCEPTS, k).into_iter().map(str::to_owned).collect()
            }
            ConceptScope::Concepts(c) => rng.distinct(c, k),
        }
    }

    /// `n` flows: about 50% meant to be permitted (two parties of an agreement in force,
    /// within its scope), 40% meant to miss (a random pair, or an agreement's pair with a
    /// category, purpose or offence it does not cover), 10% onward transfers of data received
    /// under an agreement whose onward-transfer or purpose limits forbid them. The actual
    /// outcome is whatever the engine decides; the benchmark counts it.
    fn flows(
        agreements: &[Agreement],
        n: usize,
        day: jiff::civil::Date,
        seed: u64,
    ) -> Result<Vec<Spec>, Failure> {
        let mut rng = Rng(Lcg(seed));
        let world: Vec<PartyCode> =
            EU27.iter().chain(OTHERS.iter()).map(|p| party(p)).collect::<Result<_, _>>()?;
        let live: Vec<&Agreement> = agreements.iter().filter(|a| a.in_force_on(day)).collect();
        if live.is_empty() {
            return Err(fail(Exit::Failed, "no synthetic agreement is in force today"));
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let a = *rng.pick(&live);
            let pair = rng.distinct(&a.parties.iter().collect::<Vec<_>>(), 2);
            let (from, to) = (pair[0].clone(), pair[1].clone());
            let mut s = Spec {
                originator: from.clone(),
                from,
                to,
                origin_agreement: None,
                category: *rng.pick(&a.categories),
                purpose: *rng.pick(&a.purposes),
                concepts: concepts_of(&mut rng, a),
                request_kind: if rng.chance(50) { None } else { Some(rng.pick(&a.requests).kind) },
            };
            let roll = rng.below(100);
            if roll < 50 {
                // Permitted as built.
            } else if roll < 75 {
                // A random pair, random scope.
                let pair = rng.distinct(&world, 2);
                s.from = pair[0].clone();
                s.to = pair[1].clone();
                s.originator = s.from.clone();
                s.category = *rng.pick(DataCategory::ALL);
                s.purpose = *rng.pick(Purpose::ALL);
                s.concepts = vec![(*rng.pick(&CONCEPTS)).to_owned()];
            } else if roll < 90 {
                // The agreement's pair, one criterion outside its scope.
                match rng.below(3) {
                    0 => {
                        let outside: Vec<DataCategory> = DataCategory::ALL
                            .iter()
                            .copied()
                            .filter(|c| !a.categories.contains(c))
                            .collect();
                        if !outside.is_empty() {
                            s.category = *rng.pick(&outside);
                        }
                    }
                    1 => {
                        let outside: Vec<Purpose> = Purpose::ALL
                            .iter()
                            .copied()
                            .filter(|p| !a.purposes.contains(p))
                            .collect();
                        if !outside.is_empty() {
                            s.purpose = *rng.pick(&outside);
                        }
                    }
                    _ => {
                        let outside: Vec<&str> =
                            CONCEPTS.iter().copied().filter(|c| !a.covers_concept(c)).collect();
                        if !outside.is_empty() {
                            s.concepts = vec![(*rng.pick(&outside)).to_owned()];
                        }
                    }
                }
            } else {
                // Onward: `from` received the datum from `originator` under `a` and passes it
                // to a third party.
                s.originator = s.to.clone();
                let third: Vec<&PartyCode> =
                    world.iter().filter(|p| **p != s.from && **p != s.originator).collect();
                s.to = (*rng.pick(&third)).clone();
                s.origin_agreement = Some(a.id.clone());
                if a.onward_transfer == OnwardTransfer::Free || rng.chance(20) {
                    let outside: Vec<Purpose> =
                        Purpose::ALL.iter().copied().filter(|p| !a.purposes.contains(p)).collect();
                    if !outside.is_empty() {
                        s.purpose = *rng.pick(&outside);
                    }
                }
            }
            out.push(s);
        }
        Ok(out)
    }

    fn latency(what: &str, samples: &mut [Duration]) {
        samples.sort_unstable();
        let at = |q: f64| {
            samples
                .get(((samples.len().max(1) - 1) as f64 * q) as usize)
                .map_or(0.0, |d| d.as_secs_f64() * 1e6)
        };
        println!(
            "{what}: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs over {} decisions",
            at(0.5),
            at(0.99),
            at(1.0),
            samples.len()
        );
    }

    #[derive(Default)]
    struct Mix {
        permit: usize,
        default_deny: usize,
        forbid: usize,
        error: usize,
    }

    pub(super) fn run(n: usize, decisions: usize, threads: usize) -> Result<(), Failure> {
        fn shared<T: Sync>(t: &T) -> &T {
            t
        }
        let agreements = synthetic(n, 0xa9ee)?;
        let now: Timestamp = "2026-09-01T10:00:00Z".parse()?;
        let day = now.to_zoned(jiff::tz::TimeZone::UTC).date();
        let parties: std::collections::BTreeSet<&PartyCode> =
            agreements.iter().flat_map(|a| a.parties.iter()).collect();
        let live = agreements.iter().filter(|a| a.in_force_on(day)).count();
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for a in &agreements {
            *kinds.entry(a.kind.as_str()).or_default() += 1;
        }
        println!(
            "{n} synthetic agreements ({}), {} parties, {live} in force on {day}",
            kinds.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", "),
            parties.len()
        );
        let specs = flows(&agreements, decisions, day, 0xf10e)?;

        let start = Instant::now();
        let engine = Engine::compile(agreements).map_err(|e| fail(Exit::Failed, e))?;
        let took = start.elapsed();
        println!(
            "compile: {n} agreements into {} Cedar policies in {:.1} ms",
            engine.policy_count(),
            took.as_secs_f64() * 1e3
        );
        // The engine is shared by reference between threads: it must be Sync.
        let engine = shared(&engine);

        // Warm-up, then single-thread latency with a clock read around each decision.
        for s in specs.iter().take(2_000) {
            std::hint::black_box(engine.decide_flow(&s.flow(), now));
        }
        let mut mix = Mix::default();
        // Latency of every decision, and by outcome: permitted, denied by default, forbidden.
        let mut samples: Vec<Duration> = Vec::with_capacity(specs.len());
        let mut by_outcome: [Vec<Duration>; 3] = Default::default();
        for s in &specs {
            let f = s.flow();
            let t = Instant::now();
            let d = engine.decide_flow(&f, now);
            let took = t.elapsed();
            samples.push(took);
            match d.decision.rules.first().map(String::as_str) {
                _ if d.decision.is_permit() => {
                    mix.permit += 1;
                    by_outcome[0].push(took);
                }
                Some("default-deny") => {
                    mix.default_deny += 1;
                    by_outcome[1].push(took);
                }
                Some("policy.error") | None => mix.error += 1,
                Some(_) => {
                    mix.forbid += 1;
                    by_outcome[2].push(took);
                }
            }
        }
        let pct = |k: usize| 100.0 * k as f64 / specs.len().max(1) as f64;
        println!(
            "mix: {} permitted ({:.1}%), {} denied by default ({:.1}%), {} onward transfers denied by a forbid ({:.1}%), {} errors",
            mix.permit,
            pct(mix.permit),
            mix.default_deny,
            pct(mix.default_deny),
            mix.forbid,
            pct(mix.forbid),
            mix.error
        );
        let total: Duration = samples.iter().sum();
        latency(&format!("decision latency (1 thread, {n} agreements)"), &mut samples);
        for (what, v) in ["  permitted", "  denied by default", "  forbidden onward"]
            .iter()
            .zip(by_outcome.iter_mut())
        {
            latency(what, v);
        }
        println!(
            "1 thread: {:.0} decisions/s (sum of timed calls)",
            specs.len() as f64 / total.as_secs_f64()
        );

        // Throughput: `threads` threads, each deciding its share, no per-call clock.
        let threads = threads.max(1);
        let per = specs.len().div_ceil(threads);
        let start = Instant::now();
        let permits: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = specs
                .chunks(per.max(1))
                .map(|chunk| {
                    scope.spawn(move || {
                        chunk
                            .iter()
                            .filter(|s| engine.decide_flow(&s.flow(), now).decision.is_permit())
                            .count()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().map_err(|_| fail(Exit::Failed, "a deciding thread panicked")))
                .sum::<Result<usize, Failure>>()
        })?;
        let took = start.elapsed();
        println!(
            "{threads} threads: {} decisions in {:.2} s = {:.0} decisions/s ({permits} permitted)",
            specs.len(),
            took.as_secs_f64(),
            specs.len() as f64 / took.as_secs_f64()
        );
        Ok(())
    }
}
