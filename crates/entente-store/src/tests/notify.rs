//! Incident notifications and case updates between two nodes' gates, on both backends.

use super::*;
use crate::federation::InboundEnvelope;
use entente_wire::CaseUpdateMessage;
use entente_wire::{IncidentNotice, NoticeObligation};
use std::collections::BTreeMap;

/// An arrangement between the NL and DE CSIRTs for incident response (a test fixture that
/// stands in for the shipped NIS2 cooperation file, with a retention limit to test the
/// destruction of a notification).
pub(super) const CSIRT_MOU: &str = r#"
id = "csirt-nl-de-test"
title = "Incident-response arrangement between the NL and DE CSIRTs (test fixture)"
kind = "mou"
parties = ["NL", "DE"]
in_force_from = "2026-01-01"
offences = "any"
categories = ["case-information"]
purposes = ["incident-response"]
onward_transfer = "consent-of-originator"
commercial_use_prohibited = true

[retention]
case-information = "P1Y"

[[legal_basis]]
citation = "Test fixture: an arrangement between two CSIRTs"
status = "U"

[[condition]]
id = "purpose-limitation"
text = "Use only to respond to the incident notified."
basis = { citation = "Test fixture", status = "U" }
"#;

fn engine_with_mou() -> std::sync::Arc<entente_policy::engine::Engine> {
    let lexicon = entente_core::lexicon::Lexicon::builtin().unwrap();
    let mut files = entente_policy::agreement::builtin_files().to_vec();
    files.retain(|(name, _)| !name.ends_with("nis2-csirt-cooperation.toml"));
    files.push(("csirt.toml", CSIRT_MOU));
    let agreements = entente_policy::agreement::parse_agreements(&files, &lexicon).unwrap();
    std::sync::Arc::new(entente_policy::engine::Engine::compile(agreements).unwrap())
}

fn notice() -> IncidentNotice {
    IncidentNotice {
        incident: "lantern-hospital".into(),
        jurisdictions: vec![nl()],
        sector: Some("health".into()),
        entity_types: vec!["essential-entity".into()],
        personal_data: Some(true),
        ransom_paid: Some(false),
        time_zone: "Europe/Amsterdam".into(),
        instants: BTreeMap::from([("aware_at".into(), "2026-03-28T05:15:00Z".into())]),
        obligations: vec![NoticeObligation {
            regime: "nis2".into(),
            report: "early-warning".into(),
            report_name: "Early warning".into(),
            recipient: "CSIRT or competent authority".into(),
            deadline: "24 hours after aware".into(),
            due: "2026-03-29T05:15:00Z".into(),
            status: "V2".into(),
            unverified: false,
        }],
        questions: Vec::new(),
    }
}

fn envelope(
    from: PartyCode,
    cert: char,
    seq: u64,
    kind: &str,
    payload: serde_json::Value,
) -> InboundEnvelope {
    InboundEnvelope {
        from: from.clone(),
        cert_sha256: cert.to_string().repeat(64),
        id: format!("{from}-test-{seq}"),
        seq,
        kind: kind.into(),
        payload,
        envelope_sha256: format!("sha256:{seq:064}"),
        payload_sha256: format!("sha256:{seq:064}"),
    }
}

fn vkey_of(gate: &Gate, seed: u8) -> String {
    ledger::verifier_key(gate.origin(), &SigningKey::from_bytes(&[seed; 32]).verifying_key())
}

fn us() -> PartyCode {
    "US".parse().unwrap()
}

async fn read_notifications(
    gate: &Gate,
    now: Timestamp,
) -> Vec<crate::incidents::NotificationRecord> {
    let v = gate
        .submit(Actor::Operator, crate::incidents::ReadIncidentNotifications, now)
        .await
        .unwrap();
    let Verdict::Permitted { output: l, .. } = v else { panic!("{v:?}") };
    l
}

