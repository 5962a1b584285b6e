//! The agreement model. The file format is documented in `docs/agreements.md`.

pub use entente_core::domain::{DataCategory, OnwardTransfer, Purpose, RequestKind};

use entente_core::PartyCode;
use entente_core::lexicon::{Lexicon, LookupError, VerificationStatus, edit_distance};
use entente_core::source_error::{
    FieldNames, SourceChecker, SourceError, SourceText, did_you_mean, write_problems,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use toml::Spanned;

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
    /// A directive, binding its Member States through their national law (e.g. NIS2,
    /// Directive (EU) 2022/2555).
    Directive,
    /// A bilateral mutual legal assistance treaty.
    BilateralMla,
    /// A memorandum of understanding.
    Mou,
    /// A joint investigation team agreement.
    Jit,
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
    /// How long the requested measure lasts unless followed up (e.g. a preservation that ends
    /// after 60 days unless a production request is confirmed), if the text sets it.
    pub period: Option<IsoDuration>,
    /// By how much `period` may be extended, if the text allows an extension.
    pub extension: Option<IsoDuration>,
    /// Whether the requested party may make this kind of request conditional on dual
    /// criminality, and by which test, as the instrument says (`dual_criminality = {...}`).
    /// `None`: the general rule for the kind applies (see `incoming::dc_requirement`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dual_criminality: Option<DcRule>,
    /// Conditions the issuing authority must meet before issuing this kind of order, per
    /// category of data (`issuing_conditions = {...}`; Regulation (EU) 2023/1543 Art 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuing_conditions: Option<IssuingConditions>,
    /// Where the rule and its deadlines come from.
    pub basis: Citation,
}

/// The conditions on issuing an order, by category of data: some categories may be ordered
/// for any criminal offence; the others only for offences with a maximum penalty of at least
/// `min_penalty_months` in the issuing State, or for the listed offences (lexicon concepts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IssuingConditions {
    /// Categories that may be ordered for any criminal offence.
    pub any_offence: Vec<DataCategory>,
    /// The minimum maximum penalty (months) for the other categories.
    pub min_penalty_months: u32,
    /// Offences (lexicon concepts) for which the other categories may be ordered whatever
    /// their penalty.
    pub listed: Vec<String>,
    /// Where the listed offences come from, in words (e.g. the Directives they implement).
    pub listed_basis: String,
    /// Where the conditions come from, with their status.
    pub basis: Citation,
}

/// What an instrument says about dual criminality for one kind of request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DcRule {
    /// Which comparison is due.
    pub test: DcRuleTest,
    /// Whether the requested party may refuse when the test fails (false: the comparison is
    /// shown for information, or none is due).
    pub required: bool,
    /// The categories of data for which the rule holds (empty: all): e.g. only a production
    /// order for traffic or content data is notified to the enforcing State (Regulation (EU)
    /// 2023/1543 Art 8). A request for none of them needs no comparison.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<DataCategory>,
    /// Where it comes from, with its status.
    pub basis: Citation,
}

/// The comparison a [`DcRule`] asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "test")]
pub enum DcRuleTest {
    /// No comparison is due.
    None,
    /// The underlying conduct is compared, whatever the offence's name or penalty.
    Conduct,
    /// The conduct, and a maximum custodial penalty of at least (or more than) `months` in
    /// both parties.
    Penalty {
        /// The threshold in months.
        months: u32,
        /// "More than" rather than "at least".
        more_than: bool,
    },
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
    /// The kinds of request it may be raised against (`kinds = [...]` in the file; every kind
    /// the agreement provides when the file names none). A ground of one procedure is not a
    /// ground of another: ETS 185 Art 29(5) limits the refusal of preservation, Regulation
    /// 2023/1543 Art 12 lists the grounds of a notified production order only.
    pub kinds: Vec<RequestKind>,
}

impl RefusalGround {
    /// Whether the ground may be raised against a request of `kind`.
    pub fn applies_to(&self, kind: RequestKind) -> bool {
        self.kinds.contains(&kind)
    }
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
    /// A template (`template = true`): text for the parties to conclude
    /// (`entente framework conclude`), never in force itself.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub template: bool,
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
    /// Deconfliction by private set intersection, when the agreement provides for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deconfliction: Option<Deconfliction>,
    /// Data-residency clauses: data of these categories stays within these parties.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub residency: Vec<Residency>,
    /// Where the instrument is in force for each party on its own (`[[ratification]]`: a
    /// treaty or protocol binds only the parties that ratified it, from their own dates).
    /// Empty: `in_force_from` applies to every party (an EU regulation, a memorandum in
    /// force from its signature).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ratifications: Vec<Ratification>,
    /// Reservations a party made to the offence articles (`[[reservation]]`): the conduct of
    /// that article may not be (wholly) an offence in that party, so dual criminality on it
    /// is not taken as satisfied there.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reservations: Vec<Reservation>,
}

/// A party's reservation to an ETS 185 offence article (`[[reservation]]`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reservation {
    /// The reserving party.
    pub party: PartyCode,
    /// The article (ETS 185 Arts 2-11).
    pub article: u8,
    /// The lexicon concept of that article.
    pub concept: String,
    /// What the reservation does, in words.
    pub text: String,
    /// Where it comes from, with its status.
    pub basis: Citation,
}

/// One party's standing under an instrument (`[[ratification]]`): what it did and when,
/// with the citation that says so and its verification status. The instrument is in force
/// for the party from `in_force` (and never without one).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ratification {
    /// The party.
    pub party: PartyCode,
    /// Signature, when the date is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed: Option<jiff::civil::Date>,
    /// Ratification, acceptance or approval, when it happened and its date is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratified: Option<jiff::civil::Date>,
    /// First day in force for the party; `None`: not in force for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_force: Option<jiff::civil::Date>,
    /// Where the facts come from, with their status.
    pub basis: Citation,
}

/// A data-residency clause (`[[residency]]`): data of `categories` exchanged under the
/// agreement stays within the jurisdictions `within`; a flow to a party outside them is
/// denied with the clause cited.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Residency {
    /// The categories the clause covers (among the agreement's).
    pub categories: Vec<DataCategory>,
    /// The parties within which the data stays.
    pub within: Vec<PartyCode>,
    /// The clause that says so.
    pub basis: Citation,
}

/// How an agreement lets its parties deconflict (`[deconfliction]`): who may ask whom, about
/// which kinds of selector, how much and how often, and what the asker learns.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Deconfliction {
    /// The parties that may ask each other (at least two, all parties of the agreement).
    pub parties: Vec<PartyCode>,
    /// The kinds of selector a query may hold and a holder may match on.
    #[serde(serialize_with = "kind_names")]
    pub selectors: Vec<entente_psi::SelectorKind>,
    /// What the asker learns: which selectors match with the holder's labels, or a count.
    pub mode: entente_psi::Mode,
    /// Selectors per query; every query is padded to exactly this many elements.
    pub max_selectors: u32,
    /// Queries per case, per partner asked, within `per`.
    pub max_queries: u32,
    /// The period of `max_queries`.
    pub per: IsoDuration,
    /// How long a holder's key epoch lasts before it is rotated.
    pub key_rotation: IsoDuration,
    /// How email addresses are normalised (both sides apply the same rules).
    pub email: entente_psi::EmailRules,
}

fn kind_names<S: serde::Serializer>(
    kinds: &[entente_psi::SelectorKind],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(kinds.iter().map(|k| k.name()))
}

/// Largest `max_selectors` of a `[deconfliction]` section (the padded query size).
pub const MAX_DECONFLICTION_SELECTORS: u32 = 1024;
/// Largest `max_queries` of a `[deconfliction]` section.
pub const MAX_DECONFLICTION_QUERIES: u32 = 10_000;

impl Agreement {
    /// Whether the agreement is in force on `date` (for some party: see
    /// [`Agreement::in_force_between`]). A template never is.
    pub fn in_force_on(&self, date: jiff::civil::Date) -> bool {
        !self.template
            && date >= self.in_force_from
            && self.in_force_until.is_none_or(|u| date <= u)
    }

