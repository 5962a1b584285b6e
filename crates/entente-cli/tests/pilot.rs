//! `entente pilot` end to end: Operation Lantern on three `entente serve` processes that pin
//! each other; every check of the story passes and the command exits 0.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use crate::common::{entente_in, stderr, stdout};

/// One pilot at a time: each runs three node processes whose witnesses must cosign within
/// bounded waits, and two at once on a 2-core machine starve each other's witnesses.
static ONE_PILOT: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_pilot() -> std::sync::MutexGuard<'static, ()> {
    ONE_PILOT.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The failed checks of a pilot's output, with the step each belongs to, so that a failure
/// message names them before the whole (long) output.
fn failed_checks(out: &str) -> String {
    let mut step = "";
    let mut failed = String::new();
    for line in out.lines() {
        if line.starts_with("Step ") || line.starts_with("Setting up") {
            step = line;
        } else if line.trim_start().starts_with('✗') {
            failed.push_str(&format!("{step}\n{line}\n"));
        }
    }
    failed
}

#[test]
fn the_pilot_runs_every_step_and_every_check_passes() {
    let _one = one_pilot();
    // Without --dir, the pilot writes its transparency report to ./entente-pilot-reports.
    let cwd = tempfile::tempdir().unwrap();
    let o = entente_in(Some(cwd.path()), &["pilot"]);
    let out = stdout(&o);
    assert!(o.status.success(), "failed checks:\n{}\n{out}\n{}", failed_checks(&out), stderr(&o));
    let summary = out.lines().find(|l| l.contains(" checks, ")).expect("a summary line");
    assert!(summary.contains(", 0 failed"), "{summary}");
    let checks: usize = summary.split_whitespace().next().unwrap().parse().unwrap();
    assert!(checks >= 80, "{summary}");
    for step in
        ["Step 3", "Step 5", "Step 6", "Step 8", "Step 9", "Step 10 — transparency", "Step 11"]
    {
        assert!(out.contains(step), "{step} missing:\n{out}");
    }
    assert!(!out.contains('✗'), "{out}");
    assert!(
        out.contains("NL learns DE holds two") && out.contains("DE learns only how many"),
        "{out}"
    );
    assert!(!out.contains("deconfliction by PSI (3)"), "{out}");
    assert!(!out.contains("Not yet in this pilot"), "{out}");
    let reports: Vec<String> = std::fs::read_dir(cwd.path().join("entente-pilot-reports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        reports.iter().any(|f| f.ends_with(".html"))
            && reports.iter().any(|f| f.ends_with(".json")),
        "{reports:?}"
    );
}

/// `pilot --keep`: after the checks, the three nodes serve again; their dashboards answer and
/// a printed token signs in; SIGTERM stops them and the command exits 0.
#[test]
fn the_pilot_keeps_its_nodes_serving_until_stopped() {
    let _one = one_pilot();
    let rt = tokio::runtime::Runtime::new().unwrap();
    use std::io::BufRead as _;
    let cwd = tempfile::tempdir().unwrap();
    let dir = cwd.path().join("lantern");
    let mut child = std::process::Command::new(crate::common::BIN)
        .args(["pilot", "--keep", "--dir", dir.to_str().unwrap()])
        .current_dir(cwd.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(cwd.path().join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let stderr = || std::fs::read_to_string(cwd.path().join("stderr.log")).unwrap_or_default();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut dashboards, mut tokens, mut out) = (Vec::new(), Vec::new(), String::new());
    // Bounded: the pilot prints the prompt after its run, or ends.
    for line in lines.by_ref().take(2000) {
        let line = line.unwrap();
        out.push_str(&line);
        out.push('\n');
        if let Some(url) = line.split_whitespace().find(|w| w.ends_with("/ui/")) {
            dashboards.push(url.to_owned());
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() == 3 && words[0] == "investigator" && words[2].len() == 64 {
            tokens.push(words[2].to_owned());
        }
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    assert!(
        out.contains(", 0 failed"),
        "failed checks:\n{}\n{out}\nstderr:\n{}",
        failed_checks(&out),
        stderr()
    );
    assert_eq!(dashboards.len(), 3, "{out}\nstderr:\n{}", stderr());
    assert!(!tokens.is_empty(), "{out}\nstderr:\n{}", stderr());
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let nl = dashboards[0].trim_end_matches("/ui/");
    assert!(rt.block_on(http.get(format!("{nl}/healthz")).send()).unwrap().status().is_success());
    let signed = rt
        .block_on(
            http.post(format!("{nl}/ui/sign-in"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("token={}", tokens[0]))
                .send(),
        )
        .unwrap();
    assert!(signed.headers().get("set-cookie").is_some(), "{:?}", signed.status());
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let rest: Vec<String> = lines.take(100).map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l == "stopped"), "{rest:?}");
    assert!(child.wait().unwrap().success());
    // The node processes are gone with it.
    assert!(rt.block_on(http.get(format!("{nl}/healthz")).send()).is_err());
}
