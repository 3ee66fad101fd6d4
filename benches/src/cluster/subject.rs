//! A three-member cluster under test, gantry or etcd, driven through its HTTP API with the same
//! client: start it, find its leader, write (`put`), read the revision a member serves, kill a
//! member with SIGKILL and restart it on its data dir.
//!
//! | | gantry | etcd 3.4 (v3 JSON gateway) |
//! |---|---|---|
//! | write | `PUT /v1/config` (the document, YAML), admin token | `POST /v3/kv/put {key, value}` (base64; the value is the same document) |
//! | revision served | `GET /v1/config` → `revision` (what the data plane serves) | `POST /v3/kv/range {key, serializable: true}` → `header.revision` (this member's applied store) |
//! | leader | `GET /v1/status` → `cluster.leader` | `POST /v3/maintenance/status` → `leader` |

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use serde_json::Value;

use super::http::{call_ok, Failure, HttpClient};
use super::process::{free_tcp_port, free_udp_port, Proc};
use super::workload::{base64, document};

/// Deadline of one read (status, revision): a live member answers in milliseconds.
pub const READ_DEADLINE: Duration = Duration::from_millis(1000);
/// How long a cluster may take to form.
const FORM_BOUND: Duration = Duration::from_secs(60);
/// The etcd key every write goes to.
const ETCD_KEY: &str = "gantry-bench/config";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gantry,
    Etcd,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Gantry => "gantry",
            Kind::Etcd => "etcd",
        }
    }
}

