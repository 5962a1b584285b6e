//! `entente bench intel`: the node's TAXII 2.1 server against medallion (OASIS, memory
//! backend) on the same collection in the same run, and bundle import against `stix2.parse`
//! (OASIS Python library). Numbers are printed, never asserted.

use entente_console::{Exit, Failure, fail};
use entente_core::{PartyCode, Role};
use entente_intel::stix;
use entente_node::{InitOptions, Node};
use entente_store::Verdict;
use jiff::Timestamp;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TAXII: &str = "application/taxii+json;version=2.1";
const COLLECTION: &str = "91a7b528-80eb-42ed-a74d-c6fbd5a26116";

fn indicator(n: usize) -> String {
    format!(
        r#"{{"type":"indicator","spec_version":"2.1","id":"indicator--{:08x}-0000-4000-8000-{n:012}","created":"2026-11-01T00:00:00.000Z","modified":"2026-11-01T00:00:00.000Z","name":"Indicator {n}","description":"Benchmark indicator","indicator_types":["malicious-activity"],"pattern":"[ipv4-addr:value = '10.{}.{}.{}']","pattern_type":"stix","valid_from":"2026-11-01T00:00:00Z","object_marking_refs":["marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"]}}"#,
        n / 1_000_000,
        (n / 65536) % 256,
        (n / 256) % 256,
        n % 256
    )
}

/// Throughput of paged GET and of POSTs of envelopes against one TAXII server.
struct Run {
    post_secs: f64,
    get_secs: f64,
    got: usize,
}

async fn drive(
    http: &reqwest::Client,
    objects_url: &str,
    auth: &(dyn Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder + Sync),
    envelopes: &[String],
    page: usize,
) -> Result<Run, Failure> {
    let t = Instant::now();
    for e in envelopes {
        let r = auth(http.post(objects_url))
            .header("Accept", TAXII)
            .header("Content-Type", TAXII)
            .body(e.clone())
            .send()
            .await?;
        if !r.status().is_success() {
            return Err(fail(Exit::Failed, format!("POST {objects_url}: {}", r.status())));
        }
        let _ = r.bytes().await?;
    }
    let post_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut got = 0;
    let mut next: Option<String> = None;
    loop {
        let url = match &next {
            Some(n) => format!("{objects_url}?limit={page}&next={n}"),
            None => format!("{objects_url}?limit={page}"),
        };
        let r = auth(http.get(&url)).header("Accept", TAXII).send().await?;
        if !r.status().is_success() {
            return Err(fail(Exit::Failed, format!("GET {url}: {}", r.status())));
        }
        let v: serde_json::Value = r.json().await?;
        got += v["objects"].as_array().map_or(0, Vec::len);
        next = v["next"].as_str().map(str::to_owned);
        if v["more"] != serde_json::Value::Bool(true) || next.is_none() {
            break;
        }
    }
    Ok(Run { post_secs, get_secs: t.elapsed().as_secs_f64(), got })
}

