//! `decide`: the pure function at the front of the gate.
//!
//! Today decisions rest on roles; the request already carries the agreements in force so that
//! agreement-based policy slots in without changing any caller.

use crate::action::{Action, Actor, Subject};
use crate::decision::Decision;
use crate::ids::{PartyCode, Role};
use jiff::Timestamp;

/// A reference to an agreement that may ground an action (id and the parties to it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgreementRef {
    /// The agreement's identifier.
    pub id: String,
    /// The parties bound by it.
    pub parties: Vec<PartyCode>,
}

/// Everything `decide` looks at.
#[derive(Clone, Debug)]
pub struct DecisionRequest<'a> {
    /// Who asks.
    pub actor: &'a Actor,
    /// What they ask to do.
    pub action: Action,
    /// On what.
    pub subject: &'a Subject,
    /// The party this node acts for.
    pub node_party: &'a PartyCode,
    /// The purpose stated by the actor, if any.
    pub purpose: Option<&'a str>,
    /// Agreements in force that may apply.
    pub agreements: &'a [AgreementRef],
}

/// One role rule: who may do what.
struct RoleRule {
    id: &'static str,
    action: Action,
    roles: &'static [Role],
}

/// The role rules in force until agreement policy is compiled in. Anything not listed is
/// denied by default.
const ROLE_RULES: &[RoleRule] = &[
    RoleRule { id: "role.admin.user-add", action: Action::UserAdd, roles: &[Role::Admin] },
    RoleRule {
        id: "role.case-worker.case-open",
        action: Action::CaseOpen,
        roles: &[Role::Investigator, Role::CentralAuthority],
    },
    RoleRule {
        id: "role.case-worker.case-read",
        action: Action::CaseRead,
        roles: &[Role::Investigator, Role::CentralAuthority],
    },
    RoleRule {
        id: "role.case-worker.datum-add",
        action: Action::DatumAdd,
        roles: &[Role::Investigator, Role::CentralAuthority, Role::Csirt],
    },
    RoleRule {
        id: "role.case-worker.datum-read",
        action: Action::DatumRead,
        roles: &[Role::Investigator, Role::CentralAuthority, Role::Csirt, Role::Dpo],
    },
    RoleRule {
        id: "role.case-worker.datum-share",
        action: Action::DatumShare,
        roles: &[Role::Investigator, Role::CentralAuthority],
    },
    RoleRule {
        id: "role.central-authority.consent-give",
        action: Action::ConsentGive,
        roles: &[Role::CentralAuthority],
    },
    RoleRule {
        id: "role.case-worker.request-create",
        action: Action::RequestCreate,
        roles: &[Role::Investigator, Role::CentralAuthority],
    },
    RoleRule {
        id: "role.case-worker.request-transition",
        action: Action::RequestTransition,
        roles: &[Role::Investigator, Role::CentralAuthority],
    },
    RoleRule {
        id: "role.case-worker.request-read",
        action: Action::RequestRead,
        roles: &[Role::Investigator, Role::CentralAuthority, Role::Dpo],
    },
    RoleRule {
        id: "role.case-worker.alerts-read",
        action: Action::AlertsRead,
        roles: &[Role::Investigator, Role::CentralAuthority, Role::Dpo, Role::Admin],
    },
    RoleRule { id: "role.dpo.complaint-file", action: Action::ComplaintFile, roles: &[Role::Dpo] },
    RoleRule {
        id: "role.dpo.complaint-answer",
        action: Action::ComplaintAnswer,
        roles: &[Role::Dpo],
    },
    RoleRule {
        id: "role.oversight.complaint-read",
        action: Action::ComplaintRead,
        roles: &[Role::Dpo, Role::Auditor],
    },
    RoleRule {
        id: "role.central-authority.case-member-add",
        action: Action::CaseMemberAdd,
        roles: &[Role::CentralAuthority],
    },
    RoleRule {
        id: "role.case-worker.case-list",
        action: Action::CaseList,
        roles: &[Role::Investigator, Role::CentralAuthority, Role::Dpo],
    },
    RoleRule {
        id: "role.case-worker.case-status",

        action: Action::CaseStatus,
        roles: &[Role::Investigator, Role::CentralAuthority, Role::Dpo],
    },
    RoleRule {
        id: "role.central-authority.case-member-remove",
        action: Action::CaseMemberRemove,
        roles: &[Role::CentralAuthority],
    },
    RoleRule {
        id: "role.incident.notify",
        action: Action::IncidentNotify,
        roles: &[Role::Csirt, Role::CentralAuthority, Role::Investigator],
    },
    RoleRule {
        id: "role.incident.read",
        action: Action::IncidentRead,
        roles: &[Role::Csirt, Role::CentralAuthority, Role::Investigator, Role::Dpo],
    },
    RoleRule { id: "role.admin.peer-add", action: Action::PeerAdd, roles: &[Role::Admin] },
    RoleRule { id: "role.admin.peer-remove", action: Action::PeerRemove, roles: &[Role::Admin] },
    RoleRule {
        id: "role.csirt.intel-collection-create",
        action: Action::IntelCollectionCreate,
        roles: &[Role::Csirt, Role::Admin],
    },
    RoleRule {
        id: "role.intel.import",
        action: Action::IntelImport,
        roles: &[Role::Csirt, Role::Investigator, Role::CentralAuthority],
    },
    RoleRule {
        id: "role.intel.read",
        action: Action::IntelRead,
        roles: &[Role::Csirt, Role::Investigator, Role::CentralAuthority],
    },
    RoleRule { id: "role.csirt.intel-push", action: Action::IntelPush, roles: &[Role::Csirt] },
    RoleRule {
        id: "role.case-worker.evidence-add",
        action: Action::EvidenceAdd,
        roles: &[Role::Investigator, Role::CentralAuthority, Role::Csirt],
    },
    RoleRule {
        id: "role.case-worker.evidence-custody",
        action: Action::EvidenceCustody,
        roles: &[Role::Investigator, Role::CentralAuthority, Role::Csirt],
    },
    RoleRule {
        id: "role.case-worker.evidence-export",
        action: Action::EvidenceExport,
        roles: &[Role::Investigator, Role::CentralAuthority],
    },
    RoleRule {
        id: "role.case-worker.evidence-receive",
        action: Action::EvidenceReceive,
        roles: &[Role::Investigator, Role::CentralAuthority],
    },
    RoleRule {
        id: "role.case-worker.evidence-read",
        action: Action::EvidenceRead,
        roles: &[
            Role::Investigator,
            Role::CentralAuthority,
            Role::Csirt,
            Role::Dpo,
            Role::FilterTeam,
        ],
    },
    RoleRule {
        id: "role.evidence.privilege-flag",
        action: Action::EvidencePrivilegeFlag,
        roles: &[Role::Investigator, Role::CentralAuthority, Role::Csirt, Role::FilterTeam],
    },
    RoleRule {
        id: "role.filter-team.privilege-review",
        action: Action::EvidencePrivilegeReview,
        roles: &[Role::FilterTeam],
    },
    RoleRule {
        id: "role.case-worker.package-send",
        action: Action::PackageSend,
        roles: &[Role::Investigator, Role::CentralAuthority],
    },
    RoleRule {
        id: "role.investigator.psi-query",
        action: Action::PsiQuery,
        roles: &[Role::Investigator],
    },
    RoleRule {
        id: "role.case-worker.psi-status",
        action: Action::PsiStatus,
        roles: &[Role::Investigator, Role::CentralAuthority],
    },
    RoleRule {
        id: "role.admin.psi-key-rotate",
        action: Action::PsiKeyRotate,
        roles: &[Role::Admin],
    },
    RoleRule { id: "role.admin.psi-key-send", action: Action::PsiKeySend, roles: &[Role::Admin] },
    RoleRule {
        id: "role.oversight.report-stats",
        action: Action::ReportStats,
        roles: &[Role::Auditor, Role::Dpo],
    },
    RoleRule {
        id: "role.oversight.report-ledger",
        action: Action::ReportLedger,
        roles: &[Role::Auditor, Role::Dpo],
    },
    RoleRule { id: "role.dpo.report-publish", action: Action::ReportPublish, roles: &[Role::Dpo] },
    RoleRule {
        id: "role.oversight.ledger-read",
        action: Action::LedgerRead,
        roles: &[Role::Auditor, Role::Dpo, Role::Admin],
    },
];

