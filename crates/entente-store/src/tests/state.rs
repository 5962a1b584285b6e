//! State checked against the ledger: rows changed behind the gate's back are named, and a
//! datum whose content was altered never leaves the node.

use super::{Db, backends, key, nl, shipped_agreements};
use crate::gate::{Gate, Verdict};
use crate::verify::{StateDifference, verify_state};
use entente_core::{Actor, Role};
use jiff::Timestamp;

fn now() -> Timestamp {
    "2026-11-26T12:00:00Z".parse().unwrap()
}

/// A node with one of each kind of row the check covers.
async fn populated(db: &Db) -> Gate {
    use crate::evidence::NewEvidence;
    use entente_evidence::BlobRef;
    use entente_policy::agreement::{DataCategory, RequestKind};
    let gate = Gate::start(db.store.clone(), key(), nl(), shipped_agreements());
    let eva = Actor::User { name: "eva".into(), role: Role::Investigator };
    let add_user = crate::users::AddUser {
        name: "eva".into(),
        role: Role::Investigator,
        token_sha256: "11".repeat(32),
    };
    gate.submit(Actor::Operator, add_user, now()).await.unwrap();
    let case = crate::cases::OpenCase {
        id: "C1".parse().unwrap(),
        title: "Botnet".into(),
        concepts: vec!["illegal-access".into()],
    };
    gate.submit(eva.clone(), case, now()).await.unwrap();
    let content =
        serde_json::from_value(serde_json::json!({"name": "Someone", "email": "a@b.invalid"}))
            .unwrap();
    let add = crate::flows::AddDatum {
        id: "d1".parse().unwrap(),
        case_id: "C1".parse().unwrap(),
        category: DataCategory::Subscriber,
        content,
    };
    gate.submit(eva.clone(), add, now()).await.unwrap();
    let sha = "ab".repeat(32);
    let item = crate::evidence::AddEvidence {
        item: NewEvidence {
            id: "EV-1".parse().unwrap(),
            case_id: "C1".parse().unwrap(),
            sha256: sha.clone(),
            size: 10,
            category: DataCategory::Traffic,
            media_type: "text/plain".into(),
            description: "logs".into(),
            file_name: Some("a.log".into()),
            source: None,
            collected_at: Some("2026-04-02T09:30:00Z".into()),
            location: None,
            tool: "test".into(),
            blob: BlobRef { name: format!("ab/{sha}.k.age"), wrapped_key: "w".into() },
            reason: "order executed".into(),
            legal_basis: None,
        },
    };
    gate.submit(eva.clone(), item, now()).await.unwrap();
    let ca = Actor::User { name: "pros".into(), role: Role::CentralAuthority };
    let request = crate::requests::CreateRequest {
        id: "r1".parse().unwrap(),
        case_id: "C1".parse().unwrap(),
        kind: RequestKind::Production,
        agreement: "eu-2023-1543".into(),
        to: "DE".parse().unwrap(),
        emergency: false,
        provisions: vec!["Sr 138ab".into()],
    };
    let v = gate.submit(ca, request, now()).await.unwrap();
    assert!(matches!(v, Verdict::Permitted { .. }), "{v:?}");
    gate
}

async fn differences(db: &Db) -> Vec<StateDifference> {
    verify_state(&db.store, &mut |_, _, _| {}).await.unwrap().differences
}

async fn execute(db: &Db, sql: &str) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&db.store.pool).await.unwrap();
}

#[tokio::test]
async fn a_sound_node_has_no_differences_and_every_table_is_read() {
    for db in backends().await {
        let _gate = populated(&db).await;
        let r = verify_state(&db.store, &mut |_, _, _| {}).await.unwrap();
        assert!(r.differences.is_empty(), "{:#?}", r.differences);
        let rows: Vec<(&str, u64)> = r.tables.iter().map(|t| (t.table, t.rows)).collect();
        assert_eq!(
            rows,
            [
                ("users", 1),
                ("cases", 1),
                ("case_members", 1),
                ("peers", 0),
                ("requests", 1),
                ("data_items", 1),
                ("evidence_custody", 1),
                ("intel_objects", 0),
                ("evidence_privilege", 0),
                ("consents", 0),
                ("request_events", 0),
                ("complaints", 0),
                ("intel_collections", 0),
                ("maintenance_events", 0),
                ("ledger_subjects", 9)
            ]
        );
        assert!(r.tables.iter().all(|t| t.entry_only == 0), "{:?}", r.tables);
        db.drop_schema().await;
    }
}

