//! `gantry demo` as the README runs it: three nodes in three zones joined by token, zone-local
//! routing, and a clean stop on Ctrl-C that leaves no process and no file behind.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_and_cleans_up() {
    let (http, admin, fabric) = (free_port(), free_port(), free_port());
    let mut demo = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["demo", "--http-port", &http.to_string(), "--admin-port", &admin.to_string()])
        .args(["--fabric-port", &fabric.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo");
    let pid = demo.id();
    // If an assertion fails, Ctrl-C the demo anyway so its nodes and files go away.
    let _interrupt_on_failure = InterruptOnDrop(pid);
    let zone_url = |octet: u8, path: &str| format!("http://127.0.{octet}.1:{http}{path}");
    let demo_dir = std::env::temp_dir().join(format!("gantry-demo-{pid}"));
    let dir = demo_dir.clone();
    eventually(Duration::from_secs(60), "demo config applied on all three nodes", || {
        let dir = dir.clone();
        async move {
            let mut served = dir.join("demo.yaml").exists();
            for octet in [1, 2, 3] {
                let url = format!("http://127.0.{octet}.1:{admin}/v1/config");
                served = served && get(&url).await.is_ok_and(|r| r.json()["revision"] == 1);
            }
            served
        }
    })
    .await;
    for (octet, zone) in [(1u8, "a"), (2, "b"), (3, "c")] {
        let mut backends = std::collections::BTreeSet::new();
        for _ in 0..4 {
            let reply = get(&zone_url(octet, "/")).await.expect("demo answers");
            assert_eq!(reply.status, 200);
            let body = reply.json();
            assert_eq!(body["zone"], zone, "zone-local routing on the zone-{zone} node: {body}");
            backends.insert(body["backend"].as_str().unwrap_or("").to_string());
        }
        assert_eq!(backends.len(), 2, "round robin over both backends of zone {zone}: {backends:?}");
    }
    let zone_b = get_with(&zone_url(1, "/"), &[("x-zone", "b")]).await.expect("zone b");
    assert_eq!(zone_b.json()["zone"], "b");
    eventually(Duration::from_secs(30), "three voters", || async move {
        let members = get(&format!("http://127.0.1.1:{admin}/v1/members")).await.map(|r| r.json()).unwrap_or_default();
        let roles: Vec<_> = members["members"].as_array().into_iter().flatten().map(|m| m["role"].clone()).collect();
        roles.len() == 3 && roles.iter().all(|r| r == "voter")
    })
    .await;

    assert!(demo_dir.exists());
    let status = Command::new("kill").args(["-INT", &pid.to_string()]).status().expect("kill");
    assert!(status.success());
    let mut exited = None;
    for _ in 0..400 {
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
    for octet in [1u8, 2, 3] {
        assert!(get(&zone_url(octet, "/")).await.is_err(), "node of zone {octet} stopped too");
    }
}

/// Sends SIGINT to the demo when the test ends early; a no-op once it has exited.
struct InterruptOnDrop(u32);

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new("kill").args(["-INT", &self.0.to_string()]).status();
            std::thread::sleep(Duration::from_secs(3));
        }
    }
}
