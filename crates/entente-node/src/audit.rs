//! Auditing a running node from what it publishes: its signed checkpoint and its C2SP
//! tlog-tiles (entry bundles and hash tiles), with no access to its database.
//!
//! The auditor downloads every entry bundle, checks that each entry is canonical and in its
//! place, recomputes the Merkle tree, checks every hash tile the node serves against the
//! recomputed tree, and checks the recomputed root against the checkpoint's signed root. With
//! a checkpoint seen earlier, it also checks that the new tree extends the old one.

use entente_core::ledger::{self, Frontier, Hash, LedgerEntry, VerifiedCheckpoint};
use std::collections::BTreeMap;
use std::time::Duration;

/// What an audit established.
#[derive(Clone, Debug)]
pub struct AuditReport {
    /// The checkpoint audited.
    pub checkpoint: VerifiedCheckpoint,
    /// The signed note, to keep as the next trusted checkpoint.
    pub note: Vec<u8>,
    /// Entry bundles fetched.
    pub bundles: u64,
    /// Hash tiles fetched and checked.
    pub hash_tiles: u64,
    /// Entries by action and decision, e.g. `("case.open", "permit") -> 3`.
    pub actions: BTreeMap<(String, String), u64>,
    /// The earlier checkpoint this one was shown consistent with, if any.
    pub consistent_with: Option<u64>,
}

/// Why an audit failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The node could not be reached or answered with an error.
    #[error("fetching {url}: {detail}")]
    Fetch {
        /// The URL.
        url: String,
        /// What happened.
        detail: String,
    },
    /// The checkpoint is not validly signed.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A published entry or tile contradicts the checkpoint.
    #[error("{0}")]
    Inconsistent(String),
    /// The node's tree does not extend the trusted checkpoint: a fork or a rollback.
    #[error("the node's ledger does not extend the trusted checkpoint: {0}")]
    Fork(String),
}

struct Fetcher {
    client: reqwest::Client,
    base: String,
}

impl Fetcher {
    async fn get(&self, path: &str) -> Result<Vec<u8>, AuditError> {
        let url = format!("{}/{path}", self.base);
        let fail = |detail: String| AuditError::Fetch { url: url.clone(), detail };
        let resp = self.client.get(&url).send().await.map_err(|e| fail(e.to_string()))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| fail(e.to_string()))?;
        if !status.is_success() {
            return Err(fail(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            )));
        }
        Ok(body.to_vec())
    }
}

/// Fetches the verifier key a node publishes (trust on first use: pin it out of band).
///
/// # Errors
/// Network errors.
pub async fn fetch_verifier_key(base_url: &str) -> Result<String, AuditError> {
    let f = fetcher(base_url)?;
    let bytes = f.get("ledger/key").await?;
    Ok(String::from_utf8_lossy(&bytes).trim().to_owned())
}

/// What the witness check established.
#[derive(Clone, Debug)]
pub struct WitnessReport {
    /// The cosigned checkpoint (the log's signature verified).
    pub checkpoint: VerifiedCheckpoint,
    /// The note with its cosignatures.
    pub note: Vec<u8>,
    /// Names of the given witnesses whose cosignature verified.
    pub cosigned_by: Vec<String>,
}

/// Fetches the node's cosigned checkpoint and checks that at least `threshold` of
/// `witnesses` (C2SP cosignature/v1 verifier keys) cosigned it.
///
/// # Errors
/// Unreachable node, a checkpoint not signed by the log, a malformed witness key, or fewer
/// valid cosignatures than the threshold (naming those missing).
pub async fn check_witnesses(
    base_url: &str,
    verifier_key: &str,
    witnesses: &[String],
    threshold: usize,
) -> Result<WitnessReport, AuditError> {
    let f = fetcher(base_url)?;
    let note = f.get("ledger/cosigned-checkpoint").await?;
    let checkpoint = ledger::verify_checkpoint(&note, verifier_key)
        .map_err(|e| AuditError::Checkpoint(format!("cosigned checkpoint: {e}")))?;
    let mut cosigned_by = Vec::new();
    let mut missing = Vec::new();
    for w in witnesses {
        let (name, key) = entente_core::witness::parse_verifier_key(w)
            .map_err(|e| AuditError::Checkpoint(e.to_string()))?;
        match entente_core::witness::verify_cosignature(&note, &name, &key) {
            Ok(_) => cosigned_by.push(name),
            Err(e) => missing.push(e.to_string()),
        }
    }
    if cosigned_by.len() < threshold {
        return Err(AuditError::Checkpoint(format!(
            "{} of the required {threshold} witnesses cosigned the checkpoint of size {}: {}",
            cosigned_by.len(),
            checkpoint.size,
            missing.join("; ")
        )));
    }
    Ok(WitnessReport { checkpoint, note, cosigned_by })
}

fn fetcher(base_url: &str) -> Result<Fetcher, AuditError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| AuditError::Fetch { url: base_url.to_owned(), detail: e.to_string() })?;
    Ok(Fetcher { client, base: base_url.trim_end_matches('/').to_owned() })
}

