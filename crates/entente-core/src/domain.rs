//! The shared vocabulary of data flows: categories of data, purposes, kinds of cross-border
//! request, the onward-transfer rule, and the conditions that travel with a datum.
//!
//! These are written in agreement files, in ledger entries, in envelopes and in evidence
//! packages; their serialized names (kebab-case) are part of those formats and never change.
//! They live here, below every crate that speaks them, so a crate can use them without the
//! agreement engine.

use crate::ids::PartyCode;
use serde::{Deserialize, Serialize};

/// Categories of data an agreement lets flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataCategory {
    /// Subscriber information (identity of an account holder).
    Subscriber,
    /// Traffic data (who communicated with whom, when, from where).
    Traffic,
    /// Content data.
    Content,
    /// Threat intelligence (indicators, STIX objects).
    ThreatIntel,
    /// Personal data of third parties (people who are not suspects).
    PersonalDataOfThirdParties,
    /// Case information exchanged between authorities (status, timeline).
    CaseInformation,
}

/// Purposes data may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// Investigation of a criminal offence.
    CriminalInvestigation,
    /// Prosecution of a criminal offence.
    Prosecution,
    /// Response to a security incident.
    IncidentResponse,
    /// Sharing of threat intelligence for defence.
    ThreatIntelligence,
    /// Work of a joint investigation team.
    JointInvestigation,
    /// Deconfliction: finding out, before a formal request, whether a partner holds anything
    /// on selectors (private set intersection; nothing but the overlap is learnt).
    Deconfliction,
}

/// Kinds of cross-border request an agreement provides for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestKind {
    /// Expedited preservation of stored data.
    Preservation,
    /// Production of stored data.
    Production,
    /// Subscriber information.
    SubscriberData,
    /// Traffic data.
    TrafficData,
    /// Disclosure in an emergency.
    EmergencyDisclosure,
    /// Mutual legal assistance.
    Mla,
    /// Invitation to a joint investigation team.
    JitInvitation,
}

/// What the receiver may do with data it received under an agreement, towards a third party.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnwardTransfer {
    /// Never.
    Forbidden,
    /// Only with the prior consent of the party that originated the data.
    ConsentOfOriginator,
    /// No restriction from this agreement.
    Free,
}

/// Gives an enum whose values are a closed set of kebab-case names (as serde writes them,
/// `rename_all = "kebab-case"`) its list of values `ALL`, its names `as_str` and `Display`:
/// `kebab_vocabulary!(Type, { Variant => "name", ... });`, in the crate that defines `Type`.
/// A test of each vocabulary checks the names are those serde writes.
#[macro_export]
macro_rules! kebab_vocabulary {
    ($t:ty, { $($v:ident => $s:literal),+ $(,)? }) => {
        impl $t {
            /// Every value, in the order of the file format's documentation.
            pub const ALL: &'static [$t] = &[$(<$t>::$v),+];

            /// The name used in agreement files (kebab-case, as serialized).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(<$t>::$v => $s),+
                }
            }
        }

        impl ::std::fmt::Display for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

kebab_vocabulary!(DataCategory, {
    Subscriber => "subscriber",
    Traffic => "traffic",
    Content => "content",
    ThreatIntel => "threat-intel",
    PersonalDataOfThirdParties => "personal-data-of-third-parties",
    CaseInformation => "case-information",
});

kebab_vocabulary!(Purpose, {
    CriminalInvestigation => "criminal-investigation",
    Prosecution => "prosecution",
    IncidentResponse => "incident-response",
    ThreatIntelligence => "threat-intelligence",
    JointInvestigation => "joint-investigation",
    Deconfliction => "deconfliction",
});

kebab_vocabulary!(RequestKind, {
    Preservation => "preservation",
    Production => "production",
    SubscriberData => "subscriber-data",
    TrafficData => "traffic-data",
    EmergencyDisclosure => "emergency-disclosure",
    Mla => "mla",
    JitInvitation => "jit-invitation",
});

kebab_vocabulary!(OnwardTransfer, {
    Forbidden => "forbidden",
    ConsentOfOriginator => "consent-of-originator",
    Free => "free",
});

/// The conditions that travel with a datum sent under an agreement and bind its receiver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    /// The party that originated the datum.
    pub originator: PartyCode,
    /// The agreement it travels under.
    pub agreement: String,
    /// Purposes the receiver may use it for.
    pub purposes: Vec<Purpose>,
    /// Keep no longer than this (RFC 3339, UTC), if the agreement limits retention.
    pub retain_until: Option<String>,
    /// The onward-transfer rule.
    pub onward_transfer: OnwardTransfer,
    /// Whether commercial use is prohibited.
    pub commercial_use_prohibited: bool,
    /// The agreement's travelling conditions, by id.
    pub conditions: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    /// The names `as_str` gives are the ones serde writes and reads, for every value.
    fn names_round_trip<T>(all: &[T], as_str: fn(T) -> &'static str)
    where
        T: Copy + PartialEq + fmt::Debug + Serialize + serde::de::DeserializeOwned,
    {
        for v in all.iter().copied() {
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(json, format!("\"{}\"", as_str(v)));
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), v);
        }
    }

    #[test]
    fn serialized_names_are_the_kebab_names() {
        names_round_trip(DataCategory::ALL, DataCategory::as_str);
        names_round_trip(Purpose::ALL, Purpose::as_str);
        names_round_trip(RequestKind::ALL, RequestKind::as_str);
        names_round_trip(OnwardTransfer::ALL, OnwardTransfer::as_str);
    }

    #[test]
    fn names_are_pinned() {
        let all = |names: Vec<&str>| names.join(",");
        assert_eq!(
            all(DataCategory::ALL.iter().map(|c| c.as_str()).collect()),
            "subscriber,traffic,content,threat-intel,personal-data-of-third-parties,case-information"
        );
        assert_eq!(
            all(Purpose::ALL.iter().map(|c| c.as_str()).collect()),
            "criminal-investigation,prosecution,incident-response,threat-intelligence,joint-investigation,deconfliction"
        );
        assert_eq!(
            all(RequestKind::ALL.iter().map(|c| c.as_str()).collect()),
            "preservation,production,subscriber-data,traffic-data,emergency-disclosure,mla,jit-invitation"
        );
        assert_eq!(
            all(OnwardTransfer::ALL.iter().map(|c| c.as_str()).collect()),
            "forbidden,consent-of-originator,free"
        );
    }

    #[test]
    fn conditions_encoding_is_pinned_and_refuses_unknown_fields() {
        let c = Conditions {
            originator: "NL".parse().unwrap(),
            agreement: "eu-2023-1543".to_owned(),
            purposes: vec![Purpose::CriminalInvestigation, Purpose::Prosecution],
            retain_until: Some("2027-01-01T00:00:00Z".to_owned()),
            onward_transfer: OnwardTransfer::ConsentOfOriginator,
            commercial_use_prohibited: true,
            conditions: vec!["no-commercial-use".to_owned()],
        };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"originator":"NL","agreement":"eu-2023-1543","purposes":["criminal-investigation","prosecution"],"retain_until":"2027-01-01T00:00:00Z","onward_transfer":"consent-of-originator","commercial_use_prohibited":true,"conditions":["no-commercial-use"]}"#
        );
        assert_eq!(serde_json::from_str::<Conditions>(&json).unwrap(), c);
        let extra = json.replacen('{', r#"{"extra":1,"#, 1);
        assert!(serde_json::from_str::<Conditions>(&extra).is_err());
        assert!(serde_json::from_str::<DataCategory>("\"Subscriber\"").is_err());
    }
}
