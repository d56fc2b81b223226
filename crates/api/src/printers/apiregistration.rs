//! Table printer of the `apiregistration.k8s.io` group's APIService, as kube-aggregator's
//! `pkg/registry/apiservice/etcd` `ConvertToTable` prints it.

use serde_json::Value;

use super::cells::*;
use super::{Column, TablePrinter};

/// The table of `apiservices.apiregistration.k8s.io`: NAME, SERVICE (`Local` or
/// `<namespace>/<name>`), AVAILABLE (`True`, or the status with its reason), AGE.
pub struct ApiService;

impl TablePrinter for ApiService {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col(
                "Service",
                "string",
                "The reference to the service that hosts this API endpoint.",
            ),
            col("Available", "string", "Whether this service is available."),
            AGE,
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        let service = match at(o, &["spec", "service"]) {
            Value::Object(_) => format!(
                "{}/{}",
                st(o, &["spec", "service", "namespace"]),
                st(o, &["spec", "service", "name"])
            ),
            _ => "Local".to_string(),
        };
        let available = at(o, &["status", "conditions"])
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Available")
            .map(|c| {
                let status = c["status"].as_str().unwrap_or("");
                let reason = c["reason"].as_str().unwrap_or("");
                if status == "True" || reason.is_empty() {
                    status.to_string()
                } else {
                    format!("{status} ({reason})")
                }
            })
            .unwrap_or_else(|| "Unknown".to_string());
        vec![name(o), service.into(), available.into(), age(o, now)]
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn local_remote_and_unavailable_rows() {
        let local = json!({"metadata": {"name": "v1.apps"}, "spec": {"group": "apps"},
            "status": {"conditions": [{"type": "Available", "status": "True", "reason": "Local"}]}});
        let row = ApiService.row(&local, 0);
        assert_eq!(row[..3], [json!("v1.apps"), json!("Local"), json!("True")]);
        let remote = json!({"metadata": {"name": "v1beta1.metrics.k8s.io"},
            "spec": {"service": {"namespace": "kube-system", "name": "metrics-server"}},
            "status": {"conditions": [{"type": "Available", "status": "False", "reason": "MissingEndpoints"}]}});
        let row = ApiService.row(&remote, 0);
        assert_eq!(
            row[1..3],
            [
                json!("kube-system/metrics-server"),
                json!("False (MissingEndpoints)")
            ]
        );
        let fresh = json!({"metadata": {"name": "v1.x"}, "spec": {}});
        assert_eq!(ApiService.row(&fresh, 0)[2], json!("Unknown"));
    }
}
