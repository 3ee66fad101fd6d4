//! The QUIC fabric: one quinn endpoint per node carrying everything between nodes. Every
//! connection is mutual TLS against the cluster CA (joins excepted: the joiner pins the CA); the
//! peer's node id comes from its certificate, never from a message; ALPN names the protocol.
//! Each request is one bidirectional stream carrying one frame each way (`gantry_proto::codec`),
//! so one slow call never blocks another.

pub mod pki;
pub mod tls;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use gantry_proto::cluster::NodeId;
use gantry_proto::codec::{self, CodecError, LENGTH_PREFIX_BYTES, MAX_FRAME_BYTES};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls_pki_types::CertificateDer;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use tls::MemberTls;

/// Raft RPCs and requests forwarded to the leader.
pub const ALPN_RAFT: &[u8] = b"gantry-raft/1";
/// A new node asking to join.
pub const ALPN_JOIN: &[u8] = b"gantry-join/1";
/// Every protocol a member serves.
const SERVED_ALPNS: [&[u8]; 2] = [ALPN_RAFT, ALPN_JOIN];
/// Protocols a member dials other members on (joins dial with `join_call`).
const DIALED_ALPNS: [&[u8]; 1] = [ALPN_RAFT];

/// QUIC close code for a peer this cluster does not (or no longer) admit.
const CLOSE_REFUSED: u32 = 0x4701;
/// Keep-alives keep NAT and idle timers from closing quiet member connections.
const KEEP_ALIVE: Duration = Duration::from_secs(1);
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection dropped from the cache after a timed-out request stays open, so that
/// other requests still running on it (a snapshot, a slow answer) can finish.
const STALE_CONNECTION_GRACE: Duration = Duration::from_secs(5);
/// How long a stopping node waits for its close frames to be sent.
const CLOSE_GRACE: Duration = Duration::from_millis(500);
/// Receive buffer asked for the endpoint's UDP socket. UDP has no flow control: datagrams that
/// arrive while the buffer is full are dropped, and on loopback the kernel keeps a sender's
/// batch (GSO) as one buffer entry, so one drop loses many QUIC packets at once. With Linux's
/// default (208 KiB), one benchmark run counted 4 receive-buffer drops (`UdpRcvbufErrors`)
/// while quinn declared 39 packets lost and halved its window twice.
const UDP_RECEIVE_BUFFER: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FabricError {
    #[error("cannot reach {addr}: {reason}")]
    Unreachable { addr: SocketAddr, reason: String },
    /// `silent`: the peer sent nothing at all meanwhile (down, frozen, or never connected);
    /// otherwise it is alive and merely late.
    #[error("{addr} did not answer within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration, silent: bool },
    #[error("{addr} refused the connection: {reason}")]
    Refused { addr: SocketAddr, reason: String },
    #[error("bad frame from {addr}: {source}")]
    Codec { addr: SocketAddr, source: CodecError },
    #[error("TLS set-up failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot bind the fabric on {addr}: {source} (set --fabric)")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

impl FabricError {
    /// True when the peer may simply be down or unreachable (openraft backs off on these). A
    /// peer that acknowledged the request but answered late is not: backing off from it would
    /// stall replication to a live follower for the whole backoff.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, FabricError::Unreachable { .. } | FabricError::Timeout { silent: true, .. })
    }
}

/// Who sent a request: the node id from its certificate (none on join).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub node: Option<NodeId>,
    pub addr: SocketAddr,
}

pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Vec<u8>> + Send + 'a>>;

