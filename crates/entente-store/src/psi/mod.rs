//! Deconfliction by private set intersection, in the gate (`docs/psi.md`): an investigator
//! asks a partner whether it holds anything on her selectors, under the deconfliction
//! agreement in force between the two parties, and learns only which of them the partner
//! holds (with the partner's case reference and contact) or how many; the partner learns only
//! that a query of the agreement's padded size was made, for which case.
//!
//! The protocol is `entente-psi`'s (RFC 9497 VOPRF, ristretto255-SHA512). Here:
//! - the holder's key epochs (`rotation.rs`): [`rotation_decision`] decides a rotation
//!   before anything is read, [`crate::Store::psi_holdings`] reads the node's holdings of the
//!   kinds the agreement names (data items, evidence, STIX observables) with the ledger size
//!   as watermark, [`PsiHoldings::prepare`] PRFs them outside the gate, and [`RotatePsiKey`]
//!   records the epoch (key and set sealed) and sends the public key with the prepared set in
//!   chunks (`psi.key`) to the agreement's other parties; [`SendPsiKey`] sends the current
//!   epoch to a party pinned since;
//! - the holder (`holder.rs`): [`ReceivePsiQuery`] evaluates a partner's query with the key
//!   of the epoch (`psi.evaluation`), or refuses it with the reason;
//! - the asker (`asker.rs`): [`ReceivePsiKey`] keeps a partner's key and set chunks;
//!   [`PsiQuery`] blinds the selectors, pads them to the agreement's size and sends them
//!   (`psi.query`), keeping the query's state sealed; [`ReceivePsiEvaluation`] verifies the
//!   partner's proof, finalises and intersects, and keeps the result sealed;
//!   [`ReadPsiStatus`] reads queries, results, keys and evaluations (a recorded read).
//!
//! Limits the agreement sets and the gate enforces on both sides: the selector kinds, the
//! padded size (selectors per query), queries per case and partner per period. No selector
//! is stored or recorded in the clear: the ledger holds digests of blinded messages and
//! counts; the database holds sealed state, PRF'd tags and sealed labels.

mod asker;
mod holder;
mod rotation;

pub use asker::{
    PeerKeyStatus, PsiMatch, PsiQuery, PsiQueryOutput, PsiQueryStatus, PsiStatus, ReadPsiStatus,
    ReceivePsiEvaluation, ReceivePsiKey,
};
pub use holder::{EvaluationRecord, KeyStatus, ReceivePsiQuery};
pub use rotation::{
    CurrentEpoch, MAX_CONTACT, PreparedEpoch, PsiHoldings, RotatePsiKey, RotationReport,
    SendPsiKey, check_rotation, rotation_decision,
};

use crate::gate::GateError;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use entente_core::PartyCode;
use entente_policy::agreement::{Agreement, Deconfliction};
use entente_policy::engine::Engine;
use entente_psi::Limits;
use jiff::Timestamp;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Elements per chunk of a prepared set sent in one `psi.key` message.
pub const CHUNK_ELEMENTS: usize = 2000;

/// The bounds on partners' deconfliction messages: queries up to the largest padded size an
/// agreement may set, chunks up to 10,000 elements, sets up to ten million elements.
pub const LIMITS: Limits = Limits {
    max_query_elements: entente_policy::agreement::MAX_DECONFLICTION_SELECTORS as usize,
    max_chunk_elements: 10_000,
    max_set_elements: 10_000_000,
    max_label_bytes: 4096,
    max_message_bytes: 16 << 20,
};

/// The deconfliction agreement in force on `now` between `me` and `other`: the first (by id)
/// whose `[deconfliction]` section names both, or, when `named`, that one.
///
/// # Errors
/// Why there is none, in words.
pub(crate) fn agreement_between<'a>(
    engine: &'a Engine,
    me: &PartyCode,
    other: &PartyCode,
    named: Option<&str>,
    now: Timestamp,
) -> Result<(&'a Agreement, &'a Deconfliction), String> {
    let day = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let candidates = engine.agreements().iter().filter_map(|a| {
        let d = a.deconfliction.as_ref()?;
        Some((a, d)).filter(|_| named.is_none_or(|n| n == a.id))
    });
    let mut why = None;
    for (a, d) in candidates {
        if !a.in_force_on(day) {
            why = Some(format!("agreement {} is not in force on {day}", a.id));
        } else if me != other && !a.in_force_between(me, other, day) {
            why = Some(format!(
                "agreement {} is not in force for both {me} and {other} on {day}: not for {}",
                a.id,
                a.not_in_force_for([me, other], day).join(", ")
            ));
        } else if me == other || !d.parties.contains(me) || !d.parties.contains(other) {
            why = Some(format!(
                "agreement {}'s [deconfliction] does not name both {me} and {other}",
                a.id
            ));
        } else {
            return Ok((a, d));
        }
    }
    Err(why.unwrap_or_else(|| match named {
        Some(n) => format!("no agreement `{n}` with a [deconfliction] section is loaded"),
        None => {
            format!("no agreement in force provides for deconfliction between {me} and {other}")
        }
    }))
}

