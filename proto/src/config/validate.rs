//! Semantic checks on a parsed document: names unique, references resolve, addresses, regexes,
//! hosts and numbers make sense. Every problem is collected; nothing stops at the first.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use super::schema::*;
use super::{ParseContext, Problem};

/// An inclusive range of HTTP statuses, e.g. 200-399.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusRange {
    pub low: u16,
    pub high: u16,
}

impl StatusRange {
    pub fn contains(&self, status: u16) -> bool {
        (self.low..=self.high).contains(&status)
    }
}

/// Parses `["200", "300-399"]`; each entry must lie within 100..=599.
pub fn parse_status_ranges(items: &[String]) -> Result<Vec<StatusRange>, String> {
    let mut ranges = Vec::with_capacity(items.len());
    for item in items {
        let (low, high) = match item.split_once('-') {
            Some((low, high)) => (low.trim(), high.trim()),
            None => (item.trim(), item.trim()),
        };
        let parse = |s: &str| -> Result<u16, String> {
            s.parse::<u16>()
                .ok()
                .filter(|code| (100..=599).contains(code))
                .ok_or_else(|| format!("\"{item}\" is not a status or range within 100-599"))
        };
        let (low, high) = (parse(low)?, parse(high)?);
        if low > high {
            return Err(format!("\"{item}\" is an empty range"));
        }
        ranges.push(StatusRange { low, high });
    }
    if ranges.is_empty() {
        return Err("needs at least one status".to_string());
    }
    Ok(ranges)
}

const RETRY_CONDITIONS: [&str; 4] = ["connect_failure", "reset", "gateway_error", "5xx"];

pub(crate) fn validate(doc: &Document, context: &ParseContext, problems: &mut Vec<Problem>) {
    let listener_names = check_listeners(doc, context, problems);
    let certificate_names = check_certificates(doc, context, problems);
    let services = check_services(doc, context, problems);
    check_listener_references(doc, context, &certificate_names, &services, problems);
    check_routes(doc, context, &listener_names, &services, problems);
}

/// Reports an empty name, or one already used in the same section.
fn check_unique_name<'a>(seen: &mut HashSet<&'a str>, name: &'a str, path: &str, problems: &mut Vec<Problem>) {
    if name.trim().is_empty() {
        problems.push(Problem::new(format!("{path}.name"), "must not be empty"));
    } else if !seen.insert(name) {
        problems.push(Problem::new(format!("{path}.name"), format!("duplicate name \"{name}\"")));
    }
}

fn check_listeners<'a>(
    doc: &'a Document,
    context: &'a ParseContext,
    problems: &mut Vec<Problem>,
) -> HashMap<&'a str, ListenerProtocol> {
    let mut seen = HashSet::new();
    let mut addresses = HashMap::new();
    let mut by_name = HashMap::new();
    for (i, listener) in doc.listeners.iter().enumerate() {
        let path = format!("listeners[{}]", context.listeners.index(i));
        check_unique_name(&mut seen, &listener.name, &path, problems);
        by_name.insert(listener.name.as_str(), listener.protocol);
        match (&listener.address, listener.protocol) {
            (Some(address), _) => match address.parse::<SocketAddr>() {
                Ok(addr) => {
                    if let Some(other) = addresses.insert(addr.to_string(), &listener.name) {
                        problems.push(Problem::new(
                            format!("{path}.address"),
                            format!("{addr} is already used by listener \"{other}\""),
                        ));
                    }
                }
                Err(_) => problems.push(Problem::new(
                    format!("{path}.address"),
                    format!("\"{address}\" is not an IP:PORT address (e.g. 0.0.0.0:8080)"),
                )),
            },
            (None, ListenerProtocol::Tcp) => {
                problems.push(Problem::new(format!("{path}.address"), "a tcp listener needs an address"))
            }
            (None, protocol) => {
                let flag = if protocol == ListenerProtocol::Http { "--http" } else { "--https" };
                if let Some(other) = addresses.insert(flag.to_string(), &listener.name) {
                    problems.push(Problem::new(
                        format!("{path}.address"),
                        format!(
                            "listener \"{other}\" already takes the node's {flag} address; give this one an address"
                        ),
                    ));
                }
            }
        }
        let limits = &listener.limits;
        for (field, value) in [
            ("max_connections", u64::from(limits.max_connections)),
            ("max_headers", u64::from(limits.max_headers)),
            ("max_body_bytes", limits.max_body_bytes),
            ("header_read_timeout", limits.header_read_timeout.get().as_millis() as u64),
            ("idle_timeout", limits.idle_timeout.get().as_millis() as u64),
        ] {
            if value == 0 {
                problems.push(Problem::new(format!("{path}.limits.{field}"), "must be above 0"));
            }
        }
        if limits.max_header_bytes < 8192 {
            problems.push(Problem::new(format!("{path}.limits.max_header_bytes"), "must be at least 8192"));
        }
    }
    by_name
}

