//! Pilot steps 1 and 8 over the federation: NL's CSIRT asks to notify DE of the hospital
//! incident (the pilot's agreements ground no incident-response flow, so the gate denies it
//! and records the denial: a gap the operation shows, not one it papers over); when DE joins
//! the JIT on LANTERN, NL's node sends DE the case update and DE's node keeps the mirror of
//! NL's case, shown in its own case status.

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
    match &v {
        Verdict::Denied { index, decision } => record(
            "NL→DE incident notification needs an agreement",
            true,
            format!(
                "denied by {} (entry {index}), nothing sent: none of the pilot's agreements names incident-response ({})",
                decision.rules.join(" + "),
                decision.reason
            ),
        ),
        Verdict::Permitted { index, .. } => record(
            "NL→DE incident notification needs an agreement",
            false,
            format!(
                "permitted (entry {index}) although no pilot agreement names incident-response"
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
    Ok(())
}
