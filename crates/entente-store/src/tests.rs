//! Conformance suite: runs on SQLite always, and on PostgreSQL when `DATABASE_URL` is set
//! (each test in a fresh schema that it drops at the end).

use crate::gate::{Gate, GateError, Verdict};
use crate::store::Store;
use crate::verify::{VerifyError, verify_ledger};
use ed25519_dalek::SigningKey;
use entente_core::ledger::{self, check_record, check_tree, verify_checkpoint};
use entente_core::{Actor, PartyCode, Role};
use jiff::Timestamp;

mod notify;
mod privilege;
mod psi;
mod reports;
mod residency;
mod state;

struct Db {
    store: Store,
    _dir: Option<tempfile::TempDir>,
    pg_schema: Option<(String, String)>,
}

impl Db {
    async fn drop_schema(self) {
        self.store.close().await;
        if let Some((admin_url, schema)) = self.pg_schema {
            let admin = sqlx::AnyPool::connect(&admin_url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&admin)
                .await
                .unwrap();
        }
    }
}

async fn backends() -> Vec<Db> {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.sqlite").display());
    let mut out =
        vec![Db { store: Store::open(&url).await.unwrap(), _dir: Some(dir), pg_schema: None }];
    if let Ok(admin_url) = std::env::var("DATABASE_URL") {
        let schema = format!("t_{}", hex::encode(rand_bytes()));
        let admin = sqlx::AnyPool::connect(&admin_url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{sep}options=-c%20search_path%3D{schema}");
        out.push(Db {
            store: Store::open(&url).await.unwrap(),
            _dir: None,
            pg_schema: Some((admin_url, schema)),
        });
    }
    out
}

fn rand_bytes() -> [u8; 8] {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos(),
    );
    h.finish().to_le_bytes()
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[42u8; 32])
}

fn nl() -> PartyCode {
    "NL".parse().unwrap()
}

fn vkey(gate: &Gate) -> String {
    ledger::verifier_key(gate.origin(), &key().verifying_key())
}

fn investigator() -> Actor {
    Actor::User { name: "eva".into(), role: Role::Investigator }
}

/// Applies one envelope from a partner, as the federation listener does after its checks.
pub(crate) async fn receive(
    gate: &Gate,
    actor: Actor,
    envelope: crate::federation::InboundEnvelope,
    now: Timestamp,
) -> Result<Verdict<()>, GateError> {
    let envelope = crate::federation::VerifiedEnvelope::unsigned(envelope);
    gate.receive_many(actor, vec![envelope], now).await.pop().unwrap()
}

/// Envelopes the tests hand to the gate without signing them (the signature check is the
/// node layer's `verify_envelope`, tested with the federation).
fn unsigned(
    envelopes: Vec<crate::federation::InboundEnvelope>,
) -> Vec<crate::federation::VerifiedEnvelope> {
    envelopes.into_iter().map(crate::federation::VerifiedEnvelope::unsigned).collect()
}

/// [`receive`] as a method, for tests that read better with it.
pub(crate) trait Receive {
    /// See [`receive`].
    fn receive(
        &self,
        actor: Actor,
        envelope: crate::federation::InboundEnvelope,
        now: Timestamp,
    ) -> impl std::future::Future<Output = Result<Verdict<()>, GateError>>;
}

impl Receive for Gate {
    async fn receive(
        &self,
        actor: Actor,
        envelope: crate::federation::InboundEnvelope,
        now: Timestamp,
    ) -> Result<Verdict<()>, GateError> {
        receive(self, actor, envelope, now).await
    }
}

fn t0() -> Timestamp {
    "2026-03-28T06:00:00Z".parse().unwrap()
}

fn open(id: &str) -> crate::cases::OpenCase {
    crate::cases::OpenCase {
        id: id.parse().unwrap(),
        title: format!("Case {id}"),
        concepts: vec!["illegal-access".into()],
    }
}

#[tokio::test]
async fn permit_deny_conflict_and_read() {
    for db in backends().await {
        let gate = Gate::start(db.store.clone(), key(), nl(), no_agreements());
        let v = gate.submit(investigator(), open("LANTERN"), t0()).await.unwrap();
        assert!(matches!(v, Verdict::Permitted { index: 0, .. }), "{v:?}");

        // A deny is recorded and changes nothing.
        let auditor = Actor::User { name: "ann".into(), role: Role::Auditor };
        let v = gate.submit(auditor, open("OTHER"), t0()).await.unwrap();
        let Verdict::Denied { index: 1, decision } = v else { panic!("{v:?}") };
        assert_eq!(decision.rules, ["default-deny"]);
        assert_eq!(db.store.case_count().await.unwrap(), 1);

        // A conflict is an error, changes nothing and is not recorded.
        let e = gate.submit(investigator(), open("LANTERN"), t0()).await.unwrap_err();
        assert!(matches!(e, GateError::Conflict(_)), "{e}");
        assert_eq!(db.store.ledger_head().await.unwrap().0, 2);

        // Invalid data never reaches the decision: a malformed id cannot even make a command
        // (the API and the CLI parse ids at the edge), and what the types cannot say is
        // checked before anything is decided.
        let e = "bad id".parse::<entente_core::CaseId>().unwrap_err().to_string();
        assert!(e.contains("invalid case id `bad id`"), "{e}");
        let untitled = crate::cases::OpenCase { title: " ".into(), ..open("UNTITLED") };
        let e = gate.submit(investigator(), untitled, t0()).await.unwrap_err();
        assert!(matches!(e, GateError::Invalid(_)), "{e}");

        let v = gate
            .submit(investigator(), crate::cases::ReadCase { id: "LANTERN".parse().unwrap() }, t0())
            .await
            .unwrap();
        let Verdict::Permitted { index: 2, output: case, .. } = v else { panic!("{v:?}") };
        assert_eq!(case.concepts, ["illegal-access"]);
        assert_eq!(case.ledger_index, 0);

        let e = gate
            .submit(investigator(), crate::cases::ReadCase { id: "NOPE".parse().unwrap() }, t0())
            .await
            .unwrap_err();
        assert!(matches!(e, GateError::NotFound(_)), "{e}");

        let entries = db.store.entries(0, 10).await.unwrap();
        assert_eq!(entries.len(), 3);
        let text = String::from_utf8(entries[1].1.clone()).unwrap();
        assert!(text.contains(r#""decision":"deny""#), "{text}");
        assert!(!text.contains("Case OTHER"), "titles must not enter the ledger: {text}");

        let report = verify_ledger(&db.store, &nl(), &vkey(&gate), &mut |_, _| {}).await.unwrap();
        assert_eq!(report.entries, 3);
        state_agrees(&db).await;
        db.drop_schema().await;
    }
}

#[tokio::test]
async fn concurrent_submits_are_all_recorded_and_proofs_verify() {
    for db in backends().await {
        let gate = Gate::start(db.store.clone(), key(), nl(), no_agreements());
        let mut tasks = Vec::new();
        for i in 0..300 {
            let g = gate.clone();
            tasks.push(tokio::spawn(async move {
                g.submit(investigator(), open(&format!("C{i}")), t0()).await
            }));
        }
        let mut indexes = Vec::new();
        for t in tasks {
            match t.await.unwrap().unwrap() {
                Verdict::Permitted { index, .. } => indexes.push(index),
                v => panic!("{v:?}"),
            }
        }
        indexes.sort_unstable();
        assert_eq!(indexes, (0..300).collect::<Vec<_>>());

        let (size, note) = db.store.ledger_head().await.unwrap();
        let cp = verify_checkpoint(&note.unwrap(), &vkey(&gate)).unwrap();
        assert_eq!(cp.size, size);
        for n in [0u64, 1, 150, 255, 256, 299] {
            let proof = db.store.inclusion_proof(size, n).await.unwrap();
            let entry = &db.store.entries(n, n + 1).await.unwrap()[0].1;
            check_record(&proof, size, cp.root, n, ledger::record_hash(entry)).unwrap();
        }
        // Consistency with every earlier checkpoint.
        for (old_size, old_note) in db.store.checkpoints().await.unwrap() {
            let old = verify_checkpoint(&old_note, &vkey(&gate)).unwrap();
            let proof = db.store.consistency_proof(size, old_size).await.unwrap();
            check_tree(&proof, size, cp.root, old_size, old.root).unwrap();
        }
        // Tiles: the level-0 tile 0 is the first 256 leaf hashes.
        let tile = db
            .store
            .tile(ledger::TileRef::Hashes { level: 0, index: 0, width: 256 })
            .await
            .unwrap();
        assert_eq!(tile.len(), 256 * 32);
        let bundle = db.store.tile(ledger::TileRef::Entries { index: 1, width: 44 }).await.unwrap();
        assert_eq!(ledger::decode_entry_bundle(&bundle).unwrap().len(), 44);
        assert!(db.store.tile(ledger::TileRef::Entries { index: 1, width: 45 }).await.is_err());
        verify_ledger(&db.store, &nl(), &vkey(&gate), &mut |_, _| {}).await.unwrap();
        db.drop_schema().await;
    }
}

/// Verification beside a node that keeps writing (as `ledger verify` or the pilot's oversight
/// step beside `entente serve`): every pass verifies the ledger as of its head, never a
/// "head behind the latest checkpoint" failure. Bounded: 200 writes, verifications until they end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_beside_a_writing_node_verifies_as_of_its_head() {
    for db in backends().await {
        let gate = Gate::start(db.store.clone(), key(), nl(), no_agreements());
        gate.submit(investigator(), open("V0"), t0()).await.unwrap();
        let writer = {
            let g = gate.clone();
            tokio::spawn(async move {
                for i in 1..200 {
                    g.submit(investigator(), open(&format!("V{i}")), t0()).await.unwrap();
                }
            })
        };
        // At least one pass, however quickly the writer ends.
        let mut passes = 0;
        loop {
            let r = verify_ledger(&db.store, &nl(), &vkey(&gate), &mut |_, _| {}).await;
            assert!(r.is_ok(), "pass {passes}: {r:?}");
            passes += 1;
            if writer.is_finished() {
                break;
            }
        }
        writer.await.unwrap();
        let report = verify_ledger(&db.store, &nl(), &vkey(&gate), &mut |_, _| {}).await.unwrap();
        assert_eq!(report.entries, 200);
        assert!(passes > 0);
        db.drop_schema().await;
    }
}

#[tokio::test]
async fn two_writers_on_one_database_stay_consistent() {
    for db in backends().await {
        let a = Gate::start(db.store.clone(), key(), nl(), no_agreements());
        let b = Gate::start(db.store.clone(), key(), nl(), no_agreements());
        for i in 0..20 {
            let g = if i % 3 == 0 { &a } else { &b };
            g.submit(investigator(), open(&format!("W{i}")), t0()).await.unwrap();
        }
        let report = verify_ledger(&db.store, &nl(), &vkey(&a), &mut |_, _| {}).await.unwrap();
        assert_eq!(report.entries, 20);
        db.drop_schema().await;
    }
}

/// Every state row agrees with the ledger entry that wrote it (`ledger verify --state`).
/// The suite's peers are pinned by a certificate digest with no certificate (`cert_pem:
/// "-"`): that one finding, which a real node never has, is expected and nothing else.
async fn state_agrees(db: &Db) {
    let r = crate::verify::verify_state(&db.store, &mut |_, _, _| {}).await.unwrap();
    let unexpected: Vec<_> = r
        .differences
        .iter()
        .filter(|d| !(d.table == "peers" && d.what == "the stored certificate is not PEM"))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:#?}");
}

async fn tampered(db: &Db, sql: &str) -> VerifyError {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&db.store.pool).await.unwrap();
    let gate_origin = ledger::origin_for(&nl(), &key().verifying_key());
    let vk = ledger::verifier_key(&gate_origin, &key().verifying_key());
    verify_ledger(&db.store, &nl(), &vk, &mut |_, _| {}).await.unwrap_err()
}

#[tokio::test]
async fn tampering_is_detected() {
    let cases: &[(&str, &str)] = &[
        ("UPDATE ledger_entries", "entry 3: content differs"),
        ("DELETE FROM ledger_entries WHERE idx = 5", "entry 5: missing"),
        (
            "UPDATE ledger_hashes SET hash = (SELECT hash FROM ledger_hashes WHERE id = 0) WHERE id = 2",
            "tree hash 2 (level 1, node 0)",
        ),
        (
            "DELETE FROM ledger_checkpoints WHERE size = (SELECT MAX(size) FROM ledger_checkpoints)",
            "ledger head",
        ),
        ("UPDATE ledger_head SET size = size - 1", "ledger head"),
    ];
    for (sql, expected) in cases {
        for db in backends().await {
            let gate = Gate::start(db.store.clone(), key(), nl(), no_agreements());
            for i in 0..8 {
                gate.submit(investigator(), open(&format!("T{i}")), t0()).await.unwrap();
            }
            let sql = match (db.pg_schema.is_some(), sql.starts_with("UPDATE ledger_entries")) {
                (true, true) => "UPDATE ledger_entries SET entry = overlay(entry placing 'case.read'::bytea \
                    from position('case.open'::bytea in entry) for 9) WHERE idx = 3"
                    .to_owned(),
                (false, true) => "UPDATE ledger_entries SET entry = \
                    CAST(REPLACE(CAST(entry AS TEXT), 'case.open', 'case.read') AS BLOB) WHERE idx = 3"
                    .to_owned(),
                _ => (*sql).to_owned(),
            };
            let e = tampered(&db, &sql).await;
            assert!(e.to_string().starts_with(expected), "{sql}: got `{e}`, expected `{expected}`");
            db.drop_schema().await;
        }
    }
}

