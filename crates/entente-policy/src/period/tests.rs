//! Table of period cases, each with its source, and property tests.
//!
//! Weekdays and DST dates are facts of the Gregorian calendar and the IANA time-zone database
//! (EU: summer time from the last Sunday of March to the last Sunday of October; US: second
//! Sunday of March to the first Sunday of November). Holidays come from `data/holidays/`.

use super::calendar::{Calendar, Calendars, DayKind, easter_sunday};
use super::*;
use proptest::prelude::*;

fn cals() -> Calendars {
    Calendars::builtin().expect("shipped calendars parse")
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn date(s: &str) -> Date {
    s.parse().expect("date")
}

fn at(party: &str) -> Place<'_> {
    Place { party, region: None }
}

struct Case {
    what: &'static str,
    source: &'static str,
    event: &'static str,
    length: Length,
    rule: Rule,
    party: &'static str,
    region: Option<&'static str>,
    end: &'static str,
    /// A word every explanation of this case must hold.
    mentions: &'static str,
}

fn nis2() -> Rule {
    Rule::Elapsed { basis: "NIS2 Art 23(4)".to_owned() }
}

fn table() -> Vec<Case> {
    vec![
        Case {
            what: "10 days ending on a Saturday roll to Monday",
            source: "Reg 1182/71 Art 3(1), 3(2)(b), 3(4)",
            event: "2026-03-04T09:00:00Z",
            length: Length::Days(10),
            rule: Rule::Eu1182,
            party: "NL",
            region: None,
            // Last day Sat 14 March → Mon 16 March, ends 24:00 CET.
            end: "2026-03-16T23:00:00Z",
            mentions: "Saturday",
        },
        Case {
            what: "10 days ending on Easter Monday roll to Tuesday",
            source: "Reg 1182/71 Art 3(4); Algemene termijnenwet Art 3(1) (Tweede Paasdag); Easter 2026-04-05",
            event: "2026-03-27T10:00:00Z",
            length: Length::Days(10),
            rule: Rule::Eu1182,
            party: "NL",
            region: None,
            end: "2026-04-07T22:00:00Z",
            mentions: "Tweede Paasdag",
        },
        Case {
            what: "e-Evidence preservation 60 days ending on Easter Monday (the review's early release)",
            source: "Reg 2023/1543 Art 11(1) (60 days); Reg 1182/71 Art 3(4)",
            event: "2026-02-05T08:00:00Z",
            length: Length::Days(60),
            rule: Rule::Eu1182,
            party: "NL",
            region: None,
            end: "2026-04-07T22:00:00Z",
            mentions: "Art 3(4)",
        },
        Case {
            what: "a regional holiday: Corpus Christi in Hessen",
            source: "HFeiertagsG § 1(1) no 7; Reg 1182/71 Art 2(1), 3(4); Corpus Christi 2026-06-04 (Easter + 60)",
            event: "2026-05-25T10:00:00Z",
            length: Length::Days(10),
            rule: Rule::Eu1182,
            party: "DE",
            region: Some("HE"),
            end: "2026-06-05T22:00:00Z",
            mentions: "Fronleichnam",
        },
        Case {
            what: "DST starts (EU, 29 March 2026): last day Sunday 29 March rolls to Monday, ends 24:00 CEST",
            source: "Reg 1182/71 Art 3(4); IANA Europe/Amsterdam",
            event: "2026-03-19T09:00:00Z",
            length: Length::Days(10),
            rule: Rule::Eu1182,
            party: "NL",
            region: None,
            end: "2026-03-30T22:00:00Z",
            mentions: "Sunday",
        },
        Case {
            what: "DST ends (EU, 25 October 2026): last day Sunday 25 October rolls to Monday, ends 24:00 CET",
            source: "Reg 1182/71 Art 3(4); IANA Europe/Berlin",
            event: "2026-10-15T09:00:00Z",
            length: Length::Days(10),
            rule: Rule::Eu1182,
            party: "DE",
            region: Some("NW"),
            end: "2026-10-26T23:00:00Z",
            mentions: "Sunday",
        },
        Case {
            what: "year end: last day New Year's Day 2027 (Friday) rolls over the weekend to Monday 4 January",
            source: "Reg 1182/71 Art 3(4); Algemene termijnenwet Art 3(1) (Nieuwjaarsdag)",
            event: "2026-12-22T10:00:00Z",
            length: Length::Days(10),
            rule: Rule::Eu1182,
            party: "NL",
            region: None,
            end: "2027-01-04T23:00:00Z",
            mentions: "Nieuwjaarsdag",
        },
        Case {
            what: "two days over Christmas hold two working days",
            source: "Reg 1182/71 Art 3(5); Algemene termijnenwet Art 3(1) (beide Kerstdagen)",
            event: "2026-12-24T10:00:00Z",
            length: Length::Days(2),
            rule: Rule::Eu1182,
            party: "NL",
            region: None,
            // Days 25–26 Dec; 26 (Sat) → 28 (Mon); only one working day → 29 Dec.
            end: "2026-12-29T23:00:00Z",
            mentions: "Art 3(5)",
        },
        Case {
            what: "emergency 8 hours on a Saturday: the hour of the event not counted, not extended",
            source: "Reg 1182/71 Art 3(1), 3(2)(a); Reg 2023/1543 Art 10(4) (8 hours)",
            event: "2026-03-07T14:20:00Z",
            length: Length::Hours(8),
            rule: Rule::Eu1182,
            party: "NL",
            region: None,
            // 15:20 CET → counting from 16:00 CET (15:00Z), 8 hours.
            end: "2026-03-07T23:00:00Z",
            mentions: "not extend",
        },
        Case {
            what: "8 hours across the spring DST change count elapsed hours",
            source: "Reg 1182/71 Art 3(1), 3(2)(a); IANA Europe/Amsterdam",
            event: "2026-03-28T22:30:00Z",
            length: Length::Hours(8),
            rule: Rule::Eu1182,
            party: "NL",
            region: None,
            end: "2026-03-29T07:00:00Z",
            mentions: "hour of the event",
        },
        Case {
            what: "one month ending on a non-existent date ends on the month's last day, rolled",
            source: "Reg 1182/71 Art 3(2)(c), 3(4)",
            event: "2026-01-31T10:00:00Z",
            length: Length::Months(1),
            rule: Rule::Eu1182,
            party: "NL",
            region: None,
            // 28 Feb 2026 is a Saturday → Mon 2 March.
            end: "2026-03-02T23:00:00Z",
            mentions: "Art 3(2)(c)",
        },
        Case {
            what: "SEC: Juneteenth (Friday 19 June 2026) is not a business day",
            source: "Form 8-K General Instruction B.1; 5 U.S.C. § 6103(a)",
            event: "2026-06-18T15:00:00Z",
            length: Length::BusinessDays(4),
            rule: Rule::SecBusinessDays,
            party: "US",
            region: None,
            end: "2026-06-25T21:30:00Z",
            mentions: "Juneteenth",
        },
        Case {
            what: "SEC: an event on Saturday 4 July 2026 starts the count on Monday; the holiday is observed Friday 3 July",
            source: "Form 8-K General Instruction B.1; 5 U.S.C. § 6103(b)",
            event: "2026-07-04T15:00:00Z",
            length: Length::BusinessDays(4),
            rule: Rule::SecBusinessDays,
            party: "US",
            region: None,
            end: "2026-07-09T21:30:00Z",
            mentions: "business day 1",
        },
        Case {
            what: "SEC: Thanksgiving (26 November 2026) skipped",
            source: "Form 8-K General Instruction B.1; 5 U.S.C. § 6103(a) (fourth Thursday in November)",
            event: "2026-11-24T15:00:00Z",
            length: Length::BusinessDays(4),
            rule: Rule::SecBusinessDays,
            party: "US",
            region: None,
            // Wed 25, Fri 27, Mon 30, Tue 1 Dec; 17:30 EST.
            end: "2026-12-01T22:30:00Z",
            mentions: "Thanksgiving",
        },
        Case {
            what: "SEC: across the US DST end (1 November 2026), 17:30 EST",
            source: "Form 8-K General Instruction B.1; IANA America/New_York",
            event: "2026-10-30T15:00:00Z",
            length: Length::BusinessDays(4),
            rule: Rule::SecBusinessDays,
            party: "US",
            region: None,
            end: "2026-11-05T22:30:00Z",
            mentions: "17:30",
        },
        Case {
            what: "SEC: across the US DST start (8 March 2026), 17:30 EDT",
            source: "Form 8-K General Instruction B.1; IANA America/New_York",
            event: "2026-03-05T15:00:00Z",
            length: Length::BusinessDays(4),
            rule: Rule::SecBusinessDays,
            party: "US",
            region: None,
            end: "2026-03-11T21:30:00Z",
            mentions: "17:30",
        },
        Case {
            what: "NIS2 early warning 24 hours over a weekend and a DST change: elapsed, no roll-over",
            source: "NIS2 Art 23(4)(a)",
            event: "2026-03-28T12:00:00Z",
            length: Length::Hours(24),
            rule: nis2(),
            party: "NL",
            region: None,
            end: "2026-03-29T12:00:00Z",
            mentions: "not extended",
        },
        Case {
            what: "DORA relief: a 24-hour deadline on a Saturday moves to 12:00 Monday",
            source: "Delegated Regulation (EU) 2025/301 Art 5(4)-(5) (status U)",
            event: "2026-03-06T10:00:00Z",
            length: Length::Hours(24),
            rule: Rule::DoraArt5 { relief: Relief::Applies },
            party: "NL",
            region: None,
            end: "2026-03-09T11:00:00Z",
            mentions: "12:00",
        },
        Case {
            what: "DORA: an excluded entity has no relief",
            source: "Delegated Regulation (EU) 2025/301 Art 5(5) (status U)",
            event: "2026-03-06T10:00:00Z",
            length: Length::Hours(24),
            rule: Rule::DoraArt5 { relief: Relief::Excluded },
            party: "NL",
            region: None,
            end: "2026-03-07T10:00:00Z",
            mentions: "excluded",
        },
    ]
}

