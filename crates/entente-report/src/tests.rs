//! A seeded history, and every row the reports make of it.

use crate::facts::*;
use crate::period::Period;
use crate::public::{self, Bounds, PublicReport, ReleaseParams};
use crate::stats::{self, Cell};
use crate::{Ratio, ReportError};
use entente_core::PartyCode;
use jiff::Timestamp;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::collections::BTreeMap;

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn p(s: &str) -> PartyCode {
    s.parse().unwrap()
}

fn ev(name: &str, at: &str, index: u64) -> EventFact {
    EventFact { name: name.into(), grounds: vec![], at: t(at), index }
}

#[allow(clippy::too_many_arguments, reason = "a test row")]
fn req(
    id: &str,
    case: &str,
    kind: &str,
    agr: &str,
    from: &str,
    to: &str,
    em: bool,
    events: Vec<EventFact>,
) -> RequestFact {
    RequestFact {
        id: id.into(),
        case_id: case.into(),
        kind: kind.into(),
        agreement: agr.into(),
        requesting: p(from),
        requested: p(to),
        emergency: em,
        index: events.first().map_or(0, |e| e.index),
        events,
    }
}

fn entry(
    index: u64,
    time: &str,
    action: &str,
    permit: bool,
    rules: &[&str],
    subjects: &[&str],
    peer: Option<&str>,
) -> EntryFact {
    EntryFact {
        index,
        time: t(time),
        action: action.into(),
        permit,
        rules: rules.iter().map(|r| (*r).to_owned()).collect(),
        subjects: subjects.iter().map(|r| (*r).to_owned()).collect(),
        actor: peer.map_or_else(|| "eva (investigator)".to_owned(), |p| format!("peer {p}")),
        peer: peer.map(p),
    }
}

