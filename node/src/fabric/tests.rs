//! Fabric tests on loopback: member requests, refusal of foreign-CA and removed nodes, joins
//! with the right and the wrong CA pin, and garbage frames.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;

use super::*;

struct Echo;

impl FabricHandler for Echo {
    fn handle(&self, alpn: &'static [u8], peer: Peer, request: Vec<u8>) -> HandlerFuture<'_> {
        Box::pin(async move {
            let text: String = codec::decode_payload(&request).unwrap_or_else(|_| "garbage".into());
            if text == "hang" {
                // A peer that never answers on this connection (as a restarted one would not).
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            let answer = format!("{} from {:?}: {text}", String::from_utf8_lossy(alpn), peer.node);
            codec::encode_payload(&answer).unwrap_or_default()
        })
    }
}

struct Cluster {
    id: String,
    ca_pem: String,
    ca_key: String,
}

impl Cluster {
    fn new(id: &str) -> Cluster {
        let (ca_pem, ca_key) = pki::new_ca(id).expect("ca");
        Cluster { id: id.into(), ca_pem, ca_key }
    }

    fn member(&self, node: NodeId) -> MemberTls {
        let (key_pem, public) = pki::new_node_key().expect("key");
        let cert_pem = pki::sign_node_cert(&self.id, &self.ca_key, node, &public).expect("sign");
        let ca = pki::cert_der_from_pem(&self.ca_pem).expect("ca");
        MemberTls {
            chain: vec![pki::cert_der_from_pem(&cert_pem).expect("cert"), ca.clone()],
            key: PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key"),
            ca,
        }
    }

    fn node(&self, node: NodeId) -> Arc<Fabric> {
        let fabric = Fabric::bind(SocketAddr::from(([127, 0, 0, 1], 0)), node, self.member(node)).expect("bind");
        fabric.serve(Arc::new(Echo));
        fabric
    }

    fn pin(&self) -> [u8; 32] {
        pki::sha256(&pki::cert_der_from_pem(&self.ca_pem).expect("ca"))
    }
}

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn members_talk_and_see_each_others_ids() {
    let cluster = Cluster::new("c1");
    let (a, b) = (cluster.node(1), cluster.node(2));
    let b_addr = b.local_addr().expect("addr");
    for i in 0..3 {
        let answer: String = a.request(b_addr, 2, ALPN_RAFT, &format!("hello {i}"), WAIT).await.expect("request");
        assert_eq!(answer, format!("gantry-raft/1 from Some(1): hello {i}"));
    }
    // Asking for the wrong node id at that address fails certificate verification.
    let wrong = a.request::<_, String>(b_addr, 3, ALPN_RAFT, &"x".to_string(), WAIT).await;
    assert!(wrong.is_err());
}

/// Each side reads the other's stream to its end, so a request costs its two packets and
/// their ACKs: a receive side dropped before its end makes quinn send a STOP_SENDING (and draw
/// an ACK) for every RPC, which was more than half of the fabric's packets.
#[tokio::test]
async fn requests_close_their_streams_without_stop_sending() {
    let cluster = Cluster::new("c1");
    let (a, b) = (cluster.node(1), cluster.node(2));
    let b_addr = b.local_addr().expect("addr");
    for i in 0..20 {
        let _: String = a.request(b_addr, 2, ALPN_RAFT, &format!("hello {i}"), WAIT).await.expect("request");
    }
    let connection = lock(&a.connections).get(&(b_addr, 2, ALPN_RAFT)).cloned().expect("a cached connection");
    let stats = connection.stats();
    assert_eq!((stats.frame_tx.stop_sending, stats.frame_rx.stop_sending), (0, 0), "{stats:?}");
}

#[tokio::test]
async fn a_slow_peer_keeps_its_connection_after_a_timeout() {
    let cluster = Cluster::new("c1");
    let (a, b) = (cluster.node(1), cluster.node(2));
    let b_addr = b.local_addr().expect("addr");
    let _: String = a.request(b_addr, 2, ALPN_RAFT, &"first".to_string(), WAIT).await.expect("request");
    let first = a.cached_connection_id(b_addr, 2, ALPN_RAFT).expect("a cached connection");
    // The handler never answers, but the peer's QUIC stack acknowledges the request.
    let hung = a.request::<_, String>(b_addr, 2, ALPN_RAFT, &"hang".to_string(), Duration::from_millis(200)).await;
    assert!(matches!(hung, Err(FabricError::Timeout { silent: false, .. })), "{hung:?}");
    assert!(!hung.as_ref().err().is_some_and(FabricError::is_unreachable), "a late peer is not unreachable");
    assert_eq!(a.cached_connection_id(b_addr, 2, ALPN_RAFT), Some(first), "a live peer's connection stays");
}

#[test]
fn a_silent_peer_is_redialled_on_the_next_request() {
    let cluster = Arc::new(Cluster::new("c1"));
    // b runs on its own runtime thread, which the test freezes (like SIGSTOP): it then sends
    // nothing at all, as a peer restarted behind an old connection does not.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (thaw_tx, thaw_rx) = std::sync::mpsc::channel::<()>();
    let (freeze_tx, freeze_rx) = tokio::sync::oneshot::channel::<()>();
    let (frozen_tx, frozen_rx) = std::sync::mpsc::channel::<()>();
    let b_cluster = cluster.clone();
    let b_thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let b = b_cluster.node(2);
            addr_tx.send(b.local_addr().expect("addr")).expect("send");
            let _ = freeze_rx.await;
            // Blocks the whole runtime: no acknowledgements, no answers.
            let _ = frozen_tx.send(());
            let _ = thaw_rx.recv();
            tokio::time::sleep(Duration::from_millis(500)).await;
            drop(b);
        });
    });
    let b_addr = addr_rx.recv().expect("b's address");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let a = cluster.node(1);
        let _: String = a.request(b_addr, 2, ALPN_RAFT, &"first".to_string(), WAIT).await.expect("request");
        let first = a.cached_connection_id(b_addr, 2, ALPN_RAFT).expect("a cached connection");
        freeze_tx.send(()).expect("freeze");
        // Once b is frozen it sends nothing more; what it sent just before (a delayed ACK of
        // the first exchange) must land before the next request, or that request would count
        // it as a sign of life.
        frozen_rx.recv().expect("b froze");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let silent = a.request::<_, String>(b_addr, 2, ALPN_RAFT, &"x".to_string(), Duration::from_millis(200)).await;
        assert!(matches!(silent, Err(FabricError::Timeout { silent: true, .. })), "{silent:?}");
        assert!(silent.as_ref().err().is_some_and(FabricError::is_unreachable), "a silent peer is unreachable");
        assert_eq!(a.cached_connection_id(b_addr, 2, ALPN_RAFT), None, "the silent connection left the cache");
        thaw_tx.send(()).expect("thaw");
        let answer: String = a.request(b_addr, 2, ALPN_RAFT, &"after".to_string(), WAIT).await.expect("request");
        assert!(answer.ends_with("after"));
        let second = a.cached_connection_id(b_addr, 2, ALPN_RAFT).expect("a cached connection");
        assert_ne!(first, second, "the next request dialled a new connection");
    });
    b_thread.join().expect("b's thread");
}

