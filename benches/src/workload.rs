//! Generated config documents: a realistic 1,000-route table and services of N endpoints.
//!
//! Route `i` of [`route_document`] gets:
//! - a host: 80 % one of 30 exact hosts (`api{h}.example.com`), 10 % one of 5 wildcards
//!   (`*.t{w}.example.net`), 10 % no host;
//! - a path condition, drawn by a fixed hash of `i`: 50 % `path_prefix: /v{i%3}/res{i}/`,
//!   20 % exact `path: /exact/res{i}` (every other one limited to GET/HEAD), 10 %
//!   `path_regex: /re/res{i}/[0-9]+/detail`, 10 % a prefix plus an exact header
//!   (`x-tenant: t{i}`), 10 % a prefix plus a header regex (`x-version: v[0-9]+`).
//!
//! Every route carries its index in its paths, so the request made for route `i` by
//! [`RouteKind::request_for`] matches route `i` and no other: the table (most specific wins) and
//! the linear scan (first in file order wins) must agree, and the benchmark checks they do.

use std::fmt::Write as _;

use gantry_proto::config::{Document, LbPolicy};
use http::{HeaderMap, HeaderValue, Method};

/// Distinct exact hosts in the generated route table.
pub const EXACT_HOSTS: usize = 30;
/// Distinct wildcard suffixes in the generated route table.
pub const WILDCARD_HOSTS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKind {
    Exact(usize),
    Wildcard(usize),
    Any,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathKind {
    Prefix,
    Exact { get_only: bool },
    Regex,
    HeaderExact,
    HeaderRegex,
}

/// The shape of generated route `i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteKind {
    pub index: usize,
    pub host: HostKind,
    pub path: PathKind,
}

/// A fixed 64-bit mix (splitmix64's finaliser): spreads path kinds independently of host kinds.
fn mix(i: usize) -> u64 {
    let mut z = (i as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl RouteKind {
    pub fn of(index: usize) -> Self {
        let host = match index % 20 {
            0..=15 => HostKind::Exact(index % EXACT_HOSTS),
            16 | 17 => HostKind::Wildcard(index % WILDCARD_HOSTS),
            _ => HostKind::Any,
        };
        let path = match mix(index) % 10 {
            0..=4 => PathKind::Prefix,
            5 | 6 => PathKind::Exact { get_only: index.is_multiple_of(2) },
            7 => PathKind::Regex,
            8 => PathKind::HeaderExact,
            _ => PathKind::HeaderRegex,
        };
        Self { index, host, path }
    }

    /// A request that matches this route and no other route of the generated table.
    pub fn request_for(&self) -> OwnedRequest {
        let i = self.index;
        let host = match self.host {
            HostKind::Exact(h) => format!("api{h}.example.com"),
            HostKind::Wildcard(w) => format!("app.t{w}.example.net"),
            HostKind::Any => "any.example.org".to_string(),
        };
        let mut headers = common_headers(&host);
        let path = match self.path {
            PathKind::Prefix => format!("/v{}/res{i}/items/42", i % 3),
            PathKind::Exact { .. } => format!("/exact/res{i}"),
            PathKind::Regex => format!("/re/res{i}/12345/detail"),
            PathKind::HeaderExact => {
                headers.insert("x-tenant", HeaderValue::from_str(&format!("t{i}")).expect("header value"));
                format!("/hdr/res{i}/orders")
            }
            PathKind::HeaderRegex => {
                headers.insert("x-version", HeaderValue::from_static("v2"));
                format!("/ver/res{i}/orders")
            }
        };
        OwnedRequest { host, path, method: Method::GET, headers }
    }
}

/// Headers a browser or SDK typically sends; matching must look past them.
fn common_headers(host: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(http::header::HOST, HeaderValue::from_str(host).expect("host header"));
    headers.insert(http::header::USER_AGENT, HeaderValue::from_static("bench/1.0"));
    headers.insert(http::header::ACCEPT, HeaderValue::from_static("*/*"));
    headers.insert(http::header::ACCEPT_ENCODING, HeaderValue::from_static("gzip, br"));
    headers
}

/// A request's routing inputs, owned so a benchmark can build it once and borrow it per call.
#[derive(Clone, Debug)]
pub struct OwnedRequest {
    pub host: String,
    pub path: String,
    pub method: Method,
    pub headers: HeaderMap,
}

impl OwnedRequest {
    pub fn view(&self) -> gantry::routing::RequestView<'_> {
        gantry::routing::RequestView {
            host: &self.host,
            path: &self.path,
            query: None,
            method: &self.method,
            headers: &self.headers,
        }
    }
}

/// A request that matches no route: a known host with an unknown path, so the table probes the
/// host's bucket, the wildcard tier and the any-host tier before giving up, and the linear scan
/// checks all routes.
pub fn miss_request() -> OwnedRequest {
    let host = "api7.example.com".to_string();
    OwnedRequest {
        headers: common_headers(&host),
        host,
        path: "/v1/unknown/resource/42".to_string(),
        method: Method::GET,
    }
}

/// YAML of a document with one http listener, one service and `routes` routes.
pub fn route_document_yaml(routes: usize) -> String {
    let mut yaml = String::from(
        "listeners:\n  - { name: public, protocol: http }\n\
         services:\n  - name: backend\n    endpoints: [ { address: \"127.0.0.1:9001\" } ]\n\
         routes:\n",
    );
    for i in 0..routes {
        let kind = RouteKind::of(i);
        let mut matcher = String::new();
        match kind.host {
            HostKind::Exact(h) => write!(matcher, "host: api{h}.example.com, "),
            HostKind::Wildcard(w) => write!(matcher, "host: \"*.t{w}.example.net\", "),
            HostKind::Any => Ok(()),
        }
        .expect("write to String");
        match kind.path {
            PathKind::Prefix => write!(matcher, "path_prefix: /v{}/res{i}/", i % 3),
            PathKind::Exact { get_only: false } => write!(matcher, "path: /exact/res{i}"),
            PathKind::Exact { get_only: true } => {
                write!(matcher, "path: /exact/res{i}, methods: [GET, HEAD]")
            }
            PathKind::Regex => write!(matcher, "path_regex: \"/re/res{i}/[0-9]+/detail\""),
            PathKind::HeaderExact => write!(matcher, "path_prefix: /hdr/res{i}/, headers: {{ x-tenant: \"t{i}\" }}"),
            PathKind::HeaderRegex => {
                write!(matcher, "path_prefix: /ver/res{i}/, headers: {{ x-version: {{ regex: \"v[0-9]+\" }} }}")
            }
        }
        .expect("write to String");
        writeln!(yaml, "  - {{ name: r{i}, match: {{ {matcher} }}, to: [ {{ service: backend }} ] }}")
            .expect("write to String");
    }
    yaml
}

/// The parsed and validated document of [`route_document_yaml`].
pub fn route_document(routes: usize) -> Document {
    gantry_proto::parse_document(&route_document_yaml(routes))
        .unwrap_or_else(|e| panic!("generated route document is invalid: {e}"))
}

/// Index of the last route at or before `at` (searching backwards) whose kind satisfies `want`,
/// or the first after it when none is before.
pub fn route_near(routes: usize, at: usize, want: impl Fn(&RouteKind) -> bool) -> RouteKind {
    let at = at.min(routes.saturating_sub(1));
    (0..=at)
        .rev()
        .chain(at + 1..routes)
        .map(RouteKind::of)
        .find(|k| want(k))
        .expect("a route of the wanted kind exists")
}

/// Name of an LB policy as the config spells it.
pub fn policy_name(policy: LbPolicy) -> &'static str {
    match policy {
        LbPolicy::RoundRobin => "round_robin",
        LbPolicy::LeastRequest => "least_request",
        LbPolicy::RingHash => "ring_hash",
        LbPolicy::Random => "random",
        LbPolicy::LeastConnections => "least_connections",
    }
}

