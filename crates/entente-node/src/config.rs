//! The node's configuration file, `entente.toml`.

use entente_core::PartyCode;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Name of the configuration file inside the data directory.
pub const CONFIG_FILE: &str = "entente.toml";

/// The node's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The party this node acts for (ISO 3166-1 alpha-2, or EU).
    pub party: PartyCode,
    /// The authority running the node.
    pub name: String,
    /// Storage URL: `sqlite://entente.sqlite` (default: a path relative to the data
    /// directory, so that the directory can be moved or copied), an absolute
    /// `sqlite:///path`, or `postgres://…`. Use [`NodeConfig::database_url_in`] to open it.
    pub database_url: String,
    /// Directory for blobs (evidence), relative to the data directory unless absolute.
    pub blob_dir: PathBuf,
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Address the federation endpoint (mutual TLS, partner nodes only) listens on; no
    /// federation listener when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation_listen: Option<SocketAddr>,
    /// Largest difference, in seconds, accepted between a partner's clock (an envelope's
    /// `created`) and this node's; older or newer envelopes are refused as stale.
    #[serde(default = "default_clock_skew")]
    pub clock_skew_secs: u32,
    /// Evidence: the largest upload accepted through the API and where blobs are stored.
    #[serde(default, skip_serializing_if = "EvidenceConfig::is_default")]
    pub evidence: EvidenceConfig,
    /// Deconfliction (`[psi]`): the contact point of the labels of keys rotated on the
    /// agreements' schedule by `entente serve`, and how often it checks.
    #[serde(default, skip_serializing_if = "PsiConfig::is_default")]
    pub psi: PsiConfig,
    /// Limits against hostile clients (`[limits]`): deadlines and connection budgets of the
    /// API and the federation port, and the window in which refusals are counted.
    #[serde(default, skip_serializing_if = "LimitsConfig::is_default")]
    pub limits: LimitsConfig,
    /// The public transparency report (`[reports]`): the privacy budget per period, the ε of
    /// a release, and the contribution bounds per case (`docs/transparency.md`).
    #[serde(default, skip_serializing_if = "ReportsConfig::is_default")]
    pub reports: ReportsConfig,
    /// Maintenance (`[maintenance]`): the grace period after which crash leftovers in the
    /// blob store are swept.
    #[serde(default, skip_serializing_if = "MaintenanceConfig::is_default")]
    pub maintenance: MaintenanceConfig,
    /// The user-facing API's transport (`[api]`): HTTPS with which certificate, or plain
    /// HTTP on loopback (`crate::tls`).
    #[serde(default, skip_serializing_if = "ApiConfig::is_default")]
    pub api: ApiConfig,
}

/// The `[api]` section: how the API, TAXII and the web interface are served.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Serve HTTPS (as `entente serve --tls` does).
    pub tls: bool,
    /// PEM certificate chain to serve with, relative to the data directory unless absolute;
    /// the node's own certificate (`node.cert.pem`) when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert` (PKCS#8, SEC1 or PKCS#1); `node.key.pem` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Allow plain HTTP on an address beyond loopback: only when a TLS-terminating proxy is
    /// in front (default false: plain HTTP is served on loopback only).
    pub plain_http_beyond_loopback: bool,
}

impl ApiConfig {
    fn is_default(&self) -> bool {
        *self == ApiConfig::default()
    }
}

/// The `[maintenance]` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaintenanceConfig {
    /// Seconds a temporary blob part, or a blob no committed row names, must be left
    /// untouched before a sweep removes it (default one hour: an upload in progress keeps
    /// writing its part, and a blob is committed moments before its row).
    pub sweep_grace_secs: u64,
    /// Whether `entente serve` sweeps at start-up (default true).
    pub sweep_at_start: bool,
}

/// Default grace period of a sweep: an hour.
pub const DEFAULT_SWEEP_GRACE_SECS: u64 = 3600;

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig { sweep_grace_secs: DEFAULT_SWEEP_GRACE_SECS, sweep_at_start: true }
    }
}

impl MaintenanceConfig {
    fn is_default(&self) -> bool {
        *self == MaintenanceConfig::default()
    }
}

