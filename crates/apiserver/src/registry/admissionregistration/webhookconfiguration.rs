//! Mutating- and ValidatingWebhookConfigurations (`pkg/apis/admissionregistration`): upstream's
//! defaults (failurePolicy Fail, matchPolicy Equivalent, empty selectors, a 10 s timeout,
//! reinvocationPolicy Never, rules of scope `*`, service port 443) and validation, so that what
//! the webhook plugins read is what they can use.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::registry::generic::dns1123_subdomain_problems;
use crate::registry::Strategy;
use crate::status::FieldError;

const OPERATIONS: &[&str] = &["*", "CONNECT", "CREATE", "DELETE", "UPDATE"];
const SIDE_EFFECTS: &[&str] = &["None", "NoneOnDryRun"];
const REVIEW_VERSIONS: &[&str] = &["v1", "v1beta1"];

/// The strategy of both webhook configuration kinds.
pub struct WebhookConfigurationStrategy {
    /// Whether the kind is MutatingWebhookConfiguration (it has `reinvocationPolicy`).
    pub mutating: bool,
}

impl WebhookConfigurationStrategy {
    fn default_webhooks(&self, object: &mut Value) {
        let webhooks = object.get_mut("webhooks").and_then(Value::as_array_mut);
        for webhook in webhooks.into_iter().flatten() {
            let Some(webhook) = webhook.as_object_mut() else {
                continue;
            };
            let mut defaults = vec![
                ("failurePolicy", json!("Fail")),
                ("matchPolicy", json!("Equivalent")),
                ("namespaceSelector", json!({})),
                ("objectSelector", json!({})),
                ("timeoutSeconds", json!(10)),
            ];
            if self.mutating {
                defaults.push(("reinvocationPolicy", json!("Never")));
            }
            for (field, value) in defaults {
                if webhook.get(field).is_none_or(Value::is_null) {
                    webhook.insert(field.to_string(), value);
                }
            }
            let rules = webhook.get_mut("rules").and_then(Value::as_array_mut);
            for rule in rules.into_iter().flatten().filter_map(Value::as_object_mut) {
                if rule.get("scope").is_none_or(Value::is_null) {
                    rule.insert("scope".into(), json!("*"));
                }
            }
            if let Some(service) = webhook
                .get_mut("clientConfig")
                .and_then(|c| c.get_mut("service"))
                .and_then(Value::as_object_mut)
            {
                if service.get("port").is_none_or(Value::is_null) {
                    service.insert("port".into(), json!(443));
                }
            }
        }
    }
}

impl Strategy for WebhookConfigurationStrategy {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&crate::auth::UserInfo>) {
        self.default_webhooks(object);
    }

    fn prepare_for_update(&self, new: &mut Value, _old: &Value) {
        self.default_webhooks(new);
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let mut names = HashSet::new();
        let webhooks = object["webhooks"].as_array();
        for (index, webhook) in webhooks.into_iter().flatten().enumerate() {
            let path = format!("webhooks[{index}]");
            let name = webhook["name"].as_str().unwrap_or_default();
            validate_name(&format!("{path}.name"), name, errors);
            if !name.is_empty() && !names.insert(name) {
                errors.push(FieldError::duplicate(format!("{path}.name"), name));
            }
            validate_webhook(&path, webhook, self.mutating, errors);
        }
    }
}

/// Upstream's `IsFullyQualifiedName`.
fn validate_name(field: &str, name: &str, errors: &mut Vec<FieldError>) {
    if name.is_empty() {
        errors.push(FieldError::required(field, ""));
        return;
    }
    let problems = dns1123_subdomain_problems(name);
    if !problems.is_empty() {
        errors.push(FieldError::invalid(field, name, problems.join(",")));
    } else if name.split('.').count() < 3 {
        errors.push(FieldError::invalid(
            field,
            name,
            "should be a domain with at least three segments separated by dots",
        ));
    }
}

/// `value` (absent or null passes) is one of `supported`.
pub(super) fn one_of(
    field: String,
    value: &Value,
    supported: &[&str],
    errors: &mut Vec<FieldError>,
) {
    if let Some(value) = value.as_str() {
        if !supported.contains(&value) {
            errors.push(FieldError::not_supported(field, value, supported));
        }
    }
}

