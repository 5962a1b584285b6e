//! Evidence packages: build and verify. The format is documented in `docs/package-format.md`.
//!
//! A package is a ustar archive ([`crate::ustar`]) whose members come in this order:
//! `manifest.json` (RFC 8785 canonical JSON), `manifest.sig` (the sender's raw 64-byte Ed25519
//! signature of `manifest.json`), `sender.pem` (the sender's public key, SPKI PEM),
//! `SHA256SUMS` (`sha256sum` format, every member below), `checkpoint` (the sender's signed
//! ledger checkpoint), `case.jsonld` (CASE/UCO), then `payloads/<sha256>` (one per distinct
//! content). When addressed to a recipient it is age-encrypted to the recipient's key as a
//! whole.

use crate::custody::{CustodyEvent, CustodyKind, check_chain};
use crate::ustar;
use age::x25519;
use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use ed25519_dalek::pkcs8::{DecodePublicKey as _, EncodePublicKey as _};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use entente_core::canonical::to_canonical_vec;
use entente_core::domain::Conditions;
use entente_core::ledger::{self, Hash, LedgerEntry};
use entente_core::{Outcome, PartyCode, Subject, SubjectKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufRead, BufReader, Read, Write};

/// The format identifier in `manifest.format`.
pub const FORMAT: &str = "entente-evidence-package/1";
/// Member names.
pub const MANIFEST: &str = "manifest.json";
/// The signature member.
pub const SIGNATURE: &str = "manifest.sig";
/// The sender's public key member.
pub const SENDER_KEY: &str = "sender.pem";
/// The checksum list member.
pub const SUMS: &str = "SHA256SUMS";
/// The checkpoint member.
pub const CHECKPOINT: &str = "checkpoint";
/// The CASE/UCO member.
pub const CASE_FILE: &str = "case.jsonld";
/// Largest manifest, checkpoint, case file or checksum list accepted.
pub const MAX_METADATA: u64 = 64 << 20;
/// Most items in one package.
pub const MAX_ITEMS: usize = 100_000;

const AGE_MAGIC: &[u8] = b"age-encryption.org/v1";

/// The sender of a package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderInfo {
    /// The sender's party.
    pub party: PartyCode,
    /// The sending authority.
    pub name: String,
    /// The sender's Ed25519 public key (base64 of the 32 bytes); it signs the manifest and
    /// the checkpoint.
    pub ed25519: String,
    /// The origin of the sender's ledger (the checkpoint's first line).
    pub ledger_origin: String,
}

/// The recipient a package is addressed to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientInfo {
    /// The recipient's party.
    pub party: PartyCode,
    /// The recipient node's age X25519 recipient (`age1…`) the package is encrypted to.
    pub age: String,
}

/// A member's digest and size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDigest {
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// A custody event's inclusion in the sender's ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerProof {
    /// The entry's index.
    pub index: u64,
    /// The entry (its canonical JSON, as hashed into the tree).
    pub entry: String,
    /// The RFC 6962 inclusion proof against the package's checkpoint (base64 hashes).
    pub proof: Vec<String>,
}

/// A custody event and, when the sender recorded it, its ledger proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvenEvent {
    /// The event.
    pub event: CustodyEvent,
    /// Its inclusion in the sender's ledger; `None` for events recorded by an earlier holder
    /// (carried as the sender received them, chained by digest).
    pub ledger: Option<LedgerProof>,
}

/// One item of a package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageItem {
    /// The item's id.
    pub id: String,
    /// SHA-256 of its content, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Data category (what the agreements decide on).
    pub category: entente_core::domain::DataCategory,
    /// Media type.
    pub media_type: String,
    /// Description.
    pub description: String,
    /// The original file name, if known.
    pub file_name: Option<String>,
    /// Where it came from.
    pub source: Option<String>,
    /// When it was collected (RFC 3339).
    pub collected_at: Option<String>,
    /// The payload member holding its content (`payloads/<sha256>`).
    pub payload: String,
    /// The conditions that travel with it and bind the recipient.
    pub conditions: Option<Conditions>,
    /// Its custody chain, the sender's `exported` event last.
    pub custody: Vec<ProvenEvent>,
}

