//! Helpers shared by the integration tests: running the real `entente` binary, nodes in
//! temporary directories, and `entente serve` children that never outlive a test.

#![allow(dead_code, reason = "each test binary uses a different subset of these helpers")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `entente` binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_entente");

/// Runs `entente ARGS` to completion (in `cwd` when given) and returns its output.
pub(crate) fn entente_in(cwd: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("ENTENTE_LOG").env_remove("ENTENTE_LOG_FORMAT");
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    cmd.stdin(Stdio::null()).output().expect("run entente")
}

/// Runs `entente ARGS` to completion and returns its output.
pub(crate) fn entente(args: &[&str]) -> Output {
    entente_in(None, args)
}

/// The path of a tool the project did not write, on PATH (the interop venv puts them there);
/// `None` (with a note) when it is missing and interop is not required
/// (`ENTENTE_INTEROP=required`, as scripts/test.sh sets it, makes a missing tool a failure).
pub(crate) fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|p| p.is_file()));
    if found.is_none() {
        assert!(
            std::env::var("ENTENTE_INTEROP").as_deref() != Ok("required"),
            "{name} not on PATH and ENTENTE_INTEROP=required (run scripts/pyenv.sh)"
        );
        eprintln!("skipped: {name} not on PATH");
    }
    found
}

/// Bytes as text (lossy).
pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Stdout as text.
pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as text.
pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `entente ARGS` and asserts it succeeded.
pub(crate) fn entente_ok(args: &[&str]) -> Output {
    let o = entente(args);
    assert!(
        o.status.success(),
        "entente {args:?} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(&o),
        stderr(&o)
    );
    o
}

/// A path as `&str` (temporary directories are UTF-8 here).
pub(crate) fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A node made by `entente init`.
pub(crate) struct NodeDir {
    /// Its data directory.
    pub(crate) dir: PathBuf,
    /// The verifier key `init` printed.
    pub(crate) verifier_key: String,
}

/// `entente init --data-dir DIR --party PARTY --name NAME`, returning the verifier key.
pub(crate) fn init_node(dir: &Path, party: &str) -> NodeDir {
    let o = entente_ok(&["init", "--data-dir", s(dir), "--party", party, "--name", "Test Unit"]);
    let out = stdout(&o);
    let verifier_key = out
        .lines()
        .find_map(|l| l.strip_prefix("  verifier key"))
        .map(|rest| rest.trim().to_owned())
        .unwrap_or_else(|| panic!("no verifier key in init output:\n{out}"));
    NodeDir { dir: dir.to_owned(), verifier_key }
}

/// `entente user add`, returning the token it printed.
pub(crate) fn add_user(dir: &Path, name: &str, role: &str) -> String {
    let o = entente_ok(&["user", "add", "--data-dir", s(dir), "--name", name, "--role", role]);
    let out = stdout(&o);
    out.lines()
        .find_map(|l| l.strip_prefix("token (shown once, store it safely): "))
        .map(|t| t.trim().to_owned())
        .unwrap_or_else(|| panic!("no token in user add output:\n{out}"))
}

/// A free TCP port on 127.0.0.1, below the ephemeral range so that no client socket of a
/// concurrent test takes it before the node binds it.
pub(crate) fn free_port() -> u16 {
    entente_node::config::free_loopback_port().expect("a free loopback port")
}

/// A child process that is killed (SIGKILL) and reaped when dropped, so that no
/// `entente serve` outlives its test, even when an assertion fails.
pub(crate) struct ChildGuard(pub(crate) Option<Child>);

