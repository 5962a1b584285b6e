//! Running a node for years: consistent online backups, restores that verify before they
//! report success, and the sweep of crash leftovers in the blob store (`docs/operations.md`).
//!
//! - [`backup`] copies a data directory to a new backup directory while the node may be
//!   serving: the SQLite database by `VACUUM INTO` over the live pool (a consistent snapshot),
//!   then the blob store, the keys, the configuration (its database and blob paths made
//!   relative to the backup) and every other file of the data directory, and a
//!   [`Manifest`] naming the node, the ledger size and root the snapshot holds, and each
//!   file's size and SHA-256. The backup is recorded through the gate (`node.backup`, the
//!   subject the manifest's digest). It is built beside its target and renamed at the end.
//! - [`restore`] refuses a non-empty target, a manifest of another format, a missing or
//!   altered file (named); copies into a directory beside the target, opens the node there,
//!   verifies its ledger and checks the root against the manifest, and renames it into place
//!   only then.
//! - [`sweep`] removes temporary blob parts (`tmp/*.part`) and blobs that no committed row
//!   names, untouched for longer than the grace period, and records what it removed
//!   (`maintenance.sweep`: counts and bytes).
//! - [`scrub`] decrypts and hashes every evidence blob again, rate-limited, names each damaged
//!   one with its items, and records the scrub (`maintenance.scrub`).

use crate::config::{CONFIG_FILE, NodeConfig};
use crate::identity::{DB_FILE, Node, NodeError};
use entente_core::digest::Sha256;
use entente_store::{Backend, Verdict};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use std::io::{Read as _, Write as _};
use std::path::{Component, Path, PathBuf};

/// The format of the backups this version writes and restores.
pub const BACKUP_FORMAT: &str = "entente-backup/1";
/// The manifest's file name inside a backup directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// What the manifest says about the keys.
pub const KEY_PROTECTION: &str = "the node's private keys (node.key.pem: Ed25519 signing and TLS key; node.age.key: the age master key that wraps every blob's data key) are copied as they are, unencrypted, with mode 0600: whoever reads this backup can act as the node and decrypt its evidence. Protect the backup directory like the data directory (an encrypted volume, access for the node's operators only).";

/// Files of a data directory that a backup never copies as they are: the live database
/// (copied by snapshot), its journals, and the process lock.
const SKIPPED: &[&str] =
    &[DB_FILE, "entente.sqlite-wal", "entente.sqlite-shm", entente_store::LOCK_FILE];

/// The manifest of a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`BACKUP_FORMAT`].
    pub format: String,
    /// The Entente version that wrote it.
    pub entente_version: String,
    /// When it was taken.
    pub created_at: entente_core::Stamp,
    /// The node.
    pub node: ManifestNode,
    /// The database.
    pub database: ManifestDatabase,
    /// Where the blobs are: `local` (copied under the configured blob directory) or `s3`
    /// (not copied: the bucket is backed up by the object store's own means).
    pub blob_store: String,
    /// The ledger the backup holds.
    pub ledger: ManifestLedger,
    /// How the key material is protected ([`KEY_PROTECTION`]).
    pub key_protection: String,
    /// Every file, with its size and SHA-256.
    pub files: Vec<ManifestFile>,
}

/// The node a backup is of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestNode {
    /// Its party.
    pub party: String,
    /// Its authority's name.
    pub name: String,
    /// Its ledger origin.
    pub origin: String,
}

/// The database of a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestDatabase {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// The SQLite snapshot's file in the backup; none for PostgreSQL (`pg_dump`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// The ledger at backup time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestLedger {
    /// Entries.
    pub size: u64,
    /// Root hash (base64), as `entente ledger verify` prints it.
    pub root: String,
}

/// One file of a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// Its path relative to the backup directory, `/`-separated.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// A maintenance operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MaintenanceError {
    /// The input is wrong (a target that is not empty, an incomplete backup): nothing was
    /// changed.
    #[error("{0}")]
    BadInput(String),
    /// A check failed or the node could not do its part: nothing was left half-done.
    #[error("{0}")]
    Failed(String),
    /// Opening the node failed.
    #[error(transparent)]
    Node(#[from] NodeError),
}

