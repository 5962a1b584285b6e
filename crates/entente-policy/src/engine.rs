//! Agreements compiled into Cedar policy, and the decision on a data flow.
//!
//! Every agreement becomes Cedar policies over one action, `Entente::Action::"flow"`, whose
//! context describes the flow (sending party, receiving party, originating party, data
//! category, purpose, offence concepts, request kind, the day, and the consents recorded):
//! - one `permit` per agreement: both parties bound, in force on the day, category, purpose,
//!   offence and request kind covered;
//! - `forbid` policies for the conditions that travel with data received under the agreement:
//!   no onward transfer (or none without the originating party's consent), and purpose
//!   limitation.
//!
//! Cedar denies by default and a `forbid` overrides any `permit`. The value sets an agreement
//! names (its parties, categories, purposes, offence concepts and request kinds) are attributes
//! of an `Entente::Agreement` entity, built once at compile time, that the policies read; a
//! policy does not rebuild them on every evaluation. A decision puts to Cedar only the
//! policies that can apply: the permits of the agreements that bind the (sending, receiving)
//! pair and cover the data category and purpose and, for an onward transfer only, the forbids
//! of the agreement the datum came under (every forbid requires `context.onward` and names its
//! agreement in `context.origin_agreement`, so the others cannot be satisfied). When several
//! agreements permit a flow, the most specific instrument grounds it (a
//! JIT agreement before a regulation or bilateral treaty, before a protocol, before the general
//! treaty). Each policy carries `@agreement` and `@rule` annotations; a decision names them.
//! When nothing permits, [`Engine::decide_flow`] explains, agreement by agreement, what was
//! missing (the same criteria, checked directly; a property test keeps the two in step).

use crate::agreement::{
    Agreement, AgreementKind, DataCategory, OnwardTransfer, Purpose, RequestKind,
};
use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityUid, Policy, PolicyId,
    PolicySet, Request, RestrictedExpression,
};
use entente_core::{Decision, Obligation, Outcome, PartyCode};
use jiff::Timestamp;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::str::FromStr as _;
use std::sync::{Arc, RwLock};

/// At most this many onward-transfer policy sets are kept; beyond it they are built per
/// decision.
const ONWARD_CACHE: usize = 20_000;

/// A data flow to decide.
#[derive(Clone, Debug)]
pub struct Flow<'a> {
    /// The party holding and sending the datum (this node's party).
    pub from: &'a PartyCode,
    /// The party that would receive it.
    pub to: &'a PartyCode,
    /// The party that originated the datum (equal to `from` for the node's own data).
    pub originator: &'a PartyCode,
    /// For data received from another party: the agreement it came under.
    pub origin_agreement: Option<&'a str>,
    /// The datum's category.
    pub category: DataCategory,
    /// The purpose the receiver states.
    pub purpose: Purpose,
    /// Offence concepts of the case the flow serves.
    pub concepts: &'a [String],
    /// The kind of request answered, if any.
    pub request_kind: Option<RequestKind>,
    /// Parties that have consented to onward transfer of this datum to `to`.
    pub consents: &'a [PartyCode],
}

impl Flow<'_> {
    /// Whether the flow passes data received from another party to a third party.
    pub fn is_onward(&self) -> bool {
        self.from != self.originator && self.to != self.originator
    }
}

pub use entente_core::domain::Conditions;

/// The decision on a flow, with the agreement that grounds a permit and the conditions that
/// must travel with the datum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowDecision {
    /// Permit or deny, the rules that decided, the obligations, the reason.
    pub decision: Decision,
    /// The agreement that permitted the flow.
    pub agreement: Option<String>,
    /// Conditions to attach to the datum (permits only).
    pub conditions: Option<Conditions>,
}

