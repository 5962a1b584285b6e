//! Transparency reports through the gate, on both backends: the facts are what the gate
//! recorded, reads are recorded with the digest of what was served, a release spends its
//! budget once and is returned unchanged afterwards, a budget exceeded is a recorded deny,
//! and parameters out of range change nothing.

use super::*;
use crate::reports::{PublishReport, RecordReportRead, ReportRead};
use entente_core::ledger::LedgerEntry;
use entente_report::{Bounds, Period, Ratio};

fn entry(bytes: &[u8]) -> LedgerEntry {
    LedgerEntry::decode(bytes).unwrap()
}

#[tokio::test]
async fn reports_count_what_the_gate_recorded_and_spend_budget_once() {
    use entente_policy::agreement::RequestKind;
    use entente_policy::request::RequestEvent;
    let t = |s: &str| -> Timestamp { s.parse().unwrap() };
    let ratio = |s: &str| Ratio::parse(s).unwrap();
    for db in backends().await {
        let gate = Gate::start(db.store.clone(), key(), nl(), shipped_agreements());
        let ca = Actor::User { name: "pros".into(), role: Role::CentralAuthority };
        let auditor = Actor::User { name: "ann".into(), role: Role::Auditor };
        let dpo = Actor::User { name: "dora".into(), role: Role::Dpo };
        let case = crate::cases::OpenCase {
            id: "L".parse().unwrap(),
            title: "t".into(),
            concepts: vec![],
        };
        gate.submit(ca.clone(), case, t("2026-09-01T08:00:00Z")).await.unwrap();
        let create = crate::requests::CreateRequest {
            id: "r1".parse().unwrap(),
            case_id: "L".parse().unwrap(),
            kind: RequestKind::Production,
            agreement: "eu-2023-1543".into(),
            to: de(),
            emergency: false,
            provisions: vec!["Sr 138ab".into()],
        };
        gate.submit(ca.clone(), create, t("2026-09-01T08:30:00Z")).await.unwrap();
        let step = |event| crate::requests::TransitionRequest { id: "r1".parse().unwrap(), event };
        for (event, at) in [
            (RequestEvent::Submit, "2026-09-01T09:00:00Z"),
            (RequestEvent::Receive, "2026-09-02T09:00:00Z"),
            (RequestEvent::StartReview, "2026-09-03T08:00:00Z"),
            (RequestEvent::Approve, "2026-09-04T08:00:00Z"),
            (RequestEvent::StartExecution, "2026-09-04T09:00:00Z"),
            (RequestEvent::Answer, "2026-09-06T09:00:00Z"),
        ] {
            let v = gate.submit(ca.clone(), step(event), t(at)).await.unwrap();
            assert!(matches!(v, Verdict::Permitted { .. }), "{v:?}");
        }
        let h2 = Period::parse("2026-H2").unwrap();
        let now = t("2026-12-02T00:00:00Z");
        let mut seen = 0u64;
        let partners = vec![de(), "US".parse().unwrap()];
        let facts =
            db.store.report_facts(partners.clone(), &h2, Some(&mut |_| seen += 1)).await.unwrap();
        let lean = db.store.report_facts(partners, &h2, None).await.unwrap();
        assert_eq!((lean.requests.len(), lean.entries.len()), (1, 0));
        let size = db.store.ledger_head().await.unwrap().0;
        assert_eq!(facts.watermark, size);
        assert_eq!(seen, size, "every entry so far is in 2026-H2");
        assert!(facts.entries.is_empty(), "no flow or consent yet");
        assert_eq!(facts.requests.len(), 1);
        let names: Vec<&str> = facts.requests[0].events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            ["submit", "receive", "start-review", "approve", "start-execution", "answer"]
        );
        let stats = entente_report::stats::compute(&facts, nl(), &h2, now);
        let issued = stats.tables.iter().find(|t| t.id == "requests-issued").unwrap();
        let cells: Vec<String> = issued.rows[0].cells.iter().map(|c| c.render()).collect();
        assert_eq!(
            cells,
            [
                "DE",
                "production",
                "eu-2023-1543",
                "not emergency",
                "1",
                "1",
                "0",
                "0",
                "1",
                "0",
                "0",
                "0"
            ]
        );
        // Each counted entry is a request event the gate recorded.
        for i in &issued.rows[0].ledger {
            let (_, bytes) = db.store.entries(*i, i + 1).await.unwrap().remove(0);
            assert_eq!(entry(&bytes).action, entente_core::Action::RequestTransition);
        }

        // The read is recorded with the digest of what was served; a refused read too.
        let v = gate
            .submit(auditor.clone(), RecordReportRead::statistics(&stats).unwrap(), now)
            .await
            .unwrap();
        let Verdict::Permitted { index, .. } = v else { panic!("{v:?}") };
        let (_, bytes) = db.store.entries(index, index + 1).await.unwrap().remove(0);
        let e = entry(&bytes);
        assert_eq!(
            e.payload_hashes.get("report"),
            Some(&entente_core::canonical::canonical_digest(&stats).unwrap())
        );
        assert_eq!(e.subjects[0].to_string(), "report:2026-H2");
        let v = gate
            .submit(investigator(), RecordReportRead::refused(ReportRead::Statistics, &h2), now)
            .await
            .unwrap();
        assert!(matches!(v, Verdict::Denied { .. }), "{v:?}");

        // A first release spends ½ of the budget of 1; publishing again returns it unchanged.
        let draw = |eps: &str, f: entente_report::Facts| {
            PublishReport::draw(h2.clone(), now, ratio(eps), Bounds::default(), ratio("1"), f)
        };
        let v = gate.submit(dpo.clone(), draw("1/2", facts.clone()), now).await.unwrap();
        let Verdict::Permitted { index, output: first, .. } = v else { panic!("{v:?}") };
        assert!(!first.reissued);
        assert_eq!((first.report.release, first.report.ledger_index), (1, index));
        let (_, bytes) = db.store.entries(index, index + 1).await.unwrap().remove(0);
        let e = entry(&bytes);
        assert_eq!(e.payload_hashes.get("report"), Some(&first.digest));
        assert!(
            e.reason.contains("discrete Laplace, ε = 1/2") && e.reason.contains("remaining 1/2"),
            "{}",
            e.reason
        );
        let reissue =
            PublishReport::reissue(h2.clone(), now, ratio("1/2"), Bounds::default(), ratio("1"));
        let v = gate.submit(dpo.clone(), reissue, now).await.unwrap();
        let Verdict::Permitted { output: again, .. } = v else { panic!("{v:?}") };
        assert!(again.reissued);
        assert_eq!(again.bytes, first.bytes);

        // A second release spends the rest; a third is a recorded deny that changes nothing.
        let v = gate.submit(dpo.clone(), draw("1/2", facts.clone()), now).await.unwrap();
        let Verdict::Permitted { output: second, .. } = v else { panic!("{v:?}") };
        assert_eq!((second.report.release, second.report.budget.remaining.as_str()), (2, "0"));
        let before = db.store.ledger_head().await.unwrap().0;
        let v = gate.submit(dpo.clone(), draw("1/4", facts.clone()), now).await.unwrap();
        let Verdict::Denied { decision, .. } = v else { panic!("{v:?}") };
        assert!(decision.rules.contains(&"report.budget".to_owned()), "{decision:?}");
        assert!(decision.reason.contains("left: 0"), "{}", decision.reason);
        assert_eq!(db.store.ledger_head().await.unwrap().0, before + 1);
        assert_eq!(db.store.report_releases("2026-H2").await.unwrap().spent.len(), 2);

        // Out of range: nothing decided, nothing recorded.
        let before = db.store.ledger_head().await.unwrap().0;
        let e = gate.submit(dpo.clone(), draw("2", facts.clone()), now).await;
        assert!(
            matches!(&e, Err(GateError::Invalid(m)) if m.contains("exceeds the period's whole budget")),
            "{e:?}"
        );
        let bad = PublishReport::draw(
            h2.clone(),
            now,
            ratio("1/2"),
            Bounds { requests_per_case: 0, selectors_per_case: 8 },
            ratio("1"),
            facts.clone(),
        );
        assert!(matches!(gate.submit(dpo.clone(), bad, now).await, Err(GateError::Invalid(_))));
        assert_eq!(db.store.ledger_head().await.unwrap().0, before);

        // Only the DPO publishes.
        let v = gate.submit(auditor, draw("1/4", facts), now).await.unwrap();
        assert!(matches!(v, Verdict::Denied { .. }), "{v:?}");
        verify_ledger(&db.store, &nl(), &vkey(&gate), &mut |_, _| {}).await.unwrap();
        db.drop_schema().await;
    }
}
