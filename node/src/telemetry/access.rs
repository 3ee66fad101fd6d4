//! Log set-up and the access log: one line per request under the `gantry::access` target, as
//! text or JSON, written when the response body has been sent (so the byte count is true).

use std::time::Instant;

use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. `RUST_LOG` overrides the default level (info).
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Whether an access log line would be written now (target `gantry::access` at INFO). The
/// request path builds an [`AccessRecord`] only when it would: with the access log filtered out
/// (`RUST_LOG=warn`), this is a check of the global maximum level, nothing more.
pub fn access_log_enabled() -> bool {
    tracing::enabled!(target: "gantry::access", tracing::Level::INFO)
}

/// What the access log line says about one request; logged on drop.
#[derive(Debug)]
pub struct AccessRecord {
    pub started: Instant,
    pub request_id: String,
    pub client: std::net::SocketAddr,
    pub listener: std::sync::Arc<str>,
    pub method: http::Method,
    pub path: String,
    pub route: Option<std::sync::Arc<str>>,
    pub service: Option<String>,
    pub endpoint: Option<String>,
    pub status: u16,
    pub attempts: u32,
    pub bytes_sent: u64,
}

impl Drop for AccessRecord {
    fn drop(&mut self) {
        tracing::info!(
            target: "gantry::access",
            request_id = %self.request_id,
            client = %self.client,
            listener = %self.listener,
            method = %self.method,
            path = %self.path,
            route = self.route.as_deref().unwrap_or("-"),
            service = self.service.as_deref().unwrap_or("-"),
            endpoint = self.endpoint.as_deref().unwrap_or("-"),
            status = self.status,
            attempts = self.attempts,
            bytes = self.bytes_sent,
            duration_ms = self.started.elapsed().as_secs_f64() * 1000.0,
        );
    }
}
