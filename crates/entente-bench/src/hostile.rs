//! `entente bench hostile`: a partner's delivery throughput while the receiving node is
//! attacked, beside the same throughput without attack, in the same run.
//!
//! Two nodes DE → NL as in `bench federation`, each its own `entente serve` process, mutual
//! TLS 1.3, SQLite (synchronous=FULL) on both sides. For each scenario:
//!
//! 1. DE shares `messages` data items with NL through its gate (its outbox);
//! 2. NL's process starts afresh (so its peak RSS is the scenario's), and the attack starts
//!    against it from this process, to 127.0.0.1 only;
//! 3. after a warm-up, DE's process starts and its deliverer drains the outbox: envelopes per
//!    second from the first acknowledgement to the last, measured as `bench federation`'s
//!    throughput phase does ([`crate::federation::drain`]);
//! 4. the attack stops (or at its hard cap, whichever is first), DE's and then NL's process
//!    stop as at Ctrl-C (NL records the refusals it counted), and the ledger entries NL wrote
//!    during the scenario are read back by action.
//!
//! Scenarios (any order, any repetition; `none` is the baseline):
//! - `none`: no attack;
//! - `anon-api`: anonymous `GET /api/v1/cases/<random>` on NL's API, paced at `rate` per
//!   second over `connections` keep-alive connections (a minimal HTTP/1.1 client, so that the
//!   attacker takes little of the two cores the nodes share with it);
//! - `held-sockets`: idle and slowloris connections on NL's API up to `[limits]`
//!   `max_connections` (`max_connections_per_address` from each source address), half-open
//!   TCP connections on NL's federation port up to its handshake budgets, and mutual-TLS
//!   connections with a valid certificate NL has not pinned up to its unpinned budgets, all at
//!   once, each re-opened when NL closes it;
//! - `taxii-amplification`: anonymous 16 MiB TAXII envelopes (`{}` objects) POSTed to NL's
//!   objects endpoint, four at a time, back to back.

use crate::federation::{Drained, drain, node, outbox_actor, pin, serve, share_with_nl};
use clap::ValueEnum;
use entente_console::{Exit, Failure, fail};
use entente_core::PartyCode;
use entente_core::ledger::LedgerEntry;
use entente_node::Node;
use entente_node::config::LimitsConfig;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// An attack on NL while DE delivers to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// No attack: the baseline
    None,
    /// Anonymous GETs on the API at the target rate
    AnonApi,
    /// Idle and slowloris API sockets, half-open and unpinned TLS federation sockets, each
    /// budget full
    HeldSockets,
    /// Anonymous 16 MiB TAXII POSTs, back to back
    TaxiiAmplification,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::None => "none",
            Scenario::AnonApi => "anon-api",
            Scenario::HeldSockets => "held-sockets",
            Scenario::TaxiiAmplification => "taxii-amplification",
        }
    }
}

/// What `entente bench hostile` was asked.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub(crate) messages: u64,
    pub(crate) scenarios: Vec<Scenario>,
    pub(crate) rate: u64,
    pub(crate) connections: usize,
    pub(crate) sources: u8,
    pub(crate) warmup: Duration,
    pub(crate) max_attack: Duration,
}

/// Pause before a closed attack socket is opened again (the attacker's own budget: without
/// it, sockets that close each other make room in a loop as fast as the cores allow).
const REOPEN_DELAY: Duration = Duration::from_millis(50);
/// How often a slowloris socket sends one more header line.
const DRIP: Duration = Duration::from_secs(2);
/// How often an unpinned TLS client asks again on its connection.
const TLS_EVERY: Duration = Duration::from_secs(5);
/// Concurrent TAXII POSTs.
const TAXII_CONNECTIONS: usize = 4;
/// Grace for a node process to stop at SIGINT.
const STOP_GRACE: Duration = Duration::from_secs(45);

/// Paces calls at a rate: call `i` is due at `start + i × interval`. A caller more than
/// `slack` behind schedule skips the calls it missed instead of bursting to catch up.
#[derive(Debug)]
struct Pacer {
    start: Instant,
    interval_nanos: u64,
    slack_nanos: u64,
    next: u64,
}

