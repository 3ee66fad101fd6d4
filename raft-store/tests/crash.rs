//! Crash test: a writer process appends log entries, saves votes and purges through the real
//! `LogStore` and prints each operation once openraft would have been told it is durable; the test
//! SIGKILLs it at a random moment, reopens the store and checks that nothing acknowledged is lost
//! and nothing is corrupt. The writer is this test binary re-executed with an env var, so no
//! test-only binary ships with the crate. A second test checks that a saved committed log id
//! is on disk once the background write has run, with no vote or purge to carry it.
//!
//! `GANTRY_CRASH_SEED=N` replays a run (the seed is printed at the start).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gantry_proto::cluster::Command;
use gantry_raft_store::{Entry, EntryPayload, LogId, Vote, COMMITTED_FLUSH_DELAY};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, RaftLogReader};

/// Set (to the store directory) only in the re-executed writer process.
const WRITER_DIR_ENV: &str = "GANTRY_RAFT_STORE_CRASH_WRITER_DIR";
const WRITER_SEED_ENV: &str = "GANTRY_RAFT_STORE_CRASH_WRITER_SEED";
/// Set to `hang-after-committed` to make the writer save a committed log id after its first
/// append, wait for the background flush, and stop there (waiting to be killed) with no later
/// vote or purge to carry the id.
const WRITER_MODE_ENV: &str = "GANTRY_RAFT_STORE_CRASH_WRITER_MODE";
/// Prefix of the writer's acknowledgement lines (libtest may print around them).
const MARK: &str = "crash-writer:";
const NODE: u64 = 1;
const ROUNDS: u64 = 6;

/// xorshift64*: deterministic from the printed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The payload of the entry at `index`: a pure function of the index, so the reader knows what
/// every entry must hold, acknowledged or not. Lengths vary so entries span pages differently.
fn payload(index: u64) -> Command {
    let mut rng = Rng::new(index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let pad: String = (0..rng.below(600)).map(|_| char::from(b'a' + rng.below(26) as u8)).collect();
    Command::ApplyConfig {
        config_json: format!("{{\"entry\":{index},\"pad\":\"{pad}\"}}"),
        if_revision: Some(index),
        at_unix_ms: rng.next(),
    }
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, NODE), index)
}

/// The writer process: appends until killed.
#[test]
#[ignore = "the writer half of the crash tests; they run it in a child process"]
fn crash_writer_child() {
    let Some(dir) = std::env::var_os(WRITER_DIR_ENV) else {
        return;
    };
    let seed = std::env::var(WRITER_SEED_ENV).ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(write_forever(Path::new(&dir), seed));
}

async fn write_forever(dir: &Path, seed: u64) {
    let mut rng = Rng::new(seed);
    let (mut log, _sm) = gantry_raft_store::open(dir).await.expect("writer: open");
    let state = log.get_log_state().await.expect("writer: log state");
    let mut next = state.last_log_id.map_or(1, |id| id.index + 1);
    let vote = log.read_vote().await.expect("writer: read vote");
    let mut term = vote.map_or(0, |v| v.leader_id.term) + 1;
    log.save_vote(&Vote::new(term, NODE)).await.expect("writer: save vote");
    println!("{MARK} vote {term}");
    // (index, term) of entries written by this process, to purge by log id.
    let mut written: VecDeque<(u64, u64)> = VecDeque::new();
    loop {
        let batch = 1 + rng.below(8);
        let entries: Vec<Entry> = (next..next + batch)
            .map(|index| Entry { log_id: log_id(term, index), payload: EntryPayload::Normal(payload(index)) })
            .collect();
        // The real `append`, returning once its callback reported the entries durable.
        log.blocking_append(entries).await.expect("writer: append");
        written.extend((next..next + batch).map(|index| (index, term)));
        next += batch;
        println!("{MARK} ack {}", next - 1);
        if std::env::var(WRITER_MODE_ENV).is_ok_and(|mode| mode == "hang-after-committed") {
            // Saved committed ids are written in the background after COMMITTED_FLUSH_DELAY;
            // once that has passed, a restarted store must find it.
            let committed = Some(log_id(term, next - 1));
            log.save_committed(committed).await.expect("writer: save committed");
            tokio::time::sleep(COMMITTED_FLUSH_DELAY).await;
            while log.stored_committed().await.expect("writer: stored committed") != committed {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            println!("{MARK} committed {}", next - 1);
            std::future::pending::<()>().await;
        }
        if rng.below(16) == 0 {
            term += 1;
            log.save_vote(&Vote::new(term, NODE)).await.expect("writer: save vote");
            println!("{MARK} vote {term}");
        }
        if written.len() > 40 && rng.below(12) == 0 {
            // Keep the last 20 written entries, purge the rest.
            let mut upto = None;
            while written.len() > 20 {
                upto = written.pop_front();
            }
            if let Some((index, entry_term)) = upto {
                log.purge(log_id(entry_term, index)).await.expect("writer: purge");
                println!("{MARK} purged {index}");
            }
        }
    }
}

/// What the killed writer acknowledged.
#[derive(Debug, Default)]
struct Acked {
    index: u64,
    vote_term: u64,
    purged: u64,
    committed: u64,
    lines: u64,
}

impl Acked {
    fn record(&mut self, line: &str) {
        let Some(at) = line.find(MARK) else { return };
        let mut words = line[at + MARK.len()..].split_whitespace();
        let (Some(kind), Some(Ok(value))) = (words.next(), words.next().map(str::parse::<u64>)) else {
            panic!("unreadable writer line {line:?}");
        };
        match kind {
            "ack" => {
                assert!(value > self.index, "acks go forward: {value} after {}", self.index);
                self.index = value;
                self.lines += 1;
            }
            "vote" => self.vote_term = self.vote_term.max(value),
            "purged" => self.purged = self.purged.max(value),
            "committed" => self.committed = self.committed.max(value),
            other => panic!("unknown writer line kind {other:?}"),
        }
    }
}

/// Runs the writer on `dir` until it acknowledged `acks` appends, waits a random sliver so the
/// kill lands mid-write, SIGKILLs it and returns everything it acknowledged before dying.
fn run_and_kill(dir: &Path, seed: u64, acks: u64, extra_micros: u64) -> Acked {
    run_and_kill_in_mode(dir, seed, acks, extra_micros, "")
}

fn run_and_kill_in_mode(dir: &Path, seed: u64, acks: u64, extra_micros: u64, mode: &str) -> Acked {
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Process::new(exe)
        .args(["crash_writer_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(WRITER_DIR_ENV, dir)
        .env(WRITER_SEED_ENV, seed.to_string())
        .env(WRITER_MODE_ENV, mode)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn writer");
    let stdout = child.stdout.take().expect("writer stdout");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut acked = Acked::default();
    let deadline = Instant::now() + Duration::from_secs(20);
    let enough = |acked: &Acked| acked.lines >= acks && (mode.is_empty() || acked.committed > 0);
    while !enough(&acked) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => acked.record(&line),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("writer stopped or stalled after {acked:?}: {e}");
            }
        }
    }
    std::thread::sleep(Duration::from_micros(extra_micros));
    child.kill().expect("SIGKILL writer");
    let status = child.wait().expect("reap writer");
    assert!(!status.success(), "the writer was killed, it cannot have exited cleanly: {status}");
    // Lines already in the pipe were printed before the kill: they count as acknowledged too.
    reader.join().expect("reader thread");
    while let Ok(line) = rx.try_recv() {
        acked.record(&line);
    }
    acked
}

