//! `entente bench report`: exact statistics, the oversight view of the ledger and a public
//! release over a ledger of N entries holding M requests, all generated through the gate;
//! each report made by a fresh `entente report` process (wall time and peak RSS of that
//! process, as an operator would run it).

use crate::{bench_user, make_node};
use entente_console::{Exit, Failure, fail, progress_bar};
use entente_core::Role;
use entente_policy::agreement::RequestKind;
use entente_policy::request::RequestEvent;
use entente_report::Ratio;
use entente_store::Verdict;
use entente_store::requests::{CreateRequest, TransitionRequest};
use jiff::{SignedDuration, Timestamp};
use std::time::{Duration, Instant};

const TASKS: u64 = 256;

fn half_year(now: Timestamp) -> String {
    let d = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    format!("{}-H{}", d.year(), if d.month() >= 7 { 2 } else { 1 })
}

/// The life of request `i`: always drafted, submitted and received; half answered, a fifth
/// refused on `ground` (when the agreement has one), the rest pending.
fn events(i: u64, ground: &str) -> Vec<RequestEvent> {
    let mut v = vec![RequestEvent::Submit, RequestEvent::Receive];
    match i % 10 {
        0..=4 => v.extend([
            RequestEvent::StartReview,
            RequestEvent::Approve,
            RequestEvent::StartExecution,
            RequestEvent::Answer,
        ]),
        5 | 6 if !ground.is_empty() => v.extend([
            RequestEvent::StartReview,
            RequestEvent::Refuse { grounds: vec![ground.to_owned()] },
        ]),
        _ => {}
    }
    v
}

