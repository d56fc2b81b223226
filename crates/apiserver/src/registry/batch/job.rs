//! Jobs (`pkg/registry/batch/job`): upstream's defaults (`SetDefaults_Job`, applied to every
//! write as decoding applies them), a selector generated from the Job's UID unless
//! `manualSelector` (and the template labels it selects: old and new spellings), and upstream's
//! validation (`ValidateJob`, `ValidateJobUpdate`): the spec as [`validate_job_spec`] checks
//! it, the generated selector and labels, the pods' hostnames of an Indexed Job, and on update
//! the immutable fields — the template too, but for its scheduling directives while the Job is
//! suspended and never started, and `completions` of an Indexed Job changed with
//! `parallelism`. Selectable by `status.successful`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::registry::apps::validation::{
    go_label_selector, go_string_map, labels_mismatch, str_at, template_labels, Selector,
};
use crate::registry::batch::validation::{default_pod_failure_policy, validate_job_spec};
use crate::registry::core::pod::default_template;
use crate::registry::generic::{default, dns1123_label_problems, immutable};
use crate::registry::Strategy;
use crate::status::FieldError;

/// The labels (legacy and prefixed) naming a Job's pods' Job.
const JOB_NAME_LABELS: [&str; 2] = ["job-name", "batch.kubernetes.io/job-name"];
/// The labels (legacy and prefixed) carrying a Job's pods' Job UID.
const CONTROLLER_UID_LABELS: [&str; 2] = ["controller-uid", "batch.kubernetes.io/controller-uid"];

/// The Job strategy.
pub struct JobStrategy;

impl Strategy for JobStrategy {
    fn traced(&self) -> bool {
        true
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&UserInfo>) {
        set_defaults(object);
        if object
            .pointer("/spec/manualSelector")
            .and_then(Value::as_bool)
            != Some(true)
        {
            generate_selector(object);
        }
    }

    fn prepare_for_update(&self, new: &mut Value, _old: &Value) {
        set_defaults(new);
    }

    fn default_fields(&self, object: &mut Value) {
        set_defaults(object);
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        validate_job(object, true, errors);
    }

    fn validate_update(&self, new: &Value, old: &Value, errors: &mut Vec<FieldError>) {
        // Writes of the status (and metadata) leave the spec as stored; upstream's status
        // strategy does not check it again either.
        if new.get("spec") == old.get("spec") {
            return;
        }
        // Jobs made before the prefixed labels existed keep validating without them.
        let labels = old.pointer("/spec/template/metadata/labels");
        let prefixed = [
            "batch.kubernetes.io/job-name",
            "batch.kubernetes.io/controller-uid",
        ]
        .iter()
        .all(|l| labels.and_then(|m| m.get(l)).is_some());
        validate_job(new, prefixed, errors);
        validate_spec_update(new, old, errors);
    }

    fn selectable_fields(&self, object: &Value, fields: &mut BTreeMap<String, String>) {
        fields.insert(
            "status.successful".into(),
            ferry_api::selector::text_at(object, "/status/succeeded"),
        );
    }
}

/// `SetDefaults_Job` and the template's pod defaults.
fn set_defaults(object: &mut Value) {
    let template_labels = object
        .pointer("/spec/template/metadata/labels")
        .filter(|l| l.is_object())
        .cloned();
    if let Some(spec) = object.get_mut("spec").filter(|s| s.is_object()) {
        if spec.get("completions").is_none() && spec.get("parallelism").is_none() {
            spec["completions"] = json!(1);
            spec["parallelism"] = json!(1);
        }
        default(spec, "parallelism", json!(1));
        let backoff_limit = if spec.get("backoffLimitPerIndex").is_some() {
            i32::MAX
        } else {
            6
        };
        default(spec, "backoffLimit", json!(backoff_limit));
        default(spec, "completionMode", json!("NonIndexed"));
        default(spec, "suspend", json!(false));
        let replacement = if spec.get("podFailurePolicy").is_some() {
            "Failed"
        } else {
            "TerminatingOrFailed"
        };
        default(spec, "podReplacementPolicy", json!(replacement));
        default(spec, "manualSelector", json!(false));
    }
    if let Some(labels) = template_labels {
        let empty = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .is_none_or(|l| l.is_empty());
        if empty {
            if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("labels".into(), labels);
            }
        }
    }
    default_pod_failure_policy(object, "/spec");
    default_template(object, "/spec/template/spec");
}

