//! `entente alerts`: the legal clocks of every open request, overdue ones first.

use entente_console::{Failure, permitted};
use entente_node::Node;
use entente_policy::request::ClockStatus;
use entente_store::requests::ReadAlerts;
use std::path::PathBuf;

pub(crate) async fn run(data_dir: PathBuf, now: Option<String>, json: bool) -> Result<(), Failure> {
    let now = entente_console::instant(now)?;
    let node = Node::open(&data_dir).await?;
    let (_, requests) = permitted(node.gate.submit(node.operator(), ReadAlerts, now).await?)?;
    let mut rows = Vec::new();
    for r in &requests {
        for c in &r.clocks {
            let status = c.status(now);
            let remaining = c.remaining(now);
            let alert = match status {
                ClockStatus::Missed => "OVERDUE",
                ClockStatus::Running if remaining.as_secs() < 24 * 3600 => "due within 24 h",
                _ => "",
            };
            rows.push((alert, r, c, status, remaining));
        }
    }
    rows.sort_by_key(|(alert, _, c, _, _)| (alert.is_empty(), c.due));
    if json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|(alert, r, c, status, remaining)| {
                serde_json::json!({
                    "alert": alert, "request": r.id, "kind": r.kind, "to": r.to, "clock": c.kind.name(),
                    "due_utc": c.due.to_string(), "due_local": c.due_local().to_string(),
                    "status": status.to_string(), "remaining_seconds": remaining.as_secs(),
                    "unverified": c.unverified(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    println!("open requests at {now}: {}", requests.len());
    println!(
        "  {:<16} {:<24} {:<14} {:<10} {:<32} {:<10} remaining",
        "alert", "request", "kind", "clock", "due (UTC)", "status"
    );
    for (alert, r, c, status, remaining) in &rows {
        println!(
            "  {:<16} {:<24} {:<14} {:<10} {:<32} {:<10} {}{}",
            alert,
            r.id,
            r.kind.as_str(),
            c.kind.name(),
            c.due.to_string(),
            status.to_string(),
            entente_policy::request::format_duration(*remaining),
            if c.unverified() { "  [unverified basis]" } else { "" }
        );
    }
    let overdue = rows.iter().filter(|(a, ..)| *a == "OVERDUE").count();
    println!("{overdue} overdue");
    Ok(())
}
