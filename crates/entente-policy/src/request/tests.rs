#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use super::*;
use crate::agreement::builtin_agreements;
use entente_core::lexicon::Lexicon;
use proptest::prelude::*;

fn agreements() -> Vec<Agreement> {
    builtin_agreements(&Lexicon::builtin().expect("lexicon")).expect("builtin agreements")
}

fn agreement(id: &str) -> Agreement {
    agreements().into_iter().find(|a| a.id == id).expect("agreement")
}

/// Regulation (EU) 2023/1543 as if it already applied on 2026-01-01 (it applies from
/// 2026-08-18): only to run the spring daylight-saving case through a whole request.
fn eu_early() -> Agreement {
    let mut a = agreement("eu-2023-1543");
    a.in_force_from = "2026-01-01".parse().unwrap();
    a
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn p(s: &str) -> PartyCode {
    s.parse().unwrap()
}

use RequestEvent as E;

fn refuse(g: &[&str]) -> RequestEvent {
    E::Refuse { grounds: g.iter().map(|s| (*s).to_owned()).collect() }
}

/// Everything up to and including the answer, at the same instant `at`.
const TO_ANSWER: &[RequestEvent] = &[E::StartReview, E::Approve, E::StartExecution, E::Answer];

struct Case {
    name: &'static str,
    agreement: fn() -> Agreement,
    kind: RequestKind,
    from: &'static str,
    to: &'static str,
    emergency: bool,
    /// Received at; the request is drafted and submitted one hour earlier.
    received: &'static str,
    /// Further events after receipt.
    events: &'static [(&'static [RequestEvent], &'static str)],
    now: &'static str,
    clock: ClockKind,
    due_utc: &'static str,
    due_local: &'static str,
    status: ClockStatus,
    remaining: &'static str,
}

fn eu() -> Agreement {
    agreement("eu-2023-1543")
}
/// CETS 224 as if NL, DE and the US had ratified it (in force for each from 2022-05-12): only
/// to run its clocks. The shipped file gives it no entry into force for them, and a request
/// under it between them is refused (`cets_224_is_not_in_force_for_nl_de_us`).
fn cets() -> Agreement {
    let mut a = agreement("cets-224");
    for r in &mut a.ratifications {
        r.in_force = Some(a.in_force_from);
    }
    a
}

/// The shipped CETS 224 grounds no request among NL, DE and the US: signed, not ratified
/// (LEGAL-REVIEW §4; CETS 224 Art 16), whatever the day.
#[test]
fn cets_224_is_not_in_force_for_nl_de_us() {
    let a = agreement("cets-224");
    for (from, to) in [("NL", "US"), ("DE", "NL"), ("US", "DE")] {
        let e = Request::new(
            RequestKind::Production,
            &a,
            p(from),
            p(to),
            false,
            ts("2026-09-01T08:00:00Z"),
        )
        .unwrap_err();
        assert!(matches!(e, RequestError::NotInForceForParties { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.contains("not in force for both parties"), "{text}");
        assert!(text.contains(&format!("{from} (not ratified: CETS 224: signed")), "{text}");
        assert!(text.contains("[U]"), "{text}");
    }
    // The same request under a CETS 224 ratified by both goes ahead.
    Request::new(
        RequestKind::Production,
        &cets(),
        p("NL"),
        p("US"),
        false,
        ts("2026-09-01T08:00:00Z"),
    )
    .unwrap();
}

const CASES: &[Case] = &[
    Case {
        name: "EPOC emergency 8 h across the spring DST change (1182/71 Art 3(1): from the next full hour, elapsed; Regulation treated as applicable early)",
        agreement: eu_early,
        kind: RequestKind::Production,
        from: "DE",
        to: "NL",
        emergency: true,
        received: "2026-03-28T23:30:00+01:00",
        events: &[],
        now: "2026-03-29T01:30:00Z",
        clock: ClockKind::EmergencyDeadline,
        due_utc: "2026-03-29T07:00:00Z",
        due_local: "2026-03-29 09:00:00 CEST (+02:00)",
        status: ClockStatus::Running,
        remaining: "5h 30m",
    },
    Case {
        name: "EPOC emergency 8 h across the autumn DST change",
        agreement: eu,
        kind: RequestKind::Production,
        from: "DE",
        to: "NL",
        emergency: true,
        received: "2026-10-25T00:30:00+02:00",
        events: &[],
        now: "2026-10-25T07:30:00Z",
        clock: ClockKind::EmergencyDeadline,
        due_utc: "2026-10-25T07:00:00Z",
        due_local: "2026-10-25 08:00:00 CET (+01:00)",
        status: ClockStatus::Missed,
        remaining: "-0h 30m",
    },
    Case {
        name: "EPOC emergency answered after 10 h: missed (8 h from the next full hour)",
        agreement: eu,
        kind: RequestKind::Production,
        from: "NL",
        to: "DE",
        emergency: true,
        received: "2026-09-01T08:00:00Z",
        events: &[(TO_ANSWER, "2026-09-01T18:00:00Z")],
        now: "2026-09-02T00:00:00Z",
        clock: ClockKind::EmergencyDeadline,
        due_utc: "2026-09-01T17:00:00Z",
        due_local: "2026-09-01 19:00:00 CEST (+02:00)",
        status: ClockStatus::Missed,
        remaining: "-1h 0m",
    },
    Case {
        name: "EPOC 10 days received on a Friday evening (weekends count; ends with the last day, 1182/71 Art 3(2)(b))",
        agreement: eu,
        kind: RequestKind::Production,
        from: "NL",
        to: "DE",
        emergency: false,
        received: "2026-09-04T19:00:00+02:00",
        events: &[(TO_ANSWER, "2026-09-10T12:00:00Z")],
        now: "2026-09-20T00:00:00Z",
        clock: ClockKind::Deadline,
        due_utc: "2026-09-14T22:00:00Z",
        due_local: "2026-09-15 00:00:00 CEST (+02:00)",
        status: ClockStatus::Met,
        remaining: "4d 10h 0m",
    },
    Case {
        name: "EPOC 10 days received on a Friday evening before the autumn DST change (ends 24:00 local CET)",
        agreement: eu,
        kind: RequestKind::Production,
        from: "DE",
        to: "NL",
        emergency: false,
        received: "2026-10-23T19:00:00+02:00",
        events: &[],
        now: "2026-10-24T17:00:00Z",
        clock: ClockKind::Deadline,
        due_utc: "2026-11-02T23:00:00Z",
        due_local: "2026-11-03 00:00:00 CET (+01:00)",
        status: ClockStatus::Running,
        remaining: "9d 6h 0m",
    },
    Case {
        name: "EPOC-PR 60 days: last day Saturday 31 October rolls to Monday 2 November (1182/71 Art 3(4))",
        agreement: eu,
        kind: RequestKind::Preservation,
        from: "NL",
        to: "DE",
        emergency: false,
        received: "2026-09-01T10:00:00+02:00",
        events: &[],
        now: "2026-11-01T00:00:00Z",
        clock: ClockKind::Period,
        due_utc: "2026-11-02T23:00:00Z",
        due_local: "2026-11-03 00:00:00 CET (+01:00)",
        status: ClockStatus::Running,
        remaining: "1d 23h 0m",
    },
    Case {
        name: "EPOC-PR 60 days + 30-day extension (Annex VI, during the period)",
        agreement: eu,
        kind: RequestKind::Preservation,
        from: "NL",
        to: "DE",
        emergency: false,
        received: "2026-09-01T10:00:00+02:00",
        events: &[(&[E::Extend], "2026-10-01T12:00:00Z")],
        now: "2026-11-01T00:00:00Z",
        clock: ClockKind::Period,
        due_utc: "2026-12-02T23:00:00Z",
        due_local: "2026-12-03 00:00:00 CET (+01:00)",
        status: ClockStatus::Running,
        remaining: "31d 23h 0m",
    },
    Case {
        name: "EPOC 10 days stopped for 3 days, resumed: due pushed by 3 days",
        agreement: eu,
        kind: RequestKind::Production,
        from: "NL",
        to: "DE",
        emergency: false,
        received: "2026-09-07T09:00:00+02:00",
        events: &[(&[E::Suspend], "2026-09-08T09:00:00Z"), (&[E::Resume], "2026-09-11T09:00:00Z")],
        now: "2026-09-15T07:00:00Z",
        clock: ClockKind::Deadline,
        due_utc: "2026-09-20T22:00:00Z",
        due_local: "2026-09-21 00:00:00 CEST (+02:00)",
        status: ClockStatus::Running,
        remaining: "5d 15h 0m",
    },
    Case {
        name: "EPOC 10 days while stopped: remaining frozen at the stop",
        agreement: eu,
        kind: RequestKind::Production,
        from: "NL",
        to: "DE",
        emergency: false,
        received: "2026-09-07T09:00:00+02:00",
        events: &[(&[E::Suspend], "2026-09-08T09:00:00Z")],
        now: "2026-09-30T00:00:00Z",
        clock: ClockKind::Deadline,
        due_utc: "2026-09-17T22:00:00Z",
        due_local: "2026-09-18 00:00:00 CEST (+02:00)",
        status: ClockStatus::Stopped,
        remaining: "9d 13h 0m",
    },
    Case {
        name: "CETS 224 Art 8 subscriber data 20 days (U) to the US across the US DST change",
        agreement: cets,
        kind: RequestKind::SubscriberData,
        from: "NL",
        to: "US",
        emergency: false,
        received: "2026-10-20T12:00:00-04:00",
        events: &[],
        now: "2026-10-21T16:00:00Z",
        clock: ClockKind::Deadline,
        due_utc: "2026-11-09T17:00:00Z",
        due_local: "2026-11-09 12:00:00 EST (-05:00)",
        status: ClockStatus::Running,
        remaining: "19d 1h 0m",
    },
];

fn run(case: &Case) -> Request {
    let agr = (case.agreement)();
    let received = ts(case.received);
    let before = received.checked_sub(SignedDuration::from_hours(1)).unwrap();
    let mut r =
        Request::new(case.kind, &agr, p(case.from), p(case.to), case.emergency, before).unwrap();
    r.apply(E::Submit, before, &agr).unwrap();
    r.apply(E::Receive, received, &agr).unwrap();
    for (events, at) in case.events {
        for e in *events {
            r.apply(e.clone(), ts(at), &agr).unwrap_or_else(|err| panic!("{}: {err}", case.name));
        }
    }
    r
}

#[test]
fn clock_table() {
    for case in CASES {
        let r = run(case);
        let now = ts(case.now);
        let c = r
            .clocks
            .iter()
            .find(|c| c.kind == case.clock)
            .unwrap_or_else(|| panic!("{}: no {:?} clock", case.name, case.clock));
        println!("--- {}\n{}", case.name, r.show(now));
        assert_eq!(c.due, ts(case.due_utc), "{}", case.name);
        assert_eq!(
            c.due_local().strftime("%Y-%m-%d %H:%M:%S %Z (%:z)").to_string(),
            case.due_local,
            "{}",
            case.name
        );
        assert_eq!(c.status(now), case.status, "{}", case.name);
        assert_eq!(format_duration(c.remaining(now)), case.remaining, "{}", case.name);
        assert_eq!(c.start_event, "receive");
        assert_eq!(c.started_at, ts(case.received));
    }
}

#[test]
fn hour_limits_are_elapsed_and_day_limits_are_calendar() {
    let tz = TimeZone::get("Europe/Amsterdam").unwrap();
    let start = ts("2026-03-28T23:30:00+01:00");
    let h8: Span = "PT8H".parse().unwrap();
    let d1: Span = "P1D".parse().unwrap();
    assert_eq!(Arithmetic::of(&h8), Arithmetic::Elapsed);
    assert_eq!(Arithmetic::of(&d1), Arithmetic::Calendar);
    assert_eq!(add_duration(start, h8, &tz).unwrap(), ts("2026-03-29T06:30:00Z"));
    // One calendar day across the spring change is 23 elapsed hours.
    assert_eq!(add_duration(start, d1, &tz).unwrap(), ts("2026-03-29T21:30:00Z"));
}

#[test]
fn working_days_table() {
    let ams = TimeZone::get("Europe/Amsterdam").unwrap();
    let ny = TimeZone::get("America/New_York").unwrap();
    let cases: &[(&str, u32, &TimeZone, &str)] = &[
        // Friday + 3 working days = Wednesday, across a weekend and the autumn DST change.
        ("2026-10-23T10:00:00+02:00", 3, &ams, "2026-10-28T09:00:00Z"),
        // Saturday + 1 = Monday.
        ("2026-10-24T10:00:00+02:00", 1, &ams, "2026-10-26T09:00:00Z"),
        // Friday + 1 = Monday.
        ("2026-09-04T18:00:00+02:00", 1, &ams, "2026-09-07T16:00:00Z"),
        // Wednesday + 5 = next Wednesday.
        ("2026-09-02T10:00:00+02:00", 5, &ams, "2026-09-09T08:00:00Z"),
        // Zero working days: the start itself.
        ("2026-09-05T10:00:00+02:00", 0, &ams, "2026-09-05T08:00:00Z"),
        // New York: Friday 30 Oct + 2 = Tuesday 3 Nov, after the US change on 1 Nov.
        ("2026-10-30T09:00:00-04:00", 2, &ny, "2026-11-03T14:00:00Z"),
    ];
    for (start, n, tz, want) in cases {
        let got = add_working_days(ts(start), *n, tz).unwrap();
        println!("{start} + {n} working days ({}) = {got}", tz.iana_name().unwrap_or("?"));
        assert_eq!(got, ts(want), "{start} + {n}");
    }
}

// ---------------------------------------------------------------------------------------------
// Creation

#[test]
fn new_refuses_agreement_not_in_force() {
    let err = Request::new(
        RequestKind::Production,
        &eu(),
        p("NL"),
        p("DE"),
        false,
        ts("2026-08-17T23:59:59Z"),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "agreement `eu-2023-1543` is not in force on 2026-08-17 (in force from 2026-08-18); no legal basis for a request"
    );
    assert!(
        Request::new(
            RequestKind::Production,
            &eu(),
            p("NL"),
            p("DE"),
            false,
            ts("2026-08-18T00:00:00Z")
        )
        .is_ok()
    );
}

#[test]
fn new_refuses_parties_not_bound() {
    let err = Request::new(
        RequestKind::Production,
        &eu(),
        p("NL"),
        p("US"),
        false,
        ts("2026-09-01T00:00:00Z"),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "agreement `eu-2023-1543` does not bind both NL and US (its parties: NL, DE); no legal basis for a request between them"
    );
    let same = Request::new(
        RequestKind::Production,
        &eu(),
        p("NL"),
        p("NL"),
        false,
        ts("2026-09-01T00:00:00Z"),
    );
    assert!(matches!(same, Err(RequestError::PartiesNotBound { .. })));
}

#[test]
fn new_refuses_kind_not_provided() {
    let err = Request::new(
        RequestKind::JitInvitation,
        &eu(),
        p("NL"),
        p("DE"),
        false,
        ts("2026-09-01T00:00:00Z"),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "agreement `eu-2023-1543` provides no `jit-invitation` request; it provides: production, preservation"
    );
}

#[test]
fn request_without_time_limit_has_no_clock() {
    let ets = agreement("ets-185");
    let t = ts("2026-09-01T00:00:00Z");
    let mut r = Request::new(RequestKind::Preservation, &ets, p("US"), p("NL"), false, t).unwrap();
    r.apply(E::Submit, t, &ets).unwrap();
    r.apply(E::Receive, t, &ets).unwrap();
    assert!(r.clocks.is_empty());
    assert!(r.show(t).contains("clocks: none (the legal basis sets no time limit)"));
}

#[test]
fn unverified_clock_is_marked() {
    let r = run(&CASES[9]);
    let now = ts(CASES[9].now);
    assert!(r.clocks[0].unverified());
    let shown = r.show(now);
    assert!(shown.contains("UNVERIFIED"), "{shown}");
    assert!(shown.contains("America/New_York"), "{shown}");
    assert!(shown.contains("representative zone"), "{shown}");
    assert!(shown.contains("documented default"), "{shown}");
    let v1 = run(&CASES[3]);
    assert!(!v1.show(now).contains("UNVERIFIED"));
}

// ---------------------------------------------------------------------------------------------
// Transitions

fn received(agr: &Agreement, kind: RequestKind) -> (Request, Timestamp) {
    let t = ts("2026-09-01T08:00:00Z");
    let mut r = Request::new(kind, agr, p("NL"), p("DE"), false, t).unwrap();
    r.apply(E::Submit, t, agr).unwrap();
    r.apply(E::Receive, t, agr).unwrap();
    (r, t)
}

#[test]
fn illegal_transitions_are_rejected_with_what_is_allowed() {
    let agr = eu();
    let t = ts("2026-09-01T08:00:00Z");
    let mut r = Request::new(RequestKind::Production, &agr, p("NL"), p("DE"), false, t).unwrap();
    let before = r.clone();
    let err = r.apply(E::Answer, t, &agr).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot answer a request that is draft; allowed from here: submit, withdraw"
    );
    assert_eq!(r, before);

    let (mut r, t) = received(&agr, RequestKind::Production);
    for e in TO_ANSWER {
        r.apply(e.clone(), t, &agr).unwrap();
    }
    let err = r.apply(E::StartReview, t, &agr).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot start the review of a request that is answered; allowed from here: close, extend"
    );
    r.apply(E::Close, t, &agr).unwrap();
    let before = r.clone();
    let err = r.apply(E::Submit, t, &agr).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot submit a request that is closed; allowed from here: none (closed is final)"
    );
    assert_eq!(r, before);

    let (mut r, t) = received(&agr, RequestKind::Production);
    r.apply(E::Suspend, t, &agr).unwrap();
    let err = r.apply(E::StartReview, t, &agr).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot start the review of a request that is received (clocks stopped); allowed from here: resume, withdraw"
    );
}

