//! The `gantry run` process itself: settings it makes for its own sake at start.

use crate::common::*;

/// Huge pages zeroed on first touch stalled the cluster thread for milliseconds at a time, so a
/// node turns them off for itself (the kernel's per-process flag, whatever the system setting).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_node_has_transparent_huge_pages_off() {
    let gantry = Gantry::start("listeners: [ { name: public, protocol: http } ]\n").await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", gantry.pid())).expect("read /proc/PID/status");
    let thp = status.lines().find(|line| line.starts_with("THP_enabled:")).expect("a THP_enabled line");
    assert_eq!(thp.split_whitespace().nth(1), Some("0"), "{thp}");
}
