//! Config revisions become data planes here: a document is compiled into an immutable
//! [`Snapshot`] (route tables, services, TLS configs, resolved listener addresses) and swapped in
//! atomically; requests already running keep the snapshot they started with.

mod route;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use gantry_proto::config::{Document, ListenerLimits, ListenerProtocol};
use gantry_proto::{ConfigError, Problem};

pub use route::{Destination, RetryPolicy, RouteRuntime};

use crate::proxy::tls;
use crate::routing::RouteTable;
use crate::telemetry::{Metrics, RouteMetrics};
use crate::upstream::{HealthRegistry, ServiceRuntime, UpstreamClient};

/// What the node itself contributes to compiling a document.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    pub name: String,
    pub zone: Option<String>,
    /// Bind address of http listeners that name none.
    pub default_http: SocketAddr,
    /// Bind address of https listeners that name none.
    pub default_https: SocketAddr,
}

/// One listener of a revision, with its address resolved.
#[derive(Debug)]
pub struct ListenerPlan {
    pub name: Arc<str>,
    pub protocol: ListenerProtocol,
    pub address: SocketAddr,
    pub limits: ListenerLimits,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Http and https: the routes that apply here.
    pub routes: Option<RouteTable<Arc<RouteRuntime>>>,
    /// Tcp: the service traffic goes to.
    pub service: Option<Arc<ServiceRuntime>>,
}

/// An immutable, compiled config revision.
#[derive(Debug)]
pub struct Snapshot {
    pub revision: u64,
    pub document: Arc<Document>,
    pub services: HashMap<String, Arc<ServiceRuntime>>,
    pub listeners: HashMap<SocketAddr, ListenerPlan>,
    /// Metric handles for requests that matched no route.
    pub unrouted_metrics: RouteMetrics,
}

impl Snapshot {
    pub fn listener_at(&self, address: &SocketAddr) -> Option<&ListenerPlan> {
        self.listeners.get(address)
    }
}

/// Compiles `document` for this node. Reads certificate files, so it can fail on a document
/// that validated: those problems carry the document path too. With `metrics` None (a trial
/// compile) the routes count into detached handles.
pub fn compile(
    document: Document,
    revision: u64,
    settings: &NodeSettings,
    registry: &HealthRegistry,
    metrics: Option<&Metrics>,
) -> Result<Snapshot, ConfigError> {
    let route_metrics = |name: &str| metrics.map_or_else(RouteMetrics::detached, |m| m.route(name));
    let mut problems = Vec::new();
    let health = registry.adopt(&document);
    let services: HashMap<String, Arc<ServiceRuntime>> = document
        .services
        .iter()
        .map(|s| {
            let runtime = ServiceRuntime::compile(s, &health, settings.zone.as_deref(), UpstreamClient::for_service(s));
            (s.name.clone(), Arc::new(runtime))
        })
        .collect();

    let mut keys = HashMap::new();
    for (i, cert) in document.certificates.iter().enumerate() {
        match tls::load_certificate(cert, &format!("certificates[{i}]")) {
            Ok(key) => {
                keys.insert(cert.name.as_str(), (cert, key));
            }
            Err(problem) => problems.push(problem),
        }
    }

    let routes: Vec<(usize, Arc<RouteRuntime>)> = document
        .routes
        .iter()
        .enumerate()
        .filter_map(|(i, r)| RouteRuntime::new(r, &services, route_metrics(&r.name)).map(|rt| (i, Arc::new(rt))))
        .collect();

    let mut listeners = HashMap::new();
    for (i, listener) in document.listeners.iter().enumerate() {
        let path = format!("listeners[{i}]");
        let address = match (&listener.address, listener.protocol) {
            (Some(a), _) => match a.parse() {
                Ok(a) => a,
                Err(_) => continue, // already reported by validation
            },
            (None, ListenerProtocol::Https) => settings.default_https,
            (None, _) => settings.default_http,
        };
        if let Some(other) = listeners.get(&address).map(|p: &ListenerPlan| p.name.clone()) {
            problems.push(Problem::new(
                format!("{path}.address"),
                format!("{address} is also the address of listener \"{other}\" (check --http and --https)"),
            ));
            continue;
        }
        let tls = if listener.protocol == ListenerProtocol::Https {
            let certs: Vec<_> = listener
                .certificates
                .iter()
                .filter_map(|name| keys.get(name.as_str()).map(|(c, k)| (*c, k.clone())))
                .collect();
            if certs.len() != listener.certificates.len() {
                continue; // a certificate failed to load: reported above
            }
            match tls::server_config(&certs) {
                Ok(config) => Some(config),
                Err(e) => {
                    problems.push(Problem::new(format!("{path}.certificates"), format!("TLS set-up failed: {e}")));
                    continue;
                }
            }
        } else {
            None
        };
        let routes = if listener.protocol == ListenerProtocol::Tcp {
            None
        } else {
            let applicable = routes.iter().filter(|(i, _)| {
                let names = &document.routes[*i].listeners;
                names.is_empty() || names.contains(&listener.name)
            });
            match RouteTable::compile(applicable.map(|(i, rt)| (&document.routes[*i].matcher, rt.clone()))) {
                Ok(table) => Some(table),
                Err(e) => {
                    problems.push(Problem::new("routes", format!("route table: {e}")));
                    continue;
                }
            }
        };
        listeners.insert(
            address,
            ListenerPlan {
                name: Arc::from(listener.name.as_str()),
                protocol: listener.protocol,
                address,
                limits: listener.limits.clone(),
                tls,
                routes,
                service: listener.service.as_ref().and_then(|s| services.get(s).cloned()),
            },
        );
    }
    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }
    Ok(Snapshot { revision, document: Arc::new(document), services, listeners, unrouted_metrics: route_metrics("") })
}

