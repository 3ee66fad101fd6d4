//! The nemesis: a seeded random schedule of faults (kills, hangs, isolations, one-way
//! partitions, packet loss; at most one at a time so a quorum can exist) for a bounded time,
//! under load. The schedule is a pure function of the seed: it is printed, and `CHAOS_SEED=N`
//! replays it (which node leads when a "leader" fault fires is decided at run time).

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use super::Run;
use crate::error::Result;
use crate::report::Report;
use crate::workload::WorkloadConfig;

/// Time the schedule fills by default; `CHAOS_NEMESIS_SECS` changes it.
const BUDGET_DEFAULT: Duration = Duration::from_secs(30);
/// Most episodes in one schedule, whatever the budget.
const EPISODES_MAX: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Fault {
    KillNode(usize),
    KillLeader,
    PauseNode(usize),
    PauseLeader,
    IsolateNode(usize),
    IsolateLeader,
    OneWay { from: usize, to: usize },
    Loss(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Episode {
    /// Quiet time before the fault.
    pub gap_ms: u64,
    pub fault: Fault,
    /// How long the fault holds (at least until a new leader, for leader faults).
    pub hold_ms: u64,
}

/// The schedule for `seed`: episodes until their gaps and holds fill `budget`.
pub fn schedule(seed: u64, budget: Duration) -> Vec<Episode> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut episodes = Vec::new();
    let mut planned_ms = 0;
    while planned_ms < budget.as_millis() as u64 && episodes.len() < EPISODES_MAX {
        let node = rng.random_range(0..3usize);
        let fault = match rng.random_range(0..8u8) {
            0 => Fault::KillNode(node),
            1 => Fault::KillLeader,
            2 => Fault::PauseNode(node),
            3 => Fault::PauseLeader,
            4 => Fault::IsolateNode(node),
            5 => Fault::IsolateLeader,
            6 => Fault::OneWay { from: node, to: (node + rng.random_range(1..3usize)) % 3 },
            _ => Fault::Loss(rng.random_range(10..=40u8)),
        };
        let gap_ms = rng.random_range(500..=2_000u64);
        let hold_ms = rng.random_range(1_000..=5_000u64);
        planned_ms += gap_ms + hold_ms;
        episodes.push(Episode { gap_ms, fault, hold_ms });
    }
    episodes
}

fn budget() -> Duration {
    std::env::var("CHAOS_NEMESIS_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.clamp(5, 600)))
        .unwrap_or(BUDGET_DEFAULT)
}

pub async fn run(seed: u64) -> Result<Report> {
    let budget = budget();
    let episodes = schedule(seed, budget);
    let mut run = Run::setup("nemesis", seed).await?;
    let plan: Vec<String> =
        episodes.iter().map(|e| format!("wait {} ms, {:?} for {} ms", e.gap_ms, e.fault, e.hold_ms)).collect();
    run.timeline.step(format!("nemesis schedule for seed {seed} ({} episodes): {}", episodes.len(), plan.join("; ")));
    run.notes.push(format!("schedule (seed {seed}, {} s): {}", budget.as_secs(), plan.join("; ")));
    run.start_workload(WorkloadConfig::default());
    run.sleep(Duration::from_secs(3)).await;

    let started = Instant::now();
    for episode in &episodes {
        // The schedule fills the budget; restarts can stretch it, but not without end.
        if started.elapsed() > budget * 2 {
            run.notes.push("schedule cut short: restarts took longer than the budget".into());
            break;
        }
        run.sleep(Duration::from_millis(episode.gap_ms)).await;
        play(&mut run, episode).await?;
    }
    run.mark_healed();
    run.measure_convergence("the nemesis stopped").await;
    run.sleep(Duration::from_secs(3)).await;
    run.finish().await
}

/// Applies one fault, holds it, heals it.
async fn play(run: &mut Run, episode: &Episode) -> Result<()> {
    let (leader, term) = run.cluster.leader(Duration::from_secs(10)).await?;
    let hold = Duration::from_millis(episode.hold_ms);
    let target = match episode.fault {
        Fault::KillNode(i) | Fault::PauseNode(i) | Fault::IsolateNode(i) => i,
        Fault::KillLeader | Fault::PauseLeader | Fault::IsolateLeader => leader,
        Fault::OneWay { from, .. } => from,
        Fault::Loss(_) => leader,
    };
    let why = if target == leader { " (the leader)" } else { "" };
    let others = run.others(target);
    let at = Instant::now();
    run.mark_fault();
    match episode.fault {
        Fault::KillNode(_) | Fault::KillLeader => {
            run.cluster.kill9(target, why);
            if target == leader {
                run.measure_election(&format!("kill -9 of {}", run.node_name(target)), &others, term, at).await;
            }
            run.sleep_until(at, hold).await;
            run.cluster.restart(target).await?;
        }
        Fault::PauseNode(_) | Fault::PauseLeader => {
            run.cluster.pause(target, why)?;
            if target == leader {
                run.measure_election(&format!("SIGSTOP of {}", run.node_name(target)), &others, term, at).await;
            }
            run.sleep_until(at, hold).await;
            run.cluster.resume(target)?;
        }
        Fault::IsolateNode(_) | Fault::IsolateLeader => {
            let fault = run.cluster.partition(&[target], &others)?;
            if target == leader {
                run.measure_election(&format!("isolation of {}", run.node_name(target)), &others, term, at).await;
            }
            run.sleep_until(at, hold).await;
            run.cluster.heal(fault, &format!("the isolation of {}", run.node_name(target)))?;
        }
        Fault::OneWay { from, to } => {
            let fault = run.cluster.one_way(from, to)?;
            run.sleep_until(at, hold).await;
            run.cluster.heal(fault, "the one-way partition")?;
        }
        Fault::Loss(percent) => {
            let fault = run.cluster.loss(percent)?;
            run.sleep_until(at, hold).await;
            run.cluster.heal(fault, "the packet loss")?;
        }
    }
    run.mark_healed();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_always_gives_the_same_schedule() {
        let a = schedule(42, Duration::from_secs(30));
        assert_eq!(a, schedule(42, Duration::from_secs(30)));
        assert_ne!(a, schedule(43, Duration::from_secs(30)));
        let planned: u64 = a.iter().map(|e| e.gap_ms + e.hold_ms).sum();
        assert!((30_000..37_000).contains(&planned), "{planned}");
    }

    #[test]
    fn schedules_are_bounded() {
        assert!(schedule(7, Duration::from_secs(100_000)).len() <= EPISODES_MAX);
        for episode in schedule(9, Duration::from_secs(60)) {
            if let Fault::OneWay { from, to } = episode.fault {
                assert_ne!(from, to);
            }
        }
    }
}
