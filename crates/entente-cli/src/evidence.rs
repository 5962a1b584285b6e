//! `entente evidence`: add files as evidence, record custody events, show and prove the
//! chain, build signed packages for a partner, verify packages offline and import them.
//!
//! The functions below the command dispatcher are also the pilot's (in process).

use crate::{Exit, Failure, fail};
use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use clap::Subcommand;
use entente_core::PartyCode;
use entente_evidence::blob;
use entente_evidence::keys::{self, MasterKey};
use entente_evidence::package::{
    self, BuildInput, LedgerProof, PackageItem, PayloadSink, ProvenEvent, RecipientInfo,
    SenderInfo, Verified, VerifyOptions, Written,
};
use entente_evidence::{BlobStore, CustodyKind, Ingested};
use entente_node::Node;
use entente_policy::agreement::{DataCategory, Purpose, RequestKind};
use entente_store::Principal;
use entente_store::{EvidenceRecord, NewEvidence, ReceivedEvidence, Verdict};
use jiff::Timestamp;
use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
        case: String,
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
        id: Option<String>,
    },
    /// Record a custody event: sealed, accessed, copied, verified, analysed, returned
    Event {
        /// Item id
        item: String,
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
    /// Print an item's custody chain and prove each event's inclusion in the ledger
    Custody {
        /// Item id
        item: String,
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
        items: Vec<String>,
        /// The receiving party
        #[arg(long)]
        to: String,
        /// The receiving node's age recipient (age1…, from `entente evidence recipient`); default:
        /// the one pinned for the party (`entente peer add --age-recipient`)
        #[arg(long)]
        recipient: Option<String>,
        /// The request answered
        #[arg(long)]
        request: String,
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

fn denied(index: u64, decision: &entente_core::Decision) -> Failure {
    fail(
        Exit::Denied,
        format!(
            "denied by {} (ledger entry {index}): {}",
            decision.rules.join(", "),
            decision.reason
        ),
    )
}

/// `--user NAME`: the operator holding the data directory acting for that user (recorded as
/// such, never as the user presenting a token).
pub(crate) async fn user_actor(node: &Node, name: &str) -> Result<Principal, Failure> {
    Ok(node.operator_for(name).await?)
}

/// The node's master key and blob store (the local blob directory, or the object store of
/// `[evidence.store]`).
pub(crate) fn vault(node: &Node) -> Result<(Arc<MasterKey>, Arc<dyn BlobStore>), Failure> {
    let v = node.vault().map_err(|e| fail(Exit::Failed, e))?;
    Ok((v.master, v.store))
}

fn evidence_of(v: Verdict<EvidenceRecord>) -> Result<(u64, EvidenceRecord), Failure> {
    match v {
        Verdict::Permitted { index, output: r, .. } => Ok((index, r)),
        Verdict::Denied { index, decision } => Err(denied(index, &decision)),
    }
}

/// What `add` records about a file besides its content.
pub(crate) struct AddSpec {
    pub(crate) case: String,
    pub(crate) description: String,
    pub(crate) category: DataCategory,
    pub(crate) media_type: String,
    pub(crate) source: Option<String>,
    pub(crate) collected_at: Option<String>,
    pub(crate) reason: String,
    pub(crate) legal_basis: Option<String>,
}

/// Ingests one file and records it through the gate. Nothing stays in the blob store if the
/// gate refuses; a content already held keeps its blob (de-duplication).
pub(crate) async fn add_file(
    node: &Node,
    actor: &Principal,
    path: &Path,
    id: Option<String>,
    spec: &AddSpec,
    now: Timestamp,
) -> Result<(u64, EvidenceRecord), Failure> {
    let (master, store) = vault(node)?;
    let p = path.to_owned();
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let bar = (std::io::stderr().is_terminal() && size >= 64 << 20).then(|| {
        let b = crate::progress_bar(size, &format!("{}", path.display()));
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let b2 = bar.clone();
    let store2 = store.clone();
    let got: Ingested = tokio::task::spawn_blocking(move || {
        blob::ingest_file(&*store2, &master, &p, &mut |n, _| {
            if let Some(b) = &b2 {
                b.set_position(n);
            }
        })
    })
    .await
    .map_err(|e| fail(Exit::Failed, e))?
    .map_err(|e| {
        let code = match e {
            entente_evidence::EvidenceError::Io { .. }
            | entente_evidence::EvidenceError::NotAFile { .. }
            | entente_evidence::EvidenceError::FileChanged { .. } => Exit::BadInput,
            _ => Exit::Failed,
        };
        fail(code, e)
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let id = id.unwrap_or_else(|| format!("{}-{}", spec.case, &got.sha256[..12]));
    let item = NewEvidence {
        id,
        case_id: spec.case.clone(),
        sha256: got.sha256.clone(),
        size: got.size,
        category: spec.category,
        media_type: spec.media_type.clone(),
        description: spec.description.clone(),
        file_name: path.file_name().map(|n| n.to_string_lossy().into_owned()),
        source: spec.source.clone(),
        collected_at: spec.collected_at.clone(),
        location: Some(format!("Entente node {}", node.config.party)),
        tool: format!("{} (streaming SHA-256, age)", entente_store::TOOL),
        blob: got.blob.clone(),
        reason: spec.reason.clone(),
        legal_basis: spec.legal_basis.clone(),
    };
    let result = node
        .gate
        .submit(actor.clone(), entente_store::evidence::AddEvidence { item: (item) }, now)
        .await;
    let keep = matches!(&result, Ok(Verdict::Permitted { output: r, .. }) if !r.deduplicated);
    if !keep {
        let _ = store.delete(&got.blob.name);
    }
    evidence_of(result?)
}

/// The ledger proofs of the events this node recorded, against the head checkpoint.
async fn prove_chain(
    node: &Node,
    records: &[EvidenceRecord],
) -> Result<(u64, Vec<u8>, HashMap<u64, LedgerProof>), Failure> {
    let (size, note) = node.store.ledger_head().await?;
    let note = note.ok_or_else(|| fail(Exit::Failed, "the ledger has no checkpoint"))?;
    let indexes: std::collections::BTreeSet<u64> =
        records.iter().flat_map(|r| r.chain.iter().filter_map(|e| e.ledger_index)).collect();
    let mut needed = Vec::new();
    let mut per = Vec::new();
    for &i in &indexes {
        let ix = entente_core::ledger::inclusion_proof_indexes(size, i)
            .map_err(|e| fail(Exit::Failed, e))?;
        needed.extend_from_slice(&ix);
        per.push(i);
    }
    needed.sort_unstable();
    needed.dedup();
    let hashes = node.store.hashes(&needed).await?;
    let map = entente_core::ledger::MapHashReader(needed.iter().copied().zip(hashes).collect());
    let mut out = HashMap::new();
    let (lo, hi) = match (indexes.first(), indexes.last()) {
        (Some(a), Some(b)) => (*a, *b + 1),
        _ => (0, 0),
    };
    let entries: HashMap<u64, Vec<u8>> = if hi > lo {
        node.store.entries(lo, hi).await?.into_iter().collect()
    } else {
        HashMap::new()
    };
    for i in per {
        let proof = entente_core::ledger::prove_inclusion(size, i, &map)
            .map_err(|e| fail(Exit::Failed, e))?;
        let entry = entries
            .get(&i)
            .ok_or_else(|| fail(Exit::Failed, format!("ledger entry {i} is missing")))?;
        out.insert(
            i,
            LedgerProof {
                index: i,
                entry: String::from_utf8_lossy(entry).into_owned(),
                proof: proof.iter().map(|h| BASE64_STANDARD.encode(h.0)).collect(),
            },
        );
    }
    Ok((size, note, out))
}

/// What a package is for.
pub(crate) struct PackageSpec {
    pub(crate) items: Vec<String>,
    pub(crate) to: PartyCode,
    pub(crate) recipient: Option<String>,
    pub(crate) request: String,
    pub(crate) request_kind: Option<RequestKind>,
    pub(crate) purpose: Purpose,
    pub(crate) retain_until: Option<String>,
}

/// Releases the items through the gate (each `exported`, decided by the agreements) and
/// writes the package to `out` (through a temporary file beside it).
pub(crate) async fn build_package(
    node: &Node,
    actor: &Principal,
    spec: &PackageSpec,
    out: &Path,
    now: Timestamp,
) -> Result<Written, Failure> {
    let recipient = match &spec.recipient {
        Some(r) => Some((
            RecipientInfo { party: spec.to.clone(), age: r.trim().to_owned() },
            keys::parse_recipient(r)
                .map_err(|e| fail(Exit::BadInput, format!("--recipient: {e}")))?,
        )),
        None => None,
    };
    if spec.items.is_empty() {
        return Err(fail(Exit::BadInput, "no items to package"));
    }
    let mut set = tokio::task::JoinSet::new();
    for (n, id) in spec.items.iter().enumerate() {
        let gate = node.gate.clone();
        let cmd = entente_store::evidence::ExportEvidence {
            id: id.clone(),
            to: spec.to.clone(),
            request: spec.request.clone(),
            request_kind: spec.request_kind,
            purpose: spec.purpose,
            retain_until: spec.retain_until.clone(),
        };
        let actor = actor.clone();
        set.spawn(async move { (n, gate.submit(actor, cmd, now).await) });
    }
    let mut records: Vec<Option<EvidenceRecord>> = vec![None; spec.items.len()];
    let mut problems = Vec::new();
    while let Some(r) = set.join_next().await {
        let (n, v) = r.map_err(|e| fail(Exit::Failed, e))?;
        match v.map_err(Failure::from).and_then(evidence_of) {
            Ok((_, rec)) => records[n] = Some(rec),
            Err(f) => problems.push((spec.items[n].clone(), f)),
        }
    }
    if let Some((id, f)) = problems.into_iter().next() {
        return Err(Failure { code: f.code, error: f.error.context(format!("evidence {id}")) });
    }
    let records: Vec<EvidenceRecord> = records.into_iter().flatten().collect();
    let (size, note, proofs) = prove_chain(node, &records).await?;
    let mut items = Vec::new();
    let mut blobs = HashMap::new();
    for r in &records {
        let custody = r
            .chain
            .iter()
            .map(|e| ProvenEvent {
                event: e.event.clone(),
                ledger: e.ledger_index.and_then(|i| proofs.get(&i).cloned()),
            })
            .collect();
        if let Some(b) = &r.blob {
            blobs.insert(r.sha256.clone(), b.clone());
        }
        items.push(PackageItem {
            id: r.id.clone(),
            sha256: r.sha256.clone(),
            size: r.size,
            category: r.category,
            media_type: r.media_type.clone(),
            description: r.description.clone(),
            file_name: r.file_name.clone(),
            source: r.source.clone(),
            collected_at: r.collected_at.clone(),
            payload: package::payload_path(&r.sha256),
            conditions: r.conditions.clone(),
            custody,
        });
    }
    let case_id = records.first().map(|r| r.case_id.clone()).unwrap_or_default();
    let input = BuildInput {
        key: &node.key,
        sender: SenderInfo {
            party: node.config.party.clone(),
            name: node.config.name.clone(),
            ed25519: BASE64_STANDARD.encode(node.key.verifying_key().as_bytes()),
            ledger_origin: node.gate.origin().to_owned(),
        },
        recipient,
        created_at: format!("{now:.6}"),
        case_id,
        request: Some(spec.request.clone()),
        request_kind: spec.request_kind,
        checkpoint: note,
        checkpoint_size: size,
        items,
    };
    let (master, store) = vault(node)?;
    let out = out.to_owned();
    let key = node.key.clone();
    // Opening a blob (unwrapping its data key, reading its age header) costs two X25519
    // operations: helper threads open them, each every n-th in the order the package takes
    // them, while this one builds the manifest and writes.
    let mut order = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for item in &input.items {
        if seen.insert(item.sha256.clone()) {
            order.push(item.sha256.clone());
        }
    }
    let openers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
    tokio::task::spawn_blocking(move || -> Result<Written, Failure> {
        let input = BuildInput { key: &key, ..input };
        let tmp = out.with_extension("part");
        let mut f = std::fs::File::create(&tmp)
            .map_err(|e| fail(Exit::BadInput, format!("cannot create {}: {e}", tmp.display())))?;
        let open = |sha: &str| -> Result<Box<dyn std::io::Read + Send>, String> {
            let b = blobs.get(sha).ok_or("its content was destroyed")?;
            blob::open_blob(&*store, &master, b).map_err(|e| e.to_string())
        };
        let written = std::thread::scope(|s| {
            let open = &open;
            let order = &order;
            let mut queues = Vec::with_capacity(openers);
            for k in 0..openers {
                let (tx, rx) = std::sync::mpsc::sync_channel(32);
                queues.push(rx);
                s.spawn(move || {
                    for sha in order.iter().skip(k).step_by(openers) {
                        if tx.send((sha.clone(), open(sha))).is_err() {
                            return;
                        }
                    }
                });
            }
            let mut next = 0;
            package::write_package(input, &mut f, &mut |item| {
                let got = queues.get(next % openers).map(std::sync::mpsc::Receiver::recv);
                next += 1;
                match got {
                    Some(Ok((sha, reader))) if sha == item.sha256 => reader,
                    // Not in the expected order (cannot happen): open it here.
                    _ => open(&item.sha256),
                }
            })
        });
        let written = match written.and_then(|w| {
            f.sync_all().map_err(|e| package::PackageError::Io(e.to_string()))?;
            Ok(w)
        }) {
            Ok(w) => w,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(fail(Exit::Failed, e));
            }
        };
        std::fs::rename(&tmp, &out)
            .map_err(|e| fail(Exit::Failed, format!("cannot write {}: {e}", out.display())))?;
        Ok(written)
    })
    .await
    .map_err(|e| fail(Exit::Failed, e))?
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

fn package_failure(file: &Path, e: package::PackageError) -> Failure {
    fail(Exit::Failed, format!("{}: verification FAILED: {e}", file.display()))
}

/// Verifies a package file (blocking).
pub(crate) fn verify_file(
    file: &Path,
    trusted: &[ed25519_dalek::VerifyingKey],
    identity: Option<&age::x25519::Identity>,
    our_recipient: Option<&str>,
    sink: &mut dyn PayloadSink,
) -> Result<Verified, Failure> {
    let meta = std::fs::metadata(file)
        .map_err(|e| fail(Exit::BadInput, format!("{}: {e}", file.display())))?;
    if !meta.is_file() {
        return Err(fail(Exit::BadInput, format!("{}: not a regular file", file.display())));
    }
    let mut f = std::fs::File::open(file)
        .map_err(|e| fail(Exit::BadInput, format!("{}: {e}", file.display())))?;
    let opts = VerifyOptions { trusted, identity, our_recipient };
    package::verify(&mut f, &opts, sink).map_err(|e| package_failure(file, e))
}

/// Keeps payloads in the blob store during an import; removes them if the import fails.
struct ImportSink<'a> {
    store: &'a dyn BlobStore,
    master: &'a MasterKey,
    got: BTreeMap<String, Ingested>,
}

impl PayloadSink for ImportSink<'_> {
    fn payload(
        &mut self,
        _path: &str,
        sha256: &str,
        data: &mut dyn std::io::Read,
    ) -> Result<(), String> {
        let got =
            blob::ingest(self.store, self.master, data, &mut |_| {}).map_err(|e| e.to_string())?;
        self.got.insert(sha256.to_owned(), got);
        Ok(())
    }
}

impl ImportSink<'_> {
    fn discard(&self) {
        for g in self.got.values() {
            let _ = self.store.delete(&g.blob.name);
        }
    }
}

/// Verifies and imports a package into `case`: each item `received`, its conditions bound.
pub(crate) async fn import_package(
    node: &Node,
    actor: &Principal,
    file: &Path,
    trusted: Vec<ed25519_dalek::VerifyingKey>,
    sender_pinned: bool,
    case: &str,
    now: Timestamp,
) -> Result<(Verified, Vec<(u64, EvidenceRecord)>), Failure> {
    let (master, store) = vault(node)?;
    let file2 = file.to_owned();
    let (verified, got) = tokio::task::spawn_blocking(move || {
        let ours = master.recipient();
        let mut sink = ImportSink { store: &*store, master: &master, got: BTreeMap::new() };
        match verify_file(&file2, &trusted, Some(master.identity()), Some(&ours), &mut sink) {
            Ok(v) => Ok((v, sink.got)),
            Err(e) => {
                sink.discard();
                Err(e)
            }
        }
    })
    .await
    .map_err(|e| fail(Exit::Failed, e))??;
    let (_, store) = vault(node)?;
    let discard = |got: &BTreeMap<String, Ingested>| {
        for g in got.values() {
            let _ = store.delete(&g.blob.name);
        }
    };
    let m = &verified.manifest;
    // Trusted through the pins: the sender the package names must be the partner pinned with
    // the key that signed it.
    if sender_pinned
        && let Err(e) =
            crate::evidence_transfer::check_sender_pin(node, &m.sender.party, &m.sender.ed25519)
                .await
    {
        discard(&got);
        return Err(e);
    }
    let mut commands = Vec::new();
    for item in &m.items {
        let (Some(g), Some(conditions)) = (got.get(&item.sha256), item.conditions.clone()) else {
            discard(&got);
            return Err(fail(
                Exit::BadInput,
                format!("item {}: it travels without conditions; nothing was imported", item.id),
            ));
        };
        commands.push(entente_store::evidence::ReceiveEvidence {
            item: (ReceivedEvidence {
                id: item.id.clone(),
                case_id: case.to_owned(),
                sha256: item.sha256.clone(),
                size: item.size,
                category: item.category,
                media_type: item.media_type.clone(),
                description: item.description.clone(),
                file_name: item.file_name.clone(),
                source: item.source.clone(),
                collected_at: item.collected_at.clone(),
                blob: g.blob.clone(),
                from: m.sender.party.clone(),
                chain: item.custody.iter().map(|p| p.event.clone()).collect(),
                conditions,
                package_sha256: verified.manifest_sha256.clone(),
                request: m.request.clone(),
                request_kind: m.request_kind,
            }),
        });
    }
    let mut out = Vec::new();
    let mut used = std::collections::HashSet::new();
    let mut first_err = None;
    for c in commands {
        match node
            .gate
            .submit(actor.clone(), c, now)
            .await
            .map_err(Failure::from)
            .and_then(evidence_of)
        {
            Ok((i, r)) => {
                if !r.deduplicated {
                    used.insert(r.sha256.clone());
                }
                out.push((i, r));
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    for (sha, g) in &got {
        if !used.contains(sha) {
            let _ = store.delete(&g.blob.name);
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok((verified, out))
}

/// Destroys every received item whose retention limit has passed (crypto-shredding).
pub(crate) async fn run_retention(
    node: &Node,
    now: Timestamp,
) -> Result<Vec<(String, u64)>, Failure> {
    let (_, store) = vault(node)?;
    let mut out = Vec::new();
    for id in node.store.evidence_due_for_destruction(now).await? {
        let (index, rec) = evidence_of(
            node.gate
                .submit(
                    node.operator(),
                    entente_store::evidence::DestroyEvidence { id: id.clone() },
                    now,
                )
                .await?,
        )?;
        if let Some(name) = rec.shredded_blob {
            let _ = store.delete(&name);
        }
        out.push((id, index));
    }
    Ok(out)
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
            let spec = AddSpec {
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
                let (index, r) = add_file(&node, &actor, f, id.clone(), &spec, Timestamp::now())
                    .await
                    .map_err(|e| Failure {
                        code: e.code,
                        error: e.error.context(format!("{}", f.display())),
                    })?;
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
            let (index, _) = evidence_of(
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
        EvidenceCmd::Custody { item, data_dir, json } => {
            let node = Node::open(&data_dir).await?;
            let (index, r) = evidence_of(
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
            let spec = PackageSpec {
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
            let w = build_package(&node, &actor, &spec, &output, Timestamp::now()).await?;
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
                let sent = crate::evidence_transfer::send_package(
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
                verify_file(
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
            let trusted = if pinned {
                crate::evidence_transfer::pinned_keys(&node).await?
            } else {
                read_keys(&sender_key)?
            };
            let actor = user_actor(&node, &user).await?;
            let (v, items) =
                import_package(&node, &actor, &file, trusted, pinned, &case, Timestamp::now())
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
                    r.retain_until.as_deref().unwrap_or("no limit")
                );
            }
            Ok(())
        }
        EvidenceCmd::Recipient { data_dir } => {
            let node = Node::open(&data_dir).await?;
            let (master, _) = vault(&node)?;
            println!("{}", master.recipient());
            Ok(())
        }
        EvidenceCmd::PublicKey { data_dir } => {
            let node = Node::open(&data_dir).await?;
            print!(
                "{}",
                package::public_key_pem(&node.key.verifying_key())
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
    let (size, note, proofs) = prove_chain(node, std::slice::from_ref(r)).await?;
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
            r.retain_until.as_deref().unwrap_or("no limit")
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

#[cfg(test)]
#[path = "evidence_tests.rs"]
mod tests;

/// CPU time (user + system, all threads) this process has used, in seconds.
fn cpu_secs() -> f64 {
    // /proc/self/stat: fields 14 and 15 (utime, stime) in clock ticks of 1/100 s, after the
    // command name in parentheses.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (field(11) + field(12)) / 100.0
}

/// The load average of the machine (1, 5, 15 minutes), as `/proc/loadavg` gives it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn time_tool(program: &str, args: &[&std::ffi::OsStr]) -> Option<f64> {
    let start = std::time::Instant::now();
    let status = std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    status.success().then(|| start.elapsed().as_secs_f64())
}

/// `entente bench evidence`: see BENCHMARKS.md.
pub(crate) async fn bench(size_mib: u64, files: usize, file_size: usize) -> Result<(), Failure> {
    use std::io::Write as _;
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    let node = Node::init(
        &entente_node::InitOptions {
            data_dir: root.join("node"),
            party: "DE".parse()?,
            name: "benchmark node".into(),
            database_url: None,
            listen: ([127, 0, 0, 1], 0).into(),
            federation_listen: None,
        },
        Timestamp::now(),
    )
    .await?;
    let actor = crate::bench::bench_user(&node, entente_core::Role::Investigator).await?;
    node.gate
        .submit(
            actor.clone(),
            entente_store::cases::OpenCase {
                id: "BENCH".into(),
                title: "benchmark".into(),
                concepts: vec!["illegal-access".into()],
            },
            Timestamp::now(),
        )
        .await?;
    // A file of pseudo-random bytes (xorshift), written in 1 MiB blocks.
    let big = root.join("big.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&big)?);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..size_mib {
            for chunk in buf.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
            }
            f.write_all(&buf)?;
        }
        f.flush()?;
    }
    let bytes = (size_mib << 20) as f64;
    let mbs = |secs: f64| bytes / secs / 1e6;
    println!(
        "machine: {} cores, load average {} (1, 5, 15 min) at the start",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        load_average()
    );
    println!("ingest of one {size_mib} MiB file (page cache warm: each reader runs once before)");
    let _ = time_tool("cat", &[big.as_os_str()]);
    let openssl = time_tool("openssl", &["dgst".as_ref(), "-sha256".as_ref(), big.as_os_str()]);
    let sha256sum = time_tool("sha256sum", &[big.as_os_str()]);
    // The disk's bound for a durable write of that size: a copy synced to disk.
    let copy = root.join("copy.bin");
    let dd = time_tool(
        "dd",
        &[
            format!("if={}", big.display()).as_ref(),
            format!("of={}", copy.display()).as_ref(),
            "bs=1M".as_ref(),
            "conv=fsync".as_ref(),
        ],
    );
    let _ = std::fs::remove_file(&copy);
    let rss_before = peak_rss_mib();
    let spec = AddSpec {
        case: "BENCH".into(),
        description: "benchmark file".into(),
        category: DataCategory::Content,
        media_type: "application/octet-stream".into(),
        source: None,
        collected_at: None,
        reason: "benchmark".into(),
        legal_basis: None,
    };
    let start = std::time::Instant::now();
    let (_, r) = add_file(&node, &actor, &big, Some("big".into()), &spec, Timestamp::now()).await?;
    let ours = start.elapsed().as_secs_f64();
    let rss_after = peak_rss_mib();
    let out = root.join("case_file.json");
    let case_file =
        time_tool("case_file", &["--disable-mtime".as_ref(), out.as_os_str(), big.as_os_str()]);
    println!(
        "  {:<40} {:>8.2} s {:>9.0} MB/s",
        "entente evidence add (SHA-256 + age)",
        ours,
        mbs(ours)
    );
    for (name, t) in [
        ("openssl dgst -sha256", openssl),
        ("sha256sum", sha256sum),
        ("dd conv=fsync (durable copy: the disk)", dd),
        ("case_file (case-utils, 6 hashes)", case_file),
    ] {
        match t {
            Some(t) => println!(
                "  {:<40} {:>8.2} s {:>9.0} MB/s   entente/peer throughput {:.2}×",
                name,
                t,
                mbs(t),
                t / ours
            ),
            None => println!("  {name:<40} not run (not on PATH)"),
        }
    }
    println!(
        "  peak RSS of this process: {:.1} MiB before the ingest, {:.1} MiB after (content hash {}…)",
        rss_before.unwrap_or(0.0),
        rss_after.unwrap_or(0.0),
        &r.sha256[..16]
    );
    let _ = std::fs::remove_file(&big);

    println!("package and verify of {files} files of {file_size} bytes");
    let small = root.join("small");
    std::fs::create_dir_all(&small)?;
    let mut ids = Vec::with_capacity(files);
    let (start, cpu) = (std::time::Instant::now(), cpu_secs());
    let mut set = tokio::task::JoinSet::new();
    for i in 0..files {
        let p = small.join(format!("f{i}.bin"));
        let mut body = vec![0u8; file_size];
        body[..8].copy_from_slice(&(i as u64).to_le_bytes());
        std::fs::write(&p, body)?;
        let (node, actor) = (node.clone(), actor.clone());
        let spec = AddSpec { description: format!("small file {i}"), ..spec_clone(&spec) };
        set.spawn(async move {
            add_file(&node, &actor, &p, Some(format!("small-{i}")), &spec, Timestamp::now())
                .await
                .map(|(_, r)| r.id)
        });
    }
    while let Some(r) = set.join_next().await {
        ids.push(r.map_err(|e| fail(Exit::Failed, e))??);
    }
    let (added, added_cpu) = (start.elapsed().as_secs_f64(), cpu_secs() - cpu);
    let pkg = root.join("bench.tar");
    let spec = PackageSpec {
        items: ids,
        to: "NL".parse()?,
        recipient: None,
        request: "BENCH-REQ".into(),
        request_kind: Some(RequestKind::Production),
        purpose: Purpose::CriminalInvestigation,
        retain_until: None,
    };
    let (start, cpu) = (std::time::Instant::now(), cpu_secs());
    build_package(&node, &actor, &spec, &pkg, Timestamp::now()).await?;
    let (packaged, packaged_cpu) = (start.elapsed().as_secs_f64(), cpu_secs() - cpu);
    let key = node.key.verifying_key();
    let (start, cpu) = (std::time::Instant::now(), cpu_secs());
    let v = verify_file(&pkg, &[key], None, None, &mut package::Discard)?;
    let (verified, verified_cpu) = (start.elapsed().as_secs_f64(), cpu_secs() - cpu);
    let n = files as f64;
    // Wall time, and the CPU time this process used (all threads): on a shared machine the
    // second shows what the work costs when other processes take the cores.
    for (name, wall, cpu) in [
        ("add (ingest + gate)", added, added_cpu),
        ("package (export through the gate + write)", packaged, packaged_cpu),
        ("verify", verified, verified_cpu),
    ] {
        println!("  {name:<42} {wall:>6.2} s {:>7.0} files/s   CPU {cpu:.2} s", n / wall);
    }
    println!("  ({} custody events proven by verify)", v.proven_events);
    Ok(())
}

fn spec_clone(s: &AddSpec) -> AddSpec {
    AddSpec {
        case: s.case.clone(),
        description: s.description.clone(),
        category: s.category,
        media_type: s.media_type.clone(),
        source: s.source.clone(),
        collected_at: s.collected_at.clone(),
        reason: s.reason.clone(),
        legal_basis: s.legal_basis.clone(),
    }
}
