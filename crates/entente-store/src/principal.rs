//! Who acts, as an authenticator established it.
//!
//! The gate records the [`Principal`] of every command. A principal has no public
//! constructor from an [`Actor`]: it is made only here, by the authenticators —
//!
//! - a user, by the API token it presents ([`Store::authenticate_token`],
//!   [`Store::authenticate_user`]);
//! - a partner node, by the pinned certificate of its mutual-TLS connection
//!   ([`Store::peer_by_certificate`]); its envelopes then go through [`crate::Gate::receive_many`],
//!   which admits each against that pin and the sender's sequence;
//! - the operator, by holding the data directory ([`DataDirLock::operator`]), and the
//!   operator acting at the command line for a user ([`Store::operator_for`]), recorded as
//!   `operator for NAME (ROLE)`, never as the user;
//! - a caller that presented nothing usable, [`Principal::anonymous`], which carries no
//!   rights.
//!
//! ```compile_fail
//! // Code outside the store cannot turn an actor into a principal.
//! let p: entente_store::Principal = entente_core::Actor::Operator.into();
//! ```
//!
//! ```compile_fail
//! // Nor build one field by field.
//! let p = entente_store::Principal { actor: entente_core::Actor::Operator };
//! ```

use crate::store::{Store, StoreError};
use entente_core::{Actor, PartyCode};
use sha2::Digest as _;
use std::path::Path;

/// Who acts: an [`Actor`] that an authenticator established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    actor: Actor,
}

impl Principal {
    /// A caller that presented no valid credential; it is denied everything but public reads.
    pub fn anonymous() -> Principal {
        Principal { actor: Actor::Anonymous }
    }

    /// The actor the ledger records.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// Whether a credential was presented and accepted.
    pub fn is_authenticated(&self) -> bool {
        !matches!(self.actor, Actor::Anonymous)
    }

    pub(crate) fn new(actor: Actor) -> Principal {
        Principal { actor }
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.actor.fmt(f)
    }
}

/// The store's own tests act as anyone.
#[cfg(test)]
impl From<Actor> for Principal {
    fn from(actor: Actor) -> Principal {
        Principal { actor }
    }
}

/// Name of the lock file in a node's data directory.
pub const LOCK_FILE: &str = "node.lock";

/// A shared lock on a node's data directory, held for as long as a process acts on the node.
/// Taking it needs write access to the directory that holds the node's key: that is what
/// makes the operator. Several processes (the server, the CLI) may hold it at once.
#[derive(Debug)]
pub struct DataDirLock {
    _file: std::fs::File,
}

impl DataDirLock {
    /// Takes the shared lock on `dir/node.lock` (created if missing), waiting while another
    /// process holds it exclusively.
    ///
    /// # Errors
    /// The directory cannot be written, or the lock cannot be taken.
    pub fn acquire(dir: &Path) -> std::io::Result<DataDirLock> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))?;
        file.lock_shared()?;
        Ok(DataDirLock { _file: file })
    }

    /// The operator of the node whose data directory this is.
    pub fn operator(&self) -> Principal {
        Principal::new(Actor::Operator)
    }
}

impl Store {
    /// The user whose API token this is, or the anonymous principal for an empty or unknown
    /// token (the gate then records and refuses what it asks).
    ///
    /// # Errors
    /// Database errors.
    pub async fn authenticate_token(&self, token: &str) -> Result<Principal, StoreError> {
        let token = token.trim();
        if token.is_empty() {
            return Ok(Principal::anonymous());
        }
        let digest = hex::encode(sha2::Sha256::digest(token.as_bytes()));
        Ok(match self.user_by_token_sha256(&digest).await? {
            Some(u) => Principal::new(Actor::User { name: u.name, role: u.role }),
            None => Principal::anonymous(),
        })
    }

    /// The user `name` if `token` is that user's (HTTP Basic: user name and token), or the
    /// anonymous principal.
    ///
    /// # Errors
    /// Database errors.
    pub async fn authenticate_user(
        &self,
        name: &str,
        token: &str,
    ) -> Result<Principal, StoreError> {
        let p = self.authenticate_token(token).await?;
        Ok(match p.actor() {
            Actor::User { name: n, .. } if n == name => p,
            _ => Principal::anonymous(),
        })
    }

    /// The operator holding `lock` acting for the user `name`: decided with the user's role,
    /// recorded as the operator acting for that user. `None` when the node has no such user.
    ///
    /// # Errors
    /// Database errors.
    pub async fn operator_for(
        &self,
        lock: &DataDirLock,
        name: &str,
    ) -> Result<Option<Principal>, StoreError> {
        let _ = lock;
        let users = self.users().await?;
        Ok(users
            .into_iter()
            .find(|u| u.name == name)
            .map(|u| Principal::new(Actor::OperatorFor { name: u.name, role: u.role })))
    }

    /// The partner node pinned with the certificate whose DER has this SHA-256 (hex), as
    /// the mutual-TLS handshake presented it; `None` for a certificate no peer is pinned with.
    ///
    /// # Errors
    /// Database errors.
    pub async fn peer_by_certificate(
        &self,
        cert_sha256: &str,
    ) -> Result<Option<Principal>, StoreError> {
        Ok(self.peer_by_cert(cert_sha256).await?.map(|p| peer(p.party)))
    }
}

fn peer(party: PartyCode) -> Principal {
    Principal::new(Actor::Peer { party })
}
