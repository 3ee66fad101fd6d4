//! The deployment files under `deploy/` (local script, systemd, container, Kubernetes): every
//! YAML file parses, and what a deployment depends on agrees with the binary: ports and their
//! protocols, probes, spreading over zones, the disruption budget and the join wiring.
//!
//! The expected ports live in [`PORTS`] only, and `ports_are_the_binary_defaults` checks them
//! against `gantry run --help`, so changing a default without the deployments fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    fn parse(text: &str) -> Option<Proto> {
        match text.to_ascii_lowercase().as_str() {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            _ => None,
        }
    }
}

/// One listening port of `gantry run`.
#[derive(Debug)]
struct Port {
    /// Port name in the Kubernetes manifests, and the key of this table.
    name: &'static str,
    flag: &'static str,
    env: &'static str,
    /// Variable of `deploy/local/cluster.sh` that holds the port.
    script_var: &'static str,
    number: u16,
    proto: Proto,
}

/// Every port a deployment exposes, with the binary's defaults (DESIGN.md §2): the one place
/// this test keeps them.
const PORTS: [Port; 5] = [
    Port {
        name: "http",
        flag: "--http",
        env: "GANTRY_HTTP_ADDR",
        script_var: "HTTP_PORT",
        number: 8080,
        proto: Proto::Tcp,
    },
    Port {
        name: "https",
        flag: "--https",
        env: "GANTRY_HTTPS_ADDR",
        script_var: "HTTPS_PORT",
        number: 8443,
        proto: Proto::Tcp,
    },
    Port {
        name: "admin",
        flag: "--admin",
        env: "GANTRY_ADMIN_ADDR",
        script_var: "ADMIN_PORT",
        number: 9900,
        proto: Proto::Tcp,
    },
    Port {
        name: "fabric",
        flag: "--fabric",
        env: "GANTRY_FABRIC_ADDR",
        script_var: "FABRIC_PORT",
        number: 7000,
        proto: Proto::Udp,
    },
    Port {
        name: "gossip",
        flag: "--gossip",
        env: "GANTRY_GOSSIP_ADDR",
        script_var: "GOSSIP_PORT",
        number: 7001,
        proto: Proto::Udp,
    },
];

fn port(name: &str) -> &'static Port {
    PORTS.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no port named {name} in PORTS"))
}

/// The (number, protocol) pairs every deployment must expose.
fn expected_ports() -> BTreeSet<(u16, Proto)> {
    PORTS.iter().map(|p| (p.number, p.proto)).collect()
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn read(relative: &str) -> String {
    let path = deploy_dir().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every YAML document of a file (Kubernetes manifests hold several).
fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_saphyr::from_multiple::<Value>(&text).unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

fn yaml_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            yaml_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            found.push(path);
        }
    }
}

/// `value[key]` as a string, or a panic naming what is missing.
fn str_at<'a>(value: &'a Value, pointer: &str, what: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or_else(|| panic!("{what}: no string at {pointer}"))
}

fn array_at<'a>(value: &'a Value, pointer: &str, what: &str) -> &'a Vec<Value> {
    value.pointer(pointer).and_then(Value::as_array).unwrap_or_else(|| panic!("{what}: no list at {pointer}"))
}

/// An `IP:PORT` value such as `0.0.0.0:9900`.
fn socket_port(text: &str, what: &str) -> SocketAddr {
    text.parse().unwrap_or_else(|e| panic!("{what}: {text:?} is not IP:PORT: {e}"))
}

/// `bash -n`: the script parses.
fn assert_bash_syntax(script: &str, what: &str) {
    let output = Command::new("bash").arg("-n").arg("-c").arg(script).output().expect("run bash -n");
    assert!(output.status.success(), "{what} does not pass bash -n: {}", String::from_utf8_lossy(&output.stderr));
}

// ---- the binary ------------------------------------------------------------------------------

/// The help of one flag: from its `--flag <VALUE>` to the next flag, across wrapped lines.
fn flag_help<'a>(help: &'a str, flag: &str) -> Option<&'a str> {
    let start = help.find(&format!("{flag} <"))?;
    let rest = &help[start..];
    let end = rest
        .match_indices('\n')
        .map(|(i, _)| i)
        .find(|&i| rest[i + 1..].trim_start().starts_with('-'))
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