/// Audits the node at `base_url` whose ledger is signed by `verifier_key`. `trusted` is a
/// signed checkpoint seen earlier (the audit proves the current tree extends it).
/// `progress(done, total)` reports entries processed.
///
/// # Errors
/// The first problem found.
pub async fn audit(
    base_url: &str,
    verifier_key: &str,
    trusted: Option<&[u8]>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<AuditReport, AuditError> {
    audit_keeping(base_url, verifier_key, trusted, &[], progress).await.map(|(r, _)| r)
}

/// [`audit`], keeping the canonical bytes of the entries at `keep` as the audit checked them
/// (in the tree the checkpoint signs): what an auditor reads an entry from, never from a
/// second download that the node could answer differently.
///
/// # Errors
/// As [`audit`].
pub async fn audit_keeping(
    base_url: &str,
    verifier_key: &str,
    trusted: Option<&[u8]>,
    keep: &[u64],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(AuditReport, BTreeMap<u64, Vec<u8>>), AuditError> {
    let mut kept = BTreeMap::new();
    let f = fetcher(base_url)?;
    let note = f.get("ledger/checkpoint").await?;
    let cp = ledger::verify_checkpoint(&note, verifier_key)
        .map_err(|e| AuditError::Checkpoint(e.to_string()))?;
    let old = match trusted {
        Some(t) => {
            let old = ledger::verify_checkpoint(t, verifier_key)
                .map_err(|e| AuditError::Checkpoint(format!("trusted checkpoint: {e}")))?;
            if old.size > cp.size {
                return Err(AuditError::Fork(format!(
                    "the node now shows {} entries but an earlier checkpoint showed {}",
                    cp.size, old.size
                )));
            }
            Some(old)
        }
        None => None,
    };
    let size = cp.size;
    let mut frontier = Frontier::new();
    let mut report = AuditReport {
        checkpoint: cp.clone(),
        note: note.clone(),
        bundles: 0,
        hash_tiles: 0,
        actions: BTreeMap::new(),
        consistent_with: None,
    };
    // Hashes at each tile level boundary (levels 8, 16, …) as the tree grows, to check the
    // higher hash tiles afterwards.
    let mut upper: BTreeMap<u8, Vec<Hash>> = BTreeMap::new();
    let bundles = size.div_ceil(ledger::TILE_WIDTH);
    for b in 0..bundles {
        let width = (size - b * ledger::TILE_WIDTH).min(ledger::TILE_WIDTH);
        let path = ledger::entries_path(b, width);
        let bundle = f.get(&format!("ledger/{path}")).await?;
        let entries = ledger::decode_entry_bundle(&bundle)
            .map_err(|e| AuditError::Inconsistent(format!("{path}: {e}")))?;
        if entries.len() as u64 != width {
            return Err(AuditError::Inconsistent(format!(
                "{path}: {} entries, expected {width}",
                entries.len()
            )));
        }
        let mut leaves = Vec::with_capacity(entries.len());
        for (k, bytes) in entries.iter().enumerate() {
            let index = b * ledger::TILE_WIDTH + k as u64;
            let entry = LedgerEntry::decode(bytes)
                .map_err(|e| AuditError::Inconsistent(format!("entry {index}: {e}")))?;
            if entry.index != index {
                return Err(AuditError::Inconsistent(format!(
                    "entry {index} says it is entry {}",
                    entry.index
                )));
            }
            let decision = serde_json::to_value(entry.decision)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            *report.actions.entry((entry.action.to_string(), decision)).or_default() += 1;
            if keep.contains(&index) {
                kept.insert(index, bytes.to_vec());
            }
            let leaf = ledger::record_hash(bytes);
            leaves.push(leaf);
            for (stored, h) in frontier.push(leaf) {
                let (level, _) = ledger::split_stored_hash_index(stored);
                if level > 0 && level % ledger::TILE_HEIGHT == 0 {
                    upper.entry(level / ledger::TILE_HEIGHT).or_default().push(h);
                }
            }
            if let Some(o) = old.as_ref().filter(|o| o.size == frontier.size()) {
                if frontier.root() != o.root {
                    return Err(AuditError::Fork(format!(
                        "entries 0..{} hash to {}, but the trusted checkpoint signed {}",
                        o.size,
                        frontier.root(),
                        o.root
                    )));
                }
                report.consistent_with = Some(o.size);
            }
        }
        let tile_path = ledger::tile_path(0, b, width);
        let tile = f.get(&format!("ledger/{tile_path}")).await?;
        let expected: Vec<u8> = leaves.iter().flat_map(|h| h.0).collect();
        if tile != expected {
            return Err(AuditError::Inconsistent(format!(
                "{tile_path} differs from the hashes of the entries it covers"
            )));
        }
        report.bundles += 1;
        report.hash_tiles += 1;
        progress(frontier.size(), size);
    }
    for (level, hashes) in &upper {
        for (n, chunk) in hashes.chunks(ledger::TILE_WIDTH as usize).enumerate() {
            let tile_path = ledger::tile_path(*level, n as u64, chunk.len() as u64);
            let tile = f.get(&format!("ledger/{tile_path}")).await?;
            let expected: Vec<u8> = chunk.iter().flat_map(|h| h.0).collect();
            if tile != expected {
                return Err(AuditError::Inconsistent(format!(
                    "{tile_path} differs from the recomputed tree"
                )));
            }
            report.hash_tiles += 1;
        }
    }
    if frontier.root() != cp.root {
        return Err(AuditError::Inconsistent(format!(
            "the {size} published entries hash to {}, but the checkpoint signed {}",
            frontier.root(),
            cp.root
        )));
    }
    if old.is_some() && report.consistent_with.is_none() {
        report.consistent_with = old.map(|o| o.size);
    }
    Ok((report, kept))
}
