#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed step should stop the test loudly"
)]

use crate::identity::{InitOptions, Node};
use crate::server::{MAX_BODY, openapi_document, router};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use std::collections::BTreeSet;
use tower::ServiceExt as _;

/// The document, as a reviewer reads it: a change to a route, a type or a status shows here.
#[test]
fn openapi_document_snapshot() {
    let doc = openapi_document();
    insta::assert_snapshot!("openapi", serde_json::to_string_pretty(&doc).unwrap());
}

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "delete", "patch", "head", "options", "trace"] {
            if item.get(method).is_some() {
                ops.insert((method.to_owned(), path.clone()));
            }
        }
    }
    ops
}

#[test]
fn document_is_openapi_3_1_with_bearer_and_problem() {
    let doc = openapi_document();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let problem = &doc["components"]["schemas"]["Problem"];
    let required: BTreeSet<&str> =
        problem["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(required, BTreeSet::from(["type", "title", "status", "detail"]), "{problem}");
    for field in ["ledger_index", "rules"] {
        assert!(problem["properties"][field].is_object(), "{problem}");
    }
    // The problem responses are RFC 9457 problem details.
    let details = &doc["components"]["responses"]["ProblemDetails"];
    assert_eq!(
        details["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/Problem",
        "{details}"
    );
    // Non-JSON endpoints keep their media types.
    for (path, media) in [
        ("/metrics", "text/plain"),
        ("/ledger/checkpoint", "text/plain"),
        ("/ledger/key", "text/plain"),
        ("/ledger/tile/{path}", "application/octet-stream"),
    ] {
        let content = &doc["paths"][path]["get"]["responses"]["200"]["content"];
        assert!(content[media].is_object(), "{path}: {content}");
    }
    let upload = &doc["paths"]["/api/v1/cases/{id}/evidence"]["post"]["requestBody"]["content"];
    assert!(upload["application/octet-stream"].is_object(), "{upload}");
}

/// Every `$ref` of the document names a component it has.
#[test]
fn every_reference_resolves() {
    fn walk(v: &Value, doc: &Value, bad: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    let target = r
                        .strip_prefix("#/")
                        .map(|p| p.split('/').fold(doc, |at, key| &at[key]))
                        .unwrap_or(&Value::Null);
                    if target.is_null() {
                        bad.push(r.clone());
                    }
                }
                m.values().for_each(|v| walk(v, doc, bad));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, doc, bad)),
            _ => {}
        }
    }
    let doc = openapi_document();
    let mut bad = Vec::new();
    walk(&doc, &doc, &mut bad);
    assert!(bad.is_empty(), "unresolved references: {bad:?}");
}

/// Every operation that takes a bearer token says so, and every 4xx is a problem (TAXII's are
/// TAXII error messages).
#[test]
fn refusals_are_problems() {
    let doc = openapi_document();
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        for (status, response) in op["responses"].as_object().unwrap() {
            if status.starts_with('4') && !path.starts_with("/taxii2/") {
                assert_eq!(
                    response["$ref"], "#/components/responses/ProblemDetails",
                    "{method} {path} {status}"
                );
            }
        }
        if path.starts_with("/api/v1/") && op["responses"]["401"].is_object() {
            assert_eq!(op["security"][0]["bearer"], serde_json::json!([]), "{method} {path}");
        }
    }
}

