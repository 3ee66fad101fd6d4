//! Upstream services: their endpoints, how one is chosen for a request (subset, locality,
//! health, the LB policy, sticky cookies) and the pooled HTTP clients that reach them.

mod client;
mod endpoint;
mod h2;
mod service;

pub use client::{BoxError, PooledConnection, ProxyBody, UpstreamBody, UpstreamClient, UpstreamError};
pub use endpoint::{EndpointHealth, InFlightGuard, Outcome};
pub use service::{Endpoint, HealthRegistry, PickRequest, ServiceRuntime};
