//! `entente pilot`: Operation Lantern (see PILOT.md) on three pilot nodes, NL, DE and US.
//!
//! What runs today: the nodes are created with their identities and users and pin each
//! other's certificates; each runs as its own `entente serve` process with its API and its
//! federation endpoint (mutual TLS) on loopback ports, so every message between parties
//! travels as a signed envelope from one process's outbox to another's gate. An NL
//! investigator opens case LANTERN over HTTP; an auditor's attempt
//! to open a case and an unauthenticated call are refused (the first recorded, the second
//! counted and recorded in aggregate); the investigator
//! reads the case (the access is recorded); the offence is checked for dual criminality at DE
//! and US against the shipped lexicon; every ledger is verified from its database; NL's
//! data-protection authority audits NL's ledger over HTTP from its checkpoint and tiles alone,
//! twice, proving the second view extends the first.

mod evidence;
mod intel;
mod notify;
mod psi;
mod report;

use entente_console::{Exit, Failure, fail};
use entente_core::{PartyCode, Role};
use entente_node::identity::random_hex;
use entente_node::{InitOptions, Node};
use entente_store::Principal;
use entente_store::Verdict;
use jiff::Timestamp;
use serde_json::{Value, json};
use sha2::Digest as _;
use std::path::PathBuf;
use std::time::Instant;

struct PartySpec {
    code: &'static str,
    name: &'static str,
    users: &'static [(&'static str, Role)],
}

const PARTIES: &[PartySpec] = &[
    PartySpec {
        code: "NL",
        name: "NL national police cyber-crime team (pilot)",
        users: &[
            ("nl-investigator", Role::Investigator),
            ("nl-prosecutor", Role::CentralAuthority),
            ("nl-csirt", Role::Csirt),
            ("nl-dpo", Role::Dpo),
            ("nl-dpa-auditor", Role::Auditor),
        ],
    },
    PartySpec {
        code: "DE",
        name: "DE federal criminal police cyber unit (pilot)",
        users: &[
            ("de-investigator", Role::Investigator),
            ("de-justice-office", Role::CentralAuthority),
            ("de-csirt", Role::Csirt),
        ],
    },
    PartySpec {
        code: "US",
        name: "US federal investigative agency (pilot)",
        users: &[
            ("us-investigator", Role::Investigator),
            ("us-oia", Role::CentralAuthority),
            ("us-csirt", Role::Csirt),
        ],
    },
];

struct Checks {
    rows: Vec<(String, bool, String)>,
}

impl Checks {
    fn record(&mut self, step: &str, ok: bool, detail: impl Into<String>) {
        let detail = detail.into();
        println!("   {} {step}: {detail}", if ok { "✓" } else { "✗" });
        self.rows.push((step.to_owned(), ok, detail));
    }
}

struct PilotNode {
    node: Node,
    tokens: Vec<(String, Role, String)>,
}

impl PilotNode {
    fn token(&self, role: Role) -> Result<&str, Failure> {
        self.tokens.iter().find(|(_, r, _)| *r == role).map(|(_, _, t)| t.as_str()).ok_or_else(
            || fail(Exit::Failed, format!("pilot node {} has no {role}", self.node.config.party)),
        )
    }
}