fn check_certificates<'a>(
    doc: &'a Document,
    context: &'a ParseContext,
    problems: &mut Vec<Problem>,
) -> HashSet<&'a str> {
    let mut seen = HashSet::new();
    for (i, cert) in doc.certificates.iter().enumerate() {
        let path = format!("certificates[{}]", context.certificates.index(i));
        check_unique_name(&mut seen, &cert.name, &path, problems);
        if cert.cert_file.trim().is_empty() {
            problems.push(Problem::new(format!("{path}.cert_file"), "must not be empty"));
        }
        if cert.key_file.trim().is_empty() {
            problems.push(Problem::new(format!("{path}.key_file"), "must not be empty"));
        }
        for (j, name) in cert.server_names.iter().enumerate() {
            if let Err(message) = check_host_pattern(name) {
                problems.push(Problem::new(format!("{path}.server_names[{j}]"), message));
            }
        }
    }
    seen.extend(context.certificates.unparsed_names.iter().map(String::as_str));
    seen
}

/// What routes need to know about each service: its subsets.
struct ServiceFacts<'a> {
    subsets: HashSet<&'a str>,
}

fn check_services<'a>(
    doc: &'a Document,
    context: &'a ParseContext,
    problems: &mut Vec<Problem>,
) -> HashMap<&'a str, Option<ServiceFacts<'a>>> {
    let mut seen = HashSet::new();
    let mut facts = HashMap::new();
    for (i, service) in doc.services.iter().enumerate() {
        let path = format!("services[{}]", context.services.index(i));
        check_unique_name(&mut seen, &service.name, &path, problems);
        if service.endpoints.is_empty() {
            problems.push(Problem::new(format!("{path}.endpoints"), "needs at least one endpoint"));
        }
        let mut addresses = HashSet::new();
        for (j, endpoint) in service.endpoints.iter().enumerate() {
            let epath = format!("{path}.endpoints[{j}]");
            if let Err(message) = check_host_port(&endpoint.address) {
                problems.push(Problem::new(format!("{epath}.address"), message));
            }
            if !addresses.insert(endpoint.address.as_str()) {
                problems.push(Problem::new(
                    format!("{epath}.address"),
                    format!("duplicate endpoint \"{}\"", endpoint.address),
                ));
            }
            if !(1..=10_000).contains(&endpoint.weight) {
                problems.push(Problem::new(format!("{epath}.weight"), "must be within 1-10000"));
            }
        }
        if let Some(max) = service.max_in_flight_per_endpoint {
            if max == 0 {
                problems.push(Problem::new(format!("{path}.max_in_flight_per_endpoint"), "must be above 0"));
            }
            if service.locality != Locality::PreferSameZone {
                problems.push(Problem::new(
                    format!("{path}.max_in_flight_per_endpoint"),
                    "only applies to locality: prefer_same_zone (it decides when a zone spills, it is not a limit)",
                ));
            }
        }
        if service.hash_on.is_some() && service.lb != LbPolicy::RingHash {
            problems.push(Problem::new(format!("{path}.hash_on"), "only applies to lb: ring_hash"));
        }
        if let Some(HashOn::Header(name) | HashOn::Cookie(name)) = &service.hash_on {
            if name.trim().is_empty() {
                problems.push(Problem::new(format!("{path}.hash_on"), "names an empty header or cookie"));
            }
        }
        if let Some(sticky) = &service.sticky {
            if !is_token(&sticky.cookie) {
                problems.push(Problem::new(
                    format!("{path}.sticky.cookie"),
                    format!("\"{}\" is not a valid cookie name", sticky.cookie),
                ));
            }
            if sticky.ttl.is_some_and(|t| t.get() < std::time::Duration::from_secs(1)) {
                // Max-Age is in whole seconds; 0 would tell the browser to delete the cookie.
                problems.push(Problem::new(format!("{path}.sticky.ttl"), "must be at least 1s"));
            }
        }
        if let Some(check) = &service.health_check {
            let hpath = format!("{path}.health_check");
            if check.kind == HealthCheckKind::Http && !check.path.starts_with('/') {
                problems.push(Problem::new(format!("{hpath}.path"), "must start with /"));
            }
            if check.interval.get().is_zero() {
                problems.push(Problem::new(format!("{hpath}.interval"), "must be above 0"));
            }
            if check.timeout.get().is_zero() {
                problems.push(Problem::new(format!("{hpath}.timeout"), "must be above 0"));
            }
            if check.healthy == 0 {
                problems.push(Problem::new(format!("{hpath}.healthy"), "must be at least 1"));
            }
            if check.unhealthy == 0 {
                problems.push(Problem::new(format!("{hpath}.unhealthy"), "must be at least 1"));
            }
            if let Err(message) = parse_status_ranges(&check.expected_statuses) {
                problems.push(Problem::new(format!("{hpath}.expected_statuses"), message));
            }
        }
        if let Some(outlier) = &service.outlier_detection {
            let opath = format!("{path}.outlier_detection");
            if outlier.max_ejection_percent > 100 {
                problems.push(Problem::new(format!("{opath}.max_ejection_percent"), "must be within 0-100"));
            }
            if outlier.base_ejection_time.get().is_zero() {
                problems.push(Problem::new(format!("{opath}.base_ejection_time"), "must be above 0"));
            }
            if outlier.interval.get().is_zero() {
                problems.push(Problem::new(format!("{opath}.interval"), "must be above 0"));
            }
        }
        if service.timeouts.connect.get().is_zero() {
            problems.push(Problem::new(format!("{path}.timeouts.connect"), "must be above 0"));
        }
        if service.timeouts.idle.get().is_zero() {
            problems.push(Problem::new(format!("{path}.timeouts.idle"), "must be above 0"));
        }
        let subsets = service.endpoints.iter().filter_map(|e| e.subset.as_deref()).collect();
        facts.insert(service.name.as_str(), Some(ServiceFacts { subsets }));
    }
    for name in &context.services.unparsed_names {
        facts.entry(name.as_str()).or_insert(None);
    }
    facts
}

