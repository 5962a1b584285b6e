//! `entente bench psi`: deconfliction by private set intersection, against OpenMined PSI
//! (openmined-psi from PyPI, its full protocol with its protobuf messages) on the same items in
//! the same run.
//!
//! The items are IPv4 addresses (`ip:10.x.y.z` for the holder; the asker's are half from the
//! holder's set, half not), so both sides reveal an intersection of half the asker's set.
//!
//! 1. The protocol on one core of this process (`entente-psi`, as the node runs it): the
//!    holder prepares its set for a key epoch (once per epoch), the asker blinds its selectors
//!    in queries of the agreement's padded size, the holder evaluates them with its proof, the
//!    asker verifies, finalises and intersects. CPU time per phase and bytes per direction
//!    (the messages as JSON, as the federation carries them). The physical limit: ristretto255
//!    variable-base scalar multiplications per second on this machine.
//! 2. The peer: openmined-psi in the Python of `--python`, same items, CPU time per phase and
//!    bytes; the ratio of total CPU times.
//! 3. Two node processes (`--nodes`): DE holds the set in its data items, rotates its key
//!    (preparing the set) and sends key and set to NL over the federation's mutual TLS; NL's
//!    investigator asks over the API, `--rounds` times, and each query's online time is
//!    measured from the POST to NL's API until NL's status shows the result. Peak RSS and CPU
//!    of each node process.

use crate::evidence::{cpu_of, peak_rss_mib_of};
use crate::federation::{Serve, pin, serve_dir};
use entente_console::{Exit, Failure, fail, progress_bar};
use entente_core::Role;
use entente_node::Node;
use entente_psi::{
    HolderEntry, HolderKey, Label, LabelledQuery, Limits, Mode, Selector, SelectorKind, selector,
};
use jiff::Timestamp;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// The asker's queries are padded to this many elements (the largest `max_selectors`).
const QUERY: usize = 1024;
/// The agreement the benchmark loads into both nodes.
const AGREEMENT: &str = "bench-deconfliction";
/// The peer's script.
const PEER: &str = include_str!("../peers/openmined_psi.py");

fn ip(base: u32, i: usize) -> String {
    let v = base | (i as u32 & 0x00ff_ffff);
    std::net::Ipv4Addr::from(v).to_string()
}

/// The holder's items and the asker's (half of them the holder's last ones).
fn items(holder: usize, asker: usize) -> (Vec<String>, Vec<String>, usize) {
    let overlap = (asker / 2).min(holder);
    let h: Vec<String> = (0..holder).map(|i| ip(0x0a00_0000, i)).collect();
    let mut a: Vec<String> = (0..overlap).map(|i| ip(0x0a00_0000, holder - overlap + i)).collect();
    a.extend((0..asker - overlap).map(|i| ip(0x0b00_0000, i)));
    (h, a, overlap)
}

fn parse_all(items: &[String]) -> Result<Vec<Selector>, Failure> {
    items
        .iter()
        .map(|s| selector::parse(SelectorKind::Ip, s, Default::default()))
        .collect::<Result<_, _>>()
        .map_err(|e| fail(Exit::Failed, e))
}

/// Runs `f`, returning its result and the CPU seconds of this process it took.
fn cpu<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let c0 = cpu_of("self");
    let out = f();
    (out, cpu_of("self") - c0)
}

/// Variable-base ristretto255 scalar multiplications per second, one core: the floor of any
/// OPRF or ECDH protocol's cost per element.
fn scalar_multiplications_per_second() -> f64 {
    use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
    use curve25519_dalek::scalar::Scalar;
    let s = Scalar::from_bytes_mod_order([0x5a; 32]);
    let mut p = RISTRETTO_BASEPOINT_POINT;
    let n = 40_000;
    let (_, secs) = cpu(|| {
        for _ in 0..n {
            p *= s;
        }
        std::hint::black_box(p)
    });
    if secs > 0.0 { f64::from(n) / secs } else { f64::NAN }
}

