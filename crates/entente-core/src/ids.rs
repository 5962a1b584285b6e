//! Identifiers of the vocabulary: party codes, user roles, and the ids people choose (cases,
//! requests, evidence items, collections).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// ISO 3166-1 alpha-2 codes officially assigned, plus `EU` (exceptionally reserved for the
/// European Union, which is a party in its own right to several agreements).
const PARTY_CODES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW EU";

/// A party to agreements: a state by its ISO 3166-1 alpha-2 code, or `EU`.
///
// INVARIANT: the inner string is one of `PARTY_CODES`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PartyCode(String);

/// A party code that is not an ISO 3166-1 alpha-2 code (nor `EU`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown party code `{given}`: expected an ISO 3166-1 alpha-2 country code such as NL, DE or US (or EU){hint}"
)]
pub struct UnknownParty {
    given: String,
    hint: String,
}

impl PartyCode {
    /// Returns the code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PartyCode {
    type Err = UnknownParty;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        if upper.len() == 2 && PARTY_CODES.split(' ').any(|c| c == upper) {
            // INVARIANT: checked against the list just above.
            return Ok(Self(upper));
        }
        let hint = match upper.as_str() {
            "UK" => "; the United Kingdom is GB".to_owned(),
            "EL" => "; Greece is GR".to_owned(),
            _ => String::new(),
        };
        Err(UnknownParty { given: s.to_owned(), hint })
    }
}

impl TryFrom<String> for PartyCode {
    type Error = UnknownParty;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PartyCode> for String {
    fn from(p: PartyCode) -> Self {
        p.0
    }
}

impl fmt::Display for PartyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a user of a node is there to do. Roles decide which gate actions the user may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs the node: users, peers, configuration.
    Admin,
    /// Works cases at a cyber-crime unit.
    Investigator,
    /// Central authority for mutual legal assistance or a judicial officer.
    CentralAuthority,
    /// Analyst at a CSIRT.
    Csirt,
    /// Data-protection officer.
    Dpo,
    /// Oversight: reads and verifies the ledger, changes nothing.
    Auditor,
    /// A filter team (taint team): lawyers or officers outside the case team who review
    /// evidence flagged as possibly privileged before the case team may export it.
    FilterTeam,
}

impl Role {
    /// Every role, in a stable order.
    pub const ALL: [Role; 7] = [
        Role::Admin,
        Role::Investigator,
        Role::CentralAuthority,
        Role::Csirt,
        Role::Dpo,
        Role::Auditor,
        Role::FilterTeam,
    ];

    /// Returns the role's name as used in files, the CLI and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Investigator => "investigator",
            Role::CentralAuthority => "central-authority",
            Role::Csirt => "csirt",
            Role::Dpo => "dpo",
            Role::Auditor => "auditor",
            Role::FilterTeam => "filter-team",
        }
    }
}

/// A role name that is not one of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown role `{0}`: expected one of admin, investigator, central-authority, csirt, dpo, auditor, filter-team"
)]
pub struct UnknownRole(String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks an identifier chosen by people (user names, case ids): 1–64 characters from
/// `A–Z a–z 0–9 . _ -`, starting with a letter or digit.
///
/// # Errors
/// Returns what is wrong with the identifier, in words.
pub fn check_identifier(what: &str, s: &str) -> Result<(), String> {
    let ok_len = (1..=64).contains(&s.len());
    let ok_first = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_chars = s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok_len && ok_first && ok_chars {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} `{s}`: expected 1 to 64 characters from A-Z, a-z, 0-9, '.', '_', '-', starting with a letter or digit"
        ))
    }
}

/// An identifier that does not follow the rules of [`check_identifier`]; the message names
/// what it identifies.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidIdentifier(String);