/// Routes are registered outside `routes!` only by the TAXII module; its routes are the ones
/// `api::intel` describes.
#[test]
fn routes_outside_the_document_are_taxiis_and_described() {
    let route = concat!(".", "route(");
    for (file, text) in [
        ("server.rs", include_str!("../server.rs")),
        ("api/mod.rs", include_str!("mod.rs")),
        ("api/node.rs", include_str!("node.rs")),
        ("api/ledger.rs", include_str!("ledger.rs")),
        ("api/cases.rs", include_str!("cases.rs")),
        ("api/requests.rs", include_str!("requests.rs")),
        ("api/flows.rs", include_str!("flows.rs")),
        ("api/evidence.rs", include_str!("evidence.rs")),
        ("api/incidents.rs", include_str!("incidents.rs")),
        ("api/redress.rs", include_str!("redress.rs")),
    ] {
        for needle in [route, ".route_service(", ".nest(", ".nest_service("] {
            assert!(
                !text.contains(needle),
                "{file} registers a route with `{needle}`: use `.routes(routes!(handler))` so it is in the document"
            );
        }
    }
    let mut served = BTreeSet::new();
    for line in include_str!("../taxii.rs").lines() {
        let Some(rest) = line.trim().strip_prefix(route) else { continue };
        let path = rest.split('"').nth(1).unwrap();
        for method in ["get", "post", "put", "delete", "patch"] {
            if rest.contains(&format!("{method}(")) {
                served.insert((method.to_owned(), path.to_owned()));
            }
        }
    }
    let described: BTreeSet<_> = super::intel::ROUTES
        .iter()
        .flat_map(|(path, methods)| {
            methods.iter().map(|(m, _, _)| ((*m).to_owned(), (*path).to_owned()))
        })
        .collect();
    assert!(!served.is_empty());
    assert_eq!(served, described, "the TAXII routes served and described differ");
    // Every query parameter a TAXII read accepts is in the document, and none it does not.
    let taxii = include_str!("../taxii.rs");
    let mut doc = utoipa::openapi::OpenApi::default();
    super::intel::describe(&mut doc);
    let doc = serde_json::to_value(&doc).unwrap();
    let names = |path: &str| -> BTreeSet<String> {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let objects = names("/taxii2/api/collections/{id}/objects/");
    assert_eq!(objects.len(), 7, "{objects:?}");
    for name in &objects {
        assert!(taxii.contains(&format!("\"{name}\" =>")), "`{name}` is described, not parsed");
    }
    assert_eq!(
        names("/taxii2/api/status/{id}/"),
        BTreeSet::from(["limit".to_owned(), "next".to_owned()])
    );
}

async fn node(dir: &std::path::Path) -> Node {
    let opts = InitOptions {
        data_dir: dir.join("node"),
        party: "NL".parse().unwrap(),
        name: "Test authority".to_owned(),
        database_url: None,
        listen: "127.0.0.1:0".parse().unwrap(),
        federation_listen: None,
    };
    Node::init(&opts, jiff::Timestamp::now()).await.unwrap()
}

/// Every operation of the document reaches a handler of the router (not the fallback, not 405),
/// and `/openapi.json` serves the document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served() {
    let tmp = tempfile::tempdir().unwrap();
    let app = router(node(tmp.path()).await);
    let doc = openapi_document();
    let ops = operations(&doc);
    assert!(ops.len() > 30, "{ops:?}");
    for (method, path) in &ops {
        let uri = path
            .replace("{id}", "X")
            .replace("{party}", "DE")
            .replace("{object_id}", "indicator--0b4fa1f4-6b4a-4bd6-8c4e-8fd2b6c3b9a1")
            .replace("{path}", "entries/000");
        assert!(!uri.contains('{'), "{uri}: a path parameter the test does not fill");
        let req = Request::builder()
            .method(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap())
            .uri(&uri)
            .body(Body::empty())
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 24).await.unwrap();
        let text = String::from_utf8_lossy(&body);
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}: {text}");
        assert!(!text.contains("no such endpoint"), "{method} {uri} is not served: {text}");
        if path == "/openapi.json" {
            assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), doc);
        }
    }
    // And the converse for a path the router does not serve.
    let req = Request::builder().uri("/api/v1/nothing").body(Body::empty()).unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

