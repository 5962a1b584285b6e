//! Every decoder refuses malformed untrusted input with an error naming the field, and never
//! panics.

use super::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use serde_json::{Value, json};

fn key() -> HolderKey {
    HolderKey::from_seed(&[7; 32]).unwrap()
}

fn query_json() -> Value {
    let k = key();
    let (_, q) =
        LabelledQuery::new(k.public_key(), &[sel("192.0.2.1")], 3, &Limits::default(), &mut rng(1))
            .unwrap();
    serde_json::from_slice(&q.to_json().unwrap()).unwrap()
}

fn evaluation_json(mode: Mode) -> Value {
    let k = key();
    let entries = group_holdings([(sel("192.0.2.1"), label("c"))]);
    let set = k.prepare_set(mode, &entries, 4, &mut rng(2), |_, _| {}).unwrap();
    let q = match mode {
        Mode::Labelled => {
            LabelledQuery::new(
                k.public_key(),
                &[sel("192.0.2.1")],
                3,
                &Limits::default(),
                &mut rng(3),
            )
            .unwrap()
            .1
        }
        Mode::Cardinality => {
            CardinalityQuery::new(
                k.public_key(),
                &[sel("192.0.2.1")],
                3,
                &Limits::default(),
                &mut rng(3),
            )
            .unwrap()
            .1
        }
    };
    let e = k.evaluate(&set, &q, &Limits::default(), &mut rng(4)).unwrap();
    serde_json::from_slice(&e.to_json().unwrap()).unwrap()
}

fn chunk_json(mode: Mode) -> Value {
    let k = key();
    let entries = group_holdings((1..=3).map(|i| (sel(&format!("192.0.2.{i}")), label("c"))));
    let set = k.prepare_set(mode, &entries, 4, &mut rng(5), |_, _| {}).unwrap();
    serde_json::from_slice(&set.chunks(2)[0].to_json().unwrap()).unwrap()
}

fn b64(bytes: &[u8]) -> Value {
    Value::String(STANDARD.encode(bytes))
}

/// A 32-byte string that is not a ristretto255 encoding (not canonical: the field element is
/// above p).
fn not_a_point() -> Value {
    b64(&[0xff; 32])
}

fn query_err(v: &Value, limits: &Limits) -> WireError {
    QueryMessage::decode(&serde_json::to_vec(v).unwrap(), limits).unwrap_err()
}

fn evaluation_err(v: &Value) -> WireError {
    EvaluationMessage::decode(&serde_json::to_vec(v).unwrap(), &Limits::default()).unwrap_err()
}

fn chunk_err(v: &Value, limits: &Limits) -> WireError {
    SetChunk::decode(&serde_json::to_vec(v).unwrap(), limits).unwrap_err()
}

fn with(mut v: Value, path: &[&str], new: Value) -> Value {
    let mut at = &mut v;
    for p in path {
        at = match p.parse::<usize>() {
            Ok(i) => &mut at[i],
            Err(_) => &mut at[*p],
        };
    }
    *at = new;
    v
}

