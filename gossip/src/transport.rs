//! The sealed chitchat transport. chitchat's envelope codec is crate-private, so this module gets
//! envelope bytes through loopback: chitchat's own `UdpSocket`s encode and decode, and this
//! module seals, opens, checks and counts what crosses the gossip port.
//!
//! ```text
//! send:  chitchat ──envelope──▶ encoder (chitchat UdpSocket, 127.0.0.1:e) ──udp──▶ capture (127.0.0.1:c)
//!        capture ──bytes──▶ seal ──▶ gossip port ──▶ peer
//! recv:  gossip port ──▶ recv task: open, check, reassemble ──▶ feeder for that peer (127.0.0.1:f)
//!        ──udp──▶ decoder (chitchat UdpSocket, 127.0.0.1:d) ──envelope──▶ recv(): f ↦ peer ──▶ chitchat
//! ```
//!
//! Loopback ports are reachable by every local process, so the capture socket accepts only its
//! encoder's address and `recv` accepts only feeders' addresses; everything else is dropped and
//! counted as [`DropReason::LoopbackForeign`]. (Forging a loopback source address needs raw
//! sockets, i.e. root, which could read the key from memory anyway.)

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use async_trait::async_trait;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport, UdpSocket as ChitchatUdpSocket};
use chitchat::ChitchatEnvelope;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::counters::Counters;
use crate::key::KeyRing;
use crate::wire::{self, DropReason, Header, MAX_FRAGMENTS};
use crate::NodeId;

/// Receive buffer: one byte more than the largest valid datagram, so oversize is detectable
/// (IPv6 can carry up to 65,527 bytes).
const RECV_BUF_LEN: usize = 65_536;
/// Bound on per-peer feeder sockets (one file descriptor each); the least recently used one is
/// closed beyond it.
const MAX_FEEDERS: usize = 1_024;
/// Bound on envelopes waiting for missing fragments.
const MAX_PENDING_REASSEMBLIES: usize = 16;
/// Fragments of one envelope are sent back to back; one that lags this much is lost.
const FRAGMENT_TIMEOUT: Duration = Duration::from_secs(2);
/// Loopback delivery is immediate; this only bounds a send when something is badly wrong.
const CAPTURE_TIMEOUT: Duration = Duration::from_millis(500);
/// Bound on remembered nonces per generation (two generations are kept).
const REPLAY_CACHE_CAP: usize = 65_536;

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Locks a std mutex, ignoring poisoning: every critical section here leaves the data valid.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// State shared by the transport and the [`crate::Gossip`] handle: keys and members can change
/// at run time, counters are read by the node.
pub(crate) struct TransportShared {
    pub(crate) node_id: NodeId,
    pub(crate) max_skew_ms: u64,
    keys: RwLock<Arc<KeyRing>>,
    pub(crate) members: watch::Sender<Arc<HashSet<NodeId>>>,
    pub(crate) counters: Counters,
    /// The gossip socket, bound by `Gossip::start` (so a port 0 is resolved before chitchat
    /// needs its advertise address) and taken by `open`.
    pre_bound: Mutex<Option<UdpSocket>>,
    recv_task: Mutex<Option<JoinHandle<()>>>,
    #[cfg(feature = "testing")]
    paused_until: Mutex<Option<Instant>>,
    #[cfg(feature = "testing")]
    pub(crate) loopback_addrs: Mutex<Vec<SocketAddr>>,
}

