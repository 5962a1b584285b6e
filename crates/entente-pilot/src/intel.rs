//! Pilot step 9: NL publishes LANTERN indicators under TLP:AMBER; DE and US pull them; a
//! TLP:RED indicator reaches only the party it names (DE); what DE received does not go on to
//! the US. Self-contained: it takes the three nodes (NL, DE, US) and reports each check.
//!
//! DE and the US pull over TAXII 2.1 from NL's node process, on its federation listener: mutual
//! TLS, each caller identified by its pinned certificate, each page an `intel.read` by that
//! peer, decided under TLP 2.0 and the governing agreement and recorded. DE imports what it
//! received with NL as originator; the US's attempt to get it from DE is decided by DE's gate.

use entente_console::{Exit, Failure, fail};
use entente_core::{Actor, PartyCode};
use entente_intel::stix;
use entente_intel::tlp::Tlp;
use entente_node::Node;
use entente_store::Principal;
use entente_store::Verdict;
use jiff::Timestamp;
use std::sync::Arc;

/// The collection NL publishes LANTERN's indicators in.
pub(crate) const COLLECTION: &str = "6c1a2f0e-9b7d-4e21-8f3a-1d2c3b4a5e6f";
/// DE's collection of what it received from NL.
const DE_COLLECTION: &str = "7d2b3a1f-0c8e-4f32-9a4b-2e3d4c5b6f70";

fn indicator(n: u32, tlp: Tlp, what: &str, pattern: &str, extra: &str) -> String {
    format!(
        r#"{{"type":"indicator","spec_version":"2.1","id":"indicator--1a7e0000-0000-4000-8000-{n:012}","created":"2026-11-26T09:00:00.000Z","modified":"2026-11-26T09:00:00.000Z","name":"LANTERN {what}","description":"Observed in the LANTERN intrusion at the NL hospital","indicator_types":["malicious-activity"],"pattern":"{pattern}","pattern_type":"stix","valid_from":"2026-11-26T09:00:00Z","object_marking_refs":["{}"]{extra}}}"#,
        tlp.marking_id()
    )
}

/// The bundle NL publishes: three TLP:AMBER indicators, one TLP:RED indicator for DE only,
/// and the two TLP 2.0 marking definitions.
pub(crate) fn lantern_bundle() -> String {
    let objects = [
        indicator(1, Tlp::Amber, "C2 address", "[ipv4-addr:value = '198.51.100.23']", ""),
        indicator(2, Tlp::Amber, "C2 domain", "[domain-name:value = 'update-lantern.example']", ""),
        indicator(
            3,
            Tlp::Amber,
            "loader hash",
            "[file:hashes.'SHA-256' = '5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8']",
            "",
        ),
        indicator(
            4,
            Tlp::Red,
            "informant-sourced staging server",
            "[ipv4-addr:value = '203.0.113.77']",
            r#","x_entente_recipients":["DE"]"#,
        ),
        Tlp::Amber.marking_definition(),
        Tlp::Red.marking_definition(),
    ];
    format!(
        r#"{{"type":"bundle","id":"bundle--1a7e0000-0000-4000-8000-000000000000","objects":[{}]}}"#,
        objects.join(",")
    )
}

async fn submit<C: entente_store::GateCommand>(
    node: &Node,
    actor: Principal,
    command: C,
) -> Result<Verdict<C::Output>, Failure> {
    Ok(node.gate.submit(actor, command, Timestamp::now()).await?)
}