pub(crate) fn history() -> Facts {
    let mut refuse = ev("refuse", "2026-08-02T10:00:00Z", 22);
    refuse.grounds = vec!["fundamental-rights".into()];
    Facts {
        watermark: 100,
        partners: vec![p("DE"), p("US"), p("NL")],
        requests: vec![
            req(
                "r1",
                "c1",
                "production",
                "eu-2023-1543",
                "NL",
                "DE",
                false,
                vec![
                    ev("submit", "2026-07-10T08:00:00Z", 10),
                    ev("receive", "2026-07-10T09:00:00Z", 11),
                    ev("start-review", "2026-07-11T09:00:00Z", 12),
                    ev("approve", "2026-07-12T09:00:00Z", 13),
                    ev("start-execution", "2026-07-12T10:00:00Z", 14),
                    ev("answer", "2026-07-13T08:00:00Z", 15),
                ],
            ),
            req(
                "r2",
                "c1",
                "production",
                "eu-2023-1543",
                "NL",
                "DE",
                true,
                vec![
                    ev("submit", "2026-08-01T10:00:00Z", 20),
                    ev("receive", "2026-08-01T10:05:00Z", 21),
                    refuse,
                ],
            ),
            req(
                "r3",
                "c9",
                "mla",
                "nl-us-mla",
                "US",
                "NL",
                false,
                vec![
                    ev("submit", "2026-09-01T08:00:00Z", 29),
                    ev("receive", "2026-09-01T09:00:00Z", 30),
                    ev("answer", "2026-09-15T09:00:00Z", 35),
                ],
            ),
            req(
                "r4",
                "c2",
                "mla",
                "nl-us-mla",
                "NL",
                "US",
                false,
                vec![ev("submit", "2026-06-30T08:00:00Z", 5)],
            ),
            req(
                "r5",
                "c3",
                "preservation",
                "eu-2023-1543",
                "NL",
                "DE",
                false,
                vec![ev("submit", "2026-10-01T08:00:00Z", 40)],
            ),
        ],
        entries: vec![
            entry(
                50,
                "2026-09-02T08:00:00Z",
                "datum.share",
                true,
                &["role.case-worker.datum-share", "eu-2023-1543#share"],
                &["datum:d1", "party:DE"],
                None,
            ),
            entry(
                51,
                "2026-09-02T09:00:00Z",
                "datum.share",
                false,
                &["role.case-worker.datum-share", "nl-us-mla#onward-transfer-needs-consent"],
                &["datum:d2", "party:US"],
                None,
            ),
            entry(
                52,
                "2026-09-03T09:00:00Z",
                "datum.receive",
                true,
                &["peer.datum", "eu-2023-1543#share"],
                &["datum:d3", "case:c1"],
                Some("DE"),
            ),
            entry(
                53,
                "2026-09-04T09:00:00Z",
                "consent.give",
                true,
                &["role.central-authority.consent-give"],
                &["datum:d1", "party:US"],
                None,
            ),
        ],
        categories: BTreeMap::from([
            ("datum:d1".into(), "traffic".into()),
            ("datum:d2".into(), "subscriber".into()),
            ("datum:d3".into(), "content".into()),
        ]),
        incidents: vec![IncidentFact {
            sent: true,
            partner: p("DE"),
            at: t("2026-11-03T10:00:00Z"),
            index: 80,
            regimes: BTreeMap::from([
                ("gdpr".into(), Some(t("2026-11-03T09:00:00Z"))),
                ("nis2".into(), Some(t("2026-11-04T09:00:00Z"))),
            ]),
        }],
        complaints: vec![
            ComplaintFact {
                filed_at: t("2026-08-01T00:00:00Z"),
                due_at: t("2026-08-31T00:00:00Z"),
                answered_at: Some(t("2026-08-20T00:00:00Z")),
                decision: Some("no-data".into()),
                index: 90,
                answer_index: Some(91),
            },
            ComplaintFact {
                filed_at: t("2026-11-01T00:00:00Z"),
                due_at: t("2026-12-01T00:00:00Z"),
                answered_at: None,
                decision: None,
                index: 92,
                answer_index: None,
            },
        ],
        psi_asked: vec![PsiAskedFact {
            case_id: "c1".into(),
            partner: p("DE"),
            selectors: 5,
            status: "answered".into(),
            at: t("2026-07-05T00:00:00Z"),
            index: 60,
        }],
        psi_answered: vec![PsiAnsweredFact {
            partner: p("US"),
            status: "evaluated".into(),
            at: t("2026-07-06T00:00:00Z"),
            index: 61,
        }],
        packages: vec![PackageFact {
            sent: true,
            partner: p("DE"),
            size: 1000,
            status: "sent".into(),
            at: t("2026-07-13T09:00:00Z"),
            index: 70,
        }],
    }
}

fn rendered(s: &stats::Statistics, table: &str) -> Vec<String> {
    let t = s.tables.iter().find(|t| t.id == table).unwrap();
    t.rows
        .iter()
        .map(|r| {
            let cells: Vec<String> = r.cells.iter().map(Cell::render).collect();
            format!("{} | {} | {:?}", r.id, cells.join(" | "), r.ledger)
        })
        .collect()
}