/// Every error is a problem (RFC 9457) or, on the TAXII routes, a TAXII error — the framework's
/// own too: for every documented path, each method it does not serve (405, with `Allow`); a
/// body over the limit on every POST route (413); a path segment that is not UTF-8 (400); an
/// unknown path (404).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_a_problem_route_by_route() {
    let tmp = tempfile::tempdir().unwrap();
    let app = router(node(tmp.path()).await);
    let doc = openapi_document();
    let ops = operations(&doc);
    let fill = |path: &str| {
        path.replace("{id}", "X")
            .replace("{party}", "DE")
            .replace("{object_id}", "indicator--0b4fa1f4-6b4a-4bd6-8c4e-8fd2b6c3b9a1")
            .replace("{path}", "entries/000")
    };
    async fn check(app: &axum::Router, req: Request<Body>, want: StatusCode, what: &str) {
        let taxii = req.uri().path().starts_with("/taxii2/");
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        let allow = resp.headers().get("allow").is_some();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 24).await.unwrap();
        let v: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("{what}: not JSON: {}", String::from_utf8_lossy(&body)));
        assert_eq!(status, want, "{what}: {v}");
        if taxii {
            assert_eq!(ct.as_deref(), Some("application/taxii+json;version=2.1"), "{what}");
            assert_eq!(v["http_status"], want.as_u16().to_string(), "{what}: {v}");
        } else {
            assert_eq!(ct.as_deref(), Some("application/problem+json"), "{what}");
            assert_eq!(v["status"], want.as_u16(), "{what}: {v}");
            assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{what}: {v}");
        }
        if want == StatusCode::METHOD_NOT_ALLOWED {
            assert!(allow, "{what}: no Allow header");
        }
    }
    let paths: BTreeSet<&String> = ops.iter().map(|(_, p)| p).collect();
    let mut checked = 0;
    for path in paths {
        let served: BTreeSet<&str> =
            ops.iter().filter(|(_, p)| p == path).map(|(m, _)| m.as_str()).collect();
        for method in ["get", "post", "put", "delete", "patch"] {
            if served.contains(method) || (method == "get" && served.contains("head")) {
                continue;
            }
            let uri = fill(path);
            let req = Request::builder()
                .method(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap())
                .uri(&uri)
                .body(Body::empty())
                .unwrap();
            check(&app, req, StatusCode::METHOD_NOT_ALLOWED, &format!("{method} {uri}")).await;
            checked += 1;
        }
    }
    assert!(checked > 50, "{checked}");
    for (method, path) in ops.iter().filter(|(m, p)| m == "post" && !p.starts_with("/taxii2/")) {
        let uri = fill(path);
        let req = Request::builder()
            .method(Method::POST)
            .uri(&uri)
            .header("content-type", "application/json")
            .header("content-length", (MAX_BODY + 1).to_string())
            .body(Body::from(vec![b' '; MAX_BODY + 1]))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        // Routes that stream their body (evidence) answer 413 themselves; none may answer text.
        let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        assert!(
            resp.status().is_client_error(),
            "{method} {uri}: {} for an oversized body",
            resp.status()
        );
        assert!(
            matches!(ct.as_deref(), Some("application/problem+json")),
            "{method} {uri}: {ct:?} for an oversized body"
        );
    }
    let req = Request::builder().uri("/api/v1/cases/%ff%fe").body(Body::empty()).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    assert!(resp.status().is_client_error(), "{}", resp.status());
    assert_eq!(ct.as_deref(), Some("application/problem+json"));
    let req = Request::builder().uri("/api/v1/nothing").body(Body::empty()).unwrap();
    check(&app, req, StatusCode::NOT_FOUND, "GET /api/v1/nothing").await;
}

/// The views write what the records wrote when they were serialized straight into responses:
/// the same fields, in the same order, with the same values.
mod views_keep_the_records_json {
    use super::super::cases::{CaseStatusView, CaseView};
    use super::super::evidence::CustodyEventView;
    use super::super::flows::{ConditionsView, ObligationView};
    use super::super::incidents::NotificationView;
    use super::super::node::ActorView;
    use super::super::redress::ComplaintView;
    use entente_core::domain::{Conditions, OnwardTransfer, Purpose};
    use entente_core::{Actor, Obligation, PartyCode, Role};
    use entente_store::{
        CaseMirror, CaseRecord, CaseStatus, Complaint, ComplaintFlow, ComplaintItem,
        NotificationRecord, TimelineEntry,
    };
    use entente_wire::{CaseMember, IncidentNotice, NoticeObligation};

