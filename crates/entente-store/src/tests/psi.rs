//! Deconfliction by private set intersection between two nodes' gates, on both backends.

use super::*;
use crate::psi::{PsiQuery, ReadPsiStatus, RotatePsiKey, RotationReport, SendPsiKey};
use crate::store::Backend;
use base64::Engine as _;
use entente_policy::agreement::DataCategory;
use entente_psi::{EmailRules, Selector, selector};
use sha2::Digest as _;

/// A deconfliction arrangement with small limits (a test fixture): 8 selectors per query, two
/// queries per case and partner in 30 days.
fn fixture(max_queries: u32, mode: &str) -> String {
    format!(
        r#"
id = "psi-test"
title = "Deconfliction arrangement NL-DE (test fixture)"
kind = "mou"
parties = ["NL", "DE"]
in_force_from = "2026-01-01"
offences = "any"
categories = ["case-information"]
purposes = ["deconfliction"]
onward_transfer = "forbidden"
commercial_use_prohibited = true

[deconfliction]
parties = ["NL", "DE"]
purpose = "deconfliction"
selectors = ["ip", "email", "btc"]
mode = "{mode}"
max_selectors = 8
max_queries = {max_queries}
per = "P30D"
key_rotation = "P30D"
email_plus_addressing = "strip"

[[legal_basis]]
citation = "Test fixture"
status = "U"
"#
    )
}

fn engine(max_queries: u32) -> std::sync::Arc<entente_policy::engine::Engine> {
    engine_in(max_queries, "labelled")
}

fn engine_in(max_queries: u32, mode: &str) -> std::sync::Arc<entente_policy::engine::Engine> {
    let lexicon = entente_core::lexicon::Lexicon::builtin().unwrap();
    let text = fixture(max_queries, mode);
    let agreements =
        entente_policy::agreement::parse_agreements(&[("psi.toml", text.as_str())], &lexicon)
            .unwrap();
    std::sync::Arc::new(entente_policy::engine::Engine::compile(agreements).unwrap())
}

fn sel(line: &str) -> Selector {
    selector::parse_line(line, EmailRules::default()).unwrap()
}

const C2: &str = "203.0.113.7";
const WALLET: &str = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq";
const ONLY_NL: &str = "198.51.100.23";
const EMAIL: &str = "lantern.ops+x@mail.example";

/// A rotation as the node runs it: decided first, the holdings read and prepared outside the
/// gate, then recorded (or the refusal recorded).
async fn rotate(
    store: &Store,
    gate: &Gate,
    actor: Actor,
    now: Timestamp,
) -> Verdict<RotationReport> {
    let (agreement, contact) = ("psi-test", "BKA SO4 desk");
    let decision =
        crate::psi::rotation_decision(gate.engine(), gate.party(), &actor, agreement, now);
    if !decision.is_permit() {
        let refused = RotatePsiKey::unprepared(agreement, contact);
        return gate.submit(actor, refused, now).await.unwrap();
    }
    let prepared = prepare(store, gate, contact).await;
    gate.submit(actor, RotatePsiKey::new(prepared), now).await.unwrap()
}

async fn prepare(store: &Store, gate: &Gate, contact: &str) -> crate::psi::PreparedEpoch {
    let d = gate.engine().agreement("psi-test").unwrap().deconfliction.as_ref().unwrap();
    let holdings = store.psi_holdings("psi-test", d, contact).await.unwrap();
    holdings.prepare(2, |_, _| true).unwrap()
}

fn pin(party: PartyCode, cert: char) -> crate::peers::AddPeer {
    crate::peers::AddPeer {
        party,
        url: "https://127.0.0.1:1".into(),
        cert_pem: "-".into(),
        cert_sha256: cert.to_string().repeat(64),
        signing_key: "b".repeat(64),
        age_recipient: None,
    }
}

async fn status(gate: &Gate, actor: Actor, now: Timestamp) -> crate::psi::PsiStatus {
    match gate.submit(actor, ReadPsiStatus::default(), now).await.unwrap() {
        Verdict::Permitted { output, .. } => output,
        v => panic!("{v:?}"),
    }
}

fn denied_by<O: std::fmt::Debug>(v: &Verdict<O>, rule: &str) -> bool {
    matches!(v, Verdict::Denied { decision, .. } if decision.rules.iter().any(|r| r == rule))
}