impl TransportShared {
    pub(crate) fn new(
        node_id: NodeId,
        max_skew_ms: u64,
        keys: KeyRing,
        members: HashSet<NodeId>,
        socket: UdpSocket,
    ) -> Self {
        Self {
            node_id,
            max_skew_ms,
            keys: RwLock::new(Arc::new(keys)),
            members: watch::Sender::new(Arc::new(members)),
            counters: Counters::default(),
            pre_bound: Mutex::new(Some(socket)),
            recv_task: Mutex::new(None),
            #[cfg(feature = "testing")]
            paused_until: Mutex::new(None),
            #[cfg(feature = "testing")]
            loopback_addrs: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn keys(&self) -> Arc<KeyRing> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set_keys(&self, keys: KeyRing) {
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
    }

    pub(crate) fn take_recv_task(&self) -> Option<JoinHandle<()>> {
        lock(&self.recv_task).take()
    }

    #[cfg(feature = "testing")]
    pub(crate) fn pause_until(&self, until: Instant) {
        *lock(&self.paused_until) = Some(until);
    }
}

pub(crate) struct SealedTransport {
    pub(crate) shared: Arc<TransportShared>,
}

#[async_trait]
impl Transport for SealedTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let real = lock(&self.shared.pre_bound).take();
        let real = match real {
            Some(socket) => socket,
            None => UdpSocket::bind(listen_addr)
                .await
                .with_context(|| format!("failed to bind to {listen_addr}/udp for gossip"))?,
        };
        let socket = SealedSocket::open(self.shared.clone(), real).await?;
        Ok(Box::new(socket))
    }
}

fn loopback_any() -> SocketAddr {
    (Ipv4Addr::LOCALHOST, 0).into()
}

struct SealedSocket {
    shared: Arc<TransportShared>,
    real: Arc<UdpSocket>,
    local_addr: SocketAddr,
    encoder: ChitchatUdpSocket,
    encoder_addr: SocketAddr,
    capture: UdpSocket,
    capture_addr: SocketAddr,
    capture_buf: Box<[u8]>,
    decoder: ChitchatUdpSocket,
    /// Feeder address → the real peer address it speaks for.
    feeder_peers: Arc<Mutex<HashMap<SocketAddr, SocketAddr>>>,
    broken: watch::Receiver<Option<String>>,
    rng: SystemRandom,
    next_message_id: u32,
}

impl SealedSocket {
    async fn open(shared: Arc<TransportShared>, real: UdpSocket) -> anyhow::Result<Self> {
        let local_addr = real.local_addr().context("gossip socket has no local address")?;
        let real = Arc::new(real);
        let encoder = ChitchatUdpSocket::open(loopback_any()).await?;
        let encoder_addr = encoder.local_addr()?;
        let capture = UdpSocket::bind(loopback_any()).await.context("failed to bind the loopback capture socket")?;
        let capture_addr = capture.local_addr()?;
        let decoder = ChitchatUdpSocket::open(loopback_any()).await?;
        let decoder_addr = decoder.local_addr()?;
        let feeder_peers = Arc::new(Mutex::new(HashMap::new()));
        let (broken_tx, broken) = watch::channel(None);
        let recv_loop = RecvLoop {
            shared: shared.clone(),
            real: real.clone(),
            decoder_addr,
            feeders: Feeders { by_peer: HashMap::new(), feeder_peers: feeder_peers.clone() },
            replay: ReplayCache::new(Duration::from_millis(shared.max_skew_ms)),
            reassembly: Reassembly::default(),
        };
        let task = tokio::spawn(recv_loop.run(broken_tx));
        if let Some(previous) = lock(&shared.recv_task).replace(task) {
            previous.abort();
        }
        #[cfg(feature = "testing")]
        {
            *lock(&shared.loopback_addrs) = vec![encoder_addr, capture_addr, decoder_addr];
        }
        let mut id = [0u8; 4];
        let rng = SystemRandom::new();
        // A random start keeps message ids of a restarted node from matching old fragments.
        let _ = rng.fill(&mut id);
        Ok(Self {
            shared,
            real,
            local_addr,
            encoder,
            encoder_addr,
            capture,
            capture_addr,
            capture_buf: vec![0u8; RECV_BUF_LEN].into_boxed_slice(),
            decoder,
            feeder_peers,
            broken,
            rng,
            next_message_id: u32::from_be_bytes(id),
        })
    }

    /// Discards anything already queued on the capture socket, so the next read is the
    /// envelope we are about to encode.
    fn drain_capture(&mut self) {
        while let Ok((_, from)) = self.capture.try_recv_from(&mut self.capture_buf) {
            if from != self.encoder_addr {
                self.shared.counters.dropped(DropReason::LoopbackForeign);
            }
        }
    }

