//! A node's identity on disk: `entente init` and loading a node from its data directory.
//!
//! Layout of a data directory:
//! - `entente.toml` — configuration ([`crate::config::NodeConfig`]);
//! - `node.key.pem` — Ed25519 private key, PKCS#8 v1 PEM, mode 0600: signs checkpoints,
//!   envelopes, acknowledgements, packages and cosignatures (only inside this crate);
//! - `node.cert.pem` — self-signed X.509 certificate of that key, for mutual TLS;
//! - `node.age.key` — the node's master age (X25519) key, mode 0600: opens evidence packages
//!   addressed to the node and wraps the data keys of its evidence blobs;
//! - `entente.sqlite` — the database, unless PostgreSQL is configured;
//! - `blobs/` — the blob store.

use crate::config::{CONFIG_FILE, ConfigError, NodeConfig};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use entente_core::PartyCode;
use entente_core::ledger;
use entente_store::{DataDirLock, Gate, GateError, Principal, Store, StoreError, Verdict};
use jiff::Timestamp;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// File name of the private key.
pub const KEY_FILE: &str = "node.key.pem";
/// File name of the certificate.
pub const CERT_FILE: &str = "node.cert.pem";
/// File name of the SQLite database.
pub const DB_FILE: &str = "entente.sqlite";

/// Errors in creating or opening a node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// `init` on a directory that already holds a node.
    #[error(
        "{path} already holds an Entente node ({what} exists); choose another --data-dir, or remove the directory to start over"
    )]
    AlreadyInitialized {
        /// The data directory.
        path: PathBuf,
        /// The file found.
        what: String,
    },
    /// The data directory does not exist or is not a directory.
    #[error(
        "data directory {0} does not exist or is not a directory; create a node there with `entente init --data-dir {0} --party XX --name NAME`"
    )]
    NoDataDir(PathBuf),
    /// The configuration is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The key file is missing, truncated or not an Ed25519 PKCS#8 key.
    #[error(
        "key file {path} is unusable: {detail}; restore it from the node's backup (the key cannot be regenerated without changing the node's identity)"
    )]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The database does not belong to this node.
    #[error("database {url} belongs to {found}, but {config} says this node is {expected}")]
    WrongDatabase {
        /// The database URL.
        url: String,
        /// What the database says.
        found: String,
        /// What the configuration says.
        expected: String,
        /// The configuration file.
        config: PathBuf,
    },
    /// An invalid option.
    #[error("{0}")]
    Invalid(String),
    /// File system error.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Storage error.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Gate error.
    #[error(transparent)]
    Gate(#[from] GateError),
}

/// Options of `entente init`.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Data directory (created if missing; must not hold a node).
    pub data_dir: PathBuf,
    /// The node's party.
    pub party: PartyCode,
    /// The authority's name.
    pub name: String,
    /// PostgreSQL URL; SQLite in the data directory when `None`.
    pub database_url: Option<String>,
    /// Listen address.
    pub listen: SocketAddr,
    /// Federation (mutual TLS) listen address, if the node federates.
    pub federation_listen: Option<SocketAddr>,
}

/// An open node: configuration, key, store and gate.
#[derive(Clone, Debug)]
pub struct Node {
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its configuration.
    pub config: NodeConfig,
    /// Its signing key: never handed out. What it signs (checkpoints, envelopes,
    /// acknowledgements, packages, cosignatures) is signed inside this crate;
    /// [`Node::verifying_key`] gives its public half.
    pub(crate) key: SigningKey,
    /// Its store (reads).
    pub store: Store,
    /// Its gate (every action).
    pub gate: Gate,
    /// The shared lock on the data directory this process holds: what makes it the operator.
    lock: std::sync::Arc<DataDirLock>,
    /// Refusals of unauthenticated callers counted and not yet recorded (shared by the API
    /// and the federation port, recorded by [`crate::refusals::Flusher`]).
    pub(crate) refusals: std::sync::Arc<crate::refusals::Refusals>,
    /// Server-side TLS handshakes by listener and negotiated group (exported on `/metrics`).
    pub(crate) handshakes: std::sync::Arc<crate::tls::Handshakes>,
}

fn refusals_for(config: &NodeConfig) -> std::sync::Arc<crate::refusals::Refusals> {
    use crate::config::LimitsConfig;
    std::sync::Arc::new(crate::refusals::Refusals::new(
        LimitsConfig::secs(config.limits.refusal_window_secs),
        LimitsConfig::count(config.limits.refusal_sources_per_window),
    ))
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> NodeError + 'a {
    move |source| NodeError::Io { what, path: path.to_owned(), source }
}

