//! Evidence packages between nodes: served by digest to the partner they were offered to, and
//! fetched — streamed, resumable — by the node they were offered to.
//!
//! - **Serve.** `GET /federation/v1/packages/{sha256}` on the federation listener (mutual
//!   TLS): the caller's pinned certificate must be that of the partner the package was offered
//!   to (`package.send`); the file is streamed from disk in constant memory, with HTTP range
//!   requests (RFC 9110 §14: `Range: bytes=N-` answered `206` with `Content-Range`), so an
//!   interrupted transfer continues where it stopped. `HEAD` gives the size.
//! - **Fetch.** [`Fetcher`] (run by `entente serve`) takes each pending offer, streams the file
//!   into `packages/incoming/<SENDER>/<sha256>.part` — the network on one task, writing and
//!   SHA-256 on another thread — resuming from the bytes already on disk after a restart or a
//!   dropped connection (backoff with jitter between attempts), then checks size and SHA-256
//!   against the signed offer. Complete and equal: the file becomes `<sha256>.pkg` and
//!   `package.arrive` is recorded. Other bytes: discarded and recorded as a deny
//!   (`federation#package-digest`) naming both digests; the offer is closed. A mismatch after a
//!   resume is first retried once from the beginning (the local partial file may be at fault).
//!
//! Importing an arrived package into a case is `entente evidence import`, which verifies every
//! hash, the signature and the custody proofs.

use crate::federation::{FedState, FederationError, PeerConn, TlsIdentity, pinned, problem};
use crate::identity::Node;
use axum::Extension;
use axum::body::Body;
use axum::extract::{Path as AxumPath, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use entente_core::PartyCode;
use entente_store::{PackageRecord, Verdict};
use jiff::Timestamp;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncSeekExt as _;

/// Path prefix of the package endpoint.
pub const PACKAGES_PATH: &str = "/federation/v1/packages";
/// Size of the chunks read from disk and written to the network.
const CHUNK: usize = 256 * 1024;
/// Idle polling interval for new offers.
pub const FETCH_POLL: Duration = Duration::from_millis(20);

/// Where this node keeps a package it offered to partners.
pub fn outgoing_file(data_dir: &Path, sha256: &str) -> PathBuf {
    data_dir.join("packages").join("outgoing").join(format!("{sha256}.pkg"))
}

/// Where a package offered by `sender` is kept once it has arrived.
pub fn incoming_file(data_dir: &Path, sender: &str, sha256: &str) -> PathBuf {
    data_dir.join("packages").join("incoming").join(sender).join(format!("{sha256}.pkg"))
}

/// Where the part of a package fetched so far is kept.
pub fn partial_file(data_dir: &Path, sender: &str, sha256: &str) -> PathBuf {
    data_dir.join("packages").join("incoming").join(sender).join(format!("{sha256}.part"))
}

/// A parsed `Range` header: the first byte wanted and the last (inclusive), if bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte, inclusive (`None`: to the end).
    pub end: Option<u64>,
}

/// Parses a single `bytes=START-[END]` range. Anything else (several ranges, suffix ranges,
/// other units, garbage) is `None`, and the whole representation is served, as RFC 9110
/// §14.2 allows.
pub fn parse_range(value: &str) -> Option<ByteRange> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if !digits(a.trim()) {
        return None;
    }
    let start = a.trim().parse().ok()?;
    let end = if b.trim().is_empty() {
        None
    } else if digits(b.trim()) {
        Some(b.trim().parse().ok()?)
    } else {
        return None;
    };
    match end {
        Some(e) if e < start => None,
        _ => Some(ByteRange { start, end }),
    }
}

