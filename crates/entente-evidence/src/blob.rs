//! The encrypted, content-addressed blob store and streaming ingest.
//!
//! A blob is the age encryption of an item's content to a fresh X25519 data key made for it
//! alone; the data key is kept only wrapped by the node's master key ([`MasterKey::wrap`]),
//! in the database row the gate writes. Blobs are named by the SHA-256 of their plaintext and
//! the data key's id: `ab/abcdef….<key id>.age`. Destroying the wrapped key makes the blob
//! unrecoverable even where a copy of the file survives (backups, snapshots).
//!
//! [`BlobStore`] abstracts where blobs live; [`LocalBlobStore`] keeps them in a directory
//! (the node's `blob_dir`). An S3-compatible store would implement the same four operations.

use crate::{EvidenceError, MasterKey, random_hex};
use age::x25519;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::SystemTime;

/// Size of the buffers ingest reads with (two in flight: memory stays constant).
pub const CHUNK: usize = 1 << 20;

/// Where blobs live.
pub trait BlobStore: Send + Sync {
    /// Creates a new temporary blob; returns its name and a writer.
    ///
    /// # Errors
    /// If it cannot be created.
    fn create_temp(&self) -> Result<(String, Box<dyn Write + Send>), EvidenceError>;
    /// Makes a temporary blob permanent under `name`.
    ///
    /// # Errors
    /// If it cannot be moved.
    fn commit(&self, temp: &str, name: &str) -> Result<(), EvidenceError>;
    /// Opens a blob for reading.
    ///
    /// # Errors
    /// If it does not exist.
    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>, EvidenceError>;
    /// Removes a blob or a temporary blob (missing is not an error).
    ///
    /// # Errors
    /// If it exists and cannot be removed.
    fn delete(&self, name: &str) -> Result<(), EvidenceError>;
}

/// Blobs in a local directory.
#[derive(Clone, Debug)]
pub struct LocalBlobStore {
    root: PathBuf,
}

impl LocalBlobStore {
    /// A store in `root` (created if missing).
    ///
    /// # Errors
    /// If the directory cannot be created.
    pub fn open(root: &Path) -> Result<LocalBlobStore, EvidenceError> {
        std::fs::create_dir_all(root.join("tmp")).map_err(|source| EvidenceError::Io {
            what: "cannot create the blob directory",
            path: root.to_owned(),
            source,
        })?;
        Ok(LocalBlobStore { root: root.to_owned() })
    }

    fn path(&self, name: &str) -> Result<PathBuf, EvidenceError> {
        if name.is_empty()
            || name.split('/').any(|c| c.is_empty() || c == "." || c == "..")
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"./-_".contains(&b))
        {
            return Err(EvidenceError::Crypto(format!("invalid blob name `{name}`")));
        }
        Ok(self.root.join(name))
    }
}

impl BlobStore for LocalBlobStore {
    fn create_temp(&self) -> Result<(String, Box<dyn Write + Send>), EvidenceError> {
        let name = format!("tmp/{}.part", random_hex(12)?);
        let path = self.path(&name)?;
        let f = std::fs::OpenOptions::new().write(true).create_new(true).open(&path).map_err(
            |source| EvidenceError::Io { what: "cannot create blob", path: path.clone(), source },
        )?;
        Ok((name, Box::new(io::BufWriter::with_capacity(256 << 10, SyncOnDrop(f)))))
    }

    fn commit(&self, temp: &str, name: &str) -> Result<(), EvidenceError> {
        let from = self.path(temp)?;
        let to = self.path(name)?;
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|source| EvidenceError::Io {
                what: "cannot create",
                path: parent.to_owned(),
                source,
            })?;
        }
        std::fs::rename(&from, &to).map_err(|source| EvidenceError::Io {
            what: "cannot store blob",
            path: to,
            source,
        })
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>, EvidenceError> {
        let path = self.path(name)?;
        let f = std::fs::File::open(&path).map_err(|source| EvidenceError::Io {
            what: "cannot open blob",
            path,
            source,
        })?;
        Ok(Box::new(io::BufReader::with_capacity(256 << 10, f)))
    }

    fn delete(&self, name: &str) -> Result<(), EvidenceError> {
        let path = self.path(name)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(EvidenceError::Io { what: "cannot remove blob", path, source }),
        }
    }
}

/// A file that is synced to disk when the writer is flushed for the last time.
struct SyncOnDrop(std::fs::File);

impl Write for SyncOnDrop {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Drop for SyncOnDrop {
    fn drop(&mut self) {
        let _ = self.0.sync_data();
    }
}

/// A stored blob: its name in the store and its data key wrapped by the master key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobRef {
    /// Name in the blob store.
    pub name: String,
    /// The data key, age-encrypted to the node's master key, base64.
    pub wrapped_key: String,
}