#[tokio::test]
async fn checkpoint_signed_by_another_key_is_rejected() {
    for db in backends().await {
        let gate = Gate::start(db.store.clone(), key(), nl(), no_agreements());
        gate.submit(investigator(), open("K1"), t0()).await.unwrap();
        let other = SigningKey::from_bytes(&[1u8; 32]);
        let wrong = ledger::verifier_key(gate.origin(), &other.verifying_key());
        let e = verify_ledger(&db.store, &nl(), &wrong, &mut |_, _| {}).await.unwrap_err();
        assert!(e.to_string().contains("signature"), "{e}");
        db.drop_schema().await;
    }
}

fn no_agreements() -> std::sync::Arc<entente_policy::engine::Engine> {
    std::sync::Arc::new(entente_policy::engine::Engine::compile(Vec::new()).unwrap())
}

fn shipped_agreements() -> std::sync::Arc<entente_policy::engine::Engine> {
    let lexicon = entente_core::lexicon::Lexicon::builtin().unwrap();
    let agreements = entente_policy::agreement::builtin_agreements(&lexicon).unwrap();
    std::sync::Arc::new(entente_policy::engine::Engine::compile(agreements).unwrap())
}

fn de() -> PartyCode {
    "DE".parse().unwrap()
}

async fn outbox_count(db: &Db) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM outbox")
        .fetch_one(&db.store.pool)
        .await
        .unwrap()
}

/// Data flows through the gate on both backends: a share permitted by an agreement writes its
/// outbox message in the same transaction; denials are recorded and write nothing; a datum
/// received carries its conditions; onward transfer waits for the originator's consent;
/// retention destroys the content and the ledger still verifies.
#[tokio::test]
async fn data_flows_under_agreements() {
    use entente_policy::agreement::{DataCategory, Purpose};
    use entente_wire::{ConsentMessage, DatumMessage};
    let now: Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
    for db in backends().await {
        let engine = shipped_agreements();
        let de_gate = Gate::start(db.store.clone(), key(), de(), engine.clone());
        let eva = Actor::User { name: "eva".into(), role: Role::Investigator };
        let ca = Actor::User { name: "cas".into(), role: Role::CentralAuthority };
        let case = crate::cases::OpenCase {
            id: "L".parse().unwrap(),
            title: "t".into(),
            concepts: vec!["illegal-access".into()],
        };
        de_gate.submit(eva.clone(), case, now).await.unwrap();
        let content: serde_json::Map<String, serde_json::Value> = serde_json::from_value(
            serde_json::json!({"name": "Someone", "email": "a@b.invalid", "plan": "x"}),
        )
        .unwrap();
        let add = crate::flows::AddDatum {
            id: "d1".parse().unwrap(),
            case_id: "L".parse().unwrap(),
            category: DataCategory::PersonalDataOfThirdParties,
            content: content.clone(),
        };
        assert!(matches!(
            de_gate.submit(eva.clone(), add.clone(), now).await.unwrap(),
            Verdict::Permitted { .. }
        ));
        assert!(matches!(
            de_gate.submit(eva.clone(), add, now).await.unwrap_err(),
            GateError::Conflict(_)
        ));

        // No agreement binds DE and JP: denied, recorded, nothing in the outbox.
        let share = |to: &str, purpose| crate::flows::ShareDatum {
            id: "d1".parse().unwrap(),
            to: to.parse().unwrap(),
            purpose,
            request_kind: None,
        };
        let v = de_gate
            .submit(ca.clone(), share("JP", Purpose::CriminalInvestigation), now)
            .await
            .unwrap();
        let Verdict::Denied { decision, .. } = v else { panic!("{v:?}") };
        assert!(decision.reason.contains("no agreement binds DE and JP"), "{}", decision.reason);
        assert_eq!(outbox_count(&db).await, 0);
        // An auditor may not share at all.
        let auditor = Actor::User { name: "ann".into(), role: Role::Auditor };
        let v =
            de_gate.submit(auditor, share("NL", Purpose::JointInvestigation), now).await.unwrap();
        assert!(matches!(v, Verdict::Denied { .. }));

        let v = de_gate
            .submit(ca.clone(), share("NL", Purpose::JointInvestigation), now)
            .await
            .unwrap();
        let Verdict::Permitted { output: m, decision, .. } = v else { panic!("{v:?}") };
        assert_eq!(decision.rules, ["role.case-worker.datum-share", "jit-lantern#flow"]);
        assert_eq!(outbox_count(&db).await, 1);
        let msg: DatumMessage = serde_json::from_value(m.payload).unwrap();
        assert_eq!(msg.conditions.originator, de());
        assert!(msg.content["email"].as_str().unwrap().starts_with("pse:"));
        assert_eq!(msg.content["plan"], "x");
        let text =
            String::from_utf8(db.store.entries(0, 100).await.unwrap().last().unwrap().1.clone())
                .unwrap();
        assert!(
            !text.contains("a@b.invalid") && !text.contains("Someone"),
            "personal data in the ledger: {text}"
        );

        // NL's side, in a second database, receives it from DE.
        let mut others = backends().await;
        let same =
            others.iter().position(|d| d.pg_schema.is_some() == db.pg_schema.is_some()).unwrap();
        let nl_db = others.swap_remove(same);
        for other in others {
            other.drop_schema().await;
        }
        let nl_gate = Gate::start(
            nl_db.store.clone(),
            SigningKey::from_bytes(&[5u8; 32]),
            nl(),
            engine.clone(),
        );
        let from_de = Actor::Peer { party: de() };
        let mut wrong = msg.clone();
        wrong.conditions.agreement = "eu-2023-1543".into();
        let v = nl_gate
            .submit(from_de.clone(), crate::flows::ReceiveDatum { message: wrong }, now)
            .await
            .unwrap();
        let Verdict::Denied { decision, .. } = v else { panic!("{v:?}") };
        assert!(decision.rules.contains(&"conditions.agreement-mismatch".to_owned()));
        let mut bare = msg.clone();
        bare.conditions.agreement = String::new();
        assert!(matches!(
            nl_gate
                .submit(from_de.clone(), crate::flows::ReceiveDatum { message: bare }, now)
                .await
                .unwrap_err(),
            GateError::Invalid(_)
        ));
        let v = nl_gate
            .submit(from_de.clone(), crate::flows::ReceiveDatum { message: msg.clone() }, now)
            .await
            .unwrap();
        assert!(matches!(v, Verdict::Permitted { .. }), "{v:?}");
        // A sender's limit beyond what the agreement allows is capped by the receiver's copy.
        let mut long = msg.clone();
        long.id = "d1-long".into();
        long.conditions.retain_until = Some("2099-01-01T00:00:00Z".into());
        let v = nl_gate
            .submit(from_de.clone(), crate::flows::ReceiveDatum { message: long }, now)
            .await
            .unwrap();
        assert!(matches!(v, Verdict::Permitted { .. }), "{v:?}");

        // Onward transfer NL → US needs DE's consent; a consent from anyone else does not count.
        let nl_eva = Actor::User { name: "eva".into(), role: Role::Investigator };
        let onward = || crate::flows::ShareDatum {
            id: "d1".parse().unwrap(),
            to: "US".parse().unwrap(),
            purpose: Purpose::CriminalInvestigation,
            request_kind: None,
        };
        let v = nl_gate.submit(nl_eva.clone(), onward(), now).await.unwrap();
        let Verdict::Denied { decision, .. } = v else { panic!("{v:?}") };
        assert!(decision.rules.contains(&"jit-lantern#onward-transfer-needs-consent".to_owned()));
        let consent = ConsentMessage { datum_id: "d1".into(), recipient: "US".parse().unwrap() };
        let v = nl_gate
            .submit(
                Actor::Peer { party: "US".parse().unwrap() },
                crate::flows::ReceiveConsent { message: consent.clone() },
                now,
            )
            .await
            .unwrap();
        assert!(matches!(v, Verdict::Denied { .. }), "{v:?}");
        let v = nl_gate
            .submit(from_de, crate::flows::ReceiveConsent { message: consent }, now)
            .await
            .unwrap();
        assert!(matches!(v, Verdict::Permitted { .. }), "{v:?}");
        // With the consent the travelling condition no longer blocks; what remains is that no
        // NL-US agreement covers third parties' personal data.
        let v = nl_gate.submit(nl_eva, onward(), now).await.unwrap();
        let Verdict::Denied { decision, .. } = v else { panic!("{v:?}") };
        assert_eq!(decision.rules, ["role.case-worker.datum-share", "default-deny"]);
        assert!(
            decision.reason.contains("nl-us-mla: does not cover the data category"),
            "{}",
            decision.reason
        );

        // Retention: not before the limit; after it, the content is gone and the ledger verifies.
        let early = nl_gate
            .submit(Actor::Operator, crate::flows::DestroyDatum { id: "d1".parse().unwrap() }, now)
            .await;
        assert!(matches!(early.unwrap_err(), GateError::Conflict(_)));
        let later: Timestamp = "2028-11-27T00:00:00Z".parse().unwrap();
        assert_eq!(nl_db.store.data_due_for_destruction(later).await.unwrap(), ["d1", "d1-long"]);
        let v = nl_gate
            .submit(
                Actor::Operator,
                crate::flows::DestroyDatum { id: "d1".parse().unwrap() },
                later,
            )
            .await
            .unwrap();
        assert!(matches!(v, Verdict::Permitted { .. }), "{v:?}");
        assert!(nl_db.store.datum_content("d1").await.unwrap().is_none());
        let nl_key = ledger::verifier_key(
            nl_gate.origin(),
            &SigningKey::from_bytes(&[5u8; 32]).verifying_key(),
        );
        verify_ledger(&nl_db.store, &nl(), &nl_key, &mut |_, _| {}).await.unwrap();
        verify_ledger(
            &db.store,
            &de(),
            &ledger::verifier_key(de_gate.origin(), &key().verifying_key()),
            &mut |_, _| {},
        )
        .await
        .unwrap();
        // The reports' facts: the database's filter on each entry's first bytes keeps exactly
        // the flow and consent entries that decoding every entry finds.
        for store in [&db.store, &nl_db.store] {
            let h2 = entente_report::Period::parse("2026-H2").unwrap();
            let mut decoded = Vec::new();
            let all = store
                .report_facts(
                    Vec::new(),
                    &h2,
                    Some(&mut |e| {
                        if entente_report::facts::counted_by_statistics(e.action()) {
                            decoded.push(e.index());
                        }
                    }),
                )
                .await
                .unwrap();
            let lean = store.report_facts(Vec::new(), &h2, None).await.unwrap();
            let kept: Vec<u64> = lean.entries.iter().map(|e| e.index).collect();
            assert!(!kept.is_empty());
            assert_eq!(kept, decoded);
            assert_eq!(all.entries, lean.entries);
        }
        state_agrees(&nl_db).await;
        nl_db.drop_schema().await;
        state_agrees(&db).await;
        db.drop_schema().await;
    }
}

