//! The cluster's own thread: Raft's core and state machine, its log appends, the fabric's QUIC
//! endpoint and the RPC handlers run on one current-thread tokio runtime, apart from the data
//! plane's workers. A write's way through Raft (core → log append → replication → QUIC, and a
//! follower's packet → core → append → reply) then stays on one thread instead of waking a
//! parked worker at every hand-off, and a log append may block this thread for its `fdatasync`
//! (as etcd's raft loop does) without holding up a proxied request.

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// The running thread; it stops (and drops what still runs on it) when this is dropped.
pub(crate) struct RaftThread {
    handle: Handle,
    _stop: oneshot::Sender<()>,
}

impl RaftThread {
    pub(crate) fn start() -> std::io::Result<Self> {
        let runtime = Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new().name("gantry-raft".into()).spawn(move || {
            // Runs until the sender is dropped; the runtime is dropped here, outside any task.
            let _ = runtime.block_on(stopped);
        })?;
        Ok(Self { handle, _stop: stop })
    }

    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl std::fmt::Debug for RaftThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RaftThread")
    }
}
