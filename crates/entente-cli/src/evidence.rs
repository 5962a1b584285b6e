//! `entente evidence`: add files as evidence, record custody events, show and prove the
//! chain, build signed packages for a partner, verify packages offline and import them.
//!
//! The operations themselves are the node's (`entente_node::packages`); this module parses
//! the arguments and prints.

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use clap::Subcommand;
use entente_console::{Exit, Failure, FileProgress, fail, permitted};
use entente_core::PartyCode;
use entente_evidence::CustodyKind;
use entente_evidence::keys::{self, MasterKey};
use entente_evidence::package::{self, Verified};
use entente_node::{Node, packages};
use entente_store::EvidenceRecord;
use entente_store::Principal;
use jiff::Timestamp;
use std::path::{Path, PathBuf};

/// `entente evidence …`
#[derive(Subcommand)]
pub(crate) enum EvidenceCmd {
    /// Take in files as evidence: each read once, hashed (SHA-256) and encrypted into the blob
    /// store, custody event `acquired` recorded
    Add {
        /// The files
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// The user acting (a user of this node)
        #[arg(long)]
        user: String,
        /// The case the items are bound to
        #[arg(long)]
        case: entente_core::CaseId,
        /// What the files are
        #[arg(long)]
        description: String,
        /// Data category: subscriber, traffic, content, threat-intel, personal-data-of-third-parties, case-information
        #[arg(long, default_value = "content")]
        category: String,
        /// Where they came from
        #[arg(long)]
        source: Option<String>,
        /// When they were collected (RFC 3339)
        #[arg(long)]
        collected_at: Option<String>,
        /// Media type
        #[arg(long, default_value = "application/octet-stream")]
        media_type: String,
        /// Why they are acquired
        #[arg(long, default_value = "acquired for the case")]
        reason: String,
        /// Legal basis (request or agreement id)
        #[arg(long)]
        legal_basis: Option<String>,
        /// Item id (one file only; default: CASE-<first 12 hex digits of its SHA-256>)
        #[arg(long)]
        id: Option<entente_core::ItemId>,
    },
    /// Record a custody event: sealed, accessed, copied, verified, analysed, returned
    Event {
        /// Item id
        item: entente_core::ItemId,
        /// The event
        #[arg(long)]
        kind: String,
        /// Why
        #[arg(long)]
        reason: String,
        /// Legal basis (request or agreement id)
        #[arg(long)]
        legal_basis: Option<String>,
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// The user acting
        #[arg(long)]
        user: String,
    },
    /// Flag an item as possibly privileged: it cannot be exported or packaged until a filter
    /// team reviews it
    Flag {
        /// Item id
        item: entente_core::ItemId,
        /// Why (recorded as a digest)
        #[arg(long)]
        reason: String,
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// The user acting
        #[arg(long)]
        user: String,
    },
    /// A filter team's review of a flagged item: --release, --withhold, or --redacted-by ITEM
    Review {
        /// Item id
        item: entente_core::ItemId,
        /// Not privileged: the item may leave
        #[arg(long, conflicts_with_all = ["withhold", "redacted_by"])]
        release: bool,
        /// Privileged: the item never leaves
        #[arg(long, conflicts_with = "redacted_by")]
        withhold: bool,
        /// Privileged parts removed into this item (of the same case), which leaves instead
        #[arg(long)]
        redacted_by: Option<entente_core::ItemId>,
        /// Why (recorded as a digest)
        #[arg(long)]
        reason: String,
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// The user acting (a filter-team user)
        #[arg(long)]
        user: String,
    },
    /// Print an item's custody chain and prove each event's inclusion in the ledger
    Custody {
        /// Item id
        item: entente_core::ItemId,
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Write a signed evidence package for another party (encrypted to it with --recipient)
    Package {
        /// The case whose items are sent
        #[arg(long)]
        case: String,
        /// The items (default: every item of the case not destroyed)
        #[arg(long, value_delimiter = ',')]
        items: Vec<entente_core::ItemId>,
        /// The receiving party
        #[arg(long)]
        to: String,
        /// The receiving node's age recipient (age1…, from `entente evidence recipient`); default:
        /// the one pinned for the party (`entente peer add --age-recipient`)
        #[arg(long)]
        recipient: Option<String>,
        /// The request answered
        #[arg(long)]
        request: entente_core::RequestId,
        /// Its kind, if the request is not held by this node (e.g. production-order)
        #[arg(long)]
        request_kind: Option<String>,
        /// The purpose the receiver uses it for
        #[arg(long, default_value = "criminal-investigation")]
        purpose: String,
        /// A retention limit imposed on the receiver (RFC 3339; the agreement's, if earlier, wins)
        #[arg(long)]
        retain_until: Option<String>,
        /// Output file
        #[arg(short, long)]
        output: PathBuf,
        /// Also offer it to the party's pinned node over the federation (it must be encrypted
        /// to the party): the partner's node fetches it, streamed and resumable
        #[arg(long)]
        send: bool,
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// The user acting
        #[arg(long)]
        user: String,
    },
    /// Packages offered by this node to partners and by partners to it, with their progress
    Transfers {
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Verify a package offline: every hash, the signature, every custody event and its
    /// ledger inclusion proof
    Verify {
        /// The package
        file: PathBuf,
        /// Trusted public key of the sender (PEM, from `entente evidence public-key`); repeatable
        #[arg(long)]
        sender_key: Vec<PathBuf>,
        /// A node's data directory: opens packages encrypted to it, checks they are addressed to it
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// An age identity file to open an encrypted package with
        #[arg(long)]
        identity: Option<PathBuf>,
    },
    /// Verify a package and take its items in: custody event `received`, conditions bound
    Import {
        /// The package
        file: PathBuf,
        /// Trusted public key of the sender (PEM); repeatable. Default: the keys pinned for the
        /// partner nodes, the package's sender having to be the partner pinned with its key
        #[arg(long)]
        sender_key: Vec<PathBuf>,
        /// The local case the items are bound to
        #[arg(long)]
        case: String,
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// The user acting
        #[arg(long)]
        user: String,
    },
    /// Print this node's age recipient (partners encrypt packages to it)
    Recipient {
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Print this node's Ed25519 public key (PEM): partners verify its packages with it
    PublicKey {
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
    },
}

fn parse_kebab<T: for<'de> serde::Deserialize<'de>>(what: &str, s: &str) -> Result<T, Failure> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| fail(Exit::BadInput, format!("{what} `{s}` is not known")))
}

/// `--user NAME`: the operator holding the data directory acting for that user (recorded as
/// such, never as the user presenting a token).
pub(crate) async fn user_actor(node: &Node, name: &str) -> Result<Principal, Failure> {
    Ok(node.operator_for(name).await?)
}

fn read_keys(paths: &[PathBuf]) -> Result<Vec<ed25519_dalek::VerifyingKey>, Failure> {
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .map_err(|e| fail(Exit::BadInput, format!("--sender-key {}: {e}", p.display())))?;
            package::parse_public_key_pem(&text)
                .map_err(|e| fail(Exit::BadInput, format!("--sender-key {}: {e}", p.display())))
        })
        .collect()
}

