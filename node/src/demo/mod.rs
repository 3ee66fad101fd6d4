//! `gantry demo`: a three-node cluster on this machine in one command, exactly as a user would
//! build one: node 1 bootstraps in zone a (127.0.1.1), nodes 2 and 3 join it in zones b
//! (127.0.2.1) and c (127.0.3.1) with the printed token, two demo backends run per zone, and a
//! sample config with zone-local routing is applied through the admin API. Ctrl-C stops every
//! process it started and removes its files unless `--keep`.

mod backend;

use std::io::BufRead as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Port of each node's HTTP listener (on its zone's address).
    #[arg(long, default_value_t = 8080)]
    pub http_port: u16,
    /// Port of each node's admin API.
    #[arg(long, default_value_t = 9900)]
    pub admin_port: u16,
    /// Port of each node's QUIC fabric (UDP).
    #[arg(long, default_value_t = 7000)]
    pub fabric_port: u16,
    /// Keep the demo's data dirs and logs when it stops.
    #[arg(long)]
    pub keep: bool,
}

/// The demo's zones and the loopback address of each.
const ZONES: [(&str, Ipv4Addr); 3] =
    [("a", Ipv4Addr::new(127, 0, 1, 1)), ("b", Ipv4Addr::new(127, 0, 2, 1)), ("c", Ipv4Addr::new(127, 0, 3, 1))];

pub fn run(args: DemoArgs) -> i32 {
    crate::cli::run_to_exit_code(true, demo(args))
}

/// Child processes, stopped (by pid) and waited for on drop, whatever happens.
struct Nodes(Vec<Child>);

impl Nodes {
    fn stop(&mut self) {
        for child in &self.0 {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        }
        for child in &mut self.0 {
            for _ in 0..100 {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        self.0.clear();
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    // Watch signals first: a Ctrl-C during start-up must still stop the nodes and clean up.
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let dir = std::env::temp_dir().join(format!("gantry-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let result = run_demo(&args, &dir, &mut interrupt, &mut terminate).await;
    if args.keep {
        eprintln!("kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn run_demo(
    args: &DemoArgs,
    dir: &Path,
    interrupt: &mut tokio::signal::unix::Signal,
    terminate: &mut tokio::signal::unix::Signal,
) -> anyhow::Result<()> {
    let mut endpoints = Vec::new();
    for (zone, ip) in ZONES {
        for n in 1..=2 {
            let name = format!("web-{zone}{n}");
            let address = backend::start(name, zone, IpAddr::V4(ip))
                .await
                .with_context(|| format!("cannot start a demo backend on {ip} (is 127.0.0.0/8 routed to lo?)"))?;
            endpoints.push((address, zone));
        }
    }
    let executable = std::env::current_exe().context("cannot find the gantry executable")?;
    let mut nodes = Nodes(Vec::new());
    let mut join_token: Option<String> = None;
    for (index, (zone, ip)) in ZONES.iter().enumerate() {
        let name = format!("node-{zone}");
        let data_dir = dir.join(&name);
        let mut command = Command::new(&executable);
        command
            .args(["run", "--name", &name, "--zone", zone, "--exit-with-parent"])
            .args(["--http", &SocketAddr::new(IpAddr::V4(*ip), args.http_port).to_string()])
            .args(["--admin", &SocketAddr::new(IpAddr::V4(*ip), args.admin_port).to_string()])
            .args(["--fabric", &SocketAddr::new(IpAddr::V4(*ip), args.fabric_port).to_string()])
            .args(["--https", &SocketAddr::new(IpAddr::V4(*ip), 0).to_string()])
            .arg("--data-dir")
            .arg(&data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file(dir, &name)?);
        if let Some(token) = &join_token {
            let bootstrap = SocketAddr::new(IpAddr::V4(ZONES[0].1), args.fabric_port);
            command.args(["--join", &bootstrap.to_string(), "--token", token]);
        }
        let mut child = command.spawn().with_context(|| format!("cannot start {name}"))?;
        let stdout = child.stdout.take();
        nodes.0.push(child);
        if index == 0 {
            let Some(stdout) = stdout else { bail!("no stdout from the first node") };
            join_token = Some(read_join_token(stdout).await.context("the first node printed no join token")?);
        }
        let admin = SocketAddr::new(IpAddr::V4(*ip), args.admin_port);
        wait_ready(admin, nodes.0.last_mut(), dir, &name).await?;
    }
    let admin_token = std::fs::read_to_string(dir.join("node-a").join("admin-token"))
        .context("cannot read the admin token of the first node")?
        .trim()
        .to_string();
    let config_path = dir.join("demo.yaml");
    std::fs::write(&config_path, sample_config(&endpoints)).context("cannot write the demo config")?;
    let first_admin = SocketAddr::new(IpAddr::V4(ZONES[0].1), args.admin_port);
    let revision = backend::put_config(first_admin, &admin_token, &sample_config(&endpoints))
        .await
        .context("applying the demo config failed")?;
    for (_, ip) in ZONES {
        wait_revision(SocketAddr::new(IpAddr::V4(ip), args.admin_port), revision).await?;
    }
    // The leader promotes the joined learners to voters once they caught up.
    for _ in 0..300 {
        if backend::voters(first_admin).await == ZONES.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    print_guide(args, dir, &config_path, &admin_token);

    let mut poll = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            _ = poll.tick() => {
                for (child, (zone, _)) in nodes.0.iter_mut().zip(ZONES) {
                    if let Ok(Some(status)) = child.try_wait() {
                        bail!("node-{zone} exited on its own ({status}); see its log in {}", dir.display());
                    }
                }
            }
        }
    }
    eprintln!("\nstopping the demo: three nodes and six backends");
    nodes.stop();
    Ok(())
}

fn log_file(dir: &Path, name: &str) -> anyhow::Result<std::fs::File> {
    let path = dir.join(format!("{name}.log"));
    std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))
}

/// Reads the bootstrap node's stdout until its join token line; keeps draining it afterwards.
async fn read_join_token(stdout: std::process::ChildStdout) -> anyhow::Result<String> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut sender = Some(sender);
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(token) = line.split_whitespace().find(|w| w.starts_with("gtj1.")) {
                if let Some(sender) = sender.take() {
                    let _ = sender.send(token.to_string());
                }
            }
        }
    });
    match tokio::time::timeout(Duration::from_secs(30), receiver).await {
        Ok(Ok(token)) => Ok(token),
        _ => bail!("timed out waiting for the join token"),
    }
}

