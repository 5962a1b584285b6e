//! Holiday calendars as data: which days are public holidays in a place, with the citation
//! and verification status of each, for a stated range of years.
//!
//! A calendar is a TOML file (`data/holidays/<PARTY>.toml`, format in `docs/periods.md`):
//! the party, the years it covers, the regions it knows (German Länder, …), its sources, and
//! one `[[holiday]]` per day, written as a fixed date (`date = "12-25"`), an offset from
//! Easter Sunday (`easter = 1`), the n-th weekday of a month (`weekday`, `nth`, `month`;
//! `nth = -1` the last), or one day (`on = "2026-05-15"`), optionally limited to regions,
//! to years (`from`, `until`) and moved when it falls on a weekend (`observed`).
//!
//! A date outside the covered years is [`DayKind::Unknown`], never a working day. Parsing is
//! all-or-nothing: every problem is reported as `file:line:col: field: message`.

use entente_core::lexicon::VerificationStatus;
use entente_core::source_error::{FieldNames, SourceChecker, SourceError, SourceText};
use jiff::civil::{Date, Weekday};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use toml::Spanned;

/// The calendars shipped in `data/holidays/`, as (file, text).
pub const BUILTIN: &[(&str, &str)] = &[
    ("data/holidays/DE.toml", include_str!("../../../../data/holidays/DE.toml")),
    ("data/holidays/NL.toml", include_str!("../../../../data/holidays/NL.toml")),
    ("data/holidays/US.toml", include_str!("../../../../data/holidays/US.toml")),
];

/// Every problem found in one calendar file (at least one).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct CalendarErrors(pub Vec<SourceError>);

impl fmt::Display for CalendarErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        entente_core::source_error::write_problems(f, "holiday calendar", &self.0)
    }
}

/// How a holiday's date is found in a year.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateRule {
    /// The same month and day every year.
    Fixed {
        /// Month, 1–12.
        month: i8,
        /// Day of the month.
        day: i8,
    },
    /// Days after (or, negative, before) Easter Sunday (Gregorian).
    Easter(i16),
    /// The `nth` `weekday` of `month` (`nth = -1`: the last).
    Nth {
        /// Month, 1–12.
        month: i8,
        /// The weekday.
        weekday: Weekday,
        /// 1–5, or -1 for the last.
        nth: i8,
    },
    /// One date.
    On(Date),
}

/// Where a holiday that falls on a weekend is observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observed {
    /// On its date (the default).
    OnTheDay,
    /// Saturday → the Friday before, Sunday → the Monday after (5 U.S.C. § 6103(b)).
    FridayBeforeMondayAfter,
}

/// One public holiday of a calendar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holiday {
    /// Its name.
    pub name: String,
    /// How its date is found.
    pub rule: DateRule,
    /// Where it is observed when on a weekend.
    pub observed: Observed,
    /// The regions it is a holiday in; empty = the whole party.
    pub regions: Vec<String>,
    /// First and last year it is a holiday (within the calendar's years).
    pub from: Option<i16>,
    /// Last year it is a holiday.
    pub until: Option<i16>,
    /// When set, the holiday applies only in part of its regions (e.g. some municipalities):
    /// at region level the day is [`DayKind::Unknown`], with this text as the reason.
    pub only_in: Option<String>,
    /// The provision that makes it a holiday.
    pub citation: String,
    /// How far that was verified.
    pub status: VerificationStatus,
    /// Source keys (see [`Calendar::sources`]).
    pub sources: Vec<String>,
}

impl Holiday {
    /// The date it is observed on in `year`, if it is a holiday that year.
    pub fn date_in(&self, year: i16) -> Option<Date> {
        if self.from.is_some_and(|f| year < f) || self.until.is_some_and(|u| year > u) {
            return None;
        }
        let date = match self.rule {
            DateRule::Fixed { month, day } => Date::new(year, month, day).ok()?,
            DateRule::Easter(offset) => {
                easter_sunday(year)?.checked_add(jiff::Span::new().days(i64::from(offset))).ok()?
            }
            DateRule::Nth { month, weekday, nth } => {
                Date::new(year, month, 1).ok()?.nth_weekday_of_month(nth, weekday).ok()?
            }
            DateRule::On(d) => {
                if d.year() != year {
                    return None;
                }
                d
            }
        };
        Some(match (self.observed, date.weekday()) {
            (Observed::FridayBeforeMondayAfter, Weekday::Saturday) => date.yesterday().ok()?,
            (Observed::FridayBeforeMondayAfter, Weekday::Sunday) => date.tomorrow().ok()?,
            _ => date,
        })
    }

