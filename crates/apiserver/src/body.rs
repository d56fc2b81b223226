//! The HTTP bodies the server reads and writes: one boxed body type for requests and responses,
//! so every layer and handler has the same `Service<Request, Response = Response>` shape, and
//! the helpers that build upstream's JSON responses.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Body as _;
use serde_json::Value;

/// An error from a body stream: the connection's, or a body over its limit. (A named type, not
/// a `Box<dyn Error>` alias: trait objects in the request type trip up the compiler's
/// `Send` checks of the filters' futures.)
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BodyError(pub Box<dyn std::error::Error + Send + Sync>);

impl BodyError {
    /// Wraps any error.
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        BodyError(error.into())
    }
}

/// Requests bodies larger than this get 413, as upstream's 3 MiB limit.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// A request or response body.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BodyError>;

/// A request as the layers see it.
pub type Request = http::Request<Body>;

/// A response as the layers return it.
pub type Response = http::Response<Body>;

/// A body of `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// A response with `code`, `content_type` and `body`.
pub fn response(code: u16, content_type: &str, body: impl Into<Bytes>) -> Response {
    let mut response = http::Response::new(full(body));
    *response.status_mut() = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::OK);
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, value);
    }
    response
}

/// A JSON body ending with a newline, as upstream's Go encoder writes it.
pub fn json(code: u16, value: &Value) -> Response {
    let mut body = value.to_string();
    body.push('\n');
    response(code, "application/json", body)
}

/// Plain text (health checks, `/metrics`).
pub fn text(body: String) -> Response {
    response(200, "text/plain; charset=utf-8", body)
}

/// Reads a whole body, refusing more than `limit` bytes — at once, without reading it, when
/// its announced length (`Content-Length`) is already more.
pub async fn read(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    if body.size_hint().lower() > limit as u64 {
        return Err(BodyError::new(format!(
            "the request body of {} bytes is more than the {limit} allowed",
            body.size_hint().lower()
        )));
    }
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => Err(BodyError(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bodies_are_read_up_to_a_limit() {
        assert_eq!(read(full("hello"), 10).await.expect("fits"), "hello");
        assert!(read(full("hello"), 4).await.is_err());
        // Refused from its announced length, before a byte is read: a client that announces
        // more than allowed and sends nothing is not waited for.
        struct Announced(u64);
        impl hyper::body::Body for Announced {
            type Data = Bytes;
            type Error = BodyError;
            fn poll_frame(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, BodyError>>> {
                std::task::Poll::Pending
            }
            fn size_hint(&self) -> hyper::body::SizeHint {
                hyper::body::SizeHint::with_exact(self.0)
            }
        }
        let announced = http_body_util::BodyExt::boxed_unsync(Announced(11));
        assert!(read(announced, 10).await.is_err());
        let response = json(201, &serde_json::json!({"a": 1}));
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["content-type"], "application/json");
        let bytes = read(response.into_body(), 100).await.expect("read");
        assert_eq!(bytes, "{\"a\":1}\n");
    }
}
