//! Witness cosignatures (C2SP tlog-cosignature, `cosignature/v1`) over partners' ledger
//! checkpoints, and the checks a witness makes before it cosigns.
//!
//! A witness cosigns a checkpoint only after checking that it extends the last checkpoint it
//! saw of the same log (a consistency proof), so a log that rewrites its history, or shows
//! two different histories to two witnesses that compare notes, is caught: two checkpoints of
//! one log, each signed by the log, that no consistency proof reconciles are the evidence of
//! a split view.
//!
//! Format (C2SP tlog-cosignature): the signed message is
//! `cosignature/v1\ntime <unix seconds>\n` followed by the checkpoint body; the note
//! signature line carries, base64-encoded, the 4-byte key id, the 8-byte big-endian time and
//! the 64-byte Ed25519 signature. The key id is the first four bytes of
//! `SHA-256(name || 0x0A || 0x04 || public key)`. Pure: the caller gives the time.

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

/// The signature type byte of `cosignature/v1`.
pub const COSIGNATURE_V1: u8 = 0x04;

/// Why a cosignature cannot be made or does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CosignatureError {
    /// The note is not a signed note.
    #[error("not a signed note: {0}")]
    Malformed(String),
    /// No cosignature by this witness on the note.
    #[error("no cosignature by witness `{0}` on the checkpoint")]
    Missing(String),
    /// A cosignature line by this witness that does not verify.
    #[error("the cosignature by witness `{0}` does not verify")]
    Invalid(String),
}

/// The witness name Entente uses for a party's node.
pub fn witness_name(party: &crate::PartyCode) -> String {
    format!("entente-witness/{party}")
}

/// The key id of a `cosignature/v1` key.
pub fn key_id(name: &str, key: &VerifyingKey) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0x0A, COSIGNATURE_V1]);
    h.update(key.as_bytes());
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// The C2SP verifier key of a witness: `<name>+<hex id>+<base64(0x04 || key)>`.
pub fn verifier_key(name: &str, key: &VerifyingKey) -> String {
    let mut k = vec![COSIGNATURE_V1];
    k.extend_from_slice(key.as_bytes());
    format!("{name}+{:08x}+{}", key_id(name, key), BASE64_STANDARD.encode(k))
}

/// Parses a witness verifier key.
///
/// # Errors
/// Not of the form `<name>+<hex id>+<base64(0x04 || 32-byte key)>`, or an id that does not
/// match.
pub fn parse_verifier_key(vkey: &str) -> Result<(String, VerifyingKey), CosignatureError> {
    let bad = |d: &str| CosignatureError::Malformed(format!("witness key `{vkey}`: {d}"));
    // Names may not contain `+`; the base64 key may.
    let mut parts = vkey.splitn(3, '+');
    let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("expected name+id+key"));
    };
    let raw = BASE64_STANDARD.decode(b64).map_err(|_| bad("key is not base64"))?;
    let Some((&COSIGNATURE_V1, rest)) = raw.split_first() else {
        return Err(bad("not a cosignature/v1 (0x04) Ed25519 key"));
    };
    let Ok(bytes) = <[u8; 32]>::try_from(rest) else {
        return Err(bad("not a cosignature/v1 (0x04) Ed25519 key"));
    };
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| bad("not an Ed25519 key"))?;
    if u32::from_str_radix(id, 16).ok() != Some(key_id(name, &key)) {
        return Err(bad("key id does not match name and key"));
    }
    Ok((name.to_owned(), key))
}

/// Splits a signed note into its text (ending with a newline) and its signature lines.
fn split_note(note: &[u8]) -> Result<(&[u8], Vec<&[u8]>), CosignatureError> {
    let at = note
        .windows(2)
        .position(|w| w == b"\n\n")
        .ok_or_else(|| CosignatureError::Malformed("no blank line before signatures".into()))?;
    let text = &note[..=at];
    let sigs = note[at + 2..].split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    Ok((text, sigs))
}

