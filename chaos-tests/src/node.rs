//! One `gantry run` process on its own loopback address: spawn, SIGKILL, SIGTERM, SIGSTOP and
//! SIGCONT by pid, restart on the same data dir and ports. Every pid ever started is kept so the
//! teardown check can prove none survived.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::{Admin, HttpClient};
use crate::error::{ChaosError, Result};

/// What the workload and the checks need to know about a node; shared, never changes except
/// its generation (bumped at every start, so a reader can tell two processes apart).
#[derive(Debug)]
pub struct NodeInfo {
    pub index: usize,
    pub name: String,
    pub zone: String,
    pub http: SocketAddr,
    pub admin: SocketAddr,
    pub fabric: SocketAddrV4,
    generation: AtomicU64,
}

impl NodeInfo {
    pub fn admin(&self) -> Admin {
        Admin { addr: self.admin }
    }

    /// Which process of this node is running (1 for the first start, +1 per restart).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn fabric(&self) -> crate::nft::Fabric {
        crate::nft::Fabric(self.fabric)
    }
}

/// A free TCP port on `ip` right now (the node binds it a moment later).
fn free_tcp(ip: Ipv4Addr) -> Result<u16> {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(ChaosError::io(format!("free tcp port on {ip}")))
}

fn free_udp(ip: Ipv4Addr) -> Result<u16> {
    UdpSocket::bind((ip, 0))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(ChaosError::io(format!("free udp port on {ip}")))
}

/// Sends `signal` (a name such as `STOP`) to `pid` with kill(1); the workspace forbids unsafe
/// code, so no libc call.
fn signal(pid: u32, signal: &str) -> Result<()> {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .map_err(ChaosError::io(format!("kill -{signal} {pid}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(ChaosError::Io {
            context: format!("kill -{signal} {pid}"),
            source: std::io::Error::other(status.to_string()),
        })
    }
}

/// True while `pid` names a process that is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the field after the parenthesised command name.
        Ok(stat) => {
            stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).is_some_and(|s| s != "Z")
        }
        Err(_) => false,
    }
}

/// The command line of `pid`, NUL separators turned into spaces.
pub fn pid_cmdline(pid: u32) -> Option<String> {
    std::fs::read(format!("/proc/{pid}/cmdline")).ok().map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
}

#[derive(Debug)]
pub struct Node {
    pub info: Arc<NodeInfo>,
    binary: PathBuf,
    args: Vec<String>,
    data_dir: PathBuf,
    log_path: PathBuf,
    stdout_path: PathBuf,
    child: Option<Child>,
    started_pids: Vec<u32>,
    paused: bool,
    /// The Raft node id, once learned from `/v1/status`.
    pub id: Option<u64>,
}

/// How to start one node.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub index: usize,
    pub name: String,
    pub zone: String,
    pub ip: Ipv4Addr,
    /// (a member's fabric address, join token); `None` bootstraps a new cluster.
    pub join: Option<(SocketAddrV4, String)>,
}

