//! Listening sockets and their connections. Sockets are keyed by address and outlive revisions:
//! a reload binds only new addresses (before the swap, so a bind failure refuses the reload) and
//! closes only vanished ones. Each accepted connection reads the listener's plan (protocol,
//! limits, TLS) from the snapshot current at accept time.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use gantry_proto::config::{ListenerLimits, ListenerProtocol};
use gantry_proto::Problem;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

use super::http::{handle, ConnectionContext};
use super::tcp::forward_tcp;
use crate::dataplane::{Dataplane, Snapshot};

/// Pending connections the kernel queues per listening socket.
const LISTEN_BACKLOG: i32 = 1024;

/// The most headers hyper's HTTP/1 parser accepts when no limit is set (`DEFAULT_MAX_HEADERS`
/// in hyper 1's `proto/h1/role.rs`); past it, 431 as with a limit.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// Counts open connections and tells them when to drain.
#[derive(Debug)]
pub struct ConnectionTracker {
    draining: watch::Sender<bool>,
    active: AtomicUsize,
    idle: Notify,
}

impl Default for ConnectionTracker {
    fn default() -> Self {
        Self { draining: watch::channel(false).0, active: AtomicUsize::new(0), idle: Notify::new() }
    }
}

/// One accepted connection's place in the accounting: the listener's open count and gauge and
/// the node-wide tracker. Released when the connection and any tunnel made from it are done.
#[derive(Debug)]
pub struct ConnectionSlot {
    tracker: Arc<ConnectionTracker>,
    listener_open: Arc<AtomicU64>,
    gauge: Gauge,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.listener_open.fetch_sub(1, Ordering::Relaxed);
        self.gauge.dec();
        if self.tracker.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.tracker.idle.notify_waiters();
        }
    }
}

impl ConnectionTracker {
    fn open_slot(self: &Arc<Self>, listener_open: &Arc<AtomicU64>, gauge: Gauge) -> Arc<ConnectionSlot> {
        self.active.fetch_add(1, Ordering::AcqRel);
        listener_open.fetch_add(1, Ordering::Relaxed);
        gauge.inc();
        Arc::new(ConnectionSlot { tracker: self.clone(), listener_open: listener_open.clone(), gauge })
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Tells accept loops to stop and connections to finish their requests and close.
    pub fn start_draining(&self) {
        self.draining.send_replace(true);
    }

    /// Waits until every connection closed, or the deadline passed; true when all closed.
    pub async fn wait_idle(&self, deadline: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.idle.notified();
                if self.active() == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(deadline, wait).await.is_ok()
    }
}

/// The listening sockets of the node.
#[derive(Debug)]
pub struct ListenerSet {
    dataplane: Arc<Dataplane>,
    tracker: Arc<ConnectionTracker>,
    /// Address → stop signal of its accept loop.
    running: HashMap<SocketAddr, watch::Sender<bool>>,
}

/// Sockets bound for a revision that is about to be installed.
#[derive(Debug)]
pub struct BoundSockets(Vec<(SocketAddr, TcpListener)>);

impl ListenerSet {
    pub fn new(dataplane: Arc<Dataplane>, tracker: Arc<ConnectionTracker>) -> Self {
        Self { dataplane, tracker, running: HashMap::new() }
    }

    /// Binds every address of `snapshot` not yet listening. Problems name the listener.
    pub fn bind_new(&self, snapshot: &Snapshot) -> Result<BoundSockets, Vec<Problem>> {
        bind_missing(snapshot, |address| self.running.contains_key(address))
    }

    /// Starts accept loops on newly bound sockets and stops those `snapshot` no longer has.
    /// Connections of a stopped listener finish on their own.
    pub fn apply(&mut self, snapshot: &Snapshot, sockets: BoundSockets) {
        self.running.retain(|address, stop| {
            let keep = snapshot.listeners.contains_key(address);
            if !keep {
                stop.send_replace(true);
                tracing::info!(%address, "listener closed");
            }
            keep
        });
        for (address, listener) in sockets.0 {
            let (stop, stopped) = watch::channel(false);
            self.running.insert(address, stop);
            if let Some(plan) = snapshot.listeners.get(&address) {
                tracing::info!(listener = %plan.name, %address, protocol = ?plan.protocol, "listening");
            }
            tokio::spawn(accept_loop(listener, address, self.dataplane.clone(), self.tracker.clone(), stopped));
        }
    }

    /// Local address of each listening socket (useful when binding port 0).
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.running.keys().copied().collect()
    }
}

/// Checks that every address `next` adds to `current` can be bound (binding and releasing it),
/// so a config is refused before it is committed rather than failing where it is applied.
pub fn check_bindable(next: &Snapshot, current: &Snapshot) -> Result<(), Vec<Problem>> {
    bind_missing(next, |address| current.listeners.contains_key(address)).map(drop)
}

