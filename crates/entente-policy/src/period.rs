//! Legal periods counted as the law counts them.
//!
//! [`compute`] takes the instant of the event, a [`Length`] (hours, days, weeks, months,
//! business days), the counting [`Rule`] and the [`Place`] (party, optionally a region such
//! as a German Land) and returns a [`PeriodEnd`]: the end instant and the explanation of
//! every step (which article, which roll-over, which holiday moved it).
//!
//! Rules:
//! - [`Rule::Eu1182`], Regulation (EEC, Euratom) No 1182/71 for EU acts: the hour or day of
//!   the event is not counted (Art 3(1)); a period in days ends with the last hour of its last
//!   day (Art 3(2)(b)), in weeks or months on the same weekday or date (Art 3(2)(c)); it
//!   includes holidays and weekends (Art 3(3)); a last day that is a Saturday, Sunday or public
//!   holiday moves to the end of the next working day (Art 3(4)); a period of two days or more
//!   holds at least two working days (Art 3(5)); hour periods are not extended. Public
//!   holidays are those of the Member State where the act is to be done (Art 2(1)).
//! - [`Rule::SecBusinessDays`], SEC Form 8-K General Instruction B.1: business days after the
//!   event; an event on a Saturday, Sunday or federal holiday starts the count on (and
//!   including) the next business day.
//! - [`Rule::Elapsed`]: elapsed hours (calendar months in the place's time zone), never
//!   extended (NIS2 Art 23(4) and the other incident regimes).
//! - [`Rule::DoraArt5`]: elapsed hours, with the relief of Delegated Regulation (EU) 2025/301
//!   Art 5(4)–(5) (a deadline on a weekend or holiday moves to 12:00 of the next working day)
//!   for the entities it applies to. Status U: the article text was not read.
//!
//! Holidays come from [`calendar::Calendars`]. A day the calendar cannot answer (outside its
//! years, no calendar for the party, a holiday of only some regions and no region given) is
//! never taken as a working day: the result is then not definite ([`PeriodEnd::unknown`]),
//! and its `end` is only the earliest the period could end.
//!
//! Time zone: the place's calendar names its zone (the local day of the Member State or of
//! the Commission). A party without a calendar falls back to
//! [`crate::request::party_time_zone`] (its capital), a default of this node that every
//! explanation states.
//!
//! Pure: no clock, no I/O beyond the time-zone database.

pub mod calendar;

use calendar::{Calendars, DayKind};
use entente_core::lexicon::VerificationStatus;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};
use std::fmt;

/// How long a period is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Length {
    /// Hours.
    Hours(u32),
    /// Calendar days.
    Days(u32),
    /// Weeks.
    Weeks(u32),
    /// Months.
    Months(u32),
    /// Business days (SEC).
    BusinessDays(u32),
}

impl fmt::Display for Length {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n, unit) = match *self {
            Length::Hours(n) => (n, "hour"),
            Length::Days(n) => (n, "day"),
            Length::Weeks(n) => (n, "week"),
            Length::Months(n) => (n, "month"),
            Length::BusinessDays(n) => (n, "business day"),
        };
        write!(f, "{n} {unit}{}", if n == 1 { "" } else { "s" })
    }
}

impl Length {
    /// The length of an ISO 8601 duration with one unit (`PT8H`, `P10D`, `P2W`, `P1M`), if it
    /// has exactly one non-zero unit among hours, days, weeks and months.
    pub fn of_span(span: &Span) -> Option<Length> {
        let parts = [
            (i64::from(span.get_hours()), 'h'),
            (i64::from(span.get_days()), 'd'),
            (i64::from(span.get_weeks()), 'w'),
            (i64::from(span.get_months()), 'm'),
        ];
        let others = span.get_years() != 0
            || span.get_minutes() != 0
            || span.get_seconds() != 0
            || span.get_milliseconds() != 0
            || span.get_microseconds() != 0
            || span.get_nanoseconds() != 0;
        let mut nonzero = parts.iter().filter(|(v, _)| *v != 0);
        let (v, unit) = nonzero.next()?;
        if nonzero.next().is_some() || others {
            return None;
        }
        let n = u32::try_from(*v).ok()?;
        Some(match unit {
            'h' => Length::Hours(n),
            'd' => Length::Days(n),
            'w' => Length::Weeks(n),
            _ => Length::Months(n),
        })
    }
}

/// Whether the DORA weekend/holiday relief applies to the entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relief {
    /// The entity is one the relief applies to.
    Applies,
    /// The entity is excluded (credit institutions, central counterparties, trading venues,
    /// entities designated under NIS2, … — the exact list was not read).
    Excluded,
    /// Not known: the relief is not applied (the earlier deadline), and the output says so.
    NotKnown,
}

