use super::*;
use proptest::prelude::*;

fn builtin() -> Lexicon {
    match Lexicon::builtin() {
        Ok(l) => l,
        Err(e) => panic!("the shipped lexicon must validate:\n{e}"),
    }
}

const SOURCES: &str = "[[source]]\nkey = \"BC\"\ntext = \"treaty\"\n";
const CONCEPTS: &str = "[dual_criminality]\nthreshold_months = 12\nthreshold_basis = \"Art 24(1)(a)\"\nconduct_basis = \"Art 25(5)\"\nstatus = \"V1\"\nsources = [\"BC\"]\n\n[[concept]]\nid = \"illegal-access\"\narticle = 2\nname = \"Illegal access\"\nelements = \"x\"\nstatus = \"V1\"\nsources = [\"BC\"]\n";
const NL: &str = "party = \"NL\"\nname = \"Netherlands\"\nlaw = \"Sr\"\n\n[[provision]]\ncitation = \"Sr 138ab(1)\"\ndescription = \"d\"\nconcepts = [\"illegal-access\"]\nstatus = \"V1\"\nsources = [\"BC\"]\npenalty = { max_months = 24, status = \"V1\", text = \"2 yrs\" }\n";

fn parse_one(concepts: &str, jurisdiction: &str) -> Result<Lexicon, LexiconErrors> {
    Lexicon::parse(
        ("concepts.toml", concepts),
        ("sources.toml", SOURCES),
        &[("nl.toml", jurisdiction)],
    )
}

fn first_error(concepts: &str, jurisdiction: &str) -> String {
    match parse_one(concepts, jurisdiction) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.0[0].to_string(),
    }
}

#[test]
fn shipped_data_validates() {
    let l = builtin();
    assert_eq!(l.concepts.len(), 10);
    assert_eq!(
        l.concepts.iter().map(|k| k.article).collect::<Vec<_>>(),
        (2..=11).collect::<Vec<u8>>()
    );
    let parties: Vec<&str> = l.jurisdictions.iter().map(|j| j.party.as_str()).collect();
    for p in ["US", "GB", "DE", "FR", "NL", "JP", "AU", "CA"] {
        assert!(parties.contains(&p), "{p} missing");
    }
    assert_eq!(l.rules.threshold_months, 12);
    // Every source in sources.toml is used somewhere.
    for s in &l.sources {
        let used = l.rules.sources.contains(&s.key)
            || l.concepts.iter().any(|k| k.sources.contains(&s.key))
            || l.jurisdictions
                .iter()
                .flat_map(|j| &j.provisions)
                .any(|p| p.sources.contains(&s.key));
        assert!(used, "source {} unused", s.key);
    }
}

#[test]
fn shipped_facts_spot_checks() {
    let l = builtin();
    let nl = l.jurisdiction("nl").unwrap();
    let p = nl.provision("Sr 138ab").unwrap();
    assert_eq!(p.citation, "Sr 138ab(1)");
    assert_eq!(p.penalty.max_months, Some(24));
    assert_eq!(p.status, VerificationStatus::V1);
    let p = nl.provision("Sr 138b").unwrap();
    assert_eq!(p.penalty.status, VerificationStatus::U);
    let gb = l.jurisdiction("UK").unwrap();
    assert_eq!(gb.party.as_str(), "GB");
    let us = l.jurisdiction("US").unwrap();
    assert_eq!(us.provision("§1030(a)(2)").unwrap().penalty.max_months, Some(12));
    assert_eq!(l.concept("illegal-access").unwrap().article, 2);
    assert_eq!(l.concept("9").unwrap().name, "Offences related to child pornography");
    assert_eq!(l.concept("Art. 11").unwrap().id, "aiding-abetting-attempt");
    assert!(l.implementing("illegal-access").any(|(j, _)| j.party.as_str() == "CA"));
}

#[test]
fn nl_138ab_to_us_is_satisfied() {
    let l = builtin();
    let r = l.check_dual_criminality("NL", "Sr 138ab", "US", None).unwrap();
    assert_eq!(r.verdict, Verdict::Satisfied, "{r:#?}");
    assert_eq!(r.threshold.as_ref().map(|t| t.months), Some(12));
    assert_eq!(r.from.provision.citation, "Sr 138ab(1)");
    let cites: Vec<&str> = r.matching.iter().map(|a| a.provision.citation.as_str()).collect();
    assert!(cites.contains(&"18 U.S.C. §1030(a)(2)"), "{cites:?}");
    assert!(r.open_facts.is_empty());
    assert!(r.reason.contains("illegal-access"), "{}", r.reason);
}

