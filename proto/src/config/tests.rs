//! Parser and validator tests: every problem is reported with its path, and valid documents
//! round-trip through YAML and JSON alike.

use super::*;

const VALID: &str = r#"
listeners:
  - { name: public, protocol: http, address: "0.0.0.0:8080" }
  - { name: db, protocol: tcp, address: "0.0.0.0:5433", service: postgres }
services:
  - name: reviews
    lb: least_request
    endpoints:
      - { address: "10.0.1.7:9080", zone: us-east-1a, subset: v1 }
      - { address: "reviews.internal:9080", zone: us-east-1b, subset: v2, weight: 3 }
    health_check: { path: /health, interval: 5s, timeout: 1s, unhealthy: 3, healthy: 2 }
  - name: postgres
    lb: least_connections
    endpoints: [ { address: "10.0.3.1:5432" } ]
    health_check: { type: tcp }
routes:
  - name: reviews-canary
    match: { host: api.example.com, path_prefix: /reviews, headers: { x-canary: "true" } }
    to: [ { service: reviews, subset: v2 } ]
  - name: reviews
    match: { host: "*.example.com", path_prefix: /reviews, methods: [GET, POST], query: { v: { regex: "[0-9]+" } } }
    to: [ { service: reviews, subset: v1, weight: 90 }, { service: reviews, subset: v2, weight: 10 } ]
    timeout: 2s
    retries: { attempts: 3, on: [connect_failure, "502", "503", gateway_error], budget_percent: 20 }
"#;

