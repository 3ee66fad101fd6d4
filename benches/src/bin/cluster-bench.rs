//! The cluster benchmark: a local three-node gantry cluster against a three-member etcd 3.4
//! cluster, side by side in one run, on loopback, through the same HTTP/1.1 client (see
//! `benches/README.md`, "cluster"). `benches/cluster/run.sh` installs etcd, builds gantry and
//! runs this.
//!
//! ```text
//! cluster-bench --gantry PATH [--etcd PATH] [--work-dir DIR] [--out FILE] [--size BYTES]
//!   [--rounds N] [--writes N] [--writers N] [--writes-each N] [--applied-commits N]
//!   [--poll-ms N] [--failover-trials N] [--etcd-failover-trials N] [--gantry-log FILTER]
//!   [--gantry-desc TEXT] [--command TEXT]
//! ```
//!
//! Every process it starts is killed by pid when it ends (also on SIGINT/SIGTERM); their pids
//! are appended to `WORK_DIR/pids` for the script's own clean-up.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use gantry_benches::cluster::http;
use gantry_benches::cluster::measure::{self, Applied, Batch, FailoverTrial, Markers};
use gantry_benches::cluster::stats::{median, ms, ratio, Summary};
use gantry_benches::cluster::subject::{Cluster, Kind};
use tokio::signal::unix::{signal, SignalKind};

/// Past this much time the failover phase starts no new trial (the whole run stays under ten
/// minutes even when trials are slow).
const FAILOVER_BUDGET: Duration = Duration::from_secs(420);
/// Longest a single failover may take before the trial counts as failed.
const FAILOVER_BOUND: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
struct Options {
    gantry: PathBuf,
    etcd: PathBuf,
    work_dir: Option<PathBuf>,
    out: PathBuf,
    size: usize,
    rounds: usize,
    writes: usize,
    writers: usize,
    writes_each: usize,
    applied_commits: usize,
    poll: Duration,
    failover_trials: usize,
    etcd_failover_trials: usize,
    gantry_log: String,
    gantry_desc: String,
    command: String,
}

fn parse_options() -> Result<Options> {
    let mut values: HashMap<String, String> = HashMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let Some(name) = flag.strip_prefix("--") else { bail!("unexpected argument {flag:?}") };
        let value = args.next().with_context(|| format!("{flag} needs a value"))?;
        values.insert(name.to_string(), value);
    }
    let mut take = |name: &str| values.remove(name);
    fn number(name: &str, value: Option<String>, default: usize) -> Result<usize> {
        value.map_or(Ok(default), |v| v.parse().with_context(|| format!("--{name} {v}: not a number")))
    }
    let options = Options {
        gantry: take("gantry").map(PathBuf::from).context("--gantry PATH (the gantry executable) is required")?,
        etcd: take("etcd").map_or_else(|| PathBuf::from("/usr/bin/etcd"), PathBuf::from),
        work_dir: take("work-dir").map(PathBuf::from),
        out: take("out").map_or_else(|| PathBuf::from("target/bench-cluster/results.md"), PathBuf::from),
        size: number("size", take("size"), 1536)?,
        rounds: number("rounds", take("rounds"), 10)?.max(1),
        writes: number("writes", take("writes"), 200)?,
        writers: number("writers", take("writers"), 16)?.max(1),
        writes_each: number("writes-each", take("writes-each"), 30)?,
        applied_commits: number("applied-commits", take("applied-commits"), 100)?,
        poll: Duration::from_millis(number("poll-ms", take("poll-ms"), 1)?.max(1) as u64),
        failover_trials: number("failover-trials", take("failover-trials"), 50)?,
        etcd_failover_trials: number("etcd-failover-trials", take("etcd-failover-trials"), 20)?,
        gantry_log: take("gantry-log").unwrap_or_else(|| "info".to_string()),
        gantry_desc: take("gantry-desc").unwrap_or_default(),
        command: take("command").unwrap_or_default(),
    };
    if let Some(unknown) = values.keys().next() {
        bail!("unknown option --{unknown}");
    }
    Ok(options)
}

fn log(message: impl AsRef<str>) {
    eprintln!(">> {}", message.as_ref());
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_string())
}

fn first_line_of(program: &Path, arg: &str) -> String {
    Command::new(program)
        .arg(arg)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").trim().to_string())
        .unwrap_or_default()
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}

fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("cluster-bench: {error:#}");
            std::process::exit(2);
        }
    };
    let (work_dir, own_dir) = match &options.work_dir {
        Some(dir) => (dir.clone(), false),
        None => (std::env::temp_dir().join(format!("gantry-bench-cluster.{}", std::process::id())), true),
    };
    // One thread for the client side: 16 writers and three pollers need no more, and it leaves
    // both cores to the six server processes.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cluster-bench: cannot start tokio: {error}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(async {
        let (Ok(mut terminate), Ok(mut interrupt)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
        else {
            eprintln!("cluster-bench: cannot watch signals");
            return 1;
        };
        tokio::select! {
            // Dropping `run` drops both clusters, which kills every member by pid.
            result = run(&options, &work_dir) => match result {
                Ok(()) => 0,
                Err(error) => {
                    eprintln!("cluster-bench: {error:#}");
                    1
                }
            },
            _ = terminate.recv() => 143,
            _ = interrupt.recv() => 130,
        }
    });
    drop(runtime);
    if own_dir {
        let _ = std::fs::remove_dir_all(&work_dir);
    }
    std::process::exit(code);
}

/// Everything measured, per cluster.
#[derive(Debug, Default)]
struct Results {
    one: Vec<Batch>,
    many: Vec<Batch>,
    applied: Applied,
    failovers: Vec<FailoverTrial>,
    failover_errors: Vec<String>,
}

fn pick(results: &mut [Results; 2], kind: Kind) -> &mut Results {
    match kind {
        Kind::Gantry => &mut results[0],
        Kind::Etcd => &mut results[1],
    }
}

async fn run(options: &Options, work_dir: &Path) -> Result<()> {
    let run_started = Instant::now();
    std::fs::create_dir_all(work_dir).with_context(|| format!("create {}", work_dir.display()))?;
    let pid_file = work_dir.join("pids");
    let load_before = loadavg();
    let etcd_version = first_line_of(&options.etcd, "--version");
    if etcd_version.is_empty() {
        bail!("{} --version printed nothing: is etcd installed?", options.etcd.display());
    }
    let client = http::client();

    log("starting three gantry nodes");
    let gantry_dir = work_dir.join("gantry");
    let mut gantry = Cluster::start_gantry(
        &options.gantry,
        &gantry_dir,
        &pid_file,
        client.clone(),
        options.size,
        &options.gantry_log,
    )
    .await?;
    log("starting three etcd members");
    let mut etcd = Cluster::start_etcd(&options.etcd, &work_dir.join("etcd"), &pid_file, client, options.size).await?;
    log(format!("both clusters up after {:.1}s", run_started.elapsed().as_secs_f64()));

    let markers = Markers::default();
    let mut results: [Results; 2] = Default::default();
    for cluster in [&gantry, &etcd] {
        measure::commit_latency(cluster, 1, 20, &markers).await?;
    }

    // 1. Commit latency: rounds alternate which cluster goes first, so slow spells of other
    // load on the machine fall on both.
    for round in 0..options.rounds {
        let order = if round % 2 == 0 { [&gantry, &etcd] } else { [&etcd, &gantry] };
        for (writers, each) in [(1, options.writes), (options.writers, options.writes_each)] {
            for cluster in order {
                let batch = measure::commit_latency(cluster, writers, each, &markers).await?;
                let summary = Summary::of(&batch.latencies);
                log(format!(
                    "round {} {} {writers} writer(s): p50 {} ms, p99 {} ms, {:.0} writes/s, errors {}",
                    round + 1,
                    cluster.kind.name(),
                    summary.map_or("-".into(), |s| ms(s.p50)),
                    summary.map_or("-".into(), |s| ms(s.p99)),
                    batch.latencies.len() as f64 / batch.elapsed.as_secs_f64(),
                    batch.errors
                ));
                let entry = pick(&mut results, cluster.kind);
                if writers == 1 { &mut entry.one } else { &mut entry.many }.push(batch);
            }
        }
    }

    // 2. Commit-to-applied, in `rounds` chunks per cluster, alternating.
    let chunks = options.rounds.max(1);
    for chunk in 0..chunks {
        let commits = options.applied_commits / chunks + usize::from(chunk < options.applied_commits % chunks);
        for cluster in [&gantry, &etcd] {
            let applied =
                measure::commit_to_applied(cluster, commits, &markers, options.poll, Duration::from_secs(5)).await?;
            let entry = &mut pick(&mut results, cluster.kind).applied;
            entry.all.extend(applied.all);
            entry.followers.extend(applied.followers);
            entry.leader.extend(applied.leader);
            entry.missed += applied.missed;
            entry.errors += applied.errors;
            if entry.first_error.is_none() {
                entry.first_error = applied.first_error;
            }
        }
        log(format!("commit-to-applied chunk {}/{chunks} done", chunk + 1));
    }

    // 3. Failover, one trial of each in turn.
    let trials = options.failover_trials.max(options.etcd_failover_trials);
    let mut budget_hit = false;
    for trial in 0..trials {
        for cluster in [&mut gantry, &mut etcd] {
            let wanted =
                if cluster.kind == Kind::Gantry { options.failover_trials } else { options.etcd_failover_trials };
            if trial >= wanted {
                continue;
            }
            if run_started.elapsed() > FAILOVER_BUDGET {
                budget_hit = true;
                continue;
            }
            let kind = cluster.kind;
            match measure::failover_trial(cluster, &markers, FAILOVER_BOUND).await {
                Ok(result) => {
                    log(format!(
                        "failover {} {}: killed {}, new leader named after {} ms, first write after {} ms (via {}, {} attempts), rejoined in {} ms",
                        kind.name(),
                        trial + 1,
                        result.killed,
                        result.leader_seen.map_or("-".into(), ms),
                        ms(result.first_write),
                        result.via,
                        result.attempts,
                        ms(result.rejoin)
                    ));
                    pick(&mut results, kind).failovers.push(result);
                }
                Err(error) => {
                    log(format!("failover {} {} failed: {error:#}", kind.name(), trial + 1));
                    pick(&mut results, kind).failover_errors.push(format!("{error:#}"));
                    // A member that could not come back ends the phase for this cluster.
                    cluster.check_alive()?;
                    for i in 0..cluster.members.len() {
                        if !cluster.members[i].proc.is_up() {
                            cluster.restart(i, Duration::from_secs(30)).await?;
                        }
                    }
                }
            }
        }
    }
    let load_after = loadavg();
    gantry.stop();
    etcd.stop();

    let report = render(
        options,
        &results,
        &Context {
            etcd_version,
            load_before,
            load_after,
            wall: run_started.elapsed(),
            budget_hit,
            ticks_per_second: clock_ticks_per_second(),
        },
    );
    if let Some(parent) = options.out.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    }
    std::fs::write(&options.out, &report).with_context(|| format!("write {}", options.out.display()))?;
    println!("\n{report}");
    log(format!("written to {}", options.out.display()));
    Ok(())
}

