//! Incident-notification regimes as data, and the assessment of one incident against them.
//!
//! - A regime file (`data/incidents/*.toml`) gives a regime's jurisdictions, who reports,
//!   the applicability conditions (entity types, sectors, personal data, ransom paid, listed
//!   company, yes/no questions such as "is the incident significant?") and its reports, each
//!   with a recipient and one or more deadline bounds `(amount, unit, anchor)`; several bounds
//!   mean "whichever is earlier". Every fact carries its verification status and sources, as
//!   given in the project's legal research (`legal-facts.md` section D).
//! - An incident facts file gives what happened and when (RFC 3339 instants with offset) and
//!   the incident's IANA time zone.
//! - [`assess`] lists every obligation with its due instant in UTC and local time, the facts
//!   that made it apply, the questions whose answers decide applicability (never assumed),
//!   and a timeline sorted by due instant.
//!
//! Clock arithmetic. The facts file states hour limits as hours after the anchor, which we
//! read as elapsed hours: the due instant is the anchor instant plus a [`jiff::SignedDuration`]
//! (so a DST change in between does not move it). Calendar days and calendar months are
//! calendar arithmetic on the anchor's wall-clock time in the incident's time zone (same
//! clock time, days later). Business days count Monday to Friday in the incident's time zone;
//! the facts file gives no holiday calendar, so public holidays are **not** skipped and the
//! obligation says so. The facts file states no end-of-day rule and no regime-specific time
//! zone for any regime encoded here, so due instants are computed in UTC and shown in the
//! incident's local time zone.
//!
//! Pure: no clock and no file I/O; callers pass file contents. Looking up an IANA time zone
//! reads jiff's time-zone database.

use entente_core::PartyCode;
use entente_core::lexicon::VerificationStatus;
use entente_core::source_error::{
    FieldNames, SourceChecker, SourceError, SourceText, write_problems,
};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan as _, Zoned};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use toml::Spanned;

#[cfg(test)]
mod tests;

// ---------------------------------------------------------------------------------------------
// Vocabulary

