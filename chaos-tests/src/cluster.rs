//! A scenario's world: three `gantry` nodes (zone a on 127.0.1.x, b on 127.0.2.x, c on
//! 127.0.3.x), two demo backends per zone, the scenario's nftables table, and the faults that act
//! on them. Everything is torn down by pid and by table name, on drop too.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::backend::Backend;
use crate::client::{http_client, HttpClient, Status};
use crate::document::{self, Endpoint};
use crate::error::{ChaosError, Result};
use crate::nft::{FaultId, Firewall};
use crate::node::{Node, NodeInfo, NodeSpec};
use crate::timeline::Timeline;

/// The three zones, in node order: node 0 is in zone a, 1 in b, 2 in c.
pub const ZONES: [&str; 3] = ["a", "b", "c"];

/// How long a node gets to start, join or rejoin (debug build, busy 2-core machine).
pub const READY_BOUND: Duration = Duration::from_secs(30);

/// Most nodes a scenario runs (three plus one joiner, with room for a nemesis to grow).
const NODES_MAX: usize = 8;

/// Third octet of a zone's loopback addresses.
pub fn zone_octet(zone: &str) -> u8 {
    match zone {
        "a" => 1,
        "b" => 2,
        "c" => 3,
        _ => 9,
    }
}

/// The nodes the workload sends to, shared with its tasks (a joining node is added here).
pub type Roster = Arc<RwLock<Vec<Arc<NodeInfo>>>>;

pub fn roster_snapshot(roster: &Roster) -> Vec<Arc<NodeInfo>> {
    roster.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
}

/// What the teardown found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Teardown {
    /// Pids of ours still alive after every node was stopped.
    pub leftover_pids: Vec<u32>,
    /// The nftables table still listed after it was deleted.
    pub table_left: Option<String>,
    /// Other `gantry_chaos_*` tables seen (left by a killed run; reported, never touched).
    pub foreign_tables: Vec<String>,
    pub errors: Vec<String>,
}

/// Polls some nodes' admin APIs; owns its client and node handles.
#[derive(Debug, Clone)]
pub struct Watcher {
    client: HttpClient,
    nodes: Vec<(usize, Arc<NodeInfo>)>,
}

impl Watcher {
    /// `/v1/status` of each node, asked concurrently; sorted by node index.
    pub async fn statuses(&self) -> Vec<(usize, Option<Status>)> {
        let mut set = JoinSet::new();
        for (i, info) in &self.nodes {
            let (i, admin, client) = (*i, info.admin(), self.client.clone());
            set.spawn(async move { (i, admin.status(&client).await.ok()) });
        }
        let mut out = Vec::with_capacity(self.nodes.len());
        while let Some(joined) = set.join_next().await {
            if let Ok(pair) = joined {
                out.push(pair);
            }
        }
        out.sort_by_key(|(i, _)| *i);
        out
    }

    /// The node that says it leads with the highest term, with that term.
    pub async fn leader(&self) -> Option<(usize, u64)> {
        self.statuses()
            .await
            .into_iter()
            .filter_map(|(i, s)| s.filter(|s| s.cluster.role == "leader").map(|s| (i, s.cluster.term)))
            .max_by_key(|(_, term)| *term)
    }

