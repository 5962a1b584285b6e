//! Federation between real node processes on 127.0.0.1: mutual TLS with pinned
//! certificates, signed envelopes, the outbox delivered exactly once and in order through a
//! partner's outage and a sender's SIGKILL, and hostile clients refused and recorded.

use crate::common;

use crate::common::{
    Server, add_user, client_as, closed_within, entente_ok, free_port, init_node, ledger_entries,
    s, stdout,
};
use entente_core::{PartyCode, canonical::sha256_tagged};
use entente_wire::envelope::{Ack, Envelope};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A node with a federation port.
pub(crate) struct Fed {
    pub(crate) dir: PathBuf,
    pub(crate) party: &'static str,
    pub(crate) port: u16,
}

impl Fed {
    pub(crate) fn new(root: &Path, party: &'static str) -> Fed {
        let dir = root.join(party.to_lowercase());
        init_node(&dir, party);
        Fed { dir, party, port: free_port() }
    }
    pub(crate) fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
    pub(crate) fn cert(&self) -> PathBuf {
        self.dir.join("node.cert.pem")
    }
    pub(crate) async fn start(&self) -> Server {
        let listen = format!("127.0.0.1:{}", self.port);
        Server::start_with(&self.dir, &["--federation-listen", &listen], Duration::from_secs(20))
            .await
    }
    pub(crate) fn pin(&self, other: &Fed) {
        entente_ok(&[
            "peer",
            "add",
            "--data-dir",
            s(&self.dir),
            "--party",
            other.party,
            "--url",
            &other.url(),
            "--cert",
            s(&other.cert()),
        ]);
    }
    fn peer_list(&self) -> Value {
        let o = entente_ok(&["peer", "list", "--data-dir", s(&self.dir), "--json"]);
        serde_json::from_str(&stdout(&o)).unwrap()
    }
    fn messages(&self, to: &str) -> (u64, u64) {
        let list = self.peer_list();
        let p = list.as_array().unwrap().iter().find(|p| p["party"] == to).unwrap();
        (p["messages"]["delivered"].as_u64().unwrap(), p["messages"]["pending"].as_u64().unwrap())
    }
}

/// The `datum.receive` entries of a node's ledger, in order: (datum id, envelope digest).
async fn received(server: &Server, auditor: &str) -> Vec<String> {
    let http = reqwest::Client::new();
    let head: Value = http
        .get(format!("{}/api/v1/ledger/entries?from=0&to=1", server.url))
        .bearer_auth(auditor)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let size = head["access_ledger_index"].as_u64().unwrap();
    let all: Value = http
        .get(format!("{}/api/v1/ledger/entries?from=0&to={size}", server.url))
        .bearer_auth(auditor)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "datum.receive" && e["decision"] == "permit")
        .map(|e| e["subjects"][0].as_str().unwrap().to_owned())
        .collect()
}

/// Polls `f` every 50 ms until it is true or `limit` has passed.
pub(crate) async fn eventually<F: AsyncFnMut() -> bool>(limit: Duration, mut f: F) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// DE's API: open a case, add data, share each to NL under the JIT agreement.
struct DeApi {
    url: String,
    investigator: String,
}

