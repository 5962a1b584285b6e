//! Gap analysis: a scenario (an operation: the requesting party, its offences by national
//! provision, the data flows it needs) checked against the agreements, flow by flow.
//!
//! For each flow the analysis says whether it is lawful (under which agreement and rule, with
//! which deadline) or blocked (no agreement in force, dual criminality fails, purpose,
//! category or offence not covered, request kind not provided, retention conflict, onward
//! transfer needing consent or forbidden), with warnings for what stays open (an undetermined
//! dual-criminality check, a request kind whose rule does not name the category). The file
//! format is documented in `docs/scenarios.md`.
//!
//! Pure: the caller passes the scenario text, the lexicon and the compiled agreements.

use crate::agreement::{Agreement, DataCategory, IsoDuration, Purpose, RequestKind};
use crate::engine::{Engine, Flow, first_miss};
use entente_core::lexicon::{Lexicon, Verdict, VerificationStatus, edit_distance};
use entente_core::source_error::{
    FieldNames, SourceChecker, SourceError, SourceText, did_you_mean, write_problems,
};
use entente_core::{Obligation, Outcome, PartyCode};
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use std::fmt;
use toml::Spanned;

// ---------------------------------------------------------------------------------------------
// The scenario model

/// An operation to check against the agreements.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scenario {
    /// Identifier (lowercase letters, digits, single hyphens).
    pub id: String,
    /// Title.
    pub title: String,
    /// The day the flows happen.
    pub date: Date,
    /// The moment decisions are taken: noon UTC on `date`.
    pub at: Timestamp,
    /// The party running the operation and asking for data.
    pub requesting: PartyCode,
    /// The offences of the case, by national provision.
    pub offences: Vec<Offence>,
    /// The flows the operation needs.
    pub flows: Vec<ScenarioFlow>,
}

/// An offence of the case: a provision of a party's law, as the lexicon records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Offence {
    /// The party whose law it is.
    pub party: PartyCode,
    /// The provision as written in the scenario.
    pub provision: String,
    /// The provision's citation in the lexicon.
    pub citation: String,
    /// The ETS 185 concepts it implements.
    pub concepts: Vec<String>,
}

/// One data flow the operation needs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScenarioFlow {
    /// Line of the `[[flow]]` table in the file.
    pub line: usize,
    /// The party holding the data (and sending it).
    pub from: PartyCode,
    /// The party receiving it.
    pub to: PartyCode,
    /// The datum's category.
    pub category: DataCategory,
    /// The purpose the receiver states.
    pub purpose: Purpose,
    /// The kind of request answered, if any.
    pub request_kind: Option<RequestKind>,
    /// Whether the request is urgent (the emergency deadline applies).
    pub urgent: bool,
    /// The party that originated the datum (`from` unless the flow is an onward transfer).
    pub originator: PartyCode,
    /// For an onward transfer: the agreement the datum came under, as written in the file.
    pub origin_agreement: Option<String>,
    /// How long the receiving side needs to keep the data.
    pub retention_needed: Option<IsoDuration>,
    /// Whether the originator has consented to the onward transfer.
    pub consent: bool,
}

// ---------------------------------------------------------------------------------------------
// Errors

/// One problem in a scenario file, with its position.
///
/// The positioned problem shared by every TOML format: [`SourceError`].
pub type ScenarioError = SourceError;

/// Every problem found in a scenario file (at least one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioErrors(pub Vec<ScenarioError>);

impl fmt::Display for ScenarioErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_problems(f, "scenario", &self.0)
    }
}

impl std::error::Error for ScenarioErrors {}