    /// The regions in words: `all of <party>` or the list.
    pub fn where_(&self, party: &str) -> String {
        if self.regions.is_empty() { format!("all of {party}") } else { self.regions.join(", ") }
    }
}

/// A source of a calendar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// What it is.
    pub title: String,
    /// Where it was read.
    pub url: String,
}

/// A party's holiday calendar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Calendar {
    /// The file it was read from.
    pub file: String,
    /// The party (`NL`, `DE`, `US`).
    pub party: String,
    /// What it is, in words.
    pub name: String,
    /// The IANA time zone of the place.
    pub zone: String,
    /// First covered year.
    pub first_year: i16,
    /// Last covered year.
    pub last_year: i16,
    /// The regions it knows (e.g. German Länder), each with its name.
    pub regions: BTreeMap<String, String>,
    /// Its sources by key.
    pub sources: BTreeMap<String, Source>,
    /// Its holidays.
    pub holidays: Vec<Holiday>,
}

/// What a day is in a calendar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DayKind {
    /// A working day (not a Saturday, Sunday or public holiday of the place).
    Working,
    /// Saturday or Sunday.
    Weekend(Weekday),
    /// A public holiday of the place.
    Holiday(Holiday),
    /// Not known: outside the covered years, or a holiday only in some regions and no region
    /// given. Never to be taken as a working day.
    Unknown(String),
}

impl DayKind {
    /// Whether it is definitely a working day.
    pub fn is_working(&self) -> bool {
        matches!(self, DayKind::Working)
    }
}

impl Calendar {
    /// Whether `region` is one of the calendar's regions.
    pub fn knows_region(&self, region: &str) -> bool {
        self.regions.contains_key(region)
    }

    /// The holidays observed on `date`, in any region.
    fn holidays_on(&self, date: Date) -> impl Iterator<Item = &Holiday> {
        // A holiday observed on another day may move across a year end (1 January on a
        // Saturday is observed on 31 December before).
        let years = [date.year().saturating_sub(1), date.year(), date.year().saturating_add(1)];
        self.holidays.iter().filter(move |h| years.iter().any(|y| h.date_in(*y) == Some(date)))
    }

