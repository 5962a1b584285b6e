//! The common offence lexicon and the dual-criminality check.
//!
//! The lexicon has three parts, each read from TOML text (the caller does the I/O; the data
//! shipped with Entente is embedded, see [`Lexicon::builtin`]):
//! - the common concepts: the substantive offences of the Budapest Convention on Cybercrime
//!   (ETS 185), Articles 2–11, and the Convention's dual-criminality rules (Art 24(1)(a): a
//!   maximum custodial penalty of at least one year in both parties; Art 25(5): the conduct
//!   decides, not the name of the offence);
//! - jurisdiction profiles: national provisions with their citation, description, the
//!   concept(s) they implement, their maximum custodial penalty, sources and a verification
//!   status for the offence and for the penalty;
//! - the sources the status tags refer to.
//!
//! Every fact carries its [`VerificationStatus`]. The check never treats an unverified (`U`)
//! fact as true: when the verdict depends on one, it is [`Verdict::Undetermined`] and the
//! result names the fact.

use crate::ids::PartyCode;
use crate::source_error::{FieldNames, SourceChecker, SourceError, SourceText, write_problems};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use toml::Spanned;

/// Largest maximum penalty the data may give, in months (100 years); life imprisonment is
/// written `aggravated_life = true`, not as a number.
pub const MAX_PENALTY_MONTHS: u32 = 1200;

const CONCEPTS_TOML: &str = include_str!("../../../data/lexicon/concepts.toml");
const SOURCES_TOML: &str = include_str!("../../../data/lexicon/sources.toml");
const JURISDICTIONS_TOML: [(&str, &str); 8] = [
    (
        "data/lexicon/jurisdictions/au.toml",
        include_str!("../../../data/lexicon/jurisdictions/au.toml"),
    ),
    (
        "data/lexicon/jurisdictions/ca.toml",
        include_str!("../../../data/lexicon/jurisdictions/ca.toml"),
    ),
    (
        "data/lexicon/jurisdictions/de.toml",
        include_str!("../../../data/lexicon/jurisdictions/de.toml"),
    ),
    (
        "data/lexicon/jurisdictions/fr.toml",
        include_str!("../../../data/lexicon/jurisdictions/fr.toml"),
    ),
    (
        "data/lexicon/jurisdictions/jp.toml",
        include_str!("../../../data/lexicon/jurisdictions/jp.toml"),
    ),
    (
        "data/lexicon/jurisdictions/nl.toml",
        include_str!("../../../data/lexicon/jurisdictions/nl.toml"),
    ),
    (
        "data/lexicon/jurisdictions/uk.toml",
        include_str!("../../../data/lexicon/jurisdictions/uk.toml"),
    ),
    (
        "data/lexicon/jurisdictions/us.toml",
        include_str!("../../../data/lexicon/jurisdictions/us.toml"),
    ),
];

// ---------------------------------------------------------------------------------------------
// Public model

/// How far a fact was verified (the legend of the research notes the data comes from).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum VerificationStatus {
    /// Verified against the primary text (statute or treaty wording).
    V1,
    /// Verified against a reputable secondary source quoting or summarising the text.
    V2,
    /// Partially verified: the offence was confirmed but a detail was not, or sources conflict.
    P,
    /// Unverified: stated without a source; never a basis for an automated decision.
    U,
}

impl VerificationStatus {
    /// The tag as written in the data: `V1`, `V2`, `P` or `U`.
    pub fn as_str(self) -> &'static str {
        match self {
            VerificationStatus::V1 => "V1",
            VerificationStatus::V2 => "V2",
            VerificationStatus::P => "P",
            VerificationStatus::U => "U",
        }
    }

    /// What the tag means, in a few words.
    pub fn meaning(self) -> &'static str {
        match self {
            VerificationStatus::V1 => "verified (primary text)",
            VerificationStatus::V2 => "verified (secondary source)",
            VerificationStatus::P => "partially verified",
            VerificationStatus::U => "unverified",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "V1" => Some(VerificationStatus::V1),
            "V2" => Some(VerificationStatus::V2),
            "P" => Some(VerificationStatus::P),
            "U" => Some(VerificationStatus::U),
            _ => None,
        }
    }
}

impl fmt::Display for VerificationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A common offence concept: one substantive offence article of ETS 185.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Concept {
    /// Stable id, e.g. `illegal-access`.
    pub id: String,
    /// The ETS 185 article (2–11).
    pub article: u8,
    /// The article's heading, e.g. "Illegal access".
    pub name: String,
    /// The elements of the offence (paraphrased).
    pub elements: String,
    /// Optional limits and reservations the Convention allows, if any.
    pub limits: Option<String>,
    /// Verification status of this row.
    pub status: VerificationStatus,
    /// Source keys.
    pub sources: Vec<String>,
}

/// The Convention's dual-criminality rules, as the data states them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DualCriminalityRules {
    /// Default threshold: the statutory maximum must be at least this many months.
    pub threshold_months: u32,
    /// Where the threshold comes from (citation and wording).
    pub threshold_basis: String,
    /// The conduct rule (citation and wording).
    pub conduct_basis: String,
    /// Verification status of these rules.
    pub status: VerificationStatus,
    /// Source keys.
    pub sources: Vec<String>,
}

/// The maximum custodial penalty of a provision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Penalty {
    /// Statutory maximum of the basic offence, in months; `None` when the data gives no
    /// figure. Where sources give several figures for the basic forms, the lowest.
    pub max_months: Option<u32>,
    /// The maximum is *at least* `max_months` (it follows another offence's penalty).
    pub at_least: bool,
    /// Highest maximum of aggravated forms, in months, when the data gives one.
    pub aggravated_max_months: Option<u32>,
    /// An aggravated form carries life imprisonment.
    pub aggravated_life: bool,
    /// The penalty as the research notes state it.
    pub text: String,
    /// Verification status of the penalty figures.
    pub status: VerificationStatus,
}

impl Penalty {
    /// Whether some aggravated form reaches `months`.
    pub fn aggravated_reaches(&self, months: u32) -> bool {
        self.aggravated_life || self.aggravated_max_months.is_some_and(|a| a >= months)
    }