    /// The reservations of `party` that touch any of `concepts`.
    pub fn reservations_of<'a>(
        &'a self,
        party: &'a PartyCode,
        concepts: &'a [String],
    ) -> impl Iterator<Item = &'a Reservation> + 'a {
        self.reservations.iter().filter(move |r| &r.party == party && concepts.contains(&r.concept))
    }

    /// `party`'s standing under the instrument, when the agreement states one.
    pub fn ratification(&self, party: &PartyCode) -> Option<&Ratification> {
        self.ratifications.iter().find(|r| &r.party == party)
    }

    /// The first day the instrument is in force for `party`: `in_force_from`, or the party's
    /// own date when the agreement states ratifications; `None` when it is not in force for
    /// the party at all (or the party is not bound).
    pub fn in_force_from_for(&self, party: &PartyCode) -> Option<jiff::civil::Date> {
        if self.template || !self.parties.contains(party) {
            return None;
        }
        if self.ratifications.is_empty() {
            return Some(self.in_force_from);
        }
        self.ratification(party).and_then(|r| r.in_force).map(|d| d.max(self.in_force_from))
    }

    /// Whether the instrument is in force for `party` on `date`.
    pub fn in_force_for(&self, party: &PartyCode, date: jiff::civil::Date) -> bool {
        self.in_force_from_for(party).is_some_and(|f| date >= f)
            && self.in_force_until.is_none_or(|u| date <= u)
    }

    /// Whether the instrument binds `a` and `b` and is in force for both on `date`: the only
    /// way it can ground a flow between them.
    pub fn in_force_between(&self, a: &PartyCode, b: &PartyCode, date: jiff::civil::Date) -> bool {
        self.binds(a, b) && self.in_force_for(a, date) && self.in_force_for(b, date)
    }

    /// The parties among `a` and `b` for which the instrument is not in force on `date`, with
    /// what the agreement says of each (for explanations).
    pub fn not_in_force_for(
        &self,
        parties: [&PartyCode; 2],
        date: jiff::civil::Date,
    ) -> Vec<String> {
        parties
            .into_iter()
            .filter(|p| !self.in_force_for(p, date))
            .map(|p| match (self.in_force_from_for(p), self.ratification(p)) {
                _ if self.template => {
                    format!("{p} (a template: in force only once concluded)")
                }
                (Some(f), _) if date < f => format!("{p} (in force for it from {f})"),
                (Some(_), _) => format!("{p} (no longer in force)"),
                (None, Some(r)) => format!(
                    "{p} ({}: {} [{}])",
                    match (r.signed, r.ratified) {
                        (_, Some(d)) => format!("ratified {d}, no entry into force stated"),
                        (Some(d), None) => format!("signed {d}, not ratified"),
                        (None, None) => "not ratified".to_owned(),
                    },
                    r.basis.citation,
                    r.basis.status
                ),
                (None, None) => format!("{p} (no ratification stated)"),
            })
            .collect()
    }

    /// The citations with status U that a flow between `a` and `b` under this agreement rests
    /// on: the agreement's legal basis and each party's standing under it. A decision that
    /// rests on any is flagged as having an unverified legal basis.
    pub fn unverified_basis(&self, a: &PartyCode, b: &PartyCode) -> Vec<String> {
        let mut out: Vec<String> = self
            .legal_basis
            .iter()
            .chain([a, b].into_iter().filter_map(|p| self.ratification(p).map(|r| &r.basis)))
            .filter(|c| c.status == VerificationStatus::U)
            .map(|c| c.citation.clone())
            .collect();
        out.dedup();
        out
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

// ---------------------------------------------------------------------------------------------
// Names used in agreement files

/// The vocabulary of a closed set of values written in agreement files.
trait Named: Copy + Sized + 'static {
    /// What the value is, for messages (e.g. `data category`).
    const WHAT: &'static str;
    fn all() -> &'static [Self];
    fn name(self) -> &'static str;
}

/// Names the values of a vocabulary type (its `ALL` and `as_str`) for agreement files.
macro_rules! named {
    ($t:ty, $what:literal) => {
        impl Named for $t {
            const WHAT: &'static str = $what;
            fn all() -> &'static [Self] {
                Self::ALL
            }
            fn name(self) -> &'static str {
                self.as_str()
            }
        }
    };
}

/// A vocabulary of agreement files defined here: its names (`entente_core::kebab_vocabulary`)
/// and what it is, for messages.
macro_rules! kebab_names {
    ($t:ty, $what:literal, { $($v:ident => $s:literal),+ $(,)? }) => {
        entente_core::kebab_vocabulary!($t, { $($v => $s),+ });
        named!($t, $what);
    };
}

kebab_names!(AgreementKind, "agreement kind", {
    Treaty => "treaty",
    Protocol => "protocol",
    Regulation => "regulation",
    Directive => "directive",
    BilateralMla => "bilateral-mla",
    Mou => "mou",
    Jit => "jit",
});

// The flow vocabulary is `entente_core::domain`; its names are read here like the others.
named!(DataCategory, "data category");
named!(Purpose, "purpose");
named!(RequestKind, "request kind");
named!(OnwardTransfer, "onward-transfer rule");

kebab_names!(Transform, "transform", {
    Drop => "drop",
    Redact => "redact",
    Pseudonymize => "pseudonymize",
    TruncateIp => "truncate-ip",
    CoarsenTime => "coarsen-time",
});

// ---------------------------------------------------------------------------------------------
// Errors

/// One problem in an agreement file, with its position.
///
/// The positioned problem shared by every TOML format: [`SourceError`].
pub type AgreementError = SourceError;

/// Every problem found in one or more agreement files (at least one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgreementErrors(pub Vec<AgreementError>);

impl fmt::Display for AgreementErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_problems(f, "agreement data", &self.0)
    }
}

impl std::error::Error for AgreementErrors {}

