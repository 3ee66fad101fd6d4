//! The demo's backends (tiny HTTP servers answering JSON that names the backend and its zone,
//! with `/health`) and the few admin API calls the demo makes.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

/// Starts a backend on a free port of `ip`; returns its address.
pub async fn start(name: String, zone: &'static str, ip: IpAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(SocketAddr::new(ip, 0)).await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let name = name.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let name = name.clone();
                    async move {
                        let body = if request.uri().path() == "/health" {
                            "ok\n".to_string()
                        } else {
                            format!(
                                "{{\"backend\":\"{name}\",\"zone\":\"{zone}\",\"path\":{:?}}}\n",
                                request.uri().path()
                            )
                        };
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(body))))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(address)
}

async fn call(address: SocketAddr, request: http::Request<Full<Bytes>>) -> Option<(u16, Bytes)> {
    let stream = TcpStream::connect(address).await.ok()?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, body))
}

/// True when `GET path` on `address` answers 200.
pub async fn probe(address: SocketAddr, path: &str) -> bool {
    let Ok(request) = http::Request::get(path).header("host", address.to_string()).body(Full::new(Bytes::new())) else {
        return false;
    };
    call(address, request).await.is_some_and(|(status, _)| status == 200)
}

/// The config revision the node at `admin` serves (0 when unknown).
pub async fn serving_revision(admin: SocketAddr) -> u64 {
    let Ok(request) = http::Request::get("/v1/config").header("host", admin.to_string()).body(Full::new(Bytes::new()))
    else {
        return 0;
    };
    call(admin, request)
        .await
        .and_then(|(_, body)| serde_json::from_slice::<serde_json::Value>(&body).ok())
        .and_then(|v| v["revision"].as_u64())
        .unwrap_or(0)
}

/// How many voters the node at `admin` sees in the Raft membership.
pub async fn voters(admin: SocketAddr) -> usize {
    let Ok(request) = http::Request::get("/v1/status").header("host", admin.to_string()).body(Full::new(Bytes::new()))
    else {
        return 0;
    };
    call(admin, request)
        .await
        .and_then(|(_, body)| serde_json::from_slice::<serde_json::Value>(&body).ok())
        .and_then(|v| v["cluster"]["voters"].as_array().map(Vec::len))
        .unwrap_or(0)
}

/// Commits `yaml` through the admin API at `admin`; returns the revision.
pub async fn put_config(admin: SocketAddr, token: &str, yaml: &str) -> anyhow::Result<u64> {
    let request = http::Request::put("/v1/config")
        .header("host", admin.to_string())
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::from(yaml.to_string())))?;
    let (status, body) = call(admin, request).await.ok_or_else(|| anyhow::anyhow!("no answer from {admin}"))?;
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    match value["revision"].as_u64() {
        Some(revision) if status == 200 => Ok(revision),
        _ => anyhow::bail!("{admin} refused the demo config ({status}): {}", String::from_utf8_lossy(&body)),
    }
}
