//! Redress over the API of a real `entente serve`: a complaint about an e-mail address finds
//! the datum naming it and its flow to NL, the answer is recorded once, and neither the
//! address nor the answer's text enters the ledger.

use crate::common::{Server, add_user, entente_ok, init_node, s};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn complaints_over_the_api() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("de");
    init_node(&dir, "DE");
    let investigator = add_user(&dir, "ina", "investigator");
    let authority = add_user(&dir, "carl", "central-authority");
    let dpo = add_user(&dir, "dora", "dpo");
    let server = Server::start(&dir, Duration::from_secs(20)).await;

    let case = json!({"id": "L", "title": "t", "concepts": ["illegal-access"]});
    assert_eq!(server.post("/api/v1/cases", &investigator, case).await.unwrap().status(), 201);
    let datum = json!({"id": "d1", "case_id": "L", "category": "personal-data-of-third-parties",
        "content": {"name": "Someone", "email": "Someone@Example.invalid", "plan": "vps"}});
    assert_eq!(server.post("/api/v1/data", &investigator, datum).await.unwrap().status(), 201);
    let r = server
        .post(
            "/api/v1/data/d1/share",
            &authority,
            json!({"to": "NL", "purpose": "joint-investigation"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let share: Value = r.json().await.unwrap();

    // Only the DPO files complaints: an investigator is refused, with the ledger index.
    let complaint = json!({"id": "c1", "identifier": " someone@EXAMPLE.invalid "});
    let r = server.post("/api/v1/complaints", &investigator, complaint.clone()).await.unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert!(body["ledger_index"].is_u64(), "{body}");

    let r = server.post("/api/v1/complaints", &dpo, complaint.clone()).await.unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["state"], "open");
    assert!(body["deadline_basis"].as_str().unwrap().contains("30 days"), "{body}");
    assert_eq!(body["items"][0]["id"], "d1", "{body}");
    assert_eq!(server.post("/api/v1/complaints", &dpo, complaint).await.unwrap().status(), 409);

    let r = server.get("/api/v1/complaints/c1", &dpo).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let flows = body["flows"].as_array().unwrap();
    assert_eq!(flows.len(), 1, "{body}");
    assert_eq!(flows[0]["recipient"], "NL");
    assert_eq!(flows[0]["category"], "personal-data-of-third-parties");
    assert_eq!(flows[0]["agreement"], "jit-lantern");
    assert_eq!(flows[0]["ledger_index"], share["ledger_index"], "{share}");
    assert_eq!(server.get("/api/v1/complaints/nope", &dpo).await.unwrap().status(), 404);

    let answer =
        json!({"decision": "partially-granted", "answer": "Sent to NL for the joint team."});
    let r = server
        .post("/api/v1/complaints/c1/answer", &dpo, json!({"decision": "maybe", "answer": "x"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = server.post("/api/v1/complaints/c1/answer", &dpo, answer.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["state"], "answered");
    assert_eq!(body["decision"], "partially-granted");
    assert_eq!(
        server.post("/api/v1/complaints/c1/answer", &dpo, answer).await.unwrap().status(),
        409
    );

    // The ledger holds neither the address nor the answer's text.
    let r = server.get("/api/v1/ledger/entries?from=0&to=100", &dpo).await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap().to_lowercase();
    assert!(text.contains("complaint.file") && text.contains("complaint.answer"), "{text}");
    assert!(!text.contains("someone@example") && !text.contains("joint team"), "{text}");
    drop(server);
    let o = entente_ok(&["complaint", "show", "c1", "--data-dir", s(&dir)]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        text.contains("complaint c1") && text.contains("d1") && text.contains("to NL"),
        "{text}"
    );
    assert!(!text.to_lowercase().contains("someone@example.invalid"), "{text}");
    entente_ok(&["ledger", "verify", "--data-dir", s(&dir)]);
}