// ---------------------------------------------------------------------------------------------
// Raw TOML shapes

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgreement {
    id: Spanned<String>,
    title: Spanned<String>,
    kind: Spanned<String>,
    #[serde(default)]
    legal_basis: Vec<RawCitation>,
    parties: Spanned<Vec<Spanned<String>>>,
    in_force_from: Spanned<String>,
    #[serde(default)]
    template: Option<Spanned<bool>>,
    #[serde(default)]
    in_force_until: Option<Spanned<String>>,
    offences: Spanned<RawOffences>,
    categories: Spanned<Vec<Spanned<String>>>,
    purposes: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    retention: BTreeMap<Spanned<String>, Spanned<String>>,
    onward_transfer: Spanned<String>,
    commercial_use_prohibited: Spanned<bool>,
    #[serde(default)]
    dual_criminality_months: Option<Spanned<i64>>,
    #[serde(default)]
    minimization: Vec<RawMinimization>,
    #[serde(default)]
    request: Vec<RawRequest>,
    #[serde(default)]
    refusal_ground: Vec<RawRefusalGround>,
    #[serde(default)]
    condition: Vec<RawClause>,
    #[serde(default)]
    source: Vec<RawSource>,
    #[serde(default)]
    deconfliction: Option<RawDeconfliction>,
    #[serde(default)]
    residency: Vec<RawResidency>,
    #[serde(default)]
    ratification: Vec<RawRatification>,
    #[serde(default)]
    reservation: Vec<RawReservation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReservation {
    party: Spanned<String>,
    article: Spanned<i64>,
    text: Spanned<String>,
    basis: RawCitation,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRatification {
    party: Spanned<String>,
    #[serde(default)]
    signed: Option<Spanned<String>>,
    #[serde(default)]
    ratified: Option<Spanned<String>>,
    #[serde(default)]
    in_force: Option<Spanned<String>>,
    basis: RawCitation,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResidency {
    categories: Spanned<Vec<Spanned<String>>>,
    within: Spanned<Vec<Spanned<String>>>,
    basis: RawCitation,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeconfliction {
    parties: Spanned<Vec<Spanned<String>>>,
    purpose: Spanned<String>,
    selectors: Spanned<Vec<Spanned<String>>>,
    mode: Spanned<String>,
    max_selectors: Spanned<i64>,
    max_queries: Spanned<i64>,
    per: Spanned<String>,
    key_rotation: Spanned<String>,
    email_plus_addressing: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCitation {
    citation: Spanned<String>,
    status: Spanned<String>,
    #[serde(default)]
    sources: Vec<Spanned<String>>,
}

/// `offences = "any"` or `offences = ["illegal-access", …]`.
enum RawOffences {
    Word(String),
    List(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for RawOffences {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawOffences;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"any\" or a list of concept ids")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawOffences, E> {
                Ok(RawOffences::Word(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawOffences, A::Error> {
                let mut out = Vec::new();
                while let Some(x) = seq.next_element::<Spanned<String>>()? {
                    out.push(x);
                }
                Ok(RawOffences::List(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMinimization {
    category: Spanned<String>,
    fields: Vec<Spanned<String>>,
    transform: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    kind: Spanned<String>,
    categories: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    deadline: Option<Spanned<String>>,
    #[serde(default)]
    emergency_deadline: Option<Spanned<String>>,
    #[serde(default)]
    period: Option<Spanned<String>>,
    #[serde(default)]
    extension: Option<Spanned<String>>,
    #[serde(default)]
    dual_criminality: Option<Spanned<RawDcRule>>,
    #[serde(default)]
    issuing_conditions: Option<Spanned<RawIssuingConditions>>,
    basis: RawCitation,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIssuingConditions {
    #[serde(default)]
    any_offence: Vec<Spanned<String>>,
    min_penalty_months: Spanned<i64>,
    #[serde(default)]
    listed: Vec<Spanned<String>>,
    #[serde(default)]
    listed_basis: String,
    basis: RawCitation,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDcRule {
    test: Spanned<String>,
    #[serde(default)]
    required: Option<Spanned<bool>>,
    #[serde(default)]
    months: Option<Spanned<i64>>,
    #[serde(default)]
    more_than: Option<Spanned<bool>>,
    #[serde(default)]
    categories: Vec<Spanned<String>>,
    basis: RawCitation,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClause {
    id: Spanned<String>,
    text: String,
    basis: RawCitation,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRefusalGround {
    id: Spanned<String>,
    text: String,
    basis: RawCitation,
    #[serde(default)]
    kinds: Option<Spanned<Vec<Spanned<String>>>>,
}

/// The parts that every clause table (`[[refusal_ground]]`, `[[condition]]`) has.
trait Clause {
    fn parts(&self) -> (&Spanned<String>, &str, &RawCitation);
}

impl Clause for RawClause {
    fn parts(&self) -> (&Spanned<String>, &str, &RawCitation) {
        (&self.id, &self.text, &self.basis)
    }
}

impl Clause for RawRefusalGround {
    fn parts(&self) -> (&Spanned<String>, &str, &RawCitation) {
        (&self.id, &self.text, &self.basis)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    key: Spanned<String>,
    #[serde(rename = "text")]
    _text: String,
}

// ---------------------------------------------------------------------------------------------
// Validation

/// The id of a travelling condition that forbids onward transfer (with or without consent).
pub const NO_ONWARD_TRANSFER_CONDITION: &str = "no-onward-transfer";
/// The id of a travelling condition that prohibits commercial use.
pub const NO_COMMERCIAL_USE_CONDITION: &str = "no-commercial-use";
/// Largest `dual_criminality_months` accepted (100 years).
pub const MAX_DUAL_CRIMINALITY_MONTHS: u32 = 1200;

/// One file being validated: its name, its text and the problems found so far.
struct Checker<'a> {
    file: &'a str,
    text: &'a str,
    errors: &'a mut Vec<AgreementError>,
}

impl SourceChecker for Checker<'_> {
    const FIELD_NAMES: FieldNames = FieldNames { table_headers: true, hyphens: true };
    fn source(&self) -> SourceText<'_> {
        SourceText::new(self.file, self.text)
    }
    fn push(&mut self, error: SourceError) {
        self.errors.push(error);
    }
}

impl Checker<'_> {
    /// A penalty threshold in months, from 1 to [`MAX_DUAL_CRIMINALITY_MONTHS`]; `hint` is
    /// added to the error.
    fn months(&mut self, raw: &Spanned<i64>, field: &str, hint: &str) -> Option<u32> {
        let v = *raw.get_ref();
        match u32::try_from(v) {
            Ok(n) if (1..=MAX_DUAL_CRIMINALITY_MONTHS).contains(&n) => Some(n),
            _ => {
                self.error(
                    raw.span(),
                    field,
                    format!(
                        "found {v}; expected a number of months from 1 to {MAX_DUAL_CRIMINALITY_MONTHS}{hint}"
                    ),
                );
                None
            }
        }
    }

    fn name<T: Named>(&mut self, raw: &Spanned<String>, field: &str) -> Option<T> {
        self.one_of(raw, field, T::all(), T::name, T::WHAT)
    }

    /// Names in a list, each once.
    fn names<T: Named + PartialEq>(&mut self, raw: &[Spanned<String>], field: &str) -> Vec<T> {
        let mut out: Vec<T> = Vec::new();
        for r in raw {
            if let Some(v) = self.name::<T>(r, field) {
                if out.contains(&v) {
                    self.error(
                        r.span(),
                        field,
                        format!("found `{}` twice; expected each {} once", v.name(), T::WHAT),
                    );
                } else {
                    out.push(v);
                }
            }
        }
        out
    }

    fn status(&mut self, raw: &Spanned<String>, field: &str) -> VerificationStatus {
        match raw.get_ref().as_str() {
            "V1" => VerificationStatus::V1,
            "V2" => VerificationStatus::V2,
            "P" => VerificationStatus::P,
            "U" => VerificationStatus::U,
            other => {
                self.error(
                    raw.span(),
                    field,
                    format!("found `{other}`; expected a status tag: V1, V2, P or U"),
                );
                VerificationStatus::U
            }
        }
    }

    fn citation(&mut self, raw: &RawCitation, field: &str, known: &BTreeSet<String>) -> Citation {
        let text = raw.citation.get_ref().trim();
        if text.is_empty() {
            self.error(
                raw.citation.span(),
                &format!("{field}.citation"),
                "found an empty citation; expected e.g. `ETS 185 Art 29`".to_owned(),
            );
        }
        let status = self.status(&raw.status, &format!("{field}.status"));
        let mut sources = Vec::new();
        for s in &raw.sources {
            let key = s.get_ref();
            if !known.contains(key) {
                let near: Vec<&str> = known
                    .iter()
                    .map(String::as_str)
                    .filter(|k| {
                        edit_distance(&key.to_ascii_lowercase(), &k.to_ascii_lowercase()) <= 2
                    })
                    .collect();
                let hint = did_you_mean(&near);
                self.error(
                    s.span(),
                    &format!("{field}.sources"),
                    format!(
                        "found `{key}`{hint}; expected a source key of the lexicon (data/lexicon/sources.toml) or of a [[source]] table in this file"
                    ),
                );
            }
            sources.push(key.clone());
        }
        if status != VerificationStatus::U && raw.sources.is_empty() {
            self.error(
                raw.status.span(),
                &format!("{field}.sources"),
                format!(
                    "found status {status} without sources; expected at least one source key for a verified fact (an unsourced fact is U)"
                ),
            );
        }
        Citation { citation: text.to_owned(), status, sources }
    }

    fn duration(&mut self, raw: &Spanned<String>, field: &str) -> Option<IsoDuration> {
        let text = raw.get_ref();
        let parsed = if text.starts_with('P') {
            SPAN_PARSER.parse_span(text).map_err(|e| e.to_string())
        } else {
            Err("it does not start with `P`".to_owned())
        };
        match parsed {
            Ok(span) if span.is_negative() || span.is_zero() => {
                self.error(
                    raw.span(),
                    field,
                    format!("found `{text}`; expected a positive ISO 8601 duration such as P10D, PT8H or P2Y"),
                );
                None
            }
            Ok(span) => Some(IsoDuration { text: text.clone(), span }),
            Err(why) => {
                self.error(
                    raw.span(),
                    field,
                    format!(
                        "found `{text}`, which is not an ISO 8601 duration ({why}); expected e.g. P10D (10 days), PT8H (8 hours), P2Y (2 years)"
                    ),
                );
                None
            }
        }
    }

    fn date(&mut self, raw: &Spanned<String>, field: &str) -> Option<jiff::civil::Date> {
        let text = raw.get_ref();
        let shape = text.len() == 10
            && text
                .bytes()
                .enumerate()
                .all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
        match text.parse::<jiff::civil::Date>() {
            Ok(d) if shape => Some(d),
            Ok(_) => {
                self.error(
                    raw.span(),
                    field,
                    format!("found `{text}`; expected a date written YYYY-MM-DD"),
                );
                None
            }
            Err(e) => {
                self.error(
                    raw.span(),
                    field,
                    format!("found `{text}`, which is not a date ({e}); expected a date written YYYY-MM-DD"),
                );
                None
            }
        }
    }

    fn id(&mut self, raw: &Spanned<String>, field: &str, example: &str) -> String {
        let id = raw.get_ref();
        if !is_kebab_id(id) {
            self.error(
                raw.span(),
                field,
                format!(
                    "found `{id}`; expected a lowercase id of letters, digits and single hyphens, e.g. `{example}`"
                ),
            );
        }
        id.clone()
    }
}

const SPAN_PARSER: jiff::fmt::temporal::SpanParser = jiff::fmt::temporal::SpanParser::new();

fn is_kebab_id(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `a` is longer than `b` (compared from 2000-01-01 so that years and months have a length).
fn longer(a: &IsoDuration, b: &IsoDuration) -> bool {
    a.span
        .compare((b.span, jiff::civil::date(2000, 1, 1)))
        .is_ok_and(|o| o == std::cmp::Ordering::Greater)
}

/// Parses and validates one agreement file. `file` names it in error messages; `lexicon`
/// gives the offence concepts and the source keys citations may use (a file may add its own
/// in `[[source]]` tables).
///
/// # Errors
/// Every problem found (not just the first), each with file, line, column, field, what was
/// found and what is expected: TOML syntax, unknown or missing keys, an unknown party,
/// concept, category, purpose, kind, transform, request kind, status tag or source key, a
/// party given twice or fewer than two parties, a duration that is not ISO 8601, a date that
/// is not `YYYY-MM-DD`, `in_force_until` before `in_force_from`, a duplicate id, and rules
/// that contradict each other (see `docs/agreements.md`).
pub fn parse_agreement(
    file: &str,
    text: &str,
    lexicon: &Lexicon,
) -> Result<Agreement, AgreementErrors> {
    let mut errors = Vec::new();
    let agreement = check_agreement(file, text, lexicon, &mut errors);
    match agreement {
        Some(a) if errors.is_empty() => Ok(a),
        _ => Err(AgreementErrors(errors)),
    }
}

/// Parses and validates several agreement files (`(file name, text)` pairs), then checks
/// them against each other: each agreement id once.
///
/// # Errors
/// Every problem of every file, as [`parse_agreement`], and each duplicate id (at the later
/// file, naming the earlier one).
pub fn parse_agreements(
    files: &[(&str, &str)],
    lexicon: &Lexicon,
) -> Result<Vec<Agreement>, AgreementErrors> {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (file, text) in files {
        let before = errors.len();
        let Some(a) = check_agreement(file, text, lexicon, &mut errors) else { continue };
        if let Some(first) = seen.get(&a.id) {
            // Re-read the id's position for the message.
            let span = toml::from_str::<IdOnly>(text).map(|r| r.id.span()).unwrap_or(0..0);
            let mut c = Checker { file, text, errors: &mut errors };
            c.error(
                span,
                "id",
                format!(
                    "found `{}`, already the id of the agreement in {first}; expected each agreement id once",
                    a.id
                ),
            );
        } else {
            seen.insert(a.id.clone(), (*file).to_owned());
        }
        if errors.len() == before {
            out.push(a);
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(AgreementErrors(errors)) }
}

#[derive(Deserialize)]
struct IdOnly {
    id: Spanned<String>,
}

const BUILTIN: &[(&str, &str)] = &[
    ("data/agreements/ets-185.toml", include_str!("../../../data/agreements/ets-185.toml")),
    ("data/agreements/cets-224.toml", include_str!("../../../data/agreements/cets-224.toml")),
    (
        "data/agreements/eu-2023-1543.toml",
        include_str!("../../../data/agreements/eu-2023-1543.toml"),
    ),
    ("data/agreements/nl-us-mla.toml", include_str!("../../../data/agreements/nl-us-mla.toml")),
    (
        "data/agreements/jit-nl-de-template.toml",
        include_str!("../../../data/agreements/jit-nl-de-template.toml"),
    ),
    (
        "data/agreements/mou-deconfliction-pilot.toml",
        include_str!("../../../data/agreements/mou-deconfliction-pilot.toml"),
    ),
    ("data/agreements/jit-lantern.toml", include_str!("../../../data/agreements/jit-lantern.toml")),
    (
        "data/agreements/nis2-csirt-cooperation.toml",
        include_str!("../../../data/agreements/nis2-csirt-cooperation.toml"),
    ),
];

/// The agreement files shipped with Entente (`data/agreements/`), embedded at build time, as
/// `(file name, text)` pairs.
pub fn builtin_files() -> &'static [(&'static str, &'static str)] {
    BUILTIN
}

/// The agreements shipped with Entente, parsed and validated.
///
/// # Errors
/// Only if the shipped data is invalid, which a test rules out.
pub fn builtin_agreements(lexicon: &Lexicon) -> Result<Vec<Agreement>, AgreementErrors> {
    parse_agreements(BUILTIN, lexicon)
}

fn check_agreement(
    file: &str,
    text: &str,
    lexicon: &Lexicon,
    errors: &mut Vec<AgreementError>,
) -> Option<Agreement> {
    let mut c = Checker { file, text, errors };
    let raw: RawAgreement = c.parse()?;
    let before = c.errors.len();

    // Sources: the lexicon's and this file's.
    let mut known: BTreeSet<String> = lexicon.sources.iter().map(|s| s.key.clone()).collect();
    for s in &raw.source {
        let key = s.key.get_ref().trim();
        if key.is_empty() {
            c.error(
                s.key.span(),
                "source.key",
                "found an empty key; expected e.g. `EEV-art10`".to_owned(),
            );
        } else if !known.insert(key.to_owned()) {
            c.error(
                s.key.span(),
                "source.key",
                format!("found `{key}`, a key already defined (here or in the lexicon); expected each source key once"),
            );
        }
    }

    let id = c.id(&raw.id, "id", "eu-2023-1543");
    if raw.title.get_ref().trim().is_empty() {
        c.error(
            raw.title.span(),
            "title",
            "found an empty title; expected the instrument's name".to_owned(),
        );
    }
    let kind = c.name::<AgreementKind>(&raw.kind, "kind");
    let legal_basis: Vec<Citation> =
        raw.legal_basis.iter().map(|b| c.citation(b, "legal_basis", &known)).collect();
    if legal_basis.is_empty() {
        c.error(raw.id.span(), "legal_basis", "found no [[legal_basis]]; expected at least one citation of the text that grounds the agreement".to_owned());
    }

    // Parties.
    let mut parties: Vec<PartyCode> = Vec::new();
    for p in raw.parties.get_ref() {
        match p.get_ref().parse::<PartyCode>() {
            Ok(code) if parties.contains(&code) => c.error(
                p.span(),
                "parties",
                format!("found {code} twice; expected each party once"),
            ),
            Ok(code) => parties.push(code),
            Err(e) => c.error(p.span(), "parties", format!("found `{}`: {e}", p.get_ref())),
        }
    }
    if raw.parties.get_ref().len() < 2 {
        c.error(
            raw.parties.span(),
            "parties",
            format!(
                "found {} part{}; expected at least two parties",
                raw.parties.get_ref().len(),
                if raw.parties.get_ref().len() == 1 { "y" } else { "ies" }
            ),
        );
    }

    // In force.
    let from = c.date(&raw.in_force_from, "in_force_from");
    let until = raw.in_force_until.as_ref().and_then(|u| c.date(u, "in_force_until"));
    if let (Some(f), Some(u), Some(raw_u)) = (from, until, &raw.in_force_until)
        && u < f
    {
        c.error(
            raw_u.span(),
            "in_force_until",
            format!(
                "found {u}, before in_force_from = {f}; expected a last day on or after the first"
            ),
        );
    }

    // Offences.
    let offences = match raw.offences.get_ref() {
        RawOffences::Word(w) if w == "any" => ConceptScope::AnyOffence,
        RawOffences::Word(w) => {
            c.error(
                raw.offences.span(),
                "offences",
                format!("found `{w}`; expected \"any\" or a list of concept ids such as [\"illegal-access\"]"),
            );
            ConceptScope::AnyOffence
        }
        RawOffences::List(list) => {
            let mut ids: Vec<String> = Vec::new();
            for k in list {
                let given = k.get_ref();
                if lexicon.concepts.iter().any(|x| &x.id == given) {
                    if ids.contains(given) {
                        c.error(
                            k.span(),
                            "offences",
                            format!("found `{given}` twice; expected each concept once"),
                        );
                    } else {
                        ids.push(given.clone());
                    }
                    continue;
                }
                let message = match lexicon.concept(given) {
                    Ok(x) => format!(
                        "found `{given}`; expected a concept id, here `{}` (ETS 185 Art {})",
                        x.id, x.article
                    ),
                    Err(LookupError::UnknownConcept { suggestions, known, .. }) => {
                        let hint = did_you_mean(&suggestions);
                        format!(
                            "found `{given}`{hint}; expected a concept id of the lexicon: {}",
                            known.join(", ")
                        )
                    }
                    Err(e) => format!("found `{given}`: {e}"),
                };
                c.error(k.span(), "offences", message);
            }
            if list.is_empty() {
                c.error(
                    raw.offences.span(),
                    "offences",
                    "found an empty list; expected \"any\" or at least one concept id".to_owned(),
                );
            }
            ConceptScope::Concepts(ids)
        }
    };

    // Categories and purposes.
    let categories = c.names::<DataCategory>(raw.categories.get_ref(), "categories");
    if raw.categories.get_ref().is_empty() {
        c.error(
            raw.categories.span(),
            "categories",
            "found an empty list; expected at least one data category".to_owned(),
        );
    }
    let purposes = c.names::<Purpose>(raw.purposes.get_ref(), "purposes");
    if raw.purposes.get_ref().is_empty() {
        c.error(
            raw.purposes.span(),
            "purposes",
            "found an empty list; expected at least one purpose".to_owned(),
        );
    }
    let not_covered = |cat: DataCategory| {
        format!(
            "found `{cat}`, a category the agreement does not cover (categories = [{}]); expected one of its categories",
            categories.iter().map(|x| format!("\"{x}\"")).collect::<Vec<_>>().join(", ")
        )
    };

    // Retention.
    let mut retention = BTreeMap::new();
    for (k, v) in &raw.retention {
        let cat = c.name::<DataCategory>(k, "retention");
        let d = c.duration(v, &format!("retention.{}", k.get_ref()));
        if let Some(cat) = cat {
            if !categories.contains(&cat) {
                c.error(k.span(), "retention", not_covered(cat));
            }
            if let Some(d) = d {
                retention.insert(cat, d);
            }
        }
    }

    // Onward transfer, commercial use, dual criminality.
    let onward_transfer = c.name::<OnwardTransfer>(&raw.onward_transfer, "onward_transfer");
    let commercial_use_prohibited = *raw.commercial_use_prohibited.get_ref();
    let dual_criminality_months = raw.dual_criminality_months.as_ref().and_then(|m| {
        c.months(
            m,
            "dual_criminality_months",
            " (leave the key out when the agreement does not require dual criminality)",
        )
    });

    // Minimization.
    let mut minimization: Vec<MinimizationRule> = Vec::new();
    for m in &raw.minimization {
        let cat = c.name::<DataCategory>(&m.category, "minimization.category");
        let transform = c.name::<Transform>(&m.transform, "minimization.transform");
        if let Some(cat) = cat
            && !categories.contains(&cat)
        {
            c.error(m.category.span(), "minimization.category", not_covered(cat));
        }
        if m.fields.is_empty() {
            c.error(
                m.category.span(),
                "minimization.fields",
                "found an empty list; expected at least one field name".to_owned(),
            );
        }
        for f in &m.fields {
            let field = f.get_ref().trim();
            if field.is_empty() {
                c.error(
                    f.span(),
                    "minimization.fields",
                    "found an empty field name; expected a top-level key of the datum, e.g. `name`"
                        .to_owned(),
                );
                continue;
            }
            let (Some(cat), Some(transform)) = (cat, transform) else { continue };
            if let Some(prior) = minimization.iter().find(|r| r.category == cat && r.field == field)
            {
                let message = if prior.transform == transform {
                    format!(
                        "found `{field}` of `{cat}` a second time; expected each field once per category"
                    )
                } else {
                    format!(
                        "found `{field}` of `{cat}` with transform `{transform}`, but an earlier rule gives it `{}`; expected one transform per field",
                        prior.transform
                    )
                };
                c.error(f.span(), "minimization.fields", message);
                continue;
            }
            minimization.push(MinimizationRule {
                category: cat,
                field: field.to_owned(),
                transform,
            });
        }
    }

    // Requests.
    let mut requests: Vec<RequestRule> = Vec::new();
    for r in &raw.request {
        let kind = c.name::<RequestKind>(&r.kind, "request.kind");
        let cats = c.names::<DataCategory>(r.categories.get_ref(), "request.categories");
        if r.categories.get_ref().is_empty() {
            c.error(
                r.categories.span(),
                "request.categories",
                "found an empty list; expected the categories this kind of request may ask for"
                    .to_owned(),
            );
        }
        for (cat, rawcat) in cats.iter().zip(r.categories.get_ref()) {
            if !categories.contains(cat) {
                c.error(rawcat.span(), "request.categories", not_covered(*cat));
            }
        }
        let deadline = r.deadline.as_ref().and_then(|d| c.duration(d, "request.deadline"));
        let emergency_deadline =
            r.emergency_deadline.as_ref().and_then(|d| c.duration(d, "request.emergency_deadline"));
        if let (Some(d), Some(e), Some(raw_e)) =
            (&deadline, &emergency_deadline, &r.emergency_deadline)
            && longer(e, d)
        {
            c.error(
                raw_e.span(),
                "request.emergency_deadline",
                format!("found {}, longer than deadline = {}; expected an emergency deadline no longer than the normal one", e.text, d.text),
            );
        }
        let period = r.period.as_ref().and_then(|d| c.duration(d, "request.period"));
        let extension = r.extension.as_ref().and_then(|d| c.duration(d, "request.extension"));
        if let (Some(raw_x), None) = (&r.extension, &r.period) {
            c.error(raw_x.span(), "request.extension", "found an extension without a period; expected `period` too (the extension lengthens it)".to_owned());
        }
        let dual_criminality = r.dual_criminality.as_ref().and_then(|d| dc_rule(&mut c, d, &known));
        let issuing_conditions = r
            .issuing_conditions
            .as_ref()
            .and_then(|d| issuing_conditions(&mut c, d.get_ref(), lexicon, &known));
        let basis = c.citation(&r.basis, "request.basis", &known);
        let Some(kind) = kind else { continue };
        if requests.iter().any(|x| x.kind == kind) {
            c.error(
                r.kind.span(),
                "request.kind",
                format!(
                    "found `{kind}` a second time; expected each request kind once per agreement"
                ),
            );
            continue;
        }
        requests.push(RequestRule {
            kind,
            categories: cats,
            deadline,
            emergency_deadline,
            period,
            extension,
            dual_criminality,
            issuing_conditions,
            basis,
        });
    }

    // Refusal grounds and travelling conditions.
    let provided: Vec<RequestKind> = requests.iter().map(|r| r.kind).collect();
    let refusal_grounds: Vec<RefusalGround> =
        clauses(&mut c, &raw.refusal_ground, "refusal_ground", "immunity", &known)
            .into_iter()
            .zip(&raw.refusal_ground)
            .map(|((id, text, basis), r)| {
                let kinds = ground_kinds(&mut c, r.kinds.as_ref(), &provided, &raw.request);
                RefusalGround { id, text, basis, kinds }
            })
            .collect();
    let travelling_conditions: Vec<TravellingCondition> =
        clauses(&mut c, &raw.condition, "condition", "purpose-limitation", &known)
            .into_iter()
            .map(|(id, text, basis)| TravellingCondition { id, text, basis })
            .collect();
    for (t, raw_t) in travelling_conditions.iter().zip(&raw.condition) {
        if t.id == NO_ONWARD_TRANSFER_CONDITION && onward_transfer == Some(OnwardTransfer::Free) {
            c.error(
                raw.onward_transfer.span(),
                "onward_transfer",
                format!(
                    "found \"free\", but condition `{NO_ONWARD_TRANSFER_CONDITION}` (line {}) restricts onward transfer; expected \"forbidden\" or \"consent-of-originator\"",
                    c.position(raw_t.id.span().start).0
                ),
            );
        }
        if t.id == NO_COMMERCIAL_USE_CONDITION && !commercial_use_prohibited {
            c.error(
                raw.commercial_use_prohibited.span(),
                "commercial_use_prohibited",
                format!(
                    "found false, but condition `{NO_COMMERCIAL_USE_CONDITION}` (line {}) prohibits commercial use; expected true",
                    c.position(raw_t.id.span().start).0
                ),
            );
        }
    }

    let deconfliction = raw
        .deconfliction
        .as_ref()
        .and_then(|d| check_deconfliction(&mut c, d, &parties, &purposes));

    // Data residency.
    let mut residency = Vec::new();
    for r in &raw.residency {
        let mut cats = Vec::new();
        for k in r.categories.get_ref() {
            let Some(cat) = c.name::<DataCategory>(k, "residency.categories") else { continue };
            if categories.contains(&cat) {
                cats.push(cat);
            } else {
                c.error(
                    k.span(),
                    "residency.categories",
                    format!(
                        "found `{cat}`, a category the agreement does not cover (categories = [{}]); expected one of its categories",
                        categories.iter().map(|x| format!("\"{x}\"")).collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        }
        if r.categories.get_ref().is_empty() {
            c.error(
                r.categories.span(),
                "residency.categories",
                "found an empty list; expected the categories the clause covers".to_owned(),
            );
        }
        let mut within = Vec::new();
        for p in r.within.get_ref() {
            match p.get_ref().parse::<PartyCode>() {
                Ok(code) if within.contains(&code) => c.error(
                    p.span(),
                    "residency.within",
                    format!("found {code} twice; expected each party once"),
                ),
                Ok(code) => within.push(code),
                Err(e) => {
                    c.error(p.span(), "residency.within", format!("found `{}`: {e}", p.get_ref()));
                }
            }
        }
        if r.within.get_ref().is_empty() {
            c.error(
                r.within.span(),
                "residency.within",
                "found an empty list; expected the parties within which the data stays, e.g. [\"NL\", \"DE\"]".to_owned(),
            );
        }
        let basis = c.citation(&r.basis, "residency.basis", &known);
        residency.push(Residency { categories: cats, within, basis });
    }

    // Ratifications: each party once, and then every party.
    let mut ratifications: Vec<Ratification> = Vec::new();
    for r in &raw.ratification {
        let party = match r.party.get_ref().parse::<PartyCode>() {
            Ok(p) if !parties.contains(&p) => {
                c.error(
                    r.party.span(),
                    "ratification.party",
                    format!(
                        "found {p}, not a party of the agreement; expected one of its parties ({})",
                        party_list(&parties)
                    ),
                );
                None
            }
            Ok(p) if ratifications.iter().any(|x| x.party == p) => {
                c.error(
                    r.party.span(),
                    "ratification.party",
                    format!("found {p} twice; expected one [[ratification]] per party"),
                );
                None
            }
            Ok(p) => Some(p),
            Err(e) => {
                c.error(
                    r.party.span(),
                    "ratification.party",
                    format!("found `{}`: {e}", r.party.get_ref()),
                );
                None
            }
        };
        let signed = r.signed.as_ref().and_then(|d| c.date(d, "ratification.signed"));
        let ratified = r.ratified.as_ref().and_then(|d| c.date(d, "ratification.ratified"));
        let in_force = r.in_force.as_ref().and_then(|d| c.date(d, "ratification.in_force"));
        if let (Some(sg), Some(rt), Some(raw_r)) = (signed, ratified, &r.ratified)
            && rt < sg
        {
            c.error(raw_r.span(), "ratification.ratified", format!("found {rt}, before its signature on {sg}; expected a ratification on or after the signature"));
        }
        if let (Some(rt), Some(f), Some(raw_f)) = (ratified, in_force, &r.in_force)
            && f < rt
        {
            c.error(raw_f.span(), "ratification.in_force", format!("found {f}, before the ratification on {rt}; expected an entry into force on or after it"));
        }
        if let (Some(f), Some(first), Some(raw_f)) = (in_force, from, &r.in_force)
            && f < first
        {
            c.error(raw_f.span(), "ratification.in_force", format!("found {f}, before the instrument's own in_force_from = {first}; expected a date on or after it"));
        }
        let basis = c.citation(&r.basis, "ratification.basis", &known);
        if let Some(party) = party {
            ratifications.push(Ratification { party, signed, ratified, in_force, basis });
        }
    }
    if !raw.ratification.is_empty() {
        let missing: Vec<&PartyCode> =
            parties.iter().filter(|p| !ratifications.iter().any(|r| &r.party == *p)).collect();
        if !missing.is_empty() && raw.ratification.len() == ratifications.len() {
            c.error(
                raw.parties.span(),
                "ratification",
                format!(
                    "found no [[ratification]] for {}; expected one for every party once any is given (a party without `in_force` is one for which the instrument is not in force)",
                    party_list(&missing)
                ),
            );
        }
    }

    // Reservations: a party of the agreement, an article with a concept in the lexicon.
    let mut reservations = Vec::new();
    for r in &raw.reservation {
        let party = match r.party.get_ref().parse::<PartyCode>() {
            Ok(p) if parties.contains(&p) => Some(p),
            Ok(p) => {
                c.error(
                    r.party.span(),
                    "reservation.party",
                    format!(
                        "found {p}, not a party of the agreement; expected one of its parties ({})",
                        party_list(&parties)
                    ),
                );
                None
            }
            Err(e) => {
                c.error(
                    r.party.span(),
                    "reservation.party",
                    format!("found `{}`: {e}", r.party.get_ref()),
                );
                None
            }
        };
        let article = *r.article.get_ref();
        let concept = lexicon.concepts.iter().find(|k| i64::from(k.article) == article);
        if concept.is_none() {
            c.error(
                r.article.span(),
                "reservation.article",
                format!(
                    "found {article}; expected an offence article of ETS 185 with a concept in the lexicon (Arts {})",
                    lexicon.concepts.iter().map(|k| k.article.to_string()).collect::<Vec<_>>().join(", ")
                ),
            );
        }
        if r.text.get_ref().trim().is_empty() {
            c.error(
                r.text.span(),
                "reservation.text",
                "found an empty text; expected what the reservation does".to_owned(),
            );
        }
        let basis = c.citation(&r.basis, "reservation.basis", &known);
        if let (Some(party), Some(k)) = (party, concept) {
            reservations.push(Reservation {
                party,
                article: k.article,
                concept: k.id.clone(),
                text: r.text.get_ref().trim().to_owned(),
                basis,
            });
        }
    }

    if c.errors.len() > before {
        return None;
    }
    Some(Agreement {
        id,
        title: raw.title.get_ref().trim().to_owned(),
        kind: kind?,
        template: raw.template.as_ref().is_some_and(|t| *t.get_ref()),
        legal_basis,
        parties,
        in_force_from: from?,
        in_force_until: until,
        offences,
        categories,
        purposes,
        retention,
        onward_transfer: onward_transfer?,
        commercial_use_prohibited,
        minimization,
        requests,
        refusal_grounds,
        travelling_conditions,
        dual_criminality_months,
        deconfliction,
        residency,
        ratifications,
        reservations,
    })
}

fn party_list<P: std::borrow::Borrow<PartyCode>>(parties: &[P]) -> String {
    parties.iter().map(|p| p.borrow().as_str()).collect::<Vec<_>>().join(", ")
}

/// Validates a `[deconfliction]` section against the agreement's parties and purposes.
fn check_deconfliction(
    c: &mut Checker<'_>,
    raw: &RawDeconfliction,
    agreement_parties: &[PartyCode],
    purposes: &[Purpose],
) -> Option<Deconfliction> {
    let before = c.errors.len();
    let mut parties: Vec<PartyCode> = Vec::new();
    for p in raw.parties.get_ref() {
        match p.get_ref().parse::<PartyCode>() {
            Ok(code) if parties.contains(&code) => c.error(
                p.span(),
                "deconfliction.parties",
                format!("found {code} twice; expected each party once"),
            ),
            Ok(code) if !agreement_parties.contains(&code) => c.error(
                p.span(),
                "deconfliction.parties",
                format!(
                    "found {code}, not a party of the agreement; expected parties from `parties`"
                ),
            ),
            Ok(code) => parties.push(code),
            Err(e) => {
                c.error(p.span(), "deconfliction.parties", format!("found `{}`: {e}", p.get_ref()))
            }
        }
    }
    if raw.parties.get_ref().len() < 2 {
        c.error(
            raw.parties.span(),
            "deconfliction.parties",
            "found fewer than two parties; expected at least two parties that may ask each other"
                .to_owned(),
        );
    }
    let purpose = raw.purpose.get_ref();
    if purpose != Purpose::Deconfliction.as_str() {
        c.error(
            raw.purpose.span(),
            "deconfliction.purpose",
            format!(
                "found `{purpose}`; expected \"deconfliction\" (the only purpose a query may have)"
            ),
        );
    } else if !purposes.contains(&Purpose::Deconfliction) {
        c.error(
            raw.purpose.span(),
            "deconfliction.purpose",
            "found \"deconfliction\", which is not among the agreement's purposes; expected `purposes` to include \"deconfliction\"".to_owned(),
        );
    }
    let mut selectors: Vec<entente_psi::SelectorKind> = Vec::new();
    let names: Vec<&str> = entente_psi::SelectorKind::ALL.iter().map(|k| k.name()).collect();
    for k in raw.selectors.get_ref() {
        let given = k.get_ref();
        match entente_psi::SelectorKind::ALL.into_iter().find(|x| x.name() == given) {
            Some(kind) if selectors.contains(&kind) => c.error(
                k.span(),
                "deconfliction.selectors",
                format!("found `{given}` twice; expected each selector kind once"),
            ),
            Some(kind) => selectors.push(kind),
            None => c.error(
                k.span(),
                "deconfliction.selectors",
                format!("found `{given}`; expected a selector kind: {}", names.join(", ")),
            ),
        }
    }
    if raw.selectors.get_ref().is_empty() {
        c.error(
            raw.selectors.span(),
            "deconfliction.selectors",
            "found an empty list; expected at least one selector kind".to_owned(),
        );
    }
    let mode = match raw.mode.get_ref().as_str() {
        "labelled" => Some(entente_psi::Mode::Labelled),
        "cardinality" => Some(entente_psi::Mode::Cardinality),
        other => {
            c.error(
                raw.mode.span(),
                "deconfliction.mode",
                format!("found `{other}`; expected \"labelled\" (which selectors match, with the holder's case reference and contact) or \"cardinality\" (only how many)"),
            );
            None
        }
    };
    let mut bounded = |v: &Spanned<i64>, field: &str, max: u32, what: &str| -> Option<u32> {
        match u32::try_from(*v.get_ref()) {
            Ok(n) if (1..=max).contains(&n) => Some(n),
            _ => {
                c.error(
                    v.span(),
                    field,
                    format!("found {}; expected {what} from 1 to {max}", v.get_ref()),
                );
                None
            }
        }
    };
    let max_selectors = bounded(
        &raw.max_selectors,
        "deconfliction.max_selectors",
        MAX_DECONFLICTION_SELECTORS,
        "a number of selectors per query (every query is padded to it)",
    );
    let max_queries = bounded(
        &raw.max_queries,
        "deconfliction.max_queries",
        MAX_DECONFLICTION_QUERIES,
        "a number of queries per case and period",
    );
    let per = c.duration(&raw.per, "deconfliction.per");
    let key_rotation = c.duration(&raw.key_rotation, "deconfliction.key_rotation");
    let strip_plus = match raw.email_plus_addressing.get_ref().as_str() {
        "strip" => Some(true),
        "keep" => Some(false),
        other => {
            c.error(
                raw.email_plus_addressing.span(),
                "deconfliction.email_plus_addressing",
                format!(
                    "found `{other}`; expected \"strip\" (alice+shop@x matches alice@x) or \"keep\""
                ),
            );
            None
        }
    };
    if c.errors.len() > before {
        return None;
    }
    Some(Deconfliction {
        parties,
        selectors,
        mode: mode?,
        max_selectors: max_selectors?,
        max_queries: max_queries?,
        per: per?,
        key_rotation: key_rotation?,
        email: entente_psi::EmailRules { strip_plus: strip_plus? },
    })
}

/// Validates a request kind's `dual_criminality = { test, required, months, more_than,
/// basis }`: `none` takes no threshold and cannot be required; `penalty` needs `months`.
fn dc_rule(
    c: &mut Checker<'_>,
    raw: &Spanned<RawDcRule>,
    known: &BTreeSet<String>,
) -> Option<DcRule> {
    const FIELD: &str = "request.dual_criminality";
    let r = raw.get_ref();
    let basis = c.citation(&r.basis, &format!("{FIELD}.basis"), known);
    let required = r.required.as_ref().map(|b| *b.get_ref());
    let months = match &r.months {
        None => None,
        Some(m) => Some(c.months(m, &format!("{FIELD}.months"), "")?),
    };
    let test = match (r.test.get_ref().as_str(), months) {
        ("none", None) if r.more_than.is_none() => {
            if let Some(true) = required {
                c.error(
                    r.required.as_ref().map_or(raw.span(), Spanned::span),
                    &format!("{FIELD}.required"),
                    "found required = true with test = \"none\"; expected no `required` (nothing is compared, so nothing can be required)".to_owned(),
                );
                return None;
            }
            DcRuleTest::None
        }
        ("conduct", None) if r.more_than.is_none() => DcRuleTest::Conduct,
        ("penalty", Some(months)) => DcRuleTest::Penalty {
            months,
            more_than: r.more_than.as_ref().is_some_and(|b| *b.get_ref()),
        },
        ("penalty", None) => {
            c.error(
                r.test.span(),
                &format!("{FIELD}.months"),
                "found test = \"penalty\" without `months`; expected the threshold, e.g. months = 12".to_owned(),
            );
            return None;
        }
        ("none" | "conduct", _) => {
            let span = r
                .months
                .as_ref()
                .map(Spanned::span)
                .or_else(|| r.more_than.as_ref().map(Spanned::span))
                .unwrap_or(raw.span());
            c.error(
                span,
                FIELD,
                format!(
                    "found a penalty threshold with test = \"{}\"; expected test = \"penalty\" for a threshold, or no `months`/`more_than`",
                    r.test.get_ref()
                ),
            );
            return None;
        }
        (other, _) => {
            c.error(
                r.test.span(),
                &format!("{FIELD}.test"),
                format!("found `{other}`; expected one of none, conduct, penalty"),
            );
            return None;
        }
    };
    let categories = c.names::<DataCategory>(&r.categories, &format!("{FIELD}.categories"));
    if categories.len() != r.categories.len() {
        return None;
    }
    let required = required.unwrap_or(test != DcRuleTest::None);
    Some(DcRule { test, required, categories, basis })
}

/// Validates a request kind's `issuing_conditions = { any_offence, min_penalty_months,
/// listed, listed_basis, basis }`: categories by name, months in range, listed offences that
/// are concepts of the lexicon.
fn issuing_conditions(
    c: &mut Checker<'_>,
    r: &RawIssuingConditions,
    lexicon: &Lexicon,
    known: &BTreeSet<String>,
) -> Option<IssuingConditions> {
    const FIELD: &str = "request.issuing_conditions";
    let basis = c.citation(&r.basis, &format!("{FIELD}.basis"), known);
    let any_offence = c.names::<DataCategory>(&r.any_offence, &format!("{FIELD}.any_offence"));
    let min_penalty_months =
        c.months(&r.min_penalty_months, &format!("{FIELD}.min_penalty_months"), "");
    let mut listed = Vec::new();
    for l in &r.listed {
        if lexicon.concepts.iter().any(|k| &k.id == l.get_ref()) {
            listed.push(l.get_ref().clone());
        } else {
            c.error(
                l.span(),
                &format!("{FIELD}.listed"),
                format!(
                    "found `{}`; expected a concept of the lexicon ({})",
                    l.get_ref(),
                    lexicon.concepts.iter().map(|k| k.id.as_str()).collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
    if any_offence.len() != r.any_offence.len() || listed.len() != r.listed.len() {
        return None;
    }
    Some(IssuingConditions {
        any_offence,
        min_penalty_months: min_penalty_months?,
        listed,
        listed_basis: r.listed_basis.trim().to_owned(),
        basis,
    })
}

/// The kinds of request a refusal ground names (`kinds`), each one the agreement provides;
/// every provided kind when the ground names none.
fn ground_kinds(
    c: &mut Checker<'_>,
    raw: Option<&Spanned<Vec<Spanned<String>>>>,
    provided: &[RequestKind],
    requests: &[RawRequest],
) -> Vec<RequestKind> {
    let Some(raw) = raw else { return provided.to_vec() };
    if raw.get_ref().is_empty() {
        c.error(
            raw.span(),
            "refusal_ground.kinds",
            "found an empty list; expected the kinds of request the ground may be raised against, or no `kinds` for every kind".to_owned(),
        );
    }
    let mut out: Vec<RequestKind> = Vec::new();
    for rk in raw.get_ref() {
        let Some(k) = c.name::<RequestKind>(rk, "refusal_ground.kinds") else { continue };
        if out.contains(&k) {
            c.error(
                rk.span(),
                "refusal_ground.kinds",
                format!("found `{k}` twice; expected each kind of request once"),
            );
        } else if provided.contains(&k) {
            out.push(k);
        } else {
            let listed: Vec<&str> = requests.iter().map(|r| r.kind.get_ref().as_str()).collect();
            c.error(
                rk.span(),
                "refusal_ground.kinds",
                format!(
                    "found `{k}`, a kind of request this agreement does not provide; expected one of its [[request]] kinds: {}",
                    if listed.is_empty() { "none".to_owned() } else { listed.join(", ") }
                ),
            );
        }
    }
    out
}

/// Validates refusal grounds or conditions: kebab-case ids, each once, a text, a basis.
fn clauses<R: Clause>(
    c: &mut Checker<'_>,
    raw: &[R],
    table: &str,
    example: &str,
    known: &BTreeSet<String>,
) -> Vec<(String, String, Citation)> {
    let mut out: Vec<(String, String, Citation)> = Vec::new();
    for r in raw {
        let (rid, rtext, rbasis) = r.parts();
        let id = c.id(rid, &format!("{table}.id"), example);
        if out.iter().any(|(x, _, _)| *x == id) {
            c.error(
                rid.span(),
                &format!("{table}.id"),
                format!("found `{id}` a second time; expected each {table} id once per agreement"),
            );
        }
        if rtext.trim().is_empty() {
            c.error(
                rid.span(),
                &format!("{table}.text"),
                "found an empty text; expected the clause in words".to_owned(),
            );
        }
        let basis = c.citation(rbasis, &format!("{table}.basis"), known);
        out.push((id, rtext.trim().to_owned(), basis));
    }
    out
}

#[cfg(test)]
mod tests;

/// What the parties set when they conclude an agreement from a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conclusion<'a> {
    /// The concluded agreement's id (not the template's).
    pub id: &'a str,
    /// Its title.
    pub title: &'a str,
    /// The day of signature: the first day in force.
    pub signed: jiff::civil::Date,
    /// The last day in force (the end of a team's mandate), if any.
    pub until: Option<jiff::civil::Date>,
}

/// The text of an agreement concluded from `template` (the text of a file with
/// `template = true`, named `file` in messages): the template's terms with the parties' own
/// id, title and dates, and no `template` key; validated as any agreement file is.
///
/// # Errors
/// The template is not valid or not a template, the id is the template's, or the result does
/// not validate (each problem as [`parse_agreement`] reports it).
pub fn conclude(
    file: &str,
    template: &str,
    lexicon: &Lexicon,
    c: &Conclusion<'_>,
) -> Result<String, String> {
    let t = parse_agreement(file, template, lexicon).map_err(|e| e.to_string())?;
    if !t.template {
        return Err(format!(
            "{file}: agreement `{}` is not a template (no `template = true`); only a template is concluded",
            t.id
        ));
    }
    if c.id == t.id {
        return Err(format!(
            "--id {}: the template's own id; expected the id of the concluded agreement",
            c.id
        ));
    }
    let quoted = |v: &str| toml::Value::String(v.to_owned()).to_string();
    let mut out = vec![
        format!(
            "# {} — concluded on {} from the template `{}` ({file}) with `entente framework conclude`.",
            c.title, c.signed, t.id
        ),
        "# The terms below are the template's, as the parties adopted them.".to_owned(),
        String::new(),
    ];
    let mut top = true;
    let mut leading_comment = true;
    for line in template.lines() {
        let trimmed = line.trim_start();
        if leading_comment && (trimmed.starts_with('#') || trimmed.is_empty()) {
            continue;
        }
        leading_comment = false;
        if trimmed.starts_with('[') {
            top = false;
        }
        let key = trimmed.split('=').next().map(str::trim).filter(|_| top && trimmed.contains('='));
        match key {
            Some("id") => out.push(format!("id = {}", quoted(c.id))),
            Some("title") => out.push(format!("title = {}", quoted(c.title))),
            Some("template" | "in_force_until") => {}
            Some("in_force_from") => {
                out.push(format!("in_force_from = \"{}\"", c.signed));
                if let Some(u) = c.until {
                    out.push(format!("in_force_until = \"{u}\""));
                }
            }
            _ => out.push(line.to_owned()),
        }
    }
    let text = out.join("\n") + "\n";
    let name = format!("{}.toml", c.id);
    let concluded = parse_agreement(&name, &text, lexicon).map_err(|e| e.to_string())?;
    if concluded.template || concluded.id != c.id {
        return Err(format!(
            "{file}: the template could not be concluded (its keys are not one per line)"
        ));
    }
    Ok(text)
}