/// Reopens the store after a kill and checks it against what was acknowledged.
async fn verify(dir: &Path, acked: &Acked) -> u64 {
    // redb's own check first: opening repairs to the last commit, and the result must be sound.
    {
        let mut db = redb::Database::open(dir.join(gantry_raft_store::DB_FILE)).expect("reopen redb after kill");
        assert!(db.check_integrity().expect("integrity check"), "file needed repair after reopening");
    }
    let (mut log, _sm) = gantry_raft_store::open(dir).await.expect("reopen store after kill");
    let vote = log.read_vote().await.expect("read vote").expect("a vote was acknowledged");
    assert!(
        vote.leader_id.term >= acked.vote_term,
        "acknowledged vote term {} lost: store has {vote}",
        acked.vote_term
    );

    if acked.committed > 0 {
        let committed = log.read_committed().await.expect("read committed").map_or(0, |id| id.index);
        assert!(committed >= acked.committed, "saved committed id {} lost: store has {committed}", acked.committed);
    }

    let state = log.get_log_state().await.expect("log state");
    let purged = state.last_purged_log_id.map_or(0, |id| id.index);
    assert!(purged >= acked.purged, "acknowledged purge up to {} lost: store says {purged}", acked.purged);
    let last = state.last_log_id.map_or(0, |id| id.index);
    assert!(last >= acked.index, "acknowledged entry {} lost: the log ends at {last}", acked.index);

    // Every entry after the purge point is present, in order, under its own index, intact, with
    // terms that never go down; nothing is left below the purge point.
    let entries = log.try_get_log_entries(0..).await.expect("read the whole log");
    assert_eq!(entries.len() as u64, last - purged, "log is not contiguous from {} to {last}", purged + 1);
    let mut term = 0;
    for (entry, index) in entries.iter().zip(purged + 1..) {
        assert_eq!(entry.log_id.index, index, "hole or reordering at {index}");
        assert!(entry.log_id.leader_id.term >= term, "term went down at {index}");
        term = entry.log_id.leader_id.term;
        assert!(matches!(&entry.payload, EntryPayload::Normal(c) if *c == payload(index)), "entry {index} is damaged");
    }
    last
}

#[test]
fn killed_writer_loses_nothing_acknowledged() {
    let seed = std::env::var("GANTRY_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(7, |d| d.as_nanos() as u64));
    println!("crash test seed {seed} (replay with GANTRY_CRASH_SEED={seed})");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut last_term = 0;
    for round in 0..ROUNDS {
        let acks = 10 + rng.below(120);
        let extra = rng.below(3000);
        let acked = run_and_kill(dir.path(), rng.next(), acks, extra);
        let last = runtime.block_on(verify(dir.path(), &acked));
        // Each writer starts by voting a term above the stored one: votes only go forward.
        assert!(acked.vote_term > last_term, "round {round}: vote term did not advance");
        last_term = acked.vote_term;
        println!(
            "round {round}: {} acks up to index {}, store ends at {last}, vote term {}, purged to {}",
            acked.lines, acked.index, acked.vote_term, acked.purged
        );
    }
}

/// A committed log id saved a flush delay before a SIGKILL is there after it, even when no vote
/// or purge followed it: a restarted node re-applies its log up to it and serves the config it
/// served before, without waiting for a leader.
#[test]
fn a_saved_committed_id_survives_a_kill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    for round in 0..3 {
        let acked = run_and_kill_in_mode(dir.path(), 11 + round, 1, 0, "hang-after-committed");
        assert!(acked.committed > 0, "round {round}: the writer never saved a committed id: {acked:?}");
        runtime.block_on(verify(dir.path(), &acked));
    }
}
