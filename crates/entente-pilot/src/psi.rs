//! Step 3: deconfliction by private set intersection. DE and the US hold cases of their own;
//! each rotates its deconfliction key under the pilot memorandum, and its node process sends
//! the key and prepared set to NL over mutual TLS. NL asks both about its C2 addresses, a
//! wallet and an email account: DE learns only that a query of the memorandum's padded size
//! was made for case LANTERN; NL learns which two of its selectors DE holds, and whom at DE to
//! ask; the US holds none of them.

use crate::{Checks, PilotNode, submit, user};
use entente_console::{Exit, Failure, fail};
use entente_core::Role;
use entente_psi::{EmailRules, selector};
use entente_store::Verdict;
use entente_store::psi::{PsiQuery, PsiStatus, ReadPsiStatus};
use jiff::Timestamp;
use std::time::{Duration, Instant};

/// The pilot's deconfliction memorandum.
pub(crate) const AGREEMENT: &str = "mou-deconfliction-pilot";
const DE_CASE: &str = "DE-2026-0042";
const DE_CONTACT: &str = "DE cyber unit deconfliction desk (pilot)";
const C2: &str = "203.0.113.7";
const WALLET: &str = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq";

/// NL's selectors, as its investigator would type them in a file.
const NL_SELECTORS: &str = "# LANTERN: C2 hosts, ransom wallet, operator mailbox
203.0.113.7
ip:2001:0db8:0004::0017
198.51.100.23
btc:bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq
email:Lantern.Ops+drop@MAIL.example
";

async fn status(n: &PilotNode, role: Role) -> Result<PsiStatus, Failure> {
    let who = user(n, role).await?;
    match submit(n, who, ReadPsiStatus::default()).await? {
        Verdict::Permitted { output, .. } => Ok(output),
        Verdict::Denied { decision, .. } => Err(fail(Exit::Failed, decision.reason)),
    }
}

