//! TLP 2.0 (FIRST, 2022) as STIX 2.1 marking definitions, and the sharing decision.
//!
//! The five marking definitions are the standard objects of the OASIS TLP 2.0 extension
//! (`extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d`), with their standard ids;
//! the four TLP 1.0 markings predefined by STIX 2.1 are read too (WHITE as CLEAR).
//!
//! [`decide`] says whether one object may be served to one requester. It is enforced, not
//! displayed: the node serves an object only when it permits. The rules, for an object whose
//! strictest marking (object-level or granular, anywhere on the object) is:
//!
//! - **CLEAR** — anyone who may read the collection.
//! - **GREEN** — the node's own users, and partner parties of the community: those bound
//!   with this party by an agreement in force (the governing agreement).
//! - **AMBER** — the node's own users; a partner party only under a governing agreement and
//!   only if it is a recipient: named in the object's `x_entente_recipients`, or, when the
//!   object names no party, one of the collection's parties. Received from another party,
//!   it goes on only to parties the originator named.
//! - **AMBER+STRICT** — as AMBER for the originating party's node (the recipient
//!   organisation is named); never onward from a node that received it: the recipient
//!   organisation only.
//! - **RED** — only named recipients: a party named (`DE`) or a user named (`NL:eva`), and
//!   the user who imported it; never onward from a node that received it.
//!
//! An object without any TLP marking is treated as TLP:AMBER: no marking is not a permission.
//! Granular markings are respected by taking the strictest level anywhere on the object: an
//! object is served whole or not at all, so a requester never receives a part marked above
//! what it may see.

use entente_core::PartyCode;
use std::fmt;

/// The id of the TLP 2.0 extension definition.
pub const EXTENSION_ID: &str = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d";

/// A TLP 2.0 level, ordered from the least to the most restrictive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tlp {
    /// TLP:CLEAR (TLP 1.0 WHITE).
    Clear,
    /// TLP:GREEN.
    Green,
    /// TLP:AMBER.
    Amber,
    /// TLP:AMBER+STRICT.
    AmberStrict,
    /// TLP:RED.
    Red,
}

impl Tlp {
    /// All levels, least restrictive first.
    pub const ALL: [Tlp; 5] = [Tlp::Clear, Tlp::Green, Tlp::Amber, Tlp::AmberStrict, Tlp::Red];

    /// `TLP:CLEAR`, `TLP:GREEN`, …
    pub fn name(self) -> &'static str {
        match self {
            Tlp::Clear => "TLP:CLEAR",
            Tlp::Green => "TLP:GREEN",
            Tlp::Amber => "TLP:AMBER",
            Tlp::AmberStrict => "TLP:AMBER+STRICT",
            Tlp::Red => "TLP:RED",
        }
    }

    /// The `tlp_2_0` value of the extension: `clear`, `green`, `amber`, `amber+strict`, `red`.
    pub fn code(self) -> &'static str {
        match self {
            Tlp::Clear => "clear",
            Tlp::Green => "green",
            Tlp::Amber => "amber",
            Tlp::AmberStrict => "amber+strict",
            Tlp::Red => "red",
        }
    }

    /// The standard id of the TLP 2.0 marking definition.
    pub fn marking_id(self) -> &'static str {
        match self {
            Tlp::Clear => "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
            Tlp::Green => "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
            Tlp::Amber => "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
            Tlp::AmberStrict => "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
            Tlp::Red => "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
        }
    }

    /// The level of a marking definition id: TLP 2.0, or TLP 1.0 as predefined by STIX 2.1.
    pub fn from_marking_id(id: &str) -> Option<Tlp> {
        Tlp::ALL.into_iter().find(|t| t.marking_id() == id).or(match id {
            "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9" => Some(Tlp::Clear),
            "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da" => Some(Tlp::Green),
            "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82" => Some(Tlp::Amber),
            "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed" => Some(Tlp::Red),
            _ => None,
        })
    }

    /// The level named `clear`, `green`, `amber`, `amber+strict` or `red` (any case, with
    /// or without `TLP:`).
    pub fn parse(s: &str) -> Option<Tlp> {
        let s = s.trim().to_ascii_lowercase();
        let s = s.strip_prefix("tlp:").unwrap_or(&s);
        Tlp::ALL.into_iter().find(|t| t.code() == s).or((s == "white").then_some(Tlp::Clear))
    }

    /// The standard marking-definition object, as published with the extension.
    pub fn marking_definition(self) -> String {
        format!(
            r#"{{"type":"marking-definition","spec_version":"2.1","id":"{}","created":"2022-10-01T00:00:00.000Z","name":"{}","extensions":{{"{EXTENSION_ID}":{{"extension_type":"property-extension","tlp_2_0":"{}"}}}}}}"#,
            self.marking_id(),
            self.name(),
            self.code()
        )
    }
}

