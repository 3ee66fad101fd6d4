//! HTTP/2 (prior knowledge) to upstream endpoints with the `h2` crate directly: one connection
//! per endpoint carries every request as a stream, and the request's own task sends the headers
//! and awaits the response, so a proxied request costs no task, channel or pool look-up of its
//! own (hyper's client adds all three). Owns the connection's life: made on first use, replaced
//! when it fails or the endpoint sends GOAWAY, closed after the idle timeout.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use tokio::net::TcpStream;

use super::client::{tune_upstream_socket, BoxError, ProxyBody, UpstreamError};

/// Flow-control windows and frame limits, as hyper's HTTP/2 client sets them: a 2 MiB stream
/// window and a 5 MiB connection window let a body stream at loopback speed without waiting for
/// WINDOW_UPDATEs.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;
const MAX_FRAME_SIZE: u32 = 16 * 1024;
const MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;
const MAX_SEND_BUFFER: usize = 1024 * 1024;
/// Streams opened before the endpoint's SETTINGS say how many it takes.
const INITIAL_MAX_SEND_STREAMS: usize = 100;

/// Shortest period of the idle check.
const MIN_IDLE_CHECK: Duration = Duration::from_millis(90);

/// How long the rest of a request body is still sent after the endpoint has answered.
const LATE_BODY_LIMIT: Duration = Duration::from_secs(60);

/// A connection whose sent data stays unacknowledged this long is closed by the kernel
/// (`TCP_USER_TIMEOUT`): every request shares the one connection, so an endpoint that vanished
/// without a FIN or RST must not hold them all until TCP gives up (~15 minutes).
const UNACKNOWLEDGED_LIMIT: Duration = Duration::from_secs(20);