fn failed(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> MaintenanceError {
    let msg = format!("{what} {}", path.display());
    move |e| MaintenanceError::Failed(format!("{msg}: {e}"))
}

/// What a backup wrote.
#[derive(Clone, Debug)]
pub struct BackupReport {
    /// The backup directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// SHA-256 of the manifest file (the subject of the `node.backup` entry).
    pub manifest_sha256: Sha256,
    /// The ledger entry recording it.
    pub ledger_index: u64,
    /// For PostgreSQL: how to dump the database beside this backup.
    pub pg_dump: Option<String>,
}

/// Copies `from` to `to` (created new), fsynced, and returns its size and SHA-256.
fn copy_hashed(from: &Path, to: &Path) -> Result<(u64, String), MaintenanceError> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(failed("cannot create", parent))?;
    }
    let mut src = std::fs::File::open(from).map_err(failed("cannot read", from))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let mode = src.metadata().map(|m| m.permissions().mode() & 0o777).unwrap_or(0o600);
        opts.mode(mode);
    }
    let mut dst = opts.open(to).map_err(failed("cannot create", to))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = src.read(&mut buf).map_err(failed("cannot read", from))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        dst.write_all(&buf[..n]).map_err(failed("cannot write", to))?;
        size += n as u64;
    }
    dst.sync_all().map_err(failed("cannot sync", to))?;
    Ok((size, hex::encode(hasher.finalize())))
}