/// The result of an ingest: the content's hash and size and the blob holding it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ingested {
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// The blob (committed to the store).
    pub blob: BlobRef,
}

fn fill(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Streams `input` once into a new blob: hashed on this thread while another encrypts and
/// writes (two buffers of [`CHUNK`] in flight). Calls `progress(bytes so far)` per chunk.
/// Returns the hash, size, the committed blob, or on error removes what it wrote.
///
/// # Errors
/// Read, write or encryption errors; nothing is left in the store.
pub fn ingest(
    store: &dyn BlobStore,
    master: &MasterKey,
    input: &mut dyn Read,
    progress: &mut dyn FnMut(u64),
) -> Result<Ingested, EvidenceError> {
    let (temp, out) = store.create_temp()?;
    match ingest_into(master, input, out, progress) {
        Ok((sha256, size, key)) => {
            let name = format!("{}/{sha256}.{}.age", &sha256[..2], random_hex(6)?);
            let wrapped_key = master.wrap(&key)?;
            if let Err(e) = store.commit(&temp, &name) {
                let _ = store.delete(&temp);
                return Err(e);
            }
            Ok(Ingested { sha256, size, blob: BlobRef { name, wrapped_key } })
        }
        Err(e) => {
            let _ = store.delete(&temp);
            Err(e)
        }
    }
}

fn ingest_into(
    _master: &MasterKey,
    input: &mut dyn Read,
    out: Box<dyn Write + Send>,
    progress: &mut dyn FnMut(u64),
) -> Result<(String, u64, x25519::Identity), EvidenceError> {
    let key = x25519::Identity::generate();
    let recipient = key.to_public();
    let enc = age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
        .map_err(|e| EvidenceError::Crypto(format!("cannot encrypt: {e}")))?;
    let io_err = |what: &'static str| {
        move |source: io::Error| EvidenceError::Io { what, path: PathBuf::from("<blob>"), source }
    };
    let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(2);
    let (empty_tx, empty_rx) = mpsc::sync_channel::<Vec<u8>>(3);
    for _ in 0..3 {
        let _ = empty_tx.send(vec![0u8; CHUNK]);
    }
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    std::thread::scope(|s| {
        let writer = s.spawn(move || -> Result<(), EvidenceError> {
            let mut w = enc.wrap_output(out).map_err(io_err("cannot write blob"))?;
            for buf in full_rx {
                w.write_all(&buf).map_err(io_err("cannot write blob"))?;
                let _ = empty_tx.send(buf);
            }
            let mut out = w.finish().map_err(io_err("cannot finish blob"))?;
            out.flush().map_err(io_err("cannot flush blob"))
        });
        let read = (|| -> Result<(), EvidenceError> {
            loop {
                let Ok(mut buf) = empty_rx.recv() else {
                    // The writer stopped early: its error is reported below.
                    return Ok(());
                };
                buf.resize(CHUNK, 0);
                let n = fill(input, &mut buf).map_err(io_err("cannot read input"))?;
                if n == 0 {
                    return Ok(());
                }
                buf.truncate(n);
                hasher.update(&buf);
                size += n as u64;
                progress(size);
                if full_tx.send(buf).is_err() {
                    return Ok(());
                }
            }
        })();
        drop(full_tx);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(EvidenceError::Crypto("the blob writer failed".into())));
        read.and(written)
    })?;
    Ok((hex::encode(hasher.finalize()), size, key))
}

/// What `stat` says of a file, to detect change while it is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp(m: &std::fs::Metadata) -> Stamp {
    Stamp { len: m.len(), modified: m.modified().ok() }
}

