//! HorizontalPodAutoscalers (`pkg/registry/autoscaling/horizontalpodautoscaler` and
//! `pkg/apis/autoscaling/v1/conversion.go`): stored in the `autoscaling/v2` shape with v2's
//! defaults (one replica at least, CPU at 80% when no metric is given); `autoscaling/v1`
//! reads and writes the same objects, converted on the way: its
//! `targetCPUUtilizationPercentage` is the v2 CPU utilization metric, and what v1 cannot say
//! (other metrics, behavior, conditions, current metrics) travels in upstream's
//! `autoscaling.alpha.kubernetes.io/*` annotations.

use serde_json::{json, Map, Value};

use crate::auth::UserInfo;
use crate::registry::Strategy;

const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
const CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";

/// The autoscaling/v2 strategy.
pub struct HpaV2Strategy;

/// The autoscaling/v1 strategy: v2's storage, converted.
pub struct HpaV1Strategy;

/// v2's defaults (`SetDefaults_HorizontalPodAutoscaler`).
fn default_v2(object: &mut Value) {
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec.entry("minReplicas").or_insert(json!(1));
    let no_metrics = spec
        .get("metrics")
        .and_then(Value::as_array)
        .is_none_or(|m| m.is_empty());
    if no_metrics {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}]),
        );
    }
}

impl Strategy for HpaV2Strategy {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&UserInfo>) {
        default_v2(object);
    }

    fn prepare_for_update(&self, new: &mut Value, _old: &Value) {
        default_v2(new);
    }
}

impl Strategy for HpaV1Strategy {
    fn tracks_generation(&self) -> bool {
        true
    }

    // Requests arrive in the v1 shape: v2's defaults apply once converted for storage.
    fn encode_for_storage(&self, object: Value) -> Value {
        let mut stored = v1_to_v2(object);
        default_v2(&mut stored);
        stored
    }

    fn decode_stored(&self, object: Value) -> Value {
        v2_to_v1(object)
    }
}

fn is_cpu_utilization(metric: &Value) -> bool {
    metric["type"] == "Resource"
        && metric["resource"]["name"] == "cpu"
        && metric["resource"]["target"]["type"] == "Utilization"
}

fn take_annotation(meta: &mut Map<String, Value>, key: &str) -> Option<Value> {
    let annotations = meta.get_mut("annotations")?.as_object_mut()?;
    let value = annotations.remove(key)?;
    if annotations.is_empty() {
        meta.remove("annotations");
    }
    serde_json::from_str(value.as_str()?).ok()
}

fn put_annotation(meta: &mut Map<String, Value>, key: &str, value: &Value) {
    let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
    if let Some(map) = annotations.as_object_mut() {
        map.insert(key.into(), Value::String(value.to_string()));
    }
}

/// An autoscaling/v1 object in the v2 shape (upstream's `Convert_v1_HorizontalPodAutoscaler_To_autoscaling_HorizontalPodAutoscaler`).
pub fn v1_to_v2(object: Value) -> Value {
    let Value::Object(mut object) = object else {
        return object;
    };
    object.insert("apiVersion".into(), json!("autoscaling/v2"));
    let mut meta = object
        .remove("metadata")
        .and_then(|m| m.as_object().cloned())
        .unwrap_or_default();
    let other_metrics = take_annotation(&mut meta, METRICS);
    let current_metrics = take_annotation(&mut meta, CURRENT_METRICS);
    let conditions = take_annotation(&mut meta, CONDITIONS);
    let behavior = take_annotation(&mut meta, BEHAVIOR);
    object.insert("metadata".into(), Value::Object(meta));
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        let mut metrics: Vec<Value> = Vec::new();
        if let Some(Value::Array(others)) = other_metrics {
            metrics.extend(others);
        }
        if let Some(percent) = spec.remove("targetCPUUtilizationPercentage") {
            metrics.push(json!({"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": percent}}}));
        }
        if !metrics.is_empty() {
            spec.insert("metrics".into(), Value::Array(metrics));
        }
        if let Some(behavior) = behavior {
            spec.insert("behavior".into(), behavior);
        }
    }
    if let Some(status) = object.get_mut("status").and_then(Value::as_object_mut) {
        let mut current: Vec<Value> = match current_metrics {
            Some(Value::Array(c)) => c,
            _ => Vec::new(),
        };
        if let Some(percent) = status.remove("currentCPUUtilizationPercentage") {
            current.push(json!({"type": "Resource", "resource": {"name": "cpu",
                "current": {"averageUtilization": percent}}}));
        }
        if !current.is_empty() {
            status.insert("currentMetrics".into(), Value::Array(current));
        }
        if let Some(conditions) = conditions {
            status.insert("conditions".into(), conditions);
        }
    }
    Value::Object(object)
}

