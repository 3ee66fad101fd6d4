//! Test harness: programmable HTTP backends, a `gantry` process per test (killed by pid when
//! the test ends), and a small HTTP client.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// A port free right now on 127.0.0.1 for TCP and UDP alike, below the kernel's ephemeral
/// range (32768 and up by default). A port the kernel picked (binding port 0) could be handed
/// out again, before the node bound it, to the next outgoing socket, such as a joining node's
/// QUIC client. Ports come from one counter per test binary, started at a random place, so tests
/// running at once never get the same one.
pub fn free_port() -> u16 {
    const FIRST: u16 = 20_000;
    const SPAN: u16 = 12_000;
    static NEXT: std::sync::OnceLock<std::sync::atomic::AtomicU16> = std::sync::OnceLock::new();
    let next = NEXT.get_or_init(|| {
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        std::sync::atomic::AtomicU16::new(((seed ^ std::process::id()) % u32::from(SPAN)) as u16)
    });
    for _ in 0..SPAN {
        let port = FIRST + next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % SPAN;
        let free =
            StdListener::bind(("127.0.0.1", port)).is_ok() && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if free {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + SPAN)
}

pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Knobs a test turns on a running backend.
#[derive(Debug)]
pub struct BackendState {
    pub status: AtomicU16,
    pub health_status: AtomicU16,
    pub delay_ms: AtomicU64,
    pub hits: AtomicU64,
    pub health_hits: AtomicU64,
    pub last_headers: Mutex<Option<http::HeaderMap>>,
}

/// An HTTP/1.1 + h2c backend that answers with its name. Paths: `/health` (health_status),
/// `/echo` (returns the request body), `/headers` (request headers as JSON), anything else
/// (status, after delay_ms, body = name, header x-backend = name).
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    pub state: Arc<BackendState>,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Backend {
    pub async fn start(name: &str) -> Backend {
        Self::start_at(name, free_addr()).await
    }

    pub async fn start_at(name: &str, addr: SocketAddr) -> Backend {
        let listener = TcpListener::bind(addr).await.expect("backend bind");
        let state = Arc::new(BackendState {
            status: AtomicU16::new(200),
            health_status: AtomicU16::new(200),
            delay_ms: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            health_hits: AtomicU64::new(0),
            last_headers: Mutex::new(None),
        });
        let tasks = Arc::new(Mutex::new(JoinSet::new()));
        let name_owned = name.to_string();
        let accept_state = state.clone();
        let accept_tasks = tasks.clone();
        tasks.lock().expect("lock").spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = accept_state.clone();
                let name = name_owned.clone();
                accept_tasks.lock().expect("lock").spawn(async move {
                    let service = service_fn(move |req| respond(req, name.clone(), state.clone()));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Backend { name: name.to_string(), addr, state, tasks }
    }

    /// Stops listening and drops every open connection, as a crashed process would.
    pub fn crash(&self) {
        self.tasks.lock().expect("lock").abort_all();
    }

    pub fn hits(&self) -> u64 {
        self.state.hits.load(Ordering::Relaxed)
    }

    pub fn set_status(&self, status: u16) {
        self.state.status.store(status, Ordering::Relaxed);
    }

    pub fn set_health(&self, status: u16) {
        self.state.health_status.store(status, Ordering::Relaxed);
    }

    pub fn set_delay(&self, delay: Duration) {
        self.state.delay_ms.store(delay.as_millis() as u64, Ordering::Relaxed);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.crash();
    }
}

async fn respond(
    request: http::Request<Incoming>,
    name: String,
    state: Arc<BackendState>,
) -> Result<http::Response<Full<Bytes>>, hyper::Error> {
    let path = request.uri().path().to_string();
    if path == "/health" {
        state.health_hits.fetch_add(1, Ordering::Relaxed);
        let status = state.health_status.load(Ordering::Relaxed);
        return Ok(http::Response::builder().status(status).body(Full::new(Bytes::from("health"))).expect("response"));
    }
    state.hits.fetch_add(1, Ordering::Relaxed);
    *state.last_headers.lock().expect("lock") = Some(request.headers().clone());
    // `/sleep/MS` holds this one request: load that stays in flight without slowing the rest.
    let delay =
        path.strip_prefix("/sleep/").and_then(|ms| ms.parse().ok()).unwrap_or(state.delay_ms.load(Ordering::Relaxed));
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let status = state.status.load(Ordering::Relaxed);
    let body = match path.as_str() {
        "/echo" => request.into_body().collect().await?.to_bytes(),
        "/headers" => {
            let map: BTreeMap<String, String> =
                request.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect();
            Bytes::from(serde_json::to_string(&map).expect("json"))
        }
        _ => Bytes::from(name.clone()),
    };
    Ok(http::Response::builder().status(status).header("x-backend", name).body(Full::new(body)).expect("response"))
}

/// A `gantry run` process with its own temp dir, killed (by pid) on drop.
pub struct Gantry {
    child: Option<Child>,
    pub http: SocketAddr,
    pub admin: SocketAddr,
    pub fabric: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    log_path: PathBuf,
    stdout_path: PathBuf,
    args: Vec<String>,
}

/// How to start a cluster member.
#[derive(Default)]
pub struct MemberOptions<'a> {
    pub name: &'a str,
    pub zone: &'a str,
    pub config: Option<&'a str>,
    /// (fabric address of a member, join token)
    pub join: Option<(SocketAddr, String)>,
    pub extra: &'a [&'a str],
}

impl Gantry {
    /// Starts gantry on `yaml` and waits until its admin API says ready.
    pub async fn start(yaml: &str) -> Gantry {
        Self::start_with(yaml, &[]).await
    }

    pub async fn start_with(yaml: &str, extra: &[&str]) -> Gantry {
        let mut gantry = Self::spawn(yaml, extra);
        gantry.wait_ready().await;
        gantry
    }

    /// Spawns a single node on `yaml` without waiting (for start-up failure tests).
    pub fn spawn(yaml: &str, extra: &[&str]) -> Gantry {
        Self::spawn_member(MemberOptions { name: "solo", zone: "a", config: Some(yaml), join: None, extra })
    }

    /// Spawns a cluster member on fresh loopback ports and a fresh data dir.
    pub fn spawn_member(options: MemberOptions<'_>) -> Gantry {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("gantry.yaml");
        let http = free_addr();
        let admin = free_addr();
        let fabric = free_addr();
        let mut args: Vec<String> =
            vec!["run".into(), "--name".into(), options.name.into(), "--zone".into(), options.zone.into()];
        if let Some(yaml) = options.config {
            std::fs::write(&config_path, yaml).expect("write config");
            args.extend(["-c".into(), config_path.display().to_string()]);
        }
        args.extend([
            "--http".to_string(),
            http.to_string(),
            "--admin".into(),
            admin.to_string(),
            "--https".into(),
            free_addr().to_string(),
            "--fabric".into(),
            fabric.to_string(),
            "--gossip".into(),
            free_addr().to_string(),
            "--data-dir".into(),
            dir.path().join("data").display().to_string(),
            "--exit-with-parent".into(),
        ]);
        if let Some((address, token)) = &options.join {
            args.extend(["--join".into(), address.to_string(), "--token".into(), token.clone()]);
        }
        args.extend(options.extra.iter().map(|a| a.to_string()));
        let mut gantry = Gantry {
            child: None,
            http,
            admin,
            fabric,
            log_path: dir.path().join("gantry.log"),
            stdout_path: dir.path().join("stdout.log"),
            dir,
            config_path,
            args,
        };
        gantry.launch();
        gantry
    }

    pub fn launch(&mut self) {
        let append =
            |path: &PathBuf| std::fs::OpenOptions::new().create(true).append(true).open(path).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(append(&self.stdout_path))
            .stderr(append(&self.log_path))
            .spawn()
            .expect("spawn gantry");
        self.child = Some(child);
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again on the same data dir and ports.
    pub async fn restart(&mut self) {
        self.kill9();
        self.launch();
        self.wait_ready().await;
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// The join token a bootstrap node printed.
    pub fn join_token(&self) -> String {
        self.stdout()
            .split_whitespace()
            .find(|w| w.starts_with("gtj1."))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no join token printed:\n{}", self.stdout()))
    }

    /// The admin token a bootstrap node wrote.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("data/admin-token")).expect("admin token").trim().to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("gantry exited early with {status}:\n{}", self.log());
                }
            }
            if let Ok(response) = get(&format!("http://{}/readyz", self.admin)).await {
                if response.status == 200 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "gantry not ready in time:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the process to exit by itself; returns its exit code.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return status.code();
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        None
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    pub fn signal(&self, signal: &str) {
        let status =
            Command::new("kill").args([&format!("-{signal}"), &self.pid().to_string()]).status().expect("kill");
        assert!(status.success());
    }

    /// Writes a new config and sends SIGHUP.
    pub fn reload(&self, yaml: &str) {
        let mut file = std::fs::File::create(&self.config_path).expect("config");
        file.write_all(yaml.as_bytes()).expect("write");
        file.sync_all().expect("sync");
        self.signal("HUP");
    }

    pub async fn status(&self) -> serde_json::Value {
        let response = get(&format!("http://{}/v1/status", self.admin)).await.expect("status");
        serde_json::from_slice(&response.body).expect("status json")
    }

    pub async fn revision(&self) -> u64 {
        self.status().await["config"]["revision"].as_u64().unwrap_or(0)
    }

    /// Waits until the last reload attempt is at least `at_least_ms` (unix ms) old, i.e. the
    /// reload we triggered has been processed.
    pub async fn wait_reload_after(&self, since_unix_ms: u64) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = self.status().await;
            if status["config"]["last_reload"]["at_unix_ms"].as_u64().unwrap_or(0) >= since_unix_ms {
                return status["config"]["last_reload"].clone();
            }
            assert!(Instant::now() < deadline, "reload not processed:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn metrics(&self) -> String {
        let response = get(&format!("http://{}/metrics", self.admin)).await.expect("metrics");
        String::from_utf8_lossy(&response.body).into_owned()
    }

    /// The value of one unlabelled metric (0 when absent).
    pub async fn metric(&self, name: &str) -> u64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
            .map_or(0, |value| value as u64)
    }
}

impl Drop for Gantry {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = self.log();
        if log.contains("panicked") && !std::thread::panicking() {
            panic!("gantry panicked:\n{log}");
        }
    }
}

pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

type Client = hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

pub fn client() -> Client {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

pub async fn get(url: &str) -> Result<Reply, String> {
    request(&client(), http::Method::GET, url, &[], Bytes::new()).await
}

pub async fn get_with(url: &str, headers: &[(&str, &str)]) -> Result<Reply, String> {
    request(&client(), http::Method::GET, url, headers, Bytes::new()).await
}

pub async fn request(
    client: &Client,
    method: http::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<Reply, String> {
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Full::new(body)).map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Reply { status, headers, body })
}

/// Polls `check` until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "not true within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Counts responses by their x-backend header over `n` GETs.
pub async fn spread(url: &str, n: usize, headers: &[(&str, &str)]) -> BTreeMap<String, usize> {
    let client = client();
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let reply = request(&client, http::Method::GET, url, headers, Bytes::new()).await.expect("request");
        let name = reply.header("x-backend").unwrap_or("none").to_string();
        *counts.entry(name).or_insert(0) += 1;
    }
    counts
}

impl Gantry {
    /// Calls this node's admin API.
    pub async fn admin_call(&self, method: http::Method, path: &str, token: Option<&str>, body: &str) -> Reply {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer.as_deref().map(|b| vec![("authorization", b)]).unwrap_or_default();
        request(&client(), method, &format!("http://{}{path}", self.admin), &headers, Bytes::from(body.to_string()))
            .await
            .expect("admin call")
    }

    pub async fn put_config(&self, token: &str, yaml: &str) -> Reply {
        self.admin_call(http::Method::PUT, "/v1/config", Some(token), yaml).await
    }

    /// The config revision this node serves, from `GET /v1/config`.
    pub async fn serving_revision(&self) -> u64 {
        match get(&format!("http://{}/v1/config", self.admin)).await {
            Ok(reply) => reply.json()["revision"].as_u64().unwrap_or(0),
            Err(_) => 0,
        }
    }

    pub async fn cluster_status(&self) -> serde_json::Value {
        match get(&format!("http://{}/v1/status", self.admin)).await {
            Ok(reply) => reply.json()["cluster"].clone(),
            Err(_) => serde_json::Value::Null,
        }
    }
}
