//! Entente's federation protocol, as it is on the wire between two nodes.
//!
//! - [`envelope`]: the signed envelope that carries one message from one node to another, and
//!   the signed acknowledgement that comes back;
//! - [`MessageKind`]: every kind of message the protocol has, by its name on the wire;
//! - [`messages`]: the payload of each kind;
//! - [`Message`]: a payload decoded by its kind (strictly: unknown kinds and unknown fields
//!   are refused).
//!
//! The transport (mutual TLS with pinned certificates, the outbox and its retries) lives in
//! `entente-node`; what a node does with a message (decide, apply, record) is the receiving
//! gate's, in `entente-store`. This crate is pure: no I/O, no clock; time arrives as `now`.
#![warn(missing_docs)]

pub mod envelope;
pub mod messages;

pub use envelope::{Ack, AckItem, AckStatus, Batch, Envelope, EnvelopeError, MAX_BATCH};
pub use messages::{
    CaseMember, CaseUpdateMessage, ConsentMessage, DatumMessage, EventRecord, IncidentNotice,
    IncidentNotificationMessage, NoticeObligation, PackageOffer, PsiEvaluationMessage,
    PsiKeyMessage, PsiQueryMessage, RequestEventMessage, RequestMessage,
};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The kinds of message of the protocol, by their names on the wire (an envelope's `kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MessageKind {
    /// `datum`: a datum delivered with its travelling conditions.
    #[serde(rename = "datum")]
    Datum,
    /// `consent`: the originator's consent to an onward transfer.
    #[serde(rename = "consent")]
    Consent,
    /// `request`: a request submitted to the requested party.
    #[serde(rename = "request")]
    Request,
    /// `request-event`: an event the other side recorded on a shared request.
    #[serde(rename = "request-event")]
    RequestEvent,
    /// `evidence.package`: the offer of an evidence package to fetch.
    #[serde(rename = "evidence.package")]
    PackageOffer,
    /// `incident.notification`: the notification of an incident.
    #[serde(rename = "incident.notification")]
    IncidentNotification,
    /// `case.update`: the lead's update of a case the recipient is a member of.
    #[serde(rename = "case.update")]
    CaseUpdate,
    /// `psi.key`: a holder's deconfliction key epoch and a chunk of its prepared set.
    #[serde(rename = "psi.key")]
    PsiKey,
    /// `psi.query`: an asker's blinded, padded deconfliction query.
    #[serde(rename = "psi.query")]
    PsiQuery,
    /// `psi.evaluation`: the holder's evaluation of a query, or its refusal.
    #[serde(rename = "psi.evaluation")]
    PsiEvaluation,
}

impl MessageKind {
    /// Every kind, in the order the protocol documents them.
    pub const ALL: [MessageKind; 10] = [
        MessageKind::Datum,
        MessageKind::Consent,
        MessageKind::Request,
        MessageKind::RequestEvent,
        MessageKind::IncidentNotification,
        MessageKind::CaseUpdate,
        MessageKind::PackageOffer,
        MessageKind::PsiKey,
        MessageKind::PsiQuery,
        MessageKind::PsiEvaluation,
    ];

    /// Its name on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageKind::Datum => "datum",
            MessageKind::Consent => "consent",
            MessageKind::Request => "request",
            MessageKind::RequestEvent => "request-event",
            MessageKind::PackageOffer => "evidence.package",
            MessageKind::IncidentNotification => "incident.notification",
            MessageKind::CaseUpdate => "case.update",
            MessageKind::PsiKey => "psi.key",
            MessageKind::PsiQuery => "psi.query",
            MessageKind::PsiEvaluation => "psi.evaluation",
        }
    }
}

impl std::fmt::Display for MessageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message kind this node does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "message kind `{0}` is not one this node accepts (datum, consent, request, request-event, incident.notification, case.update, evidence.package, psi.key, psi.query, psi.evaluation)"
)]
pub struct UnknownKind(pub String);

impl std::str::FromStr for MessageKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MessageKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// A payload decoded by its kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// `datum`.
    Datum(DatumMessage),
    /// `consent`.
    Consent(ConsentMessage),
    /// `request`.
    Request(RequestMessage),
    /// `request-event`.
    RequestEvent(RequestEventMessage),
    /// `evidence.package`.
    PackageOffer(PackageOffer),
    /// `incident.notification`.
    IncidentNotification(IncidentNotificationMessage),
    /// `case.update`.
    CaseUpdate(CaseUpdateMessage),
    /// `psi.key`.
    PsiKey(PsiKeyMessage),
    /// `psi.query`.
    PsiQuery(PsiQueryMessage),
    /// `psi.evaluation`.
    PsiEvaluation(PsiEvaluationMessage),
}

/// Why a payload could not be read as the message its kind names.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The kind is not one of the protocol's.
    #[error(transparent)]
    UnknownKind(#[from] UnknownKind),
    /// The payload does not have the shape of its kind.
    #[error("{kind} payload: {source}")]
    Payload {
        /// The kind it was read as.
        kind: MessageKind,
        /// What serde found wrong.
        source: serde_json::Error,
    },
}

