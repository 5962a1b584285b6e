//! Packages over the federation: `entente evidence package … --send` offers the package just
//! written to the partner (`package.send`), whose node fetches it (streamed, resumable) and
//! records its arrival; `entente evidence transfers` shows both directions;
//! `entente evidence import` of an arrived package trusts the sender's pinned key.

use crate::{Exit, Failure, fail};
use entente_core::PartyCode;
use entente_node::Node;
use entente_node::transfer;
use entente_store::Principal;
use entente_store::{PackageRecord, Verdict};
use entente_wire::PackageOffer;
use jiff::Timestamp;
use std::path::Path;

/// What was offered.
#[derive(Debug)]
pub(crate) struct Sent {
    pub(crate) sha256: String,
    pub(crate) size: u64,
    pub(crate) index: u64,
}

/// Offers the package file `file` (written by this node for `to`, with these items) to the
/// pinned partner `to`.
pub(crate) async fn send_package(
    node: &Node,
    actor: &Principal,
    file: &Path,
    to: &PartyCode,
    items: &[String],
    request: Option<String>,
    manifest_sha256: &str,
) -> Result<Sent, Failure> {
    if node.store.peer(to).await?.is_none() {
        return Err(fail(
            Exit::BadInput,
            format!("--to {to}: no partner node is pinned for it (entente peer add)"),
        ));
    }
    let exports = node.store.latest_exports(items).await?;
    let mut named = Vec::with_capacity(exports.len());
    for (item, digest) in exports {
        let digest = digest.ok_or_else(|| {
            fail(
                Exit::BadInput,
                format!("evidence {item}: its latest custody event is not `exported`"),
            )
        })?;
        named.push((item, digest));
    }
    let data_dir = node.data_dir.clone();
    let src = file.to_owned();
    let (sha256, size, staged) =
        tokio::task::spawn_blocking(move || transfer::stage_outgoing(&data_dir, &src))
            .await
            .map_err(|e| fail(Exit::Failed, e))?
            .map_err(|e| fail(Exit::Failed, e))?;
    let file_name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("{sha256}.pkg"));
    let offer = PackageOffer {
        sha256: sha256.clone(),
        size,
        file_name,
        manifest_sha256: manifest_sha256.to_owned(),
        request,
        items: items.to_vec(),
    };
    let command = entente_store::packages::SendPackage { to: to.clone(), offer, exports: named };
    let result = node.gate.submit(actor.clone(), command, Timestamp::now()).await;
    let keep = matches!(&result, Ok(Verdict::Permitted { .. }))
        || node.store.package_out(to, &sha256).await.ok().flatten().is_some();
    if !keep {
        let _ = std::fs::remove_file(&staged);
    }
    match result? {
        Verdict::Permitted { index, .. } => Ok(Sent { sha256, size, index }),
        Verdict::Denied { index, decision } => Err(fail(
            Exit::Denied,
            format!(
                "sending the package to {to} was denied by {} (ledger entry {index}): {}",
                decision.rules.join(", "),
                decision.reason
            ),
        )),
    }
}

/// The Ed25519 keys of the pinned partners (trusted signers of packages they sent).
pub(crate) async fn pinned_keys(node: &Node) -> Result<Vec<ed25519_dalek::VerifyingKey>, Failure> {
    let mut keys = Vec::new();
    for p in node.store.peers().await? {
        let bytes: [u8; 32] =
            hex::decode(&p.signing_key).ok().and_then(|b| b.try_into().ok()).ok_or_else(|| {
                fail(Exit::Failed, format!("the stored key of peer {} is not 32 bytes", p.party))
            })?;
        keys.push(
            ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|e| {
                fail(Exit::Failed, format!("the stored key of peer {}: {e}", p.party))
            })?,
        );
    }
    Ok(keys)
}

/// Checks that the party a package names as its sender is the partner pinned with the key that
/// signed it.
pub(crate) async fn check_sender_pin(
    node: &Node,
    party: &PartyCode,
    ed25519_b64: &str,
) -> Result<(), Failure> {
    use base64::Engine as _;
    let peer = node.store.peer(party).await?.ok_or_else(|| {
        fail(
            Exit::BadInput,
            format!("the package names {party} as its sender, which is not a pinned partner"),
        )
    })?;
    let key =
        base64::prelude::BASE64_STANDARD.decode(ed25519_b64).map(hex::encode).unwrap_or_default();
    if key != peer.signing_key {
        return Err(fail(
            Exit::BadInput,
            format!(
                "the package names {party} as its sender but is signed with another key than the one pinned for {party}; nothing was imported"
            ),
        ));
    }
    Ok(())
}

fn human(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < U.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 { format!("{n} B") } else { format!("{v:.1} {}", U[i]) }
}

/// `entente evidence transfers`: packages offered by this node and to it.
pub(crate) async fn transfers(data_dir: &Path, json: bool) -> Result<(), Failure> {
    let node = Node::open(data_dir).await?;
    let out = node.store.packages_out().await?;
    let inc = node.store.packages_in(false).await?;
    let on_disk = |p: &PackageRecord| -> (u64, Option<String>) {
        let done = transfer::incoming_file(&node.data_dir, &p.party, &p.offer.sha256);
        if p.status == "arrived" {
            return (p.offer.size, Some(done.display().to_string()));
        }
        let part = transfer::partial_file(&node.data_dir, &p.party, &p.offer.sha256);
        (std::fs::metadata(part).map(|m| m.len()).unwrap_or(0), None)
    };
    if json {
        let list: Vec<_> = out
            .iter()
            .map(|p| serde_json::json!({"direction": "out", "package": p}))
            .chain(inc.iter().map(|p| {
                let (bytes, path) = on_disk(p);
                serde_json::json!({"direction": "in", "package": p, "bytes_on_disk": bytes, "path": path})
            }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    println!(
        "{:<4} {:<6} {:<18} {:>10} {:<9} {:>7} {:>7} {:>7}  file",
        "dir", "party", "sha256", "size", "status", "done", "offer", "arrive"
    );
    for p in &out {
        println!(
            "{:<4} {:<6} {:<18} {:>10} {:<9} {:>7} {:>7} {:>7}  {}",
            "out",
            p.party,
            format!("{}…", &p.offer.sha256[..16]),
            human(p.offer.size),
            p.status,
            "-",
            p.offer_index,
            "-",
            p.offer.file_name
        );
    }
    for p in &inc {
        let (bytes, path) = on_disk(p);
        let pct =
            if p.offer.size == 0 { 100.0 } else { bytes as f64 * 100.0 / p.offer.size as f64 };
        println!(
            "{:<4} {:<6} {:<18} {:>10} {:<9} {:>6.1}% {:>7} {:>7}  {}",
            "in",
            p.party,
            format!("{}…", &p.offer.sha256[..16]),
            human(p.offer.size),
            p.status,
            pct,
            p.offer_index,
            p.arrival_index.map_or("-".into(), |i| i.to_string()),
            path.unwrap_or_else(|| p.offer.file_name.clone())
        );
        if let Some(d) = &p.detail {
            println!("     {d}");
        }
    }
    Ok(())
}
