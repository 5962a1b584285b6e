//! Tests of the whole protocol: RFC 9497 known answers, both modes end to end over the wire,
//! forged evaluations, padding, the set transfer, and the PSI result against the plain set
//! intersection.

mod kat;
mod protocol;
mod wire_errors;

use crate::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

pub(crate) fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

pub(crate) fn sel(line: &str) -> Selector {
    selector::parse_line(line, EmailRules::default()).unwrap()
}

pub(crate) fn label(case: &str) -> Label {
    Label { case_reference: case.to_owned(), contact: "cyber-desk@bka.example".to_owned() }
}

/// Everything through the wire: each message encoded to JSON and decoded under the default
/// limits, the set sent in chunks of 3.
pub(crate) fn through_wire_set(set: &PreparedSet) -> PreparedSet {
    let limits = Limits::default();
    let mut receiver = SetReceiver::new();
    for chunk in set.chunks(3) {
        let bytes = chunk.to_json().unwrap();
        receiver.receive(SetChunk::decode(&bytes, &limits).unwrap(), &limits).unwrap();
    }
    assert!(receiver.is_complete());
    receiver.finish().unwrap()
}

pub(crate) fn through_wire_query(q: &QueryMessage) -> QueryMessage {
    QueryMessage::decode(&q.to_json().unwrap(), &Limits::default()).unwrap()
}

pub(crate) fn through_wire_evaluation(e: &EvaluationMessage) -> EvaluationMessage {
    EvaluationMessage::decode(&e.to_json().unwrap(), &Limits::default()).unwrap()
}

/// A query's state, stored and read back, finishes as the query itself would.
#[test]
fn query_state_round_trips() {
    let mut r = rng(11);
    let key = HolderKey::generate(&mut r).unwrap();
    let entries = group_holdings([(sel("ip:203.0.113.7"), label("DE-1"))]);
    let limits = Limits::default();
    for mode in [Mode::Labelled, Mode::Cardinality] {
        let set = key.prepare_set(mode, &entries, 10, &mut r, |_, _| {}).unwrap();
        let mine = [sel("203.0.113.7"), sel("198.51.100.1")];
        let holder = *key.public_key();
        match mode {
            Mode::Labelled => {
                let (q, m) = LabelledQuery::new(&holder, &mine, 4, &limits, &mut r).unwrap();
                let q = LabelledQuery::from_state(&q.to_state().unwrap()).unwrap();
                let e = key.evaluate_for(&set.summary(), &m, &limits, &mut r).unwrap();
                let found = q.finish(&holder, &e, &set).unwrap();
                assert_eq!(found.len(), 1);
            }
            Mode::Cardinality => {
                let (q, m) = CardinalityQuery::new(&holder, &mine, 4, &limits, &mut r).unwrap();
                let q = CardinalityQuery::from_state(&q.to_state().unwrap()).unwrap();
                let e = key.evaluate(&set, &m, &limits, &mut r).unwrap();
                assert_eq!(q.finish(&holder, &e, &set).unwrap(), 1);
            }
        }
    }
    assert!(LabelledQuery::from_state(b"{}").is_err());
    assert!(CardinalityQuery::from_state(b"not json").is_err());
}
