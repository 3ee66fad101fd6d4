//! The scenario clock and its fault timeline: every fault, heal and notable observation with
//! its time since the scenario started, printed as it happens and kept for the report.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Most events kept: a nemesis run makes a few dozen; beyond this they are counted, not kept.
const EVENTS_MAX: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A fault starts.
    Fault,
    /// A fault ends.
    Heal,
    /// Something measured or noticed (a new leader, convergence).
    Observe,
    /// Harness steps (cluster up, workload started).
    Step,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub t_ms: u64,
    pub kind: EventKind,
    pub what: String,
}

#[derive(Debug)]
pub struct Timeline {
    scenario: String,
    start: Instant,
    events: Mutex<Vec<Event>>,
    dropped: std::sync::atomic::AtomicU64,
}

impl Timeline {
    pub fn new(scenario: &str) -> Timeline {
        Timeline {
            scenario: scenario.to_string(),
            start: Instant::now(),
            events: Mutex::new(Vec::new()),
            dropped: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    /// Milliseconds since the scenario started.
    pub fn now_ms(&self) -> u64 {
        self.ms_at(Instant::now())
    }

    pub fn ms_at(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_millis() as u64
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Records and prints an event; returns its time.
    pub fn record(&self, kind: EventKind, what: impl Into<String>) -> u64 {
        let t_ms = self.now_ms();
        let what = what.into();
        println!(
            "[{} +{:>6.2}s] {:<7} {what}",
            self.scenario,
            t_ms as f64 / 1000.0,
            format!("{kind:?}").to_lowercase()
        );
        let mut events = self.events.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if events.len() < EVENTS_MAX {
            events.push(Event { t_ms, kind, what });
        } else {
            self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        t_ms
    }

    pub fn fault(&self, what: impl Into<String>) -> u64 {
        self.record(EventKind::Fault, what)
    }

    pub fn heal(&self, what: impl Into<String>) -> u64 {
        self.record(EventKind::Heal, what)
    }

    pub fn observe(&self, what: impl Into<String>) -> u64 {
        self.record(EventKind::Observe, what)
    }

    pub fn step(&self, what: impl Into<String>) -> u64 {
        self.record(EventKind::Step, what)
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}
