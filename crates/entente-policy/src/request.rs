//! Typed cross-border requests and their legal clocks.
//!
//! A [`Request`] is made under one [`Agreement`] in force between the requesting and the
//! requested party, for a [`RequestKind`] the agreement provides (its [`RequestRule`]). It moves
//! through a state machine ([`RequestState`]) by [`RequestEvent`]s; an event that is not allowed
//! from the current state is refused with a [`RequestError`] that names what is allowed, and the
//! request is left exactly as it was (all-or-nothing).
//!
//! Legal clocks ([`Clock`]) start when the requested party receives the request:
//!
//! - `deadline` (or `emergency_deadline` for an emergency request, when the rule has one): the
//!   time to answer. It is met by an answer or a refusal on time;
//! - `period` (a preservation that ends unless followed up, e.g. EPOC-PR 60 days), lengthened
//!   once by `extension` (EPOC-PR: 30 days) through [`RequestEvent::Extend`].
//!
//! Counting ([`Counting`]): the clocks of an EU regulation (the e-Evidence Regulation) are
//! counted by Regulation (EEC, Euratom) No 1182/71 through [`crate::period`]: the day of
//! receipt is not counted, a period in days ends at the end of its last day, a last day on a
//! Saturday, Sunday or public holiday of the requested party moves to the end of the next
//! working day, hour periods start at the next full hour and are not extended. Each clock
//! carries the explanation (`rule`) and whether its end is definite (a day outside the holiday
//! calendar's years is never assumed a working day). Other instruments state no counting rule
//! in Entente's data: their clocks keep plain arithmetic ([`Arithmetic`]) — elapsed time for
//! hours, calendar days in the requested party's time zone keeping the wall-clock time — and
//! say so.
//!
//! Time zone: a party with a holiday calendar (`data/holidays/`) is counted in its calendar's
//! zone, the place where the act is to be done. Otherwise the requested party's capital (see
//! [`party_time_zone`]) is used; this is a **documented default, not a legal fact**, and every
//! clock says so. Time-zone rules come from the IANA database that `jiff` reads.
//!
//! Suspension: [`RequestEvent::Suspend`] stops every running clock (waiting for the requesting
//! party), [`RequestEvent::Resume`] restarts them and pushes each due instant by the time spent
//! stopped (elapsed time).
//!
//! Pure: no I/O beyond the time-zone database, no clock — `now` is an argument.

use crate::agreement::{Agreement, Citation, IsoDuration, RequestKind, RequestRule};
use entente_core::PartyCode;
use entente_core::lexicon::VerificationStatus;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};
use sha2::{Digest, Sha256};
use std::fmt;

// ---------------------------------------------------------------------------------------------
// States and events

/// Where a request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RequestState {
    /// Written, not yet sent.
    Draft,
    /// Sent by the requesting party.
    Submitted,
    /// Received by the requested party (the clocks start).
    Received,
    /// Being reviewed by the requested party.
    UnderReview,
    /// Approved in full.
    Approved,
    /// Approved in part, with the grounds for the part refused.
    PartiallyApproved,
    /// Refused, with grounds from the agreement's list.
    Refused,
    /// Being executed.
    Executing,
    /// Answered (data produced or measure carried out). Never reopens.
    Answered,
    /// Closed. Final.
    Closed,
    /// Withdrawn by the requesting party. Final.
    Withdrawn,
    /// Expired (a period ran out or a deadline passed and the request lapsed). Final.
    Expired,
}

impl RequestState {
    /// Every state, in the order of the life cycle.
    pub const ALL: &'static [RequestState] = &[
        RequestState::Draft,
        RequestState::Submitted,
        RequestState::Received,
        RequestState::UnderReview,
        RequestState::Approved,
        RequestState::PartiallyApproved,
        RequestState::Refused,
        RequestState::Executing,
        RequestState::Answered,
        RequestState::Closed,
        RequestState::Withdrawn,
        RequestState::Expired,
    ];

    /// The state in words (kebab-case).
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Draft => "draft",
            RequestState::Submitted => "submitted",
            RequestState::Received => "received",
            RequestState::UnderReview => "under-review",
            RequestState::Approved => "approved",
            RequestState::PartiallyApproved => "partially-approved",
            RequestState::Refused => "refused",
            RequestState::Executing => "executing",
            RequestState::Answered => "answered",
            RequestState::Closed => "closed",
            RequestState::Withdrawn => "withdrawn",
            RequestState::Expired => "expired",
        }
    }

    /// Whether no event can ever change the state again.
    pub fn is_final(self) -> bool {
        matches!(self, RequestState::Closed | RequestState::Withdrawn | RequestState::Expired)
    }

    /// Whether the request is still open and not yet decided or answered (the states a
    /// request may never return to once answered, refused or final).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            RequestState::Draft
                | RequestState::Submitted
                | RequestState::Received
                | RequestState::UnderReview
                | RequestState::Approved
                | RequestState::PartiallyApproved
                | RequestState::Executing
        )
    }

    /// Whether the requested party holds the request (the clocks may be stopped).
    fn with_requested_party(self) -> bool {
        matches!(
            self,
            RequestState::Received
                | RequestState::UnderReview
                | RequestState::Approved
                | RequestState::PartiallyApproved
                | RequestState::Executing
        )
    }
}

impl fmt::Display for RequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that happens to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestEvent {
    /// The requesting party sends it.
    Submit,
    /// The requested party receives it (the clocks start).
    Receive,
    /// The requested party starts its review.
    StartReview,
    /// Approved in full.
    Approve,
    /// Approved in part; `grounds` are refusal-ground ids of the agreement for the part refused.
    ApprovePartially {
        /// Refusal-ground ids (at least one).
        grounds: Vec<String>,
    },
    /// Refused; `grounds` are refusal-ground ids of the agreement (at least one).
    Refuse {
        /// Refusal-ground ids (at least one).
        grounds: Vec<String>,
    },
    /// Execution starts.
    StartExecution,
    /// Answered (data produced, measure carried out).
    Answer,
    /// Closed (after an answer or a refusal).
    Close,
    /// Withdrawn by the requesting party.
    Withdraw,
    /// Lapsed.
    Expire,
    /// The period is extended by the rule's `extension` (once).
    Extend,
    /// The clocks stop (waiting for the requesting party).
    Suspend,
    /// The clocks restart.
    Resume,
}

