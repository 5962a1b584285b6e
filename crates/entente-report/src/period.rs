//! Reporting periods: a half-year (`2026-H2`), a calendar year (`2026`), or any `[from, to)`.

use crate::ReportError;
use jiff::Timestamp;
use jiff::civil::date;
use jiff::tz::TimeZone;
use serde::Serialize;

/// A period `[from, to)` in UTC, with the label it is published under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Period {
    /// `2026-H2`, `2026`, or `FROM/TO` for a period given by its bounds.
    pub label: String,
    /// First instant.
    pub from: Timestamp,
    /// First instant after the period.
    pub to: Timestamp,
}

fn utc_midnight(year: i16, month: i8) -> Result<Timestamp, ReportError> {
    date(year, month, 1)
        .to_zoned(TimeZone::UTC)
        .map(|z| z.timestamp())
        .map_err(|e| ReportError::Period(format!("{year}-{month:02}-01: {e}")))
}

impl Period {
    /// The period between two instants; an empty or reversed one is refused.
    ///
    /// # Errors
    /// `from` not before `to`.
    pub fn between(from: Timestamp, to: Timestamp) -> Result<Period, ReportError> {
        if from >= to {
            return Err(ReportError::Period(format!(
                "--from {from} --to {to}: the period is empty; expected --from before --to"
            )));
        }
        Ok(Period { label: format!("{from}/{to}"), from, to })
    }

    /// A half-year `YYYY-H1` / `YYYY-H2` or a calendar year `YYYY`, in UTC.
    ///
    /// # Errors
    /// Any other text, or a year outside 2000–9998.
    pub fn parse(label: &str) -> Result<Period, ReportError> {
        let bad = || {
            ReportError::Period(format!(
                "`{label}`: expected a half-year such as 2026-H2 (or 2026-H1), or a calendar year such as 2026"
            ))
        };
        let (year, half) = match label.split_once('-') {
            Some((y, "H1")) => (y, Some(1)),
            Some((y, "H2")) => (y, Some(2)),
            Some(_) => return Err(bad()),
            None => (label, None),
        };
        if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let y: i16 = year.parse().map_err(|_| bad())?;
        if !(2000..=9998).contains(&y) {
            return Err(bad());
        }
        let (from, to) = match half {
            Some(1) => (utc_midnight(y, 1)?, utc_midnight(y, 7)?),
            Some(_) => (utc_midnight(y, 7)?, utc_midnight(y + 1, 1)?),
            None => (utc_midnight(y, 1)?, utc_midnight(y + 1, 1)?),
        };
        Ok(Period { label: label.to_owned(), from, to })
    }

    /// Whether `t` falls in the period.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.from <= t && t < self.to
    }

    /// The period as far as it has happened at `now`: refused when it starts after `now`;
    /// otherwise the instant up to which figures can be counted (`to`, or `now` for a period
    /// still running).
    ///
    /// # Errors
    /// A period in the future.
    pub fn as_of(&self, now: Timestamp) -> Result<Timestamp, ReportError> {
        if self.from > now {
            return Err(ReportError::Period(format!(
                "{}: the period starts at {}, after now ({now}); nothing can be counted yet",
                self.label, self.from
            )));
        }
        Ok(self.to.min(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_years_and_years() {
        let h2 = Period::parse("2026-H2").unwrap();
        assert_eq!(h2.from.to_string(), "2026-07-01T00:00:00Z");
        assert_eq!(h2.to.to_string(), "2027-01-01T00:00:00Z");
        let h1 = Period::parse("2026-H1").unwrap();
        assert_eq!(h1.to, h2.from);
        let y = Period::parse("2026").unwrap();
        assert_eq!((y.from, y.to), (h1.from, h2.to));
        assert!(h2.contains(h2.from) && !h2.contains(h2.to));
    }

    #[test]
    fn bad_periods_say_what_is_expected() {
        for bad in ["2026-H3", "26-H1", "2026-h1", "", "1999", "2026-Q1", "２０２６"] {
            let e = Period::parse(bad).unwrap_err().to_string();
            assert!(e.contains("expected a half-year such as 2026-H2"), "{bad}: {e}");
        }
        let t: Timestamp = "2026-07-01T00:00:00Z".parse().unwrap();
        let e = Period::between(t, t).unwrap_err().to_string();
        assert!(e.contains("the period is empty"), "{e}");
    }

    #[test]
    fn a_future_period_is_refused_and_a_running_one_counts_to_now() {
        let h2 = Period::parse("2026-H2").unwrap();
        let before: Timestamp = "2026-06-30T23:59:59Z".parse().unwrap();
        assert!(h2.as_of(before).unwrap_err().to_string().contains("after now"));
        let during: Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
        assert_eq!(h2.as_of(during).unwrap(), during);
        let after: Timestamp = "2027-02-01T00:00:00Z".parse().unwrap();
        assert_eq!(h2.as_of(after).unwrap(), h2.to);
    }
}