pub async fn run(dir: Option<PathBuf>, keep: bool) -> Result<(), Failure> {
    let started = Instant::now();
    let _tmp;
    // The transparency report of step 10 outlives a temporary pilot directory.
    let reports_dir = match &dir {
        Some(d) => d.join("reports"),
        None => PathBuf::from("entente-pilot-reports"),
    };
    let root = match dir {
        Some(d) => {
            if d.exists() && std::fs::read_dir(&d)?.next().is_some() {
                return Err(fail(
                    Exit::BadInput,
                    format!(
                        "--dir {} is not empty; the pilot needs a fresh directory",
                        d.display()
                    ),
                ));
            }
            d
        }
        None => {
            let t = tempfile::tempdir()?;
            let p = t.path().to_owned();
            _tmp = t;
            p
        }
    };
    let mut checks = Checks { rows: Vec::new() };
    println!("Operation Lantern — pilot run in {}", root.display());
    println!();
    println!("Setting up the pilot nodes");
    let mut nodes = Vec::new();
    for spec in PARTIES {
        let party: PartyCode = spec.code.parse()?;
        let opts = InitOptions {
            data_dir: root.join(spec.code.to_lowercase()),
            party,
            name: spec.name.into(),
            database_url: None,
            listen: ([127, 0, 0, 1], free_port()?).into(),
            federation_listen: Some(([127, 0, 0, 1], free_port()?).into()),
        };
        let node = Node::init(&opts, Timestamp::now()).await?;
        let mut tokens = Vec::new();
        for (name, role) in spec.users {
            let token = random_hex(32)?;
            let digest = hex::encode(sha2::Sha256::digest(token.as_bytes()));
            let v = node
                .gate
                .submit(
                    node.operator(),
                    entente_store::users::AddUser {
                        name: (*name).into(),
                        role: *role,
                        token_sha256: digest,
                    },
                    Timestamp::now(),
                )
                .await?;
            if !matches!(v, Verdict::Permitted { .. }) {
                return Err(fail(Exit::Failed, format!("adding {name} was not permitted: {v:?}")));
            }
            tokens.push(((*name).to_owned(), *role, token));
        }
        checks.record(
            &format!("node {}", spec.code),
            true,
            format!("{} — ledger {} — {} users", spec.name, node.gate.origin(), spec.users.len()),
        );
        nodes.push(PilotNode { node, tokens });
    }

    pin_each_other(&nodes, &mut checks).await?;
    let processes = start_processes(&nodes, &mut checks).await?;

    incident(&mut checks)?;
    crate::notify::notify_partner(&nodes[0].node, &mut |step, ok, detail| {
        checks.record(step, ok, detail)
    })
    .await?;

    let nl = &nodes[0];
    let nl_url = processes[0].api.clone();
    println!();
    println!("Step 2 — NL opens case LANTERN (NL node API at {nl_url})");
    let http = reqwest::Client::new();
    let case = json!({
        "id": "LANTERN",
        "title": "Ransomware attack on a hospital in the Netherlands",
        "concepts": ["illegal-access", "data-interference", "system-interference"],
    });
    let resp = http
        .post(format!("{nl_url}/api/v1/cases"))
        .bearer_auth(nl.token(Role::Investigator)?)
        .json(&case)
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    checks.record(
        "open case",
        status == reqwest::StatusCode::CREATED,
        format!("HTTP {status}, recorded at NL ledger entry {}", body["ledger_index"]),
    );

    let resp = http
        .post(format!("{nl_url}/api/v1/cases"))
        .bearer_auth(nl.token(Role::Auditor)?)
        .json(&json!({"id": "SIDELINE", "title": "opened by the wrong role"}))
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    checks.record(
        "auditor may not open a case",
        status == reqwest::StatusCode::FORBIDDEN && body["rules"] == json!(["default-deny"]),
        format!(
            "HTTP {status}, {} — denial recorded at entry {}",
            body["detail"].as_str().unwrap_or(""),
            body["ledger_index"]
        ),
    );

    let resp = http.get(format!("{nl_url}/api/v1/cases/LANTERN")).send().await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    checks.record(
        "unauthenticated read refused",
        status == reqwest::StatusCode::UNAUTHORIZED
            && body.get("ledger_index").is_none()
            && body["rules"] == json!(["authn.required"]),
        format!("HTTP {status}, counted for its source, recorded in aggregate (refusals.record)"),
    );

    let resp = http
        .get(format!("{nl_url}/api/v1/cases/LANTERN"))
        .bearer_auth(nl.token(Role::CentralAuthority)?)
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    checks.record(
        "prosecutor reads the case",
        status == reqwest::StatusCode::OK && body["case"]["id"] == "LANTERN",
        format!("HTTP {status}, access recorded at entry {}", body["access_ledger_index"]),
    );

    crate::psi::step3(&nodes, &mut checks).await?;

    println!();
    println!("Step 4 (part) — dual criminality of NL's offence at the requested parties");
    let lexicon = entente_core::lexicon::Lexicon::builtin()
        .map_err(|e| fail(Exit::Failed, format!("the shipped lexicon does not validate: {e}")))?;
    for to in ["DE", "US"] {
        // Mutual assistance compares the conduct (ETS 185 Art 25(5)); extradition would
        // also need both maxima to reach a year (Art 24(1)(a)). The facts file verifies both
        // sides of illegal access, so anything but satisfied means the data or the check
        // changed.
        for (test, label) in [
            (lexicon.conduct_test(), "mutual assistance, conduct"),
            (
                entente_core::lexicon::DcTest::Penalty(lexicon.default_threshold()),
                "extradition, at least 12 months",
            ),
        ] {
            let dc = lexicon
                .check_dual_criminality_under("NL", "Sr 138ab", to, &test)
                .map_err(|e| fail(Exit::Failed, e.to_string()))?;
            checks.record(
                &format!("dual criminality NL→{to} ({label})"),
                dc.verdict == entente_core::lexicon::Verdict::Satisfied,
                format!("{} — {}", dc.verdict.as_str(), dc.reason),
            );
        }
    }

    requests(&nodes, &mut checks).await?;
    flows(&nodes, &mut checks).await?;
    crate::evidence::answer_with_package(
        &nodes[0].node,
        &nodes[1].node,
        "LANTERN",
        &root.join("evidence"),
        &mut |step, ok, detail| checks.record(step, ok, detail),
    )
    .await?;
    jit(&nodes, &mut checks).await?;
    crate::intel::step9(&nodes[0].node, &nodes[1].node, &nodes[2].node, &mut |s, ok, d| {
        checks.record(s, ok, d)
    })
    .await?;

    println!();
    println!("Step 10 (part) — oversight: every ledger verified from its database");
    for n in &nodes {
        let report = entente_store::verify::verify_ledger(
            &n.node.store,
            &n.node.config.party,
            &n.node.verifier_key(),
            &mut |_, _| {},
        )
        .await;
        match report {
            Ok(r) => checks.record(
                &format!("ledger {}", n.node.config.party),
                true,
                format!("{} entries, {} checkpoints, root {}", r.entries, r.checkpoints, r.root),
            ),
            Err(e) => {
                checks.record(&format!("ledger {}", n.node.config.party), false, e.to_string())
            }
        }
        // Every state row against the entry that wrote it (`ledger verify --state`).
        let state = entente_store::verify::verify_state(&n.node.store, &mut |_, _, _| {}).await;
        let name = format!("state {} agrees with its ledger", n.node.config.party);
        match state {
            Ok(r) if r.differences.is_empty() => checks.record(
                &name,
                true,
                format!("{} rows in {} tables", r.rows(), r.tables.len()),
            ),
            Ok(r) => checks.record(
                &name,
                false,
                r.differences.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
            ),
            Err(e) => checks.record(&name, false, e.to_string()),
        }
    }

    println!();
    println!("Step 10 (part) — NL's data-protection authority audits NL from its tiles over HTTP");
    let pinned = nl.node.verifier_key();
    let first = entente_node::audit::audit(&nl_url, &pinned, None, &mut |_, _| {}).await;
    let first_note = match first {
        Ok(r) => {
            checks.record(
                "audit from tiles",
                true,
                format!(
                    "{} entries, {} bundles and {} hash tiles checked against the signed root",
                    r.checkpoint.size, r.bundles, r.hash_tiles
                ),
            );
            Some(r.note)
        }
        Err(e) => {
            checks.record("audit from tiles", false, e.to_string());
            None
        }
    };
    let resp = http
        .get(format!("{nl_url}/api/v1/cases/LANTERN"))
        .bearer_auth(nl.token(Role::Investigator)?)
        .send()
        .await?;
    let read_ok = resp.status() == reqwest::StatusCode::OK;
    let second =
        entente_node::audit::audit(&nl_url, &pinned, first_note.as_deref(), &mut |_, _| {}).await;
    match second {
        Ok(r) => checks.record(
            "re-audit extends the first view",
            read_ok && r.consistent_with.is_some(),
            format!(
                "{} entries now; consistent with the checkpoint of size {}",
                r.checkpoint.size,
                r.consistent_with.map_or("?".into(), |s| s.to_string())
            ),
        ),
        Err(e) => checks.record("re-audit extends the first view", false, e.to_string()),
    }

    witnessed_audits(&nodes, &processes, &mut checks).await?;
    crate::report::step10(nl, &nl_url, &reports_dir, &mut checks).await?;
    stop_processes(processes).await;

    retention(&nodes, &mut checks).await?;
    let later = Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .checked_add(jiff::Span::new().years(2).days(1))
        .map(|z| z.timestamp())
        .map_err(|e| fail(Exit::Failed, e))?;
    crate::evidence::retention(&nodes[0].node, later, &mut |step, ok, detail| {
        checks.record(step, ok, detail)
    })
    .await?;

    println!();
    println!("Summary");
    println!("  {:<52} {:<6}", "check", "result");
    for (step, ok, _) in &checks.rows {
        println!("  {:<52} {:<6}", step, if *ok { "ok" } else { "FAILED" });
    }
    let failed = checks.rows.iter().filter(|(_, ok, _)| !ok).count();
    println!(
        "  {} checks, {} failed, in {:.1} s",
        checks.rows.len(),
        failed,
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        return Err(fail(Exit::Failed, format!("{failed} pilot checks failed")));
    }
    if keep {
        keep_serving(&nodes).await?;
    }
    Ok(())
}