impl RequestEvent {
    /// The event as a verb, for messages (`cannot <verb> a request that is …`).
    pub fn verb(&self) -> &'static str {
        match self {
            RequestEvent::Submit => "submit",
            RequestEvent::Receive => "receive",
            RequestEvent::StartReview => "start the review of",
            RequestEvent::Approve => "approve",
            RequestEvent::ApprovePartially { .. } => "partially approve",
            RequestEvent::Refuse { .. } => "refuse",
            RequestEvent::StartExecution => "start executing",
            RequestEvent::Answer => "answer",
            RequestEvent::Close => "close",
            RequestEvent::Withdraw => "withdraw",
            RequestEvent::Expire => "expire",
            RequestEvent::Extend => "extend",
            RequestEvent::Suspend => "suspend",
            RequestEvent::Resume => "resume",
        }
    }

    /// The event named `name` (as [`RequestEvent::name`] writes it), with `grounds` for a
    /// refusal or partial approval; `None` for an unknown name.
    pub fn from_name(name: &str, grounds: Vec<String>) -> Option<RequestEvent> {
        Some(match name {
            "submit" => RequestEvent::Submit,
            "receive" => RequestEvent::Receive,
            "start-review" => RequestEvent::StartReview,
            "approve" => RequestEvent::Approve,
            "approve-partially" => RequestEvent::ApprovePartially { grounds },
            "refuse" => RequestEvent::Refuse { grounds },
            "start-execution" => RequestEvent::StartExecution,
            "answer" => RequestEvent::Answer,
            "close" => RequestEvent::Close,
            "withdraw" => RequestEvent::Withdraw,
            "expire" => RequestEvent::Expire,
            "extend" => RequestEvent::Extend,
            "suspend" => RequestEvent::Suspend,
            "resume" => RequestEvent::Resume,
            _ => return None,
        })
    }

    /// The refusal grounds the event carries (empty for other events).
    pub fn grounds(&self) -> &[String] {
        match self {
            RequestEvent::ApprovePartially { grounds } | RequestEvent::Refuse { grounds } => {
                grounds
            }
            _ => &[],
        }
    }

    /// The event's name (kebab-case).
    pub fn name(&self) -> &'static str {
        match self {
            RequestEvent::Submit => "submit",
            RequestEvent::Receive => "receive",
            RequestEvent::StartReview => "start-review",
            RequestEvent::Approve => "approve",
            RequestEvent::ApprovePartially { .. } => "approve-partially",
            RequestEvent::Refuse { .. } => "refuse",
            RequestEvent::StartExecution => "start-execution",
            RequestEvent::Answer => "answer",
            RequestEvent::Close => "close",
            RequestEvent::Withdraw => "withdraw",
            RequestEvent::Expire => "expire",
            RequestEvent::Extend => "extend",
            RequestEvent::Suspend => "suspend",
            RequestEvent::Resume => "resume",
        }
    }
}

/// The event names allowed from `state` (ignoring suspension and the rule's extension).
/// Which side of a shared request records an event (on its copy, sent to the other).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The party that made the request.
    Requesting,
    /// The party the request is addressed to.
    Requested,
    /// Either (a lapse).
    Either,
}

impl RequestEvent {
    /// The side that records this event.
    pub fn side(&self) -> Side {
        match self {
            RequestEvent::Submit
            | RequestEvent::Withdraw
            | RequestEvent::Extend
            | RequestEvent::Close => Side::Requesting,
            RequestEvent::Expire => Side::Either,
            _ => Side::Requested,
        }
    }
}

impl Request {
    /// The events `party` may record on this request now: allowed from its state, and its
    /// side's to record (by name, sorted). The gate decides each all the same.
    pub fn events_open_to(&self, party: &PartyCode) -> Vec<&'static str> {
        let mine = |side: Side| match side {
            Side::Requesting => &self.from == party,
            Side::Requested => &self.to == party,
            Side::Either => &self.from == party || &self.to == party,
        };
        allowed_from(self.state, self.suspended_since.is_some())
            .into_iter()
            .filter(|name| {
                RequestEvent::from_name(name, vec!["ground".to_owned()])
                    .is_some_and(|e| mine(e.side()))
            })
            .collect()
    }
}

fn allowed_from(state: RequestState, suspended: bool) -> Vec<&'static str> {
    use RequestState as S;
    if suspended {
        return vec!["resume", "withdraw"];
    }
    let mut v: Vec<&'static str> = match state {
        S::Draft => vec!["submit", "withdraw"],
        S::Submitted => vec!["receive", "withdraw"],
        S::Received => vec!["start-review", "withdraw", "expire", "extend", "suspend"],
        S::UnderReview => vec![
            "approve",
            "approve-partially",
            "refuse",
            "withdraw",
            "expire",
            "extend",
            "suspend",
        ],
        S::Approved | S::PartiallyApproved => {
            vec!["start-execution", "withdraw", "expire", "extend", "suspend"]
        }
        S::Executing => vec!["answer", "withdraw", "expire", "extend", "suspend"],
        S::Answered => vec!["close", "extend"],
        S::Refused => vec!["close"],
        S::Closed | S::Withdrawn | S::Expired => vec![],
    };
    v.sort_unstable();
    v
}