// ---------------------------------------------------------------------------------------------
// Parsing

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    id: Spanned<String>,
    title: Spanned<String>,
    date: Spanned<String>,
    requesting: Spanned<String>,
    #[serde(default)]
    offence: Vec<RawOffence>,
    #[serde(default)]
    flow: Vec<RawFlow>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOffence {
    party: Spanned<String>,
    provision: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlow {
    from: Spanned<String>,
    to: Spanned<String>,
    category: Spanned<String>,
    purpose: Spanned<String>,
    #[serde(default)]
    request_kind: Option<Spanned<String>>,
    #[serde(default)]
    urgent: bool,
    #[serde(default)]
    originator: Option<Spanned<String>>,
    #[serde(default)]
    origin_agreement: Option<Spanned<String>>,
    #[serde(default)]
    retention_needed: Option<Spanned<String>>,
    #[serde(default)]
    consent: bool,
}

struct Checker<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<ScenarioError>,
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
    fn party(&mut self, raw: &Spanned<String>, field: &str) -> Option<PartyCode> {
        match raw.get_ref().parse::<PartyCode>() {
            Ok(p) => Some(p),
            Err(e) => {
                self.error(raw.span(), field, format!("found `{}`: {e}", raw.get_ref()));
                None
            }
        }
    }

    fn duration(&mut self, raw: &Spanned<String>, field: &str) -> Option<IsoDuration> {
        let text = raw.get_ref();
        let parsed = if text.starts_with('P') {
            jiff::fmt::temporal::SpanParser::new().parse_span(text).map_err(|e| e.to_string())
        } else {
            Err("it does not start with `P`".to_owned())
        };
        match parsed {
            Ok(span) if !span.is_negative() && !span.is_zero() => {
                Some(IsoDuration { text: text.clone(), span })
            }
            Ok(_) => {
                self.error(
                    raw.span(),
                    field,
                    format!("found `{text}`; expected a positive ISO 8601 duration such as P6M, P2Y or P5Y"),
                );
                None
            }
            Err(why) => {
                self.error(
                    raw.span(),
                    field,
                    format!("found `{text}`, which is not an ISO 8601 duration ({why}); expected e.g. P6M (6 months), P2Y (2 years), P5Y (5 years)"),
                );
                None
            }
        }
    }

    fn date(&mut self, raw: &Spanned<String>, field: &str) -> Option<(Date, Timestamp)> {
        let text = raw.get_ref();
        let shape = text.len() == 10
            && text
                .bytes()
                .enumerate()
                .all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
        let parsed = text.parse::<Date>().map_err(|e| e.to_string()).and_then(|d| {
            d.at(12, 0, 0, 0)
                .to_zoned(jiff::tz::TimeZone::UTC)
                .map(|z| (d, z.timestamp()))
                .map_err(|e| e.to_string())
        });
        match parsed {
            Ok(v) if shape => Some(v),
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
}

fn is_kebab_id(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Parses and validates a scenario file. `file` names it in error messages; `lexicon` gives
/// the national provisions offences name; `agreements` the ids an `origin_agreement` may name.
///
/// # Errors
/// Every problem found (not just the first; a TOML syntax error or a missing or unknown key
/// stops the reading), each as `file:line:col: field: message`: an id that is not a
/// lowercase id, an empty title, a date that is not `YYYY-MM-DD`, an unknown party, a
/// jurisdiction or provision the lexicon does not have (with close matches), an unknown
/// category, purpose or request kind (with close matches), a flow from a party to itself, a
/// retention that is not a positive ISO 8601 duration, an unknown origin agreement, consent
/// or an origin agreement on a flow that is not an onward transfer, no `[[flow]]`.
pub fn parse_scenario(
    file: &str,
    text: &str,
    lexicon: &Lexicon,
    agreements: &[Agreement],
) -> Result<Scenario, ScenarioErrors> {
    let mut c = Checker { file, text, errors: Vec::new() };
    let Some(raw) = c.parse::<RawScenario>() else { return Err(ScenarioErrors(c.errors)) };

    let id = raw.id.get_ref().clone();
    if !is_kebab_id(&id) {
        c.error(
            raw.id.span(),
            "id",
            format!("found `{id}`; expected a lowercase id of letters, digits and single hyphens, e.g. `lantern`"),
        );
    }
    let title = raw.title.get_ref().trim().to_owned();
    if title.is_empty() {
        c.error(
            raw.title.span(),
            "title",
            "found an empty title; expected the operation's name".to_owned(),
        );
    }
    let date = c.date(&raw.date, "date");
    let requesting = c.party(&raw.requesting, "requesting");

    let mut offences = Vec::new();
    for o in &raw.offence {
        let Some(party) = c.party(&o.party, "offence.party") else { continue };
        let jurisdiction = match lexicon.jurisdiction(party.as_str()) {
            Ok(j) => j,
            Err(e) => {
                c.error(o.party.span(), "offence.party", format!("found `{party}`: {e}"));
                continue;
            }
        };
        match jurisdiction.provision(o.provision.get_ref()) {
            Ok(p) => offences.push(Offence {
                party,
                provision: o.provision.get_ref().clone(),
                citation: p.citation.clone(),
                concepts: p.concepts.clone(),
            }),
            Err(e) => c.error(
                o.provision.span(),
                "offence.provision",
                format!("found `{}`: {e}", o.provision.get_ref()),
            ),
        }
    }

    let mut flows = Vec::new();
    if raw.flow.is_empty() {
        c.error(
            raw.id.span(),
            "flow",
            "found no [[flow]]; expected at least one flow (from, to, category, purpose)"
                .to_owned(),
        );
    }
    for f in &raw.flow {
        let (line, _) = c.position(f.from.span().start);
        let from = c.party(&f.from, "flow.from");
        let to = c.party(&f.to, "flow.to");
        if let (Some(a), Some(b)) = (&from, &to)
            && a == b
        {
            c.error(
                f.to.span(),
                "flow.to",
                format!("found {b}, the same party as `from`; expected another party"),
            );
        }
        let category = c.one_of(
            &f.category,
            "flow.category",
            DataCategory::ALL,
            DataCategory::as_str,
            "data category",
        );
        let purpose =
            c.one_of(&f.purpose, "flow.purpose", Purpose::ALL, Purpose::as_str, "purpose");
        let request_kind = match &f.request_kind {
            Some(k) => {
                let kind = c.one_of(
                    k,
                    "flow.request_kind",
                    RequestKind::ALL,
                    RequestKind::as_str,
                    "request kind",
                );
                if kind.is_none() {
                    continue;
                }
                kind
            }
            None => None,
        };
        let originator = match &f.originator {
            Some(o) => c.party(o, "flow.originator"),
            None => from.clone(),
        };
        let onward = match (&from, &to, &originator) {
            (Some(a), Some(b), Some(o)) => a != o && b != o,
            _ => true,
        };
        let origin_agreement = f.origin_agreement.as_ref().map(|o| {
            let id = o.get_ref();
            if !agreements.iter().any(|a| &a.id == id) {
                let known: Vec<&str> = agreements.iter().map(|a| a.id.as_str()).collect();
                let near: Vec<&str> =
                    known.iter().copied().filter(|k| edit_distance(id, k) <= 2).collect();
                let hint = did_you_mean(&near);
                c.error(
                    o.span(),
                    "flow.origin_agreement",
                    format!("found `{id}`{hint}; expected the id of a loaded agreement: {}", known.join(", ")),
                );
            } else if !onward {
                c.error(
                    o.span(),
                    "flow.origin_agreement",
                    "found an origin agreement on a flow that is not an onward transfer; expected it only with an `originator` other than `from` and `to`".to_owned(),
                );
            }
            id.clone()
        });
        if f.consent && !onward {
            c.error(
                f.from.span(),
                "flow.consent",
                "found consent = true on a flow that is not an onward transfer; expected it only with an `originator` other than `from` and `to`".to_owned(),
            );
        }
        let retention_needed =
            f.retention_needed.as_ref().and_then(|r| c.duration(r, "flow.retention_needed"));
        if f.retention_needed.is_some() && retention_needed.is_none() {
            continue;
        }
        if let (Some(from), Some(to), Some(category), Some(purpose), Some(originator)) =
            (from, to, category, purpose, originator)
        {
            flows.push(ScenarioFlow {
                line,
                from,
                to,
                category,
                purpose,
                request_kind,
                urgent: f.urgent,
                originator,
                origin_agreement,
                retention_needed,
                consent: f.consent,
            });
        }
    }

    match (date, requesting) {
        (Some((date, at)), Some(requesting)) if c.errors.is_empty() => {
            Ok(Scenario { id, title, date, at, requesting, offences, flows })
        }
        _ => Err(ScenarioErrors(c.errors)),
    }
}

// ---------------------------------------------------------------------------------------------
// Analysis

/// Why a flow is blocked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlockClass {
    /// No agreement binding both parties is in force on the day.
    NoAgreementInForce,
    /// The dual-criminality check of an offence is not satisfied at the providing party.
    DualCriminalityFails,
    /// No agreement covers the data category.
    CategoryNotCovered,
    /// No agreement covers the purpose (or the purpose limitation of the agreement the datum
    /// came under forbids it).
    PurposeNotCovered,
    /// No agreement covers the offences of the case.
    OffenceNotCovered,
    /// No agreement provides for the request kind.
    RequestKindNotProvided,
    /// The receiver needs the data longer than the grounding agreement allows.
    RetentionConflict,
    /// An onward transfer that needs the originator's consent, not given.
    OnwardTransferNeedsConsent,
    /// An onward transfer the agreement the datum came under forbids.
    OnwardTransferForbidden,
    /// The flow could not be put to policy.
    PolicyError,
}

impl BlockClass {
    /// The class in words.
    pub fn as_str(self) -> &'static str {
        match self {
            BlockClass::NoAgreementInForce => "no agreement in force",
            BlockClass::DualCriminalityFails => "dual criminality fails",
            BlockClass::CategoryNotCovered => "category not covered",
            BlockClass::PurposeNotCovered => "purpose not covered",
            BlockClass::OffenceNotCovered => "offence not covered",
            BlockClass::RequestKindNotProvided => "request kind not provided",
            BlockClass::RetentionConflict => "retention conflict",
            BlockClass::OnwardTransferNeedsConsent => "onward transfer needs consent",
            BlockClass::OnwardTransferForbidden => "onward transfer forbidden",
            BlockClass::PolicyError => "policy error",
        }
    }
}

impl fmt::Display for BlockClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verdict on one flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowVerdict {
    /// An agreement permits it and nothing is left open.
    Lawful,
    /// An agreement permits it, with open points (see the warnings).
    LawfulWithWarnings,
    /// It may not happen as described.
    Blocked,
}

impl FlowVerdict {
    /// `lawful`, `lawful with warnings` or `blocked`.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowVerdict::Lawful => "lawful",
            FlowVerdict::LawfulWithWarnings => "lawful with warnings",
            FlowVerdict::Blocked => "blocked",
        }
    }
}

