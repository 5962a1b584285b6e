//! A ledger on hold: what this node does when a witness shows it a checkpoint of its own
//! ledger that the ledger does not extend.
//!
//! A node restored from a backup older than what its partners have cosigned has lost entries
//! the partners saw; a node whose database was rewritten has another history. Either way, the
//! partners' witnesses hold a checkpoint this node signed that its ledger no longer extends,
//! and every entry it appended from there would fork the log behind their backs. A witness
//! that catches this (a shrunk tree, another root for a size it saw) alarms in its own
//! ledger and hands its last good view back to the log (`/federation/v1/witnessed`, with the
//! log's own party). The log checks that view: signed with its own key, and not extended by
//! its ledger (larger, or not consistent with it). Then it puts the gate on hold: every
//! command is refused with `GateError::Held` (503 on the API; nothing decided or recorded)
//! until the operator decides, and the hold survives restarts (`ledger-hold.json` in the data
//! directory). The operator either restores a newer backup (a ledger that extends the view
//! ends the hold when the node opens) or goes on from the ledger it has with `entente ledger
//! release --reason …`, recorded as `ledger.release` with the digest of the witness's
//! checkpoint.

use crate::identity::{Node, NodeError};
use entente_core::PartyCode;
use entente_core::ledger;
use entente_core::witness::{self, Observation};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file that keeps a hold across restarts.
pub const HOLD_FILE: &str = "ledger-hold.json";

/// Why the ledger is on hold: the witness's checkpoint and what contradicts it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The witness that showed the checkpoint.
    pub witness: PartyCode,
    /// The checkpoint's tree size.
    pub size: u64,
    /// The signed checkpoint, as the witness sent it.
    pub checkpoint: String,
    /// What the ledger says against it.
    pub reason: String,
    /// When the node found out (RFC 3339).
    pub at: String,
}

fn hold_path(dir: &Path) -> PathBuf {
    dir.join(HOLD_FILE)
}

