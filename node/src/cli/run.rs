//! `gantry run`: start the node, become a cluster member (bootstrap, join or restart), serve
//! every committed config revision, apply `-c FILE` at start and on SIGHUP, drain on SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use gantry_proto::config::{parse_document, Document};
use gantry_proto::{ConfigError, Problem};
use tokio::signal::unix::{signal, SignalKind};

use super::RunArgs;
use crate::admin::{self, AdminState};
use crate::cluster::config::{ApplyError, ConfigWriter};
use crate::cluster::{Cluster, ClusterSettings, JoinTokenText, RaftTuning};
use crate::dataplane::{Dataplane, NodeSettings, Snapshot};
use crate::gossip::GossipNode;
use crate::health::HealthSupervisor;
use crate::proxy::{ConnectionTracker, ListenerSet};
use crate::telemetry::{init_logging, Metrics};

/// Exit code for a config that cannot be served.
const EXIT_BAD_CONFIG: i32 = 2;
/// Exit code for any other start-up failure (including a refused join).
const EXIT_START_FAILED: i32 = 1;

pub fn run(args: RunArgs) -> i32 {
    init_logging(args.log_format);
    disable_transparent_huge_pages();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return EXIT_START_FAILED;
        }
    };
    runtime.block_on(async move {
        match serve(args).await {
            Ok(()) => 0,
            Err(StartError::Config(message)) => {
                eprintln!("error: {message}");
                EXIT_BAD_CONFIG
            }
            Err(StartError::Other(error)) => {
                eprintln!("error: {error:#}");
                EXIT_START_FAILED
            }
        }
    })
}

/// Turns transparent huge pages off for this process, as Redis does. Where THP is `always`
/// (the default of many distributions), the first touch of each fresh 2 MiB of heap zeroes a whole
/// huge page on the touching thread: while the heap grew under 16 concurrent config writers that
/// was 40 % of the cluster thread's time, and held commits for 10–20 ms at a time (benches/README).
/// gantry's heap is tens of MiB, too small for huge pages to pay back.
fn disable_transparent_huge_pages() {
    if let Err(error) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(%error, "cannot turn transparent huge pages off");
    }
}

enum StartError {
    Config(String),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for StartError {
    fn from(error: anyhow::Error) -> Self {
        StartError::Other(error)
    }
}

/// The parts of a running node that installing a revision touches.
struct Node {
    dataplane: Arc<Dataplane>,
    listeners: ListenerSet,
    health: HealthSupervisor,
    gossip: Option<Arc<GossipNode>>,
}

impl Node {
    /// Compiles, binds and installs `document` as `revision`; on any problem nothing changes.
    fn install(&mut self, document: Document, revision: u64) -> Result<Arc<Snapshot>, Vec<Problem>> {
        let snapshot = self.dataplane.prepare_revision(document, revision).map_err(|e| e.problems)?;
        let sockets = self.listeners.bind_new(&snapshot)?;
        let snapshot = self.dataplane.install(snapshot);
        self.listeners.apply(&snapshot, sockets);
        self.health.follow(&snapshot, &self.dataplane.metrics, self.gossip.clone());
        Ok(snapshot)
    }
}

fn read_config(path: &Path) -> Result<Document, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        problems: vec![Problem::new("", format!("cannot read {}: {e}", path.display()))],
    })?;
    parse_document(&text)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "gantry".to_string())
}

/// `HOST:PORT` others use for a local address: the advertised host, the bound IP, or (for a
/// wildcard bind) the host name, which peers must be able to resolve.
fn advertised(advertise: &Option<String>, bound: SocketAddr) -> String {
    match advertise {
        Some(host) => format!("{host}:{}", bound.port()),
        None if !bound.ip().is_unspecified() => bound.to_string(),
        None => {
            let host = host_name();
            tracing::warn!(%bound, %host, "wildcard bind without --advertise: peers will dial this node by its host name");
            format!("{host}:{}", bound.port())
        }
    }
}

