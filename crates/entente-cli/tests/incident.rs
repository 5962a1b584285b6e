//! `entente incident assess`, through the real binary.

use crate::common::{entente, text};
use std::path::PathBuf;

fn example() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/incidents/examples/lantern-hospital.toml")
        .display()
        .to_string()
}

#[test]
fn lantern_is_assessed() {
    let out = entente(&["incident", "assess", &example()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    let row = |regime: &str, report: &str, utc: &str| {
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with(regime) && l.contains(report) && l.contains(utc))
    };
    assert!(row("nis2", "Early warning", "2026-03-29T05:15:00Z"), "{stdout}");
    assert!(row("nis2", "Incident notification", "2026-03-31T05:15:00Z"), "{stdout}");
    assert!(row("gdpr", "supervisory authority", "2026-03-31T05:15:00Z"), "{stdout}");
    assert!(stdout.contains("2026-03-29 07:15 CEST"), "{stdout}");
    let json = entente(&["incident", "assess", &example(), "--json"]);
    assert_eq!(json.status.code(), Some(0));
    assert!(text(&json.stdout).contains("\"timeline\""));
}

#[test]
fn broken_file_exits_2_with_position() {
    let dir = std::env::temp_dir().join(format!("entente-incident-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("{e}");
    }
    let file = dir.join("bad.toml");
    let body = "id = \"bad\"\njurisdictions = [\"NL\"]\noccurred_at = \"2026-03-28T06:15:00+01:00\"\naware_at = \"2026-03-27T21:40:00+01:00\"\ntime_zone = \"Europe/Amsterdam\"\n";
    if let Err(e) = std::fs::write(&file, body) {
        panic!("{e}");
    }
    let name = file.display().to_string();
    let out = entente(&["incident", "assess", &name]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("{name}:4:12: aware_at:")), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
