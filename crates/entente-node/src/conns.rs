//! Connections under hostile clients: budgets per address and in total, deadlines, and the
//! HTTP API's accept loop.
//!
//! - [`Registry`] admits a connection from an address only within the address's budget and
//!   the total; when either is full, the oldest connection of that address (or of all) that is
//!   not serving a request is closed to make room — so one client holding idle or half-open
//!   sockets can neither exhaust the node's file descriptors nor lock out a newcomer from the
//!   same address, and a connection with a request in progress is never cut short. An IPv6
//!   address counts by its /64.
//! - [`serve`] is the API's accept loop (instead of `axum::serve`, which closes neither idle
//!   nor slow connections): each connection is HTTP/1.1 with a header-read deadline (a client
//!   that does not finish its headers in time is closed: slowloris), an idle deadline (no byte
//!   read or written for that long: closed, a request in progress first finished), and the
//!   budgets above. At shutdown it stops accepting, lets requests in progress finish and closes
//!   the rest. Over TLS (`serve --tls`, [`Tls`]) the handshake must finish within the header
//!   deadline too.

use crate::refusals::ClientAddr;
use axum::Router;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{oneshot, watch};

/// Longest wait at shutdown for requests in progress.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// An address as budgets count it: IPv4 (IPv4-mapped IPv6 too) whole, IPv6 by its /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum AddrKey {
    V4([u8; 4]),
    V6([u8; 8]),
}

impl From<IpAddr> for AddrKey {
    fn from(ip: IpAddr) -> AddrKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => AddrKey::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let o = v6.octets();
                AddrKey::V6([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
            }
        }
    }
}

struct Entry {
    addr: AddrKey,
    /// Requests in progress on the connection; a connection with none may be closed to make
    /// room.
    busy: Arc<AtomicUsize>,
    evict: Option<oneshot::Sender<()>>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    /// By admission order: the first is the oldest.
    conns: BTreeMap<u64, Entry>,
    by_addr: HashMap<AddrKey, usize>,
}

impl Inner {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let e = self.conns.remove(&id)?;
        if let Some(n) = self.by_addr.get_mut(&e.addr) {
            *n -= 1;
            if *n == 0 {
                self.by_addr.remove(&e.addr);
            }
        }
        Some(e)
    }

    /// Closes the oldest connection (of `addr`, if given) serving no request.
    fn evict_oldest(&mut self, addr: Option<AddrKey>) -> bool {
        let victim = self
            .conns
            .iter()
            .find(|(_, e)| addr.is_none_or(|a| e.addr == a) && e.busy.load(Ordering::Acquire) == 0)
            .map(|(id, _)| *id);
        match victim.and_then(|id| self.remove(id)) {
            Some(mut e) => {
                if let Some(tx) = e.evict.take() {
                    let _ = tx.send(());
                }
                true
            }
            None => false,
        }
    }
}

/// Connection budgets: per address and in total.
pub(crate) struct Registry {
    inner: Mutex<Inner>,
    per_address: usize,
    total: usize,
}

/// A connection admitted by a [`Registry`]; leaving its budget when dropped.
pub(crate) struct Admitted {
    registry: Arc<Registry>,
    id: u64,
    /// Requests in progress on it.
    pub(crate) busy: Arc<AtomicUsize>,
    /// Completes when the registry closed this connection to make room for another.
    pub(crate) evicted: oneshot::Receiver<()>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.registry.inner.lock() {
            inner.remove(self.id);
        }
    }
}

impl Registry {
    /// At most `per_address` connections from one address and `total` in all.
    pub(crate) fn new(per_address: usize, total: usize) -> Arc<Registry> {
        Arc::new(Registry {
            inner: Mutex::default(),
            per_address: per_address.max(1),
            total: total.max(1),
        })
    }

    /// Admits a connection from `ip`, closing the oldest idle one of the same address (then
    /// of all) if a budget is full; `None` when no room can be made.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admitted> {
        let addr = AddrKey::from(ip);
        let mut inner = self.inner.lock().ok()?;
        if inner.by_addr.get(&addr).copied().unwrap_or(0) >= self.per_address
            && !inner.evict_oldest(Some(addr))
        {
            return None;
        }
        if inner.conns.len() >= self.total && !inner.evict_oldest(None) {
            return None;
        }
        let id = inner.next;
        inner.next += 1;
        let busy = Arc::new(AtomicUsize::new(0));
        let (tx, evicted) = oneshot::channel();
        inner.conns.insert(id, Entry { addr, busy: busy.clone(), evict: Some(tx) });
        *inner.by_addr.entry(addr).or_default() += 1;
        Some(Admitted { registry: self.clone(), id, busy, evicted })
    }

    /// Connections admitted and open.
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().map(|i| i.conns.len()).unwrap_or(0)
    }
}

