//! Shared pieces of gantry's benchmarks: the generated route and service documents, the naive
//! linear-scan router that anchors the route-table benchmark, and the ratio report printed after
//! each criterion run (project rule: a benchmark reports a ratio against an anchor measured in
//! the same run, never a bare time).
//!
//! The benchmarks themselves are in `benches/` (criterion); the macro benchmark's backend is
//! `src/bin/bench-backend.rs` and its driver `macro/run.sh`.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod linear;
pub mod report;
pub mod workload;
