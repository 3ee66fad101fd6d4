//! The scenarios, one file each, and [`Run`], the life they share: start the cluster and
//! backends, commit a first config, run the workload, inject faults while measuring elections
//! and convergence, then stop, read every node's final state, tear down and judge.

mod backend_failover;
mod follower_restart;
mod fourth_node;
mod gray_failure;
mod leader_kill;
mod nemesis;
mod one_way_partition;
mod rolling_restart;
mod zone_partition;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::client::{HttpClient, ADMIN_READ_DEADLINE};
use crate::cluster::Cluster;
use crate::document::marker_of;
use crate::error::{ChaosError, Result};
use crate::invariants::{bounds, evaluate, Measured, NodeFinal, Observations, Probe, Verdict};
use crate::node::NodeInfo;
use crate::report::Report;
use crate::timeline::Timeline;
use crate::workload::{write_once, Workload, WorkloadConfig, WriteRecord};

/// Every scenario, in the order the suite documents them.
pub const SCENARIOS: [&str; 9] = [
    "leader_kill",
    "follower_restart",
    "zone_partition",
    "one_way_partition",
    "gray_failure",
    "rolling_restart",
    "backend_failover",
    "fourth_node",
    "nemesis",
];

/// Runs scenario `name` with `seed` and returns its report (already written and printed).
pub async fn run(name: &str, seed: u64) -> Result<Report> {
    match name {
        "leader_kill" => leader_kill::run(seed).await,
        "follower_restart" => follower_restart::run(seed).await,
        "zone_partition" => zone_partition::run(seed).await,
        "one_way_partition" => one_way_partition::run(seed).await,
        "gray_failure" => gray_failure::run(seed).await,
        "rolling_restart" => rolling_restart::run(seed).await,
        "backend_failover" => backend_failover::run(seed).await,
        "fourth_node" => fourth_node::run(seed).await,
        "nemesis" => nemesis::run(seed).await,
        other => Err(ChaosError::UnknownScenario(other.to_string(), SCENARIOS.join(", "))),
    }
}

/// `CHAOS_SEED` when set (to replay a run), else a fresh random seed.
pub fn seed_from_env() -> u64 {
    std::env::var("CHAOS_SEED").ok().and_then(|s| s.trim().parse().ok()).unwrap_or_else(rand::random)
}

/// How long a wait for a leader or a convergence goes on before it is recorded as "never".
const MEASURE_WAIT: Duration = Duration::from_secs(20);
/// After the last heal, requests still count in the fault window for this long (a client's
/// pooled connection to a restarted node, a node still binding its listener).
const FAULT_WINDOW_SETTLE: Duration = Duration::from_secs(3);
/// How long the whole cluster gets to agree on one revision once writes stop.
const FINAL_CONVERGENCE_BOUND_MS: u64 = 20_000;

