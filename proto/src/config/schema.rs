//! The config document's schema: listeners, certificates, services and routes, as users write
//! them. Every struct rejects unknown fields; defaults live here and in `docs/config.md`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::duration::HumanDuration;

/// The whole declarative document. It is the unit of change: it is validated and applied whole.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    #[serde(default)]
    pub listeners: Vec<Listener>,
    #[serde(default)]
    pub certificates: Vec<Certificate>,
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default)]
    pub routes: Vec<Route>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenerProtocol {
    /// HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on one port.
    Http,
    /// TLS, then HTTP/1.1 or HTTP/2 as ALPN chooses.
    Https,
    /// Plain TCP proxied to one service.
    Tcp,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub name: String,
    pub protocol: ListenerProtocol,
    /// `IP:PORT` to bind. Http and https listeners may leave it out: they then bind the node's
    /// `--http` or `--https` address, so one document serves nodes with different addresses.
    #[serde(default)]
    pub address: Option<String>,
    /// Certificate names (https): chosen by SNI; the first is the default.
    #[serde(default)]
    pub certificates: Vec<String>,
    /// The service a tcp listener forwards to.
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub limits: ListenerLimits,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerLimits {
    /// Open connections at once; further connections are closed on accept.
    pub max_connections: u32,
    /// Bytes of request line plus headers (HTTP/1) or header list (HTTP/2); above: 431.
    pub max_header_bytes: u32,
    /// Number of request headers on HTTP/1 (HTTP/2 header lists are bounded by
    /// max_header_bytes); above: 431.
    pub max_headers: u32,
    /// Request body bytes; above: 413.
    pub max_body_bytes: u64,
    /// Time a client has to send a complete HTTP/1 request head (slowloris guard), and to finish
    /// a TLS handshake; also the keep-alive idle limit between HTTP/1 requests.
    pub header_read_timeout: HumanDuration,
    /// HTTP connections (HTTP/1 and HTTP/2) on which no byte moved for this long are closed
    /// gracefully.
    pub idle_timeout: HumanDuration,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_body_bytes: 10 * 1024 * 1024,
            header_read_timeout: HumanDuration::from_secs(10),
            idle_timeout: HumanDuration::from_secs(60),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    pub name: String,
    /// PEM file holding the certificate chain, leaf first.
    pub cert_file: String,
    /// PEM file holding the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// SNI names served with this certificate (`*.example.com` allowed). Empty: the certificate's
    /// DNS subject alternative names.
    #[serde(default)]
    pub server_names: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LbPolicy {
    #[default]
    RoundRobin,
    LeastRequest,
    RingHash,
    Random,
    /// Fewest requests (HTTP) or connections (TCP) in flight, found by a full scan.
    LeastConnections,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HashOn {
    Header(String),
    Cookie(String),
    SourceIp,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge (h2c): gRPC upstreams.
    Http2,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Locality {
    /// Ignore zones.
    #[default]
    Any,
    /// Use endpoints in this node's zone while any is healthy and the zone is not saturated
    /// (see `Service::max_in_flight_per_endpoint`); else spill to other zones.
    PreferSameZone,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: String,
    #[serde(default)]
    pub lb: LbPolicy,
    /// What ring_hash hashes: `{ header: x-user }`, `{ cookie: session }` or `source_ip`.
    #[serde(default)]
    pub hash_on: Option<HashOn>,
    #[serde(default)]
    pub sticky: Option<Sticky>,
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    #[serde(default)]
    pub locality: Locality,
    /// With `prefer_same_zone`: the in-flight requests one endpoint is meant to carry, counted
    /// over the whole cluster. A zone whose available endpoints carry that many each is
    /// saturated and new requests spill to other zones. None: zones are never saturated.
    #[serde(default)]
    pub max_in_flight_per_endpoint: Option<u32>,
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    #[serde(default)]
    pub outlier_detection: Option<OutlierDetection>,
    #[serde(default)]
    pub timeouts: ServiceTimeouts,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// `IP:PORT` or `HOST:PORT`.
    pub address: String,
    #[serde(default = "default_weight")]
    pub weight: u32,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub subset: Option<String>,
}

fn default_weight() -> u32 {
    1
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sticky {
    /// Cookie that names the endpoint a client sticks to.
    #[serde(default = "default_sticky_cookie")]
    pub cookie: String,
    /// Cookie lifetime; none: a session cookie.
    #[serde(default)]
    pub ttl: Option<HumanDuration>,
}

fn default_sticky_cookie() -> String {
    "gantry_sticky".to_string()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckKind {
    #[default]
    Http,
    Tcp,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    #[serde(default, rename = "type")]
    pub kind: HealthCheckKind,
    /// Path requested by http checks.
    #[serde(default = "default_health_path")]
    pub path: String,
    #[serde(default = "default_health_interval")]
    pub interval: HumanDuration,
    #[serde(default = "default_health_timeout")]
    pub timeout: HumanDuration,
    /// Consecutive failures that mark a healthy endpoint unhealthy.
    #[serde(default = "default_unhealthy")]
    pub unhealthy: u32,
    /// Consecutive successes that mark an unhealthy endpoint healthy.
    #[serde(default = "default_healthy")]
    pub healthy: u32,
    /// Status ranges that count as healthy, e.g. `["200-399"]` or `["200", "204"]`.
    #[serde(default = "default_expected_statuses")]
    pub expected_statuses: Vec<String>,
}

fn default_health_path() -> String {
    "/health".to_string()
}
fn default_health_interval() -> HumanDuration {
    HumanDuration::from_secs(5)
}
fn default_health_timeout() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_unhealthy() -> u32 {
    3
}
fn default_healthy() -> u32 {
    2
}
fn default_expected_statuses() -> Vec<String> {
    vec!["200-399".to_string()]
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutlierDetection {
    /// Consecutive 5xx responses that eject an endpoint (0: off).
    pub consecutive_5xx: u32,
    /// Consecutive gateway failures (502, 503, 504, connect failure, reset) that eject (0: off).
    pub consecutive_gateway_failure: u32,
    /// Ejection lasts base_ejection_time × times ejected.
    pub base_ejection_time: HumanDuration,
    /// An endpoint's ejection count drops by one for each interval it stays in.
    pub interval: HumanDuration,
    /// Never eject more than this share of a service's endpoints.
    pub max_ejection_percent: u32,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        Self {
            consecutive_5xx: 5,
            consecutive_gateway_failure: 5,
            base_ejection_time: HumanDuration::from_secs(30),
            interval: HumanDuration::from_secs(10),
            max_ejection_percent: 10,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceTimeouts {
    /// Time to open a connection to an endpoint.
    pub connect: HumanDuration,
    /// Pooled upstream connections idle for this long are closed.
    pub idle: HumanDuration,
}

impl Default for ServiceTimeouts {
    fn default() -> Self {
        Self { connect: HumanDuration::from_secs(2), idle: HumanDuration::from_secs(60) }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub name: String,
    /// Listeners this route serves; empty: every http and https listener.
    #[serde(default)]
    pub listeners: Vec<String>,
    #[serde(default, rename = "match")]
    pub matcher: RouteMatch,
    pub to: Vec<Destination>,
    /// Deadline from the request to the response head, retries included (the body then
    /// streams without a deadline).
    #[serde(default = "default_route_timeout")]
    pub timeout: HumanDuration,
    #[serde(default)]
    pub retries: Option<Retries>,
    /// Send the client's Host header upstream (true) or the endpoint's address (false).
    #[serde(default = "default_true")]
    pub preserve_host: bool,
}

fn default_route_timeout() -> HumanDuration {
    HumanDuration::from_secs(15)
}
fn default_true() -> bool {
    true
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    /// `api.example.com` or `*.example.com`; none: any host.
    #[serde(default)]
    pub host: Option<String>,
    /// Exact path.
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Regular expression that must match the whole path.
    #[serde(default)]
    pub path_regex: Option<String>,
    /// Methods accepted; empty: any.
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, ValueMatch>,
    #[serde(default)]
    pub query: BTreeMap<String, ValueMatch>,
}

/// How a header or query value must look: a plain string matches exactly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ValueMatch {
    Exact(String),
    Rule(ValueRule),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ValueRule {
    Exact(String),
    /// Must match the whole value.
    Regex(String),
    /// `true`: must be present; `false`: must be absent.
    Present(bool),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    pub service: String,
    #[serde(default)]
    pub subset: Option<String>,
    /// Share of traffic among the route's destinations.
    #[serde(default = "default_weight")]
    pub weight: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retries {
    /// Tries in all, the first included.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// `connect_failure`, `reset`, `gateway_error` (502/503/504), `5xx` or a status like `"503"`.
    #[serde(default = "default_retry_on")]
    pub on: Vec<String>,
    /// Retries may be at most this share of the route's requests (over a 10 s window).
    #[serde(default = "default_budget_percent")]
    pub budget_percent: u32,
    /// Retries always allowed per window whatever the budget, so quiet routes still retry.
    #[serde(default = "default_min_retries")]
    pub min_retries_per_window: u32,
    /// Request bodies up to this size are buffered so they can be replayed.
    #[serde(default = "default_retry_buffer")]
    pub buffer_bytes: u64,
    /// Deadline of each try; none: the route timeout.
    #[serde(default)]
    pub per_try_timeout: Option<HumanDuration>,
}

fn default_attempts() -> u32 {
    2
}
fn default_retry_on() -> Vec<String> {
    vec!["connect_failure".to_string(), "reset".to_string()]
}
fn default_budget_percent() -> u32 {
    20
}
fn default_min_retries() -> u32 {
    10
}
fn default_retry_buffer() -> u64 {
    64 * 1024
}
