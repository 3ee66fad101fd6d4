//! Protocols through the proxy: TLS with SNI (1.2 and 1.3), h2 over TLS by ALPN, h2c with
//! prior knowledge, a gRPC-style call with trailers, a WebSocket echo, and a TCP listener.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::*;

struct TestPki {
    ca: CertificateDer<'static>,
    dir: tempfile::TempDir,
}

impl TestPki {
    /// A CA and one leaf per `names` entry, written as PEM files `<file>.crt` / `<file>.key`.
    fn new(leaves: &[(&str, &[&str])]) -> TestPki {
        let dir = tempfile::tempdir().expect("dir");
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "gantry test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca");
        for (file, names) in leaves {
            let key = rcgen::KeyPair::generate().expect("key");
            let params =
                rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("params");
            let cert = params.signed_by(&key, &ca).expect("leaf");
            std::fs::write(dir.path().join(format!("{file}.crt")), cert.pem()).expect("write");
            std::fs::write(dir.path().join(format!("{file}.key")), key.serialize_pem()).expect("write");
        }
        TestPki { ca: ca.der().clone(), dir }
    }

    fn path(&self, file: &str) -> String {
        self.dir.path().join(file).display().to_string()
    }

    fn client_config(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
        alpn: &[&[u8]],
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).expect("root");
        let mut config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(versions)
                .expect("versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// Connects with TLS to `addr` as `sni`; returns the stream and the leaf certificate's SANs
/// check result for `expect_name`.
async fn tls_connect(
    config: Arc<rustls::ClientConfig>,
    addr: std::net::SocketAddr,
    sni: &str,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let connector = tokio_rustls::TlsConnector::from(config);
    connector
        .connect(ServerName::try_from(sni.to_string()).expect("name"), tcp)
        .await
        .unwrap_or_else(|e| panic!("TLS handshake as {sni}: {e}"))
}

async fn http1_get<S>(stream: S, host: &str) -> (u16, String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(connection);
    let request = http::Request::get("/").header("host", host).body(Full::new(Bytes::new())).expect("request");
    let response = sender.send_request(request).await.expect("response");
    let status = response.status().as_u16();
    let backend = response.headers().get("x-backend").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (status, backend)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_sni_versions_and_h2_alpn() {
    let pki = TestPki::new(&[("a", &["a.example.com"]), ("b", &["b.example.com"]), ("wild", &["*.wild.test"])]);
    let backend = Backend::start("web").await;
    let https = free_addr();
    let yaml = format!(
        r#"
listeners: [ {{ name: secure, protocol: https, address: "{https}", certificates: [a, b, wild] }} ]
certificates:
  - {{ name: a, cert_file: "{a_crt}", key_file: "{a_key}", server_names: [a.example.com] }}
  - {{ name: b, cert_file: "{b_crt}", key_file: "{b_key}", server_names: [b.example.com] }}
  - {{ name: wild, cert_file: "{w_crt}", key_file: "{w_key}" }}
services: [ {{ name: web, endpoints: [ {{ address: "{backend}" }} ] }} ]
routes: [ {{ name: all, to: [ {{ service: web }} ] }} ]
"#,
        a_crt = pki.path("a.crt"),
        a_key = pki.path("a.key"),
        b_crt = pki.path("b.crt"),
        b_key = pki.path("b.key"),
        w_crt = pki.path("wild.crt"),
        w_key = pki.path("wild.key"),
        backend = backend.addr,
    );
    let _gantry = Gantry::start(&yaml).await;
    for versions in [&[&rustls::version::TLS13][..], &[&rustls::version::TLS12][..]] {
        let config = pki.client_config(versions, &[b"http/1.1"]);
        // The handshake verifies the certificate against the name: the right one was chosen.
        for sni in ["a.example.com", "b.example.com", "x.wild.test"] {
            let stream = tls_connect(config.clone(), https, sni).await;
            assert_eq!(http1_get(stream, sni).await, (200, "web".to_string()));
        }
    }
    // h2 chosen by ALPN.
    let config = pki.client_config(&[&rustls::version::TLS13], &[b"h2", b"http/1.1"]);
    let stream = tls_connect(config, https, "a.example.com").await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake::<_, _, Full<Bytes>>(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2");
    tokio::spawn(connection);
    let request = http::Request::get("https://a.example.com/").body(Full::new(Bytes::new())).expect("request");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("x-backend").map(|v| v.as_bytes()), Some(&b"web"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge() {
    let backend = Backend::start("web").await;
    let yaml = format!(
        r#"
listeners: [ {{ name: public, protocol: http }} ]
services: [ {{ name: web, endpoints: [ {{ address: "{}" }} ] }} ]
routes: [ {{ name: all, to: [ {{ service: web }} ] }} ]
"#,
        backend.addr
    );
    let gantry = Gantry::start(&yaml).await;
    let client =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).http2_only(true).build_http::<Full<Bytes>>();
    for _ in 0..3 {
        let response = client.get(gantry.url("/").parse().expect("uri")).await.expect("h2c request");
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.status(), 200);
        assert_eq!(response.into_body().collect().await.expect("body").to_bytes(), Bytes::from("web"));
    }
}

/// An h2c server answering like a gRPC unary call: one data frame, then trailers.
async fn grpc_backend() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(|request: http::Request<hyper::body::Incoming>| async move {
                    let te = request.headers().get("te").cloned();
                    let received = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                    trailers.insert("grpc-message", http::HeaderValue::from_static("ok"));
                    let frames = vec![Ok::<_, Infallible>(Frame::data(received)), Ok(Frame::trailers(trailers))];
                    let mut response = http::Response::new(StreamBody::new(futures_util::stream::iter(frames)));
                    response.headers_mut().insert("content-type", http::HeaderValue::from_static("application/grpc"));
                    if let Some(te) = te {
                        response.headers_mut().insert("x-saw-te", te);
                    }
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_trailers_pass_through() {
    let backend = grpc_backend().await;
    let yaml = format!(
        r#"
listeners: [ {{ name: public, protocol: http }} ]
services: [ {{ name: grpc, protocol: http2, endpoints: [ {{ address: "{backend}" }} ] }} ]
routes: [ {{ name: grpc, match: {{ path_prefix: /helloworld.Greeter/ }}, to: [ {{ service: grpc }} ] }} ]
"#
    );
    let gantry = Gantry::start(&yaml).await;
    let stream = TcpStream::connect(gantry.http).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake::<_, _, Full<Bytes>>(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2c");
    tokio::spawn(connection);
    let message = Bytes::from_static(b"\x00\x00\x00\x00\x05hello");
    let request = http::Request::post(format!("http://{}/helloworld.Greeter/SayHello", gantry.http))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(message.clone()))
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("x-saw-te").map(|v| v.as_bytes()),
        Some(&b"trailers"[..]),
        "TE: trailers reaches the upstream"
    );
    let collected = response.into_body().collect().await.expect("body");
    let trailers = collected.trailers().cloned().expect("trailers");
    assert_eq!(trailers.get("grpc-status").map(|v| v.as_bytes()), Some(&b"0"[..]));
    assert_eq!(trailers.get("grpc-message").map(|v| v.as_bytes()), Some(&b"ok"[..]));
    assert_eq!(collected.to_bytes(), message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let backend = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = socket.next().await {
                    if (message.is_text() || message.is_binary()) && socket.send(message).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let yaml = format!(
        r#"
listeners: [ {{ name: public, protocol: http }} ]
services: [ {{ name: ws, endpoints: [ {{ address: "{backend}" }} ] }} ]
routes: [ {{ name: ws, to: [ {{ service: ws }} ] }} ]
"#
    );
    let gantry = Gantry::start(&yaml).await;
    let (mut socket, response) =
        tokio_tungstenite::connect_async(format!("ws://{}/chat", gantry.http)).await.expect("websocket through gantry");
    assert_eq!(response.status(), 101);
    for text in ["hello", "through", "gantry"] {
        socket.send(tokio_tungstenite::tungstenite::Message::text(text)).await.expect("send");
        let echoed = socket.next().await.expect("message").expect("ok");
        assert_eq!(echoed.into_text().expect("text").as_str(), text);
    }
    socket.close(None).await.expect("close");
}

async fn tcp_echo_backend() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_listener_forwards_and_skips_dead_endpoints() {
    let live = tcp_echo_backend().await;
    let dead = free_addr();
    let tcp = free_addr();
    let yaml = format!(
        r#"
listeners: [ {{ name: db, protocol: tcp, address: "{tcp}", service: db }} ]
services:
  - name: db
    lb: least_connections
    endpoints: [ {{ address: "{dead}" }}, {{ address: "{live}" }} ]
    health_check: {{ type: tcp, interval: 100ms, timeout: 200ms, unhealthy: 1, healthy: 1 }}
"#
    );
    let gantry = Gantry::start(&yaml).await;
    for i in 0..10 {
        let mut stream = TcpStream::connect(tcp).await.expect("connect");
        let message = format!("ping {i}");
        stream.write_all(message.as_bytes()).await.expect("write");
        let mut buffer = vec![0u8; message.len()];
        tokio::time::timeout(std::time::Duration::from_secs(5), stream.read_exact(&mut buffer))
            .await
            .expect("echo in time")
            .expect("read");
        assert_eq!(buffer, message.as_bytes());
    }
    eventually(std::time::Duration::from_secs(5), "the TCP check marks the dead endpoint down", || {
        let gantry = &gantry;
        async move {
            let status = gantry.status().await;
            status["services"][0]["endpoints"]
                .as_array()
                .and_then(|e| e.iter().find(|e| e["address"] == dead.to_string()).cloned())
                .is_some_and(|e| e["healthy"] == false)
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let backend = Backend::start("web").await;
    let yaml = format!(
        r#"
listeners: [ {{ name: public, protocol: http, limits: {{ idle_timeout: 300ms }} }} ]
services: [ {{ name: web, endpoints: [ {{ address: "{}" }} ] }} ]
routes: [ {{ name: all, to: [ {{ service: web }} ] }} ]
"#,
        backend.addr
    );
    let gantry = Gantry::start(&yaml).await;
    let stream = TcpStream::connect(gantry.http).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake::<_, _, Full<Bytes>>(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2c");
    let connection = tokio::spawn(connection);
    let request =
        http::Request::get(format!("http://{}/", gantry.http)).body(Full::new(Bytes::new())).expect("request");
    assert_eq!(sender.send_request(request).await.expect("response").status(), 200);
    // Nothing more is sent: the server closes the idle HTTP/2 connection (GOAWAY).
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), connection).await;
    assert!(closed.is_ok(), "idle connection still open");
}