/// `manifest.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The sender.
    pub sender: SenderInfo,
    /// The recipient, when the package is addressed (and encrypted) to one.
    pub recipient: Option<RecipientInfo>,
    /// When the package was made (RFC 3339).
    pub created_at: String,
    /// The sender's case.
    pub case_id: String,
    /// The request the package answers.
    pub request: Option<String>,
    /// The request's kind (the receiver decides the flow under it when it does not hold the
    /// request itself).
    pub request_kind: Option<entente_core::domain::RequestKind>,
    /// Tree size of the checkpoint the proofs are against.
    pub checkpoint_size: u64,
    /// Every member but `manifest.json`, `manifest.sig` and `sender.pem`, with its digest.
    pub files: BTreeMap<String, FileDigest>,
    /// The items.
    pub items: Vec<PackageItem>,
}

/// What goes wrong with a package. Each names the member, item, event or signature at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackageError {
    /// The package is encrypted to another recipient, or addressed to another node.
    #[error("not addressed to this node: {0}")]
    NotAddressedToUs(String),
    /// The sender's key is not among the trusted ones.
    #[error(
        "unknown sender: the package is signed by {party}'s key {key}, which is not a trusted key of {party}; pass the sender's public key (PEM) with --sender-key after checking it with the sender"
    )]
    UnknownSender {
        /// The party the manifest names.
        party: String,
        /// The key (base64).
        key: String,
    },
    /// The archive is truncated or damaged.
    #[error("{0}")]
    Archive(#[from] ustar::TarError),
    /// A member path that would escape the extraction directory.
    #[error("member `{0}`: path escapes the package (absolute or `..`); refused")]
    PathEscapes(String),
    /// Members missing, duplicated, unexpected or out of order.
    #[error("package layout: {0}")]
    Layout(String),
    /// A member larger than it may be.
    #[error("member `{name}` declares {size} bytes, more than {limit} allowed; refused unread")]
    TooLarge {
        /// The member.
        name: String,
        /// Its declared size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A payload member whose size in the archive is not the one its manifest declares.
    #[error(
        "member `{name}` is {size} bytes in the archive; the manifest declares {declared}; refused unread"
    )]
    SizeMismatch {
        /// The member.
        name: String,
        /// Its size in the archive.
        size: u64,
        /// The size the manifest declares.
        declared: u64,
    },
    /// `manifest.json` is not a valid manifest.
    #[error("manifest.json: {0}")]
    Manifest(String),
    /// The signature does not verify.
    #[error("signature: {0}")]
    Signature(String),
    /// A member's content does not match its digest.
    #[error("member `{path}`: SHA-256 is {found}, the manifest says {expected}")]
    Digest {
        /// The member.
        path: String,
        /// The manifest's digest.
        expected: String,
        /// The computed digest.
        found: String,
    },
    /// The checkpoint does not verify.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// An item is inconsistent.
    #[error("item {item}: {detail}")]
    Item {
        /// Item id.
        item: String,
        /// What is wrong.
        detail: String,
    },
    /// A custody event does not verify.
    #[error("item {item}, custody event {seq} ({kind}): {detail}")]
    Event {
        /// Item id.
        item: String,
        /// Event position.
        seq: usize,
        /// Event kind.
        kind: String,
        /// What is wrong.
        detail: String,
    },
    /// Reading, writing or decrypting failed.
    #[error("{0}")]
    Io(String),
    /// A payload could not be stored by the receiver.
    #[error("payload {path}: {detail}")]
    Sink {
        /// The member.
        path: String,
        /// What failed.
        detail: String,
    },
}

/// The sender's Ed25519 public key as SPKI PEM (what `openssl pkeyutl -pubin` reads).
///
/// # Errors
/// If encoding fails.
pub fn public_key_pem(key: &VerifyingKey) -> Result<String, PackageError> {
    key.to_public_key_pem(Default::default())
        .map_err(|e| PackageError::Io(format!("cannot encode the public key: {e}")))
}

