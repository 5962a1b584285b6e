//! The HTTP API of a real `entente serve` process: problem details for every refusal, what
//! the gate records (denials included) and what it does not (malformed, conflicting, invalid
//! or missing), the OpenAPI document, metrics, and the public ledger endpoints.

use crate::common::{Server, add_user, entente, init_node, s, stderr, stdout};
use reqwest::RequestBuilder;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

/// Responses seen: (method, OpenAPI path template, status).
type Seen = BTreeSet<(&'static str, &'static str, u16)>;

/// Sends `req`, asserts the answer is an RFC 9457 problem with `status`, and returns it.
async fn problem(
    seen: &mut Seen,
    route: (&'static str, &'static str),
    req: RequestBuilder,
    status: u16,
) -> Value {
    let resp = req.send().await.unwrap();
    let got = resp.status().as_u16();
    let ct = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = resp.text().await.unwrap();
    assert_eq!(got, status, "{route:?}: {text}");
    assert_eq!(ct, "application/problem+json", "{route:?} {status}: {text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    for field in ["type", "title", "detail"] {
        assert!(body[field].is_string(), "{route:?} {status}: no {field} in {body}");
    }
    assert!(body["type"].as_str().unwrap().starts_with("urn:entente:problem:"), "{body}");
    assert_eq!(body["status"], status, "{body}");
    seen.insert((route.0, route.1, status));
    body
}

/// Sends `req`, asserts `status`, returns the body bytes.
async fn expect(
    seen: &mut Seen,
    route: (&'static str, &'static str),
    req: RequestBuilder,
    status: u16,
) -> Vec<u8> {
    let resp = req.send().await.unwrap();
    let got = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap().to_vec();
    assert_eq!(got, status, "{route:?}: {}", String::from_utf8_lossy(&bytes));
    seen.insert((route.0, route.1, status));
    bytes
}