/// Agreements that cannot be compiled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompileError {
    /// A value cannot be written safely into a policy.
    #[error(
        "agreement `{agreement}`: value `{value}` cannot be used in policy (expected letters, digits, '.', '_', '-', ' ')"
    )]
    UnsafeValue {
        /// The agreement.
        agreement: String,
        /// The value.
        value: String,
    },
    /// Cedar refused the generated policy (a bug in the compiler, reported, not hidden).
    #[error("agreement `{agreement}`: generated policy rejected by Cedar: {detail}")]
    Cedar {
        /// The agreement.
        agreement: String,
        /// Cedar's message.
        detail: String,
    },
}

/// Where a compiled policy came from.
#[derive(Clone, Debug)]
struct RuleInfo {
    agreement: usize,
    rule: String,
    text: String,
}

/// The policies that can apply between a sending and a receiving party.
struct Pair {
    /// The `flow` permits of the agreements that bind both parties, by data category and
    /// purpose (see [`slot`]): a permit whose agreement does not cover the category or the
    /// purpose cannot be satisfied, so it is left out of that slot's set. Sets with the same
    /// permits are shared between pairs: the values index [`Engine::permit_sets`].
    permits: Vec<usize>,
    /// Those agreements, by index, in load order.
    binding: Vec<usize>,
}

/// The compiled agreements.
pub struct Engine {
    agreements: Vec<Agreement>,
    /// Sending party, then receiving party (looked up by reference, without cloning codes).
    by_pair: HashMap<PartyCode, HashMap<PartyCode, Pair>>,
    /// The distinct permit sets the pairs use.
    permit_sets: Vec<PolicySet>,
    /// The forbids of each agreement (travelling conditions), by agreement index.
    forbids: Vec<Vec<Policy>>,
    /// Policy sets for onward transfers, built on first use: (permit set, origin agreement)
    /// → that permit set with the origin agreement's forbids. Bounded by [`ONWARD_CACHE`].
    onward: RwLock<HashMap<(usize, usize), Arc<PolicySet>>>,
    /// Agreement index by id.
    by_id: HashMap<String, usize>,
    rules: HashMap<PolicyId, RuleInfo>,
    empty: PolicySet,
    authorizer: Authorizer,
    entities: Entities,
    principal: EntityUid,
    action: EntityUid,
    resource: EntityUid,
    /// Where this node keeps the data it holds (its blob store's jurisdiction), when known:
    /// checked against the agreements' residency clauses for data it receives.
    storage: Option<PartyCode>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("agreements", &self.agreements.len())
            .field("policies", &self.rules.len())
            .finish_non_exhaustive()
    }
}

fn lit(agreement: &str, s: &str) -> Result<String, CompileError> {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ' ' | '(' | ')' | '/'))
    {
        Ok(format!("\"{s}\""))
    } else {
        Err(CompileError::UnsafeValue { agreement: agreement.to_owned(), value: s.to_owned() })
    }
}

fn set(agreement: &str, items: &[String]) -> Result<String, CompileError> {
    let parts: Result<Vec<String>, CompileError> =
        items.iter().map(|i| lit(agreement, i)).collect();
    Ok(format!("[{}]", parts?.join(", ")))
}

fn kebab<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The entity that carries an agreement's value sets.
fn agreement_uid(a: &Agreement) -> Result<String, CompileError> {
    Ok(format!("Entente::Agreement::{}", lit(&a.id, &a.id)?))
}

fn str_set<'a>(items: impl IntoIterator<Item = &'a str>) -> RestrictedExpression {
    RestrictedExpression::new_set(
        items.into_iter().map(|v| RestrictedExpression::new_string(v.to_owned())),
    )
}

