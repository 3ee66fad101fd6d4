//! A service compiled for one config revision: endpoints grouped into pools (all, and one per
//! subset), each with its balancer, plus locality, sticky sessions and outlier policy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gantry_proto::config::{self, HashOn, LbPolicy, Locality, OutlierDetection};

use super::client::UpstreamClient;
use super::endpoint::{EndpointHealth, Outcome};
use crate::lb::{hash64, Balancer, Member};

#[derive(Debug)]
pub struct Endpoint {
    /// Position in the service's endpoint list: how retries name endpoints already tried.
    pub index: u32,
    pub address: String,
    /// Value of the sticky cookie for this endpoint: a hash of its address, the same on every
    /// node, revealing nothing about the network.
    pub sticky_id: String,
    pub weight: u32,
    pub zone: Option<String>,
    /// Position of `zone` in the service's zone list.
    pub zone_index: Option<usize>,
    pub subset: Option<String>,
    pub health: Arc<EndpointHealth>,
}

/// Zones beyond this many in one service are never considered saturated (the saturation
/// check keeps one bit per zone so that picking allocates nothing).
const MAX_TRACKED_ZONES: usize = 64;

/// One zone of a service, with the in-flight requests the other nodes report to it.
#[derive(Debug)]
pub struct ZoneSlot {
    pub name: String,
    /// `f64` bits: the sum of the other nodes' gossiped in-flight requests to this zone.
    remote_in_flight: AtomicU64,
}

impl ZoneSlot {
    fn remote_in_flight(&self) -> f64 {
        f64::from_bits(self.remote_in_flight.load(Ordering::Relaxed))
    }
}

impl Member for Arc<Endpoint> {
    fn weight(&self) -> u32 {
        self.weight
    }
    fn load(&self) -> u64 {
        self.health.in_flight()
    }
    fn key(&self) -> &str {
        &self.address
    }
}

#[derive(Debug)]
struct Pool {
    endpoints: Vec<Arc<Endpoint>>,
    balancer: Balancer,
}

impl Pool {
    fn new(policy: LbPolicy, endpoints: Vec<Arc<Endpoint>>) -> Self {
        let balancer = Balancer::new(policy, &endpoints);
        Self { endpoints, balancer }
    }
}

/// Health state by (service, endpoint address), kept across revisions.
#[derive(Debug, Default)]
pub struct HealthRegistry {
    entries: Mutex<HashMap<(String, String), Arc<EndpointHealth>>>,
}

impl HealthRegistry {
    /// The state of every endpoint of `document`, reusing what the installed revision has.
    pub fn adopt(&self, document: &config::Document) -> HashMap<(String, String), Arc<EndpointHealth>> {
        let entries = match self.entries.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut next = HashMap::new();
        for service in &document.services {
            for endpoint in &service.endpoints {
                let key = (service.name.clone(), endpoint.address.clone());
                let health = entries.get(&key).cloned().unwrap_or_default();
                next.insert(key, health);
            }
        }
        next
    }

    /// Keeps exactly the endpoints of the installed revision (a refused revision changes nothing).
    pub fn remember(&self, services: &HashMap<String, Arc<ServiceRuntime>>) {
        let next = services
            .values()
            .flat_map(|s| s.endpoints.iter().map(|e| ((s.name.clone(), e.address.clone()), e.health.clone())))
            .collect();
        match self.entries.lock() {
            Ok(mut guard) => *guard = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }
}

/// What the caller knows when asking for an endpoint.
#[derive(Debug, Default)]
pub struct PickRequest<'a> {
    pub subset: Option<&'a str>,
    /// Ring-hash key, already hashed.
    pub hash_key: Option<u64>,
    /// Sticky cookie value sent by the client.
    pub sticky_id: Option<&'a str>,
    /// Endpoint indices already tried for this request.
    pub exclude: &'a [u32],
}