#[test]
fn query_decoding_is_strict() {
    let l = Limits::default();
    let q = query_json();
    assert!(QueryMessage::decode(&serde_json::to_vec(&q).unwrap(), &l).is_ok());

    let e = query_err(&with(q.clone(), &["elements", "1"], b64(&[1; 31])), &l);
    assert_eq!(e.field, "query.elements[1]");
    assert_eq!(e.message, "found 31 bytes; expected a 32-byte ristretto255 element");
    let e = query_err(&with(q.clone(), &["elements", "2"], not_a_point()), &l);
    assert_eq!(e.field, "query.elements[2]");
    assert!(e.message.contains("not the encoding of a ristretto255 element"), "{e}");
    let e = query_err(&with(q.clone(), &["elements", "0"], b64(&[0; 32])), &l);
    assert!(e.message.contains("other than the identity"), "{e}");
    let e = query_err(&with(q.clone(), &["elements", "0"], json!("***")), &l);
    assert_eq!(
        (e.field.as_str(), e.message.as_str()),
        ("query.elements[0]", "not standard base64")
    );

    let tight = Limits { max_query_elements: 2, ..l };
    let e = query_err(&q, &tight);
    assert_eq!(e.to_string(), "query.elements: found 3 elements; at most 2 are accepted");
    let tiny = Limits { max_message_bytes: 10, ..l };
    assert!(query_err(&q, &tiny).message.contains("at most 10 are accepted"));

    assert_eq!(
        query_err(&with(q.clone(), &["version"], json!(2)), &l).to_string(),
        "query.version: found 2; expected 1"
    );
    assert_eq!(query_err(&with(q.clone(), &["mode"], json!("all")), &l).field, "query.mode");
    assert_eq!(query_err(&with(q.clone(), &["epoch"], json!("00")), &l).field, "query.epoch");
    let e = query_err(&with(q.clone(), &["extra"], json!(1)), &l);
    assert!(e.message.contains("unknown field `extra`"), "{e}");
    let e = QueryMessage::decode(b"{not json", &l).unwrap_err();
    assert_eq!(e.field, "query");
    // Through serde as well.
    assert!(
        serde_json::from_value::<QueryMessage>(with(q, &["elements", "0"], not_a_point())).is_err()
    );
}

#[test]
fn evaluation_decoding_is_strict() {
    for mode in [Mode::Labelled, Mode::Cardinality] {
        let v = evaluation_json(mode);
        assert!(
            EvaluationMessage::decode(&serde_json::to_vec(&v).unwrap(), &Limits::default()).is_ok()
        );
        let e = evaluation_err(&with(v.clone(), &["evaluations", "0"], b64(&[2; 33])));
        assert_eq!(e.field, "evaluation.evaluations[0]");
        assert!(e.message.starts_with("found 33 bytes"), "{e}");
        let e = evaluation_err(&with(v.clone(), &["evaluations", "1"], not_a_point()));
        assert_eq!(e.field, "evaluation.evaluations[1]");
        let e = evaluation_err(&with(v.clone(), &["proof"], b64(&[1; 63])));
        assert_eq!(
            e.to_string(),
            "evaluation.proof: found 63 bytes; expected a 64-byte DLEQ proof"
        );
        let e = evaluation_err(&with(v.clone(), &["proof"], b64(&[0xff; 64])));
        assert_eq!(e.to_string(), "evaluation.proof: not two canonical non-zero scalars");
        let e = evaluation_err(&with(v.clone(), &["set_digest"], json!("zz")));
        assert_eq!(e.field, "evaluation.set_digest");
        let e = evaluation_err(&with(v.clone(), &["set_size"], json!(u64::MAX)));
        assert_eq!(e.field, "evaluation.set_size");
        let many: Vec<Value> = (0..1025).map(|_| v["evaluations"][0].clone()).collect();
        let e = evaluation_err(&with(v.clone(), &["evaluations"], Value::Array(many)));
        assert_eq!(
            e.to_string(),
            "evaluation.evaluations: found 1025 elements; at most 1024 are accepted"
        );
        assert_eq!(evaluation_err(&with(v, &["version"], json!(0))).field, "evaluation.version");
    }
}

