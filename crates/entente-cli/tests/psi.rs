//! Deconfliction between two real node processes on 127.0.0.1 over the federation's mutual
//! TLS: DE rotates its key under the shipped pilot memorandum, NL asks with `entente psi
//! query`, DE evaluates, NL reads the result with `entente psi status`; bad selector files and
//! queries no agreement permits are refused with clear errors and the right exit codes.

use crate::common::{self, Server, add_user, entente_ok, free_port, init_node, s, stdout};
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
    fn pin(&self, other: &Fed) {
        let url = format!("https://127.0.0.1:{}", other.port);
        let cert = other.dir.join("node.cert.pem");
        entente_ok(&[
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
        ]);
    }
    fn status(&self) -> Value {
        let o = entente_ok(&["psi", "status", "--data-dir", s(&self.dir), "--json"]);
        serde_json::from_str(&stdout(&o)).unwrap()
    }
}

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

#[tokio::test]
async fn deconfliction_between_two_node_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let nl = Fed::new(tmp.path(), "NL");
    let de = Fed::new(tmp.path(), "DE");
    nl.pin(&de);
    de.pin(&nl);
    add_user(&nl.dir, "eva", "investigator");
    let de_inv = add_user(&de.dir, "dirk", "investigator");
    let nl_server = nl.start().await;
    let de_server = de.start().await;

    // DE's own case holds a C2 address and a wallet.
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/api/v1/cases", de_server.url))
        .bearer_auth(&de_inv)
        .json(&json!({"id": "DE-0042", "title": "Botnet", "concepts": ["illegal-access"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = http
        .post(format!("{}/api/v1/data", de_server.url))
        .bearer_auth(&de_inv)
        .json(&json!({"id": "de-1", "case_id": "DE-0042", "category": "case-information",
            "content": {"c2": "203.0.113.7", "wallet": "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let o = entente_ok(&[
        "psi",
        "rotate",
        "--data-dir",
        s(&de.dir),
        "--agreement",
        "mou-deconfliction-pilot",
        "--contact",
        "BKA desk",
        "--json",
    ]);
    let rotated: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(rotated["set_size"], 2, "{rotated}");
    assert!(
        eventually(Duration::from_secs(60), || {
            nl.status()["peer_keys"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k["peer"] == "DE" && k["received"] == k["total"]))
        })
        .await,
        "NL did not receive DE's key: {}",
        nl.status()
    );

    // NL opens its case and asks.
    let eva = add_user(&nl.dir, "eva2", "investigator");
    let r = http
        .post(format!("{}/api/v1/cases", nl_server.url))
        .bearer_auth(&eva)
        .json(&json!({"id": "LANTERN", "title": "Lantern", "concepts": ["illegal-access"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let file = tmp.path().join("selectors.txt");
    let query = |extra: &[&str]| {
        let mut args = vec![
            "psi",
            "query",
            "--case",
            "LANTERN",
            "--selectors",
            s(&file),
            "--user",
            "eva",
            "--data-dir",
            s(&nl.dir),
        ];
        args.extend_from_slice(extra);
        common::entente(&args)
    };
    // An unparseable line names its line and what was expected: exit 2, nothing sent.
    std::fs::write(&file, "203.0.113.7\nip:203.0.113.999\n").unwrap();
    let o = query(&["--to", "DE"]);
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    assert!(common::stderr(&o).contains("selectors.txt:2:"), "{}", common::stderr(&o));
    // No agreement provides for deconfliction with a party it does not name: denied, exit 3.
    std::fs::write(
        &file,
        "# C2\n203.0.113.7\n198.51.100.23\nbtc:bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq\n",
    )
    .unwrap();
    let o = query(&["--to", "GB"]);
    assert_eq!(o.status.code(), Some(3), "{}", common::stderr(&o));
    assert!(common::stderr(&o).contains("psi.no-agreement"), "{}", common::stderr(&o));
    let o = query(&["--to", "DE", "--json"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let sent: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!((sent[0]["selectors"].as_u64(), sent[0]["padded"].as_u64()), (Some(3), Some(64)));

    assert!(
        eventually(Duration::from_secs(60), || nl.status()["queries"][0]["status"] == "answered")
            .await,
        "NL's query was not answered: {}",
        nl.status()
    );
    let st = nl.status();
    let q = &st["queries"][0];
    assert_eq!(q["matched"], 2, "{st}");
    let labels: Vec<&Value> = q["matches"].as_array().unwrap().iter().collect();
    assert!(
        labels.iter().all(|m| m["labels"][0]["case_reference"] == "DE-0042"
            && m["labels"][0]["contact"] == "BKA desk"),
        "{st}"
    );
    // DE saw one query of 64 elements for case LANTERN.
    let de_st = de.status();
    assert_eq!(de_st["evaluations"][0]["elements"], 64, "{de_st}");
    assert_eq!(de_st["evaluations"][0]["case_ref"], "LANTERN");
    // The table.
    let o = entente_ok(&["psi", "status", "--data-dir", s(&nl.dir), "--user", "eva"]);
    let table = stdout(&o);
    assert!(table.contains("ip:203.0.113.7") && table.contains("ask BKA desk"), "{table}");
    // Over the API: the same status for NL's investigator.
    let r = http
        .get(format!("{}/api/v1/psi/status?case=LANTERN", nl_server.url))
        .bearer_auth(&eva)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["queries"][0]["matched"], 2, "{body}");
    drop(nl_server);
    drop(de_server);
}

/// A deconfliction arrangement NL–DE whose keys rotate every three seconds (a test fixture).
const FAST_ROTATION: &str = r#"
id = "psi-fast"
title = "Deconfliction arrangement NL-DE with a short key rotation (test fixture)"
kind = "mou"
parties = ["NL", "DE"]
in_force_from = "2026-01-01"
offences = "any"
categories = ["case-information"]
purposes = ["deconfliction"]
onward_transfer = "forbidden"
commercial_use_prohibited = true

[deconfliction]
parties = ["NL", "DE"]
purpose = "deconfliction"
selectors = ["ip"]
mode = "labelled"
max_selectors = 8
max_queries = 2
per = "P30D"
key_rotation = "PT3S"
email_plus_addressing = "keep"

[[legal_basis]]
citation = "Test fixture"
status = "U"
"#;

fn epochs_of<'a>(keys: &'a Value, agreement: &str) -> Vec<&'a Value> {
    keys.as_array()
        .map_or_else(Vec::new, |k| k.iter().filter(|k| k["agreement"] == agreement).collect())
}

/// A served node with a `[psi] contact` rotates its keys by itself on the agreements'
/// schedule: at once when it has no epoch, then every `key_rotation`. A partner pinned after
/// the rotation (`peer add` while DE serves) is sent the current epoch, and later rotations go
/// to it too. The server stops on SIGINT with the schedule running.
#[tokio::test]
async fn a_served_node_rotates_on_schedule() {
    let tmp = tempfile::tempdir().unwrap();
    let nl = Fed::new(tmp.path(), "NL");
    let de = Fed::new(tmp.path(), "DE");
    for n in [&nl, &de] {
        std::fs::create_dir_all(n.dir.join("agreements")).unwrap();
        std::fs::write(n.dir.join("agreements/psi-fast.toml"), FAST_ROTATION).unwrap();
    }
    let config = de.dir.join("entente.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[psi]\ncontact = \"BKA desk\"\ncheck_secs = 1\n");
    std::fs::write(&config, text).unwrap();
    nl.pin(&de);
    let nl_server = nl.start().await;
    let de_server = de.start().await;

    // DE rotates by itself, with nobody pinned to send it to.
    assert!(
        eventually(Duration::from_secs(60), || !epochs_of(&de.status()["keys"], "psi-fast")
            .is_empty())
        .await,
        "DE did not rotate: {}",
        de.status()
    );
    let first = epochs_of(&de.status()["keys"], "psi-fast")[0].clone();
    assert_eq!(first["set_size"], 0, "{first}");

    // NL is pinned at DE after that: DE sends it its current epoch.
    de.pin(&nl);
    let nl_epoch = || {
        nl.status()["peer_keys"].as_array().and_then(|k| {
            k.iter()
                .find(|k| {
                    k["peer"] == "DE" && k["agreement"] == "psi-fast" && k["received"] == k["total"]
                })
                .map(|k| k["epoch"].as_str().unwrap_or_default().to_owned())
        })
    };
    assert!(
        eventually(Duration::from_secs(60), || nl_epoch().is_some()).await,
        "NL did not receive DE's key: {}",
        nl.status()
    );
    let received = nl_epoch().unwrap_or_default();

    // Three seconds on, DE has rotated again (the old key destroyed) and NL gets the new key.
    assert!(
        eventually(Duration::from_secs(60), || {
            let st = de.status();
            let keys = epochs_of(&st["keys"], "psi-fast");
            keys.len() >= 2 && keys[0]["destroyed_at"].is_string()
        })
        .await,
        "DE did not rotate on schedule: {}",
        de.status()
    );
    assert!(
        eventually(Duration::from_secs(60), || nl_epoch().is_some_and(|e| e != received)).await,
        "NL did not receive DE's next key: {}",
        nl.status()
    );
    // The shipped memorandum names DE too: rotated on its own schedule, once so far.
    assert_eq!(epochs_of(&de.status()["keys"], "mou-deconfliction-pilot").len(), 1);

    // SIGINT stops the server, schedule and all, promptly.
    let mut de_server = de_server;
    let pid = de_server.child.0.as_ref().map(std::process::Child::id).unwrap();
    let killed = std::process::Command::new("kill").args(["-INT", &pid.to_string()]).status();
    assert!(killed.is_ok_and(|s| s.success()));
    let stopped =
        eventually(Duration::from_secs(20), || de_server.child.try_wait().is_some()).await;
    assert!(stopped, "DE did not stop on SIGINT");
    let status = de_server.child.try_wait();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    drop(nl_server);
}
