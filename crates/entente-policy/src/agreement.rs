//! The agreement model. The file format is documented in `docs/agreements.md`.

use entente_core::PartyCode;
use entente_core::lexicon::VerificationStatus;
use serde::Serialize;
use std::collections::BTreeMap;

/// What kind of instrument an agreement is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgreementKind {
    /// A multilateral treaty (e.g. ETS 185).
    Treaty,
    /// A protocol to a treaty (e.g. CETS 224).
    Protocol,
    /// A regulation binding its parties directly (e.g. Regulation (EU) 2023/1543).
    Regulation,
    /// A bilateral mutual legal assistance treaty.
    BilateralMla,
    /// A memorandum of understanding.
    Mou,
    /// A joint investigation team agreement.
    Jit,
}

/// Categories of data an agreement lets flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataCategory {
    /// Subscriber information (identity of an account holder).
    Subscriber,
    /// Traffic data (who communicated with whom, when, from where).
    Traffic,
    /// Content data.
    Content,
    /// Threat intelligence (indicators, STIX objects).
    ThreatIntel,
    /// Personal data of third parties (people who are not suspects).
    PersonalDataOfThirdParties,
    /// Case information exchanged between authorities (status, timeline).
    CaseInformation,
}

/// Purposes data may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// Investigation of a criminal offence.
    CriminalInvestigation,
    /// Prosecution of a criminal offence.
    Prosecution,
    /// Response to a security incident.
    IncidentResponse,
    /// Sharing of threat intelligence for defence.
    ThreatIntelligence,
    /// Work of a joint investigation team.
    JointInvestigation,
}

/// Kinds of cross-border request an agreement provides for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestKind {
    /// Expedited preservation of stored data.
    Preservation,
    /// Production of stored data.
    Production,
    /// Subscriber information.
    SubscriberData,
    /// Traffic data.
    TrafficData,
    /// Disclosure in an emergency.
    EmergencyDisclosure,
    /// Mutual legal assistance.
    Mla,
    /// Invitation to a joint investigation team.
    JitInvitation,
}

/// What the receiver may do with data it received under the agreement, towards a third party.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnwardTransfer {
    /// Never.
    Forbidden,
    /// Only with the prior consent of the party that originated the data.
    ConsentOfOriginator,
    /// No restriction from this agreement.
    Free,
}

/// Transforms applied to a field before data leaves a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transform {
    /// Remove the field.
    Drop,
    /// Replace the value with a fixed marker.
    Redact,
    /// Replace the value with a keyed hash (per agreement; the key never leaves the node).
    Pseudonymize,
    /// Truncate an IP address (/24 for IPv4, /48 for IPv6).
    TruncateIp,
    /// Coarsen a timestamp (to the hour).
    CoarsenTime,
}

/// A citation of a legal text, with its verification status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Citation {
    /// The citation as written (e.g. `ETS 185 Art 29`).
    pub citation: String,
    /// How far the cited fact was verified.
    pub status: VerificationStatus,
    /// Source keys (see `data/lexicon/sources.toml` and the agreement's own sources).
    pub sources: Vec<String>,
}

/// A duration written in ISO 8601 (`P10D`, `PT8H`, `P2Y`), kept with its text.
#[derive(Clone, Debug, Serialize)]
pub struct IsoDuration {
    /// The text as written in the file.
    pub text: String,
    /// The parsed span.
    #[serde(skip)]
    pub span: jiff::Span,
}

impl PartialEq for IsoDuration {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// A minimization rule: apply `transform` to `field` of data of `category`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MinimizationRule {
    /// The category the rule applies to.
    pub category: DataCategory,
    /// The field (a top-level key of the datum).
    pub field: String,
    /// The transform.
    pub transform: Transform,
}

/// A kind of request the agreement provides for, with its deadlines.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RequestRule {
    /// The request kind.
    pub kind: RequestKind,
    /// Categories that may be asked for with this kind.
    pub categories: Vec<DataCategory>,
    /// Deadline to answer, if the text sets one.
    pub deadline: Option<IsoDuration>,
    /// Deadline in an emergency, if the text sets one.
    pub emergency_deadline: Option<IsoDuration>,
    /// Where the rule and its deadlines come from.
    pub basis: Citation,
}

/// A ground on which a requested party may refuse.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RefusalGround {
    /// Identifier, unique within the agreement (e.g. `immunity`).
    pub id: String,
    /// The ground in words.
    pub text: String,
    /// Where it comes from.
    pub basis: Citation,
}

/// A condition that travels with every datum sent under the agreement and binds the receiver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TravellingCondition {
    /// Identifier, unique within the agreement (e.g. `purpose-limitation`).
    pub id: String,
    /// The condition in words.
    pub text: String,
    /// Where it comes from.
    pub basis: Citation,
}

/// Which offences an agreement covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConceptScope {
    /// Any criminal offence.
    AnyOffence,
    /// Only conduct implementing these lexicon concepts.
    Concepts(Vec<String>),
}

/// One agreement, validated.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Agreement {
    /// Identifier, unique across loaded agreements (e.g. `eu-2023-1543`).
    pub id: String,
    /// Title.
    pub title: String,
    /// Kind of instrument.
    pub kind: AgreementKind,
    /// The legal texts that ground it.
    pub legal_basis: Vec<Citation>,
    /// The parties bound (at least two, each once).
    pub parties: Vec<PartyCode>,
    /// First day in force (inclusive), in UTC.
    pub in_force_from: jiff::civil::Date,
    /// Last day in force (inclusive), if it ends.
    pub in_force_until: Option<jiff::civil::Date>,
    /// Offences covered.
    pub offences: ConceptScope,
    /// Data categories that may flow.
    pub categories: Vec<DataCategory>,
    /// Purposes data may be used for.
    pub purposes: Vec<Purpose>,
    /// Retention limit per category (a category without one: no limit from this agreement).
    pub retention: BTreeMap<DataCategory, IsoDuration>,
    /// Onward-transfer rule.
    pub onward_transfer: OnwardTransfer,
    /// Whether commercial use of the data is prohibited.
    pub commercial_use_prohibited: bool,
    /// Minimization before data leaves.
    pub minimization: Vec<MinimizationRule>,
    /// Request kinds and their deadlines.
    pub requests: Vec<RequestRule>,
    /// Grounds for refusal.
    pub refusal_grounds: Vec<RefusalGround>,
    /// Conditions that travel with data.
    pub travelling_conditions: Vec<TravellingCondition>,
    /// Dual-criminality threshold (maximum custodial penalty, months) where the agreement
    /// requires dual criminality; `None` when it does not.
    pub dual_criminality_months: Option<u32>,
}

impl Agreement {
    /// Whether the agreement is in force on `date`.
    pub fn in_force_on(&self, date: jiff::civil::Date) -> bool {
        date >= self.in_force_from && self.in_force_until.is_none_or(|u| date <= u)
    }

    /// Whether both parties are bound by it.
    pub fn binds(&self, a: &PartyCode, b: &PartyCode) -> bool {
        a != b && self.parties.contains(a) && self.parties.contains(b)
    }

    /// Whether it covers conduct implementing `concept`.
    pub fn covers_concept(&self, concept: &str) -> bool {
        match &self.offences {
            ConceptScope::AnyOffence => true,
            ConceptScope::Concepts(c) => c.iter().any(|x| x == concept),
        }
    }
}