fn message(text: &[u8], time: u64) -> Vec<u8> {
    let mut m = format!("cosignature/v1\ntime {time}\n").into_bytes();
    m.extend_from_slice(text);
    m
}

/// The signature line (`— <name> <base64>\n`) cosigning the checkpoint `note` at `time`.
///
/// # Errors
/// A note that is not a signed note.
pub fn cosign(
    note: &[u8],
    name: &str,
    key: &SigningKey,
    time: u64,
) -> Result<Vec<u8>, CosignatureError> {
    let (text, _) = split_note(note)?;
    let sig = key.sign(&message(text, time));
    let mut payload = key_id(name, &key.verifying_key()).to_be_bytes().to_vec();
    payload.extend_from_slice(&time.to_be_bytes());
    payload.extend_from_slice(&sig.to_bytes());
    Ok(format!("\u{2014} {name} {}\n", BASE64_STANDARD.encode(payload)).into_bytes())
}

/// Appends cosignature lines to a signed note (keeping one line per witness).
pub fn add_cosignatures(note: &[u8], lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = note.to_vec();
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    for l in lines {
        if !out.windows(l.len()).any(|w| w == l.as_slice()) {
            out.extend_from_slice(l);
        }
    }
    out
}

/// Verifies the cosignature of witness `name` (key `key`) on `note`; returns its time.
///
/// # Errors
/// No cosignature line by this witness, or one that does not verify.
pub fn verify_cosignature(
    note: &[u8],
    name: &str,
    key: &VerifyingKey,
) -> Result<u64, CosignatureError> {
    let (text, sigs) = split_note(note)?;
    let id = key_id(name, key);
    let prefix = format!("\u{2014} {name} ");
    let mut found = false;
    for line in sigs {
        let Some(b64) = line.strip_prefix(prefix.as_bytes()) else { continue };
        let Ok(raw) = BASE64_STANDARD.decode(b64) else { continue };
        if raw.len() != 4 + 8 + 64 || raw[..4] != id.to_be_bytes() {
            continue;
        }
        found = true;
        let mut t = [0u8; 8];
        t.copy_from_slice(&raw[4..12]);
        let time = u64::from_be_bytes(t);
        let Ok(sig) = Signature::from_slice(&raw[12..]) else { continue };
        if key.verify_strict(&message(text, time), &sig).is_ok() {
            return Ok(time);
        }
    }
    Err(if found {
        CosignatureError::Invalid(name.to_owned())
    } else {
        CosignatureError::Missing(name.to_owned())
    })
}

/// What a witness concludes from a log's new checkpoint and the last one it saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    /// The first checkpoint seen of this log.
    First,
    /// The same checkpoint again.
    Unchanged,
    /// A larger tree, and the consistency proof shows it extends the last one.
    Extends,
    /// Evidence of a split view or a rewritten history, with what shows it.
    SplitView(String),
}

