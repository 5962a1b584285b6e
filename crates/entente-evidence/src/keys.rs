//! The node's master age key.
//!
//! `node.age.key` in the data directory holds an age X25519 identity in the format of
//! `age-keygen` (mode 0600), so a recipient can also open a package addressed to it with the
//! `age` tool: `age -d -i node.age.key package.tar.age > package.tar`.

use crate::EvidenceError;
use age::secrecy::ExposeSecret as _;
use age::x25519;
use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;

/// File name of the master key inside the data directory.
pub const MASTER_KEY_FILE: &str = "node.age.key";

/// The node's master X25519 (age) key.
pub struct MasterKey {
    identity: x25519::Identity,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.recipient())
    }
}

impl MasterKey {
    /// A fresh key.
    pub fn generate() -> MasterKey {
        MasterKey { identity: x25519::Identity::generate() }
    }

    /// The master key of the node in `data_dir`, created (mode 0600) if the node has none yet
    /// (nodes made before evidence existed).
    ///
    /// # Errors
    /// An unreadable or malformed key file, or one that cannot be created.
    pub fn load_or_create(data_dir: &Path) -> Result<MasterKey, EvidenceError> {
        let path = data_dir.join(MASTER_KEY_FILE);
        if path.exists() {
            return Self::load(&path);
        }
        let key = Self::generate();
        key.write_new(&path)?;
        Ok(key)
    }

    /// Reads an age identity file (`AGE-SECRET-KEY-1…` on a line; `#` lines are comments).
    ///
    /// # Errors
    /// Missing, unreadable or malformed file.
    pub fn load(path: &Path) -> Result<MasterKey, EvidenceError> {
        let err = |detail: String| EvidenceError::Key { path: path.to_owned(), detail };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .ok_or_else(|| err("no AGE-SECRET-KEY-1… line".into()))?;
        let identity = x25519::Identity::from_str(line)
            .map_err(|e| err(format!("not an age X25519 identity ({e})")))?;
        Ok(MasterKey { identity })
    }

    /// Writes the key to a new file, mode 0600, in the format of `age-keygen`.
    ///
    /// # Errors
    /// The file exists or cannot be written.
    pub fn write_new(&self, path: &Path) -> Result<(), EvidenceError> {
        let io = |what, source| EvidenceError::Io { what, path: PathBuf::from(path), source };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(|e| io("cannot create", e))?;
        let text = format!(
            "# Entente node master key (age X25519): opens packages addressed to this node and\n# wraps the data keys of its evidence blobs. Keep it secret; back it up.\n# public key: {}\n{}\n",
            self.recipient(),
            self.identity.to_string().expose_secret()
        );
        f.write_all(text.as_bytes()).map_err(|e| io("cannot write", e))?;
        f.sync_all().map_err(|e| io("cannot sync", e))
    }

    /// The public recipient string (`age1…`) partners encrypt packages to.
    pub fn recipient(&self) -> String {
        self.identity.to_public().to_string()
    }

    /// The identity, for decryption.
    pub fn identity(&self) -> &x25519::Identity {
        &self.identity
    }

    /// Wraps a data key: the key's identity string age-encrypted to this master key, base64.
    ///
    /// # Errors
    /// If encryption fails.
    pub fn wrap(&self, data_key: &x25519::Identity) -> Result<String, EvidenceError> {
        let plain = data_key.to_string();
        let ct = age::encrypt(&self.identity.to_public(), plain.expose_secret().as_bytes())
            .map_err(|e| EvidenceError::Crypto(format!("cannot wrap a data key: {e}")))?;
        Ok(BASE64_STANDARD.encode(ct))
    }

    /// Unwraps a data key made by [`MasterKey::wrap`].
    ///
    /// # Errors
    /// A malformed wrapped key, or one wrapped by another master key.
    pub fn unwrap(&self, wrapped: &str) -> Result<x25519::Identity, EvidenceError> {
        let ct = BASE64_STANDARD
            .decode(wrapped)
            .map_err(|e| EvidenceError::Crypto(format!("wrapped data key is not base64: {e}")))?;
        let plain = age::decrypt(&self.identity, &ct).map_err(|e| {
            EvidenceError::Crypto(format!(
                "cannot unwrap the data key with this node's master key: {e}"
            ))
        })?;
        let text = String::from_utf8(plain)
            .map_err(|_| EvidenceError::Crypto("unwrapped data key is not text".into()))?;
        x25519::Identity::from_str(text.trim())
            .map_err(|e| EvidenceError::Crypto(format!("unwrapped data key is malformed: {e}")))
    }
}

/// Parses a recipient string (`age1…`).
///
/// # Errors
/// If it is not an age X25519 recipient.
pub fn parse_recipient(s: &str) -> Result<x25519::Recipient, String> {
    x25519::Recipient::from_str(s.trim())
        .map_err(|e| format!("`{s}` is not an age X25519 recipient (age1…): {e}"))
}