impl DeApi {
    async fn share(&self, id: &str) {
        let http = reqwest::Client::new();
        let r = http
            .post(format!("{}/api/v1/data", self.url))
            .bearer_auth(&self.investigator)
            .json(&json!({"id": id, "case_id": "L", "category": "traffic",
                "content": {"c2_ip": "203.0.113.77", "n": id}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let r = http
            .post(format!("{}/api/v1/data/{id}/share", self.url))
            .bearer_auth(&self.investigator)
            .json(&json!({"to": "NL", "purpose": "joint-investigation"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
}

/// NL and DE pinned to each other and serving, an auditor at NL, and DE's investigator with
/// case `L` open, ready to share to NL.
struct DeToNl {
    nl: Fed,
    de: Fed,
    auditor: String,
    nl_server: Server,
    de_server: Server,
    api: DeApi,
}

impl DeToNl {
    async fn start(root: &Path) -> DeToNl {
        let nl = Fed::new(root, "NL");
        let de = Fed::new(root, "DE");
        nl.pin(&de);
        de.pin(&nl);
        let auditor = add_user(&nl.dir, "ann", "auditor");
        let investigator = add_user(&de.dir, "ina", "investigator");
        let nl_server = nl.start().await;
        let de_server = de.start().await;
        let api = DeApi { url: de_server.url.clone(), investigator };
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/cases", api.url))
            .bearer_auth(&api.investigator)
            .json(&json!({"id": "L", "title": "t", "concepts": ["illegal-access"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        DeToNl { nl, de, auditor, nl_server, de_server, api }
    }
}

/// `entente status --json` of a data directory.
fn node_status(dir: &Path) -> Value {
    let o = entente_ok(&["status", "--data-dir", s(dir), "--json"]);
    serde_json::from_slice::<Value>(&o.stdout).unwrap()
}

#[tokio::test]
async fn outbox_survives_partner_outage_and_sender_sigkill_exactly_once_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let nl = Fed::new(tmp.path(), "NL");
    let de = Fed::new(tmp.path(), "DE");
    nl.pin(&de);
    de.pin(&nl);
    let auditor = add_user(&nl.dir, "ann", "auditor");
    let investigator = add_user(&de.dir, "ina", "investigator");
    let mut nl_server = nl.start().await;
    let mut de_server = de.start().await;
    let api = DeApi { url: de_server.url.clone(), investigator };
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/cases", api.url))
        .bearer_auth(&api.investigator)
        .json(&json!({"id": "L", "title": "t", "concepts": ["illegal-access"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    for i in 1..=5 {
        api.share(&format!("d{i}")).await;
    }
    assert!(
        eventually(Duration::from_secs(30), async || received(&nl_server, &auditor).await.len()
            == 5)
        .await,
        "the first five data did not reach NL"
    );

    // NL goes down; DE keeps sharing; the messages wait in DE's outbox.
    nl_server.child.kill();
    for i in 6..=10 {
        api.share(&format!("d{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(de.messages("NL"), (5, 5), "with NL down, five messages wait");

    // DE is SIGKILLed between commit and delivery; both come back.
    de_server.child.kill();
    nl_server = nl.start().await;
    let de_server = de.start().await;
    assert!(
        eventually(Duration::from_secs(60), async || de.messages("NL") == (10, 0)).await,
        "DE's outbox was not drained after the restarts: {:?}",
        de.messages("NL")
    );
    let got = received(&nl_server, &auditor).await;
    let want: Vec<String> = (1..=10).map(|i| format!("datum:d{i}")).collect();
    assert_eq!(got, want, "each datum received once, in the order sent");
    drop(de_server);
}

pub(crate) fn key_of(dir: &Path) -> ed25519_dalek::SigningKey {
    entente_node::identity::load_key(&dir.join("node.key.pem")).unwrap()
}

pub(crate) fn consent(
    seq: u64,
    key: &ed25519_dalek::SigningKey,
    to: &str,
    created: jiff::Timestamp,
) -> Envelope {
    let from: PartyCode = "DE".parse().unwrap();
    Envelope::seal(
        key,
        from,
        to.parse().unwrap(),
        entente_wire::MessageKind::Consent,
        seq,
        json!({"datum_id": format!("x{seq}"), "recipient": "US"}),
        created,
    )
    .unwrap()
}

pub(crate) async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> (u16, Value) {
    let r = client
        .post(format!("{url}/federation/v1/envelopes"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

pub(crate) fn batch(envs: &[Envelope]) -> Vec<u8> {
    serde_json::to_vec(&json!({"envelopes": envs})).unwrap()
}

#[tokio::test]
async fn hostile_envelopes_are_refused_recorded_and_the_node_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let nl = Fed::new(tmp.path(), "NL");
    let de = Fed::new(tmp.path(), "DE");
    let fr = Fed::new(tmp.path(), "FR");
    nl.pin(&de);
    let auditor = add_user(&nl.dir, "ann", "auditor");
    let server = nl.start().await;
    let url = nl.url();
    let de_client = client_as(&de.dir, &nl.dir);
    let de_key = key_of(&de.dir);
    let now = jiff::Timestamp::now();

    // A well-formed envelope is applied once (here: refused on its content, a consent for a
    // datum NL does not hold, which is recorded and acknowledged); its replay is answered
    // with the stored outcome and not applied again.
    let first = batch(&[consent(1, &de_key, "NL", now)]);
    let (status, body) = post(&de_client, &url, first.clone()).await;
    assert_eq!(status, 200, "{body}");
    let ack: Ack = serde_json::from_value(body).unwrap();
    assert_eq!(ack.items.len(), 1);
    assert!(!ack.items[0].replayed);
    let (status, body) = post(&de_client, &url, first).await;
    assert_eq!(status, 200, "{body}");
    let again: Ack = serde_json::from_value(body).unwrap();
    assert!(again.items[0].replayed, "{again:?}");
    assert_eq!(again.items[0].ledger_index, ack.items[0].ledger_index);
    assert_eq!(again.items[0].status, ack.items[0].status);

    // Each hostile batch: (what, client, body, expected status, expected problem slug).
    let mut forged = consent(2, &de_key, "NL", now);
    forged.sig = consent(2, &key_of(&fr.dir), "NL", now).sig;
    let fr_client = client_as(&fr.dir, &nl.dir);
    let stale = consent(2, &de_key, "NL", now - jiff::SignedDuration::from_hours(1));
    let misdirected = consent(2, &de_key, "US", now);
    let gap = consent(5, &de_key, "NL", now);
    let oversized = vec![b' '; (16 << 20) + 10];
    let cases: Vec<(&str, &reqwest::Client, Vec<u8>, u16, &str)> = vec![
        ("forged signature", &de_client, batch(&[forged]), 403, "signature"),
        (
            "unpinned certificate",
            &fr_client,
            batch(&[consent(2, &de_key, "NL", now)]),
            403,
            "unpinned",
        ),
        ("wrong recipient", &de_client, batch(&[misdirected]), 421, "recipient"),
        ("stale timestamp", &de_client, batch(&[stale]), 400, "freshness"),
        ("malformed JSON", &de_client, b"{\"envelopes\": [".to_vec(), 400, "malformed"),
        ("out of order", &de_client, batch(&[gap]), 409, "out-of-order"),
    ];
    for (what, client, body, want, slug) in cases {
        let (status, problem) = post(client, &url, body).await;
        assert_eq!(status, want, "{what}: {problem}");
        assert!(
            problem["type"].as_str().unwrap_or("").ends_with(slug),
            "{what}: expected problem type …/{slug}: {problem}"
        );
        assert!(!problem["detail"].as_str().unwrap_or("").is_empty(), "{what}: {problem}");
        // An unpinned client's attempt and a sequence gap reach no decision: counted and
        // recorded in aggregate (tests/hostile.rs), without an index of their own.
        if slug == "out-of-order" || slug == "unpinned" {
            assert!(problem.get("ledger_index").is_none(), "{what}: {problem}");
        } else {
            assert!(problem["ledger_index"].is_u64(), "{what}: refusal not recorded: {problem}");
        }
    }
    let r = de_client
        .post(format!("{url}/federation/v1/envelopes"))
        .header("content-type", "application/json")
        .body(oversized)
        .send()
        .await;
    // Either the 413 answer, a problem like every other refusal, or a connection closed while
    // the rest was still being sent.
    if let Ok(r) = r {
        assert_eq!(r.status().as_u16(), 413);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let p: serde_json::Value = r.json().await.unwrap();
        assert_eq!(p["status"], 413, "{p}");
    }

    // A client without any certificate does not get past the TLS handshake.
    // (It accepts any server certificate: what is tested is the server's demand.)
    let no_cert = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    assert!(no_cert.post(format!("{url}/federation/v1/envelopes")).send().await.is_err());

    // Slow loris: a connection that sends half a request holds one slot, not the node, and is
    // closed after the header deadline.
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", nl.port)).await.unwrap();
    {
        use tokio::io::AsyncWriteExt as _;
        slow.write_all(b"\x16\x03\x01").await.unwrap();
    }
    let (status, body) = post(&de_client, &url, batch(&[consent(2, &de_key, "NL", now)])).await;
    assert_eq!(status, 200, "the node stopped serving others: {body}");
    assert!(
        closed_within(&mut slow, Duration::from_secs(20)).await,
        "a stalled handshake was not closed"
    );

    // Slow loris over a completed mutual-TLS handshake: a request whose headers never end
    // holds its connection until the header deadline (10 s), and the node keeps serving.
    let pem = std::fs::read_to_string(nl.dir.join("node.cert.pem")).unwrap();
    // A hostile client holding DE's data directory (the TLS identity is private to the node).
    let config = entente_node::danger::client_config_as(&de.dir, &pem).unwrap();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", nl.port)).await.unwrap();
    let name = rustls_name("127.0.0.1");
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("the handshake itself succeeds: DE is pinned");
    {
        use tokio::io::AsyncWriteExt as _;
        tls.write_all(b"POST /federation/v1/envelopes HTTP/1.1\r\nHost: nl\r\nContent-Type: appl")
            .await
            .unwrap();
        tls.flush().await.unwrap();
    }
    let started = Instant::now();
    let (status, body) = post(&de_client, &url, batch(&[consent(3, &de_key, "NL", now)])).await;
    assert_eq!(status, 200, "the node stopped serving others: {body}");
    assert!(
        closed_within(&mut tls, Duration::from_secs(25)).await,
        "a request whose headers never end was not closed"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "closed before the header deadline: {:?}",
        started.elapsed()
    );

    // Every refusal of the pinned partner that was decided is in NL's ledger as a denied
    // envelope.reject with the failed check; the unpinned client's is not (not one by one).
    let all = ledger_entries(&server.url, &auditor).await;
    let rejects: Vec<&str> = all
        .iter()
        .filter(|e| e["action"] == "envelope.reject")
        .map(|e| e["rules"][0].as_str().unwrap())
        .collect();
    for rule in [
        "federation#signature",
        "federation#recipient",
        "federation#freshness",
        "federation#malformed",
    ] {
        assert!(rejects.contains(&rule), "{rule} not recorded: {rejects:?}");
    }
    assert!(!rejects.contains(&"federation#unpinned"), "{rejects:?}");
    let body_digest = sha256_tagged(b"{\"envelopes\": [");
    let malformed = all.iter().find(|e| e["rules"][0] == "federation#malformed").unwrap();
    assert_eq!(malformed["payload_hashes"]["body"], body_digest.as_str());
}

#[tokio::test]
async fn witnesses_cosign_and_catch_a_rewritten_ledger() {
    use entente_core::witness;
    let tmp = tempfile::tempdir().unwrap();
    let nl = Fed::new(tmp.path(), "NL");
    let de = Fed::new(tmp.path(), "DE");
    let fr = Fed::new(tmp.path(), "FR");
    nl.pin(&de);
    de.pin(&nl);
    let de_auditor = add_user(&de.dir, "dora", "auditor");
    let de_witness = witness::verifier_key(
        &witness::witness_name(&"DE".parse().unwrap()),
        &key_of(&de.dir).verifying_key(),
    );
    let fr_witness = witness::verifier_key(
        &witness::witness_name(&"FR".parse().unwrap()),
        &key_of(&fr.dir).verifying_key(),
    );
    let mut nl_server = nl.start().await;
    let de_server = de.start().await;

    // DE witnesses NL; NL publishes the cosigned checkpoint.
    let http = reqwest::Client::new();
    let url = format!("{}/ledger/cosigned-checkpoint", nl_server.url);
    let cosigned = eventually(Duration::from_secs(30), async || {
        http.get(&url).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(cosigned, "NL never published a cosigned checkpoint");
    let ok = common::entente(&[
        "ledger",
        "audit",
        &nl_server.url,
        "--witness",
        &de_witness,
        "--witness-threshold",
        "1",
    ]);
    assert!(ok.status.success(), "{}{}", stdout(&ok), common::stderr(&ok));
    assert!(stdout(&ok).contains("cosigned by entente-witness/DE"), "{}", stdout(&ok));
    let short = common::entente(&[
        "ledger",
        "audit",
        &nl_server.url,
        "--witness",
        &fr_witness,
        "--witness-threshold",
        "1",
    ]);
    assert_eq!(short.status.code(), Some(1), "{}", stdout(&short));
    assert!(
        common::stderr(&short).contains("0 of the required 1 witnesses"),
        "{}",
        common::stderr(&short)
    );

    // NL's operator rewrites its ledger behind the witness's back: everything after the first
    // entry is dropped and a different history appended.
    nl_server.child.kill();
    let db = entente_node::identity::sqlite_url(&std::path::absolute(&nl.dir).unwrap());
    let first_hash = entente_core::ledger::stored_hash_index(0, 1);
    entente_test_support::danger::admin_execute(
        &db,
        &format!(
            "DELETE FROM ledger_entries WHERE idx >= 1; DELETE FROM ledger_hashes WHERE id >= {first_hash}; \
             DELETE FROM ledger_checkpoints WHERE size > 1; \
             UPDATE ledger_head SET size = 1, checkpoint = (SELECT note FROM ledger_checkpoints WHERE size = 1) WHERE id = 1;"
        ),
    )
    .await
    .unwrap();
    for name in ["x1", "x2", "x3", "x4", "x5"] {
        entente_ok(&["user", "add", "--data-dir", s(&nl.dir), "--name", name, "--role", "auditor"]);
    }
    let ivo = add_user(&nl.dir, "ivo", "investigator");
    let aud = add_user(&nl.dir, "aud", "auditor");
    let nl_server = nl.start().await;
    let alarmed = eventually(Duration::from_secs(30), async || {
        ledger_entries(&de_server.url, &de_auditor)
            .await
            .iter()
            .any(|e| e["action"] == "witness.alarm" && e["subjects"][0] == "ledger:NL")
    })
    .await;
    assert!(alarmed, "DE's witness did not record the rewritten ledger");
    // The evidence (the contradicting checkpoint) is kept beside DE's last good view.
    let kept = std::fs::read_dir(de.dir.join("witness")).unwrap().count();
    assert!(kept >= 2, "no evidence kept");

    // DE hands its view back to NL, which stops appending: a write is 503, nothing recorded.
    let nl_status = || {
        let o = entente_ok(&["status", "--data-dir", s(&nl.dir), "--json"]);
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    let held = eventually(Duration::from_secs(30), async || !nl_status()["hold"].is_null()).await;
    assert!(held, "NL never put its ledger on hold: {}", nl_status());
    let st = nl_status();
    assert_eq!(st["hold"]["witness"], "DE", "{st}");
    assert!(st["hold"]["reason"].as_str().unwrap().contains("does not extend"), "{st}");
    let size = st["ledger"]["size"].clone();
    let open = |id: &str| json!({"id": id, "title": "t", "concepts": []});
    let r = nl_server.post("/api/v1/cases", &ivo, open("C-HELD")).await.unwrap();
    assert_eq!(r.status(), 503);
    let problem: Value = r.json().await.unwrap();
    assert!(problem["type"].as_str().unwrap().ends_with("ledger-held"), "{problem}");
    assert_eq!(nl_status()["ledger"]["size"], size, "a held ledger appended");
    let o = common::entente(&[
        "user",
        "add",
        "--data-dir",
        s(&nl.dir),
        "--name",
        "x7",
        "--role",
        "auditor",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", common::stderr(&o));
    assert!(common::stderr(&o).contains("on hold"), "{}", common::stderr(&o));

    // The operator goes on from the ledger NL has: recorded, and DE's same view no longer
    // holds it.
    let o = entente_ok(&[
        "ledger",
        "release",
        "--data-dir",
        s(&nl.dir),
        "--reason",
        "history rewritten in a test; DE told",
    ]);
    assert!(stdout(&o).contains("hold released"), "{}", stdout(&o));
    let open_again = eventually(Duration::from_secs(30), async || {
        nl_server
            .post("/api/v1/cases", &ivo, open("C-AFTER"))
            .await
            .is_ok_and(|r| r.status() == 201)
    })
    .await;
    assert!(open_again, "NL's server still refuses after the release");
    tokio::time::sleep(WITNESS_PASSES).await;
    assert!(nl_status()["hold"].is_null(), "held again by the same view: {}", nl_status());
    let entries = ledger_entries(&nl_server.url, &aud).await;
    assert!(entries.iter().any(|e| e["action"] == "ledger.release"), "no ledger.release entry");
}

/// NL is restored from a backup older than what DE's witness cosigned: it finds out from
/// DE and appends nothing until its operator decides, so its log does not fork behind DE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restored_behind_its_witnesses_holds_its_ledger() {
    let tmp = tempfile::tempdir().unwrap();
    let nl = Fed::new(tmp.path(), "NL");
    let de = Fed::new(tmp.path(), "DE");
    nl.pin(&de);
    de.pin(&nl);
    let ivo = add_user(&nl.dir, "ivo", "investigator");
    let backup = tmp.path().join("backup");
    entente_ok(&["backup", "--data-dir", s(&nl.dir), "--to", s(&backup)]);
    let status = node_status;

    // NL goes on after the backup, and DE cosigns what it appended.
    let mut nl_server = nl.start().await;
    let _de_server = de.start().await;
    for i in 0..3 {
        let case = json!({"id": format!("C-{i}"), "title": "t", "concepts": []});
        let r = nl_server.post("/api/v1/cases", &ivo, case).await.unwrap();
        assert_eq!(r.status(), 201);
    }
    let size = status(&nl.dir)["ledger"]["size"].as_u64().unwrap();
    let cosigned = eventually(Duration::from_secs(30), async || {
        status(&nl.dir)["witnesses"][0]["cosigned_size"].as_u64() == Some(size)
    })
    .await;
    assert!(cosigned, "DE never cosigned NL's ledger of {size}: {}", status(&nl.dir));

    // The disk is lost; NL is restored from the backup and serves again on the same port.
    nl_server.child.kill();
    std::fs::remove_dir_all(&nl.dir).unwrap();
    entente_ok(&["restore", "--from", s(&backup), "--data-dir", s(&nl.dir)]);
    let restored = status(&nl.dir)["ledger"]["size"].as_u64().unwrap();
    assert!(restored < size, "{restored} {size}");
    let nl_server = nl.start().await;
    let held =
        eventually(Duration::from_secs(30), async || !status(&nl.dir)["hold"].is_null()).await;
    assert!(held, "the restored NL never found out from DE: {}", status(&nl.dir));
    let st = status(&nl.dir);
    let reason = st["hold"]["reason"].as_str().unwrap();
    assert!(reason.contains("entries were lost"), "{st}");
    assert_eq!(st["hold"]["size"].as_u64(), Some(size), "{st}");
    let case = json!({"id": "C-NEW", "title": "t", "concepts": []});
    let r = nl_server.post("/api/v1/cases", &ivo, case).await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(status(&nl.dir)["ledger"]["size"].as_u64(), Some(restored));
}

/// DE is restored from a backup older than two messages NL applied. Once DE's operator
/// releases the hold, DE's next messages would reuse those numbers: NL refuses the first
/// (recorded), DE numbers its waiting messages again after NL's last, and NL receives every
/// datum once, in the order sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_sender_does_not_reuse_numbers_its_partner_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let DeToNl { nl: _nl, de, auditor, nl_server, de_server, api } =
        DeToNl::start(tmp.path()).await;
    let mut de_server = de_server;
    let investigator = api.investigator.clone();
    let status = node_status;
    api.share("d1").await;
    let got_one = eventually(Duration::from_secs(30), async || de.messages("NL") == (1, 0)).await;
    assert!(got_one, "d1 was not delivered: {:?}", de.messages("NL"));

    // The backup, then two more data that NL applies (numbers 2 and 3) and cosigns.
    de_server.child.kill();
    let backup = tmp.path().join("backup");
    entente_ok(&["backup", "--data-dir", s(&de.dir), "--to", s(&backup)]);
    let mut de_server = de.start().await;
    let api = DeApi { url: de_server.url.clone(), investigator: investigator.clone() };
    api.share("d2").await;
    api.share("d3").await;
    let three = eventually(Duration::from_secs(30), async || {
        received(&nl_server, &auditor).await.len() == 3
    })
    .await;
    assert!(three, "d2 and d3 did not reach NL");
    let size = status(&de.dir)["ledger"]["size"].as_u64().unwrap();
    let cosigned = eventually(Duration::from_secs(30), async || {
        status(&de.dir)["witnesses"][0]["cosigned_size"].as_u64() == Some(size)
    })
    .await;
    assert!(cosigned, "NL never cosigned DE's ledger of {size}: {}", status(&de.dir));

    // DE's disk is lost; restored, it holds; its operator goes on from the backup.
    de_server.child.kill();
    std::fs::remove_dir_all(&de.dir).unwrap();
    entente_ok(&["restore", "--from", s(&backup), "--data-dir", s(&de.dir)]);
    assert_eq!(de.messages("NL"), (1, 0), "the backup knows of d1's message only");
    let de_server = de.start().await;
    let held =
        eventually(Duration::from_secs(30), async || !status(&de.dir)["hold"].is_null()).await;
    assert!(held, "the restored DE never found out from NL: {}", status(&de.dir));
    entente_ok(&[
        "ledger",
        "release",
        "--data-dir",
        s(&de.dir),
        "--reason",
        "restored from the backup of the day before; NL told",
    ]);
    let api = DeApi { url: de_server.url.clone(), investigator };
    let open = eventually(Duration::from_secs(30), async || {
        reqwest::Client::new()
            .post(format!("{}/api/v1/data", api.url))
            .bearer_auth(&api.investigator)
            .json(&json!({"id": "probe", "case_id": "L", "category": "traffic",
                "content": {"n": 0}}))
            .send()
            .await
            .is_ok_and(|r| r.status() == 201)
    })
    .await;
    assert!(open, "DE's server still refuses after the release");
    api.share("d4").await;
    api.share("d5").await;

    // NL refused number 2 once, and has d4 and d5 under 4 and 5.
    let all = eventually(Duration::from_secs(60), async || de.messages("NL") == (3, 0)).await;
    assert!(all, "DE's outbox was not drained: {:?}", de.messages("NL"));
    let got = received(&nl_server, &auditor).await;
    let want: Vec<String> = [1, 2, 3, 4, 5].iter().map(|i| format!("datum:d{i}")).collect();
    assert_eq!(got, want, "each datum received once, in the order sent");
    let reuse = ledger_entries(&nl_server.url, &auditor)
        .await
        .into_iter()
        .filter(|e| e["rules"].as_array().is_some_and(|r| r[0] == "federation#seq-reuse"))
        .count();
    assert_eq!(reuse, 1, "NL recorded the reused number once");
    let verify = entente_ok(&["ledger", "verify", "--data-dir", s(&de.dir), "--state"]);
    assert!(!stdout(&verify).contains("differs"), "{}", stdout(&verify));
}

/// NL is restored from a backup older than two data it had acknowledged to DE. Once NL's
/// operator releases the hold, DE's next message is ahead of what NL expects: NL's signed
/// answer (a 409 problem carrying its acknowledgement) asks for the messages from there
/// again, DE marks them undelivered (recorded) and sends them, and NL holds every datum
/// once, in the order sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_receiver_gets_again_what_it_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let DeToNl { nl, de, auditor, nl_server, de_server, api } = DeToNl::start(tmp.path()).await;
    let mut nl_server = nl_server;
    let status = node_status;
    api.share("d1").await;
    let one = eventually(Duration::from_secs(30), async || de.messages("NL") == (1, 0)).await;
    assert!(one, "d1 was not delivered: {:?}", de.messages("NL"));
    let backup = tmp.path().join("backup");
    entente_ok(&["backup", "--data-dir", s(&nl.dir), "--to", s(&backup)]);

    // Two more that NL applies and acknowledges; DE's witness cosigns NL's ledger.
    api.share("d2").await;
    api.share("d3").await;
    let three = eventually(Duration::from_secs(30), async || de.messages("NL") == (3, 0)).await;
    assert!(three, "d2 and d3 were not delivered: {:?}", de.messages("NL"));
    let size = status(&nl.dir)["ledger"]["size"].as_u64().unwrap();
    let cosigned = eventually(Duration::from_secs(30), async || {
        status(&nl.dir)["witnesses"][0]["cosigned_size"].as_u64() >= Some(size)
    })
    .await;
    assert!(cosigned, "DE never cosigned NL's ledger of {size}: {}", status(&nl.dir));

    // NL's disk is lost; restored, it holds; its operator goes on from the backup.
    nl_server.child.kill();
    std::fs::remove_dir_all(&nl.dir).unwrap();
    entente_ok(&["restore", "--from", s(&backup), "--data-dir", s(&nl.dir)]);
    let nl_server = nl.start().await;
    let held =
        eventually(Duration::from_secs(30), async || !status(&nl.dir)["hold"].is_null()).await;
    assert!(held, "the restored NL never found out from DE: {}", status(&nl.dir));
    entente_ok(&[
        "ledger",
        "release",
        "--data-dir",
        s(&nl.dir),
        "--reason",
        "restored from the backup of the day before; DE told",
    ]);
    let open =
        eventually(Duration::from_secs(30), async || status(&nl.dir)["hold"].is_null()).await;
    assert!(open, "NL is still held after the release: {}", status(&nl.dir));

    // DE's next message is number 4; NL expects 2 and asks for 2 and 3 again.
    api.share("d4").await;
    let all = eventually(Duration::from_secs(60), async || {
        de.messages("NL") == (4, 0) && received(&nl_server, &auditor).await.len() == 4
    })
    .await;
    assert!(all, "NL did not get everything again: {:?}", de.messages("NL"));
    let got = received(&nl_server, &auditor).await;
    let want: Vec<String> = (1..=4).map(|i| format!("datum:d{i}")).collect();
    assert_eq!(got, want, "each datum held once, in the order sent");
    // DE's record of the request to send again: an acknowledgement entry naming it.
    let de_auditor = add_user(&de.dir, "aud", "auditor");
    let acks = ledger_entries(&de_server.url, &de_auditor)
        .await
        .into_iter()
        .filter(|e| e["action"] == "envelope.ack" && e["payload_hashes"].get("resend").is_some())
        .count();
    assert_eq!(acks, 1, "DE recorded the request to send again once");
}

/// Long enough for a few witnessing passes ([`entente_node::witness::WITNESS_INTERVAL`]).
const WITNESS_PASSES: Duration = Duration::from_secs(3);

/// NL equivocates: two processes with NL's key and two different histories, one shown to DE,
/// the other to the US. Each witness's own view is consistent; comparing notes, both catch it.
#[tokio::test]
async fn a_split_view_is_caught_by_every_witness() {
    let tmp = tempfile::tempdir().unwrap();
    let nl = Fed::new(tmp.path(), "NL");
    let de = Fed::new(tmp.path(), "DE");
    let us = Fed::new(tmp.path(), "US");
    // NL's second face: a copy of its data directory on another port, with its own database.
    let nl_b = Fed { dir: tmp.path().join("nl-b"), party: "NL", port: free_port() };
    for (a, b) in [(&nl, &de), (&nl, &us), (&de, &nl), (&de, &us), (&us, &de)] {
        a.pin(b);
    }
    std::fs::create_dir_all(&nl_b.dir).unwrap();
    for f in std::fs::read_dir(&nl.dir).unwrap() {
        let f = f.unwrap();
        if f.file_type().unwrap().is_file() {
            std::fs::copy(f.path(), nl_b.dir.join(f.file_name())).unwrap();
        }
    }
    let config = std::fs::read_to_string(nl_b.dir.join("entente.toml")).unwrap();
    let a_dir = std::path::absolute(&nl.dir).unwrap();
    let b_dir = std::path::absolute(&nl_b.dir).unwrap();
    std::fs::write(
        nl_b.dir.join("entente.toml"),
        config.replace(a_dir.to_str().unwrap(), b_dir.to_str().unwrap()),
    )
    .unwrap();
    us.pin(&nl_b);
    for (fed, prefix) in [(&nl, "a"), (&nl_b, "b")] {
        for i in 0..3 {
            let name = format!("{prefix}{i}");
            entente_ok(&[
                "user",
                "add",
                "--data-dir",
                s(&fed.dir),
                "--name",
                &name,
                "--role",
                "dpo",
            ]);
        }
    }
    let de_auditor = add_user(&de.dir, "dora", "auditor");
    let us_auditor = add_user(&us.dir, "uma", "auditor");
    let _a = nl.start().await;
    let _b = nl_b.start().await;
    let de_server = de.start().await;
    let us_server = us.start().await;
    for (server, auditor, who) in [(&de_server, &de_auditor, "DE"), (&us_server, &us_auditor, "US")]
    {
        let alarmed = eventually(Duration::from_secs(40), async || {
            ledger_entries(&server.url, auditor)
                .await
                .iter()
                .any(|e| e["action"] == "witness.alarm" && e["subjects"][0] == "ledger:NL")
        })
        .await;
        let files = |d: &Path| -> Vec<String> {
            std::fs::read_dir(d.join("witness"))
                .map(|r| {
                    r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()
                })
                .unwrap_or_default()
        };
        assert!(
            alarmed,
            "witness {who} did not catch NL's split view; DE holds {:?}, US holds {:?}",
            files(&de.dir),
            files(&us.dir)
        );
    }
}

/// A partner node pulls threat intelligence from NL's TAXII server over the federation's
/// mutual TLS, identified by its pinned certificate; each page is decided under TLP for that
/// party and recorded; a node NL has not pinned gets nothing.
#[tokio::test]
async fn partners_pull_intel_over_mutual_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let nl = Fed::new(tmp.path(), "NL");
    let de = Fed::new(tmp.path(), "DE");
    let fr = Fed::new(tmp.path(), "FR");
    nl.pin(&de);
    de.pin(&nl);
    fr.pin(&nl);
    let auditor = add_user(&nl.dir, "ann", "auditor");
    let o = entente_ok(&[
        "intel",
        "collection",
        "--data-dir",
        s(&nl.dir),
        "--title",
        "LANTERN",
        "--parties",
        "DE",
    ]);
    let coll = stdout(&o).trim().to_owned();
    let objects: Vec<String> = (1..=3)
        .map(|n| {
            format!(
                r#"{{"type":"indicator","spec_version":"2.1","id":"indicator--00000000-0000-4000-8000-{n:012}","created":"2026-11-01T00:00:00.000Z","modified":"2026-11-01T00:00:00.000Z","name":"C2 {n}","description":"LANTERN C2","pattern":"[ipv4-addr:value = '203.0.113.{n}']","pattern_type":"stix","valid_from":"2026-11-01T00:00:00Z"}}"#
            )
        })
        .collect();
    let bundle = tmp.path().join("bundle.json");
    std::fs::write(
        &bundle,
        format!(
            r#"{{"type":"bundle","id":"bundle--00000000-0000-4000-8000-000000000009","objects":[{}]}}"#,
            objects.join(",")
        ),
    )
    .unwrap();
    entente_ok(&["intel", "import", s(&bundle), "--data-dir", s(&nl.dir), "--collection", &coll]);
    let nl_server = nl.start().await;
    let root = format!("{}/taxii2/api/", nl.url());

    let out = tmp.path().join("de.json");
    entente_ok(&[
        "intel",
        "pull",
        &root,
        &coll,
        "--peer",
        "NL",
        "--data-dir",
        s(&de.dir),
        "--out",
        s(&out),
    ]);
    let got: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(got["objects"].as_array().unwrap().len(), 3, "{got}");

    // FR pinned NL, but NL has not pinned FR: no identity, nothing served.
    let refused = common::entente(&[
        "intel",
        "pull",
        &root,
        &coll,
        "--peer",
        "NL",
        "--data-dir",
        s(&fr.dir),
        "--out",
        s(&tmp.path().join("fr.json")),
    ]);
    assert_eq!(refused.status.code(), Some(2), "{}", stdout(&refused));
    assert!(common::stderr(&refused).contains("401"), "{}", common::stderr(&refused));

    let reads: Vec<Value> = ledger_entries(&nl_server.url, &auditor)
        .await
        .into_iter()
        .filter(|e| e["action"] == "intel.read")
        .collect();
    assert!(
        reads.iter().any(|e| e["actor"]["kind"] == "peer" && e["actor"]["party"] == "DE"),
        "no intel.read by peer DE in NL's ledger: {reads:?}"
    );
}

/// NL's CSIRT notifies DE of the Lantern incident, and NL adds DE to case LANTERN under the
/// JIT: the notification and the case update each arrive once at DE (its ledger records one
/// `incident.receive` and one `case.update`), DE lists the notification with its conditions
/// and shows the case as led by NL; a notification no agreement grounds is refused.
#[tokio::test]
async fn incident_notifications_and_case_updates_arrive_once() {
    let tmp = tempfile::tempdir().unwrap();
    let nl = Fed::new(tmp.path(), "NL");
    let de = Fed::new(tmp.path(), "DE");
    nl.pin(&de);
    de.pin(&nl);
    add_user(&nl.dir, "cert", "csirt");
    let prosecutor = add_user(&nl.dir, "pros", "central-authority");
    let de_auditor = add_user(&de.dir, "ann", "auditor");
    let nl_server = nl.start().await;
    let mut de_server = de.start().await;
    let facts = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/incidents/examples/lantern-hospital.toml");
    let notify = |to: &str, extra: &[&str]| {
        let mut args = vec![
            "incident",
            "notify",
            s(&facts),
            "--to",
            to,
            "--user",
            "cert",
            "--data-dir",
            s(&nl.dir),
        ];
        args.extend_from_slice(extra);
        common::entente(&args)
    };
    // Bad input and denials: clear errors, the right exit codes, nothing sent.
    let o = notify("DE", &["--agreement", "ets-185"]);
    assert_eq!(o.status.code(), Some(3), "{}", common::stderr(&o));
    assert!(common::stderr(&o).contains("incident.agreement-mismatch"), "{}", common::stderr(&o));
    let o = notify("US", &[]);
    assert_eq!(o.status.code(), Some(3), "{}", common::stderr(&o));
    let o = notify("XX", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    let o = common::entente(&[
        "incident",
        "notify",
        s(&facts),
        "--to",
        "DE",
        "--user",
        "nobody",
        "--data-dir",
        s(&nl.dir),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    assert!(common::stderr(&o).contains("--user nobody"), "{}", common::stderr(&o));

    let o = notify("DE", &["--json"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let sent: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(sent["conditions"]["agreement"], "nis2-csirt-cooperation");

    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/api/v1/cases", nl_server.url))
        .bearer_auth(&prosecutor)
        .json(
            &json!({"id": "LANTERN", "title": "Operation Lantern", "concepts": ["illegal-access"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = http
        .post(format!("{}/api/v1/cases/LANTERN/members", nl_server.url))
        .bearer_auth(&prosecutor)
        .json(&json!({"party": "DE", "agreement": "jit-lantern"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    assert!(
        eventually(Duration::from_secs(60), async || nl.messages("DE") == (2, 0)).await,
        "NL's notification and case update were not acknowledged: {:?}",
        nl.messages("DE")
    );
    let list = entente_ok(&["incident", "received", "--data-dir", s(&de.dir), "--json"]);
    let list: Value = serde_json::from_str(&stdout(&list)).unwrap();
    let got = list["notifications"].as_array().unwrap();
    assert_eq!(got.len(), 1, "{list}");
    assert_eq!(got[0]["direction"], "received");
    assert_eq!(got[0]["party"], "NL");
    assert_eq!(got[0]["id"], sent["id"]);
    assert_eq!(got[0]["notice"]["incident"], "lantern-hospital");
    assert_eq!(got[0]["conditions"]["agreement"], "nis2-csirt-cooperation");
    // The same list over DE's API, for its CSIRT; an auditor is refused (recorded).
    let de_csirt = add_user(&de.dir, "cert", "csirt");
    let r = http
        .get(format!("{}/api/v1/incidents/notifications", de_server.url))
        .bearer_auth(&de_csirt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["notifications"][0]["id"], sent["id"]);
    let r = http
        .get(format!("{}/api/v1/incidents/notifications", de_server.url))
        .bearer_auth(&de_auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let text = stdout(&entente_ok(&["incident", "received", "--data-dir", s(&de.dir)]));
    assert!(text.contains("nis2/") && text.contains("from NL"), "{text}");

    let status = entente_ok(&["case", "status", "LANTERN", "--data-dir", s(&de.dir), "--json"]);
    let status: Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert_eq!(status["mirror"]["lead"], "NL", "{status}");
    assert_eq!(status["members"].as_array().unwrap().len(), 2, "{status}");
    assert!(!status.to_string().contains("Operation Lantern"), "the title stays with the lead");

    // Exactly once: one permitted entry of each kind in DE's ledger.
    let all = ledger_entries(&de_server.url, &de_auditor).await;
    let count = |action: &str| {
        all.iter().filter(|e| e["action"] == action && e["decision"] == "permit").count()
    };
    assert_eq!((count("incident.receive"), count("case.update")), (1, 1));

    // DE leaves the JIT while its node is down: the lead cannot be removed; the update waits
    // in NL's outbox, reaches DE once it is back, and DE's node ends its mirror.
    de_server.child.kill();
    let r = http
        .delete(format!("{}/api/v1/cases/LANTERN/members/NL", nl_server.url))
        .bearer_auth(&prosecutor)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "{}", r.text().await.unwrap());
    let r = http
        .delete(format!("{}/api/v1/cases/LANTERN/members/DE", nl_server.url))
        .bearer_auth(&prosecutor)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(nl.messages("DE").1, 1, "with DE down, the update waits");
    let de_server = de.start().await;
    assert!(
        eventually(Duration::from_secs(60), async || nl.messages("DE") == (3, 0)).await,
        "NL's second case update was not acknowledged: {:?}",
        nl.messages("DE")
    );
    let o = common::entente(&["case", "status", "LANTERN", "--data-dir", s(&de.dir)]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(common::stderr(&o).contains("not found"), "{}", common::stderr(&o));
    let all = ledger_entries(&de_server.url, &de_auditor).await;
    let updates =
        all.iter().filter(|e| e["action"] == "case.update" && e["decision"] == "permit").count();
    assert_eq!(updates, 2);
    drop(nl_server);
}

/// Bad input around notifications: an invalid agreement file in the data directory stops
/// the node with the file and position; an empty list says so; a facts file that does not
/// parse is refused before anything is decided.
#[tokio::test]
async fn notification_bad_input_is_refused_with_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let nl = Fed::new(tmp.path(), "NL");
    add_user(&nl.dir, "cert", "csirt");
    let o = entente_ok(&["incident", "received", "--data-dir", s(&nl.dir)]);
    assert!(stdout(&o).contains("no incident notifications"), "{}", stdout(&o));
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "id = \"x\"\njurisdictions = []\n").unwrap();
    let o = common::entente(&[
        "incident",
        "notify",
        s(&bad),
        "--to",
        "DE",
        "--user",
        "cert",
        "--data-dir",
        s(&nl.dir),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    assert!(common::stderr(&o).contains("bad.toml:"), "{}", common::stderr(&o));
    // NIS2 grounds the flow, but no node is pinned for DE: refused, nothing recorded.
    std::fs::create_dir_all(nl.dir.join("agreements")).unwrap();
    let facts = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/incidents/examples/lantern-hospital.toml");
    let o = common::entente(&[
        "incident",
        "notify",
        s(&facts),
        "--to",
        "DE",
        "--user",
        "cert",
        "--data-dir",
        s(&nl.dir),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    assert!(
        common::stderr(&o).contains("no partner node is pinned for DE"),
        "{}",
        common::stderr(&o)
    );
    std::fs::write(nl.dir.join("agreements/broken.toml"), "id = \"broken\"\nkind = \"mou\"\n")
        .unwrap();
    let o = common::entente(&["incident", "received", "--data-dir", s(&nl.dir)]);
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    assert!(common::stderr(&o).contains("broken.toml:"), "{}", common::stderr(&o));
    // Nothing was recorded by the refused commands: the ledger holds init, the user, the read.
    std::fs::remove_file(nl.dir.join("agreements/broken.toml")).unwrap();
    let o = entente_ok(&["incident", "received", "--data-dir", s(&nl.dir), "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["ledger_index"], 3, "{v}");
}

pub(crate) fn rustls_name(ip: &str) -> tokio_rustls::rustls::pki_types::ServerName<'static> {
    tokio_rustls::rustls::pki_types::ServerName::try_from(ip.to_owned()).unwrap()
}
