use super::*;
use crate::agreement::{
    Citation, ConceptScope, IsoDuration, MinimizationRule, RequestRule, Transform,
};
use entente_core::lexicon::VerificationStatus;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn p(s: &str) -> PartyCode {
    s.parse().unwrap()
}

fn dur(s: &str) -> IsoDuration {
    IsoDuration { text: s.into(), span: s.parse().unwrap() }
}

fn cite(s: &str) -> Citation {
    Citation { citation: s.into(), status: VerificationStatus::V1, sources: vec![] }
}

fn agreement(id: &str, parties: &[&str], onward: OnwardTransfer) -> Agreement {
    Agreement {
        id: id.into(),
        title: format!("Agreement {id}"),
        kind: crate::agreement::AgreementKind::Treaty,
        template: false,
        legal_basis: vec![cite(&format!("{id} Art 1"))],
        parties: parties.iter().map(|x| p(x)).collect(),
        in_force_from: jiff::civil::date(2020, 1, 1),
        in_force_until: None,
        offences: ConceptScope::Concepts(vec!["illegal-access".into(), "data-interference".into()]),
        categories: vec![DataCategory::Traffic, DataCategory::Subscriber],
        purposes: vec![Purpose::CriminalInvestigation, Purpose::Prosecution],
        retention: BTreeMap::from([(DataCategory::Traffic, dur("P2Y"))]),
        onward_transfer: onward,
        commercial_use_prohibited: true,
        minimization: vec![MinimizationRule {
            category: DataCategory::Traffic,
            field: "third_party_ip".into(),
            transform: Transform::TruncateIp,
        }],
        requests: vec![RequestRule {
            kind: RequestKind::Production,
            categories: vec![DataCategory::Traffic],
            deadline: Some(dur("P10D")),
            emergency_deadline: Some(dur("PT8H")),
            period: None,
            extension: None,
            dual_criminality: None,
            issuing_conditions: None,
            basis: cite("Art 10"),
        }],
        refusal_grounds: vec![],
        travelling_conditions: vec![],
        dual_criminality_months: Some(12),
        deconfliction: None,
        residency: vec![],
        ratifications: vec![],
        reservations: vec![],
    }
}

fn now() -> Timestamp {
    "2026-09-01T10:00:00Z".parse().unwrap()
}

fn flow<'a>(
    from: &'a PartyCode,
    to: &'a PartyCode,
    originator: &'a PartyCode,
    concepts: &'a [String],
) -> Flow<'a> {
    Flow {
        from,
        to,
        originator,
        origin_agreement: None,
        category: DataCategory::Traffic,
        purpose: Purpose::CriminalInvestigation,
        concepts,
        request_kind: Some(RequestKind::Production),
        consents: &[],
    }
}

fn engine() -> Engine {
    Engine::compile(vec![
        agreement("nl-de", &["NL", "DE"], OnwardTransfer::ConsentOfOriginator),
        agreement("nl-us", &["NL", "US"], OnwardTransfer::Free),
    ])
    .unwrap()
}

#[test]
fn permit_names_agreement_and_carries_obligations() {
    let e = engine();
    let (de, nl) = (p("DE"), p("NL"));
    let concepts = vec!["illegal-access".to_owned()];
    let d = e.decide_flow(&flow(&de, &nl, &de, &concepts), now());
    assert!(d.decision.is_permit(), "{d:?}");
    assert_eq!(d.decision.rules, ["nl-de#flow"]);
    assert_eq!(d.agreement.as_deref(), Some("nl-de"));
    assert!(
        d.decision
            .obligations
            .contains(&Obligation::RetainUntil { until: "2028-09-01T10:00:00Z".into() })
    );
    assert!(d.decision.obligations.contains(&Obligation::NoCommercialUse));
    assert!(
        d.decision
            .obligations
            .contains(&Obligation::NoOnwardTransferWithoutConsent { of: de.clone() })
    );
    assert!(d.decision.obligations.contains(&Obligation::Minimize {
        field: "third_party_ip".into(),
        transform: "truncate-ip".into()
    }));
    let c = d.conditions.unwrap();
    assert_eq!(c.originator, de);
    assert_eq!(c.retain_until.as_deref(), Some("2028-09-01T10:00:00Z"));
}

