//! Signed envelopes: how one node's message reaches another, and the signed acknowledgement
//! that comes back.
//!
//! An envelope is RFC 8785 canonical JSON signed with the sender's Ed25519 node key (the key
//! inside its pinned TLS certificate). The signature covers every field but `sig`, prefixed by
//! a domain string so that no other signed object of Entente (ledger checkpoints, evidence
//! manifests) can be replayed as an envelope. The payload travels inside the envelope and its
//! digest is signed too, so a receiver records the digest and can prove later what it got.
//!
//! The receiver checks, in this order: format version, recipient, payload digest, signature
//! (against the pinned key of the claimed sender), freshness (`created` within the configured
//! clock skew of its own clock). Replay and ordering are checked by the receiving gate
//! against what it has applied (per sender, by sequence number), in the same transaction as
//! the effect. Pure: the caller gives `now`.

use crate::MessageKind;
use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use entente_core::canonical::{CanonicalError, sha256_tagged, to_canonical_vec};
use entente_core::ids::PartyCode;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Format version of envelopes and acknowledgements.
pub const FORMAT: u32 = 1;
const ENVELOPE_DOMAIN: &[u8] = b"entente envelope v1\n";
const ACK_DOMAIN: &[u8] = b"entente acknowledgement v1\n";

/// A message from one node to another, signed by the sender.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Format version ([`FORMAT`]).
    pub v: u32,
    /// The sending party.
    pub from: PartyCode,
    /// The receiving party.
    pub to: PartyCode,
    /// Message id, unique per sender (`<from>-<to>-<seq>`).
    pub id: String,
    /// What the payload is (`datum`, `consent`, …).
    pub kind: String,
    /// When this envelope was signed (RFC 3339, UTC); re-signed at every delivery attempt.
    pub created: String,
    /// Position in the sender's sequence of messages to this recipient, from 1.
    pub seq: u64,
    /// `sha256:<hex>` of the payload's RFC 8785 form.
    pub payload_sha256: String,
    /// The message itself.
    pub payload: Value,
    /// Base64 Ed25519 signature over the domain string and the canonical envelope without
    /// `sig`.
    pub sig: String,
}

/// The signed fields of an envelope.
#[derive(Serialize)]
struct EnvelopeBody<'a> {
    v: u32,
    from: &'a PartyCode,
    to: &'a PartyCode,
    id: &'a str,
    kind: &'a str,
    created: &'a str,
    seq: u64,
    payload_sha256: &'a str,
    payload: &'a Value,
}

/// Why an envelope or acknowledgement is refused. `rule()` names the check for the ledger.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Unknown format version.
    #[error("envelope format {found} is not supported (expected {FORMAT})")]
    Version {
        /// The version found.
        found: u32,
    },
    /// Addressed to another party.
    #[error("envelope {id} is addressed to {to}, not to this node ({me})")]
    Recipient {
        /// Envelope id.
        id: String,
        /// Its recipient.
        to: PartyCode,
        /// This node's party.
        me: PartyCode,
    },
    /// The payload does not match its signed digest.
    #[error("envelope {id}: payload digest is {actual}, the envelope says {stated}")]
    PayloadDigest {
        /// Envelope id.
        id: String,
        /// Digest stated in the envelope.
        stated: String,
        /// Digest of the payload received.
        actual: String,
    },
    /// The signature is malformed or does not verify with the pinned key of the sender.
    #[error("envelope {id}: the signature does not verify with the pinned key of {from}")]
    Signature {
        /// Envelope id.
        id: String,
        /// Claimed sender.
        from: PartyCode,
    },
    /// `created` is unreadable or outside the allowed clock skew.
    #[error(
        "envelope {id}: created {created} is outside ±{skew_secs} s of this node's clock ({now})"
    )]
    Stale {
        /// Envelope id.
        id: String,
        /// Its `created` field.
        created: String,
        /// This node's time.
        now: String,
        /// Allowed skew.
        skew_secs: i64,
    },
    /// The envelope cannot be put in canonical form.
    #[error("envelope cannot be canonicalised: {0}")]
    Canonical(String),
}

impl EnvelopeError {
    /// The id of the check that failed, as recorded in the ledger (`federation#<check>`).
    pub fn rule(&self) -> &'static str {
        match self {
            EnvelopeError::Version { .. } => "federation#version",
            EnvelopeError::Recipient { .. } => "federation#recipient",
            EnvelopeError::PayloadDigest { .. } => "federation#payload-digest",
            EnvelopeError::Signature { .. } => "federation#signature",
            EnvelopeError::Stale { .. } => "federation#freshness",
            EnvelopeError::Canonical(_) => "federation#format",
        }
    }
}

