//! SHA-256 digests as values that are well formed by construction.
//!
//! Digests appear in ledger entries, envelopes and evidence packages as `sha256:<64 lowercase
//! hex>` (what [`crate::canonical::sha256_tagged`] writes). [`Sha256`] holds the 32 bytes; it
//! parses that form and the bare 64 hex digits, and refuses anything else — another
//! algorithm, another length, uppercase or non-hex digits — naming what is wrong. It always
//! writes the tagged form, so one digest has one spelling.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The tag before the hex digits of a SHA-256 digest.
pub const SHA256_TAG: &str = "sha256:";

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Sha256([u8; 32]);

/// Text that is not a SHA-256 digest.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Tagged with another algorithm (`md5:…`, `SHA256:…`).
    #[error(
        "digest `{given}`: unknown algorithm `{algorithm}`; expected `sha256:` and 64 lowercase hex digits"
    )]
    Algorithm {
        /// The text given.
        given: String,
        /// The tag found before `:`.
        algorithm: String,
    },
    /// Not 64 hex digits.
    #[error("digest `{given}`: found {found} hex digits; expected 64")]
    Length {
        /// The text given.
        given: String,
        /// How many hex digits there are (after the tag, if any).
        found: usize,
    },
    /// A character that is not a lowercase hex digit.
    #[error(
        "digest `{given}`: found `{character}` at position {position} of the hex digits; expected lowercase hex digits (0-9, a-f)"
    )]
    Digit {
        /// The text given.
        given: String,
        /// The first offending character.
        character: char,
        /// Its 1-based position among the hex digits.
        position: usize,
    },
}

impl Sha256 {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Sha256(sha2::Sha256::digest(bytes).into())
    }

    /// The digest with these bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Sha256(bytes)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hex digits, without the tag.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl FromStr for Sha256 {
    type Err = DigestError;

    /// Parses `sha256:<64 lowercase hex>` or the 64 lowercase hex digits alone.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = match s.split_once(':') {
            Some(("sha256", digits)) => digits,
            Some((algorithm, _)) => {
                return Err(DigestError::Algorithm {
                    given: s.to_owned(),
                    algorithm: algorithm.to_owned(),
                });
            }
            None => s,
        };
        if let Some((i, c)) =
            digits.chars().enumerate().find(|(_, c)| !matches!(c, '0'..='9' | 'a'..='f'))
        {
            return Err(DigestError::Digit { given: s.to_owned(), character: c, position: i + 1 });
        }
        // Every character is an ASCII hex digit here, so bytes are digits.
        let found = digits.len();
        let mut bytes = [0u8; 32];
        match hex::decode_to_slice(digits, &mut bytes) {
            Ok(()) => Ok(Sha256(bytes)),
            Err(_) => Err(DigestError::Length { given: s.to_owned(), found }),
        }
    }
}

