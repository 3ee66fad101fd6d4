//! Config lifecycle: a bad file at start-up exits non-zero naming every problem; SIGHUP with an
//! invalid file changes nothing; reloads under load drop nothing; listeners move with the
//! config; SIGTERM drains in-flight requests; a route's metrics and an endpoint's health gauge
//! go with the route and the endpoint.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::common::*;

fn config(backend: &Backend, listener_extra: &str) -> String {
    format!(
        r#"
listeners: [ {{ name: public, protocol: http {listener_extra} }} ]
services: [ {{ name: web, endpoints: [ {{ address: "{}" }} ] }} ]
routes: [ {{ name: all, to: [ {{ service: web }} ] }} ]
"#,
        backend.addr
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_file_at_start_exits_non_zero_with_every_problem() {
    let yaml = r#"
listeners: [ { name: public, protocol: http, address: "nope" } ]
services: [ { name: reviews, endpoints: [ { address: "127.0.0.1:1" } ] } ]
routes: [ { name: r, to: [ { service: reviws } ] } ]
"#;
    let mut gantry = Gantry::spawn(yaml, &[]);
    let code = gantry.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(code, Some(2));
    let log = gantry.log();
    assert!(log.contains("listeners[0].address: \"nope\" is not an IP:PORT address"), "{log}");
    assert!(log.contains("routes[0].to[0].service: unknown service \"reviws\""), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_reload_changes_nothing() {
    let backend = Backend::start("web").await;
    let gantry = Gantry::start(&config(&backend, "")).await;
    assert_eq!(gantry.revision().await, 1);
    let since = now_unix_ms();
    gantry.reload(&format!(
        r#"
listeners: [ {{ name: public, protocol: http }} ]
services: [ {{ name: web, endpoints: [ {{ address: "{}" }} ] }} ]
routes:
  - {{ name: all, to: [ {{ service: web }} ] }}
  - {{ name: typo, to: [ {{ service: reviws }} ], timeout: fast }}
  - {{ name: typo2, to: [ {{ service: reviws }} ] }}
"#,
        backend.addr
    ));
    let last = gantry.wait_reload_after(since).await;
    assert_eq!(last["ok"], false);
    let problems: Vec<String> = last["problems"]
        .as_array()
        .map(|p| {
            p.iter()
                .map(|p| format!("{}: {}", p["path"].as_str().unwrap_or(""), p["message"].as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    assert!(problems.iter().any(|p| p.starts_with("routes[1].timeout")), "{problems:?}");
    assert!(problems.contains(&"routes[2].to[0].service: unknown service \"reviws\"".to_string()), "{problems:?}");
    assert_eq!(gantry.revision().await, 1, "revision unchanged");
    assert_eq!(get(&gantry.url("/")).await.expect("get").status, 200, "old config still serves");
    assert!(gantry.log().contains("config reload refused"));
    assert!(gantry.metrics().await.contains("gantry_config_reloads_total{result=\"failed\"} 1"));
    // The document served is still the first one.
    let served = get(&format!("http://{}/v1/config", gantry.admin)).await.expect("config").json();
    assert_eq!(served["revision"], 1);
    assert_eq!(served["config"]["routes"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_drops_nothing() {
    let blue = Backend::start("blue").await;
    let green = Backend::start("green").await;
    let gantry = Gantry::start(&config(&blue, "")).await;
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let successes = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let url = gantry.url("/");
        let (stop, failures, successes) = (stop.clone(), failures.clone(), successes.clone());
        workers.push(tokio::spawn(async move {
            let client = client();
            // Bounded: at most 20,000 requests per worker, and stops when told.
            for _ in 0..20_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match request(&client, http::Method::GET, &url, &[], Bytes::new()).await {
                    Ok(reply) if reply.status == 200 => successes.fetch_add(1, Ordering::Relaxed),
                    other => {
                        eprintln!("failed request during reload: {other:?}");
                        failures.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    for round in 0..6 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let since = now_unix_ms();
        let next = if round % 2 == 0 { &green } else { &blue };
        gantry.reload(&config(next, ""));
        assert_eq!(gantry.wait_reload_after(since).await["ok"], true);
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("worker");
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    assert!(successes.load(Ordering::Relaxed) > 100);
    assert_eq!(gantry.revision().await, 7);
    assert!(blue.hits() > 0 && green.hits() > 0, "both revisions served traffic");
    // Last reload (round 5) pointed at blue.
    assert_eq!(get(&gantry.url("/")).await.expect("get").header("x-backend"), Some("blue"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_follow_the_config() {
    let backend = Backend::start("web").await;
    let gantry = Gantry::start(&config(&backend, "")).await;
    let moved = free_addr();
    let since = now_unix_ms();
    gantry.reload(&config(&backend, &format!(", address: \"{moved}\"")));
    assert_eq!(gantry.wait_reload_after(since).await["ok"], true);
    assert_eq!(get(&format!("http://{moved}/")).await.expect("new address").status, 200);
    eventually(Duration::from_secs(5), "old address closed", || async { get(&gantry.url("/")).await.is_err() }).await;

    // A listener on an address that is taken is refused with the listener's path.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let since = now_unix_ms();
    gantry.reload(&config(&backend, &format!(", address: \"{}\"", taken.local_addr().expect("addr"))));
    let last = gantry.wait_reload_after(since).await;
    assert_eq!(last["ok"], false);
    assert_eq!(last["problems"][0]["path"], "listeners[0].address");
    assert_eq!(get(&format!("http://{moved}/")).await.expect("still on the moved address").status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests() {
    let backend = Backend::start("web").await;
    backend.set_delay(Duration::from_millis(800));
    let mut gantry = Gantry::start_with(&config(&backend, ""), &["--drain-timeout", "10s"]).await;
    let url = gantry.url("/");
    let in_flight = tokio::spawn(async move { get(&url).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    gantry.signal("TERM");
    let reply = in_flight.await.expect("task").expect("in-flight request completes");
    assert_eq!(reply.status, 200);
    assert_eq!(gantry.wait_exit(Duration::from_secs(10)).await, Some(0));
    assert!(get(&gantry.url("/")).await.is_err(), "no longer accepting");
    assert!(gantry.log().contains("drained"));
}

/// A route removed by a new revision stops being exported, and a document that was only
/// checked (here refused by compare-and-set) registers nothing: neither leaves a series behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_of_removed_and_refused_routes_go_away() {
    let backend = Backend::start("web").await;
    let routes = |names: &[&str]| {
        let list: Vec<String> = names
            .iter()
            .map(|n| format!("{{ name: {n}, match: {{ path_prefix: /{n}/ }}, to: [ {{ service: web }} ] }}"))
            .collect();
        format!(
            "listeners: [ {{ name: public, protocol: http }} ]\nservices: [ {{ name: web, endpoints: [ {{ address: \"{}\" }} ] }} ]\nroutes: [ {} ]\n",
            backend.addr,
            list.join(", ")
        )
    };
    let gantry = Gantry::start(&routes(&["kept", "dropped"])).await;
    let token = gantry.admin_token();
    for path in ["/kept/", "/dropped/"] {
        assert_eq!(get(&gantry.url(path)).await.expect("proxied").status, 200);
    }
    let exported = gantry.metrics().await;
    assert!(exported.contains("route=\"dropped\""), "{exported}");

    let reply = gantry.put_config(&token, &routes(&["kept"])).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let revision = reply.json()["revision"].as_u64().expect("revision");
    // The answer comes at commit; the data plane switches right after.
    let node = &gantry;
    eventually(Duration::from_secs(10), "the new revision is served", || async move {
        node.serving_revision().await == revision
    })
    .await;
    let refused = gantry
        .admin_call(
            http::Method::PUT,
            &format!("/v1/config?if_revision={}", revision + 5),
            Some(&token),
            &routes(&["kept", "checked-only"]),
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.text());

    let exported = gantry.metrics().await;
    assert!(exported.contains("route=\"kept\""), "{exported}");
    assert!(!exported.contains("route=\"dropped\""), "a removed route is still exported:\n{exported}");
    assert!(!exported.contains("checked-only"), "a refused document registered its routes:\n{exported}");
}

/// An endpoint removed from a service stops being exported as an upstream health gauge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_gauge_of_a_removed_endpoint_goes_away() {
    let (kept, removed) = (Backend::start("kept").await, Backend::start("removed").await);
    let config = |endpoints: &[&Backend]| {
        let list: Vec<String> = endpoints.iter().map(|b| format!("{{ address: \"{}\" }}", b.addr)).collect();
        format!(
            "listeners: [ {{ name: public, protocol: http }} ]\nservices: [ {{ name: web, endpoints: [ {} ] }} ]\nroutes: [ {{ name: all, to: [ {{ service: web }} ] }} ]\n",
            list.join(", ")
        )
    };
    let gantry = Gantry::start(&config(&[&kept, &removed])).await;
    let gauge = |backend: &Backend| format!("endpoint=\"{}\"", backend.addr);
    let (node, removed_gauge) = (&gantry, gauge(&removed));
    eventually(Duration::from_secs(10), "both endpoints have a health gauge", || {
        let removed_gauge = removed_gauge.clone();
        async move { node.metrics().await.contains(&removed_gauge) }
    })
    .await;

    let reply = gantry.put_config(&gantry.admin_token(), &config(&[&kept])).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let revision = reply.json()["revision"].as_u64().expect("revision");
    eventually(Duration::from_secs(10), "the new revision is served", || async move {
        node.serving_revision().await == revision
    })
    .await;
    // Past a refresh of the gauges, so a stale refresher would have had the time to re-add it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let exported = gantry.metrics().await;
    assert!(exported.contains(&gauge(&kept)), "{exported}");
    assert!(!exported.contains(&removed_gauge), "a removed endpoint is still exported:\n{exported}");
}