/// A treaty with its parties' own dates grounds a flow only when it is in force for both
/// that day, whichever direction; a permit that rests on a U fact says so.
#[test]
fn in_force_for_both_parties_and_unverified_basis() {
    use crate::agreement::Ratification;
    let mut a = agreement("tri", &["NL", "DE", "US"], OnwardTransfer::Free);
    let standing = |party: &str, in_force: Option<&str>, status| Ratification {
        party: p(party),
        signed: None,
        ratified: None,
        in_force: in_force.map(|d| d.parse().unwrap()),
        basis: Citation { citation: format!("{party} standing"), status, sources: vec![] },
    };
    a.ratifications = vec![
        standing("NL", Some("2021-01-01"), VerificationStatus::U),
        standing("DE", Some("2026-10-01"), VerificationStatus::V1),
        standing("US", None, VerificationStatus::U),
    ];
    let e = Engine::compile(vec![a]).unwrap();
    let (nl, de, us) = (p("NL"), p("DE"), p("US"));
    let concepts = vec!["illegal-access".to_owned()];
    let at = |s: &str| -> Timestamp { s.parse().unwrap() };
    // DE not yet, the US never.
    for (from, to) in [(&nl, &de), (&de, &nl), (&nl, &us), (&us, &nl)] {
        let d = e.decide_flow(&flow(from, to, from, &concepts), now());
        assert_eq!(d.decision.rules, ["default-deny"], "{from} → {to}: {d:?}");
        assert!(
            d.decision.reason.contains("tri: not in force for both parties: not for"),
            "{}",
            d.decision.reason
        );
    }
    let d = e.decide_flow(&flow(&nl, &us, &nl, &concepts), now());
    assert!(
        d.decision.reason.contains("US (not ratified: US standing [U])"),
        "{}",
        d.decision.reason
    );
    let d = e.decide_flow(&flow(&nl, &de, &nl, &concepts), now());
    assert!(
        d.decision.reason.contains("DE (in force for it from 2026-10-01)"),
        "{}",
        d.decision.reason
    );
    // From DE's date on: permitted, and NL's standing is unverified.
    let d = e.decide_flow(&flow(&de, &nl, &de, &concepts), at("2026-10-01T00:00:00Z"));
    assert!(d.decision.is_permit(), "{d:?}");
    assert_eq!(d.decision.unverified_basis, ["NL standing"]);
    assert!(d.decision.reason.contains("UNVERIFIED legal basis"), "{}", d.decision.reason);
    // A permit on verified facts carries no flag.
    let d = engine().decide_flow(&flow(&de, &nl, &de, &concepts), now());
    assert!(d.decision.is_permit() && d.decision.unverified_basis.is_empty(), "{d:?}");
    assert!(!d.decision.reason.contains("UNVERIFIED"));
}

#[test]
fn deny_by_default_explains_each_agreement() {
    let e = engine();
    let (de, us) = (p("DE"), p("US"));
    let concepts = vec!["illegal-access".to_owned()];
    let d = e.decide_flow(&flow(&de, &us, &de, &concepts), now());
    assert_eq!(d.decision.rules, ["default-deny"]);
    assert!(d.decision.reason.contains("no agreement binds DE and US"), "{}", d.decision.reason);

    let (nl, de) = (p("NL"), p("DE"));
    let other = vec!["computer-related-fraud".to_owned()];
    let d = e.decide_flow(&flow(&nl, &de, &nl, &other), now());
    assert!(
        d.decision.reason.contains("nl-de: does not cover the offence"),
        "{}",
        d.decision.reason
    );
    let d = e.decide_flow(&flow(&nl, &de, &nl, &concepts), "2019-06-01T00:00:00Z".parse().unwrap());
    assert!(d.decision.reason.contains("not yet in force"), "{}", d.decision.reason);
}

#[test]
fn onward_transfer_needs_the_originators_consent() {
    let e = engine();
    let (nl, de, us) = (p("NL"), p("DE"), p("US"));
    let concepts = vec!["illegal-access".to_owned()];
    let mut f = flow(&nl, &us, &de, &concepts);
    f.origin_agreement = Some("nl-de");
    let d = e.decide_flow(&f, now());
    assert!(!d.decision.is_permit());
    assert_eq!(d.decision.rules, ["nl-de#onward-transfer-needs-consent"]);
    assert!(
        d.decision.reason.contains("consent of the originating party"),
        "{}",
        d.decision.reason
    );

    let consents = [de.clone()];
    f.consents = &consents;
    let d = e.decide_flow(&f, now());
    assert!(d.decision.is_permit(), "{d:?}");
    assert_eq!(d.agreement.as_deref(), Some("nl-us"));
    // The datum keeps its originator.
    assert_eq!(d.conditions.unwrap().originator, de);
}

#[test]
fn onward_transfer_forbidden_and_purpose_limited() {
    let e = Engine::compile(vec![
        agreement("nl-de", &["NL", "DE"], OnwardTransfer::Forbidden),
        agreement("nl-us", &["NL", "US"], OnwardTransfer::Free),
    ])
    .unwrap();
    let (nl, de, us) = (p("NL"), p("DE"), p("US"));
    let concepts = vec!["illegal-access".to_owned()];
    let consents = [de.clone()];
    let mut f = flow(&nl, &us, &de, &concepts);
    f.origin_agreement = Some("nl-de");
    f.consents = &consents;
    let d = e.decide_flow(&f, now());
    assert_eq!(d.decision.rules, ["nl-de#no-onward-transfer"]);

    let e = engine();
    f.purpose = Purpose::ThreatIntelligence;
    let d = e.decide_flow(&f, now());
    assert!(d.decision.rules.contains(&"nl-de#purpose-limitation".to_owned()), "{d:?}");
}

#[test]
fn unsafe_values_are_refused_at_compile() {
    let mut a = agreement("nl-de", &["NL", "DE"], OnwardTransfer::Free);
    a.offences = ConceptScope::Concepts(vec!["x\" || true || \"".into()]);
    assert!(matches!(Engine::compile(vec![a]), Err(CompileError::UnsafeValue { .. })));
}

