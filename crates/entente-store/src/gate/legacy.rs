//! The commands not yet moved to a capability's own type: one enum, decided and applied
//! through the capability modules that match on it. Each capability that moves out takes its
//! variants with it (see `crate::cases::OpenCase` for the shape).

use super::{DecideCx, EffectCx, GateCommand, GateError, PayloadDigests, Ruling};
use crate::evidence;
use crate::flows::{self, ConsentMessage, DatumMessage, OutboxMessage};
use crate::store::CaseRecord;
use entente_core::{Action, Decision, PartyCode, Subject, ids};
use entente_policy::agreement::{DataCategory, Purpose, RequestKind};
use entente_policy::engine::Conditions;
use std::collections::BTreeMap;

/// An action asked of the gate, with its data. Constructing one checks nothing; the gate
/// validates it before deciding.
#[derive(Clone, Debug)]
pub enum Command {
    /// Record a datum this party holds for a case.
    AddDatum {
        /// Datum id.
        id: String,
        /// The case it serves.
        case_id: String,
        /// Its category.
        category: DataCategory,
        /// Its content (a JSON object).
        content: serde_json::Map<String, serde_json::Value>,
    },
    /// Send a datum to another party under the agreements in force.
    ShareDatum {
        /// Datum id.
        id: String,
        /// The receiving party.
        to: PartyCode,
        /// The purpose the receiver will use it for.
        purpose: Purpose,
        /// The request answered, if any.
        request_kind: Option<RequestKind>,
    },
    /// Accept a datum delivered by a partner, with its travelling conditions.
    ReceiveDatum {
        /// The message as delivered.
        message: DatumMessage,
    },
    /// As originator, consent to `holder` passing a datum on to `recipient`.
    GiveConsent {
        /// Datum id.
        datum_id: String,
        /// The party holding the datum.
        holder: PartyCode,
        /// The party it may be passed to.
        recipient: PartyCode,
    },
    /// Record a consent delivered by the originator of a datum.
    ReceiveConsent {
        /// The message as delivered.
        message: ConsentMessage,
    },
    /// Destroy a datum whose retention limit has passed.
    DestroyDatum {
        /// Datum id.
        id: String,
    },
    /// Take in an evidence item whose content was ingested into the blob store (custody
    /// event `acquired`). Content already held is de-duplicated.
    AddEvidence {
        /// The item.
        item: Box<crate::evidence::NewEvidence>,
    },
    /// Record a custody event on an evidence item: sealed, accessed, copied, verified,
    /// analysed or returned (the others are recorded by their own commands).
    EvidenceCustody {
        /// Item id.
        id: String,
        /// The event.
        event: entente_evidence::CustodyKind,
        /// Why.
        reason: String,
        /// The legal basis (a request or agreement id).
        legal_basis: Option<String>,
    },
    /// Release an evidence item into a package for another party under a request (custody
    /// event `exported`), decided by the agreements in force; the answer carries the
    /// conditions that travel with it.
    ExportEvidence {
        /// Item id.
        id: String,
        /// The receiving party.
        to: PartyCode,
        /// The request answered.
        request: String,
        /// Its kind, when the request is not held by this node.
        request_kind: Option<RequestKind>,
        /// The purpose the receiver will use it for.
        purpose: Purpose,
        /// A retention limit the sender imposes (RFC 3339); the earlier of it and the
        /// agreement's limit travels.
        retain_until: Option<String>,
    },
    /// Take in an evidence item from a verified package (custody event `received`), binding
    /// its travelling conditions.
    ReceiveEvidence {
        /// The item.
        item: Box<crate::evidence::ReceivedEvidence>,
    },
    /// Read an evidence item with its custody chain.
    ReadEvidence {
        /// Item id.
        id: String,
    },
    /// Destroy an evidence item whose retention limit has passed: its data key is destroyed
    /// (crypto-shredding), the custody event `destroyed` recorded.
    DestroyEvidence {
        /// Item id.
        id: String,
    },
}