/// Every text and byte value stored in every table of `store` (but `skip`), for searching.
async fn all_values(store: &Store, skip: &[&str]) -> Vec<(String, Vec<u8>)> {
    let tables: Vec<String> = match store.backend() {
        Backend::Sqlite => sqlite_schema(store).await.into_keys().collect(),
        Backend::Postgres => postgres_schema(store).await.into_keys().collect(),
    };
    let mut out = Vec::new();
    for t in tables.iter().filter(|t| !skip.contains(&t.as_str())) {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {t}")))
            .fetch_all(&store.pool)
            .await
            .unwrap();
        for r in &rows {
            for i in 0..sqlx::Row::len(r) {
                if let Ok(Some(s)) = sqlx::Row::try_get::<Option<String>, _>(r, i) {
                    out.push((t.clone(), s.into_bytes()));
                } else if let Ok(Some(b)) = sqlx::Row::try_get::<Option<Vec<u8>>, _>(r, i) {
                    out.push((t.clone(), b));
                }
            }
        }
    }
    out
}

/// The encodings of a selector that must appear nowhere.
fn encodings(s: &Selector) -> Vec<Vec<u8>> {
    let c = s.canonical().as_bytes().to_vec();
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        c.clone(),
        s.canonical().to_uppercase().into_bytes(),
        hex::encode(&c).into_bytes(),
        b64.encode(&c).into_bytes(),
        hex::encode(sha2::Sha256::digest(&c)).into_bytes(),
        hex::encode(sha2::Sha256::digest(s.oprf_input())).into_bytes(),
        b64.encode(sha2::Sha256::digest(&c)).into_bytes(),
        sha2::Sha256::digest(&c).to_vec(),
    ]
}

async fn assert_absent(store: &Store, skip: &[&str], selectors: &[Selector]) {
    let values = all_values(store, skip).await;
    assert!(values.len() > 20, "the search saw the rows");
    for s in selectors {
        for e in encodings(s) {
            for (table, v) in &values {
                assert!(
                    !v.windows(e.len()).any(|w| w == e.as_slice()),
                    "{s} appears (as {}) in table {table}",
                    String::from_utf8_lossy(&e)
                );
            }
        }
    }
}

