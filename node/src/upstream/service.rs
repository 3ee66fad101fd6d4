//! A service compiled for one config revision: endpoints grouped into pools (all, and one per
//! subset), each with its balancer, plus locality, sticky sessions and outlier policy.

use std::collections::HashMap;
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
    pub subset: Option<String>,
    pub health: Arc<EndpointHealth>,
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
    local_zone: Option<String>,
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
            local_zone: local_zone.map(str::to_string),
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
        if self.locality == Locality::PreferSameZone {
            if let Some(zone) = &self.local_zone {
                let local = |i: usize| {
                    let e = &pool.endpoints[i];
                    e.zone.as_deref() == Some(zone.as_str()) && usable(e)
                };
                if let Some(i) = pool.balancer.pick(&pool.endpoints, local, request.hash_key) {
                    return Some(pool.endpoints[i].clone());
                }
            }
        }
        pool.balancer
            .pick(&pool.endpoints, |i| usable(&pool.endpoints[i]), request.hash_key)
            .map(|i| pool.endpoints[i].clone())
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
