//! One upstream endpoint's live state: active-check health, passive outlier ejection and load.
//! It outlives config revisions (kept by service and address in the health registry), so a
//! reload forgets neither an ejection nor an active-check verdict.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gantry_proto::config::OutlierDetection;

/// Shared, lock-free state of one endpoint.
#[derive(Debug)]
pub struct EndpointHealth {
    /// Result of active checks (true until a check says otherwise).
    active_healthy: AtomicBool,
    /// Milliseconds since `epoch` until which the endpoint is ejected (0: not ejected).
    ejected_until_ms: AtomicU64,
    times_ejected: AtomicU32,
    consecutive_5xx: AtomicU32,
    consecutive_gateway_failures: AtomicU32,
    /// Requests (or TCP connections) in flight to this endpoint.
    in_flight: AtomicU64,
    /// Requests (or connections) started, ever: gossip derives a request rate from it.
    started: AtomicU64,
    /// Smoothed duration of finished requests, microseconds (an EWMA; 0 until one finished).
    latency_us_smoothed: AtomicU64,
    epoch: Instant,
}

impl Default for EndpointHealth {
    fn default() -> Self {
        Self {
            active_healthy: AtomicBool::new(true),
            ejected_until_ms: AtomicU64::new(0),
            times_ejected: AtomicU32::new(0),
            consecutive_5xx: AtomicU32::new(0),
            consecutive_gateway_failures: AtomicU32::new(0),
            in_flight: AtomicU64::new(0),
            started: AtomicU64::new(0),
            latency_us_smoothed: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

/// How one request to an endpoint ended, as outlier detection sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// A 5xx other than 502-504.
    ServerError,
    /// Connect failure, reset, timeout, or 502/503/504.
    GatewayFailure,
}

impl Outcome {
    pub fn of_status(status: u16) -> Self {
        match status {
            502..=504 => Outcome::GatewayFailure,
            500..=599 => Outcome::ServerError,
            _ => Outcome::Success,
        }
    }
}

impl EndpointHealth {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub fn is_active_healthy(&self) -> bool {
        self.active_healthy.load(Ordering::Relaxed)
    }

    /// Records an active check verdict; returns true when the verdict changed.
    pub fn set_active_healthy(&self, healthy: bool) -> bool {
        self.active_healthy.swap(healthy, Ordering::Relaxed) != healthy
    }

    pub fn is_ejected(&self) -> bool {
        let until = self.ejected_until_ms.load(Ordering::Relaxed);
        until != 0 && self.now_ms() < until
    }

    /// Usable for new traffic: passes active checks and is not ejected.
    pub fn is_available(&self) -> bool {
        self.is_active_healthy() && !self.is_ejected()
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn times_ejected(&self) -> u32 {
        self.times_ejected.load(Ordering::Relaxed)
    }

    /// Counts a request in flight until the guard drops.
    pub fn start_request(self: &std::sync::Arc<Self>) -> InFlightGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::Relaxed);
        InFlightGuard { health: self.clone(), since: Instant::now() }
    }

    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Smoothed request duration in milliseconds (0 before any request finished).
    pub fn latency_ms_smoothed(&self) -> f64 {
        self.latency_us_smoothed.load(Ordering::Relaxed) as f64 / 1000.0
    }

    /// Folds one finished request into the EWMA (weight 1/8, as TCP's SRTT).
    fn record_latency(&self, took: std::time::Duration) {
        let sample = took.as_micros().min(u128::from(u64::MAX)) as u64;
        let _ = self.latency_us_smoothed.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
            Some(if old == 0 { sample.max(1) } else { (old * 7 + sample) / 8 })
        });
    }

    /// Feeds one outcome to the consecutive-failure counters. Returns true when the endpoint has
    /// crossed a threshold and should be ejected (the caller applies the service-wide cap).
    pub fn record(&self, outcome: Outcome, policy: &OutlierDetection) -> bool {
        match outcome {
            Outcome::Success => {
                self.consecutive_5xx.store(0, Ordering::Relaxed);
                self.consecutive_gateway_failures.store(0, Ordering::Relaxed);
                false
            }
            Outcome::ServerError => {
                self.consecutive_gateway_failures.store(0, Ordering::Relaxed);
                let n = self.consecutive_5xx.fetch_add(1, Ordering::Relaxed) + 1;
                policy.consecutive_5xx > 0 && n >= policy.consecutive_5xx
            }
            Outcome::GatewayFailure => {
                let n5 = self.consecutive_5xx.fetch_add(1, Ordering::Relaxed) + 1;
                let ng = self.consecutive_gateway_failures.fetch_add(1, Ordering::Relaxed) + 1;
                (policy.consecutive_5xx > 0 && n5 >= policy.consecutive_5xx)
                    || (policy.consecutive_gateway_failure > 0 && ng >= policy.consecutive_gateway_failure)
            }
        }
    }

    /// Ejects for base × times ejected (this ejection included); returns the duration.
    pub fn eject(&self, base: Duration) -> Duration {
        let times = self.times_ejected.fetch_add(1, Ordering::Relaxed) + 1;
        let duration = base.saturating_mul(times);
        let until = self.now_ms() + duration.as_millis() as u64;
        self.ejected_until_ms.store(until.max(1), Ordering::Relaxed);
        self.consecutive_5xx.store(0, Ordering::Relaxed);
        self.consecutive_gateway_failures.store(0, Ordering::Relaxed);
        duration
    }

    /// Called every outlier interval: an endpoint that is back in and was ejected before has its
    /// ejection count lowered by one, so old ejections stop lengthening new ones.
    pub fn decay_ejections(&self) {
        if !self.is_ejected() {
            let _ = self.times_ejected.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| t.checked_sub(1));
        }
    }
}

/// Decrements the in-flight count and records the request's duration on drop.
#[derive(Debug)]
pub struct InFlightGuard {
    health: std::sync::Arc<EndpointHealth>,
    since: Instant,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.health.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.health.record_latency(self.since.elapsed());
    }
}
