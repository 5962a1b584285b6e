//! The incoming check: what a central authority sees on a request it receives — the
//! dual-criminality result with both sides' provisions, the agreement and article that
//! ground the request, the grounds for refusal that may apply, and the clocks to answer.

use crate::agreement::{Agreement, Citation, DataCategory, DcRuleTest, RefusalGround, RequestKind};
use crate::request::Request;
use entente_core::lexicon::{DcTest, DualCriminality, Lexicon, Threshold, VerificationStatus};
use jiff::Timestamp;
use serde::Serialize;

/// Whether dual criminality conditions the request, and which test applies. It depends on
/// the cooperation asked for and on the instrument: a request kind's `dual_criminality` in
/// the agreement file says what the instrument says (ETS 185 Art 29(3): none for
/// preservation; Regulation (EU) 2023/1543 Art 12(1)(d): the enforcing State may refuse a
/// production order on the conduct). Without one, mutual assistance compares the conduct
/// only (ETS 185 Art 25(5)); an agreement-wide `dual_criminality_months` sets a penalty
/// threshold; otherwise the conduct is compared for information. Extradition thresholds are
/// not a condition of any request Entente carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DcRequirement {
    /// Whether the requested party may make its assistance conditional on dual criminality.
    pub required: bool,
    /// `conduct` (compared for every provision below), `penalty` (the agreement's own
    /// threshold) or `none` (no comparison is due).
    pub test: &'static str,
    /// Why, cited.
    pub basis: String,
}

/// Categories in words: `traffic, content`.
fn words(categories: &[DataCategory]) -> String {
    categories.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// A citation with its verification status, as the incoming check prints it.
fn cited(c: &Citation) -> String {
    format!("{} ({})", c.citation, c.status)
}

/// The dual-criminality requirement of a request of `kind` under `agreement` for the
/// categories of data `asked` (when known), and the test to run (none when no comparison is
/// due).
pub fn dc_requirement(
    agreement: &Agreement,
    kind: RequestKind,
    asked: Option<&[DataCategory]>,
    lexicon: &Lexicon,
) -> (DcRequirement, Option<DcTest>) {
    let conduct = lexicon.conduct_test();
    let conduct_basis = lexicon.rules.conduct_basis.clone();
    let rule = agreement.requests.iter().find(|r| r.kind == kind);
    if let Some(dc) = rule.and_then(|r| r.dual_criminality.as_ref()) {
        let mut basis = cited(&dc.basis);
        if !dc.categories.is_empty() {
            let only = words(&dc.categories);
            match asked {
                Some(asked) if !asked.iter().any(|c| dc.categories.contains(c)) => {
                    let basis = format!(
                        "{basis}: for {only} data only, and this request asks for {} data",
                        words(asked)
                    );
                    return (DcRequirement { required: false, test: "none", basis }, None);
                }
                Some(_) => {}
                None => basis = format!("{basis} (for {only} data)"),
            }
        }
        return match dc.test {
            DcRuleTest::None => (DcRequirement { required: false, test: "none", basis }, None),
            DcRuleTest::Conduct => (
                DcRequirement {
                    required: dc.required,
                    test: "conduct",
                    basis: format!(
                        "{basis}; the conduct is compared by the lexicon's conduct test ({conduct_basis})"
                    ),
                },
                Some(conduct),
            ),
            DcRuleTest::Penalty { months, more_than } => {
                let threshold = Threshold { months, more_than, basis: basis.clone() };
                (
                    DcRequirement { required: dc.required, test: "penalty", basis },
                    Some(DcTest::Penalty(threshold)),
                )
            }
        };
    }
    match (kind, agreement.dual_criminality_months) {
        (RequestKind::Mla, _) => (
            DcRequirement {
                required: true,
                test: "conduct",
                basis: format!(
                    "{conduct_basis}; no penalty threshold applies to mutual assistance (thresholds are for extradition, Art 24)"
                ),
            },
            Some(conduct),
        ),
        (_, Some(months)) => {
            let threshold = Threshold {
                months,
                more_than: false,
                basis: format!(
                    "{}: a maximum custodial penalty of at least {months} months in both parties, as the agreement states",
                    agreement.id
                ),
            };
            (
                DcRequirement { required: true, test: "penalty", basis: threshold.basis.clone() },
                Some(DcTest::Penalty(threshold)),
            )
        }
        (_, None) => (
            DcRequirement {
                required: false,
                test: "conduct",
                basis: format!(
                    "the agreement states no dual-criminality condition for {kind} requests; the conduct is compared for information ({conduct_basis})"
                ),
            },
            Some(conduct),
        ),
    }
}

/// Applies `party`'s reservations under `agreement` to a dual-criminality result for `party`'s
/// law: a reservation to the article of the conduct means the conduct may not (wholly) be an
/// offence there. When every concept the verdict rests on is reserved, a satisfied verdict
/// becomes undetermined; the reservation is an open fact either way.
pub fn apply_reservations(
    dc: &mut DualCriminality,
    agreement: &Agreement,
    party: &entente_core::PartyCode,
) {
    let relied: Vec<String> = dc
        .matching
        .iter()
        .filter(|a| a.finding == entente_core::lexicon::Finding::Meets)
        .flat_map(|a| a.shared_concepts.iter().cloned())
        .collect();
    let concepts = dc.from.provision.concepts.clone();
    let reserved: Vec<&crate::agreement::Reservation> =
        agreement.reservations_of(party, &concepts).collect();
    if reserved.is_empty() {
        return;
    }
    for r in &reserved {
        dc.open_facts.push(format!(
            "{party} made a reservation to ETS 185 Art {} ({}): {} ({} [{}]); whether the conduct is an offence there depends on its scope",
            r.article, r.concept, r.text, r.basis.citation, r.basis.status
        ));
    }
    let all_reserved =
        !relied.is_empty() && relied.iter().all(|c| reserved.iter().any(|r| &r.concept == c));
    if dc.verdict == entente_core::lexicon::Verdict::Satisfied && all_reserved {
        dc.verdict = entente_core::lexicon::Verdict::Undetermined;
        dc.reason = format!(
            "{}; but {party} made a reservation to the article of that conduct under {}, so it is open (listed)",
            dc.reason, agreement.id
        );
    }
}

/// One condition of Regulation (EU) 2023/1543 Art 5 on issuing an order, for the offence the
/// request names, with its outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrderCondition {
    /// The category asked for.
    pub category: DataCategory,
    /// `met`, `not met` or `open` (an unverified figure, or an unknown provision).
    pub outcome: &'static str,
    /// Why, with the provision and the rule.
    pub reason: String,
}

