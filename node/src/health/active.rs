//! Active health checks. One task per checked endpoint; a verdict flips only after `unhealthy`
//! consecutive failures or `healthy` consecutive successes, like HAProxy's rise/fall. In a
//! cluster the checks are shared out: each endpoint is checked by one owner (rendezvous hashing
//! over the live nodes of its zone), which gossips its verdict; the other nodes adopt it, and
//! check by themselves only while they hear no fresh verdict.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gantry_proto::config::{parse_status_ranges, HealthCheck, HealthCheckKind, StatusRange, UpstreamProtocol};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::dataplane::Snapshot;
use crate::gossip::GossipNode;
use crate::telemetry::Metrics;
use crate::upstream::{Endpoint, ServiceRuntime};

/// How often the endpoint health gauges are recomputed.
const GAUGE_REFRESH: Duration = Duration::from_secs(1);

/// Owns the check tasks of the current revision; a new revision replaces them all (endpoint
/// verdicts live in the shared health state, so nothing is forgotten).
#[derive(Debug, Default)]
pub struct HealthSupervisor {
    tasks: JoinSet<()>,
}

impl HealthSupervisor {
    pub fn follow(&mut self, snapshot: &Snapshot, metrics: &Arc<Metrics>, gossip: Option<Arc<GossipNode>>) {
        // Dropping the old set aborts its tasks and frees them (`abort_all` alone would leave
        // every finished task in the set, one more per revision).
        self.tasks = JoinSet::new();
        // Endpoints this revision no longer has stop being exported; the others are set again
        // at once (the refresh task below keeps them current).
        metrics.clear_endpoint_health();
        for service in snapshot.services.values() {
            for endpoint in &service.endpoints {
                metrics.set_endpoint_health(&service.name, endpoint);
            }
        }
        for service in snapshot.services.values() {
            let check =
                snapshot.document.services.iter().find(|s| s.name == service.name).and_then(|s| s.health_check.clone());
            let Some(check) = check else {
                // No checks any more: a verdict left by an earlier revision's checks must not
                // keep an endpoint out of rotation forever.
                for endpoint in &service.endpoints {
                    endpoint.health.set_active_healthy(true);
                }
                decay_ejections_periodically(&mut self.tasks, service);
                continue;
            };
            let statuses = parse_status_ranges(&check.expected_statuses).unwrap_or_default();
            for endpoint in &service.endpoints {
                let endpoint = endpoint.clone();
                let check = check.clone();
                let statuses = statuses.clone();
                let metrics = metrics.clone();
                let service_name = service.name.clone();
                let protocol = service.client_protocol();
                let gossip = gossip.clone();
                self.tasks.spawn(async move {
                    let task =
                        CheckTask { service: service_name, endpoint, check, protocol, statuses, metrics, gossip };
                    task.run().await;
                });
            }
            decay_ejections_periodically(&mut self.tasks, service);
        }
        // Ejections end by the clock, not by an event: refresh the health gauges periodically.
        let services: Vec<_> = snapshot.services.values().cloned().collect();
        let metrics = metrics.clone();
        self.tasks.spawn(async move {
            let mut tick = tokio::time::interval(GAUGE_REFRESH);
            loop {
                tick.tick().await;
                for service in &services {
                    for endpoint in &service.endpoints {
                        metrics.set_endpoint_health(&service.name, endpoint);
                    }
                }
            }
        });
    }
}

/// Lowers ejection counts every outlier interval (see `EndpointHealth::decay_ejections`).
fn decay_ejections_periodically(tasks: &mut JoinSet<()>, service: &ServiceRuntime) {
    let Some(outlier) = service.outlier.clone() else {
        return;
    };
    let endpoints = service.endpoints.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(outlier.interval.get());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            for endpoint in &endpoints {
                endpoint.health.decay_ejections();
            }
        }
    });
}

/// How often a node that does not own an endpoint looks for the owner's verdict.
const GOSSIP_POLL: Duration = Duration::from_millis(200);

struct CheckTask {
    service: String,
    endpoint: Arc<Endpoint>,
    check: HealthCheck,
    protocol: UpstreamProtocol,
    statuses: Vec<StatusRange>,
    metrics: Arc<Metrics>,
    gossip: Option<Arc<GossipNode>>,
}

