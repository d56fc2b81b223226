//! Conversion webhooks of CustomResourceDefinitions (upstream's apiextensions
//! `webhookConverter`): objects of another version are sent in one `ConversionReview` (v1) to
//! the definition's webhook — its URL, or a ready endpoint of its Service — trusting only its
//! `caBundle`; the answer's objects must be of the desired version and kind, and keep their
//! metadata apart from labels and annotations, which the webhook may change.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::status::ApiError;
use crate::storage::Storage;
use crate::webhook::{self, Target};

/// How long a conversion may take (upstream's webhook converter timeout).
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where the webhook is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    Url(String),
    Service {
        namespace: String,
        name: String,
        path: String,
        port: i32,
    },
}

/// A definition's conversion webhook.
pub struct ConversionWebhook {
    endpoint: Endpoint,
    tls: Arc<rustls::ClientConfig>,
    /// The definition's kind, for messages.
    kind: String,
}

impl std::fmt::Debug for ConversionWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConversionWebhook")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl ConversionWebhook {
    /// The webhook of `crd`, if its conversion strategy is `Webhook`.
    pub fn of(crd: &Value) -> Result<Option<ConversionWebhook>, String> {
        if crd
            .pointer("/spec/conversion/strategy")
            .and_then(Value::as_str)
            != Some("Webhook")
        {
            return Ok(None);
        }
        let config = crd
            .pointer("/spec/conversion/webhook/clientConfig")
            .ok_or("a Webhook conversion needs webhook.clientConfig")?;
        let endpoint = match (
            config.get("url").and_then(Value::as_str),
            config.get("service"),
        ) {
            (Some(url), _) => Endpoint::Url(url.to_string()),
            (None, Some(service)) => {
                let text = |f: &str| {
                    service
                        .get(f)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                Endpoint::Service {
                    namespace: text("namespace"),
                    name: text("name"),
                    path: {
                        let path = text("path");
                        if path.is_empty() {
                            "/".into()
                        } else {
                            path
                        }
                    },
                    port: service.get("port").and_then(Value::as_i64).unwrap_or(443) as i32,
                }
            }
            (None, None) => {
                return Err("webhook.clientConfig has neither a url nor a service".into())
            }
        };
        let roots = webhook::roots(config.get("caBundle").and_then(Value::as_str))?;
        let text = |p: &str| {
            crd.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        Ok(Some(ConversionWebhook {
            endpoint,
            tls: webhook::tls(roots),
            kind: text("/spec/names/kind"),
        }))
    }

    /// Where to send the review now.
    async fn target(&self, storage: &Storage) -> Result<Target, String> {
        let (namespace, name, path, port) = match &self.endpoint {
            Endpoint::Url(url) => return Target::from_url(url, TIMEOUT),
            Endpoint::Service {
                namespace,
                name,
                path,
                port,
            } => (namespace, name, path, *port),
        };
        let cluster = storage.cluster().await.map_err(|e| e.to_string())?;
        let (address, endpoint_port) = webhook::resolve_endpoint(cluster, namespace, name, port)?;
        let server_name = format!("{name}.{namespace}.svc");
        Ok(Target::new(
            address,
            endpoint_port,
            server_name,
            u16::try_from(port).unwrap_or(443),
            path,
            None,
            TIMEOUT,
        ))
    }

    /// `objects` converted to `desired` (`group/version`), in order.
    pub async fn convert(
        &self,
        storage: &Storage,
        desired: &str,
        objects: Vec<Value>,
    ) -> Result<Vec<Value>, ApiError> {
        let from = objects
            .first()
            .and_then(|o| o.get("apiVersion"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let failed = |why: String| {
            ApiError::internal(format!(
                "conversion webhook for {from}, Kind={} failed: {why}",
                self.kind
            ))
        };
        let target = self.target(storage).await.map_err(failed)?;
        let uid = crate::object::new_uid();
        let review = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "request": {"uid": uid, "desiredAPIVersion": desired, "objects": objects}});
        let answer = webhook::call(&target, self.tls.clone(), &review, TIMEOUT)
            .await
            .map_err(failed)?;
        let response = &answer["response"];
        if response["uid"] != uid.as_str() {
            return Err(failed(format!(
                "expected response uid {uid:?}, got {}",
                response["uid"]
            )));
        }
        if response.pointer("/result/status").and_then(Value::as_str) != Some("Success") {
            let message = response
                .pointer("/result/message")
                .and_then(Value::as_str)
                .unwrap_or("the webhook did not report success");
            return Err(failed(message.to_string()));
        }
        let converted = response["convertedObjects"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if converted.len() != objects.len() {
            return Err(failed(format!(
                "returned {} objects, expected {}",
                converted.len(),
                objects.len()
            )));
        }
        objects
            .into_iter()
            .zip(converted)
            .map(|(original, converted)| self.restore(original, converted, desired).map_err(failed))
            .collect()
    }

    /// The converted object with the original's metadata, apart from labels and annotations
    /// (upstream's `validateConvertedObject` and `restoreObjectMeta`).
    fn restore(
        &self,
        original: Value,
        mut converted: Value,
        desired: &str,
    ) -> Result<Value, String> {
        if converted.get("apiVersion").and_then(Value::as_str) != Some(desired) {
            return Err(format!(
                "invalid converted object: expected apiVersion {desired:?}, got {}",
                converted.get("apiVersion").unwrap_or(&Value::Null)
            ));
        }
        if converted.get("kind") != original.get("kind") {
            return Err(format!(
                "invalid converted object: expected kind {}, got {}",
                original.get("kind").unwrap_or(&Value::Null),
                converted.get("kind").unwrap_or(&Value::Null)
            ));
        }
        let mut metadata = original
            .get("metadata")
            .cloned()
            .unwrap_or_else(|| json!({}));
        for field in ["labels", "annotations"] {
            match converted.pointer(&format!("/metadata/{field}")) {
                Some(Value::Object(map)) if !map.is_empty() => {
                    metadata[field] = Value::Object(map.clone());
                }
                _ => {
                    if let Value::Object(m) = &mut metadata {
                        m.remove(field);
                    }
                }
            }
        }
        converted["metadata"] = metadata;
        Ok(converted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(conversion: Value) -> Value {
        json!({"spec": {"group": "stable.example.com", "names": {"kind": "CronTab"}, "conversion": conversion}})
    }

    #[test]
    fn only_webhook_strategies_have_a_webhook() {
        assert!(ConversionWebhook::of(&crd(json!({"strategy": "None"})))
            .expect("ok")
            .is_none());
        let hook = ConversionWebhook::of(&crd(json!({"strategy": "Webhook", "webhook": {
            "conversionReviewVersions": ["v1"],
            "clientConfig": {"service": {"namespace": "system", "name": "convert", "path": "/convert"}}}})))
        .expect("ok")
        .expect("a webhook");
        assert_eq!(
            hook.endpoint,
            Endpoint::Service {
                namespace: "system".into(),
                name: "convert".into(),
                path: "/convert".into(),
                port: 443
            }
        );
        assert!(ConversionWebhook::of(&crd(json!({"strategy": "Webhook"}))).is_err());
    }

    #[test]
    fn converted_objects_keep_their_metadata_but_labels_and_annotations() {
        let hook = ConversionWebhook::of(&crd(json!({"strategy": "Webhook", "webhook": {
            "clientConfig": {"url": "https://127.0.0.1:1/convert"}}})))
        .expect("ok")
        .expect("a webhook");
        let original = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab",
            "metadata": {"name": "a", "uid": "1", "labels": {"x": "1"}}, "spec": {"cronSpec": "* * * * *"}});
        let converted = json!({"apiVersion": "stable.example.com/v2", "kind": "CronTab",
            "metadata": {"name": "changed", "uid": "2", "labels": {"x": "2"}}, "spec": {"schedule": "* * * * *"}});
        let restored = hook
            .restore(original.clone(), converted.clone(), "stable.example.com/v2")
            .expect("restored");
        assert_eq!(
            restored["metadata"],
            json!({"name": "a", "uid": "1", "labels": {"x": "2"}})
        );
        assert_eq!(restored["spec"]["schedule"], "* * * * *");
        let err = hook
            .restore(original, converted, "stable.example.com/v3")
            .expect_err("wrong version");
        assert!(
            err.starts_with("invalid converted object: expected apiVersion"),
            "{err}"
        );
    }
}
