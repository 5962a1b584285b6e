use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

struct Holder {
    key: HolderKey,
    labelled: PreparedSet,
    cardinality: PreparedSet,
}

fn holder(seed: u64, holdings: &[(&str, &str)]) -> Holder {
    let key = HolderKey::generate(&mut rng(seed)).unwrap();
    let entries = group_holdings(holdings.iter().map(|(s, c)| (sel(s), label(c))));
    let labelled =
        key.prepare_set(Mode::Labelled, &entries, 2, &mut rng(seed + 1), |_, _| {}).unwrap();
    let cardinality =
        key.prepare_set(Mode::Cardinality, &entries, 2, &mut rng(seed + 2), |_, _| {}).unwrap();
    Holder { key, labelled, cardinality }
}

/// The LANTERN holdings of DE.
const DE: [(&str, &str); 5] = [
    ("ip:203.0.113.7", "DE-2026-0042"),
    ("btc:bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "DE-2026-0042"),
    ("ip:203.0.113.7", "DE-2025-0917"),
    ("domain:unrelated.example", "DE-2024-0001"),
    ("phone:+4930123456", "DE-2023-0100"),
];

/// Asks `selectors` in labelled mode, every message through the wire.
fn ask_labelled(h: &Holder, selectors: &[Selector], padded: usize) -> Result<Vec<Match>, PsiError> {
    let limits = Limits::default();
    let public = PublicKey::from_bytes(&h.key.public_key().to_bytes()).unwrap();
    let (state, query) = LabelledQuery::new(&public, selectors, padded, &limits, &mut rng(10))?;
    let query = through_wire_query(&query);
    let evaluation = h.key.evaluate(&h.labelled, &query, &limits, &mut rng(11))?;
    let evaluation = through_wire_evaluation(&evaluation);
    let set = through_wire_set(&h.labelled);
    state.finish(&public, &evaluation, &set)
}

fn ask_cardinality(h: &Holder, selectors: &[Selector], padded: usize) -> Result<usize, PsiError> {
    let limits = Limits::default();
    let public = *h.key.public_key();
    let (state, query) = CardinalityQuery::new(&public, selectors, padded, &limits, &mut rng(20))?;
    let query = through_wire_query(&query);
    let evaluation = h.key.evaluate(&h.cardinality, &query, &limits, &mut rng(21))?;
    let evaluation = through_wire_evaluation(&evaluation);
    let set = through_wire_set(&h.cardinality);
    state.finish(&public, &evaluation, &set)
}

#[test]
fn lantern_nl_learns_which_two_de_holds_with_their_labels() {
    let de = holder(100, &DE);
    // NL's indicators, written as an investigator would.
    let nl = [
        sel("203.0.113.7"),
        sel("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4"),
        sel("ransom@Mail.Example"),
        sel("198.51.100.23"),
    ];
    let matches = ask_labelled(&de, &nl, 16).unwrap();
    let got: Vec<String> = matches.iter().map(|m| m.selector.to_string()).collect();
    assert_eq!(got, ["ip:203.0.113.7", "btc:bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"]);
    assert_eq!(matches[0].labels, [label("DE-2025-0917"), label("DE-2026-0042")]);
    assert_eq!(matches[1].labels, [label("DE-2026-0042")]);
    assert_eq!(ask_cardinality(&de, &nl, 16).unwrap(), 2);
}

#[test]
fn repeated_selectors_count_once() {
    let de = holder(110, &DE);
    let nl = [sel("203.0.113.7"), sel("ip:203.0.113.7"), sel("::ffff:203.0.113.7")];
    assert_eq!(ask_labelled(&de, &nl, 4).unwrap().len(), 1);
    assert_eq!(ask_cardinality(&de, &nl, 4).unwrap(), 1);
}

#[test]
fn padding_hides_how_many_selectors_were_asked() {
    let de = holder(120, &DE);
    let public = *de.key.public_key();
    let limits = Limits::default();
    let one = [sel("203.0.113.7")];
    let five: Vec<Selector> = (1..=5).map(|i| sel(&format!("ip:192.0.2.{i}"))).collect();
    for mode in [Mode::Labelled, Mode::Cardinality] {
        let (a, b) = match mode {
            Mode::Labelled => (
                LabelledQuery::new(&public, &one, 8, &limits, &mut rng(1)).unwrap().1,
                LabelledQuery::new(&public, &five, 8, &limits, &mut rng(2)).unwrap().1,
            ),
            Mode::Cardinality => (
                CardinalityQuery::new(&public, &one, 8, &limits, &mut rng(1)).unwrap().1,
                CardinalityQuery::new(&public, &five, 8, &limits, &mut rng(2)).unwrap().1,
            ),
        };
        assert_eq!((a.len(), b.len()), (8, 8));
        assert_eq!(a.to_json().unwrap().len(), b.to_json().unwrap().len());
        // No element repeats: the holder sees eight distinct points either way.
        let distinct: BTreeSet<_> = b.elements.iter().collect();
        assert_eq!(distinct.len(), 8);
    }
    let nine: Vec<Selector> = (1..=9).map(|i| sel(&format!("ip:192.0.2.{i}"))).collect();
    assert_eq!(
        LabelledQuery::new(&public, &nine, 8, &limits, &mut rng(3)).unwrap_err(),
        PsiError::QueryTooLarge { selectors: 9, padded: 8 }
    );
    assert!(matches!(
        CardinalityQuery::new(&public, &one, 0, &limits, &mut rng(3)).unwrap_err(),
        PsiError::Wire(_)
    ));
    assert!(LabelledQuery::new(&public, &one, 1025, &limits, &mut rng(3)).is_err());
}

#[test]
fn an_evaluation_with_another_key_is_detected() {
    let de = holder(130, &DE);
    let forger = holder(131, &DE);
    let limits = Limits::default();
    let public = *de.key.public_key();
    let nl = [sel("203.0.113.7")];

    // Labelled: the forger evaluates with its own key but names DE's epoch and set.
    let (state, query) = LabelledQuery::new(&public, &nl, 4, &limits, &mut rng(1)).unwrap();
    let mut forged = forger
        .key
        .evaluate(
            &forger.labelled,
            &QueryMessage { epoch: forger.key.epoch(), ..query.clone() },
            &limits,
            &mut rng(2),
        )
        .unwrap();
    forged.epoch = de.key.epoch();
    forged.set_digest = de.labelled.digest();
    forged.set_size = de.labelled.len() as u64;
    assert_eq!(
        state.finish(&public, &forged, &de.labelled).unwrap_err(),
        PsiError::ProofInvalid { epoch: de.key.epoch() }
    );

    // Labelled: DE's own evaluation with two elements swapped.
    let (state, query) = LabelledQuery::new(&public, &nl, 4, &limits, &mut rng(3)).unwrap();
    let mut swapped = de.key.evaluate(&de.labelled, &query, &limits, &mut rng(4)).unwrap();
    swapped.evaluations.swap(0, 1);
    assert!(matches!(
        state.finish(&public, &swapped, &de.labelled),
        Err(PsiError::ProofInvalid { .. })
    ));

    // Cardinality: forged with another key.
    let (state, query) = CardinalityQuery::new(&public, &nl, 4, &limits, &mut rng(5)).unwrap();
    let mut forged = forger
        .key
        .evaluate(
            &forger.cardinality,
            &QueryMessage { epoch: forger.key.epoch(), ..query.clone() },
            &limits,
            &mut rng(6),
        )
        .unwrap();
    forged.epoch = de.key.epoch();
    forged.set_digest = de.cardinality.digest();
    forged.set_size = de.cardinality.len() as u64;
    assert!(matches!(
        state.finish(&public, &forged, &de.cardinality),
        Err(PsiError::ProofInvalid { .. })
    ));

    // Cardinality: one evaluation replaced by another of the same answer.
    let (state, query) = CardinalityQuery::new(&public, &nl, 4, &limits, &mut rng(7)).unwrap();
    let mut altered = de.key.evaluate(&de.cardinality, &query, &limits, &mut rng(8)).unwrap();
    altered.evaluations[0] = altered.evaluations[1];
    assert!(matches!(
        state.finish(&public, &altered, &de.cardinality),
        Err(PsiError::ProofInvalid { .. })
    ));

    // Verifying against another published key fails too (its epoch differs).
    let (state, query) = LabelledQuery::new(&public, &nl, 4, &limits, &mut rng(9)).unwrap();
    let honest = de.key.evaluate(&de.labelled, &query, &limits, &mut rng(10)).unwrap();
    assert!(matches!(
        state.finish(forger.key.public_key(), &honest, &de.labelled),
        Err(PsiError::EpochMismatch { .. })
    ));
}

#[test]
fn the_holder_shuffles_cardinality_answers() {
    let de = holder(140, &DE);
    let limits = Limits::default();
    let public = *de.key.public_key();
    let nl: Vec<Selector> = (1..=16).map(|i| sel(&format!("ip:192.0.2.{i}"))).collect();
    let (_, query) = CardinalityQuery::new(&public, &nl, 16, &limits, &mut rng(1)).unwrap();
    let e = de.key.evaluate(&de.cardinality, &query, &limits, &mut rng(2)).unwrap();
    // In query order each evaluation would be k·B_i; shuffled, most are elsewhere.
    let (_, query_l) = LabelledQuery::new(&public, &nl, 16, &limits, &mut rng(1)).unwrap();
    let in_order = de.key.evaluate(&de.labelled, &query_l, &limits, &mut rng(2)).unwrap();
    assert_eq!(in_order.len(), 16);
    let sorted = |v: &[[u8; 32]]| v.iter().copied().collect::<BTreeSet<_>>();
    let mut expected: Vec<[u8; 32]> = Vec::new();
    for b in &query.elements {
        let p = crate::key::decode_element(b, "b").unwrap();
        expected.push(crate::key::encode_element(p * de.key.sk));
    }
    assert_eq!(sorted(&e.evaluations), sorted(&expected));
    assert_ne!(e.evaluations, expected);
}

#[test]
fn mismatched_epochs_modes_and_sets_are_refused() {
    let de = holder(150, &DE);
    let other = holder(151, &DE);
    let limits = Limits::default();
    let public = *de.key.public_key();
    let nl = [sel("203.0.113.7")];
    let (_, query) = LabelledQuery::new(&public, &nl, 2, &limits, &mut rng(1)).unwrap();
    assert!(matches!(
        de.key.evaluate(&de.cardinality, &query, &limits, &mut rng(2)),
        Err(PsiError::ModeMismatch { .. })
    ));
    assert!(matches!(
        de.key.evaluate(&other.labelled, &query, &limits, &mut rng(2)),
        Err(PsiError::EpochMismatch { what: "the prepared set", .. })
    ));
    assert!(matches!(
        other.key.evaluate(&other.labelled, &query, &limits, &mut rng(2)),
        Err(PsiError::EpochMismatch { what: "the query", .. })
    ));
    let tight = Limits { max_query_elements: 1, ..limits };
    assert!(matches!(
        de.key.evaluate(&de.labelled, &query, &tight, &mut rng(2)),
        Err(PsiError::Wire(_))
    ));

    // A set other than the one the evaluation names.
    let (state, query) = LabelledQuery::new(&public, &nl, 2, &limits, &mut rng(3)).unwrap();
    let e = de.key.evaluate(&de.labelled, &query, &limits, &mut rng(4)).unwrap();
    let fewer = group_holdings([(sel("203.0.113.7"), label("x"))]);
    let smaller = de.key.prepare_set(Mode::Labelled, &fewer, 1, &mut rng(5), |_, _| {}).unwrap();
    assert!(matches!(state.finish(&public, &e, &smaller), Err(PsiError::SetMismatch { .. })));

    // An evaluation with an element missing.
    let (state, query) = LabelledQuery::new(&public, &nl, 2, &limits, &mut rng(6)).unwrap();
    let mut e = de.key.evaluate(&de.labelled, &query, &limits, &mut rng(7)).unwrap();
    e.evaluations.pop();
    assert_eq!(
        state.finish(&public, &e, &de.labelled).unwrap_err(),
        PsiError::CountMismatch { found: 1, expected: 2 }
    );
}

#[test]
fn labels_open_only_for_matching_selectors() {
    let de = holder(160, &DE);
    // Only the tag of a selector the asker holds leads to a label key that opens.
    let nl = [sel("domain:unrelated.example"), sel("ip:192.0.2.99")];
    let matches = ask_labelled(&de, &nl, 4).unwrap();
    assert_eq!(matches.len(), 1);
    assert_eq!(matches[0].labels, [label("DE-2024-0001")]);
    // The label keys the asker derives for her selectors open no other element of the set.
    let epoch = de.key.epoch();
    for s in &nl {
        let out = de.key.server.evaluate(&s.oprf_input()).unwrap();
        let (tag, key) = crate::derive::labelled(&out, &epoch).unwrap();
        for e in de.labelled.elements().iter().filter(|e| e.tag != tag) {
            let sealed = e.label.as_deref().unwrap();
            assert!(crate::derive::open(sealed, &key, &epoch, &e.tag).is_err());
            assert!(crate::derive::open(sealed, &key, &epoch, &tag).is_err());
        }
    }
    // A cardinality set carries no labels at all.
    assert!(de.cardinality.elements().iter().all(|e| e.label.is_none()));
}

#[test]
fn a_set_is_prepared_in_parallel_chunks_and_reported() {
    let key = HolderKey::generate(&mut rng(170)).unwrap();
    let entries: Vec<HolderEntry> = (0..10)
        .map(|i| HolderEntry { selector: sel(&format!("ip:10.0.0.{i}")), labels: vec![label("c")] })
        .collect();
    let mut seen = Vec::new();
    let whole = key
        .prepare_set(Mode::Cardinality, &entries, 4, &mut rng(1), |done, total| {
            seen.push((done, total))
        })
        .unwrap();
    assert_eq!(seen, [(4, 10), (8, 10), (10, 10)]);
    // Chunks prepared separately (as threads would) and assembled in another order.
    let chunks: Vec<Vec<PreparedElement>> = entries
        .chunks(3)
        .rev()
        .map(|c| key.prepare_chunk(Mode::Cardinality, c, &mut rng(2)).unwrap())
        .collect();
    let assembled = PreparedSet::assemble(key.epoch(), Mode::Cardinality, chunks).unwrap();
    assert_eq!(assembled, whole);
    // The same selector in two chunks is refused.
    let twice = [entries[..2].to_vec(), entries[1..3].to_vec()];
    let chunks =
        twice.iter().map(|c| key.prepare_chunk(Mode::Cardinality, c, &mut rng(3)).unwrap());
    assert_eq!(
        PreparedSet::assemble(key.epoch(), Mode::Cardinality, chunks).unwrap_err(),
        PsiError::DuplicateElement
    );
}

#[test]
fn a_set_transfer_resumes_and_detects_tampering() {
    let key = HolderKey::generate(&mut rng(180)).unwrap();
    let entries = group_holdings((0..10).map(|i| (sel(&format!("ip:10.0.1.{i}")), label("c"))));
    let set = key.prepare_set(Mode::Labelled, &entries, 4, &mut rng(1), |_, _| {}).unwrap();
    let limits = Limits::default();
    let chunks = set.chunks(3);
    assert_eq!(chunks.len(), 4);

    // Interrupted after two chunks, stored, resumed.
    let mut r = SetReceiver::new();
    r.receive(chunks[0].clone(), &limits).unwrap();
    r.receive(chunks[1].clone(), &limits).unwrap();
    let stored = serde_json::to_string(&r).unwrap();
    let mut r: SetReceiver = serde_json::from_str(&stored).unwrap();
    assert_eq!(r.next_index(), 2);
    // A repeated or skipped chunk is refused, and the receiver is unchanged.
    assert!(matches!(
        r.receive(chunks[1].clone(), &limits),
        Err(PsiError::ChunkOutOfOrder { index: 1, .. })
    ));
    assert!(matches!(
        r.receive(chunks[3].clone(), &limits),
        Err(PsiError::ChunkOutOfOrder { index: 3, .. })
    ));
    r.receive(chunks[2].clone(), &limits).unwrap();
    assert!(!r.is_complete());
    assert!(r.clone().finish().is_err());
    r.receive(chunks[3].clone(), &limits).unwrap();
    assert_eq!(r.finish().unwrap(), set);

    // An element altered in the last chunk: the set no longer ends at its digest.
    let mut r = SetReceiver::new();
    for c in &chunks[..3] {
        r.receive(c.clone(), &limits).unwrap();
    }
    let mut bad = chunks[3].clone();
    bad.elements[0].label.as_mut().unwrap()[30] ^= 1;
    assert!(matches!(r.receive(bad, &limits), Err(PsiError::ChunkOutOfOrder { index: 3, .. })));
    // An element altered in an earlier chunk: the next chunk does not continue its chain.
    let mut r = SetReceiver::new();
    let mut bad = chunks[0].clone();
    bad.elements[1].label.as_mut().unwrap()[30] ^= 1;
    r.receive(bad, &limits).unwrap();
    let e = r.receive(chunks[1].clone(), &limits).unwrap_err();
    assert!(e.to_string().contains("hash chain"), "{e}");
    // A chunk of another set, and a first chunk that is not chunk 0.
    let other = key.prepare_set(Mode::Labelled, &entries[..5], 4, &mut rng(2), |_, _| {}).unwrap();
    let mut r = SetReceiver::new();
    r.receive(chunks[0].clone(), &limits).unwrap();
    assert!(
        r.receive(other.chunks(3)[1].clone(), &limits)
            .unwrap_err()
            .to_string()
            .contains("another set")
    );
    assert!(SetReceiver::new().receive(chunks[1].clone(), &limits).is_err());
    // A set larger than the receiver accepts.
    let tight = Limits { max_set_elements: 5, ..limits };
    assert!(SetReceiver::new().receive(chunks[0].clone(), &tight).is_err());
}

/// One value of the universe, and a way to write it.
#[derive(Clone, Debug)]
enum Value {
    V4(u32),
    V6([u16; 8]),
    Domain(Vec<u8>),
    Phone(u16, u32),
    Email(Vec<u8>, Vec<u8>),
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u32>().prop_map(Value::V4),
        any::<[u16; 8]>().prop_map(Value::V6),
        proptest::collection::vec(0u8..26, 1..12).prop_map(Value::Domain),
        (1u16..999, 1_000_000u32..99_999_999).prop_map(|(c, n)| Value::Phone(c, n)),
        (proptest::collection::vec(0u8..26, 1..8), proptest::collection::vec(0u8..26, 1..8))
            .prop_map(|(l, d)| Value::Email(l, d)),
    ]
}