/// A newtype for an identifier chosen by people, well formed by construction: it is only made
/// by parsing, which applies [`check_identifier`].
macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        identifier!($(#[$doc])* $name, $what, check_identifier);
    };
    ($(#[$doc:meta])* $name:ident, $what:literal, $check:path) => {
        $(#[$doc])*
        // INVARIANT: the inner string passes its check (`check_identifier` unless named).
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// What the identifier names, as error messages say it.
            pub const WHAT: &'static str = $what;

            /// Returns the identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidIdentifier;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $check($what, s).map_err(InvalidIdentifier)?;
                // INVARIANT: checked just above.
                Ok(Self(s.to_owned()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidIdentifier;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                $check($what, &s).map_err(InvalidIdentifier)?;
                // INVARIANT: checked just above.
                Ok(Self(s))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

identifier!(
    /// A case's id (e.g. `LANTERN`).
    CaseId,
    "case id"
);
identifier!(
    /// A cross-border request's id.
    RequestId,
    "request id"
);
identifier!(
    /// An evidence item's id.
    ItemId,
    "evidence id"
);
identifier!(
    /// A datum's id (a data item shared under the agreements, kept across parties).
    DatumId,
    "datum id"
);
identifier!(
    /// A threat-intelligence (TAXII) collection's id: a lowercase UUID, as TAXII 2.1 §5.2
    /// requires.
    CollectionId,
    "collection id",
    check_uuid
);

/// Checks that `s` is a UUID in lowercase hex (`8-4-4-4-12`), as STIX and TAXII ids are.
///
/// # Errors
/// Returns what is wrong, in words.
pub fn check_uuid(what: &str, s: &str) -> Result<(), String> {
    let parts: Vec<&str> = s.split('-').collect();
    let ok = parts.len() == 5
        && [8, 4, 4, 4, 12].iter().zip(&parts).all(|(n, p)| {
            p.len() == *n && p.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
    if ok { Ok(()) } else { Err(format!("{what}: expected a lowercase UUID, found `{s}`")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_ids_are_lowercase_uuids() {
        let id = "91a7b528-80eb-42ed-a74d-c6fbd5a26116";
        assert_eq!(id.parse::<CollectionId>().unwrap().as_str(), id);
        for bad in
            ["91A7B528-80EB-42ED-A74D-C6FBD5A26116", "LANTERN", "91a7b528-80eb-42ed-a74d", ""]
        {
            let e = bad.parse::<CollectionId>().unwrap_err().to_string();
            assert!(e.contains("expected a lowercase UUID"), "{e}");
        }
    }

    #[test]
    fn party_codes_parse_case_insensitively() {
        assert_eq!("nl".parse::<PartyCode>().unwrap().as_str(), "NL");
        assert_eq!("EU".parse::<PartyCode>().unwrap().as_str(), "EU");
    }

    #[test]
    fn unknown_party_is_explained() {
        let e = "UK".parse::<PartyCode>().unwrap_err().to_string();
        assert!(e.contains("unknown party code `UK`"), "{e}");
        assert!(e.contains("GB"), "{e}");
        assert!("XX".parse::<PartyCode>().is_err());
        assert!("NLD".parse::<PartyCode>().is_err());
    }

    #[test]
    fn roles_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn identifier_newtypes_parse_with_the_identifier_rules() {
        let id: CaseId = "lantern-2026.1".parse().unwrap();
        assert_eq!(id.as_str(), "lantern-2026.1");
        assert_eq!(id.to_string(), "lantern-2026.1");
        assert_eq!(String::from(id.clone()), "lantern-2026.1");
        assert_eq!(CaseId::try_from("lantern-2026.1".to_owned()).unwrap(), id);
        let rules = "expected 1 to 64 characters from A-Z, a-z, 0-9, '.', '_', '-', starting with a letter or digit";
        assert_eq!(
            "-x".parse::<CaseId>().unwrap_err().to_string(),
            format!("invalid case id `-x`: {rules}")
        );
        assert_eq!(
            RequestId::try_from(String::new()).unwrap_err().to_string(),
            format!("invalid request id ``: {rules}")
        );
        assert_eq!(
            "a/b".parse::<ItemId>().unwrap_err().to_string(),
            format!("invalid evidence id `a/b`: {rules}")
        );
        assert_eq!(
            "a".repeat(65).parse::<DatumId>().unwrap_err().to_string(),
            format!("invalid datum id `{}`: {rules}", "a".repeat(65))
        );
        assert!("../x".parse::<ItemId>().is_err());
        assert!("é".parse::<CaseId>().is_err());
    }

    #[test]
    fn identifier_newtypes_refuse_bad_ids_when_deserialized() {
        let id: CaseId = serde_json::from_str("\"LANTERN\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"LANTERN\"");
        let e = serde_json::from_str::<CaseId>("\"a b\"").unwrap_err().to_string();
        assert!(e.starts_with("invalid case id `a b`"), "{e}");
        assert!(serde_json::from_str::<RequestId>("7").is_err());
    }

    proptest::proptest! {
        #[test]
        fn identifier_newtypes_round_trip(s in "[A-Za-z0-9][A-Za-z0-9._-]{0,63}") {
            let id: CaseId = s.parse().unwrap();
            proptest::prop_assert_eq!(id.as_str(), s.as_str());
            proptest::prop_assert_eq!(id.to_string().parse::<CaseId>().unwrap(), id.clone());
            let json = serde_json::to_string(&id).unwrap();
            proptest::prop_assert_eq!(serde_json::from_str::<CaseId>(&json).unwrap(), id);
        }

        #[test]
        fn identifier_newtypes_accept_exactly_what_check_identifier_accepts(s in "\\PC{0,70}") {
            proptest::prop_assert_eq!(
                s.parse::<RequestId>().is_ok(),
                check_identifier(RequestId::WHAT, &s).is_ok()
            );
        }
    }

    #[test]
    fn identifiers() {
        assert!(check_identifier("case id", "LANTERN").is_ok());
        assert!(check_identifier("case id", "lantern-2026.1").is_ok());
        assert!(check_identifier("case id", "").is_err());
        assert!(check_identifier("case id", "-x").is_err());
        assert!(check_identifier("case id", "a b").is_err());
        assert!(check_identifier("case id", &"a".repeat(65)).is_err());
    }
}
