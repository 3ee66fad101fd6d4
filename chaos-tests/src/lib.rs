//! gantry's fault-injection harness: real `gantry` processes on loopback zone addresses, faults
//! from SIGKILL/SIGSTOP and nftables, a workload that runs throughout, and invariants judged
//! after every scenario. Needs root and nftables (`apt-get install -y nftables`).

#![forbid(unsafe_code)]

pub mod backend;
pub mod client;
pub mod cluster;
pub mod document;
pub mod env;
pub mod error;
pub mod invariants;
pub mod nft;
pub mod node;
pub mod report;
pub mod scenarios;
pub mod timeline;
pub mod workload;

pub use error::{ChaosError, Result};
pub use report::Report;
pub use scenarios::{run, seed_from_env, SCENARIOS};