/// The state an allowed event leads to (`None`: not allowed from `state`).
fn next_state(state: RequestState, event: &RequestEvent, suspended: bool) -> Option<RequestState> {
    use RequestEvent as E;
    use RequestState as S;
    if !allowed_from(state, suspended).contains(&event.name()) {
        return None;
    }
    Some(match event {
        E::Submit => S::Submitted,
        E::Receive => S::Received,
        E::StartReview => S::UnderReview,
        E::Approve => S::Approved,
        E::ApprovePartially { .. } => S::PartiallyApproved,
        E::Refuse { .. } => S::Refused,
        E::StartExecution => S::Executing,
        E::Answer => S::Answered,
        E::Close => S::Closed,
        E::Withdraw => S::Withdrawn,
        E::Expire => S::Expired,
        E::Extend | E::Suspend | E::Resume => state,
    })
}

// ---------------------------------------------------------------------------------------------
// Errors

/// Why a request could not be made or an event could not be applied. Nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The agreement is not in force on the day.
    #[error(
        "agreement `{agreement}` is not in force on {date} (in force from {from}{until}); no legal basis for a request"
    )]
    NotInForce {
        /// Agreement id.
        agreement: String,
        /// The day (UTC).
        date: Date,
        /// First day in force.
        from: Date,
        /// `" until …"` or empty.
        until: String,
    },
    /// The agreement is a template, never in force itself.
    #[error(
        "agreement `{agreement}` is a template, in force only once the parties conclude it (entente framework conclude); no legal basis for a request"
    )]
    Template {
        /// Agreement id.
        agreement: String,
    },
    /// The instrument is not in force for one of the parties on the day (a treaty it has
    /// signed but not ratified, or ratified later).
    #[error(
        "agreement `{agreement}` is not in force for both parties on {date}: not for {missing}; no legal basis for a request between them"
    )]
    NotInForceForParties {
        /// Agreement id.
        agreement: String,
        /// The day (UTC).
        date: Date,
        /// The parties it is not in force for, with what the agreement says of each.
        missing: String,
    },
    /// The parties are not both bound by the agreement (or are the same party).
    #[error(
        "agreement `{agreement}` does not bind both {from} and {to} (its parties: {parties}); no legal basis for a request between them"
    )]
    PartiesNotBound {
        /// Agreement id.
        agreement: String,
        /// Requesting party.
        from: PartyCode,
        /// Requested party.
        to: PartyCode,
        /// The agreement's parties.
        parties: String,
    },
    /// The agreement does not provide this kind of request.
    #[error("agreement `{agreement}` provides no `{kind}` request; it provides: {provided}")]
    KindNotProvided {
        /// Agreement id.
        agreement: String,
        /// The kind asked for.
        kind: RequestKind,
        /// The kinds it provides.
        provided: String,
    },
    /// The event was applied with an agreement other than the request's.
    #[error("request {id} is made under agreement `{expected}`, not `{given}`")]
    WrongAgreement {
        /// Request id.
        id: String,
        /// The request's agreement.
        expected: String,
        /// The agreement given.
        given: String,
    },
    /// No time zone is known for the requested party, or the database lacks it.
    #[error("no time zone for party {party}: {message}")]
    TimeZone {
        /// The party.
        party: PartyCode,
        /// What went wrong.
        message: String,
    },
    /// The event is not allowed from the current state.
    #[error("cannot {verb} a request that is {state}{suspended}; allowed from here: {allowed}")]
    IllegalTransition {
        /// The event as a verb.
        verb: &'static str,
        /// The current state.
        state: RequestState,
        /// `" (clocks stopped)"` or empty.
        suspended: &'static str,
        /// The allowed events, or `none (<state> is final)`.
        allowed: String,
    },
    /// A refusal (or partial approval) without grounds.
    #[error(
        "cannot {verb} without grounds: give at least one refusal ground of agreement `{agreement}`: {valid}"
    )]
    NoGrounds {
        /// The event as a verb.
        verb: &'static str,
        /// Agreement id.
        agreement: String,
        /// The valid ground ids.
        valid: String,
    },
    /// A ground that is not in the agreement's list.
    #[error("unknown refusal ground `{given}` for agreement `{agreement}`; valid grounds: {valid}")]
    UnknownGround {
        /// The id given.
        given: String,
        /// Agreement id.
        agreement: String,
        /// The valid ground ids.
        valid: String,
    },
    /// The agreement lists no ground on which a request of this kind may be refused.
    #[error(
        "cannot {verb}: agreement `{agreement}` lists no ground for refusing a request of kind `{kind}`"
    )]
    NoGroundForKind {
        /// The event as a verb.
        verb: &'static str,
        /// The request's kind.
        kind: RequestKind,
        /// Agreement id.
        agreement: String,
    },
    /// A ground of the agreement that may not be raised against this kind of request.
    #[error(
        "refusal ground `{given}` of agreement `{agreement}` applies to requests of kind {only}, not `{kind}`; valid grounds for `{kind}`: {valid}"
    )]
    GroundNotForKind {
        /// The id given.
        given: String,
        /// The request's kind.
        kind: RequestKind,
        /// Agreement id.
        agreement: String,
        /// The kinds the ground applies to.
        only: String,
        /// The valid ground ids for this kind.
        valid: String,
    },
    /// The extension is not possible.
    #[error("cannot extend: {0}")]
    Extension(String),
    /// `now` is before the last recorded event.
    #[error(
        "event at {at} is before the request's last event at {last}; events must not go back in time"
    )]
    TimeGoesBack {
        /// The instant given.
        at: Timestamp,
        /// The last recorded instant.
        last: Timestamp,
    },
    /// Date arithmetic overflowed or a duration could not be used.
    #[error("cannot compute the clock: {0}")]
    Arithmetic(String),
}

// ---------------------------------------------------------------------------------------------
// Time zones and arithmetic