impl From<CanonicalError> for EnvelopeError {
    fn from(e: CanonicalError) -> Self {
        EnvelopeError::Canonical(e.to_string())
    }
}

fn signing_input(domain: &[u8], body: &impl Serialize) -> Result<Vec<u8>, EnvelopeError> {
    let mut msg = domain.to_vec();
    msg.extend_from_slice(&to_canonical_vec(body)?);
    Ok(msg)
}

fn verify_sig(key: &VerifyingKey, msg: &[u8], sig: &str) -> bool {
    let Ok(bytes) = BASE64_STANDARD.decode(sig) else { return false };
    let Ok(sig) = Signature::from_slice(&bytes) else { return false };
    key.verify_strict(msg, &sig).is_ok()
}

/// The id of the `seq`-th message from `from` to `to`.
pub fn message_id(from: &PartyCode, to: &PartyCode, seq: u64) -> String {
    format!("{from}-{to}-{seq}")
}

/// `sha256:<hex>` of the canonical form of `payload`.
///
/// # Errors
/// A payload JSON cannot represent canonically.
pub fn payload_digest(payload: &Value) -> Result<String, EnvelopeError> {
    Ok(sha256_tagged(&to_canonical_vec(payload)?))
}

impl Envelope {
    /// Builds and signs an envelope at `now`.
    ///
    /// # Errors
    /// A payload that has no canonical form.
    pub fn seal(
        key: &SigningKey,
        from: PartyCode,
        to: PartyCode,
        kind: MessageKind,
        seq: u64,
        payload: Value,
        now: Timestamp,
    ) -> Result<Envelope, EnvelopeError> {
        let mut env = Envelope {
            v: FORMAT,
            id: message_id(&from, &to, seq),
            from,
            to,
            kind: kind.as_str().to_owned(),
            created: format!("{now:.6}"),
            seq,
            payload_sha256: payload_digest(&payload)?,
            payload,
            sig: String::new(),
        };
        let msg = signing_input(ENVELOPE_DOMAIN, &env.body())?;
        env.sig = BASE64_STANDARD.encode(key.sign(&msg).to_bytes());
        Ok(env)
    }

    fn body(&self) -> EnvelopeBody<'_> {
        EnvelopeBody {
            v: self.v,
            from: &self.from,
            to: &self.to,
            id: &self.id,
            kind: &self.kind,
            created: &self.created,
            seq: self.seq,
            payload_sha256: &self.payload_sha256,
            payload: &self.payload,
        }
    }

    /// `sha256:<hex>` of the whole signed envelope (recorded by the receiver's ledger).
    ///
    /// # Errors
    /// As [`to_canonical_vec`].
    pub fn digest(&self) -> Result<String, EnvelopeError> {
        Ok(sha256_tagged(&to_canonical_vec(self)?))
    }

    /// Checks this envelope as received by `me` at `now` from the holder of `key` (the pinned
    /// key of `self.from`), allowing `skew` between the clocks.
    ///
    /// # Errors
    /// The first check that fails, in the order of the module documentation.
    pub fn verify(
        &self,
        key: &VerifyingKey,
        me: &PartyCode,
        now: Timestamp,
        skew: SignedDuration,
    ) -> Result<(), EnvelopeError> {
        if self.v != FORMAT {
            return Err(EnvelopeError::Version { found: self.v });
        }
        if &self.to != me {
            return Err(EnvelopeError::Recipient {
                id: self.id.clone(),
                to: self.to.clone(),
                me: me.clone(),
            });
        }
        let actual = payload_digest(&self.payload)?;
        if actual != self.payload_sha256 {
            return Err(EnvelopeError::PayloadDigest {
                id: self.id.clone(),
                stated: self.payload_sha256.clone(),
                actual,
            });
        }
        let msg = signing_input(ENVELOPE_DOMAIN, &self.body())?;
        if !verify_sig(key, &msg, &self.sig) {
            return Err(EnvelopeError::Signature { id: self.id.clone(), from: self.from.clone() });
        }
        let fresh = self
            .created
            .parse::<Timestamp>()
            .is_ok_and(|t| now.duration_since(t).abs() <= skew.abs());
        if !fresh {
            return Err(EnvelopeError::Stale {
                id: self.id.clone(),
                created: self.created.clone(),
                now: format!("{now:.0}"),
                skew_secs: skew.as_secs(),
            });
        }
        Ok(())
    }
}

