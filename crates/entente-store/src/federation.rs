//! Federation inside the gate: pinning partner nodes, admitting envelopes exactly once and in
//! order, and recording the signed acknowledgements of what this node sent.
//!
//! The node layer checks an envelope's signature against the pin before it reaches the gate;
//! here, in the gate's transaction, the pin is checked again (a peer removed meanwhile is
//! refused), a replay is answered with the stored outcome and never re-applied, and a gap in
//! the sender's sequence is refused so that messages take effect in the order they were sent.

use crate::gate::{GateCommand, GateError};
use crate::store::{StoreError, stamp, to_i64, to_u64};
use entente_core::{PartyCode, Stamp};

use entente_wire::{AckItem, AckStatus, Message, MessageKind};
use jiff::Timestamp;
use sqlx::Row;

/// A pinned partner node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerRecord {
    /// Its party.
    pub party: PartyCode,
    /// Base URL of its federation endpoint (`https://…`).
    pub url: String,
    /// Its TLS certificate (PEM), pinned.
    pub cert_pem: String,
    /// SHA-256 of the certificate's DER, hex.
    pub cert_sha256: String,
    /// Its Ed25519 signing key (hex), the key inside the certificate.
    pub signing_key: String,
    /// When it was pinned.
    pub added_at: Stamp,
    /// Ledger entry of the pinning.
    pub ledger_index: u64,
    /// Its node's age recipient (`age1…`), when pinned: evidence packages are encrypted to it.
    pub age_recipient: Option<String>,
}

/// An envelope whose signature was checked, for the gate to admit and apply exactly once.
/// Made only by [`verify_envelope`]; the gate then checks, in the transaction that applies
/// it, that the key it was checked with and the certificate it came over are still the pin.
#[derive(Clone, Debug)]
pub struct VerifiedEnvelope {
    pub(crate) inner: InboundEnvelope,
    /// Hex of the Ed25519 key the signature was checked with.
    pub(crate) signing_key: String,
}

impl VerifiedEnvelope {
    /// The envelope's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// Its position in the sender's sequence.
    pub fn seq(&self) -> u64 {
        self.inner.seq
    }

    /// The sending party.
    pub fn from(&self) -> &PartyCode {
        &self.inner.from
    }

    /// An envelope the store's own tests hand to the gate without a signature; the key
    /// check at admission is skipped for it.
    #[cfg(test)]
    pub(crate) fn unsigned(inner: InboundEnvelope) -> VerifiedEnvelope {
        VerifiedEnvelope { inner, signing_key: String::new() }
    }
}

/// Checks `envelope` — version, recipient `me`, payload digest, freshness within `skew` of
/// `now`, and its signature under `key`, the pinned key of the partner that sent it over the
/// connection whose client certificate has digest `cert_sha256` — and makes it an envelope
/// the gate accepts. Pure CPU: callers check large batches on several threads.
///
/// # Errors
/// The first check that fails, naming its `federation#…` rule.
pub fn verify_envelope(
    envelope: entente_wire::envelope::Envelope,
    key: &ed25519_dalek::VerifyingKey,
    cert_sha256: &str,
    me: &PartyCode,
    now: Timestamp,
    skew: jiff::SignedDuration,
) -> Result<VerifiedEnvelope, entente_wire::envelope::EnvelopeError> {
    envelope.verify(key, me, now, skew)?;
    let envelope_sha256 = envelope.digest()?;
    let e = envelope;
    Ok(VerifiedEnvelope {
        inner: InboundEnvelope {
            from: e.from,
            cert_sha256: cert_sha256.to_owned(),
            id: e.id,
            seq: e.seq,
            kind: e.kind,
            payload: e.payload,
            envelope_sha256,
            payload_sha256: e.payload_sha256,
        },
        signing_key: hex::encode(key.as_bytes()),
    })
}

/// An envelope as the gate admits it.
#[derive(Clone, Debug)]
pub(crate) struct InboundEnvelope {
    /// The sending party (its pin verified the signature).
    pub(crate) from: PartyCode,
    /// SHA-256 (hex) of the TLS client certificate it came over.
    pub(crate) cert_sha256: String,
    /// Envelope id.
    pub(crate) id: String,
    /// Sequence number in the sender's messages to this node.
    pub(crate) seq: u64,
    /// Payload kind.
    pub(crate) kind: String,
    /// The payload.
    pub(crate) payload: serde_json::Value,
    /// Digest of the whole signed envelope.
    pub(crate) envelope_sha256: String,
    /// Digest of the payload.
    pub(crate) payload_sha256: String,
}