impl CheckTask {
    async fn run(self) {
        let interval = self.check.interval.get();
        let mut successes = 0u32;
        let mut failures = 0u32;
        // Spread first checks over the interval so a reload does not fire every check at once.
        let jitter = Duration::from_millis(rand::random::<u64>() % (interval.as_millis() as u64 / 4 + 1));
        tokio::time::sleep(jitter).await;
        let mut tick = tokio::time::interval(interval.min(GOSSIP_POLL));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // An owner's verdict older than this (three intervals, plus gossip time) is not trusted.
        let fresh_within = interval * 3 + Duration::from_secs(2);
        let mut last_own_check: Option<tokio::time::Instant> = None;
        loop {
            tick.tick().await;
            let owner = self.gossip.as_ref().and_then(|g| {
                let owner = g.owner_of(&self.service, &self.endpoint.address, self.endpoint.zone.as_deref())?;
                Some((g, owner))
            });
            let mine = owner.is_none_or(|(g, owner)| owner == g.node_id());
            if let Some((gossip, owner)) = owner.filter(|_| !mine) {
                if let Some(healthy) = gossip.owner_verdict(owner, &self.service, &self.endpoint.address, fresh_within)
                {
                    successes = 0;
                    failures = 0;
                    self.set_healthy(healthy, "the owning node's checks");
                    continue;
                }
            }
            // Our own check: we own the endpoint, or we hear nothing from its owner.
            if last_own_check.is_some_and(|at| at.elapsed() < interval) {
                continue;
            }
            last_own_check = Some(tokio::time::Instant::now());
            let result = check_once(&self.endpoint.address, &self.check, self.protocol, &self.statuses).await;
            let healthy_now = self.endpoint.health.is_active_healthy();
            match result {
                Ok(()) => {
                    failures = 0;
                    successes = successes.saturating_add(1);
                    if !healthy_now && successes >= self.check.healthy {
                        self.set_healthy(true, "its health checks");
                    }
                }
                Err(reason) => {
                    successes = 0;
                    failures = failures.saturating_add(1);
                    if healthy_now && failures >= self.check.unhealthy {
                        tracing::debug!(service = %self.service, endpoint = %self.endpoint.address, %reason, "check failed");
                        self.set_healthy(false, "its health checks");
                    }
                }
            }
            if let Some(gossip) = self.gossip.as_ref().filter(|_| mine) {
                gossip
                    .publish_health(&self.service, &self.endpoint.address, self.endpoint.health.is_active_healthy())
                    .await;
            }
        }
    }

    fn set_healthy(&self, healthy: bool, source: &str) {
        if !self.endpoint.health.set_active_healthy(healthy) {
            return;
        }
        if healthy {
            tracing::info!(service = %self.service, endpoint = %self.endpoint.address, %source, "endpoint healthy; back in rotation");
        } else {
            tracing::warn!(service = %self.service, endpoint = %self.endpoint.address, %source, "endpoint unhealthy; out of rotation");
        }
        self.metrics.set_endpoint_health(&self.service, &self.endpoint);
    }
}

/// Runs one check against `address` (HTTP/1.1, or HTTP/2 with prior knowledge for http2
/// services, which may not speak HTTP/1 at all); Err says why it failed.
pub async fn check_once(
    address: &str,
    check: &HealthCheck,
    protocol: UpstreamProtocol,
    statuses: &[StatusRange],
) -> Result<(), String> {
    let attempt = async {
        let stream = TcpStream::connect(address).await.map_err(|e| format!("connect: {e}"))?;
        if check.kind == HealthCheckKind::Tcp {
            return Ok(());
        }
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(stream);
        let mut request = http::Request::get(check.path.as_str())
            .header(http::header::USER_AGENT, "gantry-health-check")
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("request: {e}"))?;
        let response = match protocol {
            UpstreamProtocol::Http1 => {
                let (mut sender, connection) =
                    hyper::client::conn::http1::handshake(io).await.map_err(|e| format!("handshake: {e}"))?;
                tokio::spawn(connection);
                let headers = request.headers_mut();
                if let Ok(host) = http::HeaderValue::from_str(address) {
                    headers.insert(http::header::HOST, host);
                }
                headers.insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
                sender.send_request(request).await
            }
            UpstreamProtocol::Http2 => {
                let (mut sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(|e| format!("handshake: {e}"))?;
                tokio::spawn(connection);
                *request.uri_mut() =
                    format!("http://{address}{}", check.path).parse().map_err(|e| format!("request: {e}"))?;
                sender.send_request(request).await
            }
        }
        .map_err(|e| format!("request: {e}"))?;
        let status = response.status().as_u16();
        if statuses.iter().any(|r| r.contains(status)) {
            Ok(())
        } else {
            Err(format!("status {status}"))
        }
    };
    match tokio::time::timeout(check.timeout.get(), attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {}", check.timeout)),
    }
}