fn check_listener_references(
    doc: &Document,
    context: &ParseContext,
    certificates: &HashSet<&str>,
    services: &HashMap<&str, Option<ServiceFacts<'_>>>,
    problems: &mut Vec<Problem>,
) {
    for (i, listener) in doc.listeners.iter().enumerate() {
        let path = format!("listeners[{}]", context.listeners.index(i));
        match listener.protocol {
            ListenerProtocol::Https if listener.certificates.is_empty() => problems
                .push(Problem::new(format!("{path}.certificates"), "an https listener needs at least one certificate")),
            ListenerProtocol::Http | ListenerProtocol::Tcp if !listener.certificates.is_empty() => {
                problems.push(Problem::new(format!("{path}.certificates"), "only https listeners take certificates"))
            }
            _ => {}
        }
        for (j, cert) in listener.certificates.iter().enumerate() {
            if !certificates.contains(cert.as_str()) {
                problems
                    .push(Problem::new(format!("{path}.certificates[{j}]"), format!("unknown certificate \"{cert}\"")));
            }
        }
        match (&listener.protocol, &listener.service) {
            (ListenerProtocol::Tcp, None) => problems
                .push(Problem::new(format!("{path}.service"), "a tcp listener needs the service it forwards to")),
            (ListenerProtocol::Tcp, Some(service)) if !services.contains_key(service.as_str()) => {
                problems.push(Problem::new(format!("{path}.service"), format!("unknown service \"{service}\"")))
            }
            (ListenerProtocol::Http | ListenerProtocol::Https, Some(_)) => problems.push(Problem::new(
                format!("{path}.service"),
                "http and https listeners pick services through routes; only tcp listeners take a service",
            )),
            _ => {}
        }
    }
}

