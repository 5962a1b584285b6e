//! Full verification of a node's ledger from its database: every entry, every stored tree
//! hash, every checkpoint.

pub mod state;

pub use state::{StateDifference, StateReport, TableCheck, verify_state};

use crate::store::{Store, StoreError};
use entente_core::PartyCode;
use entente_core::ledger::{self, Frontier, LedgerEntry};

/// What a sound ledger looks like after verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Number of entries checked.
    pub entries: u64,
    /// Number of checkpoints whose signature and root were checked.
    pub checkpoints: u64,
    /// Root hash of the whole ledger, base64.
    pub root: String,
}

/// The first inconsistency found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// An entry is missing, malformed, out of place or differs from what its hash says.
    #[error("entry {index}: {what}")]
    Entry {
        /// Ledger index.
        index: u64,
        /// What differs.
        what: String,
    },
    /// A stored tree hash differs from the one recomputed from the entries.
    #[error(
        "tree hash {stored_index} (level {level}, node {node}): stored {stored}, recomputed {computed}"
    )]
    Hash {
        /// Stored hash index.
        stored_index: u64,
        /// Tree level.
        level: u8,
        /// Node index at that level.
        node: u64,
        /// Stored value (base64).
        stored: String,
        /// Recomputed value (base64).
        computed: String,
    },
    /// A checkpoint's signature or root is wrong.
    #[error("checkpoint at size {size}: {what}")]
    Checkpoint {
        /// Tree size of the checkpoint.
        size: u64,
        /// What is wrong.
        what: String,
    },
    /// The head row disagrees with the entries.
    #[error("ledger head: {0}")]
    Head(String),
    /// The database could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

const CHUNK: u64 = 8192;

/// Verifies the ledger in `store`, written by `party` and signed with `verifier_key`.
/// `progress(done, total)` is called after each chunk of entries.
///
/// # Errors
/// The first inconsistency, with the entry index or checkpoint size and what differs.
pub async fn verify_ledger(
    store: &Store,
    party: &PartyCode,
    verifier_key: &str,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<VerifyReport, VerifyError> {
    let (size, head_note) = store.ledger_head().await?;
    let mut checkpoints = store.checkpoints().await?;
    // A live node (`entente serve` beside this check) may commit between the two reads: the
    // ledger is verified as of the head read first; later checkpoints belong to the next
    // verification (entries and checkpoints are append-only, so nothing below it changes).
    checkpoints.retain(|(s, _)| *s <= size);
    let mut verified = Vec::with_capacity(checkpoints.len());
    for (size_col, note) in &checkpoints {
        let cp = ledger::verify_checkpoint(note, verifier_key)
            .map_err(|e| VerifyError::Checkpoint { size: *size_col, what: e.to_string() })?;
        if cp.size != *size_col {
            return Err(VerifyError::Checkpoint {
                size: *size_col,
                what: format!("note says size {}, stored under size {size_col}", cp.size),
            });
        }
        verified.push(cp);
    }
    match (&head_note, checkpoints.last()) {
        (None, None) if size == 0 => {}
        (Some(h), Some((s, n))) if h == n && *s == size => {}
        _ => {
            return Err(VerifyError::Head(format!(
                "head says size {size} but the latest stored checkpoint is {}",
                checkpoints.last().map_or("none".to_owned(), |(s, _)| format!("for size {s}"))
            )));
        }
    }

    let mut frontier = Frontier::new();
    let mut next_cp = verified.iter().peekable();
    let mut from = 0u64;
    while from < size {
        let to = (from + CHUNK).min(size);
        let entries = store.entries(from, to).await?;
        let stored = store
            .hash_range(ledger::stored_hash_count(from), ledger::stored_hash_count(to))
            .await?;
        let mut stored_iter = stored.into_iter();
        let mut expect = from;
        for (idx, bytes) in entries {
            if idx != expect {
                return Err(VerifyError::Entry { index: expect, what: "missing".into() });
            }
            let entry = LedgerEntry::decode(&bytes)
                .map_err(|e| VerifyError::Entry { index: idx, what: e.to_string() })?;
            if entry.index != idx {
                return Err(VerifyError::Entry {
                    index: idx,
                    what: format!("stored at index {idx} but says index {}", entry.index),
                });
            }
            if &entry.node != party {
                return Err(VerifyError::Entry {
                    index: idx,
                    what: format!("written by node {} in the ledger of {party}", entry.node),
                });
            }
            for (stored_index, computed) in frontier.push(ledger::record_hash(&bytes)) {
                let (level, node) = ledger::split_stored_hash_index(stored_index);
                match stored_iter.next() {
                    Some((i, h)) if i == stored_index && h == computed => {}
                    Some((i, h)) if i == stored_index && level == 0 => {
                        return Err(VerifyError::Entry {
                            index: node,
                            what: format!(
                                "content differs from its recorded leaf hash (recorded {h}, content hashes to {computed})"
                            ),
                        });
                    }
                    Some((i, h)) if i == stored_index => {
                        return Err(VerifyError::Hash {
                            stored_index,
                            level,
                            node,
                            stored: h.to_string(),
                            computed: computed.to_string(),
                        });
                    }
                    _ => {
                        return Err(VerifyError::Hash {
                            stored_index,
                            level,
                            node,
                            stored: "missing".into(),
                            computed: computed.to_string(),
                        });
                    }
                }
            }
            while let Some(cp) = next_cp.peek() {
                if cp.size != frontier.size() {
                    break;
                }
                if cp.root != frontier.root() {
                    return Err(VerifyError::Checkpoint {
                        size: cp.size,
                        what: format!(
                            "signed root {} differs from the root {} recomputed from entries 0..{}",
                            cp.root,
                            frontier.root(),
                            cp.size
                        ),
                    });
                }
                next_cp.next();
            }
            expect += 1;
        }
        if expect != to {
            return Err(VerifyError::Entry { index: expect, what: "missing".into() });
        }
        if let Some((i, _)) = stored_iter.next() {
            return Err(VerifyError::Hash {
                stored_index: i,
                level: ledger::split_stored_hash_index(i).0,
                node: ledger::split_stored_hash_index(i).1,
                stored: "present".into(),
                computed: "no such hash in the recomputed tree".into(),
            });
        }
        progress(to, size);
        from = to;
    }
    if let Some(cp) = next_cp.next() {
        return Err(VerifyError::Checkpoint {
            size: cp.size,
            what: format!("signs a tree larger than the ledger ({size})"),
        });
    }
    // Nothing may be stored beyond the head. On a live node, entries and hashes committed
    // since the head was read are covered by the head committed with them: read them first,
    // then the head, so that whatever was seen was committed before that head was read.
    let extra = store.entries(size, u64::MAX >> 2).await?;
    let extra_hashes = store.hash_range(ledger::stored_hash_count(size), u64::MAX >> 2).await?;
    let (later, _) = store.ledger_head().await?;
    let later = later.max(size);
    if let Some((i, _)) = extra.iter().find(|(i, _)| *i >= later) {
        return Err(VerifyError::Entry {
            index: *i,
            what: format!("present beyond the ledger head (size {later})"),
        });
    }
    let stored_later = ledger::stored_hash_count(later);
    if let Some((i, _)) = extra_hashes.iter().find(|(i, _)| *i >= stored_later) {
        return Err(VerifyError::Head(format!(
            "tree hash {i} stored beyond the ledger head (size {later})"
        )));
    }
    Ok(VerifyReport {
        entries: size,
        checkpoints: verified.len() as u64,
        root: frontier.root().to_string(),
    })
}
