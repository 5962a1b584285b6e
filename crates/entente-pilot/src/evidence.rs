//! Pilot steps 5, 6 and 11 for evidence: DE answers NL's production order with a signed
//! evidence package encrypted to NL; NL verifies it offline (every hash, the signature, every
//! custody event and its inclusion in DE's ledger) and imports it, binding DE's conditions;
//! when the retention limit has passed, NL destroys it by destroying its data key, and its
//! ledger still verifies. Self-contained: it takes the two nodes and a scratch directory; the
//! operations are the node's (`entente_node::packages`).

use entente_console::{Exit, Failure, chain, fail};
use entente_node::Node;
use entente_node::packages::{self as evidence, AddSpec, PackageSpec};
use entente_policy::agreement::{DataCategory, Purpose, RequestKind};
use entente_store::Verdict;
use jiff::Timestamp;
use std::path::Path;

/// A check the pilot records: step, passed, detail.
pub(crate) type Record<'a> = &'a mut dyn FnMut(&str, bool, String);

/// Steps 5 and 6: the package from DE to NL. `nl_case` is NL's case the items join.
pub(crate) async fn answer_with_package(
    nl: &Node,
    de: &Node,
    nl_case: &str,
    scratch: &Path,
    record: Record<'_>,
) -> Result<(), Failure> {
    println!();
    println!("Step 5 — DE answers NL's production order with a signed evidence package");
    let de_inv = de.operator_for("de-investigator").await?;
    let de_ca = de.operator_for("de-justice-office").await?;
    let nl_inv = nl.operator_for("nl-investigator").await?;
    let now = Timestamp::now();
    let v = de
        .gate
        .submit(
            de_inv.clone(),
            entente_store::cases::OpenCase {
                id: "LANTERN-DE-EPOC".parse()?,
                title: "Execution of NL's European Production Order in LANTERN".into(),
                concepts: vec!["illegal-access".into(), "data-interference".into()],
            },
            now,
        )
        .await?;
    record(
        "DE opens its execution case",
        matches!(v, Verdict::Permitted { .. }),
        "LANTERN-DE-EPOC".into(),
    );
    std::fs::create_dir_all(scratch)?;
    let logs = scratch.join("c2-hosting-access.log");
    let mut text = String::new();
    for i in 0..2000 {
        text.push_str(&format!(
            "2026-03-27T2{}:{:02}:{:02}Z 203.0.113.77 POST /upload 200 {} bytes\n",
            i % 2,
            (i / 60) % 60,
            i % 60,
            48_000 + i
        ));
    }
    std::fs::write(&logs, text)?;
    let meta = scratch.join("vps-disk-image-metadata.json");
    std::fs::write(
        &meta,
        r#"{"image":"vps-4711.raw","size_bytes":42949672960,"sha256_of_image":"not included: metadata only","acquired_with":"write blocker"}"#,
    )?;
    let case: entente_core::CaseId = "LANTERN-DE-EPOC".parse()?;
    let spec = |description: &str| AddSpec {
        case: case.clone(),
        description: description.into(),
        category: DataCategory::Traffic,
        media_type: "text/plain".into(),
        source: Some("C2 hosting provider (fictional), order executed by DE".into()),
        collected_at: Some("2026-04-02T09:30:00Z".into()),
        reason: "production order of NL executed".into(),
        legal_basis: Some("LANTERN-EPOC-1".into()),
    };
    let mut ids = Vec::new();
    for (path, id, what) in [
        (&logs, "de-ev-c2-logs", "access logs of the C2 host"),
        (&meta, "de-ev-disk-meta", "disk image metadata of the C2 VPS"),
    ] {
        let (index, r) = evidence::add_file(
            de,
            &de_inv,
            path,
            Some(id.parse()?),
            &spec(what),
            Timestamp::now(),
            |_| {},
        )
        .await?;
        record(
            &format!("DE acquires {id}"),
            true,
            format!(
                "sha256:{}… {} bytes, encrypted at rest, acquired at DE entry {index}",
                &r.sha256[..16],
                r.size
            ),
        );
        ids.push(r.id.parse()?);
    }
    let v = de
        .gate
        .submit(
            de_inv.clone(),
            entente_store::evidence::EvidenceCustody {
                id: "de-ev-c2-logs".parse()?,
                event: entente_evidence::CustodyKind::Verified,
                reason: "hash re-checked before release".into(),
                legal_basis: Some("LANTERN-EPOC-1".into()),
            },
            Timestamp::now(),
        )
        .await?;
    record(
        "DE records a verification",
        matches!(v, Verdict::Permitted { .. }),
        "custody event `verified`".into(),
    );
    let (nl_master, _) = evidence::vault(nl)?;
    let pkg = scratch.join("de-to-nl-LANTERN-EPOC-1.tar.age");
    // Encrypted to the age recipient DE pinned with NL's certificate.
    let pinned = de.store.peer(&nl.config.party).await?.and_then(|p| p.age_recipient);
    record(
        "DE holds NL's age recipient, pinned with NL's certificate",
        pinned.as_deref() == Some(nl_master.recipient().as_str()),
        pinned.clone().unwrap_or_else(|| "none".into()),
    );
    let spec = PackageSpec {
        items: ids,
        to: nl.config.party.clone(),
        recipient: pinned,
        request: "LANTERN-EPOC-1".parse()?,
        request_kind: Some(RequestKind::Production),
        purpose: Purpose::CriminalInvestigation,
        // DE's condition: kept two years at most.
        retain_until: Some(format!(
            "{:.0}",
            now.to_zoned(jiff::tz::TimeZone::UTC)
                .checked_add(jiff::Span::new().years(2))
                .map(|z| z.timestamp())
                .map_err(|e| fail(Exit::Failed, e))?
        )),
    };
    let written = match evidence::build_package(de, &de_ca, &spec, &pkg, Timestamp::now()).await {
        Ok(w) => {
            record(
                "DE writes a signed package, encrypted to NL",
                true,
                format!(
                    "{} items, manifest sha256:{}…, {} bytes",
                    w.items,
                    &w.manifest_sha256[..16],
                    std::fs::metadata(&pkg).map(|m| m.len()).unwrap_or(0)
                ),
            );
            w
        }
        Err(e) => {
            record("DE writes a signed package, encrypted to NL", false, chain(&e));
            return Ok(());
        }
    };
    // Over the federation: DE offers it (package.send), NL's node fetches it over mutual TLS,
    // checks digest and size against the signed offer and records its arrival.
    let sent = evidence::send_package(
        de,
        &de_ca,
        &pkg,
        &nl.config.party,
        &spec.items,
        Some(spec.request.clone()),
        &written.manifest_sha256,
    )
    .await;
    let sent = match sent {
        Ok(s) => {
            record(
                "DE offers the package to NL's node",
                true,
                format!("package.send at DE entry {}: sha256:{}…", s.index, &s.sha256[..16]),
            );
            s
        }
        Err(e) => {
            record("DE offers the package to NL's node", false, chain(&e));
            return Ok(());
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let arrival = loop {
        let p = nl
            .store
            .packages_in(false)
            .await?
            .into_iter()
            .find(|p| p.offer.sha256 == sent.sha256 && p.status != "pending");
        if p.is_some() || std::time::Instant::now() > deadline {
            break p;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let arrived = arrival.as_ref().is_some_and(|p| p.status == "arrived");
    record(
        "NL's node fetches it over mutual TLS and records its arrival",
        arrived,
        match &arrival {
            Some(p) => format!(
                "{} at NL entry {}: {} bytes, sha256 as offered",
                p.status,
                p.arrival_index.unwrap_or_default(),
                p.offer.size
            ),
            None => "not arrived within 60 s".into(),
        },
    );
    if !arrived {
        return Ok(());
    }
    let pkg =
        entente_node::transfer::incoming_file(&nl.data_dir, de.config.party.as_str(), &sent.sha256);

    println!();
    println!("Step 6 — NL verifies the package offline and imports it");
    let de_key = de.verifying_key();
    let v = evidence::verify_file(
        &pkg,
        &[de_key],
        Some(nl_master.identity()),
        Some(&nl_master.recipient()),
        &mut entente_evidence::package::Discard,
    );
    match &v {
        Ok(v) => record(
            "NL verifies hashes, signature, custody and DE's ledger proofs",
            true,
            format!(
                "{} custody events proven against DE's checkpoint of size {}",
                v.proven_events, v.checkpoint_size
            ),
        ),
        Err(e) => {
            record("NL verifies hashes, signature, custody and DE's ledger proofs", false, chain(e))
        }
    }
    // A byte changed in transit is caught.
    let mut bytes = std::fs::read(&pkg)?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    let tampered = scratch.join("tampered.tar.age");
    std::fs::write(&tampered, bytes)?;
    let t = evidence::verify_file(
        &tampered,
        &[de_key],
        Some(nl_master.identity()),
        None,
        &mut entente_evidence::package::Discard,
    );
    record(
        "a package changed in transit is refused",
        t.is_err(),
        t.err().map(|e| chain(&e)).unwrap_or_default(),
    );
    match evidence::import_package(
        nl,
        &nl_inv,
        &pkg,
        evidence::pinned_keys(nl).await?,
        true,
        nl_case,
        Timestamp::now(),
    )
    .await
    {
        Ok((_, items)) => {
            for (index, r) in items {
                let c = r.conditions.as_ref();
                record(
                    &format!("NL imports {}", r.id),
                    c.is_some(),
                    format!(
                        "received at NL entry {index}; bound: {} — purposes {}, retain until {}, onward transfer {}",
                        c.map_or("-", |c| c.agreement.as_str()),
                        c.map(|c| serde_json::to_string(&c.purposes).unwrap_or_default())
                            .unwrap_or_default(),
                        r.retain_until.map_or_else(|| "no limit".to_owned(), |u| u.to_string()),
                        c.map(|c| serde_json::to_string(&c.onward_transfer).unwrap_or_default())
                            .unwrap_or_default(),
                    ),
                );
            }
        }
        Err(e) => record("NL imports the package", false, chain(&e)),
    }
    Ok(())
}

/// Step 11 for evidence: at `later`, NL destroys the expired items (their data keys), and
/// its ledger still verifies.
pub(crate) async fn retention(
    nl: &Node,
    later: Timestamp,
    record: Record<'_>,
) -> Result<(), Failure> {
    let destroyed = evidence::run_retention(nl, later).await?;
    record(
        "NL destroys the expired evidence (crypto-shredding)",
        !destroyed.is_empty(),
        destroyed.iter().map(|(id, i)| format!("{id} at entry {i}")).collect::<Vec<_>>().join(", "),
    );
    let v = nl
        .gate
        .submit(
            nl.operator(),
            entente_store::evidence::ReadEvidence { id: "de-ev-c2-logs".parse()? },
            later,
        )
        .await
        .ok();
    let v = v.unwrap_or(Verdict::Denied {
        index: 0,
        decision: entente_core::Decision::deny("pilot", "the item was never imported"),
    });
    let gone = matches!(&v, Verdict::Permitted { output: r, .. } if r.blob.is_none() && r.destroyed_at.is_some() && r.chain.last().is_some_and(|e| e.event.event == entente_evidence::CustodyKind::Destroyed));
    let report = entente_store::verify::verify_ledger(
        &nl.store,
        &nl.config.party,
        &nl.verifier_key(),
        &mut |_, _| {},
    )
    .await;
    record(
        "evidence key gone, custody chain and ledger still verify",
        gone && report.is_ok(),
        match report {
            Ok(r) => format!(
                "content unrecoverable; custody ends `destroyed`; {} entries verified",
                r.entries
            ),
            Err(e) => e.to_string(),
        },
    );
    Ok(())
}
