//! Blobs in S3-compatible object storage ([`S3BlobStore`]), through `object_store`.
//!
//! The [`BlobStore`] operations are blocking (ingest and package writing run on blocking
//! threads); each one here runs its requests on the node's tokio runtime with
//! [`tokio::runtime::Handle::block_on`]. What reaches the bucket is what reaches a local blob
//! directory: the age ciphertext of the content under its own data key, never the plaintext.
//!
//! A blob is uploaded in parts of [`PART`] bytes (a multipart upload, started only when the
//! blob reaches one part; a smaller one is a single `PUT`), so memory stays constant. It is
//! uploaded directly under its final key, `<prefix>blobs/<random>.age`: renaming in S3 is a
//! copy, limited to 5 GiB per request, and the content address lives in the database anyway.
//! A failed or abandoned upload is aborted; [`BlobWrite::finish`] completes it, and S3 makes a
//! completed object durable before it answers.

use crate::blob::{BlobStore, BlobWrite};
use crate::{EvidenceError, random_hex};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt as _, PutPayload, WriteMultipart};
use std::io::{self, Read, Write};
use std::sync::Arc;
use tokio::runtime::Handle;

/// Size of the parts of a multipart upload and of the ranged reads of a blob.
pub const PART: usize = 8 << 20;

/// How to reach a bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Options {
    /// The bucket.
    pub bucket: String,
    /// The endpoint URL of an S3-compatible service (`None`: AWS in `region`).
    pub endpoint: Option<String>,
    /// The region.
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// A key prefix for this node's blobs (empty, or ending in `/`).
    pub prefix: String,
    /// Whether plain `http://` endpoints are allowed (a local test server).
    pub allow_http: bool,
}

/// Blobs in an S3 bucket.
#[derive(Clone, Debug)]
pub struct S3BlobStore {
    store: Arc<AmazonS3>,
    prefix: String,
    rt: Handle,
}

fn s3_err(what: &str, name: &str, e: impl std::fmt::Display) -> EvidenceError {
    EvidenceError::Crypto(format!("object store: {what} `{name}`: {e}"))
}

impl S3BlobStore {
    /// A store in the bucket `opts` names, running its requests on `rt`. Nothing is sent yet.
    ///
    /// # Errors
    /// Options the client refuses (a malformed endpoint, say).
    pub fn open(opts: &S3Options, rt: Handle) -> Result<S3BlobStore, EvidenceError> {
        if !opts.prefix.is_empty() && !opts.prefix.ends_with('/') {
            return Err(EvidenceError::Crypto(format!(
                "object store prefix `{}`: expected empty or ending in `/`",
                opts.prefix
            )));
        }
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&opts.bucket)
            .with_region(&opts.region)
            .with_access_key_id(&opts.access_key_id)
            .with_secret_access_key(&opts.secret_access_key)
            .with_allow_http(opts.allow_http);
        if let Some(e) = &opts.endpoint {
            b = b.with_endpoint(e);
        }
        let store = b.build().map_err(|e| EvidenceError::Crypto(format!("object store: {e}")))?;
        Ok(S3BlobStore { store: Arc::new(store), prefix: opts.prefix.clone(), rt })
    }

    fn key(&self, name: &str) -> Result<ObjectPath, EvidenceError> {
        if name.is_empty()
            || name.split('/').any(|c| c.is_empty() || c == "." || c == "..")
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"./-_".contains(&b))
        {
            return Err(EvidenceError::Crypto(format!("invalid blob name `{name}`")));
        }
        ObjectPath::parse(format!("{}{name}", self.prefix))
            .map_err(|e| s3_err("invalid key for", name, e))
    }
}

impl BlobStore for S3BlobStore {
    fn create_temp(&self) -> Result<(String, Box<dyn BlobWrite>), EvidenceError> {
        let name = format!("blobs/{}.age", random_hex(16)?);
        let key = self.key(&name)?;
        Ok((
            name.clone(),
            Box::new(S3Writer {
                store: self.store.clone(),
                rt: self.rt.clone(),
                key,
                name,
                buf: Vec::new(),
                upload: None,
            }),
        ))
    }

    fn commit(&self, temp: &str, _name: &str) -> Result<String, EvidenceError> {
        // Uploaded under its final key already (see the module documentation).
        Ok(temp.to_owned())
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>, EvidenceError> {
        let key = self.key(name)?;
        let store = self.store.clone();
        let k2 = key.clone();
        let meta = self
            .rt
            .block_on(async move { store.head(&k2).await })
            .map_err(|e| s3_err("cannot open blob", name, e))?;
        Ok(Box::new(S3Reader {
            store: self.store.clone(),
            rt: self.rt.clone(),
            key,
            size: meta.size,
            at: 0,
            chunk: Vec::new(),
            pos: 0,
        }))
    }

    fn delete(&self, name: &str) -> Result<(), EvidenceError> {
        let key = self.key(name)?;
        let store = self.store.clone();
        match self.rt.block_on(async move { store.delete(&key).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(s3_err("cannot remove blob", name, e)),
        }
    }
}

/// A blob being uploaded.
struct S3Writer {
    store: Arc<AmazonS3>,
    rt: Handle,
    key: ObjectPath,
    name: String,
    /// Bytes not yet handed to the upload (less than one part).
    buf: Vec<u8>,
    /// The multipart upload, once the blob has reached one part.
    upload: Option<WriteMultipart>,
}

impl Write for S3Writer {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PART {
            let part = std::mem::take(&mut self.buf);
            let (store, key) = (self.store.clone(), self.key.clone());
            let mut upload = self.upload.take();
            let upload = self.rt.block_on(async move {
                let mut w = match upload.take() {
                    Some(w) => w,
                    None => {
                        WriteMultipart::new_with_chunk_size(store.put_multipart(&key).await?, PART)
                    }
                };
                w.write(&part);
                // At most two parts in flight: memory stays bounded.
                w.wait_for_capacity(2).await?;
                Ok::<_, object_store::Error>(w)
            });
            self.upload = Some(upload.map_err(io::Error::other)?);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl BlobWrite for S3Writer {
    fn finish(mut self: Box<Self>) -> Result<(), EvidenceError> {
        let rest = std::mem::take(&mut self.buf);
        let (store, key) = (self.store.clone(), self.key.clone());
        let upload = self.upload.take();
        self.rt
            .block_on(async move {
                match upload {
                    None => store.put(&key, PutPayload::from(rest)).await.map(|_| ()),
                    Some(mut w) => {
                        w.write(&rest);
                        w.finish().await.map(|_| ())
                    }
                }
            })
            .map_err(|e| s3_err("cannot store blob", &self.name, e))
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        // Not finished: abort the multipart upload so that no part is left in the bucket.
        if let Some(w) = self.upload.take() {
            self.rt.spawn(async move {
                let _ = w.abort().await;
            });
        }
    }
}

/// A blob read in ranges of [`PART`] bytes.
struct S3Reader {
    store: Arc<AmazonS3>,
    rt: Handle,
    key: ObjectPath,
    size: u64,
    at: u64,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for S3Reader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.chunk.len() {
            if self.at >= self.size {
                return Ok(0);
            }
            let end = (self.at + PART as u64).min(self.size);
            let (store, key, range) = (self.store.clone(), self.key.clone(), self.at..end);
            let bytes = self
                .rt
                .block_on(async move { store.get_range(&key, range).await })
                .map_err(io::Error::other)?;
            if bytes.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the blob is shorter than its size",
                ));
            }
            self.at += bytes.len() as u64;
            self.chunk = bytes.to_vec();
            self.pos = 0;
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
