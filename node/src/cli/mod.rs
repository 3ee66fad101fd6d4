//! The command line: `gantry run` starts a node, `gantry demo` a demo on this machine. Flags follow DESIGN.md §10; every listen
//! address is a flag.

pub mod ctl;
mod run;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use gantry_proto::config::parse_duration;

use crate::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(name = "gantry", version, about = "Load balancer, API gateway and mesh proxy in one binary")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node. With -c FILE it serves FILE and re-reads it on SIGHUP.
    Run(Box<RunArgs>),
    /// Operate a cluster through a node's admin API.
    Ctl(ctl::CtlArgs),
    /// Start a demo on this machine: demo backends, a node with a sample config, what to try.
    Demo(crate::demo::DemoArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Config file (YAML or JSON).
    #[arg(short = 'c', long = "config", env = "GANTRY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Node name (default: the host name).
    #[arg(long, env = "GANTRY_NAME")]
    pub name: Option<String>,
    /// Zone this node runs in: voters spread over zones, and services with
    /// `locality: prefer_same_zone` prefer endpoints here.
    #[arg(long, env = "GANTRY_ZONE", default_value = "default")]
    pub zone: String,
    /// Directory for the node's state.
    #[arg(long, env = "GANTRY_DATA_DIR", default_value = "gantry-data")]
    pub data_dir: PathBuf,
    /// Address of http listeners that give none.
    #[arg(long, env = "GANTRY_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http: SocketAddr,
    /// Address of https listeners that give none.
    #[arg(long, env = "GANTRY_HTTPS_ADDR", default_value = "0.0.0.0:8443")]
    pub https: SocketAddr,
    /// Admin API, /metrics and probes. Keep it on loopback unless a firewall guards it.
    #[arg(long, env = "GANTRY_ADMIN_ADDR", default_value = "127.0.0.1:9900")]
    pub admin: SocketAddr,
    #[arg(long, value_enum, env = "GANTRY_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// On SIGTERM, how long in-flight requests get to finish.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub drain_timeout: std::time::Duration,
    /// Print the effective settings and config as JSON, then exit (the config is validated).
    #[arg(long)]
    pub print_config: bool,
    /// QUIC fabric (UDP): Raft, joins and everything else between nodes.
    #[arg(long, env = "GANTRY_FABRIC_ADDR", default_value = "0.0.0.0:7000")]
    pub fabric: SocketAddr,
    /// Gossip (UDP, encrypted with the cluster key): liveness, load, endpoint health. Default:
    /// the --fabric address with the next port (0.0.0.0:7001 with the default fabric).
    #[arg(long, env = "GANTRY_GOSSIP_ADDR")]
    pub gossip: Option<SocketAddr>,
    /// Host or IP other nodes use to reach this one (default: the --fabric IP when it is not
    /// 0.0.0.0).
    #[arg(long, env = "GANTRY_ADVERTISE")]
    pub advertise: Option<String>,
    /// Fabric address (HOST:PORT) of any member of the cluster to join.
    #[arg(long, env = "GANTRY_JOIN", requires = "token")]
    pub join: Option<String>,
    /// Join token (from the first node's output or `gantry ctl token create`).
    #[arg(long, env = "GANTRY_JOIN_TOKEN")]
    pub token: Option<String>,
    /// A voter unreachable for this long is replaced by a live node.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub voter_grace: std::time::Duration,
    /// Drain and exit when the process that started this one goes away (for supervisors such as
    /// `gantry demo` and test harnesses, so a killed supervisor leaves no orphan node).
    #[arg(long, hide = true)]
    pub exit_with_parent: bool,
    /// Raft builds a snapshot and compacts its log every this many entries.
    #[arg(long, default_value_t = 1000, hide = true)]
    pub raft_snapshot_logs: u64,
}

impl RunArgs {
    /// The gossip address: given, or the fabric's with the next port.
    pub fn gossip_addr(&self) -> SocketAddr {
        self.gossip.unwrap_or_else(|| SocketAddr::new(self.fabric.ip(), self.fabric.port().wrapping_add(1).max(1)))
    }
}

/// Runs `future` on a new runtime; an error is printed as one line and gives exit code 1.
pub fn run_to_exit_code(multi_thread: bool, future: impl std::future::Future<Output = anyhow::Result<()>>) -> i32 {
    let runtime = if multi_thread {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return 1;
        }
    };
    match runtime.block_on(future) {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("error: {error:#}");
            1
        }
    }
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Ctl(args) => ctl::run(args),
        Command::Demo(args) => {
            crate::telemetry::init_logging(LogFormat::Text);
            crate::demo::run(args)
        }
    }
}
