//! Services (`pkg/registry/core/service`), as upstream serves them on a single-stack IPv4
//! cluster. A write goes:
//!
//! 1. [`defaults`]: `SetDefaults_Service`, and on updates what was allocated kept and what only
//!    the old type used dropped;
//! 2. [`ip_families`]: the IP family policy and families (`PreferDualStack` served as one IPv4
//!    address; `RequireDualStack` and IPv6 refused);
//! 3. [`validation`]: `ValidateService` / `ValidateServiceUpdate`;
//! 4. [`allocator`]: the cluster IP and node ports reserved in the store, given back when the
//!    write fails, the service goes, or an update no longer needs them.
//!
//! Upstream allocates before it validates; here validation comes first, so a refused request
//! reserves nothing.

pub mod allocator;
mod defaults;
mod ip_families;
mod validation;

use async_trait::async_trait;
use ferry_api::registry::ResourceInfo;
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::object::meta_str;
use crate::registry::{NameRule, Reservations, Strategy};
use crate::status::{ApiError, FieldError, Target};
use crate::storage::Storage;

const CLUSTER_IP: &str = "ClusterIP";
const NODE_PORT: &str = "NodePort";
const LOAD_BALANCER: &str = "LoadBalancer";
const EXTERNAL_NAME: &str = "ExternalName";

/// `spec.type` ("" when unset).
fn service_type(spec: &ServiceSpec) -> &str {
    spec.type_.as_deref().unwrap_or("")
}

/// A string field that is there and not empty (Go's non-zero string).
fn is_set(value: &Option<String>) -> bool {
    value.as_deref().is_some_and(|v| !v.is_empty())
}

/// `spec.clusterIPs`.
fn cluster_ips(spec: &ServiceSpec) -> &[String] {
    spec.cluster_ips.as_deref().unwrap_or_default()
}

/// `isHeadlessService`: `clusterIPs` is `["None"]`.
fn is_headless(spec: &ServiceSpec) -> bool {
    cluster_ips(spec) == ["None"]
}

/// A headless service without a selector: its endpoints are whatever its owner writes, of
/// either family.
fn is_headless_without_selector(spec: &ServiceSpec) -> bool {
    spec.cluster_ip.as_deref() == Some("None")
        && spec.selector.as_ref().is_none_or(|s| s.is_empty())
}

/// The object's spec, typed (an empty one if it has none); `None` if it is not a ServiceSpec,
/// which decoding refuses later.
fn spec_of(object: &Value) -> Option<ServiceSpec> {
    match object.get("spec") {
        None | Some(Value::Null) => Some(ServiceSpec::default()),
        Some(spec) => serde_json::from_value(spec.clone()).ok(),
    }
}

fn set_spec(object: &mut Value, spec: &ServiceSpec) {
    if let (Some(map), Ok(spec)) = (object.as_object_mut(), serde_json::to_value(spec)) {
        map.insert("spec".into(), spec);
    }
}

/// The IP families first, whose errors come alone (upstream refuses before it validates), then
/// the rest.
fn validate_service(new: &Value, old: Option<&Value>, errors: &mut Vec<FieldError>) {
    let typed = |object: &Value| serde_json::from_value::<Service>(object.clone()).ok();
    let Some(new) = typed(new) else { return };
    let old = old.and_then(typed);
    let mut spec = new.spec.clone().unwrap_or_default();
    let refused = ip_families::init(&mut spec, old.as_ref().and_then(|o| o.spec.as_ref()));
    if !refused.is_empty() {
        errors.extend(refused);
        return;
    }
    validation::validate(&new, old.as_ref(), errors);
}

/// The Service strategy.
pub struct ServiceStrategy;