fn check_routes(
    doc: &Document,
    context: &ParseContext,
    listeners: &HashMap<&str, ListenerProtocol>,
    services: &HashMap<&str, Option<ServiceFacts<'_>>>,
    problems: &mut Vec<Problem>,
) {
    let mut seen = HashSet::new();
    for (i, route) in doc.routes.iter().enumerate() {
        let path = format!("routes[{}]", context.routes.index(i));
        check_unique_name(&mut seen, &route.name, &path, problems);
        for (j, listener) in route.listeners.iter().enumerate() {
            match listeners.get(listener.as_str()) {
                None if !context.listeners.unparsed_names.contains(listener) => problems
                    .push(Problem::new(format!("{path}.listeners[{j}]"), format!("unknown listener \"{listener}\""))),
                Some(ListenerProtocol::Tcp) => problems.push(Problem::new(
                    format!("{path}.listeners[{j}]"),
                    format!("listener \"{listener}\" is tcp; routes apply to http and https listeners"),
                )),
                _ => {}
            }
        }
        check_match(&route.matcher, &format!("{path}.match"), problems);
        if route.to.is_empty() {
            problems.push(Problem::new(format!("{path}.to"), "needs at least one destination"));
        }
        if !route.to.is_empty() && route.to.iter().all(|d| d.weight == 0) {
            problems.push(Problem::new(format!("{path}.to"), "weights must not all be 0"));
        }
        for (j, destination) in route.to.iter().enumerate() {
            let dpath = format!("{path}.to[{j}]");
            match services.get(destination.service.as_str()) {
                None => problems.push(Problem::new(
                    format!("{dpath}.service"),
                    format!("unknown service \"{}\"", destination.service),
                )),
                Some(Some(facts)) => {
                    if let Some(subset) = &destination.subset {
                        if !facts.subsets.contains(subset.as_str()) {
                            problems.push(Problem::new(
                                format!("{dpath}.subset"),
                                format!("service \"{}\" has no endpoint in subset \"{subset}\"", destination.service),
                            ));
                        }
                    }
                }
                Some(None) => {}
            }
        }
        if route.timeout.get().is_zero() {
            problems.push(Problem::new(format!("{path}.timeout"), "must be above 0"));
        }
        if let Some(retries) = &route.retries {
            let rpath = format!("{path}.retries");
            if !(1..=10).contains(&retries.attempts) {
                problems.push(Problem::new(format!("{rpath}.attempts"), "must be within 1-10"));
            }
            if retries.budget_percent > 100 {
                problems.push(Problem::new(format!("{rpath}.budget_percent"), "must be within 0-100"));
            }
            for (j, condition) in retries.on.iter().enumerate() {
                let is_status = condition.parse::<u16>().is_ok_and(|s| (100..=599).contains(&s));
                if !is_status && !RETRY_CONDITIONS.contains(&condition.as_str()) {
                    problems.push(Problem::new(
                        format!("{rpath}.on[{j}]"),
                        format!(
                            "unknown retry condition \"{condition}\"; expected a status such as \"503\" or one of {}",
                            RETRY_CONDITIONS.join(", ")
                        ),
                    ));
                }
            }
            if retries.per_try_timeout.is_some_and(|t| t.get().is_zero()) {
                problems.push(Problem::new(format!("{rpath}.per_try_timeout"), "must be above 0"));
            }
        }
    }
}

fn check_match(matcher: &RouteMatch, path: &str, problems: &mut Vec<Problem>) {
    if let Some(host) = &matcher.host {
        if let Err(message) = check_host_pattern(host) {
            problems.push(Problem::new(format!("{path}.host"), message));
        }
    }
    let path_kinds = [&matcher.path, &matcher.path_prefix, &matcher.path_regex].iter().filter(|p| p.is_some()).count();
    if path_kinds > 1 {
        problems.push(Problem::new(path.to_string(), "use at most one of path, path_prefix and path_regex"));
    }
    for (field, value) in [("path", &matcher.path), ("path_prefix", &matcher.path_prefix)] {
        if let Some(value) = value {
            if !value.starts_with('/') {
                problems.push(Problem::new(format!("{path}.{field}"), "must start with /"));
            }
        }
    }
    if let Some(regex) = &matcher.path_regex {
        if let Err(err) = regex::Regex::new(regex) {
            problems.push(Problem::new(format!("{path}.path_regex"), format!("invalid regex: {err}")));
        }
    }
    for (j, method) in matcher.methods.iter().enumerate() {
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            problems.push(Problem::new(
                format!("{path}.methods[{j}]"),
                format!("\"{method}\" is not an upper-case HTTP method such as GET"),
            ));
        }
    }
    for (section, rules) in [("headers", &matcher.headers), ("query", &matcher.query)] {
        for (name, rule) in rules {
            let rpath = format!("{path}.{section}.{name}");
            if section == "headers" && !is_token(name) {
                problems.push(Problem::new(rpath.clone(), "is not a valid header name"));
            }
            if let ValueMatch::Rule(ValueRule::Regex(regex)) = rule {
                if let Err(err) = regex::Regex::new(regex) {
                    problems.push(Problem::new(rpath, format!("invalid regex: {err}")));
                }
            }
        }
    }
}

/// RFC 7230 token characters: valid header and cookie names.
fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn check_host_pattern(host: &str) -> Result<(), String> {
    let bare = host.strip_prefix("*.").unwrap_or(host);
    let valid = !bare.is_empty()
        && bare.len() <= 253
        && bare.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if valid {
        Ok(())
    } else {
        Err(format!("\"{host}\" is not a lower-case host name or a *.suffix wildcard"))
    }
}

fn check_host_port(address: &str) -> Result<(), String> {
    if address.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let valid = address.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && check_host_pattern(host).is_ok()
            && !host.starts_with('*')
            && port.parse::<u16>().is_ok_and(|p| p > 0)
    });
    if valid {
        Ok(())
    } else {
        Err(format!("\"{address}\" is not HOST:PORT (e.g. 10.0.1.7:9080)"))
    }
}