    /// Reads the encoded envelope back from the capture socket.
    async fn capture_envelope(&mut self) -> io::Result<usize> {
        let encoder_addr = self.encoder_addr;
        let counters = &self.shared.counters;
        let capture = &self.capture;
        let buf = &mut self.capture_buf;
        let read = async {
            loop {
                let (len, from) = capture.recv_from(buf).await?;
                if from == encoder_addr {
                    return Ok(len);
                }
                counters.dropped(DropReason::LoopbackForeign);
            }
        };
        tokio::time::timeout(CAPTURE_TIMEOUT, read)
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "loopback capture timed out")))
    }

    #[cfg(feature = "testing")]
    async fn wait_while_paused(&self) {
        let until = *lock(&self.shared.paused_until);
        if let Some(until) = until {
            if until > Instant::now() {
                // Stalls chitchat's whole server loop, as a stopped process would.
                tokio::time::sleep_until(until).await;
            }
            lock(&self.shared.paused_until).take_if(|at| *at <= Instant::now());
        }
    }
}

#[async_trait]
impl Socket for SealedSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.local_addr)
    }

    async fn send(&mut self, to: SocketAddr, envelope: ChitchatEnvelope) -> anyhow::Result<SendOutcome> {
        #[cfg(feature = "testing")]
        self.wait_while_paused().await;
        self.drain_capture();
        if let Err(err) = self.encoder.send(self.capture_addr, envelope).await {
            self.shared.counters.send_error();
            return Err(err);
        }
        let len = match self.capture_envelope().await {
            Ok(len) => len,
            Err(err) => {
                self.shared.counters.send_error();
                warn!(error = %err, "gossip envelope lost on loopback; it will be resent next round");
                return Ok(SendOutcome { num_bytes_sent: 0 });
            }
        };
        let keys = self.shared.keys();
        self.next_message_id = self.next_message_id.wrapping_add(1);
        let sealed = wire::seal(
            &keys,
            &self.rng,
            self.shared.node_id,
            unix_ms(),
            self.next_message_id,
            &self.capture_buf[..len],
        );
        let datagrams = match sealed {
            Ok(datagrams) => datagrams,
            Err(err) => {
                self.shared.counters.dropped(DropReason::Oversized);
                warn!(error = %err, envelope_len = len, "gossip envelope not sent");
                return Ok(SendOutcome { num_bytes_sent: 0 });
            }
        };
        let mut num_bytes_sent = 0;
        for datagram in &datagrams {
            match self.real.send_to(datagram, to).await {
                Ok(n) => {
                    self.shared.counters.sent(n);
                    num_bytes_sent += n;
                }
                Err(err) => {
                    self.shared.counters.send_error();
                    debug!(error = %err, peer = %to, "gossip send failed");
                    return Err(err).with_context(|| format!("failed to send gossip to {to}"));
                }
            }
        }
        self.shared.counters.envelope_out();
        Ok(SendOutcome { num_bytes_sent })
    }

    /// Cancel-safe: the only await is the decoder's `recv_from` (cancel-safe in tokio) and the
    /// `watch` change notification; everything after them is synchronous.
    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            if let Some(err) = self.broken.borrow().as_ref() {
                bail!("gossip receive task failed: {err}");
            }
            let outcome = tokio::select! {
                changed = self.broken.changed() => {
                    if changed.is_err() {
                        bail!("gossip receive task stopped");
                    }
                    continue;
                }
                outcome = self.decoder.recv() => outcome?,
            };
            let peer = lock(&self.feeder_peers).get(&outcome.from_addr).copied();
            match peer {
                Some(peer) => return Ok(RecvOutcome { from_addr: peer, ..outcome }),
                None => self.shared.counters.dropped(DropReason::LoopbackForeign),
            }
        }
    }
}