impl fmt::Display for FlowVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The deadline of a request kind under the grounding agreement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Deadline {
    /// The request kind.
    pub request_kind: RequestKind,
    /// Whether the emergency deadline was asked for.
    pub urgent: bool,
    /// The deadline (ISO 8601), if the agreement states one.
    pub duration: Option<String>,
    /// When it falls, counted from the decision (RFC 3339, UTC).
    pub due: Option<String>,
    /// Whether the rule carrying the deadline is unverified (status U).
    pub unverified: bool,
    /// How long the measure lasts unless followed up (e.g. a preservation), if stated.
    pub period: Option<String>,
    /// The rule's citation.
    pub citation: String,
    /// A note (e.g. no emergency deadline stated, the normal one applies).
    pub note: Option<String>,
    /// The rule that produced `due` (article, roll-over, holiday), when computed.
    pub rule: Option<String>,
}

impl Deadline {
    /// The deadline in a few words, e.g. `P10D, due 2026-09-11T12:00:00Z` or `no deadline
    /// stated`; `(unverified)` when its rule is U.
    pub fn short(&self) -> String {
        let mut s = match (&self.duration, &self.due) {
            (Some(d), Some(due)) => {
                format!("{d}{} by {due}", if self.urgent { " emergency" } else { "" })
            }
            (Some(d), None) => d.clone(),
            (None, _) => "no deadline stated".to_owned(),
        };
        if let Some(p) = &self.period {
            s.push_str(&format!("; lasts {p}"));
        }
        if self.unverified && self.duration.is_some() {
            s.push_str(" (unverified)");
        }
        s
    }
}