    /// A short rendering: `24 months`, `≥ 60 months`, `12 months (aggravated: life)`, `none given`.
    pub fn summary(&self) -> String {
        let base = match self.max_months {
            Some(m) if self.at_least => format!("≥ {m} months"),
            Some(m) => format!("{m} months"),
            None => "none given".to_owned(),
        };
        let aggravated = if self.aggravated_life {
            Some("life".to_owned())
        } else {
            self.aggravated_max_months.map(|a| format!("{a} months"))
        };
        match aggravated {
            Some(a) => format!("{base} (aggravated: {a})"),
            None => base,
        }
    }
}

/// A national provision and the concepts it implements.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Provision {
    /// The citation, e.g. `Sr 138ab(1)` or `18 U.S.C. §1030(a)(2)`.
    pub citation: String,
    /// Other accepted citations of the same provision, e.g. `Sr 138ab`.
    pub aliases: Vec<String>,
    /// What the provision makes an offence.
    pub description: String,
    /// Ids of the concepts it implements (empty: the data maps it to no ETS 185 article).
    pub concepts: Vec<String>,
    /// A remark, e.g. why no concept is given.
    pub note: Option<String>,
    /// Verification status of the offence and its mapping to the concepts.
    pub status: VerificationStatus,
    /// The research notes' status cell, verbatim.
    pub status_note: Option<String>,
    /// Source keys.
    pub sources: Vec<String>,
    /// `hybrid`, `indictable` or `summary`, when the data says.
    pub procedure: Option<String>,
    /// The mental element: intent unless the data says otherwise (the ETS 185 offences
    /// require intent, `concepts.toml`).
    #[serde(skip_serializing_if = "MensRea::is_intent")]
    pub mens_rea: MensRea,
    /// The maximum custodial penalty.
    pub penalty: Penalty,
}

/// The mental element an offence requires.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MensRea {
    /// Intent (the default, and what the ETS 185 offences require).
    #[default]
    Intent,
    /// Recklessness as to the result.
    Recklessness,
    /// Negligence (a culpable, not intended, result).
    Negligence,
}

impl MensRea {
    /// `intent`, `recklessness`, `negligence`.
    pub fn as_str(self) -> &'static str {
        match self {
            MensRea::Intent => "intent",
            MensRea::Recklessness => "recklessness",
            MensRea::Negligence => "negligence",
        }
    }

    fn is_intent(&self) -> bool {
        *self == MensRea::Intent
    }
}

impl Provision {
    /// Whether the provision implements at least one concept that `other` implements: the
    /// conduct test of ETS 185 Art 25(5). Symmetric.
    pub fn shares_conduct_with(&self, other: &Provision) -> bool {
        self.concepts.iter().any(|c| other.concepts.contains(c))
    }

    /// Whether the provision or its penalty rests on an unverified fact.
    pub fn has_unverified_fact(&self) -> bool {
        self.status == VerificationStatus::U
            || self.penalty.status == VerificationStatus::U
            || self.penalty.max_months.is_none()
    }
}

/// A jurisdiction's profile: the party and its provisions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Jurisdiction {
    /// The party (ISO 3166-1 alpha-2; the United Kingdom is `GB`).
    pub party: PartyCode,
    /// Its name.
    pub name: String,
    /// The body of law the provisions come from.
    pub law: String,
    /// A remark that applies to the whole profile.
    pub note: Option<String>,
    /// The provisions, in the data's order.
    pub provisions: Vec<Provision>,
}

/// A source a status tag refers to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Source {
    /// The key used in the data, e.g. `BC`.
    pub key: String,
    /// Where the stored copy came from.
    pub text: String,
}

/// The validated lexicon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Lexicon {
    /// The Convention's dual-criminality rules.
    pub rules: DualCriminalityRules,
    /// The concepts, by article.
    pub concepts: Vec<Concept>,
    /// The jurisdictions, in the order of the files given.
    pub jurisdictions: Vec<Jurisdiction>,
    /// The sources.
    pub sources: Vec<Source>,
}

// ---------------------------------------------------------------------------------------------
// Errors

/// One problem in the lexicon data, with its position.
///
/// The positioned problem shared by every TOML format: [`SourceError`].
pub type LexiconError = SourceError;

/// Every problem found in the lexicon data (at least one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LexiconErrors(pub Vec<LexiconError>);

impl fmt::Display for LexiconErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_problems(f, "lexicon data", &self.0)
    }
}

impl std::error::Error for LexiconErrors {}

/// A name given to a lexicon query that matches nothing (or several things).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// No jurisdiction has this code or name.
    #[error("unknown jurisdiction `{given}`{}; the lexicon has {}", did_you_mean(suggestions), known.join(", "))]
    UnknownJurisdiction {
        /// What was asked for.
        given: String,
        /// Close matches (`CODE (Name)`).
        suggestions: Vec<String>,
        /// Every jurisdiction (`CODE (Name)`).
        known: Vec<String>,
    },
    /// The jurisdiction has no provision with this citation.
    #[error("unknown provision `{given}` in {party}{}", if suggestions.is_empty() { format!("; its provisions are: {}", known.join("; ")) } else { did_you_mean(suggestions) })]
    UnknownProvision {
        /// The jurisdiction.
        party: PartyCode,
        /// What was asked for.
        given: String,
        /// Close matches.
        suggestions: Vec<String>,
        /// Every citation of the jurisdiction.
        known: Vec<String>,
    },
    /// The citation names several provisions.
    #[error("provision `{given}` in {party} is ambiguous: it matches {}; give one of them", candidates.join("; "))]
    AmbiguousProvision {
        /// The jurisdiction.
        party: PartyCode,
        /// What was asked for.
        given: String,
        /// The provisions it matches.
        candidates: Vec<String>,
    },
    /// No concept has this id (or article number).
    #[error("unknown concept `{given}`{}; the concepts are: {}", did_you_mean(suggestions), known.join(", "))]
    UnknownConcept {
        /// What was asked for.
        given: String,
        /// Close matches.
        suggestions: Vec<String>,
        /// Every concept id.
        known: Vec<String>,
    },
}

fn did_you_mean(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", suggestions.join(" or "))
    }
}

