//! Entente's fuzz targets: every parser that takes input from outside the node, as one
//! function of bytes each, with the seeds it starts from and the invariants it checks.
//!
//! A target must return for every input: refusing it with an error is the expected outcome
//! of almost every input, and the fuzzer looks for the others — a panic, an overflow, a hang,
//! memory that grows with no bound, or an invariant that does not hold (an `assert!` below,
//! for instance that what a parser accepts it writes back the same way). The targets run
//!
//! - under libFuzzer, from the separate workspace in `fuzz/` (`scripts/fuzz.sh`), with
//!   coverage instrumentation, for millions of executions each;
//! - in the test suite (`tests/corpus.rs`): every seed, and a few hundred mutations of each,
//!   so that a target that stops compiling or starts failing on its own seeds is caught.
//!
//! The keys below are fixed and public: they exist so that seeds can carry valid signatures
//! and the fuzzer can reach the code behind a signature check. They protect nothing.

use age::x25519;
use ed25519_dalek::{SigningKey, VerifyingKey};
use entente_core::PartyCode;
use jiff::{SignedDuration, Timestamp};
use std::str::FromStr as _;
use std::sync::OnceLock;

#[cfg(test)]
mod corpus;
mod seeds;

pub use seeds::seeds;

/// One fuzz target: its name (the libFuzzer binary's), the function, and what it parses.
#[derive(Clone, Copy)]
pub struct Target {
    /// Name of the target (and of its binary in `fuzz/`).
    pub name: &'static str,
    /// What it parses, for the documentation and the runner.
    pub parses: &'static str,
    /// The target.
    pub run: fn(&[u8]),
}

/// Every target, in the order of `docs/fuzzing.md`.
pub const TARGETS: &[Target] = &[
    Target { name: "ustar", parses: "evidence package tar reader", run: ustar },
    Target { name: "package", parses: "evidence package verification", run: package },
    Target { name: "package_age", parses: "age-encrypted evidence packages", run: package_age },
    Target { name: "ledger_entry", parses: "ledger entry decoding", run: ledger_entry },
    Target { name: "entry_bundle", parses: "C2SP tlog-tiles entry bundles", run: entry_bundle },
    Target { name: "tile_path", parses: "tile paths (public ledger URLs)", run: tile_path },
    Target { name: "checkpoint", parses: "signed checkpoints and cosignatures", run: checkpoint },
    Target { name: "envelope", parses: "federation envelopes and payloads", run: envelope },
    Target { name: "ack", parses: "federation acknowledgements", run: ack },
    Target { name: "federation_batch", parses: "federation batches", run: federation_batch },
    Target { name: "wire_message", parses: "federation message payloads", run: wire_message },
    Target { name: "stix_bundle", parses: "STIX 2.1 bundles", run: stix_bundle },
    Target { name: "taxii_envelope", parses: "TAXII 2.1 envelopes", run: taxii_envelope },
    Target { name: "stix_pattern", parses: "STIX patterns", run: stix_pattern },
    Target { name: "agreement", parses: "agreement TOML", run: agreement },
    Target { name: "lexicon", parses: "lexicon TOML (concepts, sources, statutes)", run: lexicon },
    Target { name: "incident_regime", parses: "incident regime TOML", run: incident_regime },
    Target { name: "incident_facts", parses: "incident facts TOML", run: incident_facts },
    Target { name: "scenario", parses: "gap-analysis scenario TOML", run: scenario },
    Target { name: "holiday_calendar", parses: "holiday calendar TOML", run: holiday_calendar },
    Target { name: "psi_selector", parses: "PSI selectors and selector files", run: psi_selector },
    Target { name: "psi_wire", parses: "PSI query, evaluation and set chunk", run: psi_wire },
];

/// A seed's file name: the hex SHA-256 of its bytes (libFuzzer names inputs by their SHA-1;
/// a different hash keeps seeds apart from what the fuzzer adds).
pub fn seed_name(seed: &[u8]) -> String {
    entente_core::digest::Sha256::of(seed).to_hex()
}

