//! Custody events: who touched an item, when, why, under which legal basis.
//!
//! The events of one item form a hash chain: each names the canonical digest of the one
//! before it (`prev`), and carries the item's content hash. The gate records every event as
//! one ledger entry whose `payload_hashes.custody` is the event's digest, so that a chain can
//! be proven event by event against a signed checkpoint of the recording node's ledger.

use entente_core::PartyCode;
use entente_core::canonical::canonical_digest;
use serde::{Deserialize, Serialize};

/// The kinds of custody event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CustodyKind {
    /// Taken in: the first event of an item at the node that collected it.
    Acquired,
    /// Sealed (for example a physical seal or a write-blocked copy).
    Sealed,
    /// Content read by someone.
    Accessed,
    /// A copy made.
    Copied,
    /// Written into an evidence package.
    Exported,
    /// Handed to another party.
    Transferred,
    /// Taken in from another party (the first event at the receiving node).
    Received,
    /// Integrity checked.
    Verified,
    /// Examined.
    Analysed,
    /// Given back to the party it came from.
    Returned,
    /// Destroyed (crypto-shredding of its data key): the last event.
    Destroyed,
}

impl CustodyKind {
    /// All kinds.
    pub const ALL: [CustodyKind; 11] = [
        CustodyKind::Acquired,
        CustodyKind::Sealed,
        CustodyKind::Accessed,
        CustodyKind::Copied,
        CustodyKind::Exported,
        CustodyKind::Transferred,
        CustodyKind::Received,
        CustodyKind::Verified,
        CustodyKind::Analysed,
        CustodyKind::Returned,
        CustodyKind::Destroyed,
    ];

    /// The kind's name (`acquired`, `sealed`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            CustodyKind::Acquired => "acquired",
            CustodyKind::Sealed => "sealed",
            CustodyKind::Accessed => "accessed",
            CustodyKind::Copied => "copied",
            CustodyKind::Exported => "exported",
            CustodyKind::Transferred => "transferred",
            CustodyKind::Received => "received",
            CustodyKind::Verified => "verified",
            CustodyKind::Analysed => "analysed",
            CustodyKind::Returned => "returned",
            CustodyKind::Destroyed => "destroyed",
        }
    }

    /// Parses a kind's name.
    ///
    /// # Errors
    /// An unknown name, with the list of known ones.
    pub fn parse(s: &str) -> Result<CustodyKind, String> {
        CustodyKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            format!(
                "unknown custody event `{s}`; expected one of {}",
                CustodyKind::ALL.map(CustodyKind::as_str).join(", ")
            )
        })
    }
}

impl std::fmt::Display for CustodyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One custody event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodyEvent {
    /// The item's id.
    pub item: String,
    /// Position in the item's chain, from 0.
    pub seq: u64,
    /// What happened.
    pub event: CustodyKind,
    /// The party whose node recorded it (and whose ledger proves it).
    pub party: PartyCode,
    /// Who did it (user and role, or the operator).
    pub actor: String,
    /// When (RFC 3339, UTC, microseconds).
    pub at: String,
    /// Why.
    pub reason: String,
    /// The legal basis: a request or agreement id.
    pub legal_basis: Option<String>,
    /// Where (the node, or the place of collection).
    pub location: Option<String>,
    /// The tool and its version.
    pub tool: String,
    /// SHA-256 of the item's content, hex.
    pub sha256: String,
    /// The digest (`sha256:…`) of the previous event, `None` for the first.
    pub prev: Option<String>,
}

impl CustodyEvent {
    /// The event's digest: `sha256:` of its RFC 8785 canonical JSON.
    pub fn digest(&self) -> String {
        // A struct of strings and integers always has a canonical form.
        canonical_digest(self).unwrap_or_default()
    }
}

/// Checks that `events` form one well-linked chain for `item` with content `sha256`: seq
/// 0, 1, 2, …; each `prev` the digest of the one before; the same item and content hash
/// throughout; nothing after `destroyed`.
///
/// # Errors
/// The first broken link, naming the event.
pub fn check_chain(item: &str, sha256: &str, events: &[CustodyEvent]) -> Result<(), String> {
    if events.is_empty() {
        return Err("the custody chain is empty".into());
    }
    let mut prev: Option<String> = None;
    for (i, e) in events.iter().enumerate() {
        let at = format!("custody event {i} ({})", e.event);
        if e.seq != i as u64 {
            return Err(format!(
                "{at}: seq is {}, expected {i} (an event was removed, reordered or duplicated)",
                e.seq
            ));
        }
        if e.item != item {
            return Err(format!("{at}: names item `{}`, expected `{item}`", e.item));
        }
        if e.sha256 != sha256 {
            return Err(format!(
                "{at}: content hash {} differs from the item's {sha256}",
                e.sha256
            ));
        }
        if e.prev != prev {
            return Err(format!(
                "{at}: prev is {}, expected {} (the chain is broken)",
                e.prev.as_deref().unwrap_or("none"),
                prev.as_deref().unwrap_or("none")
            ));
        }
        if i > 0 && events[i - 1].event == CustodyKind::Destroyed {
            return Err(format!("{at}: follows the item's destruction"));
        }
        prev = Some(e.digest());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<CustodyEvent> {
        let mut out: Vec<CustodyEvent> = Vec::new();
        for i in 0..n {
            let e = CustodyEvent {
                item: "EV-1".into(),
                seq: i as u64,
                event: if i == 0 { CustodyKind::Acquired } else { CustodyKind::Accessed },
                party: "DE".parse().unwrap(),
                actor: "de-investigator (investigator)".into(),
                at: "2026-04-08T10:00:00.000000Z".into(),
                reason: "r".into(),
                legal_basis: Some("request:R".into()),
                location: None,
                tool: "entente 0.1.0".into(),
                sha256: "ab".repeat(32),
                prev: out.last().map(CustodyEvent::digest),
            };
            out.push(e);
        }
        out
    }

    #[test]
    fn good_chain_passes_and_mutations_fail() {
        let c = chain(4);
        check_chain("EV-1", &"ab".repeat(32), &c).unwrap();
        let mut removed = c.clone();
        removed.remove(1);
        assert!(check_chain("EV-1", &"ab".repeat(32), &removed).unwrap_err().contains("seq"));
        let mut swapped = c.clone();
        swapped.swap(1, 2);
        assert!(check_chain("EV-1", &"ab".repeat(32), &swapped).is_err());
        let mut dup = c.clone();
        dup.insert(2, c[1].clone());
        assert!(check_chain("EV-1", &"ab".repeat(32), &dup).is_err());
        let mut edited = c;
        edited[1].reason = "other".into();
        assert!(check_chain("EV-1", &"ab".repeat(32), &edited).unwrap_err().contains("prev"));
        assert!(check_chain("EV-1", &"ab".repeat(32), &[]).is_err());
    }

    #[test]
    fn kinds_round_trip() {
        for k in CustodyKind::ALL {
            assert_eq!(CustodyKind::parse(k.as_str()).unwrap(), k);
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert!(CustodyKind::parse("lost").unwrap_err().contains("acquired"));
    }
}