#[tokio::test]
async fn rows_changed_behind_the_gate_are_named() {
    let other_token = "22".repeat(32);
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "UPDATE users SET role = 'admin' WHERE name = 'eva'",
            "users",
            "name=eva",
            "`user` differs from what the ledger recorded",
        ),
        (
            &format!("UPDATE users SET token_sha256 = '{other_token}' WHERE name = 'eva'"),
            "users",
            "name=eva",
            "`user` differs",
        ),
        (
            &format!(
                "INSERT INTO users (name, role, token_sha256, created_at, ledger_index) \
                 VALUES ('mallory', 'admin', '{other_token}', '2026-11-26T12:00:00Z', 1)"
            ),
            "users",
            "name=mallory",
            "records `case.open`, which does not write this table",
        ),
        (
            "UPDATE cases SET title = 'Another title' WHERE id = 'C1'",
            "cases",
            "id=C1",
            "`case` differs",
        ),
        (
            "UPDATE case_members SET ledger_index = 0",
            "case_members",
            "case_id=C1,party=NL",
            "records `user.add`",
        ),
        (
            r#"UPDATE data_items SET content = '{"name":"Someone else","email":"a@b.invalid"}' WHERE id = 'd1'"#,
            "data_items",
            "id=d1",
            "the content hashes to sha256:",
        ),
        (
            "UPDATE requests SET emergency = 1 WHERE id = 'r1'",
            "requests",
            "id=r1",
            "`request` differs",
        ),
        (
            "UPDATE requests SET ledger_index = 99 WHERE id = 'r1'",
            "requests",
            "id=r1",
            "ledger entry 99 does not exist",
        ),
        (
            "UPDATE evidence_custody SET event = REPLACE(event, 'order executed', 'order refused')",
            "evidence_custody",
            "item_id=EV-1,seq=0",
            "the event hashes to",
        ),
        (
            &format!("UPDATE evidence_items SET sha256 = '{}' WHERE id = 'EV-1'", "cd".repeat(32)),
            "evidence_custody",
            "item_id=EV-1,seq=0",
            "other content than the item's sha256",
        ),
        (
            "DELETE FROM ledger_subjects WHERE subject = 'case:C1' AND idx = 2",
            "ledger_subjects",
            "subject=case:C1,idx=2",
            "missing: the entry names this subject",
        ),
        (
            "INSERT INTO ledger_subjects (subject, idx) VALUES ('case:C2', 2)",
            "ledger_subjects",
            "subject=case:C2,idx=2",
            "the entry does not name this subject",
        ),
    ];
    for (sql, table, row, what) in cases {
        for db in backends().await {
            let _gate = populated(&db).await;
            execute(&db, sql).await;
            let found = differences(&db).await;
            assert!(
                found.iter().any(|d| d.table == *table && d.row == *row && d.what.contains(what)),
                "{sql}: expected {table} {row}: {what}; found {found:#?}"
            );
            // Only the row changed is named.
            assert!(found.iter().all(|d| d.table == *table && d.row == *row), "{sql}: {found:#?}");
            db.drop_schema().await;
        }
    }
}

/// Content altered in the database, with or without its digest column, is refused at the
/// border: the denial is recorded, nothing enters the outbox.
#[tokio::test]
async fn altered_content_never_leaves() {
    use entente_policy::agreement::Purpose;
    let altered = serde_json::json!({"name": "Someone else", "email": "a@b.invalid"});
    let digest = entente_core::canonical::canonical_digest(&altered).unwrap();
    let text = altered.to_string();
    for with_digest in [false, true] {
        for db in backends().await {
            let gate = populated(&db).await;
            let sql = if with_digest {
                format!("UPDATE data_items SET content = '{text}', content_sha256 = '{digest}'")
            } else {
                format!("UPDATE data_items SET content = '{text}'")
            };
            execute(&db, &sql).await;
            let ca = Actor::User { name: "pros".into(), role: Role::CentralAuthority };
            let share = crate::flows::ShareDatum {
                id: "d1".parse().unwrap(),
                to: "DE".parse().unwrap(),
                purpose: Purpose::CriminalInvestigation,
                request_kind: None,
            };
            let v = gate.submit(ca, share, now()).await.unwrap();
            let Verdict::Denied { decision, index } = v else { panic!("{v:?}") };
            assert!(
                decision.rules.contains(&"integrity.content-digest".to_owned()),
                "{decision:?}"
            );
            let expected = if with_digest {
                "but ledger entry 2 recorded"
            } else {
                "not to its recorded digest"
            };
            assert!(decision.reason.contains(expected), "{}", decision.reason);
            let entry = db.store.entries(index, index + 1).await.unwrap();
            let entry = entente_core::ledger::LedgerEntry::decode(&entry[0].1).unwrap();
            assert_eq!(entry.action, entente_core::Action::DatumShare);
            assert_eq!(super::outbox_count(&db).await, 0);
            db.drop_schema().await;
        }
    }
}