fn random_seed() -> Result<[u8; 32], NodeError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| NodeError::Invalid(format!("no system randomness: {e}")))?;
    Ok(seed)
}

/// Returns `n` random bytes from the operating system, hex-encoded (for API tokens).
///
/// # Errors
/// If the system has no randomness source.
pub fn random_hex(n: usize) -> Result<String, NodeError> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf)
        .map_err(|e| NodeError::Invalid(format!("no system randomness: {e}")))?;
    Ok(hex::encode(buf))
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), NodeError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path).map_err(io("cannot create", path))?;
    f.write_all(bytes).map_err(io("cannot write", path))?;
    f.sync_all().map_err(io("cannot sync", path))
}

/// The absolute SQLite URL of the database inside `data_dir` (created if missing).
pub fn sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", data_dir.join(DB_FILE).display())
}

impl Node {
    /// Creates a node: key, certificate, configuration, database and the ledger's first
    /// entry. On any failure, removes what it created.
    ///
    /// # Errors
    /// The directory already holds a node, or any step fails.
    pub async fn init(opts: &InitOptions, now: Timestamp) -> Result<Node, NodeError> {
        let dir = &opts.data_dir;
        if opts.name.trim().is_empty() {
            return Err(NodeError::Invalid("--name must not be empty".into()));
        }
        for f in [CONFIG_FILE, KEY_FILE, CERT_FILE, DB_FILE] {
            if dir.join(f).exists() {
                return Err(NodeError::AlreadyInitialized { path: dir.clone(), what: f.into() });
            }
        }
        let created_dir = !dir.exists();
        std::fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
        let result = Self::init_files(opts, now).await;
        if result.is_err() {
            for f in [
                CONFIG_FILE,
                KEY_FILE,
                CERT_FILE,
                entente_evidence::keys::MASTER_KEY_FILE,
                entente_store::LOCK_FILE,
                DB_FILE,
                "entente.sqlite-wal",
                "entente.sqlite-shm",
            ] {
                let _ = std::fs::remove_file(dir.join(f));
            }
            let _ = std::fs::remove_dir(dir.join("blobs"));
            if created_dir {
                let _ = std::fs::remove_dir(dir);
            }
        }
        result
    }

    async fn init_files(opts: &InitOptions, now: Timestamp) -> Result<Node, NodeError> {
        let dir = &opts.data_dir;
        let lock = DataDirLock::acquire(dir).map_err(io("cannot lock", dir))?;
        let key = SigningKey::from_bytes(&random_seed()?);
        // PKCS#8 v1 (RFC 5208: the private key alone, no public key field), the form that
        // OpenSSL 3.0 and Python's `cryptography` read; the public key is derived from it.
        let pem =
            ed25519_dalek::pkcs8::KeypairBytes { secret_key: key.to_bytes(), public_key: None }
                .to_pkcs8_pem(Default::default())
                .map_err(|e| NodeError::Invalid(format!("cannot encode key: {e}")))?;
        write_new(&dir.join(KEY_FILE), pem.as_bytes(), 0o600)?;
        let cert = self_signed_cert(&pem, &opts.party, &opts.name)?;
        write_new(&dir.join(CERT_FILE), cert.as_bytes(), 0o644)?;
        entente_evidence::MasterKey::generate()
            .write_new(&dir.join(entente_evidence::keys::MASTER_KEY_FILE))
            .map_err(|e| NodeError::Invalid(e.to_string()))?;
        std::fs::create_dir_all(dir.join("blobs")).map_err(io("cannot create", dir))?;
        let config = NodeConfig {
            party: opts.party.clone(),
            name: opts.name.clone(),
            // A path relative to the data directory (resolved by `database_url_in`), so
            // that a moved or copied directory uses its own database.
            database_url: match &opts.database_url {
                Some(url) => url.clone(),
                None => crate::config::default_sqlite_url(),
            },
            blob_dir: PathBuf::from("blobs"),
            listen: opts.listen,
            federation_listen: opts.federation_listen,
            clock_skew_secs: crate::config::DEFAULT_CLOCK_SKEW_SECS,
            evidence: crate::config::EvidenceConfig::default(),
            psi: crate::config::PsiConfig::default(),
            reports: crate::config::ReportsConfig::default(),
            limits: crate::config::LimitsConfig::default(),
            maintenance: crate::config::MaintenanceConfig::default(),
            api: crate::config::ApiConfig::default(),
        };
        // The file is created here, and only here.
        let url = config.database_url_in(dir);
        let url = if url.starts_with("sqlite:") && !url.contains('?') {
            format!("{url}?mode=rwc")
        } else {
            url
        };
        let store = Store::open(&url).await?;
        if let Some(p) = store.meta("party").await? {
            return Err(NodeError::AlreadyInitialized {
                path: dir.clone(),
                what: format!("database {} (node {p})", store.url()),
            });
        }
        let gate = Gate::start(store.clone(), key.clone(), opts.party.clone(), agreement_engine()?);
        let vkey = ledger::verifier_key(gate.origin(), &key.verifying_key());
        let verdict = gate
            .submit(
                lock.operator(),
                entente_store::users::InitNode {
                    party: opts.party.clone(),
                    name: opts.name.clone(),
                    origin: gate.origin().to_owned(),
                    verifier_key: vkey,
                },
                now,
            )
            .await?;
        if !matches!(verdict, Verdict::Permitted { .. }) {
            return Err(NodeError::Invalid(format!("node initialisation was denied: {verdict:?}")));
        }
        let text = config.to_toml().map_err(|e| NodeError::Invalid(e.to_string()))?;
        write_new(&dir.join(CONFIG_FILE), text.as_bytes(), 0o644)?;
        let refusals = refusals_for(&config);
        Ok(Node {
            data_dir: dir.clone(),
            config,
            key,
            store,
            gate,
            lock: lock.into(),
            refusals,
            handshakes: std::sync::Arc::default(),
        })
    }

