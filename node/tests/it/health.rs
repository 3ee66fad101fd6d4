//! Health: active checks eject and readmit, outlier detection ejects within its cap, and a
//! service with no healthy endpoint answers 503 naming the service.

use std::time::Duration;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_checks_eject_and_readmit() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let yaml = format!(
        r#"
listeners: [ {{ name: public, protocol: http }} ]
services:
  - name: s
    endpoints: [ {{ address: "{a}" }}, {{ address: "{b}" }} ]
    health_check: {{ path: /health, interval: 100ms, timeout: 500ms, unhealthy: 2, healthy: 2, expected_statuses: ["200-299"] }}
routes: [ {{ name: all, to: [ {{ service: s }} ] }} ]
"#,
        a = a.addr,
        b = b.addr
    );
    let gantry = Gantry::start(&yaml).await;
    let url = gantry.url("/");
    eventually(Duration::from_secs(5), "checks running", || async {
        a.state.health_hits.load(std::sync::atomic::Ordering::Relaxed) >= 2
    })
    .await;

    a.set_health(503);
    eventually(Duration::from_secs(5), "a ejected", || {
        let gantry = &gantry;
        async move {
            gantry
                .metrics()
                .await
                .contains(&format!("gantry_upstream_endpoint_healthy{{service=\"s\",endpoint=\"{}\"}} 0", a.addr))
        }
    })
    .await;
    let counts = spread(&url, 20, &[]).await;
    assert_eq!(counts.get("b"), Some(&20), "{counts:?}");

    a.set_health(200);
    eventually(Duration::from_secs(5), "a readmitted", || {
        let url = url.clone();
        async move { spread(&url, 10, &[]).await.contains_key("a") }
    })
    .await;
    let status = gantry.status().await;
    let endpoints = status["services"][0]["endpoints"].as_array().cloned().unwrap_or_default();
    assert!(endpoints.iter().all(|e| e["healthy"] == true), "{endpoints:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_healthy_endpoint_is_a_503_naming_the_service() {
    let a = Backend::start("a").await;
    a.set_health(500);
    let yaml = format!(
        r#"
listeners: [ {{ name: public, protocol: http }} ]
services:
  - name: reviews
    endpoints: [ {{ address: "{a}" }} ]
    health_check: {{ path: /health, interval: 100ms, timeout: 500ms, unhealthy: 1, healthy: 1 }}
routes: [ {{ name: all, to: [ {{ service: reviews }} ] }} ]
"#,
        a = a.addr
    );
    let gantry = Gantry::start(&yaml).await;
    let url = gantry.url("/");
    eventually(Duration::from_secs(5), "503", || {
        let url = url.clone();
        async move { get(&url).await.map(|r| r.status == 503).unwrap_or(false) }
    })
    .await;
    let reply = get(&url).await.expect("get");
    let body = reply.json();
    assert_eq!(body["error"]["code"], "no_healthy_endpoint");
    assert!(body["error"]["message"].as_str().unwrap_or("").contains("\"reviews\""), "{body}");
    assert_eq!(reply.header("content-type"), Some("application/json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_ejects_within_its_cap() {
    let mut backends = Vec::new();
    for i in 0..4 {
        backends.push(Backend::start(&format!("b{i}")).await);
    }
    let endpoints: Vec<String> = backends.iter().map(|b| format!("{{ address: \"{}\" }}", b.addr)).collect();
    let yaml = format!(
        r#"
listeners: [ {{ name: public, protocol: http }} ]
services:
  - name: s
    endpoints: [ {} ]
    outlier_detection: {{ consecutive_5xx: 3, consecutive_gateway_failure: 0, base_ejection_time: 1s, interval: 10s, max_ejection_percent: 50 }}
routes: [ {{ name: all, to: [ {{ service: s }} ] }} ]
"#,
        endpoints.join(", ")
    );
    let gantry = Gantry::start(&yaml).await;
    let url = gantry.url("/");
    // Three endpoints fail; with a 50% cap only two of four may be ejected.
    for b in &backends[..3] {
        b.set_status(500);
    }
    spread(&url, 40, &[]).await;
    let metrics = gantry.metrics().await;
    assert!(metrics.contains("gantry_upstream_outlier_ejections_total{service=\"s\"} 2"), "{metrics}");
    let status = gantry.status().await;
    let ejected =
        status["services"][0]["endpoints"].as_array().map(|e| e.iter().filter(|e| e["ejected"] == true).count());
    assert_eq!(ejected, Some(2));
    // The healthy endpoint is never ejected and keeps serving.
    assert!(spread(&url, 10, &[]).await.contains_key("b3"));

    // Ejection lasts base_ejection_time × times ejected: after ~1 s they are back.
    for b in &backends {
        b.set_status(200);
    }
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let counts = spread(&url, 40, &[]).await;
    assert_eq!(counts.len(), 4, "all back in rotation: {counts:?}");
}