/// `generateSelector`: the template gets the Job's name and UID labels it lacks, and the
/// selector selects the UID.
fn generate_selector(object: &mut Value) {
    let uid = str_at(object, "/metadata/uid").to_string();
    let name = str_at(object, "/metadata/name").to_string();
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let template = spec.entry("template").or_insert(json!({}));
    if let Some(template) = template.as_object_mut() {
        let meta = template.entry("metadata").or_insert(json!({}));
        if let Some(meta) = meta.as_object_mut() {
            let labels = meta.entry("labels").or_insert(json!({}));
            if let Some(labels) = labels.as_object_mut() {
                for label in JOB_NAME_LABELS {
                    labels.entry(label).or_insert(json!(name));
                }
                for label in CONTROLLER_UID_LABELS {
                    labels.entry(label).or_insert(json!(uid));
                }
            }
        }
    }
    let selector = spec.entry("selector").or_insert(json!({}));
    if let Some(selector) = selector.as_object_mut() {
        let match_labels = selector.entry("matchLabels").or_insert(json!({}));
        if let Some(match_labels) = match_labels.as_object_mut() {
            match_labels
                .entry("batch.kubernetes.io/controller-uid")
                .or_insert(json!(uid));
        }
    }
}

/// `ValidateJob`: the generated selector (`prefixed`: with the `batch.kubernetes.io/` labels
/// too), the spec and its selector, and the hostname of the last index.
fn validate_job(object: &Value, prefixed: bool, errors: &mut Vec<FieldError>) {
    validate_generated_selector(object, prefixed, errors);
    let spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
    validate_job_spec(&spec, "spec", errors);
    if object.pointer("/spec/selector").is_none() {
        errors.push(FieldError::required("spec.selector", ""));
    }
    if !Selector::of(object).matches(template_labels(object)) {
        errors.push(labels_mismatch(object, "spec.template"));
    }
    let indexed = str_at(object, "/spec/completionMode") == "Indexed";
    let completions = object.pointer("/spec/completions").and_then(Value::as_i64);
    if let Some(completions) = completions.filter(|c| indexed && *c > 0) {
        let name = str_at(object, "/metadata/name");
        let hostname = format!("{name}-{}", completions - 1);
        if !dns1123_label_problems(&hostname).is_empty() {
            errors.push(FieldError::invalid(
                "metadata.name",
                name,
                format!("will not able to create pod with invalid DNS label: {hostname}"),
            ));
        }
    }
}

/// `validateGeneratedSelector`: unless `manualSelector`, the template has the Job's name and
/// UID labels and the selector selects them.
fn validate_generated_selector(object: &Value, prefixed: bool, errors: &mut Vec<FieldError>) {
    let manual = object
        .pointer("/spec/manualSelector")
        .and_then(Value::as_bool)
        == Some(true);
    let Some(selector) = object.pointer("/spec/selector").filter(|_| !manual) else {
        return;
    };
    let uid = str_at(object, "/metadata/uid");
    if uid.is_empty() {
        errors.push(FieldError::required("metadata.uid", ""));
    }
    let name = str_at(object, "/metadata/name");
    let labels = template_labels(object);
    let mut expected = BTreeMap::new();
    let wanted = [
        (CONTROLLER_UID_LABELS[0], uid),
        (JOB_NAME_LABELS[0], name),
        (CONTROLLER_UID_LABELS[1], uid),
        (JOB_NAME_LABELS[1], name),
    ];
    for (i, (label, value)) in wanted.into_iter().enumerate() {
        if i >= 2 && !prefixed {
            continue;
        }
        expected.insert(label.to_string(), value.to_string());
        let field = format!("spec.template.metadata.labels[{label}]");
        match labels.and_then(|l| l.get(label)).and_then(Value::as_str) {
            None => errors.push(FieldError::required(field, value)),
            Some(actual) if actual != value => errors.push(FieldError::invalid_raw(
                field,
                go_string_map(labels),
                format!("must be '{value}'"),
            )),
            Some(_) => {}
        }
    }
    let expected: serde_json::Map<String, Value> = expected
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    if !Selector::of(object).matches(Some(&expected)) {
        errors.push(FieldError::invalid_raw(
            "spec.selector",
            go_label_selector(selector),
            "`selector` not auto-generated",
        ));
    }
}