impl Command {
    fn action(&self) -> Action {
        match self {
            Command::AddDatum { .. } => Action::DatumAdd,
            Command::ShareDatum { .. } => Action::DatumShare,
            Command::ReceiveDatum { .. } => Action::DatumReceive,
            Command::GiveConsent { .. } => Action::ConsentGive,
            Command::ReceiveConsent { .. } => Action::ConsentReceive,
            Command::DestroyDatum { .. } => Action::DatumDestroy,
            Command::AddEvidence { .. } => Action::EvidenceAdd,
            Command::EvidenceCustody { .. } => Action::EvidenceCustody,
            Command::ExportEvidence { .. } => Action::EvidenceExport,
            Command::ReceiveEvidence { .. } => Action::EvidenceReceive,
            Command::ReadEvidence { .. } => Action::EvidenceRead,
            Command::DestroyEvidence { .. } => Action::EvidenceDestroy,
        }
    }

    fn subjects(&self) -> Vec<Subject> {
        match self {
            Command::AddDatum { id, case_id, .. } => {
                vec![Subject::new("datum", id), Subject::new("case", case_id)]
            }
            Command::ShareDatum { id, to, .. } => {
                vec![Subject::new("datum", id), Subject::new("party", to.as_str())]
            }
            Command::ReceiveDatum { message } => {
                vec![Subject::new("datum", &message.id), Subject::new("case", &message.case_id)]
            }
            Command::GiveConsent { datum_id, recipient, .. } => {
                vec![Subject::new("datum", datum_id), Subject::new("party", recipient.as_str())]
            }
            Command::ReceiveConsent { message } => vec![
                Subject::new("datum", &message.datum_id),
                Subject::new("party", message.recipient.as_str()),
            ],
            Command::DestroyDatum { id } => vec![Subject::new("datum", id)],
            Command::AddEvidence { item } => {
                vec![Subject::new("evidence", &item.id), Subject::new("case", &item.case_id)]
            }
            Command::ReceiveEvidence { item } => vec![
                Subject::new("evidence", &item.id),
                Subject::new("case", &item.case_id),
                Subject::new("party", item.from.as_str()),
            ],
            Command::ExportEvidence { id, to, .. } => {
                vec![Subject::new("evidence", id), Subject::new("party", to.as_str())]
            }
            Command::EvidenceCustody { id, .. }
            | Command::ReadEvidence { id }
            | Command::DestroyEvidence { id } => vec![Subject::new("evidence", id)],
        }
    }

    fn is_evidence(&self) -> bool {
        matches!(
            self,
            Command::AddEvidence { .. }
                | Command::EvidenceCustody { .. }
                | Command::ExportEvidence { .. }
                | Command::ReceiveEvidence { .. }
                | Command::ReadEvidence { .. }
                | Command::DestroyEvidence { .. }
        )
    }

    fn is_flow(&self) -> bool {
        matches!(
            self,
            Command::AddDatum { .. }
                | Command::ShareDatum { .. }
                | Command::ReceiveDatum { .. }
                | Command::GiveConsent { .. }
                | Command::ReceiveConsent { .. }
                | Command::DestroyDatum { .. }
        )
    }

