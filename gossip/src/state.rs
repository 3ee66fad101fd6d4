//! The typed node state every node publishes, and its mapping onto chitchat's string keys. The
//! key names live here and nowhere else: the rest of gantry sees only [`NodeState`].
//!
//! Values are small text encodings (not JSON) because every byte is gossiped to every node; a
//! value that fails to parse reads as the field's default, never as an error or a panic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::GossipError;

/// Chitchat keys. One key per field that changes on its own, so that a load update gossips a
/// few bytes, not the whole state.
mod keys {
    pub const NAME: &str = "name";
    pub const ZONE: &str = "zone";
    pub const ADDR_FABRIC: &str = "addr.fabric";
    pub const ADDR_ADMIN: &str = "addr.admin";
    pub const ADDR_HTTP: &str = "addr.http";
    pub const VERSION: &str = "version";
    pub const RAFT_ROLE: &str = "raft.role";
    pub const LOAD: &str = "load";
    pub const CONFIG_REVISION: &str = "config.revision";
    pub const DRAINING: &str = "draining";
    /// `health:<service byte length>:<service><endpoint>`: length-prefixed so that any
    /// characters are allowed in either part.
    pub const HEALTH_PREFIX: &str = "health:";
    /// `zload:<service byte length>:<service><zone>`: this node's in-flight requests to the
    /// service's endpoints in that zone.
    pub const ZONE_LOAD_PREFIX: &str = "zload:";
}

/// A node's in-flight requests by service and endpoint zone (averaged over the last publish
/// period): service → zone → requests. Gossiped so that every node sees how busy each zone's
/// endpoints are cluster-wide, not only from its own traffic.
pub type ZoneInFlight = BTreeMap<String, BTreeMap<String, f64>>;

/// Bound on endpoint health entries one node publishes (each is gossiped to every node).
pub const MAX_ENDPOINTS_PER_NODE: usize = 1_024;
/// Bound on the length of a service name or endpoint, and of each text field.
pub const MAX_FIELD_LEN: usize = 256;

/// Where peers reach this node (`HOST:PORT`, as the node advertises them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addresses {
    pub fabric: String,
    pub admin: String,
    pub http: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RaftRole {
    Leader,
    Follower,
    Candidate,
    Learner,
    #[default]
    Unknown,
}

impl RaftRole {
    fn as_str(self) -> &'static str {
        match self {
            RaftRole::Leader => "leader",
            RaftRole::Follower => "follower",
            RaftRole::Candidate => "candidate",
            RaftRole::Learner => "learner",
            RaftRole::Unknown => "unknown",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "leader" => RaftRole::Leader,
            "follower" => RaftRole::Follower,
            "candidate" => RaftRole::Candidate,
            "learner" => RaftRole::Learner,
            _ => RaftRole::Unknown,
        }
    }
}

/// How busy a node is. Rates and latencies are gossiped with limited precision (0.1 request/s,
/// 0.01 ms) so that noise alone does not create a new version every time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Load {
    pub in_flight: u64,
    pub request_rate_per_s: f64,
    /// A smoothed (e.g. EWMA) request latency.
    pub latency_ms_smoothed: f64,
}

impl Load {
    fn encode(&self) -> String {
        format!("{} {:.1} {:.2}", self.in_flight, finite(self.request_rate_per_s), finite(self.latency_ms_smoothed))
    }

    fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split(' ');
        let load = Load {
            in_flight: parts.next()?.parse().ok()?,
            request_rate_per_s: finite(parts.next()?.parse().ok()?),
            latency_ms_smoothed: finite(parts.next()?.parse().ok()?),
        };
        parts.next().is_none().then_some(load)
    }
}

fn finite(x: f64) -> f64 {
    if x.is_finite() && x >= 0.0 {
        x
    } else {
        0.0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Up,
    Down,
}

/// One node's latest verdict on one endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointHealth {
    pub verdict: Verdict,
    /// When the checking node reached this verdict, by its clock.
    pub checked_at_unix_ms: u64,
}