#[test]
fn ports_are_the_binary_defaults() {
    let output = Command::new(env!("CARGO_BIN_EXE_gantry")).args(["run", "--help"]).output().expect("run gantry");
    assert!(output.status.success(), "gantry run --help failed");
    let help = String::from_utf8_lossy(&output.stdout);
    for port in &PORTS {
        let text = flag_help(&help, port.flag)
            .unwrap_or_else(|| panic!("gantry run --help has no {} (the deployments set it up):\n{help}", port.flag));
        assert!(text.contains(&format!("[env: {}=", port.env)), "{} is not read from {}: {text}", port.flag, port.env);
        match text.split("[default: ").nth(1).and_then(|rest| rest.split(']').next()) {
            Some(default) => {
                let default = socket_port(default, port.flag);
                assert_eq!(default.port(), port.number, "default of {} changed: update deploy/ and PORTS", port.flag);
            }
            // A default derived from another flag (gossip: the fabric port + 1) is stated in the
            // flag's help text.
            None => assert!(
                text.contains(&format!(":{} ", port.number)) || text.contains(&format!(":{})", port.number)),
                "the help of {} does not state port {}: {text}",
                port.flag,
                port.number
            ),
        }
        if port.proto == Proto::Udp {
            assert!(text.contains("UDP"), "{} is UDP here but its help does not say so: {text}", port.flag);
        }
    }
    // The admin API is on loopback by default: the container deployments must override it.
    let admin = flag_help(&help, "--admin").expect("--admin");
    assert!(admin.contains("[default: 127.0.0.1:"), "the admin default is no longer loopback: {admin}");
}

// ---- every YAML file -------------------------------------------------------------------------

#[test]
fn every_yaml_file_parses() {
    let mut files = Vec::new();
    yaml_files(&deploy_dir(), &mut files);
    let names: BTreeSet<String> =
        files.iter().map(|p| p.strip_prefix(deploy_dir()).unwrap_or(p).to_string_lossy().replace('\\', "/")).collect();
    for expected in ["kubernetes/gantry.yaml", "container/compose.yaml", "container/config.yaml", "local/config.yaml"] {
        assert!(names.contains(expected), "deploy/{expected} is missing; found {names:?}");
    }
    for file in &files {
        let documents = yaml_documents(file);
        assert!(!documents.is_empty(), "{} holds no YAML document", file.display());
    }
}

#[test]
fn sample_configs_are_valid_documents() {
    for file in ["local/config.yaml", "container/config.yaml"] {
        if let Err(error) = gantry_proto::parse_document(&read(file)) {
            panic!("deploy/{file}: {error}");
        }
    }
}

// ---- Kubernetes ------------------------------------------------------------------------------

struct Manifests {
    documents: Vec<Value>,
}

impl Manifests {
    fn load() -> Self {
        Self { documents: yaml_documents(&deploy_dir().join("kubernetes/gantry.yaml")) }
    }

    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.documents.iter().filter(|d| d.get("kind").and_then(Value::as_str) == Some(kind)).collect()
    }

    fn one(&self, kind: &str) -> &Value {
        let found = self.of_kind(kind);
        assert_eq!(found.len(), 1, "expected one {kind} in deploy/kubernetes/gantry.yaml");
        found[0]
    }

    fn named(&self, kind: &str, name: &str) -> Option<&Value> {
        self.of_kind(kind).into_iter().find(|d| d.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
    }
}

/// The container's `ports`: name → (number, protocol); Kubernetes' default protocol is TCP.
fn container_ports(container: &Value) -> BTreeMap<String, (u16, Proto)> {
    array_at(container, "/ports", "gantry container")
        .iter()
        .map(|p| {
            let name = str_at(p, "/name", "container port").to_string();
            let number = p.get("containerPort").and_then(Value::as_u64).expect("containerPort") as u16;
            let proto = Proto::parse(p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")).expect("protocol");
            (name, (number, proto))
        })
        .collect()
}

/// A probe's or Service's port: a number, or the name of a container port.
fn resolve_port(value: &Value, ports: &BTreeMap<String, (u16, Proto)>) -> u16 {
    match value {
        Value::Number(n) => n.as_u64().expect("port number") as u16,
        Value::String(name) => ports.get(name).unwrap_or_else(|| panic!("no container port named {name}")).0,
        other => panic!("unexpected port {other}"),
    }
}

fn gantry_container(set: &Value) -> &Value {
    array_at(set, "/spec/template/spec/containers", "StatefulSet")
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some("gantry"))
        .expect("a container named gantry")
}

fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container
        .get("env")?
        .as_array()?
        .iter()
        .find(|e| e.get("name").and_then(Value::as_str) == Some(name))?
        .get("value")?
        .as_str()
}

#[test]
fn kubernetes_statefulset_spreads_three_pods_over_zones() {
    let manifests = Manifests::load();
    let set = manifests.one("StatefulSet");
    assert_eq!(set.pointer("/spec/replicas").and_then(Value::as_u64), Some(3), "replicas");
    let selector = set.pointer("/spec/selector/matchLabels").expect("StatefulSet selector");
    let labels = set.pointer("/spec/template/metadata/labels").and_then(Value::as_object).expect("pod labels");
    for (key, value) in selector.as_object().expect("matchLabels") {
        assert_eq!(labels.get(key), Some(value), "pod template lacks selector label {key}");
    }
    let constraints = array_at(set, "/spec/template/spec/topologySpreadConstraints", "StatefulSet");
    let zone = constraints
        .iter()
        .find(|c| c.get("topologyKey").and_then(Value::as_str) == Some("topology.kubernetes.io/zone"))
        .expect("a topologySpreadConstraint over topology.kubernetes.io/zone");
    assert_eq!(zone.get("maxSkew").and_then(Value::as_u64), Some(1), "maxSkew");
    assert_eq!(zone.get("whenUnsatisfiable").and_then(Value::as_str), Some("DoNotSchedule"), "whenUnsatisfiable");
    assert_eq!(
        zone.pointer("/labelSelector/matchLabels"),
        Some(selector),
        "the spread counts the StatefulSet's own pods"
    );
    // After a full restart pod 0 is ready only once a second voter is back: ordered start would
    // wait forever.
    assert_eq!(set.pointer("/spec/podManagementPolicy").and_then(Value::as_str), Some("Parallel"));
}

#[test]
fn kubernetes_container_ports_probes_and_data_dir() {
    let manifests = Manifests::load();
    let set = manifests.one("StatefulSet");
    let gantry = gantry_container(set);
    let ports = container_ports(gantry);
    for port in &PORTS {
        assert_eq!(ports.get(port.name), Some(&(port.number, port.proto)), "container port {}", port.name);
    }
    // Addresses given in the environment bind the default ports; the admin API must leave
    // loopback (its default) or the kubelet cannot probe it.
    for port in &PORTS {
        if let Some(value) = env_value(gantry, port.env) {
            assert_eq!(socket_port(value, port.env).port(), port.number, "{} in the pod", port.env);
        }
    }
    let admin =
        env_value(gantry, "GANTRY_ADMIN_ADDR").expect("GANTRY_ADMIN_ADDR: probes need the admin API off loopback");
    assert!(socket_port(admin, "GANTRY_ADMIN_ADDR").ip().is_unspecified(), "admin binds {admin}");

    let admin_port = port("admin").number;
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = gantry.pointer(&format!("/{probe}/httpGet")).unwrap_or_else(|| panic!("{probe} is no httpGet"));
        assert_eq!(get.get("path").and_then(Value::as_str), Some(path), "{probe} path");
        assert_eq!(resolve_port(get.get("port").expect("probe port"), &ports), admin_port, "{probe} port");
    }
    if let Some(get) = gantry.pointer("/startupProbe/httpGet") {
        assert_eq!(resolve_port(get.get("port").expect("probe port"), &ports), admin_port, "startupProbe port");
    }

    // The data dir is a persistent volume from the claim templates.
    let data_dir = env_value(gantry, "GANTRY_DATA_DIR").expect("GANTRY_DATA_DIR");
    let mount = array_at(gantry, "/volumeMounts", "gantry container")
        .iter()
        .find(|m| m.get("mountPath").and_then(Value::as_str) == Some(data_dir))
        .unwrap_or_else(|| panic!("nothing mounted at the data dir {data_dir}"));
    let claim = str_at(mount, "/name", "data volume mount");
    let templates = array_at(set, "/spec/volumeClaimTemplates", "StatefulSet");
    assert!(
        templates.iter().any(|t| t.pointer("/metadata/name").and_then(Value::as_str) == Some(claim)),
        "the data dir volume {claim} is not a volumeClaimTemplate"
    );

    // Every pod advertises its stable name under the headless Service, and the others join
    // pod 0 at the fabric port.
    let service = str_at(set, "/spec/serviceName", "StatefulSet");
    let advertise = env_value(gantry, "GANTRY_ADVERTISE").expect("GANTRY_ADVERTISE");
    assert_eq!(advertise, format!("$(POD_NAME).{service}.$(POD_NAMESPACE).svc"));
    let script = array_at(gantry, "/args", "gantry container").iter().filter_map(Value::as_str).collect::<String>();
    let set_name = str_at(set, "/metadata/name", "StatefulSet");
    let bootstrap = format!("{set_name}-0.{service}.$POD_NAMESPACE.svc:{}", port("fabric").number);
    assert!(script.contains(&bootstrap), "pods do not join {bootstrap}:\n{script}");
}