#[derive(Debug)]
pub struct ServiceRuntime {
    pub name: String,
    pub endpoints: Vec<Arc<Endpoint>>,
    all: Pool,
    subsets: HashMap<String, Pool>,
    pub hash_on: Option<HashOn>,
    pub sticky: Option<config::Sticky>,
    locality: Locality,
    /// `prefer_same_zone` on a node that has a zone: picks keep to its zone first.
    zone_aware: bool,
    /// The service's endpoint zones, in order of first appearance.
    zones: Vec<ZoneSlot>,
    /// This node's zone among them (None also when the node's zone has no endpoint here).
    local_zone_index: Option<usize>,
    /// `max_in_flight_per_endpoint`: when set, zones can saturate and spill.
    max_in_flight: Option<u32>,
    pub outlier: Option<OutlierDetection>,
    protocol: config::UpstreamProtocol,
    connect_timeout: std::time::Duration,
    pub client: UpstreamClient,
}

impl ServiceRuntime {
    pub fn compile(
        service: &config::Service,
        health: &HashMap<(String, String), Arc<EndpointHealth>>,
        local_zone: Option<&str>,
        client: UpstreamClient,
    ) -> Self {
        let mut zone_names: Vec<&str> = Vec::new();
        for zone in service.endpoints.iter().filter_map(|e| e.zone.as_deref()) {
            if !zone_names.contains(&zone) {
                zone_names.push(zone);
            }
        }
        let zone_index = |zone: Option<&str>| zone.and_then(|z| zone_names.iter().position(|n| *n == z));
        let endpoints: Vec<Arc<Endpoint>> = service
            .endpoints
            .iter()
            .enumerate()
            .map(|(index, e)| {
                Arc::new(Endpoint {
                    index: index as u32,
                    address: e.address.clone(),
                    sticky_id: format!("{:016x}", hash64(e.address.as_bytes())),
                    weight: e.weight,
                    zone: e.zone.clone(),
                    zone_index: zone_index(e.zone.as_deref()),
                    subset: e.subset.clone(),
                    health: health.get(&(service.name.clone(), e.address.clone())).cloned().unwrap_or_default(),
                })
            })
            .collect();
        let mut by_subset: HashMap<String, Vec<Arc<Endpoint>>> = HashMap::new();
        for endpoint in &endpoints {
            if let Some(subset) = &endpoint.subset {
                by_subset.entry(subset.clone()).or_default().push(endpoint.clone());
            }
        }
        let hash_on = match (service.lb, &service.hash_on) {
            (LbPolicy::RingHash, None) => Some(HashOn::SourceIp),
            (_, hash_on) => hash_on.clone(),
        };
        Self {
            name: service.name.clone(),
            all: Pool::new(service.lb, endpoints.clone()),
            subsets: by_subset.into_iter().map(|(name, members)| (name, Pool::new(service.lb, members))).collect(),
            endpoints,
            hash_on,
            sticky: service.sticky.clone(),
            locality: service.locality,
            zone_aware: service.locality == Locality::PreferSameZone && local_zone.is_some(),
            local_zone_index: zone_index(local_zone),
            zones: zone_names
                .iter()
                .map(|name| ZoneSlot { name: name.to_string(), remote_in_flight: AtomicU64::new(0f64.to_bits()) })
                .collect(),
            max_in_flight: service.max_in_flight_per_endpoint,
            outlier: service.outlier_detection.clone(),
            protocol: service.protocol,
            connect_timeout: service.timeouts.connect.get(),
            client,
        }
    }

    pub fn connect_timeout(&self) -> std::time::Duration {
        self.connect_timeout
    }

    pub fn client_protocol(&self) -> config::UpstreamProtocol {
        self.protocol
    }

