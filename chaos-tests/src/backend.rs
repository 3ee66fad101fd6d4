//! Demo backends the nodes balance over: tiny hyper servers (two per zone) that answer their
//! name and zone, with `/health`. A backend can crash (listener and every connection gone at
//! once, as a killed process) and come back on the same address.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::error::{ChaosError, Result};

/// Headers that name who answered; the workload reads them to see zone failover.
pub const BACKEND_HEADER: &str = "x-backend";
pub const ZONE_HEADER: &str = "x-zone";

#[derive(Debug)]
pub struct Backend {
    pub name: String,
    pub zone: String,
    pub addr: SocketAddr,
    hits: Arc<AtomicU64>,
    /// Dropping the sender stops the accept loop and every connection of this incarnation.
    alive: Mutex<Option<watch::Sender<()>>>,
}

impl Backend {
    /// Starts a backend on a free port of `ip`.
    pub async fn start(name: &str, zone: &str, ip: IpAddr) -> Result<Backend> {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0))
            .await
            .map_err(ChaosError::io(format!("bind backend {name} on {ip}")))?;
        let addr = listener.local_addr().map_err(ChaosError::io("backend address"))?;
        let backend = Backend {
            name: name.to_string(),
            zone: zone.to_string(),
            addr,
            hits: Arc::new(AtomicU64::new(0)),
            alive: Mutex::new(None),
        };
        backend.serve(listener);
        Ok(backend)
    }

    fn serve(&self, listener: TcpListener) {
        let (alive_tx, alive_rx) = watch::channel(());
        *self.alive.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(alive_tx);
        let name = self.name.clone();
        let zone = self.zone.clone();
        let hits = self.hits.clone();
        tokio::spawn(async move {
            let mut crashed = alive_rx.clone();
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = crashed.changed() => return,
                };
                let Ok((stream, _)) = accepted else { continue };
                let (name, zone, hits) = (name.clone(), zone.clone(), hits.clone());
                let mut crashed = alive_rx.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                        let body = if request.uri().path() == "/health" {
                            Bytes::from_static(b"ok\n")
                        } else {
                            hits.fetch_add(1, Ordering::Relaxed);
                            Bytes::from(format!("{name} {zone}\n"))
                        };
                        let response = http::Response::builder()
                            .header(BACKEND_HEADER, name.as_str())
                            .header(ZONE_HEADER, zone.as_str())
                            .body(Full::new(body));
                        async move { response }
                    });
                    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    // Dropping the connection future closes the socket, as a dead process would.
                    tokio::select! {
                        _ = connection => {}
                        _ = crashed.changed() => {}
                    }
                });
            }
        });
    }

    /// Stops listening and drops every open connection at once.
    pub fn crash(&self) {
        self.alive.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    }

    /// Listens again on the same address.
    pub async fn restart(&self) -> Result<()> {
        self.crash();
        let listener =
            TcpListener::bind(self.addr).await.map_err(ChaosError::io(format!("rebind backend {}", self.name)))?;
        self.serve(listener);
        Ok(())
    }

    /// Requests served (health checks excluded).
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.crash();
    }
}