/// The counting rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Regulation (EEC, Euratom) No 1182/71.
    Eu1182,
    /// SEC Form 8-K General Instruction B.1 (business days, federal holidays).
    SecBusinessDays,
    /// Elapsed time, never extended; `basis` names the provision (e.g. NIS2 Art 23(4)).
    Elapsed {
        /// The provision the period comes from.
        basis: String,
    },
    /// Delegated Regulation (EU) 2025/301 Art 5, with the relief of Art 5(4)–(5).
    DoraArt5 {
        /// Whether the relief applies to the entity.
        relief: Relief,
    },
}

impl Rule {
    /// The rule in a few words.
    pub fn name(&self) -> String {
        match self {
            Rule::Eu1182 => "Regulation (EEC, Euratom) No 1182/71".to_owned(),
            Rule::SecBusinessDays => "SEC Form 8-K General Instruction B.1".to_owned(),
            Rule::Elapsed { basis } => format!("{basis}: elapsed time, not extended"),
            Rule::DoraArt5 { .. } => "Delegated Regulation (EU) 2025/301 Art 5".to_owned(),
        }
    }

    /// How far the counting rule itself was verified.
    pub fn status(&self) -> VerificationStatus {
        match self {
            // Art 3(4) read as quoted in a later EU act, Art 3(1) on hours in the Italian text;
            // the English text was not read whole.
            Rule::Eu1182 => VerificationStatus::V2,
            // The instruction's text read in a copy of the form.
            Rule::SecBusinessDays => VerificationStatus::V1,
            Rule::Elapsed { .. } => VerificationStatus::V2,
            Rule::DoraArt5 { .. } => VerificationStatus::U,
        }
    }
}

/// Where the act is to be done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place<'a> {
    /// The party (`NL`, `DE`, `US`).
    pub party: &'a str,
    /// A region of the party (a German Land: `HE`, `NW`, `BY`), if known.
    pub region: Option<&'a str>,
}

/// The end of a period and how it was found.
#[derive(Clone, Debug, PartialEq)]
pub struct PeriodEnd {
    /// The end: the last instant of the period (exclusive: the period has run out at `end`).
    /// When not definite, the earliest the period could end.
    pub end: Timestamp,
    /// The naive end: the event plus the length in the place's calendar, no rule applied.
    pub naive: Timestamp,
    /// The rule applied.
    pub rule: Rule,
    /// Each step, in words, with its article.
    pub steps: Vec<String>,
    /// Why the end is not definite (empty when it is).
    pub unknown: Vec<String>,
    /// The IANA zone the days were counted in.
    pub zone_name: String,
    /// Why that zone.
    pub zone_note: String,
    /// The zone itself.
    pub zone: TimeZone,
    /// The verification status of the rule and of the holidays that moved the end (the
    /// weakest).
    pub status: VerificationStatus,
}

impl PeriodEnd {
    /// Whether the end is definite (every day that mattered was known).
    pub fn is_definite(&self) -> bool {
        self.unknown.is_empty()
    }

    /// The end in the place's time zone.
    pub fn end_local(&self) -> jiff::Zoned {
        self.end.to_zoned(self.zone.clone())
    }

    /// One line: the rule and the steps (what a clock prints as its rule).
    pub fn summary(&self) -> String {
        let mut s = format!("{} ({})", self.rule.name(), self.status.as_str());
        for step in &self.steps {
            s.push_str("; ");
            s.push_str(step);
        }
        if !self.unknown.is_empty() {
            s.push_str("; NOT DEFINITE: ");
            s.push_str(&self.unknown.join("; "));
            s.push_str(" — the end shown is the earliest possible, it may be later");
        }
        s
    }
}

impl fmt::Display for PeriodEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "rule: {} ({})", self.rule.name(), self.status.meaning())?;
        for s in &self.steps {
            writeln!(f, "  - {s}")?;
        }
        writeln!(f, "time zone: {} ({})", self.zone_name, self.zone_note)?;
        let local = self.end_local().strftime("%Y-%m-%d %H:%M:%S %Z");
        if self.is_definite() {
            write!(f, "ends: {} UTC = {local}", self.end)
        } else {
            write!(
                f,
                "ends: NOT DEFINITE, at the earliest {} UTC = {local}: {}",
                self.end,
                self.unknown.join("; ")
            )
        }
    }
}