/// `GET|HEAD /federation/v1/packages/{sha256}`: the package, to the partner it was offered to.
pub(crate) async fn serve_package(
    State(st): State<FedState>,
    Extension(conn): Extension<PeerConn>,
    AxumPath(sha256): AxumPath<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let peer = match pinned(&st, &conn).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let not_found = || {
        problem(
            StatusCode::NOT_FOUND,
            "no-such-package",
            "No such package",
            &format!("no package sha256:{sha256} was offered to {}", peer.party),
            None,
        )
    };
    if sha256.contains(':') || sha256.parse::<entente_core::digest::Sha256>().is_err() {
        return not_found();
    }
    let offer = match st.node.store.package_out(&peer.party, &sha256).await {
        Ok(Some(o)) => o,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "package lookup failed");
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Try again later",
                "store unavailable",
                None,
            );
        }
    };
    let path = outgoing_file(&st.node.data_dir, &sha256);
    let gone = |detail: String| {
        tracing::error!(%detail, "an offered package cannot be served");
        problem(StatusCode::GONE, "package-gone", "Package no longer available", &detail, None)
    };
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => return gone(format!("package sha256:{sha256}: {e}")),
    };
    let len = match file.metadata().await {
        Ok(m) if m.len() == offer.offer.size => m.len(),
        Ok(m) => {
            return gone(format!(
                "package sha256:{sha256}: {} bytes on disk, {} offered",
                m.len(),
                offer.offer.size
            ));
        }
        Err(e) => return gone(format!("package sha256:{sha256}: {e}")),
    };
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).and_then(parse_range);
    let (status, start, end) = match range {
        Some(r) if r.start >= len => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            )
                .into_response();
        }
        Some(r) => {
            (StatusCode::PARTIAL_CONTENT, r.start, r.end.map_or(len - 1, |e| e.min(len - 1)))
        }
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, count)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, format!("\"sha256:{sha256}\""));
    if status == StatusCode::PARTIAL_CONTENT {
        builder = builder.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
    }
    if method == Method::HEAD {
        return builder
            .body(Body::empty())
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    if let Err(e) = file.seek(std::io::SeekFrom::Start(start)).await {
        return gone(format!("package sha256:{sha256}: {e}"));
    }
    tracing::info!(peer = %peer.party, %sha256, start, count, "serving package");
    let reader = tokio::io::AsyncReadExt::take(file, count);
    let stream = tokio_util::io::ReaderStream::with_capacity(reader, CHUNK);
    builder
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// What one fetch did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchReport {
    /// Bytes already on disk when it started (a resumed transfer).
    pub resumed_from: u64,
    /// Bytes received over the network.
    pub received: u64,
    /// Total bytes of the file now on disk.
    pub size: u64,
    /// SHA-256 of the whole file, hex.
    pub sha256: String,
}

/// Why a fetch stopped.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The partner could not be reached, or the connection dropped (the part on disk is kept,
    /// and the next attempt resumes from it).
    #[error("{0}")]
    Network(String),
    /// The partner answered something other than the package.
    #[error("{0}")]
    Refused(String),
    /// The local disk failed.
    #[error("{0}")]
    Disk(String),
}

fn disk(path: &Path) -> impl Fn(std::io::Error) -> FetchError + '_ {
    move |e| FetchError::Disk(format!("{}: {e}", path.display()))
}

/// SHA-256 of the first `len` bytes already in `part` (blocking).
fn hash_prefix(part: &Path) -> Result<(Sha256, u64), FetchError> {
    let mut h = Sha256::new();
    let mut f = match std::fs::File::open(part) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((h, 0)),
        Err(e) => return Err(disk(part)(e)),
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(disk(part))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((h, n))
}