/// Compares a log's new checkpoint `(size, root)` with the last one seen, given a consistency
/// proof from the old size to the new one when the new tree is larger.
pub fn observe(
    last: Option<(u64, crate::ledger::Hash)>,
    new: (u64, crate::ledger::Hash),
    proof: Option<&crate::ledger::TreeProof>,
) -> Observation {
    let Some((old_size, old_root)) = last else { return Observation::First };
    let (new_size, new_root) = new;
    if new_size == old_size {
        return if new_root == old_root {
            Observation::Unchanged
        } else {
            Observation::SplitView(format!(
                "two checkpoints of size {new_size} with different roots ({} and {})",
                BASE64_STANDARD.encode(old_root.0),
                BASE64_STANDARD.encode(new_root.0)
            ))
        };
    }
    if new_size < old_size {
        return Observation::SplitView(format!(
            "the log shows size {new_size} after having shown size {old_size}"
        ));
    }
    match proof {
        Some(p) if crate::ledger::check_tree(p, new_size, new_root, old_size, old_root).is_ok() => {
            Observation::Extends
        }
        Some(_) => Observation::SplitView(format!(
            "the checkpoint of size {new_size} does not extend the one of size {old_size} (consistency proof fails)"
        )),
        None => Observation::SplitView(format!(
            "no consistency proof from size {old_size} to size {new_size}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Frontier, LogSigner, record_hash};

    /// Found by fuzzing (`checkpoint`): a key whose base64 part is empty sliced past the end.
    #[test]
    fn a_witness_key_with_an_empty_or_short_key_is_refused() {
        for vkey in ["w+00000000+", "w+00000000+BA==", "w+00000000+AAAA", "w+0+", "++"] {
            let e = parse_verifier_key(vkey).unwrap_err().to_string();
            assert!(e.contains(vkey), "{e}");
        }
    }

    fn checkpoint(key: &SigningKey, leaves: &[&[u8]]) -> (Vec<u8>, u64, crate::ledger::Hash) {
        let mut f = Frontier::default();
        for l in leaves {
            f.push(record_hash(l));
        }
        let note =
            LogSigner::new("entente/NL/00000000", key).sign_checkpoint(f.size(), f.root()).unwrap();
        (note, f.size(), f.root())
    }

    #[test]
    fn cosign_and_verify() {
        let log = SigningKey::from_bytes(&[1; 32]);
        let w = SigningKey::from_bytes(&[2; 32]);
        let name = "entente-witness/DE";
        let (note, _, _) = checkpoint(&log, &[b"a", b"b"]);
        let line = cosign(&note, name, &w, 1_780_000_000).unwrap();
        let cosigned = add_cosignatures(&note, std::slice::from_ref(&line));
        assert_eq!(add_cosignatures(&cosigned, &[line]), cosigned, "one line per witness");
        assert_eq!(verify_cosignature(&cosigned, name, &w.verifying_key()), Ok(1_780_000_000));
        // The log's own signature still verifies on the cosigned note.
        let other = SigningKey::from_bytes(&[3; 32]);
        assert_eq!(
            verify_cosignature(&cosigned, name, &other.verifying_key()),
            Err(CosignatureError::Missing(name.into()))
        );
        let tampered = String::from_utf8(cosigned.clone()).unwrap().replacen('2', "3", 1);
        assert!(verify_cosignature(tampered.as_bytes(), name, &w.verifying_key()).is_err());
        let vkey = verifier_key(name, &w.verifying_key());
        let (n, k) = parse_verifier_key(&vkey).unwrap();
        assert_eq!((n.as_str(), k), (name, w.verifying_key()));
        assert!(
            parse_verifier_key(&vkey.replace("entente-witness/DE", "entente-witness/US")).is_err()
        );
    }

    #[test]
    fn verifier_keys_round_trip_whatever_their_base64() {
        // Some keys' base64 holds `+`, the separator of the fields.
        for seed in 0..64u8 {
            let k = SigningKey::from_bytes(&[seed; 32]).verifying_key();
            let vkey = verifier_key("entente-witness/NL", &k);
            assert_eq!(
                parse_verifier_key(&vkey).unwrap(),
                ("entente-witness/NL".into(), k),
                "{vkey}"
            );
        }
        assert!(parse_verifier_key("no-plus-here").is_err());
    }

    #[test]
    fn observations() {
        let log = SigningKey::from_bytes(&[1; 32]);
        let (_, s2, r2) = checkpoint(&log, &[b"a", b"b"]);
        let (_, s2x, r2x) = checkpoint(&log, &[b"a", b"x"]);
        assert_eq!(observe(None, (s2, r2), None), Observation::First);
        assert_eq!(observe(Some((s2, r2)), (s2, r2), None), Observation::Unchanged);
        assert!(matches!(observe(Some((s2, r2)), (s2x, r2x), None), Observation::SplitView(_)));
        assert!(matches!(observe(Some((s2, r2)), (1, r2), None), Observation::SplitView(_)));
        assert!(matches!(observe(Some((s2, r2)), (3, r2), None), Observation::SplitView(_)));
    }
}
