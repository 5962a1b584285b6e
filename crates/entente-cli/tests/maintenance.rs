//! Running a node for years: a data directory that can be moved, online backups, verified
//! restores that leave nothing half-done, the sweep of crash leftovers, and `entente status`.

use crate::common::{Server, add_user, entente, entente_ok, init_node, s, stderr, stdout};
use std::path::Path;
use std::time::Duration;

fn json_of(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", stdout(o), stderr(o)))
}

fn users(dir: &Path) -> String {
    stdout(&entente_ok(&["user", "list", "--data-dir", s(dir)]))
}

/// Leftover entries beside `target` (staging directories of a backup or restore).
fn staging_beside(target: &Path) -> Vec<String> {
    let parent = target.parent().unwrap();
    let name = target.file_name().unwrap().to_str().unwrap();
    std::fs::read_dir(parent)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&format!(".{name}.")))
        .collect()
}

#[test]
fn a_copied_data_directory_uses_its_own_database() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    init_node(&a, "NL");
    let toml = std::fs::read_to_string(a.join("entente.toml")).unwrap();
    assert!(toml.contains("database_url = \"sqlite://entente.sqlite\""), "{toml}");
    let b = tmp.path().join("b");
    let cp = std::process::Command::new("cp").args(["-a", s(&a), s(&b)]).status().unwrap();
    assert!(cp.success());
    add_user(&b, "only-in-b", "investigator");
    assert!(users(&b).contains("only-in-b"));
    assert!(!users(&a).contains("only-in-b"), "the copy wrote to the original's database");
    let status = json_of(&entente_ok(&["status", "--data-dir", s(&b), "--json"]));
    let url = status["database"]["url"].as_str().unwrap();
    assert!(url.contains(s(&b)) && !url.contains(&format!("{}/", s(&a))), "{url}");
    entente_ok(&["ledger", "verify", "--data-dir", s(&b)]);

    // A configuration written by earlier versions (an absolute path) keeps working.
    let abs = std::path::absolute(&a).unwrap();
    let old = toml.replace(
        "sqlite://entente.sqlite",
        &format!("sqlite://{}/entente.sqlite?mode=rwc", abs.display()),
    );
    std::fs::write(a.join("entente.toml"), old).unwrap();
    add_user(&a, "only-in-a", "auditor");
    assert!(users(&a).contains("only-in-a"));
    assert!(!users(&b).contains("only-in-a"));
}

async fn open_case(server: &Server, token: &str, id: &str) {
    let r = server
        .post("/api/v1/cases", token, serde_json::json!({"id": id, "title": "t", "concepts": []}))
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
}

async fn upload(server: &Server, token: &str, case: &str, id: &str, body: Vec<u8>) -> String {
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/cases/{case}/evidence?description=x&id={id}", server.url))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().await.unwrap();
    v["sha256"].as_str().unwrap().to_owned()
}

