//! Resilience: retries go to another endpoint and stay within the budget; route and per-try
//! timeouts answer 504.

use std::time::Duration;

use bytes::Bytes;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_go_to_another_endpoint() {
    let good = Backend::start("good").await;
    let bad = Backend::start("bad").await;
    bad.set_status(503);
    let dead = free_addr(); // nothing listens: connect failure
    let yaml = format!(
        r#"
listeners: [ {{ name: public, protocol: http }} ]
services:
  - {{ name: s, endpoints: [ {{ address: "{bad}" }}, {{ address: "{dead}" }}, {{ address: "{good}" }} ] }}
routes:
  - name: all
    to: [ {{ service: s }} ]
    retries: {{ attempts: 3, on: [connect_failure, "503"], budget_percent: 100, min_retries_per_window: 1000 }}
"#,
        bad = bad.addr,
        good = good.addr
    );
    let gantry = Gantry::start(&yaml).await;
    let client = client();
    for _ in 0..30 {
        let reply = request(&client, http::Method::GET, &gantry.url("/"), &[], Bytes::new()).await.expect("get");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-backend"), Some("good"));
    }
    // A POST with a small body is buffered, so it is retried too, body intact.
    let reply =
        request(&client, http::Method::POST, &gantry.url("/echo"), &[], Bytes::from("payload")).await.expect("post");
    assert_eq!((reply.status, reply.text()), (200, "payload".to_string()));
    // Three tries, three different endpoints: `bad` saw each request at most once.
    assert!(bad.hits() <= 31, "bad saw {} hits", bad.hits());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_budget_caps_retries() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    a.set_status(503);
    b.set_status(503);
    let yaml = format!(
        r#"
listeners: [ {{ name: public, protocol: http }} ]
services:
  - {{ name: s, endpoints: [ {{ address: "{a}" }}, {{ address: "{b}" }} ] }}
routes:
  - name: all
    to: [ {{ service: s }} ]
    retries: {{ attempts: 2, on: ["503"], budget_percent: 20, min_retries_per_window: 0 }}
"#,
        a = a.addr,
        b = b.addr
    );
    let gantry = Gantry::start(&yaml).await;
    let n = 100;
    let statuses = spread(&gantry.url("/"), n, &[]).await;
    assert_eq!(statuses.values().sum::<usize>(), n);
    let upstream_requests = a.hits() + b.hits();
    let retries = upstream_requests - n as u64;
    // At most 20% of requests may be retried (within one 10 s window).
    assert!(retries <= 20, "{retries} retries for {n} requests");
    assert!(retries >= 15, "the budget allows retries: saw {retries}");
    let metrics = gantry.metrics().await;
    assert!(metrics.contains(&format!("gantry_upstream_retries_total{{route=\"all\"}} {retries}")), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_answer_504() {
    let slow = Backend::start("slow").await;
    slow.set_delay(Duration::from_secs(3));
    let fast = Backend::start("fast").await;
    let yaml = format!(
        r#"
listeners: [ {{ name: public, protocol: http }} ]
services:
  - {{ name: slow, endpoints: [ {{ address: "{slow}" }} ] }}
  - {{ name: mixed, lb: round_robin, endpoints: [ {{ address: "{slow}" }}, {{ address: "{fast}" }} ] }}
routes:
  - {{ name: slow, match: {{ path_prefix: /slow }}, to: [ {{ service: slow }} ], timeout: 300ms }}
  - name: mixed
    match: {{ path_prefix: /mixed }}
    to: [ {{ service: mixed }} ]
    timeout: 2s
    retries: {{ attempts: 2, on: [reset], per_try_timeout: 200ms, min_retries_per_window: 100 }}
"#,
        slow = slow.addr,
        fast = fast.addr
    );
    let gantry = Gantry::start(&yaml).await;
    let reply = get(&gantry.url("/slow")).await.expect("get");
    assert_eq!(reply.status, 504);
    assert_eq!(reply.json()["error"]["code"], "upstream_timeout");
    // The per-try timeout moves a slow try to the other endpoint.
    for _ in 0..4 {
        let reply = get(&gantry.url("/mixed")).await.expect("get");
        assert_eq!((reply.status, reply.header("x-backend")), (200, Some("fast")));
    }
}

/// A backend that accepts connections, reads the request and closes without answering.
async fn resetting_backend() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 1024];
                let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buffer).await;
                drop(stream);
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_are_retried_elsewhere_or_answered_502() {
    let resetting = resetting_backend().await;
    let good = Backend::start("good").await;
    let yaml = format!(
        r#"
listeners: [ {{ name: public, protocol: http }} ]
services:
  - {{ name: flaky, lb: round_robin, endpoints: [ {{ address: "{resetting}" }}, {{ address: "{good}" }} ] }}
  - {{ name: broken, endpoints: [ {{ address: "{resetting}" }} ] }}
routes:
  - {{ name: broken, match: {{ path_prefix: /broken }}, to: [ {{ service: broken }} ] }}
  - name: flaky
    to: [ {{ service: flaky }} ]
    retries: {{ attempts: 2, on: [reset], min_retries_per_window: 100 }}
"#,
        good = good.addr
    );
    let gantry = Gantry::start(&yaml).await;
    for _ in 0..6 {
        let reply = get(&gantry.url("/")).await.expect("get");
        assert_eq!((reply.status, reply.header("x-backend")), (200, Some("good")));
    }
    let reply = get(&gantry.url("/broken")).await.expect("get");
    assert_eq!(reply.status, 502);
    assert_eq!(reply.json()["error"]["code"], "upstream_reset");
}
