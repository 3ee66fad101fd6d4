//! The demo's backends: tiny HTTP servers answering JSON that names the backend and its zone,
//! with `/health` for health checks.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

/// Starts a backend on a free loopback port; returns its address.
pub async fn start(name: &'static str, zone: &'static str) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| async move {
                    let body = if request.uri().path() == "/health" {
                        "ok\n".to_string()
                    } else {
                        format!(
                            "{{\"backend\":\"{name}\",\"zone\":\"{zone}\",\"path\":{path:?}}}\n",
                            path = request.uri().path()
                        )
                    };
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(body))))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(address)
}

/// True when `GET path` on `address` answers 200.
pub async fn probe(address: SocketAddr, path: &str) -> bool {
    let Ok(stream) = TcpStream::connect(address).await else {
        return false;
    };
    let Ok((mut sender, connection)) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await
    else {
        return false;
    };
    tokio::spawn(connection);
    let Ok(request) = http::Request::get(path).header("host", address.to_string()).body(Full::new(Bytes::new())) else {
        return false;
    };
    sender.send_request(request).await.is_ok_and(|r| r.status() == 200)
}
