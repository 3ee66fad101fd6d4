//! Routing through a real node: host, path and header precedence, 404 for no route, and the
//! forwarding headers the upstream receives.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_precedence_and_sets_forwarding_headers() {
    let api = Backend::start("api").await;
    let canary = Backend::start("canary").await;
    let web = Backend::start("web").await;
    let yaml = format!(
        r#"
listeners: [ {{ name: public, protocol: http }} ]
services:
  - {{ name: api, endpoints: [ {{ address: "{api}" }} ] }}
  - {{ name: canary, endpoints: [ {{ address: "{canary}" }} ] }}
  - {{ name: web, endpoints: [ {{ address: "{web}" }} ] }}
routes:
  - {{ name: web, match: {{ host: "*.example.com" }}, to: [ {{ service: web }} ] }}
  - {{ name: api, match: {{ host: api.example.com, path_prefix: /v1 }}, to: [ {{ service: api }} ] }}
  - {{ name: canary, match: {{ host: api.example.com, path_prefix: /v1, headers: {{ x-canary: "true" }} }}, to: [ {{ service: canary }} ] }}
"#,
        api = api.addr,
        canary = canary.addr,
        web = web.addr
    );
    let gantry = Gantry::start(&yaml).await;
    let url = gantry.url("/v1/items");
    let host = [("host", "api.example.com")];
    assert_eq!(get_with(&url, &host).await.expect("get").header("x-backend"), Some("api"));
    let canary_headers = [("host", "api.example.com"), ("x-canary", "true")];
    assert_eq!(get_with(&url, &canary_headers).await.expect("get").header("x-backend"), Some("canary"));
    assert_eq!(get_with(&gantry.url("/other"), &host).await.expect("get").header("x-backend"), Some("web"));

    let missing = get_with(&url, &[("host", "nothing.org")]).await.expect("get");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["code"], "no_route");

    let echoed = get_with(
        &gantry.url("/headers"),
        &[
            ("host", "www.example.com"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-request-id", "req-42"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "secret"),
        ],
    )
    .await
    .expect("get");
    assert_eq!(echoed.header("x-request-id"), Some("req-42"));
    let seen = echoed.json();
    assert_eq!(seen["host"], "www.example.com", "Host is preserved");
    assert_eq!(seen["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-host"], "www.example.com");
    assert_eq!(seen["x-request-id"], "req-42");
    assert!(seen.get("x-hop").is_none(), "headers named by Connection are hop-by-hop: {seen}");
    assert!(seen.get("keep-alive").is_none());

    // Without a client id one is generated, sent upstream and returned.
    let generated = get_with(&gantry.url("/headers"), &[("host", "www.example.com")]).await.expect("get");
    let id = generated.header("x-request-id").expect("request id").to_string();
    assert_eq!(id.len(), 36);
    assert_eq!(generated.json()["x-request-id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_line_per_request_in_json() {
    let api = Backend::start("api").await;
    let yaml = format!(
        r#"
listeners: [ {{ name: public, protocol: http }} ]
services: [ {{ name: api, endpoints: [ {{ address: "{}" }} ] }} ]
routes: [ {{ name: api-route, to: [ {{ service: api }} ] }} ]
"#,
        api.addr
    );
    let gantry = Gantry::start_with(&yaml, &["--log-format", "json"]).await;
    let reply = get_with(&gantry.url("/items?x=1"), &[("x-request-id", "log-me")]).await.expect("get");
    assert_eq!(reply.status, 200);
    let mut line = None;
    eventually(std::time::Duration::from_secs(5), "access log line written", || {
        let log = gantry.log();
        line = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["target"] == "gantry::access" && v["request_id"] == "log-me");
        let found = line.is_some();
        async move { found }
    })
    .await;
    let line = line.expect("line");
    assert_eq!(line["route"], "api-route");
    assert_eq!(line["service"], "api");
    assert_eq!(line["endpoint"], api.addr.to_string());
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes"], 3);
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/items");
    assert!(line["duration_ms"].as_f64().is_some());
}