pub(crate) async fn run(cmd: EvidenceCmd) -> Result<(), Failure> {
    match cmd {
        EvidenceCmd::Add {
            files,
            data_dir,
            user,
            case,
            description,
            category,
            source,
            collected_at,
            media_type,
            reason,
            legal_basis,
            id,
        } => {
            if id.is_some() && files.len() > 1 {
                return Err(fail(Exit::BadInput, "--id names one item; give one file with it"));
            }
            let node = Node::open(&data_dir).await?;
            let actor = user_actor(&node, &user).await?;
            let spec = packages::AddSpec {
                case,
                description,
                category: parse_kebab("--category", &category)?,
                media_type,
                source,
                collected_at,
                reason,
                legal_basis,
            };
            for f in &files {
                let progress = FileProgress::for_file(f);
                let added = packages::add_file(
                    &node,
                    &actor,
                    f,
                    id.clone(),
                    &spec,
                    Timestamp::now(),
                    progress.updater(),
                )
                .await;
                progress.finish();
                let (index, r) =
                    added.map_err(|e| Failure::from(e).context(format!("{}", f.display())))?;
                println!(
                    "{}: {} sha256:{} {} bytes, acquired (ledger entry {index}){}",
                    f.display(),
                    r.id,
                    r.sha256,
                    r.size,
                    if r.deduplicated { ", content already held (de-duplicated)" } else { "" }
                );
            }
            Ok(())
        }
        EvidenceCmd::Event { item, kind, reason, legal_basis, data_dir, user } => {
            let event = CustodyKind::parse(&kind).map_err(|e| fail(Exit::BadInput, e))?;
            let node = Node::open(&data_dir).await?;
            let actor = user_actor(&node, &user).await?;
            let (index, _) = permitted(
                node.gate
                    .submit(
                        actor,
                        entente_store::evidence::EvidenceCustody {
                            id: item.clone(),
                            event,
                            reason,
                            legal_basis,
                        },
                        Timestamp::now(),
                    )
                    .await?,
            )?;
            println!("{item}: {event} recorded (ledger entry {index})");
            Ok(())
        }
        EvidenceCmd::Flag { item, reason, data_dir, user } => {
            let node = Node::open(&data_dir).await?;
            let actor = user_actor(&node, &user).await?;
            let cmd = entente_store::evidence::FlagPrivilege { id: item.clone(), reason };
            let (index, ()) = permitted(node.gate.submit(actor, cmd, Timestamp::now()).await?)?;
            println!(
                "{item}: flagged as possibly privileged (ledger entry {index}); it cannot leave until a filter team reviews it"
            );
            Ok(())
        }
        EvidenceCmd::Review { item, release, withhold, redacted_by, reason, data_dir, user } => {
            use entente_store::evidence::ReviewOutcome;
            let outcome = match (release, withhold, redacted_by) {
                (true, false, None) => ReviewOutcome::Release,
                (false, true, None) => ReviewOutcome::Withhold,
                (false, false, Some(r)) => ReviewOutcome::Redact { item: r },
                _ => {
                    return Err(fail(
                        Exit::BadInput,
                        "say one of --release, --withhold or --redacted-by ITEM",
                    ));
                }
            };
            let node = Node::open(&data_dir).await?;
            let actor = user_actor(&node, &user).await?;
            let cmd = entente_store::evidence::ReviewPrivilege {
                id: item.clone(),
                outcome: outcome.clone(),
                reason,
            };
            let (index, ()) = permitted(node.gate.submit(actor, cmd, Timestamp::now()).await?)?;
            let what = match outcome {
                ReviewOutcome::Release => "released: it may leave".to_owned(),
                ReviewOutcome::Withhold => "withheld as privileged: it never leaves".to_owned(),
                ReviewOutcome::Redact { item: r } => format!("redacted: `{r}` leaves in its place"),
            };
            println!("{item}: {what} (ledger entry {index})");
            Ok(())
        }
        EvidenceCmd::Custody { item, data_dir, json } => {
            let node = Node::open(&data_dir).await?;
            let (index, r) = permitted(
                node.gate
                    .submit(
                        node.operator(),
                        entente_store::evidence::ReadEvidence { id: item },
                        Timestamp::now(),
                    )
                    .await?,
            )?;
            custody_report(&node, &r, index, json).await
        }
        EvidenceCmd::Package {
            case,
            items,
            to,
            recipient,
            request,
            request_kind,
            purpose,
            retain_until,
            output,
            send,
            data_dir,
            user,
        } => {
            let node = Node::open(&data_dir).await?;
            let actor = user_actor(&node, &user).await?;
            let items =
                if items.is_empty() { node.store.evidence_of_case(&case).await? } else { items };
            if items.is_empty() {
                return Err(fail(
                    Exit::BadInput,
                    format!("case {case} holds no evidence to package"),
                ));
            }
            let to: PartyCode =
                to.parse().map_err(|e| fail(Exit::BadInput, format!("--to: {e}")))?;
            // Without --recipient, the age recipient pinned with the partner's certificate.
            let recipient = match recipient {
                Some(r) => Some(r),
                None => node.store.peer(&to).await?.and_then(|p| p.age_recipient),
            };
            if send && recipient.is_none() {
                return Err(fail(
                    Exit::BadInput,
                    format!(
                        "--send: a package sent over the federation is encrypted to the recipient; give --recipient or pin {to} with --age-recipient"
                    ),
                ));
            }
            if recipient.is_none() {
                eprintln!(
                    "warning: the package is not encrypted: no --recipient, and no age recipient is pinned for {to} (entente peer add --age-recipient)"
                );
            }
            let spec = packages::PackageSpec {
                items,
                to,
                recipient,
                request,
                request_kind: request_kind
                    .map(|k| parse_kebab("--request-kind", &k))
                    .transpose()?,
                purpose: parse_kebab("--purpose", &purpose)?,
                retain_until,
            };
            let w =
                packages::build_package(&node, &actor, &spec, &output, Timestamp::now()).await?;
            println!(
                "wrote {}: {} items, {} payloads ({} bytes), manifest sha256:{}{}",
                output.display(),
                w.items,
                w.payloads,
                w.payload_bytes,
                w.manifest_sha256,
                if spec.recipient.is_some() {
                    format!(", encrypted to {}", spec.to)
                } else {
                    String::new()
                }
            );
            if send {
                let sent = packages::send_package(
                    &node,
                    &actor,
                    &output,
                    &spec.to,
                    &spec.items,
                    Some(spec.request.clone()),
                    &w.manifest_sha256,
                )
                .await?;
                println!(
                    "offered to {} (ledger entry {}): package sha256:{} ({} bytes); {}'s node fetches it",
                    spec.to, sent.index, sent.sha256, sent.size, spec.to
                );
            }
            Ok(())
        }
        EvidenceCmd::Verify { file, sender_key, data_dir, identity } => {
            let trusted = read_keys(&sender_key)?;
            let master = match (&identity, &data_dir) {
                (Some(p), _) => Some(MasterKey::load(p).map_err(|e| fail(Exit::BadInput, e))?),
                (None, Some(d)) => {
                    let p = d.join(keys::MASTER_KEY_FILE);
                    Some(MasterKey::load(&p).map_err(|e| fail(Exit::BadInput, e))?)
                }
                (None, None) => None,
            };
            let ours = match (&data_dir, &master) {
                (Some(_), Some(m)) => Some(m.recipient()),
                _ => None,
            };
            let v = tokio::task::spawn_blocking(move || {
                packages::verify_file(
                    &file,
                    &trusted,
                    master.as_ref().map(MasterKey::identity),
                    ours.as_deref(),
                    &mut package::Discard,
                )
                .map(|v| (file, v))
            })
            .await
            .map_err(|e| fail(Exit::Failed, e))?;
            let (file, v) = v?;
            print_verified(&file, &v);
            Ok(())
        }
        EvidenceCmd::Transfers { data_dir, json } => {
            crate::evidence_transfer::transfers(&data_dir, json).await
        }
        EvidenceCmd::Import { file, sender_key, case, data_dir, user } => {
            let node = Node::open(&data_dir).await?;
            let pinned = sender_key.is_empty();
            let trusted =
                if pinned { packages::pinned_keys(&node).await? } else { read_keys(&sender_key)? };
            let actor = user_actor(&node, &user).await?;
            let (v, items) = packages::import_package(
                &node,
                &actor,
                &file,
                trusted,
                pinned,
                &case,
                Timestamp::now(),
            )
            .await?;
            print_verified(&file, &v);
            for (index, r) in items {
                let c = r.conditions.as_ref();
                println!(
                    "  imported {} into case {case}: received (ledger entry {index}); conditions of {}: purposes {}, retain until {}",
                    r.id,
                    c.map_or("-", |c| c.agreement.as_str()),
                    c.map(|c| serde_json::to_string(&c.purposes).unwrap_or_default())
                        .unwrap_or_default(),
                    r.retain_until.map_or_else(|| "no limit".to_owned(), |t| t.to_string())
                );
            }
            Ok(())
        }
        EvidenceCmd::Recipient { data_dir } => {
            let node = Node::open(&data_dir).await?;
            let (master, _) = packages::vault(&node)?;
            println!("{}", master.recipient());
            Ok(())
        }
        EvidenceCmd::PublicKey { data_dir } => {
            let node = Node::open(&data_dir).await?;
            print!(
                "{}",
                package::public_key_pem(&node.verifying_key())
                    .map_err(|e| fail(Exit::Failed, e))?
            );
            Ok(())
        }
    }
}

