//! Network faults with nftables: one table per scenario (`inet gantry_chaos_<pid>_<n>`) with an
//! input-hook chain, so dropped packets vanish as in a real partition (DEPENDENCIES.md: drops in
//! an output hook make `sendto` fail, which no real network does). Rules match the scenario's
//! own 127.x addresses and fabric ports only; the table is deleted on drop, panic included; no
//! other table is ever touched.

use std::fmt;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{ChaosError, Result};

/// Tables made by this process get distinct names.
static TABLE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Most faults active at once: a scenario holds a handful, so more means a bug in a scenario.
const FAULTS_MAX: usize = 64;

/// A fault installed in the firewall; pass it back to [`Firewall::remove`] to heal it alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FaultId(u64);

/// The fabric (QUIC, UDP) address of a node: what partitions cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fabric(pub SocketAddrV4);

impl Fabric {
    fn ip(&self) -> Ipv4Addr {
        *self.0.ip()
    }
    fn port(&self) -> u16 {
        self.0.port()
    }
}

impl fmt::Display for Fabric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The scenario's own nftables table.
pub struct Firewall {
    table: String,
    faults: Vec<(FaultId, String, Vec<String>)>,
    next_id: u64,
    alive: bool,
}

impl fmt::Debug for Firewall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Firewall").field("table", &self.table).field("faults", &self.faults.len()).finish()
    }
}

/// Runs `nft -f -` with `script` (one atomic transaction).
fn nft_script(action: &str, script: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ChaosError::Nft { action: action.into(), stderr: e.to_string() })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| ChaosError::Nft { action: action.into(), stderr: e.to_string() })?;
    }
    let out = child.wait_with_output().map_err(|e| ChaosError::Nft { action: action.into(), stderr: e.to_string() })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ChaosError::Nft {
            action: action.into(),
            stderr: format!("{}\nscript:\n{script}", String::from_utf8_lossy(&out.stderr).trim()),
        })
    }
}

/// True when `nft list tables` shows `inet <name>`.
pub fn table_exists(name: &str) -> Result<bool> {
    let out = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .map_err(|e| ChaosError::Nft { action: "list tables".into(), stderr: e.to_string() })?;
    let wanted = format!("table inet {name}");
    Ok(String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == wanted))
}

/// Tables other harness processes left behind (a run killed with SIGKILL cannot clean up).
/// Reported, never deleted: they may belong to a run still going on.
pub fn foreign_chaos_tables() -> Vec<String> {
    let Ok(out) = Command::new("nft").args(["list", "tables"]).output() else {
        return Vec::new();
    };
    let own = format!("gantry_chaos_{}_", std::process::id());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("table inet "))
        .filter(|name| name.starts_with("gantry_chaos_") && !name.starts_with(&own))
        .map(str::to_string)
        .collect()
}

impl Firewall {
    /// Creates an empty table with an accepting input chain.
    pub fn create() -> Result<Firewall> {
        let n = TABLE_COUNTER.fetch_add(1, Ordering::Relaxed);
        let table = format!("gantry_chaos_{}_{n}", std::process::id());
        let script = format!(
            "add table inet {table}\nadd chain inet {table} input {{ type filter hook input priority 0; policy accept; }}\n"
        );
        nft_script("create table", &script)?;
        Ok(Firewall { table, faults: Vec::new(), next_id: 0, alive: true })
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Rules that drop every fabric packet `from` sends to `to`, whichever side opened the QUIC
    /// connection (the destination port covers `from` dialling `to`, the source port covers
    /// `from` answering `to`).
    pub fn drop_rules(from: Fabric, to: Fabric) -> Vec<String> {
        vec![
            format!("ip saddr {} ip daddr {} udp dport {} drop", from.ip(), to.ip(), to.port()),
            format!("ip saddr {} ip daddr {} udp sport {} drop", from.ip(), to.ip(), from.port()),
        ]
    }

    /// A rule that drops `percent` % of the fabric packets that reach `nodes` from one another.
    pub fn loss_rule(nodes: &[Fabric], percent: u8) -> String {
        let sources: Vec<String> = nodes.iter().map(|n| n.ip().to_string()).collect();
        let destinations: Vec<String> = nodes.iter().map(|n| format!("{} . {}", n.ip(), n.port())).collect();
        format!(
            "ip saddr {{ {} }} ip daddr . udp dport {{ {} }} numgen random mod 100 < {} drop",
            sources.join(", "),
            destinations.join(", "),
            percent.min(100)
        )
    }

    /// Installs `rules` as one fault.
    pub fn add(&mut self, label: &str, rules: Vec<String>) -> Result<FaultId> {
        if self.faults.len() >= FAULTS_MAX {
            return Err(ChaosError::Nft {
                action: format!("add {label}"),
                stderr: format!("more than {FAULTS_MAX} faults at once"),
            });
        }
        let script: String = rules.iter().map(|r| format!("add rule inet {} input {r}\n", self.table)).collect();
        nft_script(&format!("add {label}"), &script)?;
        let id = FaultId(self.next_id);
        self.next_id += 1;
        self.faults.push((id, label.to_string(), rules));
        Ok(id)
    }

    /// Heals one fault: flushes the chain and re-adds the others, in one transaction, so the
    /// other faults never blink.
    pub fn remove(&mut self, id: FaultId) -> Result<()> {
        self.faults.retain(|(f, _, _)| *f != id);
        let mut script = format!("flush chain inet {} input\n", self.table);
        for (_, _, rules) in &self.faults {
            for rule in rules {
                script.push_str(&format!("add rule inet {} input {rule}\n", self.table));
            }
        }
        nft_script("heal one fault", &script)
    }

    /// Heals every fault.
    pub fn clear(&mut self) -> Result<()> {
        self.faults.clear();
        nft_script("heal all", &format!("flush chain inet {} input\n", self.table))
    }

    /// Labels of the faults active now.
    pub fn active(&self) -> Vec<String> {
        self.faults.iter().map(|(_, label, _)| label.clone()).collect()
    }

    /// Deletes the table (and with it every rule).
    pub fn destroy(&mut self) -> Result<()> {
        if !self.alive {
            return Ok(());
        }
        self.alive = false;
        self.faults.clear();
        nft_script("delete table", &format!("delete table inet {}\n", self.table))
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        if let Err(error) = self.destroy() {
            eprintln!("chaos: could not delete nftables table {}: {error}", self.table);
        }
    }
}
