//! Agreements as code.
//!
//! - [`agreement`]: the agreement file format (treaties, protocols, regulations, bilateral
//!   mutual-legal-assistance treaties, MOUs, joint-investigation-team agreements), parsed from
//!   TOML with errors that name the file, line, column and field;
//! - [`engine`]: agreements compiled into Cedar policy; decides data flows (who may send
//!   which category of data to whom, for which purpose, under which agreement, now) with the
//!   agreement and rule that permitted it, or why nothing did, and the obligations of a permit.
//!
//! Pure: no I/O, no clock. Callers pass file contents and `now`.
#![warn(missing_docs)]

pub mod agreement;
pub mod engine;
pub mod gaps;
pub mod incident;
pub mod incoming;
pub mod minimize;
pub mod period;
pub mod request;