fn letters(v: &[u8], upper_mask: u64) -> String {
    v.iter()
        .enumerate()
        .map(|(i, c)| {
            let ch = char::from(b'a' + c);
            if (upper_mask >> (i % 64)) & 1 == 1 { ch.to_ascii_uppercase() } else { ch }
        })
        .collect()
}

/// `v` written in a surface form chosen by `form`.
fn write(v: &Value, form: u64) -> String {
    match v {
        Value::V4(a) => {
            let ip = std::net::Ipv4Addr::from(*a);
            match form % 3 {
                0 => ip.to_string(),
                1 => format!("::ffff:{ip}"),
                _ => format!("ip:[{}]", ip.to_ipv6_mapped()),
            }
        }
        Value::V6(s) => {
            let ip = std::net::Ipv6Addr::from(*s);
            if form.is_multiple_of(2) {
                format!("ip:{ip}")
            } else {
                let full: Vec<String> = s.iter().map(|x| format!("{x:04X}")).collect();
                format!("ip:{}", full.join(":"))
            }
        }
        Value::Domain(d) => {
            let dot = if form & 1 == 1 { "." } else { "" };
            format!("domain:{}.example{dot}", letters(d, form >> 1))
        }
        Value::Phone(c, n) => match form % 3 {
            0 => format!("+{c}{n}"),
            1 => format!("phone:00{c} {}-{:03}", n / 1000, n % 1000),
            _ => format!("phone:+{c} ({}) {:03}.{:02}", n / 100_000, (n / 100) % 1000, n % 100),
        },
        Value::Email(l, d) => {
            let dot = if form & 1 == 1 { "." } else { "" };
            format!("email:{}@{}.example{dot}", letters(l, 0), letters(d, form >> 1))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn psi_equals_the_plain_intersection(
        universe in proptest::collection::vec((value(), any::<bool>(), any::<bool>(), any::<u64>(), any::<u64>()), 1..24),
        seed in any::<u64>(),
    ) {
        let holdings: Vec<(Selector, Label)> = universe
            .iter()
            .filter(|u| u.1)
            .map(|u| (sel(&write(&u.0, u.3)), label("case")))
            .collect();
        let asked: Vec<Selector> = universe.iter().filter(|u| u.2).map(|u| sel(&write(&u.0, u.4))).collect();
        let held: BTreeSet<Selector> = holdings.iter().map(|h| h.0.clone()).collect();
        let expected: BTreeSet<Selector> = asked.iter().filter(|s| held.contains(*s)).cloned().collect();

        let key = HolderKey::generate(&mut rng(seed)).unwrap();
        let entries = group_holdings(holdings);
        let limits = Limits::default();
        let public = *key.public_key();
        let padded = 24;

        let set = key.prepare_set(Mode::Labelled, &entries, 5, &mut rng(seed ^ 1), |_, _| {}).unwrap();
        let (state, query) = LabelledQuery::new(&public, &asked, padded, &limits, &mut rng(seed ^ 2)).unwrap();
        prop_assert_eq!(query.len(), padded);
        let e = key.evaluate(&set, &through_wire_query(&query), &limits, &mut rng(seed ^ 3)).unwrap();
        let matches = state.finish(&public, &through_wire_evaluation(&e), &through_wire_set(&set)).unwrap();
        let got: BTreeSet<Selector> = matches.iter().map(|m| m.selector.clone()).collect();
        prop_assert_eq!(&got, &expected);
        prop_assert!(matches.iter().all(|m| m.labels == [label("case")]));

        let set = key.prepare_set(Mode::Cardinality, &entries, 5, &mut rng(seed ^ 4), |_, _| {}).unwrap();
        let (state, query) = CardinalityQuery::new(&public, &asked, padded, &limits, &mut rng(seed ^ 5)).unwrap();
        let e = key.evaluate(&set, &through_wire_query(&query), &limits, &mut rng(seed ^ 6)).unwrap();
        let count = state.finish(&public, &through_wire_evaluation(&e), &through_wire_set(&set)).unwrap();
        prop_assert_eq!(count, expected.len());
    }
}