impl Node {
    /// Picks free ports on the spec's address and starts the process.
    pub fn spawn(binary: &Path, dir: &Path, spec: NodeSpec) -> Result<Node> {
        let ip = spec.ip;
        let http = SocketAddr::from((ip, free_tcp(ip)?));
        let admin = SocketAddr::from((ip, free_tcp(ip)?));
        let https = SocketAddr::from((ip, free_tcp(ip)?));
        let fabric = SocketAddrV4::new(ip, free_udp(ip)?);
        let node_dir = dir.join(&spec.name);
        std::fs::create_dir_all(&node_dir).map_err(ChaosError::io(format!("create {}", node_dir.display())))?;
        let data_dir = node_dir.join("data");
        let mut args: Vec<String> = vec![
            "run".into(),
            "--name".into(),
            spec.name.clone(),
            "--zone".into(),
            spec.zone.clone(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--http".into(),
            http.to_string(),
            "--https".into(),
            https.to_string(),
            "--admin".into(),
            admin.to_string(),
            "--fabric".into(),
            fabric.to_string(),
            // A harness killed without cleanup still leaves no node behind.
            "--exit-with-parent".into(),
            // Rolling restarts use SIGTERM; a short drain keeps the scenario inside its budget.
            "--drain-timeout".into(),
            "2s".into(),
        ];
        if let Some((member, token)) = &spec.join {
            // Kept on restarts too: a node on its data dir ignores it and rejoins by itself.
            args.extend(["--join".into(), member.to_string(), "--token".into(), token.clone()]);
        }
        let info = Arc::new(NodeInfo {
            index: spec.index,
            name: spec.name.clone(),
            zone: spec.zone.clone(),
            http,
            admin,
            fabric,
            generation: AtomicU64::new(0),
        });
        let mut node = Node {
            info,
            binary: binary.to_path_buf(),
            args,
            data_dir,
            log_path: node_dir.join("gantry.log"),
            stdout_path: node_dir.join("stdout.log"),
            child: None,
            started_pids: Vec::new(),
            paused: false,
            id: None,
        };
        node.launch()?;
        Ok(node)
    }

    /// Starts the process (again) with the same arguments, data dir and ports.
    pub fn launch(&mut self) -> Result<()> {
        let append = |path: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(ChaosError::io(format!("open {}", path.display())))
        };
        let child = Command::new(&self.binary)
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(append(&self.stdout_path)?)
            .stderr(append(&self.log_path)?)
            .spawn()
            .map_err(|source| ChaosError::Spawn { what: format!("gantry node {}", self.info.name), source })?;
        self.started_pids.push(child.id());
        self.child = Some(child);
        self.paused = false;
        self.info.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.info.name
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Every pid this node ever had.
    pub fn started_pids(&self) -> &[u32] {
        &self.started_pids
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// SIGKILL, as a crash or a pulled plug would; reaps the process.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL also ends a stopped process; no SIGCONT needed first.
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// SIGTERM: the node drains and exits by itself.
    pub fn send_term(&mut self) -> Result<()> {
        let Some(pid) = self.pid() else { return Ok(()) };
        if self.paused {
            signal(pid, "CONT")?;
            self.paused = false;
        }
        signal(pid, "TERM")
    }

    /// Waits for the process to exit; SIGKILL (and an error) if it has not within `bound`.
    pub async fn wait_exit(&mut self, bound: Duration) -> Result<Duration> {
        let started = Instant::now();
        while started.elapsed() < bound {
            if !self.is_running() {
                self.kill9();
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        self.kill9();
        Err(ChaosError::Timeout {
            what: format!("node {} to exit after SIGTERM", self.info.name),
            waited_ms: bound.as_millis() as u64,
        })
    }

    /// SIGSTOP: the process holds its sockets but answers nothing (a gray failure).
    pub fn pause(&mut self) -> Result<()> {
        if let Some(pid) = self.pid() {
            signal(pid, "STOP")?;
            self.paused = true;
        }
        Ok(())
    }

    /// SIGCONT.
    pub fn resume(&mut self) -> Result<()> {
        if let Some(pid) = self.pid() {
            signal(pid, "CONT")?;
        }
        self.paused = false;
        Ok(())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The join token a bootstrap node printed on stdout.
    pub fn join_token(&self) -> Option<String> {
        let stdout = std::fs::read_to_string(&self.stdout_path).unwrap_or_default();
        stdout.split_whitespace().find(|w| w.starts_with("gtj1.")).map(str::to_string)
    }

    /// The admin token a bootstrap node wrote into its data dir.
    pub fn admin_token(&self) -> Option<String> {
        std::fs::read_to_string(self.data_dir.join("admin-token")).ok().map(|t| t.trim().to_string())
    }

    /// Waits until `/readyz` answers 200 (leader known, committed config served).
    pub async fn wait_ready(&mut self, client: &HttpClient, bound: Duration) -> Result<Duration> {
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(ChaosError::ExitedEarly {
                        what: format!("node {}", self.info.name),
                        status: status.to_string(),
                        log_tail: self.log_tail(),
                    });
                }
            }
            if self.info.admin().ready(client).await {
                return Ok(started.elapsed());
            }
            if started.elapsed() > bound {
                return Err(ChaosError::Timeout {
                    what: format!("node {} to be ready; last log lines:\n{}", self.info.name, self.log_tail()),
                    waited_ms: bound.as_millis() as u64,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}