/// Serves requests of one protocol: gets the request frame's payload, returns the response
/// frame's payload (already encoded with the codec).
pub trait FabricHandler: Send + Sync + 'static {
    fn handle(&self, alpn: &'static [u8], peer: Peer, request: Vec<u8>) -> HandlerFuture<'_>;
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct FabricStats {
    pub refused_connections: AtomicU64,
    pub bad_frames: AtomicU64,
    pub requests_served: AtomicU64,
}

/// A cached connection: peer address, the node expected there, protocol.
type ConnectionKey = (SocketAddr, NodeId, &'static [u8]);

pub struct Fabric {
    endpoint: quinn::Endpoint,
    /// The runtime the endpoint was bound on (the cluster's thread). Connections dialled from a
    /// task elsewhere get their driver spawned here too, next to the endpoint's.
    home: tokio::runtime::Handle,
    node_id: NodeId,
    member: MemberTls,
    client_configs: HashMap<&'static [u8], quinn::ClientConfig>,
    /// Keyed by the node expected at the address too, so its name is checked on every dial.
    connections: Mutex<HashMap<ConnectionKey, quinn::Connection>>,
    /// Node ids whose certificates are refused (removed members).
    refused: ArcSwap<BTreeSet<NodeId>>,
    pub stats: FabricStats,
}

impl std::fmt::Debug for Fabric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fabric")
            .field("node_id", &self.node_id)
            .field("local", &self.endpoint.local_addr().ok())
            .finish()
    }
}

/// Asks for [`UDP_RECEIVE_BUFFER`]: the kernel grants up to `net.core.rmem_max`, and a root
/// process past it. Says so once when it gets less.
fn enlarge_receive_buffer(socket: &std::net::UdpSocket) {
    let sock = socket2::SockRef::from(socket);
    // Linux reports twice the size asked for (the other half is its bookkeeping).
    let granted = |sock: &socket2::SockRef<'_>| sock.recv_buffer_size().map_or(0, |bytes| bytes / 2);
    let _ = sock.set_recv_buffer_size(UDP_RECEIVE_BUFFER);
    if granted(&sock) < UDP_RECEIVE_BUFFER {
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size_force(socket, UDP_RECEIVE_BUFFER);
    }
    let granted = granted(&sock);
    if granted < UDP_RECEIVE_BUFFER {
        tracing::warn!(
            granted,
            wanted = UDP_RECEIVE_BUFFER,
            "the fabric's UDP receive buffer is smaller than asked; bursts may drop packets \
             (raise sysctl net.core.rmem_max)"
        );
    }
}

fn transport() -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(KEEP_ALIVE));
    if let Ok(idle) = quinn::IdleTimeout::try_from(IDLE_TIMEOUT) {
        transport.max_idle_timeout(Some(idle));
    }
    Arc::new(transport)
}