async fn serve(args: RunArgs) -> Result<(), StartError> {
    // Watch signals before anything can report ready, so an early SIGTERM drains instead of
    // killing the process.
    let mut hangup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let name = args.name.clone().unwrap_or_else(host_name);
    let settings = NodeSettings {
        name: name.clone(),
        zone: Some(args.zone.clone()),
        default_http: args.http,
        default_https: args.https,
    };
    // A bad file is reported before anything is created on disk.
    let file_document = match &args.config {
        Some(path) => Some(read_config(path).map_err(|e| StartError::Config(format!("{}: {e}", path.display())))?),
        None => None,
    };
    if args.print_config {
        let effective = serde_json::json!({
            "node": { "name": name, "zone": args.zone, "data_dir": args.data_dir,
                      "http": args.http.to_string(), "https": args.https.to_string(), "admin": args.admin.to_string(),
                      "fabric": args.fabric.to_string(), "advertise": args.advertise, "join": args.join,
                      "drain_timeout_ms": args.drain_timeout.as_millis() as u64 },
            "config": file_document.clone().unwrap_or_default(),
        });
        println!("{}", serde_json::to_string_pretty(&effective).unwrap_or_default());
        return Ok(());
    }
    // Checked here rather than by clap: `requires` is not enforced for values from the
    // environment, and a join without a token must never quietly bootstrap a second cluster.
    let join = match (&args.join, &args.token) {
        (Some(address), Some(token)) => Some((
            address.clone(),
            JoinTokenText::parse(token).map_err(|e| StartError::Other(anyhow::anyhow!("--token: {e}")))?,
        )),
        (Some(_), None) => {
            return Err(StartError::Other(anyhow::anyhow!(
                "--join needs --token (or GANTRY_JOIN_TOKEN): create one with `gantry ctl token create`"
            )))
        }
        (None, Some(_)) => {
            return Err(StartError::Other(anyhow::anyhow!(
                "--token needs --join (or GANTRY_JOIN): the fabric address of any member"
            )))
        }
        (None, None) => None,
    };
    let cluster_settings = ClusterSettings {
        name: name.clone(),
        zone: args.zone.clone(),
        data_dir: args.data_dir.clone(),
        fabric_bind: args.fabric,
        fabric_advertise: advertised(&args.advertise, args.fabric),
        admin_advertise: advertised(&args.advertise, args.admin),
        gossip_advertise: advertised(&args.advertise, args.gossip_addr()),
        join,
        raft: RaftTuning { snapshot_logs: args.raft_snapshot_logs, ..RaftTuning::default() },
        voter_grace: args.voter_grace,
    };
    let (cluster, bootstrap) = Cluster::start(cluster_settings).await.context("cannot start the cluster member")?;
    if let Some(output) = &bootstrap {
        let token_path = cluster.data_dir.admin_token();
        println!("gantry: new cluster {} created; this is node 1", cluster.cluster_id);
        println!("gantry: admin token written to {}", token_path.display());
        println!(
            "gantry: join other nodes with: gantry run --join {} --token {}",
            cluster.self_info().fabric,
            output.join_token
        );
        tracing::info!(cluster = %cluster.cluster_id, admin_token_file = %token_path.display(), "cluster bootstrapped");
    }
    tracing::info!(node_id = cluster.node_id, cluster = %cluster.cluster_id, zone = %cluster.zone, "cluster member started");

    let metrics = Metrics::new();
    let dataplane = Arc::new(Dataplane::new(settings, metrics));
    let tracker = Arc::new(ConnectionTracker::default());
    let writer = ConfigWriter::new(cluster.clone(), dataplane.clone(), tokio::runtime::Handle::current());
    // Gossip is not authoritative: a node without it still serves, routing on its own checks.
    let gossip_advertise = cluster.self_info().gossip;
    let gossip = match GossipNode::start(&cluster, args.gossip_addr(), &gossip_advertise, args.http).await {
        Ok(gossip) => {
            gossip.spawn_publisher(cluster.clone(), dataplane.clone(), tracker.clone());
            cluster.set_gossip(gossip.clone());
            Some(gossip)
        }
        Err(error) => {
            tracing::error!(%error, "gossip did not start; liveness and shared health checks are off on this node");
            None
        }
    };
    let node = Node {
        dataplane: dataplane.clone(),
        listeners: ListenerSet::new(dataplane.clone(), tracker.clone()),
        health: HealthSupervisor::default(),
        gossip: gossip.clone(),
    };
    let mut follower = tokio::spawn(follow_revisions(cluster.clone(), node));

    if let (Some(path), Some(document)) = (&args.config, file_document) {
        apply_file(&writer, path, document)
            .await
            .map_err(|e| StartError::Config(format!("{}: {e}", path.display())))?;
    }

    let admin_listener = admin::bind(args.admin)
        .await
        .with_context(|| format!("cannot listen on admin address {} (set --admin)", args.admin))?;
    tracing::info!(address = %args.admin, "admin API listening");
    let admin_state = Arc::new(AdminState {
        dataplane: dataplane.clone(),
        tracker: tracker.clone(),
        started: Instant::now(),
        config_file: args.config.as_ref().map(|p| p.display().to_string()),
        writer: writer.clone(),
        cluster: cluster.clone(),
        left: tokio::sync::Notify::new(),
    });
    // Re-registered on the cluster's thread, which serves it (see `spawn_on_cluster_thread`).
    let admin_listener = admin_listener.into_std().context("cannot hand the admin socket to the cluster thread")?;
    let served_state = admin_state.clone();
    cluster.spawn_on_cluster_thread(async move {
        match tokio::net::TcpListener::from_std(admin_listener) {
            Ok(listener) => admin::serve(listener, served_state).await,
            Err(error) => tracing::error!(%error, "cannot serve the admin API"),
        }
    });

    tracing::info!(node = %dataplane.settings.name, "gantry is running");
    let orphaned = watch_parent(args.exit_with_parent);
    tokio::pin!(orphaned);
    loop {
        tokio::select! {
            _ = hangup.recv() => match &args.config {
                Some(path) => match read_config(path) {
                    Ok(document) => match apply_file(&writer, path, document).await {
                        Ok(revision) => tracing::info!(file = %path.display(), revision, "config file committed"),
                        Err(error) => tracing::error!(file = %path.display(), "config reload refused; still serving the previous revision: {error}"),
                    },
                    Err(error) => {
                        dataplane.record_failure(error.problems.clone());
                        tracing::error!(file = %path.display(), "config reload refused; still serving the previous revision: {error}");
                    }
                },
                None => tracing::warn!("SIGHUP ignored: no config file (-c FILE)"),
            },
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = &mut orphaned => {
                tracing::warn!("the supervising process is gone; stopping");
                break;
            }
            _ = admin_state.left() => {
                tracing::info!("this node left the cluster");
                break;
            }
            result = &mut follower => {
                tracing::error!(?result, "the revision follower stopped");
                break;
            }
        }
    }
    tracing::info!(open_connections = tracker.active(), deadline = ?args.drain_timeout, "draining: no new connections; finishing in-flight requests");
    tracker.start_draining();
    if tracker.wait_idle(args.drain_timeout).await {
        tracing::info!("drained; exiting");
    } else {
        tracing::warn!(open_connections = tracker.active(), "drain deadline passed; closing the remaining connections");
    }
    follower.abort();
    if let Some(gossip) = gossip {
        if let Ok(gossip) = Arc::try_unwrap(gossip) {
            let _ = gossip.gossip.shutdown().await;
        }
    }
    cluster.shutdown().await;
    Ok(())
}

