//! The node's Prometheus metrics (text exposition at the admin API's `/metrics`).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::upstream::Endpoint;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    code_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    service: String,
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

type HistogramFamily<L> = Family<L, LatencyHistogram, fn() -> LatencyHistogram>;

fn latency_histogram() -> LatencyHistogram {
    LatencyHistogram::default()
}

/// Upper bounds of the latency buckets: 0.5 ms to ~16 s, doubling (then +Inf).
const LATENCY_BOUNDS: [f64; 16] = {
    let mut bounds = [0.0005; 16];
    let mut i = 1;
    while i < bounds.len() {
        bounds[i] = bounds[i - 1] * 2.0;
        i += 1;
    }
    bounds
};

/// A request-latency histogram observed with atomics alone (prometheus-client's `Histogram`
/// locks a mutex per observation), exposed exactly like it: the same buckets, `_sum`,
/// `_count`, `_bucket{le}`.
#[derive(Clone, Debug, Default)]
pub struct LatencyHistogram {
    inner: Arc<HistogramCells>,
}

#[derive(Debug, Default)]
struct HistogramCells {
    /// Per bucket, the last one +Inf (not cumulative: the encoder adds them up).
    counts: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    /// Bits of the f64 sum of observations.
    sum: AtomicU64,
}

impl LatencyHistogram {
    pub fn observe(&self, seconds: f64) {
        // The first bucket whose bound is at least the value; NaN lands in +Inf.
        let bucket = LATENCY_BOUNDS.iter().position(|bound| seconds <= *bound).unwrap_or(LATENCY_BOUNDS.len());
        self.inner.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let _ = self.inner.sum.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
            Some((f64::from_bits(bits) + seconds).to_bits())
        });
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.inner.counts.iter().map(|c| c.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = f64::from_bits(self.inner.sum.load(Ordering::Relaxed));
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

const CODE_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Routes with registered series, so the ones no installed revision has can be dropped.
    registered_routes: Mutex<HashSet<String>>,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily<RouteLabels>,
    retries: Family<RouteLabels, Counter>,
    endpoint_healthy: Family<EndpointLabels, Gauge>,
    ejections: Family<ServiceLabels, Counter>,
    open_connections: Family<ListenerLabels, Gauge>,
    rejected_connections: Family<ListenerLabels, Counter>,
    reloads: Family<ResultLabels, Counter>,
    revision: Gauge,
    cluster: ClusterGauges,
    gossip: GossipMetrics,
}

/// Gossip figures. The gossip crate keeps running totals; the counters here are advanced by
/// the difference at each scrape, so they stay Prometheus counters.
#[derive(Debug, Default)]
struct GossipMetrics {
    live_members: Gauge,
    packets: Family<DirectionLabels, Counter>,
    bytes: Family<DirectionLabels, Counter>,
    dropped: Family<ReasonLabels, Counter>,
    heartbeat_age: Family<PeerLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    last: std::sync::Mutex<GossipView>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: String,
}

/// What gossip reports to `/metrics`: running totals and per-peer heartbeat ages.
#[derive(Clone, Debug, Default)]
pub struct GossipView {
    pub live_members: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub dropped: Vec<(&'static str, u64)>,
    /// (peer node id, seconds since its heartbeat last advanced)
    pub heartbeat_age: Vec<(u64, f64)>,
}

/// Raft and fabric figures, set from a [`ClusterView`] at scrape time.
#[derive(Debug, Default)]
struct ClusterGauges {
    term: Gauge,
    is_leader: Gauge,
    last_log_index: Gauge,
    applied_index: Gauge,
    committed_revision: Gauge,
    voters: Gauge,
    learners: Gauge,
    fabric_refused: Gauge,
    fabric_bad_frames: Gauge,
    proposals: Gauge,
    proposed_writes: Gauge,
}

/// What the cluster reports to `/metrics`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ClusterView {
    pub term: u64,
    pub is_leader: bool,
    pub last_log_index: u64,
    pub applied_index: u64,
    pub committed_revision: u64,
    pub voters: u64,
    pub learners: u64,
    pub fabric_refused_connections: u64,
    pub fabric_bad_frames: u64,
    pub proposals: u64,
    pub proposed_writes: u64,
}

/// Handles for one route, made at compile time.
#[derive(Clone, Debug)]
pub struct RouteMetrics {
    by_class: [Counter; 5],
    latency: LatencyHistogram,
    pub retries: Counter,
}

impl RouteMetrics {
    /// Handles that count but are exported nowhere: for a trial compile of a document that may
    /// never be installed (registering its routes would leave series behind for routes that
    /// never existed).
    pub fn detached() -> Self {
        Self { by_class: Default::default(), latency: LatencyHistogram::default(), retries: Counter::default() }
    }

