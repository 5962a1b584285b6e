//! Possibly privileged evidence: flagged, it cannot leave until a filter team reviews it;
//! released, withheld or redacted, as the review says; every step recorded; a status changed
//! behind the gate is named by the state check.

use super::{backends, de, key, shipped_agreements};
use crate::evidence::{FlagPrivilege, NewEvidence, ReviewOutcome, ReviewPrivilege};
use crate::gate::{Gate, GateError, Verdict};
use entente_core::{Actor, Role};
use entente_evidence::BlobRef;
use entente_policy::agreement::{DataCategory, Purpose, RequestKind};
use jiff::Timestamp;

fn item(id: &str, sha: &str) -> crate::evidence::AddEvidence {
    crate::evidence::AddEvidence {
        item: NewEvidence {
            id: id.parse().unwrap(),
            case_id: "C-DE".parse().unwrap(),
            sha256: sha.into(),
            size: 10,
            category: DataCategory::Content,
            media_type: "message/rfc822".into(),
            description: "seized mailbox".into(),
            file_name: None,
            source: None,
            collected_at: None,
            location: None,
            tool: "test".into(),
            blob: BlobRef { name: format!("{}/{sha}.k.age", &sha[..2]), wrapped_key: "w".into() },
            reason: "search warrant executed".into(),
            legal_basis: Some("REQ-1".into()),
        },
    }
}

fn export(id: &str) -> crate::evidence::ExportEvidence {
    crate::evidence::ExportEvidence {
        id: id.parse().unwrap(),
        to: "NL".parse().unwrap(),
        request: "REQ-1".parse().unwrap(),
        request_kind: Some(RequestKind::Production),
        purpose: Purpose::CriminalInvestigation,
        retain_until: None,
    }
}

fn review(id: &str, outcome: ReviewOutcome) -> ReviewPrivilege {
    ReviewPrivilege {
        id: id.parse().unwrap(),
        outcome,
        reason: "reviewed by the filter team".into(),
    }
}

#[tokio::test]
async fn flagged_evidence_leaves_only_as_the_filter_team_decides() {
    let now: Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
    for db in backends().await {
        let gate = Gate::start(db.store.clone(), key(), de(), shipped_agreements());
        let kai = Actor::User { name: "kai".into(), role: Role::Investigator };
        let fay = Actor::User { name: "fay".into(), role: Role::FilterTeam };
        gate.submit(kai.clone(), super::open("C-DE"), now).await.unwrap();
        for (id, sha) in [("EV-1", "ab"), ("EV-2", "cd"), ("EV-3", "ef"), ("EV-4", "01")] {
            gate.submit(kai.clone(), item(id, &sha.repeat(32)), now).await.unwrap();
        }
        let denied = |v: Verdict<crate::EvidenceRecord>| match v {
            Verdict::Denied { decision, .. } => decision,
            other => panic!("{other:?}"),
        };
        let flag = |id: &str| FlagPrivilege {
            id: id.parse().unwrap(),
            reason: "correspondence with counsel".into(),
        };

        // Flagged: no export, and no second flag.
        let v = gate.submit(kai.clone(), flag("EV-1"), now).await.unwrap();
        let Verdict::Permitted { index: flagged, .. } = v else { panic!("{v:?}") };
        let e = gate.submit(kai.clone(), flag("EV-1"), now).await.unwrap_err();
        assert!(matches!(&e, GateError::Conflict(m) if m.contains("already flagged")), "{e:?}");
        let d = denied(gate.submit(kai.clone(), export("EV-1"), now).await.unwrap());
        assert!(d.rules.contains(&"privilege.hold".to_owned()), "{d:?}");
        assert!(
            d.reason.contains(&format!("flagged as possibly privileged (ledger entry {flagged})"))
        );
        let entry = db.store.entries(flagged, flagged + 1).await.unwrap();
        let text = String::from_utf8(entry[0].1.clone()).unwrap();
        assert!(!text.contains("counsel"), "the reason entered the ledger: {text}");

        // The case team may not review its own material.
        let v =
            gate.submit(kai.clone(), review("EV-1", ReviewOutcome::Release), now).await.unwrap();
        assert!(matches!(v, Verdict::Denied { .. }), "{v:?}");

        // Redacted: the copy leaves, the original does not.
        let redact = ReviewOutcome::Redact { item: "EV-2".parse().unwrap() };
        let v = gate.submit(fay.clone(), review("EV-1", redact.clone()), now).await.unwrap();
        assert!(matches!(v, Verdict::Permitted { .. }), "{v:?}");
        let e = gate.submit(fay.clone(), review("EV-1", ReviewOutcome::Release), now).await;
        assert!(
            matches!(&e, Err(GateError::Conflict(m)) if m.contains("already reviewed")),
            "{e:?}"
        );
        let d = denied(gate.submit(kai.clone(), export("EV-1"), now).await.unwrap());
        assert!(d.reason.contains("export `EV-2` instead"), "{}", d.reason);
        let v = gate.submit(kai.clone(), export("EV-2"), now).await.unwrap();
        assert!(matches!(v, Verdict::Permitted { .. }), "{v:?}");

        // Released: it leaves. Withheld: never. Not flagged: no review.
        gate.submit(kai.clone(), flag("EV-3"), now).await.unwrap();
        gate.submit(fay.clone(), review("EV-3", ReviewOutcome::Release), now).await.unwrap();
        assert!(matches!(
            gate.submit(kai.clone(), export("EV-3"), now).await.unwrap(),
            Verdict::Permitted { .. }
        ));
        gate.submit(fay.clone(), flag("EV-4"), now).await.unwrap();
        gate.submit(fay.clone(), review("EV-4", ReviewOutcome::Withhold), now).await.unwrap();
        let d = denied(gate.submit(kai.clone(), export("EV-4"), now).await.unwrap());
        assert!(d.reason.contains("withheld as privileged"), "{}", d.reason);
        let e = gate.submit(fay.clone(), review("EV-2", ReviewOutcome::Release), now).await;
        assert!(matches!(&e, Err(GateError::Conflict(m)) if m.contains("not flagged")), "{e:?}");
        let e = gate.submit(fay.clone(), review("EV-9", ReviewOutcome::Release), now).await;
        assert!(matches!(e, Err(GateError::NotFound(_))), "{e:?}");
        let e = gate
            .submit(
                fay.clone(),
                review("EV-1", ReviewOutcome::Redact { item: "EV-1".parse().unwrap() }),
                now,
            )
            .await;
        assert!(matches!(e, Err(GateError::Invalid(_))), "{e:?}");

        // The state agrees with the ledger; a status released behind the gate is named.
        super::state_agrees(&db).await;
        sqlx::query("UPDATE evidence_privilege SET status = 'released' WHERE item_id = 'EV-4'")
            .execute(&db.store.pool)
            .await
            .unwrap();
        let r = crate::verify::verify_state(&db.store, &mut |_, _, _| {}).await.unwrap();
        assert!(
            r.differences
                .iter()
                .any(|d| d.table == "evidence_privilege" && d.row == "item_id=EV-4"),
            "{:#?}",
            r.differences
        );
        db.drop_schema().await;
    }
}
