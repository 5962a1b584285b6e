//! The `entente` command on bad input: each mistake gives a clear error on stderr that names
//! the thing at fault, exits non-zero (2 for bad input), and changes nothing on disk.

use crate::common::{add_user, entente, entente_in, init_node, s, stderr, stdout};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

/// Every file under `dir` except the SQLite files (relative path → bytes); directories map
/// to empty contents. A read-only command may still fold SQLite's write-ahead log into the
/// database file, so the database is compared by what it holds ([`ledger_state`]) instead.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut all = snapshot_exact(dir);
    all.retain(|k, _| !k.starts_with("entente.sqlite"));
    all
}

/// What the node's database holds, as `ledger verify` and `user list` show it.
fn ledger_state(dir: &Path) -> String {
    let v = entente(&["ledger", "verify", "--data-dir", s(dir)]);
    assert!(v.status.success(), "{}", stderr(&v));
    let u = entente(&["user", "list", "--data-dir", s(dir)]);
    assert!(u.status.success(), "{}", stderr(&u));
    format!("{}{}", stdout(&v), stdout(&u))
}

/// Every file under `dir`, the SQLite files included (relative path → bytes).
fn snapshot_exact(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(std::fs::DirEntry::path);
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                walk(root, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Asserts the two snapshots are equal, naming the files that differ.
fn assert_unchanged(before: &BTreeMap<String, Vec<u8>>, after: &BTreeMap<String, Vec<u8>>) {
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(before), names(after), "the set of files changed");
    for (k, v) in before {
        assert!(after[k] == *v, "{k} changed");
    }
}

/// Asserts `o` exited with `code` and an `error: …` line on stderr containing every one of
/// `needles`; returns stderr.
fn assert_fails(o: &Output, code: i32, needles: &[&str]) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stdout:\n{}\nstderr:\n{err}", stdout(o));
    assert!(err.starts_with("error: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
    err
}

/// Replaces the temporary directory in `text` by `[TMP]`.
fn redact(text: &str, tmp: &Path) -> String {
    text.replace(s(tmp), "[TMP]")
}

#[test]
fn second_init_refuses_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nl");
    let node = init_node(&dir, "NL");
    let (before, state) = (snapshot(&dir), ledger_state(&dir));
    let o = entente(&["init", "--data-dir", s(&dir), "--party", "DE", "--name", "Other"]);
    let err = assert_fails(&o, 2, &[s(&dir), "already holds an Entente node"]);
    assert_unchanged(&before, &snapshot(&dir));
    assert_eq!(state, ledger_state(&dir));
    insta::assert_snapshot!(redact(&err, tmp.path()), @"error: [TMP]/nl already holds an Entente node (entente.toml exists); choose another --data-dir, or remove the directory to start over");
    // The node still works with the key it was made with.
    let o = entente(&["ledger", "verify", "--data-dir", s(&dir)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(node.verifier_key.starts_with("entente/NL/"), "{}", node.verifier_key);
}

#[test]
fn init_output() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nl");
    let o = entente(&["init", "--data-dir", s(&dir), "--party", "NL", "--name", "Team"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let key = out.lines().find_map(|l| l.strip_prefix("  verifier key")).unwrap().trim();
    let origin = key.split('+').next().unwrap();
    let witness = out.lines().find_map(|l| l.strip_prefix("  witness key")).unwrap().trim();
    assert!(witness.starts_with("entente-witness/NL+"), "{witness}");
    let text = redact(&out, tmp.path())
        .replace(key, "[KEY]")
        .replace(origin, "[ORIGIN]")
        .replace(witness, "[WITNESS KEY]");
    insta::assert_snapshot!(text, @r"
    created node NL (Team) in [TMP]/nl
      ledger origin   [ORIGIN]
      verifier key    [KEY]
      witness key     [WITNESS KEY]
      storage         sqlite://[TMP]/nl/entente.sqlite?mode=rwc
    next: entente user add --data-dir [TMP]/nl --name NAME --role admin
    ");
}

#[test]
fn unknown_party_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("xx");
    let o = entente(&["init", "--data-dir", s(&dir), "--party", "XX", "--name", "X"]);
    assert_fails(&o, 2, &["unknown party code `XX`"]);
    assert!(!dir.exists(), "a refused init created {}", dir.display());

    let o = entente(&["init", "--data-dir", s(&dir), "--party", "UK", "--name", "X"]);
    let err = assert_fails(&o, 2, &["unknown party code `UK`", "GB"]);
    assert!(!dir.exists(), "a refused init created {}", dir.display());
    insta::assert_snapshot!(err.trim_end(), @"error: unknown party code `UK`: expected an ISO 3166-1 alpha-2 country code such as NL, DE or US (or EU); the United Kingdom is GB");
}

#[test]
fn missing_data_dir_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nowhere");
    for args in [
        vec!["ledger", "verify", "--data-dir", s(&dir)],
        vec!["ledger", "prove", "--data-dir", s(&dir), "--index", "0"],
        vec!["user", "list", "--data-dir", s(&dir)],
    ] {
        let o = entente(&args);
        assert_fails(&o, 2, &[s(&dir), "does not exist"]);
        assert!(!dir.exists(), "`entente {args:?}` created {}", dir.display());
    }
}

#[test]
fn malformed_config_is_located() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nl");
    init_node(&dir, "NL");
    let state = ledger_state(&dir);
    let config = dir.join("entente.toml");
    let good = std::fs::read_to_string(&config).unwrap();
    let cases: [(&str, String, &[&str]); 4] = [
        ("garbage", "this is not toml !!!\n".to_owned(), &["entente.toml:1:"]),
        ("unknown key", format!("{good}colour = \"blue\"\n"), &["entente.toml:7:1:", "colour"]),
        (
            "bad party",
            good.replace("party = \"NL\"", "party = \"XX\""),
            &["entente.toml:1:9:", "unknown party code `XX`"],
        ),
        (
            "bad listen",
            good.replace("listen = \"127.0.0.1:7400\"", "listen = \"localhost\""),
            &["entente.toml:5:10:", "listen"],
        ),
    ];
    for (what, text, needles) in cases {
        std::fs::write(&config, &text).unwrap();
        let before = snapshot(&dir);
        for args in [
            vec!["ledger", "verify", "--data-dir", s(&dir)],
            vec!["user", "add", "--data-dir", s(&dir), "--name", "eva", "--role", "admin"],
        ] {
            let o = entente(&args);
            let err = assert_fails(&o, 2, needles);
            assert!(err.contains(s(&config)), "{what}: the file is not named:\n{err}");
            assert_unchanged(&before, &snapshot(&dir));
        }
    }
    std::fs::write(&config, &good).unwrap();
    assert_eq!(state, ledger_state(&dir));
}

#[test]
fn truncated_key_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nl");
    init_node(&dir, "NL");
    let state = ledger_state(&dir);
    let key = dir.join("node.key.pem");
    let pem = std::fs::read(&key).unwrap();
    std::fs::write(&key, &pem[..pem.len() / 2]).unwrap();
    let before = snapshot(&dir);
    let o = entente(&["ledger", "verify", "--data-dir", s(&dir)]);
    assert_fails(&o, 2, &["node.key.pem", "unusable"]);
    assert_unchanged(&before, &snapshot(&dir));

    std::fs::remove_file(&key).unwrap();
    let o = entente(&["ledger", "verify", "--data-dir", s(&dir)]);
    assert_fails(&o, 2, &["node.key.pem"]);

    std::fs::write(&key, &pem).unwrap();
    assert_eq!(state, ledger_state(&dir));
}

#[test]
fn corrupted_database_is_reported_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nl");
    init_node(&dir, "NL");
    let db = dir.join("entente.sqlite");
    for name in ["entente.sqlite-wal", "entente.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    // Deterministic noise (xorshift), never a valid SQLite header.
    let mut x: u64 = 0x1234_5678_9ABC_DEF1;
    let noise: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[3]
        })
        .collect();
    std::fs::write(&db, &noise).unwrap();
    let before = snapshot_exact(&dir);
    let started = std::time::Instant::now();
    for args in [
        vec!["ledger", "verify", "--data-dir", s(&dir)],
        vec!["user", "add", "--data-dir", s(&dir), "--name", "eva", "--role", "admin"],
    ] {
        let o = entente(&args);
        let code = o.status.code();
        assert!(code.is_some_and(|c| c != 0), "exit {code:?}");
        let err = stderr(&o);
        assert!(err.starts_with("error: "), "{err}");
        assert!(err.contains("unreadable or corrupted"), "{err}");
        assert!(err.contains(s(&db)), "the file is not named:\n{err}");
        assert_unchanged(&before, &snapshot_exact(&dir));
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "reporting a corrupted database took {:?}",
        started.elapsed()
    );

    // A database cut short is reported the same way.
    let tmp2 = tempfile::tempdir().unwrap();
    let dir2 = tmp2.path().join("de");
    init_node(&dir2, "DE");
    add_user(&dir2, "eva", "admin");
    let o = entente(&["ledger", "verify", "--data-dir", s(&dir2)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let db2 = dir2.join("entente.sqlite");
    let len = std::fs::metadata(&db2).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&db2).unwrap();
    f.set_len(len / 3).unwrap();
    drop(f);
    let o = entente(&["ledger", "verify", "--data-dir", s(&dir2)]);
    assert!(o.status.code().is_some_and(|c| c != 0), "{}", stdout(&o));
    assert!(stderr(&o).contains("unreadable or corrupted"), "{}", stderr(&o));
}

