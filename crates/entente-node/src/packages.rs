//! Evidence packages, as a capability of the node: taking files in as evidence, releasing
//! items through the gate into a signed package (encrypted to the recipient when addressed),
//! proving their custody events against the ledger, verifying and importing a partner's
//! package, offering one to a pinned partner over the federation, and retention.
//!
//! Every function takes the [`Node`] and the [`Principal`] acting; everything that changes
//! state or releases data goes through the gate. Errors are [`PackagesError`]: bad input,
//! a denial (with its ledger index and decision), a gate error, or a failure of the node.

use crate::Node;
use crate::transfer;
use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use entente_core::{CaseId, Decision, ItemId, PartyCode, RequestId};
use entente_evidence::blob;
use entente_evidence::keys::{self, MasterKey};
use entente_evidence::package::{
    self, BuildInput, LedgerProof, PackageItem, PayloadSink, ProvenEvent, RecipientInfo,
    SenderInfo, Verified, VerifyOptions, Written,
};
use entente_evidence::{BlobStore, Ingested};
use entente_policy::agreement::{DataCategory, Purpose, RequestKind};
use entente_store::{
    EvidenceRecord, GateError, NewEvidence, Principal, ReceivedEvidence, StoreError, Verdict,
};
use entente_wire::PackageOffer;
use jiff::Timestamp;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// What went wrong with a package operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackagesError {
    /// The input was wrong: a file, an argument, an item, a package that names an unpinned
    /// sender. Nothing was changed.
    #[error("{0}")]
    BadInput(String),
    /// The gate denied the action; the denial is its ledger entry `index`.
    #[error("{}denied by {} (ledger entry {index}): {}", .action, .decision.rules.join(", "), .decision.reason)]
    Denied {
        /// What was denied, as the start of the message (`sending the package to NL was `), or
        /// empty.
        action: String,
        /// The ledger entry recording the denial.
        index: u64,
        /// The decision (boxed: the error stays small on the happy path).
        decision: Box<Decision>,
    },
    /// The gate refused the command (invalid, conflict, not found) or failed.
    #[error(transparent)]
    Gate(#[from] GateError),
    /// The error of one item of several.
    #[error("evidence {id}")]
    Item {
        /// The item.
        id: String,
        /// Its error.
        #[source]
        source: Box<PackagesError>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node could not do its part (I/O, a package that does not verify, a task that
    /// failed).
    #[error("{0}")]
    Failed(String),
}

fn failed(e: impl std::fmt::Display) -> PackagesError {
    PackagesError::Failed(e.to_string())
}

fn bad_input(e: impl std::fmt::Display) -> PackagesError {
    PackagesError::BadInput(e.to_string())
}

fn evidence_of(v: Verdict<EvidenceRecord>) -> Result<(u64, EvidenceRecord), PackagesError> {
    match v {
        Verdict::Permitted { index, output: r, .. } => Ok((index, r)),
        Verdict::Denied { index, decision } => Err(PackagesError::Denied {
            action: String::new(),
            index,
            decision: Box::new(decision),
        }),
    }
}

/// The node's master key and blob store (the local blob directory, or the object store of
/// `[evidence.store]`).
///
/// # Errors
/// The vault cannot be opened ([`Node::vault`]).
pub fn vault(node: &Node) -> Result<(Arc<MasterKey>, Arc<dyn BlobStore>), PackagesError> {
    let v = node.vault().map_err(failed)?;
    Ok((v.master, v.store))
}

/// What [`add_file`] records about a file besides its content.
#[derive(Clone, Debug)]
pub struct AddSpec {
    /// The case the item is bound to.
    pub case: CaseId,
    /// What the file is.
    pub description: String,
    /// Its data category.
    pub category: DataCategory,
    /// Its media type.
    pub media_type: String,
    /// Where it came from.
    pub source: Option<String>,
    /// When it was collected (RFC 3339).
    pub collected_at: Option<String>,
    /// Why it is acquired.
    pub reason: String,
    /// The legal basis (request or agreement id).
    pub legal_basis: Option<String>,
}

/// Ingests one file and records it through the gate (custody event `acquired`). Nothing stays
/// in the blob store if the gate refuses; a content already held keeps its blob
/// (de-duplication). `progress` is told the bytes read so far.
///
/// # Errors
/// An unreadable file or one that changes while read (bad input), a denial, a gate or vault
/// failure.
pub async fn add_file(
    node: &Node,
    actor: &Principal,
    path: &Path,
    id: Option<ItemId>,
    spec: &AddSpec,
    now: Timestamp,
    mut progress: impl FnMut(u64) + Send + 'static,
) -> Result<(u64, EvidenceRecord), PackagesError> {
    let (master, store) = vault(node)?;
    let p = path.to_owned();
    let store2 = store.clone();
    let got: Ingested = tokio::task::spawn_blocking(move || {
        blob::ingest_file(&*store2, &master, &p, &mut |n, _| progress(n))
    })
    .await
    .map_err(failed)?
    .map_err(|e| match e {
        entente_evidence::EvidenceError::Io { .. }
        | entente_evidence::EvidenceError::NotAFile { .. }
        | entente_evidence::EvidenceError::FileChanged { .. } => bad_input(e),
        _ => failed(e),
    })?;
    // The default id is the case's and the content's: one that does not parse (a case id too
    // long to take the suffix) is refused like any other invalid id, and the blob goes.
    let id = match id {
        Some(id) => id,
        None => match format!("{}-{}", spec.case, &got.sha256[..12]).parse::<ItemId>() {
            Ok(id) => id,
            Err(e) => {
                let _ = store.delete(&got.blob.name);
                return Err(GateError::Invalid(e.to_string()).into());
            }
        },
    };
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

/// The ledger proofs of the events of `records` this node recorded, against the head
/// checkpoint: its size, its signed note, and the proof of each ledger index.
///
/// # Errors
/// The ledger has no checkpoint, an entry or hash is missing, the store fails.
pub async fn prove_chain(
    node: &Node,
    records: &[EvidenceRecord],
) -> Result<(u64, Vec<u8>, HashMap<u64, LedgerProof>), PackagesError> {
    let (size, note) = node.store.ledger_head().await?;
    let note = note.ok_or_else(|| failed("the ledger has no checkpoint"))?;
    let indexes: std::collections::BTreeSet<u64> =
        records.iter().flat_map(|r| r.chain.iter().filter_map(|e| e.ledger_index)).collect();
    let mut needed = Vec::new();
    let mut per = Vec::new();
    for &i in &indexes {
        let ix = entente_core::ledger::inclusion_proof_indexes(size, i).map_err(failed)?;
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
        let proof = entente_core::ledger::prove_inclusion(size, i, &map).map_err(failed)?;
        let entry =
            entries.get(&i).ok_or_else(|| failed(format!("ledger entry {i} is missing")))?;
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
#[derive(Clone, Debug)]
pub struct PackageSpec {
    /// The items released.
    pub items: Vec<ItemId>,
    /// The receiving party.
    pub to: PartyCode,
    /// The receiving node's age recipient; the package is not encrypted without one.
    pub recipient: Option<String>,
    /// The request answered.
    pub request: RequestId,
    /// Its kind, if the request is not held by this node.
    pub request_kind: Option<RequestKind>,
    /// The purpose the receiver uses it for.
    pub purpose: Purpose,
    /// A retention limit imposed on the receiver (RFC 3339).
    pub retain_until: Option<String>,
}

/// Releases the items through the gate (each `exported`, decided by the agreements) and
/// writes the package, signed with the node's key, to `out` (through a temporary file beside
/// it).
///
/// # Errors
/// No items or an unreadable recipient (bad input), an item refused or denied (as
/// [`PackagesError::Item`]), a package that cannot be written.
pub async fn build_package(
    node: &Node,
    actor: &Principal,
    spec: &PackageSpec,
    out: &Path,
    now: Timestamp,
) -> Result<Written, PackagesError> {
    let recipient = match &spec.recipient {
        Some(r) => Some((
            RecipientInfo { party: spec.to.clone(), age: r.trim().to_owned() },
            keys::parse_recipient(r).map_err(|e| bad_input(format!("--recipient: {e}")))?,
        )),
        None => None,
    };
    if spec.items.is_empty() {
        return Err(bad_input("no items to package"));
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
        let (n, v) = r.map_err(failed)?;
        match v.map_err(PackagesError::from).and_then(evidence_of) {
            Ok((_, rec)) => records[n] = Some(rec),
            Err(e) => problems.push((spec.items[n].clone(), e)),
        }
    }
    if let Some((id, e)) = problems.into_iter().next() {
        return Err(PackagesError::Item { id: id.into(), source: Box::new(e) });
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
        request: Some(spec.request.to_string()),
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
    let to = spec.to.clone();
    let exported: Vec<(String, Option<u64>)> = input
        .items
        .iter()
        .map(|i| (i.id.clone(), i.custody.last().and_then(|e| e.ledger.as_ref()).map(|l| l.index)))
        .collect();
    // The error, and the item whose stored content failed its hash or could not be read.
    type Failure = Box<(PackagesError, Option<(String, String)>)>;
    let result = tokio::task::spawn_blocking(move || -> Result<Written, Failure> {
        let input = BuildInput { key: &key, ..input };
        let tmp = out.with_extension("part");
        let mut f = std::fs::File::create(&tmp).map_err(|e| {
            Box::new((bad_input(format!("cannot create {}: {e}", tmp.display())), None))
        })?;
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
                let damaged = match &e {
                    package::PackageError::Item { item, detail } => {
                        Some((item.clone(), detail.clone()))
                    }
                    package::PackageError::Sink { detail, .. }
                        if detail.starts_with("cannot read the content of item") =>
                    {
                        detail
                            .trim_start_matches("cannot read the content of item ")
                            .split_once(':')
                            .map(|(id, why)| (id.to_owned(), why.trim().to_owned()))
                    }
                    _ => None,
                };
                return Err(Box::new((failed(e), damaged)));
            }
        };
        std::fs::rename(&tmp, &out).map_err(|e| {
            Box::new((failed(format!("cannot write {}: {e}", out.display())), None))
        })?;
        Ok(written)
    })
    .await
    .map_err(failed)?;
    match result.map_err(|b| *b) {
        Ok(w) => Ok(w),
        Err((e, None)) => Err(e),
        Err((e, Some((item, detail)))) => {
            Err(record_damage(node, actor, &to, &exported, &item, &detail, e, now).await)
        }
    }
}

/// A package was not written because an item's stored content failed its hash (or could not
/// be read) after its export was recorded: the failed integrity check is recorded on the
/// item's custody chain (`verified`, with the finding and the export entry it voids) and
/// raised as an alarm, so that the chain never shows a package that was not sent.
#[expect(clippy::too_many_arguments, reason = "one call site; the facts of one failure")]
async fn record_damage(
    node: &Node,
    actor: &Principal,
    to: &PartyCode,
    exported: &[(String, Option<u64>)],
    item: &str,
    detail: &str,
    error: PackagesError,
    now: Timestamp,
) -> PackagesError {
    let entry = exported.iter().find(|(id, _)| id == item).and_then(|(_, i)| *i);
    tracing::error!(%item, %detail, "integrity alarm: evidence content does not match its recorded hash; the package was not written");
    let Ok(id) = item.parse() else { return error };
    let reason = format!(
        "integrity check failed while packaging for {to}: {detail}; the export{} was aborted and no package was written",
        entry.map(|i| format!(" recorded at ledger entry {i}")).unwrap_or_default()
    );
    let command = entente_store::evidence::EvidenceCustody {
        id,
        event: entente_evidence::CustodyKind::Verified,
        reason,
        legal_basis: None,
    };
    match node.gate.submit(actor.clone(), command, now).await {
        Ok(Verdict::Permitted { index, .. }) => PackagesError::Failed(format!(
            "{error}; the failed integrity check is recorded on the item's custody chain (ledger entry {index})"
        )),
        Ok(Verdict::Denied { index, decision }) => PackagesError::Failed(format!(
            "{error}; recording the failed integrity check was denied (entry {index}): {}",
            decision.reason
        )),
        Err(e) => PackagesError::Failed(format!(
            "{error}; the failed integrity check could not be recorded: {e}"
        )),
    }
}

/// Verifies a package file (blocking): every hash, the signature under one of `trusted`,
/// every custody event and its ledger inclusion proof; opened with `identity` when encrypted,
/// checked to be addressed to `our_recipient` when given. Payloads go to `sink`.
///
/// # Errors
/// A file that cannot be read (bad input), a package that does not verify (failure).
pub fn verify_file(
    file: &Path,
    trusted: &[ed25519_dalek::VerifyingKey],
    identity: Option<&age::x25519::Identity>,
    our_recipient: Option<&str>,
    sink: &mut dyn PayloadSink,
) -> Result<Verified, PackagesError> {
    let meta =
        std::fs::metadata(file).map_err(|e| bad_input(format!("{}: {e}", file.display())))?;
    if !meta.is_file() {
        return Err(bad_input(format!("{}: not a regular file", file.display())));
    }
    let mut f =
        std::fs::File::open(file).map_err(|e| bad_input(format!("{}: {e}", file.display())))?;
    let opts = VerifyOptions { trusted, identity, our_recipient };
    package::verify(&mut f, &opts, sink)
        .map_err(|e| failed(format!("{}: verification FAILED: {e}", file.display())))
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
/// With `sender_pinned`, the sender the package names must be the partner pinned with the
/// key that signed it ([`check_sender_pin`]).
///
/// # Errors
/// As [`verify_file`]; an unpinned sender or an item without conditions (bad input); the
/// first item refused or denied. Nothing received stays in the blob store on failure.
pub async fn import_package(
    node: &Node,
    actor: &Principal,
    file: &Path,
    trusted: Vec<ed25519_dalek::VerifyingKey>,
    sender_pinned: bool,
    case: &str,
    now: Timestamp,
) -> Result<(Verified, Vec<(u64, EvidenceRecord)>), PackagesError> {
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
    .map_err(failed)??;
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
        && let Err(e) = check_sender_pin(node, &m.sender.party, &m.sender.ed25519).await
    {
        discard(&got);
        return Err(e);
    }
    let mut commands = Vec::new();
    for item in &m.items {
        let (Some(g), Some(conditions)) = (got.get(&item.sha256), item.conditions.clone()) else {
            discard(&got);
            return Err(bad_input(format!(
                "item {}: it travels without conditions; nothing was imported",
                item.id
            )));
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
            .map_err(PackagesError::from)
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

/// Destroys every received item whose retention limit has passed (crypto-shredding), as the
/// operator; returns each item with the ledger index of its destruction.
///
/// # Errors
/// A denial, a gate, store or vault failure.
pub async fn run_retention(
    node: &Node,
    now: Timestamp,
) -> Result<Vec<(String, u64)>, PackagesError> {
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
        out.push((id.into(), index));
    }
    Ok(out)
}

/// What [`send_package`] offered.
#[derive(Debug)]
pub struct Sent {
    /// The package file's SHA-256 (hex).
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// The ledger entry of the offer (`package.send`).
    pub index: u64,
}

/// Offers the package file `file` (written by this node for `to`, with these items) to the
/// pinned partner `to` (`package.send`): staged in `packages/outgoing/`, the offer recorded
/// and sent through the outbox; the partner's node fetches it.
///
/// # Errors
/// `to` not pinned or an item whose latest custody event is not `exported` (bad input), a
/// denial, a gate, store or file failure.
pub async fn send_package(
    node: &Node,
    actor: &Principal,
    file: &Path,
    to: &PartyCode,
    items: &[ItemId],
    request: Option<RequestId>,
    manifest_sha256: &str,
) -> Result<Sent, PackagesError> {
    let items: Vec<String> = items.iter().map(ToString::to_string).collect();
    let request = request.map(String::from);
    if node.store.peer(to).await?.is_none() {
        return Err(bad_input(format!(
            "--to {to}: no partner node is pinned for it (entente peer add)"
        )));
    }
    let exports = node.store.latest_exports(&items).await?;
    let mut named = Vec::with_capacity(exports.len());
    for (item, digest) in exports {
        let digest = digest.ok_or_else(|| {
            bad_input(format!("evidence {item}: its latest custody event is not `exported`"))
        })?;
        named.push((item, digest));
    }
    let data_dir = node.data_dir.clone();
    let src = file.to_owned();
    let (sha256, size, staged) =
        tokio::task::spawn_blocking(move || transfer::stage_outgoing(&data_dir, &src))
            .await
            .map_err(failed)?
            .map_err(failed)?;
    let file_name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("{sha256}.pkg"));
    let offer = PackageOffer {
        sha256: sha256.clone(),
        size,
        file_name,
        manifest_sha256: manifest_sha256.to_owned(),
        request,
        items,
    };
    let command = entente_store::packages::SendPackage { to: to.clone(), offer, exports: named };
    let result = node.gate.submit(actor.clone(), command, Timestamp::now()).await;
    let keep = matches!(&result, Ok(Verdict::Permitted { .. }))
        || node.store.package_out(to, &sha256).await.ok().flatten().is_some();
    if !keep {
        let _ = std::fs::remove_file(&staged);
    }
    match result? {
        Verdict::Permitted { index, .. } => Ok(Sent { sha256, size, index }),
        Verdict::Denied { index, decision } => Err(PackagesError::Denied {
            action: format!("sending the package to {to} was "),
            index,
            decision: Box::new(decision),
        }),
    }
}

/// The Ed25519 keys of the pinned partners (trusted signers of packages they sent).
///
/// # Errors
/// A stored key that is not an Ed25519 key, a store failure.
pub async fn pinned_keys(node: &Node) -> Result<Vec<ed25519_dalek::VerifyingKey>, PackagesError> {
    let mut keys = Vec::new();
    for p in node.store.peers().await? {
        let bytes: [u8; 32] = hex::decode(&p.signing_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| failed(format!("the stored key of peer {} is not 32 bytes", p.party)))?;
        keys.push(
            ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                .map_err(|e| failed(format!("the stored key of peer {}: {e}", p.party)))?,
        );
    }
    Ok(keys)
}

/// Checks that the party a package names as its sender is the partner pinned with the key
/// that signed it (`ed25519_b64`, the manifest's sender key).
///
/// # Errors
/// The party is not pinned, or pinned with another key (bad input); a store failure.
pub async fn check_sender_pin(
    node: &Node,
    party: &PartyCode,
    ed25519_b64: &str,
) -> Result<(), PackagesError> {
    let peer = node.store.peer(party).await?.ok_or_else(|| {
        bad_input(format!("the package names {party} as its sender, which is not a pinned partner"))
    })?;
    let key = BASE64_STANDARD.decode(ed25519_b64).map(hex::encode).unwrap_or_default();
    if key != peer.signing_key {
        return Err(bad_input(format!(
            "the package names {party} as its sender but is signed with another key than the one pinned for {party}; nothing was imported"
        )));
    }
    Ok(())
}

#[cfg(test)]
#[path = "packages_tests.rs"]
mod tests;