/// A TCP port on 127.0.0.1 that is free now, for a node that is configured before it is
/// started (the pilot, benchmarks, tests): its address goes into `entente.toml` and into its
/// partners' pins, so it cannot be "port 0, whatever the kernel picks at bind time".
///
/// The port is taken below the kernel's ephemeral range (`ip_local_port_range`, read on Linux,
/// 32768 elsewhere), where outgoing connections never get their local port: a port from that
/// range can be taken by any client socket between the choice and the node's bind, which
/// happened on a busy machine. Ports are handed out in turn from an offset that depends on the
/// process id, so that two processes choosing at once rarely try the same one, and each is
/// checked by binding it.
pub fn free_loopback_port() -> std::io::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .filter(|&n: &u32| (11_024..=65_535).contains(&n))
        .unwrap_or(32_768);
    // The 10,000 ports just below the ephemeral range.
    let span = 10_000;
    let base = low - span;
    let start = std::process::id().wrapping_mul(7_919);
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = base + start.wrapping_add(n) % span;
        let Ok(port) = u16::try_from(port) else { continue };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    // Every port of the span is taken: fall back to one the kernel picks.
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// The default `database_url` that `entente init` writes: the SQLite file
/// [`crate::identity::DB_FILE`], relative to the data directory.
pub fn default_sqlite_url() -> String {
    format!("sqlite://{}", crate::identity::DB_FILE)
}

/// `url` with a relative SQLite path resolved against `data_dir` (made absolute); absolute
/// SQLite paths, `:memory:` and PostgreSQL URLs unchanged.
pub fn resolve_database_url(url: &str, data_dir: &Path) -> String {
    let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) else {
        return url.to_owned();
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path.is_empty() || path.starts_with(':') || Path::new(path).is_absolute() {
        return url.to_owned();
    }
    let dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    let joined = dir.join(path);
    match query {
        Some(q) => format!("sqlite://{}?{q}", joined.display()),
        None => format!("sqlite://{}", joined.display()),
    }
}

/// The `[reports]` section: differential privacy of the public report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportsConfig {
    /// ε allowed per period (half-year), over all its releases (default 1).
    #[serde(default = "default_budget")]
    pub budget: entente_report::Ratio,
    /// ε of one release unless the command says otherwise (default 1/2).
    #[serde(default = "default_epsilon")]
    pub epsilon: entente_report::Ratio,
    /// Requests counted per case and period (default 2).
    #[serde(default = "default_requests_per_case")]
    pub requests_per_case: u32,
    /// Deconfliction selectors counted per case and period (default 8).
    #[serde(default = "default_selectors_per_case")]
    pub selectors_per_case: u32,
}

fn default_budget() -> entente_report::Ratio {
    entente_report::Ratio::ONE
}

fn default_epsilon() -> entente_report::Ratio {
    entente_report::Ratio::HALF
}

fn default_requests_per_case() -> u32 {
    entente_report::Bounds::default().requests_per_case
}

fn default_selectors_per_case() -> u32 {
    entente_report::Bounds::default().selectors_per_case
}

impl Default for ReportsConfig {
    fn default() -> Self {
        ReportsConfig {
            budget: default_budget(),
            epsilon: default_epsilon(),
            requests_per_case: default_requests_per_case(),
            selectors_per_case: default_selectors_per_case(),
        }
    }
}

impl ReportsConfig {
    fn is_default(&self) -> bool {
        *self == ReportsConfig::default()
    }

    /// The contribution bounds.
    pub fn bounds(&self) -> entente_report::Bounds {
        entente_report::Bounds {
            requests_per_case: self.requests_per_case,
            selectors_per_case: self.selectors_per_case,
        }
    }
}