/// `pilot --keep`: the pilot nodes serve again, as the run left them, and each node's
/// dashboard and a sign-in token per role are printed, until Ctrl-C (or SIGTERM).
async fn keep_serving(nodes: &[PilotNode]) -> Result<(), Failure> {
    let mut scratch = Checks { rows: Vec::new() };
    let processes = start_processes(nodes, &mut scratch).await?;
    println!();
    println!("The pilot nodes keep serving, as the run left them (after step 11's retention, two");
    println!("years on: expired data destroyed). Open a dashboard and sign in with a token:");
    for (n, p) in nodes.iter().zip(&processes) {
        println!();
        println!("  {} — {}/ui/", n.node.config.party, p.api);
        for (name, role, token) in &n.tokens {
            println!("    {:<20} {:<18} {token}", role.as_str(), name);
        }
    }
    println!();
    println!("Press Ctrl-C to stop them.");
    use std::io::Write as _;
    std::io::stdout().flush()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    stop_processes(processes).await;
    println!("stopped");
    Ok(())
}

fn free_port() -> Result<u16, Failure> {
    Ok(entente_node::config::free_loopback_port()?)
}

/// Every pilot node pins the certificates of the two others (through its gate, as its
/// operator would with `entente peer add`).
async fn pin_each_other(nodes: &[PilotNode], checks: &mut Checks) -> Result<(), Failure> {
    for a in nodes {
        let mut pinned = Vec::new();
        for b in nodes.iter().filter(|b| b.node.config.party != a.node.config.party) {
            let pem =
                std::fs::read_to_string(b.node.data_dir.join(entente_node::identity::CERT_FILE))?;
            let info =
                entente_node::federation::cert_info(&pem).map_err(|e| fail(Exit::Failed, e))?;
            let faddr = b
                .node
                .config
                .federation_listen
                .ok_or_else(|| fail(Exit::Failed, "pilot node without a federation address"))?;
            let v = submit(
                a,
                a.node.operator(),
                entente_store::peers::AddPeer {
                    party: b.node.config.party.clone(),
                    url: format!("https://{faddr}"),
                    cert_pem: info.pem,
                    cert_sha256: info.sha256.clone(),
                    signing_key: info.signing_key,
                    age_recipient: Some(entente_node::packages::vault(&b.node)?.0.recipient()),
                },
            )
            .await?;
            if !matches!(v, Verdict::Permitted { .. }) {
                return Err(fail(Exit::Failed, format!("pinning failed: {}", describe(&v))));
            }
            pinned.push(format!("{} ({}…)", b.node.config.party, &info.sha256[..12]));
        }
        checks.record(
            &format!("{} pins its partners", a.node.config.party),
            pinned.len() == nodes.len() - 1,
            pinned.join(", "),
        );
    }
    Ok(())
}

