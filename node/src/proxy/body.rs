//! Bodies the proxy makes: JSON error answers, and the wrapper around upstream response bodies
//! that counts bytes and writes the access log line when the body is done.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};

use crate::telemetry::AccessRecord;
use crate::upstream::{InFlightGuard, ProxyBody};

pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

/// `{ "error": { "code", "message", "details" } }` with the given status.
pub fn error_response(
    status: http::StatusCode,
    code: &str,
    message: &str,
    request_id: &str,
) -> http::Response<ProxyBody> {
    let body = serde_json::json!({
        "error": { "code": code, "message": message, "details": [], "request_id": request_id }
    });
    let mut response = http::Response::new(full(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

/// Streams an upstream body to the client, counting bytes; the access record is logged and the
/// endpoint's in-flight count released when this is dropped (done or aborted).
pub struct TrackedBody {
    inner: ProxyBody,
    record: AccessRecord,
    _in_flight: Option<Arc<InFlightGuard>>,
}

impl TrackedBody {
    pub fn wrap(inner: ProxyBody, record: AccessRecord, in_flight: Option<Arc<InFlightGuard>>) -> ProxyBody {
        TrackedBody { inner, record, _in_flight: in_flight }.boxed_unsync()
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = crate::upstream::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.record.bytes_sent += data.len() as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