/// The `[limits]` section. Every field has a default; a test sets small deadlines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Seconds a client has to send a request's headers, on both listeners (a connection
    /// that has not sent them by then is closed).
    pub header_timeout_secs: u32,
    /// Seconds an API connection may stay open with no bytes read or written (a stalled body
    /// or a client that stops reading its answer; a request in progress is finished first).
    /// Between requests the header deadline applies.
    pub idle_timeout_secs: u32,
    /// Most connections open on the API at once.
    pub max_connections: u32,
    /// Most API connections open at once from one address (an IPv6 address by its /64).
    pub max_connections_per_address: u32,
    /// Seconds a client has to complete the federation port's TLS handshake.
    pub handshake_timeout_secs: u32,
    /// Most federation connections from one address that have not completed the handshake.
    pub max_handshakes_per_address: u32,
    /// Most federation connections at once that are not (yet) a pinned partner's:
    /// handshakes under way and unpinned certificates.
    pub max_unpinned_connections: u32,
    /// Most federation connections from one address, past the handshake, whose certificate
    /// is no pinned partner's (an IPv6 address by its /64): one client cannot hold the whole
    /// unpinned budget.
    pub max_unpinned_per_address: u32,
    /// Most federation connections at once whose certificate is a pinned partner's; a
    /// separate budget, so that unpinned clients never starve partners.
    pub max_partner_connections: u32,
    /// Seconds of the window in which refusals of unauthenticated callers are counted per
    /// source and recorded as one ledger entry.
    pub refusal_window_secs: u32,
    /// Most sources kept apart in one window; beyond it, sources are counted together.
    pub refusal_sources_per_window: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            header_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_connections: 1024,
            max_connections_per_address: 256,
            handshake_timeout_secs: 10,
            max_handshakes_per_address: 16,
            max_unpinned_connections: 256,
            max_unpinned_per_address: 16,
            max_partner_connections: 256,
            refusal_window_secs: 60,
            refusal_sources_per_window: 256,
        }
    }
}

impl LimitsConfig {
    fn is_default(&self) -> bool {
        *self == LimitsConfig::default()
    }

    /// A deadline of `secs` seconds (at least one).
    pub fn secs(secs: u32) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(secs.max(1)))
    }

    /// A budget of `n` (at least one).
    pub fn count(n: u32) -> usize {
        usize::try_from(n.max(1)).unwrap_or(usize::MAX)
    }
}

/// The `[psi]` section: key rotation on the deconfliction agreements' schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PsiConfig {
    /// Whom a partner with a match should ask (the contact point of every label), for the
    /// rotations `entente serve` runs when an agreement's `key_rotation` is due. Without it,
    /// keys are rotated only by `entente psi rotate` (and the server says so at start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// Seconds between two checks of which agreements are due (default 60).
    #[serde(default = "default_psi_check")]
    pub check_secs: u32,
}

/// Default interval between two checks of the rotation schedule: a minute.
pub const DEFAULT_PSI_CHECK_SECS: u32 = 60;

fn default_psi_check() -> u32 {
    DEFAULT_PSI_CHECK_SECS
}

impl Default for PsiConfig {
    fn default() -> Self {
        PsiConfig { contact: None, check_secs: DEFAULT_PSI_CHECK_SECS }
    }
}

impl PsiConfig {
    fn is_default(&self) -> bool {
        *self == PsiConfig::default()
    }
}

/// The `[evidence]` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceConfig {
    /// Largest body of `POST /api/v1/cases/{id}/evidence`, in bytes (larger: 413).
    #[serde(default = "default_max_upload")]
    pub max_upload_bytes: u64,
    /// S3-compatible object storage for blobs (`[evidence.store]`); the local `blob_dir`
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<ObjectStoreConfig>,
    /// Where the blobs are kept, as a party code (a bucket's country); the node's own party
    /// when absent. Checked against the agreements' residency clauses for data received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<PartyCode>,
}

/// Default upload limit: 64 GiB (a disk image).
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 64 << 30;

fn default_max_upload() -> u64 {
    DEFAULT_MAX_UPLOAD_BYTES
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        EvidenceConfig {
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            store: None,
            jurisdiction: None,
        }
    }
}

impl EvidenceConfig {
    fn is_default(&self) -> bool {
        *self == EvidenceConfig::default()
    }
}

