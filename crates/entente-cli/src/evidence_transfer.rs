//! `entente evidence transfers`: packages offered by this node to partners and by partners to
//! it, with their progress. (Offering one, `evidence package … --send`, and trusting the
//! pinned sender key on import are the node's: `entente_node::packages`.)

use entente_console::Failure;
use entente_node::Node;
use entente_node::transfer;
use entente_store::PackageRecord;
use std::path::Path;

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