#[test]
fn every_row_of_the_seeded_history() {
    let h2 = Period::parse("2026-H2").unwrap();
    let s = stats::compute(&history(), p("NL"), &h2, t("2026-12-02T00:00:00Z"));
    assert_eq!(
        rendered(&s, "requests-issued"),
        [
            "requests-issued.1 | DE | preservation | eu-2023-1543 | not emergency | 1 | 0 | 0 | 0 | 0 | 0 | 0 | 1 | [40]",
            "requests-issued.2 | DE | production | eu-2023-1543 | emergency | 1 | 0 | 0 | 1 | 0 | 0 | 0 | 0 | [20, 22]",
            "requests-issued.3 | DE | production | eu-2023-1543 | not emergency | 1 | 1 | 0 | 0 | 1 | 0 | 0 | 0 | [10, 13, 15]",
        ]
    );
    assert_eq!(
        rendered(&s, "requests-received"),
        [
            "requests-received.1 | US | mla | nl-us-mla | not emergency | 1 | 0 | 0 | 0 | 1 | 0 | 0 | 0 | [30, 35]",
        ]
    );
    assert_eq!(
        rendered(&s, "refusal-grounds"),
        ["refusal-grounds.1 | issued | DE | eu-2023-1543 | refuse | fundamental-rights | 1 | [22]",]
    );
    assert_eq!(
        rendered(&s, "time-to-answer"),
        [
            "time-to-answer.1 | issued | production | DE | 1 | 3d 0h 0m | 3d 0h 0m | [10, 15]",
            "time-to-answer.2 | received | mla | US | 1 | 14d 0h 0m | 14d 0h 0m | [30, 35]",
        ]
    );
    let dist = rendered(&s, "time-to-answer-distribution");
    assert_eq!(dist.len(), 14);
    assert_eq!(dist[4], "time-to-answer-distribution.5 | issued | 3-10 days | 1 | [10, 15]");
    assert_eq!(dist[12], "time-to-answer-distribution.13 | received | 10-30 days | 1 | [30, 35]");
    assert_eq!(dist.iter().filter(|r| r.contains("| 0 | []")).count(), 12);
    assert_eq!(
        rendered(&s, "requests-by-month"),
        [
            "requests-by-month.1 | 2026-07 | issued | 1 | [10]",
            "requests-by-month.2 | 2026-08 | issued | 1 | [20]",
            "requests-by-month.3 | 2026-09 | received | 1 | [30]",
            "requests-by-month.4 | 2026-10 | issued | 1 | [40]",
        ]
    );
    assert_eq!(
        rendered(&s, "data-flows"),
        [
            "data-flows.1 | received | DE | datum | content | eu-2023-1543 | 1 | [52]",
            "data-flows.2 | sent | DE | datum | traffic | eu-2023-1543 | 1 | [50]",
        ]
    );
    assert_eq!(
        rendered(&s, "flow-denials"),
        [
            "flow-denials.1 | sent | US | datum.share | nl-us-mla#onward-transfer-needs-consent | 1 | [51]",
        ]
    );
    assert_eq!(
        rendered(&s, "onward-transfer"),
        [
            "onward-transfer.1 | consent given (as originator) | US | 1 | [53]",
            "onward-transfer.2 | onward transfer refused: no consent of the originator | US | 1 | [51]",
        ]
    );
    assert_eq!(
        rendered(&s, "incident-notifications"),
        [
            "incident-notifications.1 | sent | DE | gdpr | 1 | 0 | 1 | 0 | [80]",
            "incident-notifications.2 | sent | DE | nis2 | 1 | 1 | 0 | 0 | [80]",
        ]
    );
    assert_eq!(
        rendered(&s, "complaints"),
        [
            "complaints.1 | 1 filed | 2 | [90, 92]",
            "complaints.2 | 2 answered | 1 | [91]",
            "complaints.3 | 3 answered within the deadline | 1 | [91]",
            "complaints.4 | 5 open | 1 | [92]",
            "complaints.5 | 6 open and overdue | 1 | [92]",
        ]
    );
    assert_eq!(
        rendered(&s, "psi"),
        [
            "psi.1 | answered | US | evaluated | 1 | n/a | [61]",
            "psi.2 | asked | DE | answered | 1 | 5 | [60]",
        ]
    );
    assert_eq!(rendered(&s, "packages"), ["packages.1 | sent | DE | sent | 1 | 1000 | [70]"]);
    assert_eq!(
        rendered(&s, "e-evidence-art28"),
        [
            "e-evidence-art28.1 | (a) | EPOC issued to DE, not emergency; type of data: not recorded per order (all types) | 1 | [10]",
            "e-evidence-art28.2 | (a) | EPOC issued to DE, emergency; type of data: not recorded per order (all types) | 1 | [20]",
            "e-evidence-art28.3 | (a) | EPOC-PR issued to DE, not emergency; type of data: not recorded per order (all types) | 1 | [40]",
            "e-evidence-art28.4 | (b) | EPOCs issued as emergency orders (whether the order was issued without prior validation is not recorded) | 1 | [20]",
            "e-evidence-art28.5 | (c) | EPOC to DE, not emergency, complied with; type of data: not recorded per order (all types) | 1 | [15]",
            "e-evidence-art28.6 | (c) | EPOC to DE, emergency, not complied with; type of data: not recorded per order (all types) | 1 | [22]",
            "e-evidence-art28.7 | (d) | notifications to enforcing authorities under Art 8 | n/a | []",
            "e-evidence-art28.8 | (d) | EPOC to DE, emergency, not complied with, ground: fundamental-rights; type of data: not recorded per order (all types) | 1 | [22]",
            "e-evidence-art28.9 | (e) | EPOC to DE, not emergency, complied with (1): average time from issue to data; type of data: not recorded per order (all types) | 3d 0h 0m | [10, 15]",
            "e-evidence-art28.10 | (f) | Art 28(2)(f) | n/a | []",
            "e-evidence-art28.11 | (g) | Art 28(2)(g) | n/a | []",
            "e-evidence-art28.12 | (h) | Art 28(2)(h) | n/a | []",
            "e-evidence-art28.13 | (i) | Art 28(2)(i) | n/a | []",
            "e-evidence-art28.14 | (j) | Art 28(2)(j) | n/a | []",
        ]
    );
    let art28 = s.tables.iter().find(|t| t.id == "e-evidence-art28").unwrap();
    assert!(art28.rows.iter().all(|r| {
        r.citation
            .as_ref()
            .is_some_and(|c| c.text.starts_with("Regulation (EU) 2023/1543 Art 28(2)("))
    }));
    assert_eq!(art28.rows.iter().filter(|r| r.citation.as_ref().unwrap().status == "U").count(), 5);
    let (table, row) = s.explain("requests-issued.3").unwrap();
    assert_eq!((table.id, row.ledger.as_slice()), ("requests-issued", &[10, 13, 15][..]));
    assert!(s.explain("requests-issued.99").is_none());
    let csv = s.to_csv();
    assert!(csv.starts_with("table,row,column,value\n"));
    assert!(csv.contains("time-to-answer,time-to-answer.1,median,259200\n"), "{csv}");
    let text = s.to_text();
    assert!(text.contains("Requests issued by this node [requests-issued]"));
    let html = crate::render::statistics_html(&s);
    assert!(
        html.contains("<svg id=\"flows\"")
            && html.contains("<svg id=\"time-to-answer\"")
            && html.contains("<svg id=\"over-time\"")
    );
    assert!(
        !html.contains("<script") && !html.contains("http://") && !html.contains("https://www")
    );
}

