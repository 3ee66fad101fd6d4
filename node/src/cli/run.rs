//! `gantry run`: start the node, load the config file, serve, reload on SIGHUP, drain on
//! SIGTERM or Ctrl-C.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use gantry_proto::config::{parse_document, Document};
use gantry_proto::{ConfigError, Problem};
use tokio::signal::unix::{signal, SignalKind};

use super::RunArgs;
use crate::admin::{self, AdminState};
use crate::dataplane::{Dataplane, NodeSettings, Snapshot};
use crate::health::HealthSupervisor;
use crate::proxy::{ConnectionTracker, ListenerSet};
use crate::telemetry::{init_logging, Metrics};

/// Exit code for a config that cannot be served.
const EXIT_BAD_CONFIG: i32 = 2;
/// Exit code for any other start-up failure.
const EXIT_START_FAILED: i32 = 1;

pub fn run(args: RunArgs) -> i32 {
    init_logging(args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
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

enum StartError {
    Config(String),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for StartError {
    fn from(error: anyhow::Error) -> Self {
        StartError::Other(error)
    }
}

/// The parts of a running node that a reload touches.
struct Node {
    dataplane: Arc<Dataplane>,
    listeners: ListenerSet,
    health: HealthSupervisor,
}

impl Node {
    /// Compiles, binds and installs `document`; on any problem nothing changes.
    fn apply(&mut self, document: Document) -> Result<Arc<Snapshot>, Vec<Problem>> {
        let snapshot = self.dataplane.prepare(document).map_err(|e| e.problems)?;
        let sockets = self.listeners.bind_new(&snapshot)?;
        let snapshot = self.dataplane.install(snapshot);
        self.listeners.apply(&snapshot, sockets);
        self.health.follow(&snapshot, &self.dataplane.metrics);
        Ok(snapshot)
    }

    /// Reads the file and applies it; a refused file is logged and recorded for /v1/status.
    fn reload(&mut self, path: &Path) -> Result<Arc<Snapshot>, ConfigError> {
        let result = read_config(path)
            .and_then(|doc| self.apply(doc).map_err(|problems| ConfigError { problems }));
        if let Err(error) = &result {
            self.dataplane.record_failure(error.problems.clone());
        }
        result
    }
}

fn read_config(path: &Path) -> Result<Document, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        problems: vec![Problem::new(
            "",
            format!("cannot read {}: {e}", path.display()),
        )],
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

async fn serve(args: RunArgs) -> Result<(), StartError> {
    let settings = NodeSettings {
        name: args.name.clone().unwrap_or_else(host_name),
        zone: args.zone.clone(),
        default_http: args.http,
        default_https: args.https,
    };
    if args.print_config {
        let document = match &args.config {
            Some(path) => read_config(path)
                .map_err(|e| StartError::Config(format!("{}: {e}", path.display())))?,
            None => Document::default(),
        };
        let effective = serde_json::json!({
            "node": { "name": settings.name, "zone": settings.zone, "data_dir": args.data_dir,
                      "http": args.http.to_string(), "https": args.https.to_string(), "admin": args.admin.to_string(),
                      "drain_timeout_ms": args.drain_timeout.as_millis() as u64 },
            "config": document,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&effective).unwrap_or_default()
        );
        return Ok(());
    }
    // Watch signals before anything can report ready, so an early SIGTERM drains instead of
    // killing the process.
    let mut hangup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    std::fs::create_dir_all(&args.data_dir).with_context(|| {
        format!(
            "cannot create data dir {} (set --data-dir)",
            args.data_dir.display()
        )
    })?;

    let metrics = Metrics::new();
    let dataplane = Arc::new(Dataplane::new(settings, metrics));
    let tracker = Arc::new(ConnectionTracker::default());
    let mut node = Node {
        dataplane: dataplane.clone(),
        listeners: ListenerSet::new(dataplane.clone(), tracker.clone()),
        health: HealthSupervisor::default(),
    };
    if let Some(path) = &args.config {
        let snapshot = node
            .reload(path)
            .map_err(|e| StartError::Config(format!("{}: {e}", path.display())))?;
        tracing::info!(file = %path.display(), revision = snapshot.revision, "config loaded");
    } else {
        tracing::warn!("no config file given (-c FILE): serving nothing but the admin API");
    }

    let admin_listener = admin::bind(args.admin).await.with_context(|| {
        format!(
            "cannot listen on admin address {} (set --admin)",
            args.admin
        )
    })?;
    tracing::info!(address = %args.admin, "admin API listening");
    let admin_state = Arc::new(AdminState {
        dataplane: dataplane.clone(),
        tracker: tracker.clone(),
        started: Instant::now(),
        config_file: args.config.as_ref().map(|p| p.display().to_string()),
    });
    tokio::spawn(admin::serve(admin_listener, admin_state));

    tracing::info!(node = %dataplane.settings.name, "gantry is running");
    loop {
        tokio::select! {
            _ = hangup.recv() => match &args.config {
                Some(path) => match node.reload(path) {
                    Ok(snapshot) => tracing::info!(file = %path.display(), revision = snapshot.revision, "config reloaded"),
                    Err(error) => tracing::error!(file = %path.display(), "config reload refused; still serving the previous revision: {error}"),
                },
                None => tracing::warn!("SIGHUP ignored: no config file (-c FILE)"),
            },
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    tracing::info!(open_connections = tracker.active(), deadline = ?args.drain_timeout, "draining: no new connections; finishing in-flight requests");
    tracker.start_draining();
    if tracker.wait_idle(args.drain_timeout).await {
        tracing::info!("drained; exiting");
    } else {
        tracing::warn!(
            open_connections = tracker.active(),
            "drain deadline passed; closing the remaining connections"
        );
    }
    Ok(())
}