fn print_verified(file: &Path, v: &Verified) {
    let m = &v.manifest;
    println!(
        "{}: verified. Signed by {} ({}); {}{} items; {} custody events proven in {}'s ledger (checkpoint size {}), {} of earlier holders carried; manifest sha256:{}",
        file.display(),
        m.sender.party,
        m.sender.name,
        if v.encrypted { "encrypted to this node; " } else { "" },
        m.items.len(),
        v.proven_events,
        m.sender.party,
        v.checkpoint_size,
        v.carried_events,
        v.manifest_sha256
    );
}

async fn custody_report(
    node: &Node,
    r: &EvidenceRecord,
    read_index: u64,
    json: bool,
) -> Result<(), Failure> {
    let (size, note, proofs) = packages::prove_chain(node, std::slice::from_ref(r)).await?;
    let cp = entente_core::ledger::verify_checkpoint(&note, &node.verifier_key())?;
    let events: Vec<_> = r.chain.iter().map(|e| e.event.clone()).collect();
    entente_evidence::custody::check_chain(&r.id, &r.sha256, &events)
        .map_err(|e| fail(Exit::Failed, format!("custody chain of {}: {e}", r.id)))?;
    let mut rows = Vec::new();
    for e in &r.chain {
        let proven = match e.ledger_index.and_then(|i| proofs.get(&i)) {
            Some(p) => {
                let hashes: Vec<entente_core::ledger::Hash> = p
                    .proof
                    .iter()
                    .filter_map(|h| BASE64_STANDARD.decode(h).ok())
                    .filter_map(|b| <[u8; 32]>::try_from(b).ok())
                    .map(entente_core::ledger::Hash)
                    .collect();
                entente_core::ledger::check_record(
                    &hashes,
                    size,
                    cp.root,
                    p.index,
                    entente_core::ledger::record_hash(p.entry.as_bytes()),
                )
                .map_err(|x| {
                    fail(
                        Exit::Failed,
                        format!("event {} ({}): proof fails: {x}", e.event.seq, e.event.event),
                    )
                })?;
                let entry = entente_core::ledger::LedgerEntry::decode(p.entry.as_bytes())?;
                if entry.payload_hashes.get("custody") != Some(&e.event.digest()) {
                    return Err(fail(
                        Exit::Failed,
                        format!(
                            "event {}: ledger entry {} does not record it",
                            e.event.seq, p.index
                        ),
                    ));
                }
                Some(p.index)
            }
            None => None,
        };
        rows.push((e, proven));
    }
    if json {
        let body = serde_json::json!({
            "item": r,
            "checkpoint_size": size,
            "proven": rows.iter().map(|(e, p)| serde_json::json!({"seq": e.event.seq, "ledger_index": p})).collect::<Vec<_>>(),
            "read_ledger_index": read_index,
        });
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    println!(
        "evidence {} (case {}): sha256:{} {} bytes, {}",
        r.id, r.case_id, r.sha256, r.size, r.description
    );
    if let Some(c) = &r.conditions {
        println!(
            "  received from {} under {}; retain until {}",
            r.received_from.as_ref().map_or("-", |p| p.as_str()),
            c.agreement,
            r.retain_until.map_or_else(|| "no limit".to_owned(), |t| t.to_string())
        );
    }
    if let Some(at) = &r.destroyed_at {
        println!("  destroyed at {at}: data key destroyed, content unrecoverable");
    }
    println!("  {:<3} {:<12} {:<4} {:<30} {:<34} proof", "seq", "event", "by", "at", "actor");
    for (e, p) in rows {
        let ev = &e.event;
        println!(
            "  {:<3} {:<12} {:<4} {:<30} {:<34} {}",
            ev.seq,
            ev.event.as_str(),
            ev.party.as_str(),
            ev.at,
            ev.actor,
            match p {
                Some(i) => format!("ledger entry {i} ✓ included in tree of size {size}"),
                None => "earlier holder (verified on import)".into(),
            }
        );
        println!(
            "      reason: {}{}",
            ev.reason,
            ev.legal_basis.as_deref().map(|b| format!("; legal basis {b}")).unwrap_or_default()
        );
    }
    println!("(this reading is ledger entry {read_index})");
    Ok(())
}
