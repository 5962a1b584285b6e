//! Every target on its seeds and on a few hundred deterministic mutations of them: a short,
//! bounded run of each in the test suite (libFuzzer runs them for millions, `fuzz/`).

use super::*;

/// A small deterministic generator (the runs must be the same on every machine).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 =
            self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// libFuzzer's simplest mutations: flip, set, insert, delete, duplicate a run, cut short.
fn mutate(seed: &[u8], rng: &mut Lcg) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if at < v.len() => v[at] ^= 1 << rng.below(8),
            1 if at < v.len() => {
                let bytes = b"\0\xff{}[]\":,0-9azAZ.%\n";
                v[at] = bytes[rng.below(bytes.len())];
            }
            2 => v.insert(at, rng.below(256) as u8),
            3 if at < v.len() => {
                let n = rng.below(16).min(v.len() - at);
                v.drain(at..at + n);
            }
            4 if at < v.len() => {
                let n = rng.below(32).min(v.len() - at);
                let run: Vec<u8> = v[at..at + n].to_vec();
                v.splice(at..at, run);
            }
            _ => v.truncate(at),
        }
    }
    v
}

const MUTATIONS: usize = 500;

#[test]
fn every_target_runs_on_its_seeds_and_their_mutations() {
    for t in TARGETS {
        let seeds = seeds(t.name).unwrap();
        assert!(!seeds.is_empty(), "{}: no seeds", t.name);
        let mut rng = Lcg(t.name.len() as u64);
        for s in &seeds {
            (t.run)(s);
        }
        for i in 0..MUTATIONS {
            let input = mutate(&seeds[i % seeds.len()], &mut rng);
            (t.run)(&input);
        }
    }
    assert!(seeds("no-such-target").is_err());
    assert!(target("tile_path").is_some() && target("nope").is_none());
}

/// The seeds pass the checks their targets make, so the fuzzer starts behind them.
#[test]
fn the_seeds_are_valid_inputs() {
    use entente_evidence::package::{self, Discard, VerifyOptions};
    let key = package_sender(seeds::PACKAGE).expect("the seed package names its sender");
    let identity = age_identity();
    let opts = VerifyOptions { trusted: &[key], identity: identity.as_ref(), our_recipient: None };
    for s in seeds("package").unwrap().iter().chain(&seeds("package_age").unwrap()) {
        let v = package::verify(&mut &s[..], &opts, &mut Discard).unwrap();
        assert_eq!(v.manifest.items.len(), 2);
    }
    let entries = seeds("ledger_entry").unwrap();
    assert_eq!(entries.len(), 4, "acquired + exported for each of two items");
    for e in &entries {
        entente_core::ledger::LedgerEntry::decode(e).unwrap();
    }
    let nl = party("NL").unwrap();
    for s in seeds("envelope").unwrap() {
        let env: entente_wire::Envelope = serde_json::from_slice(&s).unwrap();
        env.verify(&sender_key().verifying_key(), &nl, now(), SignedDuration::from_mins(5))
            .unwrap();
        entente_wire::Message::decode(&env.kind, &env.payload).unwrap();
    }
    for s in seeds("wire_message").unwrap() {
        let (kind, json) = std::str::from_utf8(&s).unwrap().split_once('\n').unwrap();
        entente_wire::Message::decode(kind, &serde_json::from_str(json).unwrap()).unwrap();
    }
    let ack: entente_wire::Ack = serde_json::from_slice(&seeds("ack").unwrap()[0]).unwrap();
    let de = party("DE").unwrap();
    ack.verify(&sender_key().verifying_key(), &de, &nl, &[("NL-DE-1".into(), 1)]).unwrap();
    let batch: entente_wire::Batch =
        serde_json::from_slice(&seeds("federation_batch").unwrap()[0]).unwrap();
    assert_eq!(batch.envelopes.len(), seeds("envelope").unwrap().len());
    for s in seeds("tile_path").unwrap() {
        entente_core::ledger::parse_tile_path(std::str::from_utf8(&s).unwrap()).unwrap();
    }
    let cps = seeds("checkpoint").unwrap();
    let key = sender_key().verifying_key();
    let origin = entente_core::ledger::origin_for(&de, &key);
    let vkey = entente_core::ledger::verifier_key(&origin, &key);
    entente_core::ledger::verify_checkpoint(&cps[0], &vkey).unwrap();
    entente_core::witness::verify_cosignature(&cps[0], WITNESS, &witness_key().verifying_key())
        .unwrap();
    entente_intel::stix::parse_bundle(
        std::str::from_utf8(&seeds("stix_bundle").unwrap()[0]).unwrap(),
    )
    .unwrap();
    entente_intel::stix::parse_envelope(
        std::str::from_utf8(&seeds("taxii_envelope").unwrap()[0]).unwrap(),
    )
    .unwrap();
    for p in seeds("stix_pattern").unwrap() {
        entente_intel::pattern::check(std::str::from_utf8(&p).unwrap()).unwrap();
    }
    assert!(shipped_lexicon().is_some(), "the shipped lexicon parses");
    let utf8 = |b: &[u8]| std::str::from_utf8(b).unwrap().to_owned();
    for s in seeds("incident_regime").unwrap() {
        entente_policy::incident::parse_regime("seed.toml", &utf8(&s)).unwrap();
    }
    for s in seeds("incident_facts").unwrap() {
        entente_policy::incident::parse_facts("seed.toml", &utf8(&s)).unwrap();
    }
    let (lexicon, agreements) = (shipped_lexicon().unwrap(), shipped_agreements().unwrap());
    for s in seeds("scenario").unwrap() {
        entente_policy::gaps::parse_scenario("seed.toml", &utf8(&s), lexicon, agreements).unwrap();
    }
    for s in
        seeds("holiday_calendar").unwrap().iter().filter(|s| !s.windows(4).any(|w| w == b"\n%%\n"))
    {
        entente_policy::period::calendar::Calendar::parse("seed.toml", &utf8(s)).unwrap();
    }
    assert_eq!(shipped_agreements().map(<[_]>::len), Some(seeds::AGREEMENTS.len()));
    for s in seeds("psi_selector").unwrap().iter().filter(|s| !s.contains(&b'\n')) {
        entente_psi::selector::parse_line(std::str::from_utf8(s).unwrap(), Default::default())
            .unwrap();
    }
    for s in seeds("psi_wire").unwrap() {
        let limits = entente_psi::Limits::default();
        let ok = match s[0] {
            0 => entente_psi::QueryMessage::decode(&s[1..], &limits).is_ok(),
            1 => entente_psi::EvaluationMessage::decode(&s[1..], &limits).is_ok(),
            _ => entente_psi::SetChunk::decode(&s[1..], &limits).is_ok(),
        };
        assert!(ok);
    }
}