    /// What `date` is in `region` (or the whole party when `None`).
    pub fn day(&self, date: Date, region: Option<&str>) -> DayKind {
        if date.year() < self.first_year || date.year() > self.last_year {
            return DayKind::Unknown(format!(
                "{date} is outside the years the {} calendar covers ({}–{}, {})",
                self.party, self.first_year, self.last_year, self.file
            ));
        }
        if let Some(r) = region.filter(|r| !self.knows_region(r)) {
            return DayKind::Unknown(format!(
                "region `{r}` is not in the {} calendar ({}); known: {}",
                self.party,
                self.file,
                self.regions.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        let mut regional = Vec::new();
        let mut partial = Vec::new();
        for h in self.holidays_on(date) {
            let applies = match region {
                _ if h.regions.is_empty() => true,
                Some(r) => h.regions.iter().any(|x| x == r),
                None => {
                    regional.push(format!("{} ({})", h.name, h.regions.join(", ")));
                    false
                }
            };
            match (&h.only_in, applies) {
                (None, true) => return DayKind::Holiday(h.clone()),
                (Some(only), true) => {
                    partial.push(format!("{} is a public holiday {only}", h.name))
                }
                _ => {}
            }
        }
        if let Some(w @ (Weekday::Saturday | Weekday::Sunday)) = Some(date.weekday()) {
            return DayKind::Weekend(w);
        }
        if !partial.is_empty() {
            return DayKind::Unknown(format!(
                "{date}: {}; the calendar does not go below the region",
                partial.join("; ")
            ));
        }
        if !regional.is_empty() {
            return DayKind::Unknown(format!(
                "{date} is a public holiday only in some regions of {}: {}; the region was not given",
                self.party,
                regional.join("; ")
            ));
        }
        DayKind::Working
    }

    /// Parses one calendar file, all-or-nothing.
    ///
    /// # Errors
    /// Every problem found, `file:line:col: field: message`.
    pub fn parse(file: &str, text: &str) -> Result<Calendar, CalendarErrors> {
        let mut c = Checker { file, text, errors: Vec::new() };
        let cal = c.parse::<RawCalendar>().and_then(|raw| c.check(raw));
        match cal {
            Some(cal) if c.errors.is_empty() => Ok(cal),
            _ => Err(CalendarErrors(c.errors)),
        }
    }
}

/// The shipped calendars, by party.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Calendars {
    by_party: BTreeMap<String, Calendar>,
}

impl Calendars {
    /// The calendars of `files` (file name, text), all-or-nothing; a party given twice is a
    /// problem of the second file.
    ///
    /// # Errors
    /// Every problem of every file.
    pub fn parse(files: &[(&str, &str)]) -> Result<Calendars, CalendarErrors> {
        let mut errors = Vec::new();
        let mut by_party = BTreeMap::new();
        for (file, text) in files {
            match Calendar::parse(file, text) {
                Ok(c) => {
                    if let Some(prev) = by_party.get(&c.party) {
                        let prev: &Calendar = prev;
                        errors.push(SourceText::new(file, text).error(
                            0..0,
                            "party",
                            format!(
                                "party {} already has a calendar ({}); expected one file per party",
                                c.party, prev.file
                            ),
                        ));
                    } else {
                        by_party.insert(c.party.clone(), c);
                    }
                }
                Err(CalendarErrors(e)) => errors.extend(e),
            }
        }
        if errors.is_empty() { Ok(Calendars { by_party }) } else { Err(CalendarErrors(errors)) }
    }

    /// The calendars shipped in `data/holidays/`.
    ///
    /// # Errors
    /// Only if the shipped data is broken (a test guards it).
    pub fn builtin() -> Result<Calendars, CalendarErrors> {
        Calendars::parse(BUILTIN)
    }

    /// The calendar of `party`.
    pub fn get(&self, party: &str) -> Option<&Calendar> {
        self.by_party.get(party)
    }

    /// Every calendar.
    pub fn iter(&self) -> impl Iterator<Item = &Calendar> {
        self.by_party.values()
    }
}

/// Easter Sunday (Gregorian) of `year`: the "anonymous Gregorian algorithm" (Meeus/Jones/
/// Butcher; J. Meeus, *Astronomical Algorithms*, 1991, ch. 8). `None` outside 1583–9999.
pub fn easter_sunday(year: i16) -> Option<Date> {
    if !(1583..=9999).contains(&year) {
        return None;
    }
    let y = i32::from(year);
    let a = y % 19;
    let b = y / 100;
    let c = y % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    Date::new(year, i8::try_from(month).ok()?, i8::try_from(day).ok()?).ok()
}

// ---------------------------------------------------------------------------------------------
// Parsing

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    party: Spanned<String>,
    name: String,
    zone: Spanned<String>,
    years: Spanned<[i16; 2]>,
    #[serde(default)]
    regions: BTreeMap<String, String>,
    #[serde(default)]
    sources: BTreeMap<String, RawSource>,
    #[serde(default)]
    holiday: Vec<RawHoliday>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    title: String,
    url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHoliday {
    name: Spanned<String>,
    date: Option<Spanned<String>>,
    easter: Option<Spanned<i16>>,
    weekday: Option<Spanned<String>>,
    nth: Option<Spanned<i8>>,
    month: Option<Spanned<i8>>,
    on: Option<Spanned<String>>,
    observed: Option<Spanned<String>>,
    only_in: Option<String>,
    #[serde(default)]
    regions: Vec<Spanned<String>>,
    from: Option<Spanned<i16>>,
    until: Option<Spanned<i16>>,
    citation: String,
    status: Spanned<String>,
    #[serde(default)]
    sources: Vec<Spanned<String>>,
}

struct Checker<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<SourceError>,
}

impl SourceChecker for Checker<'_> {
    const FIELD_NAMES: FieldNames = FieldNames { table_headers: true, hyphens: false };
    fn source(&self) -> SourceText<'_> {
        SourceText::new(self.file, self.text)
    }
    fn push(&mut self, error: SourceError) {
        self.errors.push(error);
    }
}

const WEEKDAYS: &[(&str, Weekday)] = &[
    ("monday", Weekday::Monday),
    ("tuesday", Weekday::Tuesday),
    ("wednesday", Weekday::Wednesday),
    ("thursday", Weekday::Thursday),
    ("friday", Weekday::Friday),
    ("saturday", Weekday::Saturday),
    ("sunday", Weekday::Sunday),
];

fn status_of(s: &str) -> Option<VerificationStatus> {
    match s {
        "V1" => Some(VerificationStatus::V1),
        "V2" => Some(VerificationStatus::V2),
        "P" => Some(VerificationStatus::P),
        "U" => Some(VerificationStatus::U),
        _ => None,
    }
}