/// What the gate makes of an inbound envelope before deciding its content.
pub(crate) enum Admission {
    /// Never seen, next in order: decide and apply.
    Fresh,
    /// Seen before: the stored outcome, acknowledged again.
    Replay(AckItem),
    /// The sequence number and id of an envelope already applied, with another payload: a
    /// partner (or its key) sending two messages under one number — a sender restored from
    /// a backup older than what it had sent, or a forked one. Refused and recorded, never
    /// acknowledged as a replay; the applied one stands, and the sender is told the number
    /// this node expects next (`next_seq`) so that it can number its message again.
    Reused {
        /// What was reused, for the record and the sender.
        reason: String,
        /// The sequence number this node expects next from the sender.
        next_seq: u64,
    },
    /// A number beyond the next one: this node lost messages it had acknowledged (restored
    /// from an older backup), or the sender skipped. The sender is asked to send again from
    /// `expected`; nothing is recorded (a partner's gaps are counted, not entered one by one).
    Gap {
        /// What is missing, for the sender.
        reason: String,
        /// The sequence number this node expects next from the sender.
        expected: u64,
    },
}

/// `batch_last`: the last sequence number from this sender admitted earlier in the same
/// transaction (its inbox row is written at the end of the transaction).
pub(crate) async fn admit(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    m: &InboundEnvelope,
    signing_key: Option<&str>,
    batch_last: Option<u64>,
) -> Result<Admission, GateError> {
    let seq = to_i64(m.seq)?;
    // One round trip: the pin, this sequence number's earlier outcome if any, the last one.
    let row = sqlx::query(
        "SELECT (SELECT cert_sha256 FROM peers WHERE party = $1), \
         (SELECT message_id FROM inbox WHERE sender = $1 AND seq = $2), \
         (SELECT status FROM inbox WHERE sender = $1 AND seq = $2), \
         (SELECT ledger_index FROM inbox WHERE sender = $1 AND seq = $2), \
         (SELECT MAX(seq) FROM inbox WHERE sender = $1), \
         (SELECT signing_key FROM peers WHERE party = $1), \
         (SELECT payload_sha256 FROM inbox WHERE sender = $1 AND seq = $2)",
    )
    .bind(m.from.as_str())
    .bind(seq)
    .fetch_one(&mut **tx)
    .await?;
    let pinned: Option<String> = row.try_get(0)?;
    if pinned.as_deref() != Some(m.cert_sha256.as_str()) {
        return Err(GateError::Invalid(format!(
            "{} is not pinned with the certificate {} (any more)",
            m.from, m.cert_sha256
        )));
    }
    // The signature was checked with this key: it must be the one pinned now.
    let pinned_key: Option<String> = row.try_get(5)?;
    if let Some(checked) = signing_key
        && pinned_key.as_deref() != Some(checked)
    {
        return Err(GateError::Invalid(format!(
            "envelope {} was checked with a key that is not {}'s pinned key (any more)",
            m.id, m.from
        )));
    }
    let last: Option<i64> = row.try_get(4)?;
    let last = match batch_last {
        Some(b) => last.max(Some(to_i64(b)?)),
        None => last,
    };
    let expected = last.unwrap_or(0) + 1;
    let seen: Option<String> = row.try_get(1)?;
    if let Some(id) = seen {
        let status: Option<String> = row.try_get(2)?;
        let index: Option<i64> = row.try_get(3)?;
        let status = status.unwrap_or_default();
        if id != m.id {
            return Err(GateError::Conflict(format!(
                "sequence number {} from {} was already used by message {id}",
                m.seq, m.from
            )));
        }
        let applied: Option<String> = row.try_get(6)?;
        if let Some(applied) = applied.filter(|a| *a != m.payload_sha256) {
            return Ok(Admission::Reused {
                reason: format!(
                    "sequence number {} and message {id} from {} were applied with payload {applied}; this envelope carries {} under the same number (send it again as number {expected})",
                    m.seq, m.from, m.payload_sha256
                ),
                next_seq: to_u64(expected)?,
            });
        }
        let status = AckStatus::parse(&status)
            .ok_or_else(|| StoreError::Inconsistent(format!("inbox status `{status}`")))?;
        return Ok(Admission::Replay(AckItem {
            id,
            seq: m.seq,
            status,
            ledger_index: to_u64(index.unwrap_or(0))?,
            replayed: true,
            reason: None,
            next_seq: None,
        }));
    }
    if seq > expected {
        return Ok(Admission::Gap {
            reason: format!(
                "message {} from {} is out of order: this node expects sequence number {expected} (send again from there)",
                m.id, m.from
            ),
            expected: to_u64(expected)?,
        });
    }
    if seq != expected {
        return Err(GateError::Conflict(format!(
            "message {} from {} is out of order: this node expects sequence number {expected}",
            m.id, m.from
        )));
    }
    Ok(Admission::Fresh)
}

