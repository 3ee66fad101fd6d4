//! Active health checks. One task per checked endpoint; a verdict flips only after `unhealthy`
//! consecutive failures or `healthy` consecutive successes, like HAProxy's rise/fall.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gantry_proto::config::{parse_status_ranges, HealthCheck, HealthCheckKind, StatusRange};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::dataplane::Snapshot;
use crate::telemetry::Metrics;
use crate::upstream::Endpoint;

/// Owns the check tasks of the current revision; a new revision replaces them all (endpoint
/// verdicts live in the shared health state, so nothing is forgotten).
#[derive(Debug, Default)]
pub struct HealthSupervisor {
    tasks: JoinSet<()>,
}

impl HealthSupervisor {
    pub fn follow(&mut self, snapshot: &Snapshot, metrics: &Arc<Metrics>) {
        self.tasks.abort_all();
        for service in snapshot.services.values() {
            for endpoint in &service.endpoints {
                metrics.set_endpoint_health(&service.name, endpoint);
            }
            if let Some(check) = snapshot
                .document
                .services
                .iter()
                .find(|s| s.name == service.name)
                .and_then(|s| s.health_check.clone())
            {
                let statuses = parse_status_ranges(&check.expected_statuses).unwrap_or_default();
                for endpoint in &service.endpoints {
                    let endpoint = endpoint.clone();
                    let check = check.clone();
                    let statuses = statuses.clone();
                    let metrics = metrics.clone();
                    let service_name = service.name.clone();
                    self.tasks.spawn(async move {
                        run_checks(service_name, endpoint, check, statuses, metrics).await;
                    });
                }
            }
            if let Some(outlier) = service.outlier.clone() {
                let endpoints = service.endpoints.clone();
                self.tasks.spawn(async move {
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
        }
    }
}

async fn run_checks(
    service: String,
    endpoint: Arc<Endpoint>,
    check: HealthCheck,
    statuses: Vec<StatusRange>,
    metrics: Arc<Metrics>,
) {
    let mut successes = 0u32;
    let mut failures = 0u32;
    // Spread first checks over the interval so a reload does not fire every check at once.
    let jitter = Duration::from_millis(
        rand::random::<u64>() % (check.interval.get().as_millis() as u64 / 4 + 1),
    );
    tokio::time::sleep(jitter).await;
    let mut tick = tokio::time::interval(check.interval.get());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let result = check_once(&endpoint.address, &check, &statuses).await;
        let healthy_now = endpoint.health.is_active_healthy();
        match result {
            Ok(()) => {
                failures = 0;
                successes = successes.saturating_add(1);
                if !healthy_now && successes >= check.healthy {
                    endpoint.health.set_active_healthy(true);
                    tracing::info!(service = %service, endpoint = %endpoint.address, "endpoint passed its health checks; back in rotation");
                    metrics.set_endpoint_health(&service, &endpoint);
                }
            }
            Err(reason) => {
                successes = 0;
                failures = failures.saturating_add(1);
                if healthy_now && failures >= check.unhealthy {
                    endpoint.health.set_active_healthy(false);
                    tracing::warn!(service = %service, endpoint = %endpoint.address, %reason, "endpoint failed its health checks; out of rotation");
                    metrics.set_endpoint_health(&service, &endpoint);
                }
            }
        }
    }
}

/// Runs one check against `address`; Err says why it failed.
pub async fn check_once(
    address: &str,
    check: &HealthCheck,
    statuses: &[StatusRange],
) -> Result<(), String> {
    let attempt = async {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        if check.kind == HealthCheckKind::Tcp {
            return Ok(());
        }
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(connection);
        let request = http::Request::get(check.path.as_str())
            .header(http::header::HOST, address)
            .header(http::header::USER_AGENT, "gantry-health-check")
            .header(http::header::CONNECTION, "close")
            .body(Empty::new())
            .map_err(|e| format!("request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
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
