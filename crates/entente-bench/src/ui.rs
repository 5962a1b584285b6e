//! `entente bench ui`: how long the web interface takes to answer an investigator on a node
//! holding N ledger entries. The node serves its real router on a loopback port; a signed-in
//! session (the cookie the sign-in form sets) asks for each page `samples` times, and every
//! view is a recorded read, as in use. Each page is checked (status 200, the content it must
//! show) before it is timed.

use super::{append, bench_token, make_node};
use entente_console::{Exit, Failure, fail};
use entente_core::Role;
use std::time::{Duration, Instant};

/// Pages and what each must contain.
fn pages(entries: u64) -> Vec<(String, &'static str, String)> {
    // `append` opens cases B0 … B{n-1}; their ids sort as text, so B{n/2} is mid-listing.
    let mid = entries / 2;
    vec![
        ("/ui/".into(), "home (open requests and their clocks)", "Open requests".into()),
        ("/ui/cases".into(), "case listing, first page (50 cases)", "B0".into()),
        (format!("/ui/cases?after=B{mid}"), "case listing, a page mid-way", "Next page".into()),
        (
            format!("/ui/cases/B{mid}"),
            "a case's page (its status and ledger timeline)",
            format!("B{mid}"),
        ),
        (
            format!("/api/v1/cases?after=B{mid}"),
            "the same listing page as JSON (API)",
            "next_after".into(),
        ),
    ]
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

pub(crate) async fn run(entries: u64, samples: u64) -> Result<(), Failure> {
    let failed = |e: String| fail(Exit::Failed, e);
    let dir = tempfile::tempdir()?;
    let node = make_node(dir.path(), None).await?;
    let (took, rate) = append(&node, entries, 512, "building ledger").await?;
    let token = bench_token(&node, "eva", Role::Investigator).await?;
    let (size, _) = node.store.ledger_head().await?;
    println!(
        "node: {size} ledger entries ({entries} cases opened through the gate in {:.1} s, {rate:.0} appends/s), SQLite",
        took.as_secs_f64()
    );

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(entente_node::server::serve(node.clone(), listener, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let signed = client
        .post(format!("{base}/ui/sign-in"))
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        // The token is hex: nothing in it needs escaping.
        .body(format!("token={token}"))
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let cookie = signed
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
        .ok_or_else(|| {
            failed(format!("the sign-in set no session cookie ({})", signed.status()))
        })?;

    println!(
        "{samples} views of each page by one signed-in investigator, one at a time (each view one ledger entry)"
    );
    println!("{:<50} {:>9} {:>9} {:>9} {:>9}", "page", "p50 ms", "p95 ms", "max ms", "KiB");
    for (path, what, must) in pages(entries) {
        let get = || {
            let req = client.get(format!("{base}{path}"));
            if path.starts_with("/api/") {
                req.bearer_auth(&token)
            } else {
                req.header(reqwest::header::COOKIE, &cookie)
            }
        };
        let mut times = Vec::with_capacity(samples as usize);
        let mut bytes = 0;
        for i in 0..=samples {
            let t = Instant::now();
            let r = get().send().await.map_err(|e| failed(format!("{path}: {e}")))?;
            let status = r.status();
            let body = r.text().await.map_err(|e| failed(format!("{path}: {e}")))?;
            let elapsed = t.elapsed();
            if !status.is_success() || !body.contains(&must) {
                return Err(failed(format!("{path}: {status}, without `{must}`")));
            }
            // The first view warms the caches; it is not counted.
            if i > 0 {
                times.push(elapsed);
                bytes = body.len();
            }
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{what:<50} {:>9.2} {:>9.2} {:>9.2} {:>9.1}",
            ms(quantile(&times, 0.5)),
            ms(quantile(&times, 0.95)),
            ms(times.last().copied().unwrap_or_default()),
            bytes as f64 / 1024.0
        );
    }
    let (after, _) = node.store.ledger_head().await?;
    println!("ledger after the views: {after} entries ({} recorded reads)", after - size);
    let _ = stop.send(());
    let _ = server.await;
    node.store.close().await;
    Ok(())
}
