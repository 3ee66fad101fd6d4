//! HTTP client side: one bounded call (the whole exchange, body included, under one deadline)
//! and typed views of the admin API answers the harness reads. Answers from the network are
//! parsed, never trusted: anything unexpected is an error value, not a panic.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use crate::error::{ChaosError, Result};

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Most bytes read from one answer: admin documents are a few KiB, backend answers tens of bytes.
const BODY_BYTES_MAX: usize = 4 << 20;

/// A pooled HTTP/1.1 client whose connects give up after `connect_timeout` (a stopped node
/// still completes TCP handshakes from its backlog, so the call deadline matters more).
pub fn http_client(connect_timeout: Duration) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector)
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as `T`, or an error naming `what` was being read.
    pub fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| ChaosError::Protocol {
            what: what.to_string(),
            message: format!("{e}; body: {}", String::from_utf8_lossy(&self.body[..self.body.len().min(300)])),
        })
    }
}

/// Why a call produced no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallFailure {
    /// No complete answer before the deadline: the request may or may not have had an effect.
    Timeout,
    /// Connect refused, reset, malformed answer.
    Failed(String),
}

impl std::fmt::Display for CallFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallFailure::Timeout => f.write_str("timed out"),
            CallFailure::Failed(message) => f.write_str(message),
        }
    }
}

/// One request, answer head and body, all within `deadline`.
pub async fn call(
    client: &HttpClient,
    method: http::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    deadline: Duration,
) -> std::result::Result<Reply, CallFailure> {
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Full::new(body)).map_err(|e| CallFailure::Failed(e.to_string()))?;
    let exchange = async {
        let response = client.request(request).await.map_err(|e| CallFailure::Failed(format!("{e:?}")))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let limited = http_body_util::Limited::new(response.into_body(), BODY_BYTES_MAX);
        let body = limited.collect().await.map_err(|e| CallFailure::Failed(e.to_string()))?.to_bytes();
        Ok(Reply { status, headers, body })
    };
    tokio::time::timeout(deadline, exchange).await.map_err(|_| CallFailure::Timeout)?
}

/// `GET url` within `deadline`, as a harness error.
pub async fn get(client: &HttpClient, url: &str, deadline: Duration) -> Result<Reply> {
    call(client, http::Method::GET, url, &[], Bytes::new(), deadline)
        .await
        .map_err(|e| ChaosError::Http { url: url.to_string(), message: e.to_string() })
}

/// `GET /v1/status`.
#[derive(Debug, Clone, Deserialize)]
pub struct Status {
    pub node: StatusNode,
    pub cluster: StatusCluster,
    pub config: StatusConfig,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StatusNode {
    pub id: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StatusCluster {
    pub role: String,
    pub leader: Option<u64>,
    pub term: u64,
    #[serde(default)]
    pub voters: Vec<u64>,
    #[serde(default)]
    pub learners: Vec<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StatusConfig {
    /// The revision this node serves.
    pub revision: u64,
    /// The newest revision this node has applied from Raft.
    pub committed_revision: u64,
}

/// `GET /v1/config[?revision=N]`.
#[derive(Debug, Clone, Deserialize)]
pub struct ConfigDoc {
    pub revision: u64,
    #[serde(default)]
    pub config: serde_json::Value,
}

/// One entry of `GET /v1/config/history`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct HistoryEntry {
    pub revision: u64,
    pub committed_at_unix_ms: u64,
    pub rolled_back_from: Option<u64>,
    pub bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
struct HistoryDoc {
    history: Vec<HistoryEntry>,
}

/// Typed admin API calls on one node.
#[derive(Debug, Clone, Copy)]
pub struct Admin {
    pub addr: SocketAddr,
}

/// Deadline of an admin read: a live node answers in milliseconds; a stopped one never does.
pub const ADMIN_READ_DEADLINE: Duration = Duration::from_millis(1500);

impl Admin {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn status(&self, client: &HttpClient) -> Result<Status> {
        get(client, &self.url("/v1/status"), ADMIN_READ_DEADLINE).await?.json("GET /v1/status")
    }

    /// The revision this node serves.
    pub async fn served(&self, client: &HttpClient) -> Result<ConfigDoc> {
        get(client, &self.url("/v1/config"), ADMIN_READ_DEADLINE).await?.json("GET /v1/config")
    }

    /// Revision `revision` from this node's own applied history (`None`: not in it).
    pub async fn revision(&self, client: &HttpClient, revision: u64) -> Result<Option<ConfigDoc>> {
        let url = self.url(&format!("/v1/config?revision={revision}"));
        let reply = get(client, &url, ADMIN_READ_DEADLINE).await?;
        match reply.status {
            200 => reply.json("GET /v1/config?revision").map(Some),
            404 => Ok(None),
            other => Err(ChaosError::Protocol { what: url, message: format!("status {other}: {}", reply.text()) }),
        }
    }

    pub async fn history(&self, client: &HttpClient) -> Result<Vec<HistoryEntry>> {
        let doc: HistoryDoc =
            get(client, &self.url("/v1/config/history"), ADMIN_READ_DEADLINE).await?.json("GET /v1/config/history")?;
        Ok(doc.history)
    }

    pub async fn ready(&self, client: &HttpClient) -> bool {
        get(client, &self.url("/readyz"), ADMIN_READ_DEADLINE).await.is_ok_and(|r| r.status == 200)
    }

    /// `PUT /v1/config` with the admin token, within `deadline`.
    pub async fn put_config(
        &self,
        client: &HttpClient,
        token: &str,
        document: &str,
        deadline: Duration,
    ) -> std::result::Result<Reply, CallFailure> {
        let bearer = format!("Bearer {token}");
        let headers = [("authorization", bearer.as_str()), ("content-type", "application/yaml")];
        call(client, http::Method::PUT, &self.url("/v1/config"), &headers, Bytes::from(document.to_string()), deadline)
            .await
    }

    /// `POST /v1/tokens {"ttl": ttl}`: a fresh join token.
    pub async fn create_join_token(&self, client: &HttpClient, admin_token: &str, ttl: &str) -> Result<String> {
        let bearer = format!("Bearer {admin_token}");
        let url = self.url("/v1/tokens");
        let body = Bytes::from(serde_json::json!({ "ttl": ttl }).to_string());
        let reply = call(
            client,
            http::Method::POST,
            &url,
            &[("authorization", bearer.as_str()), ("content-type", "application/json")],
            body,
            Duration::from_secs(10),
        )
        .await
        .map_err(|e| ChaosError::Http { url: url.clone(), message: e.to_string() })?;
        #[derive(Deserialize)]
        struct Token {
            token: String,
        }
        if reply.status != 200 {
            return Err(ChaosError::Protocol {
                what: url,
                message: format!("status {}: {}", reply.status, reply.text()),
            });
        }
        Ok(reply.json::<Token>("POST /v1/tokens")?.token)
    }
}
