//! The HTTP request path: route → destination → endpoint pick → forward (with retries to other
//! endpoints, timeouts, outlier feedback) → response hygiene, sticky cookie, access log.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use gantry_proto::config::{HashOn, UpstreamProtocol};
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body::Body as _;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::body::{error_response, ResponseBody};
use super::headers;
use super::listener::ConnectionSlot;
use crate::dataplane::{Dataplane, ListenerPlan, RouteRuntime, Snapshot};
use crate::lb::hash64;
use crate::routing::RequestView;
use crate::telemetry::{access_log_enabled, AccessRecord};
use crate::upstream::{
    Endpoint, InFlightGuard, Outcome, PooledConnection, ProxyBody, ServiceRuntime, UpstreamBody, UpstreamError,
};

/// What a connection knows about itself, shared by its requests.
#[derive(Debug)]
pub struct ConnectionContext {
    pub dataplane: Arc<Dataplane>,
    pub local: SocketAddr,
    pub client: SocketAddr,
    /// The client's IP as an X-Forwarded-For element, made once per connection.
    pub client_ip: HeaderValue,
    pub tls: bool,
    /// The connection's place in the listener's accounting; an upgraded tunnel holds it too.
    pub slot: Arc<ConnectionSlot>,
}

/// A request body as the proxy holds it: in memory (replayable, so retries are possible) or
/// streaming from the client (sent once).
enum RequestBody {
    Buffered(Bytes),
    Streaming(Option<ProxyBody>),
}

impl RequestBody {
    fn take(&mut self) -> Option<ProxyBody> {
        match self {
            RequestBody::Buffered(bytes) => Some(ProxyBody::full(bytes.clone())),
            RequestBody::Streaming(body) => body.take(),
        }
    }

    fn replayable(&self) -> bool {
        matches!(self, RequestBody::Buffered(_))
    }
}

/// Why an upstream try failed, for retry decisions and the status sent back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TryFailure {
    Connect,
    Reset,
    Timeout,
    BodyTooLarge,
}

/// Most tries per request (the config validates `retries.attempts` to at most this).
const MAX_TRIES: usize = 10;

/// The access record being filled in, when the access log is on (else nothing is built).
type Record = Option<Box<AccessRecord>>;

/// Serves one request. A plain function returning an `async` block rather than an `async fn`:
/// an `async fn` keeps a second copy of its arguments in its state, and this future is moved
/// a few times per request (into hyper's connection state among others), so its size counts.
#[allow(clippy::manual_async_fn)]
pub fn handle(
    request: Request<Incoming>,
    context: Arc<ConnectionContext>,
) -> impl Future<Output = Result<Response<ResponseBody>, std::convert::Infallible>> + Send + 'static {
    async move {
        let snapshot = context.dataplane.snapshot();
        let started = Instant::now();
        let request_id = headers::request_id(request.headers());
        let id = request_id.to_str().unwrap_or_default();
        let mut record: Record = access_log_enabled().then(|| {
            Box::new(AccessRecord {
                started,
                request_id: id.to_string(),
                client: context.client,
                listener: Arc::from(""),
                method: request.method().clone(),
                path: request.uri().path().to_string(),
                route: None,
                service: None,
                endpoint: None,
                status: 0,
                attempts: 0,
                bytes_sent: 0,
            })
        });
        let Some(listener) = listener_plan(&snapshot, &context.local) else {
            let response = error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "listener_closed",
                "this listener is no longer configured",
                id,
            );
            return Ok(finish(response, started, &request_id, record, &snapshot, None));
        };
        if let Some(record) = record.as_mut() {
            record.listener = listener.name.clone();
        }
        let route = listener.routes.as_ref().and_then(|table| table.find(&RequestView::of(&request))).cloned();
        let Some(route) = route else {
            let response = error_response(StatusCode::NOT_FOUND, "no_route", "no route matches this request", id);
            return Ok(finish(response, started, &request_id, record, &snapshot, None));
        };
        if let Some(record) = record.as_mut() {
            record.route = Some(route.name.clone());
        }
        // Boxed: the forwarding future is the largest part of a request's state; on the heap it
        // is written once instead of being copied along with this one.
        let forwarded = Box::pin(forward(request, &context, listener, &route, &request_id, &mut record));
        let response = match tokio::time::timeout(route.timeout, forwarded).await {
            Ok(response) => response,
            Err(_) => error_response(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                &format!("no response within the route timeout of {:?}", route.timeout),
                request_id.to_str().unwrap_or_default(),
            ),
        };
        Ok(finish(response, started, &request_id, record, &snapshot, Some(&route)))
    }
}