#[test]
fn kubernetes_scripts_parse() {
    let manifests = Manifests::load();
    let set = manifests.one("StatefulSet");
    let spec = set.pointer("/spec/template/spec").expect("pod spec");
    for list in ["initContainers", "containers"] {
        for container in spec.get(list).and_then(Value::as_array).into_iter().flatten() {
            let command: Vec<&str> = container
                .get("command")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if command.first() == Some(&"/bin/bash") {
                let args = array_at(container, "/args", "container");
                let script = args.last().and_then(Value::as_str).expect("script");
                assert_bash_syntax(script, &format!("the script of container {}", str_at(container, "/name", list)));
            }
        }
    }
}

#[test]
fn kubernetes_services_budget_and_join_secret() {
    let manifests = Manifests::load();
    let set = manifests.one("StatefulSet");
    let selector = set.pointer("/spec/selector/matchLabels").expect("StatefulSet selector");
    let gantry = gantry_container(set);
    let ports = container_ports(gantry);

    let budget = manifests.one("PodDisruptionBudget");
    assert_eq!(budget.pointer("/spec/minAvailable").and_then(Value::as_u64), Some(2), "PDB minAvailable");
    assert_eq!(budget.pointer("/spec/selector/matchLabels"), Some(selector), "the PDB selects the StatefulSet's pods");

    let service_name = str_at(set, "/spec/serviceName", "StatefulSet");
    let headless = manifests.named("Service", service_name).expect("the StatefulSet's serviceName names a Service");
    assert_eq!(headless.pointer("/spec/clusterIP").and_then(Value::as_str), Some("None"), "headless Service");
    assert_eq!(headless.pointer("/spec/selector"), Some(selector), "headless Service selector");
    // Members reach each other before they are ready.
    assert_eq!(headless.pointer("/spec/publishNotReadyAddresses").and_then(Value::as_bool), Some(true));
    let fabric = port("fabric");
    let covered = array_at(headless, "/spec/ports", "headless Service").iter().any(|p| {
        let target = p.get("targetPort").unwrap_or(&Value::Null);
        let target = if target.is_null() { p.get("port").expect("port") } else { target };
        resolve_port(target, &ports) == fabric.number
            && Proto::parse(p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")) == Some(fabric.proto)
    });
    assert!(covered, "the headless Service does not cover the fabric port {}/UDP", fabric.number);

    // The join token arrives through a Secret mounted as a volume, read from GANTRY_JOIN_TOKEN_FILE.
    let volumes = array_at(set, "/spec/template/spec/volumes", "StatefulSet");
    let secret_volume = volumes.iter().find(|v| v.get("secret").is_some()).expect("a Secret volume for the join token");
    let secret_name = str_at(secret_volume, "/secret/secretName", "join volume");
    let secret = manifests
        .named("Secret", secret_name)
        .unwrap_or_else(|| panic!("Secret {secret_name} is not in the manifests"));
    // The token is made by pod 0 and patched in by the operator: a token key in the manifest
    // would erase it on every re-apply.
    assert!(secret.get("data").is_none() && secret.get("stringData").is_none(), "Secret {secret_name} carries data");
    let volume_name = str_at(secret_volume, "/name", "join volume");
    let mount = array_at(gantry, "/volumeMounts", "gantry container")
        .iter()
        .find(|m| m.get("name").and_then(Value::as_str) == Some(volume_name))
        .expect("the join Secret is mounted");
    let token_file = env_value(gantry, "GANTRY_JOIN_TOKEN_FILE").expect("GANTRY_JOIN_TOKEN_FILE");
    assert!(
        token_file.starts_with(&format!("{}/", str_at(mount, "/mountPath", "join mount"))),
        "GANTRY_JOIN_TOKEN_FILE {token_file} is not in the Secret's mount"
    );

    // Everything namespaced lives in the one Namespace (the ClusterRoleBinding names it).
    let namespace = str_at(manifests.one("Namespace"), "/metadata/name", "Namespace");
    for document in &manifests.documents {
        let kind = str_at(document, "/kind", "manifest");
        if !["Namespace", "ClusterRole", "ClusterRoleBinding"].contains(&kind) {
            assert_eq!(document.pointer("/metadata/namespace").and_then(Value::as_str), Some(namespace), "{kind}");
        }
    }
    for subject in array_at(manifests.one("ClusterRoleBinding"), "/subjects", "ClusterRoleBinding") {
        assert_eq!(subject.get("namespace").and_then(Value::as_str), Some(namespace), "ClusterRoleBinding subject");
    }
}

// ---- compose ---------------------------------------------------------------------------------

/// A compose service's environment, given as a map or as a list of `KEY=VALUE`.
fn compose_env(service: &Value) -> BTreeMap<String, String> {
    match service.get("environment") {
        Some(Value::Object(map)) => {
            map.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string))).collect()
        }
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|entry| entry.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// The container ports a compose service publishes (`ports`) or exposes to the other services
/// (`expose`), with their protocols.
fn compose_ports(service: &Value) -> BTreeSet<(u16, Proto)> {
    let mut found = BTreeSet::new();
    for entry in service.get("ports").and_then(Value::as_array).into_iter().flatten() {
        match entry {
            Value::Object(_) => {
                let number = entry.get("target").and_then(Value::as_u64).expect("ports: target") as u16;
                let proto =
                    Proto::parse(entry.get("protocol").and_then(Value::as_str).unwrap_or("tcp")).expect("protocol");
                found.insert((number, proto));
            }
            Value::String(short) => {
                // [[HOST_IP:]HOST_PORT:]CONTAINER_PORT[/PROTO]
                let (ports, proto) = short.split_once('/').unwrap_or((short, "tcp"));
                let number = ports.rsplit(':').next().and_then(|p| p.parse().ok()).expect("container port");
                found.insert((number, Proto::parse(proto).expect("protocol")));
            }
            other => panic!("unexpected ports entry {other}"),
        }
    }
    for entry in service.get("expose").and_then(Value::as_array).into_iter().flatten() {
        let text = entry.as_str().map_or_else(|| entry.to_string(), str::to_string);
        let (number, proto) = text.split_once('/').unwrap_or((&text, "tcp"));
        found.insert((number.parse().expect("expose port"), Proto::parse(proto).expect("protocol")));
    }
    found
}