fn bind_missing(snapshot: &Snapshot, running: impl Fn(&SocketAddr) -> bool) -> Result<BoundSockets, Vec<Problem>> {
    let mut bound = Vec::new();
    let mut problems = Vec::new();
    for plan in snapshot.listeners.values() {
        if running(&plan.address) {
            continue;
        }
        match bind(plan.address) {
            Ok(listener) => bound.push((plan.address, listener)),
            Err(error) => {
                let index = snapshot.document.listeners.iter().position(|l| *l.name == *plan.name).unwrap_or(0);
                problems.push(Problem::new(
                    format!("listeners[{index}].address"),
                    format!("cannot listen on {}: {error} (is another process using it?)", plan.address),
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(BoundSockets(bound))
    } else {
        Err(problems)
    }
}

fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    TcpListener::from_std(socket.into())
}

async fn accept_loop(
    listener: TcpListener,
    address: SocketAddr,
    dataplane: Arc<Dataplane>,
    tracker: Arc<ConnectionTracker>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut draining = tracker.draining.subscribe();
    let open = Arc::new(AtomicU64::new(0));
    loop {
        let accepted = tokio::select! {
            _ = stopped.changed() => return,
            _ = draining.wait_for(|d| *d) => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, client) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%address, %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let snapshot = dataplane.snapshot();
        let Some(plan) = snapshot.listener_at(&address) else {
            continue;
        };
        if open.load(Ordering::Relaxed) >= u64::from(plan.limits.max_connections) {
            dataplane.metrics.listener_rejections(&plan.name).inc();
            tracing::debug!(listener = %plan.name, %client, "connection refused: listener at max_connections");
            continue;
        }
        let _ = stream.set_nodelay(true);
        let slot = tracker.open_slot(&open, dataplane.metrics.listener_connections(&plan.name));
        let context = Arc::new(ConnectionContext {
            dataplane: dataplane.clone(),
            local: address,
            client,
            client_ip: super::headers::ip_value(client.ip()),
            tls: plan.protocol == ListenerProtocol::Https,
            slot: slot.clone(),
        });
        let protocol = plan.protocol;
        let limits = plan.limits.clone();
        let tls = plan.tls.clone();
        let service = plan.service.clone();
        let name = plan.name.clone();
        let drain = tracker.draining.subscribe();
        tokio::spawn(async move {
            match protocol {
                ListenerProtocol::Http => serve_http(stream, context, &limits, drain).await,
                ListenerProtocol::Https => {
                    if let Some(config) = tls {
                        let acceptor = tokio_rustls::TlsAcceptor::from(config);
                        match tokio::time::timeout(limits.header_read_timeout.get(), acceptor.accept(stream)).await {
                            Ok(Ok(tls_stream)) => serve_http(tls_stream, context, &limits, drain).await,
                            Ok(Err(error)) => {
                                tracing::debug!(listener = %name, %client, %error, "TLS handshake failed")
                            }
                            Err(_) => {
                                tracing::debug!(listener = %name, %client, "TLS handshake timed out")
                            }
                        }
                    }
                }
                ListenerProtocol::Tcp => {
                    if let Some(service) = service {
                        forward_tcp(stream, service, name).await;
                    }
                }
            }
            drop(slot);
        });
    }
}

async fn serve_http<S>(
    stream: S,
    context: Arc<ConnectionContext>,
    limits: &ListenerLimits,
    mut drain: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(ActivityIo { inner: stream, activity: activity.clone() });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let mut http1 = builder.http1();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout.get())
        .max_buf_size((limits.max_header_bytes as usize).max(8192));
    // hyper parses into a stack array of its default 100 headers, and fills a vector of the
    // configured size per request when a limit is set: set one only when it differs.
    if limits.max_headers as usize != HYPER_DEFAULT_MAX_HEADERS {
        http1.max_headers(limits.max_headers as usize);
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes)
        .max_concurrent_streams(1024u32);
    let client = context.client;
    let service = service_fn(move |request| handle(request, context.clone()));
    let connection = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);
    let idle_limit = limits.idle_timeout.get();
    let mut idle_check = tokio::time::interval(idle_limit / IDLE_CHECKS + Duration::from_millis(1));
    let mut last_active = Instant::now();
    let mut shutting_down = false;
    loop {
        tokio::select! {
            biased;
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%client, %error, "client connection ended with an error");
                }
                return;
            }
            _ = drain.wait_for(|d| *d), if !shutting_down => {
                connection.as_mut().graceful_shutdown();
                shutting_down = true;
            }
            _ = idle_check.tick(), if !shutting_down => {
                let now = Instant::now();
                if activity.take_moved() {
                    // Bytes moved since the last check: counting from now closes the connection
                    // at most one check period late, never early.
                    last_active = now;
                } else if now.duration_since(last_active) >= idle_limit {
                    connection.as_mut().graceful_shutdown();
                    shutting_down = true;
                }
            }
        }
    }
}

/// Checks of a connection's activity per idle timeout.
const IDLE_CHECKS: u32 = 8;

/// Whether bytes moved on a connection since the idle check last looked: a flag, so the I/O
/// path does not read the clock.
struct Activity {
    moved: AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Self { moved: AtomicBool::new(true) }
    }
    fn touch(&self) {
        if !self.moved.load(Ordering::Relaxed) {
            self.moved.store(true, Ordering::Relaxed);
        }
    }
    fn take_moved(&self) -> bool {
        self.moved.swap(false, Ordering::Relaxed)
    }
}

/// Notes when bytes move, for the idle timeout.
struct ActivityIo<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for ActivityIo<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ActivityIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
