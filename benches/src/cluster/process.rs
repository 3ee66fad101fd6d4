//! Child processes the benchmark starts: started with their output in files, killed by pid with
//! SIGKILL (on purpose, or when dropped), restarted with the same arguments. Every pid is also
//! appended to a file (`pids` in the work dir) so that `run.sh` can kill, by pid, whatever a
//! killed benchmark could not.

use std::collections::HashSet;
use std::io::Write as _;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use anyhow::{Context as _, Result};

/// Ports handed out so far, so two calls never give the same one.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

fn fresh(port: u16) -> bool {
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    guard.get_or_insert_with(HashSet::new).insert(port)
}

/// A 127.0.0.1 port free for TCP right now (the process we start binds it a moment later).
pub fn free_tcp_port() -> Result<u16> {
    for _ in 0..100 {
        let port = TcpListener::bind(("127.0.0.1", 0)).and_then(|l| l.local_addr()).context("free tcp port")?.port();
        if fresh(port) {
            return Ok(port);
        }
    }
    anyhow::bail!("no fresh tcp port")
}

/// A 127.0.0.1 port free for UDP right now.
pub fn free_udp_port() -> Result<u16> {
    for _ in 0..100 {
        let port = UdpSocket::bind(("127.0.0.1", 0)).and_then(|s| s.local_addr()).context("free udp port")?.port();
        if fresh(port) {
            return Ok(port);
        }
    }
    anyhow::bail!("no fresh udp port")
}

/// One process we started (and restart on demand). Dropping it kills it.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    pid_file: PathBuf,
    child: Option<Child>,
}

impl Proc {
    /// Starts `program args` with `env` added; output appended to `dir/NAME.stdout|stderr`.
    pub fn start(
        name: &str,
        program: &Path,
        args: Vec<String>,
        env: Vec<(String, String)>,
        dir: &Path,
        pid_file: &Path,
    ) -> Result<Proc> {
        let mut proc = Proc {
            name: name.to_string(),
            program: program.to_path_buf(),
            args,
            env,
            stdout_path: dir.join(format!("{name}.stdout")),
            stderr_path: dir.join(format!("{name}.stderr")),
            pid_file: pid_file.to_path_buf(),
            child: None,
        };
        proc.launch()?;
        Ok(proc)
    }

    /// Starts the process (again), same arguments; a running one is killed first.
    pub fn launch(&mut self) -> Result<()> {
        self.kill9();
        let append = |path: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("open {}", path.display()))
        };
        let child = Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(append(&self.stdout_path)?)
            .stderr(append(&self.stderr_path)?)
            .spawn()
            .with_context(|| format!("start {} ({})", self.name, self.program.display()))?;
        let mut pids = append(&self.pid_file)?;
        writeln!(pids, "{}", child.id()).context("record pid")?;
        self.child = Some(child);
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL to its pid (std's `Child::kill`), then reap it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `None` while running (or never started); the exit status once it has exited by itself.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => Some(status.to_string()),
            Some(Err(error)) => Some(error.to_string()),
            _ => None,
        }
    }

    pub fn is_up(&self) -> bool {
        self.child.is_some()
    }

    /// User + system CPU time (clock ticks) the running process used so far.
    pub fn cpu_ticks(&self) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()?)).ok()?;
        // Fields after the parenthesised command name: state is the 1st, utime the 12th, stime the 13th.
        let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        Some(rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?)
    }

    /// The last `lines` lines of its stderr (for error messages).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}