/// DE holds a C2 address and a wallet on its case DE-0042 and rotates its key: NL receives the
/// key and set, asks about four selectors padded to eight, DE evaluates, and NL learns that
/// DE holds two of them and whom to ask; DE learns nothing but the query's size and case.
/// Queries beyond the agreement's limit are denied and recorded on the asker's side and, when
/// an asker does not hold to it, on the holder's; a forged evaluation is detected; no selector
/// appears in any encoding in either database (but DE's own data item).
#[tokio::test]
async fn deconfliction_between_two_gates() {
    let now: Timestamp = "2026-04-01T08:00:00Z".parse().unwrap();
    let pairs = backends().await.into_iter().zip(backends().await);
    for (nl_db, de_db) in pairs {
        let nl_gate = Gate::start(nl_db.store.clone(), key(), nl(), engine(2));
        let de_gate =
            Gate::start(de_db.store.clone(), SigningKey::from_bytes(&[7u8; 32]), de(), engine(2));
        nl_gate.submit(Actor::Operator, pin(de(), 'd'), now).await.unwrap();
        de_gate.submit(Actor::Operator, pin(nl(), 'e'), now).await.unwrap();
        // The certificates each side pinned: DE's is `d…`, NL's `e…`.
        let de_cert = "d".repeat(64);
        let nl_cert = "e".repeat(64);
        let (nl_party, de_party) = (nl(), de());
        let to_nl = |now| {
            hand_over((&de_db.store, &de_gate, &de_party), (&nl_gate, &nl_party, &de_cert), now)
        };
        let to_de = |now| {
            hand_over((&nl_db.store, &nl_gate, &nl_party), (&de_gate, &de_party, &nl_cert), now)
        };

        // DE's holdings.
        de_gate.submit(investigator(), open("DE-0042"), now).await.unwrap();
        let content = serde_json::json!({"c2": C2, "wallet": WALLET, "note": "seized server"});
        let add = crate::flows::AddDatum {
            id: "de-d1".parse().unwrap(),
            case_id: "DE-0042".parse().unwrap(),
            category: DataCategory::CaseInformation,
            content: content.as_object().unwrap().clone(),
        };
        assert!(matches!(
            de_gate.submit(investigator(), add, now).await.unwrap(),
            Verdict::Permitted { .. }
        ));

        // Asking before DE published a key: denied, nothing sent.
        nl_gate.submit(investigator(), open("LANTERN"), now).await.unwrap();
        let ask = |case: &str, selectors: Vec<Selector>| PsiQuery {
            agreement: None,
            case_id: case.parse().unwrap(),
            to: de(),
            selectors,
        };
        let mine = vec![sel(C2), sel(WALLET), sel(ONLY_NL), sel(EMAIL)];
        let v = nl_gate.submit(investigator(), ask("LANTERN", mine.clone()), now).await.unwrap();
        assert!(denied_by(&v, "psi.no-key"), "{v:?}");
        assert_eq!(outbox_count(&nl_db).await, 0);

        // DE rotates: only the operator or an admin may.
        let v = rotate(&de_db.store, &de_gate, investigator(), now).await;
        assert!(denied_by(&v, "default-deny"), "{v:?}");
        let Verdict::Permitted { output: r, index: rotated_at, .. } =
            rotate(&de_db.store, &de_gate, Actor::Operator, now).await
        else {
            panic!()
        };
        assert_eq!((r.set_size, r.chunks, r.sent_to.clone()), (2, 1, vec![nl()]));
        assert!(r.holdings_at <= rotated_at && r.holdings_at > 0, "{r:?}");
        assert!(de_db.store.psi_unsent(de_gate.engine(), &de(), now).await.unwrap().is_empty());
        let got = to_nl(now).await;
        assert!(matches!(got.as_slice(), [Ok(Verdict::Permitted { .. })]), "{got:?}");

        // Selector kinds the agreement does not name, and too many selectors: denied.
        let v = nl_gate
            .submit(investigator(), ask("LANTERN", vec![sel("+31 20 123 4567")]), now)
            .await
            .unwrap();
        assert!(denied_by(&v, "psi.selector-kind"), "{v:?}");
        let many: Vec<Selector> = (1..=9).map(|i| sel(&format!("192.0.2.{i}"))).collect();
        let v = nl_gate.submit(investigator(), ask("LANTERN", many), now).await.unwrap();
        assert!(denied_by(&v, "psi.max-selectors"), "{v:?}");
        let auditor = Actor::User { name: "ann".into(), role: Role::Auditor };
        let v = nl_gate.submit(auditor, ask("LANTERN", mine.clone()), now).await.unwrap();
        assert!(denied_by(&v, "default-deny"), "{v:?}");
        assert_eq!(outbox_count(&nl_db).await, 0);

        // The query, its evaluation, the result.
        let Verdict::Permitted { output: q, .. } =
            nl_gate.submit(investigator(), ask("LANTERN", mine.clone()), now).await.unwrap()
        else {
            panic!()
        };
        assert_eq!((q.selectors, q.padded), (4, 8));
        let st = status(&nl_gate, investigator(), now).await;
        assert_eq!(st.queries[0].status, "pending");
        let got = to_de(now).await;
        assert!(matches!(got.as_slice(), [Ok(Verdict::Permitted { .. })]), "{got:?}");
        let got = to_nl(now).await;
        assert!(matches!(got.as_slice(), [Ok(Verdict::Permitted { .. })]), "{got:?}");
        let st = status(&nl_gate, investigator(), now).await;
        let answered = &st.queries[0];
        assert_eq!((answered.status.as_str(), answered.matched), ("answered", Some(2)));
        let mut found: Vec<&str> = answered.matches.iter().map(|m| m.selector.as_str()).collect();
        found.sort_unstable();
        assert_eq!(found, [format!("btc:{WALLET}").as_str(), format!("ip:{C2}").as_str()]);
        for m in &answered.matches {
            assert_eq!(m.labels.len(), 1);
            assert_eq!(m.labels[0].case_reference, "DE-0042");
            assert_eq!(m.labels[0].contact, "BKA SO4 desk");
        }
        // DE's side: one evaluation of 8 elements for NL's case, nothing more.
        let de_st = status(&de_gate, Actor::Operator, now).await;
        assert_eq!(de_st.evaluations.len(), 1);
        let e = &de_st.evaluations[0];
        assert_eq!(
            (e.asker.as_str(), e.case_ref.as_str(), e.elements, e.status.as_str()),
            ("NL", "LANTERN", 8, "evaluated")
        );
        assert!(de_st.queries.is_empty());

        // The second query of the case is the last the agreement allows in 30 days.
        nl_gate.submit(investigator(), ask("LANTERN", vec![sel(ONLY_NL)]), now).await.unwrap();
        let v =
            nl_gate.submit(investigator(), ask("LANTERN", vec![sel(ONLY_NL)]), now).await.unwrap();
        assert!(denied_by(&v, "psi.max-queries"), "{v:?}");
        let got = to_de(now).await;
        assert!(matches!(got.as_slice(), [Ok(Verdict::Permitted { .. })]), "{got:?}");
        let got = to_nl(now).await;
        assert!(matches!(got.as_slice(), [Ok(Verdict::Permitted { .. })]), "{got:?}");

        // A forged evaluation (two evaluated elements swapped) is detected by the proof.
        nl_gate.submit(investigator(), open("LANTERN-2"), now).await.unwrap();
        let Verdict::Permitted { output: q2, .. } =
            nl_gate.submit(investigator(), ask("LANTERN-2", mine.clone()), now).await.unwrap()
        else {
            panic!()
        };
        let got = to_de(now).await;
        assert!(matches!(got.as_slice(), [Ok(Verdict::Permitted { .. })]), "{got:?}");
        let pending = de_db.store.pending_messages(&nl(), 10).await.unwrap();
        let mut answer = pending.last().unwrap().payload.clone();
        let evaluations = answer["evaluation"]["evaluations"].as_array_mut().unwrap();
        evaluations.swap(0, 1);
        let next = pending.last().unwrap().seq;
        let envelope = crate::federation::InboundEnvelope {
            from: de(),
            cert_sha256: de_cert.clone(),
            id: entente_wire::envelope::message_id(&de(), &nl(), next),
            seq: next,
            kind: "psi.evaluation".into(),
            payload: answer,
            envelope_sha256: format!("sha256:{next:064}"),
            payload_sha256: format!("sha256:{next:064}"),
        };
        let v = nl_gate.receive(Actor::Peer { party: de() }, envelope, now).await.unwrap();
        assert!(denied_by(&v, "psi.proof"), "{v:?}");
        let st = status(&nl_gate, investigator(), now).await;
        let failed = st.queries.iter().find(|x| x.id == q2.id).unwrap();
        assert_eq!(failed.status, "failed");
        assert!(failed.matches.is_empty());

        // An asker that does not hold to the limit (here: a query sent as NL beyond it) is
        // refused and recorded by DE, and the refusal comes back.
        let mut forged = {
            let rows: Vec<Vec<u8>> = sqlx::query_scalar(
                "SELECT payload FROM outbox WHERE kind = 'psi.query' ORDER BY seq",
            )
            .fetch_all(&nl_db.store.pool)
            .await
            .unwrap();
            serde_json::from_slice::<serde_json::Value>(&rows[0]).unwrap()
        };
        forged["id"] = "NL-extra".into();
        let seq = 4;
        let envelope = crate::federation::InboundEnvelope {
            from: nl(),
            cert_sha256: nl_cert.clone(),
            id: entente_wire::envelope::message_id(&nl(), &de(), seq),
            seq,
            kind: "psi.query".into(),
            payload: forged.clone(),
            envelope_sha256: format!("sha256:{seq:064}"),
            payload_sha256: format!("sha256:{seq:064}"),
        };
        let v = de_gate.receive(Actor::Peer { party: nl() }, envelope, now).await.unwrap();
        assert!(denied_by(&v, "psi.max-queries"), "{v:?}");
        let de_st = status(&de_gate, Actor::Operator, now).await;
        let refused = de_st.evaluations.iter().find(|e| e.query == "NL-extra").unwrap();
        assert_eq!(refused.status, "refused");
        // (The evaluation swapped above is still pending at DE: it comes under the number the
        // swapped one took, with another payload. NL refuses it loudly, recorded, admits
        // nothing after it, and names its next number; DE numbers both again from there.)
        let got = to_nl(now).await;
        assert!(
            matches!(got.first(), Some(Err(GateError::SendAgain(i)))
                if i.reason.as_deref().is_some_and(|r| r.contains("under the same number"))),
            "{got:?}"
        );
        assert!(got[1..].iter().all(|r| matches!(r, Err(GateError::Conflict(_)))), "{got:?}");
        let got = to_nl(now).await;
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(denied_by(got.last().unwrap().as_ref().unwrap(), "psi.unknown-query"), "{got:?}");

        // A malformed or oversized query is refused with its reason, and the node goes on.
        let mut bad = forged.clone();
        bad["id"] = "NL-bad".into();
        bad["query"]["elements"][0] = "AAAA".into();
        let seq = 5;
        let envelope = crate::federation::InboundEnvelope {
            from: nl(),
            cert_sha256: nl_cert.clone(),
            id: entente_wire::envelope::message_id(&nl(), &de(), seq),
            seq,
            kind: "psi.query".into(),
            payload: bad,
            envelope_sha256: format!("sha256:{seq:064}"),
            payload_sha256: format!("sha256:{seq:064}"),
        };
        let v = de_gate.receive(Actor::Peer { party: nl() }, envelope, now).await.unwrap();
        assert!(denied_by(&v, "federation#content"), "{v:?}");
        let mut big = forged.clone();
        big["id"] = "NL-big".into();
        let element = big["query"]["elements"][0].clone();
        big["query"]["elements"] = serde_json::Value::Array(vec![element; 1025]);
        let seq = 6;
        let envelope = crate::federation::InboundEnvelope {
            from: nl(),
            cert_sha256: nl_cert.clone(),
            id: entente_wire::envelope::message_id(&nl(), &de(), seq),
            seq,
            kind: "psi.query".into(),
            payload: big,
            envelope_sha256: format!("sha256:{seq:064}"),
            payload_sha256: format!("sha256:{seq:064}"),
        };
        let v = de_gate.receive(Actor::Peer { party: nl() }, envelope, now).await.unwrap();
        assert!(denied_by(&v, "federation#content"), "{v:?}");

        // No selector, in any encoding, in either database; DE's own data item aside.
        let all = [sel(C2), sel(WALLET), sel(ONLY_NL), sel(EMAIL), sel("lantern.ops@mail.example")];
        assert_absent(&nl_db.store, &[], &all).await;
        assert_absent(&de_db.store, &["data_items", "identifier_index"], &all).await;
        assert_absent(&de_db.store, &[], &all[2..]).await;

        // A key older than the agreement's rotation period is not used.
        let later: Timestamp = "2026-05-02T08:00:00Z".parse().unwrap();
        nl_gate.submit(investigator(), open("LANTERN-3"), later).await.unwrap();
        let v = nl_gate
            .submit(investigator(), ask("LANTERN-3", vec![sel(ONLY_NL)]), later)
            .await
            .unwrap();
        assert!(denied_by(&v, "psi.key-expired"), "{v:?}");

        // A rotation destroys the old key.
        let Verdict::Permitted { output: r2, .. } =
            rotate(&de_db.store, &de_gate, Actor::Operator, now).await
        else {
            panic!()
        };
        assert_eq!(r2.destroyed, vec![r.epoch.clone()]);
        let de_st = status(&de_gate, Actor::Operator, now).await;
        assert!(de_st.keys.iter().any(|k| k.epoch == r.epoch && k.destroyed_at.is_some()));

        for (db, gate, party, seed) in [(&nl_db, &nl_gate, nl(), 42u8), (&de_db, &de_gate, de(), 7)]
        {
            let vk = ledger::verifier_key(
                gate.origin(),
                &SigningKey::from_bytes(&[seed; 32]).verifying_key(),
            );
            verify_ledger(&db.store, &party, &vk, &mut |_, _| {}).await.unwrap();
        }
        nl_db.drop_schema().await;
        de_db.drop_schema().await;
    }
}