fn agreement_entity(a: &Agreement) -> Result<Entity, CompileError> {
    let cedar = |e: String| CompileError::Cedar { agreement: a.id.clone(), detail: e };
    let uid = EntityUid::from_str(&agreement_uid(a)?).map_err(|e| cedar(e.to_string()))?;
    let concepts: Vec<&str> = match &a.offences {
        crate::agreement::ConceptScope::AnyOffence => Vec::new(),
        crate::agreement::ConceptScope::Concepts(c) => c.iter().map(String::as_str).collect(),
    };
    let categories: Vec<String> = a.categories.iter().map(kebab).collect();
    let purposes: Vec<String> = a.purposes.iter().map(kebab).collect();
    let kinds: Vec<String> = a.requests.iter().map(|r| kebab(&r.kind)).collect();
    let attrs = HashMap::from([
        ("parties".to_owned(), str_set(a.parties.iter().map(PartyCode::as_str))),
        ("categories".to_owned(), str_set(categories.iter().map(String::as_str))),
        ("purposes".to_owned(), str_set(purposes.iter().map(String::as_str))),
        ("concepts".to_owned(), str_set(concepts)),
        ("kinds".to_owned(), str_set(kinds.iter().map(String::as_str))),
    ]);
    Entity::new(uid, attrs, HashSet::new()).map_err(|e| cedar(e.to_string()))
}

/// The day as a number `YYYYMMDD`, the unit in which policies compare dates.
fn day_number(d: jiff::civil::Date) -> i64 {
    i64::from(d.year()) * 10_000 + i64::from(d.month()) * 100 + i64::from(d.day())
}

const ACTION: &str = r#"Entente::Action::"flow""#;

fn policy_text(a: &Agreement) -> Result<Vec<(String, String, String)>, CompileError> {
    let id = &a.id;
    // Every value must be safe to write into policy, although the sets are read from the
    // agreement's entity.
    let parties: Vec<String> = a.parties.iter().map(|p| p.as_str().to_owned()).collect();
    set(id, &parties)?;
    set(id, &a.categories.iter().map(kebab).collect::<Vec<_>>())?;
    let purposes_list: Vec<String> = a.purposes.iter().map(kebab).collect();
    set(id, &purposes_list)?;
    set(id, &a.requests.iter().map(|r| kebab(&r.kind)).collect::<Vec<_>>())?;
    let entity = agreement_uid(a)?;
    let parties = format!("{entity}.parties");
    let categories = format!("{entity}.categories");
    let purposes = format!("{entity}.purposes");
    let kinds = format!("{entity}.kinds");
    let until = a.in_force_until.map_or(99_991_231, day_number);
    // In force for both parties of the flow: from one date for all, or from each party's own
    // (a party for which the instrument is not in force has no term, so nothing matches it).
    let in_force = if a.template {
        // A template grounds nothing until the parties conclude it.
        "false".to_owned()
    } else if a.ratifications.is_empty() {
        format!("context.day >= {} && context.day <= {until}", day_number(a.in_force_from))
    } else {
        let side = |side: &str| -> Result<String, CompileError> {
            let mut terms = Vec::new();
            for p in &a.parties {
                if let Some(d) = a.in_force_from_for(p) {
                    terms.push(format!(
                        "(context.{side} == {} && context.day >= {})",
                        lit(id, p.as_str())?,
                        day_number(d)
                    ));
                }
            }
            Ok(if terms.is_empty() {
                "false".to_owned()
            } else {
                format!("({})", terms.join(" || "))
            })
        };
        format!("{} && {} && context.day <= {until}", side("from")?, side("to")?)
    };
    let offences = match &a.offences {
        crate::agreement::ConceptScope::AnyOffence => "true".to_owned(),
        crate::agreement::ConceptScope::Concepts(c) => {
            set(id, c)?;
            format!("{entity}.concepts.containsAny(context.concepts)")
        }
    };
    let agreement = lit(id, id)?;
    let mut out = vec![(
        "flow".to_owned(),
        format!(
            "{} binds both parties, is in force, and covers the category, purpose, offence and request kind",
            a.id
        ),
        format!(
            "@agreement({agreement}) @rule(\"flow\")\n\
             permit(principal, action == {ACTION}, resource) when {{\n\
               {categories}.contains(context.category) && {purposes}.contains(context.purpose) &&\n\
               {offences} && (context.kind == \"\" || {kinds}.contains(context.kind)) &&\n\
               {in_force} &&\n\
               context.from != context.to && {parties}.contains(context.from) && {parties}.contains(context.to)\n\
             }};"
        ),
    )];
    let onward = format!(
        "context.onward && context.origin_agreement == {agreement} && {parties}.contains(context.from)"
    );
    match a.onward_transfer {
        OnwardTransfer::Forbidden => out.push((
            "no-onward-transfer".to_owned(),
            format!("data received under {} may not be passed to a third party", a.id),
            format!(
                "@agreement({agreement}) @rule(\"no-onward-transfer\")\n\
                 forbid(principal, action == {ACTION}, resource) when {{ {onward} }};"
            ),
        )),
        OnwardTransfer::ConsentOfOriginator => out.push((
            "onward-transfer-needs-consent".to_owned(),
            format!(
                "data received under {} may be passed to a third party only with the consent of the originating party",
                a.id
            ),
            format!(
                "@agreement({agreement}) @rule(\"onward-transfer-needs-consent\")\n\
                 forbid(principal, action == {ACTION}, resource) when {{ {onward} && !context.consents.contains(context.originator) }};"
            ),
        )),
        OnwardTransfer::Free => {}
    }
    out.push((
        "purpose-limitation".to_owned(),
        format!("data received under {} may be used only for {}", a.id, purposes_list.join(", ")),
        format!(
            "@agreement({agreement}) @rule(\"purpose-limitation\")\n\
             forbid(principal, action == {ACTION}, resource) when {{ {onward} && !{purposes}.contains(context.purpose) }};"
        ),
    ));
    Ok(out)
}