struct Context {
    etcd_version: String,
    load_before: String,
    load_after: String,
    wall: Duration,
    budget_hit: bool,
    ticks_per_second: f64,
}

fn yes_no(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "**yes**",
        Some(false) => "**no**",
        None => "n/a",
    }
}

fn cell(summary: Option<Summary>, p99: bool) -> String {
    summary.map_or("n/a".to_string(), |s| ms(if p99 { s.p99 } else { s.p50 }))
}

/// One row of the main table: gantry and etcd p50/p99 and the ratios.
fn row(name: &str, gantry: &[Duration], etcd: &[Duration], goal: &str, met: Option<bool>) -> String {
    let (g, e) = (Summary::of(gantry), Summary::of(etcd));
    format!(
        "| {name} | {} / {} | {} | {} | {} | {} | {} | {} | {goal} | {} |\n",
        gantry.len(),
        etcd.len(),
        cell(g, false),
        cell(g, true),
        cell(e, false),
        cell(e, true),
        ratio(g.map(|s| s.p50), e.map(|s| s.p50)),
        ratio(g.map(|s| s.p99), e.map(|s| s.p99)),
        yes_no(met)
    )
}

fn latencies(batches: &[Batch]) -> Vec<Duration> {
    batches.iter().flat_map(|b| b.latencies.iter().copied()).collect()
}

fn errors(batches: &[Batch]) -> (usize, Option<String>) {
    (batches.iter().map(|b| b.errors).sum(), batches.iter().find_map(|b| b.first_error.clone()))
}

/// Median over batches of writes per second.
fn throughput(batches: &[Batch]) -> Option<f64> {
    median(&batches.iter().map(|b| b.latencies.len() as f64 / b.elapsed.as_secs_f64()).collect::<Vec<_>>())
}

/// CPU milliseconds (all three members) per acknowledged write, over all batches.
fn cpu_per_write(batches: &[Batch], ticks_per_second: f64) -> Option<f64> {
    let writes: usize = batches.iter().map(|b| b.latencies.len()).sum();
    let ticks: u64 = batches.iter().map(|b| b.cpu_ticks).sum();
    (writes > 0).then(|| ticks as f64 / ticks_per_second * 1e3 / writes as f64)
}

fn number(value: Option<f64>, decimals: usize) -> String {
    value.map_or("n/a".to_string(), |v| format!("{v:.decimals$}"))
}

