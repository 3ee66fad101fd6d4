//! The anchor of the route-table benchmark: the naive router, which walks the routes in file order
//! and checks host, path, methods and headers one by one, returning the first route that
//! accepts the request. It is what a table must beat; it has the same per-route work as the
//! table (pre-compiled regexes, pre-parsed header names, lower-cased hosts) so the ratio
//! measures the indexing, not the set-up.

use gantry::routing::RequestView;
use gantry_proto::config::{Route, ValueMatch, ValueRule};
use http::{HeaderName, Method};
use regex::Regex;

enum HostRule {
    Any,
    Exact(String),
    /// `*.example.com` kept as `.example.com`.
    Suffix(String),
}

enum PathRule {
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

enum ValueRuleC {
    Exact(String),
    Regex(Regex),
    Present(bool),
}

struct LinearRoute {
    host: HostRule,
    path: PathRule,
    methods: Vec<Method>,
    headers: Vec<(HeaderName, ValueRuleC)>,
}

/// Routes in file order; `find` returns the index of the first that matches.
pub struct LinearRouter {
    routes: Vec<LinearRoute>,
}

fn anchored(regex: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{regex})$"))
}

impl LinearRouter {
    /// Compiles the routes' matchers (query conditions are not supported: the generated table
    /// has none).
    pub fn compile(routes: &[Route]) -> Result<Self, regex::Error> {
        let mut compiled = Vec::with_capacity(routes.len());
        for route in routes {
            let m = &route.matcher;
            let host = match m.host.as_deref().map(str::to_ascii_lowercase) {
                None => HostRule::Any,
                Some(h) => match h.strip_prefix('*') {
                    Some(suffix) => HostRule::Suffix(suffix.to_string()),
                    None => HostRule::Exact(h),
                },
            };
            let path = match (&m.path, &m.path_prefix, &m.path_regex) {
                (Some(p), _, _) => PathRule::Exact(p.clone()),
                (_, _, Some(r)) => PathRule::Regex(anchored(r)?),
                (_, Some(p), _) => PathRule::Prefix(p.clone()),
                (None, None, None) => PathRule::Prefix("/".to_string()),
            };
            let methods = m.methods.iter().filter_map(|name| Method::from_bytes(name.as_bytes()).ok()).collect();
            let mut headers = Vec::with_capacity(m.headers.len());
            for (name, rule) in &m.headers {
                let Ok(name) = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) else {
                    continue;
                };
                let rule = match rule {
                    ValueMatch::Exact(v) | ValueMatch::Rule(ValueRule::Exact(v)) => ValueRuleC::Exact(v.clone()),
                    ValueMatch::Rule(ValueRule::Regex(r)) => ValueRuleC::Regex(anchored(r)?),
                    ValueMatch::Rule(ValueRule::Present(p)) => ValueRuleC::Present(*p),
                };
                headers.push((name, rule));
            }
            compiled.push(LinearRoute { host, path, methods, headers });
        }
        Ok(Self { routes: compiled })
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Index of the first route (file order) that accepts the request.
    pub fn find(&self, request: &RequestView<'_>) -> Option<usize> {
        // Same host normalisation as the table: drop a port and a trailing dot; compare
        // case-insensitively instead of allocating a lower-cased copy.
        let host = request.host.rsplit_once(':').map_or(request.host, |(h, _)| h);
        let host = host.strip_suffix('.').unwrap_or(host);
        self.routes.iter().position(|route| route.accepts(host, request))
    }
}

impl LinearRoute {
    fn accepts(&self, host: &str, request: &RequestView<'_>) -> bool {
        let host_ok = match &self.host {
            HostRule::Any => true,
            HostRule::Exact(h) => h.eq_ignore_ascii_case(host),
            HostRule::Suffix(s) => {
                host.len() > s.len()
                    && host.is_char_boundary(host.len() - s.len())
                    && host[host.len() - s.len()..].eq_ignore_ascii_case(s)
            }
        };
        if !host_ok {
            return false;
        }
        let path_ok = match &self.path {
            PathRule::Exact(p) => request.path == p,
            PathRule::Prefix(p) => request.path.starts_with(p.as_str()),
            PathRule::Regex(r) => r.is_match(request.path),
        };
        if !path_ok {
            return false;
        }
        if !self.methods.is_empty() && !self.methods.contains(request.method) {
            return false;
        }
        self.headers.iter().all(|(name, rule)| {
            let value = request.headers.get(name).and_then(|v| v.to_str().ok());
            match (rule, value) {
                (ValueRuleC::Present(want), v) => v.is_some() == *want,
                (ValueRuleC::Exact(e), Some(v)) => e == v,
                (ValueRuleC::Regex(r), Some(v)) => r.is_match(v),
                (_, None) => false,
            }
        })
    }
}