impl Pacer {
    fn new(start: Instant, per_second: f64, slack: Duration) -> Pacer {
        let interval_nanos = if per_second > 0.0 {
            (1e9 / per_second).round().clamp(1.0, u64::MAX as f64) as u64
        } else {
            u64::MAX
        };
        let slack_nanos = u64::try_from(slack.as_nanos()).unwrap_or(u64::MAX);
        Pacer { start, interval_nanos, slack_nanos, next: 0 }
    }

    /// When the next call is due (at or before `now`: at once), counting it.
    fn next_due(&mut self, now: Instant) -> Instant {
        let elapsed =
            u64::try_from(now.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX);
        if elapsed > self.next.saturating_mul(self.interval_nanos).saturating_add(self.slack_nanos)
        {
            self.next = (elapsed - self.slack_nanos) / self.interval_nanos;
        }
        let due = self.next.saturating_mul(self.interval_nanos);
        self.next += 1;
        self.start + Duration::from_nanos(due)
    }
}

/// Tells the attack's tasks to stop: when the throughput phase ends, or at the hard cap.
#[derive(Clone)]
struct Stop {
    rx: watch::Receiver<bool>,
    cap: tokio::time::Instant,
}

impl Stop {
    fn is_set(&self) -> bool {
        *self.rx.borrow() || tokio::time::Instant::now() >= self.cap
    }

    async fn wait(&mut self) {
        let cap = self.cap;
        tokio::select! {
            _ = self.rx.wait_for(|s| *s) => {}
            () = tokio::time::sleep_until(cap) => {}
        }
    }
}

/// Counters shared by an attack's tasks.
#[derive(Default)]
struct Tally {
    /// Requests answered (any status).
    answered: AtomicU64,
    /// Answered 401.
    unauthorized: AtomicU64,
    /// Answers by status.
    statuses: std::sync::Mutex<BTreeMap<u16, u64>>,
    /// Connection or protocol errors (refused, reset, closed before an answer).
    errors: AtomicU64,
    /// Connections opened.
    opened: AtomicU64,
    /// Connections open now.
    held: AtomicU64,
    /// Body bytes written to the socket (the kernel's buffers take some before NL reads).
    bytes: AtomicU64,
    /// Bodies sent whole.
    whole_bodies: AtomicU64,
}

fn add(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl Tally {
    fn answer(&self, status: u16) {
        add(&self.answered, 1);
        if status == 401 {
            add(&self.unauthorized, 1);
        }
        if let Ok(mut m) = self.statuses.lock() {
            *m.entry(status).or_default() += 1;
        }
    }
}

/// An open attack socket, counted in [`Tally::held`] until dropped.
struct Held<'a>(&'a AtomicU64);

