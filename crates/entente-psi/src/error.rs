//! The errors of the protocol: decoding an untrusted message ([`WireError`]) and running a
//! step of the protocol ([`PsiError`]).

use crate::key::EpochId;
use crate::wire::Mode;

/// A message that is not well formed: the field it concerns and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct WireError {
    /// The field, e.g. `query.elements[3]` (or `message` for the whole message).
    pub field: String,
    /// What was found and what is expected.
    pub message: String,
}

impl WireError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        WireError { field: field.into(), message: message.into() }
    }
}

/// A step of the protocol that cannot be carried out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PsiError {
    /// A message is not well formed.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// More selectors than the padded size of the query.
    #[error("{selectors} selectors do not fit a query padded to {padded}")]
    QueryTooLarge {
        /// Distinct selectors asked about.
        selectors: usize,
        /// The padded size asked for.
        padded: usize,
    },
    /// A message, set or key of another epoch than expected.
    #[error("{what} is of epoch {found}; expected epoch {expected}")]
    EpochMismatch {
        /// What was of the wrong epoch.
        what: &'static str,
        /// Its epoch.
        found: EpochId,
        /// The epoch expected.
        expected: EpochId,
    },
    /// A message or set of another mode than expected.
    #[error("{what} is in {found} mode; expected {expected} mode")]
    ModeMismatch {
        /// What was in the wrong mode.
        what: &'static str,
        /// Its mode.
        found: Mode,
        /// The mode expected.
        expected: Mode,
    },
    /// An evaluation with another number of elements than the query.
    #[error("the evaluation has {found} elements; the query had {expected}")]
    CountMismatch {
        /// Elements evaluated.
        found: usize,
        /// Elements queried.
        expected: usize,
    },
    /// The holder's proof does not verify against its published key: the evaluation was not
    /// made with the key of the epoch, or was altered.
    #[error("the holder's proof does not verify against its published key for epoch {epoch}")]
    ProofInvalid {
        /// The epoch of the published key.
        epoch: EpochId,
    },
    /// The prepared set is not the one the evaluation names.
    #[error("the prepared set (digest {found}) is not the one the evaluation names ({expected})")]
    SetMismatch {
        /// The digest of the set at hand.
        found: String,
        /// The digest the evaluation names.
        expected: String,
    },
    /// Two entries of a prepared set have the same tag (the same selector twice).
    #[error("the prepared set has the same element twice")]
    DuplicateElement,
    /// A set transfer's chunk does not continue the chunks received so far.
    #[error("set chunk {index}: {message}")]
    ChunkOutOfOrder {
        /// The chunk's index.
        index: u64,
        /// What does not follow.
        message: String,
    },
    /// A label cannot be sealed or opened.
    #[error("label: {0}")]
    Label(String),
    /// The OPRF library refused an input or output.
    #[error("oprf: {0}")]
    Oprf(String),
}

impl PsiError {
    pub(crate) fn oprf(e: voprf::Error) -> Self {
        PsiError::Oprf(e.to_string())
    }
}
