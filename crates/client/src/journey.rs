//! A component's side of the pod's journey (`ferry-journey`): its requests carry the
//! `traceparent` of the step they are made in, so the API server's steps join the journey, and
//! a component in a process of its own posts its finished steps to the API server.

use std::sync::Arc;
use std::time::Duration;

use ferry_journey::{SpanRecord, HEADER};
use tokio::sync::mpsc;

/// A client from `config` whose requests carry `traceparent` when made inside a journey step.
/// Its requests are counted in [`crate::metrics::REST_CLIENT_REQUESTS`].
pub fn client(config: kube::Config) -> Result<kube::Client, kube::Error> {
    let counted = crate::metrics::RequestsLayer::new(&config.cluster_url);
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&counted)
        .with_layer(&traceparent_layer())
        .build())
}

/// The layer [`client`] adds: `traceparent` from [`ferry_journey::current`], unless the
/// request has one.
pub fn traceparent_layer() -> tower::util::MapRequestLayer<
    fn(http::Request<kube::client::Body>) -> http::Request<kube::client::Body>,
> {
    tower::util::MapRequestLayer::new(with_traceparent)
}

fn with_traceparent(
    mut request: http::Request<kube::client::Body>,
) -> http::Request<kube::client::Body> {
    if !request.headers().contains_key(HEADER) {
        if let Some(context) = ferry_journey::current() {
            if let Ok(value) = http::HeaderValue::from_str(&context.to_string()) {
                request.headers_mut().insert(HEADER, value);
            }
        }
    }
    request
}

/// Steps kept for the next post at most; more are dropped (the journey is a view, not a log).
const QUEUE: usize = 4096;
/// Steps in one post at most.
const BATCH: usize = 512;
/// How long a step may wait for others to share its post.
const LINGER: Duration = Duration::from_millis(200);

/// A [`ferry_journey::Sink`] posting steps to the API server (`POST /journey/v1/spans`) in
/// batches, from a task of its own; it never blocks the component.
pub struct RemoteSink {
    queue: mpsc::Sender<SpanRecord>,
}

impl RemoteSink {
    /// Starts the posting task on `client` (which should not itself be traced: its posts
    /// are not steps).
    pub fn start(client: kube::Client) -> Arc<RemoteSink> {
        let (queue, steps) = mpsc::channel(QUEUE);
        tokio::spawn(post_batches(client, steps));
        Arc::new(RemoteSink { queue })
    }
}

impl ferry_journey::Sink for RemoteSink {
    fn export(&self, span: &Arc<SpanRecord>) {
        // A full queue means the server is not keeping up or is away: drop the step.
        let _ = self.queue.try_send(SpanRecord::clone(span));
    }
}

/// The next batch of queued steps: the first to arrive, then those that come within `linger`
/// of it, `max` at most; `None` once the queue is closed and empty.
pub async fn next_batch(
    steps: &mut mpsc::Receiver<SpanRecord>,
    max: usize,
    linger: Duration,
) -> Option<Vec<SpanRecord>> {
    let mut batch = vec![steps.recv().await?];
    let deadline = tokio::time::Instant::now() + linger;
    while batch.len() < max {
        match tokio::time::timeout_at(deadline, steps.recv()).await {
            Ok(Some(step)) => batch.push(step),
            Ok(None) | Err(_) => break,
        }
    }
    Some(batch)
}

async fn post_batches(client: kube::Client, mut steps: mpsc::Receiver<SpanRecord>) {
    while let Some(batch) = next_batch(&mut steps, BATCH, LINGER).await {
        let body = serde_json::json!({ "spans": batch });
        let request = http::Request::post("/journey/v1/spans")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default());
        let Ok(request) = request else { continue };
        if let Err(error) = client.request_text(request).await {
            tracing::debug!(%error, "posting journey steps");
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;

    #[test]
    fn requests_in_a_step_carry_its_traceparent() {
        let subscriber = tracing_subscriber::registry()
            .with(ferry_journey::JourneyLayer.with_filter(ferry_journey::JourneyLayer::filter()));
        tracing::subscriber::with_default(subscriber, || {
            let request = || {
                http::Request::get("/api/v1/pods")
                    .body(kube::client::Body::empty())
                    .expect("request")
            };
            assert!(super::with_traceparent(request())
                .headers()
                .get("traceparent")
                .is_none());
            let step = ferry_journey::step!("created pod", component = "test");
            let _in = step.enter();
            let sent = super::with_traceparent(request());
            let value = sent
                .headers()
                .get("traceparent")
                .expect("sent")
                .to_str()
                .expect("ascii");
            let context = ferry_journey::TraceContext::parse(value).expect("valid");
            assert_eq!(Some(context), ferry_journey::current());
        });
    }
}