/// The command an envelope's payload asks for: one per message kind of the protocol.
pub(crate) enum Decoded {
    /// `datum`: a datum delivered with its travelling conditions.
    Datum(crate::flows::ReceiveDatum),
    /// `consent`: the originator's consent to an onward transfer.
    Consent(crate::flows::ReceiveConsent),
    /// `request`: a request submitted to this party.
    Request(crate::requests::ReceiveRequest),
    /// `request-event`: an event the other side recorded on a shared request.
    RequestEvent(crate::requests::ReceiveRequestEvent),
    /// `evidence.package`: a partner's offer of a package to fetch.
    PackageOffer(crate::packages::ReceivePackageOffer),
    /// `incident.notification`: a partner's notification of an incident.
    Incident(crate::incidents::ReceiveIncidentNotification),
    /// `case.update`: the lead's update of a case this party is a member of.
    CaseUpdate(crate::cases::ReceiveCaseUpdate),
    /// `psi.key`: a partner's deconfliction key and a chunk of its prepared set.
    PsiKey(crate::psi::ReceivePsiKey),
    /// `psi.query`: a partner's deconfliction query.
    PsiQuery(crate::psi::ReceivePsiQuery),
    /// `psi.evaluation`: a partner's evaluation of this node's query, or its refusal.
    PsiEvaluation(crate::psi::ReceivePsiEvaluation),
    /// An envelope refused before its content was decided (never made by `decode`).
    Refused(crate::peers::RejectEnvelope),
}

/// The command an envelope's payload asks for, or why it cannot be read.
pub(crate) fn decode(m: &InboundEnvelope) -> Result<Decoded, String> {
    let c = match Message::decode(&m.kind, &m.payload).map_err(|e| e.to_string())? {
        Message::Datum(message) => Decoded::Datum(crate::flows::ReceiveDatum { message }),
        Message::Consent(message) => Decoded::Consent(crate::flows::ReceiveConsent { message }),
        Message::Request(message) => Decoded::Request(crate::requests::ReceiveRequest { message }),
        Message::RequestEvent(message) => {
            Decoded::RequestEvent(crate::requests::ReceiveRequestEvent { message })
        }
        Message::PackageOffer(offer) => {
            Decoded::PackageOffer(crate::packages::ReceivePackageOffer { offer })
        }
        Message::IncidentNotification(message) => {
            Decoded::Incident(crate::incidents::ReceiveIncidentNotification { message })
        }
        Message::CaseUpdate(message) => {
            Decoded::CaseUpdate(crate::cases::ReceiveCaseUpdate { message })
        }
        Message::PsiKey(message) => Decoded::PsiKey(crate::psi::ReceivePsiKey { message }),
        Message::PsiQuery(message) => Decoded::PsiQuery(crate::psi::ReceivePsiQuery { message }),
        Message::PsiEvaluation(message) => {
            Decoded::PsiEvaluation(crate::psi::ReceivePsiEvaluation { message })
        }
    };
    let valid = match &c {
        Decoded::Datum(c) => c.validate(),
        Decoded::Consent(c) => c.validate(),
        Decoded::Request(c) => c.validate(),
        Decoded::RequestEvent(c) => c.validate(),
        Decoded::PackageOffer(c) => c.validate(),
        Decoded::Incident(c) => c.validate(),
        Decoded::CaseUpdate(c) => c.validate(),
        Decoded::PsiKey(c) => c.validate(),
        Decoded::PsiQuery(c) => c.validate(),
        Decoded::PsiEvaluation(c) => c.validate(),
        Decoded::Refused(c) => c.validate(),
    };
    valid.map_err(|e| e.to_string())?;
    Ok(c)
}

