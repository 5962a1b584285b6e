//! Refusals of callers that no authenticator admitted, counted and recorded in aggregate.
//!
//! The gate records no entry for an anonymous caller ([`GateError::Unauthenticated`]): a
//! ledger entry per 401 would let anyone write into the public, permanent log, with a subject
//! of its choosing. The API and the federation port count each such refusal here instead —
//! per source (the keyed hash of the address, [`entente_store::Gate::source`]) and time
//! window, per rule and route template — and [`Flusher`] (in `entente serve`, and once more at
//! shutdown) records each source's window as one `refusals.record` entry
//! ([`RecordRefusals`]). Memory is bounded: at most `max_sources` sources are kept apart in a
//! window, the others are counted together; the rules and routes are the node's own, a finite
//! set.

use crate::identity::Node;
use entente_store::GateError;
use entente_store::peers::{RecordRefusals, RefusalCount, RefusalSource, is_route_name};
use jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

/// The route of a call that matched no route of the node.
pub const UNROUTED: &str = "ANY /unrouted";

type Counts = BTreeMap<(String, String), u64>;

/// On a response: the call was refused by `rule` and the gate recorded nothing (an
/// unauthenticated caller); the listener counts it for the caller's source.
#[derive(Clone, Debug)]
pub(crate) struct Unrecorded(pub(crate) String);

/// On a request: the address of the connection it came on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientAddr(pub(crate) std::net::SocketAddr);

/// `METHOD TEMPLATE` of a request, from the route its router matched (never the path sent).
pub(crate) fn route_of(req: &axum::extract::Request) -> String {
    match req.extensions().get::<axum::extract::MatchedPath>() {
        Some(p) => format!("{} {}", req.method(), p.as_str()),
        None => UNROUTED.to_owned(),
    }
}

/// Counts the refusal a response carries ([`Unrecorded`]), for the address of the call.
pub(crate) fn count_response(
    node: &Node,
    addr: Option<ClientAddr>,
    route: &str,
    resp: &axum::response::Response,
) {
    if let Some(Unrecorded(rule)) = resp.extensions().get::<Unrecorded>() {
        let source = match addr {
            Some(ClientAddr(a)) => node.gate.source(a.ip()),
            None => RefusalSource::Others,
        };
        node.refusals.count(source, rule, route, Timestamp::now());
    }
}

/// The counts of refusals not yet recorded.
#[derive(Debug)]
pub struct Refusals {
    window_secs: i64,
    max_sources: usize,
    /// Window start (Unix seconds) → source → (rule, route) → count.
    windows: Mutex<BTreeMap<i64, HashMap<RefusalSource, Counts>>>,
}

impl Refusals {
    /// Counts in windows of `window` (at least a second), keeping at most `max_sources`
    /// sources apart in a window.
    pub fn new(window: Duration, max_sources: usize) -> Refusals {
        let window_secs = i64::try_from(window.as_secs()).unwrap_or(i64::MAX).max(1);
        Refusals { window_secs, max_sources: max_sources.max(1), windows: Mutex::default() }
    }

    /// The window length.
    pub fn window(&self) -> Duration {
        Duration::from_secs(u64::try_from(self.window_secs).unwrap_or(1))
    }

    /// Counts one refusal by `rule` of a call on `route` (method and template) from `source`.
    pub fn count(&self, source: RefusalSource, rule: &str, route: &str, now: Timestamp) {
        let start = now.as_second().div_euclid(self.window_secs) * self.window_secs;
        // Only the node's own names are kept; anything else is counted as unrouted.
        let route = if is_route_name(route) { route } else { UNROUTED };
        let rule = if entente_store::peers::is_rule_name(rule) { rule } else { "refused" };
        let Ok(mut windows) = self.windows.lock() else {
            return;
        };
        let window = windows.entry(start).or_default();
        let source = if window.contains_key(&source) || window.len() < self.max_sources {
            source
        } else {
            RefusalSource::Others
        };
        *window
            .entry(source)
            .or_default()
            .entry((rule.to_owned(), route.to_owned()))
            .or_default() += 1;
    }

