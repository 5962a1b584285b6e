//! Evidence packages between real node processes on 127.0.0.1: DE packages its answer
//! encrypted to NL's pinned age recipient and offers it over the federation; NL's node
//! fetches it (streamed, resuming from what an earlier attempt left on disk), checks it
//! against the signed offer, and imports it trusting DE's pin. Bytes other than those offered
//! are refused and recorded; only the partner a package was offered to may fetch it.

use crate::common::{
    Server, add_user, client_as, entente, entente_ok, free_port, init_node, ledger_entries, s,
    stderr, stdout,
};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Fed {
    dir: PathBuf,
    party: &'static str,
    port: u16,
}

impl Fed {
    fn new(root: &Path, party: &'static str) -> Fed {
        let dir = root.join(party.to_lowercase());
        init_node(&dir, party);
        Fed { dir, party, port: free_port() }
    }
    async fn start(&self) -> Server {
        let listen = format!("127.0.0.1:{}", self.port);
        Server::start_with(&self.dir, &["--federation-listen", &listen], Duration::from_secs(20))
            .await
    }
    fn recipient(&self) -> String {
        stdout(&entente_ok(&["evidence", "recipient", "--data-dir", s(&self.dir)]))
            .trim()
            .to_owned()
    }
    fn pin(&self, other: &Fed, with_recipient: bool) {
        let url = format!("https://127.0.0.1:{}", other.port);
        let cert = other.dir.join("node.cert.pem");
        let r = other.recipient();
        let mut args = vec![
            "peer",
            "add",
            "--data-dir",
            s(&self.dir),
            "--party",
            other.party,
            "--url",
            &url,
            "--cert",
            s(&cert),
        ];
        if with_recipient {
            args.extend_from_slice(&["--age-recipient", &r]);
        }
        entente_ok(&args);
    }
    fn transfers(&self) -> Vec<Value> {
        let o = entente_ok(&["evidence", "transfers", "--data-dir", s(&self.dir), "--json"]);
        serde_json::from_str::<Value>(&stdout(&o)).unwrap().as_array().unwrap().clone()
    }
    fn incoming(&self, sha: &str) -> Option<Value> {
        self.transfers()
            .into_iter()
            .find(|t| t["direction"] == "in" && t["package"]["offer"]["sha256"] == sha)
    }
}