    fn same<A: serde::Serialize, B: serde::Serialize>(view: &A, record: &B) {
        assert_eq!(serde_json::to_string(view).unwrap(), serde_json::to_string(record).unwrap());
    }

    fn party(p: &str) -> PartyCode {
        p.parse().unwrap()
    }

    fn conditions() -> Conditions {
        Conditions {
            originator: party("NL"),
            agreement: "ets-185".to_owned(),
            purposes: vec![Purpose::CriminalInvestigation, Purpose::Prosecution],
            retain_until: Some("2027-01-01T00:00:00Z".to_owned()),
            onward_transfer: OnwardTransfer::ConsentOfOriginator,
            commercial_use_prohibited: true,
            conditions: vec!["purpose-limitation".to_owned()],
        }
    }

    fn case() -> CaseRecord {
        CaseRecord {
            id: "LANTERN".to_owned(),
            title: "Ransomware".to_owned(),
            concepts: vec!["illegal-access".to_owned()],
            opened_by: "eva (investigator)".to_owned(),
            opened_at: "2026-12-01T10:00:00Z".parse().unwrap(),
            ledger_index: 4,
        }
    }

    #[test]
    fn cases() {
        same(&CaseView::from(&case()), &case());
        let status = CaseStatus {
            case: case(),
            members: vec![CaseMember {
                party: "NL".to_owned(),
                role: "lead".to_owned(),
                agreement: None,
                added_at: "2026-12-01T10:00:00Z".parse().unwrap(),
                ledger_index: 4,
            }],
            timeline: vec![TimelineEntry {
                index: 4,
                time: "2026-12-01T10:00:00Z".to_owned(),
                actor: "eva (investigator)".to_owned(),
                action: "case.open".to_owned(),
                decision: "permit".to_owned(),
            }],
            mirror: None,
            requests: Vec::new(),
        };
        let mut record = serde_json::to_value(&status).unwrap();
        record["access_ledger_index"] = serde_json::json!(9);
        same(&CaseStatusView::new(&status, 9), &record);
        let mirrored = CaseStatus {
            mirror: Some(CaseMirror {
                lead: "DE".to_owned(),
                lead_index: 12,
                change: "member-added NL".to_owned(),
                updated_at: "2026-12-01T11:00:00Z".parse().unwrap(),
                conditions: conditions(),
            }),
            ..status
        };
        let mut record = serde_json::to_value(&mirrored).unwrap();
        record["access_ledger_index"] = serde_json::json!(9);
        same(&CaseStatusView::new(&mirrored, 9), &record);
    }

    /// The listing's view flattens the summary's pairs into named fields.
    #[test]
    fn case_listing() {
        use entente_store::cases::{CaseListing, CaseSummary};
        let at = |s: &str| s.parse().unwrap();
        let summary = CaseSummary {
            id: "LANTERN".to_owned(),
            title: None,
            lead: "DE".to_owned(),
            led_here: false,
            concepts: vec!["illegal-access".to_owned()],
            members: vec!["DE".to_owned(), "NL".to_owned()],
            opened_at: at("2026-12-01T09:00:00Z"),
            last_change: Some(("member-added NL".to_owned(), at("2026-12-01T09:30:00Z"))),
            open_requests: 1,
            overdue_requests: 0,
            next_due: Some(entente_store::cases::NextDeadline {
                due: at("2026-12-11T23:00:00Z"),
                request: "NL-REQ-1".to_owned(),
                rule: "ETS 185 Art 29(7)".to_owned(),
                status: "V1".to_owned(),
            }),
        };
        let listing = CaseListing { cases: vec![summary], next_after: None };
        let view = serde_json::to_value(super::super::cases::CaseList::new(&listing, 7)).unwrap();
        assert_eq!(
            view,
            serde_json::json!({
                "cases": [{
                    "id": "LANTERN", "title": null, "lead": "DE", "led_here": false,
                    "concepts": ["illegal-access"], "members": ["DE", "NL"],
                    "opened_at": "2026-12-01T09:00:00.000000Z",
                    "last_change": "member-added NL",
                    "last_change_at": "2026-12-01T09:30:00.000000Z",
                    "open_requests": 1, "overdue_requests": 0,
                    "next_due": "2026-12-11T23:00:00.000000Z", "next_due_request": "NL-REQ-1",
                    "next_due_rule": "ETS 185 Art 29(7)", "next_due_rule_status": "V1"
                }],
                "next_after": null,
                "access_ledger_index": 7
            })
        );
    }