macro_rules! names {
    ($(#[$m:meta])* $t:ident, $what:literal, { $($(#[$vm:meta])* $v:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum $t {
            $($(#[$vm])* $v),+
        }

        impl $t {
            /// Every value, in the order of the documentation.
            pub const ALL: &'static [$t] = &[$(<$t>::$v),+];
            /// What a value is, for messages.
            pub const WHAT: &'static str = $what;

            /// The name used in files (kebab-case).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(<$t>::$v => $s),+
                }
            }

            /// The value named `s`, if any.
            pub fn from_name(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }

            fn accepted() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names!(
    /// The unit of a deadline (`legal-facts.md` section F).
    Unit, "unit", {
    /// Elapsed hours.
    Hours => "hours",
    /// Calendar days, in the incident's time zone.
    CalendarDays => "calendar-days",
    /// Business days (Monday to Friday; no holiday calendar).
    BusinessDays => "business-days",
    /// Calendar months, in the incident's time zone.
    CalendarMonths => "calendar-months",
});

names!(
    /// What starts a clock (`legal-facts.md` sections D and F).
    Anchor, "anchor", {
    /// The entity becomes aware of the incident (`aware_at`).
    Aware => "aware",
    /// The entity becomes aware that the incident meets the significance test
    /// (`aware_significant_at`).
    AwareSignificant => "aware-significant",
    /// Internal classification as major (`classified_at`).
    Classified => "classified",
    /// Determination that the incident is material (`materiality_determined_at`).
    MaterialityDetermined => "materiality-determined",
    /// Determination that a breach occurred (`breach_determined_at`).
    BreachDetermined => "breach-determined",
    /// Reasonable belief that a covered incident occurred (`reasonable_belief_at`).
    ReasonableBelief => "reasonable-belief",
    /// Discovery: first day known or should reasonably have been known (`discovered_at`).
    Discovery => "discovery",
    /// The entity noticed the incident or was notified of it (`detected_at`).
    Noticed => "noticed",
    /// A ransom was paid (`ransom_paid_at`).
    PaymentMade => "payment-made",
    /// A prior report of the same regime was submitted (`[submitted]`, else its deadline).
    PriorReportSubmitted => "prior-report-submitted",
});

names!(
    /// Where a regime stands legislatively.
    Stage, "stage", {
    /// In force (or applicable).
    InForce => "in-force",
    /// A proposed rule, not yet in force.
    Proposed => "proposed",
    /// A bill before a legislature.
    Pending => "pending",
});

names!(
    /// The sector an incident's entity belongs to.
    Sector, "sector", {
    /// Health care.
    Health => "health",
    /// Banking, insurance, financial market infrastructure.
    Finance => "finance",
    /// Energy.
    Energy => "energy",
    /// Transport.
    Transport => "transport",
    /// Drinking water and waste water.
    Water => "water",
    /// Digital infrastructure (DNS, cloud, data centres, IXPs).
    DigitalInfrastructure => "digital-infrastructure",
    /// Electronic communications.
    Telecommunications => "telecommunications",
    /// ICT service management (managed service providers).
    IctServices => "ict-services",
    /// Public administration.
    PublicAdministration => "public-administration",
    /// Manufacturing.
    Manufacturing => "manufacturing",
    /// Space.
    Space => "space",
    /// Anything else.
    Other => "other",
});

names!(
    /// What an entity is under some regime (an entity may be several).
    EntityType, "entity type", {
    /// NIS2 essential entity.
    EssentialEntity => "essential-entity",
    /// NIS2 important entity.
    ImportantEntity => "important-entity",
    /// Trust service provider (NIS2).
    TrustServiceProvider => "trust-service-provider",
    /// GDPR controller.
    Controller => "controller",
    /// GDPR processor.
    Processor => "processor",
    /// DORA financial entity.
    FinancialEntity => "financial-entity",
    /// CIRCIA covered entity.
    CoveredEntity => "covered-entity",
    /// UK NIS operator of essential services.
    OperatorOfEssentialServices => "operator-of-essential-services",
    /// UK NIS relevant digital service provider.
    RelevantDigitalServiceProvider => "relevant-digital-service-provider",
    /// Australian SOCI responsible entity.
    ResponsibleEntity => "responsible-entity",
    /// A business with annual turnover above A$3 m.
    BusinessTurnoverOver3mAud => "business-turnover-over-3m-aud",
    /// CERT-In: service provider.
    ServiceProvider => "service-provider",
    /// CERT-In: intermediary.
    Intermediary => "intermediary",
    /// CERT-In: data centre.
    DataCentre => "data-centre",
    /// CERT-In: body corporate.
    BodyCorporate => "body-corporate",
    /// CERT-In: government organisation.
    GovernmentOrganisation => "government-organisation",
});

impl Anchor {
    /// The incident fact (field of the facts file) that gives this anchor's instant, if one
    /// does (`PriorReportSubmitted` comes from `[submitted]` or the prior report's deadline).
    pub fn fact(self) -> Option<&'static str> {
        Some(match self {
            Anchor::Aware => "aware_at",
            Anchor::AwareSignificant => "aware_significant_at",
            Anchor::Classified => "classified_at",
            Anchor::MaterialityDetermined => "materiality_determined_at",
            Anchor::BreachDetermined => "breach_determined_at",
            Anchor::ReasonableBelief => "reasonable_belief_at",
            Anchor::Discovery => "discovered_at",
            Anchor::Noticed => "detected_at",
            Anchor::PaymentMade => "ransom_paid_at",
            Anchor::PriorReportSubmitted => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Model

/// One deadline bound: `amount` `unit` after `anchor`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Bound {
    /// How many units.
    pub amount: u32,
    /// The unit.
    pub unit: Unit,
    /// What starts the clock.
    pub anchor: Anchor,
    /// For `PriorReportSubmitted`: the id of the prior report (same regime).
    pub prior_report: Option<String>,
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match (self.unit, self.amount) {
            (Unit::Hours, 1) => "hour",
            (Unit::Hours, _) => "hours",
            (Unit::CalendarDays, 1) => "calendar day",
            (Unit::CalendarDays, _) => "calendar days",
            (Unit::BusinessDays, 1) => "business day",
            (Unit::BusinessDays, _) => "business days",
            (Unit::CalendarMonths, 1) => "calendar month",
            (Unit::CalendarMonths, _) => "calendar months",
        };
        write!(f, "{} {unit} after {}", self.amount, self.anchor)?;
        if let Some(p) = &self.prior_report {
            write!(f, " ({p})")?;
        }
        Ok(())
    }
}

/// Conditions under which a regime or one of its reports applies; `None` fields do not
/// restrict.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Conditions {
    /// The entity must be one of these.
    pub entity_types: Option<Vec<EntityType>>,
    /// The entity must be in one of these sectors.
    pub sectors: Option<Vec<Sector>>,
    /// Personal data must (true) or must not (false) be involved.
    pub personal_data: Option<bool>,
    /// A ransom must (true) or must not (false) have been paid.
    pub ransom_paid: Option<bool>,
    /// The entity must (true) or must not (false) be a listed company.
    pub listed_company: Option<bool>,
    /// Yes/no questions (keys of the regime's `[[question]]`s) that must be answered yes.
    pub requires: Vec<String>,
}

/// One report a regime requires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Identifier, unique within the regime.
    pub id: String,
    /// Name.
    pub name: String,
    /// Who receives it.
    pub recipient: String,
    /// The deadline bounds; several mean "whichever is earlier". Empty: no fixed ceiling.
    pub deadline: Vec<Bound>,
    /// The text pairs the deadline with "without undue delay".
    pub without_undue_delay: bool,
    /// The obligation only arises at this anchor (bounds falling before it are dropped).
    pub obliged_from: Option<Anchor>,
    /// Conditions of this report on top of the regime's.
    pub conditions: Conditions,
    /// Further detail from the facts file.
    pub note: Option<String>,
    /// Verification status of this report's deadline.
    pub status: VerificationStatus,
    /// Source keys.
    pub sources: Vec<String>,
}

/// One incident-notification regime.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Regime {
    /// Identifier, e.g. `nis2`.
    pub id: String,
    /// Title.
    pub title: String,
    /// The legal text.
    pub citation: String,
    /// Legislative stage.
    pub stage: Stage,
    /// Detail on the stage (e.g. "proposed rule (NPRM published 4 Apr 2024)").
    pub stage_note: Option<String>,
    /// Verification status of the regime as a whole.
    pub status: VerificationStatus,
    /// Source keys.
    pub sources: Vec<String>,
    /// Where it applies.
    pub jurisdictions: Vec<PartyCode>,
    /// Who reports, in words.
    pub who: String,
    /// Conditions of the regime.
    pub conditions: Conditions,
    /// The yes/no questions the regime's conditions use: key → text.
    pub questions: BTreeMap<String, String>,
    /// The reports.
    pub reports: Vec<Report>,
    /// The sources cited: key → text.
    pub source_texts: BTreeMap<String, String>,
}

// ---------------------------------------------------------------------------------------------
// Errors

/// One problem in a regime or incident file, with its position.
///
/// The positioned problem shared by every TOML format: [`SourceError`].
pub type IncidentError = SourceError;

/// Every problem found (at least one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncidentErrors(pub Vec<IncidentError>);

impl fmt::Display for IncidentErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_problems(f, "incident data", &self.0)
    }
}

impl std::error::Error for IncidentErrors {}

struct Checker<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<IncidentError>,
}

impl SourceChecker for Checker<'_> {
    const FIELD_NAMES: FieldNames = FieldNames { table_headers: false, hyphens: true };
    fn source(&self) -> SourceText<'_> {
        SourceText::new(self.file, self.text)
    }
    fn push(&mut self, error: SourceError) {
        self.errors.push(error);
    }
}

