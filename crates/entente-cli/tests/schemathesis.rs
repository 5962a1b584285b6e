//! API fuzzing with a tool the project did not write: schemathesis (pinned in
//! scripts/requirements-interop.txt) against `/openapi.json` of a running node, once with no
//! token and once as each role, bounded (a fixed seed, a few examples per operation).
//!
//! Every check but `positive_data_acceptance` runs: no 5xx, every status and content type
//! documented (so every error is a problem, or a TAXII error on the TAXII routes), every
//! answer valid against its schema, headers as documented, schema-invalid input refused,
//! missing authentication refused before anything else is looked at, no unsupported method
//! accepted. `positive_data_acceptance` is left out: a schema-valid request may still be
//! refused for what it means (a case that does not exist, a role that may not act), which is
//! the gate's to decide and not the schema's.

use crate::common::{Server, add_user, init_node, tool};
use std::time::{Duration, Instant};

const CHECKS_EXCLUDED: &str = "positive_data_acceptance";

#[tokio::test]
async fn schemathesis_finds_nothing_for_any_role_or_no_token() {
    let Some(st) = tool("st") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nl");
    init_node(&dir, "NL");
    let roles = ["admin", "investigator", "central-authority", "csirt", "dpo", "auditor"];
    let tokens: Vec<(&str, String)> =
        roles.iter().map(|r| (*r, add_user(&dir, &format!("st-{r}"), r))).collect();
    let server = Server::start(&dir, Duration::from_secs(30)).await;
    let schema = format!("{}/openapi.json", server.url);
    let mut runs: Vec<(&str, Option<String>)> = vec![("no token", None)];
    runs.extend(tokens.into_iter().map(|(r, t)| (r, Some(t))));
    let mut failed = Vec::new();
    for (who, token) in runs {
        let started = Instant::now();
        let mut cmd = std::process::Command::new(&st);
        // Its cache (.schemathesis/) goes to the temporary directory, not the source tree.
        cmd.current_dir(tmp.path())
            .args(["--no-color", "run", &schema])
            .args(["--checks", "all", "--exclude-checks", CHECKS_EXCLUDED])
            .args(["--phases", "examples,coverage,fuzzing,stateful"])
            .args(["--max-examples", "8", "--seed", "20261202", "--no-shrink"])
            .args(["--request-timeout", "20"])
            .args(["--report-dir"])
            .arg(tmp.path().join("schemathesis-report"));
        if let Some(t) = &token {
            cmd.args(["--header", &format!("Authorization: Bearer {t}")]);
        }
        let o = cmd.output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        let summary = out.lines().rev().find(|l| l.contains("generated")).unwrap_or("").trim();
        eprintln!("schemathesis as {who}: {summary} ({:.1?})", started.elapsed());
        if !o.status.success() {
            failed.push(format!(
                "as {who} (exit {:?}):\n{out}\n{}",
                o.status.code(),
                String::from_utf8_lossy(&o.stderr)
            ));
        }
    }
    assert!(failed.is_empty(), "schemathesis found failures:\n{}", failed.join("\n\n"));
}