#[test]
fn higher_threshold_changes_the_verdict() {
    let l = builtin();
    // 36 months: NL 138ab(1) has a verified maximum of 24 months.
    let r = l.check_dual_criminality("NL", "Sr 138ab", "US", Some(36)).unwrap();
    assert_eq!(r.verdict, Verdict::NotSatisfied, "{r:#?}");
    assert!(r.reason.contains("requesting side"), "{}", r.reason);
}

#[test]
fn unverified_penalty_makes_it_undetermined() {
    let l = builtin();
    // NL Sr 138b (DDoS): offence confirmed, penalty U.
    let r = l.check_dual_criminality("NL", "Sr 138b", "DE", None).unwrap();
    assert_eq!(r.verdict, Verdict::Undetermined, "{r:#?}");
    assert!(
        r.open_facts.iter().any(|f| f.contains("Sr 138b") && f.contains("unverified")),
        "{:?}",
        r.open_facts
    );
    // Unverified offence mapping: NL Sr 225 (forgery) is U throughout.
    let r = l.check_dual_criminality("DE", "StGB §269", "NL", None).unwrap();
    assert_eq!(r.verdict, Verdict::Undetermined, "{r:#?}");
}

#[test]
fn aggravated_only_is_undetermined() {
    let l = builtin();
    // NL 161septies: 6 months basic; 1 and 2 years for aggravated limbs.
    let r = l.check_dual_criminality("NL", "Sr 161septies", "DE", None).unwrap();
    assert_eq!(r.verdict, Verdict::Undetermined, "{r:#?}");
    assert!(r.open_facts.iter().any(|f| f.contains("aggravated")), "{:?}", r.open_facts);
}

#[test]
fn unmapped_provision_is_undetermined() {
    let l = builtin();
    let r = l.check_dual_criminality("US", "§1030(a)(7)", "NL", None).unwrap();
    assert_eq!(r.verdict, Verdict::Undetermined);
    assert!(r.matching.is_empty());
}

#[test]
fn partially_verified_relied_on_is_a_caveat() {
    let l = builtin();
    // DE §202c: sources conflict (1 or 2 years), both meet 12 months.
    let r = l.check_dual_criminality("DE", "§202c", "CA", None).unwrap();
    assert_eq!(r.verdict, Verdict::Satisfied, "{r:#?}");
    assert!(r.caveats.iter().any(|c| c.contains("§202c")), "{:?}", r.caveats);
    // At 24 months the lower figure no longer suffices: undetermined, not satisfied.
    let r = l.check_dual_criminality("DE", "§202c", "CA", Some(24)).unwrap();
    assert_eq!(r.verdict, Verdict::Undetermined, "{r:#?}");
}

#[test]
fn unknown_names_suggest_close_matches() {
    let l = builtin();
    let e = l.jurisdiction("NLD").unwrap_err().to_string();
    assert!(e.contains("unknown jurisdiction `NLD`"), "{e}");
    let e = l.jurisdiction("Netherland").unwrap_err().to_string();
    assert!(e.contains("NL (Netherlands)"), "{e}");
    let e = l.check_dual_criminality("NL", "Sr 138ac", "US", None).unwrap_err().to_string();
    assert!(e.contains("unknown provision `Sr 138ac` in NL") && e.contains("Sr 138ab"), "{e}");
    let e = l.check_dual_criminality("NL", "Sr 999", "US", None).unwrap_err().to_string();
    assert!(e.contains("its provisions are"), "{e}");
    let e = l.concept("ilegal-acess").unwrap_err().to_string();
    assert!(e.contains("did you mean illegal-access"), "{e}");
    let e = l.jurisdiction("US").unwrap().provision("1030").unwrap_err().to_string();
    assert!(e.contains("§1030(a)(2)"), "{e}");
}

#[test]
fn ambiguous_suffix_is_refused() {
    let l = builtin();
    let us = l.jurisdiction("US").unwrap();
    // "(a)" ends no citation; "(5)(b)" ends exactly one.
    assert_eq!(us.provision("(5)(b)").unwrap().citation, "18 U.S.C. §1030(a)(5)(B)");
    let ca = l.jurisdiction("CA").unwrap();
    assert!(ca.provision("s184").is_ok());
}

