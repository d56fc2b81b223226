//! Black-box tests of admission (the plugin chain by name, LimitRanger and ResourceQuota,
//! PodSecurity, webhooks, policies, the class plugins), of the token and authorization webhooks
//! and OIDC, and of encryption at rest: a real `ferry server`, the real kubectl, and a small
//! HTTPS server started by the test on 127.0.0.1 with a certificate of its own.

mod common;

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use common::https::{HttpsServer, Request};
use common::{eventually, Ferry};
use serde_json::{json, Value};

/// An HTTPS server answering AdmissionReviews: `/mutate` labels the object `hooked: "yes"`
/// and warns; `/validate` refuses objects whose name starts with `bad`.
struct WebhookServer {
    /// Serving until dropped.
    _https: HttpsServer,
    port: u16,
    ca_bundle: String,
    /// The keys it serves at `/jwks`, as an OIDC issuer (discovery at
    /// `/.well-known/openid-configuration`).
    jwks: Arc<std::sync::Mutex<Value>>,
    calls: Arc<AtomicUsize>,
}

impl WebhookServer {
    fn start() -> WebhookServer {
        let calls = Arc::new(AtomicUsize::new(0));
        let jwks = Arc::new(std::sync::Mutex::new(json!({"keys": []})));
        // The issuer's URL names the port, known once the server listens.
        let port = Arc::new(std::sync::OnceLock::new());
        let https = {
            let (calls, jwks, port) = (calls.clone(), jwks.clone(), port.clone());
            HttpsServer::start("127.0.0.1", None, move |request| {
                calls.fetch_add(1, Ordering::Relaxed);
                let keys = jwks.lock().expect("jwks").clone();
                ("200 OK", answer(request, *port.get().unwrap_or(&0), &keys))
            })
        };
        let _ = port.set(https.port);
        WebhookServer {
            port: https.port,
            ca_bundle: https.ca_bundle.clone(),
            _https: https,
            jwks,
            calls,
        }
    }

    fn client_config(&self, path: &str) -> Value {
        json!({"url": format!("https://127.0.0.1:{}{path}", self.port), "caBundle": self.ca_bundle})
    }
}

/// Answers one request with a JSON body.
fn answer(http: &Request, port: u16, jwks: &Value) -> String {
    let review = http.json();
    let path = http.path.as_str();
    let request = &review["request"];
    let uid = request["uid"].clone();
    if path == "/.well-known/openid-configuration" {
        let issuer = format!("https://127.0.0.1:{port}");
        let document = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")});
        return document.to_string();
    }
    if path == "/jwks" {
        return jwks.to_string();
    }
    if path.starts_with("/authenticate") {
        // A TokenReview: one token is jane's, one mallory's.
        let status = match review["spec"]["token"].as_str() {
            Some("jane-token") => {
                json!({"authenticated": true, "user": {"username": "jane", "uid": "42", "groups": ["developers"]}})
            }
            Some("mallory-token") => {
                json!({"authenticated": true, "user": {"username": "mallory", "groups": []}})
            }
            _ => json!({"authenticated": false, "error": "unknown token"}),
        };
        return json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status}).to_string();
    }
    if path.starts_with("/authorize") {
        // A v1beta1 SubjectAccessReview: jane may list pods, mallory may not touch them (denied
        // outright); the rest is not this webhook's business.
        let spec = &review["spec"];
        let attributes = &spec["resourceAttributes"];
        let status = match spec["user"].as_str() {
            Some("jane") if attributes["verb"] == "list" && attributes["resource"] == "pods" => {
                json!({"allowed": true})
            }
            Some("mallory") if attributes["resource"] == "pods" => {
                json!({"allowed": false, "denied": true, "reason": "mallory is banned"})
            }
            _ => json!({"allowed": false, "reason": "not mine"}),
        };
        return json!({"apiVersion": "authorization.k8s.io/v1beta1", "kind": "SubjectAccessReview", "status": status}).to_string();
    }
    if path.starts_with("/convert") {
        // A ConversionReview between v1 (`spec.cronSpec`) and v2 (`spec.schedule`).
        let desired = request["desiredAPIVersion"].as_str().unwrap_or_default();
        let result = if path.starts_with("/convert-fail") {
            json!({"status": "Failure", "message": "no conversion today"})
        } else {
            json!({"status": "Success"})
        };
        let converted: Vec<Value> = request["objects"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|object| {
                let mut object = object.clone();
                let spec = object["spec"].as_object_mut().expect("spec");
                if desired.ends_with("/v2") {
                    if let Some(v) = spec.remove("cronSpec") {
                        spec.insert("schedule".into(), v);
                    }
                } else if let Some(v) = spec.remove("schedule") {
                    spec.insert("cronSpec".into(), v);
                }
                object["apiVersion"] = json!(desired);
                object
            })
            .collect();
        let body = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "response": {"uid": uid, "convertedObjects": converted, "result": result}});
        return body.to_string();
    }
    let response = if path.starts_with("/inject") {
        // A sidecar as injectors write them: no pull policy, no termination message path,
        // limits without requests.
        let sidecar = json!({"name": "sidecar", "image": "busybox",
            "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}});
        let patch = json!([{"op": "add", "path": "/spec/containers/-", "value": sidecar}]);
        let patch = base64::engine::general_purpose::STANDARD.encode(patch.to_string());
        json!({"uid": uid, "allowed": true, "patch": patch, "patchType": "JSONPatch"})
    } else if path.starts_with("/mutate") {
        let patch = if request["object"]["metadata"]["labels"].is_object() {
            json!([{"op": "add", "path": "/metadata/labels/hooked", "value": "yes"}])
        } else {
            json!([{"op": "add", "path": "/metadata/labels", "value": {"hooked": "yes"}}])
        };
        let patch = base64::engine::general_purpose::STANDARD.encode(patch.to_string());
        json!({"uid": uid, "allowed": true, "patch": patch, "patchType": "JSONPatch",
            "warnings": [format!("mutated by the test webhook ({})", request["operation"].as_str().unwrap_or_default())]})
    } else {
        let name = request["name"].as_str().unwrap_or_default();
        if name.starts_with("bad") {
            json!({"uid": uid, "allowed": false,
                "status": {"code": 403, "message": "bad names are not welcome"}})
        } else {
            json!({"uid": uid, "allowed": true})
        }
    };
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
        .to_string()
}

fn configuration(kind: &str, name: &str, webhooks: Value) -> String {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": webhooks,
    })
    .to_string()
}