#[test]
fn set_chunk_decoding_is_strict() {
    let l = Limits::default();
    let c = chunk_json(Mode::Labelled);
    assert!(SetChunk::decode(&serde_json::to_vec(&c).unwrap(), &l).is_ok());
    let e = chunk_err(&with(c.clone(), &["elements", "1", "tag"], b64(&[0; 15])), &l);
    assert_eq!(e.to_string(), "set_chunk.elements[1].tag: found 15 bytes; expected a 16-byte tag");
    let e = chunk_err(&with(c.clone(), &["elements", "0", "label"], b64(&[0; 41])), &l);
    assert_eq!(e.field, "set_chunk.elements[0].label");
    assert!(e.message.contains("plus a non-zero multiple of 64"), "{e}");
    let e = chunk_err(&with(c.clone(), &["elements", "0", "label"], Value::Null), &l);
    assert_eq!(
        e.to_string(),
        "set_chunk.elements[0].label: missing; labelled mode has one per element"
    );
    let tight = Limits { max_label_bytes: 64, ..l };
    assert_eq!(chunk_err(&c, &tight).field, "set_chunk.elements[0].label");
    let tight = Limits { max_chunk_elements: 1, ..l };
    assert_eq!(
        chunk_err(&c, &tight).to_string(),
        "set_chunk.elements: found 2 elements; at most 1 are accepted"
    );
    let tight = Limits { max_set_elements: 2, ..l };
    assert_eq!(chunk_err(&c, &tight).field, "set_chunk.set_size");
    assert_eq!(chunk_err(&with(c.clone(), &["index"], json!(2)), &l).field, "set_chunk.index");
    assert_eq!(chunk_err(&with(c.clone(), &["total"], json!(0)), &l).field, "set_chunk.index");
    assert_eq!(chunk_err(&with(c.clone(), &["first"], json!(2)), &l).field, "set_chunk.first");
    assert_eq!(
        chunk_err(&with(c.clone(), &["first"], json!(u64::MAX)), &l).field,
        "set_chunk.first"
    );
    assert_eq!(chunk_err(&with(c.clone(), &["chain"], json!("ab")), &l).field, "set_chunk.chain");
    let e = chunk_err(&with(c.clone(), &["elements", "0", "extra"], json!(1)), &l);
    assert!(e.message.contains("unknown field"), "{e}");
    // Cardinality chunks carry no labels.
    let c = chunk_json(Mode::Cardinality);
    assert!(SetChunk::decode(&serde_json::to_vec(&c).unwrap(), &l).is_ok());
    let e = chunk_err(&with(c, &["elements", "0", "label"], b64(&[0; 104])), &l);
    assert_eq!(
        e.to_string(),
        "set_chunk.elements[0].label: found a label; cardinality mode has none"
    );
}

#[test]
fn keys_decode_strictly() {
    assert_eq!(PublicKey::from_bytes(&[1; 31]).unwrap_err().field, "public_key");
    assert!(PublicKey::from_bytes(&[0xff; 32]).is_err());
    assert!(PublicKey::from_bytes(&[0; 32]).is_err());
    assert!(HolderKey::from_bytes(&[1; 31]).is_err());
    assert!(HolderKey::from_bytes(&[0; 32]).is_err());
    assert!(HolderKey::from_bytes(&[0xff; 32]).is_err());
    let k = key();
    let again = HolderKey::from_bytes(&*k.to_bytes()).unwrap();
    assert_eq!(again.public_key(), k.public_key());
    assert_eq!(again.epoch(), k.epoch());
    assert_eq!(format!("{k:?}"), format!("HolderKey {{ epoch: {} }}", k.epoch()));
    assert!(EpochId::from_hex("xyz", "epoch").is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let l = Limits::default();
        let _ = QueryMessage::decode(&bytes, &l);
        let _ = EvaluationMessage::decode(&bytes, &l);
        let _ = SetChunk::decode(&bytes, &l);
        let _ = PublicKey::from_bytes(&bytes);
        let _ = HolderKey::from_bytes(&bytes);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = selector::parse_line(text, EmailRules { strip_plus: true });
            let _ = selector::parse_file("f", text, EmailRules::default());
        }
    }

    #[test]
    fn selector_parsing_never_panics(text in "\\PC{0,80}") {
        let _ = selector::parse_line(&text, EmailRules::default());
        for kind in SelectorKind::ALL {
            if let Ok(s) = selector::parse(kind, &text, EmailRules::default()) {
                // A canonical form parses back to itself.
                prop_assert_eq!(selector::parse(kind, s.canonical(), EmailRules::default()).unwrap(), s.clone());
                prop_assert_eq!(selector::parse_line(&s.to_string(), EmailRules::default()).unwrap(), s);
            }
        }
    }
}
