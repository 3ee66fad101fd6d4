//! The cluster benchmark (`src/bin/cluster-bench.rs`, driven by `cluster/run.sh`): a local
//! three-node gantry cluster against a three-member etcd 3.4 cluster, side by side in one run,
//! on loopback, through the same HTTP/1.1 client.
//!
//! - [`workload`]: the config document of an exact byte size (gantry's `PUT /v1/config` body,
//!   and etcd's value), unique per write;
//! - [`http`]: the one hyper client both sides are driven with;
//! - [`process`]: child processes we start, killed by pid (SIGKILL) on drop or on purpose;
//! - [`subject`]: a cluster of either kind: start, leader, put, served revision, kill, restart;
//! - [`measure`]: commit latency, leader failover and commit-to-applied;
//! - [`stats`]: percentiles and the numbers the report prints.

pub mod http;
pub mod measure;
pub mod process;
pub mod stats;
pub mod subject;
pub mod workload;
