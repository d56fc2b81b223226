//! Panic recovery (upstream's `WithPanicRecovery`): a handler that panics answers 500 with
//! upstream's message, and the panic is logged; the connection and the server go on.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use tower::Service;

use super::{BoxFuture, Filter};
use crate::body::{Request, Response};
use crate::status::ApiError;

/// The panic-recovery filter.
#[derive(Debug, Clone, Default)]
pub struct RecoverPanic;

impl Filter for RecoverPanic {
    fn call<S>(&self, request: Request, mut next: S) -> BoxFuture
    where
        S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send,
    {
        let path = request.uri().path().to_string();
        let handled = std::panic::catch_unwind(AssertUnwindSafe(|| next.call(request)));
        Box::pin(async move {
            let outcome = match handled {
                Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
                Err(panic) => Err(panic),
            };
            match outcome {
                Ok(response) => response,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    tracing::error!(%path, panic = %what, "handler panicked");
                    Ok(ApiError::internal_message(
                        "This request caused apiserver to panic. Look in the logs for details.",
                    )
                    .into_response())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testing::{get, Reached};
    use crate::filters::FilterLayer;
    use tower::{Layer, ServiceExt};

    #[tokio::test]
    async fn a_panic_is_a_500() {
        let panicking = tower::service_fn(|_request: Request| {
            Box::pin(async {
                panic!("boom");
                #[allow(unreachable_code)]
                Ok(crate::body::text(String::new()))
            }) as BoxFuture
        });
        let response = FilterLayer(RecoverPanic)
            .layer(panicking)
            .oneshot(get("/api"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), 500);
        let body = crate::body::read(response.into_body(), 1000)
            .await
            .expect("body");
        assert!(String::from_utf8_lossy(&body).contains("This request caused apiserver to panic"));
        let reached = Reached::default();
        let response = FilterLayer(RecoverPanic)
            .layer(reached.service())
            .oneshot(get("/api"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), 200);
    }
}