fn render(options: &Options, results: &[Results; 2], context: &Context) -> String {
    let [g, e] = results;
    let g_one = latencies(&g.one);
    let e_one = latencies(&e.one);
    let g_many = latencies(&g.many);
    let e_many = latencies(&e.many);
    let not_worse = |a: &[Duration], b: &[Duration]| match (Summary::of(a), Summary::of(b)) {
        (Some(a), Some(b)) => Some(a.p50 <= b.p50 && a.p99 <= b.p99),
        _ => None,
    };
    let g_fail: Vec<Duration> = g.failovers.iter().map(|t| t.first_write).collect();
    let e_fail: Vec<Duration> = e.failovers.iter().map(|t| t.first_write).collect();
    let g_seen: Vec<Duration> = g.failovers.iter().filter_map(|t| t.leader_seen).collect();
    let e_seen: Vec<Duration> = e.failovers.iter().filter_map(|t| t.leader_seen).collect();
    let g_rejoin: Vec<Duration> = g.failovers.iter().map(|t| t.rejoin).collect();
    let e_rejoin: Vec<Duration> = e.failovers.iter().map(|t| t.rejoin).collect();
    let failover_met = Summary::of(&g_fail).map(|s| s.p99 <= Duration::from_secs(1) && g.failover_errors.is_empty());
    let applied_met = Summary::of(&g.applied.all).map(|s| s.p99 <= Duration::from_millis(100) && g.applied.missed == 0);

    let mut out = String::new();
    out.push_str("## Cluster benchmark: gantry vs etcd 3.4 (three members each, loopback)\n\n");
    if !options.command.is_empty() {
        out.push_str(&format!("`{}`\n\n", options.command));
    }
    out.push_str(&format!(
        "{}, gantry {}, {}, {} CPUs, load average (1, 5, 15 min) before: {}, after: {}; {:.0} s of measuring.\n\
         Writes: a {}-byte config document (gantry `PUT /v1/config`; etcd `POST /v3/kv/put`, the same bytes as the value), \
         to the leader, over HTTP/1.1 keep-alive from one hyper client; both fsync every commit (defaults). \
         {} rounds alternating which cluster goes first: per round {} sequential writes, then {} writers × {} writes.\n\n",
        utc_now(),
        if options.gantry_desc.is_empty() { "(unknown build)" } else { &options.gantry_desc },
        context.etcd_version,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        context.load_before,
        context.load_after,
        context.wall.as_secs_f64(),
        options.size,
        options.rounds,
        options.writes,
        options.writers,
        options.writes_each,
    ));
    out.push_str("| measure | n (gantry / etcd) | gantry p50 ms | gantry p99 ms | etcd p50 ms | etcd p99 ms | gantry/etcd p50 | gantry/etcd p99 | goal | met |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
    out.push_str(&row(
        "commit latency, 1 writer",
        &g_one,
        &e_one,
        "gantry p50 and p99 ≤ etcd's",
        not_worse(&g_one, &e_one),
    ));
    out.push_str(&row(
        &format!("commit latency, {} writers", options.writers),
        &g_many,
        &e_many,
        "gantry p50 and p99 ≤ etcd's",
        not_worse(&g_many, &e_many),
    ));
    out.push_str(&row(
        "leader failover: kill -9 → first acknowledged write",
        &g_fail,
        &e_fail,
        "gantry p99 ≤ 1000 ms",
        failover_met,
    ));
    out.push_str(&row(
        "commit acknowledged → every member serves it",
        &g.applied.all,
        &e.applied.all,
        "gantry p99 ≤ 100 ms",
        applied_met,
    ));

    out.push_str("\nDetails:\n\n| | gantry | etcd | gantry/etcd |\n|---|---:|---:|---:|\n");
    let pair = |name: &str, a: Option<f64>, b: Option<f64>, decimals: usize| {
        let r = match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.3}", a / b),
            _ => "n/a".to_string(),
        };
        format!("| {name} | {} | {} | {r} |\n", number(a, decimals), number(b, decimals))
    };
    let per_round = |batches: &[Batch]| {
        batches
            .iter()
            .map(|b| Summary::of(&b.latencies).map_or("-".to_string(), |s| ms(s.p50)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.push_str(&format!(
        "| commit p50 per round, 1 writer (ms) | {} | {} | |\n",
        per_round(&g.one),
        per_round(&e.one)
    ));
    out.push_str(&format!(
        "| commit p50 per round, {} writers (ms) | {} | {} | |\n",
        options.writers,
        per_round(&g.many),
        per_round(&e.many)
    ));
    out.push_str(&pair("writes/s, 1 writer (median of rounds)", throughput(&g.one), throughput(&e.one), 0));
    out.push_str(&pair(
        &format!("writes/s, {} writers (median of rounds)", options.writers),
        throughput(&g.many),
        throughput(&e.many),
        0,
    ));
    out.push_str(&pair(
        "CPU ms per write, 1 writer (3 members together)",
        cpu_per_write(&g.one, context.ticks_per_second),
        cpu_per_write(&e.one, context.ticks_per_second),
        2,
    ));
    out.push_str(&pair(
        &format!("CPU ms per write, {} writers (3 members together)", options.writers),
        cpu_per_write(&g.many, context.ticks_per_second),
        cpu_per_write(&e.many, context.ticks_per_second),
        2,
    ));
    let (g_err, g_first) = errors(&[g.one.clone(), g.many.clone()].concat());
    let (e_err, e_first) = errors(&[e.one.clone(), e.many.clone()].concat());
    out.push_str(&format!("| failed writes (commit latency) | {g_err} | {e_err} | |\n"));
    let p = |s: &[Duration], p99: bool| cell(Summary::of(s), p99);
    out.push_str(&format!(
        "| failover: kill → a survivor names the new leader, p50 / p99 (ms) | {} / {} | {} / {} | |\n",
        p(&g_seen, false),
        p(&g_seen, true),
        p(&e_seen, false),
        p(&e_seen, true)
    ));
    out.push_str(&format!(
        "| failover: kill → first acknowledged write, min / max (ms) | {} / {} | {} / {} | |\n",
        Summary::of(&g_fail).map_or("n/a".into(), |s| ms(s.min)),
        Summary::of(&g_fail).map_or("n/a".into(), |s| ms(s.max)),
        Summary::of(&e_fail).map_or("n/a".into(), |s| ms(s.min)),
        Summary::of(&e_fail).map_or("n/a".into(), |s| ms(s.max)),
    ));
    out.push_str(&format!(
        "| failover: restarted member serves the latest revision, p50 (ms) | {} | {} | |\n",
        p(&g_rejoin, false),
        p(&e_rejoin, false)
    ));
    out.push_str(&format!(
        "| failover trials failed | {} | {} | |\n",
        g.failover_errors.len(),
        e.failover_errors.len()
    ));
    out.push_str(&format!(
        "| commit → each follower serves it, p50 / p99 (ms) | {} / {} | {} / {} | |\n",
        p(&g.applied.followers, false),
        p(&g.applied.followers, true),
        p(&e.applied.followers, false),
        p(&e.applied.followers, true)
    ));
    out.push_str(&format!(
        "| commit → the leader serves it, p50 / p99 (ms) | {} / {} | {} / {} | |\n",
        p(&g.applied.leader, false),
        p(&g.applied.leader, true),
        p(&e.applied.leader, false),
        p(&e.applied.leader, true)
    ));
    out.push_str(&format!(
        "| commits not served everywhere within 5 s; failed writes (commit-to-applied) | {}; {} | {}; {} | |\n",
        g.applied.missed, g.applied.errors, e.applied.missed, e.applied.errors
    ));

    out.push_str(&format!(
        "\nPercentiles are nearest-rank (with 20 failover trials p99 is the slowest trial). Failover: \
         after SIGKILL of the leader, a write attempt starts every {} ms, alternating between the two \
         survivors, each with a 3 s deadline; the killed member is restarted on its data dir and caught up \
         before the next trial. Commit-to-applied: after each acknowledged write every member is polled every \
         {} ms (gantry `GET /v1/config`: the revision its data plane serves; etcd a serializable range: its \
         applied revision); the time is when the poll that first shows the revision returned.\n",
        measure::ATTEMPT_EVERY.as_millis(),
        options.poll.as_millis()
    ));
    if context.budget_hit {
        out.push_str("\n**The failover phase hit its time budget; some trials were not run.**\n");
    }
    let notes: Vec<String> = [
        g_first.map(|e| format!("gantry, first failed write: {e}")),
        e_first.map(|e| format!("etcd, first failed write: {e}")),
        g.applied.first_error.clone().map(|e| format!("gantry, commit-to-applied write error: {e}")),
        e.applied.first_error.clone().map(|e| format!("etcd, commit-to-applied write error: {e}")),
    ]
    .into_iter()
    .flatten()
    .chain(g.failover_errors.iter().map(|e| format!("gantry failover trial failed: {e}")))
    .chain(e.failover_errors.iter().map(|e| format!("etcd failover trial failed: {e}")))
    .collect();
    for note in notes {
        out.push_str(&format!("\n- {}", note.lines().next().unwrap_or_default()));
    }
    out.push('\n');
    out
}

/// `YYYY-MM-DD HH:MM UTC` from the system clock (no date crate needed).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rest / 3600, rest % 3600 / 60)
}