/// The start of the period `per` that ends at `now`, as the store writes instants.
pub(crate) fn window_start(
    now: Timestamp,
    per: &entente_policy::agreement::IsoDuration,
) -> Result<String, GateError> {
    let since = now
        .to_zoned(jiff::tz::TimeZone::UTC)
        .checked_sub(per.span)
        .map_err(|e| GateError::Internal(format!("period {}: {e}", per.text)))?;
    Ok(format!("{:.6}", since.timestamp()))
}

/// The at-rest key for `purpose`, derived from the node secret.
fn at_rest_key(secret: &[u8; 32], purpose: &str) -> Zeroizing<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(b"entente psi at rest v1\0");
    h.update(purpose.as_bytes());
    h.update([0]);
    h.update(secret);
    Zeroizing::new(h.finalize().into())
}

/// `nonce || XChaCha20-Poly1305(key(purpose), nonce, plaintext, ad)`.
pub(crate) fn seal(
    secret: &[u8; 32],
    purpose: &str,
    ad: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, GateError> {
    let key = at_rest_key(secret, purpose);
    let cipher = XChaCha20Poly1305::new_from_slice(key.as_ref())
        .map_err(|_| GateError::Internal("an at-rest key is not 32 bytes".into()))?;
    let mut nonce = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(&XNonce::from(nonce), Payload { msg: plaintext, aad: ad.as_bytes() })
        .map_err(|_| GateError::Internal(format!("sealing {purpose} failed")))?;
    let mut out = nonce.to_vec();
    out.extend(ct);
    Ok(out)
}

/// Opens what [`seal`] sealed for the same purpose and associated data.
pub(crate) fn open(
    secret: &[u8; 32],
    purpose: &str,
    ad: &str,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, GateError> {
    let bad = || {
        GateError::Store(crate::StoreError::Inconsistent(format!(
            "sealed {purpose} ({ad}) does not open under this node's key: altered or of another node"
        )))
    };
    let (nonce, ct) = sealed.split_at_checked(24).ok_or_else(bad)?;
    let nonce: [u8; 24] = nonce.try_into().map_err(|_| bad())?;
    let key = at_rest_key(secret, purpose);
    let cipher = XChaCha20Poly1305::new_from_slice(key.as_ref()).map_err(|_| bad())?;
    cipher
        .decrypt(&XNonce::from(nonce), Payload { msg: ct, aad: ad.as_bytes() })
        .map(Zeroizing::new)
        .map_err(|_| bad())
}

fn mode_name(mode: entente_psi::Mode) -> &'static str {
    match mode {
        entente_psi::Mode::Labelled => "labelled",
        entente_psi::Mode::Cardinality => "cardinality",
    }
}

fn parse_mode(text: &str) -> Result<entente_psi::Mode, GateError> {
    match text {
        "labelled" => Ok(entente_psi::Mode::Labelled),
        "cardinality" => Ok(entente_psi::Mode::Cardinality),
        other => {
            Err(GateError::Store(crate::StoreError::Inconsistent(format!("psi mode `{other}`"))))
        }
    }
}

fn json(v: &impl serde::Serialize) -> Result<serde_json::Value, GateError> {
    serde_json::to_value(v).map_err(GateError::encoding)
}

fn psi_error(e: entente_psi::PsiError) -> GateError {
    GateError::Invalid(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_state_opens_only_with_its_secret_purpose_and_ad() {
        let secret = [3u8; 32];
        let sealed = seal(&secret, "query", "NL-7", b"ip:203.0.113.7").unwrap();
        assert_eq!(&open(&secret, "query", "NL-7", &sealed).unwrap()[..], b"ip:203.0.113.7");
        assert!(open(&[4u8; 32], "query", "NL-7", &sealed).is_err());
        assert!(open(&secret, "result", "NL-7", &sealed).is_err());
        assert!(open(&secret, "query", "NL-8", &sealed).is_err());
        assert!(!sealed.windows(4).any(|w| w == b"203."));
    }
}