/// A partner may send data about one of this node's cases only if it is a member of that
/// case; data about its own cases (unknown here) are decided by the agreements as usual.
pub(crate) async fn check_case(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    from: &PartyCode,
    datum: &crate::flows::ReceiveDatum,
) -> Result<Result<(), String>, GateError> {
    let message = &datum.message;
    // One round trip: this node's case, the sender's membership, a partner-led case's mirror.
    let row = sqlx::query(
        "SELECT (SELECT 1 FROM cases WHERE id = $1), \
         (SELECT 1 FROM case_members WHERE case_id = $1 AND party = $2), \
         (SELECT members FROM case_mirrors WHERE case_id = $1)",
    )
    .bind(&message.case_id)
    .bind(from.as_str())
    .fetch_one(&mut **tx)
    .await?;
    let case: Option<i64> = row.try_get(0)?;
    let member: Option<i64> = row.try_get(1)?;
    let mirror: Option<String> = row.try_get(2)?;
    Ok(match (case, member) {
        (Some(_), None) => Err(format!(
            "datum {} is for case {}, of which {from} is not a member",
            message.id, message.case_id
        )),
        // A partner-led case this node mirrors: only from its members.
        (None, _) => match mirror
            .map(|m| crate::cases::mirror_members_include(&message.case_id, &m, from))
            .transpose()?
        {
            Some(false) => Err(format!(
                "datum {} is for case {}, led by a partner, of which {from} is not a member",
                message.id, message.case_id
            )),
            _ => Ok(()),
        },
        _ => Ok(()),
    })
}

/// An inbox row, written with the others of its transaction by [`record_inbox`].
pub(crate) struct InboxRow {
    sender: String,
    seq: i64,
    message_id: String,
    kind: String,
    payload_sha256: String,
    status: &'static str,
    ledger_index: i64,
    received_at: String,
}

impl InboxRow {
    pub(crate) fn new(
        m: &InboundEnvelope,
        status: AckStatus,
        index: u64,
        now: Timestamp,
    ) -> Result<InboxRow, GateError> {
        Ok(InboxRow {
            sender: m.from.as_str().to_owned(),
            seq: to_i64(m.seq)?,
            message_id: m.id.clone(),
            kind: m.kind.clone(),
            payload_sha256: m.payload_sha256.clone(),
            status: status.as_str(),
            ledger_index: to_i64(index)?,
            received_at: format!("{now:.6}"),
        })
    }
}

