//! `entente psi query|status|rotate`: deconfliction by private set intersection, through the
//! gate (`docs/psi.md`). Queries are sent by `entente serve`'s deliverer; answers are finalised
//! when they arrive, and read with `status`.

use clap::Subcommand;
use entente_console::{Exit, Failure, fail, progress_bar};
use entente_core::PartyCode;
use entente_node::Node;
use entente_psi::{EmailRules, selector};
use entente_store::Verdict;
use entente_store::psi::{PsiQuery, PsiStatus, ReadPsiStatus};
use jiff::Timestamp;
use std::path::PathBuf;

/// `entente psi …`
#[derive(Subcommand)]
pub(crate) enum PsiCmd {
    /// Ask partners whether they hold anything on selectors (one a line, `kind:value` or the
    /// value alone where its kind is clear); each partner learns only that a padded query was made
    Query {
        /// This node's case the query is for
        #[arg(long = "case")]
        case_id: entente_core::CaseId,
        /// The partners to ask, comma-separated (e.g. DE,US)
        #[arg(long, value_delimiter = ',')]
        to: Vec<String>,
        /// The selector file
        #[arg(long)]
        selectors: PathBuf,
        /// The deconfliction agreement to ask under (default: the first in force, by id, whose
        /// [deconfliction] names both parties)
        #[arg(long)]
        agreement: Option<String>,
        /// The investigator of this node who asks
        #[arg(long)]
        user: String,
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show this node's queries and their results, partners' keys, its own key epochs and the
    /// queries it evaluated
    Status {
        /// Only the queries of this case
        #[arg(long = "case")]
        case_id: Option<entente_core::CaseId>,
        /// Read as this user of the node (default: the operator)
        #[arg(long)]
        user: Option<String>,
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Rotate this node's deconfliction key for an agreement: a new epoch, the holdings PRF'd
    /// under it, the old key destroyed, the key and prepared set sent to the partners
    Rotate {
        /// The deconfliction agreement (e.g. mou-deconfliction-pilot)
        #[arg(long)]
        agreement: String,
        /// Whom a partner with a match should ask (e.g. "deconfliction desk, BKA SO4")
        #[arg(long)]
        contact: String,
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

fn denied(what: &str, index: u64, decision: &entente_core::Decision) -> Failure {
    fail(
        Exit::Denied,
        format!(
            "{what} denied by {} (ledger entry {index}): {}",
            decision.rules.join(", "),
            decision.reason
        ),
    )
}

pub(crate) async fn run(cmd: PsiCmd) -> Result<(), Failure> {
    match cmd {
        PsiCmd::Query { case_id, to, selectors, agreement, user, data_dir, json } => {
            let name = selectors.display().to_string();
            let text = std::fs::read_to_string(&selectors)
                .map_err(|e| fail(Exit::BadInput, format!("{name}: cannot read the file: {e}")))?;
            let parsed = selector::parse_file(&name, &text, EmailRules::default())
                .map_err(|e| fail(Exit::BadInput, e))?;
            if parsed.is_empty() {
                return Err(fail(Exit::BadInput, format!("{name}: no selectors in the file")));
            }
            let to: Vec<PartyCode> = to
                .iter()
                .map(|p| p.parse().map_err(|e| fail(Exit::BadInput, format!("--to {p}: {e}"))))
                .collect::<Result<_, _>>()?;
            if to.is_empty() {
                return Err(fail(Exit::BadInput, "--to: name at least one partner (e.g. DE,US)"));
            }
            let node = Node::open(&data_dir).await?;
            let actor = crate::evidence::user_actor(&node, &user).await?;
            let bar = (!json && parsed.len() >= 256)
                .then(|| progress_bar(to.len() as u64, "blinding and recording"));
            let mut out = Vec::new();
            let mut refusals = Vec::new();
            for peer in to {
                let command = PsiQuery {
                    case_id: case_id.clone(),
                    to: peer.clone(),
                    agreement: agreement.clone(),
                    selectors: parsed.clone(),
                };
                match node.gate.submit(actor.clone(), command, Timestamp::now()).await? {
                    Verdict::Permitted { index, output, .. } => out.push((index, output)),
                    Verdict::Denied { index, decision } => {
                        refusals.push(denied(&format!("query to {peer}"), index, &decision));
                    }
                }
                if let Some(b) = &bar {
                    b.inc(1);
                }
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            if json {
                let body: Vec<_> = out
                    .iter()
                    .map(|(index, q)| {
                        serde_json::json!({
                            "id": q.id, "to": q.to, "agreement": q.agreement,
                            "selectors": q.selectors, "padded": q.padded, "ledger_index": index,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                for (index, q) in &out {
                    println!(
                        "query {} to {}: {} selectors padded to {} under {} (ledger entry {index}); \
                         sent by `entente serve`, answer in `entente psi status`",
                        q.id, q.to, q.selectors, q.padded, q.agreement
                    );
                }
            }
            match refusals.into_iter().next() {
                Some(f) => Err(f),
                None => Ok(()),
            }
        }
        PsiCmd::Status { case_id, user, data_dir, json } => {
            let node = Node::open(&data_dir).await?;
            let actor = match &user {
                Some(u) => crate::evidence::user_actor(&node, u).await?,
                None => node.operator(),
            };
            let (index, status) =
                match node.gate.submit(actor, ReadPsiStatus { case_id }, Timestamp::now()).await? {
                    Verdict::Permitted { index, output, .. } => (index, output),
                    Verdict::Denied { index, decision } => {
                        return Err(denied("psi status", index, &decision));
                    }
                };
            if json {
                let mut body = serde_json::to_value(&status)?;
                body["ledger_index"] = serde_json::json!(index);
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                print!("{}", render(&status));
                println!("(this read is recorded at ledger entry {index})");
            }
            Ok(())
        }
        PsiCmd::Rotate { agreement, contact, data_dir, json } => {
            let node = Node::open(&data_dir).await?;
            // A bar for large sets, shown once preparing starts (after the decision).
            let bar = std::sync::Arc::new(std::sync::Mutex::new(None));
            let shown = bar.clone();
            let progress = move |done: u64, total: u64| {
                if json || total < 10_000 {
                    return;
                }
                if let Ok(mut b) = shown.lock() {
                    b.get_or_insert_with(|| progress_bar(total, "preparing the set"))
                        .set_position(done);
                }
            };
            let verdict = entente_node::psi::rotate(
                &node,
                node.operator(),
                &agreement,
                &contact,
                Timestamp::now(),
                progress,
            )
            .await;
            if let Some(b) = bar.lock().ok().and_then(|mut b| b.take()) {
                b.finish_and_clear();
            }
            match verdict? {
                Verdict::Permitted { index, output: r, .. } => {
                    if json {
                        let mut body = serde_json::to_value(&r)?;
                        body["ledger_index"] = serde_json::json!(index);
                        println!("{}", serde_json::to_string_pretty(&body)?);
                    } else {
                        println!(
                            "epoch {} for {}: {} selectors prepared in {} chunks (ledger entry {index})",
                            r.epoch, r.agreement, r.set_size, r.chunks
                        );
                        let list = |v: &[PartyCode]| {
                            v.iter().map(PartyCode::as_str).collect::<Vec<_>>().join(", ")
                        };
                        println!(
                            "  sent to       {}",
                            if r.sent_to.is_empty() { "-".into() } else { list(&r.sent_to) }
                        );
                        if !r.not_pinned.is_empty() {
                            println!("  not pinned    {} (nothing sent)", list(&r.not_pinned));
                        }
                        if !r.destroyed.is_empty() {
                            println!("  keys destroyed {}", r.destroyed.join(", "));
                        }
                    }
                    Ok(())
                }
                Verdict::Denied { index, decision } => Err(denied("rotation", index, &decision)),
            }
        }
    }
}

/// The status as tables.
pub(crate) fn render(s: &PsiStatus) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "queries:");
    if s.queries.is_empty() {
        let _ = writeln!(o, "  (none)");
    } else {
        let _ = writeln!(
            o,
            "  {:<10} {:<12} {:<4} {:<9} {:>9} {:>7} {:>7}",
            "query", "case", "to", "status", "selectors", "padded", "matched"
        );
        for q in &s.queries {
            let matched = q.matched.map_or("-".to_owned(), |m| m.to_string());
            let _ = writeln!(
                o,
                "  {:<10} {:<12} {:<4} {:<9} {:>9} {:>7} {:>7}",
                q.id, q.case_id, q.peer, q.status, q.selectors, q.padded, matched
            );
            for m in &q.matches {
                for l in &m.labels {
                    let _ = writeln!(
                        o,
                        "      {:<48} held in {} — ask {}",
                        m.selector, l.case_reference, l.contact
                    );
                }
            }
            if let Some(r) = &q.reason {
                let _ = writeln!(o, "      reason: {r}");
            }
        }
    }
    if !s.peer_keys.is_empty() {
        let _ = writeln!(o, "partners' keys:");
        for k in &s.peer_keys {
            let _ = writeln!(
                o,
                "  {:<4} {:<26} epoch {}… {} mode, {} elements, chunks {}/{}",
                k.peer,
                k.agreement,
                k.epoch.get(..12).unwrap_or(&k.epoch),
                k.mode,
                k.set_size,
                k.received,
                k.total
            );
        }
    }
    if !s.keys.is_empty() {
        let _ = writeln!(o, "this node's key epochs:");
        for k in &s.keys {
            let _ = writeln!(
                o,
                "  {:<26} epoch {}… {} elements, made {}{}",
                k.agreement,
                k.epoch.get(..12).unwrap_or(&k.epoch),
                k.set_size,
                k.created_at,
                k.destroyed_at.as_ref().map_or(String::new(), |d| format!(", destroyed {d}"))
            );
        }
    }
    if !s.evaluations.is_empty() {
        let _ = writeln!(o, "queries evaluated for partners:");
        for e in &s.evaluations {
            let _ = writeln!(
                o,
                "  {:<4} {:<12} case {:<12} {} elements, {}{}",
                e.asker,
                e.query,
                e.case_ref,
                e.elements,
                e.status,
                e.reason.as_ref().map_or(String::new(), |r| format!(": {r}"))
            );
        }
    }
    o
}
