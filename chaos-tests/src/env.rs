//! The machine the suite runs on: root and `nft` present (preflight), where the `gantry` binary
//! is (built once when missing or older than its sources), and where reports go.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::SystemTime;

use crate::error::{ChaosError, Result};

/// The workspace root, known at compile time (this crate sits one level below it).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// True when the user asked to skip the suite on a machine that cannot run it.
pub fn skip_requested() -> bool {
    std::env::var("CHAOS_SKIP").is_ok_and(|v| v == "1" || v == "true")
}

/// Checks that we are root and that `nft` works; the error says what to install.
pub fn preflight() -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| ChaosError::Preflight {
        reason: format!("cannot read /proc/self/status ({e}); Linux is required"),
    })?;
    // "Uid:\treal\teffective\tsaved\tfs": the effective uid decides nftables permissions.
    let effective_uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|uid| uid.parse::<u32>().ok());
    if effective_uid != Some(0) {
        return Err(ChaosError::Preflight { reason: format!("not running as root (effective uid {effective_uid:?})") });
    }
    match Command::new("nft").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            return Err(ChaosError::Preflight {
                reason: format!("`nft --version` failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
            })
        }
        Err(e) => return Err(ChaosError::Preflight { reason: format!("`nft` not found ({e})") }),
    }
    // Listing tables needs CAP_NET_ADMIN too: a container without it fails here, not mid-scenario.
    match Command::new("nft").args(["list", "tables"]).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(ChaosError::Preflight {
            reason: format!("`nft list tables` failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        }),
        Err(e) => Err(ChaosError::Preflight { reason: format!("`nft list tables` failed ({e})") }),
    }
}

/// The cargo profile directory the running executable lives in (`target/debug`), whether it is a
/// test (`target/debug/deps/scenarios-…`) or the `chaos` binary (`target/debug/chaos`).
fn profile_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let parent = exe.parent()?;
    if parent.file_name().is_some_and(|n| n == "deps") {
        parent.parent().map(Path::to_path_buf)
    } else {
        Some(parent.to_path_buf())
    }
}

/// The workspace target directory (`CARGO_TARGET_DIR`, else the parent of the profile dir).
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() { dir } else { workspace_root().join(dir) };
    }
    profile_dir().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or_else(|| workspace_root().join("target"))
}

/// Where reports and copied node logs are written.
pub fn reports_dir() -> PathBuf {
    target_dir().join("chaos")
}

/// Newest modification time of any file under `dir` (bounded walk: sources are small trees).
fn newest_mtime(dir: &Path, depth_left: u32) -> Option<SystemTime> {
    let mut newest: Option<SystemTime> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let candidate = if path.is_dir() {
            if depth_left == 0 {
                None
            } else {
                newest_mtime(&path, depth_left - 1)
            }
        } else {
            entry.metadata().ok().and_then(|m| m.modified().ok())
        };
        newest = newest.max(candidate);
    }
    newest
}

/// True when some source the node is built from is newer than `binary`.
fn stale(binary: &Path) -> bool {
    let Some(built) = std::fs::metadata(binary).ok().and_then(|m| m.modified().ok()) else {
        return true;
    };
    let root = workspace_root();
    let sources = ["node/src", "proto/src", "raft-store/src", "gossip/src", "node/Cargo.toml", "Cargo.lock"];
    sources.iter().filter_map(|s| newest_mtime(&root.join(s), 8).or_else(|| mtime(&root.join(s)))).any(|t| t > built)
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).ok().and_then(|m| m.modified().ok())
}

/// One build at a time, and at most one per process: scenarios share the result.
static BINARY: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The `gantry` binary: `GANTRY_BIN`, else `gantry` next to this executable's profile dir,
/// built with `cargo build -p gantry` when missing or older than the node's sources.
pub fn gantry_binary() -> Result<PathBuf> {
    let mut cached = BINARY.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(path) = cached.as_ref() {
        return Ok(path.clone());
    }
    if let Some(path) = std::env::var_os("GANTRY_BIN") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            return Err(ChaosError::BinaryMissing { path });
        }
        *cached = Some(path.clone());
        return Ok(path);
    }
    let profile = profile_dir().unwrap_or_else(|| target_dir().join("debug"));
    let path = profile.join("gantry");
    if stale(&path) {
        // `cargo test -p chaos-tests` does not build other packages' binaries: do it here, in the
        // profile this executable was built with, so the suite never runs an old node.
        let release = profile.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command.current_dir(workspace_root()).args(["build", "-p", "gantry"]);
        if release {
            command.arg("--release");
        }
        println!("chaos: building the node (`cargo build -p gantry`) ...");
        let outcome = match command.status() {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(ChaosError::Build { status: status.to_string() }),
            Err(e) => Err(ChaosError::Build { status: e.to_string() }),
        };
        // A binary that exists but could not be rebuilt (say the tree is mid-edit) is still worth
        // testing; say so loudly rather than fail.
        match outcome {
            Err(error) if path.is_file() => {
                println!("chaos: WARNING: {error}; testing the existing {}", path.display())
            }
            other => other?,
        }
    }
    if !path.is_file() {
        return Err(ChaosError::BinaryMissing { path });
    }
    *cached = Some(path.clone());
    Ok(path)
}