fn is_transient(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::OutOfMemory
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// The background task that owns the receive side of the gossip port.
struct RecvLoop {
    shared: Arc<TransportShared>,
    real: Arc<UdpSocket>,
    decoder_addr: SocketAddr,
    feeders: Feeders,
    replay: ReplayCache,
    reassembly: Reassembly,
}

impl RecvLoop {
    async fn run(mut self, broken: watch::Sender<Option<String>>) {
        let mut buf = vec![0u8; RECV_BUF_LEN];
        loop {
            let (len, from) = match self.real.recv_from(&mut buf).await {
                Ok(received) => received,
                Err(err) if is_transient(&err) => {
                    debug!(error = %err, "transient gossip recv error");
                    continue;
                }
                Err(err) => {
                    warn!(error = %err, "gossip socket failed; gossip stops on this node");
                    let _ = broken.send(Some(err.to_string()));
                    return;
                }
            };
            self.shared.counters.received(len);
            if let Some(plaintext) = self.accept(&mut buf[..len], from) {
                if let Err(err) = self.feeders.forward(from, &plaintext, self.decoder_addr).await {
                    warn!(error = %err, peer = %from, "cannot hand a gossip envelope to chitchat over loopback");
                    continue;
                }
                self.shared.counters.envelope_in();
            }
        }
    }

    /// Opens and checks one datagram; returns a whole envelope when one is complete.
    fn accept(&mut self, datagram: &mut [u8], from: SocketAddr) -> Option<Vec<u8>> {
        let keys = self.shared.keys();
        let members = self.shared.members.borrow().clone();
        let now = unix_ms();
        let opened = wire::open(&keys, datagram, now, self.shared.max_skew_ms, |id| members.contains(&id));
        let (header, plaintext) = match opened {
            Ok(opened) => opened,
            Err(reason) => {
                self.drop(reason, from);
                return None;
            }
        };
        if !self.replay.first_sighting(header.nonce) {
            self.drop(DropReason::Replayed, from);
            return None;
        }
        if header.fragment_count == 1 {
            return Some(plaintext.to_vec());
        }
        let (whole, lost) = self.reassembly.add(from, &header, plaintext);
        for reason in lost {
            self.drop(reason, from);
        }
        whole
    }

    fn drop(&self, reason: DropReason, from: SocketAddr) {
        self.shared.counters.dropped(reason);
        debug!(reason = reason.as_str(), peer = %from, "gossip datagram dropped");
    }
}

/// One loopback socket per peer, so that the decoder's sender address says which peer an
/// envelope came from.
struct Feeders {
    by_peer: HashMap<SocketAddr, Feeder>,
    feeder_peers: Arc<Mutex<HashMap<SocketAddr, SocketAddr>>>,
}

struct Feeder {
    socket: UdpSocket,
    addr: SocketAddr,
    last_used: Instant,
}

impl Feeders {
    async fn forward(&mut self, peer: SocketAddr, plaintext: &[u8], decoder_addr: SocketAddr) -> io::Result<()> {
        if !self.by_peer.contains_key(&peer) {
            if self.by_peer.len() >= MAX_FEEDERS {
                self.evict_least_recently_used();
            }
            let socket = UdpSocket::bind(loopback_any()).await?;
            let addr = socket.local_addr()?;
            lock(&self.feeder_peers).insert(addr, peer);
            self.by_peer.insert(peer, Feeder { socket, addr, last_used: Instant::now() });
        }
        let Some(feeder) = self.by_peer.get_mut(&peer) else {
            return Ok(());
        };
        feeder.last_used = Instant::now();
        feeder.socket.send_to(plaintext, decoder_addr).await?;
        Ok(())
    }

    fn evict_least_recently_used(&mut self) {
        let oldest = self.by_peer.iter().min_by_key(|(_, f)| f.last_used).map(|(peer, _)| *peer);
        if let Some(feeder) = oldest.and_then(|peer| self.by_peer.remove(&peer)) {
            lock(&self.feeder_peers).remove(&feeder.addr);
        }
    }
}

/// Nonces seen recently. Datagrams older than the skew window are refused by their timestamp,
/// so nonces need remembering only that long: two generations, each covering one window (or
/// [`REPLAY_CACHE_CAP`] nonces, whichever comes first).
struct ReplayCache {
    current: HashSet<[u8; 12]>,
    previous: HashSet<[u8; 12]>,
    rotated_at: Instant,
    period: Duration,
}

impl ReplayCache {
    fn new(period: Duration) -> Self {
        Self { current: HashSet::new(), previous: HashSet::new(), rotated_at: Instant::now(), period }
    }

    /// Records the nonce; false if it was already seen.
    fn first_sighting(&mut self, nonce: [u8; 12]) -> bool {
        if self.rotated_at.elapsed() >= self.period || self.current.len() >= REPLAY_CACHE_CAP {
            self.previous = std::mem::take(&mut self.current);
            self.rotated_at = Instant::now();
        }
        if self.previous.contains(&nonce) {
            return false;
        }
        self.current.insert(nonce)
    }
}

type ReassemblyKey = (SocketAddr, NodeId, u32);

struct Partial {
    started: Instant,
    count: u8,
    parts: [Option<Vec<u8>>; MAX_FRAGMENTS as usize],
}

/// Envelopes split over several datagrams, waiting for their other fragments. Bounded in
/// number and time.
#[derive(Default)]
struct Reassembly {
    pending: HashMap<ReassemblyKey, Partial>,
}

impl Reassembly {
    /// Adds a fragment. Returns the envelope once all its fragments are in, and the drops this
    /// call caused (expired or evicted envelopes, an inconsistent fragment).
    fn add(&mut self, from: SocketAddr, header: &Header, payload: &[u8]) -> (Option<Vec<u8>>, Vec<DropReason>) {
        let mut lost = Vec::new();
        self.pending.retain(|_, p| {
            let keep = p.started.elapsed() < FRAGMENT_TIMEOUT;
            if !keep {
                lost.push(DropReason::Incomplete);
            }
            keep
        });
        let key = (from, header.sender, header.message_id);
        if !self.pending.contains_key(&key) && self.pending.len() >= MAX_PENDING_REASSEMBLIES {
            let oldest = self.pending.iter().min_by_key(|(_, p)| p.started).map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                self.pending.remove(&oldest);
                lost.push(DropReason::Incomplete);
            }
        }
        let partial = self.pending.entry(key).or_insert_with(|| Partial {
            started: Instant::now(),
            count: header.fragment_count,
            parts: Default::default(),
        });
        let index = usize::from(header.fragment_index);
        if partial.count != header.fragment_count || index >= usize::from(partial.count) {
            self.pending.remove(&key);
            lost.push(DropReason::Malformed);
            return (None, lost);
        }
        partial.parts[index] = Some(payload.to_vec());
        let count = usize::from(partial.count);
        if !partial.parts[..count].iter().all(Option::is_some) {
            return (None, lost);
        }
        let whole = self.pending.remove(&key).map(|p| p.parts.into_iter().flatten().flatten().collect());
        (whole, lost)
    }
}