impl Checker<'_> {
    fn check(&mut self, raw: RawCalendar) -> Option<Calendar> {
        let party = raw.party.get_ref().clone();
        if party.len() != 2 || !party.chars().all(|c| c.is_ascii_uppercase()) {
            self.error(
                raw.party.span(),
                "party",
                format!("found `{party}`; expected an ISO 3166-1 alpha-2 code such as NL"),
            );
        }
        if jiff::tz::TimeZone::get(raw.zone.get_ref()).is_err() {
            self.error(
                raw.zone.span(),
                "zone",
                format!(
                    "found `{}`; expected an IANA time-zone name such as Europe/Amsterdam",
                    raw.zone.get_ref()
                ),
            );
        }
        let [first_year, last_year] = *raw.years.get_ref();
        if first_year > last_year || first_year < 1583 {
            self.error(
                raw.years.span(),
                "years",
                format!(
                    "found [{first_year}, {last_year}]; expected [first, last] with 1583 <= first <= last"
                ),
            );
        }
        let mut holidays = Vec::new();
        let mut seen: BTreeSet<(String, Vec<String>)> = BTreeSet::new();
        for h in raw.holiday {
            let name = h.name.get_ref().clone();
            let field = |f: &str| format!("holiday.{f}");
            // The date rule: exactly one form.
            let forms = [h.date.is_some(), h.easter.is_some(), h.weekday.is_some(), h.on.is_some()]
                .iter()
                .filter(|x| **x)
                .count();
            let rule = if forms != 1 {
                self.error(
                    h.name.span(),
                    "holiday",
                    format!(
                        "holiday `{name}` has {forms} date rules; expected exactly one of `date = \"MM-DD\"`, `easter = <days>`, `weekday` + `nth` + `month`, `on = \"YYYY-MM-DD\"`"
                    ),
                );
                None
            } else if let Some(d) = &h.date {
                let parsed = d.get_ref().split_once('-').and_then(|(m, dd)| {
                    let (m, dd) = (m.parse::<i8>().ok()?, dd.parse::<i8>().ok()?);
                    // 2000 is a leap year: 02-29 is a valid fixed date (observed in leap years).
                    Date::new(2000, m, dd).ok().map(|_| DateRule::Fixed { month: m, day: dd })
                });
                if parsed.is_none() {
                    self.error(
                        d.span(),
                        &field("date"),
                        format!(
                            "found `{}`; expected a month and day that exist, `MM-DD` such as `12-25`",
                            d.get_ref()
                        ),
                    );
                }
                parsed
            } else if let Some(e) = &h.easter {
                if e.get_ref().abs() > 100 {
                    self.error(
                        e.span(),
                        &field("easter"),
                        format!(
                            "found {}; expected days from Easter Sunday within ±100",
                            e.get_ref()
                        ),
                    );
                    None
                } else {
                    Some(DateRule::Easter(*e.get_ref()))
                }
            } else if let Some(w) = &h.weekday {
                let wd = WEEKDAYS.iter().find(|(n, _)| n == w.get_ref()).map(|(_, d)| *d);
                if wd.is_none() {
                    let names: Vec<&str> = WEEKDAYS.iter().map(|(n, _)| *n).collect();
                    self.error(
                        w.span(),
                        &field("weekday"),
                        entente_core::source_error::unknown_name(w.get_ref(), &names, "weekday"),
                    );
                }
                let nth = h.nth.as_ref().map(|n| *n.get_ref());
                let month = h.month.as_ref().map(|m| *m.get_ref());
                let ok_nth = matches!(nth, Some(-1 | 1..=5));
                let ok_month = matches!(month, Some(1..=12));
                if !ok_nth {
                    self.error(
                        h.nth.as_ref().map_or(w.span(), Spanned::span),
                        &field("nth"),
                        format!(
                            "found {nth:?}; expected `nth` = 1 to 5, or -1 for the last, with `weekday`"
                        ),
                    );
                }
                if !ok_month {
                    self.error(
                        h.month.as_ref().map_or(w.span(), Spanned::span),
                        &field("month"),
                        format!("found {month:?}; expected `month` = 1 to 12, with `weekday`"),
                    );
                }
                match (wd, nth, month) {
                    (Some(weekday), Some(nth), Some(month)) if ok_nth && ok_month => {
                        Some(DateRule::Nth { month, weekday, nth })
                    }
                    _ => None,
                }
            } else if let Some(on) = &h.on {
                match on.get_ref().parse::<Date>() {
                    Ok(d) if d.year() < first_year || d.year() > last_year => {
                        self.error(
                            on.span(),
                            &field("on"),
                            format!(
                                "{d} is outside the years this calendar covers ({first_year}–{last_year}); expected a date within them, or widen `years`"
                            ),
                        );
                        None
                    }
                    Ok(d) => Some(DateRule::On(d)),
                    Err(_) => {
                        self.error(
                            on.span(),
                            &field("on"),
                            format!(
                                "found `{}`; expected a date that exists, `YYYY-MM-DD`",
                                on.get_ref()
                            ),
                        );
                        None
                    }
                }
            } else {
                None
            };
            if forms == 1 && h.weekday.is_none() {
                for (v, f) in [(&h.nth, "nth"), (&h.month, "month")] {
                    if let Some(v) = v {
                        self.error(
                            v.span(),
                            &field(f),
                            format!("`{f}` is only for a `weekday` rule; remove it"),
                        );
                    }
                }
            }
            for (v, f) in [(&h.from, "from"), (&h.until, "until")] {
                if let Some(v) = v {
                    let y = *v.get_ref();
                    if y < first_year || y > last_year {
                        self.error(
                            v.span(),
                            &field(f),
                            format!(
                                "{y} is outside the years this calendar covers ({first_year}–{last_year}); expected a year within them"
                            ),
                        );
                    }
                }
            }
            let observed = match &h.observed {
                None => Some(Observed::OnTheDay),
                Some(o) if o.get_ref() == "on-the-day" => Some(Observed::OnTheDay),
                Some(o) if o.get_ref() == "friday-before-monday-after" => {
                    Some(Observed::FridayBeforeMondayAfter)
                }
                Some(o) => {
                    self.error(
                        o.span(),
                        &field("observed"),
                        entente_core::source_error::unknown_name(
                            o.get_ref(),
                            &["on-the-day", "friday-before-monday-after"],
                            "observance rule",
                        ),
                    );
                    None
                }
            };
            let mut regions = Vec::new();
            for r in &h.regions {
                if raw.regions.contains_key(r.get_ref()) {
                    regions.push(r.get_ref().clone());
                } else {
                    let known: Vec<&str> = raw.regions.keys().map(String::as_str).collect();
                    self.error(
                        r.span(),
                        &field("regions"),
                        if known.is_empty() {
                            format!(
                                "unknown region `{}`: this calendar declares no `[regions]`",
                                r.get_ref()
                            )
                        } else {
                            entente_core::source_error::unknown_name(r.get_ref(), &known, "region")
                        },
                    );
                }
            }
            let status = status_of(h.status.get_ref());
            if status.is_none() {
                self.error(
                    h.status.span(),
                    &field("status"),
                    format!("found `{}`; expected V1, V2, P or U", h.status.get_ref()),
                );
            }
            for s in &h.sources {
                if !raw.sources.contains_key(s.get_ref()) {
                    let known: Vec<&str> = raw.sources.keys().map(String::as_str).collect();
                    self.error(
                        s.span(),
                        &field("sources"),
                        entente_core::source_error::unknown_name(s.get_ref(), &known, "source key"),
                    );
                }
            }
            if !seen.insert((name.clone(), regions.clone())) {
                self.error(
                    h.name.span(),
                    "holiday.name",
                    format!(
                        "duplicate holiday `{name}` for the same regions; expected each holiday once (give `regions` to tell regional variants apart)"
                    ),
                );
            }
            if let (Some(rule), Some(observed), Some(status)) = (rule, observed, status) {
                holidays.push(Holiday {
                    name,
                    rule,
                    observed,
                    regions,
                    from: h.from.map(|v| *v.get_ref()),
                    until: h.until.map(|v| *v.get_ref()),
                    only_in: h.only_in,
                    citation: h.citation,
                    status,
                    sources: h.sources.into_iter().map(|s| s.into_inner()).collect(),
                });
            }
        }
        // Two holidays with different names on the same rule and regions are a duplicate too.
        let mut rules = BTreeMap::new();
        for h in &holidays {
            let key = (format!("{:?}/{:?}/{:?}/{:?}", h.rule, h.regions, h.from, h.until), ());
            if let Some(prev) = rules.insert(key, h.name.clone()) {
                let span = self
                    .text
                    .find(&format!("\"{}\"", h.name))
                    .map_or(0..0, |s| s..s + h.name.len());
                self.error(
                    span,
                    "holiday",
                    format!(
                        "`{}` is the same day as `{prev}` for the same regions; expected each day once",
                        h.name
                    ),
                );
            }
        }
        Some(Calendar {
            file: self.file.to_owned(),
            party,
            name: raw.name,
            zone: raw.zone.into_inner(),
            first_year,
            last_year,
            regions: raw.regions,
            sources: raw
                .sources
                .into_iter()
                .map(|(k, s)| (k, Source { title: s.title, url: s.url }))
                .collect(),
            holidays,
        })
    }
}