/// The deadline of `kind` under `a` for a request decided at `at` and addressed to `to`, if
/// `a` provides `kind`; counted as the request clocks count it
/// ([`crate::request::clock_end`]: Regulation 1182/71 for an EU regulation).
pub fn deadline(
    a: &Agreement,
    kind: RequestKind,
    urgent: bool,
    at: Timestamp,
    to: &PartyCode,
) -> Option<Deadline> {
    let rule = a.requests.iter().find(|r| r.kind == kind)?;
    let (chosen, mut note) = match (urgent, &rule.emergency_deadline, &rule.deadline) {
        (true, Some(e), _) => (Some(e), None),
        (true, None, Some(d)) => {
            (Some(d), Some("no emergency deadline stated; the normal deadline applies".to_owned()))
        }
        (_, _, d) => (d.as_ref(), None),
    };
    let counted = chosen.map(|d| crate::request::clock_end(a, &d.span, at, to));
    let (due, counting) = match counted {
        Some(Ok((t, r, definite))) => {
            if !definite {
                let n = "the end is not definite (a day that decides it is not in the holiday calendar): the due instant is the earliest possible".to_owned();
                note = Some(note.map_or(n.clone(), |o| format!("{o}; {n}")));
            }
            (Some(t.to_string()), Some(r))
        }
        Some(Err(e)) => (None, Some(format!("not computed: {e}"))),
        None => (None, None),
    };
    Some(Deadline {
        request_kind: kind,
        urgent: urgent && rule.emergency_deadline.is_some(),
        duration: chosen.map(|d| d.text.clone()),
        due,
        unverified: rule.basis.status == VerificationStatus::U,
        period: rule.period.as_ref().map(|p| match &rule.extension {
            Some(x) => format!("{} (+{} extension)", p.text, x.text),
            None => p.text.clone(),
        }),
        citation: rule.basis.citation.clone(),
        note,
        rule: counting,
    })
}

