//! Entente's transparency and oversight reports (`docs/transparency.md`), pure: no I/O, no
//! clock.
//!
//! - [`stats`] — exact statistics for oversight bodies and the Commission (requests, flows,
//!   denials, consents, incident notifications, complaints, deconfliction, packages, and
//!   Regulation (EU) 2023/1543 Art 28), each row traceable to the ledger entries it counts;
//! - [`public`] — the differentially private public report: bounded contributions per case,
//!   discrete Laplace noise from [`dp`] (exact, integer-only), post-processing, a budget per
//!   period;
//! - [`oversight`] — the ledger seen by an oversight body: actions, denials, witness coverage,
//!   alarms, anomalies;
//! - [`render`] — CSV and self-contained HTML with SVG charts.
//!
//! The store reads the [`facts::Facts`] in one read transaction; the gate records each report.

pub mod dp;
pub mod facts;
pub mod oversight;
pub mod period;
pub mod public;
pub mod render;
pub mod stats;

pub use dp::Ratio;
pub use facts::Facts;
pub use period::Period;
pub use public::{Bounds, PublicReport};
pub use stats::Statistics;

/// Why a report could not be made. Nothing was spent or recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The period is malformed, empty or in the future.
    #[error("period: {0}")]
    Period(String),
    /// A parameter is out of range.
    #[error("parameter: {0}")]
    Parameter(String),
    /// The release would exceed the period's privacy budget.
    #[error("budget: {0}")]
    Budget(String),
    /// A published file is malformed or inconsistent.
    #[error("report file: {0}")]
    File(String),
    /// An internal fault (encoding, overflow).
    #[error("internal: {0}")]
    Internal(String),
}

#[cfg(test)]
mod tests;
