//! Crash safety: a node killed with SIGKILL in the middle of a stream of writes loses no
//! acknowledged action, and its ledger still verifies (locally and by an outside auditor).

use crate::common::{Server, add_user, entente, init_node, s, stderr, stdout};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Rounds of start, write, SIGKILL.
const ROUNDS: u64 = 20;
/// Concurrent writers per round.
const WRITERS: u64 = 4;
/// Upper bound on the requests one writer sends in one round.
const MAX_PER_WRITER: u64 = 2_000;

/// xorshift64*: a deterministic PRNG, enough for kill delays.
struct Prng(u64);

impl Prng {
    fn new(seed: u64) -> Self {
        Prng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// A case the node acknowledged (201) and the ledger index it reported.
#[derive(Debug, Clone)]
struct Ack {
    id: String,
    ledger_index: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_cases_survive_sigkill() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nl");
    let node = init_node(&dir, "NL");
    let token = add_user(&dir, "eva", "investigator");

    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let acks: Arc<Mutex<Vec<Ack>>> = Arc::default();
    let unexpected: Arc<Mutex<Vec<String>>> = Arc::default();
    let next_id = Arc::new(AtomicU64::new(0));
    let mut per_round = Vec::new();

    for round in 0..ROUNDS {
        let mut server = Server::start(&dir, Duration::from_secs(15)).await;
        let before = acks.lock().unwrap().len();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut writers = Vec::new();
        for _ in 0..WRITERS {
            let (client, url, token) = (client.clone(), server.url.clone(), token.clone());
            let (acks, unexpected, next_id) = (acks.clone(), unexpected.clone(), next_id.clone());
            writers.push(tokio::spawn(async move {
                for _ in 0..MAX_PER_WRITER {
                    if Instant::now() > deadline {
                        break;
                    }
                    let id = format!("C{}", next_id.fetch_add(1, Ordering::Relaxed));
                    let sent = client
                        .post(format!("{url}/api/v1/cases"))
                        .bearer_auth(&token)
                        .json(&serde_json::json!({"id": id, "title": "t", "concepts": []}))
                        .send()
                        .await;
                    let Ok(resp) = sent else {
                        break; // the server is gone
                    };
                    let status = resp.status();
                    let Ok(body) = resp.json::<serde_json::Value>().await else {
                        break; // killed while answering: not acknowledged
                    };
                    if status == reqwest::StatusCode::CREATED {
                        let ledger_index = body["ledger_index"].as_u64().unwrap_or(u64::MAX);
                        acks.lock().unwrap().push(Ack { id, ledger_index });
                    } else {
                        unexpected.lock().unwrap().push(format!("{id}: {status} {body}"));
                    }
                }
            }));
        }
        let delay = Prng::new(round + 1).range(20, 300);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.child.kill();
        for w in writers {
            w.await.unwrap();
        }
        per_round.push((delay, acks.lock().unwrap().len() - before));
    }

    let acks = acks.lock().unwrap().clone();
    let unexpected = unexpected.lock().unwrap().clone();
    assert!(unexpected.is_empty(), "responses other than 201: {unexpected:#?}");
    assert!(!acks.is_empty(), "no case was ever acknowledged: {per_round:?}");
    let mut indexes: Vec<u64> = acks.iter().map(|a| a.ledger_index).collect();
    indexes.sort_unstable();
    indexes.dedup();
    assert_eq!(indexes.len(), acks.len(), "two acknowledged cases share a ledger index");

    // Every acknowledged case is there after the last crash, recorded at the index the node
    // reported when it acknowledged it.
    let server = Server::start(&dir, Duration::from_secs(15)).await;
    let missing: Arc<Mutex<Vec<String>>> = Arc::default();
    let chunks: Vec<Vec<Ack>> = acks.chunks(acks.len().div_ceil(4)).map(<[Ack]>::to_vec).collect();
    let mut readers = Vec::new();
    for chunk in chunks {
        let (client, url, token, missing) =
            (client.clone(), server.url.clone(), token.clone(), missing.clone());
        readers.push(tokio::spawn(async move {
            for a in chunk {
                let resp = client
                    .get(format!("{url}/api/v1/cases/{}", a.id))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                let status = resp.status();
                let body: serde_json::Value = resp.json().await.unwrap_or_default();
                if status != reqwest::StatusCode::OK
                    || body["case"]["id"] != a.id.as_str()
                    || body["case"]["ledger_index"].as_u64() != Some(a.ledger_index)
                {
                    missing.lock().unwrap().push(format!("{a:?}: {status} {body}"));
                }
            }
        }));
    }
    for r in readers {
        r.await.unwrap();
    }
    let missing = missing.lock().unwrap().clone();
    assert!(missing.is_empty(), "acknowledged cases lost or changed after SIGKILL: {missing:#?}");

    // An outside auditor, pinning the key `init` printed, finds the ledger sound.
    let audit = entente(&["ledger", "audit", &server.url, "--key", &node.verifier_key]);
    assert!(
        audit.status.success(),
        "audit failed ({:?}):\n{}\n{}",
        audit.status.code(),
        stdout(&audit),
        stderr(&audit)
    );
    assert!(stdout(&audit).contains(": sound."), "{}", stdout(&audit));
    drop(server);

    let verify = entente(&["ledger", "verify", "--data-dir", s(&dir)]);
    assert!(
        verify.status.success(),
        "verify failed ({:?}):\n{}\n{}",
        verify.status.code(),
        stdout(&verify),
        stderr(&verify)
    );
    // init + user add + the acknowledged cases + their reads, at least.
    let entries: usize = stdout(&verify)
        .split(": ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no entry count in: {}", stdout(&verify)));
    assert!(entries >= 2 + 2 * acks.len(), "{entries} entries for {} acknowledged", acks.len());

    eprintln!(
        "{} acknowledged cases over {ROUNDS} SIGKILL rounds (delay ms, acks): {per_round:?}; {:?}",
        acks.len(),
        started.elapsed()
    );
}