#[derive(Default)]
struct Protocol {
    prepare: f64,
    blind: f64,
    evaluate: f64,
    finalise: f64,
    set_bytes: usize,
    query_bytes: usize,
    evaluation_bytes: usize,
    matched: usize,
}

impl Protocol {
    fn total(&self) -> f64 {
        self.prepare + self.blind + self.evaluate + self.finalise
    }
}

/// The protocol on one core of this process, as the node runs it (labelled mode).
fn protocol(holder: &[String], asker: &[String]) -> Result<Protocol, Failure> {
    let f = |e: entente_psi::PsiError| fail(Exit::Failed, e);
    let w = |e: entente_psi::WireError| fail(Exit::Failed, e);
    let mut rng = rand::rngs::OsRng;
    let limits = Limits::default();
    let label = Label { case_reference: "DE-BENCH".into(), contact: "bench desk".into() };
    let entries: Vec<HolderEntry> = parse_all(holder)?
        .into_iter()
        .map(|selector| HolderEntry { selector, labels: vec![label.clone()] })
        .collect();
    let mine = parse_all(asker)?;
    let key = HolderKey::generate(&mut rng).map_err(f)?;
    let public = *key.public_key();
    let mut out = Protocol::default();
    let bar = progress_bar(holder.len() as u64, "holder: preparing the set");
    let (set, secs) = cpu(|| {
        key.prepare_set(Mode::Labelled, &entries, 10_000, &mut rng, |done, _| {
            bar.set_position(done as u64);
        })
    });
    bar.finish_and_clear();
    let set = set.map_err(f)?;
    out.prepare = secs;
    for c in set.chunks(2000) {
        out.set_bytes += c.to_json().map_err(w)?.len();
    }
    let bar = progress_bar(asker.len() as u64, "asker: queries");
    for chunk in mine.chunks(QUERY) {
        let (q, secs) = cpu(|| LabelledQuery::new(&public, chunk, QUERY, &limits, &mut rng));
        let (state, message) = q.map_err(f)?;
        out.blind += secs;
        out.query_bytes += message.to_json().map_err(w)?.len();
        let (e, secs) = cpu(|| key.evaluate(&set, &message, &limits, &mut rng));
        let evaluation = e.map_err(f)?;
        out.evaluate += secs;
        out.evaluation_bytes += evaluation.to_json().map_err(w)?.len();
        let (m, secs) = cpu(|| state.finish(&public, &evaluation, &set));
        out.finalise += secs;
        out.matched += m.map_err(f)?.len();
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// OpenMined PSI on the same items, in `python`; its JSON report.
async fn peer(python: &str, holder: usize, asker: usize) -> Result<Value, Failure> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("openmined_psi.py");
    std::fs::write(&script, PEER)?;
    let out = tokio::process::Command::new(python)
        .arg(&script)
        .args(["--holder", &holder.to_string(), "--asker", &asker.to_string()])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| {
            fail(
                Exit::Failed,
                format!(
                    "cannot run {python}: {e}; give --python the Python that has openmined-psi (scripts/pyenv.sh installs it in .venv)"
                ),
            )
        })?;
    if !out.status.success() {
        return Err(fail(
            Exit::Failed,
            format!(
                "the openmined-psi peer failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| fail(Exit::Failed, format!("the peer's report is not JSON: {e}")))
}

fn phase(v: &Value, name: &str) -> f64 {
    v["phases"][name]["cpu_s"].as_f64().unwrap_or(f64::NAN)
}

/// The agreement both nodes load: deconfliction between NL and DE, queries padded to 1,024,
/// as many as the benchmark makes. A benchmark fixture, not a legal instrument.
fn agreement_toml() -> String {
    format!(
        r#"id = "{AGREEMENT}"
title = "Benchmark fixture: deconfliction NL-DE (not an instrument)"
kind = "mou"
parties = ["NL", "DE"]
in_force_from = "2026-01-01"
offences = ["illegal-access"]
categories = ["case-information"]
purposes = ["deconfliction"]
onward_transfer = "forbidden"
commercial_use_prohibited = true

[deconfliction]
parties = ["NL", "DE"]
purpose = "deconfliction"
selectors = ["ip"]
mode = "labelled"
max_selectors = {QUERY}
max_queries = 10000
per = "P1D"
key_rotation = "P30D"
email_plus_addressing = "strip"

[[legal_basis]]
citation = "Benchmark fixture (no instrument)"
status = "U"
"#
    )
}

async fn init(root: &Path, party: &str) -> Result<Node, Failure> {
    let node = crate::federation::node(root, party).await?;
    let dir = node.data_dir.join(entente_node::identity::AGREEMENTS_DIR);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("{AGREEMENT}.toml")), agreement_toml())?;
    Ok(node)
}

async fn api(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> Result<Value, Failure> {
    let mut r = http.request(method, &url).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(fail(Exit::Failed, format!("{url}: {status}: {v}")));
    }
    Ok(v)
}

struct Nodes {
    rotate: Duration,
    key_arrived: Duration,
    online: Vec<Duration>,
    matched: u64,
    de: (f64, f64),
    nl: (f64, f64),
}

fn pid(s: &Serve) -> String {
    s.pid().map_or_else(|| "0".to_owned(), |p| p.to_string())
}

/// Two node processes: DE holds `holder`, NL asks `asker` selectors `rounds` times.
async fn nodes(holder: &[String], asker: &[String], rounds: usize) -> Result<Nodes, Failure> {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    let (nl_url, de_url, nl_token, de_token, addresses);
    {
        let nl = init(root, "NL").await?;
        let de = init(root, "DE").await?;
        pin(&nl, &de).await?;
        pin(&de, &nl).await?;
        nl_token = crate::bench_token(&nl, "psi-investigator", Role::Investigator).await?;
        de_token = crate::bench_token(&de, "psi-admin", Role::Admin).await?;
        let de_inv = crate::bench_user(&de, Role::Investigator).await?;
        let nl_inv = crate::bench_user(&nl, Role::Investigator).await?;
        for (node, actor, case) in [(&de, &de_inv, "DE-BENCH"), (&nl, &nl_inv, "BENCH")] {
            let open = entente_store::cases::OpenCase {
                id: case.parse()?,
                title: "deconfliction benchmark".into(),
                concepts: vec!["illegal-access".into()],
            };
            entente_console::permitted(
                node.gate.submit(actor.clone(), open, Timestamp::now()).await?,
            )?;
        }
        // DE's holdings: data items of its case, 1,000 addresses each.
        let bar = progress_bar(holder.len() as u64, "DE: recording its holdings");
        for (n, chunk) in holder.chunks(1000).enumerate() {
            let mut content = serde_json::Map::new();
            content.insert("addresses".into(), json!(chunk));
            let add = entente_store::flows::AddDatum {
                id: format!("de-holding-{n}").parse()?,
                case_id: "DE-BENCH".parse()?,
                category: entente_policy::agreement::DataCategory::CaseInformation,
                content,
            };
            entente_console::permitted(
                de.gate.submit(de_inv.clone(), add, Timestamp::now()).await?,
            )?;
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        nl_url = format!("http://{}", nl.config.listen);
        de_url = format!("http://{}", de.config.listen);
        addresses =
            [&nl, &de].map(|n| (n.data_dir.clone(), n.config.listen, n.config.federation_listen));
        // The node processes take the data directories' locks: this process lets go first.
        drop((nl, de));
    }
    let [(nl_dir, nl_listen, nl_fed), (de_dir, de_listen, de_fed)] = addresses;
    let missing = || fail(Exit::Failed, "no federation address");
    let nl_serve = serve_dir(&nl_dir, nl_listen, nl_fed.ok_or_else(missing)?).await?;
    let de_serve = serve_dir(&de_dir, de_listen, de_fed.ok_or_else(missing)?).await?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(600)).build()?;

    let started = Instant::now();
    api(
        &http,
        reqwest::Method::POST,
        format!("{de_url}/api/v1/psi/keys"),
        &de_token,
        Some(json!({"agreement": AGREEMENT, "contact": "bench desk"})),
    )
    .await?;
    let rotate = started.elapsed();
    // NL has DE's key when its status lists the epoch with every chunk received.
    let status = format!("{nl_url}/api/v1/psi/status?case=BENCH");
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let s = api(&http, reqwest::Method::GET, status.clone(), &nl_token, None).await?;
        let complete = s["peer_keys"].as_array().is_some_and(|keys| {
            keys.iter().any(|k| k["peer"] == "DE" && k["received"] == k["total"])
        });
        if complete {
            break;
        }
        if Instant::now() > deadline {
            return Err(fail(Exit::Failed, "NL did not receive DE's key within 30 minutes"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let key_arrived = started.elapsed();

    let mut online = Vec::new();
    let mut matched = 0;
    let mut answered = 0usize;
    for _ in 0..rounds {
        let t = Instant::now();
        let mut sent = 0usize;
        for chunk in asker.chunks(QUERY) {
            api(
                &http,
                reqwest::Method::POST,
                format!("{nl_url}/api/v1/psi/queries"),
                &nl_token,
                Some(json!({"case": "BENCH", "to": ["DE"], "agreement": AGREEMENT, "selectors": chunk})),
            )
            .await?;
            sent += 1;
        }
        let deadline = Instant::now() + Duration::from_secs(1800);
        loop {
            let s = api(&http, reqwest::Method::GET, status.clone(), &nl_token, None).await?;
            let queries = s["queries"].as_array().cloned().unwrap_or_default();
            let done: Vec<&Value> = queries.iter().filter(|q| q["status"] == "answered").collect();
            if let Some(q) =
                queries.iter().find(|q| q["status"] == "failed" || q["status"] == "refused")
            {
                return Err(fail(Exit::Failed, format!("a query did not succeed: {q}")));
            }
            if done.len() >= answered + sent {
                matched =
                    done.iter().skip(answered).map(|q| q["matched"].as_u64().unwrap_or(0)).sum();
                answered += sent;
                break;
            }
            if Instant::now() > deadline {
                return Err(fail(Exit::Failed, "NL's queries were not answered within 30 minutes"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        online.push(t.elapsed());
    }
    let (dp, np) = (pid(&de_serve), pid(&nl_serve));
    let out = Nodes {
        rotate,
        key_arrived,
        online,
        matched,
        de: (cpu_of(&dp), peak_rss_mib_of(&dp).unwrap_or(f64::NAN)),
        nl: (cpu_of(&np), peak_rss_mib_of(&np).unwrap_or(f64::NAN)),
    };
    drop((de_serve, nl_serve));
    Ok(out)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `entente bench psi`.
pub(crate) async fn run(
    holder: usize,
    asker: usize,
    rounds: usize,
    python: &str,
    with_nodes: bool,
) -> Result<(), Failure> {
    if holder == 0 || asker == 0 || holder > 0x00ff_ffff || asker > 0x00ff_ffff {
        return Err(fail(Exit::BadInput, "--holder and --asker: expected 1 to 16,777,215"));
    }
    let (h, a, overlap) = items(holder, asker);
    println!(
        "deconfliction: holder {holder} selectors, asker {asker} ({overlap} of them the holder's); load average {}",
        crate::evidence::load_average()
    );
    let floor = scalar_multiplications_per_second();
    println!(
        "physical limit: {floor:.0} ristretto255 variable-base scalar multiplications/s, one core"
    );

    let p = protocol(&h, &a)?;
    if p.matched != overlap {
        return Err(fail(
            Exit::Failed,
            format!("Entente found {} matches; {overlap} expected", p.matched),
        ));
    }
    let o = peer(python, holder, asker).await?;
    if o["intersection"].as_u64() != Some(overlap as u64) {
        return Err(fail(
            Exit::Failed,
            format!("openmined-psi found {}; {overlap} expected", o["intersection"]),
        ));
    }
    let peer_total = ["holder_setup", "asker_request", "holder_process", "asker_intersect"]
        .iter()
        .map(|n| phase(&o, n))
        .sum::<f64>();
    println!();
    println!("CPU seconds per phase (one core)        Entente   openmined-psi");
    println!(
        "  holder: prepare its set (per epoch)  {:>8.2}   {:>8.2}  (setup message)",
        p.prepare,
        phase(&o, "holder_setup")
    );
    println!(
        "  asker: blind its selectors           {:>8.2}   {:>8.2}  (request)",
        p.blind,
        phase(&o, "asker_request")
    );
    println!(
        "  holder: evaluate (+ proof)           {:>8.2}   {:>8.2}  (process request)",
        p.evaluate,
        phase(&o, "holder_process")
    );
    println!(
        "  asker: verify, finalise, intersect   {:>8.2}   {:>8.2}  (intersection)",
        p.finalise,
        phase(&o, "asker_intersect")
    );
    println!("  total                                {:>8.2}   {:>8.2}", p.total(), peer_total);
    println!(
        "  ratio Entente / openmined-psi: {:.2}x (the issue's goal: at most 0.3x)",
        p.total() / peer_total
    );
    println!(
        "  online (asker blind + holder evaluate + asker finalise, set prepared): {:.2} s vs {:.2} s",
        p.blind + p.evaluate + p.finalise,
        phase(&o, "asker_request") + phase(&o, "holder_process") + phase(&o, "asker_intersect")
    );
    println!("bytes on the wire                         Entente   openmined-psi");
    println!(
        "  holder -> asker (set + evaluations)   {:>9.1} MB {:>9.1} MB",
        (p.set_bytes + p.evaluation_bytes) as f64 / 1e6,
        o["bytes"]["holder_to_asker"].as_f64().unwrap_or(f64::NAN) / 1e6
    );
    println!(
        "  asker -> holder (queries)             {:>9.1} MB {:>9.1} MB",
        p.query_bytes as f64 / 1e6,
        o["bytes"]["asker_to_holder"].as_f64().unwrap_or(f64::NAN) / 1e6
    );
    println!(
        "  (Entente's queries are padded to {QUERY}; its set travels once per key epoch, not per query)"
    );

    if with_nodes {
        println!();
        println!("two node processes over the federation's mutual TLS (SQLite, synchronous=FULL):");
        let n = nodes(&h, &a, rounds).await?;
        let mut online = n.online.clone();
        online.sort();
        println!(
            "  DE rotates its key and prepares its set (API call): {:.2} s",
            n.rotate.as_secs_f64()
        );
        println!(
            "  NL holds DE's complete key and set:                 {:.2} s after the rotation began",
            n.key_arrived.as_secs_f64()
        );
        println!(
            "  online time of {} asker selectors ({} queries of {QUERY}), {} rounds: p50 {:.0} ms, p90 {:.0} ms; last round matched {}",
            asker,
            asker.div_ceil(QUERY),
            rounds,
            percentile(&online, 0.5).as_secs_f64() * 1e3,
            percentile(&online, 0.9).as_secs_f64() * 1e3,
            n.matched
        );
        println!("  DE node process: {:.1} s CPU, peak RSS {:.0} MiB", n.de.0, n.de.1);
        println!("  NL node process: {:.1} s CPU, peak RSS {:.0} MiB", n.nl.0, n.nl.1);
        if n.matched != overlap as u64 {
            return Err(fail(
                Exit::Failed,
                format!("the nodes found {} matches; {overlap} expected", n.matched),
            ));
        }
    }
    Ok(())
}
