//! Pooled HTTP clients to upstream endpoints: keep-alive connections per endpoint, HTTP/1.1 or
//! HTTP/2 (prior knowledge) as the service says, with connect and idle timeouts.
//!
//! Connections are found by the endpoint's index (no hashing). HTTP/1.1 services keep a pool of
//! idle connections per endpoint: a connection goes back to its pool when the response body sent
//! to the client is done, without a task per request. HTTP/2 services keep one connection per
//! endpoint that carries every request (`h2.rs`).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gantry_proto::config::{Service, UpstreamProtocol};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Method, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::h2::{H2Body, H2Endpoint, H2Settings};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body sent upstream: bytes held in memory (replayable, for retries) or the client's
/// body streamed through under the listener's size limit. An enum rather than a boxed trait
/// object: no allocation per request.
#[derive(Debug)]
pub enum ProxyBody {
    Full(Full<Bytes>),
    Streaming(Limited<Incoming>),
}

impl ProxyBody {
    pub fn full(bytes: Bytes) -> Self {
        ProxyBody::Full(Full::new(bytes))
    }

    /// The client's body, failing with `http_body_util::LengthLimitError` past `limit` bytes.
    pub fn streaming(body: Incoming, limit: usize) -> Self {
        ProxyBody::Streaming(Limited::new(body, limit))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Full(full) => Pin::new(full).poll_frame(cx).map_err(|never| match never {}),
            ProxyBody::Streaming(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(full) => full.is_end_stream(),
            ProxyBody::Streaming(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(full) => full.size_hint(),
            ProxyBody::Streaming(body) => body.size_hint(),
        }
    }
}

/// Upper bound on idle pooled connections kept per endpoint.
const MAX_IDLE_PER_ENDPOINT: usize = 256;

/// Shortest period of the idle-connection sweep (as hyper-util's pool).
const MIN_SWEEP_PERIOD: Duration = Duration::from_millis(90);

/// TCP keep-alive probes start after this long without traffic.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Why a request could not be sent or answered.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection to the endpoint (refused, unreachable, timed out, name not resolved).
    #[error("tcp connect error: {0}")]
    Connect(#[source] io::Error),
    /// The connection failed while sending the request or reading the response head.
    #[error(transparent)]
    Send(hyper::Error),
    /// HTTP/2 services: the connection or the request's stream failed.
    #[error("HTTP/2: {0}")]
    Http2(#[source] h2::Error),
    /// HTTP/2 services: the request body could not be read (over its size limit, say).
    #[error("request body: {0}")]
    Body(#[source] BoxError),
}

impl UpstreamError {
    /// Whether no connection could be made (so the request never left).
    pub fn is_connect(&self) -> bool {
        matches!(self, UpstreamError::Connect(_))
    }
}

/// A response body from an endpoint: HTTP/1.1 (hyper's) or an HTTP/2 stream.
#[derive(Debug)]
pub enum UpstreamBody {
    Http1(Incoming),
    Http2(H2Body),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpstreamBody::Http1(body) => Pin::new(body).poll_frame(cx).map_err(BoxError::from),
            UpstreamBody::Http2(body) => Pin::new(body).poll_frame(cx).map_err(BoxError::from),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Http1(body) => body.is_end_stream(),
            UpstreamBody::Http2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Http1(body) => body.size_hint(),
            UpstreamBody::Http2(body) => body.size_hint(),
        }
    }
}

/// What a request to one endpoint needs, parsed once per revision rather than per request, and
/// the endpoint's connections: a pool of idle HTTP/1.1 ones, or its HTTP/2 one.
#[derive(Debug)]
struct Target {
    address: String,
    socket_addr: Option<SocketAddr>,
    authority: Option<Authority>,
    host: Option<HeaderValue>,
    pool: Arc<Pool>,
    h2: Arc<H2Endpoint>,
}

impl Target {
    fn new(address: &str, idle_timeout: Duration) -> Self {
        Self {
            address: address.to_string(),
            socket_addr: address.parse().ok(),
            authority: Authority::try_from(address).ok(),
            host: HeaderValue::from_str(address).ok(),
            pool: Arc::new(Pool::new(idle_timeout)),
            h2: Arc::new(H2Endpoint::new()),
        }
    }
}

#[derive(Debug)]
enum Transport {
    Http1 { builder: http1::Builder, connect_timeout: Duration },
    Http2(H2Settings),
}

#[derive(Clone, Debug)]
pub struct UpstreamClient {
    transport: Arc<Transport>,
    /// By endpoint index (the position in the service's endpoint list).
    targets: Arc<[Target]>,
    idle_timeout: Duration,
}

impl UpstreamClient {
    pub fn for_service(service: &Service) -> Self {
        let idle_timeout = service.timeouts.idle.get();
        let transport = match service.protocol {
            UpstreamProtocol::Http1 => {
                Transport::Http1 { builder: http1::Builder::new(), connect_timeout: service.timeouts.connect.get() }
            }
            UpstreamProtocol::Http2 => {
                Transport::Http2(H2Settings { connect_timeout: service.timeouts.connect.get(), idle_timeout })
            }
        };
        let targets = service.endpoints.iter().map(|e| Target::new(&e.address, idle_timeout)).collect();
        Self { transport: Arc::new(transport), targets, idle_timeout }
    }