fn uid(s: &str) -> Result<EntityUid, CompileError> {
    EntityUid::from_str(s)
        .map_err(|e| CompileError::Cedar { agreement: "-".into(), detail: e.to_string() })
}

impl Engine {
    /// Compiles `agreements` (already validated) into policy.
    ///
    /// # Errors
    /// A value that cannot be written into policy, or a policy Cedar rejects.
    pub fn compile(agreements: Vec<Agreement>) -> Result<Engine, CompileError> {
        let mut permits: Vec<Policy> = Vec::with_capacity(agreements.len());
        let mut forbids: Vec<Vec<Policy>> = Vec::with_capacity(agreements.len());
        let mut rules = HashMap::new();
        let mut by_id = HashMap::new();
        let mut entities = Vec::with_capacity(agreements.len());
        for (i, a) in agreements.iter().enumerate() {
            let cedar = |e: String| CompileError::Cedar { agreement: a.id.clone(), detail: e };
            if by_id.insert(a.id.clone(), i).is_some() {
                return Err(cedar("another agreement has the same id".into()));
            }
            entities.push(agreement_entity(a)?);
            let mut own = Vec::new();
            for (rule, text, src) in policy_text(a)? {
                let pid = PolicyId::new(format!("{}#{rule}", a.id));
                let policy =
                    Policy::parse(Some(pid.clone()), &src).map_err(|e| cedar(e.to_string()))?;
                rules.insert(pid, RuleInfo { agreement: i, rule: rule.clone(), text });
                if rule == "flow" {
                    permits.push(policy);
                } else {
                    own.push(policy);
                }
            }
            forbids.push(own);
        }
        let entities = Entities::from_entities(entities, None)
            .map_err(|e| CompileError::Cedar { agreement: "-".into(), detail: e.to_string() })?;
        let parties: BTreeSet<&PartyCode> =
            agreements.iter().flat_map(|a| a.parties.iter()).collect();
        let mut by_pair: HashMap<PartyCode, HashMap<PartyCode, Pair>> = HashMap::new();
        // Permit sets by the agreements they hold, shared between pairs and slots.
        let mut shared: HashMap<Vec<usize>, usize> = HashMap::new();
        let mut permit_sets: Vec<PolicySet> = Vec::new();
        let slots = DataCategory::ALL.len() * Purpose::ALL.len();
        for &from in &parties {
            let row = by_pair.entry(from.clone()).or_default();
            for &to in &parties {
                if from == to {
                    continue;
                }
                let binding: Vec<usize> =
                    (0..agreements.len()).filter(|&i| agreements[i].binds(from, to)).collect();
                let mut pair = Pair { permits: Vec::with_capacity(slots), binding };
                for category in DataCategory::ALL {
                    for purpose in Purpose::ALL {
                        let held: Vec<usize> = pair
                            .binding
                            .iter()
                            .copied()
                            .filter(|&i| {
                                agreements[i].categories.contains(category)
                                    && agreements[i].purposes.contains(purpose)
                            })
                            .collect();
                        let set = match shared.get(&held) {
                            Some(&set) => set,
                            None => {
                                let mut set = PolicySet::new();
                                for &i in &held {
                                    set.add(permits[i].clone()).map_err(|e| {
                                        CompileError::Cedar {
                                            agreement: agreements[i].id.clone(),
                                            detail: e.to_string(),
                                        }
                                    })?;
                                }
                                permit_sets.push(set);
                                shared.insert(held, permit_sets.len() - 1);
                                permit_sets.len() - 1
                            }
                        };
                        pair.permits.push(set);
                    }
                }
                row.insert(to.clone(), pair);
            }
        }
        Ok(Engine {
            agreements,
            by_pair,
            permit_sets,
            forbids,
            onward: RwLock::new(HashMap::new()),
            by_id,
            rules,
            empty: PolicySet::new(),
            authorizer: Authorizer::new(),
            entities,
            principal: uid(r#"Entente::Party::"node""#)?,
            action: uid(ACTION)?,
            resource: uid(r#"Entente::Datum::"datum""#)?,
            storage: None,
        })
    }

    /// States where this node keeps the data it holds (`[evidence] jurisdiction`).
    pub fn set_storage_jurisdiction(&mut self, party: PartyCode) {
        self.storage = Some(party);
    }

    /// The denial of taking in data of `category` under `agreement` when this node keeps its
    /// data outside a residency clause of that agreement; `None` when no clause is broken (or
    /// the storage jurisdiction is not stated).
    pub fn storage_denial(&self, agreement: &str, category: DataCategory) -> Option<Decision> {
        let storage = self.storage.as_ref()?;
        let a = self.agreement(agreement)?;
        let clause = a
            .residency
            .iter()
            .find(|r| r.categories.contains(&category) && !r.within.contains(storage))?;
        let within: Vec<&str> = clause.within.iter().map(PartyCode::as_str).collect();
        Some(Decision::deny(
            &format!("{}#residency", a.id),
            format!(
                "{category} data under {} stays within {} ({} [{}]); this node keeps its data in {storage} ([evidence] jurisdiction)",
                a.id,
                within.join(", "),
                clause.basis.citation,
                clause.basis.status
            ),
        ))
    }

    /// The compiled agreements.
    pub fn agreements(&self) -> &[Agreement] {
        &self.agreements
    }

    /// The agreement with this id.
    pub fn agreement(&self, id: &str) -> Option<&Agreement> {
        self.by_id.get(id).and_then(|&i| self.agreements.get(i))
    }

    /// Number of Cedar policies compiled.
    pub fn policy_count(&self) -> usize {
        self.rules.len()
    }

    /// Decides `flow` at `now`.
    pub fn decide_flow(&self, flow: &Flow<'_>, now: Timestamp) -> FlowDecision {
        let day = now.to_zoned(jiff::tz::TimeZone::UTC).date();
        let pair = self.by_pair.get(flow.from).and_then(|row| row.get(flow.to));
        let response = match self.request(flow, day).and_then(|request| {
            let set = match pair {
                None => &self.empty,
                Some(pair) => {
                    let Some(&permits) =
                        slot(flow.category, flow.purpose).and_then(|i| pair.permits.get(i))
                    else {
                        return Err("no policy slot for the category and purpose".into());
                    };
                    match self.onward_set(flow, permits)? {
                        Some(set) => {
                            return Ok(self.authorizer.is_authorized(
                                &request,
                                &set,
                                &self.entities,
                            ));
                        }
                        None => &self.permit_sets[permits],
                    }
                }
            };
            Ok(self.authorizer.is_authorized(&request, set, &self.entities))
        }) {
            Ok(response) => response,
            Err(e) => {
                return FlowDecision {
                    decision: Decision::deny(
                        "policy.error",
                        format!("the flow could not be put to policy: {e}"),
                    ),
                    agreement: None,
                    conditions: None,
                };
            }
        };
        let reasons: Vec<&RuleInfo> =
            response.diagnostics().reason().filter_map(|p| self.rules.get(p)).collect();
        match response.decision() {
            CedarDecision::Allow => {
                // Several agreements may permit: the most specific instrument grounds the flow
                // (lex specialis: a JIT agreement, then a regulation or bilateral treaty, then
                // a protocol, then the general treaty), then the first loaded.
                let Some(info) = reasons
                    .iter()
                    .min_by_key(|r| (specificity(self.agreements[r.agreement].kind), r.agreement))
                else {
                    return FlowDecision {
                        decision: Decision::deny("policy.error", "a permit named no rule"),
                        agreement: None,
                        conditions: None,
                    };
                };
                let a = &self.agreements[info.agreement];
                // Data residency: the grounding agreement's clauses, and those of the
                // agreement the data first came under.
                let origin = flow.origin_agreement.and_then(|id| self.agreement(id));
                for (agreement, clause) in std::iter::once(a)
                    .chain(origin)
                    .flat_map(|x| x.residency.iter().map(move |r| (x, r)))
                {
                    if clause.categories.contains(&flow.category)
                        && !clause.within.contains(flow.to)
                    {
                        let within: Vec<&str> =
                            clause.within.iter().map(PartyCode::as_str).collect();
                        return FlowDecision {
                            decision: Decision::deny(
                                &format!("{}#residency", agreement.id),
                                format!(
                                    "{} data under {} stays within {} ({} [{}]); {} is outside",
                                    flow.category,
                                    agreement.id,
                                    within.join(", "),
                                    clause.basis.citation,
                                    clause.basis.status,
                                    flow.to
                                ),
                            ),
                            agreement: None,
                            conditions: None,
                        };
                    }
                }
                let (obligations, conditions) = obligations(a, flow, now);
                let mut unverified = a.unverified_basis(flow.from, flow.to);
                if let Some(rule) =
                    flow.request_kind.and_then(|k| a.requests.iter().find(|r| r.kind == k))
                    && rule.basis.status == entente_core::lexicon::VerificationStatus::U
                    && !unverified.contains(&rule.basis.citation)
                {
                    unverified.push(rule.basis.citation.clone());
                }
                let mut reason = format!(
                    "{} → {} permitted under {} ({}): {}",
                    flow.from,
                    flow.to,
                    a.title,
                    a.legal_basis.first().map_or(a.id.as_str(), |c| c.citation.as_str()),
                    info.text
                );
                if !unverified.is_empty() {
                    reason.push_str(&format!(
                        "; UNVERIFIED legal basis (status U, check before relying on it): {}",
                        unverified.join("; ")
                    ));
                }
                FlowDecision {
                    decision: Decision {
                        outcome: Outcome::Permit,
                        rules: vec![format!("{}#{}", a.id, info.rule)],
                        obligations,
                        reason,
                        unverified_basis: unverified,
                    },
                    agreement: Some(a.id.clone()),
                    conditions: Some(conditions),
                }
            }
            CedarDecision::Deny if !reasons.is_empty() => FlowDecision {
                decision: Decision {
                    outcome: Outcome::Deny,
                    rules: reasons
                        .iter()
                        .map(|r| format!("{}#{}", self.agreements[r.agreement].id, r.rule))
                        .collect(),
                    obligations: Vec::new(),
                    reason: reasons.iter().map(|r| r.text.clone()).collect::<Vec<_>>().join("; "),
                    unverified_basis: Vec::new(),
                },
                agreement: None,
                conditions: None,
            },
            CedarDecision::Deny => FlowDecision {
                decision: Decision::deny(
                    "default-deny",
                    self.explain_miss(flow, pair.map_or(&[], |p| &p.binding), day),
                ),
                agreement: None,
                conditions: None,
            },
        }
    }

    /// For an onward transfer of a datum received under an agreement that binds the sending
    /// party: the pair's permits (`permits`, an index into `permit_sets`) with that
    /// agreement's forbids. Otherwise `None`: no forbid can be satisfied and the pair's permits
    /// are the whole policy that applies.
    fn onward_set(
        &self,
        flow: &Flow<'_>,
        permits: usize,
    ) -> Result<Option<Arc<PolicySet>>, String> {
        if !flow.is_onward() {
            return Ok(None);
        }
        let Some(&origin) = flow.origin_agreement.and_then(|id| self.by_id.get(id)) else {
            return Ok(None);
        };
        let forbids = &self.forbids[origin];
        if forbids.is_empty() || !self.agreements[origin].parties.contains(flow.from) {
            return Ok(None);
        }
        let key = (permits, origin);
        if let Some(set) = self.onward.read().ok().and_then(|cache| cache.get(&key).cloned()) {
            return Ok(Some(set));
        }
        let mut set = self.permit_sets.get(permits).cloned().unwrap_or_default();
        for p in forbids {
            set.add(p.clone()).map_err(|e| e.to_string())?;
        }
        let set = Arc::new(set);
        if let Ok(mut cache) = self.onward.write()
            && cache.len() < ONWARD_CACHE
        {
            cache.insert(key, set.clone());
        }
        Ok(Some(set))
    }

    fn request(&self, flow: &Flow<'_>, day: jiff::civil::Date) -> Result<Request, String> {
        let s = |v: &str| RestrictedExpression::new_string(v.to_owned());
        let context = Context::from_pairs([
            ("from".to_owned(), s(flow.from.as_str())),
            ("to".to_owned(), s(flow.to.as_str())),
            ("originator".to_owned(), s(flow.originator.as_str())),
            ("origin_agreement".to_owned(), s(flow.origin_agreement.unwrap_or(""))),
            ("onward".to_owned(), RestrictedExpression::new_bool(flow.is_onward())),
            ("category".to_owned(), s(flow.category.as_str())),
            ("purpose".to_owned(), s(flow.purpose.as_str())),
            ("kind".to_owned(), s(flow.request_kind.map_or("", RequestKind::as_str))),
            (
                "concepts".to_owned(),
                RestrictedExpression::new_set(flow.concepts.iter().map(|c| s(c))),
            ),
            (
                "consents".to_owned(),
                RestrictedExpression::new_set(flow.consents.iter().map(|c| s(c.as_str()))),
            ),
            ("day".to_owned(), RestrictedExpression::new_long(day_number(day))),
        ])
        .map_err(|e| e.to_string())?;
        Request::new(
            self.principal.clone(),
            self.action.clone(),
            self.resource.clone(),
            context,
            None,
        )
        .map_err(|e| e.to_string())
    }

    /// Why no agreement permits `flow`: each agreement binding both parties and the first
    /// criterion it fails, or that none binds them.
    /// `binding`: the agreements that bind both parties, by index, in load order.
    fn explain_miss(&self, flow: &Flow<'_>, binding: &[usize], day: jiff::civil::Date) -> String {
        let misses: Vec<String> = binding
            .iter()
            .map(|&i| &self.agreements[i])
            .map(|a| match first_miss(a, flow, day) {
                Some(m @ "not in force for both parties") => format!(
                    "{}: {m}: not for {}",
                    a.id,
                    a.not_in_force_for([flow.from, flow.to], day).join(", ")
                ),
                m => format!("{}: {}", a.id, m.unwrap_or("covers the flow")),
            })
            .collect();
        if misses.is_empty() {
            format!("no agreement binds {} and {}", flow.from, flow.to)
        } else {
            format!("no agreement permits {} → {}: {}", flow.from, flow.to, misses.join("; "))
        }
    }
}

/// Where a pair keeps the permits for a category and purpose.
fn slot(category: DataCategory, purpose: Purpose) -> Option<usize> {
    let c = DataCategory::ALL.iter().position(|c| *c == category)?;
    let p = Purpose::ALL.iter().position(|p| *p == purpose)?;
    Some(c * Purpose::ALL.len() + p)
}

/// Rank of an instrument when several permit the same flow: lower is more specific.
fn specificity(kind: AgreementKind) -> u8 {
    match kind {
        AgreementKind::Jit => 0,
        AgreementKind::Regulation | AgreementKind::Directive | AgreementKind::BilateralMla => 1,
        AgreementKind::Mou => 2,
        AgreementKind::Protocol => 3,
        AgreementKind::Treaty => 4,
    }
}

/// The first criterion of an agreement's permit that `flow` fails, if any.
pub fn first_miss(a: &Agreement, flow: &Flow<'_>, day: jiff::civil::Date) -> Option<&'static str> {
    if !a.binds(flow.from, flow.to) {
        Some("does not bind both parties")
    } else if a.template {
        Some("a template, in force only once concluded")
    } else if day < a.in_force_from {
        Some("not yet in force")
    } else if a.in_force_until.is_some_and(|u| day > u) {
        Some("no longer in force")
    } else if !a.in_force_between(flow.from, flow.to, day) {
        Some("not in force for both parties")
    } else if !a.categories.contains(&flow.category) {
        Some("does not cover the data category")
    } else if !a.purposes.contains(&flow.purpose) {
        Some("does not cover the purpose")
    } else if !flow.concepts.iter().any(|c| a.covers_concept(c)) {
        Some("does not cover the offence")
    } else if flow.request_kind.is_some_and(|k| !a.requests.iter().any(|r| r.kind == k)) {
        Some("does not provide for the request kind")
    } else {
        None
    }
}

fn obligations(a: &Agreement, flow: &Flow<'_>, now: Timestamp) -> (Vec<Obligation>, Conditions) {
    let mut out = Vec::new();
    let retain_until = a.retention.get(&flow.category).and_then(|d| {
        now.to_zoned(jiff::tz::TimeZone::UTC)
            .checked_add(d.span)
            .ok()
            .map(|z| z.timestamp().to_string())
    });
    if let Some(until) = &retain_until {
        out.push(Obligation::RetainUntil { until: until.clone() });
    }
    for m in a.minimization.iter().filter(|m| m.category == flow.category) {
        out.push(Obligation::Minimize { field: m.field.clone(), transform: kebab(&m.transform) });
    }
    if a.onward_transfer == OnwardTransfer::ConsentOfOriginator {
        out.push(Obligation::NoOnwardTransferWithoutConsent { of: flow.originator.clone() });
    }
    if a.commercial_use_prohibited {
        out.push(Obligation::NoCommercialUse);
    }
    let conditions = Conditions {
        originator: flow.originator.clone(),
        agreement: a.id.clone(),
        purposes: a.purposes.clone(),
        retain_until,
        onward_transfer: a.onward_transfer,
        commercial_use_prohibited: a.commercial_use_prohibited,
        conditions: a.travelling_conditions.iter().map(|c| c.id.clone()).collect(),
    };
    (out, conditions)
}

#[cfg(test)]
mod tests;
