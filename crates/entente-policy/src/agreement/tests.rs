#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use super::*;

const BASE: &str = r#"id = "test-agreement"
title = "Test agreement"
kind = "treaty"
parties = ["NL", "DE"]
in_force_from = "2020-01-01"
offences = "any"
categories = ["subscriber", "traffic"]
purposes = ["prosecution"]
onward_transfer = "forbidden"
commercial_use_prohibited = true

[[legal_basis]]
citation = "ETS 185 Art 29"
status = "V1"
sources = ["BC"]
"#;

fn lexicon() -> Lexicon {
    Lexicon::builtin().expect("builtin lexicon")
}

/// `BASE` with the line starting with `key =` replaced (or `line` added to the top-level keys
/// when there is no such line).
fn with(key: &str, line: &str) -> String {
    let mut out: Vec<String> = BASE.lines().map(str::to_owned).collect();
    if let Some(l) = out.iter_mut().find(|l| l.starts_with(&format!("{key} ="))) {
        *l = line.to_owned();
    } else {
        let at = out.iter().position(|l| l.starts_with('[')).unwrap_or(out.len());
        out.insert(at, line.to_owned());
    }
    out.join("\n") + "\n"
}

fn appended(extra: &str) -> String {
    format!("{BASE}{extra}")
}

fn errors(text: &str) -> Vec<AgreementError> {
    match parse_agreement("t.toml", text, &lexicon()) {
        Ok(a) => panic!("expected errors, parsed {a:?}"),
        Err(e) => e.0,
    }
}

/// 1-based line and column of the first `needle` at or after line `from_line`.
fn pos(text: &str, from_line: usize, needle: &str) -> (usize, usize) {
    for (i, l) in text.lines().enumerate().skip(from_line - 1) {
        if let Some(c) = l.find(needle) {
            return (i + 1, l[..c].chars().count() + 1);
        }
    }
    panic!("`{needle}` not in the text after line {from_line}");
}

/// Asserts exactly one error, at the position of `needle`, naming `field`; returns it.
fn one(text: &str, needle: &str, field: &str) -> AgreementError {
    one_from(text, 1, needle, field)
}

fn one_from(text: &str, from_line: usize, needle: &str, field: &str) -> AgreementError {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let e = errs.into_iter().next().unwrap();
    let (line, column) = pos(text, from_line, needle);
    assert_eq!((e.file.as_str(), e.line, e.column), ("t.toml", line, column), "{e}");
    assert_eq!(e.field, field, "{e}");
    assert_eq!(e.to_string(), format!("t.toml:{line}:{column}: {field}: {}", e.message));
    e
}

#[test]
fn base_is_valid() {
    let a = parse_agreement("t.toml", BASE, &lexicon()).unwrap();
    assert_eq!(a.id, "test-agreement");
    assert_eq!(a.kind, AgreementKind::Treaty);
    assert_eq!(a.parties.len(), 2);
    assert_eq!(a.offences, ConceptScope::AnyOffence);
    assert_eq!(a.legal_basis[0].status, VerificationStatus::V1);
}

#[test]
fn every_shipped_file_validates() {
    let lex = lexicon();
    for (file, text) in builtin_files() {
        if let Err(e) = parse_agreement(file, text, &lex) {
            panic!("{e}");
        }
    }
    let all = match builtin_agreements(&lex) {
        Ok(a) => a,
        Err(e) => panic!("{e}"),
    };
    let ids: Vec<&str> = all.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "ets-185",
            "cets-224",
            "eu-2023-1543",
            "nl-us-mla",
            "jit-nl-de-template",
            "mou-deconfliction-pilot",
            "jit-lantern",
            "nis2-csirt-cooperation"
        ]
    );
}

