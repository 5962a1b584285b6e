#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed step should stop the test loudly"
)]

use super::pages::{CaseNewPage, CasePage, Chrome, HomePage, RequestList, SignInPage};
use super::text::EN;
use crate::identity::{InitOptions, Node};
use askama::Template as _;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use entente_core::Role;
use entente_store::CaseRecord;
use entente_store::cases::{CaseStatus, TimelineEntry};
use sha2::Digest as _;
use tower::ServiceExt as _;

fn chrome() -> Chrome {
    Chrome {
        party: "NL".to_owned(),
        who: Some("eva (investigator)".to_owned()),
        csrf: "c".repeat(64),
        can_open_case: true,
        can_list_cases: true,
        can_draft_request: true,
        notice: None,
    }
}

#[test]
fn sign_in_page_snapshot() {
    let page = SignInPage { t: &EN, chrome: Chrome::anonymous("NL".into()), error: None };
    insta::assert_snapshot!("sign_in", page.render().unwrap());
    let failed = SignInPage {
        t: &EN,
        chrome: Chrome::anonymous("NL".into()),
        error: Some(EN.sign_in_failed.into()),
    };
    insta::assert_snapshot!("sign_in_failed", failed.render().unwrap());
}

#[test]
fn home_page_snapshot() {
    let page = HomePage {
        t: &EN,
        chrome: chrome(),
        heading: "Home · investigator".into(),
        intro: EN.home_intro_investigator.into(),
        requests: Some(RequestList { rows: Vec::new(), ledger_index: 7 }),
        ledger: None,
    };
    insta::assert_snapshot!("home_investigator", page.render().unwrap());
}

#[test]
fn home_page_of_a_dpo_snapshot() {
    let note = "nl.entente.example/ledger\n12\nAAAA\n\n\u{2014} nl.entente.example/ledger sig\n";
    let cosigned = format!("{note}\u{2014} de.entente.example/witness sig2\n");
    let page = HomePage {
        t: &EN,
        chrome: chrome(),
        heading: "Home · dpo".into(),
        intro: EN.home_intro_dpo.into(),
        requests: Some(RequestList {
            rows: vec![super::pages::ClockRow {
                request: "req-1".into(),
                kind: "preservation".into(),
                parties: "NL → DE".into(),
                state: "received".into(),
                clock: "deadline (P10D)".into(),
                due: "2026-12-01T12:00:00Z".into(),
                remaining: "−1 d 0 h 0 min".into(),
                overdue: true,
                rule: "ETS 185 Art 29".into(),
                unverified: false,
            }],
            ledger_index: 9,
        }),
        ledger: Some(super::pages::LedgerHealth::new(
            12,
            Some(note.as_bytes()),
            Some(cosigned.as_bytes()),
        )),
    };
    let html = page.render().unwrap();
    assert!(html.contains("class=\"overdue\"") && html.contains("de.entente.example/witness"));
    insta::assert_snapshot!("home_dpo", html);
}

#[test]
fn case_form_snapshot_with_errors_next_to_fields() {
    let mut page = CaseNewPage::empty(&EN, chrome());
    page.id = "bad id!".into();
    page.title = String::new();
    page.concepts = "ok, <script>".into();
    assert!(super::pages::validate_case(&mut page).is_none());
    page.form_error = Some(EN.form_has_errors.into());
    let html = page.render().unwrap();
    // Escaped, never executed.
    assert!(!html.contains("<script>"), "{html}");
    insta::assert_snapshot!("case_new_errors", html);
}

fn listing() -> entente_store::cases::CaseListing {
    use entente_store::cases::{CaseListing, CaseSummary};
    let at = |s: &str| s.parse().unwrap();
    CaseListing {
        cases: vec![
            CaseSummary {
                id: "ALPHA".into(),
                title: Some("Phishing kit <seller>".into()),
                lead: "NL".into(),
                led_here: true,
                concepts: vec!["computer-related-fraud".into()],
                members: vec!["NL".into()],
                opened_at: at("2026-12-01T08:00:00Z"),
                last_change: None,
                open_requests: 2,
                overdue_requests: 1,
                next_due: Some(entente_store::cases::NextDeadline {
                    due: at("2026-12-03T12:00:00Z"),
                    request: "NL-REQ-7".into(),
                    rule: "Regulation (EU) 2023/1543 Art 10(2)".into(),
                    status: "V1".into(),
                }),
            },
            CaseSummary {
                id: "LANTERN".into(),
                title: None,
                lead: "DE".into(),
                led_here: false,
                concepts: vec!["illegal-access".into()],
                members: vec!["DE".into(), "NL".into()],
                opened_at: at("2026-12-01T09:00:00Z"),
                last_change: Some(("member-added NL".into(), at("2026-12-01T09:00:00Z"))),
                open_requests: 0,
                overdue_requests: 0,
                next_due: None,
            },
        ],
        next_after: Some("LANTERN".into()),
    }
}