/// Why a period could not be computed at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    /// The rule does not count this kind of length.
    #[error("{rule} does not count a period of {length}")]
    Unsupported {
        /// The rule.
        rule: String,
        /// The length.
        length: Length,
    },
    /// No time zone for the place.
    #[error("no time zone for {0}: it has no holiday calendar and is not in the time-zone table")]
    NoZone(String),
    /// The region is not one of the party's calendar.
    #[error("unknown region `{region}` of {party}; known: {known}")]
    UnknownRegion {
        /// The party.
        party: String,
        /// The region given.
        region: String,
        /// The regions the calendar knows.
        known: String,
    },
    /// Date arithmetic overflowed.
    #[error("cannot compute the period: {0}")]
    Arithmetic(String),
}

fn arith<E: fmt::Display>(e: E) -> PeriodError {
    PeriodError::Arithmetic(e.to_string())
}

/// How many days a roll-over may look ahead before giving up (no calendar has this many
/// consecutive non-working days).
const MAX_ROLL: usize = 31;

struct Ctx<'a> {
    cals: &'a Calendars,
    place: Place<'a>,
    tz: TimeZone,
    steps: Vec<String>,
    unknown: Vec<String>,
    status: VerificationStatus,
}

impl Ctx<'_> {
    fn day(&self, date: Date) -> DayKind {
        match self.cals.get(self.place.party) {
            Some(c) => c.day(date, self.place.region),
            None if matches!(
                date.weekday(),
                jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
            ) =>
            {
                DayKind::Weekend(date.weekday())
            }
            None => DayKind::Unknown(format!(
                "no holiday calendar for {}: whether {date} is a public holiday is not known",
                self.place.party
            )),
        }
    }

    fn weaken(&mut self, s: VerificationStatus) {
        self.status = self.status.max(s);
    }

    /// Whether `date` is a working day; an unknown day is recorded and counted as working
    /// (so that `end` is the earliest possible end).
    fn working(&mut self, date: Date, why: &str) -> Result<(), String> {
        match self.day(date) {
            DayKind::Working => Ok(()),
            DayKind::Weekend(w) => Err(format!("{date} is a {w:?}")),
            DayKind::Holiday(h) => {
                self.weaken(h.status);
                Err(format!(
                    "{date} is {} ({}, {} {})",
                    h.name,
                    h.where_(self.place.party),
                    h.citation,
                    h.status.as_str()
                ))
            }
            DayKind::Unknown(reason) => {
                self.unknown.push(format!("{why}: {reason}"));
                Ok(())
            }
        }
    }

    fn start_of(&self, date: Date) -> Result<Timestamp, PeriodError> {
        date.to_zoned(self.tz.clone()).map(|z| z.timestamp()).map_err(arith)
    }

    /// The first working day from `date` on, recording each day skipped.
    fn roll(&mut self, mut date: Date, article: &str) -> Result<Date, PeriodError> {
        for _ in 0..MAX_ROLL {
            match self.working(date, article) {
                Ok(()) => return Ok(date),
                Err(why) => {
                    let next = date.tomorrow().map_err(arith)?;
                    self.steps
                        .push(format!("{article}: {why}, not a working day: moved to {next}"));
                    date = next;
                }
            }
        }
        Err(PeriodError::Arithmetic(format!("no working day within {MAX_ROLL} days of {date}")))
    }
}

