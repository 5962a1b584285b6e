//! The node's evidence vault: its master key and its blob store — the local `blob_dir`, or an
//! S3-compatible bucket when `[evidence.store]` is configured (credentials from the
//! environment variables the section names).

use crate::identity::{Node, NodeError};
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
                return Err(NodeError::Invalid(format!(
                    "[evidence.store]: object store `{}` is not supported by this build",
                    c.bucket
                )));
            }
        };
        Ok(Vault { master: Arc::new(master), store })
    }
}