/// The time zone used for a party's clocks: an IANA name and whether it only represents a
/// party spanning several zones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartyZone {
    /// IANA time-zone name.
    pub iana: &'static str,
    /// True when the party spans several zones and this one is a representative choice.
    pub representative: bool,
}

/// The capital's time zone of `party`, for the parties of the shipped agreements and a few
/// more. A documented default: the research notes do not say which time zone the law
/// designates. `None` for a party not in the table (and for `EU`).
pub fn party_time_zone(party: &PartyCode) -> Option<PartyZone> {
    let (iana, representative) = match party.as_str() {
        "NL" => ("Europe/Amsterdam", false),
        "DE" => ("Europe/Berlin", false),
        "FR" => ("Europe/Paris", false),
        "BE" => ("Europe/Brussels", false),
        "GB" => ("Europe/London", false),
        "IE" => ("Europe/Dublin", false),
        "IT" => ("Europe/Rome", false),
        "ES" => ("Europe/Madrid", true),
        "JP" => ("Asia/Tokyo", false),
        "US" => ("America/New_York", true),
        "CA" => ("America/Toronto", true),
        "AU" => ("Australia/Sydney", true),
        _ => return None,
    };
    Some(PartyZone { iana, representative })
}

/// How a clock's duration is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arithmetic {
    /// Elapsed time (hours, minutes, seconds), added to the instant.
    Elapsed,
    /// Calendar units (days, weeks, months, years) in the time zone, keeping the local time.
    Calendar,
    /// Working days (Monday to Friday, no holiday calendar) in the time zone.
    WorkingDays,
}

impl Arithmetic {
    /// The arithmetic in words.
    pub fn describe(self) -> &'static str {
        match self {
            Arithmetic::Elapsed => "elapsed time",
            Arithmetic::Calendar => "calendar days in the time zone",
            Arithmetic::WorkingDays => "working days Mon-Fri, no holiday calendar",
        }
    }

    /// The arithmetic a duration implies: elapsed time when it has only time units, calendar
    /// otherwise. (Working days are never implied: a rule would have to say so.)
    pub fn of(span: &Span) -> Arithmetic {
        let calendar = span.get_years() != 0
            || span.get_months() != 0
            || span.get_weeks() != 0
            || span.get_days() != 0;
        if calendar { Arithmetic::Calendar } else { Arithmetic::Elapsed }
    }
}

/// `start` plus `span`: elapsed time when `span` has only time units, calendar arithmetic in
/// `tz` otherwise (jiff's zoned arithmetic: calendar units on the local date and time, then
/// any time units as elapsed time).
pub fn add_duration(
    start: Timestamp,
    span: Span,
    tz: &TimeZone,
) -> Result<Timestamp, RequestError> {
    match Arithmetic::of(&span) {
        Arithmetic::Elapsed => {
            let d = SignedDuration::try_from(span)
                .map_err(|e| RequestError::Arithmetic(e.to_string()))?;
            start.checked_add(d).map_err(|e| RequestError::Arithmetic(e.to_string()))
        }
        _ => start
            .to_zoned(tz.clone())
            .checked_add(span)
            .map(|z| z.timestamp())
            .map_err(|e| RequestError::Arithmetic(e.to_string())),
    }
}

/// `start` plus `n` working days in `tz`: the local date of `start`, moved forward until `n`
/// Mondays-to-Fridays have passed (the start day itself does not count), at the same local
/// time of day (a local time that does not exist that day is resolved forward, jiff's
/// "compatible" rule). No holiday calendar: public holidays count as working days.
pub fn add_working_days(
    start: Timestamp,
    n: u32,
    tz: &TimeZone,
) -> Result<Timestamp, RequestError> {
    let local = start.to_zoned(tz.clone());
    let mut date = local.date();
    let mut left = n;
    while left > 0 {
        date = date.tomorrow().map_err(|e| RequestError::Arithmetic(e.to_string()))?;
        if !matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday) {
            left -= 1;
        }
    }
    date.to_datetime(local.time())
        .to_zoned(tz.clone())
        .map(|z| z.timestamp())
        .map_err(|e| RequestError::Arithmetic(e.to_string()))
}

/// A signed duration in words: `9d 22h 0m`, `-1h 5m`.
pub fn format_duration(d: SignedDuration) -> String {
    let sign = if d.is_negative() { "-" } else { "" };
    let secs = d.as_secs().unsigned_abs();
    let (days, hours, minutes) = (secs / 86_400, (secs % 86_400) / 3_600, (secs % 3_600) / 60);
    if days > 0 {
        format!("{sign}{days}d {hours}h {minutes}m")
    } else {
        format!("{sign}{hours}h {minutes}m")
    }
}

// ---------------------------------------------------------------------------------------------
// Clocks

/// What a clock measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockKind {
    /// Time to answer (`deadline`).
    Deadline,
    /// Time to answer in an emergency (`emergency_deadline`).
    EmergencyDeadline,
    /// How long the measure lasts (`period`, extendable by `extension`).
    Period,
}

impl ClockKind {
    /// The clock's name.
    pub fn name(self) -> &'static str {
        match self {
            ClockKind::Deadline => "deadline",
            ClockKind::EmergencyDeadline => "emergency deadline",
            ClockKind::Period => "period",
        }
    }
}

/// A clock's status at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockStatus {
    /// Counting.
    Running,
    /// A deadline answered on time; or a period that has run its course (the measure ended).
    Met,
    /// A deadline passed without an answer, or answered late.
    Missed,
    /// Stopped: suspended (waiting for the requesting party), or the request ended
    /// (withdrawn, expired, closed) before the clock ran out.
    Stopped,
}

impl fmt::Display for ClockStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClockStatus::Running => "running",
            ClockStatus::Met => "met",
            ClockStatus::Missed => "missed",
            ClockStatus::Stopped => "stopped",
        })
    }
}