    /// Waits for a leader other than `old` as it was (node index, term, process generation):
    /// another node, a higher term, or the same node restarted (a leader restarted on its data
    /// dir may lead again in its old term); polls every 50 ms, `None` after `bound`.
    pub async fn wait_leader_change(
        &self,
        old: (usize, u64, u64),
        since: Instant,
        bound: Duration,
    ) -> Option<(usize, u64, Duration)> {
        let (old_index, old_term, old_generation) = old;
        loop {
            if let Some((i, term)) = self.leader().await {
                let generation = self.nodes.iter().find(|(n, _)| *n == i).map_or(0, |(_, info)| info.generation());
                if term > old_term || i != old_index || generation != old_generation {
                    return Some((i, term, since.elapsed()));
                }
            }
            if since.elapsed() > bound {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for a leader with a term above `old_term`, polling every 50 ms; returns it and the
    /// time since `since`, or `None` once `bound` has passed since `since`.
    pub async fn wait_new_leader(
        &self,
        old_term: u64,
        since: Instant,
        bound: Duration,
    ) -> Option<(usize, u64, Duration)> {
        loop {
            if let Some((i, term)) = self.leader().await {
                if term > old_term {
                    return Some((i, term, since.elapsed()));
                }
            }
            if since.elapsed() > bound {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub struct Cluster {
    pub timeline: Arc<Timeline>,
    pub nodes: Vec<Node>,
    pub roster: Roster,
    pub backends: Vec<Arc<Backend>>,
    pub admin_token: String,
    pub client: HttpClient,
    pub firewall: Firewall,
    binary: PathBuf,
    /// Data dirs and logs; removed on drop (logs are copied to the report dir first).
    pub dir: tempfile::TempDir,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("nodes", &self.nodes.len()).field("firewall", &self.firewall).finish()
    }
}

impl Cluster {
    /// Starts the backends and a three-node cluster (bootstrap in zone a, joins in b and c) and
    /// waits for three voters.
    pub async fn start(timeline: Arc<Timeline>) -> Result<Cluster> {
        let binary = crate::env::gantry_binary()?;
        let firewall = Firewall::create()?;
        let dir = tempfile::Builder::new()
            .prefix("gantry-chaos-")
            .tempdir()
            .map_err(ChaosError::io("create the scenario temp dir"))?;
        let client = http_client(Duration::from_millis(500));
        let mut backends = Vec::new();
        for zone in ZONES {
            for k in 0..2u8 {
                let ip = IpAddr::V4(Ipv4Addr::new(127, 0, zone_octet(zone), 20 + k));
                let name = format!("{zone}{}", k + 1);
                backends.push(Arc::new(Backend::start(&name, zone, ip).await?));
            }
        }
        let mut cluster = Cluster {
            timeline,
            nodes: Vec::new(),
            roster: Arc::new(RwLock::new(Vec::new())),
            backends,
            admin_token: String::new(),
            client,
            firewall,
            binary,
            dir,
        };
        let first = cluster.spawn_node("a", None)?;
        let token_deadline = Instant::now() + READY_BOUND;
        let join_token = loop {
            if let Some(token) = cluster.nodes[first].join_token() {
                break token;
            }
            if Instant::now() > token_deadline || !cluster.nodes[first].is_running() {
                return Err(ChaosError::Timeout {
                    what: format!("the bootstrap node to print a join token; log:\n{}", cluster.nodes[first].log()),
                    waited_ms: READY_BOUND.as_millis() as u64,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        cluster.nodes[first].wait_ready(&cluster.client, READY_BOUND).await?;
        cluster.admin_token = cluster.nodes[first].admin_token().ok_or_else(|| ChaosError::Protocol {
            what: "the bootstrap node's data dir".into(),
            message: "no admin-token file".into(),
        })?;
        let member = cluster.nodes[first].info.fabric;
        for zone in ["b", "c"] {
            let index = cluster.spawn_node(zone, Some((member, join_token.clone())))?;
            cluster.nodes[index].wait_ready(&cluster.client, READY_BOUND).await?;
        }
        cluster.wait_voters(3, READY_BOUND).await?;
        cluster.learn_ids().await?;
        Ok(cluster)
    }

    /// Spawns a node in `zone` on the next address (127.0.<zone>.<10 + index>).
    fn spawn_node(&mut self, zone: &str, join: Option<(std::net::SocketAddrV4, String)>) -> Result<usize> {
        let index = self.nodes.len();
        if index >= NODES_MAX {
            return Err(ChaosError::Protocol {
                what: "spawn node".into(),
                message: format!("more than {NODES_MAX} nodes"),
            });
        }
        let spec = NodeSpec {
            index,
            name: format!("n{}", index + 1),
            zone: zone.to_string(),
            ip: Ipv4Addr::new(127, 0, zone_octet(zone), 10 + index as u8),
            join,
        };
        let node = Node::spawn(&self.binary, self.dir.path(), spec)?;
        self.roster.write().unwrap_or_else(std::sync::PoisonError::into_inner).push(node.info.clone());
        self.timeline.step(format!(
            "started {} (zone {zone}, fabric {}, http {}, admin {})",
            node.name(),
            node.info.fabric,
            node.info.http,
            node.info.admin
        ));
        self.nodes.push(node);
        Ok(index)
    }

    /// The `web` service's endpoints, for documents.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.backends.iter().map(|b| Endpoint { address: b.addr, zone: b.zone.clone() }).collect()
    }

    pub fn document(&self, marker: &str) -> String {
        document::render(&self.endpoints(), marker)
    }

    /// Nodes whose process runs and is not stopped: the ones that can answer.
    pub fn live(&mut self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| !self.nodes[i].is_paused() && self.nodes[i].is_running()).collect()
    }

    /// A poller of `indices` that owns what it needs, so it can run in a spawned task while the
    /// scenario restarts nodes.
    pub fn watcher(&self, indices: &[usize]) -> Watcher {
        Watcher {
            client: self.client.clone(),
            nodes: indices.iter().map(|&i| (i, self.nodes[i].info.clone())).collect(),
        }
    }

    /// `/v1/status` of each of `indices`, asked concurrently (a hung node costs one deadline).
    pub async fn statuses(&self, indices: &[usize]) -> Vec<(usize, Option<Status>)> {
        self.watcher(indices).statuses().await
    }

    async fn learn_ids(&mut self) -> Result<()> {
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        for (i, status) in self.statuses(&all).await {
            if let Some(status) = status {
                self.nodes[i].id = Some(status.node.id);
            }
        }
        Ok(())
    }

    pub fn index_of_id(&self, id: u64) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == Some(id))
    }

    /// The node that says it leads with the highest term among `indices`, with that term.
    pub async fn leader_among(&self, indices: &[usize]) -> Option<(usize, u64)> {
        self.watcher(indices).leader().await
    }

    /// The current leader among live nodes, waiting up to `bound` for one.
    pub async fn leader(&mut self, bound: Duration) -> Result<(usize, u64)> {
        let started = Instant::now();
        loop {
            let live = self.live();
            if let Some(found) = self.leader_among(&live).await {
                return Ok(found);
            }
            if started.elapsed() > bound {
                return Err(ChaosError::Timeout { what: "a leader".into(), waited_ms: bound.as_millis() as u64 });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for a leader among `candidates` with a term above `old_term`; see [`Watcher`].
    pub async fn wait_new_leader(
        &self,
        candidates: &[usize],
        old_term: u64,
        since: Instant,
        bound: Duration,
    ) -> Option<(usize, u64, Duration)> {
        self.watcher(candidates).wait_new_leader(old_term, since, bound).await
    }

    /// Waits until the leader's membership has `count` voters.
    pub async fn wait_voters(&mut self, count: usize, bound: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            let live = self.live();
            let statuses = self.statuses(&live).await;
            if statuses
                .iter()
                .any(|(_, s)| s.as_ref().is_some_and(|s| s.cluster.role == "leader" && s.cluster.voters.len() == count))
            {
                return Ok(());
            }
            if started.elapsed() > bound {
                return Err(ChaosError::Timeout {
                    what: format!("{count} voters"),
                    waited_ms: bound.as_millis() as u64,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Highest committed revision any of `indices` reports.
    pub async fn committed_revision(&self, indices: &[usize]) -> u64 {
        self.statuses(indices)
            .await
            .into_iter()
            .filter_map(|(_, s)| s.map(|s| s.config.committed_revision))
            .max()
            .unwrap_or(0)
    }

    /// Waits until every node of `indices` serves at least `target`; `None` after `bound`.
    pub async fn wait_serving(
        &self,
        indices: &[usize],
        target: u64,
        since: Instant,
        bound: Duration,
    ) -> Option<Duration> {
        loop {
            let statuses = self.statuses(indices).await;
            let done = statuses.len() == indices.len()
                && statuses.iter().all(|(_, s)| s.as_ref().is_some_and(|s| s.config.revision >= target));
            if done {
                return Some(since.elapsed());
            }
            if since.elapsed() > bound {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every node of `indices` serves the same revision, equal to the highest any
    /// of them has committed (nothing is being written any more); returns it and the time taken.
    pub async fn wait_identical(&self, indices: &[usize], since: Instant, bound: Duration) -> Option<(u64, Duration)> {
        loop {
            let statuses = self.statuses(indices).await;
            let committed = statuses.iter().filter_map(|(_, s)| s.as_ref().map(|s| s.config.committed_revision)).max();
            if let Some(target) = committed {
                let all = statuses.len() == indices.len()
                    && statuses.iter().all(|(_, s)| {
                        s.as_ref().is_some_and(|s| s.config.revision == target && s.config.committed_revision == target)
                    });
                if all {
                    return Some((target, since.elapsed()));
                }
            }
            if since.elapsed() > bound {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // ---- faults -------------------------------------------------------------------------

    pub fn kill9(&mut self, i: usize, why: &str) {
        self.nodes[i].kill9();
        self.timeline.fault(format!("kill -9 {}{why}", self.nodes[i].name()));
    }

    pub fn pause(&mut self, i: usize, why: &str) -> Result<()> {
        self.nodes[i].pause()?;
        self.timeline.fault(format!("SIGSTOP {}{why}", self.nodes[i].name()));
        Ok(())
    }

    pub fn resume(&mut self, i: usize) -> Result<()> {
        self.nodes[i].resume()?;
        self.timeline.heal(format!("SIGCONT {}", self.nodes[i].name()));
        Ok(())
    }

    /// SIGTERM (graceful drain); [`Cluster::wait_exit`] waits for the end.
    pub fn signal_term(&mut self, i: usize) -> Result<()> {
        self.nodes[i].send_term()?;
        self.timeline.fault(format!("SIGTERM {} (graceful drain)", self.nodes[i].name()));
        Ok(())
    }

    /// Waits for the process to exit after SIGTERM; returns the time since `since`.
    pub async fn wait_exit(&mut self, i: usize, since: Instant, bound: Duration) -> Result<Duration> {
        self.nodes[i].wait_exit(bound).await?;
        let took = since.elapsed();
        self.timeline.observe(format!("{} exited {} ms after SIGTERM", self.nodes[i].name(), took.as_millis()));
        Ok(took)
    }

    /// Starts a stopped node again on its data dir; returns how long it took to be ready.
    pub async fn restart(&mut self, i: usize) -> Result<Duration> {
        self.nodes[i].kill9();
        self.nodes[i].launch()?;
        self.timeline.heal(format!("restarted {} on its data dir", self.nodes[i].name()));
        let took = self.nodes[i].wait_ready(&self.client, READY_BOUND).await?;
        self.timeline.observe(format!("{} ready after {} ms", self.nodes[i].name(), took.as_millis()));
        Ok(took)
    }

    /// Cuts every fabric packet between the two groups, both ways.
    pub fn partition(&mut self, side_a: &[usize], side_b: &[usize]) -> Result<FaultId> {
        let mut rules = Vec::new();
        for &a in side_a {
            for &b in side_b {
                let (fa, fb) = (self.nodes[a].info.fabric(), self.nodes[b].info.fabric());
                rules.extend(Firewall::drop_rules(fa, fb));
                rules.extend(Firewall::drop_rules(fb, fa));
            }
        }
        let label = format!("partition {} | {}", self.names(side_a), self.names(side_b));
        let id = self.firewall.add(&label, rules)?;
        self.timeline.fault(label);
        Ok(id)
    }

    /// Drops the fabric packets `from` sends to `to`; the other direction still flows.
    pub fn one_way(&mut self, from: usize, to: usize) -> Result<FaultId> {
        let rules = Firewall::drop_rules(self.nodes[from].info.fabric(), self.nodes[to].info.fabric());
        let label = format!(
            "one-way partition: {} -> {} dropped ({} -> {} flows)",
            self.nodes[from].name(),
            self.nodes[to].name(),
            self.nodes[to].name(),
            self.nodes[from].name()
        );
        let id = self.firewall.add(&label, rules)?;
        self.timeline.fault(label);
        Ok(id)
    }

    /// Drops `percent` % of fabric packets between all nodes.
    pub fn loss(&mut self, percent: u8) -> Result<FaultId> {
        let fabrics: Vec<_> = self.nodes.iter().map(|n| n.info.fabric()).collect();
        let label = format!("{percent}% packet loss on the fabric");
        let id = self.firewall.add(&label, vec![Firewall::loss_rule(&fabrics, percent)])?;
        self.timeline.fault(label);
        Ok(id)
    }

    pub fn heal(&mut self, id: FaultId, what: &str) -> Result<()> {
        self.firewall.remove(id)?;
        self.timeline.heal(format!("healed {what}"));
        Ok(())
    }

    pub fn heal_network(&mut self) -> Result<()> {
        let active = self.firewall.active();
        self.firewall.clear()?;
        if !active.is_empty() {
            self.timeline.heal(format!("healed the network ({})", active.join("; ")));
        }
        Ok(())
    }

    pub fn names(&self, indices: &[usize]) -> String {
        indices.iter().map(|&i| self.nodes[i].name().to_string()).collect::<Vec<_>>().join(",")
    }

    /// Indices of the backends in `zone`.
    pub fn backends_in(&self, zone: &str) -> Vec<usize> {
        (0..self.backends.len()).filter(|&b| self.backends[b].zone == zone).collect()
    }

    /// Joins a new node in `zone` with a fresh join token through node 0's fabric address;
    /// returns its index once ready.
    pub async fn add_node(&mut self, zone: &str, via: usize) -> Result<usize> {
        let token = self.nodes[via].info.admin().create_join_token(&self.client, &self.admin_token, "1h").await?;
        let member = self.nodes[via].info.fabric;
        let index = self.spawn_node(zone, Some((member, token)))?;
        self.timeline.step(format!("{} joining through {}", self.nodes[index].name(), self.nodes[via].name()));
        let took = self.nodes[index].wait_ready(&self.client, READY_BOUND).await?;
        if let Some(Some(status)) = self.statuses(&[index]).await.into_iter().next().map(|(_, s)| s) {
            self.nodes[index].id = Some(status.node.id);
        }
        self.timeline.observe(format!("{} ready after {} ms", self.nodes[index].name(), took.as_millis()));
        Ok(index)
    }

    /// Stops every node (by pid), deletes the nftables table, and checks both are gone.
    pub fn teardown(&mut self) -> Teardown {
        let mut report = Teardown::default();
        for node in &mut self.nodes {
            node.kill9();
        }
        for backend in &self.backends {
            backend.crash();
        }
        for node in &self.nodes {
            for &pid in node.started_pids() {
                // A live pid that still runs our binary with our data dir is ours; a reused pid
                // running something else is not.
                let ours = crate::node::pid_cmdline(pid).is_some_and(|c| c.contains(&node.info.admin.to_string()));
                if crate::node::pid_alive(pid) && ours {
                    report.leftover_pids.push(pid);
                }
            }
        }
        let table = self.firewall.table().to_string();
        if let Err(error) = self.firewall.destroy() {
            report.errors.push(error.to_string());
        }
        match crate::nft::table_exists(&table) {
            Ok(true) => report.table_left = Some(table),
            Ok(false) => {}
            Err(error) => report.errors.push(error.to_string()),
        }
        report.foreign_tables = crate::nft::foreign_chaos_tables();
        report
    }

    /// Copies every node's log to `dest` (the report dir), so a failed run can be read later.
    pub fn keep_logs(&self, dest: &std::path::Path) -> Vec<PathBuf> {
        let _ = std::fs::create_dir_all(dest);
        let mut kept = Vec::new();
        for node in &self.nodes {
            let to = dest.join(format!("{}.log", node.name()));
            if std::fs::copy(node.log_path(), &to).is_ok() {
                kept.push(to);
            }
        }
        kept
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Also on panic: nodes by pid (Node::drop), then the table (Firewall::drop).
        for node in &mut self.nodes {
            node.kill9();
        }
    }
}
