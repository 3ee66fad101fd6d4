//! The config document every scenario writes: the demo backends behind one zone-aware service,
//! plus a route whose name carries a writer's unique marker, so any revision fetched back from
//! any node says which write it is.

use std::net::SocketAddr;

use serde_json::Value;

/// Prefix of the marker route's name.
const MARKER_ROUTE_PREFIX: &str = "marker-";

/// One endpoint of the `web` service.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub address: SocketAddr,
    pub zone: String,
}

/// The document for `marker`. Health checks are fast (a dead backend leaves rotation within
/// about half a second) and outlier ejection catches it sooner on the request path; retries
/// try other endpoints (other zones once the local ones failed).
pub fn render(endpoints: &[Endpoint], marker: &str) -> String {
    let endpoints: String =
        endpoints.iter().map(|e| format!("      - {{ address: \"{}\", zone: {} }}\n", e.address, e.zone)).collect();
    format!(
        "listeners:
  - {{ name: public, protocol: http }}
services:
  - name: web
    lb: round_robin
    locality: prefer_same_zone
    endpoints:
{endpoints}    health_check: {{ path: /health, interval: 250ms, timeout: 500ms, unhealthy: 2, healthy: 1 }}
    outlier_detection: {{ consecutive_gateway_failure: 3, base_ejection_time: 1s, max_ejection_percent: 50 }}
routes:
  - name: web
    to: [ {{ service: web }} ]
    timeout: 3s
    retries: {{ attempts: 3, on: [connect_failure, reset, \"502\", \"503\"], per_try_timeout: 1s }}
  - name: \"{MARKER_ROUTE_PREFIX}{marker}\"
    match: {{ path: /__chaos/marker }}
    to: [ {{ service: web }} ]
"
    )
}

/// The marker a served document carries (`config` as `GET /v1/config` returns it).
pub fn marker_of(config: &Value) -> Option<String> {
    config
        .get("routes")?
        .as_array()?
        .iter()
        .filter_map(|route| route.get("name")?.as_str())
        .find_map(|name| name.strip_prefix(MARKER_ROUTE_PREFIX))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_comes_back_from_the_json_form() {
        let config = serde_json::json!({ "routes": [ { "name": "web" }, { "name": "marker-w1-7" } ] });
        assert_eq!(marker_of(&config).as_deref(), Some("w1-7"));
        assert_eq!(marker_of(&serde_json::json!({ "routes": [] })), None);
    }

    #[test]
    fn the_document_names_every_endpoint_and_the_marker() {
        let endpoints = [Endpoint { address: "127.0.1.20:8000".parse().expect("addr"), zone: "a".into() }];
        let text = render(&endpoints, "w0-1");
        assert!(text.contains("127.0.1.20:8000") && text.contains("marker-w0-1"), "{text}");
    }
}