async fn wait_up(http: &reqwest::Client, url: &str, user: &str, pw: &str) -> Result<(), Failure> {
    for _ in 0..300 {
        if let Ok(r) = http.get(url).basic_auth(user, Some(pw)).header("Accept", TAXII).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(fail(Exit::Failed, format!("{url} did not come up")))
}

fn free_port() -> Result<u16, Failure> {
    crate::federation::free_port()
}

fn medallion_config(dir: &Path, port: u16) -> Result<std::path::PathBuf, Failure> {
    let data = serde_json::json!({
        "/discovery": {
            "title": "medallion bench", "description": "", "contact": "",
            "default": format!("http://127.0.0.1:{port}/api1/"),
            "api_roots": [format!("http://127.0.0.1:{port}/api1/")]
        },
        "api1": {
            "information": {"title": "api1", "description": "", "versions": [TAXII], "max_content_length": 104857600},
            "status": [],
            "collections": [{
                "id": COLLECTION, "title": "bench", "description": "", "can_read": true, "can_write": true,
                "media_types": ["application/stix+json;version=2.1"], "objects": [], "manifest": []
            }]
        }
    });
    let data_path = dir.join("medallion-data.json");
    std::fs::write(&data_path, data.to_string())?;
    let conf = serde_json::json!({
        // medallion keeps paging state in process and expires it after `session_timeout`
        // (30 s by default), after which `next` is a 400: long enough for the whole run here.
        "backend": {"module": "medallion.backends.memory_backend", "module_class": "MemoryBackend", "filename": data_path, "session_timeout": 36000},
        "users": {"bench": "bench"},
        "taxii": {"max_page_size": 1000}
    });
    let conf_path = dir.join("medallion.json");
    std::fs::write(&conf_path, conf.to_string())?;
    Ok(conf_path)
}

/// Kills the child when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) async fn run(
    objects: usize,
    page: usize,
    per_envelope: usize,
    import: usize,
    medallion: &str,
    python: &str,
) -> Result<(), Failure> {
    let tmp = tempfile::tempdir()?;
    println!(
        "bench intel: {objects} indicators, POST envelopes of {per_envelope}, GET pages of {page}"
    );
    let envelopes: Vec<String> = (0..objects)
        .collect::<Vec<_>>()
        .chunks(per_envelope)
        .map(|c| {
            let raws: Vec<String> = c.iter().map(|n| indicator(*n)).collect();
            let refs: Vec<&str> = raws.iter().map(String::as_str).collect();
            stix::write_objects("", &refs)
        })
        .collect();
    let http = reqwest::Client::new();

    // Entente: a node with a csirt user and a collection, serving on a loopback port.
    let node = Node::init(
        &InitOptions {
            data_dir: tmp.path().join("nl"),
            party: "NL".parse::<PartyCode>()?,
            name: "bench".into(),
            database_url: None,
            listen: ([127, 0, 0, 1], 0).into(),
            federation_listen: None,
        },
        Timestamp::now(),
    )
    .await?;
    let token = crate::bench_token(&node, "bench", Role::Csirt).await?;
    let create = entente_store::intel::IntelCollectionCreate {
        id: COLLECTION.into(),
        title: "bench".into(),
        description: String::new(),
        parties: vec![],
    };
    node.gate.submit(node.operator(), create, Timestamp::now()).await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let ours = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(entente_node::server::serve(node.clone(), listener, async {
        let _ = stopped.await;
    }));
    let bearer = |r: reqwest::RequestBuilder| r.bearer_auth(&token);
    let ours_url = format!("{ours}/taxii2/api/collections/{COLLECTION}/objects/");
    let e = drive(&http, &ours_url, &bearer, &envelopes, page).await?;
    let _ = stop.send(());
    let _ = server.await;

    // medallion, memory backend, as a separate process (Flask's server).
    let port = free_port()?;
    let conf = medallion_config(tmp.path(), port)?;
    let child = std::process::Command::new(medallion)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--log-level", "ERROR"])
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| {
            fail(
                Exit::BadInput,
                format!("{medallion}: {e} (run scripts/pyenv.sh and put .venv/bin on PATH)"),
            )
        })?;
    let _child = Child(child);
    let base = format!("http://127.0.0.1:{port}");
    wait_up(&http, &format!("{base}/taxii2/"), "bench", "bench").await?;
    let basic = |r: reqwest::RequestBuilder| r.basic_auth("bench", Some("bench"));
    let m_url = format!("{base}/api1/collections/{COLLECTION}/objects/");
    let m = drive(&http, &m_url, &basic, &envelopes, page).await?;
    drop(_child);

    let rate = |n: usize, s: f64| n as f64 / s.max(1e-9);
    println!();
    println!("{:<34} {:>14} {:>14} {:>8}", "", "entente", "medallion", "ratio");
    let (ep, mp) = (rate(objects, e.post_secs), rate(objects, m.post_secs));
    println!(
        "{:<34} {:>12.0}/s {:>12.0}/s {:>7.1}×",
        "POST envelopes (objects/s)",
        ep,
        mp,
        ep / mp
    );
    let (eg, mg) = (rate(e.got, e.get_secs), rate(m.got, m.get_secs));
    println!("{:<34} {:>12.0}/s {:>12.0}/s {:>7.1}×", "GET paged (objects/s)", eg, mg, eg / mg);
    println!("{:<34} {:>14} {:>14}", "objects paged through", e.got, m.got);

    // Import of a bundle of `import` indicators: parse and validate, then the whole import
    // through the gate; stix2.parse of the same bundle in Python.
    let raws: Vec<String> = (0..import).map(indicator).collect();
    let refs: Vec<&str> = raws.iter().map(String::as_str).collect();
    let bundle = stix::write_objects(
        "\"type\":\"bundle\",\"id\":\"bundle--6f2c6a34-2a4e-4e55-8c39-0d8f2e1a9b10\",",
        &refs,
    );
    let path = tmp.path().join("bundle.json");
    std::fs::write(&path, &bundle)?;
    println!();
    println!("bundle of {import} indicators ({:.1} MB)", bundle.len() as f64 / 1e6);
    let t = Instant::now();
    let parsed = stix::parse_bundle(&bundle).map_err(|e| fail(Exit::Failed, e.to_string()))?;
    let parse_secs = t.elapsed().as_secs_f64();
    let node2 = Node::open(&tmp.path().join("nl")).await?;
    let coll2 = "a2b3c4d5-e6f7-4a8b-9c0d-1e2f3a4b5c6d";
    node2
        .gate
        .submit(
            node2.operator(),
            entente_store::intel::IntelCollectionCreate {
                id: coll2.into(),
                title: "import".into(),
                description: String::new(),
                parties: vec![],
            },
            Timestamp::now(),
        )
        .await?;
    let t = Instant::now();
    let v = node2
        .gate
        .submit(
            node2.operator(),
            entente_store::intel::IntelImport {
                collection: coll2.into(),
                objects: Arc::new(parsed.objects),
                originator: None,
                status_id: "b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e".into(),
            },
            Timestamp::now(),
        )
        .await?;
    let import_secs = t.elapsed().as_secs_f64();
    if !matches!(v, Verdict::Permitted { .. }) {
        return Err(fail(Exit::Failed, format!("import refused: {v:?}")));
    }
    let script = "import sys, time, stix2\ntext = open(sys.argv[1]).read()\nt = time.perf_counter()\nb = stix2.parse(text, allow_custom=True)\nprint(time.perf_counter() - t, len(b.objects))\n";
    let o = std::process::Command::new(python)
        .args(["-c", script])
        .arg(&path)
        .output()
        .map_err(|e| fail(Exit::BadInput, format!("{python}: {e}")))?;
    if !o.status.success() {
        return Err(fail(
            Exit::Failed,
            format!("stix2.parse: {}", String::from_utf8_lossy(&o.stderr)),
        ));
    }
    let out = String::from_utf8_lossy(&o.stdout);
    let py_secs: f64 = out
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| fail(Exit::Failed, format!("stix2.parse printed `{out}`")))?;
    println!(
        "{:<46} {:>9.3} s  ({:.0} objects/s)",
        "entente parse + validate (patterns too)",
        parse_secs,
        rate(import, parse_secs)
    );
    println!(
        "{:<46} {:>9.3} s  ({:.0} objects/s)",
        "entente import through the gate (SQLite)",
        import_secs,
        rate(import, import_secs)
    );
    println!(
        "{:<46} {:>9.3} s  ({:.0} objects/s)",
        "stix2.parse (Python, OASIS)",
        py_secs,
        rate(import, py_secs)
    );
    println!("{:<46} {:>9.1}×", "ratio parse + validate vs stix2.parse", py_secs / parse_secs);
    println!(
        "{:<46} {:>9.1}×",
        "ratio parse + validate + import vs stix2.parse",
        py_secs / (parse_secs + import_secs)
    );
    Ok(())
}