#[test]
fn compose_runs_three_nodes_in_three_zones() {
    let compose = yaml_documents(&deploy_dir().join("container/compose.yaml")).remove(0);
    let services = compose.get("services").and_then(Value::as_object).expect("services");
    // gantry nodes are the services that set a zone.
    let nodes: BTreeMap<&String, BTreeMap<String, String>> = services
        .iter()
        .map(|(name, service)| (name, compose_env(service)))
        .filter(|(_, env)| env.contains_key("GANTRY_ZONE"))
        .collect();
    assert_eq!(nodes.len(), 3, "three gantry services: {:?}", nodes.keys());
    let zones: BTreeSet<&String> = nodes.values().map(|env| &env["GANTRY_ZONE"]).collect();
    assert_eq!(zones.len(), 3, "distinct zones: {zones:?}");

    for name in nodes.keys() {
        let service = &services[name.as_str()];
        assert_eq!(compose_ports(service), expected_ports(), "ports and expose of {name}");
        let env = &nodes[name];
        for port in &PORTS {
            if let Some(value) = env.get(port.env) {
                assert_eq!(socket_port(value, port.env).port(), port.number, "{} of {name}", port.env);
            }
        }
        // The admin port is published, and probed by the healthcheck.
        let admin = env.get("GANTRY_ADMIN_ADDR").expect("GANTRY_ADMIN_ADDR");
        assert!(socket_port(admin, "GANTRY_ADMIN_ADDR").ip().is_unspecified(), "{name}: admin binds {admin}");
        let check = service.pointer("/healthcheck/test").map(Value::to_string).unwrap_or_default();
        assert!(
            check.contains(&format!(":{}/readyz", port("admin").number)),
            "{name}: healthcheck does not probe /readyz: {check}"
        );
        assert_eq!(env.get("GANTRY_ADVERTISE"), Some(*name), "{name} advertises its service name");
    }

    // One node bootstraps and tees its output (with the join token) into a shared volume; the
    // others join it at its fabric port, reading the token from that file.
    let bootstrap: Vec<&&String> =
        nodes.iter().filter(|(_, env)| !env.contains_key("GANTRY_JOIN")).map(|(n, _)| n).collect();
    assert_eq!(bootstrap.len(), 1, "exactly one node bootstraps: {bootstrap:?}");
    let bootstrap = bootstrap[0];
    let output = nodes[bootstrap].get("GANTRY_BOOTSTRAP_OUTPUT").expect("the bootstrap node's GANTRY_BOOTSTRAP_OUTPUT");
    let output_dir = Path::new(output).parent().expect("output dir").to_string_lossy().to_string();
    let volume_at = |service: &str| -> Option<String> {
        services[service].get("volumes").and_then(Value::as_array)?.iter().filter_map(Value::as_str).find_map(|v| {
            let mut parts = v.split(':');
            let source = parts.next()?;
            (parts.next()? == output_dir).then(|| source.to_string())
        })
    };
    let shared = volume_at(bootstrap).unwrap_or_else(|| panic!("{bootstrap} mounts no volume at {output_dir}"));
    for (name, env) in &nodes {
        if name == bootstrap {
            continue;
        }
        assert_eq!(env.get("GANTRY_JOIN"), Some(&format!("{bootstrap}:{}", port("fabric").number)), "{name} joins");
        assert_eq!(env.get("GANTRY_JOIN_TOKEN_FILE"), Some(output), "{name} reads the bootstrap output");
        assert_eq!(volume_at(name), Some(shared.clone()), "{name} mounts the shared volume {shared}");
    }
}