    /// Opens the node in `data_dir`: configuration, key, database (migrated), gate.
    ///
    /// # Errors
    /// Missing directory, invalid configuration, unusable key, corrupted or foreign database.
    pub async fn open(data_dir: &Path) -> Result<Node, NodeError> {
        if !data_dir.is_dir() {
            return Err(NodeError::NoDataDir(data_dir.to_owned()));
        }
        let config = NodeConfig::load(data_dir)?;
        let key = load_key(&data_dir.join(KEY_FILE))?;
        let lock = DataDirLock::acquire(data_dir).map_err(io("cannot lock", data_dir))?;
        let store = Store::open(&config.database_url_in(data_dir)).await?;
        let found = store.meta("party").await?;
        let origin = ledger::origin_for(&config.party, &key.verifying_key());
        let stored_origin = store.meta("origin").await?;
        if found.as_deref() != Some(config.party.as_str())
            || stored_origin.as_deref() != Some(origin.as_str())
        {
            return Err(NodeError::WrongDatabase {
                url: store.url().to_owned(),
                found: match (found, stored_origin) {
                    (Some(p), Some(o)) => format!("node {p} (ledger {o})"),
                    _ => "no node (it was never initialised)".to_owned(),
                },
                expected: format!("{} (ledger {origin})", config.party),
                config: data_dir.join(CONFIG_FILE),
            });
        }
        let mut engine = agreement_engine_for(data_dir)?;
        // Where the blobs are kept, for the agreements' residency clauses on data received.
        if let Some(e) = std::sync::Arc::get_mut(&mut engine) {
            e.set_storage_jurisdiction(
                config.evidence.jurisdiction.clone().unwrap_or_else(|| config.party.clone()),
            );
        }
        let gate = Gate::start(store.clone(), key.clone(), config.party.clone(), engine);
        let refusals = refusals_for(&config);
        let node = Node {
            data_dir: data_dir.to_owned(),
            config,
            key,
            store,
            gate,
            lock: lock.into(),
            refusals,
            handshakes: std::sync::Arc::default(),
        };
        // A hold a witness's view caused holds again (`crate::hold`).
        crate::hold::resume(&node).await?;
        Ok(node)
    }

    /// The operator of this node: this process holds its data directory.
    pub fn operator(&self) -> Principal {
        self.lock.operator()
    }

    /// The operator acting for the node's user `name` (`--user NAME` at the command line):
    /// decided with the user's role, recorded as `operator for NAME (ROLE)`.
    ///
    /// # Errors
    /// No such user on this node, or a database error.
    pub async fn operator_for(&self, name: &str) -> Result<Principal, NodeError> {
        self.store.operator_for(&self.lock, name).await?.ok_or_else(|| {
            NodeError::Invalid(format!(
                "--user {name}: no such user on this node (see `entente user list`)"
            ))
        })
    }

    /// The node's blob directory (`blob_dir` of the configuration, relative to the data
    /// directory unless absolute).
    pub fn blob_dir(&self) -> PathBuf {
        self.data_dir.join(&self.config.blob_dir)
    }