/// Files of a directory tree, relative, with their contents' digests.
fn tree(dir: &Path) -> std::collections::BTreeMap<String, String> {
    use sha2::Digest as _;
    fn walk(root: &Path, p: &Path, out: &mut std::collections::BTreeMap<String, String>) {
        for e in std::fs::read_dir(p).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
                out.insert(rel, hex::encode(sha2::Sha256::digest(std::fs::read(&p).unwrap())));
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    if dir.is_dir() {
        walk(dir, dir, &mut out);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_serving_then_restore_elsewhere() {
    let tmp = tempfile::tempdir().unwrap();
    let nl = tmp.path().join("nl");
    init_node(&nl, "NL");
    let eva = add_user(&nl, "eva", "investigator");
    let server = Server::start(&nl, Duration::from_secs(20)).await;
    open_case(&server, &eva, "C-BK").await;
    let sha = upload(&server, &eva, "C-BK", "EV-BK", vec![7u8; 300_000]).await;

    // Writes keep landing while the backup runs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (url, token, stop) = (server.url.clone(), eva.clone(), stop.clone());
        tokio::spawn(async move {
            let c = reqwest::Client::new();
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 5_000 {
                let r = c
                    .post(format!("{url}/api/v1/cases"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"id": format!("W{n}"), "title": "t", "concepts": []}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                n += 1;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let bk = tmp.path().join("backups").join("nl-1");
    std::fs::create_dir_all(bk.parent().unwrap()).unwrap();
    let nl2 = nl.clone();
    let bk2 = bk.clone();
    let o = tokio::task::spawn_blocking(move || {
        entente(&["backup", "--data-dir", s(&nl2), "--to", s(&bk2)])
    })
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert!(o.status.success(), "backup failed:\n{}\n{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("recorded        ledger entry"), "{out}");
    assert!(out.contains("protect"), "{out}");
    assert!(staging_beside(&bk).is_empty());

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bk.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], "entente-backup/1");
    assert_eq!(manifest["node"]["party"], "NL");
    assert!(manifest["key_protection"].as_str().unwrap().contains("Protect the backup"));
    let files: Vec<&str> =
        manifest["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    for needed in
        ["entente.toml", "entente.sqlite", "node.key.pem", "node.cert.pem", "node.age.key"]
    {
        assert!(files.contains(&needed), "{needed} missing from {files:?}");
    }
    assert!(files.iter().any(|f| f.starts_with("blobs/") && f.contains(&sha)), "{files:?}");
    assert!(!files.iter().any(|f| f.starts_with("blobs/tmp") || *f == "node.lock"), "{files:?}");
    let config = std::fs::read_to_string(bk.join("entente.toml")).unwrap();
    assert!(!config.contains(s(tmp.path())), "an absolute path in the backup's config:\n{config}");
    let size = manifest["ledger"]["size"].as_u64().unwrap();

    // The live node recorded the backup.
    drop(server);
    let status = json_of(&entente_ok(&["status", "--data-dir", s(&nl), "--json"]));
    let last = &status["last_backup"];
    assert_eq!(last["detail"]["ledger_size"], size, "{status}");
    use sha2::Digest as _;
    let digest =
        hex::encode(sha2::Sha256::digest(std::fs::read(bk.join("manifest.json")).unwrap()));
    assert_eq!(last["detail"]["manifest_sha256"], digest.as_str());

    // Restored on another path: the ledger verifies at the backup's size and root.
    let restored = tmp.path().join("elsewhere").join("nl");
    std::fs::create_dir_all(restored.parent().unwrap()).unwrap();
    let o = entente_ok(&["restore", "--from", s(&bk), "--data-dir", s(&restored)]);
    assert!(stdout(&o).contains("ledger sound"), "{}", stdout(&o));
    let v = stdout(&entente_ok(&["ledger", "verify", "--data-dir", s(&restored)]));
    assert!(v.contains(&format!("{size} entries")), "{v}");
    assert!(v.contains(manifest["ledger"]["root"].as_str().unwrap()), "{v}");
    assert!(users(&restored).contains("eva"));
    assert!(!restored.join("node.lock").exists() || restored.join("entente.toml").exists());
    // The blobs are those of the original.
    let (orig, back) = (tree(&nl.join("blobs")), tree(&restored.join("blobs")));
    for (f, d) in &back {
        assert_eq!(orig.get(f), Some(d), "{f}");
    }
    assert!(back.keys().any(|f| f.contains(&sha)));
    // It serves, and its own writes go to its own database.
    let server = Server::start(&restored, Duration::from_secs(20)).await;
    open_case(&server, &eva, "C-AFTER").await;
    drop(server);
    assert!(written > 0);
    let cases_at = |d: &Path| entente_ok(&["ledger", "verify", "--data-dir", s(d)]);
    assert!(stdout(&cases_at(&restored)).contains("sound"));
    assert!(stdout(&cases_at(&nl)).contains("sound"));
}

#[test]
fn restore_refuses_bad_input_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let nl = tmp.path().join("nl");
    init_node(&nl, "NL");
    add_user(&nl, "eva", "investigator");
    let bk = tmp.path().join("bk");
    entente_ok(&["backup", "--data-dir", s(&nl), "--to", s(&bk)]);

    let code_and_err = |o: &std::process::Output| (o.status.code(), stderr(o));
    // A backup over a non-empty directory, or into the data directory.
    let o = entente(&["backup", "--data-dir", s(&nl), "--to", s(&bk)]);
    let (code, err) = code_and_err(&o);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not empty") && err.contains(s(&bk)), "{err}");
    let o = entente(&["backup", "--data-dir", s(&nl), "--to", s(&nl.join("inside"))]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    // A restore over an existing node.
    let o = entente(&["restore", "--from", s(&bk), "--data-dir", s(&nl)]);
    let (code, err) = code_and_err(&o);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not empty") && err.contains(s(&nl)), "{err}");

    let copy = |name: &str| {
        let d = tmp.path().join(name);
        assert!(
            std::process::Command::new("cp")
                .args(["-a", s(&bk), s(&d)])
                .status()
                .unwrap()
                .success()
        );
        d
    };
    let target = tmp.path().join("new");
    let refused = |from: &Path, code: i32, needle: &str| {
        let o = entente(&["restore", "--from", s(from), "--data-dir", s(&target)]);
        let (c, err) = code_and_err(&o);
        assert_eq!(c, Some(code), "{err}");
        assert!(err.contains(needle), "expected `{needle}` in: {err}");
        assert!(!target.exists(), "a refused restore left {}", target.display());
        assert!(staging_beside(&target).is_empty(), "{:?}", staging_beside(&target));
    };
    // A missing file, named.
    let missing = copy("missing");
    std::fs::remove_file(missing.join("node.age.key")).unwrap();
    refused(&missing, 2, s(&missing.join("node.age.key")));
    // A changed file, named.
    let changed = copy("changed");
    let db = changed.join("entente.sqlite");
    let mut bytes = std::fs::read(&db).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&db, bytes).unwrap();
    refused(&changed, 2, &format!("{} does not match the manifest", s(&db)));
    // A manifest of another format.
    let other = copy("other");
    let m = std::fs::read_to_string(other.join("manifest.json")).unwrap();
    std::fs::write(other.join("manifest.json"), m.replace("entente-backup/1", "entente-backup/9"))
        .unwrap();
    refused(&other, 2, "format `entente-backup/9`");
    // Not a backup at all.
    refused(&tmp.path().join("nothing"), 2, "manifest.json");
    // A manifest whose ledger root is not the snapshot's: found by the verification, after
    // the copy, and nothing is left.
    let root = copy("root");
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("manifest.json")).unwrap())
            .unwrap();
    let r = m["ledger"]["root"].as_str().unwrap();
    let fake = if r.starts_with('A') { r.replacen('A', "B", 1) } else { format!("A{}", &r[1..]) };
    let text = std::fs::read_to_string(root.join("manifest.json")).unwrap().replace(r, &fake);
    std::fs::write(root.join("manifest.json"), text).unwrap();
    refused(&root, 1, "the manifest's is");

    // The good backup restores into an empty directory that already exists.
    std::fs::create_dir(&target).unwrap();
    entente_ok(&["restore", "--from", s(&bk), "--data-dir", s(&target)]);
    assert!(users(&target).contains("eva"));
}

/// Sets a file's modification time `secs` seconds in the past.
fn age_file(p: &Path, secs: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(secs)).unwrap();
}

#[test]
fn sweep_removes_old_leftovers_only_and_records_it() {
    let tmp = tempfile::tempdir().unwrap();
    let nl = tmp.path().join("nl");
    init_node(&nl, "NL");
    let blobs = nl.join("blobs");
    std::fs::create_dir_all(blobs.join("tmp")).unwrap();
    std::fs::create_dir_all(blobs.join("ab")).unwrap();
    let old_part = blobs.join("tmp/0123456789abcdef01234567.part");
    let new_part = blobs.join("tmp/fedcba9876543210fedcba98.part");
    let orphan = blobs.join(format!("ab/ab{}.0011223344556677.age", "0".repeat(62)));
    let other = blobs.join("ab/README");
    std::fs::write(&old_part, vec![1u8; 1000]).unwrap();
    std::fs::write(&new_part, vec![2u8; 10]).unwrap();
    std::fs::write(&orphan, vec![3u8; 500]).unwrap();
    std::fs::write(&other, b"not a blob").unwrap();
    age_file(&old_part, 7200);
    age_file(&orphan, 7200);

    // The default grace (an hour) keeps the new part.
    let o = entente_ok(&["maintenance", "sweep", "--data-dir", s(&nl), "--json"]);
    let r = json_of(&o);
    assert_eq!((r["parts"].as_u64(), r["part_bytes"].as_u64()), (Some(1), Some(1000)), "{r}");
    assert_eq!((r["orphans"].as_u64(), r["orphan_bytes"].as_u64()), (Some(1), Some(500)), "{r}");
    assert_eq!(r["kept"], 1, "{r}");
    let index = r["ledger_index"].as_u64().unwrap();
    assert!(!old_part.exists() && !orphan.exists());
    assert!(new_part.exists() && other.exists());

    let status = json_of(&entente_ok(&["status", "--data-dir", s(&nl), "--json"]));
    assert_eq!(status["last_sweep"]["ledger_index"], index);
    assert_eq!(status["last_sweep"]["detail"]["orphan_bytes"], 500);

    // Nothing old left: nothing removed, nothing recorded.
    let r = json_of(&entente_ok(&["maintenance", "sweep", "--data-dir", s(&nl), "--json"]));
    assert!(r["ledger_index"].is_null(), "{r}");
    let o = entente_ok(&["maintenance", "sweep", "--data-dir", s(&nl), "--grace", "0"]);
    assert!(stdout(&o).contains("swept 1 temporary parts (10 bytes)"), "{}", stdout(&o));
    assert!(!new_part.exists() && other.exists());
    entente_ok(&["ledger", "verify", "--data-dir", s(&nl)]);
}

/// `status --json` with what changes from run to run replaced.
fn redacted(mut v: serde_json::Value) -> String {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    let volatile = matches!(
                        k.as_str(),
                        "at" | "version"
                            | "url"
                            | "checkpoint_root"
                            | "ledger_root"
                            | "manifest_sha256"
                            | "bytes"
                    );
                    if volatile && !x.is_null() {
                        *x = serde_json::Value::String(format!("[{k}]"));
                    } else {
                        walk(x);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    serde_json::to_string_pretty(&v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let nl = tmp.path().join("nl");
    init_node(&nl, "NL");
    add_user(&nl, "eva", "investigator");
    let fresh = json_of(&entente_ok(&["status", "--data-dir", s(&nl), "--json"]));
    insta::assert_snapshot!("status_fresh", redacted(fresh));
    entente_ok(&["backup", "--data-dir", s(&nl), "--to", s(&tmp.path().join("bk"))]);
    std::fs::create_dir_all(nl.join("blobs/tmp")).unwrap();
    std::fs::write(nl.join("blobs/tmp/00ff00ff00ff00ff00ff00ff.part"), b"x").unwrap();
    entente_ok(&["maintenance", "sweep", "--data-dir", s(&nl), "--grace", "0"]);
    let after = json_of(&entente_ok(&["status", "--data-dir", s(&nl), "--json"]));
    insta::assert_snapshot!("status_after_backup_and_sweep", redacted(after));

    let text = stdout(&entente_ok(&["status", "--data-dir", s(&nl)]));
    for row in [
        "node",
        "database",
        "blob store",
        "last checkpoint",
        "last backup",
        "last sweep",
        "last scrub",
    ] {
        assert!(text.lines().any(|l| l.starts_with(row)), "no `{row}` row in:\n{text}");
    }

    let server = Server::start(&nl, Duration::from_secs(20)).await;
    let m = reqwest::get(format!("{}/metrics", server.url)).await.unwrap().text().await.unwrap();
    for name in [
        "entente_info{",
        "entente_ledger_checkpoint_size ",
        "entente_fetches_in_flight 0",
        "entente_last_backup_timestamp_seconds ",
        "entente_last_sweep_timestamp_seconds ",
        "entente_last_scrub_timestamp_seconds 0",
        "entente_last_scrub_damaged_blobs 0",
        "# TYPE entente_outbox_pending gauge",
        "# TYPE entente_witness_cosigned_size gauge",
    ] {
        assert!(m.contains(name), "no {name} in /metrics:\n{m}");
    }
    let backup_at = m
        .lines()
        .find_map(|l| l.strip_prefix("entente_last_backup_timestamp_seconds "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap();
    assert!(backup_at > 1.0e9, "{m}");
}

/// The one `*.age` blob under `dir/blobs/<xx>/`.
fn only_blob(dir: &Path) -> std::path::PathBuf {
    let mut found = Vec::new();
    for d in std::fs::read_dir(dir.join("blobs")).unwrap() {
        let d = d.unwrap().path();
        if d.is_dir() && d.file_name().unwrap().len() == 2 {
            for f in std::fs::read_dir(&d).unwrap() {
                found.push(f.unwrap().path());
            }
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrub_names_damaged_blobs_and_verify_state_names_altered_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let nl = tmp.path().join("nl");
    init_node(&nl, "NL");
    let eva = add_user(&nl, "eva", "investigator");
    {
        let server = Server::start(&nl, Duration::from_secs(20)).await;
        open_case(&server, &eva, "C-1").await;
    }
    let file = tmp.path().join("a.log");
    std::fs::write(&file, "203.0.113.77 POST /upload\n".repeat(1000)).unwrap();
    entente_ok(&[
        "evidence",
        "add",
        s(&file),
        "--data-dir",
        s(&nl),
        "--user",
        "eva",
        "--case",
        "C-1",
        "--description",
        "logs",
        "--id",
        "EV-1",
    ]);

    // Sound: the scrub reads the blob, the state agrees with the ledger.
    let o = entente_ok(&["maintenance", "scrub", "--data-dir", s(&nl), "--rate-mib", "0"]);
    assert!(
        stdout(&o).contains("scrubbed 1 evidence blobs (26000 bytes): 0 damaged"),
        "{}",
        stdout(&o)
    );
    let o = entente_ok(&["ledger", "verify", "--data-dir", s(&nl), "--state"]);
    assert!(stdout(&o).contains("state of NL agrees with its ledger"), "{}", stdout(&o));
    assert!(stdout(&o).lines().any(|l| l.starts_with("evidence_custody")), "{}", stdout(&o));

    // One bit of the blob flipped: named with its item, exit 1, recorded for `status`.
    let blob = only_blob(&nl);
    let mut bytes = std::fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    let o = entente(&["maintenance", "scrub", "--data-dir", s(&nl), "--rate-mib", "0"]);
    assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("(items EV-1): does not decrypt"), "{}", stdout(&o));
    let st = json_of(&entente_ok(&["status", "--data-dir", s(&nl), "--json"]));
    assert_eq!(st["last_scrub"]["detail"]["damaged"], 1, "{st}");
    assert_eq!(st["last_scrub"]["detail"]["blobs"], 1, "{st}");

    // A role raised in the database behind the gate: the state check names the row.
    let url = format!("sqlite://{}", nl.join("entente.sqlite").display());
    entente_test_support::danger::admin_execute(
        &url,
        "UPDATE users SET role = 'admin' WHERE name = 'eva'",
    )
    .await
    .unwrap();
    entente_ok(&["ledger", "verify", "--data-dir", s(&nl)]);
    let o = entente(&["ledger", "verify", "--data-dir", s(&nl), "--state"]);
    assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("differs: users name=eva (ledger entry"), "{}", stdout(&o));
    assert!(stderr(&o).contains("does NOT agree with its ledger: 1 difference"), "{}", stderr(&o));
}

/// A damaged hold file keeps the ledger on hold (the node still opens, `status` says why)
/// and `ledger release` still ends it.
#[test]
fn a_damaged_hold_file_still_holds_and_can_be_released() {
    let tmp = tempfile::tempdir().unwrap();
    let nl = tmp.path().join("nl");
    init_node(&nl, "NL");
    std::fs::write(nl.join("ledger-hold.json"), b"{ not json").unwrap();
    let st = json_of(&entente_ok(&["status", "--data-dir", s(&nl), "--json"]));
    assert!(st["hold"]["reason"].as_str().unwrap().contains("not a ledger hold"), "{st}");
    let o = crate::common::entente(&[
        "user",
        "add",
        "--data-dir",
        s(&nl),
        "--name",
        "eva",
        "--role",
        "auditor",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("on hold"), "{}", stderr(&o));
    entente_ok(&[
        "ledger",
        "release",
        "--data-dir",
        s(&nl),
        "--reason",
        "the hold file was damaged",
    ]);
    assert!(!nl.join("ledger-hold.json").exists());
    add_user(&nl, "eva", "auditor");
    entente_ok(&["ledger", "verify", "--data-dir", s(&nl), "--state"]);
}