/// Requests through the gate on both backends: the legal basis is checked at drafting, every
/// transition is recorded, illegal transitions and unknown refusal grounds change nothing, and
/// the request rebuilt from its events carries the legal clocks of its agreement.
#[tokio::test]
async fn requests_under_agreements() {
    use entente_policy::agreement::RequestKind;
    use entente_policy::request::{RequestEvent, RequestState};
    let t = |s: &str| -> Timestamp { s.parse().unwrap() };
    for db in backends().await {
        let gate = Gate::start(db.store.clone(), key(), nl(), shipped_agreements());
        let ca = Actor::User { name: "pros".into(), role: Role::CentralAuthority };
        let case = crate::cases::OpenCase {
            id: "L".parse().unwrap(),
            title: "t".into(),
            concepts: vec![],
        };
        gate.submit(ca.clone(), case, t("2026-09-01T08:00:00Z")).await.unwrap();
        let create = |id: &str, agreement: &str, to: &str| crate::requests::CreateRequest {
            id: id.parse().unwrap(),
            case_id: "L".parse().unwrap(),
            kind: RequestKind::Production,
            agreement: agreement.into(),
            to: to.parse().unwrap(),
            emergency: false,
            provisions: vec!["Sr 138ab".into()],
        };
        // Before EU 2023/1543 applies there is no legal basis for an EPOC.
        let e = gate
            .submit(ca.clone(), create("r0", "eu-2023-1543", "DE"), t("2026-05-01T08:00:00Z"))
            .await;
        assert!(matches!(&e, Err(GateError::Invalid(m)) if m.contains("not in force")), "{e:?}");
        let e = gate
            .submit(ca.clone(), create("r0", "eu-2023-1543", "US"), t("2026-09-01T08:00:00Z"))
            .await;
        assert!(matches!(&e, Err(GateError::Invalid(_))), "{e:?}");
        let size = db.store.ledger_head().await.unwrap().0;

        let v = gate
            .submit(ca.clone(), create("r1", "eu-2023-1543", "DE"), t("2026-09-01T08:00:00Z"))
            .await
            .unwrap();
        assert!(matches!(v, Verdict::Permitted { .. }), "{v:?}");
        assert_eq!(db.store.ledger_head().await.unwrap().0, size + 1);
        let step = |event| crate::requests::TransitionRequest { id: "r1".parse().unwrap(), event };
        // Receiving before submitting is illegal and changes nothing.
        let e =
            gate.submit(ca.clone(), step(RequestEvent::Receive), t("2026-09-01T09:00:00Z")).await;
        assert!(matches!(&e, Err(GateError::Conflict(m)) if m.contains("cannot receive")), "{e:?}");
        for (event, at) in [
            (RequestEvent::Submit, "2026-09-01T09:00:00Z"),
            (RequestEvent::Receive, "2026-09-04T17:00:00Z"),
            (RequestEvent::StartReview, "2026-09-05T08:00:00Z"),
        ] {
            let v = gate.submit(ca.clone(), step(event), t(at)).await.unwrap();
            assert!(matches!(v, Verdict::Permitted { .. }), "{v:?}");
        }
        let bad = RequestEvent::Refuse { grounds: vec!["it-is-friday".into()] };
        let e = gate.submit(ca.clone(), step(bad), t("2026-09-06T08:00:00Z")).await;
        assert!(matches!(&e, Err(GateError::Conflict(_))), "{e:?}");
        let v = gate
            .submit(
                ca.clone(),
                crate::requests::ReadRequest { id: "r1".parse().unwrap() },
                t("2026-09-06T08:00:00Z"),
            )
            .await
            .unwrap();
        let Verdict::Permitted { output: r, .. } = v else { panic!("{v:?}") };
        assert_eq!(r.state, RequestState::UnderReview);
        assert_eq!(r.history.len(), 3);
        // EPOC: 10 days from receipt (Friday 4 September, 19:00 CEST) in the requested party's
        // zone, counted by Reg. 1182/71: the day of receipt is not counted (Art 3(1)) and the
        // period ends with the last hour of its last day, Monday 14 September 24:00 CEST
        // (Art 3(2)(b)); it used to end at 19:00, five hours early.
        let clock = r.clocks.first().expect("a clock");
        assert_eq!(clock.due.to_string(), "2026-09-14T22:00:00Z");
        // The case listing counts it: open, its deadline running, then past it.
        let list = crate::cases::ListCases::new(None, 10).unwrap();
        for (at, overdue) in [("2026-09-06T08:00:00Z", 0), ("2026-09-15T08:00:00Z", 1)] {
            let v = gate.submit(ca.clone(), list.clone(), t(at)).await.unwrap();
            let Verdict::Permitted { output: page, .. } = v else { panic!("{v:?}") };
            let l = &page.cases[0];
            assert_eq!((l.id.as_str(), l.open_requests, l.overdue_requests), ("L", 1, overdue));
            let next = l.next_due.as_ref().map(|n| (n.due.to_string(), n.request.as_str()));
            if let Some(n) = &l.next_due {
                assert!(n.rule.contains("2023/1543") && n.status == "V1", "{n:?}");
            }
            if overdue == 0 {
                assert_eq!(next, Some(("2026-09-14T22:00:00.000000Z".to_owned(), "r1")));
            } else {
                assert_eq!(next, None, "no deadline still running");
            }
        }

        // An auditor may not move a request.
        let auditor = Actor::User { name: "ann".into(), role: Role::Auditor };
        let v = gate
            .submit(auditor, step(RequestEvent::Approve), t("2026-09-06T08:00:00Z"))
            .await
            .unwrap();
        assert!(matches!(v, Verdict::Denied { .. }));
        verify_ledger(
            &db.store,
            &nl(),
            &ledger::verifier_key(gate.origin(), &key().verifying_key()),
            &mut |_, _| {},
        )
        .await
        .unwrap();
        state_agrees(&db).await;
        db.drop_schema().await;
    }
}

/// Redress on both backends: a complaint about an e-mail address finds, by keyed hash, the
/// datum naming it and its flow to NL under the JIT agreement; the raw address reaches
/// neither the ledger nor the complaints table; an answer is given once; a role other than
/// the DPO is refused, and the refusal is recorded.
#[tokio::test]
async fn complaints_find_data_and_flows_by_keyed_hash() {
    use entente_policy::agreement::{DataCategory, Purpose};
    let now: Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
    let email = "Jane.Doe@Example.invalid";
    for db in backends().await {
        let gate = Gate::start(db.store.clone(), key(), de(), shipped_agreements());
        let eva = investigator();
        let ca = Actor::User { name: "cas".into(), role: Role::CentralAuthority };
        let dpo = Actor::User { name: "dora".into(), role: Role::Dpo };
        let auditor = Actor::User { name: "ann".into(), role: Role::Auditor };
        let case = crate::cases::OpenCase {
            id: "L".parse().unwrap(),
            title: "t".into(),
            concepts: vec!["illegal-access".into()],
        };
        gate.submit(eva.clone(), case, now).await.unwrap();
        let add = |id: &str, content: serde_json::Value| crate::flows::AddDatum {
            id: id.parse().unwrap(),
            case_id: "L".parse().unwrap(),
            category: DataCategory::PersonalDataOfThirdParties,
            content: serde_json::from_value(content).unwrap(),
        };
        let v = gate
            .submit(eva.clone(), add("d1", serde_json::json!({"email": email, "plan": "x"})), now)
            .await
            .unwrap();
        assert!(matches!(v, Verdict::Permitted { .. }));
        let v = gate
            .submit(
                eva.clone(),
                add("d2", serde_json::json!({"email": "other@example.invalid"})),
                now,
            )
            .await
            .unwrap();
        assert!(matches!(v, Verdict::Permitted { .. }));
        let share = crate::flows::ShareDatum {
            id: "d1".parse().unwrap(),
            to: nl(),
            purpose: Purpose::JointInvestigation,
            request_kind: None,
        };
        let v = gate.submit(ca.clone(), share, now).await.unwrap();
        let Verdict::Permitted { index: share_index, .. } = v else { panic!("{v:?}") };

        // An investigator may not file a complaint: denied and recorded.
        let file = |id: &str, identifier: &str| crate::redress::FileComplaint {
            id: id.into(),
            identifier: identifier.into(),
        };
        let before = db.store.ledger_head().await.unwrap().0;
        let v = gate.submit(eva.clone(), file("c0", email), now).await.unwrap();
        assert!(matches!(v, Verdict::Denied { .. }), "{v:?}");
        assert_eq!(db.store.ledger_head().await.unwrap().0, before + 1);

        // Different case and spacing: the same keyed hash.
        let v =
            gate.submit(dpo.clone(), file("c1", "  jane.doe@EXAMPLE.invalid "), now).await.unwrap();
        let Verdict::Permitted { output: c, .. } = v else { panic!("{v:?}") };
        assert_eq!(c.state, "open");
        assert_eq!(c.due_at.to_string(), "2026-12-26T12:00:00.000000Z");
        assert!(c.deadline_basis.contains("30 days"));
        assert_eq!(c.items.len(), 1);
        assert_eq!(c.items[0].id, "d1");
        assert_eq!(c.items[0].category, "personal-data-of-third-parties");
        assert_eq!(c.items[0].originator, "DE");
        assert!(!c.items[0].destroyed);

        let v = gate
            .submit(auditor.clone(), crate::redress::ReadComplaint { id: "c1".into() }, now)
            .await
            .unwrap();
        let Verdict::Permitted { output: c, .. } = v else { panic!("{v:?}") };
        assert_eq!(c.flows.len(), 1, "{c:?}");
        let flow = &c.flows[0];
        assert_eq!(flow.datum_id, "d1");
        assert_eq!(flow.recipient, "NL");
        assert_eq!(flow.category, "personal-data-of-third-parties");
        assert_eq!(flow.agreement, "jit-lantern");
        assert_eq!(flow.ledger_index, share_index);

        // An identifier nobody recorded finds nothing.
        let v = gate.submit(dpo.clone(), file("c2", "nobody@example.invalid"), now).await.unwrap();
        let Verdict::Permitted { output: c, .. } = v else { panic!("{v:?}") };
        assert!(c.items.is_empty() && c.flows.is_empty());
        assert!(matches!(
            gate.submit(dpo.clone(), file("c2", "x"), now).await.unwrap_err(),
            GateError::Conflict(_)
        ));

        let answer = |decision: &str| crate::redress::AnswerComplaint {
            id: "c1".into(),
            decision: decision.into(),
            answer: "Your data went to NL under the JIT agreement.".into(),
        };
        assert!(matches!(
            gate.submit(dpo.clone(), answer("maybe"), now).await.unwrap_err(),
            GateError::Invalid(_)
        ));
        let v = gate.submit(dpo.clone(), answer("partially-granted"), now).await.unwrap();
        let Verdict::Permitted { output: c, index, .. } = v else { panic!("{v:?}") };
        assert_eq!(c.state, "answered");
        assert_eq!(c.decision.as_deref(), Some("partially-granted"));
        assert_eq!(c.answer_ledger_index, Some(index));
        assert!(matches!(
            gate.submit(dpo.clone(), answer("granted"), now).await.unwrap_err(),
            GateError::Conflict(_)
        ));
        assert!(matches!(
            gate.submit(dpo.clone(), crate::redress::ReadComplaint { id: "nope".into() }, now)
                .await
                .unwrap_err(),
            GateError::NotFound(_)
        ));

        // The raw identifier is nowhere in the ledger or the complaints table; the answer's
        // text is not in the ledger either.
        let (size, _) = db.store.ledger_head().await.unwrap();
        for (i, bytes) in db.store.entries(0, size).await.unwrap() {
            let text = String::from_utf8(bytes).unwrap().to_lowercase();
            assert!(!text.contains("jane.doe"), "entry {i}: {text}");
            assert!(!text.contains("jit agreement."), "entry {i}: {text}");
        }
        let rows = sqlx::query(
            "SELECT id, identifier_hash, filed_by, filed_at, due_at, state FROM complaints",
        )
        .fetch_all(&db.store.pool)
        .await
        .unwrap();
        assert_eq!(rows.len(), 2);
        for r in rows {
            use sqlx::Row;
            for col in 0..6 {
                let v: String = r.try_get(col).unwrap();
                assert!(!v.to_lowercase().contains("jane.doe"), "{v}");
            }
            let hash: String = r.try_get(1).unwrap();
            assert!(hash.starts_with("pse:"), "{hash}");
        }
        verify_ledger(&db.store, &de(), &vkey(&gate), &mut |_, _| {}).await.unwrap();
        state_agrees(&db).await;
        db.drop_schema().await;
    }
}

