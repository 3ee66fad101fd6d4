//! Host buckets hold hash maps for exact paths and path prefixes (probed once per distinct
//! prefix length) and a `RegexSet` for regex paths, so a lookup costs a few hash probes however
//! many routes there are.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use gantry_proto::config::{RouteMatch, ValueMatch, ValueRule};
use http::{HeaderMap, Method};
use regex::{Regex, RegexSet};

/// Hash maps keyed by host or path, hashed with [`KeyHasher`].
type KeyMap<V> = HashMap<String, V, BuildHasherDefault<KeyHasher>>;

/// FNV-1a with a splitmix64 finaliser for the table's keys. A lookup hashes one short string
/// (a host, a path prefix); SipHash's set-up and finalisation cost more than that. It needs no
/// key: the tables are built from the config, and requests only look keys up, so they cannot
/// crowd a bucket.
#[derive(Clone, Copy, Debug)]
struct KeyHasher(u64);

impl Default for KeyHasher {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The parts of a request that routing reads.
pub struct RequestView<'a> {
    pub host: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
}

impl<'a> RequestView<'a> {
    /// Builds the view from an HTTP request (HTTP/1 `Host` or HTTP/2 `:authority`).
    pub fn of<B>(request: &'a http::Request<B>) -> Self {
        let host = request
            .uri()
            .host()
            .or_else(|| request.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()))
            .unwrap_or("");
        Self {
            host,
            path: request.uri().path(),
            query: request.uri().query(),
            method: request.method(),
            headers: request.headers(),
        }
    }
}

#[derive(Debug)]
enum ValueCondition {
    Exact(String),
    Regex(Regex),
    Present(bool),
}

impl ValueCondition {
    fn compile(rule: &ValueMatch) -> Result<Self, regex::Error> {
        Ok(match rule {
            ValueMatch::Exact(v) | ValueMatch::Rule(ValueRule::Exact(v)) => Self::Exact(v.clone()),
            ValueMatch::Rule(ValueRule::Regex(r)) => Self::Regex(Regex::new(&format!("^(?:{r})$"))?),
            ValueMatch::Rule(ValueRule::Present(p)) => Self::Present(*p),
        })
    }

    fn accepts(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (Self::Present(want), v) => v.is_some() == *want,
            (Self::Exact(e), Some(v)) => e == v,
            (Self::Regex(r), Some(v)) => r.is_match(v),
            (_, None) => false,
        }
    }
}

/// The conditions checked after host and path narrowed the candidates.
#[derive(Debug)]
struct Conditions {
    methods: Vec<Method>,
    headers: Vec<(http::HeaderName, ValueCondition)>,
    query: Vec<(String, ValueCondition)>,
}

impl Conditions {
    fn accepts(&self, request: &RequestView<'_>) -> bool {
        if !self.methods.is_empty() && !self.methods.contains(request.method) {
            return false;
        }
        for (name, condition) in &self.headers {
            let value = request.headers.get(name).and_then(|v| v.to_str().ok());
            if !condition.accepts(value) {
                return false;
            }
        }
        if !self.query.is_empty() {
            for (name, condition) in &self.query {
                let value = request.query.and_then(|q| query_value(q, name));
                if !condition.accepts(value.as_deref()) {
                    return false;
                }
            }
        }
        true
    }

    /// Sort key: more specific first (methods, then headers, then query).
    fn specificity(&self) -> (bool, usize, usize) {
        (!self.methods.is_empty(), self.headers.len(), self.query.len())
    }
}

#[derive(Debug, Default)]
struct HostBucket {
    exact: KeyMap<Vec<u32>>,
    prefixes: KeyMap<Vec<u32>>,
    /// Distinct prefix lengths, longest first.
    prefix_lengths: Vec<usize>,
    regex_set: Option<RegexSet>,
    regex_routes: Vec<u32>,
}

impl HostBucket {
    fn find(&self, request: &RequestView<'_>, conditions: &[Conditions]) -> Option<u32> {
        let pass = |candidates: &[u32]| candidates.iter().copied().find(|&i| conditions[i as usize].accepts(request));
        if let Some(found) = self.exact.get(request.path).and_then(|c| pass(c)) {
            return Some(found);
        }
        for &len in &self.prefix_lengths {
            if len > request.path.len() || !request.path.is_char_boundary(len) {
                continue;
            }
            if let Some(found) = self.prefixes.get(&request.path[..len]).and_then(|c| pass(c)) {
                return Some(found);
            }
        }
        let set = self.regex_set.as_ref()?;
        set.matches(request.path)
            .into_iter()
            .map(|i| self.regex_routes[i])
            .find(|&i| conditions[i as usize].accepts(request))
    }
}

/// A compiled route table over routes carrying a payload `T` (the route's runtime).
#[derive(Debug)]
pub struct RouteTable<T> {
    payloads: Vec<T>,
    conditions: Vec<Conditions>,
    exact_hosts: KeyMap<HostBucket>,
    /// Keyed by the suffix with its leading dot (`.example.com`).
    wildcard_hosts: KeyMap<HostBucket>,
    any_host: HostBucket,
}