impl EndpointHealth {
    fn encode(&self) -> String {
        let verdict = match self.verdict {
            Verdict::Up => "up",
            Verdict::Down => "down",
        };
        format!("{verdict}@{}", self.checked_at_unix_ms)
    }

    fn parse(s: &str) -> Option<Self> {
        let (verdict, at) = s.split_once('@')?;
        let verdict = match verdict {
            "up" => Verdict::Up,
            "down" => Verdict::Down,
            _ => return None,
        };
        Some(Self { verdict, checked_at_unix_ms: at.parse().ok()? })
    }
}

/// What a node publishes about itself, and what every other node reads about it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    pub name: String,
    pub zone: String,
    pub addresses: Addresses,
    /// Software version.
    pub version: String,
    pub raft_role: RaftRole,
    pub load: Load,
    /// The config revision this node has applied to its data plane.
    pub config_revision: u64,
    pub draining: bool,
    /// Health of the endpoints this node checks: service → endpoint → verdict.
    pub endpoints: BTreeMap<String, BTreeMap<String, EndpointHealth>>,
    /// This node's in-flight requests by service and endpoint zone.
    pub zone_in_flight: ZoneInFlight,
}

impl NodeState {
    pub fn endpoint_count(&self) -> usize {
        self.endpoints.values().map(BTreeMap::len).sum()
    }

    pub fn zone_load_count(&self) -> usize {
        zone_load_count(&self.zone_in_flight)
    }

    /// Every problem at once, so the caller can fix them together.
    pub fn validate(&self) -> Result<(), GossipError> {
        let mut problems = Vec::new();
        for (field, value) in [
            ("name", &self.name),
            ("zone", &self.zone),
            ("addresses.fabric", &self.addresses.fabric),
            ("addresses.admin", &self.addresses.admin),
            ("addresses.http", &self.addresses.http),
            ("version", &self.version),
        ] {
            if value.len() > MAX_FIELD_LEN {
                problems.push(format!("{field}: longer than {MAX_FIELD_LEN} bytes"));
            }
        }
        for (service, endpoints) in &self.endpoints {
            for endpoint in endpoints.keys() {
                if let Err(problem) = check_endpoint(service, endpoint) {
                    problems.push(format!("endpoints[{service:?}][{endpoint:?}]: {problem}"));
                }
            }
        }
        if self.endpoint_count() > MAX_ENDPOINTS_PER_NODE {
            problems.push(format!("endpoints: more than {MAX_ENDPOINTS_PER_NODE} entries"));
        }
        if let Err(problem) = check_zone_in_flight(&self.zone_in_flight) {
            problems.push(format!("zone_in_flight: {problem}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(GossipError::InvalidConfig(problems))
        }
    }
}

pub(crate) fn check_endpoint(service: &str, endpoint: &str) -> Result<(), String> {
    for (what, s) in [("service", service), ("endpoint", endpoint)] {
        if s.is_empty() {
            return Err(format!("{what} is empty"));
        }
        if s.len() > MAX_FIELD_LEN {
            return Err(format!("{what} is longer than {MAX_FIELD_LEN} bytes"));
        }
        if s.chars().any(char::is_control) {
            return Err(format!("{what} contains control characters"));
        }
    }
    Ok(())
}

fn zone_load_count(map: &ZoneInFlight) -> usize {
    map.values().map(BTreeMap::len).sum()
}

/// The bounds a published zone-load map must respect: names as for endpoints, at most
/// [`MAX_ENDPOINTS_PER_NODE`] entries.
pub(crate) fn check_zone_in_flight(map: &ZoneInFlight) -> Result<(), String> {
    for (service, zones) in map {
        for zone in zones.keys() {
            check_endpoint(service, zone).map_err(|problem| format!("[{service:?}][{zone:?}]: {problem}"))?;
        }
    }
    if zone_load_count(map) > MAX_ENDPOINTS_PER_NODE {
        return Err(format!("more than {MAX_ENDPOINTS_PER_NODE} entries"));
    }
    Ok(())
}

pub(crate) fn health_key(service: &str, endpoint: &str) -> String {
    pair_key(keys::HEALTH_PREFIX, service, endpoint)
}

fn zone_load_key(service: &str, zone: &str) -> String {
    pair_key(keys::ZONE_LOAD_PREFIX, service, zone)
}

fn pair_key(prefix: &str, first: &str, second: &str) -> String {
    format!("{prefix}{}:{first}{second}", first.len())
}

fn parse_health_key(key: &str) -> Option<(&str, &str)> {
    parse_pair_key(keys::HEALTH_PREFIX, key)
}

fn parse_pair_key<'a>(prefix: &str, key: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = key.strip_prefix(prefix)?;
    let (len, rest) = rest.split_once(':')?;
    let len: usize = len.parse().ok()?;
    if len == 0 || len >= rest.len() || !rest.is_char_boundary(len) {
        return None;
    }
    Some(rest.split_at(len))
}

/// One update of the local node's chitchat state: keys to set and keys to delete.
#[derive(Debug, Default)]
pub(crate) struct Update {
    pub(crate) set: Vec<(String, String)>,
    pub(crate) delete: Vec<String>,
}

impl Update {
    pub(crate) fn set(key: &str, value: String) -> Self {
        Self { set: vec![(key.to_string(), value)], delete: Vec::new() }
    }