/// The plan of the listener at `local`. A node has a handful of listeners: comparing addresses
/// is cheaper than hashing one.
fn listener_plan<'s>(snapshot: &'s Snapshot, local: &SocketAddr) -> Option<&'s ListenerPlan> {
    if snapshot.listeners.len() <= 8 {
        snapshot.listeners.values().find(|plan| plan.address == *local)
    } else {
        snapshot.listener_at(local)
    }
}

/// Records metrics, sets X-Request-Id on the response and hands the access record, if any, to
/// the response body (logged when the body is done).
fn finish(
    mut response: Response<ResponseBody>,
    started: Instant,
    request_id: &HeaderValue,
    record: Record,
    snapshot: &Snapshot,
    route: Option<&RouteRuntime>,
) -> Response<ResponseBody> {
    let status = response.status().as_u16();
    let metrics = route.map_or(&snapshot.unrouted_metrics, |r| &r.metrics);
    metrics.observe(status, started.elapsed().as_secs_f64());
    response.headers_mut().entry(&headers::X_REQUEST_ID).or_insert_with(|| request_id.clone());
    if let Some(mut record) = record {
        record.status = status;
        response.body_mut().set_record(record);
    }
    response
}

/// Forwards a routed request (with retries). Not an `async fn`, for the reason given at
/// [`handle`].
#[allow(clippy::manual_async_fn)]
fn forward<'a>(
    mut request: Request<Incoming>,
    context: &'a ConnectionContext,
    listener: &'a ListenerPlan,
    route: &'a RouteRuntime,
    request_id: &'a HeaderValue,
    record: &'a mut Record,
) -> impl Future<Output = Response<ResponseBody>> + Send + 'a {
    async move {
        let id = request_id.to_str().unwrap_or_default();
        let Some(destination) = route.pick_destination() else {
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_destination",
                "the route has no destination with weight above 0",
                id,
            );
        };
        let service = &destination.service;
        if let Some(record) = record.as_mut() {
            record.service = Some(service.name.clone());
        }

        let max_body = listener.limits.max_body_bytes;
        let declared_length = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared_length.is_some_and(|len| len > max_body) {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                &format!("request body is larger than {max_body} bytes"),
                id,
            );
        }

        let upgrade = request.version() == Version::HTTP_11 && headers::is_upgrade_request(request.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
        let hash_key = hash_key(service, &request, context.client);
        let sticky_cookie = service.sticky.as_ref().map(|s| s.cookie.as_str());
        let sticky_id = sticky_cookie.and_then(|name| headers::cookie(request.headers(), name)).map(str::to_string);
        // The authority as the client sent it, port included (HTTP/2 :authority or HTTP/1 Host);
        // empty when there is none.
        let host = match request.uri().authority() {
            Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
            None => request.headers().get(header::HOST).filter(|h| h.to_str().is_ok()).cloned(),
        }
        .unwrap_or_else(|| HeaderValue::from_static(""));

        let (mut parts, incoming) = request.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers, upgrade);
        // HTTP/2 clients send :authority instead of Host; HTTP/1 upstreams need Host.
        let host_header = (route.preserve_host && !parts.headers.contains_key(header::HOST)).then(|| host.clone());
        headers::set_forwarded(&mut parts.headers, &context.client_ip, context.tls, Some(host), request_id);
        if let Some(host) = host_header {
            parts.headers.insert(header::HOST, host);
        }

        let retry = route.retry.as_ref();
        let end_of_body = incoming.is_end_stream();
        let mut body = match retry {
            Some(policy)
                if end_of_body || declared_length.is_some_and(|len| len <= policy.buffer_bytes.min(max_body)) =>
            {
                match Limited::new(incoming, policy.buffer_bytes.min(max_body) as usize).collect().await {
                    Ok(collected) => RequestBody::Buffered(collected.to_bytes()),
                    Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                        return error_response(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "body_too_large",
                            &format!("request body is larger than {max_body} bytes"),
                            id,
                        );
                    }
                    Err(_) => {
                        return error_response(
                            StatusCode::BAD_REQUEST,
                            "body_read_failed",
                            "could not read the request body",
                            id,
                        )
                    }
                }
            }
            _ => RequestBody::Streaming(Some(ProxyBody::streaming(incoming, max_body as usize))),
        };
        if let Some(policy) = retry {
            policy.record_request();
        }
        // Retries need a body that can be sent again: requests without a body (idempotent methods
        // as a rule) or with one buffered under the retry buffer limit.
        let may_retry = retry.is_some() && body.replayable();
        let attempts = retry.map_or(1, |p| p.attempts).min(MAX_TRIES as u32);
        let per_try_timeout = retry.and_then(|p| p.per_try_timeout);

        let mut tried = [0u32; MAX_TRIES];
        let mut last_failure: Option<Response<ResponseBody>> = None;
        // Each pass either tries one more endpoint or returns: `tried_count` endpoints were tried.
        for (tried_count, attempt) in (1..=attempts).enumerate() {
            let pick = service.pick(&crate::upstream::PickRequest {
                subset: destination.subset.as_deref(),
                hash_key,
                sticky_id: sticky_id.as_deref(),
                exclude: &tried[..tried_count],
            });
            let Some(endpoint) = pick else {
                return last_failure.unwrap_or_else(|| no_healthy_endpoint(service, destination.subset.as_deref(), id));
            };
            tried[tried_count] = endpoint.index;
            if let Some(record) = record.as_mut() {
                record.attempts = attempt;
                record.endpoint = Some(endpoint.address.clone());
            }
            let Some(upstream_body) = body.take() else {
                break;
            };
            let can_retry_more = may_retry && attempt < attempts;
            // The last try takes the request's headers instead of copying them.
            let upstream_request = match upstream_request(
                &mut parts,
                !can_retry_more,
                &endpoint,
                service,
                route.preserve_host,
                upstream_body,
            ) {
                Ok(r) => r,
                Err(message) => return error_response(StatusCode::BAD_REQUEST, "bad_request", &message, id),
            };
            let in_flight = endpoint.health.start_request();
            let sent = service.client.send(endpoint.index, &endpoint.address, upstream_request);
            let result = match per_try_timeout {
                Some(limit) => match tokio::time::timeout(limit, sent).await {
                    Ok(result) => result.map_err(TryError::Client),
                    Err(_) => Err(TryError::PerTryTimeout),
                },
                None => sent.await.map_err(TryError::Client),
            };
            match result {
                Ok((mut response, connection)) => {
                    let status = response.status().as_u16();
                    note_outcome(context, service, &endpoint, Outcome::of_status(status));
                    if can_retry_more && retry.is_some_and(|p| p.retries_status(status) && take_retry(route)) {
                        // Kept, fully prepared, in case no other endpoint is left to try.
                        last_failure = Some(client_response(
                            response,
                            service,
                            &endpoint,
                            sticky_id.as_deref(),
                            in_flight,
                            connection,
                        ));
                        continue;
                    }
                    if status == 101 {
                        if let Some(client_upgrade) = client_upgrade {
                            let upstream_upgrade = hyper::upgrade::on(&mut response);
                            tokio::spawn(super::tcp::splice_upgrades(
                                client_upgrade,
                                upstream_upgrade,
                                context.slot.clone(),
                            ));
                        }
                    }
                    return client_response(response, service, &endpoint, sticky_id.as_deref(), in_flight, connection);
                }
                Err(error) => {
                    let failure = classify(&error);
                    if failure == TryFailure::BodyTooLarge {
                        return error_response(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "body_too_large",
                            &format!("request body is larger than {max_body} bytes"),
                            id,
                        );
                    }
                    note_outcome(context, service, &endpoint, Outcome::GatewayFailure);
                    tracing::debug!(service = %service.name, endpoint = %endpoint.address, ?failure, %error, "upstream try failed");
                    let (status, code) = match failure {
                        TryFailure::Timeout => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
                        TryFailure::Connect => (StatusCode::BAD_GATEWAY, "upstream_connect_failure"),
                        _ => (StatusCode::BAD_GATEWAY, "upstream_reset"),
                    };
                    let message = format!(
                        "endpoint {} of service \"{}\" failed: {}",
                        endpoint.address,
                        service.name,
                        describe(failure)
                    );
                    let response = error_response(status, code, &message, id);
                    let retryable = retry.is_some_and(|p| match failure {
                        TryFailure::Connect => p.retries_connect_failure(),
                        TryFailure::Reset | TryFailure::Timeout => p.retries_reset(),
                        TryFailure::BodyTooLarge => false,
                    });
                    if can_retry_more && retryable && take_retry(route) {
                        last_failure = Some(response);
                        continue;
                    }
                    return response;
                }
            }
        }
        last_failure.unwrap_or_else(|| no_healthy_endpoint(service, destination.subset.as_deref(), id))
    }
}