/// NL's CSIRT notifies DE of an incident under the arrangement in force; the notification is
/// stored on both sides exactly once, with its conditions; flows without an agreement, with
/// another agreement than asked, or unreadable are refused and recorded. NL adds DE to case
/// LANTERN under the JIT: DE receives the case update and keeps a mirror, shows it in the
/// case status, refuses updates from a party that is not the lead, and accepts data about
/// the case only from its members.
#[tokio::test]
async fn notifications_and_case_updates_travel() {
    let t = |s: &str| -> Timestamp { s.parse().unwrap() };
    let now = t("2026-04-01T08:00:00Z");
    let pairs = backends().await.into_iter().zip(backends().await);
    for (nl_db, de_db) in pairs {
        let nl_gate = Gate::start(nl_db.store.clone(), key(), nl(), engine_with_mou());
        let de_gate = Gate::start(
            de_db.store.clone(),
            SigningKey::from_bytes(&[7u8; 32]),
            de(),
            engine_with_mou(),
        );
        let pin = |party: PartyCode, cert: char| crate::peers::AddPeer {
            party,
            url: "https://127.0.0.1:1".into(),
            cert_pem: "-".into(),
            cert_sha256: cert.to_string().repeat(64),
            signing_key: "b".repeat(64),
            age_recipient: None,
        };
        nl_gate.submit(Actor::Operator, pin(de(), 'd'), now).await.unwrap();
        de_gate.submit(Actor::Operator, pin(nl(), 'e'), now).await.unwrap();
        de_gate.submit(Actor::Operator, pin(us(), 'f'), now).await.unwrap();
        let csirt = Actor::User { name: "cert".into(), role: Role::Csirt };
        let notify = |to: PartyCode, agreement: Option<&str>| crate::incidents::NotifyIncident {
            to,
            agreement: agreement.map(str::to_owned),
            notice: notice(),
        };

        // No agreement grounds an incident-response flow to the US: denied, recorded, nothing sent.
        let v = nl_gate.submit(csirt.clone(), notify(us(), None), now).await.unwrap();
        assert!(matches!(&v, Verdict::Denied { .. }), "{v:?}");
        // Another agreement than the one that grounds the flow: denied.
        let v = nl_gate.submit(csirt.clone(), notify(de(), Some("ets-185")), now).await.unwrap();
        let Verdict::Denied { decision, .. } = &v else { panic!("{v:?}") };
        assert!(decision.rules.iter().any(|r| r == "incident.agreement-mismatch"), "{decision:?}");
        // An auditor may not notify.
        let auditor = Actor::User { name: "ann".into(), role: Role::Auditor };
        let v = nl_gate.submit(auditor, notify(de(), None), now).await.unwrap();
        assert!(matches!(&v, Verdict::Denied { .. }), "{v:?}");
        // A bad notice never reaches the decision.
        let mut bad = notice();
        bad.instants.insert("aware_at".into(), "yesterday".into());
        let e = nl_gate
            .submit(
                csirt.clone(),
                crate::incidents::NotifyIncident { to: de(), agreement: None, notice: bad },
                now,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&e, GateError::Invalid(m) if m.contains("notice.instants.aware_at")),
            "{e}"
        );
        assert_eq!(outbox_count(&nl_db).await, 0);

        let v = nl_gate
            .submit(csirt.clone(), notify(de(), Some("csirt-nl-de-test")), now)
            .await
            .unwrap();
        let Verdict::Permitted { index, output: m, decision } = &v else { panic!("{v:?}") };
        assert_eq!(m.kind.as_str(), "incident.notification");
        assert_eq!(m.payload["id"], format!("NL-{index}"));
        assert_eq!(m.payload["conditions"]["agreement"], "csirt-nl-de-test");
        assert_eq!(m.payload["conditions"]["retain_until"], "2027-04-01T08:00:00Z");
        assert!(decision.rules.iter().any(|r| r.starts_with("csirt-nl-de-test")), "{decision:?}");
        // The ledger holds digests, not the notice.
        let entry = nl_db.store.entries(*index, *index + 1).await.unwrap().remove(0).1;
        let text = String::from_utf8(entry).unwrap();
        assert!(!text.contains("Europe/Amsterdam") && text.contains("\"notice\""), "{text}");
        // The fixture's legal basis is U: the entry says the permit rests on it.
        assert!(
            text.contains(
                "\"unverified_basis\":[\"Test fixture: an arrangement between two CSIRTs\"]"
            ),
            "{text}"
        );

        let r = hand_over((&nl_db.store, &nl_gate, &nl()), (&de_gate, &de(), &"e".repeat(64)), now)
            .await;
        assert!(matches!(&r[..], [Ok(Verdict::Permitted { .. })]), "{r:?}");
        let received = read_notifications(&de_gate, now).await;
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].direction, "received");
        assert_eq!(received[0].party, "NL");
        assert_eq!(received[0].notice, Some(notice()));
        assert_eq!(received[0].agreement, "csirt-nl-de-test");
        let sent = read_notifications(&nl_gate, now).await;
        assert_eq!(
            (sent.len(), sent[0].direction.as_str(), sent[0].party.as_str()),
            (1, "sent", "DE")
        );
        assert_eq!(sent[0].id, received[0].id);

        // The same envelope again: the stored outcome, not applied twice.
        let payload = serde_json::to_value(&entente_wire::IncidentNotificationMessage {
            id: received[0].id.clone(),
            notice: notice(),
            conditions: received[0].conditions.clone(),
        })
        .unwrap();
        let again = InboundEnvelope {
            from: nl(),
            cert_sha256: "e".repeat(64),
            id: entente_wire::envelope::message_id(&nl(), &de(), 1),
            seq: 1,
            kind: "incident.notification".into(),
            payload: payload.clone(),
            envelope_sha256: "sha256:00".into(),
            payload_sha256: entente_wire::envelope::payload_digest(&payload).unwrap(),
        };
        let e = de_gate.receive(Actor::Peer { party: nl() }, again, now).await;
        assert!(matches!(&e, Err(GateError::Replayed(item)) if item.replayed), "{e:?}");
        assert_eq!(read_notifications(&de_gate, now).await.len(), 1);

        // Unreadable content: rejected with the reason, recorded, nothing stored.
        let nl_peer = Actor::Peer { party: nl() };
        let v = de_gate
            .receive(
                nl_peer.clone(),
                envelope(nl(), 'e', 2, "incident.notification", serde_json::json!({"id": "x"})),
                now,
            )
            .await
            .unwrap();
        let Verdict::Denied { decision, .. } = &v else { panic!("{v:?}") };
        assert_eq!(decision.rules, ["federation#content"]);
        assert!(decision.reason.contains("incident.notification payload"), "{}", decision.reason);
        // Conditions of another agreement than the one grounding the flow: denied.
        let mut other = payload.clone();
        other["id"] = "NL-999".into();
        other["conditions"]["agreement"] = "ets-185".into();
        let v = de_gate
            .receive(nl_peer.clone(), envelope(nl(), 'e', 3, "incident.notification", other), now)
            .await
            .unwrap();
        let Verdict::Denied { decision, .. } = &v else { panic!("{v:?}") };
        assert!(
            decision.rules.iter().any(|r| r == "conditions.agreement-mismatch"),
            "{decision:?}"
        );
        assert_eq!(read_notifications(&de_gate, now).await.len(), 1);

        // Retention: not before the limit that travelled with it; after it, the notice is
        // cleared and its digest kept.
        let destroy = crate::incidents::DestroyIncidentNotification {
            from: nl(),
            id: received[0].id.clone(),
        };
        let e = de_gate.submit(Actor::Operator, destroy.clone(), now).await.unwrap_err();
        assert!(matches!(&e, GateError::Conflict(m) if m.contains("2027-04-01")), "{e}");
        let later = t("2027-04-02T00:00:00Z");
        let due = de_db.store.notifications_due_for_destruction(later).await.unwrap();
        assert_eq!(due, [("NL".to_owned(), received[0].id.clone())]);
        let v = de_gate.submit(Actor::Operator, destroy.clone(), later).await.unwrap();
        assert!(matches!(&v, Verdict::Permitted { .. }), "{v:?}");
        let after = read_notifications(&de_gate, later).await;
        assert!(after[0].notice.is_none() && after[0].destroyed_at.is_some(), "{after:?}");
        assert_eq!(after[0].notice_sha256, received[0].notice_sha256);
        assert!(de_db.store.notifications_due_for_destruction(later).await.unwrap().is_empty());

        // Case LANTERN: DE joins under the JIT; the update travels to DE.
        let ca = Actor::User { name: "pros".into(), role: Role::CentralAuthority };
        let open = crate::cases::OpenCase {
            id: "LANTERN".parse().unwrap(),
            title: "Operation Lantern".into(),
            concepts: vec!["illegal-access".into()],
        };
        nl_gate.submit(ca.clone(), open, now).await.unwrap();
        let add = crate::cases::AddCaseMember {
            case_id: "LANTERN".parse().unwrap(),
            party: de(),
            agreement: "jit-lantern".into(),
        };
        let v = nl_gate.submit(ca.clone(), add, now).await.unwrap();
        let Verdict::Permitted { index: added, .. } = v else { panic!("{v:?}") };
        let pending = nl_db.store.pending_messages(&de(), 10).await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].kind.as_str(), "case.update");
        assert!(pending[0].payload.get("title").is_none());
        // Seq 4 on DE's side: the three envelopes above were 1 to 3 (two of them hand-crafted).
        let msg: CaseUpdateMessage = serde_json::from_value(pending[0].payload.clone()).unwrap();
        assert_eq!(msg.ledger_index, added);
        let r = de_gate
            .receive(
                nl_peer.clone(),
                envelope(nl(), 'e', 4, "case.update", pending[0].payload.clone()),
                now,
            )
            .await
            .unwrap();
        assert!(matches!(&r, Verdict::Permitted { .. }), "{r:?}");
        // The mirror shows in DE's case status.
        let status = crate::cases::ReadCaseStatus { case_id: "LANTERN".parse().unwrap() };
        let v = de_gate.submit(Actor::Operator, status.clone(), now).await.unwrap();
        let Verdict::Permitted { output: s, .. } = v else { panic!("{v:?}") };
        let mirror = s.mirror.as_ref().unwrap();
        assert_eq!((mirror.lead.as_str(), mirror.lead_index), ("NL", added));
        assert_eq!(mirror.conditions.agreement, "jit-lantern");
        assert_eq!(s.case.concepts, ["illegal-access"]);
        let members: Vec<(&str, &str)> =
            s.members.iter().map(|m| (m.party.as_str(), m.role.as_str())).collect();
        assert_eq!(members, [("NL", "lead"), ("DE", "member")]);
        assert!(s.timeline.iter().any(|e| e.action == "case.update" && e.decision == "permit"));
        // The US sees nothing of it on DE either.
        let e = de_gate.submit(Actor::Peer { party: us() }, status.clone(), now).await.unwrap_err();
        assert!(matches!(e, GateError::NotFound(_)), "{e:?}");

        // DE's case listing: the mirror beside DE's own cases, in order of id, a page at a
        // time, each page one recorded read.
        for id in ["ALPHA", "ZULU"] {
            let v = de_gate.submit(investigator(), super::open(id), now).await.unwrap();
            assert!(matches!(v, Verdict::Permitted { .. }), "{v:?}");
        }
        let list = |after: Option<&str>, limit: u32| {
            crate::cases::ListCases::new(after.map(|a| a.parse().unwrap()), limit).unwrap()
        };
        let size = de_db.store.ledger_head().await.unwrap().0;
        let v = de_gate.submit(investigator(), list(None, 2), now).await.unwrap();
        let Verdict::Permitted { output: page, index, .. } = v else { panic!("{v:?}") };
        assert_eq!(index, size);
        let ids: Vec<&str> = page.cases.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["ALPHA", "LANTERN"]);
        assert_eq!(page.next_after.as_deref(), Some("LANTERN"));
        let (alpha, lantern) = (&page.cases[0], &page.cases[1]);
        assert!(alpha.led_here, "{alpha:?}");
        assert_eq!((alpha.lead.as_str(), alpha.title.as_deref()), ("DE", Some("Case ALPHA")));
        assert_eq!(alpha.members, ["DE"]);
        assert!(alpha.last_change.is_none());
        assert!(!lantern.led_here, "{lantern:?}");
        assert_eq!((lantern.lead.as_str(), lantern.title.as_deref()), ("NL", None));
        assert_eq!(lantern.members, ["NL", "DE"]);
        assert_eq!(lantern.concepts, ["illegal-access"]);
        assert_eq!(lantern.last_change.as_ref().map(|(c, _)| c.as_str()), Some("member-added DE"));
        assert_eq!((lantern.open_requests, lantern.overdue_requests), (0, 0));
        let v = de_gate.submit(investigator(), list(Some("LANTERN"), 2), now).await.unwrap();
        let Verdict::Permitted { output: page, .. } = v else { panic!("{v:?}") };
        let ids: Vec<&str> = page.cases.iter().map(|c| c.id.as_str()).collect();
        assert_eq!((ids, page.next_after), (vec!["ZULU"], None));
        assert_eq!(de_db.store.ledger_head().await.unwrap().0, size + 2);
        // A page size out of bounds is the caller's mistake: no command can be made of it. A
        // role without case work is denied (recorded); a partner may not list.
        for limit in [0, crate::cases::MAX_PAGE + 1] {
            let e = crate::cases::ListCases::new(None, limit).unwrap_err();
            assert!(matches!(&e, GateError::Invalid(m) if m.contains("1 to 200")), "{e:?}");
        }

        let auditor = Actor::User { name: "ann".into(), role: Role::Auditor };
        let v = de_gate.submit(auditor, list(None, 10), now).await.unwrap();
        assert!(matches!(v, Verdict::Denied { .. }), "{v:?}");
        let v = de_gate.submit(nl_peer.clone(), list(None, 10), now).await.unwrap();
        assert!(matches!(v, Verdict::Denied { .. }), "{v:?}");

        // The same update again (an older lead index): refused, recorded.
        let v = de_gate
            .receive(
                nl_peer.clone(),
                envelope(nl(), 'e', 5, "case.update", pending[0].payload.clone()),
                now,
            )
            .await
            .unwrap();
        let Verdict::Denied { decision, .. } = &v else { panic!("{v:?}") };
        assert!(decision.rules.iter().any(|r| r == "case.update-order"), "{decision:?}");
        // An update from the US, which does not lead the case: refused and recorded.
        let mut forged = msg.clone();
        forged.lead = us();
        forged.ledger_index = added + 10;
        forged.members[0].party = "US".into();
        forged.conditions.originator = us();
        let v = de_gate
            .receive(
                Actor::Peer { party: us() },
                envelope(us(), 'f', 1, "case.update", serde_json::to_value(&forged).unwrap()),
                now,
            )
            .await
            .unwrap();
        let Verdict::Denied { index: refused, decision } = &v else { panic!("{v:?}") };
        assert!(decision.rules.iter().any(|r| r == "case.update-lead-only"), "{decision:?}");
        assert_eq!(de_db.store.entries(*refused, *refused + 1).await.unwrap().len(), 1);
        // DE cannot update NL's case at NL.
        let mut turned = msg.clone();
        turned.lead = de();
        turned.members =
            vec![entente_wire::CaseMember { role: "lead".into(), ..msg.members[1].clone() }];
        turned.conditions.originator = de();
        let v = nl_gate
            .receive(
                Actor::Peer { party: de() },
                envelope(de(), 'd', 1, "case.update", serde_json::to_value(&turned).unwrap()),
                now,
            )
            .await
            .unwrap();
        let Verdict::Denied { decision, .. } = &v else { panic!("{v:?}") };
        assert!(decision.reason.contains("led by this node"), "{decision:?}");
        let v = de_gate.submit(Actor::Operator, status, now).await.unwrap();
        let Verdict::Permitted { output: s, .. } = v else { panic!("{v:?}") };
        assert_eq!(s.mirror.as_ref().unwrap().lead, "NL");

        // Data about LANTERN reach DE only from its members: the US is refused, recorded.
        let datum = serde_json::json!({
            "id": "us-1", "case_id": "LANTERN", "category": "traffic", "concepts": ["illegal-access"],
            "purpose": "criminal-investigation", "content": {"ip": "192.0.2.1"},
            "conditions": {"originator": "US", "agreement": "ets-185", "purposes": ["criminal-investigation"],
                "retain_until": null, "onward_transfer": "consent-of-originator", "commercial_use_prohibited": true, "conditions": []},
            "minimized": []
        });
        let v = de_gate
            .receive(Actor::Peer { party: us() }, envelope(us(), 'f', 2, "datum", datum), now)
            .await
            .unwrap();
        let Verdict::Denied { decision, .. } = &v else { panic!("{v:?}") };
        assert_eq!(decision.rules, ["federation#case-member"]);
        assert!(decision.reason.contains("led by a partner"), "{}", decision.reason);
        // DE records a datum of its own on the mirrored case.
        let eva = Actor::User { name: "eva".into(), role: Role::Investigator };
        let add = crate::flows::AddDatum {
            id: "de-1".parse().unwrap(),
            case_id: "LANTERN".parse().unwrap(),
            category: entente_policy::agreement::DataCategory::Traffic,
            content: serde_json::json!({"ip": "198.51.100.7"}).as_object().unwrap().clone(),
        };
        let v = de_gate.submit(eva.clone(), add, now).await.unwrap();
        assert!(matches!(v, Verdict::Permitted { .. }), "{v:?}");
        // ... and sends data about it to members only, whatever else the agreements allow.
        let share = crate::flows::ShareDatum {
            id: "de-1".parse().unwrap(),
            to: us(),
            purpose: entente_policy::agreement::Purpose::CriminalInvestigation,
            request_kind: Some(entente_policy::agreement::RequestKind::Mla),
        };
        let e = de_gate.submit(eva, share, now).await;
        assert!(matches!(&e, Err(GateError::Conflict(m)) if m.contains("members only")), "{e:?}");

        // NL removes DE from the case: the lead stays, a non-member is not found; DE receives
        // the update and ends its mirror.
        let remove = |p: PartyCode| crate::cases::RemoveCaseMember {
            case_id: "LANTERN".parse().unwrap(),
            party: p,
        };
        let e = nl_gate.submit(ca.clone(), remove(nl()), now).await.unwrap_err();
        assert!(matches!(&e, GateError::Conflict(m) if m.contains("lead")), "{e}");
        let e = nl_gate.submit(ca.clone(), remove(us()), now).await.unwrap_err();
        assert!(matches!(&e, GateError::NotFound(_)), "{e}");
        let v = nl_gate.submit(ca.clone(), remove(de()), now).await.unwrap();
        assert!(matches!(&v, Verdict::Permitted { .. }), "{v:?}");
        let pending = nl_db.store.pending_messages(&de(), 10).await.unwrap();
        let last = pending.last().unwrap();
        assert_eq!(last.payload["change"], "member-removed DE");
        let v = de_gate
            .receive(
                nl_peer.clone(),
                envelope(nl(), 'e', 6, "case.update", last.payload.clone()),
                now,
            )
            .await
            .unwrap();
        assert!(matches!(&v, Verdict::Permitted { .. }), "{v:?}");
        let status = crate::cases::ReadCaseStatus { case_id: "LANTERN".parse().unwrap() };
        let e = de_gate.submit(Actor::Operator, status, now).await.unwrap_err();
        assert!(matches!(e, GateError::NotFound(_)), "{e:?}");

        verify_ledger(&nl_db.store, &nl(), &vkey(&nl_gate), &mut |_, _| {}).await.unwrap();
        verify_ledger(&de_db.store, &de(), &vkey_of(&de_gate, 7), &mut |_, _| {}).await.unwrap();
        nl_db.drop_schema().await;
        de_db.drop_schema().await;
    }
}
