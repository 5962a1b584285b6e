//! `entente bench federation`: envelopes between two node processes on loopback over mutual
//! TLS, both sides committing every envelope durably (SQLite, synchronous=FULL).
//!
//! 1. DE shares `messages + round_trips` data items with NL through its gate (each leaves one
//!    outbox message in the share's transaction).
//! 2. Round trip: with NL's `entente serve` running, this process (holding DE's data
//!    directory) sends `round_trips` envelopes of DE's outbox one at a time over DE's link to
//!    NL (`entente_node::federation::{seal_pending, PeerLink}`) and times each from the POST to
//!    the verified, signed acknowledgement (NL's gate has committed the datum and its entry).
//! 3. Throughput: DE's `entente serve` starts and its deliverer drains the rest of the
//!    outbox; envelopes per second from the first acknowledgement to the last, each side
//!    committing (NL the data, DE the recorded acknowledgements).

use entente_console::{Exit, Failure, fail, progress_bar};
use entente_core::{PartyCode, Role};
use entente_node::federation::{PeerLink, cert_info, seal_pending};
use entente_node::{InitOptions, Node};
use entente_store::{Principal, Verdict};
use jiff::Timestamp;
use std::path::Path;
use std::time::{Duration, Instant};

pub(crate) fn free_port() -> Result<u16, Failure> {
    Ok(entente_node::config::free_loopback_port()?)
}

pub(crate) async fn node(root: &Path, party: &str) -> Result<Node, Failure> {
    let opts = InitOptions {
        data_dir: root.join(party.to_lowercase()),
        party: party.parse()?,
        name: format!("benchmark node {party}"),
        database_url: None,
        listen: ([127, 0, 0, 1], free_port()?).into(),
        federation_listen: Some(([127, 0, 0, 1], free_port()?).into()),
    };
    Ok(Node::init(&opts, Timestamp::now()).await?)
}

/// `a` pins `b`: its certificate, and its age recipient for packages.
pub(crate) async fn pin(a: &Node, b: &Node) -> Result<(), Failure> {
    let pem = std::fs::read_to_string(b.data_dir.join(entente_node::identity::CERT_FILE))?;
    let info = cert_info(&pem).map_err(|e| fail(Exit::Failed, e))?;
    let faddr =
        b.config.federation_listen.ok_or_else(|| fail(Exit::Failed, "no federation address"))?;
    let v = a
        .gate
        .submit(
            a.operator(),
            entente_store::peers::AddPeer {
                party: b.config.party.clone(),
                url: format!("https://{faddr}"),
                cert_pem: info.pem,
                cert_sha256: info.sha256,
                signing_key: info.signing_key,
                age_recipient: Some(entente_node::packages::vault(b)?.0.recipient()),
            },
            Timestamp::now(),
        )
        .await?;
    match v {
        Verdict::Permitted { .. } => Ok(()),
        v => Err(fail(Exit::Failed, format!("pinning refused: {v:?}"))),
    }
}

/// A node process, killed when dropped.
pub(crate) struct Serve(tokio::process::Child);

impl Serve {
    /// The node process's id (while it runs).
    pub(crate) fn pid(&self) -> Option<u32> {
        self.0.id()
    }

    /// Stops the process as Ctrl-C would (SIGINT: it finishes what is in progress and records
    /// what it counted, e.g. the refusals of its window), killing it after `grace`.
    pub(crate) async fn stop(mut self, grace: Duration) -> Result<(), Failure> {
        let Some(pid) = self.0.id() else {
            return Ok(());
        };
        let signalled =
            tokio::process::Command::new("kill").args(["-INT", &pid.to_string()]).status().await?;
        if !signalled.success() {
            return Err(fail(Exit::Failed, format!("kill -INT {pid} failed")));
        }
        match tokio::time::timeout(grace, self.0.wait()).await {
            Ok(r) => {
                r?;
                Ok(())
            }
            Err(_) => {
                self.0.kill().await?;
                Err(fail(Exit::Failed, format!("process {pid} did not stop within {grace:?}")))
            }
        }
    }
}

pub(crate) async fn serve(n: &Node) -> Result<Serve, Failure> {
    let faddr =
        n.config.federation_listen.ok_or_else(|| fail(Exit::Failed, "no federation address"))?;
    serve_dir(&n.data_dir, n.config.listen, faddr).await
}