/// Ingests the file at `path`: checks it is a regular file, streams it once
/// ([`ingest`]), and compares its size and modification time before and after (and the bytes
/// read with the size): a file that changed while it was read is refused and nothing stays.
///
/// # Errors
/// Missing or unreadable file, a directory, a file that changed, store errors.
pub fn ingest_file(
    store: &dyn BlobStore,
    master: &MasterKey,
    path: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Ingested, EvidenceError> {
    let meta = std::fs::metadata(path).map_err(|source| EvidenceError::Io {
        what: "cannot read",
        path: path.to_owned(),
        source,
    })?;
    if !meta.is_file() {
        let kind = if meta.is_dir() { "a directory" } else { "not a regular file" };
        return Err(EvidenceError::NotAFile { path: path.to_owned(), kind });
    }
    let mut file = std::fs::File::open(path).map_err(|source| EvidenceError::Io {
        what: "cannot open",
        path: path.to_owned(),
        source,
    })?;
    let before = stamp(&file.metadata().map_err(|source| EvidenceError::Io {
        what: "cannot stat",
        path: path.to_owned(),
        source,
    })?);
    let total = before.len;
    let got = ingest(store, master, &mut file, &mut |n| progress(n, total))?;
    let after_fd = file.metadata().map(|m| stamp(&m));
    let after_path = std::fs::metadata(path).map(|m| stamp(&m));
    let detail = match (after_fd, after_path) {
        (Ok(a), Ok(p)) if a == before && p == before && got.size == before.len => None,
        (Ok(a), _) if a.len != before.len => {
            Some(format!("size was {} bytes, now {}", before.len, a.len))
        }
        (Ok(_), Ok(_)) if got.size != before.len => {
            Some(format!("size was {} bytes but {} were read", before.len, got.size))
        }
        (Ok(_), Ok(p)) if p.len != before.len => {
            Some(format!("the path now names a file of {} bytes (replaced)", p.len))
        }
        (Ok(_), Ok(_)) => Some("its modification time changed".into()),
        (Err(e), _) | (_, Err(e)) => Some(format!("it can no longer be examined: {e}")),
    };
    if let Some(detail) = detail {
        let _ = store.delete(&got.blob.name);
        return Err(EvidenceError::FileChanged { path: path.to_owned(), detail });
    }
    Ok(got)
}

/// Opens a blob's plaintext for reading (streaming decryption).
///
/// # Errors
/// A missing blob, or a data key that cannot be unwrapped (destroyed, or another node's).
pub fn open_blob(
    store: &dyn BlobStore,
    master: &MasterKey,
    blob: &BlobRef,
) -> Result<Box<dyn Read + Send>, EvidenceError> {
    let key = master.unwrap(&blob.wrapped_key)?;
    let file = store.open(&blob.name)?;
    let dec = age::Decryptor::new(file)
        .map_err(|e| EvidenceError::Crypto(format!("blob {} is damaged: {e}", blob.name)))?;
    let r = dec
        .decrypt(std::iter::once(&key as &dyn age::Identity))
        .map_err(|e| EvidenceError::Crypto(format!("blob {} does not decrypt: {e}", blob.name)))?;
    Ok(Box::new(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_round_trip_and_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(&dir.path().join("blobs")).unwrap();
        let master = MasterKey::generate();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let f = dir.path().join("f.bin");
        std::fs::write(&f, &data).unwrap();
        let got = ingest_file(&store, &master, &f, &mut |_, _| {}).unwrap();
        assert_eq!(got.sha256, hex::encode(Sha256::digest(&data)));
        assert_eq!(got.size, data.len() as u64);
        let raw = std::fs::read(dir.path().join("blobs").join(&got.blob.name)).unwrap();
        assert!(raw.starts_with(b"age-encryption.org/v1"));
        assert!(!raw.windows(64).any(|w| w == &data[1000..1064]));
        let mut back = Vec::new();
        open_blob(&store, &master, &got.blob).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        // Another master key cannot open it (and neither can anyone once the key is gone).
        let other = MasterKey::generate();
        assert!(open_blob(&store, &other, &got.blob).is_err());

        let missing = ingest_file(&store, &master, &dir.path().join("nope"), &mut |_, _| {});
        assert!(missing.unwrap_err().to_string().contains("nope"));
        let d = ingest_file(&store, &master, dir.path(), &mut |_, _| {}).unwrap_err();
        assert!(d.to_string().contains("directory"), "{d}");
        // Only the one blob is in the store; no temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path().join("blobs/tmp")).unwrap().count(), 0);
    }

    #[test]
    fn a_file_that_grows_while_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(&dir.path().join("blobs")).unwrap();
        let master = MasterKey::generate();
        let f = dir.path().join("live.log");
        std::fs::write(&f, vec![1u8; 3 * CHUNK]).unwrap();
        let path = f.clone();
        let err = ingest_file(&store, &master, &f, &mut |done, _| {
            if done == CHUNK as u64 {
                let mut h = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
                h.write_all(b"one more line\n").unwrap();
            }
        })
        .unwrap_err();
        assert!(matches!(err, EvidenceError::FileChanged { .. }), "{err}");
        assert!(err.to_string().contains("changed while it was read"), "{err}");
        let left: Vec<_> = walk(&dir.path().join("blobs"));
        assert!(left.is_empty(), "{left:?}");
    }

    fn walk(p: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(p).unwrap() {
            let e = e.unwrap().path();
            if e.is_dir() { out.extend(walk(&e)) } else { out.push(e) }
        }
        out
    }
}