#[test]
fn webhooks_mutate_refuse_and_fail_as_their_policy_says() {
    let ferry = Ferry::start();
    let hooks = WebhookServer::start();
    let stderr = |out: std::process::Output| String::from_utf8_lossy(&out.stderr).to_string();

    // A mutating webhook for ConfigMaps labels them and warns.
    ferry.apply_yaml(
        "create",
        &configuration(
            "MutatingWebhookConfiguration",
            "labeller",
            json!([{
                "name": "label.ferry.test",
                "clientConfig": hooks.client_config("/mutate"),
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}],
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            }]),
        ),
    );
    let created = ferry.kubectl(&["create", "configmap", "good"]);
    assert!(created.status.success(), "{}", stderr(created.clone()));
    assert!(
        stderr(created).contains("Warning: mutated by the test webhook (CREATE)"),
        "the webhook's warning reaches kubectl"
    );
    assert_eq!(
        ferry.ok(&[
            "get",
            "configmap",
            "good",
            "-o",
            "jsonpath={.metadata.labels.hooked}"
        ]),
        "yes"
    );
    // Not for what its rules leave out: updates, other kinds.
    ferry.ok(&["label", "configmap", "good", "hooked-"]);
    assert_eq!(
        ferry.ok(&[
            "get",
            "configmap",
            "good",
            "-o",
            "jsonpath={.metadata.labels}"
        ]),
        ""
    );

    // A sidecar injector for pods: the container it adds is defaulted as the pod's own are,
    // and counts for the pod's QoS class.
    ferry.apply_yaml(
        "create",
        &configuration(
            "MutatingWebhookConfiguration",
            "injector",
            json!([{
                "name": "inject.ferry.test",
                "clientConfig": hooks.client_config("/inject"),
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            }]),
        ),
    );
    let injected = ferry.ok(&[
        "run",
        "injected",
        "--image=busybox",
        "--dry-run=server",
        "-o",
        "jsonpath={.spec.containers[1].imagePullPolicy} {.spec.containers[1].terminationMessagePath} {.spec.containers[1].resources.requests.cpu} {.status.qosClass}",
    ]);
    assert_eq!(injected, "Always /dev/termination-log 100m Burstable");
    ferry.ok(&["delete", "mutatingwebhookconfiguration", "injector"]);

    // A validating webhook for namespaces labelled hooks=on refuses bad names.
    ferry.apply_yaml(
        "create",
        &configuration(
            "ValidatingWebhookConfiguration",
            "names",
            json!([{
                "name": "deny.ferry.test",
                "clientConfig": hooks.client_config("/validate"),
                "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps", "secrets"]}],
                "namespaceSelector": {"matchLabels": {"hooks": "on"}},
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            }]),
        ),
    );
    ferry.ok(&["create", "configmap", "bad-but-unwatched"]);
    ferry.ok(&["label", "namespace", "default", "hooks=on"]);
    let refused = stderr(ferry.kubectl(&["create", "configmap", "bad-one"]));
    assert!(
        refused.contains(
            "admission webhook \"deny.ferry.test\" denied the request: bad names are not welcome"
        ),
        "{refused}"
    );
    assert!(!ferry
        .kubectl(&["get", "configmap", "bad-one"])
        .status
        .success());
    ferry.ok(&["create", "secret", "generic", "fine"]);

    // A webhook that cannot be reached refuses writes under failurePolicy Fail…
    let down = |policy: &str| {
        configuration(
            "ValidatingWebhookConfiguration",
            "down",
            json!([{
                "name": "down.ferry.test",
                "clientConfig": {"url": "https://127.0.0.1:1/validate", "caBundle": hooks.ca_bundle},
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["secrets"]}],
                "failurePolicy": policy,
                "timeoutSeconds": 2,
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            }]),
        )
    };
    ferry.apply_yaml("create", &down("Fail"));
    let failed = stderr(ferry.kubectl(&["create", "secret", "generic", "blocked"]));
    assert!(
        failed.contains("Internal error occurred: failed calling webhook \"down.ferry.test\": failed to call webhook: Post \"https://127.0.0.1:1/validate?timeout=2s\": dial tcp 127.0.0.1:1:"),
        "{failed}"
    );
    // … is skipped under Ignore…
    ferry.apply_yaml("apply", &down("Ignore"));
    ferry.ok(&["create", "secret", "generic", "through"]);
    // … and never stands in the way of removing it.
    ferry.apply_yaml("apply", &down("Fail"));
    ferry.ok(&["delete", "validatingwebhookconfiguration", "down"]);
    ferry.ok(&["create", "secret", "generic", "after"]);

    // Dry runs call webhooks without side effects, and what they change is answered.
    assert_eq!(
        ferry.ok(&[
            "create",
            "configmap",
            "dry",
            "--dry-run=server",
            "-o",
            "jsonpath={.metadata.labels.hooked}"
        ]),
        "yes"
    );
    assert!(!ferry.kubectl(&["get", "configmap", "dry"]).status.success());
    assert!(hooks.calls.load(Ordering::Relaxed) >= 5);
}

#[test]
fn admission_policies_deny_and_warn_in_cel() {
    let ferry = Ferry::start();
    let stderr = |out: std::process::Output| String::from_utf8_lossy(&out.stderr).to_string();
    let deployment = |name: &str, replicas: u32| {
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers: [{{name: c, image: busybox}}]\n")
    };
    let deployments_rule = json!({"resourceRules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"]}]});

    // Expressions that do not compile are refused with the compiler's message.
    let broken = ferry.with_stdin(
        &["create", "-f", "-"],
        &json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": "broken.example.com"},
            "spec": {"matchConstraints": deployments_rule, "validations": [{"expression": "object.spec.("}]}})
        .to_string(),
    );
    let broken = stderr(broken);
    assert!(
        broken.contains("spec.validations[0].expression: Invalid value: \"object.spec.(\": compilation failed: ERROR: <input>:1:13: Syntax error"),
        "{broken}"
    );

    // Deny: upstream's documented example, bound to namespaces labelled environment=test.
    ferry.apply_yaml(
        "create",
        &json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": "demo-policy.example.com"},
            "spec": {"failurePolicy": "Fail", "matchConstraints": deployments_rule,
                "validations": [{"expression": "object.spec.replicas <= 5"}]}})
        .to_string(),
    );
    ferry.apply_yaml(
        "create",
        &json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": "demo-binding-test.example.com"},
            "spec": {"policyName": "demo-policy.example.com", "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchLabels": {"environment": "test"}}}}})
        .to_string(),
    );
    ferry.apply_yaml("create", &deployment("before-label", 6));
    ferry.ok(&["label", "namespace", "default", "environment=test"]);
    let denied = stderr(ferry.with_stdin(&["create", "-f", "-"], &deployment("big", 6)));
    assert!(
        denied.contains("The deployments \"big\" is invalid: : ValidatingAdmissionPolicy 'demo-policy.example.com' with binding 'demo-binding-test.example.com' denied request: failed expression: object.spec.replicas <= 5"),
        "{denied}"
    );
    ferry.apply_yaml("create", &deployment("small", 3));
    let grown = stderr(ferry.kubectl(&[
        "patch",
        "deployment",
        "small",
        "-p",
        r#"{"spec":{"replicas":9}}"#,
    ]));
    assert!(
        grown.contains("denied request: failed expression"),
        "{grown}"
    );

    // Warn, with params from a ConfigMap and a message expression.
    ferry.ok(&["create", "configmap", "limits", "--from-literal=max=2"]);
    ferry.apply_yaml(
        "create",
        &json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": "param-limit.example.com"},
            "spec": {"paramKind": {"apiVersion": "v1", "kind": "ConfigMap"}, "matchConstraints": deployments_rule,
                "variables": [{"name": "max", "expression": "int(params.data.max)"}],
                "validations": [{"expression": "object.spec.replicas <= variables.max",
                    "messageExpression": "'replicas ' + string(object.spec.replicas) + ' exceed ' + string(variables.max)"}]}})
        .to_string(),
    );
    ferry.apply_yaml(
        "create",
        &json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": "param-limit-binding"},
            "spec": {"policyName": "param-limit.example.com", "validationActions": ["Warn"],
                "paramRef": {"name": "limits", "namespace": "default", "parameterNotFoundAction": "Deny"}}})
        .to_string(),
    );
    let warned = ferry.with_stdin(&["create", "-f", "-"], &deployment("medium", 4));
    assert!(warned.status.success(), "{}", stderr(warned.clone()));
    assert!(
        stderr(warned).contains("Warning: Validation failed for ValidatingAdmissionPolicy 'param-limit.example.com' with binding 'param-limit-binding': replicas 4 exceed 2"),
        "the warning reaches kubectl"
    );
    // Without its params, the binding denies.
    ferry.ok(&["delete", "configmap", "limits"]);
    let paramless = stderr(ferry.with_stdin(&["create", "-f", "-"], &deployment("tiny", 1)));
    assert!(
        paramless
            .contains("no params found for policy binding with `Deny` parameterNotFoundAction"),
        "{paramless}"
    );
}