/// The analysis of one flow.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlowReport {
    /// 1-based number of the flow in the file.
    pub index: usize,
    /// Line of the flow in the file.
    pub line: usize,
    /// Sending party.
    pub from: PartyCode,
    /// Receiving party.
    pub to: PartyCode,
    /// Originating party.
    pub originator: PartyCode,
    /// Category.
    pub category: DataCategory,
    /// Purpose.
    pub purpose: Purpose,
    /// Request kind, if any.
    pub request_kind: Option<RequestKind>,
    /// Urgent.
    pub urgent: bool,
    /// Consent of the originator given.
    pub consent: bool,
    /// For an onward transfer: the agreement the datum came under, and whether the analysis
    /// inferred it (the agreement that grounds originator → from for the same category,
    /// purpose and offences on the day).
    pub origin_agreement: Option<String>,
    /// Whether `origin_agreement` was inferred rather than given.
    pub origin_inferred: bool,
    /// The verdict.
    pub verdict: FlowVerdict,
    /// Why it is blocked (empty unless blocked).
    pub blocked_by: Vec<BlockClass>,
    /// The agreement that grounds (or would ground) the flow.
    pub agreement: Option<String>,
    /// The deciding rule(s), `agreement#rule`.
    pub rules: Vec<String>,
    /// The request kind's deadline under the agreement.
    pub deadline: Option<Deadline>,
    /// Reasons: for a block, what blocks it (agreement by agreement for a default deny); for
    /// a lawful flow, the checks it passed.
    pub reasons: Vec<String>,
    /// Open points of a lawful flow.
    pub warnings: Vec<String>,
    /// The obligations a permit carries.
    pub obligations: Vec<Obligation>,
    /// The engine's reason, verbatim.
    pub decision_reason: String,
}

/// Counts of the verdicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Flows analysed.
    pub flows: usize,
    /// Lawful, nothing open.
    pub lawful: usize,
    /// Blocked.
    pub blocked: usize,
    /// Lawful with warnings.
    pub with_warnings: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} flow{}: {} lawful, {} blocked, {} with warnings",
            self.flows,
            if self.flows == 1 { "" } else { "s" },
            self.lawful,
            self.blocked,
            self.with_warnings
        )
    }
}

/// The analysis of a scenario.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GapReport {
    /// Scenario id.
    pub scenario: String,
    /// Scenario title.
    pub title: String,
    /// The day of the flows.
    pub date: Date,
    /// The requesting party.
    pub requesting: PartyCode,
    /// The offences and their concepts.
    pub offences: Vec<Offence>,
    /// The agreements loaded.
    pub agreements: Vec<String>,
    /// One report per flow, in file order.
    pub flows: Vec<FlowReport>,
    /// Counts.
    pub summary: Summary,
}

/// The class of a criterion `first_miss` reports, with its rank (later criteria rank higher:
/// the agreement that got furthest names the gap).
fn miss_class(miss: &str) -> (u8, BlockClass) {
    match miss {
        "does not cover the data category" => (2, BlockClass::CategoryNotCovered),
        "does not cover the purpose" => (3, BlockClass::PurposeNotCovered),
        "does not cover the offence" => (4, BlockClass::OffenceNotCovered),
        "does not provide for the request kind" => (5, BlockClass::RequestKindNotProvided),
        "not yet in force"
        | "no longer in force"
        | "not in force for both parties"
        | "a template, in force only once concluded" => (1, BlockClass::NoAgreementInForce),
        _ => (0, BlockClass::NoAgreementInForce),
    }
}