fn json_body(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_refusals_records_and_ledger_endpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nl");
    let node = init_node(&dir, "NL");
    let eva = add_user(&dir, "eva", "investigator");
    let otto = add_user(&dir, "otto", "auditor");
    // node.init, two user.add
    let mut expected_entries = 3u64;

    let server = Server::start(&dir, Duration::from_secs(15)).await;
    let url = server.url.clone();
    let c = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut seen = Seen::new();
    const CASES: (&str, &str) = ("post", "/api/v1/cases");
    const CASE: (&str, &str) = ("get", "/api/v1/cases/{id}");
    let cases = format!("{url}/api/v1/cases");
    let good = json!({"id": "LANTERN", "title": "Ransomware on a hospital", "concepts": []});

    // No token: 401, counted for the caller's source and recorded in aggregate (when its
    // window ends, tests/hostile.rs), not one entry per call.
    let p = problem(&mut seen, CASES, c.post(&cases).json(&good), 401).await;
    assert!(p.get("ledger_index").is_none(), "{p}");
    assert_eq!(p["rules"], json!(["authn.required"]), "{p}");
    // A token nobody holds is anonymous too.
    let p = problem(&mut seen, CASES, c.post(&cases).bearer_auth("0ff1ce").json(&good), 401).await;
    assert!(p.get("ledger_index").is_none(), "{p}");

    // An auditor may not open cases: 403 by default-deny, recorded.
    let p = problem(&mut seen, CASES, c.post(&cases).bearer_auth(&otto).json(&good), 403).await;
    assert_eq!(p["rules"], json!(["default-deny"]), "{p}");
    assert_eq!(p["ledger_index"].as_u64(), Some(expected_entries), "{p}");
    expected_entries += 1;

    // Malformed requests never reach the gate: nothing recorded.
    let p = problem(
        &mut seen,
        CASES,
        c.post(&cases)
            .bearer_auth(&eva)
            .header("Content-Type", "text/plain")
            .body(good.to_string()),
        415,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("text/plain"), "{p}");
    let p = problem(
        &mut seen,
        CASES,
        c.post(&cases)
            .bearer_auth(&eva)
            .header("Content-Type", "application/json")
            .body("{\"id\": \"X1\",\n \"title\": oops}"),
        400,
    )
    .await;
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("line 2") && detail.contains("column"), "{p}");
    assert!(p.get("ledger_index").is_none(), "{p}");
    let p = problem(
        &mut seen,
        CASES,
        c.post(&cases).bearer_auth(&eva).json(&json!({"id": "X2", "title": "t", "colour": "red"})),
        400,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("colour"), "{p}");
    let big = json!({"id": "BIG", "title": "x".repeat(1 << 20), "concepts": []});
    let p = problem(&mut seen, CASES, c.post(&cases).bearer_auth(&eva).json(&big), 413).await;
    assert!(p.get("ledger_index").is_none(), "{p}");

    // Opening a case: 201, recorded.
    let body = json_body(
        &expect(&mut seen, CASES, c.post(&cases).bearer_auth(&eva).json(&good), 201).await,
    );
    assert_eq!(body, json!({"id": "LANTERN", "ledger_index": expected_entries}));
    expected_entries += 1;

    // Conflicts, invalid ids and missing cases are refused by the gate before it records.
    let p = problem(&mut seen, CASES, c.post(&cases).bearer_auth(&eva).json(&good), 409).await;
    assert!(p["detail"].as_str().unwrap().contains("LANTERN"), "{p}");
    let p = problem(
        &mut seen,
        CASES,
        c.post(&cases).bearer_auth(&eva).json(&json!({"id": "bad id", "title": "t"})),
        422,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("bad id"), "{p}");
    let p = problem(&mut seen, CASE, c.get(format!("{cases}/NOPE")).bearer_auth(&eva), 404).await;
    assert!(p["detail"].as_str().unwrap().contains("NOPE"), "{p}");

    // Reading a case is recorded.
    let body = json_body(
        &expect(&mut seen, CASE, c.get(format!("{cases}/LANTERN")).bearer_auth(&eva), 200).await,
    );
    assert_eq!(body["case"]["id"], "LANTERN", "{body}");
    assert_eq!(body["case"]["opened_by"], "eva (investigator)", "{body}");
    assert_eq!(body["access_ledger_index"].as_u64(), Some(expected_entries), "{body}");
    expected_entries += 1;

    // Public endpoints: nothing recorded.
    let metrics =
        expect(&mut seen, ("get", "/metrics"), c.get(format!("{url}/metrics")), 200).await;
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.lines().any(|l| l == format!("entente_ledger_entries {expected_entries}")),
        "expected {expected_entries} entries:\n{metrics}"
    );

    let note = expect(
        &mut seen,
        ("get", "/ledger/checkpoint"),
        c.get(format!("{url}/ledger/checkpoint")),
        200,
    )
    .await;
    let note = String::from_utf8(note).unwrap();
    let lines: Vec<&str> = note.lines().collect();
    assert!(lines[0].starts_with("entente/NL/"), "{note}");
    assert_eq!(lines[0], node.verifier_key.split('+').next().unwrap(), "{note}");
    assert_eq!(lines[1], expected_entries.to_string(), "{note}");
    assert!(lines.iter().any(|l| l.starts_with("— entente/NL/")), "no signature line:\n{note}");

    let tile = expect(
        &mut seen,
        ("get", "/ledger/tile/{path}"),
        c.get(format!("{url}/ledger/tile/entries/000.p/{expected_entries}")),
        200,
    )
    .await;
    assert!(tile.len() > 100, "{} bytes", tile.len());
    assert!(String::from_utf8_lossy(&tile).contains("\"action\":\"node.init\""));

    let proof = json_body(
        &expect(
            &mut seen,
            ("get", "/api/v1/ledger/proof/inclusion"),
            c.get(format!("{url}/api/v1/ledger/proof/inclusion?index=0")),
            200,
        )
        .await,
    );
    assert_eq!(proof["index"], 0, "{proof}");
    assert_eq!(proof["tree_size"], expected_entries, "{proof}");
    assert!(proof["proof"].as_array().is_some_and(|p| !p.is_empty()), "{proof}");

    // Every route and status seen above is in the OpenAPI document.
    let doc = json_body(
        &expect(&mut seen, ("get", "/openapi.json"), c.get(format!("{url}/openapi.json")), 200)
            .await,
    );
    assert_eq!(doc["openapi"], "3.1.0");
    // The document as served is valid OpenAPI 3.1 by a validator the project did not write.
    if let Some(validator) = crate::common::tool("openapi-spec-validator") {
        let file = dir.join("openapi.json");
        std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
        let out = std::process::Command::new(validator).arg(&file).output().unwrap();
        assert!(
            out.status.success(),
            "openapi-spec-validator: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let health = expect(&mut seen, ("get", "/healthz"), c.get(format!("{url}/healthz")), 200).await;
    assert_eq!(json_body(&health)["ledger_size"], expected_entries);
    for (method, path, status) in &seen {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not in /openapi.json");
        assert!(
            op["responses"][status.to_string()].is_object(),
            "{method} {path} answered {status}, which /openapi.json does not document"
        );
    }
    drop(server);

    let verify = entente(&["ledger", "verify", "--data-dir", s(&dir)]);
    assert!(verify.status.success(), "{}", stderr(&verify));
    assert!(
        stdout(&verify).contains(&format!("sound: {expected_entries} entries")),
        "expected {expected_entries} entries: {}",
        stdout(&verify)
    );
}