async fn add_datum(
    gate: &Gate,
    id: &str,
    case: &str,
    content: serde_json::Value,
    now: Timestamp,
) -> u64 {
    let add = crate::flows::AddDatum {
        id: id.parse().unwrap(),
        case_id: case.parse().unwrap(),
        category: DataCategory::CaseInformation,
        content: content.as_object().unwrap().clone(),
    };
    match gate.submit(investigator(), add, now).await.unwrap() {
        Verdict::Permitted { index, .. } => index,
        v => panic!("{v:?}"),
    }
}

async fn psi_key_rows(db: &Db, to: &PartyCode) -> i64 {
    sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM outbox WHERE kind = 'psi.key' AND recipient = $1",
    )
    .bind(to.as_str())
    .fetch_one(&db.store.pool)
    .await
    .unwrap()
}

/// A rotation is prepared from the holdings read outside the gate: a datum added between the
/// read and the commit is not in the epoch's set, the epoch records the ledger size it was
/// read at, and the next rotation has it. A set prepared before another rotation committed is
/// refused (`psi.superseded`). A partner pinned after the rotation is sent the current epoch
/// (`psi.key.send`), once.
#[tokio::test]
async fn rotation_outside_the_writer_and_partners_pinned_later() {
    let now: Timestamp = "2026-04-01T08:00:00Z".parse().unwrap();
    let pairs = backends().await.into_iter().zip(backends().await);
    for (nl_db, de_db) in pairs {
        let nl_gate = Gate::start(nl_db.store.clone(), key(), nl(), engine(2));
        let de_gate =
            Gate::start(de_db.store.clone(), SigningKey::from_bytes(&[7u8; 32]), de(), engine(2));
        nl_gate.submit(Actor::Operator, pin(de(), 'd'), now).await.unwrap();
        de_gate.submit(investigator(), open("DE-0042"), now).await.unwrap();
        add_datum(&de_gate, "de-d1", "DE-0042", serde_json::json!({"c2": C2}), now).await;

        // Read, then a datum is added, then the set is prepared and recorded.
        let d = de_gate.engine().agreement("psi-test").unwrap().deconfliction.as_ref().unwrap();
        let holdings = de_db.store.psi_holdings("psi-test", d, "BKA SO4 desk").await.unwrap();
        let read_at = holdings.watermark();
        assert_eq!(holdings.len(), 1);
        let added =
            add_datum(&de_gate, "de-d2", "DE-0042", serde_json::json!({"w": WALLET}), now).await;
        assert!(added >= read_at);
        let prepared = holdings.prepare(2, |_, _| true).unwrap();
        let Verdict::Permitted { output: r, index, decision } =
            de_gate.submit(Actor::Operator, RotatePsiKey::new(prepared), now).await.unwrap()
        else {
            panic!()
        };
        assert_eq!((r.set_size, r.holdings_at), (1, read_at));
        assert!(index > added);
        assert!(decision.reason.contains(&format!("before ledger size {read_at}")), "{decision:?}");
        // NL is not pinned at DE: nothing sent, nothing pending while it is not.
        assert_eq!((r.sent_to.clone(), r.not_pinned.clone()), (vec![], vec![nl()]));
        assert!(de_db.store.psi_unsent(de_gate.engine(), &de(), now).await.unwrap().is_empty());
        let de_st = status(&de_gate, Actor::Operator, now).await;
        assert_eq!(de_st.keys[0].holdings_at, Some(read_at));

        // A set prepared from holdings read before another rotation committed is refused.
        let stale = prepare(&de_db.store, &de_gate, "BKA SO4 desk").await;
        let Verdict::Permitted { output: r2, .. } =
            rotate(&de_db.store, &de_gate, Actor::Operator, now).await
        else {
            panic!()
        };
        assert_eq!(r2.set_size, 2, "the next rotation has the datum added meanwhile");
        let v = de_gate.submit(Actor::Operator, RotatePsiKey::new(stale), now).await.unwrap();
        assert!(denied_by(&v, "psi.superseded"), "{v:?}");
        let current = de_db.store.psi_current_epochs().await.unwrap();
        assert_eq!(current.len(), 1);
        assert_eq!(current[0].epoch, r2.epoch);

        // NL is pinned after the rotation: its current epoch is pending for NL, and sent once.
        de_gate.submit(Actor::Operator, pin(nl(), 'e'), now).await.unwrap();
        let unsent = de_db.store.psi_unsent(de_gate.engine(), &de(), now).await.unwrap();
        assert_eq!(unsent, vec![("psi-test".to_owned(), nl())]);
        let send = SendPsiKey { agreement: "psi-test".into(), to: nl() };
        let v = de_gate.submit(investigator(), send.clone(), now).await.unwrap();
        assert!(denied_by(&v, "default-deny"), "{v:?}");
        let Verdict::Permitted { output: epoch, .. } =
            de_gate.submit(Actor::Operator, send.clone(), now).await.unwrap()
        else {
            panic!()
        };
        assert_eq!(epoch, r2.epoch);
        assert_eq!(psi_key_rows(&de_db, &nl()).await, 1);
        assert!(de_db.store.psi_unsent(de_gate.engine(), &de(), now).await.unwrap().is_empty());
        let v = de_gate.submit(Actor::Operator, send.clone(), now).await.unwrap();
        assert!(denied_by(&v, "psi.sent"), "{v:?}");
        assert_eq!(psi_key_rows(&de_db, &nl()).await, 1);
        let (nl_party, de_party) = (nl(), de());
        let got = hand_over(
            (&de_db.store, &de_gate, &de_party),
            (&nl_gate, &nl_party, &"d".repeat(64)),
            now,
        )
        .await;
        assert!(matches!(got.as_slice(), [Ok(Verdict::Permitted { .. })]), "{got:?}");
        let nl_st = status(&nl_gate, investigator(), now).await;
        let k = &nl_st.peer_keys[0];
        assert_eq!(
            (k.epoch.as_str(), k.received, k.total, k.set_size),
            (r2.epoch.as_str(), 1, 1, 2)
        );

        // The next rotation sends to NL itself.
        let Verdict::Permitted { output: r3, .. } =
            rotate(&de_db.store, &de_gate, Actor::Operator, now).await
        else {
            panic!()
        };
        assert_eq!(r3.sent_to, vec![nl()]);
        assert!(de_db.store.psi_unsent(de_gate.engine(), &de(), now).await.unwrap().is_empty());
        nl_db.drop_schema().await;
        de_db.drop_schema().await;
    }
}