#[test]
fn edit_distance_basics() {
    assert_eq!(edit_distance("", ""), 0);
    assert_eq!(edit_distance("abc", ""), 3);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    assert_eq!(edit_distance("§1030", "§1029"), 2);
}

#[test]
fn errors_have_positions_and_fields() {
    assert!(parse_one(CONCEPTS, NL).is_ok());
    let e = first_error(CONCEPTS, &NL.replace("[\"illegal-access\"]", "[\"ilegal-access\"]"));
    assert!(
        e.starts_with(
            "nl.toml:8:13: provision.concepts: found `ilegal-access`; expected a concept id"
        ),
        "{e}"
    );
    assert!(e.contains("did you mean illegal-access"), "{e}");

    let e =
        first_error(CONCEPTS, &NL.replace("status = \"V1\"\nsources", "status = \"V3\"\nsources"));
    assert!(
        e.starts_with(
            "nl.toml:9:10: provision.status: found `V3`; expected a status tag: V1, V2, P or U"
        ),
        "{e}"
    );

    let e = first_error(CONCEPTS, &NL.replace("max_months = 24", "max_months = -24"));
    assert!(
        e.contains(
            "provision.penalty.max_months: found -24; expected a number of months from 1 to 1200"
        ),
        "{e}"
    );
    let e = first_error(CONCEPTS, &NL.replace("max_months = 24", "max_months = 24000"));
    assert!(e.contains("found 24000"), "{e}");

    let e = first_error(CONCEPTS, &NL.replace("\"NL\"", "\"XX\""));
    assert!(e.starts_with("nl.toml:1:9: party: found `XX`; unknown party code"), "{e}");

    let dup = format!(
        "{NL}\n[[provision]]\ncitation = \"sr 138AB (1)\"\ndescription = \"d\"\nconcepts = []\nstatus = \"U\"\npenalty = {{ status = \"U\", text = \"U\" }}\n"
    );
    let e = first_error(CONCEPTS, &dup);
    assert!(e.starts_with("nl.toml:14:12: provision.citation: found `sr 138AB (1)`, which is the same citation as `Sr 138ab(1)`"), "{e}");

    let dup = format!(
        "{CONCEPTS}\n[[concept]]\nid = \"illegal-access\"\narticle = 3\nname = \"n\"\nelements = \"e\"\nstatus = \"V1\"\n"
    );
    let e = first_error(&dup, NL);
    assert!(
        e.starts_with("concepts.toml:17:6: concept.id: found `illegal-access` a second time"),
        "{e}"
    );

    let e = first_error(CONCEPTS, &NL.replace("sources = [\"BC\"]", "sources = [\"BX\"]"));
    assert!(e.contains("provision.sources: found `BX`; expected a source key from sources.toml; did you mean BC?"), "{e}");

    let e = first_error(CONCEPTS, &NL.replace("law = \"Sr\"", "law = \"Sr\"\ncolour = 1"));
    assert!(e.starts_with("nl.toml:4:1: colour: unknown field `colour`"), "{e}");

    let e = first_error(CONCEPTS, "party = ");
    assert!(e.starts_with("nl.toml:1:"), "{e}");

    let e = first_error(
        CONCEPTS,
        &NL.replace("status = \"V1\"\nsources", "mens_rea = \"wilful\"\nstatus = \"V1\"\nsources"),
    );
    assert!(
        e.starts_with("nl.toml:9:12: provision.mens_rea: found `wilful`; expected intent, recklessness or negligence"),
        "{e}"
    );
    let ok = NL
        .replace("status = \"V1\"\nsources", "mens_rea = \"negligence\"\nstatus = \"V1\"\nsources");
    let l = parse_one(CONCEPTS, &ok).unwrap();
    assert_eq!(l.jurisdictions[0].provisions[0].mens_rea, MensRea::Negligence);
}

