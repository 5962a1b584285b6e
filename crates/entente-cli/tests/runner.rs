//! The one integration-test binary of entente-cli: every file of `tests/` is a module of it
//! (one link instead of one per file), and `no_test_file_is_left_out` keeps it that way.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed step should stop the test loudly"
)]

mod common;

mod api;
mod cases;
mod cli;
mod crash;
mod data;
mod evidence;
mod evidence_s3;
mod federation;
mod framework;
mod gaps;
mod hostile;
mod incident;
mod intel;
mod lexicon;
mod maintenance;
mod pilot;
mod psi;
mod redress;
mod reports;
mod requests;
mod schemathesis;
mod tls;
mod transfer;
mod ui;

/// Every `tests/*.rs` file is a module of this binary: a file added without its `mod` line
/// would otherwise never run.
#[test]
fn no_test_file_is_left_out() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let runner = std::fs::read_to_string(dir.join("runner.rs")).unwrap();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let Some(module) = name.strip_suffix(".rs") else { continue };
        if module != "runner" && !runner.contains(&format!("\nmod {module};")) {
            missing.push(name.to_owned());
        }
    }
    assert!(missing.is_empty(), "tests/ files not declared in tests/runner.rs: {missing:?}");
}