/// `[evidence.store]`: blobs in an S3-compatible bucket. Credentials are never written in the
/// file: it names the environment variables that hold them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectStoreConfig {
    /// The kind of store; `s3` (AWS S3 or a compatible service).
    pub kind: ObjectStoreKind,
    /// The bucket.
    pub bucket: String,
    /// Endpoint URL of an S3-compatible service; AWS when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Region.
    #[serde(default = "default_region")]
    pub region: String,
    /// Key prefix for this node's blobs (empty, or ending in `/`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// The environment variable holding the access key id.
    #[serde(default = "default_key_id_env")]
    pub access_key_id_env: String,
    /// The environment variable holding the secret access key.
    #[serde(default = "default_secret_env")]
    pub secret_access_key_env: String,
    /// Allow a plain `http://` endpoint (a test server on this machine).
    #[serde(default)]
    pub allow_http: bool,
}

/// Kinds of object store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectStoreKind {
    /// S3 or an S3-compatible service.
    S3,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

fn default_key_id_env() -> String {
    "AWS_ACCESS_KEY_ID".to_owned()
}

fn default_secret_env() -> String {
    "AWS_SECRET_ACCESS_KEY".to_owned()
}

/// Default allowed clock skew between nodes: five minutes.
pub const DEFAULT_CLOCK_SKEW_SECS: u32 = 300;

fn default_clock_skew() -> u32 {
    DEFAULT_CLOCK_SKEW_SECS
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is missing or unreadable.
    #[error(
        "cannot read {path}: {source}; is this the data directory of a node made by `entente init`?"
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid for this format.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong and what is expected.
        message: String,
    },
}