#[tokio::test]
async fn foreign_ca_and_removed_nodes_are_refused() {
    let cluster = Cluster::new("c1");
    let other = Cluster::new("c2");
    let server = cluster.node(1);
    let addr = server.local_addr().expect("addr");
    // A node of another cluster (same node id) cannot even verify our server, nor we its cert.
    let stranger = other.node(2);
    assert!(stranger.request::<_, String>(addr, 1, ALPN_RAFT, &"hi".to_string(), WAIT).await.is_err());

    let member = cluster.node(2);
    let ok: String = member.request(addr, 1, ALPN_RAFT, &"before".to_string(), WAIT).await.expect("member");
    assert!(ok.ends_with("before"));
    server.set_refused([2].into_iter().collect());
    let refused = member.request::<_, String>(addr, 1, ALPN_RAFT, &"after".to_string(), WAIT).await;
    assert!(matches!(refused, Err(FabricError::Refused { .. })), "{refused:?}");
    assert!(server.stats.refused_connections.load(Ordering::Relaxed) >= 1);
}

#[tokio::test]
async fn joins_need_the_right_ca_pin() {
    let cluster = Cluster::new("c1");
    let server = cluster.node(1);
    let addr = server.local_addr().expect("addr");
    let answer: String = join_call(addr, cluster.pin(), &"join me".to_string(), WAIT).await.expect("join");
    assert_eq!(answer, "gantry-join/1 from None: join me");
    let wrong = join_call::<_, String>(addr, [0; 32], &"join me".to_string(), WAIT).await;
    assert!(wrong.is_err());
}

#[tokio::test]
async fn garbage_frames_are_dropped_and_counted() {
    let cluster = Cluster::new("c1");
    let server = cluster.node(1);
    let addr = server.local_addr().expect("addr");
    let client = cluster.node(2);
    let connection = client.connection(addr, 1, ALPN_RAFT, true).await.expect("connect");
    // A length prefix claiming 4 GiB: refused before any allocation.
    let (mut send, mut recv) = connection.open_bi().await.expect("stream");
    send.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await.expect("write");
    let _ = send.finish();
    assert!(recv.read_to_end(1024).await.is_err(), "the server resets a stream that sent a bad frame");
    // A truncated frame.
    let (mut send, mut recv) = connection.open_bi().await.expect("stream");
    send.write_all(&[0, 0, 0, 10, 1]).await.expect("write");
    let _ = send.finish();
    let _ = recv.read_to_end(1024).await;
    // A whole frame with bytes after it: a stream carries one frame.
    let mut frame = codec::encode_frame(&"one".to_string()).expect("encode");
    frame.extend_from_slice(b"and more");
    let (mut send, mut recv) = connection.open_bi().await.expect("stream");
    send.write_all(&frame).await.expect("write");
    let _ = send.finish();
    assert!(recv.read_to_end(1024).await.is_err(), "the server resets a stream with bytes after its frame");
    assert_eq!(server.stats.bad_frames.load(Ordering::Relaxed), 3);
    // The connection and the server still work.
    let answer: String = client.request(addr, 1, ALPN_RAFT, &"still here".to_string(), WAIT).await.expect("request");
    assert!(answer.ends_with("still here"));
}

#[test]
fn the_endpoint_socket_gets_a_large_receive_buffer() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let before = socket2::SockRef::from(&socket).recv_buffer_size().expect("size") / 2;
    super::enlarge_receive_buffer(&socket);
    let after = socket2::SockRef::from(&socket).recv_buffer_size().expect("size") / 2;
    let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0);
    // Root gets what it asks for past rmem_max; anyone else up to rmem_max.
    // /proc/self belongs to this process's effective user.
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").expect("/proc/self")) == 0;
    let reachable = if root { super::UDP_RECEIVE_BUFFER } else { super::UDP_RECEIVE_BUFFER.min(rmem_max.max(before)) };
    assert!(after >= reachable, "receive buffer {after} bytes, expected at least {reachable} (was {before})");
}
