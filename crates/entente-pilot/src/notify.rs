//! Pilot steps 1 and 8 over the federation: NL's CSIRT notifies DE's CSIRT of the hospital
//! incident (grounded on NIS2's CSIRT cooperation, Arts 15 and 23(6), whose legal basis is
//! unverified and says so); when DE joins the JIT on LANTERN, NL's node sends DE the case
//! update and DE's node keeps the mirror of NL's case, shown in its own case status, beside
//! the notification it received.

use crate::evidence::Record;
use entente_console::{Exit, Failure, fail};
use entente_core::PartyCode;
use entente_node::Node;
use entente_policy::incident::{assess, builtin_regimes, parse_facts};
use entente_store::Verdict;
use jiff::Timestamp;
use std::time::{Duration, Instant};

/// Step 1 (part): NL's CSIRT asks its node to notify DE's CSIRT of the incident.
pub(crate) async fn notify_partner(nl: &Node, record: Record<'_>) -> Result<(), Failure> {
    let regimes = builtin_regimes().map_err(|e| fail(Exit::Failed, e))?;
    let facts = parse_facts(
        "data/incidents/examples/lantern-hospital.toml",
        include_str!("../../../data/incidents/examples/lantern-hospital.toml"),
    )
    .map_err(|e| fail(Exit::Failed, format!("the pilot incident is invalid: {e}")))?;
    let notice = entente_store::notice_of(&facts, &assess(&facts, &regimes));
    let csirt = nl.operator_for("nl-csirt").await?;
    let de: PartyCode = "DE".parse()?;
    let command = entente_store::incidents::NotifyIncident { to: de, agreement: None, notice };
    let v = nl.gate.submit(csirt, command, Timestamp::now()).await?;
    const STEP: &str = "NL→DE incident notification under NIS2";
    match &v {
        Verdict::Permitted { index, decision, .. } => record(
            STEP,
            decision.rules.iter().any(|r| r.starts_with("nis2-csirt-cooperation#")),
            format!(
                "permitted by {} (entry {index}), queued for DE; {} unverified citation(s) flagged: {}",
                decision.rules.join(" + "),
                decision.unverified_basis.len(),
                decision.unverified_basis.join("; ")
            ),
        ),
        Verdict::Denied { index, decision } => record(
            STEP,
            false,
            format!(
                "denied by {} (entry {index}): {}",
                decision.rules.join(" + "),
                decision.reason
            ),
        ),
    }
    Ok(())
}

/// Step 8 (part): the case update NL's node sent when DE joined arrives at DE's node (its
/// process applies it: `received` counts the envelopes from NL applied before), and DE's own
/// case status shows NL's case from its mirror.
pub(crate) async fn case_update_arrives(
    de: &Node,
    received: u64,
    record: Record<'_>,
) -> Result<(), Failure> {
    let nl: PartyCode = "NL".parse()?;
    let started = Instant::now();
    let mut arrived = false;
    while started.elapsed() < Duration::from_secs(20) {
        if de.store.count_received_from(&nl).await? > received {
            arrived = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if !arrived {
        record("DE receives the case update", false, "nothing applied within 20 s".into());
        return Ok(());
    }
    let status = entente_store::cases::ReadCaseStatus { case_id: "LANTERN".parse()? };
    let v = de.gate.submit(de.operator(), status, Timestamp::now()).await?;
    match &v {
        Verdict::Permitted { index, output: s, .. } => {
            let members: Vec<String> =
                s.members.iter().map(|m| format!("{} ({})", m.party, m.role)).collect();
            let ok = s.mirror.as_ref().is_some_and(|m| m.lead == "NL") && s.members.len() == 2;
            record(
                "DE's node mirrors NL's case",
                ok,
                format!(
                    "case.update applied over mutual TLS in {} ms; DE's case status (entry {index}): led by {}, members {}, under {}",
                    started.elapsed().as_millis(),
                    s.mirror.as_ref().map(|m| m.lead.as_str()).unwrap_or("-"),
                    members.join(", "),
                    s.mirror.as_ref().map(|m| m.conditions.agreement.as_str()).unwrap_or("-"),
                ),
            );
        }
        other => record("DE's node mirrors NL's case", false, format!("{other:?}")),
    }
    // The notification of step 1 reached DE's CSIRT with its conditions.
    let read = entente_store::incidents::ReadIncidentNotifications;
    let v = de.gate.submit(de.operator(), read, Timestamp::now()).await?;
    match &v {
        Verdict::Permitted { index, output, .. } => {
            let got = output.iter().find(|n| n.direction == "received" && n.party == "NL");
            record(
                "DE's CSIRT holds NL's incident notification",
                got.is_some_and(|n| n.agreement == "nis2-csirt-cooperation"),
                match got {
                    Some(n) => format!(
                        "received under {} (DE entry {}), read at entry {index}; retained until {}",
                        n.agreement,
                        n.ledger_index,
                        n.retain_until.map_or_else(
                            || "no limit from the agreement".to_owned(),
                            |u| u.to_string()
                        )
                    ),
                    None => "no notification from NL at DE".to_owned(),
                },
            );
        }
        other => record("DE's CSIRT holds NL's incident notification", false, format!("{other:?}")),
    }
    Ok(())
}