impl fmt::Display for Tlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The strictest TLP level among marking references, or `None` if none is a TLP marking.
pub fn strictest(markings: &[String]) -> Option<Tlp> {
    markings.iter().filter_map(|m| Tlp::from_marking_id(m)).max()
}

/// The level an object is handled at: its strictest TLP marking, TLP:AMBER if unmarked.
pub fn effective(markings: &[String]) -> Tlp {
    strictest(markings).unwrap_or(Tlp::Amber)
}

/// Who asks for an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requester<'a> {
    /// A user of this node (of the node's party).
    User {
        /// The user's name.
        name: &'a str,
    },
    /// A partner node, for its party.
    Peer {
        /// The partner's party.
        party: &'a PartyCode,
    },
}

/// What the decision looks at about one object.
#[derive(Clone, Copy, Debug)]
pub struct Shared<'a> {
    /// The object's level ([`effective`]).
    pub tlp: Tlp,
    /// Its named recipients (`DE`, `NL:eva`).
    pub recipients: &'a [String],
    /// The party whose node first published it (this node's party for local imports).
    pub originator: &'a PartyCode,
    /// The user who imported it on this node, if a user did.
    pub importer: Option<&'a str>,
}

/// The exchange the object would be served in.
#[derive(Clone, Copy, Debug)]
pub struct Exchange<'a> {
    /// This node's party.
    pub node_party: &'a PartyCode,
    /// The parties the collection is shared with.
    pub collection_parties: &'a [PartyCode],
    /// The agreement in force binding this party and a peer requester, if any.
    pub governing: Option<&'a str>,
}

/// The decision on one object for one requester: whether it is served, and the rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Release {
    /// Whether the object may be served.
    pub permit: bool,
    /// The rule that decided (`tlp.amber.recipient`, …).
    pub rule: &'static str,
}

fn release(permit: bool, rule: &'static str) -> Release {
    Release { permit, rule }
}

fn names_party(recipients: &[String], party: &PartyCode) -> bool {
    recipients.iter().any(|r| r.split(':').next() == Some(party.as_str()))
}

fn names_any_party(recipients: &[String]) -> bool {
    !recipients.is_empty()
}