    pub fn observe(&self, status: u16, seconds: f64) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].inc();
        self.latency.observe(seconds);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("gantry");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by route and status class", requests.clone());
        let latency =
            HistogramFamily::<RouteLabels>::new_with_constructor(latency_histogram as fn() -> LatencyHistogram);
        registry.register(
            "http_request_duration_seconds",
            "Time from request to response headers, by route",
            latency.clone(),
        );
        let retries = Family::<RouteLabels, Counter>::default();
        registry.register("upstream_retries", "Retries sent upstream, by route", retries.clone());
        let endpoint_healthy = Family::<EndpointLabels, Gauge>::default();
        registry.register(
            "upstream_endpoint_healthy",
            "1 when the endpoint passes active checks and is not ejected",
            endpoint_healthy.clone(),
        );
        let ejections = Family::<ServiceLabels, Counter>::default();
        registry.register(
            "upstream_outlier_ejections",
            "Endpoints ejected by outlier detection, by service",
            ejections.clone(),
        );
        let open_connections = Family::<ListenerLabels, Gauge>::default();
        registry.register(
            "listener_open_connections",
            "Client connections open now, by listener",
            open_connections.clone(),
        );
        let rejected_connections = Family::<ListenerLabels, Counter>::default();
        registry.register(
            "listener_rejected_connections",
            "Connections closed at accept because the listener was full",
            rejected_connections.clone(),
        );
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register("config_reloads", "Config loads by result (ok or failed)", reloads.clone());
        let revision = Gauge::default();
        registry.register("config_revision", "Config revision this node serves", revision.clone());
        let cluster = ClusterGauges::default();
        registry.register("raft_term", "Current Raft term", cluster.term.clone());
        registry.register("raft_is_leader", "1 when this node is the Raft leader", cluster.is_leader.clone());
        registry.register(
            "raft_last_log_index",
            "Index of the last Raft log entry here",
            cluster.last_log_index.clone(),
        );
        registry.register(
            "raft_applied_index",
            "Index of the last Raft entry applied here",
            cluster.applied_index.clone(),
        );
        registry.register(
            "config_committed_revision",
            "Latest config revision applied to the replicated state here",
            cluster.committed_revision.clone(),
        );
        registry.register("raft_voters", "Voters in the Raft membership", cluster.voters.clone());
        registry.register(
            "raft_proposals",
            "Raft entries this node proposed for client writes (one per group commit)",
            cluster.proposals.clone(),
        );
        registry.register(
            "raft_proposed_writes",
            "Client writes those entries carried (divided by raft_proposals: the average batch)",
            cluster.proposed_writes.clone(),
        );
        registry.register("raft_learners", "Learners in the Raft membership", cluster.learners.clone());
        registry.register(
            "fabric_refused_connections",
            "Fabric connections refused (no member certificate, or a removed node)",
            cluster.fabric_refused.clone(),
        );
        let gossip = GossipMetrics::default();
        registry.register(
            "gossip_live_members",
            "Members gossip sees alive, this node included",
            gossip.live_members.clone(),
        );
        registry.register("gossip_packets", "Gossip datagrams by direction (in, out)", gossip.packets.clone());
        registry.register("gossip_bytes", "Gossip bytes by direction (in, out)", gossip.bytes.clone());
        registry.register("gossip_dropped_packets", "Gossip datagrams dropped, by reason", gossip.dropped.clone());
        registry.register(
            "gossip_heartbeat_age_seconds",
            "Seconds since each peer's gossip heartbeat last advanced here",
            gossip.heartbeat_age.clone(),
        );
        registry.register(
            "fabric_bad_frames",
            "Fabric frames dropped because they did not decode",
            cluster.fabric_bad_frames.clone(),
        );
        Self {
            registry,
            registered_routes: Mutex::new(HashSet::new()),
            requests,
            latency,
            retries,
            endpoint_healthy,
            ejections,
            open_connections,
            rejected_connections,
            reloads,
            revision,
            cluster,
            gossip,
        }
    }
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn route(&self, route: &str) -> RouteMetrics {
        let mut registered = self.registered_routes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !registered.contains(route) {
            registered.insert(route.to_string());
        }
        drop(registered);
        let by_class = CODE_CLASSES.map(|code_class| {
            self.requests.get_or_create_owned(&RequestLabels { route: route.to_string(), code_class })
        });
        let labels = RouteLabels { route: route.to_string() };
        RouteMetrics {
            by_class,
            latency: self.latency.get_or_create_owned(&labels),
            retries: self.retries.get_or_create_owned(&labels),
        }
    }

    /// Stops exporting the series of every route not in `installed` (a revision removed or
    /// renamed it, or a compiled revision was never installed). Requests still in flight on an
    /// old revision keep their handles and count into nothing.
    pub fn retain_routes(&self, installed: &HashSet<&str>) {
        let mut registered = self.registered_routes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        registered.retain(|route| {
            if installed.contains(route.as_str()) {
                return true;
            }
            for code_class in CODE_CLASSES {
                self.requests.remove(&RequestLabels { route: route.clone(), code_class });
            }
            let labels = RouteLabels { route: route.clone() };
            self.latency.remove(&labels);
            self.retries.remove(&labels);
            false
        });
    }

    /// Drops every endpoint health gauge. A gauge holds a value, not a count, so the current
    /// revision's endpoints simply set theirs again (an endpoint a revision removed is gone).
    pub fn clear_endpoint_health(&self) {
        self.endpoint_healthy.clear();
    }

    pub fn set_endpoint_health(&self, service: &str, endpoint: &Endpoint) {
        let labels = EndpointLabels { service: service.to_string(), endpoint: endpoint.address.clone() };
        self.endpoint_healthy.get_or_create(&labels).set(i64::from(endpoint.health.is_available()));
    }

    pub fn ejected(&self, service: &str, endpoint: &Endpoint) {
        self.ejections.get_or_create(&ServiceLabels { service: service.to_string() }).inc();
        self.set_endpoint_health(service, endpoint);
    }

    pub fn listener_connections(&self, listener: &str) -> Gauge {
        self.open_connections.get_or_create_owned(&ListenerLabels { listener: listener.to_string() })
    }

    pub fn listener_rejections(&self, listener: &str) -> Counter {
        self.rejected_connections.get_or_create_owned(&ListenerLabels { listener: listener.to_string() })
    }

    pub fn reload(&self, ok: bool, revision: u64) {
        self.reloads.get_or_create(&ResultLabels { result: if ok { "ok" } else { "failed" } }).inc();
        if ok {
            self.revision.set(revision as i64);
        }
    }

    pub fn set_cluster(&self, view: ClusterView) {
        let gauges = &self.cluster;
        let set = |gauge: &Gauge, value: u64| {
            gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
        };
        set(&gauges.term, view.term);
        set(&gauges.is_leader, u64::from(view.is_leader));
        set(&gauges.last_log_index, view.last_log_index);
        set(&gauges.applied_index, view.applied_index);
        set(&gauges.committed_revision, view.committed_revision);
        set(&gauges.voters, view.voters);
        set(&gauges.learners, view.learners);
        set(&gauges.fabric_refused, view.fabric_refused_connections);
        set(&gauges.fabric_bad_frames, view.fabric_bad_frames);
        set(&gauges.proposals, view.proposals);
        set(&gauges.proposed_writes, view.proposed_writes);
    }

    pub fn set_gossip(&self, view: GossipView) {
        let gossip = &self.gossip;
        gossip.live_members.set(i64::try_from(view.live_members).unwrap_or(i64::MAX));
        let mut last = match gossip.last.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let advance = |counter: &Counter, now: u64, before: u64| {
            counter.inc_by(now.saturating_sub(before));
        };
        advance(&gossip.packets.get_or_create(&DirectionLabels { direction: "in" }), view.packets_in, last.packets_in);
        advance(
            &gossip.packets.get_or_create(&DirectionLabels { direction: "out" }),
            view.packets_out,
            last.packets_out,
        );
        advance(&gossip.bytes.get_or_create(&DirectionLabels { direction: "in" }), view.bytes_in, last.bytes_in);
        advance(&gossip.bytes.get_or_create(&DirectionLabels { direction: "out" }), view.bytes_out, last.bytes_out);
        for (reason, count) in &view.dropped {
            let before = last.dropped.iter().find(|(r, _)| r == reason).map_or(0, |(_, c)| *c);
            advance(&gossip.dropped.get_or_create(&ReasonLabels { reason }), *count, before);
        }
        gossip.heartbeat_age.clear();
        for (peer, age) in &view.heartbeat_age {
            gossip.heartbeat_age.get_or_create(&PeerLabels { peer: peer.to_string() }).set(*age);
        }
        *last = view;
    }

    /// Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

    use super::*;

    fn encode(metric: impl prometheus_client::registry::Metric) -> String {
        let mut registry = Registry::default();
        registry.register("latency", "help", metric);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        text
    }

    #[test]
    fn latency_histogram_encodes_like_prometheus_client() {
        let ours = LatencyHistogram::default();
        let theirs = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        for seconds in [0.0001, 0.0005, 0.0007, 0.003, 0.25, 1.0, 9.0, 40.0] {
            ours.observe(seconds);
            theirs.observe(seconds);
        }
        assert_eq!(encode(ours.clone()), encode(theirs.clone()));
        ours.observe(f64::NAN);
        theirs.observe(f64::NAN);
        let (ours, theirs) = (encode(ours), encode(theirs));
        assert!(ours.contains("latency_bucket{le=\"0.0005\"} 2"), "{ours}");
        // NaN makes both sums NaN; everything else matches line for line.
        assert_eq!(ours, theirs);
    }
}