/// Why no agreement permits `flow` on `day`, agreement by agreement, and the class of the gap.
pub fn explain_misses(
    agreements: &[Agreement],
    flow: &Flow<'_>,
    day: Date,
) -> (BlockClass, Vec<String>) {
    let mut best: Option<(u8, BlockClass)> = None;
    let mut reasons = Vec::new();
    for a in agreements.iter().filter(|a| a.binds(flow.from, flow.to)) {
        let miss = first_miss(a, flow, day).unwrap_or("covers the flow");
        let mut reason = format!("{}: {miss}", a.id);
        match miss {
            "not yet in force" => reason.push_str(&format!(" (from {})", a.in_force_from)),
            "not in force for both parties" => reason.push_str(&format!(
                ": not for {}",
                a.not_in_force_for([flow.from, flow.to], day).join(", ")
            )),
            "no longer in force" => {
                if let Some(u) = a.in_force_until {
                    reason.push_str(&format!(" (until {u})"));
                }
            }
            _ => {}
        }
        reasons.push(reason);
        let class = miss_class(miss);
        if best.is_none_or(|b| class.0 > b.0) {
            best = Some(class);
        }
    }
    match best {
        Some((_, class)) => (class, reasons),
        None => (
            BlockClass::NoAgreementInForce,
            vec![format!("no agreement binds {} and {}", flow.from, flow.to)],
        ),
    }
}

/// Analyses every flow of `scenario` against the agreements compiled in `engine`.
pub fn analyze(scenario: &Scenario, engine: &Engine, lexicon: &Lexicon) -> GapReport {
    let mut concepts: Vec<String> = Vec::new();
    for o in &scenario.offences {
        for c in &o.concepts {
            if !concepts.contains(c) {
                concepts.push(c.clone());
            }
        }
    }
    let flows: Vec<FlowReport> = scenario
        .flows
        .iter()
        .enumerate()
        .map(|(i, f)| analyze_flow(scenario, i + 1, f, &concepts, engine, lexicon))
        .collect();
    let count = |v: FlowVerdict| flows.iter().filter(|f| f.verdict == v).count();
    let summary = Summary {
        flows: flows.len(),
        lawful: count(FlowVerdict::Lawful),
        blocked: count(FlowVerdict::Blocked),
        with_warnings: count(FlowVerdict::LawfulWithWarnings),
    };
    GapReport {
        scenario: scenario.id.clone(),
        title: scenario.title.clone(),
        date: scenario.date,
        requesting: scenario.requesting.clone(),
        offences: scenario.offences.clone(),
        agreements: engine.agreements().iter().map(|a| a.id.clone()).collect(),
        flows,
        summary,
    }
}