#[test]
fn refusal_needs_grounds_from_the_agreement() {
    let agr = eu();
    let (mut r, t) = received(&agr, RequestKind::Production);
    r.apply(E::StartReview, t, &agr).unwrap();
    let before = r.clone();
    let err = r.apply(refuse(&[]), t, &agr).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot refuse without grounds: give at least one refusal ground of agreement `eu-2023-1543`: immunity-or-press-freedom, fundamental-rights, ne-bis-in-idem, no-dual-criminality"
    );
    assert_eq!(r, before);
    let err = r.apply(refuse(&["political-offence"]), t, &agr).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown refusal ground `political-offence` for agreement `eu-2023-1543`; valid grounds: immunity-or-press-freedom, fundamental-rights, ne-bis-in-idem, no-dual-criminality"
    );
    assert_eq!(r, before);
    let err = r.apply(E::ApprovePartially { grounds: vec![] }, t, &agr).unwrap_err();
    assert!(matches!(err, RequestError::NoGrounds { verb: "partially approve", .. }));
    r.apply(refuse(&["ne-bis-in-idem"]), t, &agr).unwrap();
    assert_eq!(r.state, RequestState::Refused);
    assert_eq!(r.grounds, vec!["ne-bis-in-idem".to_owned()]);
    // A refusal answers the deadline.
    assert_eq!(r.clocks[0].status(t), ClockStatus::Met);
}