// ---------------------------------------------------------------------------------------------
// Raw TOML shapes

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConcepts {
    dual_criminality: RawRules,
    #[serde(default)]
    concept: Vec<RawConcept>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    threshold_months: Spanned<i64>,
    threshold_basis: String,
    conduct_basis: String,
    status: Spanned<String>,
    #[serde(default)]
    sources: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConcept {
    id: Spanned<String>,
    article: Spanned<i64>,
    name: String,
    elements: String,
    #[serde(default)]
    limits: Option<String>,
    status: Spanned<String>,
    #[serde(default)]
    sources: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSources {
    #[serde(default)]
    source: Vec<RawSource>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    key: Spanned<String>,
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJurisdiction {
    party: Spanned<String>,
    name: String,
    law: String,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    provision: Vec<RawProvision>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvision {
    citation: Spanned<String>,
    #[serde(default)]
    aliases: Vec<Spanned<String>>,
    description: String,
    concepts: Vec<Spanned<String>>,
    #[serde(default)]
    note: Option<String>,
    status: Spanned<String>,
    #[serde(default)]
    status_note: Option<String>,
    #[serde(default)]
    sources: Vec<Spanned<String>>,
    #[serde(default)]
    procedure: Option<Spanned<String>>,
    #[serde(default)]
    mens_rea: Option<Spanned<String>>,
    penalty: RawPenalty,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPenalty {
    #[serde(default)]
    max_months: Option<Spanned<i64>>,
    #[serde(default)]
    at_least: bool,
    #[serde(default)]
    aggravated_max_months: Option<Spanned<i64>>,
    #[serde(default)]
    aggravated_life: bool,
    text: String,
    status: Spanned<String>,
}

/// One file being validated: its name, its text and the problems found so far.
struct Checker<'a> {
    file: &'a str,
    text: &'a str,
    errors: &'a mut Vec<LexiconError>,
}

impl SourceChecker for Checker<'_> {
    const FIELD_NAMES: FieldNames = FieldNames { table_headers: false, hyphens: false };
    fn source(&self) -> SourceText<'_> {
        SourceText::new(self.file, self.text)
    }
    fn push(&mut self, error: SourceError) {
        self.errors.push(error);
    }
}

impl Checker<'_> {
    fn status(&mut self, raw: &Spanned<String>, field: &str) -> VerificationStatus {
        match VerificationStatus::parse(raw.get_ref()) {
            Some(s) => s,
            None => {
                self.error(
                    raw.span(),
                    field,
                    format!("found `{}`; expected a status tag: V1, V2, P or U", raw.get_ref()),
                );
                VerificationStatus::U
            }
        }
    }

    fn months(&mut self, raw: &Spanned<i64>, field: &str) -> Option<u32> {
        let v = *raw.get_ref();
        match u32::try_from(v) {
            Ok(m) if (1..=MAX_PENALTY_MONTHS).contains(&m) => Some(m),
            _ => {
                self.error(
                    raw.span(),
                    field,
                    format!(
                        "found {v}; expected a number of months from 1 to {MAX_PENALTY_MONTHS} (write life imprisonment as `aggravated_life = true`; leave the field out when no figure is known)"
                    ),
                );
                None
            }
        }
    }

    fn sources(
        &mut self,
        raw: &[Spanned<String>],
        field: &str,
        known: &BTreeSet<String>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for s in raw {
            if !known.contains(s.get_ref()) {
                let hint = did_you_mean(&closest(s.get_ref(), known.iter().map(String::as_str), 3));
                self.error(
                    s.span(),
                    field,
                    format!(
                        "found `{}`; expected a source key from sources.toml{hint}",
                        s.get_ref()
                    ),
                );
            }
            out.push(s.get_ref().clone());
        }
        out
    }
}

fn is_kebab_id(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

// ---------------------------------------------------------------------------------------------
// Loading

impl Lexicon {
    /// The lexicon shipped with Entente (`data/lexicon/`), embedded at build time.
    ///
    /// # Errors
    /// Only if the shipped data is invalid, which a test rules out.
    pub fn builtin() -> Result<Lexicon, LexiconErrors> {
        Lexicon::parse(
            ("data/lexicon/concepts.toml", CONCEPTS_TOML),
            ("data/lexicon/sources.toml", SOURCES_TOML),
            &JURISDICTIONS_TOML,
        )
    }

    /// Parses and validates lexicon text. Each argument is a `(file name, text)` pair; the
    /// name is used in error messages only.
    ///
    /// # Errors
    /// Every problem found, each with file, line, column, field, what was found and what is
    /// expected: TOML syntax, unknown or missing fields, a bad status tag, a duplicate concept
    /// id or citation, an unknown concept id or source key, an unknown party code, a penalty
    /// that is not a plausible number of months, a jurisdiction given twice.
    pub fn parse(
        concepts: (&str, &str),
        sources: (&str, &str),
        jurisdictions: &[(&str, &str)],
    ) -> Result<Lexicon, LexiconErrors> {
        let mut errors = Vec::new();

        // Sources first: the other files refer to their keys.
        let mut source_list = Vec::new();
        let mut source_keys = BTreeSet::new();
        {
            let mut c = Checker { file: sources.0, text: sources.1, errors: &mut errors };
            if let Some(raw) = c.parse::<RawSources>() {
                for s in raw.source {
                    let key = s.key.get_ref().trim().to_owned();
                    if key.is_empty() {
                        c.error(
                            s.key.span(),
                            "source.key",
                            "found an empty key; expected a source key such as `BC`".to_owned(),
                        );
                    } else if !source_keys.insert(key.clone()) {
                        c.error(
                            s.key.span(),
                            "source.key",
                            format!("found `{key}` a second time; expected each source key once"),
                        );
                    }
                    source_list.push(Source { key, text: s.text });
                }
            }
        }

        let mut concept_list = Vec::new();
        let mut rules = None;
        {
            let mut c = Checker { file: concepts.0, text: concepts.1, errors: &mut errors };
            if let Some(raw) = c.parse::<RawConcepts>() {
                let r = raw.dual_criminality;
                let threshold = c.months(&r.threshold_months, "dual_criminality.threshold_months");
                let status = c.status(&r.status, "dual_criminality.status");
                let srcs = c.sources(&r.sources, "dual_criminality.sources", &source_keys);
                rules = threshold.map(|threshold_months| DualCriminalityRules {
                    threshold_months,
                    threshold_basis: r.threshold_basis,
                    conduct_basis: r.conduct_basis,
                    status,
                    sources: srcs,
                });
                let mut ids = BTreeSet::new();
                let mut articles = BTreeSet::new();
                for k in raw.concept {
                    let id = k.id.get_ref().clone();
                    if !is_kebab_id(&id) {
                        c.error(k.id.span(), "concept.id", format!("found `{id}`; expected a lowercase id of letters, digits and single hyphens, e.g. `illegal-access`"));
                    } else if !ids.insert(id.clone()) {
                        c.error(
                            k.id.span(),
                            "concept.id",
                            format!("found `{id}` a second time; expected each concept id once"),
                        );
                    }
                    let art = *k.article.get_ref();
                    let article = match u8::try_from(art) {
                        Ok(a) if (2..=11).contains(&a) => {
                            if !articles.insert(a) {
                                c.error(k.article.span(), "concept.article", format!("found article {a} a second time; expected each ETS 185 article once"));
                            }
                            a
                        }
                        _ => {
                            c.error(k.article.span(), "concept.article", format!("found {art}; expected an ETS 185 substantive-offence article from 2 to 11"));
                            0
                        }
                    };
                    let status = c.status(&k.status, "concept.status");
                    let srcs = c.sources(&k.sources, "concept.sources", &source_keys);
                    concept_list.push(Concept {
                        id,
                        article,
                        name: k.name,
                        elements: k.elements,
                        limits: k.limits,
                        status,
                        sources: srcs,
                    });
                }
            }
        }
        concept_list.sort_by_key(|k| k.article);
        let concept_ids: BTreeSet<String> = concept_list.iter().map(|k| k.id.clone()).collect();

        let mut jurisdiction_list: Vec<Jurisdiction> = Vec::new();
        let mut parties: BTreeMap<PartyCode, String> = BTreeMap::new();
        for (file, text) in jurisdictions {
            let mut c = Checker { file, text, errors: &mut errors };
            let Some(raw) = c.parse::<RawJurisdiction>() else { continue };
            let party = match raw.party.get_ref().parse::<PartyCode>() {
                Ok(p) => {
                    if let Some(other) = parties.get(&p) {
                        c.error(raw.party.span(), "party", format!("found {p}, already given by {other}; expected one file per jurisdiction"));
                    } else {
                        parties.insert(p.clone(), (*file).to_owned());
                    }
                    Some(p)
                }
                Err(e) => {
                    c.error(
                        raw.party.span(),
                        "party",
                        format!("found `{}`; {e}", raw.party.get_ref()),
                    );
                    None
                }
            };
            let mut provisions = Vec::new();
            let mut citations: BTreeMap<String, String> = BTreeMap::new();
            for p in raw.provision {
                for name in std::iter::once(&p.citation).chain(p.aliases.iter()) {
                    let norm = normalize_citation(name.get_ref());
                    if norm.is_empty() {
                        c.error(
                            name.span(),
                            "provision.citation",
                            "found an empty citation; expected e.g. `Sr 138ab(1)`".to_owned(),
                        );
                    } else if let Some(first) = citations.get(&norm) {
                        c.error(name.span(), "provision.citation", format!("found `{}`, which is the same citation as `{first}` given earlier; expected each provision once", name.get_ref()));
                    } else {
                        citations.insert(norm, name.get_ref().clone());
                    }
                }
                let mut concepts_out = Vec::new();
                for k in &p.concepts {
                    if !concept_ids.contains(k.get_ref()) {
                        let hint = did_you_mean(&closest(
                            k.get_ref(),
                            concept_ids.iter().map(String::as_str),
                            3,
                        ));
                        c.error(
                            k.span(),
                            "provision.concepts",
                            format!(
                                "found `{}`; expected a concept id from concepts.toml{hint}",
                                k.get_ref()
                            ),
                        );
                    } else if concepts_out.contains(k.get_ref()) {
                        c.error(
                            k.span(),
                            "provision.concepts",
                            format!("found `{}` twice; expected each concept once", k.get_ref()),
                        );
                    } else {
                        concepts_out.push(k.get_ref().clone());
                    }
                }
                let status = c.status(&p.status, "provision.status");
                let srcs = c.sources(&p.sources, "provision.sources", &source_keys);
                let procedure = match &p.procedure {
                    Some(s)
                        if matches!(s.get_ref().as_str(), "hybrid" | "indictable" | "summary") =>
                    {
                        Some(s.get_ref().clone())
                    }
                    Some(s) => {
                        c.error(
                            s.span(),
                            "provision.procedure",
                            format!(
                                "found `{}`; expected hybrid, indictable or summary",
                                s.get_ref()
                            ),
                        );
                        None
                    }
                    None => None,
                };
                let mens_rea = match p.mens_rea.as_ref().map(|m| (m, m.get_ref().as_str())) {
                    None | Some((_, "intent")) => MensRea::Intent,
                    Some((_, "recklessness")) => MensRea::Recklessness,
                    Some((_, "negligence")) => MensRea::Negligence,
                    Some((m, other)) => {
                        c.error(
                            m.span(),
                            "provision.mens_rea",
                            format!("found `{other}`; expected intent, recklessness or negligence"),
                        );
                        MensRea::Intent
                    }
                };
                let pen = &p.penalty;
                let max_months = pen
                    .max_months
                    .as_ref()
                    .and_then(|m| c.months(m, "provision.penalty.max_months"));
                let aggravated_max_months = pen
                    .aggravated_max_months
                    .as_ref()
                    .and_then(|m| c.months(m, "provision.penalty.aggravated_max_months"));
                if let (Some(base), Some(agg), Some(raw_agg)) =
                    (max_months, aggravated_max_months, &pen.aggravated_max_months)
                    && agg < base
                {
                    c.error(
                        raw_agg.span(),
                        "provision.penalty.aggravated_max_months",
                        format!(
                            "found {agg}, below max_months = {base}; expected the aggravated maximum to be at least the basic one"
                        ),
                    );
                }
                if pen.at_least && max_months.is_none() {
                    c.error(p.citation.span(), "provision.penalty.at_least", "found `at_least = true` without max_months; expected a lower bound in max_months".to_owned());
                }
                let penalty_status = c.status(&pen.status, "provision.penalty.status");
                provisions.push(Provision {
                    citation: p.citation.get_ref().clone(),
                    aliases: p.aliases.iter().map(|a| a.get_ref().clone()).collect(),
                    description: p.description,
                    concepts: concepts_out,
                    note: p.note,
                    status,
                    status_note: p.status_note,
                    sources: srcs,
                    procedure,
                    mens_rea,
                    penalty: Penalty {
                        max_months,
                        at_least: pen.at_least,
                        aggravated_max_months,
                        aggravated_life: pen.aggravated_life,
                        text: pen.text.clone(),
                        status: penalty_status,
                    },
                });
            }
            if let Some(party) = party {
                jurisdiction_list.push(Jurisdiction {
                    party,
                    name: raw.name,
                    law: raw.law,
                    note: raw.note,
                    provisions,
                });
            }
        }

        match rules {
            Some(rules) if errors.is_empty() => Ok(Lexicon {
                rules,
                concepts: concept_list,
                jurisdictions: jurisdiction_list,
                sources: source_list,
            }),
            _ => Err(LexiconErrors(errors)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Look-ups

/// Normalises a citation for comparison: lowercase, without spaces, dots and commas.
pub fn normalize_citation(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '.' | ','))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Levenshtein distance between two strings, by characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Up to `limit` candidates close to `given`: those containing it (or contained in it) after
/// normalisation, then those within a small edit distance, nearest first.
fn closest<'a>(
    given: &str,
    candidates: impl Iterator<Item = &'a str>,
    limit: usize,
) -> Vec<String> {
    let g = normalize_citation(given);
    if g.is_empty() {
        return Vec::new();
    }
    let allowed = (g.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, String)> = candidates
        .filter_map(|c| {
            let n = normalize_citation(c);
            let d = edit_distance(&g, &n);
            let contains = n.contains(&g) || (g.chars().count() >= 3 && g.contains(&n));
            if contains {
                Some((0, c.to_owned()))
            } else if d <= allowed {
                Some((d, c.to_owned()))
            } else {
                None
            }
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(limit).map(|(_, c)| c).collect()
}

impl Lexicon {
    /// The jurisdiction with this party code (case-insensitive; `UK` is accepted for `GB`)
    /// or name.
    ///
    /// # Errors
    /// [`LookupError::UnknownJurisdiction`] with close matches.
    pub fn jurisdiction(&self, given: &str) -> Result<&Jurisdiction, LookupError> {
        let code = given.trim().to_ascii_uppercase();
        let code = if code == "UK" { "GB".to_owned() } else { code };
        if let Some(j) = self
            .jurisdictions
            .iter()
            .find(|j| j.party.as_str() == code || j.name.eq_ignore_ascii_case(given.trim()))
        {
            return Ok(j);
        }
        let label = |j: &Jurisdiction| {
            if j.party.as_str() == "GB" {
                format!("GB (UK, {})", j.name)
            } else {
                format!("{} ({})", j.party, j.name)
            }
        };
        let mut suggestions: Vec<String> = Vec::new();
        for j in &self.jurisdictions {
            let by_code = code.len() == 2 && edit_distance(&code, j.party.as_str()) <= 1;
            let by_name = !closest(given, std::iter::once(j.name.as_str()), 1).is_empty();
            if by_name || (by_code && suggestions.len() < 3) {
                suggestions.push(label(j));
            }
        }
        Err(LookupError::UnknownJurisdiction {
            given: given.to_owned(),
            suggestions,
            known: self.jurisdictions.iter().map(label).collect(),
        })
    }

    /// The concept with this id, or with this ETS 185 article number (`2`, `art 2`, `Art. 2`).
    ///
    /// # Errors
    /// [`LookupError::UnknownConcept`] with close matches.
    pub fn concept(&self, given: &str) -> Result<&Concept, LookupError> {
        let g = given.trim().to_ascii_lowercase();
        if let Some(k) = self.concepts.iter().find(|k| k.id == g) {
            return Ok(k);
        }
        let digits = normalize_citation(&g);
        let digits = digits.trim_start_matches("article").trim_start_matches("art");
        if let Ok(n) = digits.parse::<u8>()
            && let Some(k) = self.concepts.iter().find(|k| k.article == n)
        {
            return Ok(k);
        }
        let mut suggestions = closest(&g, self.concepts.iter().map(|k| k.id.as_str()), 3);
        for k in &self.concepts {
            if !suggestions.contains(&k.id)
                && !closest(&g, std::iter::once(k.name.as_str()), 1).is_empty()
            {
                suggestions.push(k.id.clone());
            }
        }
        Err(LookupError::UnknownConcept {
            given: given.to_owned(),
            suggestions,
            known: self.concepts.iter().map(|k| k.id.clone()).collect(),
        })
    }

    /// The provisions, across jurisdictions, that implement a concept.
    pub fn implementing<'a>(
        &'a self,
        concept_id: &'a str,
    ) -> impl Iterator<Item = (&'a Jurisdiction, &'a Provision)> + 'a {
        self.jurisdictions.iter().flat_map(move |j| {
            j.provisions
                .iter()
                .filter(move |p| p.concepts.iter().any(|c| c == concept_id))
                .map(move |p| (j, p))
        })
    }

    /// The source with this key.
    pub fn source(&self, key: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.key == key)
    }

    /// The default threshold: the Convention's, from the data (ETS 185 Art 24(1)(a)).
    pub fn default_threshold(&self) -> Threshold {
        Threshold {
            months: self.rules.threshold_months,
            more_than: false,
            basis: self.rules.threshold_basis.clone(),
        }
    }

    /// The test of mutual assistance: the conduct alone (ETS 185 Art 25(5)).
    pub fn conduct_test(&self) -> DcTest {
        DcTest::Conduct { basis: self.rules.conduct_basis.clone() }
    }

    /// Looks up both sides and runs [`dual_criminality`] under `test`.
    ///
    /// # Errors
    /// An unknown jurisdiction, or an unknown or ambiguous provision, with close matches.
    pub fn check_dual_criminality_under(
        &self,
        from: &str,
        provision: &str,
        to: &str,
        test: &DcTest,
    ) -> Result<DualCriminality, LookupError> {
        let from_j = self.jurisdiction(from)?;
        let to_j = self.jurisdiction(to)?;
        let p = from_j.provision(provision)?;
        let mut r = dual_criminality(&from_j.party, p, to_j, test, &self.rules.conduct_basis);
        // A provision named without its limb, where the lexicon holds several limbs with
        // their own penalties: checked as the one the name resolves to, and the limb asked for.
        let limbs = from_j.limbs_of(p);
        if !limbs.is_empty() && normalize_citation(provision) != normalize_citation(&p.citation) {
            r.caveats.push(format!(
                "`{provision}` has several limbs in the lexicon ({}, {}); checked as {}: name the limb the conduct falls under",
                p.citation,
                limbs.join(", "),
                p.citation
            ));
        }
        Ok(r)
    }

    /// Looks up both sides and runs [`dual_criminality`]. `threshold_months` is the governing
    /// agreement's minimum maximum penalty; `None` applies the Convention's (12 months).
    ///
    /// # Errors
    /// An unknown jurisdiction, or an unknown or ambiguous provision, with close matches.
    pub fn check_dual_criminality(
        &self,
        from: &str,
        provision: &str,
        to: &str,
        threshold_months: Option<u32>,
    ) -> Result<DualCriminality, LookupError> {
        let from_j = self.jurisdiction(from)?;
        let to_j = self.jurisdiction(to)?;
        let p = from_j.provision(provision)?;
        let threshold = match threshold_months {
            Some(months) => Threshold {
                months,
                more_than: false,
                basis: format!(
                    "given for the governing agreement: a maximum custodial penalty of at least {months} months"
                ),
            },
            None => self.default_threshold(),
        };
        Ok(dual_criminality(
            &from_j.party,
            p,
            to_j,
            &DcTest::Penalty(threshold),
            &self.rules.conduct_basis,
        ))
    }
}

impl Jurisdiction {
    /// The other limbs of `p`'s provision held in the lexicon: provisions with the same
    /// parent, the citation without its last parenthesised part (`Sr 138ab(2), (3)` for
    /// `Sr 138ab(1)`; `§1030(a)(5)(B)` for `§1030(a)(5)(A)`).
    pub fn limbs_of(&self, p: &Provision) -> Vec<String> {
        let parent = |c: &str| -> Option<String> {
            let first = c.split(',').next().unwrap_or(c);
            first.rfind('(').map(|i| normalize_citation(&first[..i]))
        };
        let Some(b) = parent(&p.citation) else { return Vec::new() };
        self.provisions
            .iter()
            .filter(|q| q.citation != p.citation && parent(&q.citation).as_ref() == Some(&b))
            .map(|q| q.citation.clone())
            .collect()
    }

    /// The provision with this citation or alias (normalised: case, spaces, dots and commas
    /// do not matter), or the single provision whose citation ends with it (`138ab(1)`).
    ///
    /// # Errors
    /// [`LookupError::UnknownProvision`] with close matches, or
    /// [`LookupError::AmbiguousProvision`].
    pub fn provision(&self, given: &str) -> Result<&Provision, LookupError> {
        let g = normalize_citation(given);
        if let Some(p) = self.provisions.iter().find(|p| {
            normalize_citation(&p.citation) == g
                || p.aliases.iter().any(|a| normalize_citation(a) == g)
        }) {
            return Ok(p);
        }
        if g.chars().count() >= 3 {
            let ends: Vec<&Provision> = self
                .provisions
                .iter()
                .filter(|p| normalize_citation(&p.citation).ends_with(&g))
                .collect();
            match ends.as_slice() {
                [one] => return Ok(one),
                [] => {}
                many => {
                    return Err(LookupError::AmbiguousProvision {
                        party: self.party.clone(),
                        given: given.to_owned(),
                        candidates: many.iter().map(|p| p.citation.clone()).collect(),
                    });
                }
            }
        }
        let names = self.provisions.iter().flat_map(|p| {
            std::iter::once(p.citation.as_str()).chain(p.aliases.iter().map(String::as_str))
        });
        Err(LookupError::UnknownProvision {
            party: self.party.clone(),
            given: given.to_owned(),
            suggestions: closest(given, names, 5),
            known: self.provisions.iter().map(|p| p.citation.clone()).collect(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Dual criminality

/// The penalty threshold a dual-criminality check applies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Threshold {
    /// The statutory maximum must be at least (or, with `more_than`, more than) this many
    /// months.
    pub months: u32,
    /// `true`: the maximum must exceed `months` ("more than one year", EU–US Extradition
    /// Agreement Art 4(1)); `false`: reach it ("at least one year", ETS 185 Art 24(1)(a)).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub more_than: bool,
    /// Where the threshold comes from.
    pub basis: String,
}

impl Threshold {
    /// Whether a maximum of `months` meets it.
    pub fn met_by(&self, months: u32) -> bool {
        if self.more_than { months > self.months } else { months >= self.months }
    }

    /// `at least 12 months` or `more than 12 months`.
    pub fn words(&self) -> String {
        format!("{} {} months", if self.more_than { "more than" } else { "at least" }, self.months)
    }
}

/// Which dual-criminality test applies: it depends on the cooperation asked for, not only on
/// the parties.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "test", rename_all = "kebab-case")]
pub enum DcTest {
    /// Mutual assistance: the conduct must be a criminal offence in the requested party,
    /// whatever its name or category, with no penalty threshold (ETS 185 Art 25(5)).
    Conduct {
        /// The rule, cited.
        basis: String,
    },
    /// Extradition (or an agreement's own threshold): both parties' maxima must meet it.
    Penalty(Threshold),
}

/// The outcome of a dual-criminality check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Both parties punish the conduct with a maximum meeting the threshold, on verified facts.
    Satisfied,
    /// The requested party does not punish the conduct, or a verified maximum is below the
    /// threshold.
    NotSatisfied,
    /// The verdict depends on an unverified or missing fact, or on the circumstances of the
    /// case; [`DualCriminality::open_facts`] says which.
    Undetermined,
}

impl Verdict {
    /// `satisfied`, `not satisfied` or `undetermined`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Satisfied => "satisfied",
            Verdict::NotSatisfied => "not satisfied",
            Verdict::Undetermined => "undetermined",
        }
    }
}

/// How one provision fares against the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Finding {
    /// A verified (or partially verified) maximum meets the threshold.
    Meets,
    /// A verified maximum is below the threshold.
    Below,
    /// It depends on an unverified or missing fact, or on the case.
    Open,
}

/// One provision in a dual-criminality check and how it fares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Assessed {
    /// The party.
    pub party: PartyCode,
    /// The provision.
    pub provision: Provision,
    /// The concepts it shares with the other side.
    pub shared_concepts: Vec<String>,
    /// The finding.
    pub finding: Finding,
    /// Why, in words.
    pub explanation: String,
}

/// The result of a dual-criminality check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DualCriminality {
    /// The verdict.
    pub verdict: Verdict,
    /// The requesting party's provision.
    pub from: Assessed,
    /// The requested party.
    pub to: PartyCode,
    /// The requested party's provisions that implement the same conduct.
    pub matching: Vec<Assessed>,
    /// The penalty threshold applied; `None` for the conduct test of mutual assistance.
    pub threshold: Option<Threshold>,
    /// The conduct rule applied.
    pub conduct_basis: String,
    /// Why, in words.
    pub reason: String,
    /// Unverified or missing facts (or case circumstances) the verdict depends on.
    pub open_facts: Vec<String>,
    /// Partially verified facts the verdict relies on.
    pub caveats: Vec<String>,
}

fn assess(
    party: &PartyCode,
    p: &Provision,
    shared: Vec<String>,
    threshold: Option<&Threshold>,
) -> (Assessed, Option<String>) {
    let pen = &p.penalty;
    let cite = &p.citation;
    let Some(th) = threshold else {
        // The conduct test: the offence exists; its penalty does not matter.
        let (finding, explanation) = if p.status == VerificationStatus::U {
            (
                Finding::Open,
                format!("the offence {cite} or its mapping to ETS 185 is unverified (U)"),
            )
        } else {
            (Finding::Meets, format!("{cite} makes the conduct a criminal offence"))
        };
        let caveat = (finding == Finding::Meets && p.status == VerificationStatus::P).then(|| {
            format!(
                "{party} {cite} is partially verified (P): {}",
                p.status_note.clone().unwrap_or_else(|| p.description.clone())
            )
        });
        return (
            Assessed {
                party: party.clone(),
                provision: p.clone(),
                shared_concepts: shared,
                finding,
                explanation,
            },
            caveat,
        );
    };
    let words = th.words();
    let (mut finding, mut explanation) = match pen.max_months {
        _ if pen.status == VerificationStatus::U => (
            Finding::Open,
            format!("the maximum penalty of {cite} is unverified (U): \"{}\"", pen.text),
        ),
        None => (
            Finding::Open,
            format!("no maximum penalty figure is recorded for {cite}: \"{}\"", pen.text),
        ),
        Some(m) if th.met_by(m) => (
            Finding::Meets,
            format!(
                "maximum {}{m} months meets {words}",
                if pen.at_least { "at least " } else { "" }
            ),
        ),
        Some(m) if pen.at_least => (
            Finding::Open,
            format!(
                "the maximum of {cite} is at least {m} months, short of {words}; it depends on the offence it follows: \"{}\"",
                pen.text
            ),
        ),
        Some(m)
            if pen.aggravated_life || pen.aggravated_max_months.is_some_and(|a| th.met_by(a)) =>
        {
            (
                Finding::Open,
                format!(
                    "{cite}: the basic maximum of {m} months is short of {words}; only aggravated forms reach it, so it depends on the circumstances of the case: \"{}\"",
                    pen.text
                ),
            )
        }
        Some(m) if pen.status == VerificationStatus::P => (
            Finding::Open,
            format!(
                "{cite}: maximum {m} months is short of {words} but only partially verified (P): \"{}\"",
                pen.text
            ),
        ),
        Some(m) => (Finding::Below, format!("maximum {m} months is short of {words}")),
    };
    if finding != Finding::Below && p.status == VerificationStatus::U {
        finding = Finding::Open;
        explanation = format!(
            "the offence {cite} or its mapping to ETS 185 is unverified (U); {explanation}"
        );
    }
    let caveat = (finding == Finding::Meets
        && (p.status == VerificationStatus::P || pen.status == VerificationStatus::P))
        .then(|| {
            format!(
                "{party} {cite} is partially verified (P): {}",
                p.status_note.clone().unwrap_or_else(|| pen.text.clone())
            )
        });
    (
        Assessed {
            party: party.clone(),
            provision: p.clone(),
            shared_concepts: shared,
            finding,
            explanation,
        },
        caveat,
    )
}

/// Checks dual criminality for the conduct of provision `from` of party `from_party` in the
/// requested jurisdiction `to`.
///
/// The conduct decides, not the label (ETS 185 Art 25(5)): a provision of `to` matches when
/// it implements at least one concept `from` implements. The verdict is
/// - [`Verdict::Satisfied`] when `from`'s maximum and the maximum of at least one matching
///   provision meet the threshold, on facts that are not unverified;
/// - [`Verdict::NotSatisfied`] when no provision of `to` implements the conduct, or when a
///   verified maximum on the requesting side, or every matching provision's, is below it;
/// - [`Verdict::Undetermined`] otherwise: the verdict hangs on an unverified (`U`) or missing
///   fact, a partially verified figure below the threshold, or aggravating circumstances;
///   [`DualCriminality::open_facts`] names them.
///
/// With [`DcTest::Conduct`] (mutual assistance) no penalty counts: the conduct must be an
/// offence on both sides, and only an unverified offence or mapping leaves it open.
pub fn dual_criminality(
    from_party: &PartyCode,
    from: &Provision,
    to: &Jurisdiction,
    test: &DcTest,
    conduct_basis: &str,
) -> DualCriminality {
    let threshold = match test {
        DcTest::Conduct { .. } => None,
        DcTest::Penalty(t) => Some(t),
    };
    let limit = threshold.map(Threshold::words);
    let (from_assessed, from_caveat) = assess(from_party, from, from.concepts.clone(), threshold);
    let mut matching = Vec::new();
    let mut caveats: Vec<String> = from_caveat.into_iter().collect();
    let mut matching_caveats = Vec::new();
    for p in &to.provisions {
        let shared: Vec<String> =
            p.concepts.iter().filter(|c| from.concepts.contains(c)).cloned().collect();
        if shared.is_empty() {
            continue;
        }
        let (mut a, caveat) = assess(&to.party, p, shared, threshold);
        // The conduct includes its mental element: a negligent (or reckless) act is not the
        // conduct of an offence that requires intent, unless the facts show intent.
        if from.mens_rea > p.mens_rea && a.finding == Finding::Meets {
            a.finding = Finding::Open;
            a.explanation = format!(
                "{} requires {} and {from_party} {} is an offence of {}: it matches only if the conduct was {}; {}",
                p.citation,
                p.mens_rea.as_str(),
                from.citation,
                from.mens_rea.as_str(),
                match p.mens_rea {
                    MensRea::Intent => "intentional",
                    MensRea::Recklessness => "at least reckless",
                    MensRea::Negligence => "negligent",
                },
                a.explanation
            );
        }
        matching_caveats.push(caveat);
        matching.push(a);
    }
    let to_party = &to.party;
    let fcite = &from.citation;
    let concepts = from.concepts.join(", ");
    let best = matching.iter().map(|a| a.finding).fold(None, |acc: Option<Finding>, f| {
        Some(match (acc, f) {
            (Some(Finding::Meets), _) | (_, Finding::Meets) => Finding::Meets,
            (Some(Finding::Open), _) | (_, Finding::Open) => Finding::Open,
            _ => Finding::Below,
        })
    });
    let mut open_facts = Vec::new();
    let (verdict, reason) = if from.concepts.is_empty() {
        open_facts
            .push(format!("{from_party} {fcite} is mapped to no ETS 185 article in the lexicon"));
        (
            Verdict::Undetermined,
            format!(
                "the conduct of {from_party} {fcite} is mapped to no ETS 185 article in the lexicon, so it cannot be compared on conduct{}",
                from.note.as_ref().map(|n| format!(" ({n})")).unwrap_or_default()
            ),
        )
    } else if from_assessed.finding == Finding::Below {
        (
            Verdict::NotSatisfied,
            format!(
                "{from_party} {fcite}: {}; the requesting side does not meet the threshold",
                from_assessed.explanation
            ),
        )
    } else if best.is_none() {
        (
            Verdict::NotSatisfied,
            format!(
                "no provision of {to_party} in the lexicon implements the conduct of {from_party} {fcite} ({concepts}); note the lexicon holds only the researched provisions"
            ),
        )
    } else if best == Some(Finding::Below) {
        let list: Vec<String> = matching
            .iter()
            .map(|a| format!("{} ({})", a.provision.citation, a.explanation))
            .collect();
        (
            Verdict::NotSatisfied,
            format!(
                "{to_party} punishes the conduct ({concepts}) but every matching provision's maximum is short of {}: {}",
                limit.as_deref().unwrap_or("the threshold"),
                list.join("; ")
            ),
        )
    } else {
        if from_assessed.finding == Finding::Open {
            open_facts.push(format!("{from_party}: {}", from_assessed.explanation));
        }
        if best == Some(Finding::Open) {
            for a in &matching {
                if a.finding == Finding::Open {
                    open_facts.push(format!("{to_party}: {}", a.explanation));
                }
            }
        } else {
            // Keep the caveats of the provisions the verdict relies on.
            for (a, c) in matching.iter().zip(&matching_caveats) {
                if a.finding == Finding::Meets {
                    caveats.extend(c.clone());
                }
            }
        }
        let meets: Vec<&Assessed> =
            matching.iter().filter(|a| a.finding == Finding::Meets).collect();
        if open_facts.is_empty() {
            let to_list: Vec<String> = meets
                .iter()
                .map(|a| {
                    format!(
                        "{} ({}, {})",
                        a.provision.citation,
                        a.shared_concepts.join(", "),
                        a.provision.penalty.summary()
                    )
                })
                .collect();
            (
                Verdict::Satisfied,
                match &limit {
                    Some(limit) => format!(
                        "same conduct ({concepts}): {from_party} {fcite} ({}) and in {to_party} {}; each maximum meets {limit}",
                        from.penalty.summary(),
                        to_list.join(", ")
                    ),
                    None => format!(
                        "same conduct ({concepts}): an offence under {from_party} {fcite} and in {to_party} under {}; no penalty threshold applies ({})",
                        meets
                            .iter()
                            .map(|a| a.provision.citation.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        conduct_basis
                    ),
                },
            )
        } else {
            let side = match (from_assessed.finding == Finding::Open, best == Some(Finding::Open)) {
                (true, true) => "both sides' maximum penalties meet",
                (true, false) => "the requesting side's maximum penalty meets",
                _ => "the requested side's maximum penalties meet",
            };
            (
                Verdict::Undetermined,
                match &limit {
                    Some(limit) => format!(
                        "{to_party} punishes the same conduct ({concepts}), but whether {side} {limit} depends on facts that are unverified, missing or case-specific (listed)"
                    ),
                    None => format!(
                        "{to_party} may punish the same conduct ({concepts}), but an offence or its mapping is unverified (listed)"
                    ),
                },
            )
        }
    };
    DualCriminality {
        verdict,
        from: from_assessed,
        to: to_party.clone(),
        matching,
        threshold: threshold.cloned(),
        conduct_basis: match test {
            DcTest::Conduct { basis } => basis.clone(),
            DcTest::Penalty(_) => conduct_basis.to_owned(),
        },
        reason,
        open_facts,
        caveats,
    }
}

#[cfg(test)]
mod tests;