/// A legal clock of a request.
#[derive(Clone, Debug, PartialEq)]
pub struct Clock {
    /// What it measures.
    pub kind: ClockKind,
    /// The rule's citation and verification status (a `U` clock is unverified).
    pub basis: Citation,
    /// The duration as written (`PT8H`, `P10D`, `P60D`).
    pub duration: IsoDuration,
    /// How it is counted.
    pub arithmetic: Arithmetic,
    /// The event that started it (`receive`).
    pub start_event: &'static str,
    /// When it started.
    pub started_at: Timestamp,
    /// The IANA time zone used for calendar arithmetic and local display.
    pub time_zone: TimeZone,
    /// Name of `time_zone`.
    pub time_zone_name: &'static str,
    /// Why this time zone (the place where the act is to be done, or a documented default).
    pub time_zone_note: String,
    /// The rule that produced `base_due`, step by step (article, roll-over, holiday).
    pub rule: String,
    /// False when a day that decided the end was not known (outside a holiday calendar's
    /// years, no calendar): `base_due` is then the earliest possible end.
    pub definite: bool,
    /// The extension applied, if any.
    pub extension: Option<IsoDuration>,
    /// Due instant before any suspension (start + duration [+ extension]).
    pub base_due: Timestamp,
    /// Due instant: `base_due` pushed by the time spent stopped (completed suspensions).
    pub due: Timestamp,
    /// Total time spent stopped, completed suspensions only.
    pub paused: SignedDuration,
    /// Since when it is stopped, if suspended now.
    pub paused_since: Option<Timestamp>,
    /// When a deadline was answered (answer or refusal).
    pub answered_at: Option<Timestamp>,
    /// When the request ended (withdrawn, expired, closed) with the clock still counting.
    pub ended_at: Option<Timestamp>,
}

impl Clock {
    /// Whether the clock rests on an unverified (`U`) citation.
    pub fn unverified(&self) -> bool {
        self.basis.status == VerificationStatus::U
    }

    /// Status at `now`.
    pub fn status(&self, now: Timestamp) -> ClockStatus {
        if let Some(t) = self.answered_at {
            return if t <= self.due { ClockStatus::Met } else { ClockStatus::Missed };
        }
        let cut = self.paused_since.or(self.ended_at);
        match self.kind {
            ClockKind::Period => {
                let at = cut.map_or(now, |c| c.min(now));
                if at >= self.due {
                    ClockStatus::Met
                } else if cut.is_some() {
                    ClockStatus::Stopped
                } else {
                    ClockStatus::Running
                }
            }
            ClockKind::Deadline | ClockKind::EmergencyDeadline => {
                let at = cut.map_or(now, |c| c.min(now));
                if at > self.due {
                    ClockStatus::Missed
                } else if cut.is_some() {
                    ClockStatus::Stopped
                } else {
                    ClockStatus::Running
                }
            }
        }
    }

    /// Time left at `now` (negative when overdue). A stopped or finished clock's remaining
    /// time is frozen at the instant it stopped or finished.
    pub fn remaining(&self, now: Timestamp) -> SignedDuration {
        let at =
            self.answered_at.or(self.paused_since).or(self.ended_at).map_or(now, |t| t.min(now));
        self.due.duration_since(at)
    }

    /// The due instant in the clock's time zone.
    pub fn due_local(&self) -> jiff::Zoned {
        self.due.to_zoned(self.time_zone.clone())
    }

    /// One line per fact: start, due (UTC and local), remaining, status, basis.
    pub fn render(&self, now: Timestamp) -> String {
        let verified = if self.unverified() {
            " UNVERIFIED (basis status U: not for automated decisions)".to_owned()
        } else {
            format!(" ({})", self.basis.status.as_str())
        };
        let ext =
            self.extension.as_ref().map(|e| format!(" + extension {}", e.text)).unwrap_or_default();
        let paused = if self.paused.is_zero() {
            String::new()
        } else {
            format!(", pushed by {} stopped", format_duration(self.paused))
        };
        format!(
            "{name} {dur}{ext} ({arith}){verified}\n  basis: {basis}\n  rule: {rule}\n  start: {start_event} at {start}\n  due: {due} UTC = {local} ({tz}: {note}){paused}{indefinite}\n  remaining: {remaining}\n  status: {status}",
            name = self.kind.name(),
            dur = self.duration.text,
            arith = self.arithmetic.describe(),
            basis = self.basis.citation,
            start_event = self.start_event,
            start = self.started_at,
            due = self.due,
            local = self.due_local().strftime("%Y-%m-%d %H:%M:%S %Z (%:z)"),
            tz = self.time_zone_name,
            note = self.time_zone_note,
            rule = self.rule,
            indefinite = if self.definite {
                ""
            } else {
                " NOT DEFINITE: the earliest possible end; it may be later"
            },
            remaining = format_duration(self.remaining(now)),
            status = self.status(now),
        )
    }

    fn new(
        kind: ClockKind,
        duration: &IsoDuration,
        basis: &Citation,
        started_at: Timestamp,
        zone: &ZoneInfo,
        counting: Counting,
    ) -> Result<Clock, RequestError> {
        let counted = count(counting, started_at, &duration.span, zone)?;
        Ok(Clock {
            kind,
            basis: basis.clone(),
            duration: duration.clone(),
            arithmetic: counted.arithmetic,
            start_event: "receive",
            started_at,
            time_zone: zone.tz.clone(),
            time_zone_name: zone.name,
            time_zone_note: counted.zone_note.unwrap_or_else(|| zone.note.clone()),
            rule: counted.rule,
            definite: counted.definite,
            extension: None,
            base_due: counted.due,
            due: counted.due,
            paused: SignedDuration::ZERO,
            paused_since: None,
            answered_at: None,
            ended_at: None,
        })
    }

