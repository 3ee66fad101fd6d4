//! The admin API (loopback by default): liveness and readiness probes, Prometheus metrics, the
//! node's status and the config it serves. Errors use `{ "error": { code, message, details } }`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::dataplane::Dataplane;
use crate::proxy::ConnectionTracker;

/// Shared by every admin request.
#[derive(Debug)]
pub struct AdminState {
    pub dataplane: Arc<Dataplane>,
    pub tracker: Arc<ConnectionTracker>,
    pub started: Instant,
    pub config_file: Option<String>,
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
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(route(request, &state)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn route(request: Request<Incoming>, state: &AdminState) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    match (request.method(), path) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => {
            let snapshot = state.dataplane.snapshot();
            if state.tracker.is_draining() {
                text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
            } else if snapshot.revision == 0 && state.config_file.is_some() {
                text(StatusCode::SERVICE_UNAVAILABLE, "no config loaded yet\n")
            } else {
                text(StatusCode::OK, "ready\n")
            }
        }
        (&Method::GET, "/metrics") => {
            let mut response = text(StatusCode::OK, state.dataplane.metrics.encode());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        (&Method::GET, "/v1/status") => json(StatusCode::OK, &status(state)),
        (&Method::GET, "/v1/config") => {
            let snapshot = state.dataplane.snapshot();
            json(
                StatusCode::OK,
                &serde_json::json!({ "revision": snapshot.revision, "config": &*snapshot.document }),
            )
        }
        (_, "/healthz" | "/readyz" | "/metrics" | "/v1/status" | "/v1/config") => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            &format!("{} does not accept {}", path, request.method()),
        ),
        _ => error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no admin endpoint at {path}"),
        ),
    }
}

fn status(state: &AdminState) -> serde_json::Value {
    let snapshot = state.dataplane.snapshot();
    let settings = &state.dataplane.settings;
    serde_json::json!({
        "node": { "name": settings.name, "zone": settings.zone, "version": env!("CARGO_PKG_VERSION") },
        "uptime_seconds": state.started.elapsed().as_secs(),
        "config": {
            "revision": snapshot.revision,
            "file": state.config_file,
            "last_reload": state.dataplane.last_reload(),
        },
        "draining": state.tracker.is_draining(),
        "open_connections": state.tracker.active(),
        "listeners": snapshot.listeners.values().map(|l| serde_json::json!({
            "name": &*l.name, "protocol": l.protocol, "address": l.address.to_string(),
        })).collect::<Vec<_>>(),
        "services": snapshot.services.values().map(|s| serde_json::json!({
            "name": s.name,
            "endpoints": s.endpoints.iter().map(|e| serde_json::json!({
                "address": e.address,
                "zone": e.zone,
                "subset": e.subset,
                "healthy": e.health.is_active_healthy(),
                "ejected": e.health.is_ejected(),
                "in_flight": e.health.in_flight(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json(
        status,
        &serde_json::json!({ "error": { "code": code, "message": message, "details": [] } }),
    )
}

/// Binds the admin socket; the error names the flag to change.
pub async fn bind(address: SocketAddr) -> Result<TcpListener, std::io::Error> {
    TcpListener::bind(address).await
}