fn take_retry(route: &RouteRuntime) -> bool {
    let allowed = route.retry.as_ref().is_some_and(|p| p.try_take_retry());
    if allowed {
        route.metrics.retries.inc();
    }
    allowed
}

fn note_outcome(context: &ConnectionContext, service: &ServiceRuntime, endpoint: &Endpoint, outcome: Outcome) {
    if let Some(duration) = service.record_outcome(endpoint, outcome) {
        tracing::warn!(service = %service.name, endpoint = %endpoint.address, ejected_for = ?duration, "outlier detection ejected endpoint");
        context.dataplane.metrics.ejected(&service.name, endpoint);
    }
}

fn no_healthy_endpoint(service: &ServiceRuntime, subset: Option<&str>, request_id: &str) -> Response<ResponseBody> {
    let message = match subset {
        Some(subset) => format!("service \"{}\" has no healthy endpoint in subset \"{subset}\"", service.name),
        None => format!("service \"{}\" has no healthy endpoint", service.name),
    };
    let mut response = error_response(StatusCode::SERVICE_UNAVAILABLE, "no_healthy_endpoint", &message, request_id);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn hash_key<B>(service: &ServiceRuntime, request: &Request<B>, client: SocketAddr) -> Option<u64> {
    match service.hash_on.as_ref()? {
        HashOn::Header(name) => request.headers().get(name.as_str()).map(|v| hash64(v.as_bytes())),
        HashOn::Cookie(name) => headers::cookie(request.headers(), name).map(|v| hash64(v.as_bytes())),
        HashOn::SourceIp => Some(match client.ip() {
            std::net::IpAddr::V4(ip) => hash64(&ip.octets()),
            std::net::IpAddr::V6(ip) => hash64(&ip.octets()),
        }),
    }
}

/// The request for one try. `last` (no other try can follow): the headers are moved out of
/// `parts` rather than copied.
fn upstream_request(
    parts: &mut http::request::Parts,
    last: bool,
    endpoint: &Endpoint,
    service: &ServiceRuntime,
    preserve_host: bool,
    body: ProxyBody,
) -> Result<Request<ProxyBody>, String> {
    let uri = service.client.uri(endpoint.index, &endpoint.address, &parts.method, parts.uri.path_and_query())?;
    let mut request = Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = if last { std::mem::take(&mut parts.headers) } else { parts.headers.clone() };
    let protocol = service.client_protocol();
    *request.version_mut() = match protocol {
        UpstreamProtocol::Http2 => Version::HTTP_2,
        UpstreamProtocol::Http1 => Version::HTTP_11,
    };
    if protocol == UpstreamProtocol::Http2 {
        // :authority carries the host on HTTP/2.
        request.headers_mut().remove(header::HOST);
    } else if !preserve_host || !request.headers().contains_key(header::HOST) {
        if let Some(value) = service.client.host(endpoint.index, &endpoint.address) {
            request.headers_mut().insert(header::HOST, value);
        }
    }
    Ok(request)
}

fn client_response(
    response: Response<UpstreamBody>,
    service: &ServiceRuntime,
    endpoint: &Endpoint,
    sticky_id: Option<&str>,
    in_flight: InFlightGuard,
    connection: Option<PooledConnection>,
) -> Response<ResponseBody> {
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    let (mut parts, incoming) = response.into_parts();
    headers::remove_hop_by_hop(&mut parts.headers, switching);
    parts.version = Version::default();
    if let Some(sticky) = &service.sticky {
        if sticky_id != Some(endpoint.sticky_id.as_str()) {
            let mut cookie = format!("{}={}; Path=/; HttpOnly", sticky.cookie, endpoint.sticky_id);
            if let Some(ttl) = sticky.ttl {
                cookie.push_str(&format!("; Max-Age={}", ttl.get().as_secs()));
            }
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                parts.headers.append(header::SET_COOKIE, value);
            }
        }
    }
    Response::from_parts(parts, ResponseBody::upstream(incoming, in_flight, connection))
}

#[derive(Debug, thiserror::Error)]
enum TryError {
    #[error(transparent)]
    Client(UpstreamError),
    #[error("per-try timeout")]
    PerTryTimeout,
}

fn classify(error: &TryError) -> TryFailure {
    let error = match error {
        TryError::PerTryTimeout => return TryFailure::Timeout,
        TryError::Client(error) => error,
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return TryFailure::BodyTooLarge;
        }
        if e.is::<tokio::time::error::Elapsed>() {
            return TryFailure::Timeout;
        }
        source = e.source();
    }
    if error.is_connect() {
        TryFailure::Connect
    } else {
        TryFailure::Reset
    }
}

fn describe(failure: TryFailure) -> &'static str {
    match failure {
        TryFailure::Connect => "connection refused or timed out",
        TryFailure::Reset => "connection reset or closed before a complete response",
        TryFailure::Timeout => "no response within the per-try timeout",
        TryFailure::BodyTooLarge => "request body too large",
    }
}