/// Outcome of the last attempt to load a config, for `/v1/status`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReloadStatus {
    pub at_unix_ms: u64,
    pub ok: bool,
    pub revision: u64,
    pub problems: Vec<Problem>,
}

/// The node's current data plane and what it knows about loading it.
#[derive(Debug)]
pub struct Dataplane {
    current: ArcSwap<Snapshot>,
    pub settings: NodeSettings,
    pub registry: HealthRegistry,
    pub metrics: Arc<Metrics>,
    last_reload: Mutex<Option<ReloadStatus>>,
}

impl Dataplane {
    /// A data plane serving `snapshot` (usually revision 0, the empty document, or the first).
    pub fn new(settings: NodeSettings, metrics: Arc<Metrics>) -> Self {
        let registry = HealthRegistry::default();
        let empty = Snapshot {
            revision: 0,
            document: Arc::new(Document::default()),
            services: HashMap::new(),
            listeners: HashMap::new(),
            unrouted_metrics: metrics.route(""),
        };
        Self { current: ArcSwap::from_pointee(empty), settings, registry, metrics, last_reload: Mutex::new(None) }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Compiles a document as the next revision to check it, never to install it: its routes
    /// register no metrics.
    pub fn trial(&self, document: Document) -> Result<Snapshot, ConfigError> {
        let revision = self.current.load().revision + 1;
        compile(document, revision, &self.settings, &self.registry, None)
    }

    /// Compiles a document as the given (cluster) revision without installing it.
    pub fn prepare_revision(&self, document: Document, revision: u64) -> Result<Snapshot, ConfigError> {
        compile(document, revision, &self.settings, &self.registry, Some(&self.metrics))
    }

    /// Installs a compiled snapshot; requests in flight finish on the one they hold. Routes the
    /// new revision does not have stop being exported.
    pub fn install(&self, snapshot: Snapshot) -> Arc<Snapshot> {
        let snapshot = Arc::new(snapshot);
        self.registry.remember(&snapshot.services);
        self.current.store(snapshot.clone());
        // "" is where requests no route matched are counted.
        let installed: HashSet<&str> =
            snapshot.document.routes.iter().map(|r| r.name.as_str()).chain(std::iter::once("")).collect();
        self.metrics.retain_routes(&installed);
        self.record(true, snapshot.revision, Vec::new());
        snapshot
    }

    /// Records a refused load; the current snapshot stays.
    pub fn record_failure(&self, problems: Vec<Problem>) {
        let revision = self.current.load().revision;
        self.record(false, revision, problems);
    }

    fn record(&self, ok: bool, revision: u64, problems: Vec<Problem>) {
        self.metrics.reload(ok, revision);
        let at_unix_ms =
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let status = ReloadStatus { at_unix_ms, ok, revision, problems };
        match self.last_reload.lock() {
            Ok(mut guard) => *guard = Some(status),
            Err(poisoned) => *poisoned.into_inner() = Some(status),
        }
    }

    pub fn last_reload(&self) -> Option<ReloadStatus> {
        match self.last_reload.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}