/// Time of the last byte read or written on a stream, for the idle deadline.
#[derive(Clone, Debug)]
pub(crate) struct LastActive {
    base: Instant,
    millis: Arc<AtomicU64>,
}

impl LastActive {
    fn new() -> LastActive {
        LastActive { base: Instant::now(), millis: Arc::new(AtomicU64::new(0)) }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.millis.store(ms, Ordering::Relaxed);
    }

    /// How long since the last byte.
    pub(crate) fn idle_for(&self) -> Duration {
        let since = Duration::from_millis(self.millis.load(Ordering::Relaxed));
        self.base.elapsed().saturating_sub(since)
    }
}

/// A stream that notes when it last read or wrote a byte.
pub(crate) struct Watched<S> {
    inner: S,
    last: LastActive,
}

impl<S> Watched<S> {
    pub(crate) fn new(inner: S) -> (Watched<S>, LastActive) {
        let last = LastActive::new();
        (Watched { inner, last: last.clone() }, last)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.last.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.last.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The API's deadlines and budgets (`[limits]` in entente.toml).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) header_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) max_per_address: usize,
}

/// Serves `app` on `listener` under `limits` until `shutdown` completes.
///
/// # Errors
/// None today (accept errors are logged and retried); the type leaves room for them.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<Tls>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let registry = Registry::new(limits.max_per_address, limits.max_connections);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, addr) = tokio::select! {
            () = &mut shutdown => break,
            // Finished connections are reaped as they end, so the set stays bounded.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "API accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(admitted) = registry.admit(addr.ip()) else {
            tracing::debug!(%addr, "API connection refused: its address's or the node's connections are all serving requests");
            continue;
        };
        let app = app.clone();
        let stop = stop_rx.clone();
        match &tls {
            None => tasks.spawn(connection(tcp, addr, app, limits, admitted, stop)),
            Some(tls) => {
                tasks.spawn(tls_connection(tls.clone(), tcp, addr, app, limits, admitted, stop))
            }
        };
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained =
        tokio::time::timeout(DRAIN_TIMEOUT, async { while tasks.join_next().await.is_some() {} })
            .await;
    if drained.is_err() {
        tracing::warn!(open = registry.len(), "API connections still open at shutdown are closed");
        tasks.abort_all();
    }
    Ok(())
}

/// The API's TLS: the acceptor and where completed handshakes are counted.
#[derive(Clone)]
pub(crate) struct Tls {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    pub(crate) handshakes: Arc<crate::tls::Handshakes>,
}

/// One API connection over TLS: the handshake within the header deadline (a client that
/// does not finish it in time is closed, as one that does not finish its headers), then as
/// [`connection`].
async fn tls_connection(
    tls: Tls,
    tcp: tokio::net::TcpStream,
    addr: SocketAddr,
    app: Router,
    limits: Limits,
    mut admitted: Admitted,
    mut stop: watch::Receiver<bool>,
) {
    let (io, last) = Watched::new(tcp);
    let accept = accept_tls(&tls.acceptor, io, limits.header_timeout, &mut admitted.evicted, addr);
    let stream = tokio::select! {
        s = accept => match s {
            Some(s) => s,
            None => return,
        },
        _ = stop.wait_for(|s| *s) => return,
    };
    tls.handshakes.note(crate::tls::Endpoint::Api, stream.get_ref().1);
    http_connection(stream, last, addr, app, limits, admitted, stop).await;
}

/// A TLS handshake on `io` that must finish within `deadline`, given up when `evicted` fires
/// (the registry closed this connection to make room for another). `None` when it failed,
/// timed out or gave way; the reason is logged at debug level, with the address. The API and
/// the federation listener both accept through here.
pub(crate) async fn accept_tls<IO>(
    acceptor: &tokio_rustls::TlsAcceptor,
    io: IO,
    deadline: Duration,
    evicted: &mut oneshot::Receiver<()>,
    addr: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let handshake = tokio::time::timeout(deadline, acceptor.accept(io));
    tokio::select! {
        r = handshake => match r {
            Ok(Ok(s)) => Some(s),
            Ok(Err(e)) => {
                tracing::debug!(%addr, error = %e, "TLS handshake refused");
                None
            }
            Err(_) => {
                tracing::debug!(%addr, "TLS handshake timed out");
                None
            }
        },
        _ = evicted => {
            tracing::debug!(%addr, "handshake closed to make room for another");
            None
        }
    }
}

