//! The one HTTP/1.1 client both clusters are driven with (hyper-util's pooled client: keep-alive
//! connections, `TCP_NODELAY`), and the chaos harness's bounded call (request, answer head and
//! body under one deadline) with a 2xx JSON answer required.

use std::time::Duration;

use bytes::Bytes;
pub use chaos_tests::client::HttpClient;
use chaos_tests::client::{call, CallFailure};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

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

/// One request (the chaos harness's bounded call: connect, head and body within `deadline`);
/// the answer must be a 2xx whose body is JSON.
pub async fn call_ok(
    client: &HttpClient,
    method: http::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    deadline: Duration,
) -> Result<serde_json::Value, Failure> {
    let reply = call(client, method, url, headers, body, deadline).await.map_err(|failure| match failure {
        CallFailure::Timeout => Failure::Timeout,
        CallFailure::Failed(message) => Failure::Failed(message),
    })?;
    let text = |max: usize| String::from_utf8_lossy(&reply.body[..reply.body.len().min(max)]).into_owned();
    if !(200..300).contains(&reply.status) {
        return Err(Failure::Status(reply.status, text(300)));
    }
    serde_json::from_slice(&reply.body).map_err(|e| Failure::Failed(format!("{e}; body: {}", text(200))))
}
