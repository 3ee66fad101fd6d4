//! Integration tests: each starts real `gantry` processes and real backends on loopback,
//! in one test binary (one link step instead of one per file). Modules are named by topic.

mod common;

mod cluster;

mod demo;
mod examples;
mod health;
mod lb_policies;
mod limits;
mod process;
mod protocols;
mod reload;
mod resilience;
mod routing;
