//! A route compiled for one revision: weighted destinations, timeouts, the retry policy and its
//! budget, and the route's metric handles.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gantry_proto::config;
use rand::RngExt as _;

use crate::telemetry::RouteMetrics;
use crate::upstream::ServiceRuntime;

#[derive(Debug)]
pub struct Destination {
    pub service: Arc<ServiceRuntime>,
    pub subset: Option<String>,
    cumulative_weight: u64,
}

#[derive(Debug)]
pub struct RouteRuntime {
    pub name: Arc<str>,
    destinations: Vec<Destination>,
    pub timeout: Duration,
    pub retry: Option<RetryPolicy>,
    pub preserve_host: bool,
    pub metrics: RouteMetrics,
}

impl RouteRuntime {
    pub fn new(
        route: &config::Route,
        services: &std::collections::HashMap<String, Arc<ServiceRuntime>>,
        metrics: RouteMetrics,
    ) -> Option<Self> {
        let mut total = 0u64;
        let mut destinations = Vec::with_capacity(route.to.len());
        for to in &route.to {
            if to.weight == 0 {
                continue;
            }
            total += u64::from(to.weight);
            destinations.push(Destination {
                service: services.get(&to.service)?.clone(),
                subset: to.subset.clone(),
                cumulative_weight: total,
            });
        }
        Some(Self {
            name: Arc::from(route.name.as_str()),
            destinations,
            timeout: route.timeout.get(),
            retry: route.retries.as_ref().map(RetryPolicy::new),
            preserve_host: route.preserve_host,
            metrics,
        })
    }

    /// Picks a destination by weight (traffic splitting).
    pub fn pick_destination(&self) -> Option<&Destination> {
        if self.destinations.len() <= 1 {
            return self.destinations.first();
        }
        let total = self.destinations.last()?.cumulative_weight;
        let draw = rand::rng().random_range(0..total);
        let i = self.destinations.partition_point(|d| d.cumulative_weight <= draw);
        self.destinations.get(i)
    }
}

/// Length of the retry budget's window.
const BUDGET_WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct RetryPolicy {
    pub attempts: u32,
    on_connect_failure: bool,
    on_reset: bool,
    on_gateway_error: bool,
    on_5xx: bool,
    statuses: Vec<u16>,
    pub buffer_bytes: u64,
    pub per_try_timeout: Option<Duration>,
    budget_percent: u64,
    min_retries: u64,
    /// Window start (ms since `epoch`), requests and retries in the window.
    window_start_ms: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    epoch: Instant,
}

impl RetryPolicy {
    fn new(retries: &config::Retries) -> Self {
        let has = |name: &str| retries.on.iter().any(|c| c == name);
        Self {
            attempts: retries.attempts,
            on_connect_failure: has("connect_failure"),
            on_reset: has("reset"),
            on_gateway_error: has("gateway_error"),
            on_5xx: has("5xx"),
            statuses: retries.on.iter().filter_map(|c| c.parse().ok()).collect(),
            buffer_bytes: retries.buffer_bytes,
            per_try_timeout: retries.per_try_timeout.map(|d| d.get()),
            budget_percent: u64::from(retries.budget_percent),
            min_retries: u64::from(retries.min_retries_per_window),
            window_start_ms: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    pub fn retries_status(&self, status: u16) -> bool {
        self.statuses.contains(&status)
            || (self.on_5xx && (500..600).contains(&status))
            || (self.on_gateway_error && (502..=504).contains(&status))
    }

    pub fn retries_connect_failure(&self) -> bool {
        self.on_connect_failure || self.on_gateway_error || self.on_5xx
    }

    pub fn retries_reset(&self) -> bool {
        self.on_reset || self.on_gateway_error || self.on_5xx
    }

    fn roll_window(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        let start = self.window_start_ms.load(Ordering::Relaxed);
        if now.saturating_sub(start) >= BUDGET_WINDOW.as_millis() as u64
            && self.window_start_ms.compare_exchange(start, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            self.requests.store(0, Ordering::Relaxed);
            self.retries.store(0, Ordering::Relaxed);
        }
    }

    pub fn record_request(&self) {
        self.roll_window();
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one retry from the budget: allowed while retries in this window stay under
    /// budget_percent of requests, or under the per-window floor.
    pub fn try_take_retry(&self) -> bool {
        let requests = self.requests.load(Ordering::Relaxed);
        let allowed = (requests * self.budget_percent / 100).max(self.min_retries);
        self.retries.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| (r < allowed).then_some(r + 1)).is_ok()
    }
}