/// Fetches `url` (a package of `size` bytes) into `part`, resuming from the bytes already
/// there; returns when the file on disk has `size` bytes (or fails, keeping what arrived).
/// `progress` is told the bytes on disk as they grow.
///
/// # Errors
/// [`FetchError`]: the network (resumable), the partner's answer, or the disk.
pub async fn fetch(
    client: &reqwest::Client,
    url: &str,
    part: &Path,
    size: u64,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<FetchReport, FetchError> {
    if let Some(dir) = part.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(disk(dir))?;
    }
    let p = part.to_owned();
    let (mut hasher, mut have) = tokio::task::spawn_blocking(move || -> Result<_, FetchError> {
        // More than offered cannot be the start of the package.
        if std::fs::metadata(&p).is_ok_and(|m| m.len() > size) {
            std::fs::remove_file(&p).map_err(disk(&p))?;
        }
        hash_prefix(&p)
    })
    .await
    .map_err(|e| FetchError::Disk(e.to_string()))??;
    let resumed_from = have;
    let mut received = 0u64;
    if have < size {
        let mut req = client.get(url);
        if have > 0 {
            req = req.header(header::RANGE, format!("bytes={have}-"));
        }
        let mut resp = req.send().await.map_err(|e| FetchError::Network(format!("{url}: {e}")))?;
        let status = resp.status();
        match status {
            reqwest::StatusCode::PARTIAL_CONTENT => {
                let want = format!("bytes {have}-{}/{size}", size - 1);
                let got = resp
                    .headers()
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if got != want {
                    return Err(FetchError::Refused(format!(
                        "{url}: Content-Range `{got}`, expected `{want}`"
                    )));
                }
            }
            reqwest::StatusCode::OK => {
                // The whole file again: start over.
                if have > 0 {
                    hasher = Sha256::new();
                    have = 0;
                    tokio::fs::File::create(part).await.map_err(disk(part))?;
                }
            }
            s => {
                let body = resp.text().await.unwrap_or_default();
                let detail = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_owned))
                    .unwrap_or_else(|| body.chars().take(300).collect());
                return Err(
                    if s.is_server_error() || s == reqwest::StatusCode::TOO_MANY_REQUESTS {
                        FetchError::Network(format!("{url} answered {s}: {detail}"))
                    } else {
                        FetchError::Refused(format!("{url} answered {s}: {detail}"))
                    },
                );
            }
        }
        // The network on this task; writing and hashing on a blocking thread.
        // Chunks travel in batches of about 1 MiB: fewer wake-ups of the writer, no copy.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<axum::body::Bytes>>(8);
        let p = part.to_owned();
        let start = have;
        let writer = tokio::task::spawn_blocking(move || -> Result<Sha256, FetchError> {
            let mut f =
                std::fs::OpenOptions::new().create(true).append(true).open(&p).map_err(disk(&p))?;
            // Append exactly after the bytes hashed (a torn write beyond them is cut off).
            f.set_len(start).map_err(disk(&p))?;
            f.seek(std::io::SeekFrom::End(0)).map_err(disk(&p))?;
            let mut f = std::io::BufWriter::with_capacity(1 << 20, f);
            while let Some(batch) = rx.blocking_recv() {
                for chunk in batch {
                    hasher.update(&chunk);
                    f.write_all(&chunk).map_err(disk(&p))?;
                }
            }
            let f = f.into_inner().map_err(|e| disk(&p)(e.into_error()))?;
            f.sync_all().map_err(disk(&p))?;
            Ok(hasher)
        });
        let mut net_err = None;
        let mut last_report = 0u64;
        let mut batch = Vec::new();
        let mut batched = 0usize;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    received += chunk.len() as u64;
                    if have + received > size {
                        net_err = Some(FetchError::Refused(format!(
                            "{url}: more than the {size} bytes offered"
                        )));
                        break;
                    }
                    batched += chunk.len();
                    batch.push(chunk);
                    if batched >= 1 << 20 {
                        batched = 0;
                        if tx.send(std::mem::take(&mut batch)).await.is_err() {
                            break;
                        }
                    }
                    if received - last_report >= 8 << 20 {
                        last_report = received;
                        progress(have + received);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    net_err = Some(FetchError::Network(format!(
                        "{url}: the transfer stopped after {} of {size} bytes: {e}",
                        have + received
                    )));
                    break;
                }
            }
        }
        // What arrived before a stop is written too: the next attempt resumes after it.
        if !batch.is_empty() {
            let _ = tx.send(batch).await;
        }
        drop(tx);
        hasher = writer.await.map_err(|e| FetchError::Disk(e.to_string()))??;
        if let Some(e) = net_err {
            return Err(e);
        }
        have += received;
        progress(have);
        if have < size {
            return Err(FetchError::Network(format!(
                "{url}: the transfer stopped after {have} of {size} bytes"
            )));
        }
    }
    Ok(FetchReport { resumed_from, received, size: have, sha256: hex::encode(hasher.finalize()) })
}

/// Fetches the packages partners offered to this node.
#[derive(Debug)]
pub struct Fetcher {
    node: Node,
    tls: TlsIdentity,
    clients: HashMap<String, (String, reqwest::Client)>,
    failures: HashMap<(String, String), (u32, tokio::time::Instant)>,
}