impl Fabric {
    /// Binds the node's endpoint (UDP `addr`) as member `node_id`.
    pub fn bind(addr: SocketAddr, node_id: NodeId, member: MemberTls) -> Result<Arc<Fabric>, FabricError> {
        let server_tls = tls::server_config(&member, &SERVED_ALPNS)?;
        let quic_server = QuicServerConfig::try_from(server_tls).map_err(|e| rustls::Error::General(e.to_string()))?;
        let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(quic_server));
        server_config.transport_config(transport());
        // The stateless-reset key comes from the node's own key, so after a restart the node's
        // resets are still valid for its old connections and peers drop those at once.
        let mut reset_secret = b"gantry fabric stateless reset".to_vec();
        reset_secret.extend_from_slice(member.key.secret_der());
        let reset_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &pki::sha256(&reset_secret));
        let endpoint_config = quinn::EndpointConfig::new(Arc::new(reset_key));
        let home = tokio::runtime::Handle::try_current()
            .map_err(|e| FabricError::Bind { addr, source: std::io::Error::other(e) })?;
        let socket = std::net::UdpSocket::bind(addr).map_err(|source| FabricError::Bind { addr, source })?;
        enlarge_receive_buffer(&socket);
        let endpoint =
            quinn::Endpoint::new(endpoint_config, Some(server_config), socket, Arc::new(quinn::TokioRuntime))
                .map_err(|source| FabricError::Bind { addr, source })?;
        let mut client_configs = HashMap::new();
        for alpn in DIALED_ALPNS {
            let client_tls = tls::member_client_config(&member, alpn)?;
            let quic_client =
                QuicClientConfig::try_from(client_tls).map_err(|e| rustls::Error::General(e.to_string()))?;
            let mut client = quinn::ClientConfig::new(Arc::new(quic_client));
            client.transport_config(transport());
            client_configs.insert(alpn, client);
        }
        Ok(Arc::new(Fabric {
            endpoint,
            home,
            node_id,
            member,
            client_configs,
            connections: Mutex::new(HashMap::new()),
            refused: ArcSwap::from_pointee(BTreeSet::new()),
            stats: FabricStats::default(),
        }))
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.endpoint.local_addr().ok()
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    pub fn member_tls(&self) -> &MemberTls {
        &self.member
    }

    /// Sets the node ids whose certificates are refused from now on; their open connections
    /// are closed.
    pub fn set_refused(&self, refused: BTreeSet<NodeId>) {
        if **self.refused.load() == refused {
            return;
        }
        self.refused.store(Arc::new(refused));
        let mut connections = lock(&self.connections);
        connections.retain(|_, connection| {
            let keep = peer_node(connection).is_none_or(|id| !self.is_refused(id));
            if !keep {
                connection.close(CLOSE_REFUSED.into(), b"node removed from the cluster");
            }
            keep
        });
    }

    fn is_refused(&self, id: NodeId) -> bool {
        self.refused.load().contains(&id)
    }

    /// Sends `request` to member `node` at `addr` over `alpn` and waits for its answer.
    pub async fn request<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: SocketAddr,
        node: NodeId,
        alpn: &'static [u8],
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, FabricError> {
        let frame = codec::encode_frame(request).map_err(|source| FabricError::Codec { addr, source })?;
        let key = (addr, node, alpn);
        // The connection the request went out on and how many datagrams it had received then,
        // so a timeout judges that connection (not a fresh one another request dialled).
        let used = Mutex::new(None::<(quinn::Connection, u64)>);
        let attempt = async {
            // A cached connection may have died since; one fresh retry covers that.
            for fresh in [false, true] {
                let connection = self.connection(addr, node, alpn, fresh).await?;
                *lock(&used) = Some((connection.clone(), connection.stats().udp_rx.datagrams));
                match exchange(&connection, &frame).await {
                    Ok(bytes) => return decode_response(addr, &bytes),
                    Err(reason) if !fresh => {
                        tracing::debug!(%addr, %reason, "fabric stream failed; reconnecting");
                        lock(&self.connections).remove(&(addr, node, alpn));
                    }
                    Err(reason) => return Err(classify_stream_failure(addr, &connection, reason)),
                }
            }
            Err(FabricError::Unreachable { addr, reason: "no connection".into() })
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => {
                // A peer that restarted (or froze) sends nothing at all on the old connection,
                // which would only die at the idle timeout; a Raft election gets one vote
                // request per peer, so the next request must dial afresh. A peer that is merely
                // slow still acknowledges packets: its connection stays, so an overloaded
                // cluster is not also made to redial on every late answer. A dropped connection
                // stays open a while for whatever else still runs on it.
                let timed_out = lock(&used).take();
                let heard_from = timed_out
                    .as_ref()
                    .is_some_and(|(connection, received)| connection.stats().udp_rx.datagrams != *received);
                let silent = timed_out.filter(|_| !heard_from);
                if let Some((timed_out, _)) = silent {
                    let mut connections = lock(&self.connections);
                    if connections.get(&key).is_some_and(|c| c.stable_id() == timed_out.stable_id()) {
                        connections.remove(&key);
                        drop(connections);
                        tokio::spawn(async move {
                            tokio::time::sleep(STALE_CONNECTION_GRACE).await;
                            timed_out.close(0u32.into(), b"requests timed out");
                        });
                    }
                }
                Err(FabricError::Timeout { addr, timeout, silent: !heard_from })
            }
        }
    }

    /// The id of the cached connection to `node` at `addr`, if any.
    #[cfg(test)]
    fn cached_connection_id(&self, addr: SocketAddr, node: NodeId, alpn: &'static [u8]) -> Option<usize> {
        lock(&self.connections).get(&(addr, node, alpn)).map(quinn::Connection::stable_id)
    }

    async fn connection(
        &self,
        addr: SocketAddr,
        node: NodeId,
        alpn: &'static [u8],
        fresh: bool,
    ) -> Result<quinn::Connection, FabricError> {
        if !fresh {
            if let Some(connection) = lock(&self.connections).get(&(addr, node, alpn)) {
                if connection.close_reason().is_none() {
                    return Ok(connection.clone());
                }
            }
        }
        let config = self
            .client_configs
            .get(alpn)
            .cloned()
            .ok_or_else(|| FabricError::Unreachable { addr, reason: "unknown protocol".into() })?;
        let connecting = {
            // quinn spawns the connection's driver with `tokio::spawn` inside `connect_with`.
            let _home = self.home.enter();
            self.endpoint
                .connect_with(config, addr, &pki::node_server_name(node))
                .map_err(|e| FabricError::Unreachable { addr, reason: e.to_string() })?
        };
        let connection = connecting.await.map_err(|e| FabricError::Unreachable { addr, reason: e.to_string() })?;
        lock(&self.connections).insert((addr, node, alpn), connection.clone());
        Ok(connection)
    }

    /// Accepts connections until the endpoint closes, handing each request to `handler`.
    pub fn serve(self: &Arc<Self>, handler: Arc<dyn FabricHandler>) {
        let fabric = self.clone();
        tokio::spawn(async move {
            while let Some(incoming) = fabric.endpoint.accept().await {
                let fabric = fabric.clone();
                let handler = handler.clone();
                tokio::spawn(async move {
                    let remote = incoming.remote_address();
                    match incoming.await {
                        Ok(connection) => fabric.serve_connection(connection, handler).await,
                        Err(error) => tracing::debug!(%remote, %error, "fabric handshake failed"),
                    }
                });
            }
        });
    }

    async fn serve_connection(&self, connection: quinn::Connection, handler: Arc<dyn FabricHandler>) {
        let addr = connection.remote_address();
        let alpn = negotiated_alpn(&connection);
        let node = peer_node(&connection);
        let admitted = match (alpn, node) {
            (Some(ALPN_JOIN), _) => true,
            (Some(_), Some(id)) => !self.is_refused(id),
            _ => false,
        };
        let Some(alpn) = alpn.filter(|_| admitted) else {
            self.stats.refused_connections.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%addr, ?node, "fabric connection refused: no valid member certificate, or the node was removed");
            connection.close(CLOSE_REFUSED.into(), b"not a member of this cluster");
            return;
        };
        let peer = Peer { node, addr };
        loop {
            let (mut send, mut recv) = match connection.accept_bi().await {
                Ok(streams) => streams,
                Err(_) => return,
            };
            if node.is_some_and(|id| self.is_refused(id)) {
                connection.close(CLOSE_REFUSED.into(), b"node removed from the cluster");
                return;
            }
            let handler = handler.clone();
            let stats = &self.stats;
            let request = match read_frame(&mut recv).await {
                Ok(payload) => payload,
                Err(reason) => {
                    stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%addr, %reason, "dropped a bad fabric frame");
                    let _ = send.reset(0u32.into());
                    continue;
                }
            };
            stats.requests_served.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let response = handler.handle(alpn, peer, request).await;
                let mut frame = Vec::with_capacity(LENGTH_PREFIX_BYTES + response.len());
                frame.extend_from_slice(&(response.len() as u32).to_be_bytes());
                frame.extend_from_slice(&response);
                if send.write_all(&frame).await.is_ok() {
                    let _ = send.finish();
                }
            });
        }
    }

    /// Closes every connection and the endpoint.
    /// Closes every connection and waits (briefly) for the close frames to leave, so peers
    /// learn of a graceful stop at once instead of at their idle timeout.
    pub async fn close(&self) {
        self.endpoint.close(0u32.into(), b"node stopping");
        let _ = tokio::time::timeout(CLOSE_GRACE, self.endpoint.wait_idle()).await;
    }
}