#[test]
fn agreement_without_grounds_cannot_refuse() {
    let agr = agreement("nl-us-mla");
    let t = ts("2026-09-01T08:00:00Z");
    let mut r = Request::new(RequestKind::Mla, &agr, p("US"), p("NL"), false, t).unwrap();
    for e in [E::Submit, E::Receive, E::StartReview] {
        r.apply(e, t, &agr).unwrap();
    }
    let err = r.apply(refuse(&["anything"]), t, &agr).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot refuse: agreement `nl-us-mla` lists no ground for refusing a request of kind `mla`"
    );
}

/// A ground belongs to the procedures its source names: Regulation 2023/1543 Art 12 lists the
/// grounds on which a notified production order (Art 8) may be refused, and a preservation
/// order has no refusal stage (Arts 8, 12); ETS 185 Art 29(5) limits the refusal of
/// preservation, not of mutual assistance.
#[test]
fn grounds_apply_only_to_the_kinds_their_source_names() {
    let agr = eu();
    let (mut r, t) = received(&agr, RequestKind::Preservation);
    r.apply(E::StartReview, t, &agr).unwrap();
    let before = r.clone();
    let err = r.apply(refuse(&["ne-bis-in-idem"]), t, &agr).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot refuse: agreement `eu-2023-1543` lists no ground for refusing a request of kind `preservation`"
    );
    assert!(matches!(err, RequestError::NoGroundForKind { kind: RequestKind::Preservation, .. }));
    assert_eq!(r, before);

    let bc = agreement("ets-185");
    let t = ts("2026-09-01T08:00:00Z");
    let mut r = Request::new(RequestKind::Mla, &bc, p("US"), p("NL"), false, t).unwrap();
    for e in [E::Submit, E::Receive, E::StartReview] {
        r.apply(e, t, &bc).unwrap();
    }
    let before = r.clone();
    let err = r.apply(refuse(&["political-offence"]), t, &bc).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot refuse: agreement `ets-185` lists no ground for refusing a request of kind `mla`"
    );
    assert_eq!(r, before);
    let mut r = Request::new(RequestKind::Preservation, &bc, p("US"), p("NL"), false, t).unwrap();
    for e in [E::Submit, E::Receive, E::StartReview] {
        r.apply(e, t, &bc).unwrap();
    }
    r.apply(refuse(&["political-offence"]), t, &bc).unwrap();
    assert_eq!(r.state, RequestState::Refused);
}

