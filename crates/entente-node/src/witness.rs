//! Witnessing partners' ledgers, and collecting the cosignatures partners make of this one.
//!
//! - As a witness, every [`WITNESS_INTERVAL`] this node fetches each pinned partner's latest
//!   checkpoint over mutual TLS, verifies the partner's signature, and compares it with the
//!   last checkpoint it saw of that partner (kept in `witness/<PARTY>.note` in the data
//!   directory): a larger tree must come with a consistency proof that verifies. Only then
//!   does it cosign (C2SP tlog-cosignature) and hand the cosignature to the partner. A tree
//!   that shrinks, two different roots for one size, or a proof that fails is a split view or
//!   a rewritten history: the node raises an alarm through its gate (`witness.alarm`, in its
//!   own ledger, with the digests of both signed checkpoints) and stops cosigning that
//!   partner, keeping the last good checkpoint as its view.
//! - As a log, it accepts cosignatures of its own checkpoints from pinned partners (the
//!   cosignature must verify with the partner's pinned key) and publishes the latest
//!   checkpoint with every cosignature collected for it at `/ledger/cosigned-checkpoint`
//!   (file `cosigned.note` in the data directory), so an auditor can ask for a witness
//!   threshold (`entente ledger audit --witness … --witness-threshold N`).
//!
//! - Witnesses compare notes: after cosigning a partner's checkpoint, a witness hands it to its
//!   other partners (`/federation/v1/witnessed`); each keeps it (`witness/<LOG>.from-<W>.note`)
//!   and, on its next pass over that log, checks it against its own view: two checkpoints the
//!   log signed for one size with different roots, or that no consistency proof from the log
//!   reconciles, are a split view, alarmed on that witness too.
//!
//! - A witness that catches a log's tree shrinking or changing also hands its last good view
//!   back to the log, which puts itself on hold (`crate::hold`).
//!
//! Cosignatures are not ledger entries: a cosignature recorded in the ledger would change
//! the ledger's checkpoint, which the partner would witness again, without end.

use crate::federation::{FederationError, TlsIdentity, peer_key};
use crate::identity::Node;
use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use entente_core::PartyCode;
use entente_core::ledger::{self, Hash, TreeProof};
use entente_core::witness::{self, Observation};
use entente_store::PeerRecord;
use jiff::Timestamp;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often partners' checkpoints are witnessed.
pub const WITNESS_INTERVAL: Duration = Duration::from_secs(1);

/// File holding this node's latest checkpoint with the cosignatures collected for it.
pub const COSIGNED_FILE: &str = "cosigned.note";