fn any_flow_parts() -> impl Strategy<Value = (usize, usize, usize, usize, usize, bool, i64, usize)>
{
    (0..3usize, 0..3usize, 0..3usize, 0..6usize, 0..5usize, any::<bool>(), 2018..2030i64, 0..4usize)
}

proptest! {
    /// No permit without an in-force agreement that binds both parties and covers the
    /// category, purpose and offence; every permit carries its obligations; the direct
    /// explanation agrees with Cedar on every flow the party's own data makes.
    #[test]
    fn permits_only_under_a_covering_agreement(
        (fi, ti, oi, ci, pi, consent, year, cpt) in any_flow_parts()
    ) {
        let parties = [p("NL"), p("DE"), p("US")];
        let cats = [DataCategory::Subscriber, DataCategory::Traffic, DataCategory::Content,
            DataCategory::ThreatIntel, DataCategory::PersonalDataOfThirdParties, DataCategory::CaseInformation];
        let purposes = [Purpose::CriminalInvestigation, Purpose::Prosecution, Purpose::IncidentResponse,
            Purpose::ThreatIntelligence, Purpose::JointInvestigation];
        let concept_sets = [vec![], vec!["illegal-access".to_owned()], vec!["computer-related-fraud".to_owned()],
            vec!["data-interference".to_owned(), "misuse-of-devices".to_owned()]];
        let e = engine();
        let (from, to, originator) = (&parties[fi], &parties[ti], &parties[oi]);
        let consents = if consent { vec![originator.clone()] } else { vec![] };
        let origin = if from == originator { None } else if e.agreements().iter().any(|a| a.binds(from, originator)) {
            e.agreements().iter().find(|a| a.binds(from, originator)).map(|a| a.id.as_str())
        } else { None };
        let f = Flow {
            from, to, originator, origin_agreement: origin,
            category: cats[ci], purpose: purposes[pi], concepts: &concept_sets[cpt],
            request_kind: None, consents: &consents,
        };
        let now: Timestamp = format!("{year}-06-01T00:00:00Z").parse().unwrap();
        let d = e.decide_flow(&f, now);
        let day = now.to_zoned(jiff::tz::TimeZone::UTC).date();
        let covering: Vec<&Agreement> = e.agreements().iter().filter(|a| first_miss(a, &f, day).is_none()).collect();
        if d.decision.is_permit() {
            let a = e.agreements().iter().find(|a| Some(a.id.as_str()) == d.agreement.as_deref()).unwrap();
            prop_assert!(first_miss(a, &f, day).is_none());
            prop_assert!(d.decision.obligations.contains(&Obligation::NoCommercialUse));
            prop_assert!(d.conditions.is_some());
        } else {
            prop_assert!(d.decision.obligations.is_empty());
            // Denied although an agreement covers it: only a travelling condition may do that.
            if !covering.is_empty() {
                prop_assert!(f.is_onward(), "{:?}", d);
            }
        }
        if !f.is_onward() {
            prop_assert_eq!(d.decision.is_permit(), !covering.is_empty());
        }
    }
}

/// A data-residency clause keeps its categories within its parties: a flow to a party of the
/// agreement outside them is denied with the clause cited; other categories and parties
/// within still flow; data that first came under the clause keeps it on onward flows.
#[test]
fn residency_keeps_data_within_its_parties() {
    let mut a = agreement("a", &["NL", "DE", "US"], OnwardTransfer::Free);
    a.residency = vec![crate::agreement::Residency {
        categories: vec![DataCategory::Traffic],
        within: vec![p("NL"), p("DE")],
        basis: cite("a Art 12(3)"),
    }];
    let e = Engine::compile(vec![a, agreement("b", &["DE", "US"], OnwardTransfer::Free)]).unwrap();
    let (nl, de, us) = (p("NL"), p("DE"), p("US"));
    let concepts = vec!["illegal-access".to_owned()];
    let d = e.decide_flow(&flow(&nl, &de, &nl, &concepts), now());
    assert!(d.decision.is_permit(), "{:?}", d.decision);
    let d = e.decide_flow(&flow(&nl, &us, &nl, &concepts), now());
    assert!(!d.decision.is_permit());
    assert_eq!(d.decision.rules, ["a#residency"]);
    assert!(
        d.decision.reason.contains("stays within NL, DE (a Art 12(3) [V1]); US is outside"),
        "{}",
        d.decision.reason
    );
    let mut subscriber = flow(&nl, &us, &nl, &concepts);
    subscriber.category = DataCategory::Subscriber;
    assert!(e.decide_flow(&subscriber, now()).decision.is_permit());
    // DE passes on to the US data it received from NL under `a`, under `b`: still denied.
    let mut onward = flow(&de, &us, &nl, &concepts);
    onward.origin_agreement = Some("a");
    let d = e.decide_flow(&onward, now());
    assert_eq!(d.decision.rules, ["a#residency"], "{:?}", d.decision);
}