#[test]
fn the_table_of_cases() {
    let cals = cals();
    for c in table() {
        let got = compute(
            &cals,
            ts(c.event),
            c.length,
            &c.rule,
            Place { party: c.party, region: c.region },
        )
        .unwrap_or_else(|e| panic!("{} [{}]: {e}", c.what, c.source));
        assert_eq!(got.end, ts(c.end), "{} [{}]\n{got}", c.what, c.source);
        assert!(got.is_definite(), "{} [{}]\n{got}", c.what, c.source);
        assert!(
            got.end >= got.naive,
            "{} [{}]: ends before the naive end\n{got}",
            c.what,
            c.source
        );
        let text = got.to_string();
        assert!(
            text.contains(c.mentions),
            "{} [{}]: `{}` not in\n{text}",
            c.what,
            c.source,
            c.mentions
        );
    }
}

#[test]
fn easter_matches_known_dates() {
    // 2017: Good Friday 14 April (Hamm's list of NRW holidays); 2022: Good Friday 15 April
    // (wvhl.nl's 2022 list); 2026: the EU summer-time Sunday is 29 March, Easter 5 April.
    assert_eq!(easter_sunday(2017), Some(date("2017-04-16")));
    assert_eq!(easter_sunday(2022), Some(date("2022-04-17")));
    assert_eq!(easter_sunday(2026), Some(date("2026-04-05")));
    assert_eq!(easter_sunday(1500), None);
}