/// Writes the inbox rows of a transaction with multi-row statements.
pub(crate) async fn record_inbox(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: crate::store::Backend,
    rows: &[InboxRow],
) -> Result<(), GateError> {
    for chunk in rows.chunks(crate::gate::MAX_PARAMS / 8) {
        let sql = crate::gate::multi_row_insert(
            backend,
            "inbox (sender, seq, message_id, kind, payload_sha256, status, ledger_index, received_at)",
            8,
            chunk.len(),
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in chunk {
            q = q
                .bind(&r.sender)
                .bind(r.seq)
                .bind(&r.message_id)
                .bind(&r.kind)
                .bind(&r.payload_sha256)
                .bind(r.status)
                .bind(r.ledger_index)
                .bind(&r.received_at);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// The next sequence number for messages to `recipient` (inside the writer's transaction).
pub(crate) async fn next_seq(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    recipient: &PartyCode,
) -> Result<i64, GateError> {
    let last: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM outbox WHERE recipient = $1")
        .bind(recipient.as_str())
        .fetch_one(&mut **tx)
        .await?;
    Ok(last.unwrap_or(0) + 1)
}

pub(crate) fn peer_from_row(row: &sqlx::any::AnyRow) -> Result<PeerRecord, StoreError> {
    let party: String = row.try_get(0)?;
    Ok(PeerRecord {
        party: party
            .parse()
            .map_err(|_| StoreError::Inconsistent(format!("stored peer party `{party}`")))?,
        url: row.try_get(1)?,
        cert_pem: row.try_get(2)?,
        cert_sha256: row.try_get(3)?,
        signing_key: row.try_get(4)?,
        added_at: stamp(row, 5)?,
        ledger_index: to_u64(row.try_get(6)?)?,
        age_recipient: row.try_get(7)?,
    })
}

/// An outgoing message waiting for its acknowledgement.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingMessage {
    /// Sequence number for its recipient.
    pub seq: u64,
    /// Kind.
    pub kind: MessageKind,
    /// Payload.
    pub payload: serde_json::Value,
    /// Ledger entry of the action that caused it.
    pub ledger_index: u64,
    /// Bytes of the payload as stored (its JSON).
    pub size: usize,
}

/// Delivery state of the messages to one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxSummary {
    /// The recipient.
    pub recipient: String,
    /// Messages acknowledged.
    pub delivered: u64,
    /// Messages waiting.
    pub pending: u64,
    /// Of the delivered, those the recipient denied or rejected.
    pub refused: u64,
}

const PEER_COLUMNS: &str =
    "party, url, cert_pem, cert_sha256, signing_key, added_at, ledger_index, age_recipient";

impl crate::Store {
    /// Every pinned partner, by party.
    ///
    /// # Errors
    /// Database errors.
    pub async fn peers(&self) -> Result<Vec<PeerRecord>, StoreError> {
        let sql = format!("SELECT {PEER_COLUMNS} FROM peers ORDER BY party");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
        rows.iter().map(peer_from_row).collect()
    }

    /// The partner pinned with the certificate whose DER has this SHA-256 (hex).
    ///
    /// # Errors
    /// Database errors.
    pub async fn peer_by_cert(&self, cert_sha256: &str) -> Result<Option<PeerRecord>, StoreError> {
        let sql = format!("SELECT {PEER_COLUMNS} FROM peers WHERE cert_sha256 = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(cert_sha256)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(peer_from_row).transpose()
    }

    /// The partner pinned for `party`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn peer(&self, party: &PartyCode) -> Result<Option<PeerRecord>, StoreError> {
        let sql = format!("SELECT {PEER_COLUMNS} FROM peers WHERE party = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(party.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(peer_from_row).transpose()
    }

    /// The first `limit` messages to `recipient` not yet acknowledged, in sequence order.
    ///
    /// # Errors
    /// Database errors, or a stored payload that is not JSON.
    pub async fn pending_messages(
        &self,
        recipient: &PartyCode,
        limit: u32,
    ) -> Result<Vec<PendingMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, kind, payload, ledger_index FROM outbox \
             WHERE recipient = $1 AND delivered_at IS NULL AND seq IS NOT NULL ORDER BY seq LIMIT $2",
        )
        .bind(recipient.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let payload: Vec<u8> = r.try_get(2)?;
                let size = payload.len();
                Ok(PendingMessage {
                    size,
                    seq: to_u64(r.try_get(0)?)?,
                    kind: r
                        .try_get::<String, _>(1)?
                        .parse()
                        .map_err(|e| StoreError::Inconsistent(format!("outbox kind: {e}")))?,
                    payload: serde_json::from_slice(&payload)
                        .map_err(|e| StoreError::Inconsistent(format!("outbox payload: {e}")))?,
                    ledger_index: to_u64(r.try_get(3)?)?,
                })
            })
            .collect()
    }

    /// Recipients with messages waiting, for the delivery worker.
    ///
    /// # Errors
    /// Database errors.
    pub async fn recipients_waiting(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT recipient FROM outbox WHERE delivered_at IS NULL AND seq IS NOT NULL ORDER BY recipient",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Envelopes from `sender` applied by this node's gate (each counted once).
    ///
    /// # Errors
    /// Database errors.
    pub async fn count_received_from(&self, sender: &PartyCode) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM inbox WHERE sender = $1 AND status = 'applied'",
        )
        .bind(sender.as_str())
        .fetch_one(&self.pool)
        .await?;
        to_u64(n)
    }

    /// Delivery state per recipient.
    ///
    /// # Errors
    /// Database errors.
    pub async fn outbox_summary(&self) -> Result<Vec<OutboxSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT recipient, \
             SUM(CASE WHEN delivered_at IS NOT NULL THEN 1 ELSE 0 END), \
             SUM(CASE WHEN delivered_at IS NULL THEN 1 ELSE 0 END), \
             SUM(CASE WHEN ack_status IN ('denied', 'rejected') THEN 1 ELSE 0 END) \
             FROM outbox GROUP BY recipient ORDER BY recipient",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxSummary {
                    recipient: r.try_get(0)?,
                    delivered: to_u64(r.try_get(1)?)?,
                    pending: to_u64(r.try_get(2)?)?,
                    refused: to_u64(r.try_get(3)?)?,
                })
            })
            .collect()
    }

    /// The acknowledgement of the message to `recipient` with sequence `seq`: its status
    /// (`applied`, `denied`, `rejected`) and the recipient's ledger index; `None` while it
    /// waits.
    ///
    /// # Errors
    /// Database errors.
    pub async fn message_status(
        &self,
        recipient: &PartyCode,
        seq: u64,
    ) -> Result<Option<(String, u64)>, StoreError> {
        let row = sqlx::query(
            "SELECT ack_status, ack_index FROM outbox WHERE recipient = $1 AND seq = $2 AND delivered_at IS NOT NULL",
        )
        .bind(recipient.as_str())
        .bind(to_i64(seq)?)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| -> Result<(String, u64), StoreError> {
            let status: Option<String> = r.try_get(0)?;
            let index: Option<i64> = r.try_get(1)?;
            Ok((status.unwrap_or_default(), to_u64(index.unwrap_or(0))?))
        })
        .transpose()
    }
}