/// The issuing conditions of the request's rule (`issuing_conditions` in the agreement
/// file; Regulation (EU) 2023/1543 Art 5, V1 [EEV-art5]: subscriber and identification data
/// for any criminal offence; traffic and content data for offences punishable in the issuing
/// State by a maximum of at least three years, or for the listed offences committed by means
/// of an information system), checked for each provision the request names. Listed offences
/// are matched through the lexicon concepts the file lists; what the file does not map (the
/// non-cash payment fraud Directive, the terrorism limb) is left open, not assumed. None when
/// the rule sets no conditions.
pub fn order_conditions(
    request: &Request,
    provisions: &[String],
    lexicon: &Lexicon,
) -> Vec<OrderCondition> {
    let Some(ic) = request.rule.issuing_conditions.as_ref() else { return Vec::new() };
    let basis = cited(&ic.basis);
    let min = ic.min_penalty_months;
    let Ok(issuing) = lexicon.jurisdiction(request.from.as_str()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for &category in &request.rule.categories {
        if ic.any_offence.contains(&category) {
            out.push(OrderCondition {
                category,
                outcome: "met",
                reason: format!("{basis}: {category} data may be ordered for any criminal offence"),
            });
            continue;
        }
        for given in provisions {
            let Ok(p) = issuing.provision(given) else {
                out.push(OrderCondition {
                    category,
                    outcome: "open",
                    reason: format!(
                        "{given}: not in the lexicon for {}; {basis} cannot be checked",
                        request.from
                    ),
                });
                continue;
            };
            let listed: Vec<&str> = p
                .concepts
                .iter()
                .map(String::as_str)
                .filter(|c| ic.listed.iter().any(|l| l == c))
                .collect();
            let (outcome, reason) = if !listed.is_empty() && p.status != VerificationStatus::U {
                (
                    "met",
                    format!(
                        "{}: a listed offence ({}) committed by means of an information system ({})",
                        p.citation,
                        listed.join(", "),
                        ic.listed_basis
                    ),
                )
            } else {
                match p.penalty.max_months {
                    _ if p.penalty.status == VerificationStatus::U => (
                        "open",
                        format!(
                            "{}: the maximum penalty is unverified (U), and {basis} needs at least {min} months for {category} data unless the offence is listed",
                            p.citation
                        ),
                    ),
                    Some(m) if m >= min => (
                        "met",
                        format!(
                            "{}: maximum {m} months, at least the {min} months {basis} requires for {category} data",
                            p.citation
                        ),
                    ),
                    Some(m)
                        if p.penalty.aggravated_life
                            || p.penalty.aggravated_max_months.is_some_and(|a| a >= min) =>
                    {
                        (
                            "open",
                            format!(
                                "{}: basic maximum {m} months; only aggravated forms reach the {min} months {basis} requires for {category} data",
                                p.citation
                            ),
                        )
                    }
                    Some(m) => (
                        "not met",
                        format!(
                            "{}: maximum {m} months, short of the {min} months {basis} requires for {category} data, and not a listed offence",
                            p.citation
                        ),
                    ),
                    None => (
                        "open",
                        format!(
                            "{}: no maximum penalty recorded; {basis} needs at least {min} months for {category} data",
                            p.citation
                        ),
                    ),
                }
            };
            out.push(OrderCondition { category, outcome, reason });
        }
    }
    out
}

/// Dual criminality of one of the requesting party's provisions at the requested party.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProvisionCheck {
    /// The provision as the request names it.
    pub provision: String,
    /// The check, or why it could not run (unknown provision, no lexicon profile).
    pub result: Result<DualCriminality, String>,
}

