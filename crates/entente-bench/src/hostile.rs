//! `entente bench hostile`: a partner's throughput while the node is under attack.
//!
//! For each scenario, two fresh nodes DE → NL as in `bench federation` (each its own
//! `entente serve`, mutual TLS, SQLite with synchronous=FULL): DE's outbox is loaded with
//! `messages` shares, NL's process starts, the attack starts against NL from this process,
//! then DE's process starts and its deliverer drains the outbox to NL. What is measured is
//! NL's acknowledged envelopes per second (first acknowledgement to last), beside the attack
//! the node took meanwhile, how NL's ledger grew, and NL's peak memory. The attacks talk to
//! 127.0.0.1 only and stop when the outbox is drained (or at the 600 s cap):
//!
//! - `none`: no attack, the baseline of the same run;
//! - `anon-api`: anonymous `GET /api/v1/cases/<name>` at `rate` requests/s over keep-alive
//!   connections, a different caller-chosen name each time (all 401);
//! - `held-sockets`: as many API connections as one address may hold, each a slowloris
//!   request (headers begun, never ended), and as many federation connections as the
//!   unpinned budget holds, none beginning its TLS handshake; each is re-opened as soon as the
//!   node closes it (beyond the per-address limits the node closes the oldest at once, so
//!   this becomes a flood of new connections);
//! - `taxii-amplification`: anonymous 16 MiB TAXII envelopes of `{}` objects, eight at a time.

use crate::federation::{Serve, load_outbox, node, pin, serve};
use entente_console::{Exit, Failure, fail, progress_bar};
use entente_core::PartyCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// An attack on NL while DE delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Attack {
    /// No attack (the baseline).
    None,
    /// Anonymous API GETs at the given rate.
    AnonApi,
    /// Slowloris API connections and stalled federation handshakes, held at the limits.
    HeldSockets,
    /// Anonymous 16 MiB TAXII POSTs.
    TaxiiAmplification,
}

impl Attack {
    fn name(self) -> &'static str {
        match self {
            Attack::None => "none",
            Attack::AnonApi => "anon-api",
            Attack::HeldSockets => "held-sockets",
            Attack::TaxiiAmplification => "taxii-amplification",
        }
    }
}

/// What an attack did while it ran.
#[derive(Default)]
struct Counters {
    /// Requests sent (or connections opened).
    sent: AtomicU64,
    /// Of them, answered 401.
    refused: AtomicU64,
    /// Connections the node closed (held-sockets).
    closed: AtomicU64,
}

struct Outcome {
    attack: Attack,
    envelopes_per_s: f64,
    attack_per_s: f64,
    sent: u64,
    refused: u64,
    closed: u64,
    other_entries: i64,
    peak_rss_mib: f64,
}

