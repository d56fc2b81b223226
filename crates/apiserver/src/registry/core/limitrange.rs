//! LimitRanges (`pkg/apis/core/v1/defaults.go` and `ValidateLimitRange`): a Container item's
//! `default` is taken from `max` and its `defaultRequest` from `default` or `min` where unset;
//! a Pod item may not have defaults; and per resource `min ≤ defaultRequest ≤ default ≤ max`,
//! with `maxLimitRequestRatio` at least 1 and at most max/min.

use ferry_api::resources::{self, Amount, ResourceList};
use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::registry::Strategy;
use crate::status::FieldError;

/// The LimitRange strategy.
pub struct LimitRangeStrategy;

/// Upstream's `SetDefaults_LimitRangeItem`.
fn default_item(item: &mut Value) {
    if item["type"] != "Container" {
        return;
    }
    let fill = |item: &mut Value, into: &str, from: &str| {
        let source = item[from].as_object().cloned().unwrap_or_default();
        if !item[into].is_object() {
            item[into] = json!({});
        }
        if let Some(target) = item[into].as_object_mut() {
            for (name, value) in source {
                target.entry(name).or_insert(value);
            }
        }
    };
    fill(item, "default", "max");
    fill(item, "defaultRequest", "default");
    fill(item, "defaultRequest", "min");
}

fn default_limits(object: &mut Value) {
    let items = object["spec"]
        .get_mut("limits")
        .and_then(Value::as_array_mut);
    for item in items.into_iter().flatten() {
        default_item(item);
    }
}

/// Checks one item's relationships between its lists.
fn validate_item(item: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let kind = item["type"].as_str().unwrap_or_default();
    if kind.is_empty() {
        errors.push(FieldError::required(format!("{path}.type"), ""));
    }
    let lists: [ResourceList; 5] = [
        "min",
        "max",
        "default",
        "defaultRequest",
        "maxLimitRequestRatio",
    ]
    .map(|field| resources::from_json(&item[field]));
    for field in [
        "min",
        "max",
        "default",
        "defaultRequest",
        "maxLimitRequestRatio",
    ] {
        for (name, value) in item[field].as_object().into_iter().flatten() {
            let text = value.as_str().unwrap_or_default();
            match Amount::parse(text) {
                None => errors.push(FieldError::invalid(
                    format!("{path}.{field}[{name}]"),
                    text,
                    "must be a valid quantity",
                )),
                Some(a) if a.quantity < ferry_api::quantity::Quantity::ZERO => {
                    errors.push(FieldError::invalid(
                        format!("{path}.{field}[{name}]"),
                        text,
                        "must be greater than or equal to 0",
                    ))
                }
                Some(_) => {}
            }
        }
    }
    let [min, max, default, default_request, ratio] = &lists;
    if kind == "Pod" {
        for field in ["default", "defaultRequest"] {
            if item[field].as_object().is_some_and(|m| !m.is_empty()) {
                errors.push(FieldError::forbidden(
                    format!("{path}.{field}"),
                    "may not be specified when `type` is 'Pod'",
                ));
            }
        }
    }
    let mut names: Vec<&String> = lists.iter().flat_map(|l| l.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let (lo, hi) = (min.get(name), max.get(name));
        let (dflt, request) = (default.get(name), default_request.get(name));
        let mut bad = |field: &str, value: &Amount, detail: String| {
            errors.push(FieldError::invalid(
                format!("{path}.{field}[{name}]"),
                value.to_string(),
                detail,
            ));
        };
        if let (Some(lo), Some(hi)) = (lo, hi) {
            if lo.quantity > hi.quantity {
                bad(
                    "min",
                    lo,
                    format!("min value {lo} is greater than max value {hi}"),
                );
            }
        }
        if let Some(request) = request {
            if let Some(lo) = lo.filter(|lo| lo.quantity > request.quantity) {
                bad(
                    "defaultRequest",
                    request,
                    format!("min value {lo} is greater than default request value {request}"),
                );
            }
            if let Some(hi) = hi.filter(|hi| request.quantity > hi.quantity) {
                bad(
                    "defaultRequest",
                    request,
                    format!("default request value {request} is greater than max value {hi}"),
                );
            }
            if let Some(dflt) = dflt.filter(|d| request.quantity > d.quantity) {
                bad("defaultRequest", request, format!("default request value {request} is greater than default limit value {dflt}"));
            }
        }
        if let Some(dflt) = dflt {
            if let Some(lo) = lo.filter(|lo| lo.quantity > dflt.quantity) {
                bad(
                    "default",
                    dflt,
                    format!("min value {lo} is greater than default value {dflt}"),
                );
            }
            if let Some(hi) = hi.filter(|hi| dflt.quantity > hi.quantity) {
                bad(
                    "default",
                    dflt,
                    format!("default value {dflt} is greater than max value {hi}"),
                );
            }
        }
        if let Some(ratio) = ratio.get(name) {
            if ratio.quantity < ferry_api::quantity::Quantity::from_units(1) {
                bad(
                    "maxLimitRequestRatio",
                    ratio,
                    format!("ratio {ratio} is less than 1"),
                );
            }
            if let (Some(lo), Some(hi)) = (lo, hi) {
                let most = hi.quantity.milli_value() as f64 / lo.quantity.milli_value() as f64;
                let asked = ratio.quantity.milli_value() as f64 / 1000.0;
                if asked > most {
                    bad(
                        "maxLimitRequestRatio",
                        ratio,
                        format!("ratio {ratio} is greater than max/min = {most:.6}"),
                    );
                }
            }
        }
    }
}

impl Strategy for LimitRangeStrategy {
    fn prepare_for_create(&self, object: &mut Value, _user: Option<&UserInfo>) {
        default_limits(object);
    }

    fn prepare_for_update(&self, new: &mut Value, _old: &Value) {
        default_limits(new);
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let items = object["spec"]["limits"].as_array();
        for (i, item) in items.into_iter().flatten().enumerate() {
            validate_item(item, &format!("spec.limits[{i}]"), errors);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::registry::generic::{prepare_for_create, tests::resource, validate};
    use serde_json::json;

    #[test]
    fn container_items_are_defaulted_and_checked() {
        let r = resource("", "v1", "limitranges");
        let mut range = json!({"metadata": {"name": "l", "namespace": "d"}, "spec": {"limits": [
            {"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "64Mi"}}]}});
        prepare_for_create(r, &mut range, None);
        assert_eq!(range["spec"]["limits"][0]["default"], json!({"cpu": "1"}));
        assert_eq!(
            range["spec"]["limits"][0]["defaultRequest"],
            json!({"cpu": "1", "memory": "64Mi"})
        );
        validate(r, &range, None).expect("valid");
        let bad = json!({"metadata": {"name": "l", "namespace": "d"}, "spec": {"limits": [
            {"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"},
                "maxLimitRequestRatio": {"memory": "500m"}},
            {"type": "Pod", "default": {"cpu": "1"}}]}});
        let err = validate(r, &bad, None).expect_err("invalid");
        assert_eq!(
            err.message,
            "LimitRange \"l\" is invalid: [spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1, spec.limits[0].maxLimitRequestRatio[memory]: Invalid value: \"500m\": ratio 500m is less than 1, spec.limits[1].default: Forbidden: may not be specified when `type` is 'Pod']"
        );
    }
}