/// Parses an Ed25519 public key in SPKI PEM.
///
/// # Errors
/// If it is not one.
pub fn parse_public_key_pem(text: &str) -> Result<VerifyingKey, String> {
    VerifyingKey::from_public_key_pem(text.trim())
        .map_err(|e| format!("not an Ed25519 public key in PEM (SPKI): {e}"))
}

/// What the sender puts in a package.
pub struct BuildInput<'a> {
    /// The sender's signing key (the node key).
    pub key: &'a SigningKey,
    /// The sender.
    pub sender: SenderInfo,
    /// The recipient; the package is encrypted to it when given.
    pub recipient: Option<(RecipientInfo, x25519::Recipient)>,
    /// When.
    pub created_at: String,
    /// The sender's case.
    pub case_id: String,
    /// The request answered.
    pub request: Option<String>,
    /// Its kind.
    pub request_kind: Option<entente_core::domain::RequestKind>,
    /// The signed checkpoint note every sender event is proven against.
    pub checkpoint: Vec<u8>,
    /// Its tree size.
    pub checkpoint_size: u64,
    /// The items (custody chains with proofs).
    pub items: Vec<PackageItem>,
}

/// A summary of a written package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// SHA-256 of the manifest, hex.
    pub manifest_sha256: String,
    /// Items.
    pub items: usize,
    /// Distinct payloads.
    pub payloads: usize,
    /// Payload bytes.
    pub payload_bytes: u64,
}

fn sums_text(files: &BTreeMap<String, FileDigest>) -> String {
    files
        .iter()
        .filter(|(p, _)| p.as_str() != SUMS)
        .map(|(p, d)| format!("{}  {p}\n", d.sha256))
        .collect()
}

fn digest_of(bytes: &[u8]) -> FileDigest {
    FileDigest { sha256: hex::encode(Sha256::digest(bytes)), size: bytes.len() as u64 }
}

/// The payload member name of content `sha256`.
pub fn payload_path(sha256: &str) -> String {
    format!("payloads/{sha256}")
}

/// Opens the plaintext of an item's content for [`write_package`].
pub type OpenPayload<'a> = dyn FnMut(&PackageItem) -> Result<Box<dyn Read + Send>, String> + 'a;