impl<'a> Held<'a> {
    fn new(tally: &'a Tally) -> Held<'a> {
        add(&tally.opened, 1);
        add(&tally.held, 1);
        Held(&tally.held)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A TCP connection to `dst` from `src` (a loopback address: several sources count as
/// several clients in NL's per-address budgets).
async fn connect_from(src: Ipv4Addr, dst: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(src), 0))?;
    socket.connect(dst).await
}

/// A connection from 127.0.0.1 to `dst`; a failure is counted and waited out (`None`: the
/// caller tries again).
async fn connect_or_wait(dst: SocketAddr, tally: &Tally) -> Option<TcpStream> {
    match connect_from(Ipv4Addr::LOCALHOST, dst).await {
        Ok(tcp) => Some(tcp),
        Err(_) => {
            add(&tally.errors, 1);
            tokio::time::sleep(REOPEN_DELAY).await;
            None
        }
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, line: &mut String) -> std::io::Result<()> {
    line.clear();
    if r.read_line(line).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

async fn skip<R: AsyncBufRead + Unpin>(r: &mut R, n: u64) -> std::io::Result<()> {
    let copied = tokio::io::copy(&mut (&mut *r).take(n), &mut tokio::io::sink()).await?;
    if copied < n {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Reads one HTTP/1.1 response: its status, and whether the connection cannot carry another
/// request (`Connection: close`, or a body delimited by the end of the connection).
async fn read_response<R: AsyncBufRead + Unpin>(
    r: &mut R,
    line: &mut String,
) -> std::io::Result<(u16, bool)> {
    read_line(r, line).await?;
    let status: u16 = line
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("not an HTTP/1.1 status line"))?;
    let (mut length, mut chunked, mut close) = (None, false, false);
    loop {
        read_line(r, line).await?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<u64>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
    }
    if chunked {
        loop {
            read_line(r, line).await?;
            let size = line.trim().split(';').next().unwrap_or_default();
            let size = u64::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
            if size == 0 {
                loop {
                    read_line(r, line).await?;
                    if line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            skip(r, size + 2).await?;
        }
    } else if let Some(n) = length {
        skip(r, n).await?;
    } else {
        close = true;
    }
    Ok((status, close))
}

/// One keep-alive connection of anonymous GETs, paced; reconnects when NL closes it.
async fn anon_api(api: SocketAddr, mut pacer: Pacer, seed: u64, tally: Arc<Tally>, stop: Stop) {
    let mut stop = stop;
    let mut rng = crate::Lcg(seed);
    let mut line = String::new();
    while !stop.is_set() {
        let Some(tcp) = connect_or_wait(api, &tally).await else { continue };
        let _ = tcp.set_nodelay(true);
        let _held = Held::new(&tally);
        let (r, mut w) = tcp.into_split();
        let mut r = BufReader::new(r);
        loop {
            let due = tokio::time::Instant::from_std(pacer.next_due(Instant::now()));
            tokio::select! {
                () = stop.wait() => return,
                () = tokio::time::sleep_until(due) => {}
            }
            let request = format!(
                "GET /api/v1/cases/X{:016x} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                rng.next()
            );
            if w.write_all(request.as_bytes()).await.is_err() {
                add(&tally.errors, 1);
                break;
            }
            match tokio::time::timeout(Duration::from_secs(10), read_response(&mut r, &mut line))
                .await
            {
                Ok(Ok((status, close))) => {
                    tally.answer(status);
                    if close {
                        break;
                    }
                }
                _ => {
                    add(&tally.errors, 1);
                    break;
                }
            }
        }
    }
}

/// How a held socket behaves.
#[derive(Clone, Copy, Debug)]
enum Hold {
    /// Connects and sends nothing.
    Idle,
    /// Begins a request's headers and sends one more line every [`DRIP`], never ending them.
    Slowloris,
    /// Begins a TLS record (a ClientHello's first bytes) and sends no more.
    HalfOpenTls,
}

/// Holds one socket on `dst` from `src`, re-opening it whenever NL closes it.
async fn hold(kind: Hold, src: Ipv4Addr, dst: SocketAddr, tally: Arc<Tally>, stop: Stop) {
    let mut stop = stop;
    let mut buf = [0u8; 1024];
    while !stop.is_set() {
        match connect_from(src, dst).await {
            Ok(mut tcp) => {
                let _held = Held::new(&tally);
                let begun = match kind {
                    Hold::Idle => Ok(()),
                    Hold::Slowloris => {
                        tcp.write_all(b"GET /api/v1/cases/slow HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                            .await
                    }
                    Hold::HalfOpenTls => tcp.write_all(&[0x16, 0x03, 0x01, 0x02]).await,
                };
                if begun.is_ok() {
                    let drip = matches!(kind, Hold::Slowloris);
                    loop {
                        tokio::select! {
                            () = stop.wait() => return,
                            r = tcp.read(&mut buf) => match r {
                                Ok(0) | Err(_) => break,
                                Ok(_) => {}
                            },
                            () = tokio::time::sleep(DRIP), if drip => {
                                if tcp.write_all(b"X-Slow: 1\r\n").await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                }
            }
            Err(_) => add(&tally.errors, 1),
        }
        tokio::select! {
            () = stop.wait() => return,
            () = tokio::time::sleep(REOPEN_DELAY) => {}
        }
    }
}

/// A mutual-TLS client with a valid certificate NL has not pinned, from `src`: it asks NL's
/// federation port for its checkpoint every [`TLS_EVERY`] on its connection (refused, counted
/// in aggregate), which keeps the connection and its place in the unpinned budget.
async fn hold_tls(
    identity: reqwest::Identity,
    src: Ipv4Addr,
    url: String,
    tally: Arc<Tally>,
    stop: Stop,
) {
    let mut stop = stop;
    let client = match reqwest::Client::builder()
        .identity(identity)
        .tls_danger_accept_invalid_certs(true)
        .local_address(IpAddr::V4(src))
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(15))
        .build()
    {
        Ok(c) => c,
        Err(_) => {
            add(&tally.errors, 1);
            return;
        }
    };
    while !stop.is_set() {
        let asked = tokio::select! {
            () = stop.wait() => return,
            r = client.get(&url).send() => r,
        };
        match asked {
            Ok(resp) => {
                tally.answer(resp.status().as_u16());
                let _ = resp.bytes().await;
            }
            Err(_) => add(&tally.errors, 1),
        }
        tokio::select! {
            () = stop.wait() => return,
            () = tokio::time::sleep(TLS_EVERY) => {}
        }
    }
}

/// An anonymous TAXII envelope of `len` bytes exactly: `{"objects":[{},{},…]}`.
fn taxii_body(len: usize) -> Vec<u8> {
    let (head, tail) = (b"{\"objects\":[{}".as_slice(), b"]}".as_slice());
    let mut body = Vec::with_capacity(len);
    body.extend_from_slice(head);
    while body.len() + 3 + tail.len() <= len {
        body.extend_from_slice(b",{}");
    }
    body.resize(len.saturating_sub(tail.len()).max(body.len()), b' ');
    body.extend_from_slice(tail);
    body
}

/// POSTs the envelope anonymously to NL's TAXII objects endpoint, one connection per POST,
/// back to back: the body is sent while the answer is awaited.
async fn taxii_posts(api: SocketAddr, body: Arc<Vec<u8>>, tally: Arc<Tally>, stop: Stop) {
    let mut stop = stop;
    let head = format!(
        "POST /taxii2/api/collections/bench/objects/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/taxii+json;version=2.1\r\nContent-Type: application/taxii+json;version=2.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut line = String::new();
    while !stop.is_set() {
        let Some(tcp) = connect_or_wait(api, &tally).await else { continue };
        let _held = Held::new(&tally);
        let (r, mut w) = tcp.into_split();
        let mut r = BufReader::new(r);
        let send = async {
            w.write_all(head.as_bytes()).await?;
            for chunk in body.chunks(256 << 10) {
                w.write_all(chunk).await?;
                add(&tally.bytes, chunk.len() as u64);
            }
            add(&tally.whole_bodies, 1);
            Ok::<(), std::io::Error>(())
        };
        let both = async { tokio::join!(send, read_response(&mut r, &mut line)) };
        let outcome = tokio::select! {
            () = stop.wait() => return,
            r = tokio::time::timeout(Duration::from_secs(30), both) => r,
        };
        match outcome {
            Ok((_, Ok((status, _)))) => tally.answer(status),
            _ => add(&tally.errors, 1),
        }
    }
}

/// Where NL is and what the attacks need.
struct Target {
    api: SocketAddr,
    federation: SocketAddr,
    limits: LimitsConfig,
    /// PEM key and certificate of a node NL has not pinned.
    stranger: Vec<u8>,
    body: Arc<Vec<u8>>,
}

/// An attack under way.
struct Attack {
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
    tally: Arc<Tally>,
    started: Instant,
    /// Sockets the attack means to hold, by kind.
    plan: String,
    /// Sum and count of samples of the sockets held, after the warm-up.
    held_sum: Arc<AtomicU64>,
    held_samples: Arc<AtomicU64>,
    held_min: Arc<AtomicU64>,
}

/// The source addresses 127.0.0.1, 127.0.0.2, … that `total` connections need at `per`
/// per address, at most `sources`; how many connections each holds.
fn spread(total: u32, per: u32, sources: u8) -> Vec<(Ipv4Addr, usize)> {
    let per = per.max(1);
    let mut left = total.max(1);
    let mut out = Vec::new();
    for k in 0..sources.max(1) {
        if left == 0 {
            break;
        }
        let n = left.min(per);
        out.push((Ipv4Addr::new(127, 0, 0, k.saturating_add(1)), n as usize));
        left -= n;
    }
    out
}

impl Attack {
    fn start(scenario: Scenario, target: &Target, opts: &Options) -> Result<Attack, Failure> {
        let (stop_tx, rx) = watch::channel(false);
        let stop = Stop { rx, cap: tokio::time::Instant::now() + opts.max_attack };
        let tally = Arc::new(Tally::default());
        let mut tasks = JoinSet::new();
        let started = Instant::now();
        let mut plan = String::new();
        match scenario {
            Scenario::None => {}
            Scenario::AnonApi => {
                let n = opts.connections.max(1);
                let per = opts.rate as f64 / n as f64;
                for i in 0..n {
                    let pacer = Pacer::new(started, per, Duration::from_millis(100));
                    let seed = 0x5eed_0000 + i as u64;
                    tasks.spawn(anon_api(target.api, pacer, seed, tally.clone(), stop.clone()));
                }
                plan = format!("{} req/s over {n} keep-alive connections", opts.rate);
            }
            Scenario::HeldSockets => {
                let l = &target.limits;
                let api = spread(l.max_connections, l.max_connections_per_address, opts.sources);
                let (mut idle, mut slow) = (0, 0);
                for (src, n) in &api {
                    for i in 0..*n {
                        let kind = if i % 2 == 0 { Hold::Idle } else { Hold::Slowloris };
                        match kind {
                            Hold::Slowloris => slow += 1,
                            _ => idle += 1,
                        }
                        tasks.spawn(hold(kind, *src, target.api, tally.clone(), stop.clone()));
                    }
                }
                let half_open =
                    spread(l.max_unpinned_connections, l.max_handshakes_per_address, opts.sources);
                let mut tcp = 0;
                for (src, n) in &half_open {
                    for _ in 0..*n {
                        tcp += 1;
                        tasks.spawn(hold(
                            Hold::HalfOpenTls,
                            *src,
                            target.federation,
                            tally.clone(),
                            stop.clone(),
                        ));
                    }
                }
                let identity = reqwest::Identity::from_pem(&target.stranger)
                    .map_err(|e| fail(Exit::Failed, format!("the stranger's identity: {e}")))?;
                let url = format!("https://{}/federation/v1/checkpoint", target.federation);
                let unpinned =
                    spread(l.max_unpinned_connections, l.max_unpinned_per_address, opts.sources);
                let mut tls = 0;
                for (src, n) in &unpinned {
                    for _ in 0..*n {
                        tls += 1;
                        tasks.spawn(hold_tls(
                            identity.clone(),
                            *src,
                            url.clone(),
                            tally.clone(),
                            stop.clone(),
                        ));
                    }
                }
                plan = format!(
                    "API {idle} idle + {slow} slowloris from {} addresses; federation {tcp} half-open TCP from {} and {tls} unpinned TLS from {}",
                    api.len(),
                    half_open.len(),
                    unpinned.len()
                );
            }
            Scenario::TaxiiAmplification => {
                for _ in 0..TAXII_CONNECTIONS {
                    tasks.spawn(taxii_posts(
                        target.api,
                        target.body.clone(),
                        tally.clone(),
                        stop.clone(),
                    ));
                }
                plan = format!(
                    "{TAXII_CONNECTIONS} concurrent anonymous POSTs of {} MiB",
                    target.body.len() >> 20
                );
            }
        }
        let (held_sum, held_samples, held_min) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(u64::MAX)),
        );
        if scenario == Scenario::HeldSockets {
            let (t, sum, count, min) =
                (tally.clone(), held_sum.clone(), held_samples.clone(), held_min.clone());
            let mut stop = stop.clone();
            let warmup = opts.warmup;
            tasks.spawn(async move {
                tokio::select! {
                    () = stop.wait() => return,
                    () = tokio::time::sleep(warmup) => {}
                }
                while !stop.is_set() {
                    let held = get(&t.held);
                    add(&sum, held);
                    add(&count, 1);
                    min.fetch_min(held, Ordering::Relaxed);
                    tokio::select! {
                        () = stop.wait() => return,
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            });
        }
        Ok(Attack { tasks, stop: stop_tx, tally, started, plan, held_sum, held_samples, held_min })
    }

    /// Stops the attack: its tasks are told, given a moment, then aborted.
    async fn stop(mut self) -> Stopped {
        let elapsed = self.started.elapsed();
        let _ = self.stop.send(true);
        let drained = tokio::time::timeout(Duration::from_secs(5), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
        let samples = get(&self.held_samples);
        Stopped {
            elapsed,
            plan: self.plan,
            answered: get(&self.tally.answered),
            unauthorized: get(&self.tally.unauthorized),
            statuses: self.tally.statuses.lock().map(|m| m.clone()).unwrap_or_default(),
            errors: get(&self.tally.errors),
            opened: get(&self.tally.opened),
            bytes: get(&self.tally.bytes),
            whole_bodies: get(&self.tally.whole_bodies),
            held_mean: if samples == 0 { 0.0 } else { get(&self.held_sum) as f64 / samples as f64 },
            held_min: if samples == 0 { 0 } else { get(&self.held_min) },
        }
    }
}

/// What an attack did.
struct Stopped {
    elapsed: Duration,
    plan: String,
    answered: u64,
    unauthorized: u64,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    opened: u64,
    bytes: u64,
    whole_bodies: u64,
    held_mean: f64,
    held_min: u64,
}

impl Stopped {
    /// The attack as achieved, in a table cell.
    fn achieved(&self, scenario: Scenario) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        match scenario {
            Scenario::None => "—".into(),
            Scenario::AnonApi => format!(
                "{:.0} req/s ({} × 401 of {})",
                self.answered as f64 / secs,
                self.unauthorized,
                self.answered
            ),
            Scenario::HeldSockets => format!(
                "{:.0} sockets held (min {}), {:.0} opened/s",
                self.held_mean,
                self.held_min,
                self.opened as f64 / secs
            ),
            Scenario::TaxiiAmplification => format!(
                "{:.1} POSTs/s, {:.0} MiB/s written ({} × 401 of {})",
                self.answered as f64 / secs,
                self.bytes as f64 / secs / f64::from(1 << 20),
                self.unauthorized,
                self.answered
            ),
        }
    }
}

/// A field of `/proc/<pid>/status` in KiB (`VmHWM:`, `VmRSS:`).
fn proc_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// User and system CPU seconds of a process so far (`/proc/<pid>/stat`, in USER_HZ = 100).
fn proc_cpu(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// NL's ledger entries `from..to`, counted by action.
async fn entries_by_action(
    node: &Node,
    from: u64,
    to: u64,
) -> Result<BTreeMap<&'static str, u64>, Failure> {
    let mut out = BTreeMap::new();
    let mut at = from;
    while at < to {
        let hi = (at + 5_000).min(to);
        for (_, bytes) in node.store.entries(at, hi).await? {
            let entry = LedgerEntry::decode(&bytes).map_err(|e| fail(Exit::Failed, e))?;
            *out.entry(entry.action.as_str()).or_default() += 1;
        }
        at = hi;
    }
    Ok(out)
}

/// One scenario's results.
struct Outcome {
    scenario: Scenario,
    drained: Drained,
    attack: Stopped,
    capped: bool,
    nl_entries: BTreeMap<&'static str, u64>,
    nl_hwm_kib: Option<u64>,
    nl_cpu: Option<f64>,
    bench_cpu: Option<f64>,
    window: Duration,
}

impl Outcome {
    /// NL's entries other than the data it received.
    fn beyond_receipts(&self) -> u64 {
        self.nl_entries.iter().filter(|(a, _)| **a != "datum.receive").map(|(_, n)| n).sum()
    }
}

fn loopback(addr: SocketAddr) -> Result<SocketAddr, Failure> {
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(fail(
            Exit::Failed,
            format!("{addr} is not a loopback address; the attacks stay on 127.0.0.1"),
        ))
    }
}

pub(crate) async fn run(opts: Options) -> Result<(), Failure> {
    let mut opts = opts;
    if !opts.scenarios.contains(&Scenario::None) {
        opts.scenarios.insert(0, Scenario::None);
    }
    let tmp = tempfile::tempdir()?;
    let nl = node(tmp.path(), "NL").await?;
    let de = node(tmp.path(), "DE").await?;
    // A valid node certificate NL has not pinned: the held-sockets attack's TLS identity.
    let stranger = node(tmp.path(), "FR").await?;
    pin(&nl, &de).await?;
    pin(&de, &nl).await?;
    let actor = outbox_actor(&de).await?;
    let nl_party: PartyCode = "NL".parse()?;
    let mut pem = std::fs::read(stranger.data_dir.join(entente_node::identity::KEY_FILE))?;
    pem.extend(std::fs::read(stranger.data_dir.join(entente_node::identity::CERT_FILE))?);
    stranger.store.close().await;
    let target = Target {
        api: loopback(nl.config.listen)?,
        federation: loopback(
            nl.config
                .federation_listen
                .ok_or_else(|| fail(Exit::Failed, "no federation address"))?,
        )?,
        limits: nl.config.limits.clone(),
        stranger: pem,
        body: Arc::new(taxii_body(entente_node::taxii::MAX_CONTENT_LENGTH)),
    };
    let count = opts.scenarios.len();
    let mut outcomes = Vec::with_capacity(count);
    let mut shared = 0;
    for (i, scenario) in opts.scenarios.iter().copied().enumerate() {
        let name = scenario.name();
        let step = format!("[{}/{count}] {name}:", i + 1);
        share_with_nl(
            &de,
            &actor,
            shared..shared + opts.messages,
            64,
            &format!("{step} DE shares data with NL (outbox)"),
        )
        .await?;
        shared += opts.messages;
        let (size0, _) = nl.store.ledger_head().await?;
        let nl_proc = serve(&nl).await?;
        let pid = nl_proc.pid().map(|p| p.to_string()).unwrap_or_default();
        let (nl_cpu0, bench_cpu0) = (proc_cpu(&pid), proc_cpu("self"));
        let attack = Attack::start(scenario, &target, &opts)?;
        if scenario != Scenario::None {
            tokio::time::sleep(opts.warmup).await;
        }
        let t0 = Instant::now();
        let (de_proc, drained) = drain(
            &de,
            &nl_party,
            opts.messages,
            &format!("{step} DE's deliverer drains the outbox"),
        )
        .await?;
        let window = t0.elapsed();
        let capped = attack.started.elapsed() >= opts.max_attack;
        let nl_hwm_kib = proc_kib(&pid, "VmHWM:");
        let nl_cpu = proc_cpu(&pid).zip(nl_cpu0).map(|(b, a)| b - a);
        let bench_cpu = proc_cpu("self").zip(bench_cpu0).map(|(b, a)| b - a);
        let attack = attack.stop().await;
        de_proc.stop(STOP_GRACE).await?;
        nl_proc.stop(STOP_GRACE).await?;
        let (size1, _) = nl.store.ledger_head().await?;
        let nl_entries = entries_by_action(&nl, size0, size1).await?;
        eprintln!(
            "{step} {:.0} envelopes/s; attack {}; NL wrote {} entries besides its receipts",
            drained.steady,
            attack.achieved(scenario),
            nl_entries.iter().filter(|(a, _)| **a != "datum.receive").map(|(_, n)| n).sum::<u64>()
        );
        outcomes.push(Outcome {
            scenario,
            drained,
            attack,
            capped,
            nl_entries,
            nl_hwm_kib,
            nl_cpu,
            bench_cpu,
            window,
        });
    }
    let held = nl.store.count_received_from(&de.config.party).await?;

    let baselines: Vec<f64> = outcomes
        .iter()
        .filter(|o| o.scenario == Scenario::None)
        .map(|o| o.drained.steady)
        .collect();
    let baseline =
        (!baselines.is_empty()).then(|| baselines.iter().sum::<f64>() / baselines.len() as f64);
    println!(
        "Federation under attack: DE → NL on 127.0.0.1, mutual TLS 1.3, SQLite (synchronous=FULL) on both sides; {} envelopes per scenario, attacks from this process",
        opts.messages
    );
    println!(
        "| scenario | attack achieved | envelopes/s | vs baseline | NL entries beyond datum.receive | NL peak RSS | NL CPU | bench CPU |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for o in &outcomes {
        let secs = (o.window
            + if o.scenario == Scenario::None { Duration::ZERO } else { opts.warmup })
        .as_secs_f64()
        .max(1e-9);
        let pct =
            |c: Option<f64>| c.map_or("?".to_owned(), |c| format!("{:.0}%", 100.0 * c / secs));
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} |",
            o.scenario.name(),
            o.attack.achieved(o.scenario),
            o.drained.steady,
            baseline.map_or("—".to_owned(), |b| format!("{:.2}", o.drained.steady / b.max(1e-9))),
            o.beyond_receipts(),
            o.nl_hwm_kib.map_or("?".to_owned(), |k| format!("{:.0} MiB", k as f64 / 1024.0)),
            pct(o.nl_cpu),
            pct(o.bench_cpu),
        );
    }
    println!();
    for o in &outcomes {
        let entries: Vec<String> = o.nl_entries.iter().map(|(a, n)| format!("{n} {a}")).collect();
        println!("{}:", o.scenario.name());
        if !o.attack.plan.is_empty() {
            println!(
                "  attack: {}; for {:.1} s: {} answered ({}), {} connections opened, {} errors{}{}",
                o.attack.plan,
                o.attack.elapsed.as_secs_f64(),
                o.attack.answered,
                o.attack
                    .statuses
                    .iter()
                    .map(|(s, n)| format!("{n} × {s}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                o.attack.opened,
                o.attack.errors,
                if o.attack.bytes > 0 {
                    format!(
                        ", {:.0} MiB of body written before NL's answer, {} bodies whole",
                        o.attack.bytes as f64 / f64::from(1 << 20),
                        o.attack.whole_bodies
                    )
                } else {
                    String::new()
                },
                if o.capped { " (hard cap reached before the outbox was drained)" } else { "" }
            );
        }
        println!(
            "  {} envelopes, {:.0}/s first to last acknowledgement, {:.0}/s including DE's process start; NL's ledger: {}",
            o.drained.done,
            o.drained.steady,
            o.drained.overall,
            entries.join(", ")
        );
    }
    println!(
        "NL holds {held} data received from DE (expected {shared}): {}",
        if held == shared { "each once" } else { "MISMATCH" }
    );
    if held != shared {
        return Err(fail(Exit::Failed, "delivery count mismatch"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_spaces_calls_and_skips_what_it_missed() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut p = Pacer::new(t0, 1000.0, ms(10));
        assert_eq!(p.next_due(t0), t0);
        assert_eq!(p.next_due(t0), t0 + ms(1));
        assert_eq!(p.next_due(t0), t0 + ms(2));
        // Within the slack: the missed call is made at once, on schedule.
        assert_eq!(p.next_due(t0 + ms(8)), t0 + ms(3));
        // A second behind: no burst of 996 calls, the schedule resumes 10 ms back.
        assert_eq!(p.next_due(t0 + ms(1000)), t0 + ms(990));
        assert_eq!(p.next_due(t0 + ms(1000)), t0 + ms(991));
    }

    #[test]
    fn taxii_body_is_exact_json() {
        for len in [64, 65, 66, 1 << 16] {
            let body = taxii_body(len);
            assert_eq!(body.len(), len);
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            assert!(v["objects"].as_array().is_some_and(|a| a.len() > 10));
        }
    }

    #[test]
    fn spread_fills_the_total_address_by_address() {
        let s = spread(1024, 256, 16);
        assert_eq!(s.len(), 4);
        assert_eq!(s[3], (Ipv4Addr::new(127, 0, 0, 4), 256));
        assert_eq!(spread(256, 16, 4).iter().map(|(_, n)| n).sum::<usize>(), 64);
    }

    #[tokio::test]
    async fn reads_responses_by_length_and_by_chunks() {
        let wire = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nHTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        let mut r = BufReader::new(&wire[..]);
        let mut line = String::new();
        assert_eq!(read_response(&mut r, &mut line).await.ok(), Some((401, false)));
        assert_eq!(read_response(&mut r, &mut line).await.ok(), Some((200, false)));
        assert_eq!(read_response(&mut r, &mut line).await.ok(), Some((400, true)));
        assert!(read_response(&mut r, &mut line).await.is_err());
    }
}