    /// Takes the windows that ended by `now` (all of them when `all`), as the commands that
    /// record them, one per source and window.
    pub fn take(&self, now: Timestamp, all: bool) -> Vec<RecordRefusals> {
        let current = now.as_second().div_euclid(self.window_secs) * self.window_secs;
        let taken: Vec<(i64, HashMap<RefusalSource, Counts>)> = {
            let Ok(mut windows) = self.windows.lock() else {
                return Vec::new();
            };
            let keep = if all { BTreeMap::new() } else { windows.split_off(&current) };
            std::mem::replace(&mut *windows, keep).into_iter().collect()
        };
        let mut out = Vec::new();
        for (start, sources) in taken {
            let from = Timestamp::from_second(start).unwrap_or(Timestamp::UNIX_EPOCH);
            let until = from
                .checked_add(SignedDuration::from_secs(self.window_secs))
                .unwrap_or(Timestamp::MAX);
            let mut sources: Vec<(RefusalSource, Counts)> = sources.into_iter().collect();
            sources.sort_by(|a, b| a.0.cmp(&b.0));
            for (source, counts) in sources {
                let counts = counts
                    .into_iter()
                    .map(|((rule, route), count)| RefusalCount { rule, route, count })
                    .collect();
                out.push(RecordRefusals { source, from, until, counts });
            }
        }
        out
    }
}

/// Records `commands` through the gate, as the node (the operator).
pub async fn record(node: &Node, commands: Vec<RecordRefusals>) {
    if commands.is_empty() {
        return;
    }
    let n = commands.len();
    for r in node.gate.submit_many(node.operator(), commands, Timestamp::now()).await {
        if let Err(e) = r {
            tracing::error!(error = %e, "could not record refusals");
            if matches!(e, GateError::Closed) {
                break;
            }
        }
    }
    tracing::debug!(records = n, "refusals recorded");
}

/// Records every count not yet recorded (at shutdown, after the listeners stopped).
pub async fn flush_all(node: &Node) {
    let commands = node.refusals.take(Timestamp::now(), true);
    record(node, commands).await;
}

/// The background task of `entente serve` that records each window's refusals when it ends.
#[derive(Debug)]
pub struct Flusher {
    node: Node,
}

impl Flusher {
    /// A flusher for `node`'s counts.
    pub fn new(node: Node) -> Flusher {
        Flusher { node }
    }

    /// Records ended windows until `stop` completes, then everything counted so far.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let period = (self.node.refusals.window() / 2).max(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep(period) => {}
            }
            let commands = self.node.refusals.take(Timestamp::now(), false);
            record(&self.node, commands).await;
        }
        flush_all(&self.node).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use entente_core::digest::Sha256;

    fn src(b: u8) -> RefusalSource {
        RefusalSource::Address(Sha256::from_bytes([b; 32]))
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn one_record_per_source_and_window_with_counts() {
        let r = Refusals::new(Duration::from_secs(60), 10);
        for i in 0..1000 {
            r.count(src(1), "authn.required", "GET /api/v1/cases/{id}", at(120 + i % 60));
        }
        r.count(src(2), "authn.required", "POST /api/v1/cases", at(130));
        r.count(src(1), "authn.required", "GET /api/v1/cases/{id}", at(185));
        // Only the ended window is taken.
        let taken = r.take(at(181), false);
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[0].source, src(1));
        assert_eq!(taken[0].counts[0].count, 1000);
        assert_eq!(taken[0].from, at(120));
        assert_eq!(taken[0].until, at(180));
        assert_eq!(r.take(at(181), false).len(), 0);
        assert_eq!(r.take(at(181), true).len(), 1);
    }

    #[test]
    fn what_is_not_a_route_template_is_unrouted_and_sources_are_bounded() {
        let r = Refusals::new(Duration::from_secs(60), 3);
        for b in 0..100 {
            r.count(src(b), "authn.required", "GET /api/v1/cases/Jane.Doe born 1980", at(0));
        }
        let taken = r.take(at(60), false);
        assert_eq!(taken.len(), 4, "three sources apart, the others together");
        assert_eq!(taken[3].source, RefusalSource::Others);
        assert_eq!(taken[3].counts[0].count, 97);
        assert!(taken.iter().all(|t| t.counts[0].route == UNROUTED));
    }
}
