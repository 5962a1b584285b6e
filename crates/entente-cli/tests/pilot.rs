//! `entente pilot` end to end: Operation Lantern on three `entente serve` processes that pin
//! each other; every check of the story passes and the command exits 0.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use crate::common::{entente_in, stderr, stdout};

#[test]
fn the_pilot_runs_every_step_and_every_check_passes() {
    // Without --dir, the pilot writes its transparency report to ./entente-pilot-reports.
    let cwd = tempfile::tempdir().unwrap();
    let o = entente_in(Some(cwd.path()), &["pilot"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
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