    fn counting(&self) -> bool {
        self.answered_at.is_none() && self.ended_at.is_none() && self.paused_since.is_none()
    }
}

/// The resolved time zone of a requested party.
#[derive(Clone, Debug, PartialEq)]
struct ZoneInfo {
    party: PartyCode,
    name: &'static str,
    tz: TimeZone,
    note: String,
}

fn zone_of(party: &PartyCode) -> Result<ZoneInfo, RequestError> {
    let pz = party_time_zone(party).ok_or_else(|| RequestError::TimeZone {
        party: party.clone(),
        message: "the party is not in the time-zone table (request::party_time_zone)".to_owned(),
    })?;
    let tz = TimeZone::get(pz.iana).map_err(|e| RequestError::TimeZone {
        party: party.clone(),
        message: format!("{}: {e}", pz.iana),
    })?;
    let mut note = format!(
        "capital of the requested party {party}; the law's designation is not in the research notes, a documented default"
    );
    if pz.representative {
        note.push_str("; representative zone of a party with several");
    }
    Ok(ZoneInfo { party: party.clone(), name: pz.iana, tz, note })
}

/// How a request's clocks are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counting {
    /// An EU act: Regulation (EEC, Euratom) No 1182/71, with the requested party's public
    /// holidays (`crate::period`).
    Eu1182,
    /// The instrument states no counting rule in Entente's data: plain arithmetic
    /// ([`add_duration`]), no roll-over.
    Plain,
}

impl Counting {
    /// The counting of an agreement's clocks: 1182/71 for an EU regulation.
    pub fn of(agreement: &Agreement) -> Counting {
        if agreement.kind == crate::agreement::AgreementKind::Regulation {
            Counting::Eu1182
        } else {
            Counting::Plain
        }
    }
}

struct Counted {
    due: Timestamp,
    arithmetic: Arithmetic,
    rule: String,
    zone_note: Option<String>,
    definite: bool,
}

/// The shipped holiday calendars, parsed once. Should they not parse (a test guards them),
/// no calendar is known and every period is reported as not definite.
fn calendars() -> &'static crate::period::calendar::Calendars {
    static CALENDARS: std::sync::OnceLock<crate::period::calendar::Calendars> =
        std::sync::OnceLock::new();
    CALENDARS.get_or_init(|| crate::period::calendar::Calendars::builtin().unwrap_or_default())
}

fn count(
    counting: Counting,
    from: Timestamp,
    span: &Span,
    zone: &ZoneInfo,
) -> Result<Counted, RequestError> {
    use crate::period::{Length, Place, Rule, compute};
    let length = Length::of_span(span);
    match (counting, length) {
        (Counting::Eu1182, Some(length)) => {
            let end = compute(
                calendars(),
                from,
                length,
                &Rule::Eu1182,
                Place { party: zone.party.as_str(), region: None },
            )
            .map_err(|e| RequestError::Arithmetic(e.to_string()))?;
            Ok(Counted {
                due: end.end,
                arithmetic: Arithmetic::of(span),
                rule: end.summary(),
                zone_note: Some(end.zone_note.clone()),
                definite: end.is_definite(),
            })
        }
        _ => {
            let arithmetic = Arithmetic::of(span);
            let rule = match counting {
                Counting::Plain => format!(
                    "the instrument states no counting rule in Entente's data: {}, not extended for weekends or holidays (a default of this node)",
                    arithmetic.describe()
                ),
                Counting::Eu1182 => format!(
                    "Regulation (EEC, Euratom) No 1182/71 cannot count a duration of mixed units: {}, not extended",
                    arithmetic.describe()
                ),
            };
            Ok(Counted {
                due: add_duration(from, *span, &zone.tz)?,
                arithmetic,
                rule,
                zone_note: None,
                definite: true,
            })
        }
    }
}

/// The end of a clock of `span` under `agreement` started at `from` for requested party `to`,
/// counted as the request clocks count it: the end, the rule that produced it, and whether
/// it is definite.
///
/// # Errors
/// No time zone for `to`, or arithmetic overflow.
pub fn clock_end(
    agreement: &Agreement,
    span: &Span,
    from: Timestamp,
    to: &PartyCode,
) -> Result<(Timestamp, String, bool), RequestError> {
    let zone = zone_of(to)?;
    let c = count(Counting::of(agreement), from, span, &zone)?;
    Ok((c.due, c.rule, c.definite))
}

// ---------------------------------------------------------------------------------------------
// Requests

/// A cross-border request.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Identifier (derived from the request's content and creation instant; the gate may
    /// replace it with its own).
    pub id: String,
    /// Kind.
    pub kind: RequestKind,
    /// The agreement it is made under.
    pub agreement: String,
    /// The rule of that agreement for `kind`.
    pub rule: RequestRule,
    /// Requesting party.
    pub from: PartyCode,
    /// Requested party.
    pub to: PartyCode,
    /// Whether it is an emergency request.
    pub emergency: bool,
    /// When it was drafted.
    pub created_at: Timestamp,
    /// Current state.
    pub state: RequestState,
    /// Refusal-ground ids of a refusal or partial approval.
    pub grounds: Vec<String>,
    /// Whether the period was extended.
    pub extended: bool,
    /// Since when the clocks are stopped, if they are.
    pub suspended_since: Option<Timestamp>,
    /// Every applied event with its instant, in order.
    pub history: Vec<(RequestEvent, Timestamp)>,
    /// The legal clocks (started on receipt).
    pub clocks: Vec<Clock>,
    /// How the clocks are counted (1182/71 for an EU regulation).
    pub counting: Counting,
    zone: ZoneInfo,
}

fn join<T: fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().map(|x| x.to_string()).collect();
    if v.is_empty() { "none".to_owned() } else { v.join(", ") }
}