#[test]
fn shipped_facts_keep_their_tags_and_numbers() {
    let all = builtin_agreements(&lexicon()).unwrap();
    let by_id = |id: &str| all.iter().find(|a| a.id == id).unwrap();
    let req =
        |a: &Agreement, k: RequestKind| a.requests.iter().find(|r| r.kind == k).unwrap().clone();

    let eu = by_id("eu-2023-1543");
    assert_eq!(eu.in_force_from, jiff::civil::date(2026, 8, 18));
    let epoc = req(eu, RequestKind::Production);
    assert_eq!(epoc.deadline.as_ref().unwrap().text, "P10D");
    assert_eq!(epoc.emergency_deadline.as_ref().unwrap().text, "PT8H");
    assert_eq!(epoc.basis.status, VerificationStatus::V1);
    let pr = req(eu, RequestKind::Preservation);
    assert_eq!(pr.period.as_ref().unwrap().text, "P60D");
    assert_eq!(pr.extension.as_ref().unwrap().text, "P30D");
    assert!(pr.deadline.is_none());
    assert_eq!(eu.refusal_grounds.len(), 4);

    // CETS 224 Art 8 deadlines are unverified and stay so.
    let p2 = by_id("cets-224");
    for k in [RequestKind::SubscriberData, RequestKind::TrafficData, RequestKind::Production] {
        assert_eq!(req(p2, k).basis.status, VerificationStatus::U, "{k}");
    }
    assert_eq!(req(p2, RequestKind::SubscriberData).deadline.unwrap().text, "P20D");
    assert_eq!(req(p2, RequestKind::TrafficData).deadline.unwrap().text, "P45D");
    assert!(req(p2, RequestKind::Mla).deadline.is_none());

    // The NL-US treaty text is not sourced.
    let mla = by_id("nl-us-mla");
    assert_eq!(req(mla, RequestKind::Mla).basis.status, VerificationStatus::U);
    assert!(req(mla, RequestKind::Mla).deadline.is_none());
    assert_eq!(mla.onward_transfer, OnwardTransfer::ConsentOfOriginator);

    let jit = by_id("jit-nl-de-template");
    assert_eq!(jit.retention.get(&DataCategory::Content).unwrap().text, "P2Y");
    assert!(jit.commercial_use_prohibited);
    assert!(jit.minimization.iter().all(|m| m.transform == Transform::Pseudonymize
        && m.category == DataCategory::PersonalDataOfThirdParties));

    // ETS 185 is in force for all three from a conservative date whose basis is U; CETS 224
    // for none of them (signed, not ratified).
    let ets = by_id("ets-185");
    for party in ["NL", "DE", "US"] {
        let r = ets.ratification(&party.parse().unwrap()).unwrap();
        assert_eq!(r.basis.status, VerificationStatus::U);
        assert!(r.basis.citation.contains("not verified"), "{}", r.basis.citation);
        assert_eq!(r.in_force, Some(jiff::civil::date(2010, 1, 1)));
    }
    let cets = by_id("cets-224");
    let (nl, us) = ("NL".parse().unwrap(), "US".parse().unwrap());
    assert!(
        cets.ratifications
            .iter()
            .all(|r| r.in_force.is_none() && r.basis.status == VerificationStatus::U)
    );
    assert!(!cets.in_force_between(&nl, &us, jiff::civil::date(2026, 12, 1)));
    assert_eq!(
        cets.unverified_basis(&nl, &us).len(),
        cets.legal_basis.iter().filter(|c| c.status == VerificationStatus::U).count() + 2
    );
}

#[test]
fn names_match_the_serialized_form() {
    fn check<T: Named + Serialize>() {
        for v in T::all() {
            assert_eq!(serde_json::to_value(v).unwrap(), serde_json::json!(v.name()));
        }
    }
    check::<AgreementKind>();
    check::<DataCategory>();
    check::<Purpose>();
    check::<RequestKind>();
    check::<OnwardTransfer>();
    check::<Transform>();
}