/// Pulls every page of `collection` from `from`'s node process over TAXII on its federation
/// listener, as the node `me` (mutual TLS with `me`'s certificate; only `from`'s pinned
/// certificate is accepted).
async fn pull_over_taxii(
    me: &Node,
    from: &Node,
    collection: &str,
) -> Result<(Vec<String>, Vec<String>), Failure> {
    let pinned = me.store.peer(&from.config.party).await?.ok_or_else(|| {
        fail(Exit::Failed, format!("{} has not pinned {}", me.config.party, from.config.party))
    })?;
    let taxii = entente_node::taxii_client::PeerTaxii::connect(
        me,
        &from.config.party,
        Some(std::time::Duration::from_secs(20)),
    )
    .await?;
    let raws = taxii.pull(&format!("{}/taxii2/api/", pinned.url), collection, None, 2).await?;
    let ids = raws
        .iter()
        .filter_map(|r| serde_json::from_str::<serde_json::Value>(r).ok())
        .filter_map(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_owned))
        .collect();
    Ok((ids, raws))
}

/// The objects `node`'s gate withheld from `party` in the pages it served from ledger index
/// `from` on (each page's `intel.read` entry carries `served N, withheld W` in its TLP summary).
async fn withheld_since(node: &Node, party: &PartyCode, from: u64) -> Result<usize, Failure> {
    let (size, _) = node.store.ledger_head().await?;
    let entries = node.store.entries(from, size).await?;
    Ok(entries
        .iter()
        .filter_map(|(_, b)| entente_core::ledger::LedgerEntry::decode(b).ok())
        .filter(|e| e.action == entente_core::Action::IntelRead)
        .filter(|e| matches!(&e.actor, Actor::Peer { party: p } if p == party))
        .filter_map(|e| {
            let summary = e.payload_hashes.get("tlp.summary")?;
            let (_, rest) = summary.split_once("withheld ")?;
            rest.split(|c: char| !c.is_ascii_digit()).next()?.parse::<usize>().ok()
        })
        .sum())
}