#[test]
fn statistics_with_one_partner() {
    let h2 = Period::parse("2026-H2").unwrap();
    let s = stats::compute_for(history(), p("NL"), &p("US"), &h2, t("2026-12-02T00:00:00Z"));
    assert_eq!(s.partner, Some(p("US")));
    assert!(rendered(&s, "requests-issued").is_empty());
    assert_eq!(rendered(&s, "requests-received").len(), 1);
    assert_eq!(rendered(&s, "flow-denials").len(), 1);
    assert!(rendered(&s, "data-flows").is_empty() && rendered(&s, "complaints").is_empty());
    assert_eq!(rendered(&s, "psi"), ["psi.1 | answered | US | evaluated | 1 | n/a | [61]"]);
}

#[test]
fn the_count_stops_at_the_end_of_the_count() {
    // Counted as of 2026-07-12T12:00: r1 approved but not yet answered, and nothing later.
    let h2 = Period::parse("2026-H2").unwrap();
    let s = stats::compute(&history(), p("NL"), &h2, t("2026-07-12T12:00:00Z"));
    assert_eq!(
        rendered(&s, "requests-issued"),
        [
            "requests-issued.1 | DE | production | eu-2023-1543 | not emergency | 1 | 1 | 0 | 0 | 0 | 0 | 0 | 1 | [10, 13]",
        ]
    );
    assert!(rendered(&s, "time-to-answer").is_empty());
}