#[cfg(test)]
mod tests {
    use chitchat::{ChitchatMessage, ProtocolVersion};

    use super::*;
    use crate::key::GossipKey;

    async fn open_socket(node_id: NodeId, members: &[NodeId]) -> (Arc<TransportShared>, Box<dyn Socket>) {
        let keys = KeyRing::new(&GossipKey::from_bytes([3; 32]), None).expect("keys");
        let real = UdpSocket::bind(loopback_any()).await.expect("bind");
        let shared = Arc::new(TransportShared::new(node_id, 30_000, keys, members.iter().copied().collect(), real));
        let socket = SealedTransport { shared: shared.clone() }.open(loopback_any()).await.expect("open");
        (shared, socket)
    }

    fn syn(cluster_id: String) -> ChitchatEnvelope {
        ChitchatEnvelope {
            version: ProtocolVersion::V0,
            message: ChitchatMessage::Syn { cluster_id, digest: Default::default() },
        }
    }

    #[tokio::test]
    async fn envelope_crosses_sealed_and_keeps_the_real_peer_address() {
        let (_, mut a) = open_socket(1, &[1, 2]).await;
        let (shared_b, mut b) = open_socket(2, &[1, 2]).await;
        let b_addr = b.local_addr().expect("addr");
        a.send(b_addr, syn("c".into())).await.expect("send");
        let got = b.recv().await.expect("recv");
        assert_eq!(got.envelope, syn("c".into()));
        assert_eq!(got.from_addr, a.local_addr().expect("addr"));
        assert_eq!(shared_b.counters.snapshot().envelopes_in, 1);
    }

