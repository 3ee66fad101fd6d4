//! The admin API (loopback by default): probes, Prometheus metrics, the node's status, the
//! cluster's members and config (read, write, history, rollback), join tokens, leave and
//! remove. Every call that changes state or returns a secret needs the cluster's admin token as
//! `Authorization: Bearer …`. Errors are `{ "error": { code, message, details } }`.

mod api;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::sync::Notify;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::cluster::config::ConfigWriter;
use crate::cluster::Cluster;
use crate::dataplane::Dataplane;
use crate::proxy::ConnectionTracker;

/// Shared by every admin request.
#[derive(Debug)]
pub struct AdminState {
    pub dataplane: Arc<Dataplane>,
    pub tracker: Arc<ConnectionTracker>,
    pub started: Instant,
    pub config_file: Option<String>,
    pub writer: ConfigWriter,
    pub cluster: Arc<Cluster>,
    /// Signalled (with a stored permit) when `POST /v1/leave` took this node out.
    pub left: Notify,
}

impl AdminState {
    /// Resolves once `POST /v1/leave` has taken this node out of the cluster.
    pub async fn left(&self) {
        self.left.notified().await
    }
}

/// Serves the admin API on `listener` until the process ends.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(pair) => pair,
            Err(error) => {
                tracing::warn!(%error, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        // Answers go out at once rather than behind Nagle's wait for the client's ACK.
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(api::route(request, &state).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Binds the admin socket; the error names the flag to change.
pub async fn bind(address: SocketAddr) -> Result<TcpListener, std::io::Error> {
    TcpListener::bind(address).await
}
