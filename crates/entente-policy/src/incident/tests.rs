#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed step should stop the test loudly"
)]

use super::*;

const LANTERN: &str = include_str!("../../../../data/incidents/examples/lantern-hospital.toml");

fn lantern() -> Assessment {
    let facts = parse_facts("lantern-hospital.toml", LANTERN).unwrap();
    assess(&facts, &builtin_regimes().unwrap())
}

fn due(a: &Assessment, regime: &str, report: &str) -> (String, String) {
    let o = a
        .obligations
        .iter()
        .find(|o| o.regime == regime && o.report == report)
        .unwrap_or_else(|| panic!("no {regime}/{report} in {:#?}", a.obligations));
    match &o.due {
        Due::At { utc, local, .. } => {
            (utc.to_string(), local.strftime("%Y-%m-%d %H:%M %Z").to_string())
        }
        other => panic!("{regime}/{report} not dated: {other:?}"),
    }
}

#[test]
fn shipped_regimes_parse() {
    let all = builtin_regimes().unwrap();
    assert_eq!(all.len(), builtin_files().len());
    let circia = all.iter().find(|r| r.id == "circia").unwrap();
    assert_eq!(circia.stage, Stage::Proposed);
}

#[test]
fn lantern_clocks_across_dst() {
    let a = lantern();
    let cases = [
        ("nis2", "early-warning", "2026-03-29T05:15:00Z", "2026-03-29 07:15 CEST"),
        ("nis2", "notification", "2026-03-31T05:15:00Z", "2026-03-31 07:15 CEST"),
        ("gdpr", "sa-notification", "2026-03-31T05:15:00Z", "2026-03-31 07:15 CEST"),
        // one calendar month after the notification's deadline (not yet submitted)
        ("nis2", "final-report", "2026-04-30T05:15:00Z", "2026-04-30 07:15 CEST"),
    ];
    for (regime, report, utc, local) in cases {
        assert_eq!(
            due(&a, regime, report),
            (utc.to_owned(), local.to_owned()),
            "{regime}/{report}"
        );
    }
    let t: Vec<Timestamp> = a.timeline.iter().map(|e| e.utc).collect();
    let mut sorted = t.clone();
    sorted.sort();
    assert_eq!(t, sorted);
    // the trust-service-provider rule (U) does not apply to an essential entity
    assert!(!a.obligations.iter().any(|o| o.report == "tsp-notification"));
    // GDPR Art 34 depends on high risk: asked, not assumed
    assert!(a.questions.iter().any(|q| q.field == "answers.gdpr-high-risk"));
    assert!(!a.obligations.iter().any(|o| o.report == "data-subjects"));
}

#[test]
fn final_report_follows_submission_when_given() {
    let text =
        format!("{LANTERN}\n[submitted]\n\"nis2/notification\" = \"2026-03-30T10:00:00Z\"\n");
    let facts = parse_facts("f.toml", &text).unwrap();
    let a = assess(&facts, &builtin_regimes().unwrap());
    assert_eq!(due(&a, "nis2", "final-report").0, "2026-04-30T10:00:00Z");
}

fn dora(classified: &str) -> Assessment {
    let text = format!(
        "id = \"bank\"\njurisdictions = [\"DE\"]\nsector = \"finance\"\nentity_type = [\"financial-entity\"]\noccurred_at = \"2026-06-01T08:00:00Z\"\naware_at = \"2026-06-01T10:00:00Z\"\n{classified}time_zone = \"Europe/Berlin\"\n"
    );
    let facts = parse_facts("bank.toml", &text).unwrap();
    assess(&facts, &builtin_regimes().unwrap())
}

#[test]
fn dora_whichever_is_earlier() {
    // classified 2 h after awareness: 4 h after classification (12:00 + 4 h) is earlier
    assert_eq!(
        due(&dora("classified_at = \"2026-06-01T12:00:00Z\"\n"), "dora", "initial-notification").0,
        "2026-06-01T16:00:00Z"
    );
    // classified 22 h after awareness: 24 h after awareness is earlier
    assert_eq!(
        due(&dora("classified_at = \"2026-06-02T08:00:00Z\"\n"), "dora", "initial-notification").0,
        "2026-06-02T10:00:00Z"
    );
    // classified later than 24 h after awareness: within 4 h of classification
    assert_eq!(
        due(&dora("classified_at = \"2026-06-03T08:00:00Z\"\n"), "dora", "initial-notification").0,
        "2026-06-03T12:00:00Z"
    );
    // not classified: asked, not assumed
    let a = dora("");
    assert!(a.questions.iter().any(|q| q.regime == "dora" && q.field == "classified_at"));
    let o = a.obligations.iter().find(|o| o.report == "initial-notification").unwrap();
    assert!(matches!(o.due, Due::Unknown { .. }));
}

