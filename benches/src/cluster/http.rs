//! The one HTTP/1.1 client both clusters are driven with (hyper-util's pooled client: keep-alive
//! connections, `TCP_NODELAY`), and one bounded call: request, answer head and body under one
//! deadline.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Most bytes read from one answer (status documents are a few KiB).
const BODY_BYTES_MAX: usize = 4 << 20;

/// A pooled keep-alive client. Connects to a dead process on loopback fail at once (refused);
/// the connect timeout only matters for a stopped one.
pub fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_millis(500)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(128)
        .build(connector)
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Result<serde_json::Value, Failure> {
        serde_json::from_slice(&self.body).map_err(|e| Failure::Failed(format!("{e}; body: {}", self.text(200))))
    }

    /// The body as text, cut to `max` bytes (for error messages).
    pub fn text(&self, max: usize) -> String {
        String::from_utf8_lossy(&self.body[..self.body.len().min(max)]).into_owned()
    }
}

/// Why a call gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No complete answer within the deadline.
    Timeout,
    /// Refused, reset, malformed.
    Failed(String),
    /// An answer, but not a success: status and the start of the body.
    Status(u16, String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout => f.write_str("timed out"),
            Failure::Failed(message) => f.write_str(message),
            Failure::Status(status, body) => write!(f, "status {status}: {body}"),
        }
    }
}

impl std::error::Error for Failure {}

/// One request; the whole exchange (connect, head, body) within `deadline`. Any status is an
/// answer here; [`call_ok`] wants a 2xx.
pub async fn call(
    client: &HttpClient,
    method: http::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    deadline: Duration,
) -> Result<Reply, Failure> {
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Full::new(body)).map_err(|e| Failure::Failed(e.to_string()))?;
    let exchange = async {
        let response = client.request(request).await.map_err(|e| Failure::Failed(format!("{e:?}")))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), BODY_BYTES_MAX)
            .collect()
            .await
            .map_err(|e| Failure::Failed(e.to_string()))?
            .to_bytes();
        Ok(Reply { status, body })
    };
    tokio::time::timeout(deadline, exchange).await.map_err(|_| Failure::Timeout)?
}

/// Like [`call`], and the answer must be a 2xx whose body is JSON.
pub async fn call_ok(
    client: &HttpClient,
    method: http::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    deadline: Duration,
) -> Result<serde_json::Value, Failure> {
    let reply = call(client, method, url, headers, body, deadline).await?;
    if !(200..300).contains(&reply.status) {
        return Err(Failure::Status(reply.status, reply.text(300)));
    }
    reply.json()
}