/// What admission says about a request reaches its audit event as annotations: PodSecurity's
/// enforced level and audit-level violations, a policy's Audit failures.
#[test]
fn admission_leaves_audit_annotations() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("audit.log");
    let policy = tmp.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n",
    )
    .expect("policy");
    let data = tmp.path().join("data");
    let ferry = Ferry::start_in(
        &data,
        &[
            &format!("--audit-policy-file={}", policy.display()),
            &format!("--audit-log-path={}", log.display()),
        ],
    );
    ferry.ok(&["create", "namespace", "audited"]);
    ferry.ok(&[
        "label",
        "namespace",
        "audited",
        "pod-security.kubernetes.io/enforce=baseline",
        "pod-security.kubernetes.io/audit=restricted",
    ]);
    ferry.apply_yaml(
        "create",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: plain, namespace: audited}\nspec:\n  containers: [{name: c, image: busybox}]\n",
    );
    ferry.apply_yaml(
        "create",
        &json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": "named.example.com"},
            "spec": {"matchConstraints": {"resourceRules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}]},
                "validations": [{"expression": "object.metadata.name.startsWith('app-')", "message": "names start with app-"}],
                "auditAnnotations": [{"key": "name", "valueExpression": "object.metadata.name"}]}})
        .to_string(),
    );
    ferry.apply_yaml(
        "create",
        &json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": "named-audit"},
            "spec": {"policyName": "named.example.com", "validationActions": ["Audit"]}})
        .to_string(),
    );
    ferry.ok(&["create", "configmap", "loose"]);

    let created = |resource: &str| -> Option<Value> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| {
                e["verb"] == "create"
                    && e["objectRef"]["resource"] == resource
                    && e["userAgent"]
                        .as_str()
                        .is_some_and(|a| a.starts_with("kubectl"))
            })
    };
    assert!(common::eventually(
        std::time::Duration::from_secs(5),
        || { created("pods").is_some() && created("configmaps").is_some() }
    ));
    let pod = created("pods").expect("pod event");
    assert_eq!(
        pod["annotations"]["pod-security.kubernetes.io/enforce-policy"],
        "baseline:latest"
    );
    let violations = pod["annotations"]["pod-security.kubernetes.io/audit-violations"]
        .as_str()
        .unwrap_or_default();
    assert!(
        violations.starts_with(
            "would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"
        ),
        "{pod}"
    );
    let configmap = created("configmaps").expect("configmap event");
    assert_eq!(configmap["annotations"]["named.example.com/name"], "loose");
    let failures: Value = serde_json::from_str(
        configmap["annotations"]["validation.policy.admission.k8s.io/validation_failure"]
            .as_str()
            .unwrap_or("null"),
    )
    .expect("a JSON list");
    assert_eq!(
        failures,
        json!([{"message": "names start with app-", "policy": "named.example.com",
            "binding": "named-audit", "expressionIndex": 0, "validationActions": ["Audit"]}])
    );
}

/// DefaultStorageClass, DefaultIngressClass and RuntimeClass fill in what their classes say.
#[test]
fn class_plugins_fill_in_defaults_and_runtime_needs() {
    let ferry = Ferry::start();
    let stderr = |out: std::process::Output| String::from_utf8_lossy(&out.stderr).to_string();
    ferry.apply_yaml(
        "create",
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: fast\n  annotations: {storageclass.kubernetes.io/is-default-class: \"true\"}\nprovisioner: example.com/fast\n",
    );
    let claim = |name: &str, class: &str| {
        format!("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}}}\nspec:\n{class}  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n")
    };
    ferry.apply_yaml("create", &claim("defaulted", ""));
    ferry.apply_yaml("create", &claim("classless", "  storageClassName: \"\"\n"));
    let class_of = |name: &str| {
        ferry.ok(&[
            "get",
            "pvc",
            name,
            "-o",
            "jsonpath={.spec.storageClassName}",
        ])
    };
    assert_eq!(class_of("defaulted"), "fast");
    assert_eq!(class_of("classless"), "", "an empty class is a choice");

    ferry.apply_yaml(
        "create",
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: edge\n  annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}\nspec: {controller: example.com/edge}\n",
    );
    ferry.ok(&["create", "ingress", "web", "--rule=example.com/=web:80"]);
    assert_eq!(
        ferry.ok(&[
            "get",
            "ingress",
            "web",
            "-o",
            "jsonpath={.spec.ingressClassName}"
        ]),
        "edge"
    );

    ferry.apply_yaml(
        "create",
        "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: sandboxed}\nhandler: runsc\noverhead: {podFixed: {cpu: 250m, memory: 64Mi}}\nscheduling:\n  nodeSelector: {runtime: gvisor}\n  tolerations: [{key: sandboxed, operator: Exists, effect: NoSchedule}]\n",
    );
    let pod = |name: &str, class: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  runtimeClassName: {class}\n  containers: [{{name: c, image: busybox}}]\n")
    };
    ferry.apply_yaml("create", &pod("boxed", "sandboxed"));
    assert_eq!(
        ferry.ok(&[
            "get",
            "pod",
            "boxed",
            "-o",
            "jsonpath={.spec.overhead.cpu} {.spec.nodeSelector.runtime} {.spec.tolerations[?(@.key==\"sandboxed\")].effect}"
        ]),
        "250m gvisor NoSchedule"
    );
    let missing = stderr(ferry.with_stdin(&["create", "-f", "-"], &pod("lost", "ghost")));
    assert!(
        missing
            .contains("pods \"lost\" is forbidden: pod rejected: RuntimeClass \"ghost\" not found"),
        "{missing}"
    );
}

/// The value of `key` as the embedded store under `data` holds it (the server stopped).
fn stored_value(data: &std::path::Path, key: &[u8]) -> Vec<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        use ferry_store::Store as _;
        let config = ferry_store::embedded::Config::new(data.join("store"));
        let store = ferry_store::embedded::EmbeddedStore::open(config)
            .await
            .expect("open the store");
        let value = store
            .get(key)
            .await
            .expect("get")
            .expect("stored")
            .value
            .to_vec();
        store.close();
        value
    })
}