/// A stored (v2) object as autoscaling/v1 serves it.
pub fn v2_to_v1(object: Value) -> Value {
    let Value::Object(mut object) = object else {
        return object;
    };
    object.insert("apiVersion".into(), json!("autoscaling/v1"));
    let mut meta = object
        .remove("metadata")
        .and_then(|m| m.as_object().cloned())
        .unwrap_or_default();
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        let metrics = match spec.remove("metrics") {
            Some(Value::Array(m)) => m,
            _ => Vec::new(),
        };
        let (cpu, others): (Vec<Value>, Vec<Value>) =
            metrics.into_iter().partition(is_cpu_utilization);
        if let Some(percent) = cpu
            .first()
            .map(|m| m["resource"]["target"]["averageUtilization"].clone())
        {
            spec.insert("targetCPUUtilizationPercentage".into(), percent);
        }
        if !others.is_empty() {
            put_annotation(&mut meta, METRICS, &Value::Array(others));
        }
        if let Some(behavior) = spec.remove("behavior") {
            put_annotation(&mut meta, BEHAVIOR, &behavior);
        }
    }
    if let Some(status) = object.get_mut("status").and_then(Value::as_object_mut) {
        let current = match status.remove("currentMetrics") {
            Some(Value::Array(c)) => c,
            _ => Vec::new(),
        };
        let (cpu, others): (Vec<Value>, Vec<Value>) = current
            .into_iter()
            .partition(|m| m["type"] == "Resource" && m["resource"]["name"] == "cpu");
        if let Some(percent) = cpu
            .first()
            .map(|m| m["resource"]["current"]["averageUtilization"].clone())
            .filter(|p| !p.is_null())
        {
            status.insert("currentCPUUtilizationPercentage".into(), percent);
        }
        if !others.is_empty() {
            put_annotation(&mut meta, CURRENT_METRICS, &Value::Array(others));
        }
        if let Some(conditions) = status.remove("conditions") {
            put_annotation(&mut meta, CONDITIONS, &conditions);
        }
        status.entry("currentReplicas").or_insert(json!(0));
        status.entry("desiredReplicas").or_insert(json!(0));
    }
    object.insert("metadata".into(), Value::Object(meta));
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_round_trip() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                     "maxReplicas": 5, "targetCPUUtilizationPercentage": 50}});
        let stored = HpaV1Strategy.encode_for_storage(v1.clone());
        assert_eq!(stored["apiVersion"], "autoscaling/v2");
        assert_eq!(stored["spec"]["minReplicas"], 1);
        assert_eq!(
            stored["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            50
        );
        let back = v2_to_v1(stored);
        assert_eq!(back["spec"]["targetCPUUtilizationPercentage"], 50);
        assert!(back["metadata"].get("annotations").is_none());

        let v2 = json!({"apiVersion": "autoscaling/v2", "metadata": {"name": "web"},
            "spec": {"maxReplicas": 3, "metrics": [
                {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}}],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}},
            "status": {"currentReplicas": 2, "desiredReplicas": 2,
                "conditions": [{"type": "AbleToScale", "status": "True"}]}});
        let v1 = v2_to_v1(v2.clone());
        assert!(v1["spec"].get("targetCPUUtilizationPercentage").is_none());
        assert!(v1["metadata"]["annotations"][METRICS]
            .as_str()
            .unwrap()
            .contains("memory"));
        assert!(v1["metadata"]["annotations"][CONDITIONS].is_string());
        let again = v1_to_v2(v1);
        assert_eq!(again["spec"]["metrics"], v2["spec"]["metrics"]);
        assert_eq!(again["spec"]["behavior"], v2["spec"]["behavior"]);
        assert_eq!(again["status"]["conditions"], v2["status"]["conditions"]);
    }

    #[test]
    fn no_metric_means_cpu_at_80_percent() {
        let mut hpa = json!({"spec": {"maxReplicas": 3}});
        HpaV2Strategy.prepare_for_create(&mut hpa, None);
        assert_eq!(
            hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        assert_eq!(hpa["spec"]["minReplicas"], 1);
    }
}