#[test]
fn unknown_party_mentions_gb() {
    let t = with("parties", r#"parties = ["NL", "UK"]"#);
    let e = one(&t, "\"UK\"", "parties");
    assert!(e.message.contains("the United Kingdom is GB"), "{e}");
}

#[test]
fn party_named_twice() {
    let t = with("parties", r#"parties = ["NL", "nl"]"#);
    let e = one(&t, "\"nl\"", "parties");
    assert!(e.message.contains("NL twice"), "{e}");
}

#[test]
fn fewer_than_two_parties() {
    let t = with("parties", r#"parties = ["NL"]"#);
    let e = one(&t, "[\"NL\"]", "parties");
    assert!(e.message.contains("at least two"), "{e}");
}

#[test]
fn unknown_concept_with_close_match() {
    let t = with("offences", r#"offences = ["illegal-access", "ilegal-interception"]"#);
    let e = one(&t, "\"ilegal-interception\"", "offences");
    assert!(e.message.contains("did you mean illegal-interception"), "{e}");
    assert!(e.message.contains("data-interference"), "{e}");
}

#[test]
fn article_number_is_not_a_concept_id() {
    let t = with("offences", r#"offences = ["2"]"#);
    let e = one(&t, "\"2\"", "offences");
    assert!(e.message.contains("`illegal-access`"), "{e}");
}

#[test]
fn offences_word_other_than_any() {
    let t = with("offences", r#"offences = "all""#);
    let e = one(&t, "\"all\"", "offences");
    assert!(e.message.contains("\"any\""), "{e}");
}

#[test]
fn unknown_category_lists_accepted_values() {
    let t = with("categories", r#"categories = ["subscriber", "trafic"]"#);
    let e = one(&t, "\"trafic\"", "categories");
    assert!(e.message.contains("did you mean traffic"), "{e}");
    assert!(e.message.contains("personal-data-of-third-parties"), "{e}");
}

#[test]
fn unknown_purpose_kind_transform_request_kind() {
    let t = with("purposes", r#"purposes = ["espionage"]"#);
    let e = one(&t, "\"espionage\"", "purposes");
    assert!(e.message.contains("expected a purpose: criminal-investigation"), "{e}");

    let t = with("kind", r#"kind = "convention""#);
    let e = one(&t, "\"convention\"", "kind");
    assert!(
        e.message.contains("treaty, protocol, regulation, directive, bilateral-mla, mou, jit"),
        "{e}"
    );

    let t = appended(
        "\n[[minimization]]\ncategory = \"subscriber\"\nfields = [\"name\"]\ntransform = \"encrypt\"\n",
    );
    let e = one(&t, "\"encrypt\"", "minimization.transform");
    assert!(e.message.contains("pseudonymize"), "{e}");

    let t = appended(
        "\n[[request]]\nkind = \"production_order\"\ncategories = [\"subscriber\"]\nbasis = { citation = \"X\", status = \"U\" }\n",
    );
    let e = one(&t, "\"production_order\"", "request.kind");
    assert!(e.message.contains("jit-invitation"), "{e}");
}

#[test]
fn onward_transfer_and_status_values() {
    let t = with("onward_transfer", r#"onward_transfer = "with-consent""#);
    let e = one(&t, "\"with-consent\"", "onward_transfer");
    assert!(e.message.contains("forbidden, consent-of-originator, free"), "{e}");

    let t = with("status", r#"status = "verified""#);
    let e = one(&t, "\"verified\"", "legal_basis.status");
    assert!(e.message.contains("V1, V2, P or U"), "{e}");
}

#[test]
fn duration_not_iso_8601() {
    let t = appended("\n[retention]\nsubscriber = \"10 days\"\n");
    let e = one(&t, "\"10 days\"", "retention.subscriber");
    assert!(e.message.contains("not an ISO 8601 duration") && e.message.contains("P10D"), "{e}");

    let t = appended(
        "\n[[request]]\nkind = \"production\"\ncategories = [\"subscriber\"]\ndeadline = \"P10X\"\nbasis = { citation = \"X\", status = \"U\" }\n",
    );
    let e = one(&t, "\"P10X\"", "request.deadline");
    assert!(e.message.contains("ISO 8601"), "{e}");

    let t = appended("\n[retention]\ntraffic = \"P0D\"\n");
    let e = one(&t, "\"P0D\"", "retention.traffic");
    assert!(e.message.contains("positive"), "{e}");
}

#[test]
fn dates() {
    let t = with("in_force_from", r#"in_force_from = "2020-02-30""#);
    let e = one(&t, "\"2020-02-30\"", "in_force_from");
    assert!(e.message.contains("YYYY-MM-DD"), "{e}");

    let t = with("in_force_from", r#"in_force_from = "1 Jan 2020""#);
    one(&t, "\"1 Jan 2020\"", "in_force_from");

    let t = with("in_force_until", r#"in_force_until = "2019-12-31""#);
    let e = one(&t, "\"2019-12-31\"", "in_force_until");
    assert!(e.message.contains("before in_force_from = 2020-01-01"), "{e}");

    let t = with("in_force_until", r#"in_force_until = "2020-01-01""#);
    assert!(parse_agreement("t.toml", &t, &lexicon()).is_ok());
}

/// `[[ratification]]`: the parties' own standing, each party once and then every party,
/// dates in order; errors at the offending value.
#[test]
fn ratifications() {
    let entry = |party: &str, extra: &str| {
        format!(
            "\n[[ratification]]\nparty = \"{party}\"\n{extra}basis = {{ citation = \"X\", status = \"U\" }}\n"
        )
    };
    let both = appended(
        &(entry("NL", "in_force = \"2021-03-01\"\n") + &entry("DE", "signed = \"2020-05-01\"\n")),
    );
    let a = parse_agreement("t.toml", &both, &lexicon()).unwrap();
    let (nl, de): (PartyCode, PartyCode) = ("NL".parse().unwrap(), "DE".parse().unwrap());
    let day = |s: &str| s.parse::<jiff::civil::Date>().unwrap();
    assert!(a.in_force_for(&nl, day("2021-03-01")));
    assert!(!a.in_force_for(&nl, day("2021-02-28")));
    assert!(!a.in_force_for(&de, day("2030-01-01")));
    assert!(!a.in_force_between(&nl, &de, day("2030-01-01")));
    assert_eq!(
        a.not_in_force_for([&nl, &de], day("2021-01-01")),
        ["NL (in force for it from 2021-03-01)", "DE (signed 2020-05-01, not ratified: X [U])"]
    );
    assert_eq!(a.unverified_basis(&nl, &de), ["X"]);
    // Without ratifications, in_force_from holds for every party.
    let plain = parse_agreement("t.toml", BASE, &lexicon()).unwrap();
    assert!(plain.in_force_between(&nl, &de, day("2020-01-01")));

    let t = appended(&(entry("NL", "") + &entry("US", "")));
    let e = one(&t, "\"US\"", "ratification.party");
    assert!(e.message.contains("not a party of the agreement"), "{e}");
    let t = appended(&(entry("NL", "") + &entry("DE", "") + &entry("NL", "")));
    let errs = errors(&t);
    assert!(
        errs.iter().any(|e| e.field == "ratification.party" && e.message.contains("NL twice")),
        "{errs:#?}"
    );
    let t = appended(&entry("NL", ""));
    let e = one(&t, "[\"NL\", \"DE\"]", "ratification");
    assert!(e.message.contains("no [[ratification]] for DE"), "{e}");
    let t = appended(
        &(entry("NL", "signed = \"2021-01-02\"\nratified = \"2021-01-01\"\n") + &entry("DE", "")),
    );
    let e = one(&t, "\"2021-01-01\"", "ratification.ratified");
    assert!(e.message.contains("before its signature"), "{e}");
    let t = appended(
        &(entry("NL", "ratified = \"2021-01-02\"\nin_force = \"2021-01-01\"\n") + &entry("DE", "")),
    );
    let e = one(&t, "\"2021-01-01\"", "ratification.in_force");
    assert!(e.message.contains("before the ratification"), "{e}");
    let t = appended(&(entry("NL", "in_force = \"2019-06-01\"\n") + &entry("DE", "")));
    let e = one(&t, "\"2019-06-01\"", "ratification.in_force");
    assert!(e.message.contains("before the instrument's own in_force_from"), "{e}");
    let t = appended(&(entry("NL", "in_force = \"2021-13-01\"\n") + &entry("DE", "")));
    one(&t, "\"2021-13-01\"", "ratification.in_force");
    let t = appended(
        "\n[[ratification]]\nparty = \"NL\"\nbasis = { citation = \"X\", status = \"V1\" }\n",
    );
    let errs = errors(&t);
    assert!(errs.iter().any(|e| e.field == "ratification.basis.sources"), "{errs:#?}");
}

/// `[[reservation]]`: a party of the agreement and an offence article of the lexicon; the
/// shipped ETS 185 holds the US reservation to Art 6.
#[test]
fn reservations() {
    let r = |party: &str, article: &str| {
        appended(&format!(
            "\n[[reservation]]\nparty = \"{party}\"\narticle = {article}\ntext = \"t\"\nbasis = {{ citation = \"X\", status = \"U\" }}\n"
        ))
    };
    let a = parse_agreement("t.toml", &r("DE", "6"), &lexicon()).unwrap();
    assert_eq!(
        (a.reservations[0].article, a.reservations[0].concept.as_str()),
        (6, "misuse-of-devices")
    );
    let e = one(&r("US", "6"), "\"US\"", "reservation.party");
    assert!(e.message.contains("not a party of the agreement"), "{e}");
    let t = r("DE", "35");
    let e = one(&t, "35", "reservation.article");
    assert!(e.message.contains("expected an offence article of ETS 185"), "{e}");
    let ets =
        builtin_agreements(&lexicon()).unwrap().into_iter().find(|a| a.id == "ets-185").unwrap();
    let us: PartyCode = "US".parse().unwrap();
    let concepts = vec!["misuse-of-devices".to_owned()];
    assert_eq!(ets.reservations_of(&us, &concepts).count(), 1);
}

#[test]
fn duplicate_refusal_ground_condition_and_request_kind() {
    let g = "\n[[refusal_ground]]\nid = \"immunity\"\ntext = \"t\"\nbasis = { citation = \"X\", status = \"U\" }\n";
    let t = appended(&format!("{g}{g}"));
    let e = one_from(&t, 19, "\"immunity\"", "refusal_ground.id");
    assert!(e.message.contains("a second time"), "{e}");

    let c = "\n[[condition]]\nid = \"purpose-limitation\"\ntext = \"t\"\nbasis = { citation = \"X\", status = \"U\" }\n";
    let t = appended(&format!("{c}{c}"));
    one_from(&t, 19, "\"purpose-limitation\"", "condition.id");

    let r = "\n[[request]]\nkind = \"mla\"\ncategories = [\"subscriber\"]\nbasis = { citation = \"X\", status = \"U\" }\n";
    let t = appended(&format!("{r}{r}"));
    let e = one_from(&t, 19, "\"mla\"", "request.kind");
    assert!(e.message.contains("`mla` a second time"), "{e}");
}

/// `kinds` of a refusal ground: absent, every kind the agreement provides; each named kind a
/// request kind, named once, and one the agreement provides.
#[test]
fn refusal_ground_kinds() {
    let req = |kind: &str| {
        format!(
            "\n[[request]]\nkind = \"{kind}\"\ncategories = [\"subscriber\"]\nbasis = {{ citation = \"X\", status = \"U\" }}\n"
        )
    };
    let ground = |kinds: &str| {
        format!(
            "\n[[refusal_ground]]\nid = \"immunity\"\ntext = \"t\"\n{kinds}basis = {{ citation = \"X\", status = \"U\" }}\n"
        )
    };
    let reqs = format!("{}{}", req("mla"), req("preservation"));
    let a =
        parse_agreement("t.toml", &appended(&format!("{reqs}{}", ground(""))), &lexicon()).unwrap();
    assert_eq!(a.refusal_grounds[0].kinds, vec![RequestKind::Mla, RequestKind::Preservation]);
    let a = parse_agreement(
        "t.toml",
        &appended(&format!("{reqs}{}", ground("kinds = [\"preservation\"]\n"))),
        &lexicon(),
    )
    .unwrap();
    assert!(a.refusal_grounds[0].applies_to(RequestKind::Preservation));
    assert!(!a.refusal_grounds[0].applies_to(RequestKind::Mla));

    let t = appended(&format!("{reqs}{}", ground("kinds = [\"production\"]\n")));
    let e = one_from(&t, 19, "\"production\"", "refusal_ground.kinds");
    assert_eq!(
        e.message,
        "found `production`, a kind of request this agreement does not provide; expected one of its [[request]] kinds: mla, preservation"
    );
    let t = appended(&format!("{reqs}{}", ground("kinds = []\n")));
    let e = one_from(&t, 19, "[]", "refusal_ground.kinds");
    assert!(e.message.starts_with("found an empty list"), "{e}");
    let t = appended(&format!("{reqs}{}", ground("kinds = [\"mla\", \"mla\"]\n")));
    let e = one_from(&t, 19, "\"mla\"]", "refusal_ground.kinds");
    assert_eq!(e.message, "found `mla` twice; expected each kind of request once");
    let t = appended(&format!("{reqs}{}", ground("kinds = [\"extradition\"]\n")));
    one_from(&t, 19, "\"extradition\"", "refusal_ground.kinds");
    // Nothing is loaded half-way: the file is refused as a whole.
    assert!(parse_agreement("t.toml", &t, &lexicon()).is_err());
}

/// The shipped grounds are raised only against the procedures their sources name.
#[test]
fn shipped_refusal_grounds_name_their_procedures() {
    let all = builtin_agreements(&lexicon()).unwrap();
    let get = |id: &str| all.iter().find(|a| a.id == id).unwrap();
    let eu = get("eu-2023-1543");
    assert!(eu.refusal_grounds.iter().all(|g| g.kinds == vec![RequestKind::Production]));
    let bc = get("ets-185");
    assert!(bc.refusal_grounds.iter().all(|g| g.kinds == vec![RequestKind::Preservation]));
    assert!(!bc.refusal_grounds.iter().any(|g| g.applies_to(RequestKind::Mla)));
}

#[test]
fn bad_clause_id() {
    let t = appended(
        "\n[[condition]]\nid = \"No Onward\"\ntext = \"t\"\nbasis = { citation = \"X\", status = \"U\" }\n",
    );
    one(&t, "\"No Onward\"", "condition.id");
}

#[test]
fn retention_for_a_category_not_covered() {
    let t = appended("\n[retention]\ncontent = \"P1Y\"\n");
    let e = one(&t, "content =", "retention");
    assert!(e.message.contains("does not cover"), "{e}");
}

#[test]
fn minimization_for_a_category_not_covered() {
    let t = appended(
        "\n[[minimization]]\ncategory = \"content\"\nfields = [\"body\"]\ntransform = \"drop\"\n",
    );
    let e = one(&t, "\"content\"", "minimization.category");
    assert!(e.message.contains("does not cover"), "{e}");
}

#[test]
fn minimization_contradicting_itself() {
    let t = appended(
        "\n[[minimization]]\ncategory = \"subscriber\"\nfields = [\"name\"]\ntransform = \"drop\"\n\n[[minimization]]\ncategory = \"subscriber\"\nfields = [\"name\"]\ntransform = \"redact\"\n",
    );
    let e = one_from(&t, 22, "\"name\"", "minimization.fields");
    assert!(e.message.contains("`redact`") && e.message.contains("`drop`"), "{e}");
}

#[test]
fn request_for_a_category_not_covered() {
    let t = appended(
        "\n[[request]]\nkind = \"production\"\ncategories = [\"subscriber\", \"content\"]\nbasis = { citation = \"X\", status = \"U\" }\n",
    );
    let e = one(&t, "\"content\"", "request.categories");
    assert!(e.message.contains("does not cover"), "{e}");
}

#[test]
fn free_onward_transfer_with_a_no_onward_transfer_condition() {
    let t = with("onward_transfer", r#"onward_transfer = "free""#)
        + "\n[[condition]]\nid = \"no-onward-transfer\"\ntext = \"t\"\nbasis = { citation = \"X\", status = \"U\" }\n";
    let e = one(&t, "\"free\"", "onward_transfer");
    assert!(e.message.contains("no-onward-transfer"), "{e}");
}

#[test]
fn commercial_use_allowed_with_a_no_commercial_use_condition() {
    let t = with("commercial_use_prohibited", "commercial_use_prohibited = false")
        + "\n[[condition]]\nid = \"no-commercial-use\"\ntext = \"t\"\nbasis = { citation = \"X\", status = \"U\" }\n";
    one(&t, "false", "commercial_use_prohibited");
}

#[test]
fn emergency_deadline_longer_than_normal() {
    let t = appended(
        "\n[[request]]\nkind = \"production\"\ncategories = [\"subscriber\"]\ndeadline = \"P1D\"\nemergency_deadline = \"P2D\"\nbasis = { citation = \"X\", status = \"U\" }\n",
    );
    one(&t, "\"P2D\"", "request.emergency_deadline");
}

#[test]
fn extension_without_period() {
    let t = appended(
        "\n[[request]]\nkind = \"preservation\"\ncategories = [\"subscriber\"]\nextension = \"P30D\"\nbasis = { citation = \"X\", status = \"U\" }\n",
    );
    one(&t, "\"P30D\"", "request.extension");
}

#[test]
fn dual_criminality_months_out_of_range() {
    for bad in ["0", "1201", "-12"] {
        let t = with("dual_criminality_months", &format!("dual_criminality_months = {bad}"));
        let e = one_from(&t, 12, bad, "dual_criminality_months");
        assert!(e.message.contains("from 1 to 1200"), "{e}");
    }
    let t = with("dual_criminality_months", "dual_criminality_months = 12");
    assert_eq!(
        parse_agreement("t.toml", &t, &lexicon()).unwrap().dual_criminality_months,
        Some(12)
    );
}

/// An agreement with one preservation request whose `dual_criminality` is `dc`.
fn with_dc(dc: &str) -> String {
    appended(&format!(
        "\n[[request]]\nkind = \"preservation\"\ncategories = [\"subscriber\"]\ndual_criminality = {{ {dc}basis = {{ citation = \"Art 1\", status = \"U\" }} }}\nbasis = {{ citation = \"X\", status = \"U\" }}\n"
    ))
}

#[test]
fn dual_criminality_of_a_request_kind() {
    let dc_of = |dc: &str| {
        let a = parse_agreement("t.toml", &with_dc(dc), &lexicon()).unwrap();
        a.requests[0].dual_criminality.clone().unwrap()
    };
    let none = dc_of(r#"test = "none", "#);
    assert_eq!((none.test, none.required), (DcRuleTest::None, false));
    assert_eq!(none.basis.status, VerificationStatus::U);
    let conduct = dc_of(r#"test = "conduct", "#);
    assert_eq!(
        (conduct.test, conduct.required),
        (DcRuleTest::Conduct, true),
        "required by default"
    );
    let info = dc_of(r#"test = "conduct", required = false, "#);
    assert!(!info.required);
    let penalty = dc_of(r#"test = "penalty", months = 12, more_than = true, "#);
    assert_eq!(penalty.test, DcRuleTest::Penalty { months: 12, more_than: true });
    // Without the key, the kind's general rule applies.
    let t = appended(
        "\n[[request]]\nkind = \"preservation\"\ncategories = [\"subscriber\"]\nbasis = { citation = \"X\", status = \"U\" }\n",
    );
    assert_eq!(
        parse_agreement("t.toml", &t, &lexicon()).unwrap().requests[0].dual_criminality,
        None
    );
}

#[test]
fn dual_criminality_of_a_request_kind_refuses_what_does_not_fit() {
    let e = one(&with_dc(r#"test = "similar", "#), "\"similar\"", "request.dual_criminality.test");
    assert!(e.message.contains("none, conduct, penalty"), "{e}");
    let e =
        one(&with_dc(r#"test = "penalty", "#), "\"penalty\"", "request.dual_criminality.months");
    assert!(e.message.contains("months = 12"), "{e}");
    let e = one(&with_dc(r#"test = "conduct", months = 12, "#), "12", "request.dual_criminality");
    assert!(e.message.contains("test = \"penalty\""), "{e}");
    let t = with_dc(r#"test = "none", required = true, "#);
    let e = one_from(&t, 20, "true", "request.dual_criminality.required");
    assert!(e.message.contains("nothing is compared"), "{e}");
    for bad in ["0", "1201", "-1"] {
        let t = with_dc(&format!("test = \"penalty\", months = {bad}, "));
        let e = one_from(&t, 15, bad, "request.dual_criminality.months");
        assert!(e.message.contains("from 1 to 1200"), "{e}");
    }
    let errs = errors(&with_dc(r#"test = "none", colour = "blue", "#));
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].message.contains("colour"), "{}", errs[0]);
}

/// An agreement with one production request whose `issuing_conditions` is `ic`.
fn with_ic(ic: &str) -> String {
    appended(&format!(
        "\n[[request]]\nkind = \"production\"\ncategories = [\"subscriber\", \"traffic\"]\nissuing_conditions = {{ {ic}basis = {{ citation = \"Art 5\", status = \"U\" }} }}\nbasis = {{ citation = \"X\", status = \"U\" }}\n"
    ))
}

#[test]
fn issuing_conditions_of_a_request_kind() {
    let t = with_ic(
        r#"any_offence = ["subscriber"], min_penalty_months = 36, listed = ["illegal-access"], listed_basis = "Directive 2013/40", "#,
    );
    let a = parse_agreement("t.toml", &t, &lexicon()).unwrap();
    let ic = a.requests[0].issuing_conditions.clone().unwrap();
    assert_eq!(ic.any_offence, [DataCategory::Subscriber]);
    assert_eq!(
        (ic.min_penalty_months, ic.listed.as_slice()),
        (36, &["illegal-access".to_owned()][..])
    );
    assert_eq!(ic.listed_basis, "Directive 2013/40");

    let e = one_from(
        &with_ic(r#"min_penalty_months = 0, "#),
        15,
        "0",
        "request.issuing_conditions.min_penalty_months",
    );
    assert!(e.message.contains("from 1 to 1200"), "{e}");
    let t = with_ic(r#"min_penalty_months = 36, listed = ["extortion"], "#);
    let e = one(&t, "\"extortion\"", "request.issuing_conditions.listed");
    assert!(e.message.contains("illegal-access"), "{e}");
    let t = with_ic(r#"any_offence = ["gossip"], min_penalty_months = 36, "#);
    one(&t, "\"gossip\"", "request.issuing_conditions.any_offence");
    let errs = errors(&with_ic(r#"listed = ["illegal-access"], "#));
    assert!(errs.iter().any(|e| e.message.contains("min_penalty_months")), "{errs:#?}");
}

#[test]
fn unknown_top_level_key() {
    let t = with("colour", r#"colour = "blue""#);
    let errs = errors(&t);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let (line, column) = pos(&t, 1, "colour");
    assert_eq!((errs[0].line, errs[0].column), (line, column), "{}", errs[0]);
    assert_eq!(errs[0].field, "colour");
    assert!(errs[0].message.contains("unknown field `colour`"), "{}", errs[0]);
}

#[test]
fn unknown_source_and_verified_without_source() {
    let t = with("sources", r#"sources = ["BCC"]"#);
    let e = one(&t, "\"BCC\"", "legal_basis.sources");
    assert!(e.message.contains("did you mean BC"), "{e}");

    let t = BASE.replace("sources = [\"BC\"]\n", "");
    let e = one(&t, "\"V1\"", "legal_basis.sources");
    assert!(e.message.contains("unsourced fact is U"), "{e}");

    // A file may define its own sources.
    let t =
        with("sources", r#"sources = ["MINE"]"#) + "\n[[source]]\nkey = \"MINE\"\ntext = \"x\"\n";
    assert!(parse_agreement("t.toml", &t, &lexicon()).is_ok());
}

#[test]
fn all_problems_are_collected() {
    let t = BASE
        .replace(r#"["NL", "DE"]"#, r#"["NL", "XX"]"#)
        .replace("\"2020-01-01\"", "\"2020-13-01\"")
        .replace("\"traffic\"", "\"trafic\"");
    let errs = errors(&t);
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["parties", "in_force_from", "categories"], "{errs:#?}");
}

#[test]
fn duplicate_agreement_ids_across_files() {
    let lex = lexicon();
    let other = BASE.replace("title = \"Test agreement\"", "title = \"Other\"");
    let e = parse_agreements(&[("a.toml", BASE), ("b.toml", &other)], &lex).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    let e = &e.0[0];
    assert_eq!((e.file.as_str(), e.line, e.column, e.field.as_str()), ("b.toml", 1, 6, "id"));
    assert!(e.message.contains("a.toml"), "{e}");
}

#[test]
fn toml_syntax_error_is_positioned() {
    let t = with("title", "title = \"unterminated");
    let errs = errors(&t);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].line, 2, "{}", errs[0]);
    assert_eq!(errs[0].field, "title", "{}", errs[0]);
}

#[test]
fn missing_required_key() {
    let t = BASE.replace("kind = \"treaty\"\n", "");
    let errs = errors(&t);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].message.contains("missing field `kind`"), "{}", errs[0]);
}

const DECONFLICTION: &str = r#"
[deconfliction]
parties = ["NL", "DE"]
purpose = "deconfliction"
selectors = ["ip", "email"]
mode = "labelled"
max_selectors = 64
max_queries = 10
per = "P30D"
key_rotation = "P30D"
email_plus_addressing = "strip"
"#;

/// `BASE` with the deconfliction purpose and a `[deconfliction]` section, `old` replaced by
/// `new` in the section.
fn deconfliction(old: &str, new: &str) -> String {
    let base = with("purposes", "purposes = [\"prosecution\", \"deconfliction\"]");
    let section = DECONFLICTION.replacen(old, new, 1);
    let at = base.find("[[legal_basis]]").unwrap();
    format!("{}{}\n{}", &base[..at], section.trim_start(), &base[at..])
}

#[test]
fn a_deconfliction_section_parses() {
    let a = parse_agreement("t.toml", &deconfliction("", ""), &lexicon()).unwrap();
    let d = a.deconfliction.unwrap();
    assert_eq!(d.parties.len(), 2);
    assert_eq!(d.selectors, [entente_psi::SelectorKind::Ip, entente_psi::SelectorKind::Email]);
    assert_eq!(d.mode, entente_psi::Mode::Labelled);
    assert_eq!((d.max_selectors, d.max_queries, d.per.text.as_str()), (64, 10, "P30D"));
    assert!(d.email.strip_plus);
}

#[test]
fn deconfliction_errors_name_their_place_and_what_is_expected() {
    let t = deconfliction("\"NL\", \"DE\"]", "\"NL\", \"US\"]");
    let e = one(&t, "\"US\"", "deconfliction.parties");
    assert!(e.message.contains("not a party of the agreement"), "{e}");
    let t = deconfliction("\"deconfliction\"", "\"prosecution\"");
    let e = one_from(&t, 10, "\"prosecution\"", "deconfliction.purpose");
    assert!(e.message.contains("expected \"deconfliction\""), "{e}");
    let t = deconfliction("\"email\"]", "\"mail\"]");
    let e = one(&t, "\"mail\"", "deconfliction.selectors");
    assert!(e.message.contains("expected a selector kind: ip, email"), "{e}");
    let t = deconfliction("\"labelled\"", "\"labeled\"");
    let e = one(&t, "\"labeled\"", "deconfliction.mode");
    assert!(e.message.contains("cardinality"), "{e}");
    let t = deconfliction("max_selectors = 64", "max_selectors = 2000");
    let e = one(&t, "2000", "deconfliction.max_selectors");
    assert!(e.message.contains("from 1 to 1024"), "{e}");
    let t = deconfliction("max_queries = 10", "max_queries = 0");
    one_from(&t, 12, "0", "deconfliction.max_queries");
    let t = deconfliction("per = \"P30D\"", "per = \"30 days\"");
    one(&t, "\"30 days\"", "deconfliction.per");
    let t = deconfliction("\"strip\"", "\"drop\"");
    let e = one(&t, "\"drop\"", "deconfliction.email_plus_addressing");
    assert!(e.message.contains("\"keep\""), "{e}");
    // The purpose must be among the agreement's purposes.
    let t = appended(DECONFLICTION);
    let e = one(&t, "\"deconfliction\"", "deconfliction.purpose");
    assert!(e.message.contains("not among the agreement's purposes"), "{e}");
    // An unknown key of the section.
    let t = deconfliction("mode = \"labelled\"", "mode = \"labelled\"\nmodus = 1");
    assert_eq!(errors(&t).len(), 1);
}

const RESIDENCY: &str = r#"
[[residency]]
categories = ["traffic"]
within = ["NL", "DE"]
basis = { citation = "Test agreement Art 12(3)", status = "U" }
"#;

#[test]
fn residency_clauses_parse_with_their_basis() {
    let a = parse_agreement("t.toml", &appended(RESIDENCY), &lexicon()).unwrap();
    assert_eq!(a.residency.len(), 1);
    let r = &a.residency[0];
    assert_eq!(r.categories, [DataCategory::Traffic]);
    assert_eq!(r.within, ["NL".parse::<PartyCode>().unwrap(), "DE".parse().unwrap()]);
    assert_eq!(r.basis.status, VerificationStatus::U);
}

#[test]
fn residency_bad_input_names_the_field() {
    let t = appended(&RESIDENCY.replace(r#"["traffic"]"#, r#"["content"]"#));
    let e = one(&t, "\"content\"", "residency.categories");
    assert!(e.message.contains("does not cover"), "{e}");
    let t = appended(&RESIDENCY.replace(r#"["NL", "DE"]"#, "[]"));
    let e = one(&t, "[]", "residency.within");
    assert!(e.message.contains("found an empty list"), "{e}");
    let t = appended(&RESIDENCY.replace(r#"["NL", "DE"]"#, r#"["NL", "UK"]"#));
    let e = one(&t, "\"UK\"", "residency.within");
    assert!(e.message.contains("the United Kingdom is GB"), "{e}");
    let t = appended(&RESIDENCY.replace(r#"status = "U""#, r#"status = "Z""#));
    one(&t, "\"Z\"", "residency.basis.status");
    let t = appended(&RESIDENCY.replace("within", "inside"));
    let errs = errors(&t);
    assert!(errs.iter().any(|e| e.message.contains("inside")), "{errs:#?}");
}

/// A template is never in force; the Lantern JIT shipped is exactly what `conclude` makes of
/// the template, and is in force from its signature for both parties.
#[test]
fn a_template_is_concluded_never_used_as_it_is() {
    let lex = lexicon();
    let text = |name: &str| {
        builtin_files().iter().find(|(f, _)| f.ends_with(name)).map(|(_, t)| *t).unwrap()
    };
    let template = parse_agreement("t", text("jit-nl-de-template.toml"), &lex).unwrap();
    assert!(template.template);
    let (nl, de): (PartyCode, PartyCode) = ("NL".parse().unwrap(), "DE".parse().unwrap());
    let day = jiff::civil::date(2026, 9, 1);
    assert!(!template.in_force_on(day) && !template.in_force_between(&nl, &de, day));
    assert_eq!(
        template.not_in_force_for([&nl, &de], day),
        [
            "NL (a template: in force only once concluded)",
            "DE (a template: in force only once concluded)"
        ]
    );
    let c = Conclusion {
        id: "jit-lantern",
        title: "Joint investigation team agreement NL-DE for Operation Lantern (pilot)",
        signed: jiff::civil::date(2026, 3, 28),
        until: None,
    };
    let file = "data/agreements/jit-nl-de-template.toml";
    let concluded = conclude(file, text("jit-nl-de-template.toml"), &lex, &c).unwrap();
    assert_eq!(concluded, text("jit-lantern.toml"), "regenerate data/agreements/jit-lantern.toml");
    let lantern = parse_agreement("l", &concluded, &lex).unwrap();
    assert!(!lantern.template && lantern.in_force_between(&nl, &de, day));
    assert_eq!(lantern.retention, template.retention);
    assert_eq!(lantern.travelling_conditions, template.travelling_conditions);

    // With an end date; refusals: not a template, the template's own id, an invalid id.
    let until = Conclusion { until: Some(jiff::civil::date(2027, 3, 27)), ..c.clone() };
    let t = conclude(file, text("jit-nl-de-template.toml"), &lex, &until).unwrap();
    assert!(t.contains("in_force_until = \"2027-03-27\""), "{t}");
    let e = conclude("e", text("ets-185.toml"), &lex, &c).unwrap_err();
    assert!(e.contains("not a template"), "{e}");
    let same = Conclusion { id: "jit-nl-de-template", ..c.clone() };
    let e = conclude(file, text("jit-nl-de-template.toml"), &lex, &same).unwrap_err();
    assert!(e.contains("the template's own id"), "{e}");
    let bad = Conclusion { id: "Jit Lantern", ..c };
    let e = conclude(file, text("jit-nl-de-template.toml"), &lex, &bad).unwrap_err();
    assert!(e.contains("Jit Lantern.toml:") && e.contains("id"), "{e}");
}