/// `--encryption-provider-config`: Secrets are encrypted at rest, read back through any listed
/// key, and rotated by rewriting them.
#[test]
fn secrets_are_encrypted_at_rest_and_keys_rotate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let config = tmp.path().join("encryption.yaml");
    let key1 = "key1: {name: key1, secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}";
    let key2 = "key2: {name: key2, secret: ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=}";
    let write_config = |keys: &[&str]| {
        let keys: Vec<String> = keys
            .iter()
            .map(|k| k.split_once(": ").expect("key").1.to_string())
            .collect();
        std::fs::write(
            &config,
            format!(
                "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aescbc:\n      keys: [{}]\n  - identity: {{}}\n",
                keys.join(", ")
            ),
        )
        .expect("config");
    };
    let flag = format!("--encryption-provider-config={}", config.display());
    let secret_key = b"/secrets/default/db";

    write_config(&[key1]);
    {
        let ferry = Ferry::start_in(&data, &[&flag]);
        ferry.ok(&[
            "create",
            "secret",
            "generic",
            "db",
            "--from-literal=password=hunter2",
        ]);
        ferry.ok(&["create", "configmap", "plain", "--from-literal=a=b"]);
    }
    let at_rest = stored_value(&data, secret_key);
    assert!(
        at_rest.starts_with(b"k8s:enc:aescbc:v1:key1:"),
        "{}",
        String::from_utf8_lossy(&at_rest)
    );
    assert!(!at_rest.windows(12).any(|w| w == b"aHVudGVyMg=="));
    assert!(stored_value(&data, b"/configmaps/default/plain").starts_with(b"{"));

    // A new key first: old values still read; a rewrite moves them to the new key.
    write_config(&[key2, key1]);
    {
        let ferry = Ferry::start_in(&data, &[&flag]);
        assert_eq!(
            ferry.ok(&["get", "secret", "db", "-o", "jsonpath={.data.password}"]),
            "aHVudGVyMg=="
        );
        let all = ferry.ok(&["get", "secrets", "-A", "-o", "json"]);
        let replaced = ferry.with_stdin(&["replace", "-f", "-"], &all);
        assert!(
            replaced.status.success(),
            "{}",
            String::from_utf8_lossy(&replaced.stderr)
        );
    }
    assert!(stored_value(&data, secret_key).starts_with(b"k8s:enc:aescbc:v1:key2:"));

    // The old key can go.
    write_config(&[key2]);
    let ferry = Ferry::start_in(&data, &[&flag]);
    assert_eq!(
        ferry.ok(&["get", "secret", "db", "-o", "jsonpath={.data.password}"]),
        "aHVudGVyMg=="
    );
}

/// `--authentication-token-webhook-config-file`: a token only the webhook knows is a user.
#[test]
fn a_token_webhook_authenticates_what_it_knows() {
    let hooks = WebhookServer::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("authn.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: authn\n  cluster:\n    server: https://127.0.0.1:{}/authenticate\n    certificate-authority-data: {}\nusers:\n- name: apiserver\n  user: {{}}\ncontexts:\n- name: webhook\n  context: {{cluster: authn, user: apiserver}}\ncurrent-context: webhook\n",
            hooks.port, hooks.ca_bundle
        ),
    )
    .expect("config");
    let data = tmp.path().join("data");
    let ferry = Ferry::start_in(
        &data,
        &[&format!(
            "--authentication-token-webhook-config-file={}",
            config.display()
        )],
    );
    let whoami = ferry.kubectl_with_token(
        "jane-token",
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
        ],
    );
    assert!(
        whoami.status.success(),
        "{}",
        String::from_utf8_lossy(&whoami.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&whoami.stdout),
        r#"jane ["developers","system:authenticated"]"#
    );
    // RBAC decides what she may do: nothing yet.
    let denied = ferry.kubectl_with_token("jane-token", &["get", "pods"]);
    assert!(String::from_utf8_lossy(&denied.stderr)
        .contains("User \"jane\" cannot list resource \"pods\""));
    let unknown = ferry.kubectl_with_token("nobody-token", &["get", "pods"]);
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("Unauthorized"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
}

/// `--authorization-mode=Node,Webhook,RBAC`: the webhook allows what it knows, forbids
/// outright what it denies (RBAC is not asked), and leaves the rest to RBAC.
#[test]
fn an_authorization_webhook_decides_before_rbac() {
    let hooks = WebhookServer::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = |name: &str, path: &str| {
        let file = tmp.path().join(name);
        std::fs::write(
            &file,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: hook\n  cluster:\n    server: https://127.0.0.1:{}{path}\n    certificate-authority-data: {}\nusers:\n- name: apiserver\n  user: {{}}\ncontexts:\n- name: webhook\n  context: {{cluster: hook, user: apiserver}}\ncurrent-context: webhook\n",
                hooks.port, hooks.ca_bundle
            ),
        )
        .expect("config");
        file
    };
    let authn = config("authn.yaml", "/authenticate");
    let authz = config("authz.yaml", "/authorize");
    let ferry = Ferry::start_in(
        &tmp.path().join("data"),
        &[
            &format!(
                "--authentication-token-webhook-config-file={}",
                authn.display()
            ),
            "--authorization-mode=Node,Webhook,RBAC",
            &format!("--authorization-webhook-config-file={}", authz.display()),
        ],
    );
    // Allowed by the webhook alone.
    let listed = ferry.kubectl_with_token("jane-token", &["get", "pods"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    // No opinion: RBAC decides, and holds nothing for her.
    let secrets = ferry.kubectl_with_token("jane-token", &["get", "secrets"]);
    assert!(
        String::from_utf8_lossy(&secrets.stderr)
            .contains("User \"jane\" cannot list resource \"secrets\""),
        "{}",
        String::from_utf8_lossy(&secrets.stderr)
    );
    // Denied outright: RBAC's binding does not help, and the webhook's reason is given.
    ferry.ok(&[
        "create",
        "clusterrolebinding",
        "mallory-view",
        "--clusterrole=view",
        "--user=mallory",
    ]);
    let mallory = ferry.kubectl_with_token("mallory-token", &["get", "pods"]);
    assert!(
        String::from_utf8_lossy(&mallory.stderr).contains(
            "User \"mallory\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\": mallory is banned"
        ),
        "{}",
        String::from_utf8_lossy(&mallory.stderr)
    );
    // SubjectAccessReviews ask the webhook too.
    assert_eq!(
        ferry
            .ok(&["auth", "can-i", "list", "pods", "--as=jane"])
            .trim(),
        "yes"
    );
    let denied = ferry.kubectl(&["auth", "can-i", "list", "pods", "--as=mallory"]);
    assert_eq!(
        String::from_utf8_lossy(&denied.stdout).trim(),
        "no - mallory is banned"
    );
}

/// `--oidc-issuer-url`: ID tokens signed by the issuer's key authenticate, named by the
/// configured claims; others are refused.
#[test]
fn oidc_id_tokens_authenticate() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let issuer = WebhookServer::start();
    // The issuer's signing key, published as a JWK.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let point = key.public_key_raw();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    *issuer.jwks.lock().expect("jwks") = json!({"keys": [{"kty": "EC", "crv": "P-256",
        "x": b64(&point[1..33]), "y": b64(&point[33..65]), "kid": "k1", "alg": "ES256", "use": "sig"}]});
    let url = format!("https://127.0.0.1:{}", issuer.port);
    let signing = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).expect("signing key");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let token = |claims: Value| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("k1".into());
        encode(&header, &claims, &signing).expect("sign")
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = tmp.path().join("issuer-ca.crt");
    std::fs::write(
        &ca,
        base64::engine::general_purpose::STANDARD
            .decode(&issuer.ca_bundle)
            .expect("pem"),
    )
    .expect("ca");
    let data = tmp.path().join("data");
    let ferry = Ferry::start_in(
        &data,
        &[
            &format!("--oidc-issuer-url={url}"),
            "--oidc-client-id=ferry",
            "--oidc-username-claim=email",
            "--oidc-groups-claim=groups",
            "--oidc-groups-prefix=oidc:",
            "--oidc-signing-algs=ES256",
            &format!("--oidc-ca-file={}", ca.display()),
        ],
    );
    let good = token(
        json!({"iss": url, "aud": "ferry", "sub": "1234", "email": "jane@example.com",
        "email_verified": true, "groups": ["devs"], "exp": now + 600, "iat": now}),
    );
    let whoami = ferry.kubectl_with_token(
        &good,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
        ],
    );
    assert!(
        whoami.status.success(),
        "{}",
        String::from_utf8_lossy(&whoami.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&whoami.stdout),
        r#"jane@example.com ["oidc:devs","system:authenticated"]"#
    );
    for (what, bad) in [
        (
            "expired",
            json!({"iss": url, "aud": "ferry", "email": "jane@example.com", "exp": now - 600}),
        ),
        (
            "for another client",
            json!({"iss": url, "aud": "other", "email": "jane@example.com", "exp": now + 600}),
        ),
    ] {
        let refused = ferry.kubectl_with_token(&token(bad), &["get", "pods"]);
        // 401: kubectl says so as "Unauthorized", or during discovery as a request for
        // credentials.
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success()
                && (said.contains("Unauthorized") || said.contains("provide credentials")),
            "{what}: {}",
            String::from_utf8_lossy(&refused.stderr)
        );
    }
}