    fn target(&self, index: u32, address: &str) -> Option<&Target> {
        self.targets.get(index as usize).filter(|t| t.address == address)
    }

    /// The URI of a request for `path` to the endpoint at `index` of the service (`address`):
    /// origin-form (`/path?query`) on HTTP/1.1 connections, absolute (`http://address/path`) on
    /// HTTP/2 (its :scheme and :authority); authority-form for CONNECT.
    pub fn uri(&self, index: u32, address: &str, method: &Method, path: Option<&PathAndQuery>) -> Result<Uri, String> {
        let authority = || match self.target(index, address).and_then(|t| t.authority.clone()) {
            Some(authority) => Ok(authority),
            None => Authority::try_from(address).map_err(|e| format!("cannot build upstream URI: {e}")),
        };
        if method == Method::CONNECT {
            return Ok(Uri::from(authority()?));
        }
        let path = path.cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        match *self.transport {
            Transport::Http1 { .. } => Ok(Uri::from(path)),
            Transport::Http2(_) => {
                let mut parts = http::uri::Parts::default();
                parts.scheme = Some(Scheme::HTTP);
                parts.authority = Some(authority()?);
                parts.path_and_query = Some(path);
                Uri::from_parts(parts).map_err(|e| format!("cannot build upstream URI: {e}"))
            }
        }
    }

    /// The Host header naming the endpoint at `index` (`address`).
    pub fn host(&self, index: u32, address: &str) -> Option<HeaderValue> {
        match self.target(index, address) {
            Some(target) => target.host.clone(),
            None => HeaderValue::from_str(address).ok(),
        }
    }

    /// Sends `request` (its URI from [`Self::uri`]) to the endpoint at `index` (`address`). The
    /// connection, when it can be used again, goes back to the pool when the returned
    /// [`PooledConnection`] is dropped: keep it until the response body is done. (A plain
    /// function returning an `async` block, not an `async fn`, which would hold the request
    /// twice in its state.)
    #[allow(clippy::manual_async_fn)]
    pub fn send<'a>(
        &'a self,
        index: u32,
        address: &'a str,
        mut request: http::Request<ProxyBody>,
    ) -> impl Future<Output = Result<(http::Response<UpstreamBody>, Option<PooledConnection>), UpstreamError>> + Send + 'a
    {
        async move {
            // An endpoint outside the compiled list (not expected) gets connections of its own.
            let fallback: Box<Target>;
            let target = match self.target(index, address) {
                Some(target) => target,
                None => {
                    fallback = Box::new(Target::new(address, self.idle_timeout));
                    &*fallback
                }
            };
            let (builder, connect_timeout) = match &*self.transport {
                Transport::Http1 { builder, connect_timeout } => (builder, *connect_timeout),
                Transport::Http2(settings) => {
                    let response = target.h2.send(&target.address, settings, request).await?;
                    return Ok((response.map(UpstreamBody::Http2), None));
                }
            };
            loop {
                let (mut sender, reused) = match target.pool.checkout() {
                    Some(sender) => (sender, true),
                    // Boxed: connecting is rare, and its state would make every request's
                    // future larger.
                    None => (Box::pin(connect(target, builder, connect_timeout)).await?, false),
                };
                match sender.try_send_request(request).await {
                    Ok(response) => {
                        let pooled = PooledConnection { sender: Some(sender), pool: target.pool.clone() };
                        return Ok((response.map(UpstreamBody::Http1), Some(pooled)));
                    }
                    Err(mut error) => match error.take_message() {
                        // A kept-alive connection closed before the request went out: try
                        // another (each pass uses up an idle connection; a new one ends the
                        // loop).
                        Some(unsent) if reused => request = unsent,
                        _ => return Err(UpstreamError::Send(error.into_error())),
                    },
                }
            }
        }
    }
}