/// Peak resident memory of `pid` (VmHWM), in MiB.
fn peak_rss_mib(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return 0.0 };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Anonymous GETs, `rate` per second in all, over `conns` keep-alive connections.
async fn anon_api(base: String, rate: u64, conns: u64, stop: Arc<AtomicBool>, c: Arc<Counters>) {
    let mut tasks = Vec::new();
    for t in 0..conns {
        let (base, stop, c) = (base.clone(), stop.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(http) = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(5))
                .build()
            else {
                return;
            };
            // Paced in slices of 10 ms: each task sends its share of the slice, then waits
            // for the next; a node that answers slower than the rate lowers what is achieved.
            let per_slice = (rate / conns / 100).max(1);
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                for _ in 0..per_slice {
                    i += 1;
                    let url = format!("{base}/api/v1/cases/Jane.Doe_born-1980-{t}-{i}");
                    c.sent.fetch_add(1, Ordering::Relaxed);
                    if let Ok(r) = http.get(&url).send().await {
                        if r.status() == reqwest::StatusCode::UNAUTHORIZED {
                            c.refused.fetch_add(1, Ordering::Relaxed);
                        }
                        let _ = r.bytes().await;
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// `n` connections to `addr`, each sending `preamble` and then nothing, re-opened as soon as
/// the node closes them.
async fn held(
    addr: std::net::SocketAddr,
    n: u64,
    preamble: &'static [u8],
    stop: Arc<AtomicBool>,
    c: Arc<Counters>,
) {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (stop, c) = (stop.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                c.sent.fetch_add(1, Ordering::Relaxed);
                let _ = s.write_all(preamble).await;
                let mut buf = [0u8; 512];
                // Held until the node closes it (or answers), checking the stop flag.
                loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
                        Err(_) => continue,
                        Ok(Ok(0) | Err(_)) => {
                            c.closed.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        Ok(Ok(_)) => continue,
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Anonymous 16 MiB TAXII envelopes of `{}` objects, `conns` at a time.
async fn taxii(base: String, conns: u64, stop: Arc<AtomicBool>, c: Arc<Counters>) {
    let mut body = String::with_capacity(16 << 20);
    body.push_str("{\"objects\":[{}");
    while body.len() < (16 << 20) - 8 {
        body.push_str(",{}");
    }
    body.push_str("]}");
    let body: Arc<str> = Arc::from(body);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (base, stop, c, body) = (base.clone(), stop.clone(), c.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(http) = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()
            else {
                return;
            };
            let url = format!(
                "{base}/taxii2/api/collections/6c1a2f0e-9b7d-4e21-8f3a-1d2c3b4a5e6f/objects/"
            );
            while !stop.load(Ordering::Relaxed) {
                c.sent.fetch_add(1, Ordering::Relaxed);
                let r = http
                    .post(&url)
                    .header("Content-Type", "application/taxii+json;version=2.1")
                    .body(body.to_string())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED => {
                        c.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    // The node answered before the body was sent and closed the connection:
                    // a refusal that read nothing of the body.
                    Err(_) => {
                        c.closed.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    _ => {}
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn one(attack: Attack, messages: u64, rate: u64) -> Result<Outcome, Failure> {
    let tmp = tempfile::tempdir()?;
    let nl = node(tmp.path(), "NL").await?;
    let de = node(tmp.path(), "DE").await?;
    pin(&nl, &de).await?;
    pin(&de, &nl).await?;
    load_outbox(&de, messages, 64).await?;
    let nl_party: PartyCode = "NL".parse()?;
    let nl_proc: Serve = serve(&nl).await?;
    let (size0, _) = nl.store.ledger_head().await?;
    let base = format!("http://{}", nl.config.listen);
    let faddr =
        nl.config.federation_listen.ok_or_else(|| fail(Exit::Failed, "no federation address"))?;

    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let attack_task = {
        let (stop, c) = (stop.clone(), counters.clone());
        let api = nl.config.listen;
        let max_per_address = u64::from(nl.config.limits.max_connections_per_address);
        let handshakes = u64::from(nl.config.limits.max_unpinned_connections);
        tokio::spawn(async move {
            match attack {
                Attack::None => {}
                Attack::AnonApi => anon_api(base, rate, 8, stop, c).await,
                Attack::HeldSockets => {
                    let slowloris = b"GET /healthz HTTP/1.1\r\nHost: nl\r\nX-Slow: ";
                    tokio::join!(
                        held(api, max_per_address, slowloris, stop.clone(), c.clone()),
                        held(faddr, handshakes, b"", stop, c),
                    );
                }
                Attack::TaxiiAmplification => taxii(base, 8, stop, c).await,
            }
        })
    };
    // Let the attack reach its level before the partner starts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent_before = counters.sent.load(Ordering::Relaxed);

    let before = de.store.outbox_summary().await?;
    let delivered0 = before.iter().map(|s| s.delivered).sum::<u64>();
    let total = delivered0 + before.iter().map(|s| s.pending).sum::<u64>();
    let _de_proc = serve(&de).await?;
    let bar = progress_bar(messages, &format!("DE delivers to NL, attack: {}", attack.name()));
    let mut first = None;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    let (done, last) = loop {
        let next = de.store.pending_messages(&nl_party, 1).await?.first().map(|m| m.seq);
        let delivered = next.map_or(total, |seq| seq - 1).saturating_sub(delivered0);
        bar.set_position(delivered);
        if delivered > 0 && first.is_none() {
            first = Some((Instant::now(), delivered));
        }
        if next.is_none() {
            break (delivered, Instant::now());
        }
        if Instant::now() > deadline {
            stop.store(true, Ordering::Relaxed);
            return Err(fail(
                Exit::Failed,
                format!("outbox not drained after 600 s under {}", attack.name()),
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    bar.finish_and_clear();
    let attack_secs = started.elapsed().as_secs_f64();
    let sent_during = counters.sent.load(Ordering::Relaxed) - sent_before;
    stop.store(true, Ordering::Relaxed);
    let peak = peak_rss_mib(nl_proc.pid());
    let (size1, _) = nl.store.ledger_head().await?;
    let _ = tokio::time::timeout(Duration::from_secs(10), attack_task).await;
    let held = nl.store.count_received_from(&de.config.party).await?;
    if held != messages {
        return Err(fail(
            Exit::Failed,
            format!("NL holds {held} data from DE, expected {messages}, under {}", attack.name()),
        ));
    }
    let (t_first, n_first) = first.unwrap_or((last, 0));
    let steady = (done - n_first) as f64 / (last - t_first).as_secs_f64().max(1e-9);
    Ok(Outcome {
        attack,
        envelopes_per_s: steady,
        attack_per_s: sent_during as f64 / attack_secs.max(1e-9),
        sent: counters.sent.load(Ordering::Relaxed),
        refused: counters.refused.load(Ordering::Relaxed),
        closed: counters.closed.load(Ordering::Relaxed),
        other_entries: i64::try_from(size1 - size0).unwrap_or(i64::MAX)
            - i64::try_from(messages).unwrap_or(0),
        peak_rss_mib: peak,
    })
}

pub(crate) async fn run(messages: u64, rate: u64, attacks: Vec<Attack>) -> Result<(), Failure> {
    let mut attacks = attacks;
    if attacks.is_empty() {
        attacks =
            vec![Attack::None, Attack::AnonApi, Attack::HeldSockets, Attack::TaxiiAmplification];
    }
    if attacks.first() != Some(&Attack::None) {
        attacks.insert(0, Attack::None);
    }
    let mut out = Vec::new();
    for a in attacks {
        out.push(one(a, messages, rate).await?);
    }
    let base = out.first().map_or(1.0, |o| o.envelopes_per_s).max(1e-9);
    println!(
        "Federation DE → NL ({messages} envelopes, mutual TLS, SQLite synchronous=FULL) while NL is attacked from 127.0.0.1"
    );
    println!(
        "| attack | attack during delivery | requests / connections (401) | closed by NL | envelopes/s | vs none | NL ledger entries beyond the envelopes | NL peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for o in &out {
        println!(
            "| {} | {:.0}/s | {} ({}) | {} | {:.0} | {:.2} | {} | {:.0} MiB |",
            o.attack.name(),
            o.attack_per_s,
            o.sent,
            o.refused,
            o.closed,
            o.envelopes_per_s,
            o.envelopes_per_s / base,
            o.other_entries,
            o.peak_rss_mib
        );
    }
    Ok(())
}