/// Writes a package to `out`, reading each distinct payload with `open(item)` (the plaintext
/// of its blob), which is hashed again on the way and must match the item's hash.
///
/// # Errors
/// A payload that does not match its item, I/O and encryption errors.
pub fn write_package(
    input: BuildInput<'_>,
    out: &mut dyn Write,
    open: &mut OpenPayload<'_>,
) -> Result<Written, PackageError> {
    let io_err = |e: io::Error| PackageError::Io(format!("cannot write the package: {e}"));
    let case_file = crate::case_uco::export(&input.sender, &input.case_id, &input.items)
        .map_err(PackageError::Io)?;
    let mut files = BTreeMap::new();
    files.insert(CHECKPOINT.to_owned(), digest_of(&input.checkpoint));
    files.insert(CASE_FILE.to_owned(), digest_of(&case_file));
    for item in &input.items {
        files.insert(
            item.payload.clone(),
            FileDigest { sha256: item.sha256.clone(), size: item.size },
        );
    }
    let sums = sums_text(&files);
    files.insert(SUMS.to_owned(), digest_of(sums.as_bytes()));
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        sender: input.sender,
        recipient: input.recipient.as_ref().map(|(r, _)| r.clone()),
        created_at: input.created_at,
        case_id: input.case_id,
        request: input.request,
        request_kind: input.request_kind,
        checkpoint_size: input.checkpoint_size,
        files,
        items: input.items,
    };
    let bytes = to_canonical_vec(&manifest).map_err(|e| PackageError::Manifest(e.to_string()))?;
    let sig = input.key.sign(&bytes);
    let pem = public_key_pem(&input.key.verifying_key())?;

    let mut sink: Box<dyn Write + '_> = match &input.recipient {
        Some((_, r)) => {
            let enc = age::Encryptor::with_recipients(std::iter::once(r as &dyn age::Recipient))
                .map_err(|e| PackageError::Io(format!("cannot encrypt to the recipient: {e}")))?;
            Box::new(AgeOut(Some(enc.wrap_output(io::BufWriter::new(out)).map_err(io_err)?)))
        }
        None => Box::new(io::BufWriter::new(out)),
    };
    let mut tar = ustar::Writer::new(&mut sink);
    tar.append_bytes(MANIFEST, &bytes).map_err(io_err)?;
    tar.append_bytes(SIGNATURE, &sig.to_bytes()).map_err(io_err)?;
    tar.append_bytes(SENDER_KEY, pem.as_bytes()).map_err(io_err)?;
    tar.append_bytes(SUMS, sums.as_bytes()).map_err(io_err)?;
    tar.append_bytes(CHECKPOINT, &input.checkpoint).map_err(io_err)?;
    tar.append_bytes(CASE_FILE, &case_file).map_err(io_err)?;
    let mut done = BTreeSet::new();
    let mut payload_bytes = 0;
    for item in &manifest.items {
        if !done.insert(item.payload.clone()) {
            continue;
        }
        let reader = open(item).map_err(|detail| PackageError::Sink {
            path: item.payload.clone(),
            detail: format!("cannot read the content of item {}: {detail}", item.id),
        })?;
        let mut hashing = HashingReader { inner: reader, hasher: Sha256::new(), n: 0 };
        tar.append(&item.payload, item.size, &mut hashing).map_err(|e| {
            match e.get_ref().and_then(|r| r.downcast_ref::<PayloadReadError>()) {
                Some(r) => PackageError::Item {
                    item: item.id.clone(),
                    detail: format!("the stored content cannot be read ({r}); the blob is damaged"),
                },
                None => io_err(e),
            }
        })?;
        let found = hex::encode(hashing.hasher.finalize());
        if found != item.sha256 {
            return Err(PackageError::Item {
                item: item.id.clone(),
                detail: format!(
                    "the stored content hashes to {found}, not {}; the blob is damaged",
                    item.sha256
                ),
            });
        }
        payload_bytes += item.size;
    }
    tar.finish().map_err(io_err)?;
    drop(sink);
    Ok(Written {
        manifest_sha256: hex::encode(Sha256::digest(&bytes)),
        items: manifest.items.len(),
        payloads: done.len(),
        payload_bytes,
    })
}

/// An age stream writer that is finished on the last flush.
struct AgeOut<W: Write>(Option<age::stream::StreamWriter<W>>);

impl<W: Write> Write for AgeOut<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.0 {
            Some(w) => w.write(buf),
            None => Err(io::Error::other("the package is already finished")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        // ustar::Writer::finish flushes once, at the very end: finish the age stream then.
        match self.0.take() {
            Some(w) => {
                let mut inner = w.finish()?;
                inner.flush()
            }
            None => Ok(()),
        }
    }
}

struct HashingReader<R: Read> {
    inner: R,
    hasher: Sha256,
    n: u64,
}

/// A failure to read a payload's stored content (as opposed to writing the package): the
/// blob is damaged, cut short or gone.
#[derive(Debug)]
struct PayloadReadError(String);

impl std::fmt::Display for PayloadReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PayloadReadError {}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .inner
            .read(buf)
            .map_err(|e| io::Error::new(e.kind(), PayloadReadError(e.to_string())))?;
        self.hasher.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
}

/// How to verify a package.
#[derive(Clone, Copy, Default)]
pub struct VerifyOptions<'a> {
    /// Keys of senders this node trusts; a package signed by any other key is refused.
    pub trusted: &'a [VerifyingKey],
    /// The age identity to open an encrypted package with.
    pub identity: Option<&'a x25519::Identity>,
    /// This node's age recipient: a package addressed to another is refused.
    pub our_recipient: Option<&'a str>,
}

/// Receives each payload's content during verification (for import).
pub trait PayloadSink {
    /// Consumes the content of `path` (declared `sha256`, `size`). The verifier hashes what
    /// is read and checks it after; on any later error the caller must discard what it kept.
    ///
    /// # Errors
    /// If the payload cannot be kept.
    fn payload(&mut self, path: &str, sha256: &str, data: &mut dyn Read) -> Result<(), String>;
}