/// What the receiver did with one envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AckStatus {
    /// Permitted by the receiver's gate and applied.
    Applied,
    /// Denied by the receiver's gate (recorded there; nothing applied).
    Denied,
    /// Refused before any decision (unreadable content); recorded, nothing applied.
    Rejected,
    /// Not applied: the receiver has applied another message under this sequence number
    /// (the sender was restored from a backup older than what it had sent). The refusal is
    /// recorded; the item names the number the receiver expects next (`next_seq`), from which
    /// the sender numbers this message and those after it again. It is the last item of its
    /// acknowledgement: the receiver applies nothing of the batch after it.
    Resequence,
    /// Not applied: the receiver expects an earlier number (`next_seq`, below the item's own)
    /// — it was restored from a backup older than messages it had acknowledged. The item
    /// asks the sender to send its messages from `next_seq` again, then this one; it ends
    /// the acknowledgement.
    Resend,
}

impl AckStatus {
    /// Whether the item asks the sender to number or send again rather than answering the
    /// envelope: the last item of an acknowledgement, never a delivery.
    pub fn asks_again(self) -> bool {
        matches!(self, AckStatus::Resequence | AckStatus::Resend)
    }
}

impl AckStatus {
    /// The status as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            AckStatus::Applied => "applied",
            AckStatus::Denied => "denied",
            AckStatus::Rejected => "rejected",
            AckStatus::Resequence => "resequence",
            AckStatus::Resend => "resend",
        }
    }

    /// Parses a stored status.
    pub fn parse(s: &str) -> Option<AckStatus> {
        match s {
            "applied" => Some(AckStatus::Applied),
            "denied" => Some(AckStatus::Denied),
            "rejected" => Some(AckStatus::Rejected),
            "resequence" => Some(AckStatus::Resequence),
            "resend" => Some(AckStatus::Resend),
            _ => None,
        }
    }
}

/// Most envelopes in one batch.
pub const MAX_BATCH: usize = 1000;

/// The body of a federation POST: envelopes from one sender, in sequence order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// The envelopes, 1 to [`MAX_BATCH`] of them.
    pub envelopes: Vec<Envelope>,
}

/// The receiver's outcome for one envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckItem {
    /// Envelope id.
    pub id: String,
    /// Its sequence number.
    pub seq: u64,
    /// The outcome.
    pub status: AckStatus,
    /// The receiver's ledger entry recording it.
    pub ledger_index: u64,
    /// True when the envelope had been applied before and this is the stored outcome again.
    pub replayed: bool,
    /// The receiver's reason for a deny or rejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// With [`AckStatus::Resequence`] (above the item's number) and [`AckStatus::Resend`]
    /// (below it) only: the sequence number the receiver expects next from this sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_seq: Option<u64>,
}

/// A signed acknowledgement of a batch of envelopes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    /// Format version ([`FORMAT`]).
    pub v: u32,
    /// The acknowledging party (the envelopes' recipient).
    pub from: PartyCode,
    /// The party acknowledged (the envelopes' sender).
    pub to: PartyCode,
    /// When it was signed.
    pub created: String,
    /// One outcome per envelope, in the order sent.
    pub items: Vec<AckItem>,
    /// Base64 Ed25519 signature over the domain string and the canonical ack without `sig`.
    pub sig: String,
}

#[derive(Serialize)]
struct AckBody<'a> {
    v: u32,
    from: &'a PartyCode,
    to: &'a PartyCode,
    created: &'a str,
    items: &'a [AckItem],
}

impl Ack {
    /// Builds and signs an acknowledgement.
    ///
    /// # Errors
    /// Only if the items cannot be canonicalised.
    pub fn seal(
        key: &SigningKey,
        from: PartyCode,
        to: PartyCode,
        items: Vec<AckItem>,
        now: Timestamp,
    ) -> Result<Ack, EnvelopeError> {
        let mut ack =
            Ack { v: FORMAT, from, to, created: format!("{now:.6}"), items, sig: String::new() };
        let msg = signing_input(ACK_DOMAIN, &ack.body())?;
        ack.sig = BASE64_STANDARD.encode(key.sign(&msg).to_bytes());
        Ok(ack)
    }