impl Message {
    /// Reads `payload` as the message of kind `kind` (the envelope's `kind`).
    ///
    /// # Errors
    /// An unknown kind, or a payload that is not that kind's (a missing or unknown field, a
    /// value of the wrong type).
    pub fn decode(kind: &str, payload: &Value) -> Result<Message, DecodeError> {
        let kind: MessageKind = kind.parse()?;
        let bad = |source| DecodeError::Payload { kind, source };
        let p = payload.clone();
        Ok(match kind {
            MessageKind::Datum => Message::Datum(serde_json::from_value(p).map_err(bad)?),
            MessageKind::Consent => Message::Consent(serde_json::from_value(p).map_err(bad)?),
            MessageKind::Request => Message::Request(serde_json::from_value(p).map_err(bad)?),
            MessageKind::RequestEvent => {
                Message::RequestEvent(serde_json::from_value(p).map_err(bad)?)
            }
            MessageKind::PackageOffer => {
                Message::PackageOffer(serde_json::from_value(p).map_err(bad)?)
            }
            MessageKind::IncidentNotification => {
                Message::IncidentNotification(serde_json::from_value(p).map_err(bad)?)
            }
            MessageKind::CaseUpdate => Message::CaseUpdate(serde_json::from_value(p).map_err(bad)?),
            MessageKind::PsiKey => Message::PsiKey(serde_json::from_value(p).map_err(bad)?),
            MessageKind::PsiQuery => Message::PsiQuery(serde_json::from_value(p).map_err(bad)?),
            MessageKind::PsiEvaluation => {
                Message::PsiEvaluation(serde_json::from_value(p).map_err(bad)?)
            }
        })
    }

    /// Its kind.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Datum(_) => MessageKind::Datum,
            Message::Consent(_) => MessageKind::Consent,
            Message::Request(_) => MessageKind::Request,
            Message::RequestEvent(_) => MessageKind::RequestEvent,
            Message::PackageOffer(_) => MessageKind::PackageOffer,
            Message::IncidentNotification(_) => MessageKind::IncidentNotification,
            Message::CaseUpdate(_) => MessageKind::CaseUpdate,
            Message::PsiKey(_) => MessageKind::PsiKey,
            Message::PsiQuery(_) => MessageKind::PsiQuery,
            Message::PsiEvaluation(_) => MessageKind::PsiEvaluation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_name() {
        for k in MessageKind::ALL {
            assert_eq!(k.as_str().parse::<MessageKind>().unwrap(), k);
            assert_eq!(serde_json::to_value(k).unwrap(), Value::String(k.as_str().into()));
        }
        let e = "datum.v2".parse::<MessageKind>().unwrap_err();
        assert!(e.to_string().contains("`datum.v2` is not one this node accepts"), "{e}");
    }

    #[test]
    fn a_payload_is_read_strictly_as_its_kind() {
        let consent = serde_json::json!({"datum_id": "D-1", "recipient": "DE"});
        let m = Message::decode("consent", &consent).unwrap();
        assert_eq!(m.kind(), MessageKind::Consent);
        let mut extra = consent.clone();
        extra["note"] = "x".into();
        let e = Message::decode("consent", &extra).unwrap_err();
        assert!(e.to_string().starts_with("consent payload: unknown field `note`"), "{e}");
        let e = Message::decode("datum", &consent).unwrap_err();
        assert!(e.to_string().starts_with("datum payload: unknown field `datum_id`"), "{e}");
        assert!(matches!(Message::decode("nope", &consent), Err(DecodeError::UnknownKind(_))));
    }

    /// A deterministic generator for the test's blinds (not for use outside tests).
    struct Counter(u64);

    impl entente_psi::rand_core::RngCore for Counter {
        fn next_u32(&mut self) -> u32 {
            self.next_u64() as u32
        }
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            self.0
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for b in dest {
                *b = (self.next_u64() >> 56) as u8;
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), entente_psi::rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    impl entente_psi::rand_core::CryptoRng for Counter {}

    #[test]
    fn psi_payloads_are_strict() {
        use entente_psi::{EmailRules, HolderKey, LabelledQuery, Limits, selector};
        let key = HolderKey::from_seed(&[9u8; 32]).unwrap();
        let mine = [selector::parse_line("203.0.113.7", EmailRules::default()).unwrap()];
        let (_, query) =
            LabelledQuery::new(key.public_key(), &mine, 4, &Limits::default(), &mut Counter(1))
                .unwrap();
        let m = PsiQueryMessage {
            id: "NL-7".into(),
            agreement: "mou-deconfliction-pilot".into(),
            case_ref: "LANTERN".into(),
            query,
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(Message::decode("psi.query", &v).unwrap(), Message::PsiQuery(m));
        let mut extra = v.clone();
        extra["selectors"] = "203.0.113.7".into();
        let e = Message::decode("psi.query", &extra).unwrap_err();
        assert!(e.to_string().contains("unknown field `selectors`"), "{e}");
        let mut bad = v.clone();
        bad["query"]["elements"][0] = "AAAA".into();
        assert!(Message::decode("psi.query", &bad).is_err());
        let mut inner = v;
        inner["query"]["note"] = 1.into();
        assert!(Message::decode("psi.query", &inner).is_err());

        let neither = PsiEvaluationMessage {
            query: "NL-7".into(),
            agreement: "a".into(),
            evaluation: None,
            refused: None,
        };
        assert!(neither.validate().is_err());
        let refused = PsiEvaluationMessage { refused: Some("limit".into()), ..neither };
        assert!(refused.validate().is_ok());
        let v = serde_json::to_value(&refused).unwrap();
        assert!(v.get("evaluation").is_none());
        assert_eq!(
            Message::decode("psi.evaluation", &v).unwrap().kind(),
            MessageKind::PsiEvaluation
        );
    }
}