/// `--enable-admission-plugins` chooses the admission chain by upstream's names: without
/// NamespaceLifecycle, content may be created in a namespace that does not exist (as upstream);
/// an unknown plugin stops the server at start.
#[test]
fn admission_plugins_are_chosen_by_name() {
    let default = Ferry::start();
    let refused = default.fails(&["create", "configmap", "c", "-n", "nowhere"]);
    assert!(
        refused.contains("namespaces \"nowhere\" not found"),
        "{refused}"
    );

    // ServiceAccount: the pod runs as `default` with the API access volume mounted.
    let pod = |name: &str, extra: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n{extra}  containers: [{{name: c, image: busybox}}]\n")
    };
    default.apply_yaml("create", &pod("plain", ""));
    assert_eq!(
        default.ok(&["get", "pod", "plain", "-o", "jsonpath={.spec.serviceAccountName} {.spec.containers[0].volumeMounts[0].mountPath} {.spec.priority} {.spec.preemptionPolicy}"]),
        "default /var/run/secrets/kubernetes.io/serviceaccount 0 PreemptLowerPriority"
    );
    default.apply_yaml(
        "create",
        &pod("opted-out", "  automountServiceAccountToken: false\n"),
    );
    assert_eq!(
        default.ok(&["get", "pod", "opted-out", "-o", "jsonpath={.spec.volumes}"]),
        ""
    );
    let missing = default.with_stdin(
        &["create", "-f", "-"],
        &pod("lost", "  serviceAccountName: ghost\n"),
    );
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("pods \"lost\" is forbidden: error looking up service account default/ghost: serviceaccount \"ghost\" not found"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    // Priority: the system classes exist, pods take their class's value, unknown classes and
    // contradicting values are refused, one global default at most.
    assert_eq!(
        default.ok(&[
            "get",
            "priorityclass",
            "-o",
            "custom-columns=NAME:.metadata.name,VALUE:.value",
            "--no-headers"
        ]),
        "system-cluster-critical   2000000000\nsystem-node-critical      2000001000\n"
    );
    default.apply_yaml(
        "create",
        &pod("critical", "  priorityClassName: system-cluster-critical\n"),
    );
    assert_eq!(
        default.ok(&["get", "pod", "critical", "-o", "jsonpath={.spec.priority}"]),
        "2000000000"
    );
    let unknown = default.with_stdin(
        &["create", "-f", "-"],
        &pod("odd", "  priorityClassName: nope\n"),
    );
    assert!(
        String::from_utf8_lossy(&unknown.stderr)
            .contains("pods \"odd\" is forbidden: no PriorityClass with name nope was found"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
    default.apply_yaml("create", "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: normal}\nvalue: 100\nglobalDefault: true\n");
    default.apply_yaml("create", &pod("defaulted", ""));
    assert_eq!(
        default.ok(&[
            "get",
            "pod",
            "defaulted",
            "-o",
            "jsonpath={.spec.priorityClassName} {.spec.priority}"
        ]),
        "normal 100"
    );
    let second = default.with_stdin(&["create", "-f", "-"], "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: other}\nvalue: 5\nglobalDefault: true\n");
    assert!(
        String::from_utf8_lossy(&second.stderr).contains(
            "PriorityClass normal is already marked as default. Only one default can exist"
        ),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let contradicting = default.with_stdin(&["create", "-f", "-"], &pod("liar", "  priority: 7\n"));
    assert!(
        String::from_utf8_lossy(&contradicting.stderr).contains("the integer value of priority (7) must not be provided in pod spec; priority admission controller computed 100 from the given PriorityClass name"),
        "{}",
        String::from_utf8_lossy(&contradicting.stderr)
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let ferry = Ferry::start_in(dir.path(), &["--enable-admission-plugins=NodeRestriction"]);
    ferry.ok(&["create", "configmap", "c", "-n", "nowhere"]);
    // Upstream's --disable-admission-plugins takes plugins out of the defaults.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let without = Ferry::start_in(
        dir2.path(),
        &["--disable-admission-plugins=NamespaceLifecycle,ServiceAccount"],
    );
    without.ok(&["create", "configmap", "c", "-n", "nowhere"]);
    without.apply_yaml("create", &pod("bare", ""));
    assert_eq!(
        without.ok(&["get", "pod", "bare", "-o", "jsonpath={.spec.volumes}"]),
        ""
    );

    let bad = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "server",
            "--disable-agent",
            "--https-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(bad.path())
        .arg("--enable-admission-plugins=AlwaysPullImages")
        .output()
        .expect("run ferry server");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown admission plugin \"AlwaysPullImages\""),
        "{stderr}"
    );
}

/// LimitRanger fills a namespace's container defaults and bounds what pods ask for; a
/// ResourceQuota counted by the quota controller refuses the write that would exceed it with
/// upstream's message, `kubectl describe quota` shows the count, and deleting gives it back.
#[test]
fn limit_ranges_default_and_quotas_refuse() {
    let ferry = Ferry::start();
    ferry.ok(&["create", "namespace", "team"]);
    let stderr = |out: Output| String::from_utf8_lossy(&out.stderr).to_string();
    let pod = |name: &str, resources: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: team}}\nspec:\n  containers: [{{name: c, image: busybox{resources}}}]\n")
    };
    ferry.apply_yaml(
        "create",
        "apiVersion: v1\nkind: LimitRange\nmetadata: {name: limits, namespace: team}\nspec:\n  limits:\n  - type: Container\n    default: {cpu: 500m, memory: 128Mi}\n    defaultRequest: {cpu: 100m}\n    max: {cpu: '1'}\n",
    );
    // The LimitRange's own defaults: defaultRequest from default where unset.
    assert_eq!(
        ferry.ok(&[
            "get",
            "limitrange",
            "limits",
            "-n",
            "team",
            "-o",
            "jsonpath={.spec.limits[0].defaultRequest}"
        ]),
        r#"{"cpu":"100m","memory":"128Mi"}"#
    );
    ferry.apply_yaml("create", &pod("bare", ""));
    assert_eq!(
        ferry.ok(&["get", "pod", "bare", "-n", "team", "-o", "jsonpath={.spec.containers[0].resources.requests.cpu} {.spec.containers[0].resources.limits.cpu} {.spec.containers[0].resources.limits.memory} {.status.qosClass}"]),
        "100m 500m 128Mi Burstable"
    );
    assert_eq!(
        ferry.ok(&["get", "pod", "bare", "-n", "team", "-o", "jsonpath={.metadata.annotations.kubernetes\\.io/limit-ranger}"]),
        "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c"
    );
    let greedy = stderr(ferry.with_stdin(
        &["create", "-f", "-"],
        &pod("greedy", ", resources: {limits: {cpu: '2'}}"),
    ));
    assert!(
        greedy.contains(
            "pods \"greedy\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
        ),
        "{greedy}"
    );

    ferry.apply_yaml(
        "create",
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: quota, namespace: team}\nspec:\n  hard: {pods: '2', requests.cpu: '1', count/configmaps: '2'}\n",
    );
    let used = |field: &str| {
        ferry.ok(&[
            "get",
            "quota",
            "quota",
            "-n",
            "team",
            "-o",
            &format!("jsonpath={{.status.used.{field}}}"),
        ])
    };
    // Counted by the controller: the pod already there, the root CA ConfigMap.
    assert!(
        eventually(Duration::from_secs(10), || used("pods") == "1"),
        "{}",
        ferry.ok(&["get", "quota", "quota", "-n", "team", "-o", "yaml"])
    );
    assert_eq!(used("requests\\.cpu"), "100m");
    ferry.apply_yaml("create", &pod("second", ""));
    assert_eq!(used("pods"), "2", "charged by admission at once");
    assert_eq!(used("requests\\.cpu"), "200m");
    let third = stderr(ferry.with_stdin(&["create", "-f", "-"], &pod("third", "")));
    assert!(
        third.contains("pods \"third\" is forbidden: exceeded quota: quota, requested: pods=1, used: pods=2, limited: pods=2"),
        "{third}"
    );
    let described = ferry.ok(&["describe", "quota", "quota", "-n", "team"]);
    assert!(
        described
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["pods", "2", "2"]),
        "{described}"
    );
    ferry.ok(&["delete", "pod", "second", "-n", "team", "--wait=false"]);
    assert!(
        eventually(Duration::from_secs(10), || used("pods") == "1"),
        "given back when the pod went"
    );
    // A dry run checks without charging.
    ferry.ok(&[
        "run",
        "dry",
        "-n",
        "team",
        "--image=busybox",
        "--dry-run=server",
    ]);
    assert_eq!(used("pods"), "1");
    ferry.apply_yaml("create", &pod("third", ""));
    assert_eq!(used("pods"), "2");

    // Object counts: kube-root-ca.crt is one of the two ConfigMaps allowed.
    assert!(eventually(Duration::from_secs(10), || used(
        "count/configmaps"
    ) == "1"));
    ferry.ok(&["create", "configmap", "one", "-n", "team"]);
    let two = stderr(ferry.kubectl(&["create", "configmap", "two", "-n", "team"]));
    assert!(
        two.contains("configmaps \"two\" is forbidden: exceeded quota: quota, requested: count/configmaps=1, used: count/configmaps=2, limited: count/configmaps=2"),
        "{two}"
    );
    ferry.ok(&["delete", "configmap", "one", "-n", "team"]);
    assert!(eventually(Duration::from_secs(10), || used(
        "count/configmaps"
    ) == "1"));
    ferry.ok(&["create", "configmap", "two", "-n", "team"]);

    // A quota on cpu needs every container to say how much it requests.
    ferry.ok(&["delete", "limitrange", "limits", "-n", "team"]);
    ferry.ok(&["delete", "pod", "third", "-n", "team", "--wait=false"]);
    assert!(eventually(Duration::from_secs(10), || used("pods") == "1"));
    let unrequested = stderr(ferry.with_stdin(&["create", "-f", "-"], &pod("loose", "")));
    assert!(
        unrequested.contains(
            "pods \"loose\" is forbidden: failed quota: quota: must specify requests.cpu for: c"
        ),
        "{unrequested}"
    );
    let invalid = stderr(ferry.with_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: bad, namespace: team}\nspec:\n  hard: {pods: '-1'}\n",
    ));
    assert!(
        invalid
            .contains("spec.hard[pods]: Invalid value: \"-1\": must be greater than or equal to 0"),
        "{invalid}"
    );
}

