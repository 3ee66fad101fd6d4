//! Limits and bad input: oversized or too many headers (431), bodies over the limit (413),
//! garbage (400), slowloris, max connections; the node keeps serving through all of it.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

async fn node(limits: &str) -> (Backend, Gantry) {
    node_with_upstream(limits, "http1").await
}

/// `protocol`: how gantry talks to the backend (it serves both).
async fn node_with_upstream(limits: &str, protocol: &str) -> (Backend, Gantry) {
    let backend = Backend::start("web").await;
    let yaml = format!(
        r#"
listeners: [ {{ name: public, protocol: http, limits: {{ {limits} }} }} ]
services: [ {{ name: web, protocol: {protocol}, endpoints: [ {{ address: "{}" }} ] }} ]
routes: [ {{ name: all, to: [ {{ service: web }} ] }} ]
"#,
        backend.addr
    );
    let gantry = Gantry::start(&yaml).await;
    (backend, gantry)
}

/// Sends raw bytes and returns what the server answered before closing (or 2 s passed).
async fn raw(gantry: &Gantry, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(gantry.http).await.expect("connect");
    let _ = stream.write_all(bytes).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}

async fn still_serving(gantry: &Gantry) {
    let reply = get(&gantry.url("/")).await.expect("get after bad input");
    assert_eq!((reply.status, reply.text()), (200, "web".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_too_many_headers_get_431() {
    let (_backend, gantry) = node("max_header_bytes: 8192, max_headers: 20").await;
    let big = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000));
    assert!(status_line(&raw(&gantry, big.as_bytes()).await).starts_with("HTTP/1.1 431"));
    let mut many = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..40 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert!(status_line(&raw(&gantry, many.as_bytes()).await).starts_with("HTTP/1.1 431"));
    still_serving(&gantry).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413() {
    bodies_over_the_limit("http1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413_with_an_http2_upstream() {
    bodies_over_the_limit("http2").await;
}

async fn bodies_over_the_limit(upstream: &str) {
    let (backend, gantry) = node_with_upstream("max_body_bytes: 1024", upstream).await;
    let client = client();
    let reply = request(&client, http::Method::POST, &gantry.url("/echo"), &[], Bytes::from(vec![b'x'; 4096]))
        .await
        .expect("post");
    assert_eq!(reply.status, 413);
    assert_eq!(reply.json()["error"]["code"], "body_too_large");
    // Chunked (no Content-Length): caught while streaming.
    let chunk = "x".repeat(600);
    let chunked = format!("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n");
    assert!(status_line(&raw(&gantry, chunked.as_bytes()).await).starts_with("HTTP/1.1 413"));
    // Within the limit is fine.
    let reply = request(&client, http::Method::POST, &gantry.url("/echo"), &[], Bytes::from(vec![b'y'; 1000]))
        .await
        .expect("post");
    assert_eq!((reply.status, reply.body.len()), (200, 1000));
    assert!(backend.hits() >= 1);
    still_serving(&gantry).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_gets_400_and_never_hurts_the_node() {
    let (_backend, gantry) = node("max_connections: 1000").await;
    assert!(status_line(&raw(&gantry, b"THIS IS NOT HTTP\r\n\r\n").await).starts_with("HTTP/1.1 400"));
    assert!(status_line(&raw(&gantry, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n").await)
        .starts_with("HTTP/1.1 400"));
    assert!(
        status_line(&raw(&gantry, b"GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n").await).starts_with("HTTP/1.1 400")
    );
    // Seeded random bytes: whatever comes back, the node survives.
    let seed: u64 = std::env::var("GANTRY_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed);
    eprintln!("garbage seed {seed} (set GANTRY_TEST_SEED to replay)");
    let mut state = seed;
    for _ in 0..50 {
        let bytes: Vec<u8> = (0..512)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let answer = raw(&gantry, &bytes).await;
        assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 4"), "{answer}");
    }
    // An HTTP/2 preface followed by junk.
    let _ = raw(&gantry, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x04\xff\xff\xff\xff\xff\xff\xff\xff\xff").await;
    still_serving(&gantry).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_cut_off() {
    let (_backend, gantry) = node("header_read_timeout: 300ms").await;
    let mut stream = TcpStream::connect(gantry.http).await.expect("connect");
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.expect("write");
    let mut rest = Vec::new();
    // The server closes the connection (maybe after a 408) instead of waiting forever.
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "connection still open");
    still_serving(&gantry).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_refuses_extra_connections() {
    let (_backend, gantry) = node("max_connections: 2, header_read_timeout: 30s").await;
    let first = TcpStream::connect(gantry.http).await.expect("connect");
    let second = TcpStream::connect(gantry.http).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(gantry.http).await.expect("connect");
    let _ = third.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut answer)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "third connection closed unanswered: {answer:?}");
    let metrics = gantry.metrics().await;
    assert!(metrics.contains("gantry_listener_rejected_connections_total{listener=\"public\"} 1"), "{metrics}");
    drop((first, second));
    eventually(Duration::from_secs(5), "serving again once connections closed", || async {
        get(&gantry.url("/")).await.map(|r| r.status == 200).unwrap_or(false)
    })
    .await;
}