    /// The public key of the node's signing key (Ed25519): what partners pin and verify
    /// checkpoints, envelopes and packages with.
    pub fn verifying_key(&self) -> ed25519_dalek::VerifyingKey {
        self.key.verifying_key()
    }

    /// The C2SP verifier key of this node's ledger.
    pub fn verifier_key(&self) -> String {
        ledger::verifier_key(self.gate.origin(), &self.key.verifying_key())
    }
}

/// The agreements shipped with Entente (`data/agreements/`), compiled into policy.
///
/// # Errors
/// If the shipped lexicon or agreements do not validate or compile (a defect of the build).
pub fn agreement_engine() -> Result<std::sync::Arc<entente_policy::engine::Engine>, NodeError> {
    let lexicon = entente_core::lexicon::Lexicon::builtin()
        .map_err(|e| NodeError::Invalid(format!("the shipped lexicon is invalid: {e}")))?;
    let agreements = entente_policy::agreement::builtin_agreements(&lexicon)
        .map_err(|e| NodeError::Invalid(format!("the shipped agreements are invalid: {e}")))?;
    let engine = entente_policy::engine::Engine::compile(agreements)
        .map_err(|e| NodeError::Invalid(format!("the shipped agreements do not compile: {e}")))?;
    Ok(std::sync::Arc::new(engine))
}

/// Directory, inside the data directory, of the agreements this node's authority has
/// concluded beyond those shipped (one TOML file each, the format of `docs/agreements.md`).
pub const AGREEMENTS_DIR: &str = "agreements";

/// The shipped agreements and those in `DATA_DIR/agreements/*.toml` (an arrangement between
/// CSIRTs, a signed JIT agreement), validated together (ids unique) and compiled into policy.
///
/// # Errors
/// An unreadable or invalid agreement file, each problem as `file:line:col: field: message`.
pub fn agreement_engine_for(
    data_dir: &Path,
) -> Result<std::sync::Arc<entente_policy::engine::Engine>, NodeError> {
    let dir = data_dir.join(AGREEMENTS_DIR);
    if !dir.is_dir() {
        return agreement_engine();
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| NodeError::Invalid(format!("cannot read {}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut texts = Vec::with_capacity(paths.len());
    for p in &paths {
        let text = std::fs::read_to_string(p)
            .map_err(|e| NodeError::Invalid(format!("cannot read {}: {e}", p.display())))?;
        texts.push((p.display().to_string(), text));
    }
    let mut files: Vec<(&str, &str)> = entente_policy::agreement::builtin_files().to_vec();
    files.extend(texts.iter().map(|(n, t)| (n.as_str(), t.as_str())));
    let lexicon = entente_core::lexicon::Lexicon::builtin()
        .map_err(|e| NodeError::Invalid(format!("the shipped lexicon is invalid: {e}")))?;
    let agreements = entente_policy::agreement::parse_agreements(&files, &lexicon)
        .map_err(|e| NodeError::Invalid(format!("agreements in {}: {e}", dir.display())))?;
    let engine = entente_policy::engine::Engine::compile(agreements)
        .map_err(|e| NodeError::Invalid(format!("agreements in {}: {e}", dir.display())))?;
    Ok(std::sync::Arc::new(engine))
}

/// Reads an Ed25519 PKCS#8 PEM private key.
///
/// # Errors
/// Missing, truncated or wrong-type key.
pub fn load_key(path: &Path) -> Result<SigningKey, NodeError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| NodeError::Key { path: path.to_owned(), detail: e.to_string() })?;
    SigningKey::from_pkcs8_pem(&text).map_err(|e| NodeError::Key {
        path: path.to_owned(),
        detail: format!("not an Ed25519 PKCS#8 PEM private key ({e})"),
    })
}

fn self_signed_cert(key_pem: &str, party: &PartyCode, name: &str) -> Result<String, NodeError> {
    let err =
        |e: rcgen::Error| NodeError::Invalid(format!("cannot make the node certificate: {e}"));
    let key_pair = rcgen::KeyPair::from_pem(key_pem).map_err(err)?;
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(err)?;
    params.distinguished_name.push(rcgen::DnType::CommonName, format!("Entente node {party}"));
    params.distinguished_name.push(rcgen::DnType::OrganizationName, name);
    params.distinguished_name.push(
        rcgen::DnType::CountryName,
        if party.as_str() == "EU" { "BE" } else { party.as_str() },
    );
    params.not_before = rcgen::date_time_ymd(2026, 1, 1);
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let cert = params.self_signed(&key_pair).map_err(err)?;
    Ok(cert.pem())
}
