//! Pooled HTTP clients to upstream endpoints: keep-alive connections per endpoint, HTTP/1.1 or
//! HTTP/2 (prior knowledge) as the service says, with connect and idle timeouts.

use std::time::Duration;

use bytes::Bytes;
use gantry_proto::config::{Service, UpstreamProtocol};
use http_body_util::combinators::UnsyncBoxBody;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every body the proxy sends or returns: streamed from the peer or made here.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// Upper bound on idle pooled connections kept per endpoint.
const MAX_IDLE_PER_ENDPOINT: usize = 256;

#[derive(Clone, Debug)]
pub struct UpstreamClient {
    client: Client<HttpConnector, ProxyBody>,
}

impl UpstreamClient {
    pub fn for_service(service: &Service) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(service.timeouts.connect.get()));
        connector.set_nodelay(true);
        connector.set_keepalive(Some(Duration::from_secs(60)));
        connector.enforce_http(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(service.timeouts.idle.get())
            .pool_max_idle_per_host(MAX_IDLE_PER_ENDPOINT)
            .set_host(false);
        if service.protocol == UpstreamProtocol::Http2 {
            builder.http2_only(true);
        }
        Self { client: builder.build(connector) }
    }

    pub async fn send(
        &self,
        request: http::Request<ProxyBody>,
    ) -> Result<http::Response<hyper::body::Incoming>, hyper_util::client::legacy::Error> {
        self.client.request(request).await
    }
}