#[async_trait]
impl Strategy for ServiceStrategy {
    fn name_rule(&self) -> NameRule {
        NameRule::Dns1035Label
    }

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&UserInfo>) {
        if let Some(mut spec) = spec_of(object) {
            defaults::set_defaults(&mut spec);
            defaults::normalize_cluster_ips(&mut spec, None);
            // Refusals are validation's to report.
            let _ = ip_families::init(&mut spec, None);
            set_spec(object, &spec);
        }
        if let Some(map) = object.as_object_mut() {
            map.insert("status".into(), json!({"loadBalancer": {}}));
        }
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        let (Some(mut spec), Some(old_spec)) = (spec_of(new), spec_of(old)) else {
            return;
        };
        defaults::set_defaults(&mut spec);
        defaults::patch_allocated_values(&mut spec, &old_spec);
        defaults::normalize_cluster_ips(&mut spec, Some(&old_spec));
        let _ = ip_families::init(&mut spec, Some(&old_spec));
        defaults::drop_type_dependent_fields(&mut spec, &old_spec);
        // A load balancer's status goes with the type (a status update keeps the type).
        if service_type(&old_spec) == LOAD_BALANCER && service_type(&spec) != LOAD_BALANCER {
            if let Some(map) = new.as_object_mut() {
                map.insert("status".into(), json!({"loadBalancer": {}}));
            }
        }
        set_spec(new, &spec);
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        validate_service(object, None, errors);
    }

    fn validate_update(&self, new: &Value, old: &Value, errors: &mut Vec<FieldError>) {
        validate_service(new, Some(old), errors);
    }

    async fn begin_create(
        &self,
        storage: &Storage,
        info: &ResourceInfo,
        key: &[u8],
        object: &mut Value,
    ) -> Result<(), ApiError> {
        let name = meta_str(object, "name").unwrap_or("").to_string();
        // Existing names are refused first, so nothing is allocated for them.
        if storage.store.get(key).await?.is_some() {
            return Err(ApiError::already_exists(Target::of(info, &name)));
        }
        let Some(mut spec) = spec_of(object) else {
            return Ok(());
        };
        let namespace = meta_str(object, "namespace").unwrap_or("").to_string();
        allocator::allocate(storage, &namespace, &name, &mut spec).await?;
        set_spec(object, &spec);
        Ok(())
    }

    async fn begin_update(
        &self,
        storage: &Storage,
        new: &mut Value,
        old: &Value,
    ) -> Result<Reservations, ApiError> {
        let (Some(mut spec), Some(old_spec)) = (spec_of(new), spec_of(old)) else {
            return Ok(Reservations::default());
        };
        let namespace = meta_str(new, "namespace").unwrap_or("").to_string();
        let name = meta_str(new, "name").unwrap_or("").to_string();
        let reservations =
            allocator::allocate_update(storage, &namespace, &name, &mut spec, &old_spec).await?;
        set_spec(new, &spec);
        Ok(reservations)
    }

    async fn release(&self, storage: &Storage, object: &Value) {
        if let Some(spec) = spec_of(object) {
            allocator::release(storage, &spec).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ferry_store::embedded::{Config, EmbeddedStore};
    use ferry_store::{KeyRange, RangeRequest};
    use serde_json::{json, Value};

    use crate::registry::generic::{
        prepare_for_create, prepare_for_update, tests::resource, validate,
    };
    use crate::registry::Resource;
    use crate::storage::Storage;

    fn services() -> &'static Resource {
        resource("", "v1", "services")
    }

    fn svc(name: &str, spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"}, "spec": spec})
    }

    /// A create's defaulting and validation, as the REST create runs them.
    fn create(object: Value) -> Result<Value, String> {
        let mut object = object;
        prepare_for_create(services(), &mut object, None);
        validate(services(), &object, None).map_err(|e| e.message)?;
        Ok(object)
    }

    #[test]
    fn services_are_defaulted_as_upstream() {
        let created = create(svc(
            "web",
            json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}),
        ))
        .expect("valid");
        assert_eq!(
            created["spec"],
            json!({"type": "ClusterIP", "selector": {"app": "web"}, "sessionAffinity": "None",
                "internalTrafficPolicy": "Cluster", "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"],
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]})
        );
        assert_eq!(created["status"], json!({"loadBalancer": {}}));
        let lb = create(svc("lb", json!({"type": "LoadBalancer", "sessionAffinity": "ClientIP", "ports": [{"port": 443}]})))
            .expect("valid");
        assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
        assert_eq!(
            lb["spec"]["sessionAffinityConfig"],
            json!({"clientIP": {"timeoutSeconds": 10800}})
        );
        let external = create(svc(
            "db",
            json!({"type": "ExternalName", "externalName": "db.example.com"}),
        ))
        .expect("valid");
        for absent in [
            "ipFamilies",
            "ipFamilyPolicy",
            "internalTrafficPolicy",
            "clusterIPs",
        ] {
            assert_eq!(external["spec"].get(absent), None, "{absent}");
        }
        let headless = create(svc(
            "peers",
            json!({"clusterIP": "None", "ports": [{"port": 80}]}),
        ))
        .expect("valid");
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
        assert_eq!(headless["spec"]["ipFamilyPolicy"], "RequireDualStack");
        assert_eq!(headless["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
    }

    #[test]
    fn dual_stack_requests_on_a_single_stack_cluster() {
        let prefer = create(svc(
            "web",
            json!({"ipFamilyPolicy": "PreferDualStack", "ports": [{"port": 80}]}),
        ))
        .expect("served as one IPv4 address");
        assert_eq!(prefer["spec"]["ipFamilyPolicy"], "PreferDualStack");
        assert_eq!(prefer["spec"]["ipFamilies"], json!(["IPv4"]));
        let cases = [
            (json!({"ipFamilyPolicy": "RequireDualStack", "ports": [{"port": 80}]}),
                "Service \"web\" is invalid: spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services"),
            (json!({"ipFamilies": ["IPv6"], "ports": [{"port": 80}]}),
                "Service \"web\" is invalid: spec.ipFamilies[0]: Invalid value: \"IPv6\": not configured on this cluster"),
            // The families' errors come alone, as upstream refuses before validating.
            (json!({"ipFamilyPolicy": "RequireDualStack"}),
                "Service \"web\" is invalid: spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services"),
        ];
        for (spec, want) in cases {
            assert_eq!(create(svc("web", spec)).expect_err("refused"), want);
        }
    }

    #[test]
    fn names_are_dns_1035_labels_and_errors_are_listed() {
        let err = create(svc("1web", json!({"ports": [{"port": 80}]}))).expect_err("a digit first");
        assert_eq!(err, "Service \"1web\" is invalid: metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')");
        let err = create(svc("web", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}, {"port": 80, "nodePort": 30080}]})))
            .expect_err("invalid");
        assert_eq!(err, "Service \"web\" is invalid: [spec.ports[0].name: Required value, spec.ports[1].name: Required value, spec.ports[1].nodePort: Duplicate value: 30080, spec.ports[1]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}]");
    }

    #[test]
    fn updates_keep_what_was_allocated_and_the_primary_address() {
        let mut stored = create(svc(
            "web",
            json!({"type": "NodePort", "ports": [{"name": "http", "port": 80}]}),
        ))
        .expect("valid");
        stored["spec"]["clusterIP"] = json!("10.43.7.7");
        stored["spec"]["clusterIPs"] = json!(["10.43.7.7"]);
        stored["spec"]["ports"][0]["nodePort"] = json!(31000);
        // `kubectl replace` of the original manifest.
        let mut again = svc(
            "web",
            json!({"type": "NodePort", "ports": [{"name": "http", "port": 80}]}),
        );
        prepare_for_update(services(), &mut again, &stored);
        validate(services(), &again, Some(&stored)).expect("the same service");
        assert_eq!(again["spec"], stored["spec"]);
        let mut moved = stored.clone();
        moved["spec"]["clusterIP"] = json!("10.43.7.8");
        moved["spec"]["clusterIPs"] = json!(["10.43.7.8"]);
        prepare_for_update(services(), &mut moved, &stored);
        let err = validate(services(), &moved, Some(&stored)).expect_err("immutable");
        assert_eq!(err.message, "Service \"web\" is invalid: spec.clusterIPs[0]: Invalid value: []string{\"10.43.7.8\"}: may not change once set");
        // To ClusterIP: the node ports and external traffic policy go.
        let mut internal = stored.clone();
        internal["spec"]["type"] = json!("ClusterIP");
        prepare_for_update(services(), &mut internal, &stored);
        validate(services(), &internal, Some(&stored)).expect("valid");
        assert_eq!(internal["spec"]["ports"][0].get("nodePort"), None);
        assert_eq!(internal["spec"].get("externalTrafficPolicy"), None);
    }

    async fn storage() -> (Storage, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::new(dir.path());
        config.auto_compaction = None;
        let store = Arc::new(EmbeddedStore::open(config).await.expect("open"));
        (Storage::new(store), dir)
    }

    /// The reservation keys in the store.
    async fn reserved(storage: &Storage) -> Vec<String> {
        let kvs = storage
            .store
            .range(RangeRequest::new(KeyRange::prefix("/ranges/")))
            .await
            .expect("range")
            .kvs;
        kvs.iter()
            .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
            .collect()
    }

    async fn allocate(storage: &Storage, object: &mut Value) -> Result<(), String> {
        let strategy = &services().strategy;
        let key = format!(
            "/services/default/{}",
            object["metadata"]["name"].as_str().unwrap_or("")
        );
        strategy
            .begin_create(storage, services().info, key.as_bytes(), object)
            .await
            .map_err(|e| e.message)
    }

    #[tokio::test]
    async fn node_ports_are_shared_by_number_and_refusals_keep_nothing() {
        let (storage, _dir) = storage().await;
        let mut dns = create(svc("dns", json!({"type": "NodePort", "clusterIP": "10.43.0.10", "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
            {"name": "metrics", "port": 9153, "nodePort": 30053}]}))).expect("valid");
        allocate(&storage, &mut dns).await.expect("allocated");
        let node_ports: Vec<i64> = (0..3)
            .filter_map(|i| dns["spec"]["ports"][i]["nodePort"].as_i64())
            .collect();
        assert_eq!(node_ports.len(), 3);
        assert_eq!(
            node_ports[0], node_ports[1],
            "one node port per port number"
        );
        assert_eq!(node_ports[2], 30053);
        assert!(
            (30086..=32767).contains(&node_ports[0]),
            "picked from the upper part"
        );
        assert_eq!(dns["spec"]["clusterIPs"], json!(["10.43.0.10"]));
        let held = reserved(&storage).await;
        assert_eq!(held.len(), 3, "{held:?}");

        // Taken address, taken port, ports out of range: refused, nothing more reserved.
        let cases = [
            (json!({"clusterIP": "10.43.0.10", "ports": [{"port": 80}]}),
                "Service \"other\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.43.0.10\"}: failed to allocate IP 10.43.0.10: provided IP is already allocated"),
            (json!({"clusterIP": "10.0.0.10", "ports": [{"port": 80}]}),
                "Service \"other\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.0.0.10\"}: failed to allocate IP 10.0.0.10: the provided network does not match the current range"),
            (json!({"type": "NodePort", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 30053}]}),
                "Service \"other\" is invalid: spec.ports[1].nodePort: Invalid value: 30053: provided port is already allocated"),
            (json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}),
                "Service \"other\" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"),
        ];
        for (spec, want) in cases {
            let mut other = create(svc("other", spec)).expect("valid");
            assert_eq!(
                allocate(&storage, &mut other).await.expect_err("refused"),
                want
            );
            assert_eq!(reserved(&storage).await, held, "{want}");
        }

        services().strategy.release(&storage, &dns).await;
        assert!(reserved(&storage).await.is_empty());
    }

    #[tokio::test]
    async fn type_changes_take_and_give_up_reservations() {
        let (storage, _dir) = storage().await;
        let mut web = create(svc(
            "web",
            json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}),
        ))
        .expect("valid");
        allocate(&storage, &mut web).await.expect("allocated");
        let ip = web["spec"]["clusterIP"]
            .as_str()
            .expect("an address")
            .to_string();
        assert_eq!(
            reserved(&storage).await,
            [format!("/ranges/serviceips/{ip}")]
        );

        let strategy = &services().strategy;
        let update = |old: &Value, change: &dyn Fn(&mut Value)| {
            let mut new = old.clone();
            change(&mut new);
            prepare_for_update(services(), &mut new, old);
            validate(services(), &new, Some(old)).expect("valid update");
            new
        };

        // ClusterIP → LoadBalancer with a local policy: node port and health check port.
        let mut lb = update(&web, &|s| {
            s["spec"]["type"] = json!("LoadBalancer");
            s["spec"]["externalTrafficPolicy"] = json!("Local");
        });
        let taken = strategy
            .begin_update(&storage, &mut lb, &web)
            .await
            .expect("allocated");
        assert_eq!(taken.taken.len(), 2);
        taken.commit(&storage).await;
        assert!(lb["spec"]["ports"][0]["nodePort"].is_i64());
        assert!(lb["spec"]["healthCheckNodePort"].is_i64());
        assert_eq!(lb["spec"]["clusterIP"], json!(ip));
        assert_eq!(reserved(&storage).await.len(), 3);

        // A write that fails gives back what it took.
        let mut more = update(&lb, &|s| {
            s["spec"]["ports"] = json!([{"name": "a", "port": 80}, {"name": "b", "port": 81}]);
        });
        strategy
            .begin_update(&storage, &mut more, &lb)
            .await
            .expect("allocated")
            .revert(&storage)
            .await;
        assert_eq!(reserved(&storage).await.len(), 3);

        // → ExternalName: everything goes once written.
        let mut external = update(&lb, &|s| {
            s["spec"]["type"] = json!("ExternalName");
            s["spec"]["externalName"] = json!("db.example.com");
        });
        let given_up = strategy
            .begin_update(&storage, &mut external, &lb)
            .await
            .expect("allocated");
        assert_eq!(
            reserved(&storage).await.len(),
            3,
            "nothing goes before the write"
        );
        given_up.commit(&storage).await;
        assert!(reserved(&storage).await.is_empty());
        assert_eq!(external["spec"].get("clusterIP"), None);

        // ← ExternalName: a new address.
        let mut back = update(&external, &|s| {
            s["spec"]["type"] = json!("ClusterIP");
            if let Some(spec) = s["spec"].as_object_mut() {
                spec.remove("externalName");
            }
        });
        strategy
            .begin_update(&storage, &mut back, &external)
            .await
            .expect("allocated")
            .commit(&storage)
            .await;
        assert!(back["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.43.")));
        assert_eq!(reserved(&storage).await.len(), 1);
    }
}