/// The hold kept in `dir`, if any.
///
/// # Errors
/// The file exists but cannot be read or is not a hold.
pub fn read_hold(dir: &Path) -> Result<Option<Hold>, NodeError> {
    let path = hold_path(dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            NodeError::Invalid(format!("{}: not a ledger hold ({e})", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NodeError::Invalid(format!("cannot read {}: {e}", path.display()))),
    }
}

/// What the ledger says against a checkpoint of its own of `size` entries and `root`, or
/// `None` when the ledger extends it.
///
/// # Errors
/// The ledger cannot be read.
pub async fn contradiction(
    node: &Node,
    size: u64,
    root: ledger::Hash,
) -> Result<Option<String>, NodeError> {
    let (own_size, note) = node.store.ledger_head().await?;
    if size > own_size {
        return Ok(Some(format!(
            "the witness holds this ledger's checkpoint of {size} entries, but the ledger has \
             {own_size}: entries were lost (a restore from an older backup?) or rewritten"
        )));
    }
    let Some(note) = note else {
        return Ok(Some(format!(
            "the witness holds a checkpoint of {size} entries of a ledger that has none"
        )));
    };
    let own = ledger::verify_checkpoint(&note, &node.verifier_key())
        .map_err(|e| NodeError::Invalid(format!("this node's own checkpoint: {e}")))?;
    let proof = if size < own_size {
        Some(node.store.consistency_proof(own_size, size).await?)
    } else {
        None
    };
    Ok(match witness::observe(Some((size, root)), (own.size, own.root), proof.as_ref()) {
        Observation::SplitView(detail) => Some(format!(
            "the ledger does not extend the witness's checkpoint of {size} entries: {detail}"
        )),
        _ => None,
    })
}

/// A checkpoint of this node's own ledger handed back by the witness `from`. Checked against
/// the node's key and ledger; one the ledger does not extend puts the ledger on hold (kept in
/// the data directory). Answers whether it did.
///
/// # Errors
/// The note is not a checkpoint signed with this node's key, or the hold cannot be kept.
pub async fn witness_view(node: &Node, from: &PartyCode, note: &[u8]) -> Result<bool, String> {
    let cp = ledger::verify_checkpoint(note, &node.verifier_key())
        .map_err(|e| format!("not a checkpoint of this node's ledger: {e}"))?;
    // A checkpoint whose hold the operator released holds the ledger no more.
    let digest = entente_core::digest::Sha256::of(note).to_hex();
    if node.store.released_checkpoints().await.map_err(|e| e.to_string())?.contains(&digest) {
        return Ok(false);
    }
    let Some(why) = contradiction(node, cp.size, cp.root).await.map_err(|e| e.to_string())? else {
        return Ok(false);
    };
    let reason = format!("{from}'s witness: {why}");
    let hold = Hold {
        witness: from.clone(),
        size: cp.size,
        checkpoint: String::from_utf8_lossy(note).into_owned(),
        reason: reason.clone(),
        at: format!("{:.0}", jiff::Timestamp::now()),
    };
    let bytes = serde_json::to_vec_pretty(&hold).map_err(|e| e.to_string())?;
    crate::witness::write_atomic(&hold_path(&node.data_dir), &bytes)
        .map_err(|e| format!("cannot keep the hold: {e}"))?;
    tracing::error!(witness = %from, %reason, "LEDGER ON HOLD: a witness holds a checkpoint this ledger does not extend");
    node.gate.hold(reason);
    Ok(true)
}

/// At start-up: a hold kept in the data directory holds the gate again, unless the ledger now
/// extends the witness's checkpoint (a newer backup was restored), which ends it.
///
/// # Errors
/// The hold file cannot be read or removed, or the ledger cannot be read.
pub async fn resume(node: &Node) -> Result<(), NodeError> {
    // A hold that cannot be read still holds (the node must not start appending because a
    // file was damaged), and `release` can still end it.
    let unreadable = |e: String| {
        format!(
            "{HOLD_FILE} cannot be read ({e}); the ledger stays on hold until `entente ledger release`"
        )
    };
    let hold = match read_hold(&node.data_dir) {
        Ok(Some(h)) => h,
        Ok(None) => return Ok(()),
        Err(e) => {
            node.gate.hold(unreadable(e.to_string()));
            return Ok(());
        }
    };
    let cp = match ledger::verify_checkpoint(hold.checkpoint.as_bytes(), &node.verifier_key()) {
        Ok(cp) => cp,
        Err(e) => {
            node.gate.hold(unreadable(e.to_string()));
            return Ok(());
        }
    };
    if contradiction(node, cp.size, cp.root).await?.is_some() {
        node.gate.hold(hold.reason);
    } else {
        std::fs::remove_file(hold_path(&node.data_dir))
            .map_err(|e| NodeError::Invalid(format!("cannot remove {HOLD_FILE}: {e}")))?;
    }
    Ok(())
}

/// Brings this process's gate in line with the hold kept in the data directory: held when
/// the file holds one, released when another process released it (`entente ledger release`
/// beside a serving node).
///
/// # Errors
/// As [`resume`].
pub async fn sync(node: &Node) -> Result<(), NodeError> {
    let kept = hold_path(&node.data_dir).exists();
    match (kept, node.gate.held().is_some()) {
        (false, true) => node.gate.release_hold(),
        (true, false) => resume(node).await?,
        _ => {}
    }
    Ok(())
}

/// The operator's decision to go on from the ledger the node has: recorded
/// (`ledger.release`), then the hold ends. Answers the ledger index and the hold ended.
///
/// # Errors
/// The ledger is not on hold, the reason is empty, the gate fails.
pub async fn release(node: &Node, reason: &str) -> Result<(u64, Hold), NodeError> {
    let hold = match read_hold(&node.data_dir) {
        Ok(Some(h)) => h,
        Ok(None) => return Err(NodeError::Invalid("the ledger is not on hold".into())),
        // A damaged hold file: released as this node's own, its bytes' digest recorded.
        Err(e) => {
            let bytes = std::fs::read(hold_path(&node.data_dir)).unwrap_or_default();
            Hold {
                witness: node.config.party.clone(),
                size: 0,
                checkpoint: String::from_utf8_lossy(&bytes).into_owned(),
                reason: e.to_string(),
                at: String::new(),
            }
        }
    };
    let command = entente_store::maintenance::ReleaseHold {
        party: node.config.party.clone(),
        witness: hold.witness.clone(),
        checkpoint_sha256: entente_core::digest::Sha256::of(hold.checkpoint.as_bytes()),
        reason: reason.to_owned(),
    };
    match node.gate.submit(node.operator(), command, jiff::Timestamp::now()).await? {
        entente_store::Verdict::Permitted { index, .. } => {
            std::fs::remove_file(hold_path(&node.data_dir))
                .map_err(|e| NodeError::Invalid(format!("cannot remove {HOLD_FILE}: {e}")))?;
            node.gate.release_hold();
            Ok((index, hold))
        }
        entente_store::Verdict::Denied { decision, .. } => {
            Err(NodeError::Invalid(format!("release denied: {}", decision.reason)))
        }
    }
}