async fn wait_ready(admin: SocketAddr, child: Option<&mut Child>, dir: &Path, name: &str) -> anyhow::Result<()> {
    let Some(child) = child else { bail!("no process for {name}") };
    for _ in 0..600 {
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "{name} exited during start-up ({status}); is {admin} in use? Its log: {}",
                dir.join(format!("{name}.log")).display()
            );
        }
        if backend::probe(admin, "/readyz").await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{name} did not become ready within 30 s")
}

async fn wait_revision(admin: SocketAddr, revision: u64) -> anyhow::Result<()> {
    for _ in 0..300 {
        if backend::serving_revision(admin).await >= revision {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{admin} did not serve revision {revision} within 15 s")
}

fn sample_config(endpoints: &[(SocketAddr, &str)]) -> String {
    let list: Vec<String> = endpoints
        .iter()
        .map(|(address, zone)| format!("      - {{ address: \"{address}\", zone: {zone}, subset: zone-{zone} }}"))
        .collect();
    format!(
        r#"# Applied by `gantry demo` as revision 1.
listeners:
  - {{ name: public, protocol: http }}
services:
  - name: web
    lb: round_robin
    # Stay in this node's zone; spill to the others when the zone's endpoints are down or
    # carry 64 requests each (counted over the whole cluster, by gossip).
    locality: prefer_same_zone
    max_in_flight_per_endpoint: 64
    endpoints:
{endpoints}
    health_check: {{ path: /health, interval: 1s, timeout: 500ms, unhealthy: 2, healthy: 1 }}
    outlier_detection: {{ consecutive_gateway_failure: 3, base_ejection_time: 10s, max_ejection_percent: 50 }}
  - name: web-sticky
    lb: least_request
    sticky: {{ cookie: gantry_demo }}
    endpoints:
{endpoints}
  - name: web-hash
    lb: ring_hash
    hash_on: {{ header: x-user }}
    endpoints:
{endpoints}
routes:
  - {{ name: zone-b, match: {{ path_prefix: /, headers: {{ x-zone: b }} }}, to: [ {{ service: web, subset: zone-b }} ] }}
  - {{ name: sticky, match: {{ path_prefix: /sticky }}, to: [ {{ service: web-sticky }} ] }}
  - {{ name: hash, match: {{ path_prefix: /hash }}, to: [ {{ service: web-hash }} ] }}
  - name: web
    match: {{ path_prefix: / }}
    to: [ {{ service: web }} ]
    retries: {{ attempts: 2, on: [connect_failure, reset, "503"] }}
"#,
        endpoints = list.join("\n")
    )
}

fn print_guide(args: &DemoArgs, dir: &Path, config: &Path, admin_token: &str) {
    let (http, admin) = (args.http_port, args.admin_port);
    let token_file: PathBuf = dir.join("node-a").join("admin-token");
    println!(
        r#"
gantry demo is running: a three-node cluster, one node per zone, joined with a token, in front
of six demo backends (two per zone). Each node prefers backends in its own zone.

  curl -s http://127.0.1.1:{http}/          node in zone a answers from zone-a backends
  curl -s http://127.0.2.1:{http}/          node in zone b, zone-b backends
  curl -s -H 'x-zone: b' http://127.0.1.1:{http}/    header route to the zone-b subset
  curl -si http://127.0.3.1:{http}/sticky | grep -i set-cookie   sticky session cookie
  curl -s -H 'x-user: alice' http://127.0.1.1:{http}/hash       consistent hashing on a header

  export GANTRY_ADMIN=http://127.0.1.1:{admin} GANTRY_TOKEN={admin_token}
  gantry ctl members                       members, roles, liveness, applied revision
  gantry ctl status                        this node: role, leader, term, revision
  gantry ctl apply -f {config}     edit it, commit a new revision
  gantry ctl history                       committed revisions

  admin token file: {token_file}
  node logs: {dir}/node-*.log

Press Ctrl-C to stop (all nodes and backends; files removed unless --keep)."#,
        config = config.display(),
        token_file = token_file.display(),
        dir = dir.display()
    );
}