/// A sink that keeps nothing (verification only).
pub struct Discard;

impl PayloadSink for Discard {
    fn payload(&mut self, _: &str, _: &str, data: &mut dyn Read) -> Result<(), String> {
        io::copy(data, &mut io::sink()).map(|_| ()).map_err(|e| e.to_string())
    }
}

/// A verified package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Its manifest.
    pub manifest: Manifest,
    /// Whether it was encrypted.
    pub encrypted: bool,
    /// SHA-256 of `manifest.json`, hex.
    pub manifest_sha256: String,
    /// Custody events proven in the sender's ledger.
    pub proven_events: usize,
    /// Custody events of earlier holders, carried by the sender.
    pub carried_events: usize,
    /// The checkpoint's tree size.
    pub checkpoint_size: u64,
}

fn read_small(
    tar: &mut ustar::Reader<&mut dyn Read>,
    name: &str,
    size: u64,
    limit: u64,
) -> Result<Vec<u8>, PackageError> {
    if size > limit {
        return Err(PackageError::TooLarge { name: name.to_owned(), size, limit });
    }
    let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    tar.data().read_to_end(&mut buf).map_err(|e| PackageError::Io(format!("{name}: {e}")))?;
    Ok(buf)
}

fn expect_member(tar: &mut ustar::Reader<&mut dyn Read>, name: &str) -> Result<u64, PackageError> {
    match tar.next_member()? {
        Some((n, size)) if n == name => Ok(size),
        Some((n, _)) => {
            check_path(&n)?;
            Err(PackageError::Layout(format!("expected member `{name}` here, found `{n}`")))
        }
        None => Err(PackageError::Layout(format!("member `{name}` is missing"))),
    }
}

fn check_path(name: &str) -> Result<(), PackageError> {
    if name.starts_with('/') || name.split(['/', '\\']).any(|c| c == "..") {
        return Err(PackageError::PathEscapes(name.to_owned()));
    }
    Ok(())
}

/// Verifies a package read from `input` (plain or age-encrypted), passing each payload to
/// `sink`. Checks, in order: the layout; the sender's key (trusted, and the one the manifest
/// names); the signature of `manifest.json`; that it is addressed to this node; every
/// member's size and SHA-256 against the manifest; `SHA256SUMS`; the checkpoint's signature
/// and origin; every item's custody chain (links, sender's `exported` event last) and each
/// sender event's ledger entry and inclusion proof.
///
/// # Errors
/// The first problem found, naming what is wrong.
pub fn verify(
    input: &mut dyn Read,
    opts: &VerifyOptions<'_>,
    sink: &mut dyn PayloadSink,
) -> Result<Verified, PackageError> {
    let mut buffered = BufReader::with_capacity(1 << 20, input);
    let head = buffered.fill_buf().map_err(|e| PackageError::Io(e.to_string()))?;
    let encrypted = head.starts_with(AGE_MAGIC);
    if encrypted {
        let Some(identity) = opts.identity else {
            return Err(PackageError::NotAddressedToUs(
                "the package is encrypted and no key to open it was given".into(),
            ));
        };
        let dec = age::Decryptor::new_buffered(buffered).map_err(|e| {
            PackageError::Io(format!("the encrypted package's age header is damaged: {e}"))
        })?;
        let plain =
            dec.decrypt(std::iter::once(identity as &dyn age::Identity)).map_err(|e| match e {
                age::DecryptError::NoMatchingKeys => PackageError::NotAddressedToUs(
                    "the package is encrypted to another recipient".into(),
                ),
                e => PackageError::Io(format!(
                    "the encrypted package's age header does not open with this node's key: {e}"
                )),
            })?;
        let mut plain = NamedDecryption { inner: plain, at: 0 };
        let mut verified = verify_plain(&mut plain, opts, sink)?;
        verified.encrypted = true;
        Ok(verified)
    } else {
        verify_plain(&mut buffered, opts, sink)
    }
}