#[test]
fn unknown_role_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nl");
    init_node(&dir, "NL");
    let (before, state) = (snapshot(&dir), ledger_state(&dir));
    let o = entente(&["user", "add", "--data-dir", s(&dir), "--name", "eva", "--role", "wizard"]);
    let err = assert_fails(&o, 2, &["unknown role `wizard`"]);
    assert_unchanged(&before, &snapshot(&dir));
    assert_eq!(state, ledger_state(&dir));
    insta::assert_snapshot!(err.trim_end(), @"error: unknown role `wizard`: expected one of admin, investigator, central-authority, csirt, dpo, auditor, filter-team");
    let o = entente(&["user", "list", "--data-dir", s(&dir)]);
    assert_eq!(stdout(&o).lines().count(), 1, "{}", stdout(&o));
}

#[test]
fn ledger_prove_and_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nl");
    let node = init_node(&dir, "NL");
    add_user(&dir, "eva", "investigator");

    let (before, state) = (snapshot(&dir), ledger_state(&dir));
    let o = entente(&["ledger", "prove", "--data-dir", s(&dir), "--index", "999"]);
    let err = assert_fails(&o, 2, &["--index 999", "out of range"]);
    assert_unchanged(&before, &snapshot(&dir));
    assert_eq!(state, ledger_state(&dir));
    insta::assert_snapshot!(err.trim_end(), @"error: --index 999 is out of range: the ledger has 2 entries (0..1)");

    let o = entente(&["ledger", "prove", "--data-dir", s(&dir), "--index", "0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let proof: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(proof["index"], 0);
    assert_eq!(proof["tree_size"], 2);
    assert_eq!(proof["proof"].as_array().map(Vec::len), Some(1), "{proof:#}");
    assert_eq!(proof["verifier_key"], node.verifier_key.as_str());
    let entry: serde_json::Value = serde_json::from_str(proof["entry"].as_str().unwrap()).unwrap();
    assert_eq!(entry["action"], "node.init");
    assert!(proof["checkpoint"].as_str().unwrap().starts_with("entente/NL/"), "{proof:#}");

    let o = entente(&["ledger", "verify", "--data-dir", s(&dir)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("ledger of NL is sound: 2 entries, 2 checkpoints verified, root "));
}

#[test]
fn relative_data_dir_works_from_another_directory() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("a")).unwrap();
    std::fs::create_dir(tmp.path().join("b")).unwrap();
    let o = entente_in(
        Some(&tmp.path().join("a")),
        &["init", "--data-dir", "nl", "--party", "NL", "--name", "X"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = entente_in(Some(&tmp.path().join("b")), &["ledger", "verify", "--data-dir", "../a/nl"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("sound: 1 entries"), "{}", stdout(&o));
    let listing: Vec<_> = std::fs::read_dir(tmp.path().join("b")).unwrap().collect();
    assert!(listing.is_empty(), "a command created files in its working directory");
}

/// A closed standard output ends the command quietly (141, as SIGPIPE ends C tools), not with
/// a panic (101): `entente init … | head -0`. The node it made is whole.
#[test]
fn a_closed_standard_output_is_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nl");
    let mut child = std::process::Command::new(crate::common::BIN)
        .args(["init", "--party", "NL", "--name", "Test", "--data-dir", s(&dir)])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the first line is written.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(141), "{err}");
    let v = entente(&["ledger", "verify", "--data-dir", s(&dir)]);
    assert!(v.status.success(), "{}", stderr(&v));
}
