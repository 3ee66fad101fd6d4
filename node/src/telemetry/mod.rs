//! Logs, access logs and Prometheus metrics. Per-route metric handles are created when a
//! revision is compiled, so the request path only bumps atomics.

mod access;
mod metrics;

pub use access::{access_log_enabled, init_logging, AccessRecord, LogFormat};
pub use metrics::{ClusterView, GossipView, Metrics, RouteMetrics};