fn seen_path(dir: &Path, party: &PartyCode) -> PathBuf {
    dir.join("witness").join(format!("{party}.note"))
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The verifier key of a partner's ledger, from its pinned signing key.
///
/// # Errors
/// A stored key that is not an Ed25519 key.
pub fn log_verifier_key(peer: &PeerRecord) -> Result<String, FederationError> {
    let key = peer_key(peer)?;
    Ok(ledger::verifier_key(&ledger::origin_for(&peer.party, &key), &key))
}

/// Keeps a checkpoint of `log` that partner `from` witnessed, for this node's witness to
/// compare with its own view on its next pass.
///
/// # Errors
/// `log` is not pinned here, is `from` itself, or the note is not a checkpoint it signed.
pub async fn accept_witnessed(
    node: &Node,
    from: &PeerRecord,
    log: &PartyCode,
    note: &[u8],
) -> Result<(), String> {
    if log == &node.config.party {
        // A witness's view of this node's own ledger: checked, and a hold if the ledger does
        // not extend it (`crate::hold`).
        return crate::hold::witness_view(node, &from.party, note).await.map(|_| ());
    }
    if log == &from.party {
        return Err(format!(
            "{from} may not hand over checkpoints of {log} here",
            from = from.party
        ));
    }
    let peer = node
        .store
        .peer(log)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{log} is not a partner of this node"))?;
    let vkey = log_verifier_key(&peer).map_err(|e| e.to_string())?;
    ledger::verify_checkpoint(note, &vkey)
        .map_err(|e| format!("not a checkpoint of {log}: {e}"))?;
    let path = gossip_path(&node.data_dir, log, &from.party);
    write_atomic(&path, note).map_err(|e| format!("cannot keep it: {e}"))
}

fn gossip_path(dir: &Path, log: &PartyCode, from: &PartyCode) -> PathBuf {
    dir.join("witness").join(format!("{log}.from-{from}.note"))
}

/// Accepts a partner's cosignature of one of this node's checkpoints and keeps it with the
/// latest cosigned checkpoint. Returns how many cosignatures that checkpoint now has.
///
/// # Errors
/// The note is not a checkpoint of this node's ledger, or the cosignature does not verify
/// with the partner's pinned key.
pub fn accept_cosignature(
    node: &Node,
    peer: &PeerRecord,
    cosigned: &[u8],
) -> Result<usize, String> {
    let own = ledger::verify_checkpoint(cosigned, &node.verifier_key())
        .map_err(|e| format!("not a checkpoint of this node's ledger: {e}"))?;
    let name = witness::witness_name(&peer.party);
    let key = peer_key(peer).map_err(|e| e.to_string())?;
    witness::verify_cosignature(cosigned, &name, &key).map_err(|e| e.to_string())?;
    let line = cosignature_line(cosigned, &name).ok_or_else(|| "no cosignature line".to_owned())?;
    let path = node.data_dir.join(COSIGNED_FILE);
    let current = std::fs::read(&path).ok();
    let current_size = current
        .as_deref()
        .and_then(|c| ledger::verify_checkpoint(c, &node.verifier_key()).ok())
        .map(|c| c.size);
    let updated = match (current, current_size) {
        (Some(c), Some(s)) if s == own.size => witness::add_cosignatures(&c, &[line]),
        (Some(_), Some(s)) if s > own.size => return Ok(0),
        _ => {
            witness::add_cosignatures(&strip_cosignatures(cosigned, &node.verifier_key()), &[line])
        }
    };
    write_atomic(&path, &updated).map_err(|e| format!("cannot keep the cosignature: {e}"))?;
    Ok(count_lines(&updated))
}

/// The checkpoint note without any signature lines but the log's own.
fn strip_cosignatures(note: &[u8], _log_vkey: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(note);
    let mut out = String::new();
    let mut in_sigs = false;
    let mut first_sig = true;
    for line in text.split_inclusive('\n') {
        if in_sigs {
            if first_sig {
                out.push_str(line);
                first_sig = false;
            }
        } else {
            out.push_str(line);
            if line == "\n" {
                in_sigs = true;
            }
        }
    }
    out.into_bytes()
}

fn count_lines(note: &[u8]) -> usize {
    let text = String::from_utf8_lossy(note);
    text.split_once("\n\n").map_or(0, |(_, s)| s.lines().count().saturating_sub(1))
}

fn cosignature_line(note: &[u8], name: &str) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(note);
    let prefix = format!("\u{2014} {name} ");
    text.lines().find(|l| l.starts_with(&prefix)).map(|l| format!("{l}\n").into_bytes())
}

/// Witnesses pinned partners' ledgers.
#[derive(Debug)]
pub struct Witness {
    node: Node,
    tls: TlsIdentity,
    clients: HashMap<String, (String, reqwest::Client)>,
    alarmed: HashSet<String>,
}

/// What one witnessing pass found for one partner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Cosigned a checkpoint of this size.
    Cosigned(u64),
    /// Nothing new.
    Unchanged,
    /// A split view or rewritten history; the alarm's ledger index at this node.
    Alarm(String),
}

impl Witness {
    /// A witness for `node`.
    ///
    /// # Errors
    /// The node's TLS identity cannot be loaded.
    pub fn new(node: Node) -> Result<Witness, FederationError> {
        let tls = TlsIdentity::load(&node.data_dir)?;
        Ok(Witness { node, tls, clients: HashMap::new(), alarmed: HashSet::new() })
    }

    /// Witnesses every partner each [`WITNESS_INTERVAL`] until `shutdown` completes.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            // A hold released (or caused) by another process of this node, e.g. `entente
            // ledger release` beside `entente serve`.
            if let Err(e) = crate::hold::sync(&self.node).await {
                tracing::warn!(error = %e, "cannot read the ledger's hold");
            }
            match self.node.store.peers().await {
                Ok(peers) => {
                    for p in peers {
                        if let Err(e) = self.witness(&p).await {
                            tracing::info!(party = %p.party, error = %e, "cannot witness partner now");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot list partners to witness"),
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(WITNESS_INTERVAL) => {}
            }
        }
    }

    fn client(&mut self, peer: &PeerRecord) -> Result<reqwest::Client, FederationError> {
        if let Some((sha, c)) = self.clients.get(peer.party.as_str())
            && sha == &peer.cert_sha256
        {
            return Ok(c.clone());
        }
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(self.tls.client_config(&peer.cert_pem)?)
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| FederationError::Delivery {
                party: peer.party.clone(),
                detail: e.to_string(),
            })?;
        self.clients
            .insert(peer.party.as_str().to_owned(), (peer.cert_sha256.clone(), client.clone()));
        Ok(client)
    }