#[test]
fn calendars_know_their_days() {
    let cals = cals();
    let nl = cals.get("NL").expect("NL");
    let de = cals.get("DE").expect("DE");
    let us = cals.get("US").expect("US");
    // 2022 is outside NL's years: unknown, never a working day.
    assert!(matches!(nl.day(date("2022-05-26"), None), DayKind::Unknown(_)));
    assert!(
        matches!(nl.day(date("2027-05-06"), None), DayKind::Holiday(ref h) if h.name.starts_with("Hemelvaartsdag"))
    );
    assert!(matches!(nl.day(date("2026-05-05"), None), DayKind::Holiday(_)));
    assert!(nl.day(date("2026-05-06"), None).is_working());
    // DE: 1 November is a holiday in NW and BY, not in HE; without a Land it is unknown.
    assert!(matches!(de.day(date("2027-11-01"), Some("NW")), DayKind::Holiday(_)));
    assert!(de.day(date("2027-11-01"), Some("HE")).is_working());
    assert!(matches!(de.day(date("2027-11-01"), None), DayKind::Unknown(_)));
    // BY, 15 August: only in Catholic municipalities: unknown at Land level.
    assert!(matches!(de.day(date("2028-08-15"), Some("BY")), DayKind::Unknown(_)));
    assert!(de.day(date("2028-08-15"), Some("HE")).is_working());
    // 3 October everywhere.
    assert!(matches!(de.day(date("2028-10-03"), Some("HE")), DayKind::Holiday(_)));
    // US: 1 January 2028 is a Saturday, observed Friday 31 December 2027 (§ 6103(b)).
    assert!(
        matches!(us.day(date("2027-12-31"), None), DayKind::Holiday(ref h) if h.name == "New Year's Day")
    );
    // Memorial Day 2026: the last Monday in May, 25 May.
    assert!(
        matches!(us.day(date("2026-05-25"), None), DayKind::Holiday(ref h) if h.name == "Memorial Day")
    );
    assert!(us.day(date("2026-05-18"), None).is_working());
}

