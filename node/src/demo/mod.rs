//! `gantry demo`: a working load balancer on this machine in one command. It starts demo
//! backends in this process, writes a sample config, runs a real `gantry run` node on it as a
//! child process, prints what to try, and on Ctrl-C stops the node and removes its files.

mod backend;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Where the demo node's http listener binds.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Where the demo node's admin API binds.
    #[arg(long, default_value = "127.0.0.1:9900")]
    pub admin: SocketAddr,
    /// Where the demo node's QUIC fabric (UDP) binds.
    #[arg(long, default_value = "127.0.0.1:7000")]
    pub fabric: SocketAddr,
    /// Keep the demo's config and data dir when it stops.
    #[arg(long)]
    pub keep: bool,
}

/// Demo backends: (name, zone). Two zones, so locality shows in the answers.
const BACKENDS: [(&str, &str); 4] = [("web-a1", "a"), ("web-a2", "a"), ("web-b1", "b"), ("web-b2", "b")];

pub fn run(args: DemoArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return 1;
        }
    };
    match runtime.block_on(demo(args)) {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("error: {error:#}");
            1
        }
    }
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    // Watch signals first: a Ctrl-C during start-up must still stop the node and clean up.
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let dir = std::env::temp_dir().join(format!("gantry-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut endpoints = Vec::new();
    for (name, zone) in BACKENDS {
        let address = backend::start(name, zone).await.context("cannot start a demo backend")?;
        endpoints.push((address, zone));
    }
    let config_path = dir.join("gantry.yaml");
    std::fs::write(&config_path, sample_config(&endpoints)).context("cannot write the demo config")?;

    let executable = std::env::current_exe().context("cannot find the gantry executable")?;
    let mut node = Command::new(executable)
        .args(["run", "--name", "demo-node", "--zone", "a", "-c"])
        .arg(&config_path)
        .args([
            "--http",
            &args.http.to_string(),
            "--admin",
            &args.admin.to_string(),
            "--fabric",
            &args.fabric.to_string(),
        ])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdin(Stdio::null())
        .spawn()
        .context("cannot start the demo node")?;
    let ready = wait_ready(args.admin, &mut node).await;
    if let Err(error) = ready {
        let _ = node.kill();
        let _ = node.wait();
        cleanup(&dir, args.keep);
        return Err(error);
    }
    print_guide(&args, &config_path, node.id());

    let mut poll = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            _ = poll.tick() => {
                if let Ok(Some(status)) = node.try_wait() {
                    cleanup(&dir, args.keep);
                    bail!("the demo node exited on its own ({status})");
                }
            }
        }
    }
    eprintln!("\nstopping the demo node (pid {})", node.id());
    let _ = Command::new("kill").args(["-TERM", &node.id().to_string()]).status();
    let _ = node.wait();
    cleanup(&dir, args.keep);
    Ok(())
}

async fn wait_ready(admin: SocketAddr, node: &mut std::process::Child) -> anyhow::Result<()> {
    for _ in 0..200 {
        if let Ok(Some(status)) = node.try_wait() {
            bail!("the demo node exited during start-up ({status}); is {admin} or the http address already in use? Try --http/--admin");
        }
        if backend::probe(admin, "/readyz").await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the demo node did not become ready within 10 s")
}

fn cleanup(dir: &PathBuf, keep: bool) {
    if keep {
        eprintln!("kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn sample_config(endpoints: &[(SocketAddr, &str)]) -> String {
    let list: Vec<String> = endpoints
        .iter()
        .map(|(address, zone)| format!("      - {{ address: \"{address}\", zone: {zone}, subset: zone-{zone} }}"))
        .collect();
    format!(
        r#"# Written by `gantry demo`.
listeners:
  - {{ name: public, protocol: http }}
services:
  - name: web
    lb: round_robin
    locality: prefer_same_zone
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

fn print_guide(args: &DemoArgs, config: &std::path::Path, pid: u32) {
    let http = args.http;
    let admin = args.admin;
    println!(
        r#"
gantry demo is running: one node (zone a) in front of four demo backends (zones a and b).

  curl -s http://{http}/                      zone-local round robin (answers from zone a)
  curl -s -H 'x-zone: b' http://{http}/       a header route to the zone-b subset
  curl -si http://{http}/sticky | grep -i set-cookie   sticky session cookie
  curl -s -H 'x-user: alice' http://{http}/hash        consistent hashing on a header

  curl -s http://{admin}/v1/status            node status, endpoint health
  curl -s http://{admin}/metrics              Prometheus metrics
  config: {config}  (edit it, then reload: kill -HUP {pid})

Press Ctrl-C to stop."#,
        config = config.display()
    );
}
