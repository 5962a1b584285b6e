//! Hostile clients against real node processes on 127.0.0.1, each attack bounded: anonymous
//! callers cannot write into the public ledger (their refusals are recorded in aggregate, one
//! entry per source and window, never their text), idle and slow connections are closed and
//! do not lock anyone out, and half-open handshakes do not starve a pinned partner.

use crate::common::{Server, add_user, closed_within, init_node, ledger_entries};
use crate::federation::{Fed, batch, consent, eventually, key_of, post};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncWriteExt as _;

/// Appends a `[limits]` section to the node's entente.toml.
fn limits(dir: &Path, lines: &str) {
    let path = dir.join("entente.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("\n[limits]\n");
    text.push_str(lines);
    std::fs::write(&path, text).unwrap();
}

/// Stops `server` with SIGINT (it records what it counted on the way out) and waits for it.
async fn stop(mut server: Server) {
    let pid = server.child.0.as_ref().map(std::process::Child::id).unwrap();
    let sent = std::process::Command::new("kill").args(["-INT", &pid.to_string()]).status();
    assert!(sent.is_ok_and(|s| s.success()));
    let stopped = eventually(Duration::from_secs(40), || {
        let done = server.child.try_wait().is_some();
        async move { done }
    })
    .await;
    assert!(stopped, "the node did not stop on SIGINT");
}

/// The entries of `action`.
fn of<'a>(entries: &'a [Value], action: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["action"] == action).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_calls_add_one_aggregate_per_source_and_window_and_never_their_text() {
    const N: usize = 300;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nl");
    init_node(&dir, "NL");
    let auditor = add_user(&dir, "ann", "auditor");
    // One window for the whole test: every refusal is recorded at shutdown.
    limits(&dir, "refusal_window_secs = 3600\n");
    let server = Server::start(&dir, Duration::from_secs(20)).await;
    let before = ledger_entries(&server.url, &auditor).await.len();
    let c = reqwest::Client::new();
    let secret = "Jane.Doe_born-1980";
    for i in 0..N {
        let url = match i % 3 {
            0 => format!("{}/api/v1/cases/{secret}-{i}", server.url),
            1 => format!("{}/api/v1/cases/{secret}-{i}/status", server.url),
            _ => format!("{}/taxii2/api/collections/{secret}-{i}/objects/", server.url),
        };
        let mut req = c.get(url).bearer_auth(format!("{secret}-token"));
        if i % 3 == 2 {
            req = req.header("Accept", "application/taxii+json;version=2.1");
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "call {i}");
        let body: Value = r.json().await.unwrap();
        assert!(body.get("ledger_index").is_none(), "call {i}: {body}");
    }
    // Nothing was recorded one by one (the auditor's own reads are: one entry each).
    let during = ledger_entries(&server.url, &auditor).await;
    assert_eq!(during.len(), before + 1, "anonymous calls were recorded one by one");
    stop(server).await;

    let server = Server::start(&dir, Duration::from_secs(20)).await;
    let all = ledger_entries(&server.url, &auditor).await;
    let records = of(&all, "refusals.record");
    // One source, one window (two if the test straddled the window's end).
    assert!((1..=2).contains(&records.len()), "{records:?}");
    let total: u64 = records
        .iter()
        .map(|e| {
            let reason = e["reason"].as_str().unwrap();
            reason.split(' ').next().unwrap().parse::<u64>().unwrap()
        })
        .sum();
    assert_eq!(total, N as u64, "{records:?}");
    for e in &records {
        assert_eq!(e["actor"]["kind"], "operator", "{e}");
        assert_eq!(e["decision"], "deny", "{e}");
        assert_eq!(e["rules"], serde_json::json!(["authn.required"]), "{e}");
        let subject = e["subjects"][0].as_str().unwrap();
        let hash = subject.strip_prefix("source:").unwrap();
        assert_eq!(hash.len(), 64, "a keyed hash, not the address: {e}");
        assert!(e["payload_hashes"]["refusals"].as_str().unwrap().starts_with("sha256:"), "{e}");
        let reason = e["reason"].as_str().unwrap();
        assert!(reason.contains("GET /api/v1/cases/{id}"), "{reason}");
    }
    // Neither the caller's text nor its address is anywhere in the ledger.
    let text = serde_json::to_string(&all).unwrap();
    assert!(!text.contains("Jane.Doe"), "the caller's text entered the ledger");
    assert!(!text.contains("127.0.0.1"), "an address entered the ledger");
    assert!(all.iter().all(|e| e["actor"]["kind"] != "anonymous"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_federation_batches_are_recorded_in_aggregate() {
    const N: u64 = 40;
    let tmp = tempfile::tempdir().unwrap();
    let nl = Fed::new(tmp.path(), "NL");
    let de = Fed::new(tmp.path(), "DE");
    let fr = Fed::new(tmp.path(), "FR");
    nl.pin(&de);
    let auditor = add_user(&nl.dir, "ann", "auditor");
    limits(&nl.dir, "refusal_window_secs = 3600\n");
    let server = nl.start().await;
    let before = ledger_entries(&server.url, &auditor).await.len();
    let url = nl.url();
    let de_client = crate::common::client_as(&de.dir, &nl.dir);
    let fr_client = crate::common::client_as(&fr.dir, &nl.dir);
    let key = key_of(&de.dir);
    let now = jiff::Timestamp::now();
    for i in 0..N {
        // An unpinned client and a gap in DE's sequence: refused before any decision,
        // answered as problems without an index.
        let (status, p) = post(&fr_client, &url, batch(&[consent(1, &key, "NL", now)])).await;
        assert_eq!(status, 403, "{p}");
        assert!(p.get("ledger_index").is_none(), "{p}");
        // The other federation routes refuse it too, and count it the same way.
        let r = fr_client.get(format!("{url}/federation/v1/checkpoint")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 403);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let (status, p) = post(&de_client, &url, batch(&[consent(5 + i, &key, "NL", now)])).await;
        assert_eq!(status, 409, "{p}");
        assert!(p.get("ledger_index").is_none(), "{p}");
    }
    let (status, p) = post(&de_client, &url, batch(&[consent(1, &key, "NL", now)])).await;
    assert_eq!(status, 200, "{p}");
    // A batch over 16 MiB: 413, a problem, counted for DE.
    let big = vec![b' '; (16 << 20) + (1 << 20)];
    let r = de_client
        .post(format!("{url}/federation/v1/envelopes"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status().as_u16(), 413);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    let during = ledger_entries(&server.url, &auditor).await;
    // The auditor's read and the one envelope applied (a consent refused on its content).
    assert_eq!(during.len(), before + 2, "refusals were recorded one by one");
    stop(server).await;

    let server = nl.start().await;
    let all = ledger_entries(&server.url, &auditor).await;
    assert!(of(&all, "envelope.reject").is_empty(), "{:?}", of(&all, "envelope.reject"));
    let records = of(&all, "refusals.record");
    let from_fr: Vec<_> = records
        .iter()
        .filter(|e| e["subjects"][0].as_str().unwrap().starts_with("source:"))
        .collect();
    let from_de: Vec<_> = records.iter().filter(|e| e["subjects"][0] == "peer:DE").collect();
    assert!((1..=2).contains(&from_fr.len()), "{records:?}");
    assert!((1..=2).contains(&from_de.len()), "{records:?}");
    assert!(from_fr.iter().all(|e| e["rules"] == serde_json::json!(["federation#unpinned"])));
    let de_rules: Vec<String> = from_de
        .iter()
        .flat_map(|e| e["rules"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()))
        .collect();
    assert!(de_rules.contains(&"federation#out-of-order".to_owned()), "{de_rules:?}");
    let reason = from_fr[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("{N} federation#unpinned on POST /federation/v1/envelopes")),
        "{reason}"
    );
    assert!(
        reason.contains(&format!("{N} federation#unpinned on GET /federation/v1/checkpoint")),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_api_connections_are_closed_and_the_node_keeps_answering() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nl");
    init_node(&dir, "NL");
    limits(
        &dir,
        "header_timeout_secs = 2\nidle_timeout_secs = 3\nmax_connections = 64\nmax_connections_per_address = 8\n",
    );
    let server = Server::start(&dir, Duration::from_secs(20)).await;
    let addr = server.url.trim_start_matches("http://").to_owned();
    // More idle sockets from this address than its budget, and slow ones that never finish
    // their headers.
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let mut slow = Vec::new();
    for _ in 0..4 {
        let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
        sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
        slow.push(sock);
    }
    // A newcomer from the same address is still served: the oldest idle socket gives way.
    let c = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    for _ in 0..5 {
        let r = c.get(format!("{}/healthz", server.url)).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    // Every held socket is closed by the node: given way, or past the header deadline.
    for (i, sock) in slow.iter_mut().chain(idle.iter_mut()).enumerate() {
        assert!(closed_within(sock, Duration::from_secs(15)).await, "socket {i} still open");
    }
    // A client that keeps its connection after a request is closed once idle.
    let mut keep = tokio::net::TcpStream::connect(&addr).await.unwrap();
    keep.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert!(
        closed_within(&mut keep, Duration::from_secs(15)).await,
        "an idle connection stayed open"
    );
    // A body that stalls: the request is in progress, so it is not cut at once, but a
    // connection silent for the idle deadline (twice, the request included) is closed.
    let mut stalled = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stalled
        .write_all(b"POST /api/v1/cases HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\":")
        .await
        .unwrap();
    assert!(
        closed_within(&mut stalled, Duration::from_secs(20)).await,
        "a stalled body held its connection"
    );
    let r = c.get(format!("{}/healthz", server.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_is_served_while_an_attacker_holds_handshakes_and_unpinned_connections() {
    let tmp = tempfile::tempdir().unwrap();
    let nl = Fed::new(tmp.path(), "NL");
    let de = Fed::new(tmp.path(), "DE");
    let fr = Fed::new(tmp.path(), "FR");
    nl.pin(&de);
    // Handshakes get a long deadline: the attacker's stay open for the whole test.
    limits(
        &nl.dir,
        "handshake_timeout_secs = 60\nmax_handshakes_per_address = 4\nmax_unpinned_connections = 8\nmax_partner_connections = 8\n",
    );
    let _server = nl.start().await;
    let url = nl.url();
    // Many half-open handshakes from this address (more than the 256 connections the port
    // once held in all): a ClientHello's first bytes, then nothing.
    let mut half_open = Vec::new();
    for _ in 0..300 {
        let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", nl.port)).await.unwrap();
        sock.write_all(b"\x16\x03\x01").await.unwrap();
        half_open.push(sock);
    }
    // And more completed connections of an unpinned client than the unpinned budget holds.
    let pem = std::fs::read_to_string(nl.dir.join("node.cert.pem")).unwrap();
    let config =
        std::sync::Arc::new(entente_node::danger::client_config_as(&fr.dir, &pem).unwrap());
    let mut unpinned = Vec::new();
    for _ in 0..12 {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", nl.port)).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(config.clone())
            .connect(crate::federation::rustls_name("127.0.0.1"), tcp)
            .await;
        if let Ok(t) = tls {
            unpinned.push(t);
        }
    }
    // The pinned partner's batch is acknowledged meanwhile.
    let de_client = crate::common::client_as(&de.dir, &nl.dir);
    let key = key_of(&de.dir);
    let now = jiff::Timestamp::now();
    for seq in 1..=3 {
        let (status, p) = post(&de_client, &url, batch(&[consent(seq, &key, "NL", now)])).await;
        assert_eq!(status, 200, "the partner was starved: {p}");
        assert_eq!(p["items"][0]["seq"], seq, "{p}");
    }
    // The handshakes that gave way were closed; at most the address's budget is still held.
    let mut open = 0;
    for sock in &mut half_open {
        if !closed_within(sock, Duration::from_millis(50)).await {
            open += 1;
        }
    }
    assert!(open <= 4, "{open} half-open handshakes still held");
    drop(unpinned);
}

/// Past the handshake, an unpinned certificate's connections count per address: one client
/// holding many cannot take the whole unpinned budget from another address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_the_whole_unpinned_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let nl = Fed::new(tmp.path(), "NL");
    let fr = Fed::new(tmp.path(), "FR");
    limits(&nl.dir, "max_unpinned_per_address = 2\nmax_unpinned_connections = 8\n");
    let _server = nl.start().await;
    let pem = std::fs::read_to_string(nl.dir.join("node.cert.pem")).unwrap();
    let config =
        std::sync::Arc::new(entente_node::danger::client_config_as(&fr.dir, &pem).unwrap());
    let connect = |source: &'static str| {
        let config = config.clone();
        let port = nl.port;
        async move {
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            sock.bind(format!("{source}:0").parse().unwrap()).unwrap();
            let tcp = sock.connect(format!("127.0.0.1:{port}").parse().unwrap()).await.unwrap();
            tokio_rustls::TlsConnector::from(config)
                .connect(crate::federation::rustls_name("127.0.0.1"), tcp)
                .await
                .unwrap()
        }
    };
    // Five completed connections from 127.0.0.1, each admitted after the last.
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect("127.0.0.1").await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut open = 0;
    for t in &mut held {
        if !closed_within(t, Duration::from_millis(200)).await {
            open += 1;
        }
    }
    assert!(open <= 2, "{open} unpinned connections of one address still held");
    // Another address is served meanwhile (its certificate is unpinned: refused, answered).
    let mut other = connect("127.0.0.2").await;
    other
        .write_all(
            b"GET /federation/v1/checkpoint HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut other, &mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 "), "the other address was not answered: {answer}");
}
