//! Bodies the proxy sends to clients: JSON error answers made here and upstream response bodies
//! streamed through, with what must happen when they end (the access log line, the endpoint's
//! in-flight count).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;

use crate::telemetry::AccessRecord;
use crate::upstream::{BoxError, InFlightGuard, PooledConnection, UpstreamBody};

/// A response body on its way to the client. Streams an upstream body (or bytes made here)
/// without boxing; when the access log is on, counts the bytes sent. When it is dropped (sent in
/// full or aborted) the access record is logged, the endpoint's in-flight count released and
/// the upstream connection handed back to its pool.
#[derive(Debug)]
pub struct ResponseBody {
    inner: Inner,
    record: Option<Box<AccessRecord>>,
    _in_flight: Option<InFlightGuard>,
    /// Back to its pool after everything above is dropped.
    _connection: Option<PooledConnection>,
}

#[derive(Debug)]
enum Inner {
    Full(Full<Bytes>),
    Upstream(UpstreamBody),
}

impl ResponseBody {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self { inner: Inner::Full(Full::new(bytes.into())), record: None, _in_flight: None, _connection: None }
    }

    /// An upstream response body; `in_flight` and `connection` are held until this body is
    /// dropped.
    pub fn upstream(body: UpstreamBody, in_flight: InFlightGuard, connection: Option<PooledConnection>) -> Self {
        Self { inner: Inner::Upstream(body), record: None, _in_flight: Some(in_flight), _connection: connection }
    }

    /// Logs `record` (with the bytes sent) when this body is dropped.
    pub fn set_record(&mut self, record: Box<AccessRecord>) {
        self.record = Some(record);
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = match &mut this.inner {
            Inner::Full(full) => Pin::new(full).poll_frame(cx).map_err(|never| match never {}),
            Inner::Upstream(body) => Pin::new(body).poll_frame(cx),
        };
        if let (Some(record), Poll::Ready(Some(Ok(frame)))) = (&mut this.record, &polled) {
            if let Some(data) = frame.data_ref() {
                record.bytes_sent += data.len() as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(full) => full.is_end_stream(),
            Inner::Upstream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(full) => full.size_hint(),
            Inner::Upstream(body) => body.size_hint(),
        }
    }
}

/// `{ "error": { "code", "message", "details", "request_id" } }` with the given status.
pub fn error_response(
    status: http::StatusCode,
    code: &str,
    message: &str,
    request_id: &str,
) -> http::Response<ResponseBody> {
    let body = serde_json::json!({
        "error": { "code": code, "message": message, "details": [], "request_id": request_id }
    });
    let mut response = http::Response::new(ResponseBody::full(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn error_body_is_json() {
        let response = error_response(http::StatusCode::NOT_FOUND, "no_route", "nothing here", "id-1");
        assert_eq!(response.status(), 404);
        let body = response.into_body();
        assert_eq!(body.size_hint().exact(), Some(body.size_hint().lower()));
        let bytes = body.collect().await.expect("body").to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(json["error"]["code"], "no_route");
        assert_eq!(json["error"]["request_id"], "id-1");
    }
}
