//! The encrypted, content-addressed blob store and streaming ingest.
//!
//! A blob is the age encryption of an item's content to a fresh X25519 data key made for it
//! alone; the data key is kept only wrapped by the node's master key ([`MasterKey::wrap`]),
//! in the database row the gate writes. Blobs are named by the SHA-256 of their plaintext and
//! the data key's id: `ab/abcdef….<key id>.age`. Destroying the wrapped key makes the blob
//! unrecoverable even where a copy of the file survives (backups, snapshots).
//!
//! [`BlobStore`] abstracts where blobs live; [`LocalBlobStore`] keeps them in a directory
//! (the node's `blob_dir`), [`crate::s3::S3BlobStore`] in an S3-compatible bucket.

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

/// A blob being written. [`BlobWrite::finish`] makes what was written durable (a local file
/// is synced to disk; an object store completes the upload); a writer dropped without it leaves
/// a temporary blob for [`BlobStore::delete`] to remove.
pub trait BlobWrite: Write + Send {
    /// Makes the blob durable.
    ///
    /// # Errors
    /// If it cannot be written out.
    fn finish(self: Box<Self>) -> Result<(), EvidenceError>;
}

/// Where blobs live.
pub trait BlobStore: Send + Sync {
    /// Creates a new temporary blob; returns its name and a writer.
    ///
    /// # Errors
    /// If it cannot be created.
    fn create_temp(&self) -> Result<(String, Box<dyn BlobWrite>), EvidenceError>;
    /// Makes a finished temporary blob permanent, under `name` where the store can rename
    /// cheaply; returns the name it is kept under.
    ///
    /// # Errors
    /// If it cannot be moved.
    fn commit(&self, temp: &str, name: &str) -> Result<String, EvidenceError>;
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
    fn create_temp(&self) -> Result<(String, Box<dyn BlobWrite>), EvidenceError> {
        let name = format!("tmp/{}.part", random_hex(12)?);
        let path = self.path(&name)?;
        let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&path).map_err(
            |source| EvidenceError::Io { what: "cannot create blob", path: path.clone(), source },
        )?;
        Ok((
            name,
            Box::new(LocalWriter {
                file,
                path,
                written: 0,
                next_writeback: WRITEBACK_EVERY,
                writeback: None,
            }),
        ))
    }

    fn commit(&self, temp: &str, name: &str) -> Result<String, EvidenceError> {
        let from = self.path(temp)?;
        let to = self.path(name)?;
        let io = |what: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| EvidenceError::Io { what, path, source }
        };
        let parent = to.parent().unwrap_or(&self.root).to_owned();
        let created = !parent.is_dir();
        if created {
            std::fs::create_dir_all(&parent).map_err(io("cannot create", &parent))?;
        }
        std::fs::rename(&from, &to).map_err(io("cannot store blob", &to))?;
        // The new name is durable only once its directory is synced (and the directory's
        // own entry, when it was just made).
        sync_dir(&parent).map_err(io("cannot sync", &parent))?;
        if created {
            sync_dir(&self.root).map_err(io("cannot sync", &self.root))?;
        }
        Ok(name.to_owned())
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

fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// While a large blob is written, the disk is asked to write back what it holds every this many
/// bytes, so that writing to disk overlaps hashing and encrypting instead of all happening in
/// the sync at the end. Durability is unchanged: [`BlobWrite::finish`] syncs the whole file.
pub const WRITEBACK_EVERY: u64 = 32 << 20;

/// A blob file being written.
struct LocalWriter {
    file: std::fs::File,
    path: PathBuf,
    written: u64,
    next_writeback: u64,
    /// The thread syncing the file in the background (started at the first `WRITEBACK_EVERY`
    /// bytes, so small blobs never start one).
    writeback: Option<(mpsc::SyncSender<()>, std::thread::JoinHandle<io::Result<()>>)>,
}

impl LocalWriter {
    fn kick_writeback(&mut self) -> io::Result<()> {
        if self.writeback.is_none() {
            let file = self.file.try_clone()?;
            let (tx, rx) = mpsc::sync_channel::<()>(1);
            let handle = std::thread::Builder::new().name("blob-writeback".into()).spawn(
                move || -> io::Result<()> {
                    for () in rx {
                        file.sync_data()?;
                    }
                    Ok(())
                },
            )?;
            self.writeback = Some((tx, handle));
        }
        if let Some((tx, _)) = &self.writeback {
            // Full: a sync is running and another is queued; it will cover these bytes too.
            // Disconnected: the thread failed; `finish` reports its error.
            let _ = tx.try_send(());
        }
        Ok(())
    }
}