/// One clock as the receiving authority needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClockLine {
    /// Deadline or period, with its duration.
    pub clock: String,
    /// Due instant, UTC.
    pub due_utc: String,
    /// Due instant in the clock's time zone.
    pub due_local: String,
    /// Running, met, missed or stopped.
    pub status: String,
    /// Whether its legal basis is unverified.
    pub unverified: bool,
}

/// Everything the requested party's central authority needs to decide.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IncomingCheck {
    /// The agreement and the article of the request kind.
    pub legal_basis: Citation,
    /// The agreement's id and title.
    pub agreement: String,
    /// Whether dual criminality conditions the request, and the test that applies.
    pub dual_criminality_requirement: DcRequirement,
    /// One check per provision of the requesting party (empty when no comparison is due).
    pub dual_criminality: Vec<ProvisionCheck>,
    /// For an e-Evidence order: the issuing conditions of Regulation (EU) 2023/1543 Art 5,
    /// per category asked for and provision named.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub order_conditions: Vec<OrderCondition>,
    /// The grounds on which the requested party may refuse, from the agreement.
    pub refusal_grounds: Vec<RefusalGround>,
    /// The clocks to answer.
    pub clocks: Vec<ClockLine>,
}

/// Builds the incoming check of `request` under `agreement` for the requesting party's
/// `provisions`, at `now`.
pub fn incoming_check(
    request: &Request,
    provisions: &[String],
    agreement: &Agreement,
    lexicon: &Lexicon,
    now: Timestamp,
) -> IncomingCheck {
    let (requirement, test) = dc_requirement(agreement, request.kind, None, lexicon);
    let dual_criminality = match &test {
        None => Vec::new(),
        Some(test) => provisions
            .iter()
            .map(|p| ProvisionCheck {
                provision: p.clone(),
                result: lexicon
                    .check_dual_criminality_under(
                        request.from.as_str(),
                        p,
                        request.to.as_str(),
                        test,
                    )
                    .map(|mut dc| {
                        apply_reservations(&mut dc, agreement, &request.to);
                        dc
                    })
                    .map_err(|e| e.to_string()),
            })
            .collect(),
    };
    let order_conditions = order_conditions(request, provisions, lexicon);
    IncomingCheck {
        legal_basis: request.rule.basis.clone(),
        agreement: format!("{} ({})", agreement.id, agreement.title),
        dual_criminality_requirement: requirement,
        dual_criminality,
        order_conditions,
        refusal_grounds: agreement
            .refusal_grounds
            .iter()
            .filter(|g| g.applies_to(request.kind))
            .cloned()
            .collect(),
        clocks: request
            .clocks
            .iter()
            .map(|c| ClockLine {
                clock: format!("{} {}", c.kind.name(), c.duration.text),
                due_utc: c.due.to_string(),
                due_local: c.due_local().to_string(),
                status: c.status(now).to_string(),
                unverified: c.unverified(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agreement::{RequestKind, builtin_agreements};
    use crate::request::RequestEvent;
    use entente_core::lexicon::Verdict;

    /// A request of `kind` from NL to `to` under `agreement`, submitted and received at `now`.
    fn received(kind: RequestKind, agreement: &Agreement, to: &str, now: Timestamp) -> Request {
        let mut r =
            Request::new(kind, agreement, "NL".parse().unwrap(), to.parse().unwrap(), false, now)
                .unwrap();
        r.apply(RequestEvent::Submit, now, agreement).unwrap();
        r.apply(RequestEvent::Receive, now, agreement).unwrap();
        r
    }

    #[test]
    fn epoc_from_nl_to_de() {
        let lexicon = Lexicon::builtin().unwrap();
        let agreements = builtin_agreements(&lexicon).unwrap();
        let eu = agreements.iter().find(|a| a.id == "eu-2023-1543").unwrap();
        let now: Timestamp = "2026-09-01T08:00:00Z".parse().unwrap();
        let r = received(RequestKind::Production, eu, "DE", now);
        let check = incoming_check(&r, &["Sr 138ab".into(), "Sr 999".into()], eu, &lexicon, now);
        assert!(check.legal_basis.citation.contains("2023/1543"), "{:?}", check.legal_basis);
        // Art 12(1)(d): the notified enforcing State may refuse on the conduct.
        let req = &check.dual_criminality_requirement;
        assert!(req.required && req.test == "conduct", "{req:?}");
        assert!(req.basis.contains("12(1)(d)") && req.basis.contains("(V1)"), "{req:?}");
        assert!(req.basis.contains("(for traffic, content data)"), "{req:?}");
        // Art 5: NL Sr 138ab is an attack on an information system (a listed offence) for
        // traffic and content data; subscriber data may be ordered for any offence.
        let met: Vec<(&str, &str)> =
            check.order_conditions.iter().map(|c| (c.category.as_str(), c.outcome)).collect();
        assert!(met.contains(&("subscriber", "met")), "{met:?}");
        assert!(met.contains(&("traffic", "met")), "{met:?}");
        assert!(met.contains(&("traffic", "open")), "Sr 999 is unknown: {met:?}");
        assert!(!check.refusal_grounds.is_empty());
        assert_eq!(check.clocks.len(), 1);
        assert_eq!(check.clocks[0].status, "running");
        match &check.dual_criminality[0].result {
            Ok(dc) => assert_ne!(dc.verdict, Verdict::NotSatisfied, "{dc:?}"),
            Err(e) => panic!("{e}"),
        }
        assert!(check.dual_criminality[1].result.is_err());
        // A preservation order has no refusal stage: no comparison is due.
        let p = received(RequestKind::Preservation, eu, "DE", now);
        let check = incoming_check(&p, &["Sr 138ab".into()], eu, &lexicon, now);
        let req = &check.dual_criminality_requirement;
        assert!(!req.required && req.test == "none" && req.basis.contains("Arts 8, 12"), "{req:?}");
        assert!(check.dual_criminality.is_empty() && check.order_conditions.is_empty());
    }

    /// An MLA request compares the conduct only: no threshold, whatever the agreement's
    /// extradition figure; preservation under the Convention needs no comparison.
    #[test]
    fn mla_is_conduct_only_and_preservation_needs_none() {
        let lexicon = Lexicon::builtin().unwrap();
        let agreements = builtin_agreements(&lexicon).unwrap();
        let ets = agreements.iter().find(|a| a.id == "ets-185").unwrap();
        let now: Timestamp = "2026-09-01T08:00:00Z".parse().unwrap();
        let received = |kind| received(kind, ets, "US", now);
        let check =
            incoming_check(&received(RequestKind::Mla), &["Sr 138ab".into()], ets, &lexicon, now);
        let req = &check.dual_criminality_requirement;
        assert!(req.required && req.test == "conduct", "{req:?}");
        assert!(
            req.basis.contains("Art 25(5)") && req.basis.contains("no penalty threshold"),
            "{req:?}"
        );
        let Ok(dc) = &check.dual_criminality[0].result else { panic!("{check:?}") };
        assert_eq!(dc.verdict, Verdict::Satisfied, "{dc:?}");
        assert!(dc.threshold.is_none());
        assert!(check.order_conditions.is_empty());
        let check = incoming_check(
            &received(RequestKind::Preservation),
            &["Sr 138ab".into()],
            ets,
            &lexicon,
            now,
        );
        let req = &check.dual_criminality_requirement;
        assert!(!req.required && req.test == "none" && req.basis.contains("Art 29(3)"), "{req:?}");
        assert!(check.dual_criminality.is_empty());
    }

    /// The US reservation to Art 6 leaves an MLA request on misuse of devices open at the
    /// US, never satisfied on the lexicon alone; illegal access is unaffected.
    #[test]
    fn a_reservation_of_the_requested_party_leaves_the_conduct_open() {
        let lexicon = Lexicon::builtin().unwrap();
        let agreements = builtin_agreements(&lexicon).unwrap();
        let ets = agreements.iter().find(|a| a.id == "ets-185").unwrap();
        let now: Timestamp = "2026-09-01T08:00:00Z".parse().unwrap();
        let r = received(RequestKind::Mla, ets, "US", now);
        let check =
            incoming_check(&r, &["Sr 139d(2)-(3)".into(), "Sr 138ab".into()], ets, &lexicon, now);
        let Ok(devices) = &check.dual_criminality[0].result else { panic!("{check:?}") };
        assert_eq!(devices.verdict, Verdict::Undetermined, "{devices:?}");
        assert!(
            devices.open_facts.iter().any(|f| f.contains("US made a reservation to ETS 185 Art 6")),
            "{devices:?}"
        );
        let Ok(access) = &check.dual_criminality[1].result else { panic!("{check:?}") };
        assert_eq!(access.verdict, Verdict::Satisfied, "{access:?}");
    }
}