#[test]
fn a_date_outside_the_covered_years_is_not_definite() {
    let cals = cals();
    let got = compute(&cals, ts("2035-12-28T10:00:00Z"), Length::Days(10), &Rule::Eu1182, at("NL"))
        .expect("computes");
    assert!(!got.is_definite(), "{got}");
    assert!(got.to_string().contains("NOT DEFINITE"), "{got}");
    assert!(got.unknown.iter().any(|u| u.contains("outside the years")), "{got}");
}

#[test]
fn a_party_without_a_calendar_is_not_definite_and_says_its_zone_is_a_default() {
    let got =
        compute(&cals(), ts("2026-03-04T09:00:00Z"), Length::Days(8), &Rule::Eu1182, at("FR"))
            .expect("computes");
    // Last day Thu 12 March: a weekday of a party without a calendar.
    assert!(!got.is_definite(), "{got}");
    assert!(got.zone_note.contains("default of this node"), "{got}");
    assert_eq!(got.zone_name, "Europe/Paris");
}

#[test]
fn a_regional_holiday_without_a_land_is_not_definite() {
    let got =
        compute(&cals(), ts("2026-05-25T10:00:00Z"), Length::Days(10), &Rule::Eu1182, at("DE"))
            .expect("computes");
    assert!(!got.is_definite(), "{got}");
    assert!(got.to_string().contains("Fronleichnam"), "{got}");
}

#[test]
fn an_unknown_land_is_an_error() {
    let e = compute(
        &cals(),
        ts("2026-05-25T10:00:00Z"),
        Length::Days(10),
        &Rule::Eu1182,
        Place { party: "DE", region: Some("BE") },
    )
    .unwrap_err();
    assert!(matches!(e, PeriodError::UnknownRegion { .. }), "{e}");
    assert!(e.to_string().contains("BY, HE, NW"), "{e}");
}

#[test]
fn a_rule_refuses_a_length_it_does_not_count() {
    let e = compute(
        &cals(),
        ts("2026-05-25T10:00:00Z"),
        Length::BusinessDays(4),
        &Rule::Eu1182,
        at("NL"),
    )
    .unwrap_err();
    assert!(matches!(e, PeriodError::Unsupported { .. }), "{e}");
}