/// Waits (at most 30 s) until `done` holds for NL's status.
async fn until(
    n: &PilotNode,
    done: impl Fn(&PsiStatus) -> bool,
) -> Result<(bool, PsiStatus, u128), Failure> {
    let started = Instant::now();
    loop {
        let s = status(n, Role::Investigator).await?;
        if done(&s) || started.elapsed() > Duration::from_secs(30) {
            return Ok((done(&s), s, started.elapsed().as_millis()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn step3(nodes: &[PilotNode], checks: &mut Checks) -> Result<(), Failure> {
    let (nl, de, us) = (&nodes[0], &nodes[1], &nodes[2]);
    println!();
    println!("Step 3 — deconfliction: does DE or the US hold anything on NL's selectors?");

    // DE's own investigation holds two of NL's indicators; the US's holds other ones.
    let de_inv = user(de, Role::Investigator).await?;
    let open = |id: &str, title: &str| -> Result<_, entente_core::ids::InvalidIdentifier> {
        Ok(entente_store::cases::OpenCase {
            id: id.parse()?,
            title: title.into(),
            concepts: vec!["illegal-access".into()],
        })
    };
    submit(de, de_inv.clone(), open(DE_CASE, "Botnet infrastructure seized in Frankfurt")?).await?;
    let datum = |id: &str,
                 case: &str,
                 content: serde_json::Value|
     -> Result<_, entente_core::ids::InvalidIdentifier> {
        Ok(entente_store::flows::AddDatum {
            id: id.parse()?,
            case_id: case.parse()?,
            category: entente_policy::agreement::DataCategory::CaseInformation,
            content: content.as_object().cloned().unwrap_or_default(),
        })
    };
    let v = submit(
        de,
        de_inv,
        datum(
            "DE-0042-1",
            DE_CASE,
            serde_json::json!({"server": C2, "ransom_wallet": WALLET, "note": "seized VPS"}),
        )?,
    )
    .await?;
    checks.record(
        "DE holds its own case",
        matches!(v, Verdict::Permitted { .. }),
        crate::describe(&v),
    );
    let us_inv = user(us, Role::Investigator).await?;
    submit(us, us_inv.clone(), open("US-2026-0101", "Phishing kit distribution")?).await?;
    submit(
        us,
        us_inv,
        datum("US-0101-1", "US-2026-0101", serde_json::json!({"panel": "192.0.2.200"}))?,
    )
    .await?;

    // DE and the US rotate their keys; their processes send key and set to NL.
    for (n, contact) in [(de, DE_CONTACT), (us, "US agency deconfliction desk (pilot)")] {
        let v = entente_node::psi::rotate(
            &n.node,
            n.node.operator(),
            AGREEMENT,
            contact,
            Timestamp::now(),
            |_, _| {},
        )
        .await?;
        let ok = matches!(&v, Verdict::Permitted { output, .. } if output.sent_to.iter().any(|p| p.as_str() == "NL"));
        let detail = match &v {
            Verdict::Permitted { output: r, index, .. } => format!(
                "epoch {}…, {} selectors prepared, sent to {} (entry {index})",
                r.epoch.get(..12).unwrap_or(&r.epoch),
                r.set_size,
                r.sent_to.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
            ),
            other => crate::describe(other),
        };
        checks.record(&format!("{} rotates its PSI key", n.node.config.party), ok, detail);
    }
    let (ok, _, ms) = until(nl, |s| {
        ["DE", "US"]
            .iter()
            .all(|p| s.peer_keys.iter().any(|k| k.peer == *p && k.received == k.total))
    })
    .await?;
    checks.record("NL has DE's and US's keys", ok, format!("over mutual TLS in {ms} ms"));

    // NL asks both; the file is parsed as the CLI does.
    let selectors =
        selector::parse_file("lantern-selectors.txt", NL_SELECTORS, EmailRules::default())
            .map_err(|e| fail(Exit::Failed, e))?;
    let nl_inv = user(nl, Role::Investigator).await?;
    let mut ids = Vec::new();
    for to in ["DE", "US"] {
        let q = PsiQuery {
            case_id: "LANTERN".parse()?,
            to: to.parse()?,
            agreement: None,
            selectors: selectors.clone(),
        };
        let v = submit(nl, nl_inv.clone(), q).await?;
        if let Verdict::Permitted { output, .. } = &v {
            ids.push(output.id.clone());
        }
        checks.record(
            &format!("NL queries {to}"),
            matches!(v, Verdict::Permitted { .. }),
            crate::describe(&v),
        );
    }
    let (ok, s, ms) = until(nl, |s| {
        ids.iter().all(|id| s.queries.iter().any(|q| &q.id == id && q.status != "pending"))
    })
    .await?;
    checks.record("both partners answered", ok, format!("evaluated and finalised in {ms} ms"));

    println!();
    println!("   NL's result (query → matches; NL sees which of its selectors, and whom to ask):");
    println!(
        "   {:<4} {:<10} {:>9} {:>7} {:>7}  held in / contact",
        "to", "status", "selectors", "padded", "matched"
    );
    for q in s.queries.iter().filter(|q| ids.contains(&q.id)) {
        println!(
            "   {:<4} {:<10} {:>9} {:>7} {:>7}",
            q.peer,
            q.status,
            q.selectors,
            q.padded,
            q.matched.map_or("-".into(), |m| m.to_string())
        );
        for m in &q.matches {
            for l in &m.labels {
                println!("        {:<46} {} — ask {}", m.selector, l.case_reference, l.contact);
            }
        }
    }
    println!();
    let de_q = s.queries.iter().find(|q| q.peer == "DE" && ids.contains(&q.id));
    let mut found: Vec<String> =
        de_q.map(|q| q.matches.iter().map(|m| m.selector.clone()).collect()).unwrap_or_default();
    found.sort();
    let expected = vec![format!("btc:{WALLET}"), format!("ip:{}", C2)];
    let labelled = de_q.is_some_and(|q| {
        q.matches.iter().all(|m| {
            m.labels.iter().all(|l| l.case_reference == DE_CASE && l.contact == DE_CONTACT)
        })
    });
    checks.record(
        "NL learns DE holds two",
        de_q.and_then(|q| q.matched) == Some(2) && found == expected && labelled,
        format!("{} — held in {DE_CASE}, ask {DE_CONTACT}", found.join(", ")),
    );
    let us_q = s.queries.iter().find(|q| q.peer == "US" && ids.contains(&q.id));
    checks.record(
        "the US holds none",
        us_q.and_then(|q| q.matched) == Some(0),
        format!("{} of {} selectors", us_q.and_then(|q| q.matched).unwrap_or(0), selectors.len()),
    );
    let de_s = status(de, Role::Investigator).await?;
    let seen: Vec<_> = de_s.evaluations.iter().filter(|e| e.asker == "NL").collect();
    let only_size = seen.len() == 1
        && seen
            .iter()
            .all(|e| e.elements == 64 && e.case_ref == "LANTERN" && e.status == "evaluated");
    checks.record(
        "DE learns only how many",
        only_size && de_s.queries.is_empty(),
        format!(
            "DE recorded one query from NL for case LANTERN of {} elements (the memorandum's padded size), not its selectors or the result",
            seen.first().map_or(0, |e| e.elements)
        ),
    );
    Ok(())
}