impl Request {
    /// Drafts a request of `kind` from `from` to `to` under `agreement` at `now`. Refused when
    /// the agreement is not in force on `now`'s UTC day, does not bind both parties, or does not
    /// provide `kind`, or when no time zone is known for `to`.
    pub fn new(
        kind: RequestKind,
        agreement: &Agreement,
        from: PartyCode,
        to: PartyCode,
        emergency: bool,
        now: Timestamp,
    ) -> Result<Request, RequestError> {
        let date = now.to_zoned(TimeZone::UTC).date();
        if agreement.template {
            return Err(RequestError::Template { agreement: agreement.id.clone() });
        }
        if !agreement.in_force_on(date) {
            return Err(RequestError::NotInForce {
                agreement: agreement.id.clone(),
                date,
                from: agreement.in_force_from,
                until: agreement.in_force_until.map(|u| format!(" until {u}")).unwrap_or_default(),
            });
        }
        if !agreement.binds(&from, &to) {
            return Err(RequestError::PartiesNotBound {
                agreement: agreement.id.clone(),
                from,
                to,
                parties: join(&agreement.parties),
            });
        }
        if !agreement.in_force_between(&from, &to, date) {
            return Err(RequestError::NotInForceForParties {
                agreement: agreement.id.clone(),
                date,
                missing: agreement.not_in_force_for([&from, &to], date).join(", "),
            });
        }
        let Some(rule) = agreement.requests.iter().find(|r| r.kind == kind) else {
            return Err(RequestError::KindNotProvided {
                agreement: agreement.id.clone(),
                kind,
                provided: join(agreement.requests.iter().map(|r| r.kind)),
            });
        };
        let zone = zone_of(&to)?;
        let mut h = Sha256::new();
        for part in [agreement.id.as_str(), kind.as_str(), from.as_str(), to.as_str()] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        h.update([u8::from(emergency)]);
        h.update(now.as_nanosecond().to_be_bytes());
        let id = format!("req-{}", &hex::encode(h.finalize())[..16]);
        Ok(Request {
            id,
            kind,
            agreement: agreement.id.clone(),
            rule: rule.clone(),
            from,
            to,
            emergency,
            created_at: now,
            state: RequestState::Draft,
            grounds: Vec::new(),
            extended: false,
            suspended_since: None,
            history: Vec::new(),
            clocks: Vec::new(),
            counting: Counting::of(agreement),
            zone,
        })
    }