impl<T> RouteTable<T> {
    /// Compiles routes in file order. Matchers were validated with the document, so a regex
    /// error here means a bug; it is still returned rather than panicking.
    pub fn compile<'a>(routes: impl IntoIterator<Item = (&'a RouteMatch, T)>) -> Result<Self, regex::Error> {
        let mut payloads = Vec::new();
        let mut conditions = Vec::new();
        let mut matchers = Vec::new();
        for (matcher, payload) in routes {
            conditions.push(Conditions {
                methods: matcher.methods.iter().filter_map(|m| Method::from_bytes(m.as_bytes()).ok()).collect(),
                headers: matcher
                    .headers
                    .iter()
                    .filter_map(|(name, rule)| {
                        let name = http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).ok()?;
                        Some(ValueCondition::compile(rule).map(|c| (name, c)))
                    })
                    .collect::<Result<_, _>>()?,
                query: matcher
                    .query
                    .iter()
                    .map(|(name, rule)| ValueCondition::compile(rule).map(|c| (name.clone(), c)))
                    .collect::<Result<_, _>>()?,
            });
            payloads.push(payload);
            matchers.push(matcher);
        }

        // Group route indices per host tier, keeping file order inside each group.
        let mut exact_hosts: HashMap<String, Vec<u32>> = HashMap::new();
        let mut wildcard_hosts: HashMap<String, Vec<u32>> = HashMap::new();
        let mut any_host = Vec::new();
        for (i, matcher) in matchers.iter().enumerate() {
            let i = i as u32;
            match matcher.host.as_deref().map(str::to_ascii_lowercase) {
                None => any_host.push(i),
                Some(host) => match host.strip_prefix('*') {
                    Some(suffix) => wildcard_hosts.entry(suffix.to_string()).or_default().push(i),
                    None => exact_hosts.entry(host).or_default().push(i),
                },
            }
        }
        let build = |indices: &[u32]| build_bucket(indices, &matchers, &conditions);
        Ok(Self {
            exact_hosts: exact_hosts
                .iter()
                .map(|(h, idx)| Ok((h.clone(), build(idx)?)))
                .collect::<Result<_, regex::Error>>()?,
            wildcard_hosts: wildcard_hosts
                .iter()
                .map(|(h, idx)| Ok((h.clone(), build(idx)?)))
                .collect::<Result<_, regex::Error>>()?,
            any_host: build(&any_host)?,
            payloads,
            conditions,
        })
    }

    pub fn len(&self) -> usize {
        self.payloads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.payloads.is_empty()
    }

    /// The most specific route accepting the request, if any.
    pub fn find(&self, request: &RequestView<'_>) -> Option<&T> {
        let host = normalize_host(request.host);
        if let Some(found) = self.exact_hosts.get(host.as_ref()).and_then(|b| b.find(request, &self.conditions)) {
            return self.payloads.get(found as usize);
        }
        if !self.wildcard_hosts.is_empty() {
            // Longest suffix first: the suffix starting at the first dot is the longest.
            for (dot, _) in host.match_indices('.') {
                if let Some(found) =
                    self.wildcard_hosts.get(&host[dot..]).and_then(|b| b.find(request, &self.conditions))
                {
                    return self.payloads.get(found as usize);
                }
            }
        }
        self.any_host.find(request, &self.conditions).and_then(|found| self.payloads.get(found as usize))
    }
}

fn build_bucket(
    indices: &[u32],
    matchers: &[&RouteMatch],
    conditions: &[Conditions],
) -> Result<HostBucket, regex::Error> {
    let mut bucket = HostBucket::default();
    let mut regexes = Vec::new();
    for &i in indices {
        let matcher = matchers[i as usize];
        if let Some(path) = &matcher.path {
            bucket.exact.entry(path.clone()).or_default().push(i);
        } else if let Some(regex) = &matcher.path_regex {
            regexes.push((regex.as_str(), i));
        } else {
            let prefix = matcher.path_prefix.clone().unwrap_or_else(|| "/".to_string());
            bucket.prefixes.entry(prefix).or_default().push(i);
        }
    }
    // Within one path key: most specific conditions first, then file order (stable sort).
    for group in bucket.exact.values_mut().chain(bucket.prefixes.values_mut()) {
        group.sort_by(|a, b| conditions[*b as usize].specificity().cmp(&conditions[*a as usize].specificity()));
    }
    // Regex routes keep file order, except that routes with the same regex are ordered by
    // specificity like the other path kinds: group by the regex's first appearance.
    let first_seen = |pattern: &str| regexes.iter().position(|(p, _)| *p == pattern).unwrap_or(0);
    let mut ordered: Vec<(usize, &str, u32)> = regexes.iter().map(|&(p, i)| (first_seen(p), p, i)).collect();
    ordered.sort_by(|a, b| {
        a.0.cmp(&b.0).then_with(|| conditions[b.2 as usize].specificity().cmp(&conditions[a.2 as usize].specificity()))
    });
    bucket.regex_routes = ordered.iter().map(|&(_, _, i)| i).collect();
    let patterns: Vec<String> = ordered.iter().map(|(_, p, _)| format!("^(?:{p})$")).collect();
    let mut lengths: Vec<usize> = bucket.prefixes.keys().map(String::len).collect();
    lengths.sort_unstable_by(|a, b| b.cmp(a));
    lengths.dedup();
    bucket.prefix_lengths = lengths;
    if !patterns.is_empty() {
        bucket.regex_set = Some(RegexSet::new(&patterns)?);
    }
    Ok(bucket)
}

/// Lower-cases the host and drops a port (`API.example.com:8080` → `api.example.com`).
fn normalize_host(host: &str) -> Cow<'_, str> {
    let without_port = if host.starts_with('[') {
        host.split_once(']').map_or(host, |(h, _)| &host[..h.len() + 1])
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    let without_dot = without_port.strip_suffix('.').unwrap_or(without_port);
    if without_dot.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(without_dot.to_ascii_lowercase())
    } else {
        Cow::Borrowed(without_dot)
    }
}

/// The first value of query parameter `name`, percent-decoded.
fn query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key) == name).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