fn problems_of(text: &str) -> Vec<String> {
    match parse_document(text) {
        Ok(_) => Vec::new(),
        Err(err) => err.problems.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn valid_document_parses_with_defaults() {
    let doc = parse_document(VALID).expect("valid document");
    assert_eq!(doc.listeners.len(), 2);
    assert_eq!(doc.services[0].lb, LbPolicy::LeastRequest);
    assert_eq!(doc.services[0].endpoints[0].weight, 1);
    assert_eq!(doc.services[0].endpoints[1].weight, 3);
    assert_eq!(doc.routes[1].retries.as_ref().map(|r| r.attempts), Some(3));
    assert_eq!(doc.routes[0].timeout, HumanDuration::from_secs(15));
    assert!(doc.routes[0].preserve_host);
    assert_eq!(doc.routes[0].matcher.headers.get("x-canary"), Some(&ValueMatch::Exact("true".into())));
    assert_eq!(doc.listeners[0].limits, ListenerLimits::default());
}

#[test]
fn json_is_accepted() {
    let doc = parse_document(VALID).expect("valid");
    let json = serde_json::to_string(&doc).expect("serializes");
    assert_eq!(parse_document(&json), Ok(doc));
}

#[test]
fn empty_document_is_valid() {
    assert_eq!(parse_document(""), Ok(Document::default()));
    assert_eq!(parse_document("{}"), Ok(Document::default()));
}

#[test]
fn every_problem_is_named_by_path() {
    let text = r#"
listeners:
  - { name: public, protocol: http, address: "0.0.0.0:99999" }
  - { name: public, protocol: htp, address: "0.0.0.0:8080" }
services:
  - name: reviews
    endpoints: [ { address: "nohost" } ]
routes:
  - { name: a, to: [ { service: reviews } ] }
  - { name: b, to: [ { service: reviews } ] }
  - { name: c, match: { path: nope }, to: [ { service: reviws } ], timeout: 5 }
  - { name: d, match: { path_regex: "(" }, to: [ { service: reviews, subset: v9 } ] }
"#;
    let problems = problems_of(text);
    let expect = [
        "listeners[0].address: \"0.0.0.0:99999\" is not an IP:PORT address",
        "listeners[1].protocol: unknown variant `htp`",
        "services[0].endpoints[0].address: \"nohost\" is not HOST:PORT",
        "routes[2].timeout: invalid type: integer `5`, expected a duration",
        "routes[3].match.path_regex: invalid regex",
        "routes[3].to[0].subset: service \"reviews\" has no endpoint in subset \"v9\"",
    ];
    for e in expect {
        assert!(problems.iter().any(|p| p.starts_with(e)), "missing {e:?} in {problems:#?}");
    }
    // routes[2] failed to parse (bad timeout), so its unknown service is not reached; the
    // other routes are still checked, under their index in the file.
    assert_eq!(problems.len(), expect.len(), "{problems:#?}");
}

#[test]
fn unknown_service_is_reported_at_its_file_index() {
    let text = r#"
services: [ { name: reviews, endpoints: [ { address: "127.0.0.1:1" } ] } ]
routes:
  - { name: a, to: [ { service: reviews } ], bogus: 1 }
  - { name: b, to: [ { service: reviews } ] }
  - { name: c, to: [ { service: reviws } ] }
"#;
    let problems = problems_of(text);
    assert!(problems.iter().any(|p| p.starts_with("routes[0].bogus: unknown field `bogus`")), "{problems:#?}");
    assert!(problems.contains(&"routes[2].to[0].service: unknown service \"reviws\"".to_string()), "{problems:#?}");
}

#[test]
fn cross_references_are_checked() {
    let text = r#"
listeners:
  - { name: s, protocol: https, address: "127.0.0.1:8443" }
  - { name: t, protocol: tcp, address: "127.0.0.1:5433" }
  - { name: h, protocol: http, address: "127.0.0.1:8080", service: x, certificates: [nope] }
routes:
  - { name: r, listeners: [t, missing], to: [ { service: x } ] }
unknown_section: 1
"#;
    let problems = problems_of(text);
    for e in [
        "unknown_section: unknown section",
        "listeners[0].certificates: an https listener needs at least one certificate",
        "listeners[1].service: a tcp listener needs the service it forwards to",
        "listeners[2].certificates: only https listeners take certificates",
        "listeners[2].certificates[0]: unknown certificate \"nope\"",
        "listeners[2].service: http and https listeners pick services through routes",
        "routes[0].listeners[0]: listener \"t\" is tcp",
        "routes[0].listeners[1]: unknown listener \"missing\"",
        "routes[0].to[0].service: unknown service \"x\"",
    ] {
        assert!(problems.iter().any(|p| p.starts_with(e)), "missing {e:?} in {problems:#?}");
    }
}

#[test]
fn zone_saturation_needs_prefer_same_zone_and_a_positive_bound() {
    let text = r#"
services:
  - { name: a, max_in_flight_per_endpoint: 0, locality: prefer_same_zone, endpoints: [ { address: "10.0.0.1:80" } ] }
  - { name: b, max_in_flight_per_endpoint: 5, endpoints: [ { address: "10.0.0.1:80" } ] }
  - { name: c, max_in_flight_per_endpoint: 5, locality: prefer_same_zone, endpoints: [ { address: "10.0.0.1:80" } ] }
"#;
    let problems = problems_of(text);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].starts_with("services[0].max_in_flight_per_endpoint: must be above 0"), "{problems:#?}");
    assert!(
        problems[1].starts_with("services[1].max_in_flight_per_endpoint: only applies to locality"),
        "{problems:#?}"
    );
}

#[test]
fn garbage_is_a_clear_error_not_a_panic() {
    for text in ["[1, 2", "- a\n- b", "listeners: 3", ":\n  :\n -", "\u{0}\u{1}", "routes: [ {name: 1} ]"] {
        let err = parse_document(text).expect_err(text);
        assert!(!err.problems.is_empty());
    }
}

#[test]
fn status_ranges() {
    let ranges = parse_status_ranges(&["200".into(), "300-399".into()]).expect("valid");
    assert!(!ranges.iter().any(|r| r.contains(204)));
    assert!(ranges.iter().any(|r| r.contains(302)));
    assert!(parse_status_ranges(&["600".into()]).is_err());
    assert!(parse_status_ranges(&["399-200".into()]).is_err());
    assert!(parse_status_ranges(&[]).is_err());
}