    fn body(&self) -> AckBody<'_> {
        AckBody {
            v: self.v,
            from: &self.from,
            to: &self.to,
            created: &self.created,
            items: &self.items,
        }
    }

    /// `sha256:<hex>` of the whole signed acknowledgement.
    ///
    /// # Errors
    /// As [`to_canonical_vec`].
    pub fn digest(&self) -> Result<String, EnvelopeError> {
        Ok(sha256_tagged(&to_canonical_vec(self)?))
    }

    /// Checks that this acknowledgement comes from `peer` (holder of `key`), is addressed to
    /// `me`, and answers exactly the envelopes `sent` (ids and sequence numbers, in order).
    ///
    /// # Errors
    /// The first check that fails.
    pub fn verify(
        &self,
        key: &VerifyingKey,
        peer: &PartyCode,
        me: &PartyCode,
        sent: &[(String, u64)],
    ) -> Result<(), EnvelopeError> {
        if self.v != FORMAT {
            return Err(EnvelopeError::Version { found: self.v });
        }
        if &self.to != me {
            return Err(EnvelopeError::Recipient {
                id: "acknowledgement".into(),
                to: self.to.clone(),
                me: me.clone(),
            });
        }
        let msg = signing_input(ACK_DOMAIN, &self.body())?;
        if &self.from != peer || !verify_sig(key, &msg, &self.sig) {
            return Err(EnvelopeError::Signature {
                id: "acknowledgement".into(),
                from: self.from.clone(),
            });
        }
        let answered: Vec<(&str, u64)> =
            self.items.iter().map(|i| (i.id.as_str(), i.seq)).collect();
        let asked: Vec<(&str, u64)> = sent.iter().map(|(i, s)| (i.as_str(), *s)).collect();
        if answered != asked {
            return Err(EnvelopeError::Canonical(format!(
                "the acknowledgement answers {answered:?}, the batch sent was {asked:?}"
            )));
        }
        check_send_again(&self.items).map_err(EnvelopeError::Canonical)
    }
}