#[test]
fn extension_rules() {
    let agr = eu();
    let (mut r, t) = received(&agr, RequestKind::Preservation);
    let later = ts("2026-09-10T00:00:00Z");
    r.apply(E::Extend, later, &agr).unwrap();
    let before = r.clone();
    let err = r.apply(E::Extend, later, &agr).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot extend: the period was already extended by P30D (one extension allowed)"
    );
    assert_eq!(r, before);

    let (mut r, _) = received(&agr, RequestKind::Preservation);
    let err = r.apply(E::Extend, ts("2026-11-03T00:00:00Z"), &agr).unwrap_err();
    assert!(err.to_string().contains("during the period"), "{err}");

    let (mut r, _) = received(&agr, RequestKind::Production);
    let err = r.apply(E::Extend, t, &agr).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot extend: the `production` rule of agreement `eu-2023-1543` allows no extension"
    );
}

#[test]
fn other_errors_leave_request_unchanged() {
    let agr = eu();
    let (mut r, t) = received(&agr, RequestKind::Production);
    let before = r.clone();
    let err = r.apply(E::StartReview, ts("2026-08-31T00:00:00Z"), &agr).unwrap_err();
    assert!(matches!(err, RequestError::TimeGoesBack { .. }));
    let err = r.apply(E::StartReview, t, &agreement("cets-224")).unwrap_err();
    assert!(matches!(err, RequestError::WrongAgreement { .. }));
    assert_eq!(r, before);
}

