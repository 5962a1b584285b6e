//! `entente evidence` as a user runs it: add files (and bad ones), the custody chain with its
//! proofs, a package, offline verification and its refusals, with exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod common;

use common::{Server, add_user, entente, entente_ok, init_node, s, stderr, stdout};
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