// ---- container image -------------------------------------------------------------------------

/// Dockerfile instructions, continuation lines joined, comments dropped: (INSTRUCTION, rest).
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                if let Some((instruction, rest)) = current.trim().split_once(char::is_whitespace) {
                    instructions.push((instruction.to_ascii_uppercase(), rest.trim().to_string()));
                }
                current.clear();
            }
        }
    }
    instructions
}

#[test]
fn dockerfile_builds_gantry_and_exposes_its_ports() {
    let instructions = dockerfile_instructions(&read("container/Dockerfile"));
    let all = |name: &'static str| instructions.iter().filter(move |(i, _)| i == name).map(|(_, rest)| rest.as_str());

    let froms: Vec<&str> = all("FROM").collect();
    assert!(froms.len() >= 2, "a multi-stage build: {froms:?}");
    assert!(froms[0].starts_with("rust:"), "builds in the official rust image: {}", froms[0]);
    assert!(
        froms[froms.len() - 1].starts_with("debian:") && froms[froms.len() - 1].contains("-slim"),
        "runs on slim Debian"
    );
    assert!(
        all("RUN").any(|run| run.contains("cargo build") && run.contains("--release") && run.contains("-p gantry")),
        "no RUN with cargo build --release -p gantry"
    );

    let mut exposed = BTreeSet::new();
    for expose in all("EXPOSE") {
        for entry in expose.split_whitespace() {
            let (number, proto) = entry.split_once('/').unwrap_or((entry, "tcp"));
            exposed
                .insert((number.parse::<u16>().expect("EXPOSE port"), Proto::parse(proto).expect("EXPOSE protocol")));
        }
    }
    assert_eq!(exposed, expected_ports(), "EXPOSE");

    let user = all("USER").next_back().expect("a USER");
    assert!(!["root", "0", "0:0"].contains(&user), "runs as root: USER {user}");
    let data_dir = all("ENV")
        .find_map(|env| env.strip_prefix("GANTRY_DATA_DIR="))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("ENV GANTRY_DATA_DIR");
    assert!(all("VOLUME").any(|volume| volume.contains(data_dir)), "no VOLUME for the data dir {data_dir}");

    let entrypoint = read("container/entrypoint.sh");
    assert_bash_syntax(&entrypoint, "deploy/container/entrypoint.sh");
    assert!(
        all("COPY").any(|copy| copy.contains("deploy/container/entrypoint.sh")),
        "the image does not contain entrypoint.sh"
    );
}