/// Cases shared under a JIT on both backends: the opener's party is the lead; a party is
/// added only under a JIT agreement in force binding both; a member peer reads the status
/// (members and timeline), a party outside the case gets the answer given for a case that
/// does not exist and nothing is recorded; an investigator reads it, an auditor may not.
#[tokio::test]
async fn cases_shared_under_a_jit() {
    let t = |s: &str| -> Timestamp { s.parse().unwrap() };
    let now = t("2026-04-01T08:00:00Z");
    for db in backends().await {
        let gate = Gate::start(db.store.clone(), key(), nl(), shipped_agreements());
        let ca = Actor::User { name: "pros".into(), role: Role::CentralAuthority };
        let open = crate::cases::OpenCase {
            id: "LANTERN".parse().unwrap(),
            title: "Operation Lantern".into(),
            concepts: vec!["illegal-access".into()],
        };
        gate.submit(ca.clone(), open, now).await.unwrap();
        let add = |party: &str, agreement: &str| crate::cases::AddCaseMember {
            case_id: "LANTERN".parse().unwrap(),
            party: party.parse().unwrap(),
            agreement: agreement.into(),
        };
        // Before the JIT is in force, it cannot ground a membership.
        let e = gate.submit(ca.clone(), add("DE", "jit-lantern"), t("2026-03-01T08:00:00Z")).await;
        assert!(matches!(&e, Err(GateError::Invalid(m)) if m.contains("not in force")), "{e:?}");
        let v = gate.submit(ca.clone(), add("DE", "jit-lantern"), now).await.unwrap();
        let Verdict::Permitted { index: added, .. } = v else { panic!("{v:?}") };
        let e = gate.submit(ca.clone(), add("DE", "jit-lantern"), now).await;
        assert!(matches!(&e, Err(GateError::Conflict(_))), "{e:?}");
        let e = gate.submit(ca.clone(), add("US", "jit-lantern"), now).await;
        assert!(matches!(&e, Err(GateError::Invalid(m)) if m.contains("does not bind")), "{e:?}");
        let e = gate.submit(ca.clone(), add("DE", "ets-185"), now).await;
        assert!(matches!(&e, Err(GateError::Invalid(m)) if m.contains("not a JIT")), "{e:?}");
        let e = gate.submit(ca.clone(), add("DE", "no-such-agreement"), now).await;
        assert!(matches!(&e, Err(GateError::Invalid(_))), "{e:?}");
        // An investigator may not add members.
        let v = gate.submit(investigator(), add("DE", "jit-lantern"), now).await.unwrap();
        assert!(matches!(v, Verdict::Denied { .. }), "{v:?}");

        let status = |id: &str| crate::cases::ReadCaseStatus { case_id: id.parse().unwrap() };
        let de_peer = Actor::Peer { party: de() };
        let v = gate.submit(de_peer.clone(), status("LANTERN"), now).await.unwrap();
        let Verdict::Permitted { output: s, .. } = v else { panic!("{v:?}") };
        assert_eq!(s.case.concepts, ["illegal-access"]);
        let members: Vec<(&str, &str, Option<&str>)> = s
            .members
            .iter()
            .map(|m| (m.party.as_str(), m.role.as_str(), m.agreement.as_deref()))
            .collect();
        assert_eq!(members, [("NL", "lead", None), ("DE", "member", Some("jit-lantern"))]);
        let actions: Vec<(&str, &str)> =
            s.timeline.iter().map(|e| (e.action.as_str(), e.decision.as_str())).collect();
        assert_eq!(
            actions,
            [("case.open", "permit"), ("case.member.add", "permit"), ("case.member.add", "deny")]
        );
        assert_eq!(s.timeline[1].index, added);

        // The US, outside the JIT: the same answer as for a case that does not exist, and
        // nothing recorded.
        let size = db.store.ledger_head().await.unwrap().0;
        let us_peer = Actor::Peer { party: "US".parse().unwrap() };
        let hidden = gate.submit(us_peer.clone(), status("LANTERN"), now).await.unwrap_err();
        let missing = gate.submit(us_peer, status("NOSUCH"), now).await.unwrap_err();
        assert!(matches!(hidden, GateError::NotFound(_)), "{hidden:?}");
        assert_eq!(
            hidden.to_string().replace("LANTERN", "X"),
            missing.to_string().replace("NOSUCH", "X")
        );
        assert_eq!(db.store.ledger_head().await.unwrap().0, size);

        // Users of this node: an investigator reads it; an auditor is denied (recorded).
        let v = gate.submit(investigator(), status("LANTERN"), now).await.unwrap();
        let Verdict::Permitted { output: s, .. } = v else { panic!("{v:?}") };
        assert_eq!(s.timeline.last().map(|e| e.actor.as_str()), Some("peer DE"));
        let auditor = Actor::User { name: "ann".into(), role: Role::Auditor };
        let v = gate.submit(auditor, status("LANTERN"), now).await.unwrap();
        assert!(matches!(v, Verdict::Denied { .. }), "{v:?}");

        // The timeline is read through `ledger_subjects`; it names exactly the entries whose
        // subjects name the case, as a scan of the whole ledger finds them. Also for a ledger
        // written before that table: a writer that starts finds it behind and completes it.
        let scan = |entries: Vec<(u64, Vec<u8>)>| -> Vec<u64> {
            entries
                .into_iter()
                .filter(|(_, b)| {
                    let e = entente_core::ledger::LedgerEntry::decode(b).unwrap();
                    e.subjects.iter().any(|s| s.to_string() == "case:LANTERN")
                })
                .map(|(i, _)| i)
                .collect()
        };
        for forget in [false, true] {
            let gate = if forget {
                for sql in
                    ["DELETE FROM ledger_subjects", "UPDATE ledger_subjects_upto SET size = NULL"]
                {
                    sqlx::query(sql).execute(&db.store.pool).await.unwrap();
                }
                Gate::start(db.store.clone(), key(), nl(), shipped_agreements())
            } else {
                gate.clone()
            };
            let v = gate.submit(investigator(), status("LANTERN"), now).await.unwrap();
            let Verdict::Permitted { output: s, index, .. } = v else { panic!("{v:?}") };
            let shown: Vec<u64> = s.timeline.iter().map(|e| e.index).collect();
            let all = db.store.entries(0, index).await.unwrap();
            assert_eq!(shown, scan(all), "forgotten and rebuilt: {forget}");
        }
        verify_ledger(&db.store, &nl(), &vkey(&gate), &mut |_, _| {}).await.unwrap();

        state_agrees(&db).await;
        db.drop_schema().await;
    }
}

/// Hands the messages `from` has waiting for `to` to `to`'s gate as inbound envelopes (the
/// node layer's job once it has checked the signature), acknowledging them at `from`.
async fn hand_over(
    from: (&Store, &Gate, &PartyCode),
    to: (&Gate, &PartyCode, &str),
    now: Timestamp,
) -> Vec<Result<Verdict<()>, GateError>> {
    use crate::federation::InboundEnvelope;
    use entente_wire::envelope::{AckItem, AckStatus, message_id, payload_digest};
    let (store, from_gate, from_party) = from;
    let (to_gate, to_party, cert) = to;
    let pending = store.pending_messages(to_party, 100).await.unwrap();
    let commands: Vec<InboundEnvelope> = pending
        .iter()
        .map(|m| InboundEnvelope {
            from: from_party.clone(),
            cert_sha256: cert.into(),
            id: message_id(from_party, to_party, m.seq),
            seq: m.seq,
            kind: m.kind.as_str().to_owned(),
            payload: m.payload.clone(),
            envelope_sha256: payload_digest(&m.payload).unwrap(),
            payload_sha256: payload_digest(&m.payload).unwrap(),
        })
        .collect();
    let results = to_gate
        .receive_many(Actor::Peer { party: from_party.clone() }, unsigned(commands), now)
        .await;
    // As the federation endpoint does: a `resequence` item ends the acknowledgement.
    let answered = results
        .iter()
        .position(|r| matches!(r, Err(GateError::SendAgain(_))))
        .map_or(results.len(), |i| i + 1);
    let items: Vec<AckItem> = pending
        .iter()
        .zip(&results[..answered])
        .map(|(m, r)| match r {
            Err(GateError::SendAgain(item)) => item.clone(),
            r => AckItem {
                id: message_id(from_party, to_party, m.seq),
                seq: m.seq,
                status: match r {
                    Ok(Verdict::Permitted { .. }) => AckStatus::Applied,
                    _ => AckStatus::Denied,
                },
                ledger_index: match r {
                    Ok(Verdict::Permitted { index, .. } | Verdict::Denied { index, .. }) => *index,
                    _ => 0,
                },
                replayed: false,
                reason: None,
                next_seq: None,
            },
        })
        .collect();
    if !items.is_empty() {
        let ack = crate::peers::RecordAcks {
            peer: to_party.clone(),
            ack_sha256: "sha256:00".into(),
            items,
        };
        from_gate.submit(Actor::Peer { party: to_party.clone() }, ack, now).await.unwrap();
    }
    results
}