fn hash_file(path: &Path) -> Result<(u64, String), std::io::Error> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// Regular files under `dir`, as paths relative to it, sorted.
fn walk(dir: &Path) -> Result<Vec<PathBuf>, MaintenanceError> {
    fn go(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<(), MaintenanceError> {
        let here = root.join(rel);
        let entries = std::fs::read_dir(&here).map_err(failed("cannot read", &here))?;
        for e in entries {
            let e = e.map_err(failed("cannot read", &here))?;
            let ty = e.file_type().map_err(failed("cannot read", &e.path()))?;
            let rel = rel.join(e.file_name());
            if ty.is_dir() {
                go(root, &rel, out)?;
            } else if ty.is_file() {
                out.push(rel);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    go(dir, Path::new(""), &mut out)?;
    out.sort();
    Ok(out)
}

fn slash_path(rel: &Path) -> Option<String> {
    let parts: Option<Vec<&str>> = rel
        .components()
        .map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect();
    parts.map(|p| p.join("/"))
}

/// A manifest path as a safe relative path (no `..`, not absolute, no empty part).
fn safe_relative(path: &str) -> Option<PathBuf> {
    if path.is_empty() || path.starts_with('/') || path.contains('\\') {
        return None;
    }
    let mut out = PathBuf::new();
    for part in path.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return None;
        }
        out.push(part);
    }
    Some(out)
}

/// A directory that does not exist or is empty.
fn is_empty_or_missing(dir: &Path) -> Result<bool, MaintenanceError> {
    match std::fs::read_dir(dir) {
        Ok(mut it) => Ok(it.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Ok(false),
        Err(e) => Err(MaintenanceError::Failed(format!("cannot read {}: {e}", dir.display()))),
    }
}

/// A fresh directory beside `target` for staging (removed again if anything fails).
fn staging_beside(target: &Path, what: &str) -> Result<PathBuf, MaintenanceError> {
    let abs = std::path::absolute(target).map_err(failed("cannot resolve", target))?;
    let parent = abs.parent().ok_or_else(|| {
        MaintenanceError::BadInput(format!("{} has no parent directory", abs.display()))
    })?;
    if !parent.is_dir() {
        return Err(MaintenanceError::BadInput(format!(
            "{}: the parent directory {} does not exist",
            target.display(),
            parent.display()
        )));
    }
    let name = abs.file_name().and_then(|n| n.to_str()).unwrap_or("entente");
    let suffix = crate::identity::random_hex(6)?;
    let staging = parent.join(format!(".{name}.{what}-{suffix}"));
    std::fs::create_dir(&staging).map_err(failed("cannot create", &staging))?;
    Ok(staging)
}

/// Moves a finished staging directory to `target` (an empty target directory is replaced).
fn move_into_place(staging: &Path, target: &Path) -> Result<(), MaintenanceError> {
    if target.is_dir() {
        std::fs::remove_dir(target)
            .map_err(failed("cannot replace the empty directory", target))?;
    }
    std::fs::rename(staging, target).map_err(|e| {
        MaintenanceError::Failed(format!(
            "cannot move {} to {}: {e}",
            staging.display(),
            target.display()
        ))
    })?;
    if let Some(parent) = std::path::absolute(target).ok().as_deref().and_then(Path::parent) {
        let _ = std::fs::File::open(parent).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// Takes a backup of `node` into `to` (which must not exist, or be empty), and records it.
///
/// # Errors
/// A target that is not empty ([`MaintenanceError::BadInput`]); a database, file system or
/// gate failure. On any failure nothing is left at `to`.
pub async fn backup(
    node: &Node,
    to: &Path,
    now: Timestamp,
) -> Result<BackupReport, MaintenanceError> {
    if !is_empty_or_missing(to)? {
        return Err(MaintenanceError::BadInput(format!(
            "backup target {} exists and is not empty; choose a new directory",
            to.display()
        )));
    }
    let inside = std::path::absolute(to)
        .ok()
        .zip(std::path::absolute(&node.data_dir).ok())
        .is_some_and(|(t, d)| t.starts_with(&d));
    if inside {
        return Err(MaintenanceError::BadInput(format!(
            "backup target {} is inside the data directory {}; choose a directory outside it",
            to.display(),
            node.data_dir.display()
        )));
    }
    let staging = staging_beside(to, "backup")?;
    let result = backup_into(node, &staging, to, now).await;
    match result {
        Ok(mut report) => {
            if let Err(e) = move_into_place(&staging, to) {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e);
            }
            report.dir = to.to_owned();
            // Recorded once it is in place; a backup that cannot be recorded is removed.
            match record_backup(node, &report.manifest, &report.manifest_sha256, now).await {
                Ok(index) => {
                    report.ledger_index = index;
                    Ok(report)
                }
                Err(e) => {
                    let _ = std::fs::remove_dir_all(to);
                    Err(e)
                }
            }
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

async fn backup_into(
    node: &Node,
    staging: &Path,
    target: &Path,
    now: Timestamp,
) -> Result<BackupReport, MaintenanceError> {
    let data_dir = &node.data_dir;
    let backend = node.store.backend();
    let mut files = Vec::new();
    // 1. The database first: every blob a row of the snapshot names is already committed
    //    (a blob is renamed into place before its row commits), so copying the blobs after
    //    the snapshot leaves none out.
    let (ledger, database, pg_dump) = match backend {
        Backend::Sqlite => {
            let snap = staging.join(DB_FILE);
            node.store.sqlite_snapshot(&snap).await.map_err(|e| {
                MaintenanceError::Failed(format!("cannot snapshot the database: {e}"))
            })?;
            let ledger = snapshot_ledger(node, &snap).await?;
            let (size, sha256) = hash_file(&snap)
                .map_err(|e| MaintenanceError::Failed(format!("{}: {e}", snap.display())))?;
            files.push(ManifestFile { path: DB_FILE.to_owned(), size, sha256 });
            (
                ledger,
                ManifestDatabase { backend: "sqlite".into(), file: Some(DB_FILE.into()) },
                None,
            )
        }
        Backend::Postgres => {
            let (size, note) = node.store.ledger_head().await.map_err(NodeError::from)?;
            let root = checkpoint_root(node, note.as_deref(), size)?;
            let guidance = format!(
                "the database is PostgreSQL and is not in this backup: dump it now with `pg_dump --format=custom --file {}/entente.pgdump \"$DATABASE_URL\"` (a dump taken after this backup holds at least its {size} entries); to restore, `pg_restore` it into the database the configuration names, then run `entente restore`, which checks the ledger against this backup's root",
                target.display()
            );
            (
                ManifestLedger { size, root },
                ManifestDatabase { backend: "postgres".into(), file: None },
                Some(guidance),
            )
        }
    };
    // 2. The configuration, its database and blob paths relative to the backup.
    let mut config = node.config.clone();
    if backend == Backend::Sqlite {
        config.database_url = crate::config::default_sqlite_url();
    }
    let local_blobs = config.evidence.store.is_none();
    let blob_src = node.blob_dir();
    if local_blobs {
        config.blob_dir = PathBuf::from("blobs");
    }
    let text = config.to_toml().map_err(|e| MaintenanceError::Failed(e.to_string()))?;
    write_file(&staging.join(CONFIG_FILE), text.as_bytes())?;
    files.push(ManifestFile {
        path: CONFIG_FILE.into(),
        size: text.len() as u64,
        sha256: hex::encode(sha2::Sha256::digest(text.as_bytes())),
    });
    // 3. Every other file of the data directory (keys, certificate, agreements, witness
    //    notes, packages), then the blob store, temporary parts apart.
    let blob_inside = std::path::absolute(&blob_src)
        .ok()
        .zip(std::path::absolute(data_dir).ok())
        .and_then(|(b, d)| b.strip_prefix(&d).ok().map(Path::to_owned));
    for rel in walk(data_dir)? {
        let top = rel.components().next().and_then(|c| c.as_os_str().to_str()).unwrap_or("");
        if rel.components().count() == 1 && (SKIPPED.contains(&top) || top == CONFIG_FILE) {
            continue;
        }
        if blob_inside.as_ref().is_some_and(|b| !b.as_os_str().is_empty() && rel.starts_with(b)) {
            continue; // copied below, under `blobs/`
        }
        let Some(path) = slash_path(&rel) else { continue };
        let (size, sha256) = copy_hashed(&data_dir.join(&rel), &staging.join(&rel))?;
        files.push(ManifestFile { path, size, sha256 });
    }
    if local_blobs && blob_src.is_dir() {
        for rel in walk(&blob_src)? {
            if rel.starts_with("tmp") {
                continue;
            }
            let dest = Path::new("blobs").join(&rel);
            let Some(path) = slash_path(&dest) else { continue };
            let (size, sha256) = copy_hashed(&blob_src.join(&rel), &staging.join(&dest))?;
            files.push(ManifestFile { path, size, sha256 });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let manifest = Manifest {
        format: BACKUP_FORMAT.into(),
        entente_version: env!("CARGO_PKG_VERSION").into(),
        created_at: entente_core::Stamp::new(now),

        node: ManifestNode {
            party: node.config.party.to_string(),
            name: node.config.name.clone(),
            origin: node.gate.origin().to_owned(),
        },
        database,
        blob_store: if local_blobs { "local".into() } else { "s3".into() },
        ledger,
        key_protection: KEY_PROTECTION.into(),
        files,
    };
    let mut bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| MaintenanceError::Failed(format!("cannot encode the manifest: {e}")))?;
    bytes.push(b'\n');
    write_file(&staging.join(MANIFEST_FILE), &bytes)?;
    sync_dir(staging);
    let manifest_sha256 = Sha256::of(&bytes);
    Ok(BackupReport {
        dir: staging.to_owned(),
        manifest,
        manifest_sha256,
        ledger_index: 0,
        pg_dump,
    })
}

/// Records a backup that is in place: `node.backup`, the subject the manifest's digest.
async fn record_backup(
    node: &Node,
    manifest: &Manifest,
    manifest_sha256: &Sha256,
    now: Timestamp,
) -> Result<u64, MaintenanceError> {
    let verdict = node
        .gate
        .submit(
            node.operator(),
            entente_store::maintenance::RecordBackup {
                manifest_sha256: *manifest_sha256,
                ledger_size: manifest.ledger.size,
                ledger_root: manifest.ledger.root.clone(),
                files: manifest.files.len() as u64,
                bytes: manifest.files.iter().map(|f| f.size).sum(),
            },
            now,
        )
        .await
        .map_err(NodeError::from)?;
    match verdict {
        Verdict::Permitted { index, .. } => Ok(index),
        Verdict::Denied { index, decision } => Err(MaintenanceError::Failed(format!(
            "recording the backup was denied (ledger entry {index}): {}",
            decision.reason
        ))),
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), MaintenanceError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(failed("cannot create", path))?;
    f.write_all(bytes).map_err(failed("cannot write", path))?;
    f.sync_all().map_err(failed("cannot sync", path))
}

fn sync_dir(dir: &Path) {
    let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
}

fn checkpoint_root(
    node: &Node,
    note: Option<&[u8]>,
    size: u64,
) -> Result<String, MaintenanceError> {
    let note =
        note.ok_or_else(|| MaintenanceError::Failed("the ledger has no checkpoint".into()))?;
    let cp = entente_core::ledger::verify_checkpoint(note, &node.verifier_key())
        .map_err(|e| MaintenanceError::Failed(format!("the ledger's checkpoint: {e}")))?;
    if cp.size != size {
        return Err(MaintenanceError::Failed(format!(
            "the ledger's checkpoint covers {} of its {size} entries",
            cp.size
        )));
    }
    Ok(cp.root.to_string())
}

/// The ledger size and root of a SQLite snapshot, read from the snapshot itself.
async fn snapshot_ledger(node: &Node, snap: &Path) -> Result<ManifestLedger, MaintenanceError> {
    let store =
        entente_store::Store::open(&format!("sqlite://{}", snap.display())).await.map_err(|e| {
            MaintenanceError::Failed(format!("cannot open the snapshot {}: {e}", snap.display()))
        })?;
    let head = store.ledger_head().await;
    store.close().await;
    let wal = snap.with_extension("sqlite-wal");
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        return Err(MaintenanceError::Failed(format!(
            "the snapshot's journal {} was not folded into it",
            wal.display()
        )));
    }
    let _ = std::fs::remove_file(&wal);
    let _ = std::fs::remove_file(snap.with_extension("sqlite-shm"));
    let (size, note) = head.map_err(|e| MaintenanceError::Failed(format!("the snapshot: {e}")))?;
    let root = checkpoint_root(node, note.as_deref(), size)?;
    Ok(ManifestLedger { size, root })
}

/// What a restore brought back.
#[derive(Clone, Debug)]
pub struct RestoreReport {
    /// The new data directory.
    pub data_dir: PathBuf,
    /// The manifest restored.
    pub manifest: Manifest,
    /// The ledger verified: entries.
    pub entries: u64,
    /// The ledger verified: checkpoints.
    pub checkpoints: u64,
}

/// Reads and checks a backup's manifest (format first, then fields).
///
/// # Errors
/// A missing or unreadable manifest, another format, a field that is not this format's.
pub fn read_manifest(from: &Path) -> Result<Manifest, MaintenanceError> {
    let path = from.join(MANIFEST_FILE);
    let bytes = std::fs::read(&path).map_err(|e| {
        MaintenanceError::BadInput(format!(
            "{}: {e}; is {} a backup made by `entente backup`?",
            path.display(),
            from.display()
        ))
    })?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        MaintenanceError::BadInput(format!("{}: not a JSON manifest: {e}", path.display()))
    })?;
    let format = value.get("format").and_then(serde_json::Value::as_str).unwrap_or("(none)");
    if format != BACKUP_FORMAT {
        return Err(MaintenanceError::BadInput(format!(
            "{}: format `{format}` is not `{BACKUP_FORMAT}`, the format this version of Entente restores",
            path.display()
        )));
    }
    serde_json::from_value(value)
        .map_err(|e| MaintenanceError::BadInput(format!("{}: {e}", path.display())))
}

/// Checks every file of a backup against its manifest.
///
/// # Errors
/// The first file that is missing, of another size or digest, or whose path is not a safe
/// relative path, named.
pub fn check_backup(from: &Path, manifest: &Manifest) -> Result<(), MaintenanceError> {
    let bad = |m: String| {
        MaintenanceError::BadInput(format!("incomplete backup {}: {m}", from.display()))
    };
    for f in &manifest.files {
        let rel = safe_relative(&f.path).ok_or_else(|| {
            bad(format!("file `{}` in the manifest is not a relative path", f.path))
        })?;
        let path = from.join(&rel);
        let (size, sha256) = hash_file(&path)
            .map_err(|e| bad(format!("{} is missing or unreadable: {e}", path.display())))?;
        if size != f.size || sha256 != f.sha256 {
            return Err(bad(format!(
                "{} does not match the manifest (sha256 {sha256}, {size} bytes; the manifest has sha256 {}, {} bytes)",
                path.display(),
                f.sha256,
                f.size
            )));
        }
    }
    for needed in [CONFIG_FILE, crate::identity::KEY_FILE] {
        if !manifest.files.iter().any(|f| f.path == needed) {
            return Err(bad(format!("the manifest lists no {needed}")));
        }
    }
    Ok(())
}

/// Restores the backup in `from` as a new data directory `to`, verified before it is put in
/// place.
///
/// # Errors
/// A target that exists and is not empty, an incomplete backup or one of another format
/// ([`MaintenanceError::BadInput`]); a ledger that does not verify or whose root differs from
/// the manifest's ([`MaintenanceError::Failed`]). On any failure `to` is left as it was.
pub async fn restore(from: &Path, to: &Path) -> Result<RestoreReport, MaintenanceError> {
    if !is_empty_or_missing(to)? {
        return Err(MaintenanceError::BadInput(format!(
            "restore target {} exists and is not empty; restore into a new directory",
            to.display()
        )));
    }
    let manifest = read_manifest(from)?;
    check_backup(from, &manifest)?;
    let staging = staging_beside(to, "restore")?;
    let result = restore_into(from, &staging, &manifest).await;
    match result {
        Ok((entries, checkpoints)) => {
            if let Err(e) = move_into_place(&staging, to) {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e);
            }
            Ok(RestoreReport { data_dir: to.to_owned(), manifest, entries, checkpoints })
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

async fn restore_into(
    from: &Path,
    staging: &Path,
    manifest: &Manifest,
) -> Result<(u64, u64), MaintenanceError> {
    for f in &manifest.files {
        let rel = safe_relative(&f.path).ok_or_else(|| {
            MaintenanceError::BadInput(format!("file `{}` is not a relative path", f.path))
        })?;
        // The copy is hashed as it is written: what is restored is what was checked.
        let (size, sha256) = copy_hashed(&from.join(&rel), &staging.join(&rel))?;
        if size != f.size || sha256 != f.sha256 {
            return Err(MaintenanceError::BadInput(format!(
                "{} changed while it was restored (sha256 {sha256}, the manifest has {})",
                from.join(&rel).display(),
                f.sha256
            )));
        }
    }
    let config = NodeConfig::load(staging).map_err(NodeError::from)?;
    if config.party.as_str() != manifest.node.party {
        return Err(MaintenanceError::BadInput(format!(
            "{}: the configuration is of node {}, the manifest of {}",
            from.join(CONFIG_FILE).display(),
            config.party,
            manifest.node.party
        )));
    }
    let node = Node::open(staging).await?;
    let result = verify_restored(&node, manifest).await;
    node.store.close().await;
    drop(node);
    let _ = std::fs::remove_file(staging.join(entente_store::LOCK_FILE));
    sync_dir(staging);
    result
}

async fn verify_restored(node: &Node, manifest: &Manifest) -> Result<(u64, u64), MaintenanceError> {
    if node.gate.origin() != manifest.node.origin {
        return Err(MaintenanceError::BadInput(format!(
            "the restored database holds ledger {}, the manifest names {}",
            node.gate.origin(),
            manifest.node.origin
        )));
    }
    let report = entente_store::verify::verify_ledger(
        &node.store,
        &node.config.party,
        &node.verifier_key(),
        &mut |_, _| {},
    )
    .await
    .map_err(|e| MaintenanceError::Failed(format!("the restored ledger is NOT sound: {e}")))?;
    let size = manifest.ledger.size;
    if report.entries < size {
        return Err(MaintenanceError::Failed(format!(
            "the restored ledger has {} entries, the backup's had {size}",
            report.entries
        )));
    }
    if node.store.backend() == Backend::Sqlite && report.entries != size {
        return Err(MaintenanceError::Failed(format!(
            "the restored ledger has {} entries, the backup's snapshot {size}",
            report.entries
        )));
    }
    let root = node
        .store
        .tree_root(size)
        .await
        .map_err(|e| MaintenanceError::Failed(format!("the restored ledger: {e}")))?
        .to_string();
    if root != manifest.ledger.root {
        return Err(MaintenanceError::Failed(format!(
            "the restored ledger's root at size {size} is {root}, the manifest's is {}",
            manifest.ledger.root
        )));
    }
    Ok((report.entries, report.checkpoints))
}

/// A blob that no committed row names is removed only once it is at least this old, whatever
/// the grace period: its row may be committing right now.
pub const MIN_ORPHAN_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// What a sweep removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Temporary parts removed.
    pub parts: u64,
    /// Their bytes.
    pub part_bytes: u64,
    /// Blobs with no committed row removed.
    pub orphans: u64,
    /// Their bytes.
    pub orphan_bytes: u64,
    /// Leftovers found but younger than the grace period (kept).
    pub kept: u64,
    /// The ledger entry recording the sweep (none when nothing was removed).
    pub ledger_index: Option<u64>,
    /// Why nothing was looked at (an object store), if so.
    pub skipped: Option<String>,
}

/// Sweeps crash leftovers from the node's local blob store: temporary parts (`tmp/*.part`)
/// and blobs (`xx/<sha256>.<key>.age`) that no committed row names, each left untouched for
/// more than `grace`. Records the sweep through the gate when it removed something.
///
/// # Errors
/// The blob directory cannot be read, a leftover cannot be removed, the gate fails.
pub async fn sweep(
    node: &Node,
    grace: std::time::Duration,
    now: Timestamp,
) -> Result<SweepReport, MaintenanceError> {
    if node.config.evidence.store.is_some() {
        return Ok(SweepReport {
            skipped: Some(
                "blobs are in an object store; a bucket lifecycle rule aborts unfinished uploads"
                    .into(),
            ),
            ..SweepReport::default()
        });
    }
    let root = node.blob_dir();
    if !root.is_dir() {
        return Ok(SweepReport::default());
    }
    let mut report = SweepReport::default();
    // Age of a file, `None` when it is gone meanwhile (an upload that finished).
    let age_of = |path: &Path| -> Result<Option<(std::time::Duration, u64)>, MaintenanceError> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_file() => {
                let age = meta
                    .modified()
                    .ok()
                    .and_then(|m| std::time::SystemTime::now().duration_since(m).ok())
                    .unwrap_or_default();
                Ok(Some((age, meta.len())))
            }
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(MaintenanceError::Failed(format!("cannot read {}: {e}", path.display()))),
        }
    };
    let mut parts = Vec::new();
    let mut blobs = Vec::new();
    for rel in walk(&root)? {
        let Some(name) = slash_path(&rel) else { continue };
        let segments: Vec<&str> = name.split('/').collect();
        match segments.as_slice() {
            ["tmp", f] if f.ends_with(".part") => parts.push(name),
            [d, f]
                if d.len() == 2
                    && d.bytes().all(|b| b.is_ascii_hexdigit())
                    && f.ends_with(".age") =>
            {
                blobs.push(name);
            }
            _ => {}
        }
    }
    // The committed names are read after the listing: a blob listed above whose row commits
    // meanwhile is in this set. A blob is renamed into place moments before its row commits,
    // so one younger than `MIN_ORPHAN_AGE` is never taken for an orphan, whatever the grace.
    let committed = node.store.committed_blob_names().await.map_err(NodeError::from)?;
    let remove = |path: &Path| -> Result<bool, MaintenanceError> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => {
                Err(MaintenanceError::Failed(format!("cannot remove {}: {e}", path.display())))
            }
        }
    };
    for name in parts {
        let path = root.join(&name);
        match age_of(&path)? {
            Some((age, bytes)) if age >= grace => {
                // Gone already (another sweep, or the upload finished): nothing to count.
                if !remove(&path)? {
                    continue;
                }
                report.parts += 1;
                report.part_bytes += bytes;
            }
            Some(_) => report.kept += 1,
            None => {}
        }
    }
    for name in blobs.into_iter().filter(|n| !committed.contains(n)) {
        let path = root.join(&name);
        match age_of(&path)? {
            Some((age, bytes)) if age >= grace.max(MIN_ORPHAN_AGE) => {
                // Gone already (another sweep, or the upload finished): nothing to count.
                if !remove(&path)? {
                    continue;
                }
                report.orphans += 1;
                report.orphan_bytes += bytes;
            }
            Some(_) => report.kept += 1,
            None => {}
        }
    }
    if report.parts + report.orphans > 0 {
        let verdict = node
            .gate
            .submit(
                node.operator(),
                entente_store::maintenance::RecordSweep {
                    party: node.config.party.clone(),
                    parts: report.parts,
                    part_bytes: report.part_bytes,
                    orphans: report.orphans,
                    orphan_bytes: report.orphan_bytes,
                    grace_secs: grace.as_secs(),
                },
                now,
            )
            .await
            .map_err(NodeError::from)?;
        report.ledger_index = Some(verdict.index());
    }
    Ok(report)
}

/// A blob that failed its scrub.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DamagedBlob {
    /// The content digest it must hash to.
    pub sha256: String,
    /// Its name in the blob store.
    pub blob: String,
    /// The evidence items of this content.
    pub items: Vec<String>,
    /// What is wrong: missing, does not decrypt, or hashes to other content.
    pub what: String,
}

/// What a scrub read and found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ScrubReport {
    /// Blobs read.
    pub blobs: u64,
    /// Their plaintext bytes.
    pub bytes: u64,
    /// The blobs that failed, with their items.
    pub damaged: Vec<DamagedBlob>,
    /// The rate limit applied, bytes per second (0: none).
    pub rate: u64,
    /// The ledger entry recording the scrub.
    pub ledger_index: Option<u64>,
}