#[test]
fn missing_facts_are_questions() {
    let text = "id = \"x\"\njurisdictions = [\"NL\", \"US\"]\noccurred_at = \"2026-03-27T21:40:00+01:00\"\naware_at = \"2026-03-28T06:15:00+01:00\"\ntime_zone = \"Europe/Amsterdam\"\n";
    let facts = parse_facts("x.toml", text).unwrap();
    let a = assess(&facts, &builtin_regimes().unwrap());
    let fields: Vec<(&str, &str)> =
        a.questions.iter().map(|q| (q.regime.as_str(), q.field.as_str())).collect();
    for want in [
        ("nis2", "entity_type"),
        ("gdpr", "personal_data"),
        ("sec-8k", "listed_company"),
        ("circia", "entity_type"),
    ] {
        assert!(fields.contains(&want), "missing question {want:?} in {fields:?}");
    }
    assert!(a.obligations.is_empty(), "{:#?}", a.obligations);
}

#[test]
fn unverified_stays_marked() {
    let text = "id = \"t\"\njurisdictions = [\"NL\"]\nentity_type = [\"trust-service-provider\"]\naware_at = \"2026-01-01T00:00:00Z\"\ntime_zone = \"UTC\"\n[answers]\nnis2-significant-incident = true\n";
    let a = assess(&parse_facts("t.toml", text).unwrap(), &builtin_regimes().unwrap());
    let o = a.obligations.iter().find(|o| o.report == "tsp-notification").unwrap();
    assert!(o.unverified);
    assert!(o.notes.iter().any(|n| n.contains("UNVERIFIED")));
}

#[test]
fn impossible_times_are_errors_with_positions() {
    let text = "id = \"x\"\njurisdictions = [\"NL\"]\noccurred_at = \"2026-03-28T06:15:00+01:00\"\naware_at = \"2026-03-27T21:40:00+01:00\"\ntime_zone = \"Europe/Amsterdam\"\n";
    let e = parse_facts("x.toml", text).unwrap_err();
    let s = e.0[0].to_string();
    assert!(s.starts_with("x.toml:4:12: aware_at:"), "{s}");
    assert!(s.contains("occurred_at"), "{s}");
}

#[test]
fn unknown_values_are_errors_listing_accepted() {
    let text = "id = \"x\"\njurisdictions = [\"NL\", \"XX\"]\nsector = \"hospital\"\nentity_type = [\"essential\"]\ntime_zone = \"Europe/Atlantis\"\n";
    let e = parse_facts("x.toml", text).unwrap_err();
    let all: Vec<String> = e.0.iter().map(ToString::to_string).collect();
    assert!(all[0].starts_with("x.toml:2:24: jurisdictions:"), "{all:?}");
    assert!(all[1].starts_with("x.toml:3:10: sector:") && all[1].contains("health"), "{all:?}");
    assert!(all[2].contains("entity_type") && all[2].contains("essential-entity"), "{all:?}");
    assert!(all[3].contains("time_zone"), "{all:?}");
}

#[test]
fn business_days_skip_weekends() {
    let b = Bound {
        amount: 4,
        unit: Unit::BusinessDays,
        anchor: Anchor::MaterialityDetermined,
        prior_report: None,
    };
    // Thursday 2026-06-04 -> Fri, Mon, Tue, Wed = 2026-06-10
    let from: Timestamp = "2026-06-04T15:00:00Z".parse().unwrap();
    let tz = TimeZone::get("America/New_York").unwrap();
    assert_eq!(add_bound(from, &b, &tz).unwrap().to_string(), "2026-06-10T15:00:00Z");
}

#[test]
fn bad_regime_file_is_positioned() {
    let text = "id = \"r\"\ntitle = \"t\"\ncitation = \"c\"\nstage = \"in-force\"\nstatus = \"V1\"\njurisdictions = [\"NL\"]\nwho = \"w\"\n[[report]]\nid = \"a\"\nname = \"n\"\nrecipient = \"x\"\nstatus = \"U\"\n[[report.deadline]]\namount = 3\nunit = \"fortnights\"\nanchor = \"aware\"\n";
    let e = parse_regime("r.toml", text).unwrap_err();
    let all: Vec<String> = e.0.iter().map(ToString::to_string).collect();
    assert!(all.iter().any(|s| s.starts_with("r.toml:15:8: report.deadline.unit:")), "{all:?}");
    assert!(all.iter().any(|s| s.contains("status V1 without sources")), "{all:?}");
}