// ---- systemd ---------------------------------------------------------------------------------

/// `KEY=VALUE` lines (unit files and environment files), comments and sections dropped; a key
/// given more than once keeps its values in order.
fn key_values(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.starts_with('[') {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            found.entry(key.trim().to_string()).or_default().push(value.trim().to_string());
        }
    }
    found
}

#[test]
fn systemd_unit_runs_gantry_with_its_environment_file() {
    let unit = key_values(&read("systemd/gantry.service"));
    let one = |key: &str| -> &str {
        let values = unit.get(key).unwrap_or_else(|| panic!("gantry.service has no {key}="));
        values.last().expect("a value")
    };
    let exec: Vec<&str> = one("ExecStart").split_whitespace().collect();
    assert!(exec.first().is_some_and(|b| b.ends_with("/gantry")), "ExecStart runs gantry: {exec:?}");
    assert_eq!(exec.get(1), Some(&"run"), "ExecStart runs `gantry run`: {exec:?}");
    assert_eq!(one("Type"), "simple");
    assert_eq!(one("User"), "gantry");
    assert_eq!(one("Restart"), "on-failure");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(one("ProtectSystem"), "strict");
    assert!(one("LimitNOFILE").parse::<u64>().is_ok_and(|n| n >= 65536), "LimitNOFILE");
    // No capability while every default port is above 1024.
    assert!(PORTS.iter().all(|p| p.number > 1024));
    assert!(!unit.contains_key("AmbientCapabilities"), "AmbientCapabilities is needed only for ports below 1024");

    let env_file = one("EnvironmentFile").trim_start_matches('-');
    let env_name = Path::new(env_file).file_name().expect("EnvironmentFile name").to_string_lossy().to_string();
    let env = key_values(&read(&format!("systemd/{env_name}")));
    let state_dir = format!("/var/lib/{}", one("StateDirectory"));
    assert_eq!(
        env.get("GANTRY_DATA_DIR").and_then(|v| v.last()),
        Some(&state_dir),
        "the data dir is the StateDirectory"
    );
    assert!(
        unit.get("ReadWritePaths").into_iter().flatten().any(|p| p.trim_start_matches('-') == state_dir),
        "ReadWritePaths does not name {state_dir}"
    );
    for port in &PORTS {
        if let Some(value) = env.get(port.env).and_then(|v| v.last()) {
            assert_eq!(socket_port(value, port.env).port(), port.number, "{} in {env_name}", port.env);
        }
    }
    // A join address without a token would bootstrap a separate cluster.
    assert_eq!(
        env.contains_key("GANTRY_JOIN"),
        env.contains_key("GANTRY_JOIN_TOKEN"),
        "set GANTRY_JOIN and its token together"
    );
}

// ---- local cluster script --------------------------------------------------------------------

#[test]
fn local_script_parses_and_uses_the_default_ports() {
    let path = deploy_dir().join("local/cluster.sh");
    let script = read("local/cluster.sh");
    assert_bash_syntax(&script, "deploy/local/cluster.sh");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).expect("metadata").permissions());
    assert!(mode & 0o111 != 0, "cluster.sh is not executable");

    assert!(script.contains("${GANTRY:-gantry}"), "the binary comes from ${{GANTRY:-gantry}}");
    for subcommand in ["up)", "down)", "status)"] {
        assert!(script.contains(subcommand), "no `{subcommand}` subcommand");
    }
    for address in ["127.0.1.1", "127.0.2.1", "127.0.3.1"] {
        assert!(script.contains(address), "no node on {address}");
    }
    for port in &PORTS {
        let default = format!("{}=${{{}:-{}}}", port.script_var, port.script_var, port.number);
        assert!(script.contains(&default), "cluster.sh does not default {} to {}", port.script_var, port.number);
    }
    // Nodes are stopped by the pids the script recorded, never by name.
    for forbidden in ["pkill", "killall"] {
        assert!(!script.contains(forbidden), "cluster.sh uses {forbidden}");
    }
}