/// `ValidateJobSpecUpdate`'s immutable fields.
fn validate_spec_update(new: &Value, old: &Value, errors: &mut Vec<FieldError>) {
    let indexed = str_at(new, "/spec/completionMode") == "Indexed";
    let completions = new.pointer("/spec/completions");
    if !indexed {
        immutable(new, old, "/spec/completions", "spec.completions", errors);
    } else if completions != old.pointer("/spec/completions") {
        // Elastic Indexed Jobs: completions change with parallelism.
        if let Some(c) = completions.and_then(Value::as_i64) {
            if Some(c) != new.pointer("/spec/parallelism").and_then(Value::as_i64) {
                errors.push(FieldError::invalid_raw(
                    "spec.completions",
                    c.to_string(),
                    "can only be modified in tandem with spec.parallelism",
                ));
            }
        }
    }
    immutable(new, old, "/spec/selector", "spec.selector", errors);
    let mut old_template = old
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    let new_template = new
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    let suspended = old.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true);
    let never_started = old.pointer("/status/startTime").is_none();
    if suspended && never_started {
        allow_scheduling_changes(&mut old_template, &new_template);
    }
    if old_template != new_template {
        errors.push(FieldError::invalid_raw(
            "spec.template",
            new_template.to_string(),
            "field is immutable",
        ));
    }
    for (pointer, field) in [
        ("/spec/completionMode", "spec.completionMode"),
        ("/spec/podFailurePolicy", "spec.podFailurePolicy"),
        ("/spec/backoffLimitPerIndex", "spec.backoffLimitPerIndex"),
        ("/spec/managedBy", "spec.managedBy"),
        ("/spec/successPolicy", "spec.successPolicy"),
    ] {
        immutable(new, old, pointer, field, errors);
    }
}

