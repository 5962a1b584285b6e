//! Data-residency clauses at the receiving node: data that must stay within some
//! jurisdictions is refused (recorded) by a node whose store is elsewhere.

use super::{backends, de, key, nl};
use crate::gate::{Gate, Verdict};
use ed25519_dalek::SigningKey;
use entente_core::{Actor, Role};
use entente_policy::agreement::{DataCategory, Purpose};
use jiff::Timestamp;
use std::sync::Arc;

/// The shipped JIT template with a residency clause: third parties' data stays in NL and DE.
fn engine(storage: &str) -> Arc<entente_policy::engine::Engine> {
    let lexicon = entente_core::lexicon::Lexicon::builtin().unwrap();
    let mut agreements = entente_policy::agreement::builtin_agreements(&lexicon).unwrap();
    let text = format!(
        "{}\n[[residency]]\ncategories = [\"personal-data-of-third-parties\"]\nwithin = [\"NL\", \"DE\"]\nbasis = {{ citation = \"test clause\", status = \"U\" }}\n",
        include_str!("../../../../data/agreements/jit-lantern.toml")
    );
    let jit = entente_policy::agreement::parse_agreement("jit.toml", &text, &lexicon).unwrap();
    agreements.retain(|a| a.id != jit.id);
    agreements.push(jit);
    let mut e = entente_policy::engine::Engine::compile(agreements).unwrap();
    e.set_storage_jurisdiction(storage.parse().unwrap());
    Arc::new(e)
}

#[tokio::test]
async fn a_node_storing_outside_a_residency_clause_refuses_the_data() {
    let now: Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
    for db in backends().await {
        let de_gate = Gate::start(db.store.clone(), key(), de(), engine("DE"));
        let eva = Actor::User { name: "eva".into(), role: Role::Investigator };
        let case = crate::cases::OpenCase {
            id: "L".parse().unwrap(),
            title: "t".into(),
            concepts: vec!["illegal-access".into()],
        };
        de_gate.submit(eva.clone(), case, now).await.unwrap();
        let content =
            serde_json::from_value(serde_json::json!({"name": "Someone", "plan": "x"})).unwrap();
        let add = crate::flows::AddDatum {
            id: "d1".parse().unwrap(),
            case_id: "L".parse().unwrap(),
            category: DataCategory::PersonalDataOfThirdParties,
            content,
        };
        de_gate.submit(eva.clone(), add, now).await.unwrap();
        let share = crate::flows::ShareDatum {
            id: "d1".parse().unwrap(),
            to: nl(),
            purpose: Purpose::JointInvestigation,
            request_kind: None,
        };
        let ca = Actor::User { name: "cas".into(), role: Role::CentralAuthority };
        let v = de_gate.submit(ca, share, now).await.unwrap();
        let Verdict::Permitted { output: m, .. } = v else { panic!("{v:?}") };
        let msg: entente_wire::DatumMessage = serde_json::from_value(m.payload).unwrap();

        // NL keeps its blobs in the US: refused, recorded, citing the clause.
        let mut others = backends().await;
        let same =
            others.iter().position(|d| d.pg_schema.is_some() == db.pg_schema.is_some()).unwrap();
        let nl_db = others.swap_remove(same);
        for other in others {
            other.drop_schema().await;
        }
        let from_de = Actor::Peer { party: de() };
        let receive = || crate::flows::ReceiveDatum { message: msg.clone() };
        let abroad = Gate::start(
            nl_db.store.clone(),
            SigningKey::from_bytes(&[5u8; 32]),
            nl(),
            engine("US"),
        );
        let v = abroad.submit(from_de.clone(), receive(), now).await.unwrap();
        let Verdict::Denied { decision, .. } = v else { panic!("{v:?}") };
        assert!(decision.rules.contains(&"jit-lantern#residency".to_owned()), "{decision:?}");
        assert!(decision.reason.contains("this node keeps its data in US"), "{}", decision.reason);
        assert!(decision.reason.contains("test clause [U]"), "{}", decision.reason);
        // Kept at home: taken in.
        let home = Gate::start(
            nl_db.store.clone(),
            SigningKey::from_bytes(&[5u8; 32]),
            nl(),
            engine("NL"),
        );
        let v = home.submit(from_de, receive(), now).await.unwrap();
        assert!(matches!(v, Verdict::Permitted { .. }), "{v:?}");
        nl_db.drop_schema().await;
        db.drop_schema().await;
    }
}
