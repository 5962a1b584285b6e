//! `entente evidence` as a user runs it: add files (and bad ones), the custody chain with its
//! proofs, a package, offline verification and its refusals, with exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use crate::common::{Server, add_user, entente, entente_ok, init_node, s, stderr, stdout};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn evidence_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let de = tmp.path().join("de");
    init_node(&de, "DE");
    let kai = add_user(&de, "kai", "investigator");
    {
        let server = Server::start(&de, Duration::from_secs(20)).await;
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/cases", server.url))
            .bearer_auth(&kai)
            .json(&json!({"id": "C-DE", "title": "Assistance", "concepts": ["illegal-access"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let logs = tmp.path().join("access.log");
    std::fs::write(&logs, "2026-03-27T20:58:41Z 203.0.113.77 POST /upload\n".repeat(100)).unwrap();
    let add = |file: &str, extra: &[&str]| {
        let mut args = vec![
            "evidence",
            "add",
            file,
            "--data-dir",
            s(&de),
            "--user",
            "kai",
            "--case",
            "C-DE",
            "--description",
            "C2 access logs",
            "--category",
            "traffic",
        ];
        args.extend_from_slice(extra);
        entente(&args)
    };
    let o = add(s(&logs), &["--id", "EV-1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("EV-1 sha256:"), "{}", stdout(&o));
    // The same content again under another id is de-duplicated.
    let o = add(s(&logs), &["--id", "EV-2"]);
    assert!(stdout(&o).contains("de-duplicated"), "{}", stdout(&o));

    // Bad input: exit 2, a message naming the file, nothing recorded.
    let o = add(s(&tmp.path().join("missing.log")), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("missing.log"), "{}", stderr(&o));
    let o = add(s(tmp.path()), &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("directory"), "{}", stderr(&o));
    let o = add(s(&logs), &["--id", "EV-1"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    let o = add(s(&logs), &["--category", "gossip"]);
    assert_eq!(o.status.code(), Some(2));

    entente_ok(&[
        "evidence",
        "event",
        "EV-1",
        "--kind",
        "sealed",
        "--reason",
        "write-blocked copy",
        "--data-dir",
        s(&de),
        "--user",
        "kai",
    ]);
    let o = entente_ok(&["evidence", "custody", "EV-1", "--data-dir", s(&de)]);
    let out = stdout(&o);
    assert!(
        out.contains("acquired") && out.contains("sealed") && out.contains("✓ included"),
        "{out}"
    );

    let pkg = tmp.path().join("answer.tar");
    let o = entente(&[
        "evidence",
        "package",
        "--case",
        "C-DE",
        "--items",
        "EV-1",
        "--to",
        "NL",
        "--request",
        "REQ-1",
        "--request-kind",
        "production",
        "-o",
        s(&pkg),
        "--data-dir",
        s(&de),
        "--user",
        "kai",
    ]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let pem = tmp.path().join("de.pem");
    let o = entente_ok(&["evidence", "public-key", "--data-dir", s(&de)]);
    std::fs::write(&pem, o.stdout).unwrap();
    let o = entente_ok(&["evidence", "verify", s(&pkg), "--sender-key", s(&pem)]);
    assert!(stdout(&o).contains("verified"), "{}", stdout(&o));

    // Refusals: unknown sender, a damaged package.
    let o = entente(&["evidence", "verify", s(&pkg)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown sender"), "{}", stderr(&o));
    let mut bytes = std::fs::read(&pkg).unwrap();
    let n = bytes.len();
    bytes[n - 1500] ^= 0x04;
    let bad = tmp.path().join("bad.tar");
    std::fs::write(&bad, &bytes).unwrap();
    let o = entente(&["evidence", "verify", s(&bad), "--sender-key", s(&pem)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("verification FAILED"), "{}", stderr(&o));
    std::fs::write(&bad, &bytes[..n / 3]).unwrap();
    let o = entente(&["evidence", "verify", s(&bad), "--sender-key", s(&pem)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("truncated") || stderr(&o).contains("FAILED"), "{}", stderr(&o));
    let o = entente(&["evidence", "verify", s(tmp.path()), "--sender-key", s(&pem)]);
    assert_eq!(o.status.code(), Some(2));
    entente_ok(&["ledger", "verify", "--data-dir", s(&de)]);

    // NL takes the package in: verified, `received`, DE's conditions bound.
    let nl = tmp.path().join("nl");
    init_node(&nl, "NL");
    let eva = add_user(&nl, "eva", "investigator");
    {
        let server = Server::start(&nl, Duration::from_secs(20)).await;
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/cases", server.url))
            .bearer_auth(&eva)
            .json(&json!({"id": "LANTERN", "title": "Lantern", "concepts": ["illegal-access"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let import = |file: &str| {
        entente(&[
            "evidence",
            "import",
            file,
            "--sender-key",
            s(&pem),
            "--case",
            "LANTERN",
            "--data-dir",
            s(&nl),
            "--user",
            "eva",
        ])
    };
    let o = import(s(&bad));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let o = import(s(&pkg));
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("imported EV-1 into case LANTERN"), "{}", stdout(&o));
    let o = entente_ok(&["evidence", "custody", "EV-1", "--data-dir", s(&nl)]);
    let out = stdout(&o);
    assert!(out.contains("earlier holder") && out.contains("received"), "{out}");
    // Imported once: a second import changes nothing.
    let o = import(s(&pkg));
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    entente_ok(&["ledger", "verify", "--data-dir", s(&nl)]);
}

/// Blob files in a node's blob store (temporary ones apart), and temporary ones.
fn blob_files(dir: &std::path::Path) -> (Vec<std::path::PathBuf>, usize) {
    fn walk(p: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(p).unwrap() {
            let e = e.unwrap().path();
            if e.is_dir() { walk(&e, out) } else { out.push(e) }
        }
    }
    let root = dir.join("blobs");
    let mut all = Vec::new();
    walk(&root, &mut all);
    let tmp = all.iter().filter(|p| p.starts_with(root.join("tmp"))).count();
    (all.into_iter().filter(|p| !p.starts_with(root.join("tmp"))).collect(), tmp)
}

/// Sends a raw HTTP/1.1 request (the body as far as the server takes it) and returns the
/// response's status line.
fn raw(addr: &str, head: &str, body: &[u8]) -> String {
    use std::io::{Read as _, Write as _};
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.write_all(head.as_bytes()).unwrap();
    // The node may answer and close before taking all of it.
    let _ = tcp.write_all(body);
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn evidence_upload_through_the_api() {
    use base64::Engine as _;
    use std::io::Write as _;
    let tmp = tempfile::tempdir().unwrap();
    let de = tmp.path().join("de");
    init_node(&de, "DE");
    // A small upload limit, to see the 413.
    let mut cfg = std::fs::OpenOptions::new().append(true).open(de.join("entente.toml")).unwrap();
    writeln!(cfg, "\n[evidence]\nmax_upload_bytes = 8388608").unwrap();
    drop(cfg);
    let kai = add_user(&de, "kai", "investigator");
    let dora = add_user(&de, "dora", "dpo");
    let server = Server::start(&de, Duration::from_secs(20)).await;
    let c = reqwest::Client::new();
    let r = c
        .post(format!("{}/api/v1/cases", server.url))
        .bearer_auth(&kai)
        .json(&json!({"id": "C-UP", "title": "Upload", "concepts": ["illegal-access"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // 5 MiB of content; its digest as sha256sum computes it.
    let body: Vec<u8> =
        (0..5u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let file = tmp.path().join("disk.img");
    std::fs::write(&file, &body).unwrap();
    let o = std::process::Command::new("sha256sum").arg(&file).output().unwrap();
    let sha = String::from_utf8_lossy(&o.stdout).split_whitespace().next().unwrap().to_owned();
    let b64 = base64::prelude::BASE64_STANDARD.encode(hex::decode(&sha).unwrap());
    let url = |q: &str| format!("{}/api/v1/cases/C-UP/evidence?{q}", server.url);

    // A body that breaks off (the connection drops after 100,000 of 2,000,000 bytes).
    {
        let addr = server.url.trim_start_matches("http://").to_owned();
        let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            tcp,
            "POST /api/v1/cases/C-UP/evidence?description=cut&id=EV-CUT HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {kai}\r\nContent-Type: application/octet-stream\r\nContent-Length: 2000000\r\n\r\n"
        )
        .unwrap();
        tcp.write_all(&body[..100_000]).unwrap();
        tcp.shutdown(std::net::Shutdown::Both).unwrap();
    }

    let r = c
        .post(url("description=Disk%20image&file_name=disk.img&source=seized%20laptop&id=EV-UP"))
        .bearer_auth(&kai)
        .header("content-type", "application/octet-stream")
        .header("repr-digest", format!("sha-256=:{b64}:"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["repr-digest"], format!("sha-256=:{b64}:").as_str());
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["sha256"], sha.as_str(), "{v}");
    assert_eq!(v["size"], 5u64 << 20, "{v}");
    assert_eq!(v["custody"][0]["event"], "acquired", "{v}");
    assert!(v["custody"][0]["actor"].as_str().unwrap().contains("kai"), "{v}");

    // Bad input: each refused with its status, nothing stored.
    let problem = |v: &serde_json::Value, t: &str| {
        assert_eq!(v["type"], format!("urn:entente:problem:{t}"), "{v}");
    };
    let other = base64::prelude::BASE64_STANDARD.encode([7u8; 32]);
    let r = c
        .post(url("description=x&id=EV-BAD"))
        .bearer_auth(&kai)
        .header("repr-digest", format!("sha-256=:{other}:"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let v: serde_json::Value = r.json().await.unwrap();
    problem(&v, "digest-mismatch");
    assert!(v["detail"].as_str().unwrap().contains(&sha), "{v}");
    let r = c
        .post(url(&format!("description=x&id=EV-BAD&sha256={}", "0".repeat(64))))
        .bearer_auth(&kai)
        .body(b"abc".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = c
        .post(url("description=x"))
        .bearer_auth(&kai)
        .header("repr-digest", "sha-256=:not base64:")
        .body(b"abc".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c.post(url("id=EV-X")).bearer_auth(&kai).body(b"abc".to_vec()).send().await.unwrap();
    assert_eq!(r.status(), 400, "description is required");
    // Refusals before the body is read (small bodies: the node answers without reading them).
    let r = c
        .post(format!("{}/api/v1/cases/C-NONE/evidence?description=x", server.url))
        .bearer_auth(&kai)
        .body(b"abc".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = c.post(url("description=x")).body(b"abc".to_vec()).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v.get("ledger_index").is_none(), "recorded in aggregate, without an index: {v}");
    let r =
        c.post(url("description=x")).bearer_auth(&dora).body(b"abc".to_vec()).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["ledger_index"].is_u64(), "the refusal is recorded: {v}");
    assert!(v["rules"].to_string().contains("default-deny") || v["detail"].is_string(), "{v}");
    // Over the limit: declared (answered before reading), or streamed without a length
    // (answered once the limit is passed).
    let addr = server.url.trim_start_matches("http://").to_owned();
    let head = format!(
        "POST /api/v1/cases/C-UP/evidence?description=big&id=EV-BIG HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {kai}\r\nConnection: close\r\n"
    );
    let status = raw(&addr, &format!("{head}Content-Length: 9000000\r\n\r\n"), &[]);
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    let mut chunked = Vec::new();
    for _ in 0..9 {
        chunked.extend_from_slice(format!("{:x}\r\n", 1 << 20).as_bytes());
        chunked.extend_from_slice(&vec![1u8; 1 << 20]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let status = raw(&addr, &format!("{head}Transfer-Encoding: chunked\r\n\r\n"), &chunked);
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    // The same content again is de-duplicated: recorded, no second blob.
    let r = c
        .post(url("description=again&id=EV-UP2"))
        .bearer_auth(&kai)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["deduplicated"], true);
    let doc: serde_json::Value =
        c.get(format!("{}/openapi.json", server.url)).send().await.unwrap().json().await.unwrap();
    let op = &doc["paths"]["/api/v1/cases/{id}/evidence"]["post"];
    for status in ["201", "400", "401", "403", "404", "413", "422"] {
        assert!(op["responses"][status].is_object(), "{status} not in /openapi.json");
    }
    drop(server);

    // The custody chain as the CLI proves it: acquired by kai.
    let o = entente_ok(&["evidence", "custody", "EV-UP", "--data-dir", s(&de)]);
    let out = stdout(&o);
    assert!(out.contains("acquired") && out.contains("kai") && out.contains("✓ included"), "{out}");
    assert!(out.contains(&sha), "{out}");
    for id in ["EV-CUT", "EV-BAD", "EV-BIG", "EV-X"] {
        let o = entente(&["evidence", "custody", id, "--data-dir", s(&de)]);
        assert_ne!(o.status.code(), Some(0), "{id} was stored: {}", stdout(&o));
    }
    // One blob: the content stored once, nothing of the refused or broken uploads.
    let (blobs, temporary) = blob_files(&de);
    assert_eq!((blobs.len(), temporary), (1, 0), "{blobs:?}");
    let stored = std::fs::read(&blobs[0]).unwrap();
    assert!(stored.starts_with(b"age-encryption.org/v1"));
    assert!(!stored.windows(64).any(|w| w == &body[4096..4160]), "the blob is not plaintext");
    entente_ok(&["ledger", "verify", "--data-dir", s(&de)]);
}

/// A possibly privileged item from the command line: flagged, the package is denied (exit
/// 3, the rule and the entry named); the case team cannot review it; the filter team
/// releases it and the package is written.
#[tokio::test]
async fn privileged_evidence_waits_for_the_filter_team() {
    let tmp = tempfile::tempdir().unwrap();
    let de = tmp.path().join("de");
    init_node(&de, "DE");
    let kai = add_user(&de, "kai", "investigator");
    add_user(&de, "fay", "filter-team");
    {
        let server = Server::start(&de, Duration::from_secs(20)).await;
        let case = json!({"id": "C-DE", "title": "Mailbox", "concepts": ["illegal-access"]});
        assert_eq!(server.post("/api/v1/cases", &kai, case).await.unwrap().status(), 201);
    }
    let mbox = tmp.path().join("mailbox.mbox");
    std::fs::write(&mbox, "From counsel@example.invalid\n".repeat(50)).unwrap();
    entente_ok(&[
        "evidence",
        "add",
        s(&mbox),
        "--data-dir",
        s(&de),
        "--user",
        "kai",
        "--case",
        "C-DE",
        "--description",
        "seized mailbox",
        "--category",
        "content",
        "--id",
        "EV-1",
    ]);
    let pkg = tmp.path().join("answer.tar");
    let package = || {
        entente(&[
            "evidence",
            "package",
            "--case",
            "C-DE",
            "--items",
            "EV-1",
            "--to",
            "NL",
            "--request",
            "REQ-1",
            "--request-kind",
            "production",
            "-o",
            s(&pkg),
            "--data-dir",
            s(&de),
            "--user",
            "kai",
        ])
    };
    let o = entente_ok(&[
        "evidence",
        "flag",
        "EV-1",
        "--reason",
        "holds mail from counsel",
        "--data-dir",
        s(&de),
        "--user",
        "kai",
    ]);
    assert!(stdout(&o).contains("flagged as possibly privileged"), "{}", stdout(&o));
    let o = package();
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("privilege.hold"), "{}", stderr(&o));
    assert!(!pkg.exists(), "a package was written for a held item");
    let review = |user: &str, how: &[&str]| {
        let mut args = vec!["evidence", "review", "EV-1", "--reason", "no privileged content"];
        args.extend_from_slice(how);
        args.extend_from_slice(&["--data-dir", s(&de), "--user", user]);
        entente(&args)
    };
    let o = review("kai", &["--release"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let o = review("fay", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = review("fay", &["--release"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("released: it may leave"), "{}", stdout(&o));
    let o = package();
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    assert!(pkg.exists());
}
