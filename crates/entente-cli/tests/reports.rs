//! Transparency reports on a real node process: exact statistics over the CLI and the API,
//! each row traced to its ledger entries; the public report published, returned unchanged,
//! spent to the end of its budget, verified against the node's tiles, and an altered copy
//! refused; bad input refused with clear errors and nothing spent; the HTML report rendered in
//! headless Chromium.

use crate::common::{Server, add_user, entente, entente_ok, init_node, s, stderr, stdout};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

fn half_year() -> String {
    let d = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    format!("{}-H{}", d.year(), if d.month() >= 7 { 2 } else { 1 })
}

fn ledger_size(dir: &Path) -> u64 {
    let o = entente_ok(&["ledger", "verify", "--data-dir", s(dir)]);
    let out = stdout(&o);
    out.split_whitespace()
        .find_map(|w| w.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no size in: {out}"))
}

fn render_in_chromium(html: &Path, png: &Path) -> String {
    let Some(bin) = crate::common::chromium() else { return String::new() };
    let url = format!("file://{}", html.display());
    let flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"];
    let shot = std::process::Command::new(bin)
        .args(flags)
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1200,1600")
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        shot.status.success(),
        "chromium screenshot: {}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let size = std::fs::metadata(png).unwrap().len();
    assert!(size > 20_000, "a screenshot of {size} bytes shows next to nothing");
    let dom =
        std::process::Command::new(bin).args(flags).arg("--dump-dom").arg(&url).output().unwrap();
    String::from_utf8_lossy(&dom.stdout).into_owned()
}

#[tokio::test]
async fn statistics_public_report_and_its_verification() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nl");
    init_node(&dir, "NL");
    let prosecutor = add_user(&dir, "pros", "central-authority");
    let auditor = add_user(&dir, "ann", "auditor");
    let dpo = add_user(&dir, "dora", "dpo");
    let investigator = add_user(&dir, "eva", "investigator");
    let server = Server::start(&dir, Duration::from_secs(20)).await;
    let period = half_year();
    let r =
        server.post("/api/v1/cases", &prosecutor, json!({"id": "L", "title": "t"})).await.unwrap();
    assert_eq!(r.status(), 201);
    for (id, to, kind, agreement) in
        [("r1", "DE", "production", "eu-2023-1543"), ("r2", "US", "mla", "nl-us-mla")]
    {
        let body = json!({"id": id, "case_id": "L", "kind": kind, "agreement": agreement, "to": to, "provisions": ["Sr 138ab"]});
        let r = server.post("/api/v1/requests", &prosecutor, body).await.unwrap();
        assert_eq!(r.status(), 201, "{id}");
        let r = server
            .post(&format!("/api/v1/requests/{id}/events"), &prosecutor, json!({"event": "submit"}))
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{id}");
    }

    // Exact statistics at the command line, as the auditor.
    let d = s(&dir);
    let o = entente_ok(&[
        "report",
        "stats",
        "--period",
        &period,
        "--data-dir",
        d,
        "--user",
        "ann",
        "--json",
    ]);
    let stats: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let issued =
        stats["tables"].as_array().unwrap().iter().find(|t| t["id"] == "requests-issued").unwrap();
    let rows: Vec<String> = issued["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{} {} {}", r["cells"][0], r["cells"][1], r["cells"][4]))
        .collect();
    assert_eq!(rows, ["\"DE\" \"production\" 1", "\"US\" \"mla\" 1"]);
    let o = entente_ok(&[
        "report",
        "stats",
        "--period",
        &period,
        "--data-dir",
        d,
        "--explain",
        "requests-issued.1",
    ]);
    let out = stdout(&o);
    assert!(
        out.contains("requests-issued.1 — Requests issued by this node")
            && out.contains("counts 1 ledger entries: "),
        "{out}"
    );
    let o = entente_ok(&["report", "stats", "--period", &period, "--data-dir", d, "--csv"]);
    assert!(
        stdout(&o)
            .starts_with("table,row,column,value\nrequests-issued,requests-issued.1,partner,DE\n"),
        "{}",
        stdout(&o)
    );
    let html = tmp.path().join("stats.html");
    entente_ok(&["report", "stats", "--period", &period, "--data-dir", d, "--html", s(&html)]);

    // Bad input: exit 2, a message that says what is expected, nothing recorded.
    let before = ledger_size(&dir);
    for (args, want) in [
        (vec!["--period", "2026-H3"], "expected a half-year such as 2026-H2"),
        (vec!["--period", "2999-H1"], "after now"),
        (vec!["--from", "2026-07-01", "--to", "2026-07-01"], "the period is empty"),
        (
            vec!["--from", "yesterday", "--to", "2026-07-01"],
            "expected an RFC 3339 instant or a date",
        ),
        (vec!["--period", &period, "--explain", "nothing.9"], "no such row"),
        (vec!["--period", &period, "--partner", "FR"], "no agreement of this node names it"),
        (vec!["--period", &period, "--partner", "XX"], "XX"),
    ] {
        let mut all = vec!["report", "stats", "--data-dir", d];
        all.extend(args.iter().copied());
        let o = entente(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    // (the --explain of a row that does not exist reads, and records, the statistics first)
    assert_eq!(ledger_size(&dir), before + 1);
    // (the statistics with US below are recorded too)
    let o = entente_ok(&[
        "report",
        "stats",
        "--period",
        &period,
        "--data-dir",
        d,
        "--partner",
        "US",
        "--json",
    ]);
    let us: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let issued =
        us["tables"].as_array().unwrap().iter().find(|t| t["id"] == "requests-issued").unwrap();
    assert_eq!(
        (us["partner"].as_str(), issued["rows"].as_array().unwrap().len()),
        (Some("US"), 1),
        "{us}"
    );
    let o = entente(&["report", "stats", "--period", &period, "--data-dir", d, "--user", "eva"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("denied by default-deny (ledger entry"), "{}", stderr(&o));

    // Over the API: the auditor reads, an investigator is refused, anonymous callers too.
    let http = reqwest::Client::new();
    let get = |token: Option<&str>, q: &str| {
        let mut r = http.get(format!("{}/api/v1/reports/stats?{q}", server.url));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let r = get(Some(&auditor), &format!("period={period}")).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["access_ledger_index"].as_u64().is_some() && v["tables"].as_array().unwrap().len() == 14,
        "{v}"
    );
    let r =
        get(Some(&auditor), &format!("period={period}&explain=requests-issued.2")).await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["ledger"].as_array().unwrap().len(), 1, "{v}");
    for (token, q, want) in [
        (Some(investigator.as_str()), format!("period={period}"), 403),
        (None, format!("period={period}"), 401),
        (Some(auditor.as_str()), "period=soon".to_owned(), 422),
        (Some(auditor.as_str()), "from=2026-07-01T00:00:00Z".to_owned(), 422),
        (Some(auditor.as_str()), format!("period={period}&explain=no.1"), 404),
        (Some(auditor.as_str()), "colour=blue".to_owned(), 400),
    ] {
        let r = get(token, &q).await.unwrap();
        assert_eq!(r.status(), want, "{q}");
        assert_eq!(r.headers()["content-type"], "application/problem+json", "{q}");
    }

    // The public report: published, then the same figures again, then a second release that
    // spends the rest of the budget, then a refusal that is recorded.
    let out = tmp.path().join("out");
    let publish = |extra: &[&str]| {
        let mut a = vec![
            "report",
            "publish",
            "--period",
            &period,
            "--data-dir",
            d,
            "--user",
            "dora",
            "--out",
            s(&out),
            "--json",
        ];
        a.extend_from_slice(extra);
        entente(&a)
    };
    let first: Value = serde_json::from_str(&stdout(&publish(&[]))).unwrap();
    assert_eq!(
        (first["release"].as_u64(), first["reissued"].as_bool()),
        (Some(1), Some(false)),
        "{first}"
    );
    let again: Value = serde_json::from_str(&stdout(&publish(&[]))).unwrap();
    assert_eq!(
        (again["digest"].clone(), again["reissued"].as_bool()),
        (first["digest"].clone(), Some(true))
    );
    let file = Path::new(first["files"]["json"].as_str().unwrap()).to_owned();
    let before = ledger_size(&dir);
    for (eps, want) in [
        ("0", "expected a positive number"),
        ("abc", "expected a positive number"),
        ("3/2", "exceeds the whole budget"),
    ] {
        let o = publish(&["--new-release", "--epsilon", eps]);
        assert_eq!(o.status.code(), Some(2), "{eps}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{eps}: {}", stderr(&o));
    }
    assert_eq!(ledger_size(&dir), before, "a parameter out of range spends and records nothing");
    let second: Value = serde_json::from_str(&stdout(&publish(&["--new-release"]))).unwrap();
    assert_eq!(
        (second["release"].as_u64(), second["budget"]["remaining"].as_str()),
        (Some(2), Some("0")),
        "{second}"
    );
    let o = publish(&["--new-release"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("report.budget") && stderr(&o).contains("left: 0"),
        "{}",
        stderr(&o)
    );
    let r = server
        .post("/api/v1/reports/publications", &auditor, json!({"period": period}))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r =
        server.post("/api/v1/reports/publications", &dpo, json!({"period": period})).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["release"].as_u64(), v["reissued"].as_bool()), (Some(2), Some(true)), "{v}");
    let r = server
        .post("/api/v1/reports/publications", &dpo, json!({"period": period, "epsilon": "-1"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 422);

    // Verified against the node's tiles; an altered copy (consistent, canonical) is refused,
    // and so is a re-encoded one.
    let o = entente_ok(&["report", "verify", s(&file), "--url", &server.url]);
    assert!(stdout(&o).contains(": OK — release 1 of NL"), "{}", stdout(&o));
    let mut report =
        entente_report::PublicReport::from_bytes(&std::fs::read(&file).unwrap()).unwrap();
    report.rows[0].requests += 5;
    let dir0 = report.rows[0].direction.clone();
    report.totals.iter_mut().find(|t| t.direction == dir0).unwrap().requests += 5;
    let altered = tmp.path().join("altered.json");
    std::fs::write(&altered, report.to_bytes().unwrap()).unwrap();
    let o = entente(&["report", "verify", s(&altered), "--url", &server.url]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("FAILED") && stderr(&o).contains("the file was altered"),
        "{}",
        stderr(&o)
    );
    let pretty = tmp.path().join("pretty.json");
    std::fs::write(&pretty, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    let o = entente(&["report", "verify", s(&pretty), "--url", &server.url]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not in canonical form"), "{}", stderr(&o));

    // The HTML reports render in a real browser, charts included, with nothing fetched.
    let public_html = Path::new(first["files"]["html"].as_str().unwrap()).to_owned();
    for (page, svgs) in [
        (&public_html, ["requests", "flows", "flows"]),
        (&html, ["flows", "time-to-answer", "over-time"]),
    ] {
        let text = std::fs::read_to_string(page).unwrap();
        assert!(
            !text.contains("<script")
                && !text.contains("src=\"http")
                && !text.contains("href=\"http"),
            "{}",
            page.display()
        );
        let dom = render_in_chromium(page, &page.with_extension("png"));
        if !dom.is_empty() {
            for id in svgs {
                assert!(
                    dom.contains(&format!("<svg id=\"{id}\"")),
                    "{}: no chart {id}",
                    page.display()
                );
            }
        }
    }
    drop(server);
}