pub(super) fn go_strings(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

pub(super) fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn validate_webhook(path: &str, webhook: &Value, mutating: bool, errors: &mut Vec<FieldError>) {
    for (index, rule) in webhook["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        validate_rule(&format!("{path}.rules[{index}]"), rule, errors);
    }
    one_of(
        format!("{path}.failurePolicy"),
        &webhook["failurePolicy"],
        &["Fail", "Ignore"],
        errors,
    );
    one_of(
        format!("{path}.matchPolicy"),
        &webhook["matchPolicy"],
        &["Equivalent", "Exact"],
        errors,
    );
    if mutating {
        one_of(
            format!("{path}.reinvocationPolicy"),
            &webhook["reinvocationPolicy"],
            &["IfNeeded", "Never"],
            errors,
        );
    }
    match webhook["sideEffects"].as_str() {
        None => errors.push(FieldError::required(
            format!("{path}.sideEffects"),
            "must specify one of None, NoneOnDryRun",
        )),
        Some(value) => one_of(
            format!("{path}.sideEffects"),
            &json!(value),
            SIDE_EFFECTS,
            errors,
        ),
    }
    let versions = strings(&webhook["admissionReviewVersions"]);
    if versions.is_empty() {
        errors.push(FieldError::required(
            format!("{path}.admissionReviewVersions"),
            "must specify one of v1, v1beta1",
        ));
    } else if !versions.iter().any(|v| REVIEW_VERSIONS.contains(v)) {
        errors.push(FieldError::invalid_raw(
            format!("{path}.admissionReviewVersions"),
            go_strings(&versions),
            "must include at least one of v1, v1beta1",
        ));
    }
    if let Some(timeout) = webhook["timeoutSeconds"].as_i64() {
        if !(1..=30).contains(&timeout) {
            errors.push(FieldError::invalid_raw(
                format!("{path}.timeoutSeconds"),
                timeout.to_string(),
                "the timeout value must be between 1 and 30 seconds",
            ));
        }
    }
    validate_client_config(
        &format!("{path}.clientConfig"),
        &webhook["clientConfig"],
        errors,
    );
}

pub(super) fn validate_rule(path: &str, rule: &Value, errors: &mut Vec<FieldError>) {
    let operations = strings(&rule["operations"]);
    if operations.is_empty() {
        errors.push(FieldError::required(format!("{path}.operations"), ""));
    }
    if operations.len() > 1 && operations.contains(&"*") {
        errors.push(FieldError::invalid_raw(
            format!("{path}.operations"),
            go_strings(&operations),
            "if '*' is present, must not specify other operations",
        ));
    }
    for (index, operation) in operations.iter().enumerate() {
        if !OPERATIONS.contains(operation) {
            errors.push(FieldError::not_supported(
                format!("{path}.operations[{index}]"),
                operation,
                OPERATIONS,
            ));
        }
    }
    for field in ["apiGroups", "apiVersions"] {
        let values = strings(&rule[field]);
        if values.is_empty() {
            errors.push(FieldError::required(format!("{path}.{field}"), ""));
        } else if values.len() > 1 && values.contains(&"*") {
            errors.push(FieldError::invalid_raw(
                format!("{path}.{field}"),
                go_strings(&values),
                "if '*' is present, must not specify other API groups",
            ));
        }
    }
    validate_resources(
        &format!("{path}.resources"),
        &strings(&rule["resources"]),
        errors,
    );
    one_of(
        format!("{path}.scope"),
        &rule["scope"],
        &["*", "Cluster", "Namespaced"],
        errors,
    );
}

/// Upstream's `validateResources`: `*/*` alone; `*` only beside subresources; `a/*` and
/// `*/b` not beside what they already cover.
fn validate_resources(path: &str, resources: &[&str], errors: &mut Vec<FieldError>) {
    if resources.is_empty() {
        errors.push(FieldError::required(path, ""));
        return;
    }
    if resources.len() > 1 && resources.contains(&"*/*") {
        errors.push(FieldError::invalid_raw(
            path,
            go_strings(resources),
            "if '*/*' is present, must not specify other resources",
        ));
        return;
    }
    let with_all_subresources: HashSet<&str> = resources
        .iter()
        .filter_map(|r| r.strip_suffix("/*"))
        .collect();
    let all_with_subresource: HashSet<&str> = resources
        .iter()
        .filter_map(|r| r.strip_prefix("*/"))
        .collect();
    let has_star = resources.contains(&"*");
    for (index, resource) in resources.iter().enumerate() {
        let field = format!("{path}[{index}]");
        if resource.is_empty() {
            errors.push(FieldError::required(field, ""));
            continue;
        }
        let (main, sub) = resource.split_once('/').unwrap_or((resource, ""));
        if has_star && *resource != "*" && sub.is_empty() {
            errors.push(FieldError::invalid(
                field,
                *resource,
                "if '*' is present, must not specify other resources without subresources",
            ));
            continue;
        }
        if !sub.is_empty() && sub != "*" && with_all_subresources.contains(main) {
            errors.push(FieldError::invalid(
                field,
                *resource,
                format!("if '{main}/*' is present, must not specify {resource}"),
            ));
        } else if main != "*" && !sub.is_empty() && all_with_subresource.contains(sub) {
            errors.push(FieldError::invalid(
                field,
                *resource,
                format!("if '*/{sub}' is present, must not specify {resource}"),
            ));
        }
    }
}

fn validate_client_config(path: &str, config: &Value, errors: &mut Vec<FieldError>) {
    let url = config["url"].as_str();
    let service = config.get("service").filter(|s| !s.is_null());
    match (url, service) {
        (Some(url), None) => validate_url(&format!("{path}.url"), url, errors),
        (None, Some(service)) => {
            let path = format!("{path}.service");
            for field in ["namespace", "name"] {
                if service[field].as_str().is_none_or(str::is_empty) {
                    errors.push(FieldError::required(
                        format!("{path}.{field}"),
                        format!("service {field} is required"),
                    ));
                }
            }
            if let Some(p) = service["path"].as_str() {
                validate_service_path(&format!("{path}.path"), p, errors);
            }
            if let Some(port) = service["port"].as_i64() {
                if !(1..=65535).contains(&port) {
                    errors.push(FieldError::invalid_raw(
                        format!("{path}.port"),
                        port.to_string(),
                        "port is not valid: must be between 1 and 65535, inclusive",
                    ));
                }
            }
        }
        _ => errors.push(FieldError::required(
            path,
            "exactly one of url or service is required",
        )),
    }
}

/// Upstream's check of a service path: `/`, or `/`-separated DNS subdomains.
fn validate_service_path(field: &str, path: &str, errors: &mut Vec<FieldError>) {
    if path.is_empty() || path == "/" {
        return;
    }
    if path == "//" {
        errors.push(FieldError::invalid(
            field,
            path,
            "segment[0] may not be empty",
        ));
        return;
    }
    let Some(rest) = path.strip_prefix('/') else {
        errors.push(FieldError::invalid(field, path, "must start with a '/'"));
        return;
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    for (index, segment) in rest.split('/').enumerate() {
        if segment.is_empty() {
            errors.push(FieldError::invalid(
                field,
                path,
                format!("segment[{index}] may not be empty"),
            ));
            continue;
        }
        for problem in dns1123_subdomain_problems(segment) {
            errors.push(FieldError::invalid(
                field,
                path,
                format!("segment[{index}]: {problem}"),
            ));
        }
    }
}

/// Upstream's `ValidateWebhookURL`.
fn validate_url(path: &str, url: &str, errors: &mut Vec<FieldError>) {
    let Ok(uri) = url.parse::<http::Uri>() else {
        errors.push(FieldError::invalid(path, "", "host must be specified"));
        return;
    };
    let scheme = uri.scheme_str().unwrap_or_default();
    if scheme != "https" {
        errors.push(FieldError::invalid(
            path,
            scheme,
            "'https' is the only allowed URL scheme",
        ));
    }
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    let host = uri.host().unwrap_or_default();
    if host.is_empty() {
        errors.push(FieldError::invalid(path, host, "host must be specified"));
    }
    if let Some((user, _)) = authority.split_once('@') {
        errors.push(FieldError::invalid(
            path,
            user,
            "user information is not permitted in the URL",
        ));
    }
    if let Some((_, fragment)) = url.split_once('#') {
        errors.push(FieldError::invalid(
            path,
            fragment,
            "fragments are not permitted in the URL",
        ));
    }
    if let Some(query) = uri.query() {
        errors.push(FieldError::invalid(
            path,
            query,
            "query parameters are not permitted in the URL",
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::registry::generic::{tests::resource, validate};
    use serde_json::json;

    fn configuration(webhook: serde_json::Value) -> serde_json::Value {
        json!({"metadata": {"name": "hooks"}, "webhooks": [webhook]})
    }

    fn error(webhook: serde_json::Value) -> String {
        let r = resource(
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations",
        );
        validate(r, &configuration(webhook), None)
            .expect_err("invalid")
            .message
    }

    #[test]
    fn webhooks_are_validated_with_upstreams_wording() {
        let r = resource(
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations",
        );
        let valid = json!({"name": "deny.example.com", "clientConfig": {"url": "https://127.0.0.1:9443/x"},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods", "pods/status"]}],
            "sideEffects": "None", "admissionReviewVersions": ["v1"]});
        validate(r, &configuration(valid.clone()), None).expect("valid");

        let mut short = valid.clone();
        short["name"] = json!("short");
        assert!(error(short).contains("webhooks[0].name: Invalid value: \"short\": should be a domain with at least three segments separated by dots"));
        let mut effects = valid.clone();
        effects["sideEffects"] = json!("Some");
        assert!(error(effects).contains("webhooks[0].sideEffects: Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\""));
        let mut unsided = valid.clone();
        unsided
            .as_object_mut()
            .expect("object")
            .remove("sideEffects");
        assert!(error(unsided).contains(
            "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun"
        ));
        let mut versions = valid.clone();
        versions["admissionReviewVersions"] = json!(["v2"]);
        assert!(error(versions).contains("webhooks[0].admissionReviewVersions: Invalid value: []string{\"v2\"}: must include at least one of v1, v1beta1"));
        let mut both = valid.clone();
        both["clientConfig"]["service"] = json!({"namespace": "ns", "name": "n"});
        assert!(error(both).contains(
            "webhooks[0].clientConfig: Required value: exactly one of url or service is required"
        ));
        let mut http = valid.clone();
        http["clientConfig"]["url"] = json!("http://example.com/x");
        assert!(error(http).contains("webhooks[0].clientConfig.url: Invalid value: \"http\": 'https' is the only allowed URL scheme"));
        let mut slow = valid.clone();
        slow["timeoutSeconds"] = json!(31);
        assert!(error(slow).contains("webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds"));
        let mut verb = valid.clone();
        verb["rules"][0]["operations"] = json!(["PATCH"]);
        assert!(error(verb).contains("webhooks[0].rules[0].operations[0]: Unsupported value: \"PATCH\": supported values: \"*\", \"CONNECT\", \"CREATE\", \"DELETE\", \"UPDATE\""));
        let mut everything = valid.clone();
        everything["rules"][0]["resources"] = json!(["*/*", "a"]);
        assert!(error(everything).contains("webhooks[0].rules[0].resources: Invalid value: []string{\"*/*\", \"a\"}: if '*/*' is present, must not specify other resources"));
        let mut covered = valid.clone();
        covered["rules"][0]["resources"] = json!(["a/*", "a/x"]);
        assert!(error(covered).contains("webhooks[0].rules[0].resources[1]: Invalid value: \"a/x\": if 'a/*' is present, must not specify a/x"));
        let mut policy = valid.clone();
        policy["failurePolicy"] = json!("other");
        assert!(error(policy).contains("webhooks[0].failurePolicy: Unsupported value: \"other\": supported values: \"Fail\", \"Ignore\""));
        let mut path = valid.clone();
        path["clientConfig"] =
            json!({"service": {"namespace": "ns", "name": "n", "path": "/foo//bar/"}});
        assert!(error(path).contains("webhooks[0].clientConfig.service.path: Invalid value: \"/foo//bar/\": segment[1] may not be empty"));
        let twice = json!({"metadata": {"name": "hooks"}, "webhooks": [valid.clone(), valid]});
        let err = validate(r, &twice, None).expect_err("duplicate").message;
        assert!(
            err.contains("webhooks[1].name: Duplicate value: \"deny.example.com\""),
            "{err}"
        );
    }

    #[test]
    fn webhooks_get_upstreams_defaults() {
        use crate::registry::Strategy;
        let strategy = super::WebhookConfigurationStrategy { mutating: true };
        let mut object = configuration(
            json!({"name": "a.b.c", "clientConfig": {"service": {"namespace": "ns", "name": "n"}},
            "rules": [{"operations": ["*"]}]}),
        );
        strategy.prepare_for_create(&mut object, None);
        let webhook = &object["webhooks"][0];
        assert_eq!(webhook["failurePolicy"], "Fail");
        assert_eq!(webhook["matchPolicy"], "Equivalent");
        assert_eq!(webhook["timeoutSeconds"], 10);
        assert_eq!(webhook["reinvocationPolicy"], "Never");
        assert_eq!(webhook["namespaceSelector"], json!({}));
        assert_eq!(webhook["rules"][0]["scope"], "*");
        assert_eq!(webhook["clientConfig"]["service"]["port"], 443);
    }
}