/// Decides an action. Pure: the same request and `now` always give the same decision.
pub fn decide(req: &DecisionRequest<'_>, _now: Timestamp) -> Decision {
    let action = req.action;
    match req.actor {
        Actor::Anonymous => Decision::deny(
            "authn.required",
            format!("{action} on {} needs an authenticated caller", req.subject),
        ),
        Actor::Operator => match action {
            Action::NodeInit | Action::UserAdd => Decision::permit(
                "operator.bootstrap",
                format!("the operator holding the data directory may {action}"),
                Vec::new(),
            ),
            Action::AlertsRead | Action::RequestRead | Action::ComplaintRead => Decision::permit(
                "operator.read",
                "the operator may read requests, the clocks of open requests and complaints",
                Vec::new(),
            ),
            Action::ReportStats | Action::ReportLedger => Decision::permit(
                "operator.report",
                "the operator may read the node's statistics and the oversight view of its ledger",
                Vec::new(),
            ),
            Action::CaseStatus | Action::CaseList => Decision::permit(
                "operator.case-status",
                "the operator may list the node's cases and read their status",
                Vec::new(),
            ),

            Action::IncidentRead => Decision::permit(
                "operator.incident-read",
                "the operator may read the incident notifications sent and received",
                Vec::new(),
            ),
            Action::WitnessAlarm => Decision::permit(
                "operator.witness",
                "the node's witness records what it found in a partner's ledger",
                Vec::new(),
            ),
            Action::PeerAdd | Action::PeerRemove => Decision::permit(
                "operator.peers",
                "the operator holding the data directory decides which partner nodes are trusted",
                Vec::new(),
            ),
            Action::IntelCollectionCreate
            | Action::IntelImport
            | Action::IntelRead
            | Action::IntelPush => Decision::permit(
                "operator.intel",
                "the operator may load threat intelligence feeds and read them as the node's organisation (TLP:RED only where named)",
                Vec::new(),
            ),
            Action::EvidenceRead => Decision::permit(
                "operator.evidence-read",
                "the operator may read an evidence item's custody chain (the reading is recorded)",
                Vec::new(),
            ),
            Action::PackageArrive => Decision::permit(
                "operator.package-fetch",
                "the node's fetcher records the packages it fetched from partners, digest checked",
                Vec::new(),
            ),
            Action::PsiKeyRotate | Action::PsiKeySend | Action::PsiStatus => Decision::permit(
                "operator.psi",
                "the operator rotates the node's deconfliction keys, sends them to the partners, and may read the deconfliction status (recorded)",
                Vec::new(),
            ),
            Action::DatumDestroy | Action::EvidenceDestroy | Action::IncidentDestroy => {
                Decision::permit(
                    "operator.retention",
                    "the operator runs the retention job, which destroys what has expired",
                    Vec::new(),
                )
            }
            Action::RefusalsRecord => Decision::permit(
                "operator.refusals",
                "the node records, in aggregate, the refusals of callers no authenticator admitted",
                Vec::new(),
            ),
            Action::NodeBackup | Action::MaintenanceSweep | Action::MaintenanceScrub => {
                Decision::permit(
                    "operator.maintenance",
                    "the operator holding the data directory backs the node up, sweeps crash leftovers and scrubs the evidence blobs",
                    Vec::new(),
                )
            }
            Action::LedgerRelease => Decision::permit(
                "operator.ledger-release",
                "the operator holding the data directory decides how a ledger on hold goes on",
                Vec::new(),
            ),
            _ => Decision::deny(
                "default-deny",
                format!("the operator may only bootstrap the node and add users, not {action}"),
            ),
        },
        // A partner may deliver data and consents; whether an agreement allows the flow is
        // decided next, by the agreement policy.
        Actor::Peer { party } => match action {
            Action::DatumReceive | Action::ConsentReceive => Decision::permit(
                "peer.deliver",
                format!("peer {party} may deliver ({action}) subject to the agreements in force"),
                Vec::new(),
            ),
            Action::RequestReceive | Action::RequestUpdate => Decision::permit(
                "peer.request",
                format!(
                    "peer {party} may submit requests to this party and record its own transitions of them ({action}), subject to their agreement"
                ),
                Vec::new(),
            ),
            Action::PackageOffer => Decision::permit(
                "peer.package-offer",
                format!("peer {party} may offer this node an evidence package it signed"),
                Vec::new(),
            ),
            Action::EnvelopeAck => Decision::permit(
                "peer.acknowledge",
                format!("peer {party} acknowledges, signed, what it received from this node"),
                Vec::new(),
            ),
            // The gate then shows the case only to a member party; to any other it answers as
            // for a case that does not exist, and records nothing.
            // Each object is then decided under TLP 2.0 and the governing agreement.
            Action::IntelRead | Action::IntelImport => Decision::permit(
                "peer.intel",
                format!(
                    "peer {party} may ask for ({action}) threat intelligence; each object is decided under TLP 2.0"
                ),
                Vec::new(),
            ),
            Action::IncidentReceive => Decision::permit(
                "peer.incident",
                format!(
                    "peer {party} may notify this party of an incident, subject to the agreements in force"
                ),
                Vec::new(),
            ),
            // The gate then checks that the peer leads the case and that this party is a
            // member under a JIT agreement in force.
            Action::CaseUpdate => Decision::permit(
                "peer.case-update",
                format!("peer {party} may update a case it leads and this party is a member of"),
                Vec::new(),
            ),
            // The gate then decides each under the deconfliction agreement in force between
            // the two parties (its parties, selector kinds, limits and key epochs).
            Action::PsiKeyReceive | Action::PsiQueryReceive | Action::PsiEvaluationReceive => {
                Decision::permit(
                    "peer.psi",
                    format!(
                        "peer {party} may take part in deconfliction ({action}), subject to the deconfliction agreement in force"
                    ),
                    Vec::new(),
                )
            }
            Action::CaseStatus => Decision::permit(
                "peer.case-status",
                format!("peer {party} may read the status of a case it is a member of"),
                Vec::new(),
            ),
            _ => Decision::deny(
                "default-deny",
                format!("no agreement in force lets peer {party} ask for {action}"),
            ),
        },
        // The operator acting for a user has that user's role, no more.
        Actor::User { role, .. } | Actor::OperatorFor { role, .. } => {
            match ROLE_RULES.iter().find(|r| r.action == action && r.roles.contains(role)) {
                Some(rule) => {
                    let by = match req.actor {
                        Actor::OperatorFor { name, .. } => {
                            format!("the operator acting for {name}: role {role} may {action}")
                        }
                        _ => format!("role {role} may {action}"),
                    };
                    Decision::permit(rule.id, by, Vec::new())
                }
                None => Decision::deny(
                    "default-deny",
                    format!("no rule permits role {role} to {action} on {}", req.subject),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ask(actor: &Actor, action: Action) -> Decision {
        let subject = Subject::new(crate::SubjectKind::Case, "LANTERN");
        let party: PartyCode = "NL".parse().unwrap();
        decide(
            &DecisionRequest {
                actor,
                action,
                subject: &subject,
                node_party: &party,
                purpose: None,
                agreements: &[],
            },
            Timestamp::UNIX_EPOCH,
        )
    }

    #[test]
    fn investigator_opens_case() {
        let d =
            ask(&Actor::User { name: "eva".into(), role: Role::Investigator }, Action::CaseOpen);
        assert!(d.is_permit());
        assert_eq!(d.rules, ["role.case-worker.case-open"]);
    }

    #[test]
    fn auditor_cannot_open_case() {
        let d = ask(&Actor::User { name: "ann".into(), role: Role::Auditor }, Action::CaseOpen);
        assert!(!d.is_permit());
        assert_eq!(d.rules, ["default-deny"]);
        assert!(d.reason.contains("auditor"), "{}", d.reason);
    }

    #[test]
    fn deconfliction_roles() {
        let inv = Actor::User { name: "eva".into(), role: Role::Investigator };
        let admin = Actor::User { name: "ops".into(), role: Role::Admin };
        let auditor = Actor::User { name: "ann".into(), role: Role::Auditor };
        let peer = Actor::Peer { party: "DE".parse().unwrap() };
        assert_eq!(ask(&inv, Action::PsiQuery).rules, ["role.investigator.psi-query"]);
        assert!(ask(&inv, Action::PsiStatus).is_permit());
        assert!(!ask(&inv, Action::PsiKeyRotate).is_permit());
        assert!(ask(&admin, Action::PsiKeyRotate).is_permit());
        assert!(ask(&Actor::Operator, Action::PsiKeyRotate).is_permit());
        assert!(ask(&Actor::Operator, Action::PsiKeySend).is_permit());
        assert!(ask(&admin, Action::PsiKeySend).is_permit());
        assert!(!ask(&inv, Action::PsiKeySend).is_permit());
        assert!(!ask(&Actor::Operator, Action::PsiQuery).is_permit());
        assert!(!ask(&auditor, Action::PsiQuery).is_permit());
        for a in [Action::PsiKeyReceive, Action::PsiQueryReceive, Action::PsiEvaluationReceive] {
            assert!(ask(&peer, a).is_permit(), "{a}");
            assert!(!ask(&inv, a).is_permit(), "{a}");
            assert!(!ask(&Actor::Operator, a).is_permit(), "{a}");
        }
        for a in [Action::PsiQuery, Action::PsiKeyRotate, Action::PsiKeySend, Action::PsiStatus] {
            assert!(!ask(&peer, a).is_permit(), "{a}");
        }
    }

    #[test]
    fn peers_deliver_notifications_and_case_updates_only() {
        let peer = Actor::Peer { party: "DE".parse().unwrap() };
        assert!(ask(&peer, Action::IncidentReceive).is_permit());
        assert!(ask(&peer, Action::CaseUpdate).is_permit());
        for a in [
            Action::IncidentNotify,
            Action::IncidentRead,
            Action::IncidentDestroy,
            Action::CaseMemberRemove,
        ] {
            assert!(!ask(&peer, a).is_permit(), "{a}");
        }
        let csirt = Actor::User { name: "c".into(), role: Role::Csirt };
        assert_eq!(ask(&csirt, Action::IncidentNotify).rules, ["role.incident.notify"]);
        assert!(!ask(&csirt, Action::CaseMemberRemove).is_permit());
        assert!(!ask(&Actor::Operator, Action::IncidentNotify).is_permit());
        assert!(ask(&Actor::Operator, Action::IncidentDestroy).is_permit());
    }

    #[test]
    fn anonymous_is_denied() {
        let d = ask(&Actor::Anonymous, Action::CaseRead);
        assert_eq!(d.rules, ["authn.required"]);
    }

    fn any_actor() -> impl Strategy<Value = Actor> {
        prop_oneof![
            Just(Actor::Operator),
            Just(Actor::Anonymous),
            Just(Actor::Peer { party: "DE".parse().unwrap() }),
            proptest::sample::select(Role::ALL.to_vec())
                .prop_map(|role| Actor::User { name: "u".into(), role }),
            proptest::sample::select(Role::ALL.to_vec())
                .prop_map(|role| Actor::OperatorFor { name: "u".into(), role }),
        ]
    }

    fn any_action() -> impl Strategy<Value = Action> {
        proptest::sample::select(vec![
            Action::NodeInit,
            Action::UserAdd,
            Action::CaseOpen,
            Action::CaseRead,
            Action::LedgerRead,
            Action::DatumAdd,
            Action::DatumRead,
            Action::DatumShare,
            Action::DatumReceive,
            Action::ConsentGive,
            Action::ConsentReceive,
            Action::DatumDestroy,
            Action::RequestCreate,
            Action::RequestTransition,
            Action::RequestRead,
            Action::AlertsRead,
            Action::ComplaintFile,
            Action::ComplaintAnswer,
            Action::ComplaintRead,
            Action::CaseMemberAdd,
            Action::CaseStatus,
            Action::PeerAdd,
            Action::PeerRemove,
            Action::EnvelopeReject,
            Action::EnvelopeAck,
            Action::RequestReceive,
            Action::RequestUpdate,
            Action::WitnessAlarm,
            Action::IntelCollectionCreate,
            Action::IntelImport,
            Action::IntelRead,
            Action::IntelPush,
            Action::EvidenceAdd,
            Action::EvidenceCustody,
            Action::EvidenceExport,
            Action::EvidenceReceive,
            Action::EvidenceRead,
            Action::EvidenceDestroy,
            Action::PackageSend,
            Action::PackageOffer,
            Action::PackageArrive,
        ])
    }

    proptest! {
        /// The operator acting for a user gets exactly the user's decision (same outcome, same
        /// rule), never the operator's own rights.
        #[test]
        fn operator_for_a_user_has_the_users_rights(
            role in proptest::sample::select(Role::ALL.to_vec()),
            action in any_action(),
        ) {
            let user = ask(&Actor::User { name: "eva".into(), role }, action);
            let acting = ask(&Actor::OperatorFor { name: "eva".into(), role }, action);
            prop_assert_eq!(user.outcome, acting.outcome);
            prop_assert_eq!(user.rules, acting.rules);
        }
    }

    proptest! {
        /// Every decision names at least one rule; a deny never carries obligations; only an
        /// authenticated actor or the operator is ever permitted.
        #[test]
        fn decisions_are_explained(actor in any_actor(), action in any_action()) {
            let d = ask(&actor, action);
            prop_assert!(!d.rules.is_empty());
            prop_assert!(!d.reason.is_empty());
            if !d.is_permit() { prop_assert!(d.obligations.is_empty()); }
            if d.is_permit() {
                let authenticated = !matches!(actor, Actor::Anonymous);
                prop_assert!(authenticated);
            }
            if matches!(actor, Actor::Peer { .. }) && d.is_permit() {
                prop_assert!(matches!(
                    action,
                    Action::DatumReceive
                        | Action::ConsentReceive
                        | Action::CaseStatus
                        | Action::EnvelopeAck
                        | Action::PackageOffer
                        | Action::RequestReceive
                        | Action::RequestUpdate
                        | Action::IntelRead
                        | Action::IntelImport
                ));
            }
            if action == Action::EnvelopeReject {
                prop_assert!(!d.is_permit());
            }
            if matches!(actor, Actor::User { role: Role::Auditor, .. }) && d.is_permit() {
                prop_assert!(matches!(action, Action::LedgerRead | Action::ComplaintRead));
            }
        }
    }
}
