//! Load-balancing policies end to end: weighted round robin, least request, random, ring hash
//! stability on a header, and sticky cookies.

use std::time::Duration;

use crate::common::*;

async fn backends(n: usize) -> Vec<Backend> {
    let mut list = Vec::new();
    for i in 0..n {
        list.push(Backend::start(&format!("b{i}")).await);
    }
    list
}

fn service_yaml(lb: &str, extra: &str, backends: &[Backend], weights: &[u32]) -> String {
    let endpoints: Vec<String> =
        backends.iter().zip(weights).map(|(b, w)| format!("{{ address: \"{}\", weight: {w} }}", b.addr)).collect();
    format!(
        r#"
listeners: [ {{ name: public, protocol: http }} ]
services:
  - {{ name: s, lb: {lb}, endpoints: [ {} ] {extra} }}
routes: [ {{ name: all, to: [ {{ service: s }} ] }} ]
"#,
        endpoints.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_is_exact_by_weight() {
    let b = backends(3).await;
    let gantry = Gantry::start(&service_yaml("round_robin", "", &b, &[3, 2, 1])).await;
    let counts = spread(&gantry.url("/"), 600, &[]).await;
    assert_eq!(counts.get("b0"), Some(&300), "{counts:?}");
    assert_eq!(counts.get("b1"), Some(&200), "{counts:?}");
    assert_eq!(counts.get("b2"), Some(&100), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_follows_weights() {
    let b = backends(2).await;
    let gantry = Gantry::start(&service_yaml("random", "", &b, &[3, 1])).await;
    let counts = spread(&gantry.url("/"), 800, &[]).await;
    let (b0, b1) = (counts.get("b0").copied().unwrap_or(0), counts.get("b1").copied().unwrap_or(0));
    assert_eq!(b0 + b1, 800);
    // Expected 600/200; bounds are ~7 standard deviations wide.
    assert!((510..=690).contains(&b0), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_request_avoids_the_slow_endpoint() {
    let b = backends(2).await;
    b[0].set_delay(Duration::from_millis(300));
    let gantry = Gantry::start(&service_yaml("least_request", "", &b, &[1, 1])).await;
    // 40 concurrent requests: the slow endpoint holds its requests, so the fast one gets most.
    let url = gantry.url("/");
    let mut tasks = Vec::new();
    for i in 0..40 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(i * 10)).await;
            get(&url).await.expect("get").header("x-backend").unwrap_or("").to_string()
        }));
    }
    let mut slow = 0;
    for task in tasks {
        if task.await.expect("task") == "b0" {
            slow += 1;
        }
    }
    assert!(slow <= 12, "slow endpoint got {slow} of 40");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_hash_keeps_keys_and_moves_few_on_removal() {
    let b = backends(4).await;
    let yaml = service_yaml("ring_hash", ", hash_on: { header: x-user }", &b, &[1, 1, 1, 1]);
    let gantry = Gantry::start(&yaml).await;
    let url = gantry.url("/");
    let mut before = Vec::new();
    for user in 0..200 {
        let id = format!("user-{user}");
        let first = get_with(&url, &[("x-user", &id)]).await.expect("get");
        let again = get_with(&url, &[("x-user", &id)]).await.expect("get");
        assert_eq!(first.header("x-backend"), again.header("x-backend"), "same key, same endpoint");
        before.push(first.header("x-backend").unwrap_or("").to_string());
    }
    let used: std::collections::BTreeSet<_> = before.iter().collect();
    assert_eq!(used.len(), 4, "keys spread over every endpoint");

    // Remove b3 by reload: only its keys move.
    let since = now_unix_ms();
    gantry.reload(&service_yaml("ring_hash", ", hash_on: { header: x-user }", &b[..3], &[1, 1, 1]));
    assert_eq!(gantry.wait_reload_after(since).await["ok"], true);
    let mut moved_others = 0;
    let mut on_removed = 0;
    for (user, previous) in before.iter().enumerate() {
        let now = get_with(&url, &[("x-user", &format!("user-{user}"))]).await.expect("get");
        let now = now.header("x-backend").unwrap_or("").to_string();
        if previous == "b3" {
            on_removed += 1;
        } else if &now != previous {
            moved_others += 1;
        }
    }
    assert!(on_removed > 20, "b3 had {on_removed} keys");
    assert_eq!(moved_others, 0, "keys of remaining endpoints must not move");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_cookie_pins_until_unhealthy() {
    let b = backends(3).await;
    let extra = ", sticky: { cookie: stick, ttl: 1h }, health_check: { path: /health, interval: 100ms, timeout: 500ms, unhealthy: 1, healthy: 1 }";
    let gantry = Gantry::start(&service_yaml("round_robin", extra, &b, &[1, 1, 1])).await;
    let url = gantry.url("/");
    let first = get(&url).await.expect("get");
    let cookie = first.header("set-cookie").expect("sticky cookie set").to_string();
    assert!(cookie.contains("Max-Age=3600"), "{cookie}");
    let pair = cookie.split(';').next().expect("pair").to_string();
    let pinned = first.header("x-backend").expect("backend").to_string();
    for _ in 0..20 {
        let reply = get_with(&url, &[("cookie", &pair)]).await.expect("get");
        assert_eq!(reply.header("x-backend"), Some(pinned.as_str()));
        assert!(reply.header("set-cookie").is_none(), "no new cookie while pinned");
    }
    // The pinned endpoint fails its checks: the client moves and gets a new cookie.
    let index: usize = pinned[1..].parse().expect("index");
    b[index].set_health(500);
    eventually(Duration::from_secs(5), "sticky client moved", || {
        let url = url.clone();
        let pair = pair.clone();
        let pinned = pinned.clone();
        async move {
            let reply = get_with(&url, &[("cookie", &pair)]).await.expect("get");
            reply.header("x-backend") != Some(pinned.as_str()) && reply.header("set-cookie").is_some()
        }
    })
    .await;
}