impl ChildGuard {
    /// Kills the child now (SIGKILL on unix) and waits for it.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether the child has exited (and how).
    pub(crate) fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.0.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running `entente serve`.
pub(crate) struct Server {
    /// The process.
    pub(crate) child: ChildGuard,
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub(crate) url: String,
}

impl Server {
    /// `POST {url}{path}` with a bearer token and a JSON body.
    pub(crate) fn post(
        &self,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> impl Future<Output = reqwest::Result<reqwest::Response>> {
        reqwest::Client::new()
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .json(&body)
            .send()
    }

    /// `GET {url}{path}` with a bearer token.
    pub(crate) fn get(
        &self,
        path: &str,
        token: &str,
    ) -> impl Future<Output = reqwest::Result<reqwest::Response>> {
        reqwest::Client::new().get(format!("{}{path}", self.url)).bearer_auth(token).send()
    }

    /// Starts `entente serve --data-dir DIR --listen 127.0.0.1:PORT` and waits (at most
    /// `timeout`) until `/healthz` answers 200. Retries on another port if the chosen one was
    /// taken meanwhile.
    pub(crate) async fn start(dir: &Path, timeout: Duration) -> Server {
        Server::start_with(dir, &[], timeout).await
    }

    /// As [`Server::start`], with more arguments for `entente serve` (for example
    /// `--federation-listen 127.0.0.1:PORT`).
    pub(crate) async fn start_with(dir: &Path, extra: &[&str], timeout: Duration) -> Server {
        // `--tls`: HTTPS with the node's own certificate, which the probe pins.
        let tls = extra.contains(&"--tls");
        let client = if tls {
            https_client(dir)
        } else {
            reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("http client")
        };
        let mut last = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let listen = format!("127.0.0.1:{port}");
            // Stderr goes to an anonymous file, read back only if the server fails to start.
            let mut log = tempfile::tempfile().expect("log file");
            let child = Command::new(BIN)
                .args(["serve", "--data-dir", s(dir), "--listen", &listen])
                .args(extra)
                .env_remove("ENTENTE_LOG")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log.try_clone().expect("clone log file")))
                .spawn()
                .expect("spawn entente serve");
            let mut guard = ChildGuard(Some(child));
            let url = format!("{}://{listen}", if tls { "https" } else { "http" });
            let deadline = Instant::now() + timeout;
            while Instant::now() < deadline {
                if let Some(status) = guard.try_wait() {
                    let mut err = String::new();
                    {
                        use std::io::{Read as _, Seek as _};
                        let _ = log.rewind();
                        let _ = log.read_to_string(&mut err);
                    }
                    last = format!("entente serve exited with {status}: {err}");
                    break;
                }
                if let Ok(r) = client.get(format!("{url}/healthz")).send().await
                    && r.status() == reqwest::StatusCode::OK
                {
                    return Server { child: guard, url };
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if last.is_empty() {
                last = format!("entente serve did not answer /healthz within {timeout:?}");
            }
            if !last.contains("cannot listen") {
                break;
            }
        }
        panic!("{last}");
    }
}

/// An HTTPS client of the node in `dir`'s API (`serve --tls`), trusting exactly its own
/// certificate.
pub(crate) fn https_client(dir: &Path) -> reqwest::Client {
    client_as(dir, dir)
}

/// A mutual-TLS client holding `who`'s node certificate and key, trusting exactly `server`'s
/// node certificate (as a partner node calls another).
pub(crate) fn client_as(who: &Path, server: &Path) -> reqwest::Client {
    let pem = std::fs::read_to_string(server.join("node.cert.pem")).expect("server certificate");
    // The node's TLS identity is private to entente-node: a test acting as the partner node
    // builds it from that node's data directory, through `danger`.
    let config =
        entente_node::danger::client_config_as(who, &pem).expect("client TLS configuration");
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(Duration::from_secs(20))
        // The node closes a connection idle for its header deadline (10 s); a pooled one older
        // than that may already be closed when the next request is written on it.
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

/// Whether `stream` is closed by its peer (EOF or error) within `limit`; what it sends
/// meanwhile is discarded.
pub(crate) async fn closed_within<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    limit: Duration,
) -> bool {
    use tokio::io::AsyncReadExt as _;
    tokio::time::timeout(limit, async {
        let mut buf = [0u8; 256];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// The first 1,000 entries of a node's ledger, read through its API with `token` (an auditor's).
pub(crate) async fn ledger_entries(api: &str, token: &str) -> Vec<serde_json::Value> {
    let all: serde_json::Value = reqwest::Client::new()
        .get(format!("{api}/api/v1/ledger/entries?from=0&to=1000"))
        .bearer_auth(token)
        .send()
        .await
        .expect("ledger entries request")
        .json()
        .await
        .expect("ledger entries JSON");
    all["entries"].as_array().cloned().unwrap_or_default()
}

/// Whether `ENTENTE_BROWSER=required` (scripts/test.sh sets it): a missing browser, driver or
/// axe-core is then a failure, not a skip.
pub(crate) fn browser_required() -> bool {
    std::env::var("ENTENTE_BROWSER").as_deref() == Ok("required")
}

/// The first of `candidates` that is installed; none is a failure when the browser is
/// required, else a skip (said on stderr).
pub(crate) fn installed(what: &str, candidates: &[&'static str]) -> Option<&'static str> {
    let found = candidates.iter().copied().find(|p| Path::new(p).is_file());
    if found.is_none() {
        assert!(!browser_required(), "{what} not installed and ENTENTE_BROWSER=required");
        eprintln!("skipped: {what} not installed");
    }
    found
}

/// Headless Chromium, when installed (scripts/test.sh installs Debian's `chromium`).
pub(crate) fn chromium() -> Option<&'static str> {
    installed(
        "chromium",
        &["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/lib/chromium/chromium"],
    )
}
