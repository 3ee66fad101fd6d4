//! The harness's error type: what can stop a scenario before its invariants are even checked
//! (no root, no nft, a node that never starts). Invariant violations are not errors: they are
//! verdicts in the report.

use std::path::PathBuf;

/// Why the harness could not run (or finish running) a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error(
        "the chaos suite needs root and nftables: {reason}; run it as root on Linux with `apt-get install -y \
         nftables` (or set CHAOS_SKIP=1 to skip it on purpose)"
    )]
    Preflight { reason: String },

    #[error("gantry binary not found at {path}: build it with `cargo build -p gantry` or set GANTRY_BIN")]
    BinaryMissing { path: PathBuf },

    #[error("`cargo build -p gantry` failed ({status}); fix the build, or point GANTRY_BIN at a gantry binary")]
    Build { status: String },

    #[error("nft {action} failed: {stderr}")]
    Nft { action: String, stderr: String },

    #[error("cannot start {what}: {source}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{what} exited early ({status}); last log lines:\n{log_tail}")]
    ExitedEarly { what: String, status: String, log_tail: String },

    #[error("timed out after {waited_ms} ms waiting for {what}")]
    Timeout { what: String, waited_ms: u64 },

    #[error("{url}: {message}")]
    Http { url: String, message: String },

    #[error("{what}: unexpected answer: {message}")]
    Protocol { what: String, message: String },

    #[error("unknown scenario `{0}`; known: {1}")]
    UnknownScenario(String, String),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl ChaosError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ChaosError {
        let context = context.into();
        move |source| ChaosError::Io { context, source }
    }
}

pub type Result<T, E = ChaosError> = std::result::Result<T, E>;
