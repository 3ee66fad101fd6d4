//! `gantry demo` as the README runs it: it serves, balances over its backends, and cleans up
//! after Ctrl-C.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_and_cleans_up() {
    let http = free_addr();
    let admin = free_addr();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args([
            "demo",
            "--http",
            &http.to_string(),
            "--admin",
            &admin.to_string(),
            "--fabric",
            &free_addr().to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo");
    let pid = demo.id();
    eventually(Duration::from_secs(20), "demo ready", || async move {
        get(&format!("http://{admin}/readyz")).await.map(|r| r.status == 200).unwrap_or(false)
    })
    .await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let reply = get(&format!("http://{http}/")).await.expect("demo answers");
        assert_eq!(reply.status, 200);
        let body = reply.json();
        assert_eq!(body["zone"], "a", "zone-local routing: {body}");
        seen.insert(body["backend"].as_str().unwrap_or("").to_string());
    }
    assert_eq!(seen.len(), 2, "round robin over both zone-a backends: {seen:?}");
    let zone_b = get_with(&format!("http://{http}/"), &[("x-zone", "b")]).await.expect("zone b");
    assert_eq!(zone_b.json()["zone"], "b");

    let demo_dir = std::env::temp_dir().join(format!("gantry-demo-{pid}"));
    assert!(demo_dir.exists());
    let status = Command::new("kill").args(["-INT", &pid.to_string()]).status().expect("kill");
    assert!(status.success());
    let mut exited = None;
    for _ in 0..200 {
        if let Ok(Some(status)) = demo.try_wait() {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if exited.is_none() {
        let _ = demo.kill();
        let _ = demo.wait();
    }
    assert!(exited.is_some_and(|s| s.success()), "demo exits cleanly on Ctrl-C: {exited:?}");
    assert!(!demo_dir.exists(), "demo removed its files");
    assert!(get(&format!("http://{http}/")).await.is_err(), "the node stopped too");
}