/// Copies into `old` the template fields a suspended Job that never started may change:
/// node affinity, node selector, tolerations, scheduling gates, labels and annotations.
fn allow_scheduling_changes(old: &mut Value, new: &Value) {
    let copy = |old: &mut Value, pointer: &str, key: &str| {
        let parent = pointer.rsplit_once('/').map_or("", |(p, _)| p);
        let value = new.pointer(pointer).cloned();
        if let Some(target) = old.pointer_mut(parent).and_then(Value::as_object_mut) {
            match value {
                Some(v) => {
                    target.insert(key.into(), v);
                }
                None => {
                    target.remove(key);
                }
            }
        }
    };
    for (pointer, key) in [
        ("/metadata/labels", "labels"),
        ("/metadata/annotations", "annotations"),
        ("/spec/nodeSelector", "nodeSelector"),
        ("/spec/tolerations", "tolerations"),
        ("/spec/schedulingGates", "schedulingGates"),
    ] {
        copy(old, pointer, key);
    }
    // Affinity: node affinity may change, and go when it was all there was.
    let new_affinity = new.pointer("/spec/affinity");
    if let Some(spec) = old.get_mut("spec").and_then(Value::as_object_mut) {
        match (spec.get_mut("affinity"), new_affinity) {
            (Some(old_affinity), None) => {
                if let Some(a) = old_affinity.as_object_mut() {
                    a.remove("nodeAffinity");
                    if a.is_empty() {
                        spec.remove("affinity");
                    }
                }
            }
            (None, Some(new_affinity)) => {
                let mut only_node = serde_json::Map::new();
                if let Some(node) = new_affinity.get("nodeAffinity") {
                    only_node.insert("nodeAffinity".into(), node.clone());
                }
                spec.insert("affinity".into(), Value::Object(only_node));
            }
            (Some(old_affinity), Some(new_affinity)) => {
                if let Some(a) = old_affinity.as_object_mut() {
                    match new_affinity.get("nodeAffinity") {
                        Some(node) => {
                            a.insert("nodeAffinity".into(), node.clone());
                        }
                        None => {
                            a.remove("nodeAffinity");
                        }
                    }
                }
            }
            (None, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::generic::{prepare_for_create, prepare_for_update, tests::resource};

    fn jobs() -> &'static crate::registry::Resource {
        resource("batch", "v1", "jobs")
    }

    fn created(spec: Value) -> Value {
        let mut spec = spec;
        spec.as_object_mut()
            .expect("spec")
            .entry("template")
            .or_insert(json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}));
        let mut job = json!({"metadata": {"name": "pi", "uid": "u-1"}, "spec": spec});
        prepare_for_create(jobs(), &mut job, None);
        job
    }

    fn errors(job: &Value, old: Option<&Value>) -> Vec<String> {
        crate::registry::generic::tests::field_errors(jobs(), job, old)
    }

    #[test]
    fn defaults_are_upstreams() {
        let job = created(
            json!({"template": {"metadata": {"labels": {"app": "pi"}}, "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}),
        );
        assert_eq!(
            job.pointer("/spec/selector"),
            Some(&json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}))
        );
        assert_eq!(
            job.pointer("/spec/template/metadata/labels"),
            Some(
                &json!({"app": "pi", "job-name": "pi", "batch.kubernetes.io/job-name": "pi", "controller-uid": "u-1", "batch.kubernetes.io/controller-uid": "u-1"})
            )
        );
        assert_eq!(
            job.pointer("/metadata/labels"),
            Some(&json!({"app": "pi"})),
            "the template's labels as the user wrote them"
        );
        let spec = &job["spec"];
        assert_eq!(
            (
                &spec["completions"],
                &spec["parallelism"],
                &spec["backoffLimit"],
                &spec["completionMode"],
                &spec["suspend"],
                &spec["podReplacementPolicy"],
                &spec["manualSelector"]
            ),
            (
                &json!(1),
                &json!(1),
                &json!(6),
                &json!("NonIndexed"),
                &json!(false),
                &json!("TerminatingOrFailed"),
                &json!(false)
            )
        );
        assert!(errors(&job, None).is_empty(), "{:?}", errors(&job, None));
        // A work queue: parallelism without completions keeps completions unset.
        let queue = created(json!({"parallelism": 3}));
        assert_eq!(queue.pointer("/spec/completions"), None);
        // Per-index backoff: the global limit is out of the way; a failure policy's patterns
        // match True, and only failed pods are replaced.
        let per_index = created(
            json!({"completionMode": "Indexed", "completions": 3, "backoffLimitPerIndex": 1,
            "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}}),
        );
        assert_eq!(per_index["spec"]["backoffLimit"], json!(i32::MAX));
        assert_eq!(per_index["spec"]["podReplacementPolicy"], "Failed");
        assert_eq!(
            per_index.pointer("/spec/podFailurePolicy/rules/0/onPodConditions/0/status"),
            Some(&json!("True"))
        );
        // Without restartPolicy the template restarts Always, which a Job may not.
        let mut always = json!({"metadata": {"name": "a", "uid": "u"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}});
        prepare_for_create(jobs(), &mut always, None);
        assert_eq!(
            errors(&always, None),
            ["spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""]
        );
        let mut manual = json!({"metadata": {"name": "m", "uid": "u-2"}, "spec": {"manualSelector": true, "template": {}}});
        prepare_for_create(jobs(), &mut manual, None);
        assert_eq!(manual.pointer("/spec/selector"), None);
    }

    #[test]
    fn new_fields_are_validated_as_upstream() {
        let cases: &[(&str, Value, &[&str])] = &[
            (
                "per-index backoff needs indexes",
                json!({"backoffLimitPerIndex": 1}),
                &["spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode"],
            ),
            (
                "max failed indexes",
                json!({"completionMode": "Indexed", "completions": 2, "backoffLimitPerIndex": 1, "maxFailedIndexes": 3}),
                &["spec.maxFailedIndexes: Invalid value: 3: must be less than or equal to completions"],
            ),
            (
                "success policies need indexes",
                json!({"successPolicy": {"rules": [{"succeededCount": 1}]}}),
                &["spec.successPolicy: Invalid value: batch.SuccessPolicy{Rules:[]batch.SuccessPolicyRule{batch.SuccessPolicyRule{SucceededIndexes:(*string)(nil), SucceededCount:(*int32)(0xc000010000)}}}: requires indexed completion mode"],
            ),
            (
                "success policy rules",
                json!({"completionMode": "Indexed", "completions": 5, "successPolicy": {"rules": [
                    {},
                    {"succeededIndexes": "1-3,2"},
                    {"succeededIndexes": "0-1", "succeededCount": 3},
                    {"succeededCount": 6},
                ]}}),
                &[
                    "spec.successPolicy.rules[0]: Required value: at least one of succeededCount or succeededIndexes must be specified",
                    "spec.successPolicy.rules[1].succeededIndexes: Invalid value: \"1-3,2\": error parsing succeededIndexes: non-increasing order, previous: 3, current: 2",
                    "spec.successPolicy.rules[2].succeededCount: Invalid value: 3: must be less than or equal to 2 (the number of indexes in the specified succeededIndexes field)",
                    "spec.successPolicy.rules[3].succeededCount: Invalid value: 6: must be less than or equal to 5 (the number of specified completions)",
                ],
            ),
            (
                "an empty success policy",
                json!({"completionMode": "Indexed", "completions": 5, "successPolicy": {"rules": []}}),
                &["spec.successPolicy.rules: Required value: at least one rules must be specified when the successPolicy is specified"],
            ),
            (
                "pod failure policy rules",
                json!({"podFailurePolicy": {"rules": [
                    {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [1]}},
                    {"action": "Explode", "onExitCodes": {"operator": "Maybe", "containerName": "nope", "values": [0, 3, 3, 2]}},
                    {"action": "Ignore"},
                    {"action": "Count", "onExitCodes": {"operator": "In", "values": []}, "onPodConditions": [{"type": "bad type!", "status": "Perhaps"}]},
                ]}}),
                &[
                    "spec.podFailurePolicy.rules[0].action: Invalid value: \"FailIndex\": requires the backoffLimitPerIndex to be set",
                    "spec.podFailurePolicy.rules[1].action: Unsupported value: \"Explode\": supported values: \"Count\", \"FailIndex\", \"FailJob\", \"Ignore\"",
                    "spec.podFailurePolicy.rules[1].onExitCodes.operator: Unsupported value: \"Maybe\": supported values: \"In\", \"NotIn\"",
                    "spec.podFailurePolicy.rules[1].onExitCodes.containerName: Invalid value: \"nope\": must be one of the container or initContainer names in the pod template",
                    "spec.podFailurePolicy.rules[1].onExitCodes.values[2]: Duplicate value: 3",
                    "spec.podFailurePolicy.rules[1].onExitCodes.values: Invalid value: []int32{0, 3, 3, 2}: must be ordered",
                    "spec.podFailurePolicy.rules[2]: Invalid value: specifying one of OnExitCodes and OnPodConditions is required",
                    "spec.podFailurePolicy.rules[3].onExitCodes.values: Invalid value: []int32{}: at least one value is required",
                    "spec.podFailurePolicy.rules[3].onPodConditions[0].type: Invalid value: \"bad type!\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                    "spec.podFailurePolicy.rules[3].onPodConditions[0].status: Unsupported value: \"Perhaps\": supported values: \"False\", \"True\", \"Unknown\"",
                    "spec.podFailurePolicy.rules[3]: Invalid value: specifying both OnExitCodes and OnPodConditions is not supported",
                ],
            ),
            (
                "the In operator and exit code 0",
                json!({"podFailurePolicy": {"rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [0]}}]}}),
                &["spec.podFailurePolicy.rules[0].onExitCodes.values[0]: Invalid value: 0: must not be 0 for the In operator"],
            ),
            (
                "replacement with a failure policy",
                json!({"podReplacementPolicy": "TerminatingOrFailed", "podFailurePolicy": {"rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [1]}}]}}),
                &["spec.podReplacementPolicy: Unsupported value: \"TerminatingOrFailed\": supported values: \"Failed\""],
            ),
            (
                "managed by",
                json!({"managedBy": "nodomain"}),
                &["spec.managedBy: Invalid value: \"nodomain\": must be a domain-prefixed path (such as \"acme.io/foo\")"],
            ),
        ];
        for (name, spec, want) in cases {
            assert_eq!(errors(&created(spec.clone()), None), *want, "{name}");
        }
        let long = created(json!({"completionMode": "Indexed", "completions": 100}));
        let mut long = long;
        long["metadata"]["name"] = json!("a".repeat(62));
        long["spec"]["template"]["metadata"]["labels"]["job-name"] = json!("a".repeat(62));
        long["spec"]["template"]["metadata"]["labels"]["batch.kubernetes.io/job-name"] =
            json!("a".repeat(62));
        assert_eq!(
            errors(&long, None),
            [format!("metadata.name: Invalid value: \"{0}\": will not able to create pod with invalid DNS label: {0}-99", "a".repeat(62))]
        );
    }

    #[test]
    fn selectors_are_generated_and_checked() {
        let mut job = created(json!({}));
        job["spec"]["template"]["metadata"]["labels"]["controller-uid"] = json!("other");
        let errs = errors(&job, None);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with(
                "spec.template.metadata.labels[controller-uid]: Invalid value: map[string]string{"
            ),
            "{errs:?}"
        );
        assert!(errs[0].ends_with("must be 'u-1'"), "{errs:?}");
        let mut job = created(json!({}));
        job["spec"]["selector"] =
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1", "extra": "x"}});
        assert_eq!(
            errors(&job, None),
            [
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"batch.kubernetes.io/controller-uid\":\"u-1\", \"extra\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: `selector` not auto-generated",
                "spec.template.metadata.labels: Invalid value: map[string]string{\"batch.kubernetes.io/controller-uid\":\"u-1\", \"batch.kubernetes.io/job-name\":\"pi\", \"controller-uid\":\"u-1\", \"job-name\":\"pi\"}: `selector` does not match template `labels`",
            ]
        );
    }

    #[test]
    fn updates_keep_what_upstream_keeps() {
        let old = created(
            json!({"completionMode": "Indexed", "completions": 3, "parallelism": 3, "suspend": true}),
        );
        let update = |change: &dyn Fn(&mut Value)| {
            let mut new = old.clone();
            change(&mut new);
            prepare_for_update(jobs(), &mut new, &old);
            errors(&new, Some(&old))
        };
        assert!(update(&|j| j["spec"]["parallelism"] = json!(1)).is_empty());
        assert!(
            update(&|j| {
                j["spec"]["parallelism"] = json!(5);
                j["spec"]["completions"] = json!(5);
            })
            .is_empty(),
            "elastic Indexed Jobs"
        );
        assert_eq!(
            update(&|j| j["spec"]["completions"] = json!(5)),
            ["spec.completions: Invalid value: 5: can only be modified in tandem with spec.parallelism"]
        );
        assert_eq!(
            update(&|j| j["spec"]["backoffLimitPerIndex"] = json!(2)),
            ["spec.backoffLimitPerIndex: Invalid value: 2: field is immutable"]
        );
        assert_eq!(
            update(&|j| j["spec"]["successPolicy"] = json!({"rules": [{"succeededCount": 1}]})),
            ["spec.successPolicy: Invalid value: {\"rules\":[{\"succeededCount\":1}]}: field is immutable"]
        );
        // Suspended and never started: scheduling directives may change, not the rest.
        assert!(
            update(&|j| j["spec"]["template"]["spec"]["nodeSelector"] = json!({"zone": "a"}))
                .is_empty()
        );
        let image =
            update(&|j| j["spec"]["template"]["spec"]["containers"][0]["image"] = json!("y"));
        assert_eq!(image.len(), 1);
        assert!(
            image[0].starts_with("spec.template: Invalid value: "),
            "{image:?}"
        );
        let mut started = old.clone();
        started["status"] = json!({"startTime": "2025-01-01T00:00:00Z"});
        let mut new = started.clone();
        new["spec"]["template"]["spec"]["nodeSelector"] = json!({"zone": "a"});
        assert_eq!(errors(&new, Some(&started)).len(), 1, "started once");
        // A status write leaves the spec alone and is not checked again.
        let mut status = old.clone();
        status["status"] = json!({"active": 1});
        assert!(errors(&status, Some(&old)).is_empty());
    }
}