/// A request submitted at NL arrives at DE in state `submitted`; DE's receipt travels back;
/// both copies then hold the same events and the same clock; a replayed envelope is not
/// applied twice; a party may not record the other side's events on its copy.
#[tokio::test]
async fn requests_travel_between_nodes() {
    use entente_policy::agreement::RequestKind;
    use entente_policy::request::{RequestEvent, RequestState};
    let t = |s: &str| -> Timestamp { s.parse().unwrap() };
    let pairs = backends().await.into_iter().zip(backends().await);
    for (nl_db, de_db) in pairs {
        let de_key = SigningKey::from_bytes(&[7u8; 32]);
        let nl_gate = Gate::start(nl_db.store.clone(), key(), nl(), shipped_agreements());
        let de_gate = Gate::start(de_db.store.clone(), de_key, de(), shipped_agreements());
        let pin = |party: PartyCode, cert: &str| crate::peers::AddPeer {
            party,
            url: "https://127.0.0.1:1".into(),
            cert_pem: "-".into(),
            cert_sha256: cert.repeat(64),
            signing_key: "b".repeat(64),
            age_recipient: None,
        };
        let at = t("2026-09-01T08:00:00Z");
        nl_gate.submit(Actor::Operator, pin(de(), "d"), at).await.unwrap();
        de_gate.submit(Actor::Operator, pin(nl(), "e"), at).await.unwrap();
        let ca = Actor::User { name: "pros".into(), role: Role::CentralAuthority };
        let case = crate::cases::OpenCase {
            id: "L".parse().unwrap(),
            title: "t".into(),
            concepts: vec![],
        };
        nl_gate.submit(ca.clone(), case, at).await.unwrap();
        let create = crate::requests::CreateRequest {
            id: "r1".parse().unwrap(),
            case_id: "L".parse().unwrap(),
            kind: RequestKind::Production,
            agreement: "eu-2023-1543".into(),
            to: de(),
            emergency: false,
            provisions: vec!["Sr 138ab".into()],
        };
        nl_gate.submit(ca.clone(), create, at).await.unwrap();
        // A draft does not travel.
        assert!(nl_db.store.pending_messages(&de(), 10).await.unwrap().is_empty());
        let step = |event| crate::requests::TransitionRequest { id: "r1".parse().unwrap(), event };
        nl_gate
            .submit(ca.clone(), step(RequestEvent::Submit), t("2026-09-01T09:00:00Z"))
            .await
            .unwrap();
        let nl_side = (&nl_db.store, &nl_gate, &nl());
        let de_side = (&de_db.store, &de_gate, &de());
        let r =
            hand_over(nl_side, (&de_gate, &de(), &"e".repeat(64)), t("2026-09-01T09:00:01Z")).await;
        assert!(matches!(&r[..], [Ok(Verdict::Permitted { .. })]), "{r:?}");
        assert_eq!(de_db.store.request_event_count("r1").await.unwrap(), 1);
        assert_eq!(de_db.store.request_provisions("r1").await.unwrap(), ["Sr 138ab"]);

        // DE records receipt on its copy (Friday 19:00 CEST); it travels back to NL.
        let de_ca = Actor::User { name: "bfj".into(), role: Role::CentralAuthority };
        de_gate
            .submit(de_ca.clone(), step(RequestEvent::Receive), t("2026-09-04T17:00:00Z"))
            .await
            .unwrap();
        let r =
            hand_over(de_side, (&nl_gate, &nl(), &"d".repeat(64)), t("2026-09-04T17:00:02Z")).await;
        assert!(matches!(&r[..], [Ok(Verdict::Permitted { .. })]), "{r:?}");
        for gate in [&nl_gate, &de_gate] {
            let v = gate
                .submit(
                    Actor::Operator,
                    crate::requests::ReadRequest { id: "r1".parse().unwrap() },
                    t("2026-09-05T08:00:00Z"),
                )
                .await
                .unwrap();
            let Verdict::Permitted { output: r, .. } = v else { panic!("{v:?}") };
            assert_eq!(r.state, RequestState::Received);
            assert_eq!(r.history.len(), 2);
            // The same clock on both copies: 10 days from DE's receipt, in DE's zone, ending
            // with the last hour of the last day (Reg. 1182/71 Art 3(2)(b)).
            assert_eq!(r.clocks[0].due.to_string(), "2026-09-14T22:00:00Z");
        }

        // The same envelope again (seq 1 from DE, its payload digest as applied) is answered
        // with the stored outcome.
        let applied: String =
            sqlx::query_scalar("SELECT payload_sha256 FROM inbox WHERE sender = 'DE' AND seq = 1")
                .fetch_one(&nl_db.store.pool)
                .await
                .unwrap();
        let replay = |payload_sha256: String| crate::federation::InboundEnvelope {
            from: de(),
            cert_sha256: "d".repeat(64),
            id: "DE-NL-1".into(),
            seq: 1,
            kind: "request-event".into(),
            payload: serde_json::json!({}),
            envelope_sha256: "sha256:00".into(),
            payload_sha256,
        };
        let e = receive(
            &nl_gate,
            Actor::Peer { party: de() },
            replay(applied.clone()),
            t("2026-09-05T08:00:00Z"),
        )
        .await;
        assert!(matches!(&e, Err(GateError::Replayed(item)) if item.replayed), "{e:?}");
        assert_eq!(nl_db.store.request_event_count("r1").await.unwrap(), 2);
        // The same number and id with another payload is refused loudly and recorded (rule
        // federation#seq-reuse); the applied message stands, nothing of the other is kept.
        let before = nl_db.store.ledger_head().await.unwrap().0;
        // DE is told the number NL expects next, to send its message under.
        let e = receive(
            &nl_gate,
            Actor::Peer { party: de() },
            replay(format!("sha256:{}", "0".repeat(64))),
            t("2026-09-05T08:00:00Z"),
        )
        .await;
        let Err(GateError::SendAgain(item)) = e else { panic!("{e:?}") };
        assert_eq!(
            (item.status, item.seq, item.next_seq),
            (entente_wire::AckStatus::Resequence, 1, Some(2))
        );
        assert_eq!(item.ledger_index, before);
        let reason = item.reason.unwrap_or_default();
        assert!(reason.contains(&applied) && reason.contains("as number 2"), "{reason}");
        let (_, bytes) = nl_db.store.entries(before, before + 1).await.unwrap().remove(0);
        let entry = ledger::LedgerEntry::decode(&bytes).unwrap();
        assert_eq!(entry.rules, ["federation#seq-reuse"]);
        assert_eq!(nl_db.store.ledger_head().await.unwrap().0, before + 1);
        assert_eq!(nl_db.store.request_event_count("r1").await.unwrap(), 2);
        let again = receive(
            &nl_gate,
            Actor::Peer { party: de() },
            replay(applied),
            t("2026-09-05T08:00:00Z"),
        )
        .await;
        assert!(matches!(&again, Err(GateError::Replayed(item)) if item.replayed), "{again:?}");

        // NL may not send DE an approval of its own request: refused on content, recorded.
        let forged = crate::federation::InboundEnvelope {
            from: nl(),
            cert_sha256: "e".repeat(64),
            id: "NL-DE-2".into(),
            seq: 2,
            kind: "request-event".into(),
            payload: serde_json::json!({"id": "r1", "record": {"seq": 2, "event": "approve", "grounds": [], "at": "2026-09-05T08:00:00Z"}}),
            envelope_sha256: "sha256:00".into(),
            payload_sha256: "sha256:00".into(),
        };
        let v = receive(&de_gate, Actor::Peer { party: nl() }, forged, t("2026-09-05T08:00:00Z"))
            .await
            .unwrap();
        let Verdict::Denied { decision, .. } = v else { panic!("{v:?}") };
        assert!(decision.reason.contains("recorded by the other side"), "{}", decision.reason);
        assert_eq!(de_db.store.request_event_count("r1").await.unwrap(), 2);
        // A gap in the sender's sequence is not applied and not recorded: the sender is asked
        // to send again from the number expected.
        let size = de_db.store.ledger_head().await.unwrap().0;
        let gap = crate::federation::InboundEnvelope {
            from: nl(),
            cert_sha256: "e".repeat(64),
            id: "NL-DE-9".into(),
            seq: 9,
            kind: "request-event".into(),
            payload: serde_json::json!({}),
            envelope_sha256: "sha256:00".into(),
            payload_sha256: "sha256:00".into(),
        };
        let e =
            receive(&de_gate, Actor::Peer { party: nl() }, gap, t("2026-09-05T08:00:00Z")).await;
        let Err(GateError::SendAgain(item)) = &e else { panic!("{e:?}") };
        assert_eq!(
            (item.status, item.seq, item.next_seq),
            (entente_wire::AckStatus::Resend, 9, Some(3))
        );
        assert!(
            item.reason.as_deref().is_some_and(|r| r.contains("expects sequence number 3")),
            "{item:?}"
        );
        assert_eq!(de_db.store.ledger_head().await.unwrap().0, size, "a gap is not recorded");

        // DE sends data about case `L`, which at NL is NL's case and DE is not a member of it:
        // refused on content, recorded, nothing stored.
        let de_inv = Actor::User { name: "ina".into(), role: Role::Investigator };
        let de_case = crate::cases::OpenCase {
            id: "L".parse().unwrap(),
            title: "t".into(),
            concepts: vec!["illegal-access".into()],
        };
        de_gate.submit(de_inv.clone(), de_case, at).await.unwrap();
        let mut content = serde_json::Map::new();
        content.insert("c2_ip".into(), serde_json::json!("203.0.113.77"));
        let add = crate::flows::AddDatum {
            id: "d1".parse().unwrap(),
            case_id: "L".parse().unwrap(),
            category: entente_policy::agreement::DataCategory::Traffic,
            content,
        };
        de_gate.submit(de_inv.clone(), add, at).await.unwrap();
        let share = crate::flows::ShareDatum {
            id: "d1".parse().unwrap(),
            to: nl(),
            purpose: entente_policy::agreement::Purpose::JointInvestigation,
            request_kind: None,
        };
        let v = de_gate.submit(de_inv, share, t("2026-09-05T09:00:00Z")).await.unwrap();
        assert!(matches!(v, Verdict::Permitted { .. }), "{v:?}");
        let r =
            hand_over(de_side, (&nl_gate, &nl(), &"d".repeat(64)), t("2026-09-05T09:00:01Z")).await;
        let [Ok(Verdict::Denied { decision, .. })] = &r[..] else { panic!("{r:?}") };
        assert_eq!(decision.rules, ["federation#case-member"], "{}", decision.reason);
        assert!(decision.reason.contains("DE is not a member"), "{}", decision.reason);
        assert!(nl_db.store.datum_content("d1").await.unwrap().is_none());
        verify_ledger(&nl_db.store, &nl(), &vkey(&nl_gate), &mut |_, _| {}).await.unwrap();
        state_agrees(&nl_db).await;
        nl_db.drop_schema().await;
        state_agrees(&de_db).await;
        de_db.drop_schema().await;
    }
}

/// NL is restored from a backup older than a message DE applied: NL's next message reuses
/// that sequence number. DE refuses it (recorded, `federation#seq-reuse`), admits nothing
/// after it in the batch and names the number it expects; NL numbers its waiting messages
/// again from there, in order, and DE applies them. No number is used twice at DE.
#[tokio::test]
async fn a_restored_sender_numbers_its_messages_after_what_the_partner_applied() {
    use entente_policy::agreement::RequestKind;
    use entente_policy::request::RequestEvent;
    let t = |s: &str| -> Timestamp { s.parse().unwrap() };
    let pairs = backends().await.into_iter().zip(backends().await);
    for (nl_db, de_db) in pairs {
        let nl_gate = Gate::start(nl_db.store.clone(), key(), nl(), shipped_agreements());
        let de_key = SigningKey::from_bytes(&[7u8; 32]);
        let de_gate = Gate::start(de_db.store.clone(), de_key, de(), shipped_agreements());
        let pin = |party: PartyCode, cert: &str| crate::peers::AddPeer {
            party,
            url: "https://127.0.0.1:1".into(),
            cert_pem: "-".into(),
            cert_sha256: cert.repeat(64),
            signing_key: "b".repeat(64),
            age_recipient: None,
        };
        let at = t("2026-09-01T08:00:00Z");
        nl_gate.submit(Actor::Operator, pin(de(), "d"), at).await.unwrap();
        de_gate.submit(Actor::Operator, pin(nl(), "e"), at).await.unwrap();
        let ca = Actor::User { name: "pros".into(), role: Role::CentralAuthority };
        let case = crate::cases::OpenCase {
            id: "L".parse().unwrap(),
            title: "t".into(),
            concepts: vec![],
        };
        nl_gate.submit(ca.clone(), case, at).await.unwrap();
        let send = async |id: &str| {
            let create = crate::requests::CreateRequest {
                id: id.parse().unwrap(),
                case_id: "L".parse().unwrap(),
                kind: RequestKind::Production,
                agreement: "eu-2023-1543".into(),
                to: de(),
                emergency: false,
                provisions: vec!["Sr 138ab".into()],
            };
            nl_gate.submit(ca.clone(), create, at).await.unwrap();
            let submit = crate::requests::TransitionRequest {
                id: id.parse().unwrap(),
                event: RequestEvent::Submit,
            };
            nl_gate.submit(ca.clone(), submit, t("2026-09-01T09:00:00Z")).await.unwrap();
        };
        let nl_side = (&nl_db.store, &nl_gate, &nl());
        let to_de = (&de_gate, &de(), "e".repeat(64));
        let over = async || {
            hand_over(nl_side, (to_de.0, to_de.1, &to_de.2), t("2026-09-01T09:00:01Z")).await
        };
        send("r1").await;
        let r = over().await;
        assert!(matches!(&r[..], [Ok(Verdict::Permitted { .. })]), "{r:?}");

        // The restore loses NL's record of r1's message (number 1 to DE).
        sqlx::query("DELETE FROM outbox WHERE recipient = 'DE'")
            .execute(&nl_db.store.pool)
            .await
            .unwrap();
        send("r2").await;
        send("r3").await;
        let nl_seqs = async || {
            let sql = "SELECT seq FROM outbox WHERE recipient = 'DE' ORDER BY seq";
            sqlx::query_scalar::<_, i64>(sql).fetch_all(&nl_db.store.pool).await.unwrap()
        };
        let de_seqs = async || {
            let sql = "SELECT seq FROM inbox WHERE sender = 'NL' ORDER BY seq";
            sqlx::query_scalar::<_, i64>(sql).fetch_all(&de_db.store.pool).await.unwrap()
        };
        assert_eq!(nl_seqs().await, [1, 2], "r2 and r3 reuse numbers DE has applied");
        let de_before = de_db.store.ledger_head().await.unwrap().0;
        let r = over().await;
        assert!(matches!(&r[0], Err(GateError::SendAgain(i)) if i.next_seq == Some(2)), "{r:?}");
        assert!(
            matches!(&r[1], Err(GateError::Conflict(d)) if d.contains("not admitted")),
            "{r:?}"
        );
        // One refusal recorded at DE; r3 was not admitted, nothing of r2 applied.
        assert_eq!(de_db.store.ledger_head().await.unwrap().0, de_before + 1);
        assert_eq!(de_db.store.request_event_count("r2").await.unwrap(), 0);
        assert_eq!(de_seqs().await, [1]);
        // NL numbered them again after DE's last, in their order.
        assert_eq!(nl_seqs().await, [2, 3]);
        let r = over().await;
        assert!(
            matches!(&r[..], [Ok(Verdict::Permitted { .. }), Ok(Verdict::Permitted { .. })]),
            "{r:?}"
        );
        assert_eq!(de_seqs().await, [1, 2, 3]);
        for id in ["r1", "r2", "r3"] {
            assert_eq!(de_db.store.request_event_count(id).await.unwrap(), 1, "{id}");
        }
        assert!(nl_db.store.pending_messages(&de(), 10).await.unwrap().is_empty());
        // The renumbering is in NL's ledger: the acknowledgement's entry names it.
        let (size, _) = nl_db.store.ledger_head().await.unwrap();
        let entries = nl_db.store.entries(0, size).await.unwrap();
        let acks: Vec<_> = entries
            .iter()
            .map(|(_, b)| ledger::LedgerEntry::decode(b).unwrap())
            .filter(|e| e.action == entente_core::Action::EnvelopeAck)
            .collect();
        assert!(
            acks.iter().any(|e| e.payload_hashes.contains_key("resequence")),
            "no acknowledgement entry records the renumbering"
        );
        verify_ledger(&nl_db.store, &nl(), &vkey(&nl_gate), &mut |_, _| {}).await.unwrap();
        state_agrees(&nl_db).await;
        nl_db.drop_schema().await;
        state_agrees(&de_db).await;
        de_db.drop_schema().await;
    }
}