    /// Applies the update to a chitchat node state. `set` skips unchanged values, so
    /// republishing the same state creates no new version.
    pub(crate) fn apply(self, node: &mut chitchat::NodeState) {
        for (key, value) in self.set {
            node.set(key, value);
        }
        for key in self.delete {
            if node.get(&key).is_some() {
                node.delete(&key);
            }
        }
    }
}

pub(crate) fn set_load(load: &Load) -> Update {
    Update::set(keys::LOAD, load.encode())
}

pub(crate) fn set_raft_role(role: RaftRole) -> Update {
    Update::set(keys::RAFT_ROLE, role.as_str().to_string())
}

pub(crate) fn set_config_revision(revision: u64) -> Update {
    Update::set(keys::CONFIG_REVISION, revision.to_string())
}

pub(crate) fn set_draining(draining: bool) -> Update {
    Update::set(keys::DRAINING, draining.to_string())
}

pub(crate) fn set_endpoint_health(service: &str, endpoint: &str, health: EndpointHealth) -> Update {
    Update { set: vec![(health_key(service, endpoint), health.encode())], delete: Vec::new() }
}

pub(crate) fn remove_endpoint_health(service: &str, endpoint: &str) -> Update {
    Update { set: Vec::new(), delete: vec![health_key(service, endpoint)] }
}

/// Sets every zone-load entry of `map` and deletes this node's entries that `map` lacks.
pub(crate) fn set_zone_in_flight(map: &ZoneInFlight, current: &chitchat::NodeState) -> Update {
    let mut set = Vec::new();
    let mut wanted = std::collections::HashSet::new();
    for (service, zones) in map {
        for (zone, in_flight) in zones {
            let key = zone_load_key(service, zone);
            wanted.insert(key.clone());
            set.push((key, format!("{:.1}", finite(*in_flight))));
        }
    }
    Update { set, delete: live_keys_not_in(current, keys::ZONE_LOAD_PREFIX, &wanted) }
}

/// This node's live keys under `prefix` that `wanted` no longer holds: what to delete.
fn live_keys_not_in(
    current: &chitchat::NodeState,
    prefix: &str,
    wanted: &std::collections::HashSet<String>,
) -> Vec<String> {
    current
        .iter_prefix(prefix)
        .filter(|(key, value)| !value.is_deleted() && !wanted.contains(*key))
        .map(|(key, _)| key.to_string())
        .collect()
}

/// The keys for a whole state; health entries of `current` missing from `state` are deleted.
pub(crate) fn publish(state: &NodeState, current: &chitchat::NodeState) -> Update {
    let mut set = vec![
        (keys::NAME.to_string(), state.name.clone()),
        (keys::ZONE.to_string(), state.zone.clone()),
        (keys::ADDR_FABRIC.to_string(), state.addresses.fabric.clone()),
        (keys::ADDR_ADMIN.to_string(), state.addresses.admin.clone()),
        (keys::ADDR_HTTP.to_string(), state.addresses.http.clone()),
        (keys::VERSION.to_string(), state.version.clone()),
    ];
    set.extend(set_raft_role(state.raft_role).set);
    set.extend(set_load(&state.load).set);
    set.extend(set_config_revision(state.config_revision).set);
    set.extend(set_draining(state.draining).set);
    let mut wanted = std::collections::HashSet::new();
    for (service, endpoints) in &state.endpoints {
        for (endpoint, health) in endpoints {
            let key = health_key(service, endpoint);
            wanted.insert(key.clone());
            set.push((key, health.encode()));
        }
    }
    let mut delete = live_keys_not_in(current, keys::HEALTH_PREFIX, &wanted);
    let zone_load = set_zone_in_flight(&state.zone_in_flight, current);
    set.extend(zone_load.set);
    delete.extend(zone_load.delete);
    Update { set, delete }
}

/// Number of live health entries in a chitchat node state.
pub(crate) fn endpoint_entries(node: &chitchat::NodeState) -> usize {
    node.iter_prefix(keys::HEALTH_PREFIX).filter(|(_, v)| !v.is_deleted()).count()
}

/// Reads a node's typed state from its chitchat key-values (deleted keys excluded). Unknown keys
/// are ignored, so a newer node may add keys without breaking older readers.
pub(crate) fn read<'a>(key_values: impl Iterator<Item = (&'a str, &'a str)>) -> NodeState {
    let mut state = NodeState::default();
    for (key, value) in key_values {
        match key {
            keys::NAME => state.name = bounded(value),
            keys::ZONE => state.zone = bounded(value),
            keys::ADDR_FABRIC => state.addresses.fabric = bounded(value),
            keys::ADDR_ADMIN => state.addresses.admin = bounded(value),
            keys::ADDR_HTTP => state.addresses.http = bounded(value),
            keys::VERSION => state.version = bounded(value),
            keys::RAFT_ROLE => state.raft_role = RaftRole::parse(value),
            keys::LOAD => state.load = Load::parse(value).unwrap_or_default(),
            keys::CONFIG_REVISION => state.config_revision = value.parse().unwrap_or_default(),
            keys::DRAINING => state.draining = value == "true",
            _ if key.starts_with(keys::ZONE_LOAD_PREFIX) => {
                let in_flight = value.parse::<f64>().ok().filter(|x| x.is_finite() && *x >= 0.0);
                if let (Some((service, zone)), Some(in_flight)) =
                    (parse_pair_key(keys::ZONE_LOAD_PREFIX, key), in_flight)
                {
                    if state.zone_load_count() < MAX_ENDPOINTS_PER_NODE {
                        state
                            .zone_in_flight
                            .entry(service.to_string())
                            .or_default()
                            .insert(zone.to_string(), in_flight);
                    }
                }
            }
            _ => {
                if let (Some((service, endpoint)), Some(health)) = (parse_health_key(key), EndpointHealth::parse(value))
                {
                    if state.endpoint_count() < MAX_ENDPOINTS_PER_NODE {
                        state.endpoints.entry(service.to_string()).or_default().insert(endpoint.to_string(), health);
                    }
                }
            }
        }
    }
    state
}