    /// One witnessing pass over `peer`.
    ///
    /// # Errors
    /// The partner cannot be reached or answers nonsense (retried next pass).
    pub async fn witness(&mut self, peer: &PeerRecord) -> Result<Outcome, FederationError> {
        let fail = |detail: String| FederationError::Delivery { party: peer.party.clone(), detail };
        let client = self.client(peer)?;
        let base = peer.url.trim_end_matches('/');
        let note = client
            .get(format!("{base}/federation/v1/checkpoint"))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| fail(e.to_string()))?
            .bytes()
            .await
            .map_err(|e| fail(e.to_string()))?
            .to_vec();
        let vkey = log_verifier_key(peer)?;
        let cp = ledger::verify_checkpoint(&note, &vkey)
            .map_err(|e| fail(format!("checkpoint refused: {e}")))?;
        let path = seen_path(&self.node.data_dir, &peer.party);
        let last_note = std::fs::read(&path).ok();
        let last = last_note
            .as_deref()
            .and_then(|n| ledger::verify_checkpoint(n, &vkey).ok())
            .map(|c| (c.size, c.root));
        let proof = match last {
            Some((old, _)) if cp.size > old => {
                let url = format!("{base}/federation/v1/consistency?old={old}&new={}", cp.size);
                let body: serde_json::Value = client
                    .get(url)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|e| fail(e.to_string()))?
                    .json()
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                Some(parse_proof(&body).map_err(fail)?)
            }
            _ => None,
        };
        let observed = witness::observe(last, (cp.size, cp.root), proof.as_ref());
        if matches!(observed, Observation::First | Observation::Extends | Observation::Unchanged)
            && let Some(outcome) = self.compare_notes(peer, &client, &note, &vkey).await?
        {
            // No cosignature for a log caught equivocating, but the other witnesses get this
            // view too, so that each of them holds the evidence.
            self.hand_to_other_witnesses(peer, &note).await;
            return Ok(outcome);
        }
        match observed {
            Observation::Unchanged => Ok(Outcome::Unchanged),
            Observation::First | Observation::Extends => {
                write_atomic(&path, &note).map_err(|e| fail(e.to_string()))?;
                let line = witness::cosign(
                    &note,
                    &witness::witness_name(&self.node.config.party),
                    &self.node.key,
                    u64::try_from(Timestamp::now().as_second()).unwrap_or(0),
                )
                .map_err(|e| fail(e.to_string()))?;
                let cosigned = witness::add_cosignatures(&note, &[line]);
                client
                    .post(format!("{base}/federation/v1/cosignatures"))
                    .header("content-type", "text/plain; charset=utf-8")
                    .body(cosigned)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|e| fail(format!("cosignature not taken: {e}")))?;
                self.hand_to_other_witnesses(peer, &note).await;
                Ok(Outcome::Cosigned(cp.size))
            }
            Observation::SplitView(detail) => {
                let outcome = self.alarm(peer, last_note.as_deref(), &note, detail).await;
                // The log itself learns what this witness holds of it, so that it stops
                // appending to a history the witness never saw (`crate::hold`).
                if let Some(last) = &last_note {
                    let body = serde_json::json!({"log": peer.party, "note": String::from_utf8_lossy(last)});
                    if let Err(e) = client
                        .post(format!("{base}/federation/v1/witnessed"))
                        .json(&body)
                        .send()
                        .await
                        .and_then(reqwest::Response::error_for_status)
                    {
                        tracing::info!(party = %peer.party, error = %e, "could not show the log its witnessed checkpoint");
                    }
                }
                outcome
            }
        }
    }

    /// Hands a checkpoint of `log` just cosigned to every other partner (best effort).
    async fn hand_to_other_witnesses(&mut self, log: &PeerRecord, note: &[u8]) {
        let Ok(peers) = self.node.store.peers().await else { return };
        let body = serde_json::json!({"log": log.party, "note": String::from_utf8_lossy(note)});
        for p in peers.iter().filter(|p| p.party != log.party) {
            let Ok(client) = self.client(p) else { continue };
            let url = format!("{}/federation/v1/witnessed", p.url.trim_end_matches('/'));
            if let Err(e) = client
                .post(url)
                .json(&body)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
            {
                tracing::info!(party = %p.party, error = %e, "could not hand over a witnessed checkpoint");
            }
        }
    }

    /// Compares the checkpoints of `log` other witnesses handed over with this node's view
    /// `own` (verified); a contradiction raises the alarm.
    async fn compare_notes(
        &mut self,
        log: &PeerRecord,
        client: &reqwest::Client,
        own: &[u8],
        vkey: &str,
    ) -> Result<Option<Outcome>, FederationError> {
        let fail = |detail: String| FederationError::Delivery { party: log.party.clone(), detail };
        let dir = self.node.data_dir.join("witness");
        let prefix = format!("{}.from-", log.party);
        let Ok(read) = std::fs::read_dir(&dir) else { return Ok(None) };
        let own_cp = ledger::verify_checkpoint(own, vkey).map_err(|e| fail(e.to_string()))?;
        for entry in read.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with(&prefix) || !name.ends_with(".note") {
                continue;
            }
            let Ok(other) = std::fs::read(entry.path()) else { continue };
            let Ok(theirs) = ledger::verify_checkpoint(&other, vkey) else { continue };
            let (small, big) =
                if theirs.size <= own_cp.size { (&theirs, &own_cp) } else { (&own_cp, &theirs) };
            let consistent = if small.size == big.size {
                small.root == big.root
            } else {
                let url = format!(
                    "{}/federation/v1/consistency?old={}&new={}",
                    log.url.trim_end_matches('/'),
                    small.size,
                    big.size
                );
                let proof = match client
                    .get(url)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                {
                    Ok(r) => {
                        r.json::<serde_json::Value>().await.ok().and_then(|b| parse_proof(&b).ok())
                    }
                    Err(_) => None,
                };
                proof.is_some_and(|p| {
                    ledger::check_tree(&p, big.size, big.root, small.size, small.root).is_ok()
                })
            };
            let witness = name.trim_start_matches(&prefix).trim_end_matches(".note").to_owned();
            if consistent {
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            let detail = format!(
                "{} showed witness {witness} a checkpoint of size {} and this node one of size {} that no consistency proof reconciles",
                log.party, theirs.size, own_cp.size
            );
            return Ok(Some(self.alarm(log, Some(&other), own, detail).await?));
        }
        Ok(None)
    }

    async fn alarm(
        &mut self,
        peer: &PeerRecord,
        last_note: Option<&[u8]>,
        note: &[u8],
        detail: String,
    ) -> Result<Outcome, FederationError> {
        let new_digest = entente_core::canonical::sha256_tagged(note);
        let old_digest = last_note.map(entente_core::canonical::sha256_tagged).unwrap_or_default();
        if !self.alarmed.insert(format!("{old_digest} {new_digest}")) {
            return Ok(Outcome::Unchanged);
        }
        // Keep the offending checkpoint beside the last good one, as evidence.
        let evidence = seen_path(&self.node.data_dir, &peer.party)
            .with_extension(format!("split-{}.note", &new_digest[7..19]));
        let _ = write_atomic(&evidence, note);
        tracing::error!(party = %peer.party, %detail, "SPLIT VIEW: partner ledger inconsistent");
        let command = entente_store::peers::WitnessAlarm {
            log: peer.party.clone(),
            seen: old_digest,
            shown: new_digest,
            detail: detail.clone(),
        };
        let index =
            match self.node.gate.submit(self.node.operator(), command, Timestamp::now()).await {
                Ok(
                    entente_store::Verdict::Permitted { index, .. }
                    | entente_store::Verdict::Denied { index, .. },
                ) => index.to_string(),
                Err(e) => format!("not recorded: {e}"),
            };
        Ok(Outcome::Alarm(format!("{detail} (alarm at ledger entry {index})")))
    }
}

fn parse_proof(body: &serde_json::Value) -> Result<TreeProof, String> {
    let list = body
        .get("hashes")
        .and_then(|h| h.as_array())
        .ok_or_else(|| "consistency proof without `hashes`".to_owned())?;
    list.iter()
        .map(|h| {
            let b = h
                .as_str()
                .and_then(|s| BASE64_STANDARD.decode(s).ok())
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| "a proof hash is not 32 base64 bytes".to_owned())?;
            Ok(Hash(b))
        })
        .collect()
}
