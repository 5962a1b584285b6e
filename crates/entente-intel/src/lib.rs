//! Threat intelligence, pure: no I/O, no clock.
//!
//! - [`stix`] — STIX 2.1 bundles and TAXII envelopes parsed into [`stix::StixObject`]s that
//!   keep each object's original JSON text (unknown properties and custom objects round-trip
//!   byte for byte) and index the properties the node needs (id, type, versions, markings);
//!   validation with errors naming the object (index and id), the property and what the
//!   specification requires.
//! - [`pattern`] — the STIX patterning grammar, checked for syntax.
//! - [`tlp`] — the TLP 2.0 marking definitions with their standard ids, and the sharing
//!   decision: who may receive an object given its markings, the requester and the agreement
//!   that governs the exchange.

pub mod pattern;
pub mod stix;
pub mod tlp;
