//! [`Stamp`]: an instant as the node records, stores, sends and shows it.
//!
//! Every time a node writes down — when a case was opened, a datum shared, a redress request
//! is due — is a `Stamp`: a UTC instant to the microsecond, written in RFC 3339 with six
//! fractional digits and `Z` (`2026-12-04T02:38:00.000000Z`). It is made only from a
//! [`jiff::Timestamp`] (truncated to the microsecond) or by parsing text, which fails closed:
//! a row, a field of a partner's message or an argument that is not an RFC 3339 instant is an
//! error where it is read, not a string carried on until something compares it.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A UTC instant to the microsecond; its text is RFC 3339 with six fractional digits and `Z`.
///
// INVARIANT: the inner timestamp has no sub-microsecond part, so that text and value
// round-trip exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Stamp(jiff::Timestamp);

/// Text that is not an RFC 3339 instant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid time `{given}`: {reason}; expected an RFC 3339 instant such as 2026-12-04T02:38:00Z or 2026-12-04T03:38:00+01:00"
)]
pub struct InvalidStamp {
    given: String,
    reason: String,
}

impl Stamp {
    /// The instant `t`, truncated to the microsecond.
    pub fn new(t: jiff::Timestamp) -> Self {
        // INVARIANT: truncated to the microsecond. Every microsecond count of a valid
        // timestamp is itself a valid timestamp, so the fallback is never taken.
        Self(jiff::Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t))
    }

    /// The instant as a [`jiff::Timestamp`], for arithmetic and time zones.
    pub fn timestamp(self) -> jiff::Timestamp {
        self.0
    }
}

impl From<jiff::Timestamp> for Stamp {
    fn from(t: jiff::Timestamp) -> Self {
        Self::new(t)
    }
}

impl From<Stamp> for jiff::Timestamp {
    fn from(s: Stamp) -> Self {
        s.0
    }
}

impl FromStr for Stamp {
    type Err = InvalidStamp;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Bound what is echoed back: the text may come from a partner or a caller.
        let shown = || s.chars().take(64).collect::<String>();
        if s.len() > 64 {
            return Err(InvalidStamp { given: shown(), reason: "longer than any instant".into() });
        }
        s.parse::<jiff::Timestamp>()
            .map(Self::new)
            .map_err(|e| InvalidStamp { given: shown(), reason: e.to_string() })
    }
}

impl TryFrom<String> for Stamp {
    type Error = InvalidStamp;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Stamp> for String {
    fn from(s: Stamp) -> Self {
        s.to_string()
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn writes_six_fractional_digits_in_utc() {
        let s: Stamp = "2026-12-04T03:38:00.5+01:00".parse().unwrap();
        assert_eq!(s.to_string(), "2026-12-04T02:38:00.500000Z");
        let s: Stamp = "2026-12-04T02:38:00Z".parse().unwrap();
        assert_eq!(s.to_string(), "2026-12-04T02:38:00.000000Z");
    }

    #[test]
    fn truncates_below_the_microsecond() {
        let s: Stamp = "2026-12-04T02:38:00.123456789Z".parse().unwrap();
        assert_eq!(s.to_string(), "2026-12-04T02:38:00.123456Z");
        assert_eq!(s, s.to_string().parse().unwrap());
    }

    #[test]
    fn refuses_what_is_not_an_instant() {
        for bad in [
            "",
            "yesterday",
            "2026-12-04",
            "2026-12-04T02:38:00",
            "2026-13-04T02:38:00Z",
            "2026-02-30T02:38:00Z",
            "2026-12-04T25:00:00Z",
        ] {
            let e = bad.parse::<Stamp>().unwrap_err().to_string();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
            assert!(e.contains("expected an RFC 3339 instant"), "{e}");
        }
        let long = "9".repeat(10_000);
        let e = long.parse::<Stamp>().unwrap_err().to_string();
        assert!(e.len() < 300, "the message echoes at most 64 characters: {e}");
    }

    #[test]
    fn serde_is_its_text_and_refuses_bad_text() {
        let s: Stamp = "2026-12-04T02:38:00.25Z".parse().unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"2026-12-04T02:38:00.250000Z\"");
        assert_eq!(serde_json::from_str::<Stamp>(&json).unwrap(), s);
        let e = serde_json::from_str::<Stamp>("\"noon\"").unwrap_err().to_string();
        assert!(e.contains("invalid time `noon`"), "{e}");
    }

    proptest! {
        #[test]
        fn text_round_trips_and_orders_as_the_instant(
            a in -62_135_596_800_000_000i64..253_402_300_799_000_000,
            b in -62_135_596_800_000_000i64..253_402_300_799_000_000,
        ) {
            let sa = Stamp::new(jiff::Timestamp::from_microsecond(a).unwrap());
            let sb = Stamp::new(jiff::Timestamp::from_microsecond(b).unwrap());
            prop_assert_eq!(sa, sa.to_string().parse::<Stamp>().unwrap());
            prop_assert_eq!(sa.cmp(&sb), a.cmp(&b));
            // Text of years 0001-9999 sorts as the instant, which the stores' ORDER BY on
            // the text column relies on.
            prop_assert_eq!(sa.to_string().cmp(&sb.to_string()), a.cmp(&b));
        }
    }
}
