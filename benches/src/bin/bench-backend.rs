//! The macro benchmark's upstream: a minimal HTTP server (HTTP/1.1, and HTTP/2 with prior
//! knowledge on the same port) that answers every request with `200 OK` and a small fixed body,
//! on one thread, so that gantry and nginx are compared against the same cheap backend.
//!
//! Usage: `bench-backend 127.0.0.1:PORT`

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const BODY: &[u8] = b"hello from bench-backend\n";

async fn answer(_request: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(BODY)));
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    Ok(response)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let address: SocketAddr = match args.next().map(|a| a.parse()) {
        Some(Ok(address)) => address,
        Some(Err(error)) => {
            eprintln!("bench-backend: bad address: {error}");
            std::process::exit(2);
        }
        None => {
            eprintln!("usage: bench-backend IP:PORT");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_io().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bench-backend: cannot start tokio: {error}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(async move {
        let listener = match TcpListener::bind(address).await {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!("bench-backend: cannot listen on {address}: {error}");
                return 1;
            }
        };
        eprintln!("bench-backend: listening on {address}");
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: keep serving the open connections.
                    eprintln!("bench-backend: accept failed: {error}");
                    tokio::task::yield_now().await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                // Errors are clients going away mid-request: nothing to report in a benchmark.
                let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service_fn(answer))
                    .await;
            });
        }
    });
    std::process::exit(code);
}