fn analyze_flow(
    scenario: &Scenario,
    index: usize,
    f: &ScenarioFlow,
    concepts: &[String],
    engine: &Engine,
    lexicon: &Lexicon,
) -> FlowReport {
    let mut reasons = Vec::new();
    let mut warnings = Vec::new();
    let mut blocked_by = Vec::new();
    let onward = f.from != f.originator && f.to != f.originator;

    // The agreement an onward-transferred datum came under: given, or the one that grounds
    // originator → from for the same category, purpose and offences on the day.
    let (origin_agreement, origin_inferred) = match (&f.origin_agreement, onward) {
        (Some(a), _) => (Some(a.clone()), false),
        (None, true) => {
            let first_leg = Flow {
                from: &f.originator,
                to: &f.from,
                originator: &f.originator,
                origin_agreement: None,
                category: f.category,
                purpose: f.purpose,
                concepts,
                request_kind: None,
                consents: &[],
            };
            let d = engine.decide_flow(&first_leg, scenario.at);
            if d.agreement.is_none() {
                warnings.push(format!(
                    "no agreement grounds the first leg {} → {} for {}; the onward-transfer rules of no agreement were applied (give origin_agreement)",
                    f.originator, f.from, f.category
                ));
            }
            (d.agreement, true)
        }
        (None, false) => (None, false),
    };

    let consents: Vec<PartyCode> = if f.consent { vec![f.originator.clone()] } else { Vec::new() };
    let flow = Flow {
        from: &f.from,
        to: &f.to,
        originator: &f.originator,
        origin_agreement: origin_agreement.as_deref(),
        category: f.category,
        purpose: f.purpose,
        concepts,
        request_kind: f.request_kind,
        consents: &consents,
    };
    let decision = engine.decide_flow(&flow, scenario.at);
    let mut deadline_info = None;
    let grounding = decision.agreement.as_deref().and_then(|id| engine.agreement(id));

    if decision.decision.outcome == Outcome::Permit {
        if let Some(a) = grounding {
            // (a) Dual criminality, where the request calls for it, by the test the request
            // kind and category call for (`incoming::dc_requirement`: the agreement's own
            // rule, else MLA on the conduct, ETS 185 Art 25(5)); a flow without a request (data shared in
            // a team) needs none. A required test that fails blocks; one compared for
            // information only warns.
            let test = match f.request_kind {
                _ if f.from == scenario.requesting => None,
                Some(kind) => {
                    Some(crate::incoming::dc_requirement(a, kind, Some(&[f.category]), lexicon))
                }
                // Data shared without a request: only an agreement that states a threshold
                // makes dual criminality a condition of it.
                None => a.dual_criminality_months.map(|months| {
                    let t = entente_core::lexicon::Threshold {
                        months,
                        more_than: false,
                        basis: format!(
                            "{}: at least {months} months, as the agreement states",
                            a.id
                        ),
                    };
                    (
                        crate::incoming::DcRequirement {
                            required: true,
                            test: "penalty",
                            basis: t.basis.clone(),
                        },
                        Some(entente_core::lexicon::DcTest::Penalty(t)),
                    )
                }),
            };
            // Compared for information only (not a condition the agreement states): the
            // result is a reason, never a warning or a block.
            if let Some((_, Some(test))) = test.as_ref().filter(|(r, _)| !r.required) {
                let how = match test {
                    entente_core::lexicon::DcTest::Conduct { .. } => "on the conduct".to_owned(),
                    entente_core::lexicon::DcTest::Penalty(t) => t.words(),
                };
                for o in scenario.offences.iter().filter(|o| o.party == scenario.requesting) {
                    if let Ok(mut dc) = lexicon.check_dual_criminality_under(
                        o.party.as_str(),
                        &o.citation,
                        f.from.as_str(),
                        test,
                    ) {
                        crate::incoming::apply_reservations(&mut dc, a, &f.from);
                        reasons.push(format!(
                            "dual criminality {} for {} {} at {} ({how}; for information, not a condition {} states)",
                            dc.verdict.as_str(),
                            o.party,
                            o.citation,
                            f.from,
                            a.id
                        ));
                    }
                }
            }
            if let Some((req, Some(test))) = test.filter(|(r, _)| r.required) {
                let how = match &test {
                    entente_core::lexicon::DcTest::Conduct { .. } => "on the conduct".to_owned(),
                    entente_core::lexicon::DcTest::Penalty(t) => t.words(),
                };
                for o in scenario.offences.iter().filter(|o| o.party == scenario.requesting) {
                    let label = format!("{} {}", o.party, o.citation);
                    match lexicon
                        .check_dual_criminality_under(
                            o.party.as_str(),
                            &o.citation,
                            f.from.as_str(),
                            &test,
                        )
                        .map(|mut dc| {
                            crate::incoming::apply_reservations(&mut dc, a, &f.from);
                            dc
                        }) {
                        Ok(dc) => match dc.verdict {
                            Verdict::Satisfied => {
                                reasons.push(format!(
                                    "dual criminality satisfied for {label} at {} ({how}, {})",
                                    f.from, a.id
                                ));
                                if !dc.caveats.is_empty() {
                                    warnings.push(format!(
                                        "dual criminality for {label} at {} relies on partially verified facts: {}",
                                        f.from,
                                        dc.caveats.join("; ")
                                    ));
                                }
                            }
                            Verdict::NotSatisfied if req.required => {
                                blocked_by.push(BlockClass::DualCriminalityFails);
                                reasons.push(format!(
                                    "dual criminality fails: {label} at {} ({how}, {}): {}",
                                    f.from, a.id, dc.reason
                                ));
                            }
                            Verdict::NotSatisfied => warnings.push(format!(
                                "dual criminality not satisfied for {label} at {} ({how}; not stated as a condition: {}): {}",
                                f.from, req.basis, dc.reason
                            )),
                            Verdict::Undetermined => warnings.push(format!(
                                "dual criminality undetermined for {label} at {} ({how}, {}); open: {}",
                                f.from,
                                a.id,
                                if dc.open_facts.is_empty() {
                                    dc.reason.clone()
                                } else {
                                    dc.open_facts.join("; ")
                                }
                            )),
                        },
                        Err(e) => warnings.push(format!(
                            "dual criminality of {label} at {} not checked: {e}",
                            f.from
                        )),
                    }
                }
            }
            // (b) The request kind's deadline, and whether its rule names the category.
            if let Some(kind) = f.request_kind {
                deadline_info = deadline(a, kind, f.urgent, scenario.at, &f.to);
                if let Some(rule) = a.requests.iter().find(|r| r.kind == kind)
                    && !rule.categories.contains(&f.category)
                {
                    warnings.push(format!(
                        "{} provides {kind} requests for {} only, not {}",
                        a.id,
                        rule.categories.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", "),
                        f.category
                    ));
                }
                if let Some(d) = &deadline_info
                    && let Some(note) = &d.note
                {
                    reasons.push(note.clone());
                }
            }
            // (c) Retention.
            match (&f.retention_needed, a.retention.get(&f.category)) {
                (Some(needed), Some(allowed)) => {
                    let longer = needed
                        .span
                        .compare((allowed.span, scenario.date))
                        .is_ok_and(|o| o == std::cmp::Ordering::Greater);
                    if longer {
                        blocked_by.push(BlockClass::RetentionConflict);
                        reasons.push(format!(
                            "retention conflict: needs {}, {} allows {} for {}",
                            needed.text, a.id, allowed.text, f.category
                        ));
                    } else {
                        reasons.push(format!(
                            "retention: needs {}, {} allows {}",
                            needed.text, a.id, allowed.text
                        ));
                    }
                }
                (Some(needed), None) => reasons.push(format!(
                    "retention: needs {}; {} sets no limit for {}",
                    needed.text, a.id, f.category
                )),
                _ => {}
            }
            if onward {
                reasons.push(format!(
                    "onward transfer of {}'s datum{}{}",
                    f.originator,
                    origin_agreement
                        .as_deref()
                        .map(|o| format!(" received under {o}"))
                        .unwrap_or_default(),
                    if f.consent {
                        format!(", with {}'s consent", f.originator)
                    } else {
                        String::new()
                    }
                ));
            }
        } else {
            blocked_by.push(BlockClass::PolicyError);
            reasons.push("a permit named no loaded agreement".to_owned());
        }
    } else {
        let rules = &decision.decision.rules;
        let has = |suffix: &str| rules.iter().any(|r| r.ends_with(suffix));
        if has("#onward-transfer-needs-consent") {
            blocked_by.push(BlockClass::OnwardTransferNeedsConsent);
            reasons.push(format!(
                "onward transfer needs consent: {} (no consent of {} recorded)",
                decision.decision.reason, f.originator
            ));
        } else if has("#no-onward-transfer") {
            blocked_by.push(BlockClass::OnwardTransferForbidden);
            reasons.push(format!("onward transfer forbidden: {}", decision.decision.reason));
        } else if has("#purpose-limitation") {
            blocked_by.push(BlockClass::PurposeNotCovered);
            reasons.push(format!("purpose not covered: {}", decision.decision.reason));
        } else if rules.iter().any(|r| r == "default-deny") {
            let (class, misses) = explain_misses(
                engine.agreements(),
                &flow,
                scenario.at.to_zoned(jiff::tz::TimeZone::UTC).date(),
            );
            blocked_by.push(class);
            reasons.push(format!("{class}"));
            reasons.extend(misses);
        } else {
            blocked_by.push(BlockClass::PolicyError);
            reasons.push(decision.decision.reason.clone());
        }
    }

    blocked_by.sort();
    blocked_by.dedup();
    let verdict = if !blocked_by.is_empty() {
        FlowVerdict::Blocked
    } else if warnings.is_empty() {
        FlowVerdict::Lawful
    } else {
        FlowVerdict::LawfulWithWarnings
    };
    FlowReport {
        index,
        line: f.line,
        from: f.from.clone(),
        to: f.to.clone(),
        originator: f.originator.clone(),
        category: f.category,
        purpose: f.purpose,
        request_kind: f.request_kind,
        urgent: f.urgent,
        consent: f.consent,
        origin_agreement,
        origin_inferred,
        verdict,
        blocked_by,
        agreement: decision.agreement.clone(),
        rules: decision.decision.rules.clone(),
        deadline: deadline_info,
        reasons,
        warnings,
        obligations: decision.decision.obligations.clone(),
        decision_reason: decision.decision.reason.clone(),
    }
}

#[cfg(test)]
mod tests;