    #[test]
    fn conditions_obligations_actors() {
        same(&ConditionsView::from(&conditions()), &conditions());
        for o in [
            Obligation::RetainUntil { until: "2027-01-01T00:00:00Z".to_owned() },
            Obligation::Minimize { field: "ip".to_owned(), transform: "truncate-ip".to_owned() },
            Obligation::NoOnwardTransferWithoutConsent { of: party("NL") },
            Obligation::NoCommercialUse,
            Obligation::Notify { party: party("DE") },
        ] {
            same(&ObligationView::from(&o), &o);
        }
        for a in [
            Actor::Operator,
            Actor::User { name: "eva".to_owned(), role: Role::CentralAuthority },
            Actor::Anonymous,
            Actor::OperatorFor { name: "eva".to_owned(), role: Role::Dpo },
            Actor::Peer { party: party("DE") },
        ] {
            same(&ActorView::from(&a), &a);
        }
    }

    #[test]
    fn custody_events() {
        let e = entente_evidence::CustodyEvent {
            item: "EV-1".to_owned(),
            seq: 0,
            event: entente_evidence::CustodyKind::Acquired,
            party: party("NL"),
            actor: "kai (investigator)".to_owned(),
            at: "2026-12-01T10:00:00.000000Z".parse().unwrap(),
            reason: "acquired for the case".to_owned(),
            legal_basis: None,
            location: Some("Entente node NL (HTTP API upload)".to_owned()),
            tool: "entente".to_owned(),
            sha256: "00".repeat(32),
            prev: None,
        };
        same(&CustodyEventView::from(&e), &e);
    }

    #[test]
    fn complaints() {
        let c = Complaint {
            id: "C-1".to_owned(),
            state: "answered".to_owned(),
            filed_by: "dana (dpo)".to_owned(),
            filed_at: "2026-12-01T10:00:00Z".parse().unwrap(),
            due_at: "2026-12-31T10:00:00Z".parse().unwrap(),
            deadline_basis: entente_store::DEADLINE_BASIS.to_owned(),
            decision: Some("granted".to_owned()),
            answer: Some("done".to_owned()),
            answered_at: Some("2026-12-02T10:00:00Z".parse().unwrap()),
            ledger_index: 7,
            answer_ledger_index: Some(8),
            items: vec![ComplaintItem {
                id: "D-1".to_owned(),
                category: "subscriber".to_owned(),
                originator: "NL".to_owned(),
                received_from: None,
                origin_agreement: None,
                destroyed: false,
                ledger_index: 5,
            }],
            flows: vec![ComplaintFlow {
                datum_id: "D-1".to_owned(),
                recipient: "DE".to_owned(),
                category: "subscriber".to_owned(),
                agreement: "ets-185".to_owned(),
                ledger_index: 6,
            }],
        };
        // The response's ledger_index is the entry of the command that answered it.
        let mut record = serde_json::to_value(&c).unwrap();
        record["ledger_index"] = serde_json::json!(9);
        same(&ComplaintView::new(&c, 9), &record);
    }

