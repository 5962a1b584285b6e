//! Cases across borders over the API of a real `entente serve`: a party joins a case under a
//! JIT agreement (only a JIT in force binding both parties grounds it), the status shows the
//! members and the timeline, roles decide who reads it; then `entente case status` on the CLI.

use crate::common::{Server, add_user, entente, entente_ok, init_node, s, stderr, stdout};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn cases_over_the_api_and_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nl");
    init_node(&dir, "NL");
    let prosecutor = add_user(&dir, "pros", "central-authority");
    let eva = add_user(&dir, "eva", "investigator");
    let auditor = add_user(&dir, "ann", "auditor");
    let server = Server::start(&dir, Duration::from_secs(20)).await;
    let case =
        json!({"id": "LANTERN", "title": "Operation Lantern", "concepts": ["illegal-access"]});
    let r = server.post("/api/v1/cases", &eva, case).await.unwrap();
    assert_eq!(r.status(), 201);

    let member = |party: &str, agreement: &str| json!({"party": party, "agreement": agreement});
    let r = server
        .post("/api/v1/cases/LANTERN/members", &prosecutor, member("DE", "jit-lantern"))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    let added = body["ledger_index"].as_u64().unwrap();
    // Again: 409. The US is not bound by the JIT, ETS 185 is no JIT: 422. An investigator: 403.
    let r = server
        .post("/api/v1/cases/LANTERN/members", &prosecutor, member("DE", "jit-lantern"))
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let r = server
        .post("/api/v1/cases/LANTERN/members", &prosecutor, member("US", "jit-lantern"))
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("does not bind"), "{body}");
    let r = server
        .post("/api/v1/cases/LANTERN/members", &prosecutor, member("US", "ets-185"))
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = server
        .post("/api/v1/cases/LANTERN/members", &eva, member("DE", "jit-lantern"))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = server
        .post("/api/v1/cases/NOSUCH/members", &prosecutor, member("DE", "jit-lantern"))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let r = server.get("/api/v1/cases/LANTERN/status", &eva).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["case"]["concepts"], json!(["illegal-access"]));
    assert_eq!(body["members"][0]["party"], "NL");
    assert_eq!(body["members"][0]["role"], "lead");
    assert_eq!(body["members"][1]["party"], "DE");
    assert_eq!(body["members"][1]["agreement"], "jit-lantern");
    let timeline = body["timeline"].as_array().unwrap();
    assert_eq!(timeline[0]["action"], "case.open");
    assert!(
        timeline.iter().any(|e| e["index"] == added && e["action"] == "case.member.add"),
        "{body}"
    );
    // The listing, a page at a time: the next page starts after the last id of this one.
    let r = server.post("/api/v1/cases", &eva, json!({"id": "ALPHA", "title": "A"})).await;
    assert_eq!(r.unwrap().status(), 201);
    let r = server.get("/api/v1/cases?limit=1", &eva).await.unwrap();
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["cases"][0]["id"], "ALPHA", "{page}");
    assert_eq!(page["next_after"], "ALPHA", "{page}");
    let r = server.get("/api/v1/cases?after=ALPHA&limit=1", &eva).await.unwrap();
    let page: Value = r.json().await.unwrap();
    let lantern = &page["cases"][0];
    assert_eq!((&lantern["id"], &lantern["led_here"]), (&json!("LANTERN"), &json!(true)));
    assert_eq!(lantern["members"], json!(["NL", "DE"]), "{page}");
    assert_eq!(page["next_after"], Value::Null, "{page}");
    for bad in ["limit=0", "limit=201", "limit=x", "after=no%20spaces"] {
        let r = server.get(&format!("/api/v1/cases?{bad}"), &eva).await.unwrap();
        let status = r.status().as_u16();
        assert!(status == 400 || status == 422, "{bad}: {status}");
    }
    let r = server.get("/api/v1/cases", &auditor).await.unwrap();
    assert_eq!(r.status(), 403);
    let r = server.get("/api/v1/cases/LANTERN/status", &auditor).await.unwrap();
    assert_eq!(r.status(), 403);

    let r = server.get("/api/v1/cases/NOSUCH/status", &eva).await.unwrap();
    assert_eq!(r.status(), 404);
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/cases/LANTERN/status", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r =
        reqwest::Client::new().get(format!("{}/openapi.json", server.url)).send().await.unwrap();
    let doc: Value = r.json().await.unwrap();
    assert!(doc["paths"]["/api/v1/cases/{id}/status"]["get"].is_object());
    assert!(doc["paths"]["/api/v1/cases/{id}/members"]["post"].is_object());
    drop(server);

    let o = entente_ok(&["case", "list", "--limit", "1", "--data-dir", s(&dir)]);
    let text = stdout(&o);
    assert!(text.contains("ALPHA") && !text.contains("LANTERN "), "{text}");
    assert!(text.contains("more: entente case list --after ALPHA"), "{text}");
    let o = entente_ok(&["case", "list", "--after", "ALPHA", "--json", "--data-dir", s(&dir)]);
    let page: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(page["cases"][0]["id"], "LANTERN", "{page}");
    assert_eq!(page["cases"][0]["members"], json!(["NL", "DE"]), "{page}");
    assert!(page["ledger_index"].as_u64().is_some(), "{page}");
    let o = entente(&["case", "list", "--limit", "0", "--data-dir", s(&dir)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 to 200"), "{}", stderr(&o));
    let o = entente_ok(&["case", "status", "LANTERN", "--data-dir", s(&dir)]);

    let text = stdout(&o);
    assert!(
        text.contains("case LANTERN: Operation Lantern")
            && text.contains("jit-lantern")
            && text.contains("lead")
            && text.contains("case.member.add")
            && text.contains("case.status"),
        "{text}"
    );
    let o = entente_ok(&["case", "status", "LANTERN", "--data-dir", s(&dir), "--json"]);
    let body: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(body["members"].as_array().unwrap().len(), 2);
    let o = entente(&["case", "status", "NOSUCH", "--data-dir", s(&dir)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
    entente_ok(&["ledger", "verify", "--data-dir", s(&dir)]);
}
