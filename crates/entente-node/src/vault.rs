//! The node's evidence vault: its master key and its blob store — the local `blob_dir`, or an
//! S3-compatible bucket when `[evidence.store]` is configured (credentials from the
//! environment variables the section names).

use crate::config::ObjectStoreKind;
use crate::identity::{Node, NodeError};
use entente_evidence::s3::{S3BlobStore, S3Options};
use entente_evidence::{BlobStore, LocalBlobStore, MasterKey};
use std::sync::Arc;

/// The master key (wraps the data key of every blob) and the blob store.
#[derive(Clone)]
pub struct Vault {
    /// The node's master age key.
    pub master: Arc<MasterKey>,
    /// Where blobs live.
    pub store: Arc<dyn BlobStore>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Vault({:?})", self.master)
    }
}

impl Node {
    /// Opens the node's vault. An object store runs its requests on the current tokio
    /// runtime; call this from within it.
    ///
    /// # Errors
    /// An unusable master key, a blob directory that cannot be made, an object store whose
    /// credentials are missing from the environment or whose options are refused.
    pub fn vault(&self) -> Result<Vault, NodeError> {
        let master = MasterKey::load_or_create(&self.data_dir)
            .map_err(|e| NodeError::Invalid(e.to_string()))?;
        let store: Arc<dyn BlobStore> = match &self.config.evidence.store {
            None => Arc::new(
                LocalBlobStore::open(&self.blob_dir())
                    .map_err(|e| NodeError::Invalid(e.to_string()))?,
            ),
            Some(c) => {
                let ObjectStoreKind::S3 = c.kind;
                let env = |var: &str, key: &str| {
                    std::env::var(var).map_err(|_| {
                        NodeError::Invalid(format!(
                            "[evidence.store] in {}: {key} names the environment variable {var}, which is not set; export it before starting the node",
                            self.data_dir.join(crate::config::CONFIG_FILE).display()
                        ))
                    })
                };
                let opts = S3Options {
                    bucket: c.bucket.clone(),
                    endpoint: c.endpoint.clone(),
                    region: c.region.clone(),
                    access_key_id: env(&c.access_key_id_env, "access_key_id_env")?,
                    secret_access_key: env(&c.secret_access_key_env, "secret_access_key_env")?,
                    prefix: c.prefix.clone(),
                    allow_http: c.allow_http,
                };
                let rt = tokio::runtime::Handle::try_current().map_err(|_| {
                    NodeError::Invalid(
                        "the object store is opened outside the node's runtime".into(),
                    )
                })?;
                Arc::new(
                    S3BlobStore::open(&opts, rt)
                        .map_err(|e| NodeError::Invalid(format!("[evidence.store]: {e}")))?,
                )
            }
        };
        Ok(Vault { master: Arc::new(master), store })
    }
}