/// Reads every evidence blob that still holds content, decrypts it and hashes it again,
/// at most `rate` bytes per second (0: as fast as the disk goes, for a node that is not
/// serving), and names each blob that is missing, does not decrypt or hashes to other content,
/// with its items. `progress(done, total)` counts bytes. The scrub is recorded through the gate
/// (`maintenance.scrub`: counts, bytes and the digest of the damaged list).
///
/// # Errors
/// The vault cannot be opened, the database cannot be read, the gate fails. A damaged blob
/// is a finding, in the report.
pub async fn scrub(
    node: &Node,
    rate: u64,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
    now: Timestamp,
) -> Result<ScrubReport, MaintenanceError> {
    let blobs = node.store.scrub_blobs().await.map_err(NodeError::from)?;
    let vault = node.vault()?;
    let total: u64 = blobs.iter().map(|b| b.size).sum();
    let mut report = ScrubReport { rate, ..ScrubReport::default() };
    let started = std::time::Instant::now();
    let mut done = 0u64;
    for b in blobs {
        let (master, store) = (vault.master.clone(), vault.store.clone());
        let blob = entente_evidence::BlobRef {
            name: b.blob_name.clone(),
            wrapped_key: b.wrapped_key.clone(),
        };
        let (base, want) = (done, b.sha256.clone());
        let checked = tokio::task::spawn_blocking(move || -> Result<u64, String> {
            let mut r = entente_evidence::blob::open_blob(&*store, &master, &blob)
                .map_err(|e| e.to_string())?;
            let mut hasher = sha2::Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut n = 0u64;
            loop {
                let k = r.read(&mut buf).map_err(|e| format!("does not decrypt: {e}"))?;
                if k == 0 {
                    break;
                }
                hasher.update(&buf[..k]);
                n += k as u64;
                if rate > 0 {
                    // Ahead of the rate: wait until the bytes read so far are due.
                    let due = std::time::Duration::from_secs_f64((base + n) as f64 / rate as f64);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
            }
            let found = hex::encode(hasher.finalize());
            if found != want {
                return Err(format!("hashes to {found}"));
            }
            Ok(n)
        })
        .await
        .map_err(|e| MaintenanceError::Failed(format!("the scrub stopped: {e}")))?;
        report.blobs += 1;
        let what = match checked {
            Ok(n) if n == b.size => None,
            Ok(n) => Some(format!("holds {n} bytes, not {}", b.size)),
            Err(e) if e.starts_with("hashes to") => Some(format!("{e}, not to {}", b.sha256)),
            Err(e) => Some(e),
        };
        if let Some(what) = what {
            report.damaged.push(DamagedBlob {
                sha256: b.sha256.clone(),
                blob: b.blob_name,
                items: b.items,
                what,
            });
        }
        report.bytes += b.size;
        done += b.size;
        progress(done, total);
    }
    let mut list: Vec<&str> = report.damaged.iter().map(|d| d.sha256.as_str()).collect();
    list.sort_unstable();
    let listed: String = list.iter().map(|s| format!("{s}\n")).collect();
    let verdict = node
        .gate
        .submit(
            node.operator(),
            entente_store::maintenance::RecordScrub {
                party: node.config.party.clone(),
                blobs: report.blobs,
                bytes: report.bytes,
                damaged: report.damaged.len() as u64,
                damaged_sha256: Sha256::of(listed.as_bytes()),
                rate,
            },
            now,
        )
        .await
        .map_err(NodeError::from)?;
    report.ledger_index = Some(verdict.index());
    Ok(report)
}