impl<'a> Checker<'a> {
    fn new(file: &'a str, text: &'a str) -> Self {
        Checker { file, text, errors: Vec::new() }
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, IncidentErrors> {
        match value {
            Some(v) if self.errors.is_empty() => Ok(v),
            _ => Err(IncidentErrors(self.errors)),
        }
    }
}

macro_rules! name_of {
    ($c:expr, $t:ty, $raw:expr, $field:expr) => {{
        let raw: &Spanned<String> = $raw;
        match <$t>::from_name(raw.get_ref()) {
            Some(v) => Some(v),
            None => {
                $c.error(
                    raw.span(),
                    $field,
                    format!(
                        "found `{}`; expected a {}: {}",
                        raw.get_ref(),
                        <$t>::WHAT,
                        <$t>::accepted()
                    ),
                );
                None
            }
        }
    }};
}

fn status(c: &mut Checker<'_>, raw: &Spanned<String>, field: &str) -> VerificationStatus {
    match raw.get_ref().as_str() {
        "V1" => VerificationStatus::V1,
        "V2" => VerificationStatus::V2,
        "P" => VerificationStatus::P,
        "U" => VerificationStatus::U,
        other => {
            c.error(raw.span(), field, format!("found `{other}`; expected V1, V2, P or U"));
            VerificationStatus::U
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Regime files

struct RawConditions {
    entity_types: Option<Vec<Spanned<String>>>,
    sectors: Option<Vec<Spanned<String>>>,
    personal_data: Option<bool>,
    ransom_paid: Option<bool>,
    listed_company: Option<bool>,
    requires: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegime {
    id: Spanned<String>,
    title: String,
    citation: String,
    stage: Spanned<String>,
    #[serde(default)]
    stage_note: Option<String>,
    status: Spanned<String>,
    #[serde(default)]
    sources: Vec<Spanned<String>>,
    jurisdictions: Spanned<Vec<Spanned<String>>>,
    who: String,
    #[serde(default)]
    entity_types: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    sectors: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    personal_data: Option<bool>,
    #[serde(default)]
    ransom_paid: Option<bool>,
    #[serde(default)]
    listed_company: Option<bool>,
    #[serde(default)]
    requires: Vec<Spanned<String>>,
    #[serde(default)]
    question: Vec<RawQuestion>,
    #[serde(default)]
    report: Vec<RawReport>,
    #[serde(default)]
    source: Vec<RawSource>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuestion {
    key: Spanned<String>,
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    key: Spanned<String>,
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReport {
    id: Spanned<String>,
    name: String,
    recipient: String,
    #[serde(default)]
    deadline: Vec<RawBound>,
    #[serde(default)]
    without_undue_delay: bool,
    #[serde(default)]
    obliged_from: Option<Spanned<String>>,
    #[serde(default)]
    note: Option<String>,
    status: Spanned<String>,
    #[serde(default)]
    sources: Vec<Spanned<String>>,
    #[serde(default)]
    entity_types: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    sectors: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    personal_data: Option<bool>,
    #[serde(default)]
    ransom_paid: Option<bool>,
    #[serde(default)]
    listed_company: Option<bool>,
    #[serde(default)]
    requires: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBound {
    amount: Spanned<i64>,
    unit: Spanned<String>,
    anchor: Spanned<String>,
    #[serde(default)]
    prior_report: Option<Spanned<String>>,
}

macro_rules! raw_conditions {
    ($r:expr) => {
        RawConditions {
            entity_types: $r.entity_types.clone(),
            sectors: $r.sectors.clone(),
            personal_data: $r.personal_data,
            ransom_paid: $r.ransom_paid,
            listed_company: $r.listed_company,
            requires: $r.requires.clone(),
        }
    };
}

fn conditions(
    c: &mut Checker<'_>,
    raw: &RawConditions,
    questions: &BTreeMap<String, String>,
    field: &str,
) -> Conditions {
    let entity_types = raw.entity_types.as_ref().map(|v| {
        v.iter()
            .filter_map(|e| name_of!(c, EntityType, e, &format!("{field}entity_types")))
            .collect()
    });
    let sectors = raw.sectors.as_ref().map(|v| {
        v.iter().filter_map(|e| name_of!(c, Sector, e, &format!("{field}sectors"))).collect()
    });
    let mut requires = Vec::new();
    for r in &raw.requires {
        if !questions.contains_key(r.get_ref()) {
            c.error(
                r.span(),
                &format!("{field}requires"),
                format!(
                    "found `{}`; expected the key of a [[question]] of this file: {}",
                    r.get_ref(),
                    questions.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
        }
        requires.push(r.get_ref().clone());
    }
    Conditions {
        entity_types,
        sectors,
        personal_data: raw.personal_data,
        ransom_paid: raw.ransom_paid,
        listed_company: raw.listed_company,
        requires,
    }
}

fn sources(
    c: &mut Checker<'_>,
    raw: &[Spanned<String>],
    st: VerificationStatus,
    status_span: Range<usize>,
    known: &BTreeMap<String, String>,
    field: &str,
) -> Vec<String> {
    for s in raw {
        if !known.contains_key(s.get_ref()) {
            c.error(
                s.span(),
                field,
                format!(
                    "found `{}`; expected the key of a [[source]] of this file: {}",
                    s.get_ref(),
                    known.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
    if st != VerificationStatus::U && raw.is_empty() {
        c.error(
            status_span,
            field,
            format!("found status {st} without sources; an unsourced fact is U"),
        );
    }
    raw.iter().map(|s| s.get_ref().clone()).collect()
}

/// Parses one regime file. `file` names it in errors.
pub fn parse_regime(file: &str, text: &str) -> Result<Regime, IncidentErrors> {
    let mut c = Checker::new(file, text);
    let raw: Option<RawRegime> = c.parse();
    let regime = raw.map(|raw| check_regime(&mut c, raw));
    c.finish(regime)
}

fn check_regime(c: &mut Checker<'_>, raw: RawRegime) -> Regime {
    let id = raw.id.get_ref().clone();
    if id.is_empty()
        || !id.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
    {
        c.error(raw.id.span(), "id", format!("found `{id}`; expected a kebab-case id"));
    }
    let stage = name_of!(c, Stage, &raw.stage, "stage").unwrap_or(Stage::InForce);
    let mut source_texts = BTreeMap::new();
    for s in &raw.source {
        if source_texts.insert(s.key.get_ref().clone(), s.text.clone()).is_some() {
            c.error(s.key.span(), "source.key", format!("found `{}` twice", s.key.get_ref()));
        }
    }
    let st = status(c, &raw.status, "status");
    let srcs = sources(c, &raw.sources, st, raw.status.span(), &source_texts, "sources");
    let mut jurisdictions = Vec::new();
    for j in raw.jurisdictions.get_ref() {
        match j.get_ref().parse::<PartyCode>() {
            Ok(p) => jurisdictions.push(p),
            Err(e) => c.error(j.span(), "jurisdictions", e.to_string()),
        }
    }
    if jurisdictions.is_empty() && raw.jurisdictions.get_ref().is_empty() {
        c.error(
            raw.jurisdictions.span(),
            "jurisdictions",
            "found none; expected at least one".to_owned(),
        );
    }
    let mut questions = BTreeMap::new();
    for q in &raw.question {
        if questions.insert(q.key.get_ref().clone(), q.text.clone()).is_some() {
            c.error(q.key.span(), "question.key", format!("found `{}` twice", q.key.get_ref()));
        }
    }
    let conds = conditions(c, &raw_conditions!(raw), &questions, "");
    let mut reports: Vec<Report> = Vec::new();
    for r in &raw.report {
        let rid = r.id.get_ref().clone();
        if reports.iter().any(|x| x.id == rid) {
            c.error(r.id.span(), "report.id", format!("found `{rid}` twice"));
        }
        let mut deadline = Vec::new();
        for b in &r.deadline {
            let amount = *b.amount.get_ref();
            let amount = match u32::try_from(amount) {
                Ok(a) if a > 0 => a,
                _ => {
                    c.error(
                        b.amount.span(),
                        "report.deadline.amount",
                        format!("found {amount}; expected a positive whole number"),
                    );
                    1
                }
            };
            let unit = name_of!(c, Unit, &b.unit, "report.deadline.unit");
            let anchor = name_of!(c, Anchor, &b.anchor, "report.deadline.anchor");
            let prior = b.prior_report.as_ref().map(|p| p.get_ref().clone());
            match (anchor, &b.prior_report) {
                (Some(Anchor::PriorReportSubmitted), None) => c.error(
                    b.anchor.span(),
                    "report.deadline.prior_report",
                    "anchor prior-report-submitted needs prior_report (the id of an earlier report)".to_owned(),
                ),
                (Some(Anchor::PriorReportSubmitted), Some(p))
                    if !reports.iter().any(|x| &x.id == p.get_ref()) =>
                {
                        c.error(
                            p.span(),
                            "report.deadline.prior_report",
                            format!(
                                "found `{}`; expected the id of an earlier report of this regime: {}",
                                p.get_ref(),
                                reports.iter().map(|x| x.id.as_str()).collect::<Vec<_>>().join(", ")
                            ),
                        );
                }
                (Some(Anchor::PriorReportSubmitted), Some(_)) => {}
                (Some(_), Some(p)) => c.error(
                    p.span(),
                    "report.deadline.prior_report",
                    "prior_report is only for anchor prior-report-submitted".to_owned(),
                ),
                _ => {}
            }
            if let (Some(unit), Some(anchor)) = (unit, anchor) {
                deadline.push(Bound { amount, unit, anchor, prior_report: prior });
            }
        }
        if r.deadline.is_empty() && !r.without_undue_delay {
            c.error(
                r.id.span(),
                "report.deadline",
                "found no deadline; expected a [[report.deadline]] or without_undue_delay = true"
                    .to_owned(),
            );
        }
        let obliged_from =
            r.obliged_from.as_ref().and_then(|a| name_of!(c, Anchor, a, "report.obliged_from"));
        let rst = status(c, &r.status, "report.status");
        let rsrc = sources(c, &r.sources, rst, r.status.span(), &source_texts, "report.sources");
        let rconds = conditions(c, &raw_conditions!(r), &questions, "report.");
        reports.push(Report {
            id: rid,
            name: r.name.clone(),
            recipient: r.recipient.clone(),
            deadline,
            without_undue_delay: r.without_undue_delay,
            obliged_from,
            conditions: rconds,
            note: r.note.clone(),
            status: rst,
            sources: rsrc,
        });
    }
    if reports.is_empty() {
        c.error(0..0, "report", "found no [[report]]; expected at least one".to_owned());
    }
    Regime {
        id,
        title: raw.title,
        citation: raw.citation,
        stage,
        stage_note: raw.stage_note,
        status: st,
        sources: srcs,
        jurisdictions,
        who: raw.who,
        conditions: conds,
        questions,
        reports,
        source_texts,
    }
}

/// Parses several regime files (`(name, text)`); ids must be unique across them.
pub fn parse_regimes(files: &[(&str, &str)]) -> Result<Vec<Regime>, IncidentErrors> {
    let mut out: Vec<Regime> = Vec::new();
    let mut errors = Vec::new();
    for (name, text) in files {
        match parse_regime(name, text) {
            Ok(r) => {
                if out.iter().any(|x| x.id == r.id) {
                    errors.push(IncidentError {
                        file: (*name).to_owned(),
                        line: 1,
                        column: 1,
                        field: "id".to_owned(),
                        message: format!("found `{}`, already used by another regime file", r.id),
                    });
                } else {
                    out.push(r);
                }
            }
            Err(e) => errors.extend(e.0),
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(IncidentErrors(errors)) }
}

const BUILTIN: &[(&str, &str)] = &[
    ("data/incidents/nis2.toml", include_str!("../../../data/incidents/nis2.toml")),
    ("data/incidents/gdpr.toml", include_str!("../../../data/incidents/gdpr.toml")),
    ("data/incidents/dora.toml", include_str!("../../../data/incidents/dora.toml")),
    ("data/incidents/circia.toml", include_str!("../../../data/incidents/circia.toml")),
    ("data/incidents/sec-8k.toml", include_str!("../../../data/incidents/sec-8k.toml")),
    ("data/incidents/uk-nis.toml", include_str!("../../../data/incidents/uk-nis.toml")),
    ("data/incidents/au-soci.toml", include_str!("../../../data/incidents/au-soci.toml")),
    (
        "data/incidents/au-ransomware.toml",
        include_str!("../../../data/incidents/au-ransomware.toml"),
    ),
    ("data/incidents/in-cert-in.toml", include_str!("../../../data/incidents/in-cert-in.toml")),
];

/// The shipped regime files, `(name, text)`.
pub fn builtin_files() -> &'static [(&'static str, &'static str)] {
    BUILTIN
}

/// The regimes shipped in `data/incidents/`.
pub fn builtin_regimes() -> Result<Vec<Regime>, IncidentErrors> {
    parse_regimes(BUILTIN)
}

// ---------------------------------------------------------------------------------------------
// Incident facts

/// The instant fields of a facts file, in the order they normally happen.
pub const INSTANT_FIELDS: &[&str] = &[
    "occurred_at",
    "detected_at",
    "discovered_at",
    "aware_at",
    "aware_significant_at",
    "reasonable_belief_at",
    "classified_at",
    "breach_determined_at",
    "materiality_determined_at",
    "ransom_paid_at",
];

/// Instants that cannot come before awareness (a determination about an incident one is not
/// aware of is impossible).
const AFTER_AWARENESS: &[&str] =
    &["aware_significant_at", "classified_at", "breach_determined_at", "materiality_determined_at"];

/// The facts of one incident, validated.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IncidentFacts {
    /// Identifier of the incident.
    pub id: String,
    /// Where the entity is established or the incident has effect.
    pub jurisdictions: Vec<PartyCode>,
    /// The entity's sector, if known.
    pub sector: Option<Sector>,
    /// What the entity is under the regimes (an entity may be several); `None`: not stated.
    pub entity_types: Option<Vec<EntityType>>,
    /// Personal data involved, if known.
    pub personal_data: Option<bool>,
    /// Ransom paid, if known.
    pub ransom_paid: Option<bool>,
    /// Listed (public) company, if known.
    pub listed_company: Option<bool>,
    /// Instants by field name (see [`INSTANT_FIELDS`]).
    pub instants: BTreeMap<String, Timestamp>,
    /// The incident's IANA time zone name.
    pub time_zone_name: String,
    /// The time zone.
    #[serde(skip)]
    pub time_zone: TimeZone,
    /// Answers to the regimes' yes/no questions.
    pub answers: BTreeMap<String, bool>,
    /// When reports were submitted: `regime/report` → instant.
    pub submitted: BTreeMap<String, Timestamp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFacts {
    id: Spanned<String>,
    jurisdictions: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    sector: Option<Spanned<String>>,
    #[serde(default)]
    entity_type: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    personal_data: Option<bool>,
    #[serde(default)]
    ransom_paid: Option<Spanned<bool>>,
    #[serde(default)]
    listed_company: Option<bool>,
    #[serde(default)]
    occurred_at: Option<Spanned<String>>,
    #[serde(default)]
    detected_at: Option<Spanned<String>>,
    #[serde(default)]
    discovered_at: Option<Spanned<String>>,
    #[serde(default)]
    aware_at: Option<Spanned<String>>,
    #[serde(default)]
    aware_significant_at: Option<Spanned<String>>,
    #[serde(default)]
    reasonable_belief_at: Option<Spanned<String>>,
    #[serde(default)]
    classified_at: Option<Spanned<String>>,
    #[serde(default)]
    breach_determined_at: Option<Spanned<String>>,
    #[serde(default)]
    materiality_determined_at: Option<Spanned<String>>,
    #[serde(default)]
    ransom_paid_at: Option<Spanned<String>>,
    time_zone: Spanned<String>,
    #[serde(default)]
    answers: BTreeMap<String, bool>,
    #[serde(default)]
    submitted: BTreeMap<String, Spanned<String>>,
}

fn instant(c: &mut Checker<'_>, raw: &Spanned<String>, field: &str) -> Option<Timestamp> {
    match raw.get_ref().parse::<Timestamp>() {
        Ok(t) => Some(t),
        Err(e) => {
            c.error(
                raw.span(),
                field,
                format!(
                    "found `{}` ({e}); expected an RFC 3339 instant with offset, e.g. 2026-03-28T06:15:00+01:00",
                    raw.get_ref()
                ),
            );
            None
        }
    }
}

/// Parses an incident facts file. `file` names it in errors. Times must be in order:
/// nothing before `occurred_at`, detection before awareness is fine but determinations
/// (classification, materiality, breach) not before `aware_at`; `ransom_paid_at` only with
/// `ransom_paid = true`.
pub fn parse_facts(file: &str, text: &str) -> Result<IncidentFacts, IncidentErrors> {
    let mut c = Checker::new(file, text);
    let raw: Option<RawFacts> = c.parse();
    let facts = raw.and_then(|raw| check_facts(&mut c, raw));
    c.finish(facts)
}

fn check_facts(c: &mut Checker<'_>, raw: RawFacts) -> Option<IncidentFacts> {
    let mut jurisdictions = Vec::new();
    for j in raw.jurisdictions.get_ref() {
        match j.get_ref().parse::<PartyCode>() {
            Ok(p) if !jurisdictions.contains(&p) => jurisdictions.push(p),
            Ok(p) => c.error(j.span(), "jurisdictions", format!("found `{p}` twice")),
            Err(e) => c.error(j.span(), "jurisdictions", e.to_string()),
        }
    }
    if raw.jurisdictions.get_ref().is_empty() {
        c.error(
            raw.jurisdictions.span(),
            "jurisdictions",
            "found none; expected at least one party code (e.g. NL)".to_owned(),
        );
    }
    let sector = raw.sector.as_ref().and_then(|s| name_of!(c, Sector, s, "sector"));
    let entity_types = raw.entity_type.as_ref().map(|v| {
        v.iter().filter_map(|e| name_of!(c, EntityType, e, "entity_type")).collect::<Vec<_>>()
    });
    let named: [(&str, &Option<Spanned<String>>); 10] = [
        ("occurred_at", &raw.occurred_at),
        ("detected_at", &raw.detected_at),
        ("discovered_at", &raw.discovered_at),
        ("aware_at", &raw.aware_at),
        ("aware_significant_at", &raw.aware_significant_at),
        ("reasonable_belief_at", &raw.reasonable_belief_at),
        ("classified_at", &raw.classified_at),
        ("breach_determined_at", &raw.breach_determined_at),
        ("materiality_determined_at", &raw.materiality_determined_at),
        ("ransom_paid_at", &raw.ransom_paid_at),
    ];
    let mut instants = BTreeMap::new();
    let mut spans = BTreeMap::new();
    for (field, value) in named {
        if let Some(v) = value
            && let Some(t) = instant(c, v, field)
        {
            instants.insert(field.to_owned(), t);
            spans.insert(field, v.span());
        }
    }
    let order = |c: &mut Checker<'_>, earlier: &str, later: &str, why: &str| {
        if let (Some(e), Some(l), Some(span)) =
            (instants.get(earlier), instants.get(later), spans.get(later))
            && l < e
        {
            c.error(span.clone(), later, format!("{later} ({l}) is before {earlier} ({e}); {why}"));
        }
    };
    for f in INSTANT_FIELDS.iter().skip(1) {
        order(c, "occurred_at", f, "nothing can happen before the incident occurred");
    }
    for f in AFTER_AWARENESS {
        order(c, "aware_at", f, "a determination about the incident needs awareness of it");
    }
    let ransom_paid = raw.ransom_paid.as_ref().map(|b| *b.get_ref());
    if ransom_paid != Some(true)
        && let Some(span) = spans.get("ransom_paid_at")
    {
        c.error(
            span.clone(),
            "ransom_paid_at",
            "a payment instant is given but ransom_paid is not true; set ransom_paid = true or remove ransom_paid_at".to_owned(),
        );
    }
    let time_zone = match TimeZone::get(raw.time_zone.get_ref()) {
        Ok(tz) => Some(tz),
        Err(e) => {
            c.error(
                raw.time_zone.span(),
                "time_zone",
                format!(
                    "found `{}` ({e}); expected an IANA time zone name such as Europe/Amsterdam",
                    raw.time_zone.get_ref()
                ),
            );
            None
        }
    };
    let mut submitted = BTreeMap::new();
    for (k, v) in &raw.submitted {
        if !k.contains('/') {
            c.error(
                v.span(),
                &format!("submitted.{k}"),
                "expected a key `regime/report`, e.g. \"nis2/notification\"".to_owned(),
            );
        }
        if let Some(t) = instant(c, v, &format!("submitted.{k}")) {
            submitted.insert(k.clone(), t);
        }
    }
    let id = raw.id.get_ref().trim().to_owned();
    if id.is_empty() {
        c.error(raw.id.span(), "id", "found an empty id".to_owned());
    }
    Some(IncidentFacts {
        id,
        jurisdictions,
        sector,
        entity_types,
        personal_data: raw.personal_data,
        ransom_paid,
        listed_company: raw.listed_company,
        instants,
        time_zone_name: raw.time_zone.get_ref().clone(),
        time_zone: time_zone?,
        answers: raw.answers,
        submitted,
    })
}

// ---------------------------------------------------------------------------------------------
// Assessment

/// When an obligation is due.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Due {
    /// At this instant.
    At {
        /// In UTC.
        utc: Timestamp,
        /// In the incident's time zone.
        local: Zoned,
        /// Set when the instant is derived from another deadline rather than a fact (a
        /// report anchored to a prior report not yet submitted: the latest possible instant).
        provisional: Option<String>,
    },
    /// "Without undue delay", no fixed ceiling in the text.
    WithoutUndueDelay,
    /// Cannot be computed: these facts are missing.
    Unknown {
        /// The missing facts (field names or descriptions).
        missing: Vec<String>,
    },
}

/// One obligation of the incident.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Obligation {
    /// Regime id.
    pub regime: String,
    /// Regime title.
    pub regime_title: String,
    /// Legislative stage of the regime.
    pub stage: Stage,
    /// Report id.
    pub report: String,
    /// Report name.
    pub report_name: String,
    /// Recipient.
    pub recipient: String,
    /// The deadline, in words (bounds joined by "whichever is earlier").
    pub deadline: String,
    /// What starts the clock: the bound that decided, with its fact and instant.
    pub clock_starts: String,
    /// The text pairs the deadline with "without undue delay".
    pub without_undue_delay: bool,
    /// When it is due.
    pub due: Due,
    /// The facts that made it apply.
    pub applies_because: Vec<String>,
    /// Verification status of the deadline (the weaker of regime and report).
    pub status: VerificationStatus,
    /// True when the status is U: the deadline is stated without a source and must be checked before relying on it.
    pub unverified: bool,
    /// Caveats: legislative stage, holidays not skipped, notes from the facts file.
    pub notes: Vec<String>,
    /// Source keys.
    pub sources: Vec<String>,
}

/// A fact whose answer decides applicability or a deadline, asked for instead of assumed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Question {
    /// The regime that needs it.
    pub regime: String,
    /// The field of the facts file (or `answers.<key>`) that answers it.
    pub field: String,
    /// The question.
    pub text: String,
}

/// A regime that does not apply, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NotApplicable {
    /// Regime id (and report id, for a report that does not apply).
    pub regime: String,
    /// Why.
    pub reason: String,
}

/// One line of the harmonized timeline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimelineEntry {
    /// Due, UTC.
    pub utc: Timestamp,
    /// Due, local.
    pub local: Zoned,
    /// Regime id.
    pub regime: String,
    /// Report name.
    pub report_name: String,
    /// Recipient.
    pub recipient: String,
    /// Provisional (derived from another deadline).
    pub provisional: bool,
    /// Unverified deadline.
    pub unverified: bool,
}

/// The result of [`assess`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Assessment {
    /// The incident id.
    pub incident: String,
    /// The incident's time zone.
    pub time_zone: String,
    /// Every obligation found, regime by regime.
    pub obligations: Vec<Obligation>,
    /// Facts that are missing and decide applicability or a deadline.
    pub questions: Vec<Question>,
    /// Regimes (and reports) that do not apply, with the reason.
    pub not_applicable: Vec<NotApplicable>,
    /// Dated obligations sorted by due instant.
    pub timeline: Vec<TimelineEntry>,
    /// Answers given in the facts file that no regime asks.
    pub unused_answers: Vec<String>,
}

enum Check {
    Met(Vec<String>),
    NotMet(String),
    Unknown(Vec<Question>),
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn check_conditions(
    regime: &Regime,
    conds: &Conditions,
    facts: &IncidentFacts,
    whose: &str,
) -> Check {
    let mut met = Vec::new();
    let mut unknown = Vec::new();
    let q = |field: &str, text: String| Question {
        regime: regime.id.clone(),
        field: field.to_owned(),
        text,
    };
    if let Some(types) = &conds.entity_types {
        let names = types.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ");
        match &facts.entity_types {
            None => unknown.push(q(
                "entity_type",
                format!("Is the entity one of these under {}: {names}?", regime.title),
            )),
            Some(given) => match given.iter().find(|t| types.contains(t)) {
                Some(t) => met.push(format!("entity_type = {t}")),
                None => {
                    return Check::NotMet(format!("{whose} applies to entity types {names} only"));
                }
            },
        }
    }
    if let Some(sectors) = &conds.sectors {
        let names = sectors.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ");
        match facts.sector {
            None => unknown.push(q("sector", format!("Is the entity in the sector {names}?"))),
            Some(s) if sectors.contains(&s) => met.push(format!("sector = {s}")),
            Some(_) => return Check::NotMet(format!("{whose} applies to sectors {names} only")),
        }
    }
    let flags: [(&str, Option<bool>, Option<bool>, &str); 3] = [
        ("personal_data", conds.personal_data, facts.personal_data, "Is personal data involved?"),
        ("ransom_paid", conds.ransom_paid, facts.ransom_paid, "Was a ransom paid?"),
        (
            "listed_company",
            conds.listed_company,
            facts.listed_company,
            "Is the entity a listed (public) company?",
        ),
    ];
    for (field, wanted, given, text) in flags {
        if let Some(w) = wanted {
            match given {
                None => unknown.push(q(field, text.to_owned())),
                Some(g) if g == w => met.push(format!("{field} = {g}")),
                Some(_) => {
                    return Check::NotMet(format!("{whose} requires {field} = {}", yes_no(w)));
                }
            }
        }
    }
    for key in &conds.requires {
        let text = regime.questions.get(key).cloned().unwrap_or_else(|| key.clone());
        match facts.answers.get(key) {
            None => unknown.push(q(&format!("answers.{key}"), text)),
            Some(true) => met.push(format!("answers.{key} = yes")),
            Some(false) => return Check::NotMet(format!("answers.{key} = no")),
        }
    }
    if unknown.is_empty() { Check::Met(met) } else { Check::Unknown(unknown) }
}

fn weaker(a: VerificationStatus, b: VerificationStatus) -> VerificationStatus {
    a.max(b)
}

/// Adds `bound` to `from`. Hours are elapsed time; calendar days and months are calendar
/// arithmetic in `tz`; business days skip Saturdays and Sundays in `tz` (no holidays).
pub fn add_bound(from: Timestamp, bound: &Bound, tz: &TimeZone) -> Option<Timestamp> {
    let n = i64::from(bound.amount);
    match bound.unit {
        Unit::Hours => from.checked_add(SignedDuration::from_hours(n)).ok(),
        Unit::CalendarDays => {
            from.to_zoned(tz.clone()).checked_add(n.days()).ok().map(|z| z.timestamp())
        }
        Unit::CalendarMonths => {
            from.to_zoned(tz.clone()).checked_add(n.months()).ok().map(|z| z.timestamp())
        }
        Unit::BusinessDays => {
            let mut z = from.to_zoned(tz.clone());
            let mut left = n;
            while left > 0 {
                z = z.checked_add(1.day()).ok()?;
                if !matches!(
                    z.weekday(),
                    jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
                ) {
                    left -= 1;
                }
            }
            Some(z.timestamp())
        }
    }
}

struct Computed {
    due: Due,
    clock: String,
    /// The rule that produced the due instant (empty when none was computed).
    rule: String,
}

/// The due instant of `bound` from `t`, and the rule that produced it. SEC Form 8-K business
/// days are counted by [`crate::period`] (General Instruction B.1, US federal holidays);
/// every other bound is elapsed time (calendar days and months in the incident's time zone),
/// never extended for weekends or holidays.
fn due_of(
    regime: &Regime,
    t: Timestamp,
    b: &Bound,
    facts: &IncidentFacts,
) -> Option<(Timestamp, String)> {
    use crate::period::{Length, Place, Rule, calendar::Calendars, compute};
    if regime.id == "sec-8k" && b.unit == Unit::BusinessDays {
        let cals = Calendars::builtin().unwrap_or_default();
        let end = compute(
            &cals,
            t,
            Length::BusinessDays(b.amount),
            &Rule::SecBusinessDays,
            Place { party: "US", region: None },
        )
        .ok()?;
        return Some((end.end, end.summary()));
    }
    let due = add_bound(t, b, &facts.time_zone)?;
    let mut rule = format!(
        "{b}: elapsed time from the anchor (calendar days and months in the incident's time zone), not extended for weekends or public holidays (the regime states no roll-over)"
    );
    if regime.id == "dora" {
        rule.push_str("; the weekend/holiday relief of Delegated Regulation (EU) 2025/301 Art 5(4)-(5) (status U) is not applied: whether it applies to the entity is not known");
    }
    Some((due, rule))
}

fn compute_due(
    regime: &Regime,
    report: &Report,
    facts: &IncidentFacts,
    earlier: &BTreeMap<String, Option<(Timestamp, bool)>>,
) -> Computed {
    if report.deadline.is_empty() {
        return Computed {
            due: Due::WithoutUndueDelay,
            clock: "no fixed ceiling in the text".to_owned(),
            rule: String::new(),
        };
    }
    let mut missing = Vec::new();
    let mut candidates: Vec<(Timestamp, String, bool, String)> = Vec::new();
    for b in &report.deadline {
        let start: Option<(Timestamp, String, bool)> = match (b.anchor.fact(), &b.prior_report) {
            (Some(f), _) => match facts.instants.get(f) {
                Some(t) => Some((*t, format!("{f} {t}"), false)),
                None => {
                    missing.push(f.to_owned());
                    None
                }
            },
            (None, Some(p)) => {
                let key = format!("{}/{p}", regime.id);
                if let Some(t) = facts.submitted.get(&key) {
                    Some((*t, format!("submitted.\"{key}\" {t}"), false))
                } else {
                    match earlier.get(p).copied().flatten() {
                        Some((t, _)) => Some((
                            t,
                            format!("{p} not yet submitted: its deadline {t} (latest case)"),
                            true,
                        )),
                        None => {
                            missing.push(format!("submitted.\"{key}\""));
                            None
                        }
                    }
                }
            }
            (None, None) => None,
        };
        if let Some((t, label, prov)) = start
            && let Some((due, rule)) = due_of(regime, t, b, facts)
        {
            candidates.push((due, format!("{} ({label})", b.anchor), prov, rule));
        }
    }
    if let Some(from) = report.obliged_from {
        let field = from.fact().unwrap_or("?");
        match facts.instants.get(field) {
            None => {
                if !missing.iter().any(|m| m == field) {
                    missing.push(field.to_owned());
                }
                return Computed {
                    due: Due::Unknown { missing },
                    clock: format!("the obligation arises at {from} ({field})"),
                    rule: String::new(),
                };
            }
            Some(t) => candidates.retain(|(due, _, _, _)| due >= t),
        }
    }
    if !missing.is_empty() {
        return Computed {
            due: Due::Unknown { missing: missing.clone() },
            clock: format!("needs {}", missing.join(", ")),
            rule: String::new(),
        };
    }
    match candidates.into_iter().min_by_key(|(t, _, _, _)| *t) {
        Some((utc, clock, prov, rule)) => Computed {
            due: Due::At {
                utc,
                local: utc.to_zoned(facts.time_zone.clone()),
                provisional: prov.then(|| {
                    "the prior report has not been submitted: this is the latest due instant, if it is submitted at its own deadline".to_owned()
                }),
            },
            clock,
            rule,
        },
        None => Computed {
            due: Due::Unknown { missing: vec!["a deadline bound".to_owned()] },
            clock: "no bound could be computed".to_owned(),
            rule: String::new(),
        },
    }
}

/// Assesses an incident against the regimes: every obligation, the questions whose answers
/// decide applicability or a deadline (never assumed), the regimes that do not apply, and the
/// timeline sorted by due instant.
pub fn assess(facts: &IncidentFacts, regimes: &[Regime]) -> Assessment {
    let mut obligations = Vec::new();
    let mut questions: Vec<Question> = Vec::new();
    let mut not_applicable = Vec::new();
    let mut asked: BTreeSet<String> = BTreeSet::new();
    for regime in regimes {
        let here: Vec<&PartyCode> =
            facts.jurisdictions.iter().filter(|j| regime.jurisdictions.contains(j)).collect();
        if here.is_empty() {
            not_applicable.push(NotApplicable {
                regime: regime.id.clone(),
                reason: format!(
                    "no incident jurisdiction is among {}",
                    regime
                        .jurisdictions
                        .iter()
                        .map(PartyCode::as_str)
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            });
            continue;
        }
        let jur = format!(
            "jurisdictions include {}",
            here.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
        );
        let regime_met = match check_conditions(regime, &regime.conditions, facts, "the regime") {
            Check::NotMet(reason) => {
                not_applicable.push(NotApplicable { regime: regime.id.clone(), reason });
                continue;
            }
            Check::Unknown(qs) => {
                questions.extend(qs);
                continue;
            }
            Check::Met(m) => m,
        };
        let mut earlier: BTreeMap<String, Option<(Timestamp, bool)>> = BTreeMap::new();
        for report in &regime.reports {
            let met = match check_conditions(regime, &report.conditions, facts, "the report") {
                Check::NotMet(reason) => {
                    not_applicable.push(NotApplicable {
                        regime: format!("{}/{}", regime.id, report.id),
                        reason,
                    });
                    continue;
                }
                Check::Unknown(qs) => {
                    questions.extend(qs);
                    continue;
                }
                Check::Met(m) => m,
            };
            let computed = compute_due(regime, report, facts, &earlier);
            earlier.insert(
                report.id.clone(),
                match &computed.due {
                    Due::At { utc, provisional, .. } => Some((*utc, provisional.is_some())),
                    _ => None,
                },
            );
            if let Due::Unknown { missing } = &computed.due {
                for m in missing {
                    questions.push(Question {
                        regime: regime.id.clone(),
                        field: m.clone(),
                        text: format!(
                            "When did this happen ({m})? It starts the clock of {} {}.",
                            regime.title, report.name
                        ),
                    });
                }
            }
            let status = weaker(regime.status, report.status);
            let mut notes = Vec::new();
            if regime.stage != Stage::InForce {
                notes.push(format!(
                    "regime is {}: {}",
                    regime.stage,
                    regime.stage_note.clone().unwrap_or_default()
                ));
            }
            if status == VerificationStatus::U {
                notes.push(
                    "UNVERIFIED deadline (status U): stated without a source; check it before relying on it".to_owned(),
                );
            }
            if regime.id != "sec-8k" && report.deadline.iter().any(|b| b.unit == Unit::BusinessDays)
            {
                notes.push("business days counted Monday-Friday in the incident's time zone; public holidays not skipped (no calendar for this regime)".to_owned());
            }
            if !computed.rule.is_empty() {
                notes.push(format!("rule: {}", computed.rule));
            }
            if let Some(n) = &report.note {
                notes.push(n.clone());
            }
            let mut applies_because = vec![jur.clone()];
            for m in regime_met.iter().cloned().chain(met) {
                if !applies_because.contains(&m) {
                    applies_because.push(m);
                }
            }
            obligations.push(Obligation {
                regime: regime.id.clone(),
                regime_title: regime.title.clone(),
                stage: regime.stage,
                report: report.id.clone(),
                report_name: report.name.clone(),
                recipient: report.recipient.clone(),
                deadline: if report.deadline.is_empty() {
                    "without undue delay".to_owned()
                } else {
                    report
                        .deadline
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", whichever is earlier: ")
                },
                clock_starts: computed.clock,
                without_undue_delay: report.without_undue_delay,
                due: computed.due,
                applies_because,
                status,
                unverified: status == VerificationStatus::U,
                notes,
                sources: report.sources.clone(),
            });
        }
        for key in regime.questions.keys() {
            asked.insert(key.clone());
        }
    }
    let mut seen = BTreeSet::new();
    questions.retain(|q| seen.insert((q.regime.clone(), q.field.clone())));
    let mut timeline: Vec<TimelineEntry> = obligations
        .iter()
        .filter_map(|o| match &o.due {
            Due::At { utc, local, provisional } => Some(TimelineEntry {
                utc: *utc,
                local: local.clone(),
                regime: o.regime.clone(),
                report_name: o.report_name.clone(),
                recipient: o.recipient.clone(),
                provisional: provisional.is_some(),
                unverified: o.unverified,
            }),
            _ => None,
        })
        .collect();
    timeline.sort_by(|a, b| a.utc.cmp(&b.utc).then_with(|| a.regime.cmp(&b.regime)));
    let all_keys: BTreeSet<&String> = regimes.iter().flat_map(|r| r.questions.keys()).collect();
    let unused_answers = facts.answers.keys().filter(|k| !all_keys.contains(k)).cloned().collect();
    Assessment {
        incident: facts.id.clone(),
        time_zone: facts.time_zone_name.clone(),
        obligations,
        questions,
        not_applicable,
        timeline,
        unused_answers,
    }
}