/// Checks the items' `next_seq`: a `resequence` item names a number above its own, a
/// `resend` item one below its own (at least 1), either is the last item, and no other item
/// names one.
///
/// # Errors
/// The first item that breaks the rule, in words.
pub fn check_send_again(items: &[AckItem]) -> Result<(), String> {
    for (i, item) in items.iter().enumerate() {
        let last = i + 1 == items.len();
        let fits = match (item.status, item.next_seq) {
            (AckStatus::Resequence, Some(next)) => next > item.seq && last,
            (AckStatus::Resend, Some(next)) => next < item.seq && next > 0 && last,
            (AckStatus::Resequence | AckStatus::Resend, None) => false,
            (_, next) => next.is_none(),
        };
        if !fits {
            return Err(format!(
                "item {} of the acknowledgement (sequence number {}): a `resequence` item names a next sequence number above its own, a `resend` item one below its own, and either ends the acknowledgement; no other item names one",
                i + 1,
                item.seq
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }
    fn p(s: &str) -> PartyCode {
        s.parse().unwrap()
    }
    fn now() -> Timestamp {
        "2026-03-30T10:00:00Z".parse().unwrap()
    }
    const SKEW: SignedDuration = SignedDuration::from_secs(300);

    fn sample() -> Envelope {
        Envelope::seal(
            &key(1),
            p("DE"),
            p("NL"),
            MessageKind::Datum,
            7,
            serde_json::json!({"datum_id": "de-c2-logs-1", "n": 1}),
            now(),
        )
        .unwrap()
    }

    #[test]
    fn a_sealed_envelope_verifies_and_survives_json() {
        let env = sample();
        assert_eq!(env.id, "DE-NL-7");
        let text = serde_json::to_string(&env).unwrap();
        let back: Envelope = serde_json::from_str(&text).unwrap();
        back.verify(&key(1).verifying_key(), &p("NL"), now(), SKEW).unwrap();
    }

    #[test]
    fn each_check_names_its_rule() {
        let env = sample();
        let vk = key(1).verifying_key();
        let e = env.verify(&key(2).verifying_key(), &p("NL"), now(), SKEW).unwrap_err();
        assert_eq!(e.rule(), "federation#signature");
        let e = env.verify(&vk, &p("US"), now(), SKEW).unwrap_err();
        assert_eq!(e.rule(), "federation#recipient");
        assert!(e.to_string().contains("addressed to NL, not to this node (US)"), "{e}");
        let late = now() + SignedDuration::from_secs(301);
        let e = env.verify(&vk, &p("NL"), late, SKEW).unwrap_err();
        assert_eq!(e.rule(), "federation#freshness");
        let early = now() - SignedDuration::from_secs(301);
        assert_eq!(
            env.verify(&vk, &p("NL"), early, SKEW).unwrap_err().rule(),
            "federation#freshness"
        );
        let mut bad = env.clone();
        bad.payload["n"] = serde_json::json!(2);
        assert_eq!(
            bad.verify(&vk, &p("NL"), now(), SKEW).unwrap_err().rule(),
            "federation#payload-digest"
        );
        let mut bad = env.clone();
        bad.v = 2;
        assert_eq!(
            bad.verify(&vk, &p("NL"), now(), SKEW).unwrap_err().rule(),
            "federation#version"
        );
        let mut bad = env;
        bad.sig = "not base64!".into();
        assert_eq!(
            bad.verify(&vk, &p("NL"), now(), SKEW).unwrap_err().rule(),
            "federation#signature"
        );
    }

    #[test]
    fn an_ack_binds_the_batch() {
        let items = vec![AckItem {
            id: "DE-NL-7".into(),
            seq: 7,
            status: AckStatus::Applied,
            ledger_index: 42,
            replayed: false,
            reason: None,
            next_seq: None,
        }];
        let ack = Ack::seal(&key(2), p("NL"), p("DE"), items, now()).unwrap();
        let vk = key(2).verifying_key();
        ack.verify(&vk, &p("NL"), &p("DE"), &[("DE-NL-7".into(), 7)]).unwrap();
        assert!(ack.verify(&vk, &p("NL"), &p("DE"), &[("DE-NL-8".into(), 8)]).is_err());
        assert!(ack.verify(&vk, &p("US"), &p("DE"), &[("DE-NL-7".into(), 7)]).is_err());
        assert!(
            ack.verify(&key(1).verifying_key(), &p("NL"), &p("DE"), &[("DE-NL-7".into(), 7)])
                .is_err()
        );
        let mut forged = ack;
        forged.items[0].status = AckStatus::Denied;
        assert!(forged.verify(&vk, &p("NL"), &p("DE"), &[("DE-NL-7".into(), 7)]).is_err());
    }

    /// A `resequence` item names a next number above its own and ends the acknowledgement.
    #[test]
    fn a_resequence_item_is_last_and_names_a_higher_number() {
        let item = |seq: u64, status: AckStatus, next_seq: Option<u64>| AckItem {
            id: format!("DE-NL-{seq}"),
            seq,
            status,
            ledger_index: 40 + seq,
            replayed: false,
            reason: None,
            next_seq,
        };
        let vk = key(2).verifying_key();
        let check = |items: Vec<AckItem>| {
            let sent: Vec<(String, u64)> = items.iter().map(|i| (i.id.clone(), i.seq)).collect();
            let ack = Ack::seal(&key(2), p("NL"), p("DE"), items, now()).unwrap();
            ack.verify(&vk, &p("NL"), &p("DE"), &sent)
        };
        check(vec![item(7, AckStatus::Applied, None), item(8, AckStatus::Resequence, Some(11))])
            .unwrap();
        let bad = [
            vec![item(8, AckStatus::Resequence, Some(11)), item(9, AckStatus::Applied, None)],
            vec![item(8, AckStatus::Resequence, None)],
            vec![item(8, AckStatus::Resequence, Some(8))],
            vec![item(8, AckStatus::Applied, Some(11))],
            vec![item(8, AckStatus::Resend, Some(9))],
            vec![item(8, AckStatus::Resend, Some(0))],
            vec![item(8, AckStatus::Resend, Some(5)), item(9, AckStatus::Applied, None)],
        ];
        check(vec![item(8, AckStatus::Resend, Some(5))]).unwrap();
        for items in bad {
            let e = check(items).unwrap_err();
            assert!(e.to_string().contains("`resequence` item"), "{e}");
        }
        // An old acknowledgement (no `next_seq` member) still reads.
        let old =
            r#"{"id":"DE-NL-7","seq":7,"status":"applied","ledger_index":42,"replayed":false}"#;
        let parsed: AckItem = serde_json::from_str(old).unwrap();
        assert_eq!(parsed.next_seq, None);
        assert_eq!(AckStatus::parse("resequence"), Some(AckStatus::Resequence));
        assert_eq!(AckStatus::parse("resend"), Some(AckStatus::Resend));
        assert!(AckStatus::Resend.asks_again() && !AckStatus::Denied.asks_again());
    }

    proptest! {
        /// Changing any signed field of an envelope makes it fail verification.
        #[test]
        fn any_field_change_is_detected(field in 0usize..7, n in 1u64..1000, s in "[a-z]{1,8}") {
            let mut env = sample();
            match field {
                0 => env.from = p("FR"),
                1 => env.id = s,
                2 => env.kind = format!("{s}x"),
                3 => env.created = "2026-03-30T10:00:01Z".into(),
                4 => env.seq += n,
                5 => env.payload["n"] = serde_json::json!(n + 1),
                _ => env.payload_sha256 = format!("sha256:{s}"),
            }
            prop_assert!(env.verify(&key(1).verifying_key(), &p("NL"), now(), SKEW).is_err());
        }
    }
}
