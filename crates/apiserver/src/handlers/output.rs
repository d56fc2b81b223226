//! Content negotiation: the representation `Accept` asks for — the object as JSON or YAML, a
//! server-side Table (`kubectl get`), or metadata only — and its rendering.

use ferry_api::printers::TablePrinter;
use serde_json::{json, Value};

use crate::status::ApiError;

/// The representation a client asked for in `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The object (or list) as JSON.
    Object,
    /// The object as YAML.
    Yaml,
    /// A `meta.k8s.io/v1` Table (`kubectl get`).
    Table,
    /// `PartialObjectMetadata` (the garbage collector, `kubectl get -o name`).
    Metadata,
}

impl Output {
    /// What `Accept` asks for; 406 if nothing ferry writes.
    pub fn from_accept(accept: &str) -> Result<Output, ApiError> {
        if accept.is_empty() {
            return Ok(Output::Object);
        }
        for part in accept.split(',') {
            let part = part.replace(' ', "");
            if part.contains("as=Table") && part.contains("g=meta.k8s.io") {
                return Ok(Output::Table);
            }
            if (part.contains("as=PartialObjectMetadata")) && part.contains("g=meta.k8s.io") {
                return Ok(Output::Metadata);
            }
            let media = part.split(';').next().unwrap_or("");
            if part.contains("as=") {
                continue;
            }
            match media {
                "application/json" | "application/*" | "*/*" => return Ok(Output::Object),
                "application/yaml" => return Ok(Output::Yaml),
                // Protobuf responses are not produced: a client that also accepts JSON gets
                // JSON, one that accepts only protobuf gets 406.
                _ => {}
            }
        }
        Err(ApiError::not_acceptable(format!("only the following media types are accepted: application/json, application/yaml (got {accept:?})")))
    }

    /// `value` (an object, or a list when `is_list`) in this representation.
    pub fn render(self, printer: &dyn TablePrinter, value: &Value, is_list: bool) -> Value {
        match self {
            Output::Object | Output::Yaml => value.clone(),
            Output::Table => {
                let now = now_secs();
                let (items, rv, cont) = if is_list {
                    (
                        value["items"].as_array().cloned().unwrap_or_default(),
                        value
                            .pointer("/metadata/resourceVersion")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        value
                            .pointer("/metadata/continue")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    )
                } else {
                    (
                        vec![value.clone()],
                        value
                            .pointer("/metadata/resourceVersion")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        None,
                    )
                };
                ferry_api::printers::table(printer, &items, now, &rv, cont.as_deref())
            }
            Output::Metadata => {
                let partial = |o: &Value| json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata").cloned().unwrap_or(json!({}))});
                if is_list {
                    let items: Vec<Value> = value["items"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(partial)
                        .collect();
                    json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": value.get("metadata").cloned().unwrap_or(json!({})), "items": items})
                } else {
                    partial(value)
                }
            }
        }
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_as_kubectl_sends_them() {
        assert_eq!(Output::from_accept("").expect("ok"), Output::Object);
        assert_eq!(
            Output::from_accept("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json").expect("ok"),
            Output::Table
        );
        assert_eq!(
            Output::from_accept("application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json").expect("ok"),
            Output::Metadata
        );
        assert_eq!(
            Output::from_accept("application/yaml").expect("ok"),
            Output::Yaml
        );
        assert_eq!(
            Output::from_accept("application/vnd.kubernetes.protobuf, */*").expect("ok"),
            Output::Object
        );
        assert_eq!(
            Output::from_accept("application/vnd.kubernetes.protobuf")
                .expect_err("406")
                .code,
            406
        );
    }

    #[test]
    fn metadata_keeps_only_metadata() {
        let pods = ferry_api::printers::printer_for("", "pods");
        let pod = json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []}});
        assert_eq!(
            Output::Metadata.render(pods, &pod, false),
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {"name": "p"}})
        );
    }
}