impl Write for LocalWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written >= self.next_writeback {
            self.next_writeback = self.written + WRITEBACK_EVERY;
            self.kick_writeback()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl BlobWrite for LocalWriter {
    fn finish(self: Box<Self>) -> Result<(), EvidenceError> {
        let mut this = *self;
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| EvidenceError::Io { what: "cannot sync blob", path, source }
        };
        if let Some((tx, handle)) = this.writeback.take() {
            drop(tx);
            handle
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the writeback thread failed")))
                .map_err(io(&this.path))?;
        }
        this.file.sync_data().map_err(io(&this.path))
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

/// Reads up to [`CHUNK`] bytes into `buf` (cleared first; its capacity is reused, and not
/// zeroed). Fewer than [`CHUNK`] means the input ended.
fn read_chunk(input: &mut dyn Read, buf: &mut Vec<u8>) -> io::Result<usize> {
    buf.clear();
    Read::take(&mut *input, CHUNK as u64).read_to_end(buf)
}

/// Streams `input` once into a new blob: read and hashed on this thread while another encrypts
/// and writes (three buffers of [`CHUNK`] at most); an input of less than one chunk is handled
/// on this thread alone. Calls `progress(bytes so far)` per chunk. Returns the hash, size and
/// the committed blob (synced to its store), or on error removes what it wrote.
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
    match ingest_into(input, out, progress) {
        Ok((sha256, size, key)) => {
            let name = format!("{}/{sha256}.{}.age", &sha256[..2], random_hex(6)?);
            let committed = master
                .wrap(&key)
                .and_then(|wrapped_key| Ok((store.commit(&temp, &name)?, wrapped_key)));
            match committed {
                Ok((name, wrapped_key)) => {
                    Ok(Ingested { sha256, size, blob: BlobRef { name, wrapped_key } })
                }
                Err(e) => {
                    let _ = store.delete(&temp);
                    Err(e)
                }
            }
        }
        Err(e) => {
            let _ = store.delete(&temp);
            Err(e)
        }
    }
}

fn ingest_into(
    input: &mut dyn Read,
    out: Box<dyn BlobWrite>,
    progress: &mut dyn FnMut(u64),
) -> Result<(String, u64, x25519::Identity), EvidenceError> {
    let key = x25519::Identity::generate();
    let recipient = key.to_public();
    let enc = age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
        .map_err(|e| EvidenceError::Crypto(format!("cannot encrypt: {e}")))?;
    let io_err = |what: &'static str| {
        move |source: io::Error| EvidenceError::Io { what, path: PathBuf::from("<blob>"), source }
    };
    let mut w = enc.wrap_output(out).map_err(io_err("cannot write blob"))?;
    let mut hasher = Sha256::new();
    let mut first = Vec::with_capacity(CHUNK);
    let n = read_chunk(input, &mut first).map_err(io_err("cannot read input"))?;
    hasher.update(&first);
    let mut size = n as u64;
    progress(size);
    if n < CHUNK {
        // All of it is here: no second thread for a small input.
        w.write_all(&first).map_err(io_err("cannot write blob"))?;
        w.finish().map_err(io_err("cannot finish blob"))?.finish()?;
        return Ok((hex::encode(hasher.finalize()), size, key));
    }
    let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(2);
    let (empty_tx, empty_rx) = mpsc::sync_channel::<Vec<u8>>(3);
    let _ = empty_tx.send(Vec::with_capacity(CHUNK));
    let _ = empty_tx.send(Vec::with_capacity(CHUNK));
    let aborted = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let aborted = &aborted;
        let writer = s.spawn(move || -> Result<(), EvidenceError> {
            for buf in full_rx {
                w.write_all(&buf).map_err(io_err("cannot write blob"))?;
                let _ = empty_tx.send(buf);
            }
            if aborted.load(std::sync::atomic::Ordering::SeqCst) {
                // The input failed: no point making durable what is about to be removed.
                return Ok(());
            }
            w.finish().map_err(io_err("cannot finish blob"))?.finish()
        });
        let read = (|| -> Result<(), EvidenceError> {
            let mut buf = first;
            loop {
                if full_tx.send(buf).is_err() {
                    // The writer stopped early: its error is reported below.
                    return Ok(());
                }
                let Ok(next) = empty_rx.recv() else {
                    return Ok(());
                };
                buf = next;
                let n = read_chunk(input, &mut buf).map_err(io_err("cannot read input"))?;
                if n == 0 {
                    return Ok(());
                }
                hasher.update(&buf);
                size += n as u64;
                progress(size);
            }
        })();
        if read.is_err() {
            aborted.store(true, std::sync::atomic::Ordering::SeqCst);
        }
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

    /// A reader that yields `ok` bytes, then fails.
    struct Failing {
        ok: usize,
    }

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.ok == 0 {
                return Err(io::Error::other("the source broke off"));
            }
            let n = buf.len().min(self.ok);
            buf[..n].fill(7);
            self.ok -= n;
            Ok(n)
        }
    }

    #[test]
    fn large_input_with_writeback_and_inputs_that_break_off() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(&dir.path().join("blobs")).unwrap();
        let master = MasterKey::generate();
        // Past WRITEBACK_EVERY: the background writeback runs, the result is the same.
        let data: Vec<u8> =
            (0..(WRITEBACK_EVERY as usize + 3 * CHUNK + 17)).map(|i| (i % 253) as u8).collect();
        let got = ingest(&store, &master, &mut &data[..], &mut |_| {}).unwrap();
        assert_eq!(got.sha256, hex::encode(Sha256::digest(&data)));
        let mut back = Vec::new();
        open_blob(&store, &master, &got.blob).unwrap().read_to_end(&mut back).unwrap();
        assert!(back == data);
        store.delete(&got.blob.name).unwrap();
        // A source that fails in the first chunk, or after several: an error, nothing kept.
        for ok in [100, 5 * CHUNK + 3] {
            let err = ingest(&store, &master, &mut Failing { ok }, &mut |_| {}).unwrap_err();
            assert!(err.to_string().contains("broke off"), "{err}");
            let left = walk(&dir.path().join("blobs"));
            assert!(left.is_empty(), "{left:?}");
        }
        // An empty input is a blob too.
        let got = ingest(&store, &master, &mut io::empty(), &mut |_| {}).unwrap();
        assert_eq!((got.size, got.sha256.as_str()), (0, hex::encode(Sha256::digest(b"")).as_str()));
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