#[test]
fn pod_security_levels_refuse_and_warn() {
    let ferry = Ferry::start();
    let stderr = |out: Output| String::from_utf8_lossy(&out.stderr).to_string();
    let pod = |name: &str, ns: &str, extra: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{extra}  containers: [{{name: c, image: busybox}}]\n")
    };

    // A namespace held to restricted refuses a pod that does not say it runs as non-root…
    ferry.ok(&["create", "namespace", "locked"]);
    ferry.ok(&[
        "label",
        "namespace",
        "locked",
        "pod-security.kubernetes.io/enforce=restricted",
    ]);
    let refused = stderr(ferry.with_stdin(&["create", "-f", "-"], &pod("plain", "locked", "")));
    assert!(
        refused.contains(concat!(
            "pods \"plain\" is forbidden: violates PodSecurity \"restricted:latest\": ",
            "allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), ",
            "unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), ",
            "runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), ",
            "seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        )),
        "{refused}"
    );
    assert!(ferry
        .kubectl(&["get", "pod", "plain", "-n", "locked"])
        .stderr
        .starts_with(b"Error from server (NotFound)"));
    // … and admits one that does.
    ferry.apply_yaml(
        "create",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: careful, namespace: locked}\nspec:\n  securityContext: {runAsNonRoot: true, runAsUser: 1000, seccompProfile: {type: RuntimeDefault}}\n  containers:\n  - name: c\n    image: busybox\n    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}\n",
    );

    // warn: admitted, with the would-be violations as kubectl warnings, for workloads too.
    ferry.ok(&["create", "namespace", "watched"]);
    ferry.ok(&[
        "label",
        "namespace",
        "watched",
        "pod-security.kubernetes.io/warn=baseline",
        "pod-security.kubernetes.io/warn-version=v1.32",
    ]);
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: host, namespace: watched}\nspec:\n  selector: {matchLabels: {app: host}}\n  template:\n    metadata: {labels: {app: host}}\n    spec:\n      hostNetwork: true\n      containers: [{name: c, image: busybox, securityContext: {privileged: true}}]\n";
    let warned = ferry.with_stdin(&["create", "-f", "-"], deployment);
    assert!(warned.status.success(), "{}", stderr(warned.clone()));
    let warned = stderr(warned);
    assert!(
        warned.contains("Warning: would violate PodSecurity \"baseline:v1.32\": host namespaces (hostNetwork=true), privileged (container \"c\" must not set securityContext.privileged=true)"),
        "{warned}"
    );

    // Labels must name a level and a version.
    let bogus = ferry.fails(&[
        "label",
        "namespace",
        "watched",
        "pod-security.kubernetes.io/enforce=bogus",
    ]);
    assert!(
        bogus.contains("metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"bogus\": must be one of privileged, baseline, restricted"),
        "{bogus}"
    );

    // Raising enforce where pods already break it warns about them, and does not evict them.
    ferry.ok(&["create", "namespace", "busy"]);
    ferry.apply_yaml("create", &pod("root", "busy", "  hostPID: true\n"));
    ferry.apply_yaml("create", &pod("other", "busy", "  hostPID: true\n"));
    let raised = ferry.kubectl(&[
        "label",
        "namespace",
        "busy",
        "pod-security.kubernetes.io/enforce=baseline",
    ]);
    assert!(raised.status.success(), "{}", stderr(raised.clone()));
    let raised = stderr(raised);
    assert!(
        raised.contains("Warning: existing pods in namespace \"busy\" violate the new PodSecurity enforce level \"baseline:latest\"")
            && raised.contains("Warning: other (and 1 other pod): host namespaces"),
        "{raised}"
    );
    ferry.ok(&["get", "pod", "root", "-n", "busy"]);

    // --admission-control-config-file: cluster-wide defaults and exempt namespaces.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("admission.yaml");
    std::fs::write(
        &config,
        "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n- name: PodSecurity\n  configuration:\n    apiVersion: pod-security.admission.config.k8s.io/v1\n    kind: PodSecurityConfiguration\n    defaults: {enforce: baseline}\n    exemptions: {namespaces: [tools]}\n",
    )
    .expect("write config");
    let data = dir.path().join("data");
    let configured = Ferry::start_in(
        &data,
        &[&format!(
            "--admission-control-config-file={}",
            config.display()
        )],
    );
    let refused = stderr(configured.with_stdin(
        &["create", "-f", "-"],
        &pod("root", "default", "  hostPID: true\n"),
    ));
    assert!(
        refused.contains("pods \"root\" is forbidden: violates PodSecurity \"baseline:latest\": host namespaces (hostPID=true)"),
        "{refused}"
    );
    configured.ok(&["create", "namespace", "tools"]);
    configured.apply_yaml("create", &pod("root", "tools", "  hostPID: true\n"));
    // A label still overrides the default.
    configured.ok(&["create", "namespace", "open"]);
    configured.ok(&[
        "label",
        "namespace",
        "open",
        "pod-security.kubernetes.io/enforce=privileged",
    ]);
    configured.apply_yaml("create", &pod("root", "open", "  hostPID: true\n"));
}