/// Calls a join server at `addr` (any member), trusting it only if its CA matches `ca_pin`.
pub async fn join_call<Req: Serialize, Resp: DeserializeOwned>(
    addr: SocketAddr,
    ca_pin: [u8; 32],
    request: &Req,
    timeout: Duration,
) -> Result<Resp, FabricError> {
    let local: SocketAddr = if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let endpoint = quinn::Endpoint::client(local).map_err(|source| FabricError::Bind { addr: local, source })?;
    let client_tls = tls::join_client_config(ca_pin, ALPN_JOIN)?;
    let quic_client = QuicClientConfig::try_from(client_tls).map_err(|e| rustls::Error::General(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic_client));
    config.transport_config(transport());
    let frame = codec::encode_frame(request).map_err(|source| FabricError::Codec { addr, source })?;
    let attempt = async {
        let connection = endpoint
            .connect_with(config, addr, "join.gantry.internal")
            .map_err(|e| FabricError::Unreachable { addr, reason: e.to_string() })?
            .await
            .map_err(|e| match e {
                quinn::ConnectionError::TransportError(t) => FabricError::Refused { addr, reason: t.to_string() },
                other => FabricError::Unreachable { addr, reason: other.to_string() },
            })?;
        let bytes =
            exchange(&connection, &frame).await.map_err(|reason| classify_stream_failure(addr, &connection, reason))?;
        connection.close(0u32.into(), b"done");
        decode_response(addr, &bytes)
    };
    let result = tokio::time::timeout(timeout, attempt).await.unwrap_or(Err(FabricError::Timeout {
        addr,
        timeout,
        silent: true,
    }));
    endpoint.wait_idle().await;
    result
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn negotiated_alpn(connection: &quinn::Connection) -> Option<&'static [u8]> {
    let data = connection.handshake_data()?;
    let data = data.downcast::<quinn::crypto::rustls::HandshakeData>().ok()?;
    let protocol = data.protocol?;
    SERVED_ALPNS.into_iter().find(|a| **a == protocol[..])
}

