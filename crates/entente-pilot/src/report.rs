//! Step 10: transparency. NL's data-protection authority (the auditor) receives NL's exact
//! statistics for the pilot's half-year over the API, each row traceable to the ledger entries
//! it counts; NL's data-protection officer publishes the differentially private public report;
//! the report is verified against NL's ledger from its tiles, publishing again returns the
//! same figures, and an altered copy fails verification.

use crate::{Checks, PilotNode};
use entente_console::Failure;
use entente_core::Role;
use entente_core::ledger::LedgerEntry;
use entente_report::{Period, PublicReport, render};
use serde_json::{Value, json};
use std::path::Path;

/// The half-year that `now` falls in (`2026-H2`).
fn half_year(now: jiff::Timestamp) -> String {
    let d = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    format!("{}-H{}", d.year(), if d.month() >= 7 { 2 } else { 1 })
}

fn count_rows(stats: &Value, table: &str, col: usize) -> (u64, Vec<(String, u64)>) {
    let mut total = 0;
    let mut by: std::collections::BTreeMap<String, u64> = Default::default();
    let tables = stats["tables"].as_array().cloned().unwrap_or_default();
    for t in tables.iter().filter(|t| t["id"] == table) {
        for r in t["rows"].as_array().cloned().unwrap_or_default() {
            let n = r["cells"][col].as_u64().unwrap_or(0);
            total += n;
            *by.entry(r["cells"][0].as_str().unwrap_or("?").to_owned()).or_default() += n;
        }
    }
    (total, by.into_iter().collect())
}

fn listing(by: &[(String, u64)]) -> String {
    if by.is_empty() {
        return "none".to_owned();
    }
    by.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
}