/// The target named `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

// Fixed, public keys and parties of the seeds.

/// The sending node's signing key (DE in the seeds).
pub(crate) fn sender_key() -> SigningKey {
    SigningKey::from_bytes(&[0x11; 32])
}

/// A witness's key.
pub(crate) fn witness_key() -> SigningKey {
    SigningKey::from_bytes(&[0x22; 32])
}

/// The name the seeds' witness signs under.
pub(crate) const WITNESS: &str = "witness.fuzz.example";

/// The identity age-encrypted seeds are encrypted to.
pub(crate) const AGE_IDENTITY: &str =
    "AGE-SECRET-KEY-1ZF87Y3F9JS2PDKMEVDPEXTDVRC7K57YMSM732P9QTMCM4G0LSRAQ7FM9E4";

pub(crate) fn age_identity() -> Option<x25519::Identity> {
    x25519::Identity::from_str(AGE_IDENTITY).ok()
}

pub(crate) fn party(code: &str) -> Option<PartyCode> {
    code.parse().ok()
}

/// The instant envelopes are checked at (the seeds are signed then).
pub(crate) fn now() -> Timestamp {
    Timestamp::from_second(1_796_112_000).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Splits `data` into at most `n` parts at each `\n%%\n` (how multi-file targets take their
/// files from one input).
fn parts(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while out.len() + 1 < n {
        match rest.windows(4).position(|w| w == b"\n%%\n") {
            Some(at) => {
                out.push(&rest[..at]);
                rest = &rest[at + 4..];
            }
            None => break,
        }
    }
    out.push(rest);
    out
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

// Evidence.

/// The tar reader of evidence packages: every member's name, size and data.
pub fn ustar(data: &[u8]) {
    let mut r = entente_evidence::ustar::Reader::new(data);
    let mut members = 0usize;
    while let Ok(Some((name, size))) = r.next_member() {
        assert!(!name.is_empty(), "a member without a name was accepted");
        let mut sink = Vec::new();
        let read = std::io::copy(&mut r.data(), &mut sink);
        if let Ok(read) = read {
            assert!(read <= size, "member {name} gave {read} bytes, declared {size}");
        }
        members += 1;
        assert!(members <= data.len() / 512 + 1, "more members than blocks");
    }
}

/// The sender key a package names in its `sender.pem` member (of the seed package: the key
/// the package targets trust, so that the fuzzer reaches what comes after the signature check).
fn package_sender(plain: &[u8]) -> Option<VerifyingKey> {
    let mut r = entente_evidence::ustar::Reader::new(plain);
    while let Ok(Some((name, _))) = r.next_member() {
        let mut text = String::new();
        if name == "sender.pem" {
            std::io::Read::read_to_string(&mut r.data(), &mut text).ok()?;
            return entente_evidence::package::parse_public_key_pem(&text).ok();
        }
        std::io::copy(&mut r.data(), &mut std::io::sink()).ok()?;
    }
    None
}

/// Verifies `data` as a package, trusting the key of the seed package (a mutation that
/// changes the sender's key or the signed manifest is refused at the signature, as it must be).
fn verify_package(data: &[u8]) {
    use entente_evidence::package::{self, Discard, VerifyOptions};
    static KEY: OnceLock<Option<VerifyingKey>> = OnceLock::new();
    let trusted: Vec<VerifyingKey> =
        KEY.get_or_init(|| package_sender(seeds::PACKAGE)).iter().copied().collect();
    let identity = age_identity();
    let opts =
        VerifyOptions { trusted: &trusted, identity: identity.as_ref(), our_recipient: None };
    if let Ok(v) = package::verify(&mut &data[..], &opts, &mut Discard) {
        assert!(!v.manifest.items.is_empty(), "a package without items verified");
        assert!(v.proven_events > 0, "a package with no proven custody event verified");
    }
}

/// Package verification (plain packages).
pub fn package(data: &[u8]) {
    verify_package(data);
}

/// Package verification of age-encrypted packages (to the fixed fuzzing identity).
pub fn package_age(data: &[u8]) {
    verify_package(data);
}

// The ledger.

/// Ledger entry decoding: what decodes is canonical, and encodes back to the same bytes.
pub fn ledger_entry(data: &[u8]) {
    if let Ok(e) = entente_core::ledger::LedgerEntry::decode(data) {
        assert_eq!(
            e.encode().ok().as_deref(),
            Some(data),
            "a decoded entry re-encodes differently"
        );
    }
}

/// Entry bundles: what splits joins back to the same bundle, and each entry is decoded.
pub fn entry_bundle(data: &[u8]) {
    use entente_core::ledger::{LedgerEntry, decode_entry_bundle, encode_entry_bundle};
    if let Ok(entries) = decode_entry_bundle(data) {
        let again = encode_entry_bundle(entries.iter().copied());
        assert_eq!(again.ok().as_deref(), Some(data), "a bundle re-encodes differently");
        for e in entries {
            let _ = LedgerEntry::decode(e);
        }
    }
}

/// Tile paths: a path that parses is the one path of its tile.
pub fn tile_path(data: &[u8]) {
    use entente_core::ledger::{TileRef, entries_path, parse_tile_path, tile_path};
    let Some(path) = text(data) else { return };
    if let Ok(t) = parse_tile_path(path) {
        let canonical = match t {
            TileRef::Hashes { level, index, width } => tile_path(level, index, width),
            TileRef::Entries { index, width } => entries_path(index, width),
        };
        assert_eq!(canonical, format!("tile/{path}"), "two paths name one tile");
    }
}

/// Signed checkpoints (under the sender's key) and witness cosignatures on them.
pub fn checkpoint(data: &[u8]) {
    use entente_core::{ledger, witness};
    let key = sender_key().verifying_key();
    let Some(de) = party("DE") else { return };
    let origin = ledger::origin_for(&de, &key);
    let vkey = ledger::verifier_key(&origin, &key);
    let _ = ledger::verify_checkpoint(data, &vkey);
    let w = witness_key().verifying_key();
    let _ = witness::verify_cosignature(data, WITNESS, &w);
    if let Some(t) = text(data) {
        let _ = witness::parse_verifier_key(t.trim());
    }
}

// Federation.

fn checked_envelope(env: &entente_wire::Envelope) {
    let (Some(nl), key) = (party("NL"), sender_key().verifying_key()) else { return };
    let ok = env.verify(&key, &nl, now(), SignedDuration::from_mins(5)).is_ok();
    let decoded = entente_wire::Message::decode(&env.kind, &env.payload);
    if ok {
        assert!(env.digest().is_ok(), "a verified envelope has no digest");
        // A verified envelope's payload is what its digest says it is.
        assert_eq!(
            entente_wire::envelope::payload_digest(&env.payload).ok().as_deref(),
            Some(env.payload_sha256.as_str()),
            "a verified envelope's payload does not match its digest"
        );
        if let Ok(m) = decoded {
            assert_eq!(m.kind().as_str(), env.kind, "a payload decoded as another kind");
        }
    }
}

/// One envelope as a partner sends it: read, checked under the sender's key, payload decoded.
pub fn envelope(data: &[u8]) {
    if let Ok(env) = serde_json::from_slice::<entente_wire::Envelope>(data) {
        checked_envelope(&env);
    }
}

/// DE's acknowledgement of the envelope `NL-DE-1` (NL receives it).
pub fn ack(data: &[u8]) {
    let Ok(ack) = serde_json::from_slice::<entente_wire::Ack>(data) else { return };
    let (Some(de), Some(nl)) = (party("DE"), party("NL")) else { return };
    let key = sender_key().verifying_key();
    let sent = [("NL-DE-1".to_owned(), 1)];
    if ack.verify(&key, &de, &nl, &sent).is_ok() {
        assert_eq!(ack.items.len(), sent.len(), "an acknowledgement of other envelopes verified");
    }
}

/// A batch body as the federation endpoint reads it, each envelope checked.
pub fn federation_batch(data: &[u8]) {
    let Ok(batch) = serde_json::from_slice::<entente_wire::Batch>(data) else { return };
    if batch.envelopes.is_empty() || batch.envelopes.len() > entente_wire::MAX_BATCH {
        return;
    }
    for env in &batch.envelopes {
        checked_envelope(env);
    }
}

/// A payload by its kind: `<kind>\n<JSON>`.
pub fn wire_message(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let Some((kind, json)) = t.split_once('\n') else { return };
    let Ok(payload) = serde_json::from_str::<serde_json::Value>(json) else { return };
    if let Ok(m) = entente_wire::Message::decode(kind, &payload) {
        assert_eq!(m.kind().as_str(), kind, "a payload decoded as another kind");
    }
}

// Threat intelligence.

/// STIX 2.1 bundles (the import path).
pub fn stix_bundle(data: &[u8]) {
    let Some(t) = text(data) else { return };
    match entente_intel::stix::parse_bundle(t) {
        Ok(b) => {
            for o in &b.objects {
                assert!(!o.id.is_empty(), "an object without an id was accepted");
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// TAXII 2.1 envelopes (the add-objects body).
pub fn taxii_envelope(data: &[u8]) {
    let Some(t) = text(data) else { return };
    if let Err(e) = entente_intel::stix::parse_envelope(t) {
        let _ = e.to_string();
    }
}

/// STIX patterns.
pub fn stix_pattern(data: &[u8]) {
    if let Some(t) = text(data) {
        let _ = entente_intel::pattern::check(t);
    }
}

// The files an operator or a partner gives the node.

fn lexicon_files() -> [(&'static str, &'static str); 10] {
    seeds::LEXICON
}

/// The shipped lexicon, parsed once (the agreement and scenario targets need one).
fn shipped_lexicon() -> Option<&'static entente_core::lexicon::Lexicon> {
    static LEXICON: OnceLock<Option<entente_core::lexicon::Lexicon>> = OnceLock::new();
    LEXICON
        .get_or_init(|| {
            let f = lexicon_files();
            entente_core::lexicon::Lexicon::parse(f[0], f[1], &f[2..]).ok()
        })
        .as_ref()
}

fn shipped_agreements() -> Option<&'static [entente_policy::agreement::Agreement]> {
    static AGREEMENTS: OnceLock<Option<Vec<entente_policy::agreement::Agreement>>> =
        OnceLock::new();
    AGREEMENTS
        .get_or_init(|| {
            let lexicon = shipped_lexicon()?;
            entente_policy::agreement::parse_agreements(&seeds::AGREEMENTS, lexicon).ok()
        })
        .as_deref()
}

/// An agreement file, against the shipped lexicon.
pub fn agreement(data: &[u8]) {
    let (Some(t), Some(lexicon)) = (text(data), shipped_lexicon()) else { return };
    if let Err(e) = entente_policy::agreement::parse_agreement("fuzz.toml", t, lexicon) {
        let _ = e.to_string();
    }
}

/// A lexicon of three files: concepts, sources and one jurisdiction's statutes. The first
/// byte says which of the eight shipped jurisdictions, and which file the rest of the input
/// replaces; the other two are the shipped ones.
pub fn lexicon(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else { return };
    let Some(t) = text(rest) else { return };
    let all = lexicon_files();
    let mut f = [all[0], all[1], all[2 + usize::from(which / 3) % 8]];
    f[usize::from(which % 3)].1 = t;
    if let Err(e) = entente_core::lexicon::Lexicon::parse(f[0], f[1], &f[2..]) {
        let _ = e.to_string();
    }
}

/// An incident regime file.
pub fn incident_regime(data: &[u8]) {
    if let Some(t) = text(data)
        && let Err(e) = entente_policy::incident::parse_regime("fuzz.toml", t)
    {
        let _ = e.to_string();
    }
}

/// Incident facts (what an operator or a partner says happened).
pub fn incident_facts(data: &[u8]) {
    if let Some(t) = text(data)
        && let Err(e) = entente_policy::incident::parse_facts("fuzz.toml", t)
    {
        let _ = e.to_string();
    }
}

/// A gap-analysis scenario, against the shipped lexicon and agreements.
pub fn scenario(data: &[u8]) {
    let (Some(t), Some(lexicon), Some(agreements)) =
        (text(data), shipped_lexicon(), shipped_agreements())
    else {
        return;
    };
    if let Err(e) = entente_policy::gaps::parse_scenario("fuzz.toml", t, lexicon, agreements) {
        let _ = e.to_string();
    }
}

/// A holiday calendar; two calendars when the input holds `\n%%\n`.
pub fn holiday_calendar(data: &[u8]) {
    use entente_policy::period::calendar::{Calendar, Calendars};
    let p = parts(data, 2);
    let Some(first) = p.first().and_then(|b| text(b)) else { return };
    let _ = Calendar::parse("fuzz.toml", first);
    if let Some(second) = p.get(1).and_then(|b| text(b)) {
        let _ = Calendars::parse(&[("a.toml", first), ("b.toml", second)]);
    }
}

// Deconfliction.

/// Selector lines and files: a selector that parses writes back as text that parses to it.
pub fn psi_selector(data: &[u8]) {
    use entente_psi::selector::{parse_file, parse_line};
    let Some(t) = text(data) else { return };
    for strip_plus in [false, true] {
        let rules = entente_psi::EmailRules { strip_plus };
        if let Ok(s) = parse_line(t, rules) {
            let again = parse_line(&s.to_string(), rules);
            assert_eq!(again.as_ref().ok(), Some(&s), "`{s}` does not parse back to itself");
        }
        if let Err(e) = parse_file("fuzz.txt", t, rules) {
            let _ = e.to_string();
        }
    }
}

/// PSI messages: the first byte picks the kind (query, evaluation, set chunk), the rest is
/// its JSON; what decodes encodes to JSON that decodes to the same encoding.
pub fn psi_wire(data: &[u8]) {
    use entente_psi::{EvaluationMessage, Limits, QueryMessage, SetChunk};
    let Some((&which, json)) = data.split_first() else { return };
    let limits = Limits::default();
    let again = match which % 3 {
        0 => QueryMessage::decode(json, &limits)
            .and_then(|m| m.to_json())
            .map(|j| (j.clone(), QueryMessage::decode(&j, &limits).and_then(|m| m.to_json()).ok())),
        1 => EvaluationMessage::decode(json, &limits).and_then(|m| m.to_json()).map(|j| {
            (j.clone(), EvaluationMessage::decode(&j, &limits).and_then(|m| m.to_json()).ok())
        }),
        _ => SetChunk::decode(json, &limits)
            .and_then(|m| m.to_json())
            .map(|j| (j.clone(), SetChunk::decode(&j, &limits).and_then(|m| m.to_json()).ok())),
    };
    if let Ok((first, second)) = again {
        assert_eq!(Some(first), second, "a PSI message does not round-trip");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_split_at_the_marker_only() {
        assert_eq!(parts(b"a\n%%\nb\n%%\nc", 2), vec![&b"a"[..], &b"b\n%%\nc"[..]]);
        assert_eq!(parts(b"abc", 3), vec![&b"abc"[..]]);
        assert_eq!(parts(b"", 2), vec![&b""[..]]);
    }

    #[test]
    fn the_fixed_keys_and_instant_are_usable() {
        assert!(age_identity().is_some());
        assert!(party("DE").is_some() && party("NL").is_some());
        assert_ne!(now(), Timestamp::UNIX_EPOCH);
        let names: std::collections::BTreeSet<_> = TARGETS.iter().map(|t| t.name).collect();
        assert_eq!(names.len(), TARGETS.len(), "two targets share a name");
    }
}