/// An agreement in `mode = "cardinality"`: the holder's set carries no labels, its answer is
/// shuffled, and the asker learns only how many of her selectors match.
#[tokio::test]
async fn cardinality_mode_through_the_gate() {
    let now: Timestamp = "2026-04-01T08:00:00Z".parse().unwrap();
    let pairs = backends().await.into_iter().zip(backends().await);
    for (nl_db, de_db) in pairs {
        let nl_gate = Gate::start(nl_db.store.clone(), key(), nl(), engine_in(2, "cardinality"));
        let de_seed = [7u8; 32];
        let de_gate = Gate::start(
            de_db.store.clone(),
            SigningKey::from_bytes(&de_seed),
            de(),
            engine_in(2, "cardinality"),
        );
        nl_gate.submit(Actor::Operator, pin(de(), 'd'), now).await.unwrap();
        de_gate.submit(Actor::Operator, pin(nl(), 'e'), now).await.unwrap();
        let (nl_party, de_party) = (nl(), de());
        let (de_cert, nl_cert) = ("d".repeat(64), "e".repeat(64));
        let to_nl = |now| {
            hand_over((&de_db.store, &de_gate, &de_party), (&nl_gate, &nl_party, &de_cert), now)
        };
        let to_de = |now| {
            hand_over((&nl_db.store, &nl_gate, &nl_party), (&de_gate, &de_party, &nl_cert), now)
        };
        de_gate.submit(investigator(), open("DE-0042"), now).await.unwrap();
        add_datum(&de_gate, "de-d1", "DE-0042", serde_json::json!({"c2": C2, "w": WALLET}), now)
            .await;
        let Verdict::Permitted { output: r, .. } =
            rotate(&de_db.store, &de_gate, Actor::Operator, now).await
        else {
            panic!()
        };
        assert_eq!((r.set_size, r.sent_to.clone()), (2, vec![nl()]));
        let got = to_nl(now).await;
        assert!(matches!(got.as_slice(), [Ok(Verdict::Permitted { .. })]), "{got:?}");

        nl_gate.submit(investigator(), open("LANTERN"), now).await.unwrap();
        let ask = PsiQuery {
            agreement: None,
            case_id: "LANTERN".parse().unwrap(),
            to: de(),
            selectors: vec![sel(C2), sel(WALLET), sel(ONLY_NL), sel(EMAIL)],
        };
        let Verdict::Permitted { output: q, .. } =
            nl_gate.submit(investigator(), ask, now).await.unwrap()
        else {
            panic!()
        };
        assert_eq!((q.selectors, q.padded), (4, 8));
        let got = to_de(now).await;
        assert!(matches!(got.as_slice(), [Ok(Verdict::Permitted { .. })]), "{got:?}");

        // DE's answer is the query's elements evaluated, in another order: evaluated one by
        // one with DE's key, they are the same elements.
        let payload = |rows: Vec<Vec<u8>>| -> serde_json::Value {
            serde_json::from_slice(rows.last().unwrap()).unwrap()
        };
        let query = payload(
            sqlx::query_scalar("SELECT payload FROM outbox WHERE kind = 'psi.query' ORDER BY seq")
                .fetch_all(&nl_db.store.pool)
                .await
                .unwrap(),
        );
        let answer = payload(
            sqlx::query_scalar(
                "SELECT payload FROM outbox WHERE kind = 'psi.evaluation' ORDER BY seq",
            )
            .fetch_all(&de_db.store.pool)
            .await
            .unwrap(),
        );
        let (sealed, size, digest): (Vec<u8>, i64, String) = {
            let row = sqlx::query(
                "SELECT sealed_secret, set_size, set_digest FROM psi_keys WHERE epoch = $1",
            )
            .bind(&r.epoch)
            .fetch_one(&de_db.store.pool)
            .await
            .unwrap();
            (row.try_get(0).unwrap(), row.try_get(1).unwrap(), row.try_get(2).unwrap())
        };
        let secret: [u8; 32] = {
            let mut h = sha2::Sha256::new();
            h.update(b"entente pseudonym secret v1\0");
            h.update(de_seed);
            h.finalize().into()
        };
        let holder = entente_psi::HolderKey::from_bytes(
            &crate::psi::open(&secret, "psi key", &r.epoch, &sealed).unwrap(),
        )
        .unwrap();
        let summary = entente_psi::SetSummary {
            epoch: holder.epoch(),
            mode: entente_psi::Mode::Cardinality,
            size: size as u64,
            digest: entente_psi::SetDigest::from_bytes(
                hex::decode(digest).unwrap().try_into().unwrap(),
            ),
        };
        let one_by_one: Vec<serde_json::Value> = query["query"]["elements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let mut single = query["query"].clone();
                single["elements"] = serde_json::json!([e]);
                let m = entente_psi::QueryMessage::decode(
                    single.to_string().as_bytes(),
                    &crate::psi::LIMITS,
                )
                .unwrap();
                let ev = holder
                    .evaluate_for(&summary, &m, &crate::psi::LIMITS, &mut rand::rngs::OsRng)
                    .unwrap();
                let ev: serde_json::Value = serde_json::from_slice(&ev.to_json().unwrap()).unwrap();
                ev["evaluations"][0].clone()
            })
            .collect();
        let answered = answer["evaluation"]["evaluations"].as_array().unwrap().clone();
        assert_eq!(answered.len(), 8);
        assert_ne!(answered, one_by_one, "the answer is shuffled");
        let sorted = |mut v: Vec<serde_json::Value>| {
            v.sort_by_key(|x| x.to_string());
            v
        };
        assert_eq!(sorted(answered), sorted(one_by_one));

        // NL learns the count, and nothing else: no labels in DE's set, no matches stored.
        let got = to_nl(now).await;
        assert!(matches!(got.as_slice(), [Ok(Verdict::Permitted { .. })]), "{got:?}");
        let st = status(&nl_gate, investigator(), now).await;
        let answered = &st.queries[0];
        assert_eq!(
            (answered.status.as_str(), answered.mode.as_str(), answered.matched),
            ("answered", "cardinality", Some(2))
        );
        assert!(answered.matches.is_empty());
        let chunks: Vec<Vec<u8>> = sqlx::query_scalar("SELECT chunk FROM psi_peer_chunks")
            .fetch_all(&nl_db.store.pool)
            .await
            .unwrap();
        assert_eq!(chunks.len(), 1);
        let chunk: serde_json::Value = serde_json::from_slice(&chunks[0]).unwrap();
        let elements = chunk["elements"].as_array().unwrap();
        assert_eq!(elements.len(), 2);
        assert!(elements.iter().all(|e| e.get("label").is_none()), "{chunk}");
        let sealed_result: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT sealed_result FROM psi_queries WHERE id = $1")
                .bind(&q.id)
                .fetch_one(&nl_db.store.pool)
                .await
                .unwrap();
        let result =
            crate::psi::open(&nl_secret(), "psi result", &q.id, &sealed_result.unwrap()).unwrap();
        let text = String::from_utf8_lossy(&result);
        assert!(!text.contains("DE-0042") && !text.contains("BKA"), "{text}");
        let all = [sel(C2), sel(WALLET), sel(ONLY_NL), sel(EMAIL)];
        assert_absent(&nl_db.store, &[], &all).await;
        assert_absent(&de_db.store, &["data_items", "identifier_index"], &all).await;
        nl_db.drop_schema().await;
        de_db.drop_schema().await;
    }
}

fn nl_secret() -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update(b"entente pseudonym secret v1\0");
    h.update(key().to_bytes());
    h.finalize().into()
}

/// The shipped deconfliction memorandum parses and names the pilot's parties.
#[test]
fn the_shipped_memorandum_provides_for_deconfliction() {
    let lexicon = entente_core::lexicon::Lexicon::builtin().unwrap();
    let all = entente_policy::agreement::builtin_agreements(&lexicon).unwrap();
    let mou = all.iter().find(|a| a.id == "mou-deconfliction-pilot").unwrap();
    let d = mou.deconfliction.as_ref().unwrap();
    assert_eq!(d.parties.len(), 3);
    assert_eq!(d.mode, entente_psi::Mode::Labelled);
    assert!(d.email.strip_plus);
    assert!(all.iter().filter(|a| a.id != mou.id).all(|a| a.deconfliction.is_none()));
}