/// Truncates a peer's text field to the bound (at a character boundary).
fn bounded(value: &str) -> String {
    if value.len() <= MAX_FIELD_LEN {
        return value.to_string();
    }
    let mut end = MAX_FIELD_LEN;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NodeState {
        let mut state = NodeState {
            name: "gw-1".into(),
            zone: "us-east-1a".into(),
            addresses: Addresses {
                fabric: "10.0.0.1:7000".into(),
                admin: "127.0.0.1:9900".into(),
                http: "10.0.0.1:8080".into(),
            },
            version: "0.1.0".into(),
            raft_role: RaftRole::Follower,
            load: Load { in_flight: 12, request_rate_per_s: 250.5, latency_ms_smoothed: 3.25 },
            config_revision: 42,
            draining: true,
            endpoints: BTreeMap::new(),
            zone_in_flight: BTreeMap::new(),
        };
        state.zone_in_flight.entry("reviews".into()).or_default().insert("us-east-1a".into(), 2.5);
        state.zone_in_flight.entry("reviews".into()).or_default().insert("a:b".into(), 0.0);
        state
            .endpoints
            .entry("reviews".into())
            .or_default()
            .insert("10.0.1.7:9080".into(), EndpointHealth { verdict: Verdict::Up, checked_at_unix_ms: 1_700 });
        state
            .endpoints
            .entry("a:b/c".into())
            .or_default()
            .insert("[::1]:80".into(), EndpointHealth { verdict: Verdict::Down, checked_at_unix_ms: 1_800 });
        state
    }

    fn roundtrip(state: &NodeState) -> NodeState {
        let empty = chitchat::NodeState::for_test();
        let update = publish(state, &empty);
        read(update.set.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    #[test]
    fn state_roundtrips_through_keys() {
        let state = sample();
        assert_eq!(roundtrip(&state), state);
        assert!(state.validate().is_ok());
    }

    #[test]
    fn health_keys_allow_any_separator_in_names() {
        let key = health_key("a:b", "c:d");
        assert_eq!(parse_health_key(&key), Some(("a:b", "c:d")));
        assert_eq!(parse_health_key("health:9:ab"), None);
        assert_eq!(parse_health_key("health:x:ab"), None);
        assert_eq!(parse_health_key("health:0:ab"), None);
        assert_eq!(parse_health_key("health:1:é"), None, "cut inside a character");
    }

    #[test]
    fn garbage_values_read_as_defaults() {
        let kvs = [
            ("load", "1 2"),
            ("config.revision", "-4"),
            ("raft.role", "king"),
            ("draining", "yes"),
            ("health:3:svcep", "maybe@12"),
            ("zload:3:svcza", "-1"),
            ("zload:3:svczb", "NaN"),
            ("zload:9:svcz", "1.0"),
            ("unknown.key", "ignored"),
        ];
        let state = read(kvs.into_iter());
        assert_eq!(state, NodeState::default());
    }

    #[test]
    fn load_drops_non_finite_numbers() {
        let load = Load { in_flight: 1, request_rate_per_s: f64::NAN, latency_ms_smoothed: f64::INFINITY };
        assert_eq!(Load::parse(&load.encode()), Some(Load { in_flight: 1, ..Load::default() }));
    }

    #[test]
    fn validate_lists_every_problem() {
        let mut state = sample();
        state.name = "x".repeat(MAX_FIELD_LEN + 1);
        state
            .endpoints
            .entry(String::new())
            .or_default()
            .insert("e".into(), EndpointHealth { verdict: Verdict::Up, checked_at_unix_ms: 0 });
        match state.validate() {
            Err(GossipError::InvalidConfig(problems)) => assert_eq!(problems.len(), 2, "{problems:?}"),
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn publish_deletes_health_entries_that_are_gone() {
        let mut node = chitchat::NodeState::for_test();
        publish(&sample(), &node).apply(&mut node);
        assert_eq!(endpoint_entries(&node), 2);
        let mut fewer = sample();
        fewer.endpoints.remove("reviews");
        let update = publish(&fewer, &node);
        assert_eq!(update.delete, vec![health_key("reviews", "10.0.1.7:9080")]);
        update.apply(&mut node);
        assert_eq!(endpoint_entries(&node), 1);
        assert_eq!(read(node.key_values()), fewer);
    }

    #[test]
    fn zone_load_entries_that_are_gone_are_deleted() {
        let mut node = chitchat::NodeState::for_test();
        let state = sample();
        publish(&state, &node).apply(&mut node);
        let mut next = ZoneInFlight::new();
        next.entry("reviews".into()).or_default().insert("us-east-1a".into(), 7.26);
        let update = set_zone_in_flight(&next, &node);
        assert_eq!(update.delete, vec![zone_load_key("reviews", "a:b")]);
        update.apply(&mut node);
        let read_back = read(node.key_values());
        assert_eq!(read_back.zone_in_flight["reviews"]["us-east-1a"], 7.3, "one decimal on the wire");
        assert_eq!(read_back.zone_load_count(), 1);
    }
}