/// Resolves when the parent process changes (it exited and this one was re-parented); never
/// when `enabled` is false.
async fn watch_parent(enabled: bool) {
    if !enabled {
        return std::future::pending().await;
    }
    let parent = std::os::unix::process::parent_id();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    loop {
        tick.tick().await;
        if std::os::unix::process::parent_id() != parent {
            return;
        }
    }
}

/// Commits the file's document unless the cluster already serves exactly that document.
async fn apply_file(writer: &ConfigWriter, path: &Path, document: Document) -> Result<u64, ConfigError> {
    let current = writer.cluster.state();
    if let Some(revision) = current.current() {
        if committed_document(&revision.config_json).is_ok_and(|served| served == document) {
            tracing::info!(file = %path.display(), revision = revision.revision, "config file unchanged; nothing to commit");
            return Ok(revision.revision);
        }
    }
    let result = writer.apply(document, None).await;
    result.map_err(|error| {
        let problems = match error {
            ApplyError::Invalid(problems) => problems,
            other => vec![Problem::new("", other.to_string())],
        };
        writer.dataplane.record_failure(problems.clone());
        ConfigError { problems }
    })
}

/// A committed revision's document: canonical JSON that was validated before it was proposed,
/// so plain JSON decoding is enough (the full parser and validator are the fallback).
fn committed_document(json: &str) -> Result<Document, ConfigError> {
    serde_json::from_str(json).or_else(|_| parse_document(json))
}

/// Installs every config revision the cluster commits, in order, as it is applied here.
async fn follow_revisions(cluster: Arc<Cluster>, mut node: Node) {
    let mut applied = cluster.subscribe();
    let mut installed = 0u64;
    loop {
        let current = applied.borrow_and_update().state.current().cloned();
        if let Some(revision) = current.filter(|r| r.revision != installed) {
            match committed_document(&revision.config_json) {
                Ok(document) => match node.install(document, revision.revision) {
                    Ok(_) => tracing::info!(revision = revision.revision, "serving config revision"),
                    Err(problems) => {
                        tracing::error!(
                            revision = revision.revision,
                            ?problems,
                            "cannot serve the committed revision here; still serving the previous one"
                        );
                        node.dataplane.record_failure(problems);
                    }
                },
                Err(error) => {
                    tracing::error!(revision = revision.revision, %error, "committed revision does not parse");
                    node.dataplane.record_failure(error.problems);
                }
            }
            installed = revision.revision;
        }
        if applied.changed().await.is_err() {
            return;
        }
    }
}
