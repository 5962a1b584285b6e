//! Measures the protocol's costs on this machine:
//!
//! ```text
//! cargo run --release -p entente-psi --example psi_bench [set size]
//! ```
//!
//! - the holder's evaluation of a query (blinded elements and the batch DLEQ proof), per
//!   element, one core;
//! - the asker's blinding and finalising (with proof verification), per selector;
//! - preparing a set (100,000 selectors by default) in both modes, on one core and on two
//!   threads of the caller's.

use entente_psi::{
    CardinalityQuery, HolderEntry, HolderKey, Label, LabelledQuery, Limits, Mode, PreparedSet,
    Selector, selector,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn selectors(n: usize, offset: usize) -> Result<Vec<Selector>> {
    (0..n)
        .map(|i| {
            let v = (i + offset) as u32;
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 | v);
            Ok(selector::parse(selector::SelectorKind::Ip, &ip.to_string(), Default::default())?)
        })
        .collect()
}

#[expect(clippy::disallowed_methods, reason = "a benchmark measures wall time")]
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

fn per_second(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn main() -> Result<()> {
    let set_size: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let mut rng = StdRng::seed_from_u64(1);
    let key = HolderKey::generate(&mut rng)?;
    let public = *key.public_key();
    let limits = Limits::default();
    let label = Label { case_reference: "DE-2026-0042".into(), contact: "desk@bka.example".into() };
    let entries: Vec<HolderEntry> = selectors(set_size, 0)?
        .into_iter()
        .map(|selector| HolderEntry { selector, labels: vec![label.clone()] })
        .collect();

    println!("set of {set_size} selectors");
    for mode in [Mode::Labelled, Mode::Cardinality] {
        let (set, d) = timed(|| key.prepare_set(mode, &entries, 10_000, &mut rng, |_, _| {}));
        let set = set?;
        println!(
            "prepare {mode:<11} one core:   {:>7.2} s ({:>6.0} selectors/s)",
            d.as_secs_f64(),
            per_second(set_size, d)
        );
        let (set2, d) = timed(|| {
            let halves: Vec<&[HolderEntry]> = entries.chunks(set_size.div_ceil(2).max(1)).collect();
            let chunks = std::thread::scope(|s| {
                let handles: Vec<_> = halves
                    .iter()
                    .enumerate()
                    .map(|(i, half)| {
                        let key = &key;
                        s.spawn(move || {
                            let mut rng = StdRng::seed_from_u64(10 + i as u64);
                            key.prepare_chunk(mode, half, &mut rng)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().map_err(|_| "a preparing thread panicked")?.map_err(Into::into)
                    })
                    .collect::<Result<Vec<_>>>()
            })?;
            Ok::<_, Box<dyn std::error::Error>>(PreparedSet::assemble(key.epoch(), mode, chunks)?)
        });
        let set2 = set2?;
        println!(
            "prepare {mode:<11} 2 threads:  {:>7.2} s ({:>6.0} selectors/s)",
            d.as_secs_f64(),
            per_second(set_size, d)
        );
        if mode == Mode::Cardinality {
            assert_eq!(set.digest(), set2.digest());
        }
        let mut bytes = 0;
        for c in set.chunks(50_000) {
            bytes += c.to_json()?.len();
        }
        println!("  set transfer in JSON: {:.1} MB", bytes as f64 / 1e6);
    }

    let set = key.prepare_set(Mode::Labelled, &entries, 10_000, &mut rng, |_, _| {})?;
    let card = key.prepare_set(Mode::Cardinality, &entries, 10_000, &mut rng, |_, _| {})?;
    let query_size = 1024;
    let rounds = 5;
    // Half of the asker's selectors are in the holder's set.
    let asked = selectors(query_size, set_size.saturating_sub(query_size / 2))?;

    let mut blind = Duration::ZERO;
    let mut evaluate = Duration::ZERO;
    let mut finish = Duration::ZERO;
    for _ in 0..rounds {
        let (q, d) = timed(|| LabelledQuery::new(&public, &asked, query_size, &limits, &mut rng));
        let (state, query) = q?;
        blind += d;
        let (e, d) = timed(|| key.evaluate(&set, &query, &limits, &mut rng));
        let e = e?;
        evaluate += d;
        let (matches, d) = timed(|| state.finish(&public, &e, &set));
        finish += d;
        assert_eq!(matches?.len(), query_size.min(set_size) / 2);
    }
    let n = rounds * query_size;
    println!("labelled queries of {query_size}, {rounds} rounds:");
    println!("  holder evaluate + proof: {:>7.0} elements/s", per_second(n, evaluate));
    println!("  asker blind:             {:>7.0} elements/s", per_second(n, blind));
    println!("  asker verify + finalise: {:>7.0} elements/s", per_second(n, finish));
    println!("  asker blind + finalise:  {:>7.0} elements/s", per_second(n, blind + finish));

    let mut blind = Duration::ZERO;
    let mut evaluate = Duration::ZERO;
    let mut finish = Duration::ZERO;
    for _ in 0..rounds {
        let (q, d) =
            timed(|| CardinalityQuery::new(&public, &asked, query_size, &limits, &mut rng));
        let (state, query) = q?;
        blind += d;
        let (e, d) = timed(|| key.evaluate(&card, &query, &limits, &mut rng));
        let e = e?;
        evaluate += d;
        let (count, d) = timed(|| state.finish(&public, &e, &card));
        finish += d;
        assert_eq!(count?, query_size.min(set_size) / 2);
    }
    println!("cardinality queries of {query_size}, {rounds} rounds:");
    println!("  holder evaluate + proof: {:>7.0} elements/s", per_second(n, evaluate));
    println!("  asker blind + finalise:  {:>7.0} elements/s", per_second(n, blind + finish));
    Ok(())
}