#[test]
fn the_length_of_an_iso_duration() {
    let span = |s: &str| s.parse::<Span>().expect("span");
    assert_eq!(Length::of_span(&span("P10D")), Some(Length::Days(10)));
    assert_eq!(Length::of_span(&span("PT8H")), Some(Length::Hours(8)));
    assert_eq!(Length::of_span(&span("P1M")), Some(Length::Months(1)));
    assert_eq!(Length::of_span(&span("P2W")), Some(Length::Weeks(2)));
    assert_eq!(Length::of_span(&span("P1DT2H")), None);
    assert_eq!(Length::of_span(&span("PT30M")), None);
}

// ---------------------------------------------------------------------------------------------
// Bad calendars: file:line:col, nothing loaded half-way.

const HEAD: &str = "party = \"DE\"\nname = \"t\"\nzone = \"Europe/Berlin\"\nyears = [2024, 2030]\n\n[regions]\nHE = \"Hessen\"\n\n[sources]\ns = { title = \"t\", url = \"u\" }\n";

fn bad(body: &str) -> String {
    let text = format!("{HEAD}{body}");
    let e = Calendar::parse("data/holidays/T.toml", &text).unwrap_err();
    e.to_string()
}

#[test]
fn an_unknown_land_in_a_calendar_is_reported_at_its_position() {
    let e = bad(
        "\n[[holiday]]\nname = \"x\"\ndate = \"01-06\"\nregions = [\"HX\"]\ncitation = \"c\"\nstatus = \"V1\"\n",
    );
    assert!(e.contains("data/holidays/T.toml:15:12: holiday.regions: found `HX`"), "{e}");
    assert!(e.contains("expected a region: HE"), "{e}");
}

#[test]
fn a_date_outside_the_covered_years_is_reported() {
    let e = bad(
        "\n[[holiday]]\nname = \"x\"\non = \"2031-05-01\"\ncitation = \"c\"\nstatus = \"V1\"\n",
    );
    assert!(e.contains("T.toml:14:6: holiday.on: 2031-05-01 is outside the years this calendar covers (2024–2030)"), "{e}");
}

#[test]
fn a_duplicate_holiday_is_reported() {
    let h = "\n[[holiday]]\nname = \"x\"\ndate = \"01-06\"\ncitation = \"c\"\nstatus = \"V1\"\n";
    let e = bad(&format!("{h}{h}"));
    assert!(e.contains("T.toml:19:8: holiday.name: duplicate holiday `x`"), "{e}");
    let other =
        "\n[[holiday]]\nname = \"y\"\ndate = \"01-06\"\ncitation = \"c\"\nstatus = \"V1\"\n";
    let e = bad(&format!("{h}{other}"));
    assert!(e.contains("`y` is the same day as `x`"), "{e}");
}

#[test]
fn a_bad_date_is_reported() {
    let e =
        bad("\n[[holiday]]\nname = \"x\"\ndate = \"02-30\"\ncitation = \"c\"\nstatus = \"V1\"\n");
    assert!(
        e.contains("T.toml:14:8: holiday.date: found `02-30`; expected a month and day that exist"),
        "{e}"
    );
    let e = bad(
        "\n[[holiday]]\nname = \"x\"\non = \"2026-13-01\"\ncitation = \"c\"\nstatus = \"V9\"\n",
    );
    assert!(e.contains("holiday.on: found `2026-13-01`"), "{e}");
    assert!(e.contains("holiday.status: found `V9`; expected V1, V2, P or U"), "{e}");
    assert!(e.starts_with("invalid holiday calendar (2 problems)"), "{e}");
}

#[test]
fn a_shape_error_is_positioned_and_nothing_is_loaded() {
    let e = bad(
        "\n[[holiday]]\nname = \"x\"\ndate = \"01-06\"\ncitation = \"c\"\nstatus = \"V1\"\ncolour = 1\n",
    );
    assert!(e.contains("T.toml:17:1:"), "{e}");
    assert!(e.contains("unknown field `colour`"), "{e}");
    // One bad file among good ones: no calendars at all.
    let good = Calendars::builtin().expect("builtin");
    assert!(good.get("NL").is_some());
    let mut files: Vec<(&str, &str)> = calendar::BUILTIN.to_vec();
    files.push(("data/holidays/T.toml", "party = \"XX\"\n"));
    assert!(Calendars::parse(&files).is_err());
    // The same party twice.
    let mut files: Vec<(&str, &str)> = calendar::BUILTIN.to_vec();
    files.push(calendar::BUILTIN[1]);
    let e = Calendars::parse(&files).unwrap_err().to_string();
    assert!(e.contains("party NL already has a calendar"), "{e}");
}

