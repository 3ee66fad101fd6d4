//! The shared proxy engine: listeners (accept, limits, TLS, draining), the HTTP request path
//! (route, pick, retry, forward) and plain TCP forwarding.

mod body;
mod headers;
mod http;
mod listener;
mod tcp;
pub mod tls;

pub use listener::{check_bindable, ConnectionTracker, ListenerSet};