fn conversion_crd(client_config: &Value) -> String {
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "crontabs.conv.example.com"},
    "spec": {"group": "conv.example.com", "scope": "Namespaced",
        "names": {"plural": "crontabs", "kind": "CronTab"},
        "conversion": {"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"], "clientConfig": client_config}},
        "versions": [
            {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object",
                "properties": {"spec": {"type": "object", "properties": {"cronSpec": {"type": "string"}}}}}}},
            {"name": "v2", "served": true, "storage": false, "schema": {"openAPIV3Schema": {"type": "object",
                "properties": {"spec": {"type": "object", "properties": {"schedule": {"type": "string"}}}}}}},
        ]}});
    serde_json::to_string(&crd).expect("json")
}

#[test]
fn conversion_webhooks_convert_between_versions() {
    let server = WebhookServer::start();
    let ferry = Ferry::start();
    ferry.apply_yaml("apply", &conversion_crd(&server.client_config("/convert")));
    ferry.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/crontabs.conv.example.com",
        "--timeout=20s",
    ]);
    ferry.apply_yaml(
        "create",
        "apiVersion: conv.example.com/v1\nkind: CronTab\nmetadata: {name: old, labels: {made: v1}}\nspec: {cronSpec: '0 * * * *'}\n",
    );
    ferry.apply_yaml(
        "create",
        "apiVersion: conv.example.com/v2\nkind: CronTab\nmetadata: {name: new}\nspec: {schedule: '5 * * * *'}\n",
    );
    // Each version sees both objects in its own shape; they are stored in v1.
    assert_eq!(
        ferry.ok(&[
            "get",
            "crontabs.v2.conv.example.com",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.spec.schedule} {end}"
        ]),
        "new=5 * * * * old=0 * * * * "
    );
    assert_eq!(
        ferry.ok(&[
            "get",
            "crontabs.v1.conv.example.com/new",
            "-o",
            "jsonpath={.apiVersion} {.spec.cronSpec}"
        ]),
        "conv.example.com/v1 5 * * * *"
    );
    assert_eq!(
        ferry.ok(&[
            "get",
            "crontabs.v2.conv.example.com/old",
            "-o",
            "jsonpath={.metadata.labels.made} {.spec.schedule}"
        ]),
        "v1 0 * * * *"
    );
    // A webhook that fails: reads in the other version and writes that need it fail with its
    // message, and nothing is written.
    ferry.apply_yaml(
        "apply",
        &conversion_crd(&server.client_config("/convert-fail")),
    );
    let err = ferry.fails(&["get", "crontabs.v2.conv.example.com/old"]);
    assert!(
        err.contains(
            "conversion webhook for conv.example.com/v1, Kind=CronTab failed: no conversion today"
        ),
        "{err}"
    );
    let out = ferry.with_stdin(
        &["create", "-f", "-"],
        "apiVersion: conv.example.com/v2\nkind: CronTab\nmetadata: {name: refused}\nspec: {schedule: '1 * * * *'}\n",
    );
    assert!(!out.status.success());
    assert!(ferry
        .fails(&["get", "crontabs.v1.conv.example.com/refused"])
        .contains("NotFound"));
    // The storage version still reads without the webhook.
    assert_eq!(
        ferry.ok(&[
            "get",
            "crontabs.v1.conv.example.com/old",
            "-o",
            "jsonpath={.spec.cronSpec}"
        ]),
        "0 * * * *"
    );
}