    /// Chooses an available endpoint, or None when every candidate is down, ejected or tried.
    pub fn pick(&self, request: &PickRequest<'_>) -> Option<Arc<Endpoint>> {
        let pool = match request.subset {
            Some(subset) => self.subsets.get(subset)?,
            None => &self.all,
        };
        let usable = |e: &Endpoint| e.health.is_available() && !request.exclude.contains(&e.index);
        if let Some(id) = request.sticky_id {
            if let Some(endpoint) = pool.endpoints.iter().find(|e| e.sticky_id == id) {
                if usable(endpoint) {
                    return Some(endpoint.clone());
                }
            }
        }
        if self.zone_aware {
            let saturated = self.max_in_flight.map_or(0, |bound| self.saturated_zones(bound));
            let is_saturated =
                |zone: Option<usize>| zone.is_some_and(|z| z < MAX_TRACKED_ZONES && saturated & (1 << z) != 0);
            if let Some(local) = self.local_zone_index.filter(|z| !is_saturated(Some(*z))) {
                let in_local_zone = |i: usize| {
                    let e = &pool.endpoints[i];
                    e.zone_index == Some(local) && usable(e)
                };
                if let Some(i) = pool.balancer.pick(&pool.endpoints, in_local_zone, request.hash_key) {
                    return Some(pool.endpoints[i].clone());
                }
            }
            if saturated != 0 {
                let in_open_zone = |i: usize| {
                    let e = &pool.endpoints[i];
                    !is_saturated(e.zone_index) && usable(e)
                };
                if let Some(i) = pool.balancer.pick(&pool.endpoints, in_open_zone, request.hash_key) {
                    return Some(pool.endpoints[i].clone());
                }
            }
        }
        pool.balancer
            .pick(&pool.endpoints, |i| usable(&pool.endpoints[i]), request.hash_key)
            .map(|i| pool.endpoints[i].clone())
    }

    /// One bit per zone whose in-flight requests (this node's, live, plus the other nodes'
    /// gossiped figures) reach `bound` times its available endpoints. A zone with no available
    /// endpoint counts as saturated: it has no room.
    fn saturated_zones(&self, bound: u32) -> u64 {
        let mut load = [0f64; MAX_TRACKED_ZONES];
        let mut available = [0u32; MAX_TRACKED_ZONES];
        for endpoint in &self.endpoints {
            if let Some(z) = endpoint.zone_index.filter(|z| *z < MAX_TRACKED_ZONES) {
                load[z] += endpoint.health.in_flight() as f64;
                available[z] += u32::from(endpoint.health.is_available());
            }
        }
        let mut saturated = 0u64;
        for (z, slot) in self.zones.iter().enumerate().take(MAX_TRACKED_ZONES) {
            if load[z] + slot.remote_in_flight() >= f64::from(bound) * f64::from(available[z]) {
                saturated |= 1 << z;
            }
        }
        saturated
    }

    /// Whether zones of this service can saturate (`max_in_flight_per_endpoint` is set).
    pub fn tracks_zone_load(&self) -> bool {
        self.locality == Locality::PreferSameZone && self.max_in_flight.is_some()
    }

    pub fn zones(&self) -> &[ZoneSlot] {
        &self.zones
    }

    /// This node's in-flight requests to each zone, in the order of [`Self::zones`].
    pub fn local_in_flight_by_zone(&self) -> Vec<u64> {
        let mut by_zone = vec![0u64; self.zones.len()];
        for endpoint in &self.endpoints {
            if let Some(slot) = endpoint.zone_index.and_then(|z| by_zone.get_mut(z)) {
                *slot += endpoint.health.in_flight();
            }
        }
        by_zone
    }

    /// Records what the other nodes report in flight to the zone at `index`.
    pub fn set_remote_in_flight(&self, index: usize, in_flight: f64) {
        if let Some(slot) = self.zones.get(index) {
            let value = if in_flight.is_finite() && in_flight > 0.0 { in_flight } else { 0.0 };
            slot.remote_in_flight.store(value.to_bits(), Ordering::Relaxed);
        }
    }

    /// Feeds a request outcome to outlier detection, ejecting the endpoint when it crossed a
    /// threshold and the service's cap allows. Returns the ejection length when it ejected.
    pub fn record_outcome(&self, endpoint: &Endpoint, outcome: Outcome) -> Option<std::time::Duration> {
        let policy = self.outlier.as_ref()?;
        if !endpoint.health.record(outcome, policy) || endpoint.health.is_ejected() {
            return None;
        }
        let ejected = self.endpoints.iter().filter(|e| e.health.is_ejected()).count();
        if ejected >= self.max_ejected(policy) {
            return None;
        }
        Some(endpoint.health.eject(policy.base_ejection_time.get()))
    }