#[test]
fn every_problem_is_reported() {
    let bad = NL.replace("\"V1\"", "\"V9\"").replace("max_months = 24", "max_months = 0");
    let Err(e) = parse_one(CONCEPTS, &bad) else { panic!("expected errors") };
    assert_eq!(e.0.len(), 3, "{e}");
    assert!(e.to_string().starts_with("invalid lexicon data (3 problems)"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Properties

const IDS: [&str; 4] =
    ["illegal-access", "illegal-interception", "data-interference", "misuse-of-devices"];

fn status() -> impl Strategy<Value = VerificationStatus> {
    prop_oneof![
        Just(VerificationStatus::V1),
        Just(VerificationStatus::V2),
        Just(VerificationStatus::P),
        Just(VerificationStatus::U),
    ]
}

prop_compose! {
    fn provision()(
        n in 0u32..1000,
        concepts in proptest::sample::subsequence(IDS.to_vec(), 0..=3),
        status in status(),
        pstatus in status(),
        max in proptest::option::of(1u32..200),
        at_least in any::<bool>(),
        agg in proptest::option::of(1u32..300),
        life in any::<bool>(),
    ) -> Provision {
        Provision {
            citation: format!("X {n}"),
            aliases: Vec::new(),
            description: String::new(),
            concepts: concepts.into_iter().map(str::to_owned).collect(),
            note: None,
            status,
            status_note: None,
            sources: Vec::new(),
            procedure: None,
            mens_rea: MensRea::Intent,
            penalty: Penalty {
                max_months: max,
                at_least: at_least && max.is_some(),
                aggravated_max_months: agg.map(|a| a.max(max.unwrap_or(0))),
                aggravated_life: life,
                text: String::new(),
                status: pstatus,
            },
        }
    }
}

fn meets(p: &Provision, t: u32) -> bool {
    p.status != VerificationStatus::U
        && p.penalty.status != VerificationStatus::U
        && p.penalty.max_months.is_some_and(|m| m >= t)
}

proptest! {
    #[test]
    fn conduct_test_is_symmetric(a in provision(), b in provision()) {
        prop_assert_eq!(a.shares_conduct_with(&b), b.shares_conduct_with(&a));
    }

    #[test]
    fn verdict_respects_threshold_and_status(
        from in provision(),
        others in proptest::collection::vec(provision(), 0..6),
        t in 1u32..120,
    ) {
        let party: PartyCode = "NL".parse().unwrap();
        let to = Jurisdiction {
            party: "US".parse().unwrap(),
            name: "US".into(),
            law: String::new(),
            note: None,
            provisions: others.clone(),
        };
        let threshold = Threshold { months: t, more_than: false, basis: String::new() };
        let r = dual_criminality(&party, &from, &to, &DcTest::Penalty(threshold), "");
        // Matching is exactly the conduct test.
        prop_assert_eq!(r.matching.len(), others.iter().filter(|o| o.shares_conduct_with(&from)).count());
        if r.verdict == Verdict::Satisfied {
            // Never satisfied on a penalty below the threshold, or on an unverified fact.
            prop_assert!(meets(&from, t));
            prop_assert!(others.iter().any(|o| o.shares_conduct_with(&from) && meets(o, t)));
            prop_assert!(r.open_facts.is_empty());
        }
        // A verified maximum below the threshold, with no aggravated form reaching it, fails.
        let p = &from.penalty;
        if !from.concepts.is_empty()
            && matches!(p.status, VerificationStatus::V1 | VerificationStatus::V2)
            && p.max_months.is_some_and(|m| m < t)
            && !p.at_least
            && !p.aggravated_reaches(t)
        {
            prop_assert_eq!(r.verdict, Verdict::NotSatisfied);
        }
        if r.verdict == Verdict::Undetermined {
            prop_assert!(!r.open_facts.is_empty());
        }
    }

    /// The conduct test of mutual assistance never depends on a penalty: it is satisfied
    /// whenever the penalty test is, and it never fails on a penalty alone.
    #[test]
    fn conduct_test_is_no_stricter_than_any_threshold(
        from in provision(),
        others in proptest::collection::vec(provision(), 0..6),
        t in 1u32..120,
        more_than in proptest::bool::ANY,
    ) {
        let party: PartyCode = "NL".parse().unwrap();
        let to = Jurisdiction {
            party: "US".parse().unwrap(),
            name: "US".into(),
            law: String::new(),
            note: None,
            provisions: others.clone(),
        };
        let threshold = Threshold { months: t, more_than, basis: String::new() };
        let penalty = dual_criminality(&party, &from, &to, &DcTest::Penalty(threshold), "");
        let conduct = dual_criminality(&party, &from, &to, &DcTest::Conduct { basis: "25(5)".into() }, "");
        prop_assert!(conduct.threshold.is_none());
        if penalty.verdict == Verdict::Satisfied {
            prop_assert_eq!(conduct.verdict, Verdict::Satisfied);
        }
        let shared = others.iter().any(|o| o.shares_conduct_with(&from));
        if conduct.verdict == Verdict::NotSatisfied {
            prop_assert!(!shared, "the conduct test failed although {} shares the conduct", to.party);
        }
    }
}

/// "At least one year" (ETS 185 Art 24(1)(a)) and "more than one year" (EU–US Extradition
/// Agreement Art 4(1), per the legal review) differ on a maximum of exactly 12 months: US
/// 18 U.S.C. §1030(a)(2) has 12.
#[test]
fn at_least_and_more_than_differ_on_the_boundary() {
    let l = builtin();
    let at_least = l.default_threshold();
    let more_than = Threshold { more_than: true, ..at_least.clone() };
    let r =
        l.check_dual_criminality_under("NL", "Sr 138ab", "US", &DcTest::Penalty(at_least)).unwrap();
    assert_eq!(r.verdict, Verdict::Satisfied, "{r:#?}");
    assert!(r.reason.contains("at least 12 months"), "{}", r.reason);
    let r = l
        .check_dual_criminality_under("NL", "Sr 138ab", "US", &DcTest::Penalty(more_than))
        .unwrap();
    let a2 = r.matching.iter().find(|a| a.provision.citation == "18 U.S.C. §1030(a)(2)").unwrap();
    assert_ne!(a2.finding, Finding::Meets, "{a2:#?}");
    assert!(a2.explanation.contains("short of more than 12 months"), "{}", a2.explanation);
}

/// Mutual assistance looks at the conduct only: NL Sr 138ab(1) against the US §1030(a)(2)
/// (12 months) needs no threshold. But the conduct includes its mental element: NL Sr
/// 161septies is a negligence offence, and the intent offences it maps to do not make a
/// negligent act punishable: undetermined (intent is a fact of the case), never satisfied.
#[test]
fn mutual_assistance_needs_the_conduct_not_a_penalty() {
    let l = builtin();
    let r = l.check_dual_criminality_under("NL", "Sr 138ab", "US", &l.conduct_test()).unwrap();
    assert_eq!(r.verdict, Verdict::Satisfied, "{r:#?}");
    assert!(r.threshold.is_none());
    assert!(r.reason.contains("no penalty threshold applies"), "{}", r.reason);
    assert!(r.conduct_basis.contains("Art 25(5)"), "{}", r.conduct_basis);
    let nl = l.jurisdiction("NL").unwrap();
    assert_eq!(nl.provision("Sr 161septies").unwrap().mens_rea, MensRea::Negligence);
    for test in [l.conduct_test(), DcTest::Penalty(l.default_threshold())] {
        let r = l.check_dual_criminality_under("NL", "Sr 161septies", "DE", &test).unwrap();
        assert_eq!(r.verdict, Verdict::Undetermined, "{r:#?}");
        assert!(
            r.open_facts.iter().any(|f| f.contains("requires intent") && f.contains("negligence")),
            "{:?}",
            r.open_facts
        );
    }
    // An unmapped provision stays undetermined under either test.
    let r = l.check_dual_criminality_under("US", "§1030(a)(7)", "NL", &l.conduct_test()).unwrap();
    assert_eq!(r.verdict, Verdict::Undetermined);
}

/// A provision named without its limb, where the lexicon holds several: checked as the one
/// the name resolves to, with a caveat asking for the limb; named with its limb, no caveat.
#[test]
fn a_provision_with_several_limbs_asks_for_the_limb() {
    let l = builtin();
    let r = l.check_dual_criminality_under("NL", "Sr 138ab", "DE", &l.conduct_test()).unwrap();
    assert!(
        r.caveats.iter().any(|c| c.contains("several limbs") && c.contains("Sr 138ab(2), (3)")),
        "{:?}",
        r.caveats
    );
    let r = l.check_dual_criminality_under("NL", "Sr 138ab(1)", "DE", &l.conduct_test()).unwrap();
    assert!(r.caveats.iter().all(|c| !c.contains("several limbs")), "{:?}", r.caveats);
    let us = l.jurisdiction("US").unwrap();
    let a = us.provision("§1030(a)(5)(A)").unwrap();
    assert_eq!(us.limbs_of(a).len(), 2, "{:?}", us.limbs_of(a));
}
