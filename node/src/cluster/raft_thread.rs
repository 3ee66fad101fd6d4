//! The cluster's own thread: Raft's core and state machine, its log appends, the fabric's QUIC
//! endpoint, the RPC handlers and the admin API run on one current-thread tokio runtime, apart
//! from the data plane's workers. A write's way through Raft (core → log append → replication →
//! QUIC, and a follower's packet → core → append → reply) then stays on one thread instead of
//! waking a parked worker at every hand-off, and a log append may block this thread for its
//! `fdatasync` (as etcd's raft loop does) without holding up a proxied request.

use std::sync::Mutex;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// The running thread. It stops (and drops what still runs on it) on [`RaftThread::stop`] or
/// when this is dropped.
#[derive(Debug)]
pub(crate) struct RaftThread {
    handle: Handle,
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl RaftThread {
    pub(crate) async fn start() -> std::io::Result<Self> {
        let (ready, handle) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        // The runtime is built and dropped on its own thread: a runtime must not be dropped in
        // an async context, which the caller is.
        std::thread::Builder::new().name("gantry-raft".into()).spawn(move || {
            match Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => {
                    let _ = ready.send(Ok(runtime.handle().clone()));
                    let _ = runtime.block_on(stopped);
                }
                Err(error) => {
                    let _ = ready.send(Err(error));
                }
            }
        })?;
        let handle = handle.await.map_err(|_| std::io::Error::other("the cluster thread ended while starting"))??;
        Ok(Self { handle, stop: Mutex::new(Some(stop)) })
    }

    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Ends the thread: whatever still runs there (the admin API, Raft's tasks) is dropped.
    pub(crate) fn stop(&self) {
        let mut stop = self.stop.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        drop(stop.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_drops_what_runs_on_the_thread() {
        let thread = RaftThread::start().await.expect("thread");
        let (held, dropped) = oneshot::channel::<()>();
        let (started, running) = oneshot::channel::<()>();
        thread.handle().spawn(async move {
            let _held = held;
            let _ = started.send(());
            std::future::pending::<()>().await;
        });
        running.await.expect("the task ran on the thread");
        thread.stop();
        // The task, and the sender it holds, go with the runtime.
        let ended = tokio::time::timeout(std::time::Duration::from_secs(5), dropped).await;
        assert!(matches!(ended, Ok(Err(_))), "the task was not dropped: {ended:?}");
    }
}