    /// The most endpoints that may be ejected at once: max_ejection_percent of the service,
    /// and at least one (as Envoy does) unless the percentage is 0.
    fn max_ejected(&self, policy: &OutlierDetection) -> usize {
        if policy.max_ejection_percent == 0 {
            return 0;
        }
        (self.endpoints.len() * policy.max_ejection_percent as usize / 100).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(bound: Option<u32>) -> ServiceRuntime {
        let max = bound.map(|b| format!("max_in_flight_per_endpoint: {b}")).unwrap_or_default();
        let yaml = format!(
            r#"
services:
  - name: web
    lb: least_request
    locality: prefer_same_zone
    {max}
    endpoints:
      - {{ address: "10.0.0.1:80", zone: a }}
      - {{ address: "10.0.0.2:80", zone: a }}
      - {{ address: "10.0.1.1:80", zone: b }}
      - {{ address: "10.0.2.1:80", zone: c }}
"#
        );
        let document = gantry_proto::config::parse_document(&yaml).expect("valid");
        let config = &document.services[0];
        ServiceRuntime::compile(config, &HashMap::new(), Some("a"), UpstreamClient::for_service(config))
    }

    fn zone_of_pick(service: &ServiceRuntime) -> String {
        let endpoint = service.pick(&PickRequest::default()).expect("a candidate");
        endpoint.zone.clone().unwrap_or_default()
    }

    /// Holds `n` requests in flight on each endpoint of `zone`.
    fn load(service: &ServiceRuntime, zone: &str, n: usize) -> Vec<super::super::endpoint::InFlightGuard> {
        service
            .endpoints
            .iter()
            .filter(|e| e.zone.as_deref() == Some(zone))
            .flat_map(|e| (0..n).map(|_| e.health.start_request()))
            .collect()
    }

    #[test]
    fn the_local_zone_serves_until_it_is_saturated_then_spills_to_open_zones() {
        let web = service(Some(2));
        assert_eq!(zone_of_pick(&web), "a");
        let one_each = load(&web, "a", 1);
        assert_eq!(zone_of_pick(&web), "a", "3 of 4 in flight: room left");
        let two_each = load(&web, "a", 1);
        for _ in 0..20 {
            assert_ne!(zone_of_pick(&web), "a", "zone a carries 4 = 2 × 2 endpoints");
        }
        // b is saturated too: c is the only open zone.
        let b_full = load(&web, "b", 2);
        for _ in 0..20 {
            assert_eq!(zone_of_pick(&web), "c");
        }
        // Everything saturated: every available endpoint is a candidate again.
        let c_full = load(&web, "c", 2);
        let zones: std::collections::BTreeSet<String> = (0..50).map(|_| zone_of_pick(&web)).collect();
        assert!(zones.contains("a"), "{zones:?}");
        drop((one_each, two_each, b_full, c_full));
        assert_eq!(zone_of_pick(&web), "a", "room again: back home");
    }

    #[test]
    fn other_nodes_gossiped_load_counts_toward_saturation() {
        let web = service(Some(2));
        let a = web.zones().iter().position(|z| z.name == "a").expect("zone a");
        web.set_remote_in_flight(a, 3.5);
        assert_eq!(zone_of_pick(&web), "a", "3.5 of 4");
        let _mine = web.endpoints[0].health.start_request();
        assert_ne!(zone_of_pick(&web), "a", "4.5 of 4");
        web.set_remote_in_flight(a, 0.0);
        assert_eq!(zone_of_pick(&web), "a");
        assert_eq!(web.local_in_flight_by_zone(), vec![1, 0, 0]);
    }

    #[test]
    fn without_a_bound_zones_never_saturate() {
        let web = service(None);
        let _held = load(&web, "a", 100);
        assert!(!web.tracks_zone_load());
        assert_eq!(zone_of_pick(&web), "a");
    }

    #[test]
    fn an_unavailable_local_zone_fails_over() {
        let web = service(Some(2));
        for endpoint in web.endpoints.iter().filter(|e| e.zone.as_deref() == Some("a")) {
            endpoint.health.set_active_healthy(false);
        }
        assert_ne!(zone_of_pick(&web), "a");
    }
}