/// A pilot node's `entente serve` process (killed when dropped).
struct Process {
    child: tokio::process::Child,
    api: String,
}

/// Stops the node processes and waits until each has exited, so that a process started
/// after them (`pilot --keep`) finds the data directory and the ports free.
async fn stop_processes(processes: Vec<Process>) {
    for mut p in processes {
        if let Err(e) = p.child.kill().await {
            eprintln!("warning: stopping a pilot node process: {e}");
        }
    }
}

/// Starts one `entente serve` per pilot node and waits until each answers.
async fn start_processes(
    nodes: &[PilotNode],
    checks: &mut Checks,
) -> Result<Vec<Process>, Failure> {
    let exe = std::env::current_exe()?;
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(2)).build()?;
    let mut out = Vec::new();
    for n in nodes {
        let c = &n.node.config;
        let faddr =
            c.federation_listen.ok_or_else(|| fail(Exit::Failed, "no federation address"))?;
        let log = std::fs::File::create(n.node.data_dir.join("serve.log"))?;
        let child = tokio::process::Command::new(&exe)
            .args(["serve", "--data-dir"])
            .arg(&n.node.data_dir)
            .args(["--listen", &c.listen.to_string()])
            .args(["--federation-listen", &faddr.to_string()])
            .env("ENTENTE_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        let api = format!("http://{}", c.listen);
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        let mut up = false;
        while Instant::now() < deadline {
            if let Ok(r) = http.get(format!("{api}/healthz")).send().await
                && r.status().is_success()
            {
                up = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        checks.record(
            &format!("{} node process", c.party),
            up,
            format!(
                "entente serve: API {api}, federation https://{faddr} (mutual TLS); log {}",
                n.node.data_dir.join("serve.log").display()
            ),
        );
        if !up {
            return Err(fail(Exit::Failed, format!("the {} node process did not start", c.party)));
        }
        out.push(Process { child, api });
    }
    Ok(out)
}

/// How long step 10 waits for both witnesses of a ledger to cosign its latest checkpoint.
const WITNESS_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Step 10: the auditor verifies every ledger from its tiles, starting from the checkpoint
/// both partners have cosigned as witnesses (C2SP tlog-cosignature), and proves the current
/// ledger extends it.
async fn witnessed_audits(
    nodes: &[PilotNode],
    processes: &[Process],
    checks: &mut Checks,
) -> Result<(), Failure> {
    use entente_core::witness;
    println!();
    println!(
        "Step 10 (part) — every ledger audited from its tiles, with both partners as witnesses"
    );
    for (n, p) in nodes.iter().zip(processes) {
        let party = &n.node.config.party;
        let witnesses: Vec<String> = nodes
            .iter()
            .filter(|w| &w.node.config.party != party)
            .map(|w| {
                witness::verifier_key(
                    &witness::witness_name(&w.node.config.party),
                    &w.node.verifying_key(),
                )
            })
            .collect();
        let vkey = n.node.verifier_key();
        let started = Instant::now();
        let mut last = String::new();
        let mut cosigned = None;
        // Witnesses pass every second; on a loaded machine (CI runs the pilot beside the whole
        // test suite) a pass can take far longer. The wait ends as soon as both have cosigned.
        while started.elapsed() < WITNESS_WAIT {
            match entente_node::audit::check_witnesses(&p.api, &vkey, &witnesses, witnesses.len())
                .await
            {
                Ok(w) => {
                    cosigned = Some(w);
                    break;
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let Some(w) = cosigned else {
            checks.record(
                &format!("{party} cosigned by its witnesses"),
                false,
                format!("{last} (after waiting {} s)", WITNESS_WAIT.as_secs()),
            );
            continue;
        };
        checks.record(
            &format!("{party} cosigned by its witnesses"),
            true,
            format!(
                "checkpoint of size {} cosigned by {}",
                w.checkpoint.size,
                w.cosigned_by.join(", ")
            ),
        );
        let report = entente_node::audit::audit(&p.api, &vkey, Some(&w.note), &mut |_, _| {}).await;
        match report {
            Ok(r) => checks.record(
                &format!("{party} audited from tiles"),
                r.consistent_with.is_some(),
                format!(
                    "{} entries checked; extends the witnessed checkpoint of size {}",
                    r.checkpoint.size,
                    r.consistent_with.map_or("?".into(), |s| s.to_string())
                ),
            ),
            Err(e) => checks.record(&format!("{party} audited from tiles"), false, e.to_string()),
        }
    }
    Ok(())
}

/// Waits (at most 20 s) until `n` holds `events` events of request `id`; returns whether it
/// did and after how many milliseconds.
async fn arrival(n: &PilotNode, id: &str, events: u64) -> Result<(bool, u128), Failure> {
    let started = Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(20) {
        if n.node.store.request_event_count(id).await? >= events {
            return Ok((true, started.elapsed().as_millis()));
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Ok((false, started.elapsed().as_millis()))
}

/// Waits (at most 20 s) until the partner has acknowledged `m`, delivered by the sender's
/// process over mutual TLS; describes the signed acknowledgement.
async fn delivered(
    sender: &PilotNode,
    m: &entente_store::OutboxMessage,
) -> Result<(bool, String), Failure> {
    let started = Instant::now();
    let deadline = started + std::time::Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some((status, index)) = sender.node.store.message_status(&m.recipient, m.seq).await?
        {
            return Ok((
                status == "applied",
                format!(
                    "envelope {}-{}-{} delivered over mutual TLS in {} ms; {} acknowledged, signed: {status} (its ledger entry {index})",
                    sender.node.config.party,
                    m.recipient,
                    m.seq,
                    started.elapsed().as_millis(),
                    m.recipient
                ),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Ok((false, format!("no acknowledgement from {} within 20 s", m.recipient)))
}

/// The pilot's user of `n` with `role`, authenticated by the token the pilot holds for it,
/// as the API would.
async fn user(n: &PilotNode, role: Role) -> Result<Principal, Failure> {
    let who = n.node.store.authenticate_token(n.token(role)?).await?;
    if !who.is_authenticated() {
        return Err(fail(
            Exit::Failed,
            format!("the pilot's {role} token is not accepted by its node"),
        ));
    }
    Ok(who)
}

/// Submits through `node`'s gate; returns the verdict.
async fn submit<C: entente_store::GateCommand>(
    n: &PilotNode,
    actor: Principal,
    command: C,
) -> Result<Verdict<C::Output>, Failure> {
    Ok(n.node.gate.submit(actor, command, Timestamp::now()).await?)
}

/// The outbox message a permitted share or consent produced.
fn message(v: &Verdict<entente_store::OutboxMessage>) -> Option<&entente_store::OutboxMessage> {
    match v {
        Verdict::Permitted { output: m, .. } => Some(m),
        _ => None,
    }
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

/// Steps 5 and 7: DE answers with data under the NL–DE JIT agreement, conditions travel
/// with it, NL's onward transfer to the US is denied until DE consents.
///
/// Messages between nodes are handed over in process here (the federation transport carries
/// the same outbox messages between node processes).
async fn flows(nodes: &[PilotNode], checks: &mut Checks) -> Result<(), Failure> {
    let (nl, de, us) = (&nodes[0], &nodes[1], &nodes[2]);
    println!();
    println!("Step 5 — DE answers NL with data; the conditions travel with it");
    let case = entente_store::cases::OpenCase {
        id: "LANTERN-DE".parse()?,
        title: "Assistance to NL in LANTERN".into(),
        concepts: vec![
            "illegal-access".into(),
            "data-interference".into(),
            "system-interference".into(),
        ],
    };
    submit(de, user(de, Role::Investigator).await?, case).await?;
    let items = [
        (
            "de-c2-logs-1",
            entente_policy::agreement::DataCategory::Traffic,
            serde_json::json!({"c2_host": "c2.lantern.invalid", "c2_ip": "203.0.113.77", "first_seen": "2026-03-27T20:58:41Z", "bytes_out": 48_211_902}),
        ),
        (
            "de-hosting-contact-1",
            entente_policy::agreement::DataCategory::PersonalDataOfThirdParties,
            serde_json::json!({"name": "Hosting customer (fictional)", "email": "customer@example.invalid", "ip": "198.51.100.23", "plan": "vps-small"}),
        ),
    ];
    for (id, category, content) in items {
        let serde_json::Value::Object(content) = content else { continue };
        let v = submit(
            de,
            user(de, Role::Investigator).await?,
            entente_store::flows::AddDatum {
                id: id.parse()?,
                case_id: "LANTERN-DE".parse()?,
                category,
                content,
            },
        )
        .await?;
        checks.record(
            &format!("DE records {id}"),
            matches!(v, Verdict::Permitted { .. }),
            describe(&v),
        );
        let v = submit(
            de,
            user(de, Role::CentralAuthority).await?,
            entente_store::flows::ShareDatum {
                id: id.parse()?,
                to: "NL".parse()?,
                purpose: entente_policy::agreement::Purpose::JointInvestigation,
                request_kind: None,
            },
        )
        .await?;
        let shared = message(&v).cloned();
        checks.record(&format!("DE sends {id} to NL"), shared.is_some(), describe(&v));
        let Some(m) = shared else { continue };
        let msg: entente_wire::DatumMessage = serde_json::from_value(m.payload.clone())?;
        println!(
            "     conditions: originator {}, agreement {}, purposes {}, retain until {}, onward transfer {}, no commercial use: {}",
            msg.conditions.originator,
            msg.conditions.agreement,
            serde_json::to_string(&msg.conditions.purposes)?,
            msg.conditions.retain_until.as_deref().unwrap_or("no limit"),
            serde_json::to_string(&msg.conditions.onward_transfer)?,
            msg.conditions.commercial_use_prohibited
        );
        if !msg.minimized.is_empty() {
            println!("     minimized before it left DE: {}", msg.minimized.join(", "));
        }
        let (ok, detail) = delivered(de, &m).await?;
        checks.record(&format!("NL receives {id} with its conditions"), ok, detail);
    }
    let pseudonymized = {
        // A read of personal data, recorded like any other.
        let read = entente_store::flows::ReadDatum { id: "de-hosting-contact-1".parse()? };
        let stored = match submit(nl, user(nl, Role::Investigator).await?, read).await? {
            Verdict::Permitted { output, .. } => output,
            Verdict::Denied { .. } => None,
        };
        stored.is_some_and(|c| {
            c["email"].as_str().is_some_and(|e| e.starts_with("pse:")) && c["plan"] == "vps-small"
        })
    };
    checks.record(
        "third-party data pseudonymized",
        pseudonymized,
        "NL holds a keyed pseudonym for the hosting customer's e-mail, not the address",
    );

    println!();
    println!("Step 7 — onward transfer: NL → US needs DE's consent");
    let logs: entente_core::DatumId = "de-c2-logs-1".parse()?;
    let share_to_us = || entente_store::flows::ShareDatum {
        id: logs.clone(),
        to: "US".parse().unwrap_or_else(|_| nl.node.config.party.clone()),
        purpose: entente_policy::agreement::Purpose::CriminalInvestigation,
        request_kind: None,
    };
    let v = submit(nl, user(nl, Role::Investigator).await?, share_to_us()).await?;
    let cites_de = matches!(&v, Verdict::Denied { decision, .. } if decision.rules.iter().any(|r| r.ends_with("#onward-transfer-needs-consent")));
    checks.record("onward transfer without consent denied", cites_de, describe(&v));
    let v = submit(
        de,
        user(de, Role::CentralAuthority).await?,
        entente_store::flows::GiveConsent {
            datum_id: "de-c2-logs-1".parse()?,
            holder: "NL".parse()?,
            recipient: "US".parse()?,
        },
    )
    .await?;
    let consent = message(&v).cloned();
    checks.record("DE consents for this item", consent.is_some(), describe(&v));
    if let Some(m) = consent {
        let (ok, detail) = delivered(de, &m).await?;
        checks.record("NL records DE's consent", ok, detail);
    }
    let v = submit(nl, user(nl, Role::Investigator).await?, share_to_us()).await?;
    let sent = message(&v).cloned();
    checks.record("onward transfer with consent permitted", sent.is_some(), describe(&v));
    if let Some(m) = sent {
        let (ok, detail) = delivered(nl, &m).await?;
        let originator = us.node.store.datum_originator("de-c2-logs-1").await?;
        checks.record(
            "US receives it, originator still DE",
            ok && originator.as_deref() == Some("DE"),
            format!("{detail}; originator at US: {}", originator.as_deref().unwrap_or("none")),
        );
    }
    Ok(())
}

/// Step 11: time passes beyond the retention limit; the data is destroyed, the ledger keeps
/// the proof and still verifies.
async fn retention(nodes: &[PilotNode], checks: &mut Checks) -> Result<(), Failure> {
    let nl = &nodes[0];
    println!();
    println!("Step 11 — retention: two years and a day later");
    let later = Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .checked_add(jiff::Span::new().years(2).days(1))
        .map(|z| z.timestamp())
        .map_err(|e| fail(Exit::Failed, e))?;
    let due = nl.node.store.data_due_for_destruction(later).await?;
    for id in &due {
        let v = nl
            .node
            .gate
            .submit(
                nl.node.operator(),
                entente_store::flows::DestroyDatum { id: id.clone() },
                later,
            )
            .await?;
        checks.record(
            &format!("NL destroys {id}"),
            matches!(v, Verdict::Permitted { .. }),
            describe(&v),
        );
    }
    checks.record(
        "retention found expired data",
        !due.is_empty(),
        format!("{} data items past their limit", due.len()),
    );
    let read = entente_store::flows::ReadDatum { id: "de-c2-logs-1".parse()? };
    let gone = matches!(
        submit(nl, user(nl, Role::Investigator).await?, read).await?,
        Verdict::Permitted { output: None, .. }
    );
    let report = entente_store::verify::verify_ledger(
        &nl.node.store,
        &nl.node.config.party,
        &nl.node.verifier_key(),
        &mut |_, _| {},
    )
    .await;
    checks.record(
        "destroyed, and the ledger still verifies",
        gone && report.is_ok(),
        match report {
            Ok(r) => format!("content gone; {} entries verified", r.entries),
            Err(e) => e.to_string(),
        },
    );
    Ok(())
}

/// Step 1: the hospital's incident, assessed against every notification regime.
fn incident(checks: &mut Checks) -> Result<(), Failure> {
    use entente_policy::incident::{assess, builtin_regimes, parse_facts};
    println!();
    println!("Step 1 — ransomware at an NL hospital: which notifications are due, and when");
    let regimes = builtin_regimes()
        .map_err(|e| fail(Exit::Failed, format!("the shipped regimes are invalid: {e}")))?;
    let facts = parse_facts(
        "data/incidents/examples/lantern-hospital.toml",
        include_str!("../../../data/incidents/examples/lantern-hospital.toml"),
    )
    .map_err(|e| fail(Exit::Failed, format!("the pilot incident is invalid: {e}")))?;
    let a = assess(&facts, &regimes);
    for t in &a.timeline {
        println!(
            "     {:<6} {:<48} due {} ({}){}",
            t.regime,
            t.report_name,
            t.utc,
            t.local.strftime("%Y-%m-%d %H:%M %Z"),
            if t.unverified { " [unverified]" } else { "" }
        );
    }
    for q in &a.questions {
        println!("     asked, not assumed ({}): {}", q.regime, q.text);
    }
    let due = |regime: &str, name_part: &str| {
        a.timeline
            .iter()
            .find(|t| t.regime == regime && t.report_name.contains(name_part))
            .map(|t| t.utc.to_string())
            .unwrap_or_default()
    };
    // Awareness 2026-03-28 06:15 CET; EU summer time starts 2026-03-29 01:00 UTC: hour limits
    // are elapsed hours, so the local clock shows 07:15 CEST.
    let early = due("nis2", "Early warning");
    let gdpr = due("gdpr", "");
    checks.record(
        "NIS2 early warning in 24 h",
        early == "2026-03-29T05:15:00Z",
        format!("due {early} (07:15 CEST, across the summer-time change)"),
    );
    checks.record("GDPR Art 33 in 72 h", gdpr == "2026-03-31T05:15:00Z", format!("due {gdpr}"));
    Ok(())
}

/// Step 4: NL's requests with their legal basis and clocks. NL drafts and submits on its
/// node; the request travels to the requested party's node, whose central authority records
/// receipt there; the receipt travels back. Each transition is a gate action on the node of
/// the party that makes it.
async fn requests(nodes: &[PilotNode], checks: &mut Checks) -> Result<(), Failure> {
    use entente_policy::agreement::RequestKind;
    use entente_policy::request::RequestEvent;
    let nl = &nodes[0];
    let prosecutor = user(nl, Role::CentralAuthority).await?;
    println!();
    println!("Step 4 — NL's requests: preservation and production to DE, MLA to the US");
    let plan = [
        ("LANTERN-EPOC-PR-1", RequestKind::Preservation, "eu-2023-1543", "DE"),
        ("LANTERN-EPOC-1", RequestKind::Production, "eu-2023-1543", "DE"),
        ("LANTERN-MLA-1", RequestKind::Mla, "nl-us-mla", "US"),
    ];
    for (id, kind, agreement, to) in plan {
        let create = entente_store::requests::CreateRequest {
            id: id.parse()?,
            case_id: "LANTERN".parse()?,
            kind,
            agreement: agreement.into(),
            to: to.parse()?,
            emergency: false,
            provisions: vec!["Sr 138ab".into()],
        };
        let v = submit(nl, prosecutor.clone(), create).await?;
        checks.record(
            &format!("{id} drafted under {agreement}"),
            matches!(v, Verdict::Permitted { .. }),
            describe(&v),
        );
        let v = submit(
            nl,
            prosecutor.clone(),
            entente_store::requests::TransitionRequest {
                id: id.parse()?,
                event: RequestEvent::Submit,
            },
        )
        .await?;
        checks.record(
            &format!("{id} submitted by NL"),
            matches!(v, Verdict::Permitted { .. }),
            describe(&v),
        );
        // The request travels to the requested party's node as a signed envelope.
        let requested = nodes
            .iter()
            .find(|n| n.node.config.party.as_str() == to)
            .ok_or_else(|| fail(Exit::Failed, format!("no pilot node {to}")))?;
        let (arrived, ms) = arrival(requested, id, 1).await?;
        checks.record(
            &format!("{id} arrives at {to}"),
            arrived,
            format!("delivered over mutual TLS and recorded by {to}'s gate in {ms} ms"),
        );
        // The requested party's central authority records receipt on its own node; the
        // event travels back, and both copies run the same clocks.
        let authority = user(requested, Role::CentralAuthority).await?;
        let v = submit(
            requested,
            authority,
            entente_store::requests::TransitionRequest {
                id: id.parse()?,
                event: RequestEvent::Receive,
            },
        )
        .await?;
        match v {
            Verdict::Permitted { output: r, .. } => {
                for line in r.show(Timestamp::now()).lines() {
                    println!("     {line}");
                }
                // What the requested party's central authority sees on arrival.
                let lexicon = entente_core::lexicon::Lexicon::builtin().map_err(|e| {
                    fail(Exit::Failed, format!("the shipped lexicon is invalid: {e}"))
                })?;
                let provisions = requested.node.store.request_provisions(id).await?;
                if let Some(a) = requested.node.gate.engine().agreement(agreement) {
                    let check = entente_policy::incoming::incoming_check(
                        &r,
                        &provisions,
                        a,
                        &lexicon,
                        Timestamp::now(),
                    );
                    let dc = match check.dual_criminality.first().map(|d| &d.result) {
                        Some(Ok(dc)) => format!("{} ({})", dc.verdict.as_str(), dc.reason),
                        Some(Err(e)) => e.clone(),
                        None => "no provision travelled with the request".into(),
                    };
                    println!(
                        "     incoming check at {to}: legal basis {}",
                        check.legal_basis.citation
                    );
                    let req = &check.dual_criminality_requirement;
                    if req.test == "none" {
                        println!("       dual criminality: no comparison is due: {}", req.basis);
                    } else {
                        println!(
                            "       dual criminality {}: {}",
                            if req.required {
                                "may be required"
                            } else {
                                "not stated as a condition"
                            },
                            req.basis
                        );
                        println!("       dual criminality for {}: {dc}", provisions.join(", "));
                    }
                    for c in &check.order_conditions {
                        println!(
                            "       issuing condition, {} data: {} — {}",
                            c.category, c.outcome, c.reason
                        );
                    }
                    println!(
                        "       grounds for refusal it may weigh: {}",
                        if check.refusal_grounds.is_empty() {
                            "none listed in the agreement".to_owned()
                        } else {
                            check
                                .refusal_grounds
                                .iter()
                                .map(|g| g.id.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    );
                    checks.record(
                        &format!("{id} incoming check at {to}"),
                        // A comparison where one is due, and none where the instrument
                        // says none is (a European Preservation Order).
                        if req.test == "none" {
                            check.dual_criminality.is_empty()
                        } else {
                            check.dual_criminality.first().is_some_and(|d| d.result.is_ok())
                        },
                        format!(
                            "{} refusal ground(s), {} clock(s)",
                            check.refusal_grounds.len(),
                            check.clocks.len()
                        ),
                    );
                }
                let (back, ms) = arrival(nl, id, 2).await?;
                let expect_clock = kind != RequestKind::Mla;
                checks.record(
                    &format!("{id} received, clocks running"),
                    back && r.clocks.is_empty() != expect_clock,
                    format!(
                        "{} clock(s) in {}; NL's copy has the receipt {ms} ms later",
                        r.clocks.len(),
                        r.time_zone_name()
                    ),
                );
            }
            v => checks.record(&format!("{id} received, clocks running"), false, describe(&v)),
        }
    }
    // A transition the law does not allow is refused and changes nothing.
    let e = nl
        .node
        .gate
        .submit(
            prosecutor,
            entente_store::requests::TransitionRequest {
                id: "LANTERN-MLA-1".parse()?,
                event: RequestEvent::Close,
            },
            Timestamp::now(),
        )
        .await;
    checks.record(
        "closing an unanswered request is refused",
        matches!(&e, Err(entente_store::GateError::Conflict(_))),
        match e {
            Err(e) => e.to_string(),
            Ok(v) => describe(&v),
        },
    );
    Ok(())
}

/// Step 8: NL and DE form a JIT on LANTERN; DE (a member) sees its status, the US sees
/// nothing, not even that it exists.
async fn jit(nodes: &[PilotNode], checks: &mut Checks) -> Result<(), Failure> {
    let nl = &nodes[0];
    println!();
    println!("Step 8 — NL and DE form a joint investigation team on LANTERN");
    let from_nl = nodes[1].node.store.count_received_from(&nl.node.config.party).await?;
    let v = submit(
        nl,
        user(nl, Role::CentralAuthority).await?,
        entente_store::cases::AddCaseMember {
            case_id: "LANTERN".parse()?,
            party: "DE".parse()?,
            agreement: "jit-lantern".into(),
        },
    )
    .await?;
    checks.record("DE joins the JIT", matches!(v, Verdict::Permitted { .. }), describe(&v));
    crate::notify::case_update_arrives(&nodes[1].node, from_nl, &mut |step, ok, detail| {
        checks.record(step, ok, detail)
    })
    .await?;
    // Each party reads on its own node: DE its mirror of NL's case, the US (not a member) a
    // case it has never been told of. Nothing is read on NL's node in another party's name.
    let lantern: entente_core::CaseId = "LANTERN".parse()?;
    let status = || entente_store::cases::ReadCaseStatus { case_id: lantern.clone() };
    let (de, us) = (&nodes[1], &nodes[2]);
    let de_view =
        de.node.gate.submit(user(de, Role::Investigator).await?, status(), Timestamp::now()).await;
    match &de_view {
        Ok(Verdict::Permitted { output: st, .. }) => {
            let members: Vec<String> =
                st.members.iter().map(|m| format!("{} ({})", m.party, m.role)).collect();
            checks.record(
                "DE sees the JIT's status",
                st.members.len() == 2 && st.mirror.as_ref().is_some_and(|m| m.lead == "NL"),
                format!(
                    "on DE's node, its mirror of NL's case: members {}; {} events on the timeline",
                    members.join(", "),
                    st.timeline.len()
                ),
            );
        }
        other => checks.record("DE sees the JIT's status", false, format!("{other:?}")),
    }
    let us_inv = user(us, Role::Investigator).await?;
    let us_view = us.node.gate.submit(us_inv.clone(), status(), Timestamp::now()).await;
    let unknown = us
        .node
        .gate
        .submit(
            us_inv,
            entente_store::cases::ReadCaseStatus { case_id: "NO-SUCH-CASE".parse()? },
            Timestamp::now(),
        )
        .await;
    let same = match (&us_view, &unknown) {
        (Err(a), Err(b)) => {
            a.to_string().replace("LANTERN", "X") == b.to_string().replace("NO-SUCH-CASE", "X")
        }
        _ => false,
    };
    checks.record(
        "the US sees nothing of it",
        same,
        match &us_view {
            Err(e) => format!("answered as for a case that does not exist: {e}"),
            Ok(v) => describe(v),
        },
    );
    Ok(())
}