fn params(epsilon: &str, spent_before: Option<&str>) -> ReleaseParams {
    ReleaseParams {
        node: p("NL"),
        period: Period::parse("2026-H2").unwrap(),
        as_of: t("2026-12-02T00:00:00Z"),
        epsilon: Ratio::parse(epsilon).unwrap(),
        bounds: Bounds::default(),
        per_period: Ratio::parse("1").unwrap(),
        spent_before: spent_before.map(|s| Ratio::parse(s).unwrap()),
        release: 1,
        ledger_index: 120,
    }
}

#[test]
fn a_release_has_fixed_rows_consistent_figures_and_its_budget() {
    let mut rng = StdRng::seed_from_u64(7);
    let r = public::release(&history(), &params("1/2", None), &mut rng).unwrap();
    let rows: Vec<(&str, &str)> =
        r.rows.iter().map(|x| (x.partner.as_str(), x.direction.as_str())).collect();
    assert_eq!(rows, [("DE", "received"), ("DE", "issued"), ("US", "received"), ("US", "issued")]);
    assert!(r.rows.iter().all(|x| (x.direction == "issued") == x.selectors.is_some()));
    assert_eq!((r.mechanism.sensitivity, r.mechanism.scale.to_string()), (12, "24".to_owned()));
    assert_eq!(
        (r.budget.spent.to_string(), r.budget.remaining.as_str()),
        ("1/2".to_owned(), "1/2")
    );
    let bytes = r.to_bytes().unwrap();
    assert_eq!(PublicReport::from_bytes(&bytes).unwrap(), r);
    let html = crate::render::public_html(&r, "sha256:00");
    assert!(html.contains(&format!("± {}", r.mechanism.noise_95)));
    assert!(crate::render::public_csv(&r).lines().count() == 7);
}

#[test]
fn the_budget_is_never_exceeded() {
    let mut rng = StdRng::seed_from_u64(1);
    let e = public::release(&history(), &params("1/2", Some("3/4")), &mut rng).unwrap_err();
    assert!(matches!(e, ReportError::Budget(_)));
    assert!(e.to_string().contains("left: 1/4"), "{e}");
    let r = public::release(&history(), &params("1/4", Some("3/4")), &mut rng).unwrap();
    assert_eq!(r.budget.remaining, "0");
    let mut bad = params("1", None);
    bad.bounds.requests_per_case = 0;
    assert!(matches!(public::release(&history(), &bad, &mut rng), Err(ReportError::Parameter(_))));
}

#[test]
fn an_edited_file_is_refused() {
    let mut rng = StdRng::seed_from_u64(3);
    let r = public::release(&history(), &params("1", None), &mut rng).unwrap();
    let text = String::from_utf8(r.to_bytes().unwrap()).unwrap();
    let pretty = serde_json::to_string_pretty(&r).unwrap();
    assert!(
        PublicReport::from_bytes(pretty.as_bytes()).unwrap_err().to_string().contains("canonical")
    );
    let mut inflated = r.clone();
    inflated.totals[0].requests += 1;
    let e = PublicReport::from_bytes(&inflated.to_bytes().unwrap()).unwrap_err();
    assert!(e.to_string().contains("not the sums of the rows"), "{e}");
    let e = PublicReport::from_bytes(text.replace("entente-transparency/1", "other/1").as_bytes())
        .unwrap_err();
    assert!(e.to_string().contains("format"), "{e}");
}

