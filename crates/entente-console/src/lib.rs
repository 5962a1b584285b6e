//! What every command-line entry point of Entente shares (the `entente` binary and the
//! crates it runs as commands, `entente-pilot` and `entente-bench`):
//!
//! - [`Exit`], the exit codes `entente` documents (0 success; 1 a check failed or the node
//!   failed; 2 bad input; 3 the gate denied the action);
//! - [`Failure`], an error with the exit code it deserves: any error converts into one, its
//!   code read from its chain of causes ([`exit_code_for`]); [`fail`] makes one from a message;
//! - [`permitted`] and [`denial`], how every command says what the gate decided;
//! - [`instant`], the `--now` of the commands that evaluate clocks;
//! - [`progress_bar`] and [`FileProgress`], the progress bars on standard error.
//!
//! Nothing here decides, stores or sends anything: the node's operations live in
//! `entente-node`, which knows nothing of exit codes.

use entente_core::Decision;
use entente_node::NodeError;
use entente_node::packages::PackagesError;
use entente_node::taxii_client::TaxiiClientError;
use entente_store::{GateError, Verdict};
use jiff::Timestamp;
use std::io::IsTerminal as _;
use std::path::Path;

/// The exit codes of `entente` (the README documents them): 0 is success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// A check failed, or the node could not do its part (store, I/O, an internal fault).
    Failed = 1,
    /// The input was wrong: a file, an argument, a name that does not exist.
    BadInput = 2,
    /// The gate denied the action (the denial is recorded in the ledger).
    Denied = 3,
}

/// An error with the exit code it deserves.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: Exit,
    /// What went wrong, with its causes.
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        let error = e.into();
        let code = exit_code_for(&error);
        Failure { code, error }
    }
}

impl Failure {
    /// The same failure (same exit code), its message prefixed by `context`.
    #[must_use]
    pub fn context(self, context: impl std::fmt::Display + Send + Sync + 'static) -> Failure {
        Failure { code: self.code, error: self.error.context(context) }
    }
}

/// A failure with exit code `code` and the message `msg`.
pub fn fail(code: Exit, msg: impl std::fmt::Display) -> Failure {
    Failure { code, error: anyhow::anyhow!("{msg}") }
}

/// A deny as the command line says it: `denied by RULES (ledger entry N): REASON`.
pub fn denial(index: u64, decision: &Decision) -> String {
    format!("denied by {} (ledger entry {index}): {}", decision.rules.join(", "), decision.reason)
}

/// The ledger index and output of a permitted command; a deny is a failure with exit code 3
/// that names the rules, the ledger entry and the reason ([`denial`]).
///
/// # Errors
/// The gate denied the command.
pub fn permitted<T>(verdict: Verdict<T>) -> Result<(u64, T), Failure> {
    match verdict {
        Verdict::Permitted { index, output, .. } => Ok((index, output)),
        Verdict::Denied { index, decision } => Err(fail(Exit::Denied, denial(index, &decision))),
    }
}

/// The instant a `--now` flag gives (RFC 3339), or the system clock without one.
///
/// # Errors
/// Bad input (exit 2): the text is not an RFC 3339 instant.
pub fn instant(text: Option<String>) -> Result<Timestamp, Failure> {
    match text {
        None => Ok(Timestamp::now()),
        Some(text) => text.parse::<Timestamp>().map_err(|e| {
            fail(
                Exit::BadInput,
                format!(
                    "--now `{text}`: {e}; expected an RFC 3339 instant such as 2026-12-01T00:00:00Z"
                ),
            )
        }),
    }
}

/// The exit code an error deserves, from the first cause in its chain that says: a node,
/// gate, packaging or TAXII client error, an unknown party or role. Anything else is a
/// failure (1).
pub fn exit_code_for(error: &anyhow::Error) -> Exit {
    for cause in error.chain() {
        if let Some(e) = cause.downcast_ref::<NodeError>() {
            return match e {
                NodeError::Store(_) | NodeError::Io { .. } => Exit::Failed,
                NodeError::Gate(e) if internal(e) => Exit::Failed,
                _ => Exit::BadInput,
            };
        }
        if let Some(e) = cause.downcast_ref::<GateError>() {
            return if internal(e) { Exit::Failed } else { Exit::BadInput };
        }
        if let Some(e) = cause.downcast_ref::<PackagesError>() {
            return packages_exit(e);
        }
        if let Some(e) = cause.downcast_ref::<TaxiiClientError>() {
            return taxii_exit(e);
        }
        if cause.downcast_ref::<entente_core::ids::UnknownParty>().is_some()
            || cause.downcast_ref::<entente_core::ids::UnknownRole>().is_some()
        {
            return Exit::BadInput;
        }
    }
    Exit::Failed
}

fn packages_exit(e: &PackagesError) -> Exit {
    match e {
        PackagesError::BadInput(_) => Exit::BadInput,
        PackagesError::Denied { .. } => Exit::Denied,
        PackagesError::Gate(e) => {
            if internal(e) {
                Exit::Failed
            } else {
                Exit::BadInput
            }
        }
        PackagesError::Item { source, .. } => packages_exit(source),
        _ => Exit::Failed,
    }
}

fn taxii_exit(e: &TaxiiClientError) -> Exit {
    match e {
        TaxiiClientError::NotPinned(_) => Exit::BadInput,
        TaxiiClientError::Server { status, .. } if status.is_client_error() => Exit::BadInput,
        TaxiiClientError::Denied(_) => Exit::Denied,
        TaxiiClientError::Gate(e) => {
            if internal(e) {
                Exit::Failed
            } else {
                Exit::BadInput
            }
        }
        _ => Exit::Failed,
    }
}

/// An error and its causes, as `{:#}` prints an `anyhow::Error`: `error: cause: cause`.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A fault of the node, not of the caller's input.
pub fn internal(e: &GateError) -> bool {
    matches!(
        e,
        GateError::Store(_)
            | GateError::Closed
            | GateError::Encoding(_)
            | GateError::Internal(_)
            | GateError::Held(_)
    )
}

/// A progress bar of `total` steps on standard error, labelled `what`.
pub fn progress_bar(total: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// The progress of reading one file, in bytes: a bar on standard error when it is a terminal
/// and the file is at least 64 MiB, nothing otherwise.
#[derive(Clone, Debug)]
pub struct FileProgress(Option<indicatif::ProgressBar>);

impl FileProgress {
    /// The progress of reading `path`.
    pub fn for_file(path: &Path) -> FileProgress {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        FileProgress((std::io::stderr().is_terminal() && size >= 64 << 20).then(|| {
            let b = progress_bar(size, &format!("{}", path.display()));
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        }))
    }

    /// A callback that moves the bar to the bytes read so far.
    pub fn updater(&self) -> impl FnMut(u64) + Send + 'static {
        let bar = self.0.clone();
        move |n| {
            if let Some(b) = &bar {
                b.set_position(n);
            }
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}