async fn open_case(server: &Server, token: &str, id: &str) {
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/cases", server.url))
        .bearer_auth(token)
        .json(&json!({"id": id, "title": "Assistance", "concepts": ["illegal-access"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

/// Polls `f` every 50 ms until it is true or `limit` has passed.
async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Deterministic, incompressible-looking bytes.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn sha256sum(file: &Path) -> String {
    let o = std::process::Command::new("sha256sum").arg(file).output().unwrap();
    assert!(o.status.success());
    stdout(&o).split_whitespace().next().unwrap().to_owned()
}

/// DE adds `content` as evidence `id`, packages it for NL and offers it; returns the package
/// file and its SHA-256.
fn package_and_send(de: &Fed, tmp: &Path, id: &str, content: &[u8]) -> (PathBuf, String) {
    let file = tmp.join(format!("{id}.bin"));
    std::fs::write(&file, content).unwrap();
    entente_ok(&[
        "evidence",
        "add",
        s(&file),
        "--id",
        id,
        "--data-dir",
        s(&de.dir),
        "--user",
        "kai",
        "--case",
        "C-DE",
        "--description",
        "server image extract",
        "--category",
        "traffic",
    ]);
    let pkg = tmp.join(format!("{id}.tar.age"));
    let o = entente_ok(&[
        "evidence",
        "package",
        "--case",
        "C-DE",
        "--items",
        id,
        "--to",
        "NL",
        "--request",
        "REQ-1",
        "--request-kind",
        "production",
        "-o",
        s(&pkg),
        "--send",
        "--data-dir",
        s(&de.dir),
        "--user",
        "kai",
    ]);
    let out = stdout(&o);
    assert!(out.contains("encrypted to NL") && out.contains("offered to NL"), "{out}");
    let sha = sha256sum(&pkg);
    assert!(out.contains(&sha), "{out}");
    (pkg, sha)
}

#[tokio::test]
async fn packages_travel_resumable_checked_and_only_to_their_recipient() {
    let tmp = tempfile::tempdir().unwrap();
    let nl = Fed::new(tmp.path(), "NL");
    let de = Fed::new(tmp.path(), "DE");
    let us = Fed::new(tmp.path(), "US");
    de.pin(&nl, true);
    nl.pin(&de, false);
    let kai = add_user(&de.dir, "kai", "investigator");
    let eva = add_user(&nl.dir, "eva", "investigator");
    let de_server = de.start().await;
    open_case(&de_server, &kai, "C-DE").await;

    // 1. A 24 MiB answer, offered while NL is down. NL's disk already holds the first 10 MiB
    //    (an earlier attempt interrupted): the fetch resumes there.
    let content = bytes(24 << 20, 7);
    let (pkg, sha) = package_and_send(&de, tmp.path(), "EV-1", &content);
    let whole = std::fs::read(&pkg).unwrap();
    // Without a pinned or given age recipient, --send is refused before anything is written.
    {
        let o = entente(&[
            "evidence",
            "package",
            "--case",
            "C-DE",
            "--to",
            "US",
            "--request",
            "REQ-9",
            "--request-kind",
            "production",
            "-o",
            s(&tmp.path().join("x.tar")),
            "--send",
            "--data-dir",
            s(&de.dir),
            "--user",
            "kai",
        ]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("encrypted"), "{}", stderr(&o));
    }

    let part = nl.dir.join("packages/incoming/DE").join(format!("{sha}.part"));
    std::fs::create_dir_all(part.parent().unwrap()).unwrap();
    std::fs::write(&part, &whole[..10 << 20]).unwrap();
    let nl_server = nl.start().await;
    let arrived = eventually(Duration::from_secs(60), || {
        nl.incoming(&sha).is_some_and(|t| t["package"]["status"] == "arrived")
    })
    .await;
    assert!(arrived, "{:#?}", nl.transfers());
    let t = nl.incoming(&sha).unwrap();
    assert_eq!(t["package"]["resumed_from"], json!(10 << 20), "{t:#}");
    let got = PathBuf::from(t["path"].as_str().unwrap());
    assert_eq!(sha256sum(&got), sha, "the file on NL's disk is the one DE offered");
    assert!(!part.exists());

    // Only NL may fetch it: the US (not pinned by DE) is refused, NL gets ranges.
    let fed_url = format!("https://127.0.0.1:{}/federation/v1/packages/{sha}", de.port);
    let as_us = client_as(&us.dir, &de.dir);
    let r = as_us.get(&fed_url).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let as_nl = client_as(&nl.dir, &de.dir);
    let r = as_nl.get(&fed_url).header("Range", "bytes=10-19").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"].to_str().unwrap(),
        format!("bytes 10-19/{}", whole.len())
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), &whole[10..20]);
    let r = as_nl
        .get(&fed_url)
        .header("Range", format!("bytes={}-", whole.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    let r = as_nl.head(&fed_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"].to_str().unwrap(), whole.len().to_string());
    let other = format!("https://127.0.0.1:{}/federation/v1/packages/{}", de.port, "ab".repeat(32));
    let r = as_nl.get(&other).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");

    // NL imports the arrived package, trusting DE's pinned key.
    open_case(&nl_server, &eva, "C-NL").await;
    let o = entente_ok(&[
        "evidence",
        "import",
        s(&got),
        "--case",
        "C-NL",
        "--data-dir",
        s(&nl.dir),
        "--user",
        "eva",
    ]);
    assert!(stdout(&o).contains("imported EV-1 into case C-NL"), "{}", stdout(&o));

    // 2. Other bytes than offered: DE's stored file is damaged (one byte, same size) before NL
    //    fetches it. NL records the refusal, keeps nothing and does not fetch it again.
    drop(nl_server);
    let (_, sha2) = package_and_send(&de, tmp.path(), "EV-2", &bytes(1 << 20, 9));
    let staged = de.dir.join("packages/outgoing").join(format!("{sha2}.pkg"));
    let mut b = std::fs::read(&staged).unwrap();
    let n = b.len();
    b[n / 2] ^= 0x01;
    std::fs::write(&staged, &b).unwrap();
    let nl_server = nl.start().await;
    let refused = eventually(Duration::from_secs(60), || {
        nl.incoming(&sha2).is_some_and(|t| t["package"]["status"] == "refused")
    })
    .await;
    assert!(refused, "{:#?}", nl.transfers());
    let t = nl.incoming(&sha2).unwrap();
    let detail = t["package"]["detail"].as_str().unwrap();
    assert!(detail.contains(&sha2) && detail.contains("discarded"), "{detail}");
    assert!(t["path"].is_null());
    let dir = nl.dir.join("packages/incoming/DE");
    assert!(
        !dir.join(format!("{sha2}.pkg")).exists() && !dir.join(format!("{sha2}.part")).exists()
    );
    let auditor = add_user(&nl.dir, "aud", "auditor");
    let entries = ledger_entries(&nl_server.url, &auditor).await;
    let arrivals: Vec<&Value> =
        entries.iter().filter(|e| e["action"] == "package.arrive").collect();
    assert_eq!(arrivals.len(), 2, "{arrivals:#?}");
    assert_eq!(arrivals[0]["decision"], "permit");
    assert_eq!(arrivals[1]["decision"], "deny");
    assert_eq!(arrivals[1]["rules"], json!(["federation#package-digest"]));
    entente_ok(&["ledger", "verify", "--data-dir", s(&nl.dir)]);
    entente_ok(&["ledger", "verify", "--data-dir", s(&de.dir)]);
}