/// The listing: own and partner-led cases, the overdue row marked, the title escaped, the
/// next page linked, the reading's ledger entry named.
#[test]
fn case_list_snapshot() {
    let now: jiff::Timestamp = "2026-12-02T12:00:00Z".parse().unwrap();
    let page = super::pages::CaseListPage::new(&EN, chrome(), &listing(), false, 12, now);
    let html = page.render().unwrap();
    assert!(html.contains("Phishing kit &#60;seller&#62;"), "the title is escaped");
    assert!(html.contains(r#"href="/ui/cases?after=LANTERN" rel="next""#));
    assert!(!html.contains("First page"), "the first page links to no first page");
    insta::assert_snapshot!("case_list", html);
}

#[test]
fn case_page_snapshot() {
    let status = CaseStatus {
        case: CaseRecord {
            id: "LANTERN".into(),
            title: "Ransomware on a hospital".into(),
            concepts: vec!["illegal-access".into()],
            opened_by: "eva (investigator)".into(),
            opened_at: "2026-12-02T09:00:00Z".parse().unwrap(),
            ledger_index: 3,
        },
        members: vec![entente_wire::CaseMember {
            party: "NL".into(),
            role: "lead".into(),
            agreement: None,
            added_at: "2026-12-02T09:00:00Z".parse().unwrap(),
            ledger_index: 3,
        }],
        timeline: vec![TimelineEntry {
            index: 3,
            time: "2026-12-02T09:00:00Z".into(),
            actor: "eva (investigator)".into(),
            action: "case.open".into(),
            decision: "permit".into(),
        }],
        mirror: None,
        requests: Vec::new(),
    };
    let t0: jiff::Timestamp = "2026-12-02T09:30:00Z".parse().unwrap();
    let page = CasePage::new(&EN, chrome(), &status, 4, t0);
    insta::assert_snapshot!("case", page.render().unwrap());

    // With its requests: a preservation order sent and received (its clock running, the rule
    // that set it), and a production order still a draft (no clock yet).
    let engine = crate::identity::agreement_engine().unwrap();
    let eu = engine.agreement("eu-2023-1543").unwrap();
    let (nl, de) = ("NL".parse().unwrap(), "DE".parse().unwrap());
    let mut pres = entente_policy::request::Request::new(
        entente_policy::agreement::RequestKind::Preservation,
        eu,
        nl,
        de,
        false,
        t0,
    )
    .unwrap();
    pres.id = "L-PRES-1".into();
    use entente_policy::request::RequestEvent;
    pres.apply(RequestEvent::Submit, t0, eu).unwrap();
    pres.apply(RequestEvent::Receive, t0, eu).unwrap();
    let mut prod = entente_policy::request::Request::new(
        entente_policy::agreement::RequestKind::Production,
        eu,
        "NL".parse().unwrap(),
        "DE".parse().unwrap(),
        false,
        t0,
    )
    .unwrap();
    prod.id = "L-EPOC-1".into();
    let with = entente_store::cases::CaseStatus { requests: vec![pres, prod], ..status };
    let later: jiff::Timestamp = "2026-12-03T09:30:00Z".parse().unwrap();
    let html = CasePage::new(&EN, chrome(), &with, 5, later).render().unwrap();
    for want in ["href=\"/ui/requests/L-PRES-1\"", "href=\"/ui/requests/L-EPOC-1\"", "Art 11"] {
        assert!(html.contains(want), "{want} missing: {html}");
    }
    insta::assert_snapshot!("case_with_requests", html);
}

#[test]
fn durations_read_as_words() {
    use jiff::SignedDuration;
    assert_eq!(super::pages::duration_words(SignedDuration::from_secs(90_061)), "1 d 1 h 1 min");
    assert_eq!(super::pages::duration_words(SignedDuration::from_secs(-3_600)), "−1 h 0 min");
    assert_eq!(super::pages::duration_words(SignedDuration::from_secs(59)), "0 min");
}

// In-process: the router as served, a fresh node, users made through the gate.

async fn node_with_users(dir: &std::path::Path) -> (Node, Vec<(Role, String)>) {
    let opts = InitOptions {
        data_dir: dir.join("node"),
        party: "NL".parse().unwrap(),
        name: "Test authority".to_owned(),
        database_url: None,
        listen: "127.0.0.1:0".parse().unwrap(),
        federation_listen: None,
    };
    let node = Node::init(&opts, jiff::Timestamp::now()).await.unwrap();
    let mut users = Vec::new();
    for (name, role) in [("eva", Role::Investigator), ("cesar", Role::Csirt)] {
        let token = format!("token-of-{name}-0123456789");
        let cmd = entente_store::users::AddUser {
            name: name.into(),
            role,
            token_sha256: hex::encode(sha2::Sha256::digest(token.as_bytes())),
        };
        let v = node.gate.submit(node.operator(), cmd, jiff::Timestamp::now()).await.unwrap();
        assert!(matches!(v, entente_store::Verdict::Permitted { .. }));
        users.push((role, token));
    }
    (node, users)
}

async fn send(
    app: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body = axum::body::to_bytes(resp.into_body(), 1 << 22).await.unwrap();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn form(uri: &str, cookie: Option<&str>, body: &str) -> Request<Body> {
    let mut b = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::HOST, "node.test");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

fn get(uri: &str, cookie: &str) -> Request<Body> {
    Request::get(uri).header(header::COOKIE, cookie).body(Body::empty()).unwrap()
}

async fn sign_in(app: &axum::Router, token: &str) -> String {
    let (status, headers, body) =
        send(app, form("/ui/sign-in", None, &format!("token={token}"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let set = headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(set.contains("HttpOnly; SameSite=Strict; Path=/ui"), "{set}");
    set.split(';').next().unwrap().to_owned()
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    html[at..at + 64].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_csrf_gate_and_sign_out() {
    let tmp = tempfile::tempdir().unwrap();
    let (node, users) = node_with_users(tmp.path()).await;
    let store = node.store.clone();
    let app = crate::server::router(node);
    let size = || async { store.ledger_head().await.unwrap().0 };

    // A wrong token: a message, no session, nothing in the ledger.
    let before = size().await;
    let (status, headers, body) = send(&app, form("/ui/sign-in", None, "token=guess%3Cb%3E")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.get(header::SET_COOKIE).is_none());
    assert!(body.contains(EN.sign_in_failed) && !body.contains("guess"), "{body}");
    assert_eq!(size().await, before);

    // Without a session, pages send to sign-in.
    let (status, headers, _) = send(&app, Request::get("/ui/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers.get(header::LOCATION).unwrap(), "/ui/sign-in");

    let eva = sign_in(&app, &users[0].1).await;
    let (status, _, home) = send(&app, get("/ui/", &eva)).await;
    assert_eq!(status, StatusCode::OK, "{home}");
    let csrf = csrf_of(&home);

    // A form without its CSRF token, with a wrong one, or from another origin: refused,
    // nothing changed.
    let before = size().await;
    let open = "id=LANTERN&title=Ransomware";
    let (status, _, body) = send(&app, form("/ui/cases", Some(&eva), open)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains(EN.nothing_changed));
    let wrong = format!("{open}&csrf={}", "0".repeat(64));
    assert_eq!(send(&app, form("/ui/cases", Some(&eva), &wrong)).await.0, StatusCode::FORBIDDEN);
    let mut foreign = form("/ui/cases", Some(&eva), &format!("{open}&csrf={csrf}"));
    foreign.headers_mut().insert(header::ORIGIN, "http://evil.test".parse().unwrap());
    assert_eq!(send(&app, foreign).await.0, StatusCode::FORBIDDEN);
    assert_eq!(size().await, before);
    assert_eq!(store.case_count().await.unwrap(), 0);

    // Validation: messages next to the fields, nothing recorded.
    let (status, _, body) =
        send(&app, form("/ui/cases", Some(&eva), &format!("id=bad%20id&title=&csrf={csrf}"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("id=\"id-error\"") && body.contains("id=\"title-error\""), "{body}");
    assert_eq!(size().await, before);

    // The form opens the case through the gate (one entry), and its page is one more.
    let mut good = form("/ui/cases", Some(&eva), &format!("{open}&csrf={csrf}"));
    good.headers_mut().insert(header::ORIGIN, "http://node.test".parse().unwrap());
    let (status, headers, body) = send(&app, good).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let to = headers.get(header::LOCATION).unwrap().to_str().unwrap().to_owned();
    assert!(to.starts_with("/ui/cases/LANTERN?opened="), "{to}");
    assert_eq!(size().await, before + 1);
    let (status, _, page) = send(&app, get(&to, &eva)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Ransomware") && page.contains(EN.case_opened), "{page}");
    assert_eq!(size().await, before + 2);
    // The same id again: the message next to the field.
    let (status, _, body) =
        send(&app, form("/ui/cases", Some(&eva), &format!("{open}&csrf={csrf}"))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body.contains(EN.err_case_exists));

    // A CSIRT analyst: the gate refuses the case, and the page says so with the entry.
    let cesar = sign_in(&app, &users[1].1).await;
    let (status, _, page) = send(&app, get("/ui/cases/LANTERN", &cesar)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(!page.contains("Ransomware") && page.contains(EN.denied_recorded), "{page}");

    // Sign-out ends the session.
    let (status, headers, _) =
        send(&app, form("/ui/sign-out", Some(&eva), &format!("csrf={csrf}"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers.get(header::SET_COOKIE).unwrap().to_str().unwrap().contains("Max-Age=0"));
    let (status, headers, _) = send(&app, get("/ui/", &eva)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers.get(header::LOCATION).unwrap(), "/ui/sign-in?ended=1");

    // The stylesheet is served from the binary.
    let (status, headers, css) = send(&app, get("/ui/assets/ui.css", "")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get(header::CONTENT_TYPE).unwrap().to_str().unwrap().starts_with("text/css"));
    assert!(css.contains(":focus-visible"));
}

/// A central authority's request page: the request through the gate (one entry per view),
/// its incoming check (dual criminality with its test, the e-Evidence Art 5 conditions, the
/// refusal grounds), and a form with the events this node may record now; recording one goes
/// through the gate; one it may not record is refused, nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_page_shows_the_incoming_check_and_records_events() {
    let tmp = tempfile::tempdir().unwrap();
    let (node, users) = node_with_users(tmp.path()).await;
    let token = "token-of-pros-0123456789";
    let add = entente_store::users::AddUser {
        name: "pros".into(),
        role: Role::CentralAuthority,
        token_sha256: hex::encode(sha2::Sha256::digest(token.as_bytes())),
    };
    node.gate.submit(node.operator(), add, jiff::Timestamp::now()).await.unwrap();
    let pros = node.store.authenticate_token(token).await.unwrap();
    let now = jiff::Timestamp::now();
    let open = entente_store::cases::OpenCase {
        id: "LANTERN".parse().unwrap(),
        title: "t".into(),
        concepts: vec!["illegal-access".into()],
    };
    node.gate.submit(pros.clone(), open, now).await.unwrap();
    let create = entente_store::requests::CreateRequest {
        id: "r1".parse().unwrap(),
        case_id: "LANTERN".parse().unwrap(),
        kind: entente_policy::agreement::RequestKind::Production,
        agreement: "eu-2023-1543".into(),
        to: "DE".parse().unwrap(),
        emergency: false,
        provisions: vec!["Sr 138ab".into()],
    };
    let v = node.gate.submit(pros.clone(), create, now).await.unwrap();
    assert!(matches!(v, entente_store::Verdict::Permitted { .. }), "{v:?}");
    let store = node.store.clone();
    let app = crate::server::router(node);
    let size = || async { store.ledger_head().await.unwrap().0 };

    let cookie = sign_in(&app, token).await;
    let before = size().await;
    let (status, _, page) = send(&app, get("/ui/requests/r1", &cookie)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(size().await, before + 1, "one entry for the view");
    for want in [
        "NL → DE",
        "eu-2023-1543",
        EN.dc_title,
        // A production order: the notified enforcing State may refuse on the conduct
        // (Regulation (EU) 2023/1543 Arts 8, 12(1)(d)).
        EN.dc_required,
        "12(1)(d)",
        "Sr 138ab",
        EN.order_conditions,
        "a listed offence (illegal-access)",
        EN.refusal_grounds,
        "value=\"submit\"",
        "value=\"withdraw\"",
    ] {
        assert!(page.contains(want), "{want} missing: {page}");
    }
    // The requested side's events are not offered to the requesting side.
    assert!(!page.contains("value=\"approve\""), "{page}");
    let csrf = csrf_of(&page);

    // Submit through the form: one entry, back to the page with its notice.
    let (status, headers, body) = send(
        &app,
        form("/ui/requests/r1/events", Some(&cookie), &format!("event=submit&csrf={csrf}")),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let to = headers.get(header::LOCATION).unwrap().to_str().unwrap().to_owned();
    assert!(to.starts_with("/ui/requests/r1?done="), "{to}");
    let (_, _, page) = send(&app, get(&to, &cookie)).await;
    assert!(page.contains(EN.event_recorded) && page.contains("submitted"), "{page}");

    // An event this side may not record, or no CSRF token: refused, nothing changed.
    let before = size().await;
    let (status, _, body) = send(
        &app,
        form("/ui/requests/r1/events", Some(&cookie), &format!("event=approve&csrf={csrf}")),
    )
    .await;
    assert!(
        matches!(status, StatusCode::UNPROCESSABLE_ENTITY | StatusCode::FORBIDDEN),
        "{status} {body}"
    );
    let (status, _, _) =
        send(&app, form("/ui/requests/r1/events", Some(&cookie), "event=withdraw")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = send(
        &app,
        form("/ui/requests/r1/events", Some(&cookie), &format!("event=nonsense&csrf={csrf}")),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(size().await <= before + 1, "at most the recorded denial");
    // A CSIRT analyst is refused the request, and the page names the entry.
    let cesar = sign_in(&app, &users[1].1).await;
    let (status, _, page) = send(&app, get("/ui/requests/r1", &cesar)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains(EN.denied_recorded) && !page.contains("Sr 138ab"), "{page}");
}

/// The legal bases the drafting form offers are those that could ground a request today:
/// not the requesting party itself, not an instrument that does not bind both parties.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drafting_form_offers_only_bases_in_force_between_the_parties() {
    let tmp = tempfile::tempdir().unwrap();
    let (node, _) = node_with_users(tmp.path()).await;
    let nl: entente_core::PartyCode = "NL".parse().unwrap();
    let groups = super::draft::basis_groups(
        node.gate.engine().agreements(),
        &nl,
        jiff::Timestamp::now(),
        "eu-2023-1543/production/DE",
    );
    assert!(groups.iter().all(|g| g.party != "NL"));
    let values = |party: &str| -> Vec<String> {
        groups
            .iter()
            .filter(|g| g.party == party)
            .flat_map(|g| g.options.iter().map(|o| o.value.clone()))
            .collect()
    };
    let de = values("DE");
    for want in ["eu-2023-1543/production/DE", "eu-2023-1543/preservation/DE"] {
        assert!(de.contains(&want.to_owned()), "{want} not offered: {de:?}");
    }
    // The e-Evidence Regulation binds Member States only.
    let us = values("US");
    assert!(!us.is_empty() && us.iter().all(|v| !v.starts_with("eu-2023-1543/")), "{us:?}");
    let checked: Vec<&str> = groups
        .iter()
        .flat_map(|g| g.options.iter().filter(|o| o.checked).map(|o| o.value.as_str()))
        .collect();
    assert_eq!(checked, ["eu-2023-1543/production/DE"]);

    for (value, ok) in [
        ("eu-2023-1543/production/DE", true),
        ("eu-2023-1543/production", false),
        ("eu-2023-1543/production/DE/x", false),
        ("eu-2023-1543/seizure/DE", false),
        ("eu-2023-1543/production/germany", false),
        ("EU 2023/production/DE", false),
    ] {
        assert_eq!(super::draft::parse_basis(value).is_ok(), ok, "{value}");
    }
}

#[test]
fn request_form_snapshot_with_errors_next_to_fields() {
    use super::draft::{BasisOption, PartyGroup, ProvisionOption, RequestNewPage};
    let page = RequestNewPage {
        t: &EN,
        chrome: chrome(),
        case_id: "LANTERN".into(),
        id: "bad id".into(),
        emergency: true,
        groups: vec![PartyGroup {
            party: "DE".into(),
            options: vec![BasisOption {
                value: "eu-2023-1543/production/DE".into(),
                agreement: "eu-2023-1543".into(),
                kind: "production".into(),
                period: "P10D".into(),
                basis: "Regulation (EU) 2023/1543 Art 10".into(),
                status: "V1",
                unverified: false,
                checked: false,
            }],
        }],
        provisions: vec![ProvisionOption {
            citation: "Sr 138ab(1)".into(),
            description: "Unlawful access to a computer system".into(),
            status: "V1",
            unverified: false,
            checked: true,
        }],
        form_error: Some(EN.form_has_errors.into()),
        id_error: Some("request id: found a space".into()),
        basis_error: Some(EN.err_basis_missing.into()),
    };
    insta::assert_snapshot!("request_new_errors", page.render().unwrap());
}

/// An investigator drafts a request from the case's page: errors next to the fields and
/// nothing recorded; a basis the gate does not accept is named next to the basis; the draft
/// is one `request.create` entry, and the request's page offers `submit`; a CSIRT analyst is
/// refused by the gate, recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_investigator_drafts_a_request_from_the_case_page() {
    let tmp = tempfile::tempdir().unwrap();
    let (node, users) = node_with_users(tmp.path()).await;
    let eva_p = node.store.authenticate_token(&users[0].1).await.unwrap();
    let open = entente_store::cases::OpenCase {
        id: "LANTERN".parse().unwrap(),
        title: "t".into(),
        concepts: vec!["illegal-access".into()],
    };
    node.gate.submit(eva_p, open, jiff::Timestamp::now()).await.unwrap();
    let store = node.store.clone();
    let app = crate::server::router(node);
    let size = || async { store.ledger_head().await.unwrap().0 };

    let eva = sign_in(&app, &users[0].1).await;
    let (status, _, case) = send(&app, get("/ui/cases/LANTERN", &eva)).await;
    assert_eq!(status, StatusCode::OK, "{case}");
    assert!(case.contains("href=\"/ui/cases/LANTERN/requests/new\""), "{case}");
    let before = size().await;
    let (status, _, page) = send(&app, get("/ui/cases/LANTERN/requests/new", &eva)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(size().await, before, "the empty form reads nothing recorded");
    for want in [
        "value=\"eu-2023-1543/production/DE\"",
        "value=\"ets-185/preservation/US\"",
        "<code>Sr 138ab(1)</code>",
    ] {
        assert!(page.contains(want), "{want} missing: {page}");
    }
    let csrf = csrf_of(&page);
    let post = |body: String| form("/ui/cases/LANTERN/requests", Some(&eva), &body);

    // No basis, a bad id: both named, nothing recorded.
    let (status, _, body) = send(&app, post(format!("id=bad%20id&csrf={csrf}"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("id=\"id-error\"") && body.contains("id=\"basis-error\""), "{body}");
    assert!(body.contains(EN.err_basis_missing), "{body}");
    // A basis the form did not offer (the Regulation does not bind the US): the gate's reason
    // next to the basis, nothing recorded.
    let (status, _, body) =
        send(&app, post(format!("id=r1&basis=eu-2023-1543%2Fproduction%2FUS&csrf={csrf}"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("id=\"basis-error\"") && body.contains("US"), "{body}");
    assert_eq!(size().await, before);

    // The draft: one entry, to the request's page with its notice and the submit event.
    let good = format!("id=r1&basis=eu-2023-1543%2Fproduction%2FDE&provision-0=1&csrf={csrf}");
    let (status, headers, body) = send(&app, post(good.clone())).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(size().await, before + 1);
    let to = headers.get(header::LOCATION).unwrap().to_str().unwrap().to_owned();
    assert!(to.starts_with("/ui/requests/r1?drafted="), "{to}");
    let (status, _, page) = send(&app, get(&to, &eva)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for want in [EN.request_drafted, "NL → DE", "eu-2023-1543", "Sr 138ab(1)", "value=\"submit\""]
    {
        assert!(page.contains(want), "{want} missing: {page}");
    }
    // The same id again: named next to the id.
    let before = size().await;
    let (status, _, body) = send(&app, post(good)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains(EN.err_request_exists), "{body}");
    assert_eq!(size().await, before);

    // A CSIRT analyst: the gate refuses the draft, and the page names the entry.
    let cesar = sign_in(&app, &users[1].1).await;
    let (_, _, page) = send(&app, get("/ui/cases/LANTERN/requests/new", &cesar)).await;
    let csrf = csrf_of(&page);
    let (status, _, body) = send(
        &app,
        form(
            "/ui/cases/LANTERN/requests",
            Some(&cesar),
            &format!("id=r2&basis=eu-2023-1543%2Fproduction%2FDE&csrf={csrf}"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains(EN.denied_recorded), "{body}");
    assert_eq!(size().await, before + 1, "the denial is recorded");
}
