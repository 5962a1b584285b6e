//! `entente framework gaps` and `entente framework explain`, through the real binary.

use crate::common::{entente, text};
use std::path::PathBuf;
use std::process::Output;

fn scenario(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/scenarios")
        .join(name)
        .display()
        .to_string()
}

fn json(out: &Output) -> serde_json::Value {
    match serde_json::from_slice(&out.stdout) {
        Ok(v) => v,
        Err(e) => panic!("not JSON ({e}): {}", text(&out.stdout)),
    }
}

#[test]
fn lantern_table() {
    let out = entente(&["framework", "gaps", "--scenario", &scenario("lantern.toml")]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("blocked") && stdout.contains("lawful"), "{stdout}");
    assert!(stdout.contains("blocked: onward transfer needs consent"), "{stdout}");
    assert!(stdout.contains("blocked: retention conflict"), "{stdout}");
    assert!(stdout.contains("retention conflict: needs P5Y, jit-lantern allows P2Y"), "{stdout}");
    assert!(stdout.contains("eu-2023-1543#flow") && stdout.contains("P10D"), "{stdout}");
    assert!(stdout.contains("7 flows: 3 lawful, 2 blocked, 2 with warnings"), "{stdout}");
    assert!(stdout.contains("(on the conduct, nl-us-mla)"), "{stdout}");
    // The production order for traffic data may be refused by DE on the conduct (Regulation
    // (EU) 2023/1543 Arts 8, 12(1)(d)).
    assert!(stdout.contains("(on the conduct, eu-2023-1543)"), "{stdout}");
}

#[test]
fn lantern_json() {
    let out = entente(&["framework", "gaps", "--scenario", &scenario("lantern.toml"), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = json(&out);
    assert_eq!(v["scenario"], "lantern");
    assert_eq!(v["summary"]["blocked"], 2);
    let verdicts: Vec<&str> = v["flows"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f["verdict"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        verdicts,
        [
            "lawful-with-warnings",
            "lawful",
            "lawful",
            "lawful-with-warnings",
            "blocked",
            "lawful",
            "blocked"
        ],
        "{v}"
    );
    assert_eq!(v["flows"][4]["blocked_by"][0], "onward-transfer-needs-consent");
}

#[test]
fn every_shipped_scenario_runs() {
    for name in ["stress-coverage.toml", "stress-before-eevidence.toml", "stress-2021.toml"] {
        let out = entente(&["framework", "gaps", "--scenario", &scenario(name)]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
    }
}

#[test]
fn agreements_directory_is_used_and_validated() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    };
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/agreements");
    // Only the NL-US MLA: the DE flows have no agreement.
    if let Err(e) = std::fs::copy(shipped.join("nl-us-mla.toml"), dir.path().join("nl-us-mla.toml"))
    {
        panic!("copy: {e}");
    }
    let d = dir.path().display().to_string();
    let out = entente(&[
        "framework",
        "gaps",
        "--scenario",
        &scenario("lantern.toml"),
        "--agreements",
        &d,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = json(&out);
    assert_eq!(v["agreements"], serde_json::json!(["nl-us-mla"]));
    assert_eq!(v["flows"][0]["blocked_by"][0], "no-agreement-in-force", "{v}");

    if let Err(e) = std::fs::write(dir.path().join("bad.toml"), "id = \"bad\"\ntitle = 3\n") {
        panic!("write: {e}");
    }
    let out = entente(&[
        "framework",
        "gaps",
        "--scenario",
        &scenario("lantern.toml"),
        "--agreements",
        &d,
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.toml:2:"), "{stderr}");
}

#[test]
fn broken_scenario_is_exit_2_with_positions() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    };
    let path = dir.path().join("broken.toml");
    let body = "id = \"broken\"\ntitle = \"Broken\"\ndate = \"2026-09-01\"\nrequesting = \"NL\"\n\n[[flow]]\nfrom = \"DE\"\nto = \"NL\"\ncategory = \"trafic\"\npurpose = \"criminal-investigation\"\n";
    if let Err(e) = std::fs::write(&path, body) {
        panic!("write: {e}");
    }
    let p = path.display().to_string();
    let out = entente(&["framework", "gaps", "--scenario", &p]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("{p}:9:12: flow.category: found `trafic`")), "{stderr}");

    let out = entente(&["framework", "gaps", "--scenario", "/nonexistent/scenario.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn explain_permit() {
    let out = entente(&[
        "framework",
        "explain",
        "--from",
        "NL",
        "--to",
        "US",
        "--category",
        "traffic",
        "--purpose",
        "criminal-investigation",
        "--originator",
        "DE",
        "--origin-agreement",
        "jit-lantern",
        "--consent",
        "--date",
        "2026-09-01",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("decision: PERMIT"), "{stdout}");
    assert!(stdout.contains("rule: nl-us-mla#flow"), "{stdout}");
    // The NL-US treaty's text is not in the research: the permit says its basis is unverified.
    assert!(
        stdout.contains("UNVERIFIED legal basis (status U: check before relying on it):"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  - Bilateral mutual legal assistance treaty between the Netherlands"),
        "{stdout}"
    );
    assert!(stdout.contains("no onward transfer without the consent of DE"), "{stdout}");
    assert!(stdout.contains("no commercial use"), "{stdout}");

    let out = entente(&[
        "framework",
        "explain",
        "--from",
        "DE",
        "--to",
        "NL",
        "--category",
        "traffic",
        "--purpose",
        "joint-investigation",
        "--date",
        "2026-09-01",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = json(&out);
    assert_eq!(v["decision"]["outcome"], "permit");
    assert_eq!(v["agreement"], "jit-lantern");
    assert_eq!(v["conditions"]["retain_until"], "2028-09-01T12:00:00Z");
}

#[test]
fn explain_deny() {
    let out = entente(&[
        "framework",
        "explain",
        "--from",
        "NL",
        "--to",
        "US",
        "--category",
        "traffic",
        "--purpose",
        "criminal-investigation",
        "--originator",
        "DE",
        "--origin-agreement",
        "jit-lantern",
        "--date",
        "2026-09-01",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("decision: DENY"), "{stdout}");
    assert!(stdout.contains("jit-lantern#onward-transfer-needs-consent"), "{stdout}");

    let out = entente(&[
        "framework",
        "explain",
        "--from",
        "DE",
        "--to",
        "NL",
        "--category",
        "traffic",
        "--purpose",
        "criminal-investigation",
        "--request-kind",
        "production",
        "--date",
        "2021-06-01",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("decision: DENY"), "{stdout}");
    assert!(stdout.contains("eu-2023-1543: not yet in force"), "{stdout}");
    assert!(stdout.contains("ets-185: does not provide for the request kind"), "{stdout}");

    let out = entente(&[
        "framework",
        "explain",
        "--from",
        "NL",
        "--to",
        "US",
        "--category",
        "trafic",
        "--purpose",
        "prosecution",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}
