//! Route precedence and matching tests.

use gantry_proto::config::{parse_document, Document};
use http::{HeaderMap, HeaderValue, Method};

use super::*;

fn table(yaml: &str) -> (Document, RouteTable<String>) {
    let doc = parse_document(yaml).unwrap_or_else(|e| panic!("{e}"));
    let table = RouteTable::compile(doc.routes.iter().map(|r| (&r.matcher, r.name.clone()))).expect("compiles");
    (doc, table)
}

fn find<'t>(
    table: &'t RouteTable<String>,
    method: &str,
    host: &str,
    path_and_query: &str,
    headers: &[(&'static str, &str)],
) -> Option<&'t str> {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, HeaderValue::from_str(value).expect("header value"));
    }
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    table.find(&RequestView { host, path, query, method: &method, headers: &map }).map(String::as_str)
}

const ROUTES: &str = r#"
services: [ { name: s, endpoints: [ { address: "127.0.0.1:1" } ] } ]
routes:
  - { name: any-root, to: [ { service: s } ] }
  - { name: api-prefix, match: { host: api.example.com, path_prefix: /api }, to: [ { service: s } ] }
  - { name: api-v2-prefix, match: { host: api.example.com, path_prefix: /api/v2 }, to: [ { service: s } ] }
  - { name: api-exact, match: { host: api.example.com, path: /api/health }, to: [ { service: s } ] }
  - { name: api-canary, match: { host: api.example.com, path_prefix: /api, headers: { x-canary: "true" } }, to: [ { service: s } ] }
  - { name: api-post, match: { host: api.example.com, path_prefix: /api, methods: [POST] }, to: [ { service: s } ] }
  - { name: wild, match: { host: "*.example.com", path_prefix: / }, to: [ { service: s } ] }
  - { name: wild-deep, match: { host: "*.eu.example.com" }, to: [ { service: s } ] }
  - { name: regex, match: { host: api.example.com, path_regex: "/users/[0-9]+" }, to: [ { service: s } ] }
  - { name: regex-admin, match: { host: api.example.com, path_regex: "/users/[0-9]+", headers: { x-admin: "1" } }, to: [ { service: s } ] }
  - { name: query, match: { path_prefix: /search, query: { q: { present: true }, lang: en } }, to: [ { service: s } ] }
  - { name: header-regex, match: { path_prefix: /h, headers: { x-user: { regex: "adm.*" }, x-debug: { present: false } } }, to: [ { service: s } ] }
"#;

#[test]
fn precedence() {
    let (_, t) = table(ROUTES);
    let get = |host, path| find(&t, "GET", host, path, &[]);
    assert_eq!(get("api.example.com", "/api/health"), Some("api-exact"));
    assert_eq!(get("api.example.com", "/api/v2/x"), Some("api-v2-prefix"));
    assert_eq!(get("api.example.com", "/api/x"), Some("api-prefix"));
    assert_eq!(get("API.Example.com:8080", "/api/x"), Some("api-prefix"));
    assert_eq!(get("api.example.com", "/users/42"), Some("regex"));
    assert_eq!(find(&t, "GET", "api.example.com", "/users/42", &[("x-admin", "1")]), Some("regex-admin"));
    // The regex must match the whole path; otherwise the wildcard tier answers.
    assert_eq!(get("api.example.com", "/users/42/x"), Some("wild"));
    assert_eq!(get("www.example.com", "/x"), Some("wild"));
    assert_eq!(get("a.eu.example.com", "/x"), Some("wild-deep"));
    assert_eq!(get("example.com", "/x"), Some("any-root"));
    assert_eq!(get("other.org", "/"), Some("any-root"));
}

#[test]
fn headers_methods_and_query() {
    let (_, t) = table(ROUTES);
    assert_eq!(find(&t, "GET", "api.example.com", "/api/x", &[("x-canary", "true")]), Some("api-canary"));
    assert_eq!(find(&t, "GET", "api.example.com", "/api/x", &[("x-canary", "false")]), Some("api-prefix"));
    // Methods outrank headers: both match, the route with methods wins.
    assert_eq!(find(&t, "POST", "api.example.com", "/api/x", &[("x-canary", "true")]), Some("api-post"));
    assert_eq!(find(&t, "GET", "x.org", "/search?q=rust&lang=en", &[]), Some("query"));
    assert_eq!(find(&t, "GET", "x.org", "/search?lang=en", &[]), Some("any-root"));
    assert_eq!(find(&t, "GET", "x.org", "/search?q=a%20b&lang=e%6E", &[]), Some("query"));
    assert_eq!(find(&t, "GET", "x.org", "/h", &[("x-user", "admin")]), Some("header-regex"));
    assert_eq!(find(&t, "GET", "x.org", "/h", &[("x-user", "admin"), ("x-debug", "1")]), Some("any-root"));
    assert_eq!(find(&t, "GET", "x.org", "/h", &[("x-user", "root")]), Some("any-root"));
}

#[test]
fn no_match_without_catch_all() {
    let (_, t) = table(
        r#"
services: [ { name: s, endpoints: [ { address: "127.0.0.1:1" } ] } ]
routes: [ { name: only, match: { host: a.com, path: /x }, to: [ { service: s } ] } ]
"#,
    );
    assert_eq!(find(&t, "GET", "a.com", "/x", &[]), Some("only"));
    assert_eq!(find(&t, "GET", "a.com", "/y", &[]), None);
    assert_eq!(find(&t, "GET", "b.com", "/x", &[]), None);
}

#[test]
fn thousand_routes_match_the_right_one() {
    let mut yaml = String::from("services: [ { name: s, endpoints: [ { address: \"127.0.0.1:1\" } ] } ]\nroutes:\n");
    for i in 0..1000 {
        yaml.push_str(&format!(
            "  - {{ name: r{i}, match: {{ host: h{}.example.com, path_prefix: /svc{i} }}, to: [ {{ service: s }} ] }}\n",
            i % 10
        ));
    }
    let (_, t) = table(&yaml);
    assert_eq!(t.len(), 1000);
    assert_eq!(find(&t, "GET", "h7.example.com", "/svc997/a", &[]), Some("r997"));
    // /svc99 is a prefix of /svc997 but lives under another host.
    assert_eq!(find(&t, "GET", "h9.example.com", "/svc99/x", &[]), Some("r99"));
    assert_eq!(find(&t, "GET", "h9.example.com", "/svc999x", &[]), Some("r999"));
    assert_eq!(find(&t, "GET", "h1.example.com", "/svc2", &[]), None);
}