/// What every upstream connection gets, HTTP/1.1 or HTTP/2: no Nagle delay, and TCP keep-alive
/// probes after [`TCP_KEEPALIVE`] without traffic.
pub(super) fn tune_upstream_socket(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE));
}

async fn connect(
    target: &Target,
    builder: &http1::Builder,
    timeout: Duration,
) -> Result<http1::SendRequest<ProxyBody>, UpstreamError> {
    let connecting = async {
        match target.socket_addr {
            Some(address) => TcpStream::connect(address).await,
            None => TcpStream::connect(target.address.as_str()).await,
        }
    };
    let stream = match tokio::time::timeout(timeout, connecting).await {
        Ok(connected) => connected.map_err(UpstreamError::Connect)?,
        Err(_) => return Err(UpstreamError::Connect(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))),
    };
    tune_upstream_socket(&stream);
    let (sender, connection) = builder.handshake(TokioIo::new(stream)).await.map_err(UpstreamError::Send)?;
    tokio::spawn(async move {
        if let Err(error) = connection.with_upgrades().await {
            tracing::debug!(%error, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

/// Idle HTTP/1.1 connections to one endpoint, oldest first.
#[derive(Debug)]
struct Pool {
    idle: Mutex<Vec<Idle>>,
    idle_timeout: Duration,
    sweeping: AtomicBool,
}

#[derive(Debug)]
struct Idle {
    sender: http1::SendRequest<ProxyBody>,
    since: Instant,
}

impl Pool {
    fn new(idle_timeout: Duration) -> Self {
        Self { idle: Mutex::new(Vec::new()), idle_timeout, sweeping: AtomicBool::new(false) }
    }

    /// Held only to push or pop an entry: never across an await.
    fn lock(&self) -> MutexGuard<'_, Vec<Idle>> {
        match self.idle.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The most recently used idle connection that can take a request.
    fn checkout(&self) -> Option<http1::SendRequest<ProxyBody>> {
        let mut idle = self.lock();
        while let Some(entry) = idle.pop() {
            if entry.since.elapsed() >= self.idle_timeout {
                // The newest is too old: so are the others.
                idle.clear();
                return None;
            }
            if entry.sender.is_ready() {
                return Some(entry.sender);
            }
            // Closed by the endpoint while idle: dropped.
        }
        None
    }

    fn put(self: &Arc<Self>, sender: http1::SendRequest<ProxyBody>) {
        {
            let mut idle = self.lock();
            if idle.len() >= MAX_IDLE_PER_ENDPOINT {
                return;
            }
            idle.push(Idle { sender, since: Instant::now() });
        }
        if !self.sweeping.swap(true, Ordering::Relaxed) {
            self.start_sweeping();
        }
    }

    /// Closes connections idle past the idle timeout, every idle timeout, until the pool is
    /// gone (its revision replaced and its last response done).
    fn start_sweeping(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.sweeping.store(false, Ordering::Relaxed);
            return;
        };
        let pool: Weak<Self> = Arc::downgrade(self);
        let period = self.idle_timeout.max(MIN_SWEEP_PERIOD);
        runtime.spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                ticks.tick().await;
                let Some(pool) = pool.upgrade() else { return };
                let expired: Vec<Idle> = {
                    let mut idle = pool.lock();
                    let fresh = idle.iter().position(|e| e.since.elapsed() < pool.idle_timeout).unwrap_or(idle.len());
                    let mut expired: Vec<Idle> = idle.drain(..fresh).collect();
                    let mut i = 0;
                    while i < idle.len() {
                        if idle[i].sender.is_closed() {
                            expired.push(idle.remove(i));
                        } else {
                            i += 1;
                        }
                    }
                    expired
                };
                drop(expired);
            }
        });
    }
}