/// The decrypted stream of an encrypted package, whose failures say where: age authenticates
/// its payload in 64 KiB chunks, so a failure names the chunk whose ciphertext was altered or
/// cut short.
struct NamedDecryption<R> {
    inner: R,
    /// Plaintext bytes read so far.
    at: u64,
}

impl<R: Read> Read for NamedDecryption<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.at += n as u64;
                Ok(n)
            }
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!(
                    "the encrypted package's payload does not authenticate in its chunk {} (plaintext from byte {}): {e}; the ciphertext was altered or cut short",
                    self.at / 65_536,
                    self.at / 65_536 * 65_536
                ),
            )),
        }
    }
}

fn verify_plain(
    input: &mut dyn Read,
    opts: &VerifyOptions<'_>,
    sink: &mut dyn PayloadSink,
) -> Result<Verified, PackageError> {
    let mut tar = ustar::Reader::new(input);
    let size = expect_member(&mut tar, MANIFEST)?;
    let bytes = read_small(&mut tar, MANIFEST, size, MAX_METADATA)?;
    let size = expect_member(&mut tar, SIGNATURE)?;
    let sig = read_small(&mut tar, SIGNATURE, size, 64)?;
    let size = expect_member(&mut tar, SENDER_KEY)?;
    let pem = read_small(&mut tar, SENDER_KEY, size, 4096)?;

    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| PackageError::Manifest(format!("not a manifest of this format: {e}")))?;
    if manifest.format != FORMAT {
        return Err(PackageError::Manifest(format!(
            "format is `{}`, expected `{FORMAT}`",
            manifest.format
        )));
    }
    let canonical =
        to_canonical_vec(&manifest).map_err(|e| PackageError::Manifest(e.to_string()))?;
    if canonical != bytes {
        return Err(PackageError::Manifest("not in RFC 8785 canonical form".into()));
    }
    let key_bytes: [u8; 32] = BASE64_STANDARD
        .decode(&manifest.sender.ed25519)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            PackageError::Manifest("sender.ed25519: expected base64 of 32 bytes".into())
        })?;
    let key = VerifyingKey::from_bytes(&key_bytes)
        .map_err(|e| PackageError::Manifest(format!("sender.ed25519: {e}")))?;
    let pem_key = std::str::from_utf8(&pem)
        .map_err(|_| "not text".to_owned())
        .and_then(parse_public_key_pem)
        .map_err(|e| PackageError::Signature(format!("sender.pem: {e}")))?;
    if pem_key != key {
        return Err(PackageError::Signature(
            "sender.pem is not the key the manifest names (sender.ed25519)".into(),
        ));
    }
    if !opts.trusted.contains(&key) {
        return Err(PackageError::UnknownSender {
            party: manifest.sender.party.to_string(),
            key: manifest.sender.ed25519.clone(),
        });
    }
    let sig: [u8; 64] = sig
        .try_into()
        .map_err(|_| PackageError::Signature("manifest.sig: expected 64 bytes".into()))?;
    key.verify_strict(&bytes, &Signature::from_bytes(&sig)).map_err(|_| {
        PackageError::Signature(format!(
            "manifest.sig does not verify manifest.json with {}'s key {}",
            manifest.sender.party, manifest.sender.ed25519
        ))
    })?;
    if let (Some(ours), Some(to)) = (opts.our_recipient, &manifest.recipient)
        && to.age != ours
    {
        return Err(PackageError::NotAddressedToUs(format!(
            "the package is addressed to {} ({}), this node is {ours}",
            to.party, to.age
        )));
    }
    if manifest.items.is_empty() || manifest.items.len() > MAX_ITEMS {
        return Err(PackageError::Manifest(format!(
            "expected 1 to {MAX_ITEMS} items, found {}",
            manifest.items.len()
        )));
    }

    // The metadata members, in order, before any payload reaches the sink.
    let mut small = BTreeMap::new();
    for name in [SUMS, CHECKPOINT, CASE_FILE] {
        let size = expect_member(&mut tar, name)?;
        let data = read_small(&mut tar, name, size, MAX_METADATA)?;
        check_digest(&manifest, name, &data)?;
        small.insert(name, data);
    }
    let sums = small.get(SUMS).cloned().unwrap_or_default();
    if sums != sums_text(&manifest.files).as_bytes() {
        return Err(PackageError::Layout(
            "SHA256SUMS does not list exactly the manifest's files and digests".into(),
        ));
    }
    let note = small.get(CHECKPOINT).cloned().unwrap_or_default();
    let vkey = ledger::verifier_key(&manifest.sender.ledger_origin, &key);
    let cp = ledger::verify_checkpoint(&note, &vkey)
        .map_err(|e| PackageError::Checkpoint(e.to_string()))?;
    if cp.origin != ledger::origin_for(&manifest.sender.party, &key) {
        return Err(PackageError::Checkpoint(format!(
            "origin `{}` is not the ledger of {} with this key",
            cp.origin, manifest.sender.party
        )));
    }
    if cp.size != manifest.checkpoint_size {
        return Err(PackageError::Checkpoint(format!(
            "tree size {} differs from the manifest's checkpoint_size {}",
            cp.size, manifest.checkpoint_size
        )));
    }
    let (proven, carried) = check_items(&manifest, cp.size, cp.root)?;

    // The payloads: each declared, once, of its declared size, hashed as it is read, in the
    // order `write_package` emits them (each item's payload where it first appears), so that a
    // package has one encoding and one hash.
    let mut seen = BTreeSet::from([MANIFEST.to_owned(), SIGNATURE.to_owned(), SENDER_KEY.into()]);
    seen.extend([SUMS.to_owned(), CHECKPOINT.to_owned(), CASE_FILE.to_owned()]);
    let mut order = Vec::with_capacity(manifest.items.len());
    let mut listed = BTreeSet::new();
    for item in &manifest.items {
        if listed.insert(item.payload.as_str()) {
            order.push(item.payload.as_str());
        }
    }
    let mut next = order.iter();
    while let Some((name, size)) = tar.next_member()? {
        check_path(&name)?;
        let Some(declared) = manifest.files.get(&name) else {
            return Err(PackageError::Layout(format!(
                "member `{name}` is not in the manifest's file list"
            )));
        };
        if !seen.insert(name.clone()) {
            return Err(PackageError::Layout(format!("member `{name}` appears twice")));
        }
        match next.next() {
            Some(expected) if *expected == name => {}
            Some(expected) => {
                return Err(PackageError::Layout(format!(
                    "member `{name}` is out of order: `{expected}` comes here (payloads follow \
                     the order of the items that first name them)"
                )));
            }
            None => {
                return Err(PackageError::Layout(format!(
                    "member `{name}` is not the payload of any item"
                )));
            }
        }
        if size != declared.size {
            return Err(PackageError::SizeMismatch { name, size, declared: declared.size });
        }
        let mut reader = HashingReader { inner: tar.data(), hasher: Sha256::new(), n: 0 };
        sink.payload(&name, &declared.sha256, &mut reader)
            .map_err(|detail| PackageError::Sink { path: name.clone(), detail })?;
        io::copy(&mut reader, &mut io::sink())
            .map_err(|e| PackageError::Io(format!("{name}: {e}")))?;
        let found = hex::encode(reader.hasher.finalize());
        if found != declared.sha256 {
            return Err(PackageError::Digest {
                path: name,
                expected: declared.sha256.clone(),
                found,
            });
        }
    }
    if let Some(missing) = manifest.files.keys().find(|p| !seen.contains(*p)) {
        return Err(PackageError::Layout(format!("member `{missing}` is missing")));
    }
    Ok(Verified {
        manifest_sha256: hex::encode(Sha256::digest(&bytes)),
        manifest,
        encrypted: false,
        proven_events: proven,
        carried_events: carried,
        checkpoint_size: cp.size,
    })
}