    #[tokio::test]
    async fn largest_envelope_travels_in_two_fragments() {
        let (shared_a, mut a) = open_socket(1, &[1, 2]).await;
        let (_, mut b) = open_socket(2, &[1, 2]).await;
        let b_addr = b.local_addr().expect("addr");
        // Chitchat caps envelopes at 65,507 bytes; the sealed form of one that size cannot fit.
        let mut x: u32 = 1;
        let big: String = (0..65_490)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                char::from(b'a' + (x % 26) as u8)
            })
            .collect();
        a.send(b_addr, syn(big.clone())).await.expect("send");
        let got = b.recv().await.expect("recv");
        assert_eq!(got.envelope, syn(big));
        let sent = shared_a.counters.snapshot();
        assert_eq!((sent.envelopes_out, sent.packets_out), (1, 2));
    }

    #[tokio::test]
    async fn recv_is_cancel_safe() {
        let (_, mut a) = open_socket(1, &[1, 2]).await;
        let (_, mut b) = open_socket(2, &[1, 2]).await;
        let b_addr = b.local_addr().expect("addr");
        let mut received = 0;
        for i in 0..50 {
            a.send(b_addr, syn(format!("c{i}"))).await.expect("send");
            // Cancel a pending recv now and then, as chitchat's select loop does.
            if i % 3 == 0 {
                let _ = tokio::time::timeout(Duration::from_micros(1), b.recv()).await.map(|_| received += 1);
            }
        }
        while received < 50 {
            tokio::time::timeout(Duration::from_secs(2), b.recv()).await.expect("no envelope lost").expect("recv");
            received += 1;
        }
    }

    #[tokio::test]
    async fn datagrams_from_non_members_never_reach_chitchat() {
        let (_, mut a) = open_socket(1, &[1, 2]).await;
        let (shared_b, mut b) = open_socket(2, &[2]).await;
        let b_addr = b.local_addr().expect("addr");
        a.send(b_addr, syn("c".into())).await.expect("send");
        assert!(tokio::time::timeout(Duration::from_millis(300), b.recv()).await.is_err());
        assert_eq!(shared_b.counters.snapshot().dropped(DropReason::UnknownSender), 1);
        shared_b.members.send_replace(Arc::new([1, 2].into_iter().collect()));
        a.send(b_addr, syn("d".into())).await.expect("send");
        assert_eq!(b.recv().await.expect("recv").envelope, syn("d".into()));
    }

    fn header(message_id: u32, index: u8, count: u8) -> Header {
        Header {
            key_id: [0; 4],
            sender: 1,
            sent_at_unix_ms: 0,
            message_id,
            fragment_index: index,
            fragment_count: count,
            nonce: [0; 12],
        }
    }

    #[test]
    fn reassembles_out_of_order_fragments() {
        let mut r = Reassembly::default();
        let from: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        assert_eq!(r.add(from, &header(5, 1, 2), b"world"), (None, vec![]));
        assert_eq!(r.add(from, &header(5, 0, 2), b"hello "), (Some(b"hello world".to_vec()), vec![]));
        assert!(r.pending.is_empty());
    }

    #[test]
    fn pending_reassemblies_are_bounded() {
        let mut r = Reassembly::default();
        let from: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        for id in 0..MAX_PENDING_REASSEMBLIES as u32 {
            assert_eq!(r.add(from, &header(id, 0, 2), b"x"), (None, vec![]));
        }
        assert_eq!(r.add(from, &header(999, 0, 2), b"x"), (None, vec![DropReason::Incomplete]));
        assert_eq!(r.pending.len(), MAX_PENDING_REASSEMBLIES);
    }

    #[test]
    fn inconsistent_fragment_count_is_malformed() {
        let mut r = Reassembly::default();
        let from: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        assert_eq!(r.add(from, &header(1, 0, 2), b"x"), (None, vec![]));
        assert_eq!(r.add(from, &header(1, 2, 3), b"x"), (None, vec![DropReason::Malformed]));
    }

    #[test]
    fn replay_cache_refuses_a_nonce_twice_across_one_rotation() {
        let mut cache = ReplayCache::new(Duration::from_millis(20));
        assert!(cache.first_sighting([1; 12]));
        assert!(!cache.first_sighting([1; 12]));
        std::thread::sleep(Duration::from_millis(30));
        assert!(cache.first_sighting([2; 12]));
        assert!(!cache.first_sighting([1; 12]), "previous generation still remembered");
    }
}