/// Step 10 (transparency) on NL, whose API is at `url`; the report files go to `reports_dir`.
pub(crate) async fn step10(
    nl: &PilotNode,
    url: &str,
    reports_dir: &Path,
    checks: &mut Checks,
) -> Result<(), Failure> {
    let period = half_year(jiff::Timestamp::now());
    println!();
    println!(
        "Step 10 — transparency: NL's statistics for {period} and its differentially private public report"
    );
    let http = reqwest::Client::new();
    let resp = http
        .get(format!("{url}/api/v1/reports/stats?period={period}"))
        .bearer_auth(nl.token(Role::Auditor)?)
        .send()
        .await?;
    let status = resp.status();
    let stats: Value = resp.json().await?;
    let (issued, issued_by) = count_rows(&stats, "requests-issued", 4);
    let (received, _) = count_rows(&stats, "requests-received", 4);
    let (flows, _) = count_rows(&stats, "data-flows", 5);
    let (denied, _) = count_rows(&stats, "flow-denials", 4);
    checks.record(
        "exact statistics to the DPA",
        status == reqwest::StatusCode::OK && issued > 0,
        format!(
            "HTTP {status}: NL issued {issued} requests ({}), received {received}; {flows} data flows permitted, {denied} denied; read recorded at NL ledger entry {}",
            listing(&issued_by),
            stats["access_ledger_index"]
        ),
    );
    let resp = http
        .get(format!("{url}/api/v1/reports/stats?period={period}&explain=requests-issued.1"))
        .bearer_auth(nl.token(Role::Auditor)?)
        .send()
        .await?;
    let explained: Value = resp.json().await?;
    let indexes: Vec<u64> = explained["ledger"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    let mut actions = Vec::new();
    for i in &indexes {
        for (_, bytes) in nl.node.store.entries(*i, i + 1).await? {
            if let Ok(e) = LedgerEntry::decode(&bytes) {
                actions.push(e.action.to_string());
            }
        }
    }
    checks.record(
        "a figure traced to its ledger entries",
        !indexes.is_empty()
            && actions.len() == indexes.len()
            && actions.iter().all(|a| a.starts_with("request.")),
        format!("row requests-issued.1 counts entries {indexes:?} ({})", actions.join(", ")),
    );
    let resp = http
        .get(format!("{url}/api/v1/reports/stats?period={period}"))
        .bearer_auth(nl.token(Role::Investigator)?)
        .send()
        .await?;
    checks.record(
        "statistics refused to an investigator",
        resp.status() == reqwest::StatusCode::FORBIDDEN,
        format!("HTTP {} (the refusal is recorded)", resp.status()),
    );

    let publish = |new_release: bool| {
        let http = http.clone();
        let body = json!({ "period": period, "new_release": new_release });
        let token = nl.token(Role::Dpo).map(str::to_owned);
        async move {
            let resp = http
                .post(format!("{url}/api/v1/reports/publications"))
                .bearer_auth(token?)
                .json(&body)
                .send()
                .await?;
            let status = resp.status();
            let v: Value = resp.json().await?;
            Ok::<_, Failure>((status, v))
        }
    };
    let (status, first) = publish(false).await?;
    let file = first["file"].as_str().unwrap_or_default().as_bytes().to_vec();
    let report = PublicReport::from_bytes(&file);
    std::fs::create_dir_all(reports_dir)?;
    let json_path = reports_dir.join(format!("transparency-NL-{period}.json"));
    let html_path = reports_dir.join(format!("transparency-NL-{period}.html"));
    std::fs::write(&json_path, &file)?;
    let digest = first["digest"].as_str().unwrap_or_default().to_owned();
    let published = match &report {
        Ok(r) => {
            std::fs::write(&html_path, render::public_html(r, &digest))?;
            std::fs::write(
                reports_dir.join(format!("transparency-NL-{period}.csv")),
                render::public_csv(r),
            )?;
            let totals: Vec<String> = r
                .totals
                .iter()
                .map(|t| {
                    format!("requests {} {} ± {}", t.direction, t.requests, r.mechanism.noise_95)
                })
                .collect();
            format!(
                "release {} at NL ledger entry {}: discrete Laplace, ε = {}, budget {} of {} spent; {}",
                r.release,
                r.ledger_index,
                r.mechanism.epsilon,
                r.budget.spent,
                r.budget.per_period,
                totals.join(", ")
            )
        }
        Err(e) => e.to_string(),
    };
    checks.record(
        "DP public report published",
        status.is_success() && report.is_ok(),
        format!("HTTP {status}: {published}"),
    );

    let key = nl.node.verifier_key();
    let verified = entente_node::reports::verify(&file, url, &key, &mut |_, _| {}).await;
    checks.record(
        "public report verified against NL's tiles",
        verified.is_ok(),
        match &verified {
            Ok(v) => format!(
                "{} recorded at entry {}, ledger audited at size {}",
                v.digest, v.entry.index, v.checkpoint_size
            ),
            Err(e) => e.to_string(),
        },
    );
    let (status, again) = publish(false).await?;
    checks.record(
        "publishing again returns the same figures",
        status == reqwest::StatusCode::OK
            && again["digest"] == first["digest"]
            && again["reissued"] == true,
        format!("HTTP {status}, digest {} (no budget spent)", again["digest"]),
    );
    if let Ok(mut altered) = report {
        if let Some(row) = altered.rows.first_mut() {
            row.requests += 1;
        }
        if let Some(t) = altered
            .totals
            .iter_mut()
            .find(|t| Some(&t.direction) == altered.rows.first().map(|r| &r.direction))
        {
            t.requests += 1;
        }
        let bytes = altered.to_bytes()?;
        let refused = entente_node::reports::verify(&bytes, url, &key, &mut |_, _| {}).await;
        checks.record(
            "an altered report fails verification",
            refused.is_err(),
            refused.err().map_or_else(|| "accepted".to_owned(), |e| e.to_string()),
        );
    }
    println!("   HTML report: {}", html_path.display());
    // The exact period as a reminder for whoever reads the output.
    if let Ok(p) = Period::parse(&period) {
        println!("   period {} = {} to {}, counted up to now", p.label, p.from, p.to);
    }
    Ok(())
}
