//! The API server's journey endpoints (`/journey/v1/…`), read with the API's credentials.

use anyhow::Context as _;
use ferry_journey::SpanRecord;
use futures::{AsyncBufReadExt as _, Stream, TryStreamExt as _};
use serde_json::Value;

/// One trace as the server keeps it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    /// Its id.
    pub trace_id: String,
    /// The steps kept.
    pub spans: Vec<SpanRecord>,
    /// The steps not kept because the trace was at its bound.
    pub dropped: usize,
}

impl Trace {
    /// From `{"traceId": …, "spans": […], "dropped": n}`.
    pub fn from_json(mut value: Value) -> anyhow::Result<Trace> {
        let spans = serde_json::from_value(value["spans"].take()).context("the trace's spans")?;
        Ok(Trace {
            trace_id: value["traceId"].as_str().unwrap_or_default().to_string(),
            spans,
            dropped: value["dropped"]
                .as_u64()
                .and_then(|d| usize::try_from(d).ok())
                .unwrap_or(0),
        })
    }
}

fn get(path: &str) -> anyhow::Result<http::Request<Vec<u8>>> {
    Ok(http::Request::get(path).body(Vec::new())?)
}

/// `GET /journey/v1/traces/{id}`: `None` when the server keeps no such trace.
pub async fn trace(client: &kube::Client, id: &str) -> anyhow::Result<Option<Trace>> {
    match client
        .request_text(get(&format!("/journey/v1/traces/{id}"))?)
        .await
    {
        Ok(text) => Ok(Some(Trace::from_json(serde_json::from_str(&text)?)?)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(e) => Err(e).context(format!("reading trace {id}")),
    }
}

/// `GET /journey/v1/objects/{uid}`: every kept trace with a step for that object.
pub async fn object_traces(client: &kube::Client, uid: &str) -> anyhow::Result<Vec<Trace>> {
    let text = client
        .request_text(get(&format!("/journey/v1/objects/{uid}"))?)
        .await
        .with_context(|| format!("reading the traces of object {uid}"))?;
    let mut value: Value = serde_json::from_str(&text)?;
    match value["traces"].take() {
        Value::Array(traces) => traces.into_iter().map(Trace::from_json).collect(),
        _ => Ok(Vec::new()),
    }
}

/// `GET /journey/v1/spans?watch=true`: every trace's new steps, one JSON record a line.
pub async fn watch_all(
    client: &kube::Client,
) -> anyhow::Result<impl Stream<Item = anyhow::Result<SpanRecord>>> {
    let body = client
        .request_stream(get("/journey/v1/spans?watch=true")?)
        .await
        .context("watching the journey's steps")?;
    Ok(records(body.lines()))
}

/// Newline-delimited SpanRecords (blank lines skipped).
fn records(
    lines: impl Stream<Item = std::io::Result<String>>,
) -> impl Stream<Item = anyhow::Result<SpanRecord>> {
    lines
        .map_err(anyhow::Error::from)
        .try_filter(|line| futures::future::ready(!line.trim().is_empty()))
        .and_then(|line| async move {
            serde_json::from_str::<SpanRecord>(&line)
                .with_context(|| format!("a step the server sent: {line}"))
        })
}

#[cfg(test)]
mod tests {
    use futures::StreamExt as _;

    use super::*;

    #[test]
    fn traces_and_streams_read_the_servers_json() {
        let trace = Trace::from_json(serde_json::json!({"traceId": "t", "dropped": 2, "spans": [
            {"traceId": "t", "spanId": "s", "step": "bound", "component": "kube-scheduler",
             "object": {"resource": "pods", "namespace": "ns", "name": "p", "uid": "u"},
             "startUnixNanos": 1, "endUnixNanos": 2, "attributes": {"node": "n1"}}]}))
        .expect("valid");
        assert_eq!(
            (trace.trace_id.as_str(), trace.dropped, trace.spans.len()),
            ("t", 2, 1)
        );
        let lines = futures::stream::iter(
            ["", r#"{"traceId":"t","spanId":"s","step":"ready","component":"kubelet","startUnixNanos":1,"endUnixNanos":1}"#, "{"]
                .map(|l| Ok(l.to_string())),
        );
        let read: Vec<_> = futures::executor::block_on(records(lines).collect::<Vec<_>>());
        assert_eq!(read.len(), 2);
        assert_eq!(
            read[0].as_ref().map(|s| s.step.as_str()).ok(),
            Some("ready")
        );
        assert!(read[1].is_err());
    }
}