/// An HTTP/1.1 connection lent to one request. Dropped once the response body is done, it goes
/// back to its pool if it can take another request (if it is still busy, say the body was cut
/// short, a task waits for it; a closed or upgraded connection is let go).
#[derive(Debug)]
pub struct PooledConnection {
    sender: Option<http1::SendRequest<ProxyBody>>,
    pool: Arc<Pool>,
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        let Some(mut sender) = self.sender.take() else { return };
        if sender.is_ready() {
            self.pool.put(sender);
        } else if !sender.is_closed() {
            let pool = self.pool.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if sender.ready().await.is_ok() {
                        pool.put(sender);
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A raw HTTP/1.1 endpoint: answers `200 ok` to each request; with `close_after`, closes
    /// the connection that long after its first answer (as an endpoint's own idle timeout).
    async fn endpoint(close_after: Option<Duration>) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buffer.clear();
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                        if let Some(after) = close_after {
                            tokio::time::sleep(after).await;
                            return;
                        }
                    }
                });
            }
        });
        (address, accepted)
    }

    fn client(address: &str, idle: &str) -> UpstreamClient {
        let yaml = format!(
            "listeners: [ {{ name: l, protocol: http }} ]\n\
             services: [ {{ name: s, endpoints: [ {{ address: \"{address}\" }} ], timeouts: {{ connect: 1s, idle: {idle} }} }} ]\n\
             routes: [ {{ name: r, to: [ {{ service: s }} ] }} ]\n"
        );
        let document = gantry_proto::parse_document(&yaml).expect("document");
        UpstreamClient::for_service(&document.services[0])
    }

    async fn get(client: &UpstreamClient, address: &str) -> Result<Bytes, UpstreamError> {
        let path = PathAndQuery::from_static("/x");
        let uri = client.uri(0, address, &Method::GET, Some(&path)).expect("uri");
        assert_eq!(uri, "/x");
        let mut request = http::Request::new(ProxyBody::full(Bytes::new()));
        *request.uri_mut() = uri;
        if let Some(host) = client.host(0, address) {
            request.headers_mut().insert(http::header::HOST, host);
        }
        let (response, connection) = client.send(0, address, request).await?;
        assert!(connection.is_some());
        let body = response.into_body().collect().await.expect("body").to_bytes();
        // The connection goes back to the pool once the body is done.
        drop(connection);
        Ok(body)
    }

    #[tokio::test]
    async fn keep_alive_connections_are_reused() {
        let (address, accepted) = endpoint(None).await;
        let address = address.to_string();
        let client = client(&address, "60s");
        for _ in 0..3 {
            assert_eq!(get(&client, &address).await.expect("response"), "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_endpoint_closed_is_replaced() {
        let (address, accepted) = endpoint(Some(Duration::from_millis(20))).await;
        let address = address.to_string();
        let client = client(&address, "60s");
        assert_eq!(get(&client, &address).await.expect("first"), "ok");
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(get(&client, &address).await.expect("second"), "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn idle_connections_expire() {
        let (address, accepted) = endpoint(None).await;
        let address = address.to_string();
        let client = client(&address, "50ms");
        assert_eq!(get(&client, &address).await.expect("first"), "ok");
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(get(&client, &address).await.expect("second"), "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        // The sweep closes what is left idle.
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(client.targets[0].pool.lock().is_empty());
    }

    #[tokio::test]
    async fn refused_connections_are_connect_errors() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        drop(listener);
        let client = client(&address, "60s");
        let error = get(&client, &address).await.expect_err("nothing listens");
        assert!(error.is_connect(), "{error}");
    }
}