// ---------------------------------------------------------------------------------------------
// Properties

fn event() -> impl Strategy<Value = RequestEvent> {
    let ground =
        prop::sample::select(vec!["fundamental-rights", "ne-bis-in-idem", "political-offence", ""]);
    let grounds = prop::collection::vec(ground.prop_map(str::to_owned), 0..3);
    prop_oneof![
        Just(E::Submit),
        Just(E::Receive),
        Just(E::StartReview),
        Just(E::Approve),
        grounds.clone().prop_map(|grounds| E::ApprovePartially { grounds }),
        grounds.prop_map(|grounds| E::Refuse { grounds }),
        Just(E::StartExecution),
        Just(E::Answer),
        Just(E::Close),
        Just(E::Withdraw),
        Just(E::Expire),
        Just(E::Extend),
        Just(E::Suspend),
        Just(E::Resume),
    ]
}

proptest! {
    #[test]
    fn random_event_sequences_keep_the_invariants(
        preservation in any::<bool>(),
        emergency in any::<bool>(),
        steps in prop::collection::vec((event(), -3_600i64..400_000), 0..40),
    ) {
        let agr = eu();
        let kind = if preservation { RequestKind::Preservation } else { RequestKind::Production };
        let mut now = ts("2026-09-01T08:00:00Z");
        let mut r = Request::new(kind, &agr, p("NL"), p("DE"), emergency, now).unwrap();
        let mut closed_out = false;
        for (e, secs) in steps {
            let at = now.checked_add(SignedDuration::from_secs(secs)).unwrap();
            let before = r.clone();
            match r.apply(e.clone(), at, &agr) {
                Ok(()) => {
                    now = at;
                    prop_assert!(!before.state.is_final(), "{} changed a final request", e.name());
                    prop_assert_eq!(r.history.len(), before.history.len() + 1);
                }
                Err(err) => {
                    prop_assert_eq!(&r, &before, "rejected {} changed the request: {}", e.name(), err);
                }
            }
            prop_assert!(r.check_invariants().is_ok(), "{:?}", r.check_invariants());
            if matches!(r.state, RequestState::Refused | RequestState::PartiallyApproved) {
                prop_assert!(!r.grounds.is_empty());
                for g in &r.grounds {
                    prop_assert!(agr.refusal_grounds.iter().any(|x| &x.id == g && x.applies_to(r.kind)));
                }
            }
            if closed_out {
                prop_assert!(!r.state.is_open(), "reopened to {}", r.state);
            }
            if matches!(r.state, RequestState::Answered | RequestState::Closed | RequestState::Refused)
                || r.state.is_final()
            {
                closed_out = true;
            }
            for c in &r.clocks {
                let _ = (c.status(at), c.remaining(at));
                prop_assert!(c.due >= c.started_at);
            }
            let _ = r.show(at);
        }
    }
}

#[test]
fn withdrawal_while_stopped_stops_the_clock_for_good() {
    let agr = eu();
    let (mut r, t) = received(&agr, RequestKind::Production);
    let stop = ts("2026-09-02T08:00:00Z");
    r.apply(E::Suspend, stop, &agr).unwrap();
    r.apply(E::Withdraw, ts("2026-09-05T08:00:00Z"), &agr).unwrap();
    assert_eq!(r.state, RequestState::Withdrawn);
    assert_eq!(r.suspended_since, None);
    let c = &r.clocks[0];
    assert_eq!(c.started_at, t);
    assert_eq!(c.ended_at, Some(stop));
    let much_later = ts("2027-01-01T00:00:00Z");
    assert_eq!(c.status(much_later), ClockStatus::Stopped);
    assert_eq!(format_duration(c.remaining(much_later)), "9d 14h 0m");
    let before = r.clone();
    let err = r.apply(E::Resume, much_later, &agr).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot resume a request that is withdrawn; allowed from here: none (withdrawn is final)"
    );
    assert_eq!(r, before);
}