/// Runs step 9 on the pilot's NL, DE and US nodes; `check` records each check.
pub(crate) async fn step9(
    nl: &Node,
    de: &Node,
    us: &Node,
    check: &mut dyn FnMut(&str, bool, String),
) -> Result<(), Failure> {
    println!();
    println!("Step 9 — NL publishes LANTERN indicators under TLP:AMBER; DE and US pull them");
    let csirt = nl.operator_for("nl-csirt").await?;
    let (de_party, us_party): (PartyCode, PartyCode) = ("DE".parse()?, "US".parse()?);
    let v = submit(
        nl,
        csirt.clone(),
        entente_store::intel::IntelCollectionCreate {
            id: COLLECTION.into(),
            title: "LANTERN indicators".into(),
            description: "Indicators of the LANTERN intrusion".into(),
            parties: vec![de_party.clone(), us_party.clone()],
        },
    )
    .await?;
    check(
        "NL collection for DE and US",
        matches!(v, Verdict::Permitted { .. }),
        COLLECTION.to_string(),
    );
    let bundle = stix::parse_bundle(&lantern_bundle())
        .map_err(|e| fail(Exit::Failed, format!("the pilot's bundle: {e}")))?;
    let n = bundle.objects.len();
    let v = submit(
        nl,
        csirt.clone(),
        entente_store::intel::IntelImport {
            collection: COLLECTION.into(),
            objects: Arc::new(bundle.objects),
            originator: None,
            status_id: "1a7e0000-0000-4000-8000-0000000000a1".into(),
        },
    )
    .await?;
    let stored = match &v {
        Verdict::Permitted { output: s, .. } => s.success_count as usize,
        _ => 0,
    };
    check("NL imports the bundle", stored == n, format!("{stored} of {n} objects, all or nothing"));

    let red = "indicator--1a7e0000-0000-4000-8000-000000000004";
    let mark = nl.store.ledger_head().await?.0;
    let (de_ids, de_raws) = pull_over_taxii(de, nl, COLLECTION).await?;
    let de_withheld = withheld_since(nl, &de_party, mark).await?;
    let de_inds = de_ids.iter().filter(|i| i.starts_with("indicator--")).count();
    check(
        "DE pulls (AMBER + the RED naming DE)",
        de_inds == 4 && de_ids.iter().any(|i| i == red) && de_withheld == 0,
        format!(
            "{de_inds} indicators over TAXII on NL's federation listener (mutual TLS, DE's pinned certificate), {de_withheld} withheld; governed by {}",
            governing(nl, &de_party)
        ),
    );
    let mark = nl.store.ledger_head().await?.0;
    let (us_ids, _) = pull_over_taxii(us, nl, COLLECTION).await?;
    let us_withheld = withheld_since(nl, &us_party, mark).await?;
    let us_inds = us_ids.iter().filter(|i| i.starts_with("indicator--")).count();
    check(
        "US pulls (AMBER only; RED withheld)",
        us_inds == 3 && !us_ids.iter().any(|i| i == red) && us_withheld == 1,
        format!(
            "{us_inds} indicators, {us_withheld} withheld (tlp.red.not-named); governed by {}",
            governing(nl, &us_party)
        ),
    );
    // Every page NL served is in NL's ledger with the requester and the TLP decision.
    let (size, _) = nl.store.ledger_head().await?;
    let entries = nl.store.entries(size.saturating_sub(10), size).await?;
    let recorded = entries
        .iter()
        .filter_map(|(_, b)| entente_core::ledger::LedgerEntry::decode(b).ok())
        .filter(|e| e.action == entente_core::Action::IntelRead)
        .filter(|e| e.payload_hashes.contains_key("served"))
        .count();
    check(
        "NL's ledger records each page served",
        recorded >= 4,
        format!("{recorded} intel.read entries with the served ids' digest and the TLP decision"),
    );

    // DE keeps what it received, with NL as originator, and may not pass it on to the US.
    let de_csirt = de.operator_for("de-csirt").await?;
    submit(
        de,
        de_csirt.clone(),
        entente_store::intel::IntelCollectionCreate {
            id: DE_COLLECTION.into(),
            title: "From NL: LANTERN".into(),
            description: String::new(),
            parties: vec![us_party.clone()],
        },
    )
    .await?;
    let received = stix::parse_envelope(&stix::write_objects(
        "",
        &de_raws.iter().map(String::as_str).collect::<Vec<_>>(),
    ))
    .map_err(|e| fail(Exit::Failed, format!("what NL served: {e}")))?;
    let v = submit(
        de,
        de_csirt,
        entente_store::intel::IntelImport {
            collection: DE_COLLECTION.into(),
            objects: Arc::new(received),
            originator: Some(nl.config.party.clone()),
            status_id: "1a7e0000-0000-4000-8000-0000000000b1".into(),
        },
    )
    .await?;
    check(
        "DE stores what it received, byte for byte",
        matches!(v, Verdict::Permitted { .. }),
        describe(&v),
    );
    let mark = de.store.ledger_head().await?.0;
    let (onward, _) = pull_over_taxii(us, de, DE_COLLECTION).await?;
    let onward_withheld = withheld_since(de, &us_party, mark).await?;
    let onward_inds = onward.iter().filter(|i| i.starts_with("indicator--")).count();
    check(
        "DE cannot pass NL's AMBER/RED on to the US",
        onward_inds == 0 && onward_withheld >= 4,
        format!(
            "{onward_inds} indicators served, {onward_withheld} withheld (tlp.amber.no-onward, tlp.red.no-onward)"
        ),
    );
    Ok(())
}

fn governing(node: &Node, to: &PartyCode) -> String {
    entente_store::governing_agreement(node.gate.engine(), &node.config.party, to, Timestamp::now())
        .unwrap_or("no agreement")
        .to_owned()
}

fn describe<O>(v: &Verdict<O>) -> String {
    match v {
        Verdict::Permitted { index, decision, .. } => {
            format!("permitted by {} (entry {index})", decision.rules.join(" + "))
        }
        Verdict::Denied { index, decision } => {
            format!("DENIED by {} (entry {index}): {}", decision.rules.join(" + "), decision.reason)
        }
    }
}