/// Every LB policy, in the order the benchmarks report them.
pub const POLICIES: [LbPolicy; 5] =
    [LbPolicy::RoundRobin, LbPolicy::LeastRequest, LbPolicy::RingHash, LbPolicy::Random, LbPolicy::LeastConnections];

/// A document with one service `svc` of `endpoints` endpoints (weight 1, spread over three
/// zones) balanced by `policy`.
pub fn service_document(policy: LbPolicy, endpoints: usize) -> Document {
    let mut yaml = format!("services:\n  - name: svc\n    lb: {}\n    endpoints:\n", policy_name(policy));
    for i in 0..endpoints {
        writeln!(yaml, "      - {{ address: \"10.0.{}.{}:8080\", zone: zone-{} }}", i / 250, i % 250 + 1, i % 3)
            .expect("write to String");
    }
    gantry_proto::parse_document(&yaml).unwrap_or_else(|e| panic!("generated service document is invalid: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linear::LinearRouter;
    use gantry::routing::RouteTable;

    #[test]
    fn table_and_linear_scan_agree_on_every_route() {
        let doc = route_document(1000);
        assert_eq!(doc.routes.len(), 1000);
        let table =
            RouteTable::compile(doc.routes.iter().enumerate().map(|(i, r)| (&r.matcher, i))).expect("table compiles");
        let linear = LinearRouter::compile(&doc.routes).expect("linear compiles");
        for i in 0..1000 {
            let request = RouteKind::of(i).request_for();
            assert_eq!(table.find(&request.view()).copied(), Some(i), "table, route {i}");
            assert_eq!(linear.find(&request.view()), Some(i), "linear, route {i}");
        }
        let miss = miss_request();
        assert_eq!(table.find(&miss.view()), None);
        assert_eq!(linear.find(&miss.view()), None);
    }

    #[test]
    fn the_mix_has_every_kind() {
        let kinds: Vec<RouteKind> = (0..1000).map(RouteKind::of).collect();
        let count = |f: &dyn Fn(&RouteKind) -> bool| kinds.iter().filter(|k| f(k)).count();
        assert_eq!(count(&|k| matches!(k.host, HostKind::Exact(_))), 800);
        assert_eq!(count(&|k| matches!(k.host, HostKind::Wildcard(_))), 100);
        assert_eq!(count(&|k| k.host == HostKind::Any), 100);
        for (name, f) in [
            ("prefix", &(|k: &RouteKind| k.path == PathKind::Prefix) as &dyn Fn(&RouteKind) -> bool),
            ("exact", &|k: &RouteKind| matches!(k.path, PathKind::Exact { .. })),
            ("regex", &|k: &RouteKind| k.path == PathKind::Regex),
            ("header", &|k: &RouteKind| matches!(k.path, PathKind::HeaderExact | PathKind::HeaderRegex)),
        ] {
            assert!(count(f) >= 50, "too few {name} routes: {}", count(f));
        }
    }

    #[test]
    fn service_documents_parse() {
        for policy in POLICIES {
            assert_eq!(service_document(policy, 100).services[0].endpoints.len(), 100);
        }
    }
}