/// What happened to one offer in a round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchOutcome {
    /// Complete, SHA-256 and size as offered; recorded at this ledger index.
    Arrived {
        /// The sender.
        from: String,
        /// The package digest.
        sha256: String,
        /// The fetch.
        report: FetchReport,
        /// Ledger entry of `package.arrive`.
        index: u64,
    },
    /// Other bytes than offered: discarded, recorded as a deny at this index.
    Refused {
        /// The sender.
        from: String,
        /// The package digest.
        sha256: String,
        /// Ledger entry of the deny.
        index: u64,
    },
    /// Not complete yet (retried with backoff).
    Failed {
        /// The sender.
        from: String,
        /// The package digest.
        sha256: String,
        /// Why.
        error: String,
    },
}

impl Fetcher {
    /// A fetcher for `node`.
    ///
    /// # Errors
    /// The node's TLS identity cannot be loaded.
    pub fn new(node: Node) -> Result<Fetcher, FederationError> {
        let tls = TlsIdentity::load(&node.data_dir)?;
        Ok(Fetcher { node, tls, clients: HashMap::new(), failures: HashMap::new() })
    }

    /// Fetches until `shutdown` completes.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            for o in self.round().await {
                if let FetchOutcome::Failed { from, sha256, error } = o {
                    tracing::warn!(%from, %sha256, %error, "package fetch incomplete; will resume");
                }
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(FETCH_POLL) => {}
            }
        }
    }

    fn client(&mut self, peer: &entente_store::PeerRecord) -> Result<reqwest::Client, String> {
        if let Some((sha, c)) = self.clients.get(peer.party.as_str())
            && sha == &peer.cert_sha256
        {
            return Ok(c.clone());
        }
        let config = self.tls.client_config(&peer.cert_pem).map_err(|e| e.to_string())?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .connect_timeout(Duration::from_secs(3))
            .read_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot build the TLS client: {e}"))?;
        self.clients
            .insert(peer.party.as_str().to_owned(), (peer.cert_sha256.clone(), client.clone()));
        Ok(client)
    }

    /// One pass over the pending offers not in backoff.
    pub async fn round(&mut self) -> Vec<FetchOutcome> {
        let pending = match self.node.store.packages_in(true).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the pending packages");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        let now = tokio::time::Instant::now();
        for p in pending {
            let key = (p.party.clone(), p.offer.sha256.clone());
            if self.failures.get(&key).is_some_and(|(_, next)| *next > now) {
                continue;
            }
            let outcome = self.fetch_offer(&p).await;
            match &outcome {
                FetchOutcome::Failed { .. } => {
                    let e = self.failures.entry(key).or_insert((0, now));
                    e.0 = e.0.saturating_add(1);
                    e.1 = tokio::time::Instant::now() + crate::federation::backoff(e.0);
                }
                _ => {
                    self.failures.remove(&key);
                }
            }
            out.push(outcome);
        }
        out
    }

    async fn fetch_offer(&mut self, p: &PackageRecord) -> FetchOutcome {
        let failed = |error: String| FetchOutcome::Failed {
            from: p.party.clone(),
            sha256: p.offer.sha256.clone(),
            error,
        };
        let Ok(sender) = p.party.parse::<PartyCode>() else {
            return failed(format!("stored sender `{}` is not a party", p.party));
        };
        let peer = match self.node.store.peer(&sender).await {
            Ok(Some(peer)) => peer,
            Ok(None) => return failed(format!("{sender} is no longer pinned")),
            Err(e) => return failed(e.to_string()),
        };
        let client = match self.client(&peer) {
            Ok(c) => c,
            Err(e) => return failed(e),
        };
        let url = format!("{}{PACKAGES_PATH}/{}", peer.url.trim_end_matches('/'), p.offer.sha256);
        let dir = &self.node.data_dir;
        let part = partial_file(dir, sender.as_str(), &p.offer.sha256);
        let done = incoming_file(dir, sender.as_str(), &p.offer.sha256);
        // A file that arrived before a crash, not yet recorded: checked again.
        if tokio::fs::metadata(&done).await.is_ok()
            && tokio::fs::metadata(&part).await.is_err()
            && let Err(e) = tokio::fs::rename(&done, &part).await
        {
            return failed(format!("{}: {e}", done.display()));
        }
        let size = p.offer.size;
        let sha = p.offer.sha256.clone();
        let started = std::time::Instant::now();
        let mut log = |n: u64| {
            tracing::debug!(%sha, bytes = n, of = size, "package fetch progress");
        };
        let mut report = match fetch(&client, &url, &part, size, &mut log).await {
            Ok(r) => r,
            Err(e) => return failed(e.to_string()),
        };
        if report.sha256 != p.offer.sha256 && report.resumed_from > 0 {
            // The part on disk may be at fault: once more, from the beginning.
            let _ = tokio::fs::remove_file(&part).await;
            report = match fetch(&client, &url, &part, size, &mut log).await {
                Ok(r) => r,
                Err(e) => return failed(e.to_string()),
            };
        }
        let secs = started.elapsed().as_secs_f64();
        let matches = report.sha256 == p.offer.sha256 && report.size == size;
        if matches {
            if let Err(e) = tokio::fs::rename(&part, &done).await {
                return failed(format!("{}: {e}", done.display()));
            }
            if let Some(d) = done.parent()
                && let Ok(f) = std::fs::File::open(d)
            {
                let _ = f.sync_all();
            }
        } else {
            let _ = tokio::fs::remove_file(&part).await;
        }
        let command = entente_store::packages::ArrivePackage {
            from: sender.clone(),
            sha256: p.offer.sha256.clone(),
            size,
            got_sha256: report.sha256.clone(),
            got_size: report.size,
            resumed_from: report.resumed_from,
        };
        match self.node.gate.submit(self.node.operator(), command, Timestamp::now()).await {
            Ok(Verdict::Permitted { index, .. }) => {
                tracing::info!(
                    from = %sender, %sha, size, resumed_from = report.resumed_from,
                    mib_per_s = (report.received as f64 / 1048576.0) / secs.max(1e-9),
                    index, "package arrived"
                );
                FetchOutcome::Arrived { from: p.party.clone(), sha256: sha, report, index }
            }
            Ok(Verdict::Denied { index, decision }) => {
                tracing::warn!(from = %sender, %sha, index, reason = %decision.reason, "package refused");
                if matches {
                    let _ = tokio::fs::remove_file(&done).await;
                }
                FetchOutcome::Refused { from: p.party.clone(), sha256: sha, index }
            }
            Err(e) => failed(format!("recording the arrival failed: {e}")),
        }
    }
}