/// MutatingAdmissionPolicies (alpha: served with `--runtime-config`): an apply configuration
/// and a JSON patch with params mutate a Deployment as kubectl creates it, a mutation that
/// fails refuses the write under `failurePolicy: Fail` and not under `Ignore`, and without the
/// flag the API is not there.
#[test]
fn mutating_admission_policies_patch_in_cel() {
    let names = |ferry: &Ferry| {
        ferry.ok(&[
            "api-resources",
            "--api-group=admissionregistration.k8s.io",
            "-o",
            "name",
        ])
    };
    let plain = Ferry::start();
    assert!(!names(&plain).contains("mutatingadmissionpolicies"));
    drop(plain);

    let tmp = tempfile::tempdir().expect("tempdir");
    let ferry = Ferry::start_in(
        tmp.path(),
        &["--runtime-config=admissionregistration.k8s.io/v1alpha1=true"],
    );
    let served = names(&ferry);
    assert!(
        served.contains("mutatingadmissionpolicies.admissionregistration.k8s.io")
            && served.contains("mutatingadmissionpolicybindings.admissionregistration.k8s.io"),
        "{served}"
    );
    assert!(ferry
        .ok(&["api-versions"])
        .contains("admissionregistration.k8s.io/v1alpha1"));
    let stderr = |out: Output| String::from_utf8_lossy(&out.stderr).to_string();
    let policy = |name: &str, extra: Value| {
        let mut policy = json!({"apiVersion": "admissionregistration.k8s.io/v1alpha1",
            "kind": "MutatingAdmissionPolicy", "metadata": {"name": name},
            "spec": {"reinvocationPolicy": "Never",
                "matchConstraints": {"resourceRules": [{"operations": ["CREATE"], "apiGroups": ["apps"],
                    "apiVersions": ["v1"], "resources": ["deployments"]}]}}});
        for (field, value) in extra.as_object().expect("fields") {
            policy["spec"][field] = value.clone();
        }
        policy.to_string()
    };
    let binding = |name: &str, policy: &str, param_ref: Value| {
        json!({"apiVersion": "admissionregistration.k8s.io/v1alpha1",
            "kind": "MutatingAdmissionPolicyBinding", "metadata": {"name": name},
            "spec": {"policyName": policy, "paramRef": param_ref}})
        .to_string()
    };

    // A policy may not match deletes.
    let mut deleting: Value = serde_json::from_str(&policy(
        "deleting.example.com",
        json!({"mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": "[]"}}]}),
    ))
    .expect("json");
    deleting["spec"]["matchConstraints"]["resourceRules"][0]["operations"] = json!(["DELETE"]);
    let refused = stderr(ferry.with_stdin(&["create", "-f", "-"], &deleting.to_string()));
    assert!(
        refused.contains(
            "spec.matchConstraints.resourceRules.operations: Unsupported value: \"DELETE\""
        ),
        "{refused}"
    );

    // An apply configuration labels every new Deployment and adds a sidecar to its pods.
    ferry.apply_yaml("create", &policy("add-sidecar.example.com", json!({"mutations": [{
        "patchType": "ApplyConfiguration",
        "applyConfiguration": {"expression": "Object{metadata: Object.metadata{labels: {'env': 'prod'}}, spec: Object.spec{template: Object.spec.template{spec: Object.spec.template.spec{containers: [Object.spec.template.spec.containers{name: 'sidecar', image: 'busybox'}]}}}}"}}]})));
    ferry.apply_yaml(
        "create",
        &binding(
            "add-sidecar-binding",
            "add-sidecar.example.com",
            Value::Null,
        ),
    );
    // A JSON patch sets the replicas a ConfigMap gives, where the request asked for one.
    ferry.ok(&["create", "configmap", "replicas", "--from-literal=count=3"]);
    ferry.apply_yaml("create", &policy("set-replicas.example.com", json!({
        "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
        "matchConditions": [{"name": "one-replica", "expression": "object.spec.replicas == 1"}],
        "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression":
            "[JSONPatch{op: 'replace', path: '/spec/replicas', value: int(params.data.count)}, JSONPatch{op: 'add', path: '/metadata/labels/' + jsonpatch.escapeKey('example.com/patched'), value: 'yes'}]"}}]})));
    ferry.apply_yaml(
        "create",
        &binding(
            "set-replicas-binding",
            "set-replicas.example.com",
            json!({"name": "replicas", "namespace": "default", "parameterNotFoundAction": "Deny"}),
        ),
    );

    let deployment = |name: &str, replicas: u32| {
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers: [{{name: c, image: busybox}}]\n")
    };
    let replicas_of = |yaml: &str| {
        let out = ferry.with_stdin(
            &[
                "create",
                "--dry-run=server",
                "-f",
                "-",
                "-o",
                "jsonpath={.spec.replicas}",
            ],
            yaml,
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(
        eventually(Duration::from_secs(10), || replicas_of(&deployment(
            "web", 1
        )) == "3"),
        "the policies take effect"
    );
    ferry.apply_yaml("create", &deployment("web", 1));
    let field = |name: &str, path: &str| {
        ferry.ok(&["get", "deployment", name, "-o", &format!("jsonpath={path}")])
    };
    assert_eq!(field("web", "{.spec.replicas}"), "3");
    assert_eq!(field("web", "{.metadata.labels.env}"), "prod");
    assert_eq!(
        field("web", "{.metadata.labels.example\\.com/patched}"),
        "yes"
    );
    assert_eq!(
        field("web", "{.spec.template.spec.containers[*].name}"),
        "c sidecar"
    );
    // The container the policy added is defaulted as the request's own.
    assert_eq!(
        field(
            "web",
            "{.spec.template.spec.containers[1].imagePullPolicy} {.spec.template.spec.containers[1].terminationMessagePath}"
        ),
        "Always /dev/termination-log"
    );
    // Its match condition leaves a Deployment of two replicas alone.
    ferry.apply_yaml("create", &deployment("pair", 2));
    assert_eq!(field("pair", "{.spec.replicas}"), "2");
    assert_eq!(field("pair", "{.metadata.labels.env}"), "prod");

    let table = ferry.ok(&["get", "mutatingadmissionpolicies"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table
            .lines()
            .next()
            .is_some_and(|h| h.contains("MUTATIONS") && h.contains("PARAMKIND")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("set-replicas.example.com") && l.contains("v1/ConfigMap")),
        "{table}"
    );

    // A mutation that fails refuses the write under failurePolicy Fail (the default)…
    ferry.apply_yaml("create", &policy("broken.example.com", json!({"mutations": [{
        "patchType": "ApplyConfiguration",
        "applyConfiguration": {"expression": "Object{spec: Object.spec{replicas: object.spec.missing}}"}}]})));
    ferry.apply_yaml(
        "create",
        &binding("broken-binding", "broken.example.com", Value::Null),
    );
    let denied =
        |name: &str| stderr(ferry.with_stdin(&["create", "-f", "-"], &deployment(name, 2)));
    assert!(
        eventually(Duration::from_secs(10), || {
            denied("refused").contains(
            "policy 'broken.example.com' with binding 'broken-binding' denied request: expression 'Object{spec: Object.spec{replicas: object.spec.missing}}' resulted in error"
        )
        }),
        "{}",
        denied("refused")
    );
    // …and is passed over under Ignore.
    ferry.ok(&[
        "patch",
        "mutatingadmissionpolicy",
        "broken.example.com",
        "--type=merge",
        "-p",
        r#"{"spec":{"failurePolicy":"Ignore"}}"#,
    ]);
    assert!(eventually(Duration::from_secs(10), || denied("ignored").is_empty()));
    assert_eq!(field("ignored", "{.metadata.labels.env}"), "prod");
}

/// The CEL `authorizer` of admission policies asks the server's authorizer (RBAC) as the
/// request's user, for any resource or for the request's own (`requestResource`).
#[test]
fn policies_ask_the_authorizer() {
    let ferry = Ferry::start();
    let stderr = |out: Output| String::from_utf8_lossy(&out.stderr).to_string();
    ferry.ok(&[
        "create",
        "rolebinding",
        "jane-edit",
        "--clusterrole=edit",
        "--user=jane",
    ]);
    ferry.apply_yaml(
        "create",
        &json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": "admins-only.example.com"},
            "spec": {"matchConstraints": {"resourceRules": [{"operations": ["CREATE"], "apiGroups": [""],
                    "apiVersions": ["v1"], "resources": ["configmaps"]}]},
                "validations": [
                    {"expression": "!has(object.metadata.labels) || !('tier' in object.metadata.labels) || authorizer.group('rbac.authorization.k8s.io').resource('rolebindings').namespace(object.metadata.namespace).check('create').allowed()",
                     "message": "only namespace admins may label a ConfigMap with a tier"},
                    {"expression": "authorizer.requestResource.check('delete').allowed()",
                     "messageExpression": "'you could not delete it: ' + authorizer.requestResource.check('delete').reason()"}]}})
        .to_string(),
    );
    ferry.apply_yaml(
        "create",
        &json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": "admins-only-binding"},
            "spec": {"policyName": "admins-only.example.com", "validationActions": ["Deny"]}})
        .to_string(),
    );
    let configmap = |name: &str, labels: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: default, labels: {{{labels}}}}}\n")
    };
    let as_jane = |yaml: &str| ferry.with_stdin(&["create", "--as=jane", "-f", "-"], yaml);
    // Jane may edit but not bind roles: her tiered ConfigMap is refused, a plain one is not.
    assert!(eventually(Duration::from_secs(10), || stderr(as_jane(
        &configmap("tiered", "tier: gold")
    ))
    .contains(
        "only namespace admins may label a ConfigMap with a tier"
    )));
    let plain = as_jane(&configmap("plain", "app: web"));
    assert!(plain.status.success(), "{}", stderr(plain));
    // The cluster admin may do both.
    ferry.apply_yaml("create", &configmap("tiered", "tier: gold"));
    // A user allowed to create but not delete ConfigMaps fails the second validation (RBAC
    // gives no reason for what it does not allow, as upstream's).
    ferry.ok(&[
        "create",
        "role",
        "cm-creator",
        "--verb=create",
        "--resource=configmaps",
    ]);
    ferry.ok(&[
        "create",
        "rolebinding",
        "bob-creator",
        "--role=cm-creator",
        "--user=bob",
    ]);
    let bob = stderr(ferry.with_stdin(
        &["create", "--as=bob", "-f", "-"],
        &configmap("bobs", "app: web"),
    ));
    assert!(
        bob.contains("denied request: you could not delete it:"),
        "{bob}"
    );
}