/// Threat intelligence through the gate on both backends: a collection, an all-or-nothing
/// import (a conflicting version refuses everything), versions by `modified`, pages decided
/// under TLP 2.0 per requester with one ledger entry per page, and positions for paging.
#[tokio::test]
async fn intel_import_and_tlp_reads() {
    use crate::intel::{IntelQuery, IntelView};
    use entente_intel::tlp::Tlp;
    let now: Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
    let coll = "0e1f7a4c-4d2e-4a8b-9c3d-5e6f7a8b9c0d";
    let ind = |n: u32, tlp: Tlp, extra: &str, modified: &str| {
        format!(
            r#"{{"type":"indicator","spec_version":"2.1","id":"indicator--00000000-0000-4000-8000-{n:012}","created":"2026-11-01T00:00:00Z","modified":"{modified}","pattern":"[ipv4-addr:value = '198.51.100.{n}']","pattern_type":"stix","valid_from":"2026-11-01T00:00:00Z","object_marking_refs":["{}"]{extra}}}"#,
            tlp.marking_id()
        )
    };
    let envelope = |objs: &[String]| format!(r#"{{"objects":[{}]}}"#, objs.join(","));
    for db in backends().await {
        let gate = Gate::start(db.store.clone(), key(), nl(), shipped_agreements());
        let csirt = Actor::User { name: "cert".into(), role: Role::Csirt };
        let create = crate::intel::IntelCollectionCreate {
            id: coll.into(),
            title: "LANTERN indicators".into(),
            description: String::new(),
            parties: vec![de(), "US".parse().unwrap()],
        };
        gate.submit(csirt.clone(), create.clone(), now).await.unwrap();
        assert!(matches!(
            gate.submit(csirt.clone(), create, now).await,
            Err(GateError::Conflict(_))
        ));
        let import = |objs: Vec<String>, status: &str| crate::intel::IntelImport {
            collection: coll.into(),
            objects: std::sync::Arc::new(
                entente_intel::stix::parse_envelope(&envelope(&objs)).unwrap(),
            ),
            originator: None,
            status_id: status.into(),
        };
        let first = vec![
            ind(1, Tlp::Amber, "", "2026-11-01T00:00:00Z"),
            ind(2, Tlp::Red, r#","x_entente_recipients":["DE"]"#, "2026-11-01T00:00:00Z"),
            ind(3, Tlp::Green, "", "2026-11-01T00:00:00Z"),
        ];
        let s1 = "11111111-1111-4111-8111-111111111111";
        let v = gate.submit(csirt.clone(), import(first.clone(), s1), now).await.unwrap();
        let Verdict::Permitted { output: st, .. } = v else { panic!("{v:?}") };
        assert_eq!((st.total_count, st.success_count), (3, 3));
        let page = db.store.intel_status(s1, 0, 1000).await.unwrap();
        assert_eq!((page.success_count, page.successes.len(), page.next), (3, 3, None));
        assert_eq!(page.successes, st.successes);
        assert_eq!(page.requested_by.as_deref(), Some("user:cert"), "{page:?}");
        // Read a page at a time: two, then the last one.
        let p1 = db.store.intel_status(s1, 0, 2).await.unwrap();
        assert_eq!((p1.successes.len(), p1.next), (2, Some(2)));
        let p2 = db.store.intel_status(s1, 2, 2).await.unwrap();
        assert_eq!((p2.successes.len(), p2.next, p2.success_count), (1, None, 3));
        assert_eq!([&p1.successes[..], &p2.successes[..]].concat(), page.successes);
        // A new version of 1, the same 3 again (a success, not a failure), and a changed 2
        // with the stored version: the whole import is refused.
        let s2 = "22222222-2222-4222-8222-222222222222";
        let bad = vec![
            ind(1, Tlp::Amber, "", "2026-11-02T00:00:00Z"),
            first[2].clone(),
            ind(2, Tlp::Red, r#","x_entente_recipients":["US"]"#, "2026-11-01T00:00:00Z"),
        ];
        let e = gate.submit(csirt.clone(), import(bad.clone(), s2), now).await;
        assert!(matches!(&e, Err(GateError::Conflict(m)) if m.contains("000000000002")), "{e:?}");
        assert!(db.store.intel_status(s2, 0, 10).await.is_err());
        let v = gate.submit(csirt.clone(), import(bad[..2].to_vec(), s2), now).await.unwrap();
        let Verdict::Permitted { output: st, .. } = v else { panic!("{v:?}") };
        assert_eq!(st.success_count, 2);

        let read = |view, limit, after| crate::intel::IntelRead {
            collection: coll.into(),
            view,
            query: IntelQuery { limit, after, ..IntelQuery::default() },
        };
        let served =
            |v: Verdict<crate::IntelPage>| -> (Vec<String>, usize, Option<(String, i64)>, bool) {
                let Verdict::Permitted { output: p, .. } = v else { panic!("{v:?}") };
                (
                    p.rows.iter().map(|r| r.id[r.id.len() - 1..].to_owned()).collect(),
                    p.withheld,
                    p.last,
                    p.more,
                )
            };
        let peer = |p: &str| Actor::Peer { party: p.parse().unwrap() };
        let (ids, withheld, _, _) =
            served(gate.submit(peer("DE"), read(IntelView::Objects, 10, None), now).await.unwrap());
        assert_eq!((ids, withheld), (vec!["2".to_owned(), "3".into(), "1".into()], 0));
        let (ids, withheld, _, _) =
            served(gate.submit(peer("US"), read(IntelView::Objects, 10, None), now).await.unwrap());
        assert_eq!((ids, withheld), (vec!["3".to_owned(), "1".into()], 1));
        // FR: no agreement with NL in force, not a collection party.
        let (ids, _, _, _) =
            served(gate.submit(peer("FR"), read(IntelView::Objects, 10, None), now).await.unwrap());
        assert!(ids.is_empty());
        // The importing user's colleague without a name on the RED object does not see it.
        let eva = investigator();
        let (ids, _, _, _) = served(
            gate.submit(eva.clone(), read(IntelView::Objects, 10, None), now).await.unwrap(),
        );
        assert_eq!(ids, vec!["3".to_owned(), "1".into()]);
        // Versions of every object, paged one at a time.
        let mut after = None;
        let mut all = Vec::new();
        loop {
            let (ids, _, last, more) = served(
                gate.submit(peer("DE"), read(IntelView::Versions, 1, after.clone()), now)
                    .await
                    .unwrap(),
            );
            all.extend(ids);
            after = last;
            if !more {
                break;
            }
        }
        assert_eq!(all, vec!["1", "2", "3", "1"]);
        // The ledger records each page with the served ids' digest and the TLP decision.
        let (size, _) = db.store.ledger_head().await.unwrap();
        let last = db.store.entries(size - 1, size).await.unwrap();
        let entry = entente_core::ledger::LedgerEntry::decode(&last[0].1).unwrap();
        assert_eq!(entry.action, entente_core::Action::IntelRead);
        assert!(entry.payload_hashes["served"].starts_with("sha256:"));
        assert!(
            entry.payload_hashes["tlp.summary"].contains("versions"),
            "{:?}",
            entry.payload_hashes
        );
        verify_ledger(&db.store, &nl(), &vkey(&gate), &mut |_, _| {}).await.unwrap();
        state_agrees(&db).await;
        db.drop_schema().await;
    }
}

#[tokio::test]
async fn evidence_custody_through_the_gate() {
    use crate::evidence::NewEvidence;
    use entente_evidence::{BlobRef, CustodyKind};
    use entente_policy::agreement::{DataCategory, Purpose, RequestKind};
    // EU 2023/1543 applies from 18 August 2026.
    let now: Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
    for db in backends().await {
        let gate = Gate::start(db.store.clone(), key(), de(), shipped_agreements());
        let kai = Actor::User { name: "kai".into(), role: Role::Investigator };
        gate.submit(kai.clone(), open("C-DE"), now).await.unwrap();
        let item = |id: &str, sha: &str| crate::evidence::AddEvidence {
            item: (NewEvidence {
                id: id.parse().unwrap(),
                case_id: "C-DE".parse().unwrap(),
                sha256: sha.into(),
                size: 10,
                category: DataCategory::Traffic,
                media_type: "text/plain".into(),
                description: "logs".into(),
                file_name: Some("a.log".into()),
                source: None,
                collected_at: Some("2026-04-02T09:30:00Z".into()),
                location: None,
                tool: "test".into(),
                blob: BlobRef {
                    name: format!("{}/{sha}.k.age", &sha[..2]),
                    wrapped_key: "w".into(),
                },
                reason: "order executed".into(),
                legal_basis: Some("REQ-1".into()),
            }),
        };
        let sha = "ab".repeat(32);
        let v = gate.submit(kai.clone(), item("EV-1", &sha), now).await.unwrap();
        let Verdict::Permitted { output: r, index, .. } = v else { panic!("{v:?}") };
        assert!(!r.deduplicated);
        assert_eq!(r.chain[0].event.event, CustodyKind::Acquired);
        assert_eq!(r.chain[0].ledger_index, Some(index));
        // The ledger entry holds the event's digest, not its content.
        let entry = db.store.entries(index, index + 1).await.unwrap();
        let entry = ledger::LedgerEntry::decode(&entry[0].1).unwrap();
        assert_eq!(entry.payload_hashes.get("custody"), Some(&r.chain[0].event.digest()));
        assert!(
            !String::from_utf8_lossy(&db.store.entries(index, index + 1).await.unwrap()[0].1)
                .contains("order executed")
        );
        // Same id: conflict, nothing recorded; same content under another id: de-duplicated.
        let before = db.store.ledger_head().await.unwrap().0;
        assert!(matches!(
            gate.submit(kai.clone(), item("EV-1", &sha), now).await,
            Err(GateError::Conflict(_))
        ));
        assert_eq!(db.store.ledger_head().await.unwrap().0, before);
        let v = gate.submit(kai.clone(), item("EV-2", &sha), now).await.unwrap();
        assert!(matches!(v, Verdict::Permitted { output: ref r, .. } if r.deduplicated));
        // Unknown case, bad hash, acquired recorded directly: refused.
        let mut bad = item("EV-3", &sha);
        bad.item.case_id = "NOPE".parse().unwrap();
        assert!(matches!(gate.submit(kai.clone(), bad, now).await, Err(GateError::NotFound(_))));
        assert!(matches!(
            gate.submit(kai.clone(), item("EV-4", "xyz"), now).await,
            Err(GateError::Invalid(_))
        ));
        let custody = |event| crate::evidence::EvidenceCustody {
            id: "EV-1".parse().unwrap(),
            event,
            reason: "seal".into(),
            legal_basis: None,
        };
        assert!(matches!(
            gate.submit(kai.clone(), custody(CustodyKind::Acquired), now).await,
            Err(GateError::Invalid(_))
        ));
        gate.submit(kai.clone(), custody(CustodyKind::Sealed), now).await.unwrap();
        // An auditor may not touch evidence; the denial is recorded.
        let ann = Actor::User { name: "ann".into(), role: Role::Auditor };
        assert!(matches!(
            gate.submit(ann, custody(CustodyKind::Accessed), now).await.unwrap(),
            Verdict::Denied { .. }
        ));
        // Export under NL's production order, with a retention limit imposed by DE.
        let export = |to: &str, purpose| crate::evidence::ExportEvidence {
            id: "EV-1".parse().unwrap(),
            to: to.parse().unwrap(),
            request: "REQ-1".parse().unwrap(),
            request_kind: Some(RequestKind::Production),
            purpose,
            retain_until: Some("2028-04-08T00:00:00Z".into()),
        };
        let v = gate
            .submit(kai.clone(), export("NL", Purpose::CriminalInvestigation), now)
            .await
            .unwrap();
        let Verdict::Permitted { output: r, decision, .. } = v else { panic!("{v:?}") };
        assert!(
            decision.rules.iter().any(|r| r.starts_with("eu-2023-1543")),
            "{:?}",
            decision.rules
        );
        let c = r.conditions.unwrap();
        assert_eq!(c.retain_until.as_deref(), Some("2028-04-08T00:00:00Z"));
        let events: Vec<_> = r.chain.iter().map(|e| e.event.clone()).collect();
        entente_evidence::custody::check_chain("EV-1", &sha, &events).unwrap();
        assert_eq!(
            events.iter().map(|e| e.event).collect::<Vec<_>>(),
            [CustodyKind::Acquired, CustodyKind::Sealed, CustodyKind::Exported]
        );
        // Not destroyable: no retention limit binds the node's own evidence.
        assert!(matches!(
            gate.submit(
                Actor::Operator,
                crate::evidence::DestroyEvidence { id: "EV-1".parse().unwrap() },
                now
            )
            .await,
            Err(GateError::Conflict(_))
        ));
        verify_ledger(&db.store, &de(), &vkey(&gate), &mut |_, _| {}).await.unwrap();
        state_agrees(&db).await;
        db.drop_schema().await;
    }
}

#[tokio::test]
async fn packages_offered_arrive_or_are_refused() {
    use entente_wire::PackageOffer;
    let now: Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
    for db in backends().await {
        let gate = Gate::start(db.store.clone(), key(), nl(), shipped_agreements());
        let peer = Actor::Peer { party: de() };
        let offer = |sha: &str| PackageOffer {
            sha256: sha.repeat(64),
            size: 100,
            file_name: "answer.tar.age".into(),
            manifest_sha256: "c".repeat(64),
            request: Some("REQ-1".into()),
            items: vec!["EV-1".into()],
        };
        let receive = |o: PackageOffer| crate::packages::ReceivePackageOffer { offer: o };
        // Bad offers: refused before anything is recorded.
        let before = db.store.ledger_head().await.unwrap().0;
        for (o, what) in [
            (PackageOffer { size: 0, ..offer("a") }, "size"),
            (PackageOffer { file_name: "../etc/passwd".into(), ..offer("a") }, "file_name"),
            (PackageOffer { sha256: "A".repeat(64), ..offer("a") }, "sha256"),
            (PackageOffer { items: vec![], ..offer("a") }, "items"),
            (PackageOffer { items: vec!["../x".into()], ..offer("a") }, "evidence item id"),
        ] {
            let e = gate.submit(peer.clone(), receive(o), now).await.unwrap_err();
            assert!(matches!(&e, GateError::Invalid(m) if m.contains(what)), "{what}: {e}");
        }
        assert_eq!(db.store.ledger_head().await.unwrap().0, before);
        // A user cannot pose as a partner's offer.
        let v = gate.submit(investigator(), receive(offer("a")), now).await.unwrap();
        assert!(matches!(v, Verdict::Denied { .. }));

        let v = gate.submit(peer.clone(), receive(offer("a")), now).await.unwrap();
        assert!(matches!(v, Verdict::Permitted { .. }), "{v:?}");
        let e = gate.submit(peer.clone(), receive(offer("a")), now).await.unwrap_err();
        assert!(matches!(e, GateError::Conflict(_)), "{e}");
        let pending = db.store.packages_in(true).await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!((pending[0].party.as_str(), pending[0].status.as_str()), ("DE", "pending"));

        let arrive = |sha: &str, got: &str, got_size: u64| crate::packages::ArrivePackage {
            from: de(),
            sha256: sha.repeat(64),
            size: 100,
            got_sha256: got.repeat(64),
            got_size,
            resumed_from: 40,
        };
        let v = gate.submit(Actor::Operator, arrive("a", "a", 100), now).await.unwrap();
        let Verdict::Permitted { index, .. } = v else { panic!("{v:?}") };
        let all = db.store.packages_in(false).await.unwrap();
        assert_eq!(all[0].status, "arrived");
        assert_eq!(all[0].arrival_index, Some(index));
        assert_eq!(all[0].resumed_from, Some(40));
        assert!(db.store.packages_in(true).await.unwrap().is_empty());

        // Other bytes (another digest, or the right digest claimed with another size): a
        // recorded deny, the offer closed as refused, never fetched again.
        gate.submit(peer.clone(), receive(offer("b")), now).await.unwrap();
        let v = gate.submit(Actor::Operator, arrive("b", "d", 100), now).await.unwrap();
        let Verdict::Denied { decision, .. } = v else { panic!("{v:?}") };
        assert_eq!(decision.rules, vec!["federation#package-digest".to_owned()]);
        let b = db.store.packages_in(false).await.unwrap().pop().unwrap();
        assert_eq!(b.status, "refused");
        assert!(b.detail.unwrap().contains(&"d".repeat(64)));
        let e = gate.submit(Actor::Operator, arrive("b", "b", 100), now).await.unwrap_err();
        assert!(matches!(e, GateError::NotFound(_)), "{e}");
        gate.submit(peer.clone(), receive(offer("e")), now).await.unwrap();
        let v = gate.submit(Actor::Operator, arrive("e", "e", 99), now).await.unwrap();
        assert!(matches!(v, Verdict::Denied { .. }), "{v:?}");

        // Sending: only to a pinned partner, only items released by an `exported` event.
        let send = |to: PartyCode| crate::packages::SendPackage {
            to,
            offer: offer("f"),
            exports: vec![("EV-1".into(), format!("sha256:{}", "0".repeat(64)))],
        };
        let e = gate.submit(investigator(), send(de()), now).await.unwrap_err();
        assert!(matches!(&e, GateError::Invalid(m) if m.contains("pinned")), "{e}");
        gate.submit(
            Actor::Operator,
            crate::peers::AddPeer {
                party: de(),
                url: "https://127.0.0.1:1".into(),
                cert_pem: "-".into(),
                cert_sha256: "d".repeat(64),
                signing_key: "b".repeat(64),
                age_recipient: None,
            },
            now,
        )
        .await
        .unwrap();
        let e = gate.submit(investigator(), send(de()), now).await.unwrap_err();
        assert!(matches!(&e, GateError::Invalid(m) if m.contains("exported")), "{e}");
        let mismatched = crate::packages::SendPackage {
            to: de(),
            offer: offer("f"),
            exports: vec![("EV-2".into(), "x".into())],
        };
        let e = gate.submit(investigator(), mismatched, now).await.unwrap_err();
        assert!(matches!(e, GateError::Invalid(_)), "{e}");
        assert!(db.store.packages_out().await.unwrap().is_empty());
        verify_ledger(&db.store, &nl(), &vkey(&gate), &mut |_, _| {}).await.unwrap();
        state_agrees(&db).await;
        db.drop_schema().await;
    }
}

impl Store {
    /// The content of a datum straight from the table, for assertions (the shipped read is
    /// the recorded `flows::ReadDatum`).
    pub(crate) async fn datum_content(
        &self,
        id: &str,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>, crate::StoreError> {
        let content: Option<Option<String>> =
            sqlx::query_scalar("SELECT content FROM data_items WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(content.flatten().map(|c| serde_json::from_str(&c).unwrap()))
    }
}

/// A read of a datum's content is a recorded command: permitted reads and refusals each leave
/// one entry naming the reader; unknown data are not found and leave none; destroyed content
/// reads as nothing.
#[tokio::test]
async fn reads_of_personal_data_are_recorded() {
    use entente_policy::agreement::DataCategory;
    for db in backends().await {
        let gate = Gate::start(db.store.clone(), key(), nl(), no_agreements());
        gate.submit(investigator(), open("LANTERN"), t0()).await.unwrap();
        let content: serde_json::Map<String, serde_json::Value> =
            serde_json::from_value(serde_json::json!({"email": "a@b.invalid"})).unwrap();
        let add = crate::flows::AddDatum {
            id: "d1".parse().unwrap(),
            case_id: "LANTERN".parse().unwrap(),
            category: DataCategory::Subscriber,
            content: content.clone(),
        };
        gate.submit(investigator(), add, t0()).await.unwrap();
        let before = db.store.ledger_head().await.unwrap().0;
        let read = || crate::flows::ReadDatum { id: "d1".parse().unwrap() };
        let v = gate.submit(investigator(), read(), t0()).await.unwrap();
        let Verdict::Permitted { index, output, .. } = v else { panic!("{v:?}") };
        assert_eq!(output, Some(content));
        assert_eq!(index, before);
        let auditor = Actor::User { name: "ann".into(), role: Role::Auditor };
        let v = gate.submit(auditor, read(), t0()).await.unwrap();
        assert!(matches!(v, Verdict::Denied { index, .. } if index == before + 1), "{v:?}");
        let e = gate
            .submit(investigator(), crate::flows::ReadDatum { id: "nope".parse().unwrap() }, t0())
            .await
            .unwrap_err();
        assert!(matches!(e, GateError::NotFound(_)), "{e}");
        assert_eq!(db.store.ledger_head().await.unwrap().0, before + 2);
        let entries = db.store.entries(before, before + 2).await.unwrap();
        let first = entente_core::ledger::LedgerEntry::decode(&entries[0].1).unwrap();
        assert_eq!(first.action, entente_core::Action::DatumRead);
        assert_eq!(first.actor, investigator());
        state_agrees(&db).await;
        db.drop_schema().await;
    }
}

/// A column as both backends are compared on: name, type family, nullability, primary key.
use sqlx::Row as _;

type Column = (String, &'static str, bool, bool);

fn family(declared: &str) -> &'static str {
    let t = declared.to_ascii_lowercase();
    if t.contains("int") {
        "integer"
    } else if t.contains("blob") || t.contains("bytea") {
        "bytes"
    } else if t.contains("char") || t.contains("text") || t.contains("clob") {
        "text"
    } else if t.contains("real") || t.contains("double") || t.contains("float") {
        "real"
    } else if t.contains("bool") {
        "boolean"
    } else {
        "other"
    }
}

async fn sqlite_schema(store: &Store) -> std::collections::BTreeMap<String, Vec<Column>> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name NOT LIKE '_sqlx%' ORDER BY name",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap();
    let mut out = std::collections::BTreeMap::new();
    for t in tables {
        let rows = sqlx::query(
            "SELECT name, type, \"notnull\", pk FROM pragma_table_info($1) ORDER BY cid",
        )
        .bind(&t)
        .fetch_all(&store.pool)
        .await
        .unwrap();
        let cols = rows
            .iter()
            .map(|r| {
                let ty: String = r.try_get(1).unwrap();
                let not_null: i64 = r.try_get(2).unwrap();
                let pk: i64 = r.try_get(3).unwrap();
                (r.try_get(0).unwrap(), family(&ty), not_null == 0 && pk == 0, pk > 0)
            })
            .collect();
        out.insert(t, cols);
    }
    out
}

async fn postgres_schema(store: &Store) -> std::collections::BTreeMap<String, Vec<Column>> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() \
         AND table_type = 'BASE TABLE' AND table_name NOT LIKE '\\_sqlx%' ORDER BY table_name",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap();
    let mut out = std::collections::BTreeMap::new();
    for t in tables {
        let pk: Vec<String> = sqlx::query_scalar(
            "SELECT kcu.column_name::text FROM information_schema.table_constraints tc \
             JOIN information_schema.key_column_usage kcu ON tc.constraint_name = kcu.constraint_name \
             AND tc.table_schema = kcu.table_schema \
             WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = current_schema() AND tc.table_name = $1",
        )
        .bind(&t)
        .fetch_all(&store.pool)
        .await
        .unwrap();
        let rows = sqlx::query(
            "SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(&t)
        .fetch_all(&store.pool)
        .await
        .unwrap();
        let cols = rows
            .iter()
            .map(|r| {
                let name: String = r.try_get(0).unwrap();
                let ty: String = r.try_get(1).unwrap();
                let nullable: String = r.try_get(2).unwrap();
                let is_pk = pk.contains(&name);
                (name, family(&ty), nullable == "YES" && !is_pk, is_pk)
            })
            .collect();
        out.insert(t, cols);
    }
    out
}

/// The migrations are written twice, once per backend: after both ran, every table has the
/// same columns, in the same order, of the same type family, nullability and primary key.
#[tokio::test]
async fn both_backends_have_the_same_schema() {
    let dbs = backends().await;
    let [sqlite, pg] = &dbs[..] else {
        eprintln!("DATABASE_URL is not set: the schemas are compared only when both run");
        return;
    };
    let (a, b) = (sqlite_schema(&sqlite.store).await, postgres_schema(&pg.store).await);
    assert!(!a.is_empty(), "no tables found on SQLite");
    let names =
        |m: &std::collections::BTreeMap<String, Vec<Column>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b), "tables differ between SQLite and PostgreSQL");
    let mut diffs = Vec::new();
    for (table, cols) in &a {
        if cols != &b[table] {
            diffs.push(format!("{table}:\n  sqlite   {cols:?}\n  postgres {:?}", b[table]));
        }
    }
    assert!(diffs.is_empty(), "columns differ:\n{}", diffs.join("\n"));
    for db in dbs {
        db.drop_schema().await;
    }
}

/// The bench's scratch schemas: only plain lowercase names, only on PostgreSQL; anything else
/// is refused before a connection is made.
#[tokio::test]
async fn fresh_schema_refuses_names_that_would_need_quoting() {
    for bad in ["", "Bench", "1x", "x;DROP TABLE cases", "a-b", &"x".repeat(64)] {
        let e = crate::fresh_schema("postgres://127.0.0.1:1/none", bad).await.unwrap_err();
        assert!(e.to_string().contains("expected 1 to 63 lowercase"), "{bad:?}: {e}");
        let e = crate::drop_schema("postgres://127.0.0.1:1/none", bad).await.unwrap_err();
        assert!(e.to_string().contains("expected 1 to 63 lowercase"), "{bad:?}: {e}");
    }
    let e = crate::fresh_schema("sqlite://x.sqlite", "bench_1").await.unwrap_err();
    assert!(matches!(e, crate::StoreError::UnsupportedUrl(_)), "{e}");
    if let Ok(url) = std::env::var("DATABASE_URL") {
        let scratch = crate::fresh_schema(&url, "t_fresh_schema_probe").await.unwrap();
        let store = Store::open(&scratch).await.unwrap();
        assert_eq!(store.ledger_head().await.unwrap().0, 0);
        store.close().await;
        crate::drop_schema(&url, "t_fresh_schema_probe").await.unwrap();
    }
}

/// Pushing objects to a partner as this node: each decided under TLP 2.0 for that partner
/// (RED only to a named party, AMBER only under an agreement in force binding both, GREEN to
/// the community), recorded before anything leaves; never to a partner that is not pinned.
#[tokio::test]
async fn intel_pushed_to_a_partner_is_decided_under_tlp_and_recorded() {
    use entente_intel::tlp::Tlp;
    let now: Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
    let coll = "0e1f7a4c-4d2e-4a8b-9c3d-5e6f7a8b9c0d";
    let ind = |n: u32, tlp: Tlp, extra: &str| {
        format!(
            r#"{{"type":"indicator","spec_version":"2.1","id":"indicator--00000000-0000-4000-8000-{n:012}","created":"2026-11-01T00:00:00Z","modified":"2026-11-01T00:00:00Z","pattern":"[ipv4-addr:value = '198.51.100.{n}']","pattern_type":"stix","valid_from":"2026-11-01T00:00:00Z","object_marking_refs":["{}"]{extra}}}"#,
            tlp.marking_id()
        )
    };
    let objects = [
        ind(1, Tlp::Green, ""),
        ind(2, Tlp::Red, r#","x_entente_recipients":["US"]"#),
        ind(3, Tlp::Red, r#","x_entente_recipients":["DE"]"#),
        ind(4, Tlp::Amber, ""),
    ];
    let parsed = std::sync::Arc::new(
        entente_intel::stix::parse_envelope(&format!(r#"{{"objects":[{}]}}"#, objects.join(",")))
            .unwrap(),
    );
    for db in backends().await {
        let gate = Gate::start(db.store.clone(), key(), nl(), shipped_agreements());
        let csirt = Actor::User { name: "cert".into(), role: Role::Csirt };
        let push = |to: PartyCode| crate::intel::IntelRelease {
            to,
            collection: coll.into(),
            objects: parsed.clone(),
        };
        // Not pinned: refused, nothing recorded.
        let before = db.store.ledger_head().await.unwrap().0;
        let e = gate.submit(csirt.clone(), push(de()), now).await.unwrap_err();
        assert!(matches!(&e, GateError::Invalid(m) if m.contains("pinned")), "{e}");
        assert_eq!(db.store.ledger_head().await.unwrap().0, before);
        let pin = crate::peers::AddPeer {
            party: de(),
            url: "https://127.0.0.1:1".into(),
            cert_pem: "-".into(),
            cert_sha256: "d".repeat(64),
            signing_key: "b".repeat(64),
            age_recipient: None,
        };
        gate.submit(Actor::Operator, pin, now).await.unwrap();
        let v = gate.submit(csirt.clone(), push(de()), now).await.unwrap();
        let Verdict::Permitted { index, output, .. } = v else { panic!("{v:?}") };
        let ids: Vec<&str> = output.objects.iter().map(|o| &o.id[o.id.len() - 1..]).collect();
        // NL and DE share agreements in force: GREEN, RED naming DE and AMBER go; RED naming
        // only the US does not.
        assert_eq!(ids, ["1", "3", "4"]);
        assert_eq!(output.withheld, 1);
        let entries = db.store.entries(index, index + 1).await.unwrap();
        let entry = entente_core::ledger::LedgerEntry::decode(&entries[0].1).unwrap();
        assert_eq!(entry.action, entente_core::Action::IntelPush);
        assert!(entry.payload_hashes["tlp.summary"].contains("released 3, withheld 1"));
        // An auditor may not push.
        let auditor = Actor::User { name: "ann".into(), role: Role::Auditor };
        let v = gate.submit(auditor, push(de()), now).await.unwrap();
        assert!(matches!(v, Verdict::Denied { .. }), "{v:?}");
        state_agrees(&db).await;
        db.drop_schema().await;
    }
}

/// An envelope reaches the gate only as checked by `verify_envelope`, and the gate admits it
/// only if the key it was checked with is the sender's pinned key, in the transaction that
/// applies it: a signature under any other key is refused and nothing is recorded.
#[tokio::test]
async fn envelopes_checked_with_another_key_than_the_pin_are_refused() {
    let now: Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
    let pinned = SigningKey::from_bytes(&[11u8; 32]);
    let other = SigningKey::from_bytes(&[12u8; 32]);
    let cert = "c".repeat(64);
    for db in backends().await {
        let gate = Gate::start(db.store.clone(), key(), nl(), no_agreements());
        let pin = crate::peers::AddPeer {
            party: de(),
            url: "https://127.0.0.1:1".into(),
            cert_pem: "-".into(),
            cert_sha256: cert.clone(),
            signing_key: hex::encode(pinned.verifying_key().as_bytes()),
            age_recipient: None,
        };
        gate.submit(Actor::Operator, pin, now).await.unwrap();
        let de_peer = db.store.peer_by_certificate(&cert).await.unwrap().unwrap();
        let sealed = |k: &SigningKey| {
            entente_wire::envelope::Envelope::seal(
                k,
                de(),
                nl(),
                entente_wire::MessageKind::Consent,
                1,
                serde_json::json!({"datum_id": "x1", "recipient": "US"}),
                now,
            )
            .unwrap()
        };
        let skew = jiff::SignedDuration::from_secs(300);
        // A wrong signature never becomes a verified envelope.
        let e = crate::verify_envelope(
            sealed(&other),
            &pinned.verifying_key(),
            &cert,
            &nl(),
            now,
            skew,
        )
        .unwrap_err();
        assert_eq!(e.rule(), "federation#signature");
        // Checked with a key of its own: refused at admission, nothing recorded.
        let before = db.store.ledger_head().await.unwrap().0;
        let forged =
            crate::verify_envelope(sealed(&other), &other.verifying_key(), &cert, &nl(), now, skew)
                .unwrap();
        let r = gate.receive_many(de_peer.clone(), vec![forged], now).await;
        assert!(
            matches!(&r[..], [Err(GateError::Invalid(m))] if m.contains("pinned key")),
            "{r:?}"
        );
        assert_eq!(db.store.ledger_head().await.unwrap().0, before);
        // Under the pinned key: admitted and decided (a consent for a datum unknown here is a
        // recorded rejection, not a refusal at the door).
        let good = crate::verify_envelope(
            sealed(&pinned),
            &pinned.verifying_key(),
            &cert,
            &nl(),
            now,
            skew,
        )
        .unwrap();
        let r = gate.receive_many(de_peer, vec![good], now).await;
        assert!(matches!(&r[..], [Ok(Verdict::Denied { .. })]), "{r:?}");
        assert_eq!(db.store.ledger_head().await.unwrap().0, before + 1);
        state_agrees(&db).await;
        db.drop_schema().await;
    }
}

#[tokio::test]
async fn anonymous_callers_are_refused_unrecorded_and_their_refusals_recorded_in_aggregate() {
    use crate::peers::{RecordRefusals, RefusalCount, RefusalSource};
    for db in backends().await {
        let gate = Gate::start(db.store.clone(), key(), nl(), no_agreements());
        // Whatever an anonymous caller names, the gate refuses it without a ledger entry.
        let chosen = "Jane.Doe_born-1980";
        let e = gate.submit(Actor::Anonymous, open(chosen), t0()).await.unwrap_err();
        let GateError::Unauthenticated(decision) = e else { panic!("{e}") };
        assert_eq!(decision.rules, ["authn.required"]);
        let many = gate.submit_many(Actor::Anonymous, vec![open("A1"), open("A2")], t0()).await;
        assert!(many.iter().all(|r| matches!(r, Err(GateError::Unauthenticated(_)))));
        assert_eq!(db.store.ledger_head().await.unwrap().0, 0);

        // The node records them in aggregate: the source as a keyed hash of its address
        // (one /64 is one source), counts by rule and route template.
        let a = gate.source("192.0.2.7".parse().unwrap());
        assert_eq!(a, gate.source("::ffff:192.0.2.7".parse().unwrap()));
        assert_ne!(a, gate.source("192.0.2.8".parse().unwrap()));
        assert_eq!(
            gate.source("2001:db8::1".parse().unwrap()),
            gate.source("2001:db8::2".parse().unwrap())
        );
        let other_node = Gate::start(
            db.store.clone(),
            SigningKey::from_bytes(&[9u8; 32]),
            nl(),
            no_agreements(),
        );
        assert_ne!(a, other_node.source("192.0.2.7".parse().unwrap()), "the key is the node's");
        let record = |source: RefusalSource, route: &str| RecordRefusals {
            source,
            from: t0(),
            until: t0() + jiff::SignedDuration::from_secs(60),
            counts: vec![RefusalCount {
                rule: "authn.required".into(),
                route: route.into(),
                count: 8000,
            }],
        };
        let v = gate
            .submit(Actor::Operator, record(a.clone(), "GET /api/v1/cases/{id}"), t0())
            .await
            .unwrap();
        let Verdict::Denied { index: 0, decision } = v else { panic!("{v:?}") };
        assert_eq!(decision.rules, ["authn.required"]);
        // Only the node records refusals, and only with its own rule and route names.
        let e = gate
            .submit(
                Actor::Operator,
                record(a.clone(), &format!("GET /api/v1/cases/{chosen} x")),
                t0(),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, GateError::Invalid(_)), "{e}");
        let v = gate.submit(investigator(), record(a, "GET /x"), t0()).await.unwrap();
        assert!(
            matches!(v, Verdict::Denied { ref decision, .. } if decision.rules == ["default-deny"])
        );
        let entries = db.store.entries(0, 10).await.unwrap();
        let text = String::from_utf8(entries[0].1.clone()).unwrap();
        assert!(text.contains(r#""action":"refusals.record""#), "{text}");
        assert!(text.contains("8000 authn.required on GET /api/v1/cases/{id}"), "{text}");
        assert!(text.contains(r#""subjects":["source:"#), "{text}");
        assert!(!text.contains("192.0.2.7") && !text.contains(chosen), "{text}");
        assert!(text.contains(r#""refusals":"sha256:"#), "{text}");
        db.drop_schema().await;
    }
}

#[tokio::test]
async fn maintenance_events_are_recorded_through_the_gate() {
    use crate::maintenance::{KIND_BACKUP, KIND_SWEEP, RecordBackup, RecordSweep};
    for db in backends().await {
        let gate = Gate::start(db.store.clone(), key(), nl(), no_agreements());
        gate.submit(investigator(), open("LANTERN"), t0()).await.unwrap();
        assert_eq!(db.store.last_maintenance(KIND_BACKUP).await.unwrap(), None);
        let root = db.store.tree_root(1).await.unwrap().to_string();
        let backup = RecordBackup {
            manifest_sha256: entente_core::digest::Sha256::of(b"manifest"),
            ledger_size: 1,
            ledger_root: root.clone(),
            files: 5,
            bytes: 1234,
        };
        // Only the operator backs the node up.
        let v = gate.submit(investigator(), backup.clone(), t0()).await.unwrap();
        assert!(matches!(v, Verdict::Denied { .. }), "{v:?}");
        let v = gate.submit(Actor::Operator, backup, t0()).await.unwrap();
        let Verdict::Permitted { index: 2, .. } = v else { panic!("{v:?}") };
        let e = db.store.last_maintenance(KIND_BACKUP).await.unwrap().unwrap();
        assert_eq!(e.ledger_index, 2);
        assert_eq!(e.detail["ledger_root"], root.as_str());
        assert_eq!(e.detail["bytes"], 1234);
        let entry = String::from_utf8(db.store.entries(2, 3).await.unwrap()[0].1.clone()).unwrap();
        assert!(entry.contains("node.backup") && entry.contains("backup:"), "{entry}");

        // A sweep that removed nothing is not recorded; one that did is, counts only.
        let sweep = |parts, orphans| RecordSweep {
            party: nl(),
            parts,
            part_bytes: parts * 10,
            orphans,
            orphan_bytes: orphans * 100,
            grace_secs: 3600,
        };
        let e = gate.submit(Actor::Operator, sweep(0, 0), t0()).await.unwrap_err();
        assert!(matches!(e, GateError::Invalid(_)), "{e}");
        let v = gate.submit(Actor::Operator, sweep(2, 1), t0()).await.unwrap();
        assert!(matches!(v, Verdict::Permitted { index: 3, .. }), "{v:?}");
        let e = db.store.last_maintenance(KIND_SWEEP).await.unwrap().unwrap();
        assert_eq!(
            (e.detail["parts"].as_u64(), e.detail["orphan_bytes"].as_u64()),
            (Some(2), Some(100))
        );
        assert!(db.store.committed_blob_names().await.unwrap().is_empty());

        // The tree root at an earlier size is that size's checkpoint root.
        let (size, note) = db.store.ledger_head().await.unwrap();
        let cp = verify_checkpoint(&note.unwrap(), &vkey(&gate)).unwrap();
        assert_eq!(db.store.tree_root(size).await.unwrap(), cp.root);
        assert!(db.store.tree_root(size + 1).await.is_err());

        // A snapshot: SQLite's VACUUM INTO; PostgreSQL is pg_dump's.
        let dir = tempfile::tempdir().unwrap();
        let snap = dir.path().join("snap.sqlite");
        match db.store.backend() {
            crate::store::Backend::Sqlite => {
                db.store.sqlite_snapshot(&snap).await.unwrap();
                let copy = Store::open(&format!("sqlite://{}", snap.display())).await.unwrap();
                assert_eq!(copy.ledger_head().await.unwrap().0, size);
                copy.close().await;
            }
            crate::store::Backend::Postgres => {
                let e = db.store.sqlite_snapshot(&snap).await.unwrap_err().to_string();
                assert!(e.contains("pg_dump"), "{e}");
            }
        }
        verify_ledger(&db.store, &nl(), &vkey(&gate), &mut |_, _| {}).await.unwrap();
        state_agrees(&db).await;
        db.drop_schema().await;
    }
}
