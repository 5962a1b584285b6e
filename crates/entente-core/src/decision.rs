//! The gate's answer: permit or deny, the rules that decided, and the obligations of a permit.

use crate::ids::PartyCode;
use serde::{Deserialize, Serialize};

/// Permit or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The action may go ahead, with the decision's obligations.
    Permit,
    /// The action must not happen; it is recorded all the same.
    Deny,
}

/// A duty that comes with a permit and binds whoever applies the action (and, for data that
/// travels, the receiver).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Obligation {
    /// Keep the datum no longer than this instant (RFC 3339, UTC).
    RetainUntil {
        /// The retention limit.
        until: String,
    },
    /// Transform a field before the datum leaves the node.
    Minimize {
        /// The field to transform.
        field: String,
        /// The transform (`drop`, `redact`, `pseudonymize`, `truncate-ip`, `coarsen-time`).
        transform: String,
    },
    /// No onward transfer without the consent of this party.
    NoOnwardTransferWithoutConsent {
        /// The party whose consent is needed.
        of: PartyCode,
    },
    /// The datum must not be used for commercial purposes.
    NoCommercialUse,
    /// The originating party must be told.
    Notify {
        /// The party to notify.
        party: PartyCode,
    },
}

/// The result of `decide`: a value, not an error, so that a deny is recorded like a permit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Permit or deny.
    pub outcome: Outcome,
    /// Identifiers of the rules that decided (for a deny by default: `default-deny`).
    pub rules: Vec<String>,
    /// Duties attached to a permit; always empty for a deny.
    pub obligations: Vec<Obligation>,
    /// The reason in words, for people reading the ledger or an error.
    pub reason: String,
    /// The facts with verification status U (unverified: stated without a source that
    /// was read) that a permit rests on, by citation: the decision's legal basis is
    /// unverified, and says so wherever it is shown and in its ledger entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unverified_basis: Vec<String>,
}

impl Decision {
    /// `next`, taken after this decision (the role rule) permitted: `next`'s outcome,
    /// obligations and reason, with the rules of both, this one's first. The one place the
    /// role decision and the agreements' decision are merged.
    pub fn followed_by(&self, next: Decision) -> Decision {
        let mut rules = self.rules.clone();
        rules.extend(next.rules);
        Decision {
            outcome: next.outcome,
            rules,
            obligations: next.obligations,
            reason: next.reason,
            unverified_basis: next.unverified_basis,
        }
    }

    /// A permit by `rule`.
    pub fn permit(rule: &str, reason: impl Into<String>, obligations: Vec<Obligation>) -> Self {
        Self {
            outcome: Outcome::Permit,
            rules: vec![rule.to_owned()],
            obligations,
            reason: reason.into(),
            unverified_basis: Vec::new(),
        }
    }
    /// A deny by `rule`.
    pub fn deny(rule: &str, reason: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Deny,
            rules: vec![rule.to_owned()],
            obligations: Vec::new(),
            reason: reason.into(),
            unverified_basis: Vec::new(),
        }
    }
    /// Whether the action may go ahead.
    pub fn is_permit(&self) -> bool {
        self.outcome == Outcome::Permit
    }
}