/// The HTTP/2 connection to one endpoint (at most one at a time) and how to make one.
#[derive(Debug)]
pub(super) struct H2Endpoint {
    current: Mutex<Option<Current>>,
    /// Held while connecting, so that requests arriving together share one new connection.
    connecting: tokio::sync::Mutex<()>,
    /// Connection attempts that failed, ever: tells a request that waited for `connecting`
    /// whether the attempt it waited on failed.
    failed_connects: AtomicU64,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct Current {
    id: u64,
    sender: h2::client::SendRequest<Bytes>,
    /// Set by each request; cleared by the idle check.
    used: Arc<AtomicBool>,
}

/// How connections are made: the same for every endpoint of a service.
#[derive(Clone, Debug)]
pub(super) struct H2Settings {
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
}

impl H2Endpoint {
    pub(super) fn new() -> Self {
        Self {
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            failed_connects: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Current>> {
        match self.current.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A handle on the current connection: its id and a sender (a reference-counted handle).
    fn current(&self) -> Option<(u64, h2::client::SendRequest<Bytes>)> {
        let current = self.lock();
        let current = current.as_ref()?;
        current.used.store(true, Ordering::Relaxed);
        Some((current.id, current.sender.clone()))
    }

    /// Lets go of connection `id` if it is still the current one: the next request makes a new
    /// one, and this one closes once its last stream is done.
    fn forget(&self, id: u64) {
        let mut current = self.lock();
        if current.as_ref().is_some_and(|c| c.id == id) {
            *current = None;
        }
    }

    /// Sends `request` on the endpoint's connection, making one when there is none or the one
    /// there can no longer open streams. (A plain function returning an `async` block, not an
    /// `async fn`, which would hold the request twice in its state.)
    #[allow(clippy::manual_async_fn)]
    pub(super) fn send<'a>(
        self: &'a Arc<Self>,
        address: &'a str,
        settings: &'a H2Settings,
        request: Request<ProxyBody>,
    ) -> impl Future<Output = Result<Response<H2Body>, UpstreamError>> + Send + 'a {
        async move {
            let (mut id, mut sender, mut fresh) = match self.current() {
                Some((id, sender)) => (id, sender, false),
                None => {
                    let (id, sender) = Box::pin(self.connect(address, settings)).await?;
                    (id, sender, true)
                }
            };
            let mut sender = loop {
                match sender.ready().await {
                    Ok(ready) => break ready,
                    // Closed, or GOAWAY received while idle in our hands: nothing was sent on it
                    // for this request, so a new connection gets it.
                    Err(_) if !fresh => {
                        self.forget(id);
                        (id, sender) = Box::pin(self.connect(address, settings)).await?;
                        fresh = true;
                    }
                    Err(error) => {
                        self.forget(id);
                        return Err(UpstreamError::Http2(error));
                    }
                }
            };
            let (mut parts, body) = request.into_parts();
            // Connection-specific headers are malformed on HTTP/2 (RFC 9113 §8.2.2); an upgrade
            // request is the one case where they are still here.
            if parts.headers.contains_key(header::CONNECTION) {
                parts.headers.remove(header::CONNECTION);
                parts.headers.remove(header::UPGRADE);
            }
            let head_only = body.is_end_stream();
            let (response, stream) = sender
                .send_request(Request::from_parts(parts, ()), head_only)
                .map_err(|error| self.failed(id, error))?;
            let mut response = std::pin::pin!(response);
            let response = if head_only {
                response.await.map_err(|error| self.failed(id, error))?
            } else {
                // The body goes up while the response is awaited. An endpoint may answer before it
                // has read it all (a 401, a 413): the response counts, and what is left of the
                // body is sent from a task of its own, as long as the endpoint takes it.
                let mut pipe = Some(PipeToStream { body, stream, pending: None });
                let response = std::future::poll_fn(|cx| {
                    if let Poll::Ready(response) = response.as_mut().poll(cx) {
                        return Poll::Ready(response.map_err(|error| self.failed(id, error)));
                    }
                    if let Some(piping) = pipe.as_mut() {
                        match Pin::new(piping).poll(cx) {
                            Poll::Ready(Ok(())) => pipe = None,
                            // The client's body failed (over the size limit, say): that is
                            // this request's answer.
                            Poll::Ready(Err(PipeError::Body(error))) => {
                                return Poll::Ready(Err(UpstreamError::Body(error)))
                            }
                            // The endpoint stopped taking the body (it reset the stream or the
                            // connection closed): its response, or the stream's error, tells.
                            Poll::Ready(Err(PipeError::Upstream(error))) => {
                                tracing::debug!(%error, "an HTTP/2 upstream stopped taking a request body");
                                pipe = None;
                            }
                            Poll::Pending => {}
                        }
                    }
                    Poll::Pending
                })
                .await?;
                if let Some(piping) = pipe {
                    tokio::spawn(async move {
                        match tokio::time::timeout(LATE_BODY_LIMIT, piping).await {
                            Ok(Ok(())) => {}
                            Ok(Err(error)) => tracing::debug!(%error, "request body to an HTTP/2 upstream ended early"),
                            // Dropping the pipe drops its stream handle: h2 resets the stream.
                            Err(_) => {
                                tracing::debug!("gave up sending a request body the HTTP/2 upstream had answered")
                            }
                        }
                    });
                }
                response
            };
            let (parts, stream) = response.into_parts();
            let remaining = content_length(&parts.headers);
            Ok(Response::from_parts(parts, H2Body { stream, remaining, trailers_next: false }))
        }
    }

    /// A stream error ends the request; a connection error also ends the connection's use.
    fn failed(&self, id: u64, error: h2::Error) -> UpstreamError {
        if error.is_go_away() || error.is_io() {
            self.forget(id);
        }
        UpstreamError::Http2(error)
    }

    /// The current connection if another request made one meanwhile, else a new one. A request
    /// that waited while another's attempt failed fails too, at once, rather than making its
    /// own attempt in turn (each waiter would wait a connect timeout more than the one before).
    async fn connect(
        self: &Arc<Self>,
        address: &str,
        settings: &H2Settings,
    ) -> Result<(u64, h2::client::SendRequest<Bytes>), UpstreamError> {
        let failures_before = self.failed_connects.load(Ordering::Acquire);
        let _connecting = self.connecting.lock().await;
        if let Some(current) = self.current() {
            return Ok(current);
        }
        if self.failed_connects.load(Ordering::Acquire) != failures_before {
            return Err(UpstreamError::Connect(io::Error::other(format!(
                "connecting to {address} failed (another request's attempt, just now)"
            ))));
        }
        let connected = tokio::time::timeout(settings.connect_timeout, handshake(address)).await;
        let (sender, connection) = match connected {
            Ok(Ok(connected)) => connected,
            Ok(Err(error)) => {
                self.failed_connects.fetch_add(1, Ordering::AcqRel);
                return Err(error);
            }
            Err(_) => {
                self.failed_connects.fetch_add(1, Ordering::AcqRel);
                return Err(UpstreamError::Connect(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")));
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let used = Arc::new(AtomicBool::new(true));
        *self.lock() = Some(Current { id, sender: sender.clone(), used: used.clone() });
        tokio::spawn(drive(connection, Arc::downgrade(self), id, used, settings.idle_timeout));
        Ok((id, sender))
    }
}

/// A TCP connection to `address` with the HTTP/2 preface and settings sent on it.
async fn handshake(
    address: &str,
) -> Result<(h2::client::SendRequest<Bytes>, h2::client::Connection<TcpStream, Bytes>), UpstreamError> {
    let stream = TcpStream::connect(address).await.map_err(UpstreamError::Connect)?;
    tune_upstream_socket(&stream);
    let _ = socket2::SockRef::from(&stream).set_tcp_user_timeout(Some(UNACKNOWLEDGED_LIMIT));
    h2::client::Builder::new()
        .initial_max_send_streams(INITIAL_MAX_SEND_STREAMS)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME_SIZE)
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        .max_send_buffer_size(MAX_SEND_BUFFER)
        .enable_push(false)
        .handshake::<_, Bytes>(stream)
        .await
        .map_err(UpstreamError::Http2)
}

/// Runs the connection until it ends. Every idle timeout, a connection that carried no new request
/// since the last look is let go: it closes (GOAWAY) once its open streams are done and no handle
/// on it is left, and the next request opens a new one, as hyper-util's pool does. The endpoint
/// is held weakly: when its revision is replaced, the connection closes as soon as its last
/// stream is done.
async fn drive(
    mut connection: h2::client::Connection<TcpStream, Bytes>,
    endpoint: Weak<H2Endpoint>,
    id: u64,
    used: Arc<AtomicBool>,
    idle_timeout: Duration,
) {
    let period = idle_timeout.max(MIN_IDLE_CHECK);
    let mut checks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut deferred = false;
    let ended = std::future::poll_fn(|cx| {
        // Woken (a request queued its frames, or the socket has data): run again only after the
        // other tasks ready now, so the frames of all the requests they send leave in one write
        // rather than one write each. (A task that wakes itself is queued behind them.)
        if !deferred {
            deferred = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        deferred = false;
        while checks.poll_tick(cx).is_ready() {
            let Some(endpoint) = endpoint.upgrade() else { continue };
            let mut current = endpoint.lock();
            if current.as_ref().is_some_and(|c| c.id == id && !used.swap(false, Ordering::Relaxed)) {
                *current = None;
            }
        }
        Pin::new(&mut connection).poll(cx)
    })
    .await;
    if let Err(error) = ended {
        tracing::debug!(%error, "upstream HTTP/2 connection ended with an error");
    }
    if let Some(endpoint) = endpoint.upgrade() {
        endpoint.forget(id);
    }
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    let first: &HeaderValue = values.next()?;
    let length = first.to_str().ok()?.trim().parse().ok()?;
    values.all(|v| v == first).then_some(length)
}

/// A response body from an HTTP/2 upstream: its data frames (flow-control capacity handed back
/// as each is taken), then its trailers.
#[derive(Debug)]
pub struct H2Body {
    stream: h2::RecvStream,
    /// Bytes still expected, from Content-Length.
    remaining: Option<u64>,
    trailers_next: bool,
}

impl Body for H2Body {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = &mut *self;
        if !this.trailers_next {
            match ready!(this.stream.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = this.stream.flow_control().release_capacity(data.len());
                    if let Some(remaining) = &mut this.remaining {
                        *remaining = remaining.saturating_sub(data.len() as u64);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => this.trailers_next = true,
            }
        }
        match ready!(this.stream.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(error) => Poll::Ready(Some(Err(error))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stream.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(remaining) => SizeHint::with_exact(remaining),
            None => SizeHint::default(),
        }
    }
}

/// Why a request body stopped before its end.
#[derive(Debug, thiserror::Error)]
enum PipeError {
    /// The client's body failed (over the size limit, say); the stream was reset.
    #[error("request body: {0}")]
    Body(BoxError),
    /// The endpoint reset the stream, or the connection failed.
    #[error("upstream stream: {0}")]
    Upstream(BoxError),
}

impl From<h2::Error> for PipeError {
    fn from(error: h2::Error) -> Self {
        PipeError::Upstream(error.into())
    }
}

/// Sends a request body on its stream, as flow control allows: data frames, then trailers or an
/// empty end-of-stream frame.
struct PipeToStream {
    body: ProxyBody,
    stream: h2::SendStream<Bytes>,
    /// Data taken from the body and not yet sent.
    pending: Option<Bytes>,
}

impl Future for PipeToStream {
    type Output = Result<(), PipeError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            if let Some(data) = &mut this.pending {
                this.stream.reserve_capacity(data.len());
                let mut capacity = this.stream.capacity();
                while capacity == 0 {
                    match ready!(this.stream.poll_capacity(cx)) {
                        Some(Ok(granted)) => capacity = granted,
                        Some(Err(error)) => return Poll::Ready(Err(error.into())),
                        None => {
                            return Poll::Ready(Err(PipeError::Upstream(
                                "the upstream stream closed while the body was sent".into(),
                            )))
                        }
                    }
                }
                let chunk = data.split_to(capacity.min(data.len()));
                if data.is_empty() {
                    this.pending = None;
                }
                this.stream.send_data(chunk, false)?;
                continue;
            }
            if let Poll::Ready(reset) = this.stream.poll_reset(cx) {
                return Poll::Ready(Err(match reset {
                    Ok(reason) => PipeError::Upstream(format!("the upstream reset the stream ({reason})").into()),
                    Err(error) => error.into(),
                }));
            }
            match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if data.is_empty() => {}
                    Ok(data) => this.pending = Some(data),
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            this.stream.send_trailers(trailers)?;
                            return Poll::Ready(Ok(()));
                        }
                    }
                },
                Some(Err(error)) => {
                    this.stream.send_reset(h2::Reason::CANCEL);
                    return Poll::Ready(Err(PipeError::Body(error)));
                }
                None => {
                    this.stream.send_data(Bytes::new(), true)?;
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::AtomicUsize;

    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use std::net::SocketAddr;

    use tokio::net::TcpListener;

    use super::*;

    /// An h2c endpoint answering with the request body (or `ok` for an empty one). With
    /// `Behaviour::GoawayAfterFirst`, each connection is shut down gracefully (GOAWAY) after its
    /// first answer; with `Behaviour::RefuseBodies`, every request gets a 413 at once, its body
    /// unread. Counts connections accepted and connections ended.
    struct Endpoint {
        address: String,
        accepted: Arc<AtomicUsize>,
        ended: Arc<AtomicUsize>,
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Behaviour {
        Echo,
        GoawayAfterFirst,
        RefuseBodies,
    }

    async fn endpoint(behaviour: Behaviour) -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let ended = Arc::new(AtomicUsize::new(0));
        let (accepts, ends) = (accepted.clone(), ended.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepts.fetch_add(1, Ordering::SeqCst);
                let ends = ends.clone();
                let answered = Arc::new(tokio::sync::Notify::new());
                let notify = answered.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                        let notify = notify.clone();
                        async move {
                            if behaviour == Behaviour::RefuseBodies {
                                let mut refused = Response::new(Full::new(Bytes::from_static(b"too large")));
                                *refused.status_mut() = http::StatusCode::PAYLOAD_TOO_LARGE;
                                return Ok::<_, Infallible>(refused);
                            }
                            let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            notify.notify_one();
                            let body = if body.is_empty() { Bytes::from_static(b"ok") } else { body };
                            Ok::<_, Infallible>(Response::new(Full::new(body)))
                        }
                    });
                    let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    let mut connection = std::pin::pin!(connection);
                    if behaviour == Behaviour::GoawayAfterFirst {
                        tokio::select! {
                            _ = connection.as_mut() => {}
                            _ = answered.notified() => {
                                connection.as_mut().graceful_shutdown();
                                let _ = connection.await;
                            }
                        }
                    } else {
                        let _ = connection.await;
                    }
                    ends.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Endpoint { address, accepted, ended }
    }

    /// How many connections the endpoint saw end, once `count` have or a second has passed.
    async fn ended_within_a_second(endpoint: &Endpoint, count: usize) -> usize {
        for _ in 0..100 {
            if endpoint.ended.load(Ordering::SeqCst) >= count {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        endpoint.ended.load(Ordering::SeqCst)
    }

    /// A client for one endpoint, with its settings (`idle`: the idle timeout).
    fn client(idle: Duration) -> (Arc<H2Endpoint>, H2Settings) {
        (Arc::new(H2Endpoint::new()), settings(idle))
    }

    fn settings(idle: Duration) -> H2Settings {
        H2Settings { connect_timeout: Duration::from_secs(1), idle_timeout: idle }
    }

    async fn call(h2: &Arc<H2Endpoint>, endpoint: &Endpoint, settings: &H2Settings, body: Bytes) -> Bytes {
        let mut request = Request::new(ProxyBody::full(body));
        *request.uri_mut() = format!("http://{}/x", endpoint.address).parse().expect("uri");
        *request.method_mut() = http::Method::POST;
        let response = h2.send(&endpoint.address, settings, request).await.expect("response");
        assert_eq!(response.status(), 200);
        response.into_body().collect().await.expect("body").to_bytes()
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_connection() {
        let endpoint = endpoint(Behaviour::Echo).await;
        let (h2, settings) = client(Duration::from_secs(60));
        let calls = (0..20).map(|_| call(&h2, &endpoint, &settings, Bytes::new()));
        for body in futures_util::future::join_all(calls).await {
            assert_eq!(body, "ok");
        }
        assert_eq!(endpoint.accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn bodies_larger_than_the_windows_go_both_ways() {
        let endpoint = endpoint(Behaviour::Echo).await;
        let (h2, settings) = client(Duration::from_secs(60));
        // Past hyper's server windows (1 MiB by default) and ours (2 MiB per stream).
        let big: Bytes = (0..6 * 1024 * 1024).map(|i: u32| (i % 251) as u8).collect::<Vec<u8>>().into();
        assert_eq!(call(&h2, &endpoint, &settings, big.clone()).await, big);
        assert_eq!(call(&h2, &endpoint, &settings, Bytes::from_static(b"small")).await, "small");
        assert_eq!(endpoint.accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_endpoint_shut_down_is_replaced() {
        let endpoint = endpoint(Behaviour::GoawayAfterFirst).await;
        let (h2, settings) = client(Duration::from_secs(60));
        for round in 1..=3 {
            assert_eq!(call(&h2, &endpoint, &settings, Bytes::new()).await, "ok");
            // Wait for the GOAWAY to land, so the next request finds the connection closing.
            assert_eq!(ended_within_a_second(&endpoint, round).await, round);
        }
        assert_eq!(endpoint.accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn idle_connections_are_closed() {
        let endpoint = endpoint(Behaviour::Echo).await;
        let (h2, settings) = client(Duration::from_millis(100));
        assert_eq!(call(&h2, &endpoint, &settings, Bytes::new()).await, "ok");
        // Two idle checks: the first sees the request, the second lets the connection go.
        assert_eq!(ended_within_a_second(&endpoint, 1).await, 1, "the idle connection was closed");
        assert!(h2.current().is_none());
        assert_eq!(call(&h2, &endpoint, &settings, Bytes::new()).await, "ok");
        assert_eq!(endpoint.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_answer_before_the_body_is_read_is_the_response() {
        let endpoint = endpoint(Behaviour::RefuseBodies).await;
        let (h2, settings) = client(Duration::from_secs(60));
        // Larger than every window, so the endpoint answers long before the body could be sent.
        let big = Bytes::from(vec![7u8; 8 * 1024 * 1024]);
        for _ in 0..5 {
            let mut request = Request::new(ProxyBody::full(big.clone()));
            *request.uri_mut() = format!("http://{}/upload", endpoint.address).parse().expect("uri");
            *request.method_mut() = http::Method::POST;
            let response = h2.send(&endpoint.address, &settings, request).await.expect("the endpoint's answer");
            assert_eq!(response.status(), 413);
            assert_eq!(response.into_body().collect().await.expect("body").to_bytes(), "too large");
        }
    }

    #[tokio::test]
    async fn requests_waiting_on_a_failed_connect_fail_with_it() {
        // A listener whose accept queue is full and never drained: further SYNs are dropped, so
        // a connect hangs until its timeout, as to a host that vanished.
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
        socket.bind(&"127.0.0.1:0".parse::<SocketAddr>().expect("address").into()).expect("bind");
        socket.listen(0).expect("listen");
        let address = socket.local_addr().expect("address").as_socket().expect("inet").to_string();
        let mut fillers = Vec::new();
        for _ in 0..4 {
            if let Ok(Ok(stream)) =
                tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(address.as_str())).await
            {
                fillers.push(stream);
            }
        }
        let h2 = Arc::new(H2Endpoint::new());
        let settings =
            H2Settings { connect_timeout: Duration::from_millis(300), idle_timeout: Duration::from_secs(60) };
        let requests = (0..5).map(|_| {
            let mut request = Request::new(ProxyBody::full(Bytes::new()));
            *request.uri_mut() = format!("http://{address}/x").parse().expect("uri");
            h2.send(&address, &settings, request)
        });
        for result in futures_util::future::join_all(requests).await {
            let error = result.expect_err("nothing accepts");
            assert!(error.is_connect(), "{error}");
        }
        // One attempt, whose failure the four that waited on it share, not five in a row (each
        // waiting out the connect timeout after the one before).
        assert_eq!(h2.failed_connects.load(Ordering::SeqCst), 1);
        drop(fillers);
    }

    #[tokio::test]
    async fn refused_connections_are_connect_errors() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        drop(listener);
        let h2 = Arc::new(H2Endpoint::new());
        let mut request = Request::new(ProxyBody::full(Bytes::new()));
        *request.uri_mut() = format!("http://{address}/x").parse().expect("uri");
        let error = h2.send(&address, &settings(Duration::from_secs(1)), request).await.expect_err("nothing listens");
        assert!(error.is_connect(), "{error}");
    }
}