/// The end of a period of `length` from `event` under `rule` at `place`.
///
/// # Errors
/// An unsupported length for the rule, an unknown region, no time zone for the place, or an
/// arithmetic overflow. Days the calendar cannot answer are not errors: they make the result
/// not definite.
pub fn compute(
    cals: &Calendars,
    event: Timestamp,
    length: Length,
    rule: &Rule,
    place: Place<'_>,
) -> Result<PeriodEnd, PeriodError> {
    let cal = cals.get(place.party);
    if let (Some(c), Some(r)) = (cal, place.region)
        && !c.knows_region(r)
    {
        return Err(PeriodError::UnknownRegion {
            party: place.party.to_owned(),
            region: r.to_owned(),
            known: c.regions.keys().cloned().collect::<Vec<_>>().join(", "),
        });
    }
    let (zone_name, zone_note) = match cal {
        Some(c) => (
            c.zone.clone(),
            format!(
                "local time of {}{}, where the act is to be done ({})",
                place.party,
                place.region.map(|r| format!(" ({r})")).unwrap_or_default(),
                c.file
            ),
        ),
        None => {
            let party = place
                .party
                .parse::<entente_core::PartyCode>()
                .map_err(|_| PeriodError::NoZone(place.party.to_owned()))?;
            let pz = crate::request::party_time_zone(&party)
                .ok_or_else(|| PeriodError::NoZone(place.party.to_owned()))?;
            (
                pz.iana.to_owned(),
                format!(
                    "the law does not name the place's zone and {} has no holiday calendar: Entente counts in the zone of its capital, a default of this node, not a rule of law",
                    place.party
                ),
            )
        }
    };
    let tz = TimeZone::get(&zone_name).map_err(arith)?;
    let mut cx = Ctx {
        cals,
        place,
        tz: tz.clone(),
        steps: Vec::new(),
        unknown: Vec::new(),
        status: rule.status(),
    };
    if cal.is_some() && place.region.is_none() && cal.is_some_and(|c| !c.regions.is_empty()) {
        cx.steps.push(format!(
            "no region of {} given: days that are holidays in only some regions make the end not definite",
            place.party
        ));
    }
    let local = event.to_zoned(tz.clone());
    let d0 = local.date();
    let naive = naive_end(event, length, &tz)?;
    let end = match (rule, length) {
        (Rule::Eu1182, Length::Hours(n)) => {
            // Art 3(1): the hour during which the event occurs is not counted; Art 3(2)(a):
            // the period starts at the beginning of the first hour and ends with the expiry of
            // its last hour. Not extended (Art 3(4) concerns periods otherwise than in hours).
            let into_hour = SignedDuration::from_secs(
                i64::from(local.minute()) * 60 + i64::from(local.second()),
            ) + SignedDuration::from_nanos(i64::from(local.subsec_nanosecond()));
            let start = event
                .checked_sub(into_hour)
                .and_then(|t| t.checked_add(SignedDuration::from_hours(1)))
                .map_err(arith)?;
            cx.steps.push(format!(
                "Art 3(1), 3(2)(a): the hour of the event is not counted; the period starts at {} and runs {n} hours",
                start.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M %Z")
            ));
            cx.steps.push("Art 3(4) does not extend a period in hours".to_owned());
            start.checked_add(SignedDuration::from_hours(i64::from(n))).map_err(arith)?
        }
        (Rule::Eu1182, Length::Days(_) | Length::Weeks(_) | Length::Months(_)) => {
            let (last, art) = match length {
                Length::Days(n) => (
                    d0.checked_add(Span::new().days(i64::from(n))).map_err(arith)?,
                    format!(
                        "Art 3(1): the day of the event ({d0}) is not counted; Art 3(2)(b): {n} days end with the last hour of their last day"
                    ),
                ),
                Length::Weeks(n) => (
                    d0.checked_add(Span::new().weeks(i64::from(n))).map_err(arith)?,
                    format!("Art 3(2)(c): {n} weeks end on the same weekday as the event ({d0})"),
                ),
                _ => {
                    let n = match length {
                        Length::Months(n) => n,
                        _ => 0,
                    };
                    (
                        d0.checked_add(Span::new().months(i64::from(n))).map_err(arith)?,
                        format!(
                            "Art 3(2)(c): {n} months end on the same date as the event ({d0}), or the last day of the month if there is none"
                        ),
                    )
                }
            };
            cx.steps.push(format!("{art}: last day {last} ({:?})", last.weekday()));
            cx.steps
                .push("Art 3(3): public holidays, Saturdays and Sundays are included".to_owned());
            let mut last = cx.roll(last, "Art 3(4)")?;
            // Art 3(5): a period of two days or more holds at least two working days.
            let two_or_more = !matches!(length, Length::Days(0 | 1));
            if two_or_more {
                let mut working = 0;
                let mut d = d0.tomorrow().map_err(arith)?;
                while d <= last {
                    if matches!(cx.day(d), DayKind::Working | DayKind::Unknown(_)) {
                        working += 1;
                    }
                    d = d.tomorrow().map_err(arith)?;
                }
                while working < 2 {
                    let next = cx.roll(last.tomorrow().map_err(arith)?, "Art 3(5)")?;
                    cx.steps.push(format!(
                        "Art 3(5): a period of two days or more holds at least two working days: extended to {next}"
                    ));
                    last = next;
                    working += 1;
                }
            }
            cx.steps.push(format!("ends with the last hour of {last} (24:00 local)"));
            cx.start_of(last.tomorrow().map_err(arith)?)?
        }
        (Rule::SecBusinessDays, Length::BusinessDays(n)) => {
            // B.1: "within four business days after occurrence of the event. If the event
            // occurs on a Saturday, Sunday or holiday on which the Commission is not open for
            // business, then the four business day period shall begin to run on, and include,
            // the first business day thereafter."
            let event_day_open = cx.working(d0, "the day of the event").is_ok();
            let mut counted = 0u32;
            let mut d = d0;
            if !event_day_open {
                d = cx.roll(d0, "General Instruction B.1 (event on a non-business day)")?;
                counted = 1;
                cx.steps.push(format!("the count begins on, and includes, {d} (business day 1)"));
            } else {
                cx.steps.push(format!(
                    "event on business day {d0}: counting begins the next business day"
                ));
            }
            while counted < n {
                let next = d.tomorrow().map_err(arith)?;
                d = cx.roll(next, "B.1: not a business day")?;
                counted += 1;
            }
            cx.steps.push(format!(
                "business day {n} is {d}; federal holidays (5 U.S.C. § 6103) are not business days"
            ));
            // EDGAR: a filing made after 17:30 Eastern is dated the next business day.
            let cutoff = d
                .to_datetime(jiff::civil::time(17, 30, 0, 0))
                .to_zoned(tz.clone())
                .map_err(arith)?
                .timestamp();
            cx.steps.push(
                "due by 17:30 Eastern on that day: EDGAR dates a later filing the next business day (Regulation S-T; secondary sources, V2)".to_owned(),
            );
            cx.weaken(VerificationStatus::V2);
            cutoff
        }
        (
            Rule::Elapsed { basis },
            Length::Hours(_) | Length::Days(_) | Length::Weeks(_) | Length::Months(_),
        ) => {
            cx.steps.push(format!(
                "{basis}: {length} from the event, elapsed time (days and months in the place's calendar), not extended for weekends or holidays"
            ));
            naive
        }
        (Rule::DoraArt5 { relief }, Length::Hours(_) | Length::Months(_)) => {
            cx.steps.push(format!("Art 5: {length} from the event"));
            let due_day = naive.to_zoned(tz.clone()).date();
            match relief {
                Relief::Applies => match cx.working(due_day, "Art 5(4)") {
                    Ok(()) => {
                        cx.steps.push(format!("{due_day} is a working day: no relief"));
                        naive
                    }
                    Err(why) => {
                        let next = cx.roll(due_day.tomorrow().map_err(arith)?, "Art 5(4)")?;
                        cx.steps.push(format!(
                            "Art 5(4)-(5): {why}: the report may be submitted by 12:00 on the next working day, {next}"
                        ));
                        let noon = next
                            .to_datetime(jiff::civil::time(12, 0, 0, 0))
                            .to_zoned(tz.clone())
                            .map_err(arith)?
                            .timestamp();
                        noon.max(naive)
                    }
                },
                Relief::Excluded => {
                    cx.steps.push(
                        "Art 5(5): the entity is excluded from the weekend/holiday relief"
                            .to_owned(),
                    );
                    naive
                }
                Relief::NotKnown => {
                    cx.steps.push(
                        "whether the weekend/holiday relief of Art 5(4)-(5) applies to the entity is not known: not applied (the earlier deadline)".to_owned(),
                    );
                    naive
                }
            }
        }
        (r, l) => return Err(PeriodError::Unsupported { rule: r.name(), length: l }),
    };
    Ok(PeriodEnd {
        end,
        naive,
        rule: rule.clone(),
        steps: cx.steps,
        unknown: cx.unknown,
        zone_name,
        zone_note,
        zone: tz,
        status: cx.status,
    })
}

/// The naive end: the event plus the length (hours as elapsed time, days, weeks and months on
/// the local calendar keeping the wall-clock time, business days as Monday–Friday).
///
/// # Errors
/// Arithmetic overflow.
pub fn naive_end(
    event: Timestamp,
    length: Length,
    tz: &TimeZone,
) -> Result<Timestamp, PeriodError> {
    let z = event.to_zoned(tz.clone());
    let span = match length {
        Length::Hours(n) => {
            return event.checked_add(SignedDuration::from_hours(i64::from(n))).map_err(arith);
        }
        Length::Days(n) => Span::new().days(i64::from(n)),
        Length::Weeks(n) => Span::new().weeks(i64::from(n)),
        Length::Months(n) => Span::new().months(i64::from(n)),
        Length::BusinessDays(n) => {
            let mut d = z.date();
            let mut left = n;
            while left > 0 {
                d = d.tomorrow().map_err(arith)?;
                if !matches!(
                    d.weekday(),
                    jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
                ) {
                    left -= 1;
                }
            }
            return d.to_zoned(tz.clone()).map(|z| z.timestamp()).map_err(arith);
        }
    };
    z.checked_add(span).map(|z| z.timestamp()).map_err(arith)
}

#[cfg(test)]
mod tests;