/// Decides whether `object` may be served to `requester` in `exchange`. Pure.
pub fn decide(object: &Shared<'_>, requester: Requester<'_>, exchange: &Exchange<'_>) -> Release {
    let own = exchange.node_party;
    match requester {
        Requester::User { name } => {
            if object.tlp != Tlp::Red {
                return release(true, "tlp.own-organisation");
            }
            let me = format!("{own}:{name}");
            let named = object.recipients.iter().any(|r| r == &me || r == own.as_str())
                || object.importer == Some(name);
            if named { release(true, "tlp.red.named") } else { release(false, "tlp.red.not-named") }
        }
        Requester::Peer { party } => {
            if object.tlp == Tlp::Clear {
                return release(true, "tlp.clear");
            }
            if party == object.originator {
                return release(true, "tlp.originator");
            }
            if exchange.governing.is_none() {
                return release(false, "tlp.no-governing-agreement");
            }
            let onward = object.originator != own;
            match object.tlp {
                Tlp::Clear | Tlp::Green => release(true, "tlp.green.community"),
                Tlp::Red if onward => release(false, "tlp.red.no-onward"),
                Tlp::Red => {
                    if names_party(object.recipients, party) {
                        release(true, "tlp.red.named")
                    } else {
                        release(false, "tlp.red.not-named")
                    }
                }
                Tlp::AmberStrict if onward => release(false, "tlp.amber-strict.no-onward"),
                Tlp::Amber if onward => {
                    if names_party(object.recipients, party) {
                        release(true, "tlp.amber.named")
                    } else {
                        release(false, "tlp.amber.no-onward")
                    }
                }
                Tlp::Amber | Tlp::AmberStrict => {
                    let recipient = if names_any_party(object.recipients) {
                        names_party(object.recipients, party)
                    } else {
                        exchange.collection_parties.contains(party)
                    };
                    match (recipient, object.tlp) {
                        (true, Tlp::Amber) => release(true, "tlp.amber.recipient"),
                        (true, _) => release(true, "tlp.amber-strict.recipient"),
                        (false, _) => release(false, "tlp.amber.not-recipient"),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PartyCode {
        s.parse().unwrap()
    }

    #[test]
    fn standard_ids_and_objects() {
        assert_eq!(Tlp::from_marking_id(Tlp::AmberStrict.marking_id()), Some(Tlp::AmberStrict));
        assert_eq!(
            Tlp::from_marking_id("marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"),
            Some(Tlp::Clear)
        );
        for t in Tlp::ALL {
            let v: serde_json::Value = serde_json::from_str(&t.marking_definition()).unwrap();
            assert_eq!(v["extensions"][EXTENSION_ID]["tlp_2_0"], t.code());
            assert_eq!(Tlp::parse(t.name()), Some(t));
        }
        assert_eq!(
            strictest(&[Tlp::Green.marking_id().into(), Tlp::Red.marking_id().into()]),
            Some(Tlp::Red)
        );
        assert_eq!(effective(&[]), Tlp::Amber);
    }

    #[test]
    fn the_pilot_exchange() {
        let (nl, de, us, fr) = (p("NL"), p("DE"), p("US"), p("FR"));
        let parties = [de.clone(), us.clone()];
        let ex = |gov: Option<&'static str>| Exchange {
            node_party: &nl,
            collection_parties: &parties,
            governing: gov,
        };
        let none: Vec<String> = vec![];
        let amber =
            Shared { tlp: Tlp::Amber, recipients: &none, originator: &nl, importer: Some("eva") };
        assert!(decide(&amber, Requester::Peer { party: &de }, &ex(Some("eu-2023-1543"))).permit);
        assert!(decide(&amber, Requester::Peer { party: &us }, &ex(Some("nl-us-mla"))).permit);
        // Not a collection party, or no agreement: withheld.
        assert!(!decide(&amber, Requester::Peer { party: &fr }, &ex(Some("ets-185"))).permit);
        assert_eq!(
            decide(&amber, Requester::Peer { party: &de }, &ex(None)).rule,
            "tlp.no-governing-agreement"
        );
        let named = vec!["DE".to_owned()];
        let red =
            Shared { tlp: Tlp::Red, recipients: &named, originator: &nl, importer: Some("eva") };
        assert!(decide(&red, Requester::Peer { party: &de }, &ex(Some("x"))).permit);
        assert!(!decide(&red, Requester::Peer { party: &us }, &ex(Some("x"))).permit);
        assert!(decide(&red, Requester::User { name: "eva" }, &ex(None)).permit);
        assert!(!decide(&red, Requester::User { name: "bob" }, &ex(None)).permit);
        // Received from DE: AMBER+STRICT stays with the recipient organisation.
        let strict =
            Shared { tlp: Tlp::AmberStrict, recipients: &none, originator: &de, importer: None };
        assert!(!decide(&strict, Requester::Peer { party: &us }, &ex(Some("x"))).permit);
        assert!(decide(&strict, Requester::Peer { party: &de }, &ex(Some("x"))).permit);
        assert!(decide(&strict, Requester::User { name: "bob" }, &ex(None)).permit);
        let green = Shared { tlp: Tlp::Green, recipients: &none, originator: &de, importer: None };
        assert!(decide(&green, Requester::Peer { party: &us }, &ex(Some("x"))).permit);
        let clear = Shared { tlp: Tlp::Clear, recipients: &none, originator: &nl, importer: None };
        assert!(decide(&clear, Requester::Peer { party: &fr }, &ex(None)).permit);
    }

    proptest::proptest! {
        /// Raising an object's level never lets more requesters receive it.
        #[test]
        fn stricter_never_shares_more(a in 0usize..5, b in 0usize..5, peer in 0usize..3, gov: bool, named: bool, onward: bool) {
            let (lo, hi) = (Tlp::ALL[a.min(b)], Tlp::ALL[a.max(b)]);
            let parties = [p("DE"), p("US"), p("FR")];
            let nl = p("NL");
            let origin = if onward { parties[2].clone() } else { nl.clone() };
            let recipients: Vec<String> = if named { vec!["DE".into()] } else { vec![] };
            let ex = Exchange { node_party: &nl, collection_parties: &parties[..2], governing: gov.then_some("a") };
            let who = Requester::Peer { party: &parties[peer] };
            let mk = |t| Shared { tlp: t, recipients: &recipients, originator: &origin, importer: None };
            if decide(&mk(hi), who, &ex).permit {
                proptest::prop_assert!(decide(&mk(lo), who, &ex).permit);
            }
        }
    }
}