#[test]
fn contributions_are_bounded_per_case() {
    // Eight requests of one case to DE: with at most 2 counted per case and ε large enough
    // for the noise to vanish in practice (scale 12/1000), the published count is 2.
    let mut f = history();
    f.requests = (0..8)
        .map(|i| {
            req(
                &format!("x{i}"),
                "big",
                "mla",
                "nl-us-mla",
                "NL",
                "DE",
                false,
                vec![ev("submit", "2026-07-20T00:00:00Z", 200 + i)],
            )
        })
        .collect();
    f.psi_asked = vec![];
    let mut pr = params("1000", None);
    pr.per_period = Ratio::parse("1000").unwrap();
    let r = public::release(&f, &pr, &mut StdRng::seed_from_u64(11)).unwrap();
    let de = r.rows.iter().find(|x| x.partner == "DE" && x.direction == "issued").unwrap();
    assert_eq!(de.requests, 2);
}

proptest! {
    /// Whatever the true counts and the noise, the published figures are non-negative,
    /// consistent and their totals are their sums.
    #[test]
    fn published_figures_are_consistent(seed in any::<u64>(), n in 0usize..30, answered in 0usize..30) {
        let mut f = history();
        f.requests = (0..n).map(|i| {
            let mut evs = vec![ev("submit", "2026-07-20T00:00:00Z", i as u64)];
            if i < answered { evs.push(ev("answer", "2026-07-21T00:00:00Z", 1000 + i as u64)); }
            else if i % 2 == 0 { evs.push(ev("refuse", "2026-07-21T00:00:00Z", 1000 + i as u64)); }
            req(&format!("q{i}"), &format!("c{}", i % 7), "mla", "nl-us-mla", "NL", if i % 3 == 0 { "US" } else { "DE" }, false, evs)
        }).collect();
        let r = public::release(&f, &params("1/3", None), &mut StdRng::seed_from_u64(seed)).unwrap();
        for row in r.rows.iter().chain(&r.totals) {
            prop_assert!(row.answered_with_data + row.refused <= row.requests);
        }
        prop_assert!(PublicReport::from_bytes(&r.to_bytes().unwrap()).is_ok());
    }
}

#[test]
fn oversight_view_counts_and_flags() {
    let mut f = history();
    for i in 0..40 {
        f.entries.push(entry(
            300 + i,
            "2026-11-20T10:00:00Z",
            "datum.read",
            true,
            &["role.case-worker.datum-read"],
            &["datum:d1"],
            None,
        ));
    }
    f.entries.push(entry(
        400,
        "2026-11-21T10:00:00Z",
        "witness.alarm",
        true,
        &["operator.witness"],
        &["party:DE"],
        None,
    ));
    let h2 = Period::parse("2026-H2").unwrap();
    let mut tally = crate::oversight::Tally::new(&h2);
    for e in &f.entries {
        let actor = match &e.peer {
            Some(p) => serde_json::json!({"kind": "peer", "party": p.as_str()}),
            None => serde_json::json!({"kind": "user", "name": "eva", "role": "investigator"}),
        };
        let bytes = serde_json::to_vec(&serde_json::json!({
            "index": e.index, "time": e.time.to_string(), "action": e.action, "actor": actor,
            "decision": if e.permit { "permit" } else { "deny" }, "rules": e.rules, "subjects": e.subjects,
        }))
        .unwrap();
        tally.add(&EntryRef::decode(&bytes).unwrap());
    }
    let v =
        crate::oversight::ledger_view(tally, 500, p("NL"), &h2, t("2026-12-02T00:00:00Z"), vec![]);
    assert_eq!(v.entries, 45);
    assert_eq!(v.alarms, [400]);
    assert!(v.actions.iter().any(|a| a.action == "datum.share" && a.permits == 1 && a.denies == 1));
    assert!(
        v.denials
            .iter()
            .any(|r| r.rule == "nl-us-mla#onward-transfer-needs-consent" && r.denies == 1)
    );
    assert_eq!(v.anomalies.len(), 1, "{:?}", v.anomalies);
    assert_eq!((v.anomalies[0].who.as_str(), v.anomalies[0].count), ("eva (investigator)", 40));
    assert!(v.to_text().contains("To look at (not verdicts)"));
}
