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