    /// Checks the command's own data (before any decision).
    pub(crate) fn validate(&self) -> Result<(), GateError> {
        match self {
            Command::AddDatum { id, case_id, .. } => {
                ids::check_identifier("datum id", id).map_err(GateError::Invalid)?;
                ids::check_identifier("case id", case_id).map_err(GateError::Invalid)
            }
            Command::ShareDatum { id, .. }
            | Command::GiveConsent { datum_id: id, .. }
            | Command::DestroyDatum { id } => {
                ids::check_identifier("datum id", id).map_err(GateError::Invalid)
            }
            Command::ReceiveDatum { message } => {
                ids::check_identifier("datum id", &message.id).map_err(GateError::Invalid)?;
                ids::check_identifier("case id", &message.case_id).map_err(GateError::Invalid)?;
                if message.conditions.agreement.is_empty() {
                    return Err(GateError::Invalid(
                        "conditions.agreement: a datum must travel with the agreement it is sent under".into(),
                    ));
                }
                for c in &message.concepts {
                    ids::check_identifier("offense concept", c).map_err(GateError::Invalid)?;
                }
                Ok(())
            }
            Command::ReceiveConsent { message } => {
                ids::check_identifier("datum id", &message.datum_id).map_err(GateError::Invalid)
            }
            // What remains are the evidence commands.
            _ => evidence::validate(self),
        }
    }
}

/// What a permitted command produced.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// The effect was applied; nothing to return.
    Done,
    /// The case read.
    Case(CaseRecord),
    /// Ledger entries read, `(index, canonical bytes)`.
    Entries(Vec<(u64, Vec<u8>)>),
    /// A message for a partner, written to the outbox with the effect.
    Message(OutboxMessage),
    /// A request as it stands after the command (state, history, clocks).
    Request(Box<entente_policy::request::Request>),
    /// Open requests with their clocks.
    Requests(Vec<entente_policy::request::Request>),
    /// An evidence item with its custody chain (after the command).
    Evidence(Box<crate::evidence::EvidenceRecord>),
}

/// What a legacy command reads before its decision: a flow's facts, or the decision that
/// evidence and case updates take over the store.
#[derive(Debug)]
pub struct LegacyFacts {
    flow: Option<flows::Facts>,
    decided: Option<(Decision, Option<Conditions>)>,
}

impl GateCommand for Command {
    type Output = Output;
    type Facts = LegacyFacts;

    fn action(&self) -> Action {
        Command::action(self)
    }

    fn subjects(&self) -> Vec<Subject> {
        Command::subjects(self)
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        // The legacy commands left (intel, evidence, data flows) record the digests their
        // effects compute, some none for a read.
        Ok(PayloadDigests::Of(BTreeMap::new()))
    }

    fn validate(&self) -> Result<(), GateError> {
        Command::validate(self)
    }

    async fn load(&self, cx: &mut EffectCx<'_>) -> Result<LegacyFacts, GateError> {
        let mut facts = LegacyFacts { flow: None, decided: None };
        if self.is_flow() {
            facts.flow = flows::load_facts(cx.tx, self).await?;
        } else if self.is_evidence() {
            facts.decided = Some(
                evidence::decide(cx.tx, cx.engine, cx.party, self, cx.role.clone(), cx.now).await?,
            );
        }
        Ok(facts)
    }

    fn decide(&self, cx: &DecideCx<'_>, facts: &LegacyFacts) -> Ruling {
        let (decision, conditions) = match (&facts.flow, &facts.decided) {
            (Some(f), _) => {
                flows::decide(cx.engine, cx.party, cx.actor, self, f, cx.role.clone(), cx.now)
            }
            (None, Some(d)) => d.clone(),
            (None, None) => (cx.role.clone(), None),
        };
        Ruling { decision, conditions }
    }

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        facts: LegacyFacts,
        ruling: &Ruling,
    ) -> Result<Output, GateError> {
        let c = &self;
        let (now, index) = (cx.now, cx.index);
        let conditions = ruling.conditions.as_ref();
        let (output, digests) = if c.is_evidence() {
            evidence::apply(cx.tx, cx.party, cx.actor, c, conditions, now, index).await?
        } else {
            flows::apply(
                cx.tx,
                cx.engine,
                cx.party,
                cx.secret,
                cx.actor,
                c,
                facts.flow.as_ref(),
                &ruling.decision,
                conditions,
                now,
                index,
            )
            .await?
        };
        cx.record_digests(digests);
        Ok(output)
    }
}
