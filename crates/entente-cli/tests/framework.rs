//! `entente framework`: agreement files, through the real binary.

use crate::common::{entente, text};
use std::path::PathBuf;

fn shipped() -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/agreements");
    let mut files: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(d) => d
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .map(|p| p.display().to_string())
            .collect(),
        Err(e) => panic!("cannot list {}: {e}", dir.display()),
    };
    files.sort();
    files
}

#[test]
fn shipped_files_validate() {
    let files = shipped();
    assert_eq!(files.len(), 8, "{files:?}");
    let mut args = vec!["framework", "validate"];
    args.extend(files.iter().map(String::as_str));
    let out = entente(&args);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    for id in [
        "ets-185",
        "cets-224",
        "eu-2023-1543",
        "nl-us-mla",
        "jit-nl-de-template",
        "mou-deconfliction-pilot",
        "jit-lantern",
        "nis2-csirt-cooperation",
    ] {
        assert!(stdout.contains(&format!("ok {id}: ")), "{stdout}");
    }
    assert!(
        stdout.contains("ok eu-2023-1543: regulation; parties NL DE; in force from 2026-08-18"),
        "{stdout}"
    );
}

#[test]
fn list_shows_the_builtin_agreements() {
    let out = entente(&["framework", "list"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("eu-2023-1543") && stdout.contains("production, preservation"),
        "{stdout}"
    );
    assert!(stdout.contains("jit-nl-de-template"), "{stdout}");
}

#[test]
fn broken_file_is_exit_2_with_positions() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    };
    let path = dir.path().join("broken.toml");
    let body = r#"id = "broken"
title = "Broken"
kind = "treaty"
parties = ["NL", "UK"]
in_force_from = "2020-01-01"
in_force_until = "2019-01-01"
offences = ["ilegal-access"]
categories = ["subscriber"]
purposes = ["prosecution"]
onward_transfer = "forbidden"
commercial_use_prohibited = true

[retention]
subscriber = "10 days"

[[legal_basis]]
citation = "X"
status = "U"
"#;
    if let Err(e) = std::fs::write(&path, body) {
        panic!("write: {e}");
    }
    let p = path.display().to_string();
    let out = entente(&["framework", "validate", &p]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}{stderr}", text(&out.stdout));
    for expected in [
        format!("{p}:4:18: parties: found `UK`"),
        format!("{p}:6:18: in_force_until: found 2019-01-01, before in_force_from"),
        format!("{p}:7:13: offences: found `ilegal-access` (did you mean illegal-access?)"),
        format!("{p}:14:14: retention.subscriber: found `10 days`"),
    ] {
        assert!(stderr.contains(&expected), "missing `{expected}` in:\n{stderr}");
    }
    assert!(stderr.contains("the United Kingdom is GB"), "{stderr}");
    assert!(stderr.contains("4 problems in 1 agreement file"), "{stderr}");
}

#[test]
fn missing_file_is_exit_2_naming_it() {
    let out = entente(&["framework", "validate", "/nonexistent/agreement.toml"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/agreement.toml: cannot read the file"), "{stderr}");
}

/// `framework conclude`: the shipped JIT template becomes an agreement in force from its
/// signature, written once, validated; what is not a template, a bad day or an existing file
/// is exit 2 and writes nothing.
#[test]
fn conclude_makes_an_agreement_from_a_template() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("jit-kite.toml");
    let o = |args: &[&str]| {
        let mut all = vec!["framework", "conclude"];
        all.extend_from_slice(args);
        entente(&all)
    };
    let path = out.to_str().unwrap();
    let base = ["--id", "jit-kite", "--title", "JIT Kite", "--signed", "2026-10-05"];
    let mut args: Vec<&str> = vec!["jit-nl-de-template"];
    args.extend_from_slice(&base);
    args.extend_from_slice(&["--until", "2027-10-04", "--out", path]);
    let r = o(&args);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r.stderr));
    assert!(
        text(&r.stdout).contains("in force from 2026-10-05 until 2027-10-04"),
        "{}",
        text(&r.stdout)
    );
    let v = entente(&["framework", "validate", path]);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v.stdout));
    assert!(
        text(&v.stdout)
            .contains("ok jit-kite: jit; parties NL DE; in force 2026-10-05 to 2027-10-04"),
        "{}",
        text(&v.stdout)
    );
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(!written.contains("template = true"), "{written}");
    // Written once: a second time is refused and the file stays as it was.
    let r = o(&args);
    assert_eq!(r.status.code(), Some(2), "{}", text(&r.stderr));
    assert!(text(&r.stderr).contains("File exists"), "{}", text(&r.stderr));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), written);

    let other = tmp.path().join("x.toml");
    let other = other.to_str().unwrap();
    for (args, says) in [
        (vec!["ets-185", "--out", other], "not a template"),
        (vec!["no-such", "--out", other], "neither a shipped agreement"),
        (vec!["jit-nl-de-template", "--out", other, "--until", "2026-01-01"], "before --signed"),
    ] {
        let mut all = vec![args[0]];
        all.extend_from_slice(&base);
        all.extend_from_slice(&args[1..]);
        let r = o(&all);
        assert_eq!(r.status.code(), Some(2), "{}", text(&r.stderr));
        assert!(text(&r.stderr).contains(says), "{says}: {}", text(&r.stderr));
    }
    let r = o(&[
        "jit-nl-de-template",
        "--id",
        "jit-x",
        "--title",
        "t",
        "--signed",
        "5 Oct",
        "--out",
        other,
    ]);
    assert_eq!(r.status.code(), Some(2));
    assert!(
        text(&r.stderr).contains("--signed 5 Oct: expected a day as YYYY-MM-DD"),
        "{}",
        text(&r.stderr)
    );
    assert!(!std::path::Path::new(other).exists());
}