    #[test]
    fn notifications() {
        let n = NotificationRecord {
            direction: "received".to_owned(),
            party: "DE".to_owned(),
            id: "DE-12".to_owned(),
            agreement: "ets-185".to_owned(),
            conditions: conditions(),
            notice: Some(IncidentNotice {
                incident: "INC-1".to_owned(),
                jurisdictions: vec![party("DE"), party("NL")],
                sector: Some("health".to_owned()),
                entity_types: vec!["essential".to_owned()],
                personal_data: Some(true),
                ransom_paid: None,
                time_zone: "Europe/Berlin".to_owned(),
                instants: [("aware_at".to_owned(), "2026-12-01T10:00:00Z".to_owned())].into(),
                obligations: vec![NoticeObligation {
                    regime: "nis2".to_owned(),
                    report: "early-warning".to_owned(),
                    report_name: "Early warning".to_owned(),
                    recipient: "CSIRT".to_owned(),
                    deadline: "24 hours".to_owned(),
                    due: "2026-12-02T10:00:00Z".to_owned(),
                    status: "V1".to_owned(),
                    unverified: false,
                }],
                questions: vec!["gdpr: personal_data".to_owned()],
            }),
            notice_sha256: format!("sha256:{}", "0".repeat(64)),
            retain_until: None,
            destroyed_at: None,
            at: "2026-12-01T10:00:00Z".parse().unwrap(),
            ledger_index: 13,
        };
        same(&NotificationView::from(&n), &n);
    }
}

/// Privilege screening through the API: flagged by the case team, reviewed by the filter team
/// only, once; bad input is a problem naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privilege_screening_through_the_api() {
    use sha2::Digest as _;
    let tmp = tempfile::tempdir().unwrap();
    let node = node(tmp.path()).await;
    let mut tokens = Vec::new();
    for (name, role) in
        [("kai", entente_core::Role::Investigator), ("fay", entente_core::Role::FilterTeam)]
    {
        let token = format!("token-of-{name}-0123456789");
        let cmd = entente_store::users::AddUser {
            name: name.into(),
            role,
            token_sha256: hex::encode(sha2::Sha256::digest(token.as_bytes())),
        };
        node.gate.submit(node.operator(), cmd, jiff::Timestamp::now()).await.unwrap();
        tokens.push(token);
    }
    let (kai, fay) = (tokens[0].clone(), tokens[1].clone());
    let app = router(node);
    let call = async |token: &str, method: Method, uri: &str, body: Vec<u8>, ct: &str| {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", ct)
            .body(Body::from(body))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null))
    };
    let post = async |token: &str, uri: &str, v: Value| {
        call(token, Method::POST, uri, v.to_string().into_bytes(), "application/json").await
    };
    let (s, v) =
        post(&kai, "/api/v1/cases", serde_json::json!({"id": "C-1", "title": "t", "concepts": []}))
            .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    for id in ["EV-1", "EV-2"] {
        let uri = format!("/api/v1/cases/C-1/evidence?description=mailbox&id={id}");
        let (s, v) = call(&kai, Method::POST, &uri, id.as_bytes().to_vec(), "message/rfc822").await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let reason = "mail from counsel";
    let (s, v) =
        post(&kai, "/api/v1/evidence/EV-1/privilege", serde_json::json!({"reason": reason})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "flagged");
    let (s, v) =
        post(&kai, "/api/v1/evidence/EV-1/privilege", serde_json::json!({"reason": reason})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let review = "/api/v1/evidence/EV-1/privilege/review";
    let (s, _) =
        post(&kai, review, serde_json::json!({"outcome": "release", "reason": "ok"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = post(&fay, review, serde_json::json!({"outcome": "redact", "reason": "ok"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("redacted_item"), "{v}");
    let (s, v) = post(&fay, review, serde_json::json!({"outcome": "shred", "reason": "ok"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = post(
        &fay,
        review,
        serde_json::json!({"outcome": "redact", "redacted_item": "EV-2", "reason": "ok"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["status"].as_str(), v["redacted_item"].as_str()),
        (Some("redacted"), Some("EV-2"))
    );
    let (s, _) =
        post(&fay, review, serde_json::json!({"outcome": "release", "reason": "ok"})).await;
    assert_eq!(s, StatusCode::CONFLICT);
}