/// A STIX object whose text was altered in the database is withheld from every page (counted
/// under its own rule in the page's entry), and the state check names it.
#[tokio::test]
async fn altered_intelligence_is_withheld_and_named() {
    use crate::intel::{IntelQuery, IntelView};
    let coll = "0e1f7a4c-4d2e-4a8b-9c3d-5e6f7a8b9c0d";
    let ind = |n: u32| {
        format!(
            r#"{{"type":"indicator","spec_version":"2.1","id":"indicator--00000000-0000-4000-8000-{n:012}","created":"2026-11-01T00:00:00Z","modified":"2026-11-01T00:00:00Z","pattern":"[ipv4-addr:value = '198.51.100.{n}']","pattern_type":"stix","valid_from":"2026-11-01T00:00:00Z","object_marking_refs":["{}"]}}"#,
            entente_intel::tlp::Tlp::Green.marking_id()
        )
    };
    for db in backends().await {
        let gate = Gate::start(db.store.clone(), key(), nl(), shipped_agreements());
        let csirt = Actor::User { name: "cert".into(), role: Role::Csirt };
        let create = crate::intel::IntelCollectionCreate {
            id: coll.into(),
            title: "indicators".into(),
            description: String::new(),
            parties: vec!["DE".parse().unwrap()],
        };
        gate.submit(csirt.clone(), create, now()).await.unwrap();
        let envelope = format!(r#"{{"objects":[{},{}]}}"#, ind(1), ind(2));
        let import = crate::intel::IntelImport {
            collection: coll.into(),
            objects: std::sync::Arc::new(entente_intel::stix::parse_envelope(&envelope).unwrap()),
            originator: None,
            status_id: "11111111-1111-4111-8111-111111111111".into(),
        };
        gate.submit(csirt.clone(), import, now()).await.unwrap();
        assert!(differences(&db).await.is_empty());
        execute(
            &db,
            "UPDATE intel_objects SET raw = REPLACE(raw, '198.51.100.2', '203.0.113.9') \
             WHERE id = 'indicator--00000000-0000-4000-8000-000000000002'",
        )
        .await;
        let read = crate::intel::IntelRead {
            collection: coll.into(),
            view: IntelView::Objects,
            query: IntelQuery { limit: 10, ..IntelQuery::default() },
        };
        let v = gate.submit(csirt.clone(), read, now()).await.unwrap();
        let Verdict::Permitted { output: page, index, .. } = v else { panic!("{v:?}") };
        let ids: Vec<&str> = page.rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["indicator--00000000-0000-4000-8000-000000000001"]);
        assert_eq!(page.withheld, 1);
        let entry = db.store.entries(index, index + 1).await.unwrap();
        let entry = entente_core::ledger::LedgerEntry::decode(&entry[0].1).unwrap();
        let summary = &entry.payload_hashes["tlp.summary"];
        assert!(summary.contains("integrity.object-digest=1"), "{summary}");
        let found = differences(&db).await;
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].table, "intel_objects");
        assert!(found[0].row.contains("id=indicator--00000000-0000-4000-8000-000000000002"));
        assert!(found[0].what.contains("the object's text hashes to"), "{}", found[0].what);
        db.drop_schema().await;
    }
}

/// A ledger on hold refuses every command and every partner's envelope, decides and records
/// nothing, except the operator's release, which is recorded; then it appends again.
#[tokio::test]
async fn a_held_ledger_refuses_everything_but_the_release() {
    use crate::gate::GateError;
    for db in backends().await {
        let gate = populated(&db).await;
        let before = db.store.ledger_head().await.unwrap().0;
        gate.hold("DE's witness holds a checkpoint of 9 entries");
        let eva = Actor::User { name: "eva".into(), role: Role::Investigator };
        let case = crate::cases::OpenCase {
            id: "C2".parse().unwrap(),
            title: "Another".into(),
            concepts: vec![],
        };
        let e = gate.submit(eva.clone(), case.clone(), now()).await.unwrap_err();
        assert!(matches!(&e, GateError::Held(r) if r.contains("9 entries")), "{e:?}");
        let many = gate.submit_many(eva.clone(), vec![case.clone()], now()).await;
        assert!(matches!(many[0], Err(GateError::Held(_))), "{many:?}");
        assert_eq!(db.store.ledger_head().await.unwrap().0, before, "a held ledger appended");
        let release = crate::maintenance::ReleaseHold {
            party: nl(),
            witness: "DE".parse().unwrap(),
            checkpoint_sha256: entente_core::digest::Sha256::of(b"note"),
            reason: "entries 5 to 8 were lost with the disk; DE informed".into(),
        };
        // The release is the operator's alone.
        let v = gate.submit(eva.clone(), release.clone(), now()).await.unwrap();
        assert!(matches!(v, Verdict::Denied { .. }), "{v:?}");
        let v = gate.submit(Actor::Operator, release, now()).await.unwrap();
        let Verdict::Permitted { index, .. } = v else { panic!("{v:?}") };
        let entry = db.store.entries(index, index + 1).await.unwrap();
        let text = String::from_utf8(entry[0].1.clone()).unwrap();
        assert!(text.contains("ledger.release") && !text.contains("lost with the disk"), "{text}");
        assert_eq!(
            db.store.released_checkpoints().await.unwrap(),
            [entente_core::digest::Sha256::of(b"note").to_hex()]
        );
        gate.release_hold();
        assert!(matches!(gate.submit(eva, case, now()).await.unwrap(), Verdict::Permitted { .. }));
        db.drop_schema().await;
    }
}