/// A scenario in progress.
pub struct Run {
    pub name: &'static str,
    pub seed: u64,
    pub timeline: Arc<Timeline>,
    pub cluster: Cluster,
    workload: Option<Workload>,
    /// Filled as the scenario goes; completed by [`Run::finish`].
    pub observations: Observations,
    /// Writes made by the scenario itself (the first config, partition probes).
    extra_writes: Vec<WriteRecord>,
    pub notes: Vec<String>,
    started_unix_ms: u64,
    fault_from_ms: Option<u64>,
    healed_at: Option<Instant>,
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Run {
    /// Starts the cluster, commits the first config and checks every node serves traffic.
    pub async fn setup(name: &'static str, seed: u64) -> Result<Run> {
        // A build of the node (when its sources changed) must not count in the scenario's clock.
        let binary = crate::env::gantry_binary()?;
        println!("chaos: scenario {name}, seed {seed} (replay with CHAOS_SEED={seed}), node {}", binary.display());
        let started_unix_ms = unix_ms();
        let timeline = Arc::new(Timeline::new(name));
        let cluster = Cluster::start(timeline.clone()).await?;
        timeline.step("cluster up: three voters in zones a, b, c");
        let mut run = Run {
            name,
            seed,
            timeline,
            cluster,
            workload: None,
            observations: Observations { availability_asserted: true, ..Observations::default() },
            extra_writes: Vec::new(),
            notes: Vec::new(),
            started_unix_ms,
            fault_from_ms: None,
            healed_at: None,
        };
        let first = run.write_until_acked(&[0], "init", "init", Duration::from_secs(20)).await?;
        let all: Vec<usize> = (0..run.cluster.nodes.len()).collect();
        if run.cluster.wait_serving(&all, first, Instant::now(), Duration::from_secs(20)).await.is_none() {
            return Err(ChaosError::Timeout {
                what: format!("every node to serve revision {first}"),
                waited_ms: 20_000,
            });
        }
        run.wait_traffic(Duration::from_secs(15)).await?;
        run.timeline.step(format!("revision {first} served and proxied by every node"));
        Ok(run)
    }

    /// Waits until every node proxies a request to a backend.
    async fn wait_traffic(&self, bound: Duration) -> Result<()> {
        let started = Instant::now();
        for node in &self.cluster.nodes {
            let url = format!("http://{}/", node.info.http);
            loop {
                let reply = crate::client::get(&self.cluster.client, &url, ADMIN_READ_DEADLINE).await;
                if reply.is_ok_and(|r| r.status == 200) {
                    break;
                }
                if started.elapsed() > bound {
                    return Err(ChaosError::Timeout {
                        what: format!("{url} to answer 200"),
                        waited_ms: bound.as_millis() as u64,
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    pub fn start_workload(&mut self, config: WorkloadConfig) {
        self.workload = Some(Workload::start(&self.cluster, config, self.seed));
    }

    pub async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }

    /// Sleeps until `duration` has passed since `since`.
    pub async fn sleep_until(&self, since: Instant, duration: Duration) {
        let until = since + duration;
        if until > Instant::now() {
            tokio::time::sleep_until(until.into()).await;
        }
    }

    /// The first fault opens the window in which client success is judged.
    pub fn mark_fault(&mut self) {
        if self.fault_from_ms.is_none() {
            self.fault_from_ms = Some(self.timeline.now_ms());
        }
    }

    /// The last heal closes it (plus a short settle).
    pub fn mark_healed(&mut self) {
        self.healed_at = Some(Instant::now());
        if let Some(from) = self.fault_from_ms {
            self.observations.fault_window =
                Some((from, self.timeline.now_ms() + FAULT_WINDOW_SETTLE.as_millis() as u64));
        }
    }

    /// Nodes other than `index`.
    pub fn others(&self, index: usize) -> Vec<usize> {
        (0..self.cluster.nodes.len()).filter(|&i| i != index).collect()
    }

    pub fn node_name(&self, index: usize) -> String {
        self.cluster.nodes[index].name().to_string()
    }

    /// Measures the time from `since` to a leader among `candidates` with a term above
    /// `old_term`; returns the new leader.
    pub async fn measure_election(
        &mut self,
        cause: &str,
        candidates: &[usize],
        old_term: u64,
        since: Instant,
    ) -> Option<usize> {
        let found = self.cluster.wait_new_leader(candidates, old_term, since, MEASURE_WAIT).await;
        self.record_election(cause, since, found)
    }

    /// Starts measuring a change of leader in a task of its own, so the scenario can go on
    /// (restart the node) meanwhile; every node is a candidate, the old leader's next process
    /// included. Hand the result to [`Run::record_election`].
    pub fn spawn_leader_change_watch(
        &self,
        old_leader: usize,
        old_term: u64,
        since: Instant,
    ) -> tokio::task::JoinHandle<Option<(usize, u64, Duration)>> {
        let all: Vec<usize> = (0..self.cluster.nodes.len()).collect();
        let watcher = self.cluster.watcher(&all);
        let old = (old_leader, old_term, self.cluster.nodes[old_leader].info.generation());
        tokio::spawn(async move { watcher.wait_leader_change(old, since, MEASURE_WAIT).await })
    }

    /// Records a measured election (`found`: new leader, term, time since `since`).
    pub fn record_election(
        &mut self,
        cause: &str,
        since: Instant,
        found: Option<(usize, u64, Duration)>,
    ) -> Option<usize> {
        let at_ms = self.timeline.ms_at(since);
        let (result, took_ms, leader) = match found {
            Some((i, term, took)) => {
                self.timeline.observe(format!(
                    "new leader {} (term {term}) {} ms after {cause}",
                    self.node_name(i),
                    took.as_millis()
                ));
                (format!("{} in term {term}", self.node_name(i)), Some(took.as_millis() as u64), Some(i))
            }
            None => {
                self.timeline.observe(format!("no new leader within {} ms after {cause}", MEASURE_WAIT.as_millis()));
                ("none".to_string(), None, None)
            }
        };
        self.observations.elections.push(Measured {
            what: format!("time to new leader after {cause}"),
            at_ms,
            took_ms,
            bound_ms: bounds::LEADER_ELECTION_MS,
            result,
        });
        leader
    }

    /// Measures the time from the last heal until a write committed after the heal is served
    /// by every live node. A fresh write proves replication reaches each node again; what a
    /// restarted node had on disk proves nothing.
    pub async fn measure_convergence(&mut self, what: &str) {
        let since = self.healed_at.unwrap_or_else(Instant::now);
        let live = self.cluster.live();
        let marker = format!("heal-{}", self.observations.convergences.len());
        let written = self.write_until_acked(&live, "probe", &marker, MEASURE_WAIT).await;
        let (target, took) = match written {
            Ok(revision) => {
                let bound = MEASURE_WAIT.saturating_sub(since.elapsed());
                (Some(revision), self.cluster.wait_serving(&live, revision, since, bound).await)
            }
            Err(_) => (None, None),
        };
        let took_ms = took.map(|t| t.as_millis() as u64);
        let result = match (target, took_ms) {
            (Some(revision), Some(ms)) => {
                self.timeline.observe(format!(
                    "all {} live nodes serve revision {revision} (written after the heal) {ms} ms after {what}",
                    live.len()
                ));
                format!("revision {revision} on {}", self.cluster.names(&live))
            }
            (Some(revision), None) => {
                self.timeline.observe(format!("revision {revision} not served everywhere within the wait ({what})"));
                format!("revision {revision} not on every node of {}", self.cluster.names(&live))
            }
            (None, _) => {
                self.timeline.observe(format!("no write acknowledged after {what}"));
                "no write acknowledged after the heal".to_string()
            }
        };
        self.observations.convergences.push(Measured {
            what: format!("time to converge after {what}"),
            at_ms: self.timeline.ms_at(since),
            took_ms,
            bound_ms: bounds::CONVERGENCE_MS,
            result,
        });
    }

    /// Polls who leads every 250 ms for `duration`, recording each change; returns how many.
    pub async fn watch_leadership(&mut self, duration: Duration) -> usize {
        let until = Instant::now() + duration;
        let mut last: Option<(usize, u64)> = None;
        let mut changes = 0;
        while Instant::now() < until {
            let live = self.cluster.live();
            let now = self.cluster.leader_among(&live).await;
            if now.is_some() && now != last {
                if last.is_some() {
                    changes += 1;
                }
                if let Some((i, term)) = now {
                    self.timeline.observe(format!("leader is {} (term {term})", self.node_name(i)));
                }
                last = now;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        changes
    }

    /// Writes the document marked `marker` through `nodes` in turn until one acknowledges it
    /// or `bound` passes; every attempt is recorded. Returns the acknowledged revision.
    pub async fn write_until_acked(
        &mut self,
        nodes: &[usize],
        writer: &str,
        marker: &str,
        bound: Duration,
    ) -> Result<u64> {
        let started = Instant::now();
        for attempt in 0..100usize {
            let node = self.cluster.nodes[nodes[attempt % nodes.len()]].info.clone();
            let marker = format!("{marker}-{attempt}");
            let record = probe_write(&self.cluster, &node, writer, &marker, &self.timeline).await;
            let acked = record.acked_revision();
            self.extra_writes.push(record);
            if let Some(revision) = acked {
                return Ok(revision);
            }
            if started.elapsed() > bound {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(ChaosError::Timeout {
            what: format!("a write marked {marker} to be acknowledged"),
            waited_ms: bound.as_millis() as u64,
        })
    }

    /// Records a probe write made on one side of a partition.
    pub fn record_probe(&mut self, side: &str, write: WriteRecord) {
        let node = self.node_name(write.node);
        self.timeline.observe(format!("{side} probe write to {node}: {:?} in {} ms", write.outcome, write.latency_ms));
        self.observations.probes.push(Probe { side: side.to_string(), node, write: write.clone() });
        self.extra_writes.push(write);
    }

    pub fn check(&mut self, invariant: &'static str, holds: bool, detail: impl Into<String>) {
        let verdict = Verdict::new(invariant, holds, detail);
        self.timeline.observe(format!(
            "check `{invariant}`: {} ({})",
            if holds { "ok" } else { "FAIL" },
            verdict.detail
        ));
        self.observations.scenario_checks.push(verdict);
    }

    /// Stops the workload, waits for one revision everywhere, reads every node's final state,
    /// tears everything down, judges the invariants, and writes and prints the report.
    pub async fn finish(mut self) -> Result<Report> {
        let mut log = match self.workload.take() {
            Some(workload) => workload.stop().await,
            None => Default::default(),
        };
        // A scenario heals what it broke; this only catches a scenario bug, and says so.
        for i in 0..self.cluster.nodes.len() {
            if self.cluster.nodes[i].is_paused() {
                self.notes.push(format!("{} was still stopped at the end; resumed", self.node_name(i)));
                self.cluster.resume(i)?;
            }
            if !self.cluster.nodes[i].is_running() {
                self.notes.push(format!("{} was not running at the end; restarted", self.node_name(i)));
                self.cluster.restart(i).await?;
            }
        }
        self.cluster.heal_network()?;
        let all: Vec<usize> = (0..self.cluster.nodes.len()).collect();
        let since = Instant::now();
        let at_ms = self.timeline.now_ms();
        let final_wait = Duration::from_millis(FINAL_CONVERGENCE_BOUND_MS + 10_000);
        let identical = self.cluster.wait_identical(&all, since, final_wait).await;
        let (result, took_ms) = match identical {
            Some((revision, took)) => {
                self.timeline.observe(format!(
                    "every node serves revision {revision} ({} ms after writes stopped)",
                    took.as_millis()
                ));
                (format!("revision {revision} on every node"), Some(took.as_millis() as u64))
            }
            None => ("nodes still disagree".to_string(), None),
        };
        self.observations.convergences.push(Measured {
            what: "final convergence once writes stopped".into(),
            at_ms,
            took_ms,
            bound_ms: FINAL_CONVERGENCE_BOUND_MS,
            result,
        });

        let statuses = self.cluster.statuses(&all).await;
        self.observations.final_term = statuses.iter().filter_map(|(_, s)| s.as_ref().map(|s| s.cluster.term)).max();
        self.observations.nodes = read_final_states(&self.cluster).await;
        self.observations.node_names = self.cluster.nodes.iter().map(|n| n.name().to_string()).collect();
        let logs_dir = crate::env::reports_dir().join("logs").join(self.name);
        let logs = self.cluster.keep_logs(&logs_dir);
        self.observations.teardown = self.cluster.teardown();
        self.timeline.step("torn down: nodes stopped by pid, nftables table deleted");

        log.writes.append(&mut self.extra_writes);
        log.writes.sort_by_key(|w| w.t_ms);
        self.observations.workload = log;
        let verdicts = evaluate(&self.observations);
        let duration_ms = self.timeline.now_ms();
        let report = Report::build(
            self.name,
            self.seed,
            self.started_unix_ms,
            duration_ms,
            &self.observations,
            verdicts,
            self.timeline.events(),
            self.notes.clone(),
            logs,
        );
        println!("{}", report.markdown());
        match report.write(&crate::env::reports_dir()) {
            Ok((json, md)) => println!("chaos: report written to {} and {}", json.display(), md.display()),
            Err(error) => println!("chaos: could not write the report: {error}"),
        }
        Ok(report)
    }
}

/// One write through `node`, with the standard deadline.
pub async fn probe_write(
    cluster: &Cluster,
    node: &NodeInfo,
    writer: &str,
    marker: &str,
    timeline: &Timeline,
) -> WriteRecord {
    write_once(
        &cluster.client,
        node,
        &cluster.admin_token,
        &cluster.endpoints(),
        writer,
        marker,
        timeline,
        crate::workload::WRITE_DEADLINE,
    )
    .await
}

/// Served revision, history, every revision's marker and panic lines of each node, read
/// concurrently (one task per node).
async fn read_final_states(cluster: &Cluster) -> Vec<NodeFinal> {
    let mut set = JoinSet::new();
    for (index, node) in cluster.nodes.iter().enumerate() {
        let info = node.info.clone();
        let client = cluster.client.clone();
        let panics: Vec<String> =
            node.log().lines().filter(|l| l.contains("panicked")).map(|l| l.chars().take(400).collect()).collect();
        set.spawn(async move {
            let mut state = read_final_state(&client, &info).await;
            state.panics = panics;
            (index, state)
        });
    }
    let mut states: Vec<(usize, NodeFinal)> = Vec::new();
    while let Some(joined) = set.join_next().await {
        if let Ok(pair) = joined {
            states.push(pair);
        }
    }
    states.sort_by_key(|(i, _)| *i);
    states.into_iter().map(|(_, s)| s).collect()
}

async fn read_final_state(client: &HttpClient, info: &NodeInfo) -> NodeFinal {
    let admin = info.admin();
    let mut state = NodeFinal { name: info.name.clone(), ..NodeFinal::default() };
    match admin.served(client).await {
        Ok(served) => state.served_revision = Some(served.revision),
        Err(error) => state.errors.push(error.to_string()),
    }
    match admin.history(client).await {
        Ok(history) => {
            for entry in &history {
                let marker = match admin.revision(client, entry.revision).await {
                    Ok(Some(doc)) => marker_of(&doc.config),
                    Ok(None) => None,
                    Err(error) => {
                        state.errors.push(error.to_string());
                        None
                    }
                };
                state.markers.insert(entry.revision, marker);
            }
            state.history = Some(history);
        }
        Err(error) => state.errors.push(error.to_string()),
    }
    state
}