/// Runs a report command as a child process; its wall time and peak RSS (VmHWM, polled).
fn timed(args: &[&str]) -> Result<(f64, f64, String), Failure> {
    let exe = std::env::current_exe()?;
    let start = Instant::now();
    let mut child = std::process::Command::new(exe)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let pid = child.id().to_string();
    let mut peak = 0.0_f64;
    loop {
        if let Some(m) = crate::evidence::peak_rss_mib_of(&pid) {
            peak = peak.max(m);
        }
        if child.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = start.elapsed().as_secs_f64();
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(fail(
            Exit::Failed,
            format!("entente {args:?}: {}", String::from_utf8_lossy(&out.stderr)),
        ));
    }
    Ok((took, peak, String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// Generates the ledger, then times `report stats`, `report ledger` and `report publish`.
///
/// # Errors
/// A step failed.
pub(crate) async fn run(
    entries: u64,
    requests: u64,
    runs: u32,
    keep: Option<std::path::PathBuf>,
) -> Result<(), Failure> {
    let tmp = tempfile::tempdir()?;
    let root = keep.unwrap_or_else(|| tmp.path().to_owned());
    let data_dir = root.join("node");
    let period = half_year(Timestamp::now());
    if data_dir.join("entente.toml").exists() {
        println!("reusing the node in {}", data_dir.display());
        return measure(&root, &data_dir, &period, requests, runs).await;
    }
    let node = make_node(&root, None).await?;
    let ca = bench_user(&node, Role::CentralAuthority).await?;
    entente_console::permitted(
        node.gate
            .submit(
                node.operator(),
                entente_store::users::AddUser {
                    name: "bench-dpo".into(),
                    role: Role::Dpo,
                    token_sha256: "0".repeat(64),
                },
                Timestamp::now(),
            )
            .await?,
    )?;
    let now = Timestamp::now();
    // Every generated instant lies in the current half-year, before now, and after the
    // e-Evidence Regulation applies (18 August 2026).
    let p = entente_report::Period::parse(&period).map_err(|e| fail(Exit::Failed, e))?;
    let floor: Timestamp = "2026-08-19T00:00:00Z".parse().map_err(|e| fail(Exit::Failed, e))?;
    let base = p.from.max(floor);
    let span = now.as_second().saturating_sub(base.as_second()).max(3_600);
    let at = move |i: u64, step: u64| -> Timestamp {
        let s = (i.wrapping_mul(7_919) % u64::try_from(span - 600).unwrap_or(1)) as i64;
        base.checked_add(SignedDuration::from_secs(s + step as i64 * 60)).unwrap_or(now)
    };
    let cases = requests.div_ceil(5).max(1);
    let started = Instant::now();
    let bar = progress_bar(cases, "opening cases");
    let mut tasks = Vec::new();
    for t in 0..TASKS.min(cases) {
        let (gate, who, bar) = (node.gate.clone(), ca.clone(), bar.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = t;
            while i < cases {
                let c = entente_store::cases::OpenCase {
                    id: format!("C{i}").parse().map_err(|e| format!("{e}"))?,
                    title: "benchmark case".into(),
                    concepts: vec!["illegal-access".into()],
                };
                gate.submit(who.clone(), c, at(i, 0)).await.map_err(|e| e.to_string())?;
                bar.inc(1);
                i += TASKS;
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| fail(Exit::Failed, e))?.map_err(|e| fail(Exit::Failed, e))?;
    }
    bar.finish_and_clear();
    let bar = progress_bar(requests, "requests through their lives");
    let mut tasks = Vec::new();
    for t in 0..TASKS.min(requests.max(1)) {
        let (gate, who, bar) = (node.gate.clone(), ca.clone(), bar.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = t;
            while i < requests {
                let (kind, agreement, to, ground) = match i % 3 {
                    0 => (RequestKind::Production, "eu-2023-1543", "DE", "fundamental-rights"),
                    1 => (RequestKind::Preservation, "eu-2023-1543", "DE", "fundamental-rights"),
                    // The NL-US treaty file encodes no refusal ground: its requests are not refused.
                    _ => (RequestKind::Mla, "nl-us-mla", "US", ""),
                };
                let id: entente_core::RequestId =
                    format!("R{i}").parse().map_err(|e| format!("{e}"))?;
                let create = CreateRequest {
                    id: id.clone(),
                    case_id: format!("C{}", i % cases).parse().map_err(|e| format!("{e}"))?,
                    kind,
                    agreement: agreement.into(),
                    to: to.parse().map_err(|e| format!("{e}"))?,
                    emergency: i % 17 == 0,
                    provisions: vec!["Sr 138ab".into()],
                };
                let v =
                    gate.submit(who.clone(), create, at(i, 1)).await.map_err(|e| e.to_string())?;
                if !matches!(v, Verdict::Permitted { .. }) {
                    return Err(format!("request {i} was not created: {v:?}"));
                }
                for (k, event) in events(i, ground).into_iter().enumerate() {
                    let step = TransitionRequest { id: id.clone(), event };
                    let v = gate
                        .submit(who.clone(), step, at(i, 2 + k as u64))
                        .await
                        .map_err(|e| format!("request {i}: {e}"))?;
                    if !matches!(v, Verdict::Permitted { .. }) {
                        return Err(format!("request {i} step {k}: {v:?}"));
                    }
                }
                bar.inc(1);
                i += TASKS;
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| fail(Exit::Failed, e))?.map_err(|e| fail(Exit::Failed, e))?;
    }
    bar.finish_and_clear();
    let (size, _) = node.store.ledger_head().await?;
    let fill = entries.saturating_sub(size);
    if fill > 0 {
        crate::append(&node, fill, TASKS, "filling the ledger").await?;
    }
    let (size, _) = node.store.ledger_head().await?;
    println!(
        "generated through the gate in {:.1} s: {size} ledger entries, {requests} requests ({cases} cases)",
        started.elapsed().as_secs_f64()
    );
    node.store.close().await;
    drop(node);
    measure(&root, &data_dir, &period, requests, runs).await
}

fn reset_peak_rss() {
    // Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn row(name: &str, s: &[(f64, f64)]) {
    let best = s.iter().map(|x| x.0).fold(f64::INFINITY, f64::min);
    let worst = s.iter().map(|x| x.0).fold(0.0, f64::max);
    let rss = s.iter().map(|x| x.1).fold(0.0, f64::max);
    println!("  {name:<34} {best:>10.2} {worst:>10.2} {rss:>14.0}");
}

/// Times each report `runs` times on the node in `data_dir`: in a node process as the API
/// serves it (the node already open), then as a fresh `entente report` process (opening the
/// node, with its integrity check, included).
async fn measure(
    root: &std::path::Path,
    data_dir: &std::path::Path,
    period: &str,
    requests: u64,
    runs: u32,
) -> Result<(), Failure> {
    let size = std::fs::metadata(data_dir.join("entente.sqlite")).map(|m| m.len()).unwrap_or(0);
    let p = entente_report::Period::parse(period).map_err(|e| fail(Exit::Failed, e))?;
    {
        let node = entente_node::Node::open(data_dir).await?;
        let (entries, _) = node.store.ledger_head().await?;
        println!(
            "in the node process, over {entries} entries and {requests} requests, database {} MiB (best and worst of {runs}; peak RSS of the process):",
            size / (1 << 20)
        );
        println!("  {:<34} {:>10} {:>10} {:>14}", "report", "best s", "worst s", "peak RSS MiB");
        let mut stats = Vec::new();
        let mut ledger = Vec::new();
        let mut publish = Vec::new();
        for _ in 0..runs {
            reset_peak_rss();
            let t = Instant::now();
            let v = entente_node::reports::statistics(
                &node,
                node.operator(),
                &p,
                None,
                Timestamp::now(),
            )
            .await
            .map_err(|e| fail(Exit::Failed, e))?;
            let (_, st) = entente_console::permitted(v)?;
            let issued: u64 = st
                .tables
                .iter()
                .filter(|t| t.id == "requests-issued")
                .flat_map(|t| t.rows.iter())
                .filter_map(|r| match r.cells.get(4) {
                    Some(entente_report::stats::Cell::Count(n)) => Some(*n),
                    _ => None,
                })
                .sum();
            if issued != requests {
                println!(
                    "  (note: the statistics count {issued} requests issued, {requests} were made)"
                );
            }
            stats.push((
                t.elapsed().as_secs_f64(),
                crate::evidence::peak_rss_mib_of("self").unwrap_or(f64::NAN),
            ));
            reset_peak_rss();
            let t = Instant::now();
            let v =
                entente_node::reports::ledger_view(&node, node.operator(), &p, Timestamp::now())
                    .await
                    .map_err(|e| fail(Exit::Failed, e))?;
            entente_console::permitted(v)?;
            ledger.push((
                t.elapsed().as_secs_f64(),
                crate::evidence::peak_rss_mib_of("self").unwrap_or(f64::NAN),
            ));
            reset_peak_rss();
            let dpo = node.operator_for("bench-dpo").await?;
            let t = Instant::now();
            let eps = Ratio::parse("1/1000").map_err(|e| fail(Exit::Failed, e))?;
            let v =
                entente_node::reports::publish(&node, dpo, &p, Some(eps), true, Timestamp::now())
                    .await
                    .map_err(|e| fail(Exit::Failed, e))?;
            entente_console::permitted(v)?;
            publish.push((
                t.elapsed().as_secs_f64(),
                crate::evidence::peak_rss_mib_of("self").unwrap_or(f64::NAN),
            ));
        }
        row("statistics", &stats);
        row("oversight view of the ledger", &ledger);
        row("public release (new, drawn)", &publish);
        node.store.close().await;
    }
    fresh(root, data_dir, period, runs)
}

/// Times each report command `runs` times as a fresh process on the node in `data_dir`.
fn fresh(
    root: &std::path::Path,
    data_dir: &std::path::Path,
    period: &str,
    runs: u32,
) -> Result<(), Failure> {
    let d = data_dir.to_str().ok_or_else(|| fail(Exit::Failed, "data dir is not UTF-8"))?;
    let out = root.join("out");
    let out_s = out.to_str().ok_or_else(|| fail(Exit::Failed, "out dir is not UTF-8"))?;
    let mut rows: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let commands: [(&str, Vec<&str>); 3] = [
        ("report stats", vec!["report", "stats", "--period", period, "--data-dir", d, "--json"]),
        ("report ledger", vec!["report", "ledger", "--period", period, "--data-dir", d, "--json"]),
        (
            "report publish (new release)",
            vec![
                "report",
                "publish",
                "--period",
                &period,
                "--data-dir",
                d,
                "--user",
                "bench-dpo",
                "--out",
                out_s,
                "--json",
                "--new-release",
                "--epsilon",
                "1/1000",
            ],
        ),
    ];
    for (name, args) in &commands {
        let mut samples = Vec::new();
        for _ in 0..runs {
            let (took, peak, _) = timed(args)?;
            samples.push((took, peak));
        }
        rows.push(((*name).to_owned(), samples));
    }
    println!(
        "as a fresh `entente report` process (opening the node and its integrity check included):"
    );
    println!("  {:<34} {:>10} {:>10} {:>14}", "command", "best s", "worst s", "peak RSS MiB");
    for (name, samples) in &rows {
        row(name, samples);
    }
    println!("machine load average: {}", crate::evidence::load_average());
    Ok(())
}
