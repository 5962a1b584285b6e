//! Data items over the API of a real `entente serve`, and `entente retention run`.

use crate::common::{Server, add_user, entente, entente_ok, init_node, s, stdout};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn share_under_agreements_and_retention() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("de");
    init_node(&dir, "DE");
    let investigator = add_user(&dir, "ina", "investigator");
    let authority = add_user(&dir, "carl", "central-authority");
    let server = Server::start(&dir, Duration::from_secs(20)).await;

    let r = server
        .post(
            "/api/v1/cases",
            &investigator,
            json!({"id": "L", "title": "t", "concepts": ["illegal-access"]}),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let datum = json!({"id": "d1", "case_id": "L", "category": "personal-data-of-third-parties",
        "content": {"name": "Someone", "email": "someone@example.invalid", "plan": "vps"}});
    assert_eq!(server.post("/api/v1/data", &investigator, datum).await.unwrap().status(), 201);
    let bad = json!({"id": "d2", "case_id": "L", "category": "gossip", "content": {}});
    let r = server.post("/api/v1/data", &investigator, bad).await.unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("unknown variant `gossip`"), "{body}");

    // No agreement binds DE and JP: refused with the reason, and recorded.
    let r = server
        .post(
            "/api/v1/data/d1/share",
            &authority,
            json!({"to": "JP", "purpose": "criminal-investigation"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("no agreement binds DE and JP"), "{body}");
    assert!(body["ledger_index"].is_u64());

    // An investigator's share to NL for the joint team passes under the JIT agreement.
    let r = server
        .post(
            "/api/v1/data/d1/share",
            &authority,
            json!({"to": "NL", "purpose": "joint-investigation"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body["rules"].as_array().unwrap().contains(&json!("jit-lantern#flow")), "{body}");
    let payload = &body["outbox"]["payload"];
    assert!(payload["content"]["email"].as_str().unwrap().starts_with("pse:"), "{body}");
    assert_eq!(payload["conditions"]["originator"], "DE");
    assert!(
        body["obligations"].as_array().unwrap().iter().any(|o| o["kind"] == "retain-until"),
        "{body}"
    );
    drop(server);

    // A datum NL sent to DE with a retention limit in the past of `--now`.
    {
        let node = entente_node::Node::open(&dir).await.unwrap();
        let message: entente_wire::DatumMessage = serde_json::from_value(json!({
            "id": "nl-1", "case_id": "LANTERN", "category": "traffic", "concepts": ["illegal-access"],
            "purpose": "joint-investigation", "content": {"c2_ip": "203.0.113.0"}, "minimized": [],
            "conditions": {"originator": "NL", "agreement": "jit-lantern",
                "purposes": ["joint-investigation"], "retain_until": "2026-12-01T00:00:00Z",
                "onward_transfer": "consent-of-originator", "commercial_use_prohibited": true, "conditions": []}
        }))
        .unwrap();
        // It arrives as the federation hands it over: from NL's node, pinned with its
        // certificate and key, signed by that key, as envelope 1 of NL's sequence.
        let nl_cert = "e".repeat(64);
        let nl_key = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
        let at: jiff::Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
        let pin = entente_store::peers::AddPeer {
            party: "NL".parse().unwrap(),
            url: "https://127.0.0.1:1".into(),
            cert_pem: "-".into(),
            cert_sha256: nl_cert.clone(),
            signing_key: hex::encode(nl_key.verifying_key().as_bytes()),
            age_recipient: None,
        };
        node.gate.submit(node.operator(), pin, at).await.unwrap();
        let nl = node.store.peer_by_certificate(&nl_cert).await.unwrap().unwrap();
        let sealed = entente_wire::envelope::Envelope::seal(
            &nl_key,
            "NL".parse().unwrap(),
            "DE".parse().unwrap(),
            entente_wire::MessageKind::Datum,
            1,
            serde_json::to_value(&message).unwrap(),
            at,
        )
        .unwrap();
        let envelope = entente_store::verify_envelope(
            sealed,
            &nl_key.verifying_key(),
            &nl_cert,
            &"DE".parse().unwrap(),
            at,
            jiff::SignedDuration::from_secs(300),
        )
        .unwrap();
        let v = node.gate.receive_many(nl, vec![envelope], at).await.pop().unwrap().unwrap();
        assert!(matches!(v, entente_store::Verdict::Permitted { .. }), "{v:?}");
        node.store.close().await;
    }
    let o =
        entente_ok(&["retention", "run", "--data-dir", s(&dir), "--now", "2026-11-30T00:00:00Z"]);
    assert!(stdout(&o).contains("nothing has expired"), "{}", stdout(&o));
    let o =
        entente_ok(&["retention", "run", "--data-dir", s(&dir), "--now", "2026-12-02T00:00:00Z"]);
    assert!(stdout(&o).contains("destroyed nl-1"), "{}", stdout(&o));
    assert!(stdout(&o).contains("1 of 1 expired data items destroyed"), "{}", stdout(&o));
    let o =
        entente_ok(&["retention", "run", "--data-dir", s(&dir), "--now", "2026-12-02T00:00:00Z"]);
    assert!(stdout(&o).contains("nothing has expired"), "{}", stdout(&o));
    let o = entente(&["retention", "run", "--data-dir", s(&dir), "--now", "next tuesday"]);
    assert_eq!(o.status.code(), Some(2));
    entente_ok(&["ledger", "verify", "--data-dir", s(&dir)]);
}