impl TryFrom<String> for Sha256 {
    type Error = DigestError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Sha256> for String {
    fn from(d: Sha256) -> Self {
        d.to_string()
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SHA256_TAG}{}", self.to_hex())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// SHA-256 of the empty string (FIPS 180-4 test vector).
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digests_agree_with_the_tagged_form_of_canonical() {
        let d = Sha256::of(b"");
        assert_eq!(d.to_hex(), EMPTY);
        assert_eq!(d.to_string(), format!("sha256:{EMPTY}"));
        assert_eq!(d.to_string(), crate::canonical::sha256_tagged(b""));
        assert_eq!(format!("{d:?}"), format!("Sha256(sha256:{EMPTY})"));
    }

    #[test]
    fn tagged_and_bare_forms_parse_to_the_same_digest() {
        let tagged: Sha256 = format!("sha256:{EMPTY}").parse().unwrap();
        let bare: Sha256 = EMPTY.parse().unwrap();
        assert_eq!(tagged, bare);
        assert_eq!(tagged, Sha256::of(b""));
        assert_eq!(Sha256::from_bytes(*tagged.as_bytes()), tagged);
    }

    fn err(s: &str) -> String {
        s.parse::<Sha256>().unwrap_err().to_string()
    }

    #[test]
    fn another_algorithm_is_refused() {
        assert_eq!(
            err(&format!("md5:{EMPTY}")),
            format!(
                "digest `md5:{EMPTY}`: unknown algorithm `md5`; expected `sha256:` and 64 lowercase hex digits"
            )
        );
        assert!(matches!(
            format!("SHA256:{EMPTY}").parse::<Sha256>(),
            Err(DigestError::Algorithm { algorithm, .. }) if algorithm == "SHA256"
        ));
        assert!(matches!(
            format!(":{EMPTY}").parse::<Sha256>(),
            Err(DigestError::Algorithm { algorithm, .. }) if algorithm.is_empty()
        ));
    }

    #[test]
    fn a_wrong_length_is_refused() {
        assert_eq!(err("sha256:abc"), "digest `sha256:abc`: found 3 hex digits; expected 64");
        assert_eq!(err(""), "digest ``: found 0 hex digits; expected 64");
        assert_eq!(err("sha256:"), "digest `sha256:`: found 0 hex digits; expected 64");
        let long = format!("{EMPTY}00");
        assert!(matches!(long.parse::<Sha256>(), Err(DigestError::Length { found: 66, .. })));
        // An odd number of digits is a wrong length too.
        assert!(matches!(EMPTY[1..].parse::<Sha256>(), Err(DigestError::Length { found: 63, .. })));
    }

    #[test]
    fn uppercase_and_non_hex_digits_are_refused() {
        let upper = EMPTY.to_ascii_uppercase();
        assert_eq!(
            err(&upper),
            format!(
                "digest `{upper}`: found `E` at position 1 of the hex digits; expected lowercase hex digits (0-9, a-f)"
            )
        );
        let mut bad = EMPTY.to_owned();
        bad.replace_range(10..11, "g");
        assert!(matches!(
            format!("sha256:{bad}").parse::<Sha256>(),
            Err(DigestError::Digit { character: 'g', position: 11, .. })
        ));
        assert!(matches!(
            format!("sha256: {}", &EMPTY[1..]).parse::<Sha256>(),
            Err(DigestError::Digit { character: ' ', position: 1, .. })
        ));
        assert!(matches!(
            format!("sha256:{}é", &EMPTY[2..]).parse::<Sha256>(),
            Err(DigestError::Digit { character: 'é', position: 63, .. })
        ));
    }

    #[test]
    fn serde_writes_the_tagged_form_and_refuses_bad_text() {
        let d = Sha256::of(b"");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"sha256:{EMPTY}\""));
        assert_eq!(serde_json::from_str::<Sha256>(&json).unwrap(), d);
        assert_eq!(serde_json::from_str::<Sha256>(&format!("\"{EMPTY}\"")).unwrap(), d);
        let e = serde_json::from_str::<Sha256>("\"sha256:xyz\"").unwrap_err().to_string();
        assert!(e.contains("found `x` at position 1"), "{e}");
        assert!(serde_json::from_str::<Sha256>("42").is_err());
    }

    proptest! {
        #[test]
        fn any_digest_round_trips(bytes in any::<[u8; 32]>()) {
            let d = Sha256::from_bytes(bytes);
            prop_assert_eq!(d.to_string().parse::<Sha256>().unwrap(), d);
            prop_assert_eq!(d.to_hex().parse::<Sha256>().unwrap(), d);
            let json = serde_json::to_string(&d).unwrap();
            prop_assert_eq!(serde_json::from_str::<Sha256>(&json).unwrap(), d);
        }

        #[test]
        fn parsing_accepts_exactly_the_canonical_spellings(s in "(sha256:)?[0-9a-fA-F:]{0,70}") {
            let digits = s.strip_prefix("sha256:").unwrap_or(&s);
            let canonical = digits.len() == 64
                && digits.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'));
            match s.parse::<Sha256>() {
                Ok(d) => {
                    prop_assert!(canonical, "accepted {s}");
                    prop_assert_eq!(d.to_hex(), digits);
                }
                Err(_) => prop_assert!(!canonical, "refused {s}"),
            }
        }
    }
}