/// One API connection: HTTP/1.1 with the header deadline, the idle deadline, closed when the
/// registry makes room with it or the server stops.
async fn connection(
    tcp: tokio::net::TcpStream,
    addr: SocketAddr,
    app: Router,
    limits: Limits,
    admitted: Admitted,
    stop: watch::Receiver<bool>,
) {
    let (io, last) = Watched::new(tcp);
    http_connection(io, last, addr, app, limits, admitted, stop).await;
}

async fn http_connection<I>(
    io: I,
    last: LastActive,
    addr: SocketAddr,
    app: Router,
    limits: Limits,
    mut admitted: Admitted,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    use tower::ServiceExt as _;
    let busy = admitted.busy.clone();
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ClientAddr(addr));
        let guard = Busy::new(busy.clone());
        let app = app.clone();
        async move {
            // The connection stays busy until the answer's body is written to the end.
            let Ok(resp) = app.oneshot(req).await;
            Ok::<_, std::convert::Infallible>(resp.map(|inner| HeldBody { inner, _busy: guard }))
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let conn = http.serve_connection(hyper_util::rt::TokioIo::new(io), svc);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        let wait = limits.idle_timeout.saturating_sub(last.idle_for());
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%addr, error = %e, "API connection closed with an error");
                }
                return;
            }
            _ = &mut admitted.evicted => {
                tracing::debug!(%addr, "API connection closed to make room for another");
                return;
            }
            _ = stop.wait_for(|s| *s), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = tokio::time::sleep(wait) => {
                if last.idle_for() < limits.idle_timeout {
                    continue;
                }
                if closing {
                    tracing::debug!(%addr, "API connection idle while closing: dropped");
                    return;
                }
                // A request in progress is finished first; a connection that stays silent
                // for another idle period after that is dropped.
                tracing::debug!(%addr, "API connection idle: closing");
                conn.as_mut().graceful_shutdown();
                closing = true;
                last.touch();
            }
        }
    }
}

/// An answer's body that keeps its connection counted busy until it is written or dropped.
struct HeldBody {
    inner: axum::body::Body,
    _busy: Busy,
}

impl hyper::body::Body for HeldBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Counts a request in progress on its connection while it lives.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn new(n: Arc<AtomicUsize>) -> Busy {
        n.fetch_add(1, Ordering::AcqRel);
        Busy(n)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_at_its_budget_gives_up_its_oldest_idle_connection() {
        let r = Registry::new(2, 10);
        let mut a = r.admit(ip("192.0.2.1")).unwrap();
        let b = r.admit(ip("192.0.2.1")).unwrap();
        b.busy.fetch_add(1, Ordering::AcqRel);
        let other = r.admit(ip("192.0.2.2")).unwrap();
        // The third from the address closes its oldest idle one, not the busy one.
        let mut c = r.admit(ip("192.0.2.1")).unwrap();
        assert!(a.evicted.try_recv().is_ok());
        assert_eq!(r.len(), 3);
        // Now both of the address's connections are busy: no room is made.
        c.busy.fetch_add(1, Ordering::AcqRel);
        assert!(r.admit(ip("192.0.2.1")).is_none());
        assert!(c.evicted.try_recv().is_err());
        drop((b, other));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn the_total_budget_closes_the_oldest_idle_connection_of_any_address() {
        let r = Registry::new(10, 2);
        let mut a = r.admit(ip("192.0.2.1")).unwrap();
        let _b = r.admit(ip("192.0.2.2")).unwrap();
        let _c = r.admit(ip("192.0.2.3")).unwrap();
        assert!(a.evicted.try_recv().is_ok());
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn an_ipv6_address_counts_by_its_64() {
        let r = Registry::new(1, 10);
        let mut a = r.admit(ip("2001:db8:1:2::1")).unwrap();
        let _b = r.admit(ip("2001:db8:1:2::ffff")).unwrap();
        assert!(a.evicted.try_recv().is_ok());
        let _c = r.admit(ip("2001:db8:1:3::1")).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(AddrKey::from(ip("::ffff:192.0.2.1")), AddrKey::from(ip("192.0.2.1")));
    }
}