/// Writes `src` (a package this node wrote) to the outgoing area under its SHA-256, returning
/// the digest and size (blocking; the copy is synced before it is offered).
///
/// # Errors
/// The file cannot be read or copied.
pub fn stage_outgoing(data_dir: &Path, src: &Path) -> Result<(String, u64, PathBuf), String> {
    let dir = data_dir.join("packages").join("outgoing");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut input = std::fs::File::open(src).map_err(|e| format!("{}: {e}", src.display()))?;
    let tmp = dir.join(format!(".staging-{}", std::process::id()));
    let mut out = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    let copy = (|| -> std::io::Result<()> {
        loop {
            let k = input.read(&mut buf)?;
            if k == 0 {
                break;
            }
            h.update(&buf[..k]);
            out.write_all(&buf[..k])?;
            n += k as u64;
        }
        out.sync_all()
    })();
    if let Err(e) = copy {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("copying {} to {}: {e}", src.display(), tmp.display()));
    }
    let sha = hex::encode(h.finalize());
    let dest = outgoing_file(data_dir, &sha);
    std::fs::rename(&tmp, &dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    Ok((sha, n, dest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_parsed_strictly() {
        assert_eq!(parse_range("bytes=0-"), Some(ByteRange { start: 0, end: None }));
        assert_eq!(parse_range("bytes=100-"), Some(ByteRange { start: 100, end: None }));
        assert_eq!(parse_range("bytes=5-9"), Some(ByteRange { start: 5, end: Some(9) }));
        assert_eq!(parse_range(" bytes=5-9 "), Some(ByteRange { start: 5, end: Some(9) }));
        for bad in [
            "bytes=-5",
            "bytes=9-5",
            "bytes=1-2,4-5",
            "items=0-",
            "bytes=a-",
            "bytes=0-x",
            "bytes=",
            "bytes=+1-",
            "",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(parse_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn paths_keep_senders_apart() {
        let d = Path::new("/data");
        let a = incoming_file(d, "DE", &"a".repeat(64));
        let b = incoming_file(d, "US", &"a".repeat(64));
        assert_ne!(a, b);
        assert!(partial_file(d, "DE", &"a".repeat(64)).to_string_lossy().ends_with(".part"));
    }
}