fn peer_node(connection: &quinn::Connection) -> Option<NodeId> {
    let identity = connection.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    pki::node_id_of(chain.first()?)
}

/// One request/response on a new bidirectional stream; Err carries a reason.
async fn exchange(connection: &quinn::Connection, frame: &[u8]) -> Result<Vec<u8>, String> {
    let (mut send, mut recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
    send.write_all(frame).await.map_err(|e| e.to_string())?;
    send.finish().map_err(|e| e.to_string())?;
    read_frame(&mut recv).await
}

/// Reads one length-prefixed frame, refusing oversized ones before allocating.
async fn read_frame(recv: &mut quinn::RecvStream) -> Result<Vec<u8>, String> {
    let mut prefix = [0u8; LENGTH_PREFIX_BYTES];
    recv.read_exact(&mut prefix).await.map_err(|e| e.to_string())?;
    let length = codec::frame_length(prefix).map_err(|e| e.to_string())?;
    debug_assert!(length <= MAX_FRAME_BYTES);
    let mut payload = vec![0u8; length];
    recv.read_exact(&mut payload).await.map_err(|e| e.to_string())?;
    // The frame is the whole stream: its end (the FIN, sent with the frame) is read too. That
    // also closes the stream quietly: a receive side dropped before its end makes quinn send the
    // peer a STOP_SENDING, one more packet and one more ACK per RPC in each direction.
    match recv.read(&mut [0u8; 1]).await {
        Ok(None) => Ok(payload),
        Ok(Some(_)) => Err("bytes after the frame".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn decode_response<Resp: DeserializeOwned>(addr: SocketAddr, bytes: &[u8]) -> Result<Resp, FabricError> {
    codec::decode_payload(bytes).map_err(|source| FabricError::Codec { addr, source })
}

/// A stream that failed on a connection the server closed as refused is a refusal, not an outage.
fn classify_stream_failure(addr: SocketAddr, connection: &quinn::Connection, reason: String) -> FabricError {
    match connection.close_reason() {
        Some(quinn::ConnectionError::ApplicationClosed(close)) if close.error_code == CLOSE_REFUSED.into() => {
            FabricError::Refused { addr, reason: String::from_utf8_lossy(&close.reason).into_owned() }
        }
        Some(quinn::ConnectionError::ConnectionClosed(close)) => {
            FabricError::Refused { addr, reason: close.to_string() }
        }
        Some(quinn::ConnectionError::TransportError(error)) => FabricError::Refused { addr, reason: error.to_string() },
        _ => FabricError::Unreachable { addr, reason },
    }
}

#[cfg(test)]
mod tests;