/// `entente serve` on a data directory this process does not hold open.
pub(crate) async fn serve_dir(
    data_dir: &Path,
    listen: std::net::SocketAddr,
    faddr: std::net::SocketAddr,
) -> Result<Serve, Failure> {
    let child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["serve", "--data-dir"])
        .arg(data_dir)
        .args(["--listen", &listen.to_string()])
        .args(["--federation-listen", &faddr.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(data_dir.join("serve.log"))?)
        .kill_on_drop(true)
        .spawn()?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if let Ok(r) = http.get(format!("http://{listen}/healthz")).send().await
            && r.status().is_success()
        {
            return Ok(Serve(child));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = std::fs::read_to_string(data_dir.join("serve.log")).unwrap_or_default();
    Err(fail(
        Exit::Failed,
        format!("the node process of {} did not start: {}", data_dir.display(), log.trim()),
    ))
}

/// Shares `count` data items from `de` to NL, `concurrency` submitters at a time.
pub(crate) async fn load_outbox(de: &Node, count: u64, concurrency: u64) -> Result<(), Failure> {
    let actor = outbox_actor(de).await?;
    share_with_nl(de, &actor, 0..count, concurrency, "DE shares data with NL (outbox)").await
}

/// An investigator of `de` and the case `BENCH` it shares from.
pub(crate) async fn outbox_actor(de: &Node) -> Result<Principal, Failure> {
    let actor = crate::bench_user(de, Role::Investigator).await?;
    let open = entente_store::cases::OpenCase {
        id: "BENCH".parse()?,
        title: "federation benchmark".into(),
        concepts: vec!["illegal-access".into()],
    };
    de.gate.submit(actor.clone(), open, Timestamp::now()).await?;
    Ok(actor)
}

/// `actor` adds and shares with NL the data items `b<i>` for `i` in `items` (each share leaves
/// one outbox message in its transaction), `concurrency` submitters at a time.
pub(crate) async fn share_with_nl(
    de: &Node,
    actor: &Principal,
    items: std::ops::Range<u64>,
    concurrency: u64,
    what: &str,
) -> Result<(), Failure> {
    let count = items.end.saturating_sub(items.start);
    let bar = progress_bar(count, what);
    let per = count.div_ceil(concurrency.max(1));
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let (gate, bar, actor) = (de.gate.clone(), bar.clone(), actor.clone());
        let lo = items.start + t * per;
        let hi = (items.start + (t + 1) * per).min(items.end);
        tasks.push(tokio::spawn(async move {
            let nl: PartyCode = "NL".parse().map_err(|e| format!("{e}"))?;
            for i in lo..hi {
                let mut content = serde_json::Map::new();
                content.insert("c2_ip".into(), serde_json::json!("203.0.113.77"));
                content.insert("n".into(), serde_json::json!(i));
                let id: entente_core::DatumId =
                    format!("b{i}").parse().map_err(|e| format!("{e}"))?;
                let add = entente_store::flows::AddDatum {
                    id: id.clone(),
                    case_id: "BENCH".parse().map_err(|e| format!("{e}"))?,
                    category: entente_policy::agreement::DataCategory::Traffic,
                    content,
                };
                let share = entente_store::flows::ShareDatum {
                    id,
                    to: nl.clone(),
                    purpose: entente_policy::agreement::Purpose::JointInvestigation,
                    request_kind: None,
                };
                match gate.submit(actor.clone(), add, Timestamp::now()).await {
                    Ok(Verdict::Permitted { .. }) => {}
                    Ok(v) => return Err(format!("unexpected verdict {v:?}")),
                    Err(e) => return Err(e.to_string()),
                }
                match gate.submit(actor.clone(), share, Timestamp::now()).await {
                    Ok(Verdict::Permitted { .. }) => {}
                    Ok(v) => return Err(format!("unexpected verdict {v:?}")),
                    Err(e) => return Err(e.to_string()),
                }
                bar.inc(1);
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| fail(Exit::Failed, e))?.map_err(|e| fail(Exit::Failed, e))?;
    }
    bar.finish_and_clear();
    Ok(())
}

/// The throughput phase of a run: what DE's deliverer delivered.
pub(crate) struct Drained {
    /// Envelopes delivered and acknowledged.
    pub(crate) done: u64,
    /// Envelopes per second from the first acknowledgement to the last.
    pub(crate) steady: f64,
    /// Envelopes per second including DE's process start.
    pub(crate) overall: f64,
}

/// Starts DE's `entente serve` and waits until its deliverer has drained DE's outbox to `to`
/// (`messages` envelopes expected, for the progress bar); the process, still running.
pub(crate) async fn drain(
    de: &Node,
    to: &PartyCode,
    messages: u64,
    what: &str,
) -> Result<(Serve, Drained), Failure> {
    let before = de.store.outbox_summary().await?;
    let delivered0 = before.iter().map(|s| s.delivered).sum::<u64>();
    let total = delivered0 + before.iter().map(|s| s.pending).sum::<u64>();
    let spawned = Instant::now();
    let de_proc = serve(de).await?;
    let bar = progress_bar(messages, what);
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    let (done, last) = loop {
        // Cheap polling (an index lookup, not a count over the outbox: the machine has two
        // cores and the nodes need them): sequence numbers are contiguous, so the first one
        // still waiting tells how many were delivered.
        let next = de.store.pending_messages(to, 1).await?.first().map(|m| m.seq);
        let delivered = next.map_or(total, |seq| seq - 1).saturating_sub(delivered0);
        let pending = next.map_or(0, |seq| total + 1 - seq);
        bar.set_position(delivered);
        if delivered > 0 && first.is_none() {
            first = Some((Instant::now(), delivered));
        }
        if pending == 0 {
            break (delivered, Instant::now());
        }
        if Instant::now() > deadline {
            return Err(fail(
                Exit::Failed,
                format!("outbox not drained after 600 s ({pending} waiting)"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    bar.finish_and_clear();
    let (t_first, n_first) = first.unwrap_or((last, 0));
    let steady = (done - n_first) as f64 / (last - t_first).as_secs_f64().max(1e-9);
    let overall = done as f64 / (last - spawned).as_secs_f64().max(1e-9);
    Ok((de_proc, Drained { done, steady, overall }))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(crate) async fn run(messages: u64, round_trips: u64) -> Result<(), Failure> {
    let tmp = tempfile::tempdir()?;
    let nl = node(tmp.path(), "NL").await?;
    let de = node(tmp.path(), "DE").await?;
    pin(&nl, &de).await?;
    pin(&de, &nl).await?;
    load_outbox(&de, messages + round_trips, 64).await?;
    let nl_party: PartyCode = "NL".parse()?;
    let _nl_proc = serve(&nl).await?;

    // Round trips, one envelope at a time, by this process as DE: each the first message of
    // DE's outbox to NL not yet delivered, sealed by DE's node just before it is sent.
    let link = PeerLink::open(&de, &nl_party).await.map_err(|e| fail(Exit::Failed, e))?;
    let count = de.store.pending_messages(&nl_party, u32::try_from(round_trips)?).await?.len();
    let mut rtts = Vec::with_capacity(count);
    let bar = progress_bar(count as u64, "round trips");
    for _ in 0..count {
        let envelopes = seal_pending(&de, &nl_party, 1).await.map_err(|e| fail(Exit::Failed, e))?;
        let t0 = Instant::now();
        let ack = link.send(&envelopes).await.map_err(|e| fail(Exit::Failed, e))?;
        rtts.push(t0.elapsed());
        // The acknowledgement verified under NL's pinned key, from NL's pinned server.
        link.record(ack).await.map_err(|e| fail(Exit::Failed, e))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    rtts.sort();

    // Throughput: DE's own process drains the outbox.
    let (_de_proc, Drained { done, steady, overall }) =
        drain(&de, &nl_party, messages, "DE's deliverer drains the outbox").await?;
    let held = nl.store.count_received_from(&de.config.party).await?;

    println!(
        "Federation: DE → NL on 127.0.0.1, mutual TLS 1.3, SQLite (synchronous=FULL) on both sides"
    );
    println!(
        "  round trip (POST one envelope → NL's gate commits → signed ack verified), {} samples:",
        rtts.len()
    );
    println!(
        "    p50 {:.2} ms   p90 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        percentile(&rtts, 0.50).as_secs_f64() * 1e3,
        percentile(&rtts, 0.90).as_secs_f64() * 1e3,
        percentile(&rtts, 0.99).as_secs_f64() * 1e3,
        rtts.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!(
        "  throughput (DE's deliverer, batches of {}):",
        entente_node::federation::DELIVERY_BATCH
    );
    println!("    {done} envelopes delivered and acknowledged");
    println!("    {steady:.0} envelopes/s from first to last acknowledgement (target ≥ 5,000/s)");
    println!("    {overall:.0} envelopes/s including DE's process start");
    println!(
        "  NL holds {held} data received from DE (expected {}): {}",
        messages + round_trips,
        if held == messages + round_trips { "each once" } else { "MISMATCH" }
    );
    if held != messages + round_trips {
        return Err(fail(Exit::Failed, "delivery count mismatch"));
    }
    Ok(())
}