/// A number the APIs send either as a JSON number (gantry) or as a decimal string (etcd's
/// gateway encodes 64-bit integers as strings).
fn as_u64(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

fn field(value: &Value, pointer: &str) -> Result<u64, Failure> {
    value.pointer(pointer).and_then(as_u64).ok_or_else(|| Failure::Failed(format!("no {pointer} in {value}")))
}

/// Everything a write or a read needs, detached from the processes: cheap to clone into tasks.
#[derive(Debug, Clone)]
pub struct Api {
    pub kind: Kind,
    client: HttpClient,
    /// gantry: `Bearer <admin token>`.
    bearer: Arc<str>,
    /// etcd: the key, base64.
    key_b64: Arc<str>,
    /// Bytes of every written document.
    pub size: usize,
}

impl Api {
    /// Commits write `marker` through the member at `url`; returns the new revision.
    pub async fn put(&self, url: &str, marker: u64, deadline: Duration) -> Result<u64, Failure> {
        let doc = document(marker, self.size);
        match self.kind {
            Kind::Gantry => {
                let headers = [("authorization", &*self.bearer), ("content-type", "application/yaml")];
                let reply = call_ok(
                    &self.client,
                    http::Method::PUT,
                    &format!("{url}/v1/config"),
                    &headers,
                    doc.into(),
                    deadline,
                )
                .await?;
                field(&reply, "/revision")
            }
            Kind::Etcd => {
                let body = format!(r#"{{"key":"{}","value":"{}"}}"#, self.key_b64, base64(doc.as_bytes()));
                let headers = [("content-type", "application/json")];
                let reply = call_ok(
                    &self.client,
                    http::Method::POST,
                    &format!("{url}/v3/kv/put"),
                    &headers,
                    body.into(),
                    deadline,
                )
                .await?;
                field(&reply, "/header/revision")
            }
        }
    }

    /// The revision the member at `url` serves (gantry: its data plane; etcd: its applied store).
    pub async fn revision(&self, url: &str, deadline: Duration) -> Result<u64, Failure> {
        match self.kind {
            Kind::Gantry => {
                let reply =
                    call_ok(&self.client, http::Method::GET, &format!("{url}/v1/config"), &[], Bytes::new(), deadline)
                        .await?;
                field(&reply, "/revision")
            }
            Kind::Etcd => {
                let body = format!(r#"{{"key":"{}","serializable":true}}"#, self.key_b64);
                let headers = [("content-type", "application/json")];
                let url = format!("{url}/v3/kv/range");
                let reply = call_ok(&self.client, http::Method::POST, &url, &headers, body.into(), deadline).await?;
                field(&reply, "/header/revision")
            }
        }
    }

    /// (this member's id, the leader it knows of).
    pub async fn ids(&self, url: &str, deadline: Duration) -> Result<(u64, Option<u64>), Failure> {
        match self.kind {
            Kind::Gantry => {
                let reply =
                    call_ok(&self.client, http::Method::GET, &format!("{url}/v1/status"), &[], Bytes::new(), deadline)
                        .await?;
                Ok((field(&reply, "/node/id")?, reply.pointer("/cluster/leader").and_then(as_u64)))
            }
            Kind::Etcd => {
                let headers = [("content-type", "application/json")];
                let url = format!("{url}/v3/maintenance/status");
                let reply = call_ok(&self.client, http::Method::POST, &url, &headers, "{}".into(), deadline).await?;
                let leader = reply.pointer("/leader").and_then(as_u64).filter(|id| *id != 0);
                Ok((field(&reply, "/header/member_id")?, leader))
            }
        }
    }

    /// gantry: the number of Raft voters the member at `url` sees.
    async fn voters(&self, url: &str) -> Result<usize, Failure> {
        let reply =
            call_ok(&self.client, http::Method::GET, &format!("{url}/v1/status"), &[], Bytes::new(), READ_DEADLINE)
                .await?;
        Ok(reply.pointer("/cluster/voters").and_then(Value::as_array).map_or(0, Vec::len))
    }
}

#[derive(Debug)]
pub struct Member {
    pub name: String,
    /// `http://127.0.0.1:PORT`: gantry's admin API, etcd's client URL.
    pub url: String,
    /// Raft node id (gantry) or member id (etcd).
    pub id: u64,
    pub proc: Proc,
}

#[derive(Debug)]
pub struct Cluster {
    pub kind: Kind,
    pub api: Api,
    pub members: Vec<Member>,
}

/// Polls `probe` every 50 ms until it gives `Some`, for at most `bound`.
async fn wait_for<T, F, Fut>(what: &str, bound: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(found) = probe().await {
            return Ok(found);
        }
        if started.elapsed() > bound {
            bail!("{what}: not within {bound:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Cluster {
    /// Three gantry nodes, zones a, b and c: n1 bootstraps, n2 and n3 join with its token; waits
    /// for three voters, then commits a first document and waits until every node serves it.
    pub async fn start_gantry(
        binary: &Path,
        dir: &Path,
        pid_file: &Path,
        client: HttpClient,
        size: usize,
        log_filter: &str,
    ) -> Result<Cluster> {
        let mut members: Vec<Member> = Vec::new();
        let mut join: Option<(u16, String)> = None;
        let mut bearer = String::new();
        for (i, zone) in ["a", "b", "c"].into_iter().enumerate() {
            let name = format!("n{}", i + 1);
            let node_dir = dir.join(&name);
            std::fs::create_dir_all(&node_dir).with_context(|| format!("create {}", node_dir.display()))?;
            let data_dir = node_dir.join("data");
            let admin = free_tcp_port()?;
            let fabric = free_udp_port()?;
            let mut args: Vec<String> = vec![
                "run".into(),
                "--name".into(),
                name.clone(),
                "--zone".into(),
                zone.into(),
                "--data-dir".into(),
                data_dir.display().to_string(),
                "--http".into(),
                format!("127.0.0.1:{}", free_tcp_port()?),
                "--https".into(),
                format!("127.0.0.1:{}", free_tcp_port()?),
                "--admin".into(),
                format!("127.0.0.1:{admin}"),
                "--fabric".into(),
                format!("127.0.0.1:{fabric}"),
                "--gossip".into(),
                format!("127.0.0.1:{}", free_udp_port()?),
                "--exit-with-parent".into(),
            ];
            if let Some((port, token)) = &join {
                // Kept for restarts too: a node on its data dir ignores it.
                args.extend(["--join".into(), format!("127.0.0.1:{port}"), "--token".into(), token.clone()]);
            }
            let env = vec![("RUST_LOG".to_string(), log_filter.to_string())];
            let proc = Proc::start(&name, binary, args, env, &node_dir, pid_file)?;
            let stdout = proc.stdout_path.clone();
            members.push(Member { name, url: format!("http://127.0.0.1:{admin}"), id: 0, proc });
            if i == 0 {
                let token = wait_for("n1's join token on its stdout", FORM_BOUND, || {
                    let text = std::fs::read_to_string(&stdout).unwrap_or_default();
                    let token = text.split_whitespace().find(|w| w.starts_with("gtj1.")).map(str::to_string);
                    async move { token }
                })
                .await;
                let token = match token {
                    Ok(token) => token,
                    Err(error) => bail!("{error}; n1's log:\n{}", members[0].proc.log_tail(20)),
                };
                let admin_token = std::fs::read_to_string(data_dir.join("admin-token"))
                    .context("n1's admin token (DATA_DIR/admin-token)")?;
                bearer = format!("Bearer {}", admin_token.trim());
                join = Some((fabric, token));
            }
        }
        let api = Api { kind: Kind::Gantry, client, bearer: bearer.into(), key_b64: "".into(), size };
        let mut cluster = Cluster { kind: Kind::Gantry, api, members };
        let first = cluster.members[0].url.clone();
        let api = cluster.api.clone();
        let formed = wait_for("three voters", FORM_BOUND, || {
            let (api, first) = (api.clone(), first.clone());
            async move { (api.voters(&first).await.ok()? == 3).then_some(()) }
        })
        .await;
        if let Err(error) = formed {
            cluster.check_alive()?;
            bail!("gantry: {error}; n1's log:\n{}", cluster.members[0].proc.log_tail(20));
        }
        cluster.settle().await?;
        Ok(cluster)
    }

    /// Three etcd members with their own data dirs, a static initial cluster on loopback ports;
    /// waits for a leader, then writes a first value and waits until every member has it.
    pub async fn start_etcd(
        binary: &Path,
        dir: &Path,
        pid_file: &Path,
        client: HttpClient,
        size: usize,
    ) -> Result<Cluster> {
        let names = ["e1", "e2", "e3"];
        let mut client_ports = Vec::new();
        let mut peer_ports = Vec::new();
        for _ in names {
            client_ports.push(free_tcp_port()?);
            peer_ports.push(free_tcp_port()?);
        }
        let initial: Vec<String> =
            names.iter().zip(&peer_ports).map(|(name, port)| format!("{name}=http://127.0.0.1:{port}")).collect();
        let initial = initial.join(",");
        let mut members = Vec::new();
        for (i, name) in names.into_iter().enumerate() {
            let member_dir = dir.join(name);
            std::fs::create_dir_all(&member_dir).with_context(|| format!("create {}", member_dir.display()))?;
            let client_url = format!("http://127.0.0.1:{}", client_ports[i]);
            let peer_url = format!("http://127.0.0.1:{}", peer_ports[i]);
            // Defaults otherwise: heartbeat 100 ms, election timeout 1000 ms, fsync on every commit.
            let args: Vec<String> = vec![
                format!("--name={name}"),
                format!("--data-dir={}", member_dir.join("data").display()),
                format!("--listen-client-urls={client_url}"),
                format!("--advertise-client-urls={client_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster={initial}"),
                "--initial-cluster-state=new".into(),
                "--initial-cluster-token=gantry-cluster-bench".into(),
                "--logger=zap".into(),
                "--log-outputs=stderr".into(),
            ];
            let proc = Proc::start(name, binary, args, Vec::new(), &member_dir, pid_file)?;
            members.push(Member { name: name.to_string(), url: client_url, id: 0, proc });
        }
        let api =
            Api { kind: Kind::Etcd, client, bearer: "".into(), key_b64: base64(ETCD_KEY.as_bytes()).into(), size };
        let mut cluster = Cluster { kind: Kind::Etcd, api, members };
        cluster.settle().await?;
        Ok(cluster)
    }

    /// After start: a leader every member agrees on, members' ids, a first write served everywhere.
    async fn settle(&mut self) -> Result<()> {
        for i in 0..self.members.len() {
            let (api, url) = (self.api.clone(), self.members[i].url.clone());
            let found =
                wait_for(&format!("{} {} to answer", self.kind.name(), self.members[i].name), FORM_BOUND, || {
                    let (api, url) = (api.clone(), url.clone());
                    async move { api.ids(&url, READ_DEADLINE).await.ok() }
                })
                .await;
            match found {
                Ok((id, _)) => self.members[i].id = id,
                Err(error) => {
                    self.check_alive()?;
                    bail!("{error}; its log:\n{}", self.members[i].proc.log_tail(20))
                }
            }
        }
        let leader = self.leader(FORM_BOUND).await?;
        let revision = self
            .api
            .put(&self.members[leader].url, 0, Duration::from_secs(10))
            .await
            .with_context(|| format!("{}: first write", self.kind.name()))?;
        for i in 0..self.members.len() {
            self.wait_serving(i, revision, FORM_BOUND).await?;
        }
        Ok(())
    }

    pub fn member_with_id(&self, id: u64) -> Option<usize> {
        self.members.iter().position(|m| m.id == id)
    }

    /// The leader every running member names (and which runs), asked every 50 ms for at most
    /// `bound`.
    pub async fn leader(&self, bound: Duration) -> Result<usize> {
        let api = self.api.clone();
        let up: Vec<(usize, String, u64)> = (0..self.members.len())
            .filter(|i| self.members[*i].proc.is_up())
            .map(|i| (i, self.members[i].url.clone(), self.members[i].id))
            .collect();
        wait_for(&format!("{}: a running leader all members agree on", self.kind.name()), bound, || {
            let (api, up) = (api.clone(), up.clone());
            async move {
                let mut agreed = None;
                for (_, url, _) in &up {
                    let (_, leader) = api.ids(url, READ_DEADLINE).await.ok()?;
                    let leader = leader?;
                    if agreed.is_some_and(|a| a != leader) {
                        return None;
                    }
                    agreed = Some(leader);
                }
                let agreed = agreed?;
                up.iter().find(|(_, _, id)| *id == agreed).map(|(i, _, _)| *i)
            }
        })
        .await
    }

    /// Waits until member `i` serves `revision` or a later one.
    pub async fn wait_serving(&self, i: usize, revision: u64, bound: Duration) -> Result<()> {
        let (api, url) = (self.api.clone(), self.members[i].url.clone());
        wait_for(&format!("{} {} to serve revision {revision}", self.kind.name(), self.members[i].name), bound, || {
            let (api, url) = (api.clone(), url.clone());
            async move { api.revision(&url, READ_DEADLINE).await.ok().filter(|r| *r >= revision).map(|_| ()) }
        })
        .await
    }

    /// SIGKILL member `i`.
    pub fn kill(&mut self, i: usize) {
        self.members[i].proc.kill9();
    }

    /// Starts member `i` again on its data dir and waits until a leader is agreed on by every
    /// member and `i` serves what the leader serves. Returns how long that took.
    pub async fn restart(&mut self, i: usize, bound: Duration) -> Result<Duration> {
        let started = Instant::now();
        self.members[i].proc.launch()?;
        loop {
            let remaining = bound.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                self.check_alive()?;
                bail!(
                    "{} {} did not catch up within {bound:?}; its log:\n{}",
                    self.kind.name(),
                    self.members[i].name,
                    self.members[i].proc.log_tail(20)
                );
            }
            let Ok(leader) = self.leader(remaining).await else { continue };
            let Ok(latest) = self.api.revision(&self.members[leader].url, READ_DEADLINE).await else { continue };
            let here = self.api.revision(&self.members[i].url, READ_DEADLINE).await.ok();
            if here.is_some_and(|r| r >= latest) {
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// An error naming any member that exited by itself, with its last log lines.
    pub fn check_alive(&mut self) -> Result<()> {
        for member in &mut self.members {
            if let Some(status) = member.proc.exited() {
                bail!(
                    "{} {} exited by itself ({status}); last log lines:\n{}",
                    self.kind.name(),
                    member.name,
                    member.proc.log_tail(20)
                );
            }
        }
        Ok(())
    }

    /// CPU ticks used so far by every running member, together.
    pub fn cpu_ticks(&self) -> u64 {
        self.members.iter().filter_map(|m| m.proc.cpu_ticks()).sum()
    }

    /// Kills every member.
    pub fn stop(&mut self) {
        for member in &mut self.members {
            member.proc.kill9();
        }
    }
}
