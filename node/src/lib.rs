//! The gantry node: one binary that is load balancer, API gateway and mesh proxy.
//! A request's path through the code follows the folders: `proxy` (listeners, HTTP, TCP) →
//! `routing` (route table) → `upstream` (services, endpoints, pools) with `lb` (picking) and
//! `health` (active checks, outlier ejection); `dataplane` compiles and swaps config snapshots;
//! `admin` serves the operator API and metrics; `cli` is the command line.
#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod cluster;
pub mod dataplane;
pub mod demo;
pub mod fabric;
pub mod gossip;
pub mod health;
pub mod lb;
pub mod proxy;
pub mod routing;
pub mod telemetry;
pub mod upstream;