fn check_digest(manifest: &Manifest, name: &str, data: &[u8]) -> Result<(), PackageError> {
    let Some(declared) = manifest.files.get(name) else {
        return Err(PackageError::Layout(format!("`{name}` is not in the manifest's file list")));
    };
    let found = hex::encode(Sha256::digest(data));
    if found != declared.sha256 || data.len() as u64 != declared.size {
        return Err(PackageError::Digest {
            path: name.to_owned(),
            expected: declared.sha256.clone(),
            found,
        });
    }
    Ok(())
}

fn check_items(manifest: &Manifest, size: u64, root: Hash) -> Result<(usize, usize), PackageError> {
    let sender = &manifest.sender.party;
    let mut ids = BTreeSet::new();
    let (mut proven, mut carried) = (0, 0);
    for item in &manifest.items {
        let bad = |detail: String| PackageError::Item { item: item.id.clone(), detail };
        if !ids.insert(item.id.as_str()) {
            return Err(bad("appears twice".into()));
        }
        if item.payload != payload_path(&item.sha256) {
            return Err(bad(format!(
                "payload is `{}`, expected `{}`",
                item.payload,
                payload_path(&item.sha256)
            )));
        }
        match manifest.files.get(&item.payload) {
            Some(d) if d.sha256 == item.sha256 && d.size == item.size => {}
            _ => {
                return Err(bad(
                    "its payload is not in the file list with its hash and size".into()
                ));
            }
        }
        let events: Vec<CustodyEvent> = item.custody.iter().map(|p| p.event.clone()).collect();
        check_chain(&item.id, &item.sha256, &events).map_err(bad)?;
        match events.last() {
            Some(e) if e.event == CustodyKind::Exported && &e.party == sender => {}
            _ => {
                return Err(bad(format!(
                    "its custody chain does not end with {sender}'s `exported` event (an event was removed)"
                )));
            }
        }
        for (seq, p) in item.custody.iter().enumerate() {
            let ev = |detail: String| PackageError::Event {
                item: item.id.clone(),
                seq,
                kind: p.event.event.to_string(),
                detail,
            };
            if &p.event.party != sender {
                if p.ledger.is_some() {
                    return Err(ev(
                        "an earlier holder's event cannot be proven in the sender's ledger".into(),
                    ));
                }
                carried += 1;
                continue;
            }
            let Some(l) = &p.ledger else {
                return Err(ev("recorded by the sender but carries no ledger proof".into()));
            };
            let entry = LedgerEntry::decode(l.entry.as_bytes())
                .map_err(|e| ev(format!("ledger entry {}: {e}", l.index)))?;
            if entry.index != l.index {
                return Err(ev(format!(
                    "ledger entry says index {}, proof is for {}",
                    entry.index, l.index
                )));
            }
            if &entry.node != sender || entry.decision != Outcome::Permit {
                return Err(ev(format!("ledger entry {} is not a permit of {sender}", l.index)));
            }
            if entry.payload_hashes.get("custody") != Some(&p.event.digest()) {
                return Err(ev(format!(
                    "ledger entry {} does not record this event (custody digest {} differs)",
                    l.index,
                    p.event.digest()
                )));
            }
            if !entry.subjects.contains(&Subject::new(SubjectKind::Evidence, &item.id)) {
                return Err(ev(format!(
                    "ledger entry {} is not about evidence:{}",
                    l.index, item.id
                )));
            }
            let proof = l
                .proof
                .iter()
                .map(|h| {
                    BASE64_STANDARD
                        .decode(h)
                        .ok()
                        .and_then(|b| <[u8; 32]>::try_from(b).ok())
                        .map(Hash)
                })
                .collect::<Option<Vec<Hash>>>()
                .ok_or_else(|| ev("proof: expected base64 hashes of 32 bytes".into()))?;
            if l.index >= size {
                return Err(ev(format!(
                    "ledger entry {} is beyond the checkpoint (size {size})",
                    l.index
                )));
            }
            ledger::check_record(
                &proof,
                size,
                root,
                l.index,
                ledger::record_hash(l.entry.as_bytes()),
            )
            .map_err(|e| ev(format!("inclusion proof of ledger entry {} fails: {e}", l.index)))?;
            proven += 1;
        }
    }
    Ok((proven, carried))
}