impl NodeConfig {
    /// Reads and checks `DIR/entente.toml`.
    ///
    /// # Errors
    /// Missing file, or an invalid value with its position.
    pub fn load(data_dir: &Path) -> Result<NodeConfig, ConfigError> {
        let path = data_dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|source| ConfigError::Read { path: path.clone(), source })?;
        Self::parse(&path, &text)
    }

    /// Parses configuration text; `path` is used in errors.
    ///
    /// # Errors
    /// An invalid value with its file, line, column and key.
    pub fn parse(path: &Path, text: &str) -> Result<NodeConfig, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| {
                    let before = &text[..s.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let column =
                        before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
                    (line, column)
                })
                .unwrap_or((1, 1));
            // Name the key when the error points into a `key = value` line.
            let key = text
                .lines()
                .nth(line - 1)
                .and_then(|l| l.split_once('='))
                .map(|(k, _)| k.trim())
                .filter(|k| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                });
            let message = match key {
                Some(k) if !e.message().contains(&format!("`{k}`")) => {
                    format!("key `{k}`: {}", e.message())
                }
                _ => e.message().to_owned(),
            };
            ConfigError::Invalid { path: path.to_owned(), line, column, message }
        })
    }

    /// The database URL to open for the node in `data_dir`: [`resolve_database_url`].
    pub fn database_url_in(&self, data_dir: &Path) -> String {
        resolve_database_url(&self.database_url, data_dir)
    }

    /// The configuration as TOML.
    ///
    /// # Errors
    /// Only if a value cannot be represented.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "party = \"NL\"\nname = \"Team High Tech Crime\"\ndatabase_url = \"sqlite://x\"\nblob_dir = \"blobs\"\nlisten = \"127.0.0.1:7400\"\n";

    fn err(text: &str) -> String {
        NodeConfig::parse(Path::new("d/entente.toml"), text).unwrap_err().to_string()
    }

    #[test]
    fn evidence_section() {
        let c = NodeConfig::parse(Path::new("x"), GOOD).unwrap();
        assert_eq!(c.evidence, EvidenceConfig::default());
        let text = format!(
            "{GOOD}[evidence]\nmax_upload_bytes = 1024\n[evidence.store]\nkind = \"s3\"\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:9000\"\nallow_http = true\n"
        );
        let c = NodeConfig::parse(Path::new("x"), &text).unwrap();
        assert_eq!(c.evidence.max_upload_bytes, 1024);
        let s = c.evidence.store.as_ref().unwrap();
        assert_eq!((s.bucket.as_str(), s.region.as_str()), ("b", "us-east-1"));
        assert_eq!(s.access_key_id_env, "AWS_ACCESS_KEY_ID");
        assert_eq!(NodeConfig::parse(Path::new("x"), &c.to_toml().unwrap()).unwrap(), c);
        let e = err(&format!("{GOOD}[evidence.store]\nkind = \"ftp\"\nbucket = \"b\"\n"));
        assert!(e.contains("kind") && e.contains("s3"), "{e}");
    }

    #[test]
    fn limits_section() {
        let c = NodeConfig::parse(Path::new("x"), GOOD).unwrap();
        assert_eq!(c.limits, LimitsConfig::default());
        let text =
            format!("{GOOD}[limits]\nheader_timeout_secs = 1\nmax_partner_connections = 4\n");
        let c = NodeConfig::parse(Path::new("x"), &text).unwrap();
        assert_eq!(c.limits.header_timeout_secs, 1);
        assert_eq!(c.limits.max_partner_connections, 4);
        assert_eq!(c.limits.idle_timeout_secs, LimitsConfig::default().idle_timeout_secs);
        assert_eq!(NodeConfig::parse(Path::new("x"), &c.to_toml().unwrap()).unwrap(), c);
        let e = err(&format!("{GOOD}[limits]\nmax_sockets = 3\n"));
        assert!(e.contains("unknown field `max_sockets`"), "{e}");
    }

    #[test]
    fn database_url_resolution() {
        let d = Path::new("/srv/nl");
        assert_eq!(
            resolve_database_url("sqlite://entente.sqlite", d),
            "sqlite:///srv/nl/entente.sqlite"
        );
        assert_eq!(
            resolve_database_url("sqlite:db/x.sqlite?mode=rwc", d),
            "sqlite:///srv/nl/db/x.sqlite?mode=rwc"
        );
        for same in [
            "sqlite:///var/lib/entente.sqlite?mode=rwc",
            "sqlite::memory:",
            "postgres://u@h:5432/db",
        ] {
            assert_eq!(resolve_database_url(same, d), same);
        }
        let c = NodeConfig::parse(Path::new("x"), GOOD).unwrap();
        assert_eq!(c.database_url_in(d), "sqlite:///srv/nl/x");
        assert_eq!(c.maintenance, MaintenanceConfig::default());
        let c = NodeConfig::parse(
            Path::new("x"),
            &format!("{GOOD}[maintenance]\nsweep_grace_secs = 0\n"),
        )
        .unwrap();
        assert_eq!(c.maintenance.sweep_grace_secs, 0);
        assert!(c.maintenance.sweep_at_start);
        assert_eq!(NodeConfig::parse(Path::new("x"), &c.to_toml().unwrap()).unwrap(), c);
    }

    #[test]
    fn parses_good_config() {
        let c = NodeConfig::parse(Path::new("x"), GOOD).unwrap();
        assert_eq!(c.party.as_str(), "NL");
        assert_eq!(NodeConfig::parse(Path::new("x"), &c.to_toml().unwrap()).unwrap(), c);
    }

    #[test]
    fn unknown_party_names_line_and_key() {
        let e = err(&GOOD.replace("\"NL\"", "\"XX\""));
        assert!(e.starts_with("d/entente.toml:1:9: key `party`: unknown party code `XX`"), "{e}");
    }

    #[test]
    fn bad_listen_address() {
        let e = err(&GOOD.replace("127.0.0.1:7400", "localhost"));
        assert!(e.starts_with("d/entente.toml:5:10: key `listen`:"), "{e}");
    }

    #[test]
    fn missing_and_unknown_keys() {
        let e = err(&GOOD.replace("name = \"Team High Tech Crime\"\n", ""));
        assert!(e.contains("missing field `name`"), "{e}");
        let e = err(&format!("{GOOD}colour = \"blue\"\n"));
        assert!(e.contains("d/entente.toml:6:1: unknown field `colour`"), "{e}");
        let e = err("party = ");
        assert!(e.starts_with("d/entente.toml:1:"), "{e}");
    }
}
