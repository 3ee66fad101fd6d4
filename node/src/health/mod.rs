//! Endpoint health: active checks (HTTP or TCP, on an interval, with thresholds) run by
//! background tasks that are replaced on every config revision, and the periodic decay of
//! outlier-ejection counts. Passive ejection itself happens on the request path
//! (`upstream::ServiceRuntime::record_outcome`).

mod active;

pub use active::{check_once, HealthSupervisor};