#[test]
fn every_shipped_holiday_has_a_citation_a_status_and_a_source() {
    for c in cals().iter() {
        assert!(c.first_year <= c.last_year);
        for h in &c.holidays {
            assert!(!h.citation.is_empty(), "{}: {}", c.file, h.name);
            assert!(!h.sources.is_empty(), "{}: {} has no source", c.file, h.name);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Properties

fn event() -> impl Strategy<Value = Timestamp> {
    // 2024-01-01 .. 2034-12-31.
    (1_704_067_200i64..2_051_222_400).prop_map(|s| Timestamp::from_second(s).expect("in range"))
}

fn place() -> impl Strategy<Value = (&'static str, Option<&'static str>)> {
    prop_oneof![
        Just(("NL", None)),
        Just(("DE", Some("HE"))),
        Just(("DE", Some("NW"))),
        Just(("DE", Some("BY"))),
        Just(("DE", None)),
        Just(("US", None)),
        Just(("FR", None)),
    ]
}

fn length() -> impl Strategy<Value = Length> {
    prop_oneof![
        (0u32..100).prop_map(Length::Hours),
        (0u32..120).prop_map(Length::Days),
        (1u32..10).prop_map(Length::Weeks),
        (1u32..14).prop_map(Length::Months),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn a_period_never_ends_before_the_naive_end(e in event(), l in length(), (p, r) in place()) {
        let cals = cals();
        let got = compute(&cals, e, l, &Rule::Eu1182, Place { party: p, region: r }).expect("computes");
        prop_assert!(got.end >= got.naive, "{}", got);
        let sec = compute(&cals, e, Length::BusinessDays(4), &Rule::SecBusinessDays, at("US")).expect("computes");
        prop_assert!(sec.end >= sec.naive, "{}", sec);
    }

    #[test]
    fn a_rolled_over_deadline_never_falls_on_a_non_working_day(e in event(), n in 1u32..120, (p, r) in place()) {
        let cals = cals();
        let got = compute(&cals, e, Length::Days(n), &Rule::Eu1182, Place { party: p, region: r }).expect("computes");
        let last_day = got.end.checked_sub(SignedDuration::from_nanos(1)).expect("in range").to_zoned(got.zone.clone()).date();
        if got.is_definite() {
            let day = cals.get(p).map(|c| c.day(last_day, r));
            prop_assert!(matches!(day, Some(DayKind::Working)), "{last_day}: {day:?}\n{got}");
        }
        let sec = compute(&cals, e, Length::BusinessDays(4), &Rule::SecBusinessDays, at("US")).expect("computes");
        let due = sec.end.to_zoned(sec.zone.clone()).date();
        if sec.is_definite() {
            prop_assert!(cals.get("US").map(|c| c.day(due, None)).is_some_and(|d| d.is_working()), "{sec}");
        }
    }

    #[test]
    fn an_unknown_calendar_date_never_yields_a_definite_answer(s in 2_082_758_400i64..2_145_830_400, n in 1u32..60) {
        // Events from 2036 to 2037, after every shipped calendar: never definite unless the
        // last day (after any roll-over) is a weekend, which does not end a period.
        let cals = cals();
        let e = Timestamp::from_second(s).expect("in range");
        for p in ["NL", "DE", "US"] {
            let got = compute(&cals, e, Length::Days(n), &Rule::Eu1182, at(p)).expect("computes");
            prop_assert!(!got.is_definite(), "{got}");
        }
        let sec = compute(&cals, e, Length::BusinessDays(4), &Rule::SecBusinessDays, at("US")).expect("computes");
        prop_assert!(!sec.is_definite(), "{sec}");
    }
}
