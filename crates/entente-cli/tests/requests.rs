//! Cross-border requests over the API of a real `entente serve`: the legal basis checked at
//! drafting, transitions recorded, illegal ones refused, clocks in the answer.

use crate::common;

use crate::common::{Server, add_user, entente_ok, init_node, s};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn requests_over_the_api() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nl");
    init_node(&dir, "NL");
    let prosecutor = add_user(&dir, "pros", "central-authority");
    let auditor = add_user(&dir, "ann", "auditor");
    let server = Server::start(&dir, Duration::from_secs(20)).await;
    let r =
        server.post("/api/v1/cases", &prosecutor, json!({"id": "L", "title": "t"})).await.unwrap();
    assert_eq!(r.status(), 201);

    let unknown = json!({"id": "r9", "case_id": "L", "kind": "production", "agreement": "eu-2023-1543", "to": "DE", "provisions": ["Sr 138"]});
    let r = server.post("/api/v1/requests", &prosecutor, unknown).await.unwrap();
    assert_eq!(r.status(), 422);
    let epoc = json!({"id": "r1", "case_id": "L", "kind": "production", "agreement": "eu-2023-1543", "to": "DE", "provisions": ["Sr 138ab"]});
    let r = server.post("/api/v1/requests", &prosecutor, epoc).await.unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["state"], "draft");

    // No legal basis: the EU Regulation does not bind the US.
    let bad = json!({"id": "r2", "case_id": "L", "kind": "production", "agreement": "eu-2023-1543", "to": "US"});
    let r = server.post("/api/v1/requests", &prosecutor, bad).await.unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("eu-2023-1543"), "{body}");

    // Illegal transition: 409, nothing changed; unknown event: 400.
    let r = server
        .post("/api/v1/requests/r1/events", &prosecutor, json!({"event": "answer"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let r = server
        .post("/api/v1/requests/r1/events", &prosecutor, json!({"event": "teleport"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = server
        .post("/api/v1/requests/r1/events", &auditor, json!({"event": "submit"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    for event in ["submit", "receive"] {
        let r = server
            .post("/api/v1/requests/r1/events", &prosecutor, json!({"event": event}))
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{event}");
    }
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/requests/r1", server.url))
        .bearer_auth(&prosecutor)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["state"], "received");
    assert_eq!(body["history"].as_array().unwrap().len(), 2);
    let check = &body["incoming_check"];
    assert!(check["legal_basis"]["citation"].as_str().unwrap().contains("2023/1543"), "{check}");
    assert!(!check["refusal_grounds"].as_array().unwrap().is_empty(), "{check}");
    assert_eq!(check["dual_criminality"][0]["provision"], "Sr 138ab");
    assert!(check["dual_criminality"][0]["result"]["Ok"]["verdict"].is_string(), "{check}");
    let clock = &body["clocks"][0];
    assert_eq!(clock["duration"], "P10D");
    assert_eq!(clock["status"], "running");
    assert_eq!(clock["time_zone"], "Europe/Berlin");
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/alerts", server.url))
        .bearer_auth(&prosecutor)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["open_requests"], 1);
    assert_eq!(body["alerts"].as_array().unwrap().len(), 0, "{body}");
    let r =
        reqwest::Client::new().get(format!("{}/api/v1/alerts", server.url)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let metrics = reqwest::Client::new()
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("entente_requests_overdue_clocks 0"), "{metrics}");
    let refuse = json!({"event": "refuse", "grounds": ["not-a-ground"]});
    let r = server.post("/api/v1/requests/r1/events", &prosecutor, refuse).await.unwrap();
    assert_eq!(r.status(), 409);
    drop(server);
    let o = entente_ok(&["alerts", "--data-dir", s(&dir)]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        text.contains("open requests at") && text.contains("r1") && text.contains("0 overdue"),
        "{text}"
    );
    let o = entente_ok(&["alerts", "--data-dir", s(&dir), "--now", "2030-01-01T00:00:00Z"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.contains("OVERDUE") && text.contains("1 overdue"), "{text}");
    let o =
        entente_ok(&["alerts", "--data-dir", s(&dir), "--json", "--now", "2030-01-01T00:00:00Z"]);
    let list: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list[0]["alert"], "OVERDUE");
    assert_eq!(list[0]["request"], "r1");
    let o = entente_ok(&["request", "show", "r1", "--data-dir", s(&dir)]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        text.contains("state: received") && text.contains("P10D") && text.contains("Europe/Berlin"),
        "{text}"
    );
    let o = common::entente(&["request", "show", "nope", "--data-dir", s(&dir)]);
    assert_eq!(o.status.code(), Some(2));
    entente_ok(&["ledger", "verify", "--data-dir", s(&dir)]);
}