    /// The IANA time zone used for the request's clocks.
    pub fn time_zone_name(&self) -> &'static str {
        self.zone.name
    }

    /// Applies `event` at `now`. All-or-nothing: on error the request is unchanged.
    pub fn apply(
        &mut self,
        event: RequestEvent,
        now: Timestamp,
        agreement: &Agreement,
    ) -> Result<(), RequestError> {
        let mut next = self.clone();
        next.step(event, now, agreement)?;
        *self = next;
        Ok(())
    }

    fn step(
        &mut self,
        event: RequestEvent,
        now: Timestamp,
        agreement: &Agreement,
    ) -> Result<(), RequestError> {
        if agreement.id != self.agreement {
            return Err(RequestError::WrongAgreement {
                id: self.id.clone(),
                expected: self.agreement.clone(),
                given: agreement.id.clone(),
            });
        }
        let last = self.history.last().map_or(self.created_at, |(_, t)| *t);
        if now < last {
            return Err(RequestError::TimeGoesBack { at: now, last });
        }
        let suspended = self.suspended_since.is_some();
        let Some(state) = next_state(self.state, &event, suspended) else {
            let allowed = if self.state.is_final() {
                format!("none ({} is final)", self.state)
            } else {
                join(allowed_from(self.state, suspended))
            };
            return Err(RequestError::IllegalTransition {
                verb: event.verb(),
                state: self.state,
                suspended: if suspended { " (clocks stopped)" } else { "" },
                allowed,
            });
        };
        match &event {
            RequestEvent::Receive => self.start_clocks(now)?,
            RequestEvent::Refuse { grounds } | RequestEvent::ApprovePartially { grounds } => {
                check_grounds(event.verb(), self.kind, grounds, agreement)?;
                self.grounds = grounds.clone();
            }
            RequestEvent::Extend => self.extend(now)?,
            RequestEvent::Suspend => {
                self.suspended_since = Some(now);
                for c in self.clocks.iter_mut().filter(|c| c.counting()) {
                    c.paused_since = Some(now);
                }
            }
            RequestEvent::Resume => {
                self.suspended_since = None;
                for c in &mut self.clocks {
                    if let Some(since) = c.paused_since.take() {
                        let p = now.duration_since(since);
                        c.paused = c
                            .paused
                            .checked_add(p)
                            .ok_or_else(|| RequestError::Arithmetic("pause too long".to_owned()))?;
                        c.due = c
                            .due
                            .checked_add(p)
                            .map_err(|e| RequestError::Arithmetic(e.to_string()))?;
                    }
                }
            }
            _ => {}
        }
        // A decision or an answer stops the answer clocks; the end of the request stops all.
        for c in &mut self.clocks {
            let deadline = c.kind != ClockKind::Period;
            match &event {
                RequestEvent::Answer | RequestEvent::Refuse { .. } if deadline && c.counting() => {
                    c.answered_at = Some(now);
                }
                RequestEvent::Close | RequestEvent::Withdraw | RequestEvent::Expire
                    if c.answered_at.is_none() && c.ended_at.is_none() =>
                {
                    c.ended_at = Some(c.paused_since.unwrap_or(now));
                }
                _ => {}
            }
        }
        if state.is_final() {
            self.suspended_since = None;
        }
        self.state = state;
        self.history.push((event, now));
        Ok(())
    }

    fn start_clocks(&mut self, now: Timestamp) -> Result<(), RequestError> {
        let r = &self.rule;
        let answer = match (&r.emergency_deadline, &r.deadline) {
            (Some(e), _) if self.emergency => Some((ClockKind::EmergencyDeadline, e)),
            (_, Some(d)) => Some((ClockKind::Deadline, d)),
            _ => None,
        };
        let mut clocks = Vec::new();
        if let Some((kind, d)) = answer {
            clocks.push(Clock::new(kind, d, &r.basis, now, &self.zone, self.counting)?);
        }
        if let Some(p) = &r.period {
            clocks.push(Clock::new(
                ClockKind::Period,
                p,
                &r.basis,
                now,
                &self.zone,
                self.counting,
            )?);
        }
        self.clocks = clocks;
        Ok(())
    }

    fn extend(&mut self, now: Timestamp) -> Result<(), RequestError> {
        let Some(ext) = self.rule.extension.clone() else {
            return Err(RequestError::Extension(format!(
                "the `{}` rule of agreement `{}` allows no extension",
                self.kind, self.agreement
            )));
        };
        if self.extended {
            return Err(RequestError::Extension(format!(
                "the period was already extended by {} (one extension allowed)",
                ext.text
            )));
        }
        let Some(c) = self.clocks.iter_mut().find(|c| c.kind == ClockKind::Period) else {
            return Err(RequestError::Extension("no period is running".to_owned()));
        };
        if now > c.due || !c.counting() {
            return Err(RequestError::Extension(format!(
                "the extension must be made during the period, which ended or stopped (due {})",
                c.due
            )));
        }
        // The extension runs on from the end of the period: under 1182/71 the period's last
        // day is the day of the "event" (not counted), so the extension's days follow it.
        let last_instant = c
            .base_due
            .checked_sub(SignedDuration::from_nanos(1))
            .map_err(|e| RequestError::Arithmetic(e.to_string()))?;
        let (from, zone) =
            (if self.counting == Counting::Eu1182 { last_instant } else { c.base_due }, &self.zone);
        let counted = count(self.counting, from, &ext.span, zone)?;
        let end = counted.due.max(c.base_due);
        let added = end.duration_since(c.base_due);
        c.base_due = end;
        c.rule = format!("{}; extension {}: {}", c.rule, ext.text, counted.rule);
        c.definite = c.definite && counted.definite;
        c.due = c.due.checked_add(added).map_err(|e| RequestError::Arithmetic(e.to_string()))?;
        c.extension = Some(ext);
        self.extended = true;
        Ok(())
    }

    /// Every clock rendered at `now` (or a line saying there is none yet / at all).
    pub fn show(&self, now: Timestamp) -> String {
        let mut out = format!(
            "request {id}: {kind} from {from} to {to}{em} under {agr}\nstate: {state}{susp}{grounds}\n",
            id = self.id,
            kind = self.kind,
            from = self.from,
            to = self.to,
            em = if self.emergency { " (emergency)" } else { "" },
            agr = self.agreement,
            state = self.state,
            susp = if self.suspended_since.is_some() { " (clocks stopped)" } else { "" },
            grounds = if self.grounds.is_empty() {
                String::new()
            } else {
                format!(" (grounds: {})", self.grounds.join(", "))
            },
        );
        if self.clocks.is_empty() {
            let has_any = self.rule.deadline.is_some()
                || self.rule.period.is_some()
                || (self.emergency && self.rule.emergency_deadline.is_some());
            out.push_str(if has_any {
                "clocks: not started (they start on receipt)\n"
            } else {
                "clocks: none (the legal basis sets no time limit)\n"
            });
        }
        for c in &self.clocks {
            out.push_str(&c.render(now));
            out.push('\n');
        }
        out
    }

    /// Checks the invariants every reachable request satisfies; the error names the broken
    /// one. (Used by tests; cheap enough for the gate to assert before storing.)
    pub fn check_invariants(&self) -> Result<(), String> {
        if matches!(self.state, RequestState::Refused | RequestState::PartiallyApproved)
            && self.grounds.is_empty()
        {
            return Err(format!("{} without grounds", self.state));
        }
        if self.suspended_since.is_some() && !self.state.with_requested_party() {
            return Err(format!("clocks stopped in state {}", self.state));
        }
        let received = self.history.iter().any(|(e, _)| *e == RequestEvent::Receive);
        let before_receipt = matches!(self.state, RequestState::Draft | RequestState::Submitted);
        let either = matches!(self.state, RequestState::Withdrawn);
        if !either && received == before_receipt {
            return Err(format!("state {} inconsistent with receipt", self.state));
        }
        if self.history.windows(2).any(|w| w[1].1 < w[0].1) {
            return Err("history goes back in time".to_owned());
        }
        let extensions = self.history.iter().filter(|(e, _)| *e == RequestEvent::Extend).count();
        if extensions > 1 || (extensions == 1) != self.extended {
            return Err(format!("{extensions} extensions recorded"));
        }
        Ok(())
    }
}

fn check_grounds(
    verb: &'static str,
    kind: RequestKind,
    grounds: &[String],
    agreement: &Agreement,
) -> Result<(), RequestError> {
    let open = || agreement.refusal_grounds.iter().filter(|g| g.applies_to(kind));
    let valid = join(open().map(|g| g.id.as_str()));
    if open().next().is_none() {
        return Err(RequestError::NoGroundForKind { verb, kind, agreement: agreement.id.clone() });
    }
    if grounds.is_empty() {
        return Err(RequestError::NoGrounds { verb, agreement: agreement.id.clone(), valid });
    }
    for g in grounds {
        let Some(ground) = agreement.refusal_grounds.iter().find(|x| &x.id == g) else {
            return Err(RequestError::UnknownGround {
                given: g.clone(),
                agreement: agreement.id.clone(),
                valid,
            });
        };
        if !ground.applies_to(kind) {
            return Err(RequestError::GroundNotForKind {
                given: g.clone(),
                kind,
                agreement: agreement.id.clone(),
                only: join(ground.kinds.iter()),
                valid,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
