//! Services (`pkg/registry/core/service`): defaults, a cluster IP and node ports allocated on
//! create (see [`allocator`]) and released when the service goes, and updates that keep what was
//! allocated.

pub mod allocator;

use async_trait::async_trait;
use ferry_api::registry::ResourceInfo;
use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::registry::generic::default;
use crate::registry::{NameRule, Strategy};
use crate::status::{ApiError, Target};
use crate::storage::Storage;

/// The Service strategy.
pub struct ServiceStrategy;

#[async_trait]
impl Strategy for ServiceStrategy {
    fn name_rule(&self) -> NameRule {
        NameRule::Label
    }

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&UserInfo>) {
        if let Some(spec) = object.get_mut("spec") {
            default(spec, "type", json!("ClusterIP"));
            default(spec, "sessionAffinity", json!("None"));
            default(spec, "internalTrafficPolicy", json!("Cluster"));
            if let Some(Value::Array(ports)) = spec.get_mut("ports") {
                for p in ports {
                    default(p, "protocol", json!("TCP"));
                    if let Some(port) = p.get("port").cloned() {
                        default(p, "targetPort", port);
                    }
                }
            }
        }
        object["status"] = json!({"loadBalancer": {}});
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        allocator::carry_over(new, old);
    }

    async fn begin_create(
        &self,
        storage: &Storage,
        info: &ResourceInfo,
        key: &[u8],
        object: &mut Value,
    ) -> Result<(), ApiError> {
        // Existing names are refused first, so nothing is allocated for them.
        if storage.store.get(key).await?.is_some() {
            let name = crate::object::meta_str(object, "name").unwrap_or("");
            return Err(ApiError::already_exists(Target::of(info, name)));
        }
        allocator::allocate(storage, object).await
    }

    async fn release(&self, storage: &Storage, object: &Value) {
        allocator::release(storage, object).await;
    }
}

#[cfg(test)]
mod tests {
    use crate::registry::generic::{prepare_for_create, tests::resource, validate};
    use serde_json::json;

    #[test]
    fn services_are_defaulted_as_upstream() {
        let services = resource("", "v1", "services");
        let mut svc = json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
        prepare_for_create(services, &mut svc, None);
        assert_eq!(svc.pointer("/spec/type"), Some(&json!("ClusterIP")));
        assert_eq!(svc.pointer("/spec/ports/0/protocol"), Some(&json!("TCP")));
        assert_eq!(svc.pointer("/spec/ports/0/targetPort"), Some(&json!(80)));
        assert_eq!(svc.pointer("/status"), Some(&json!({"loadBalancer": {}})));
        // Service names are DNS labels.
        svc["metadata"]["name"] = json!("a.b");
        assert!(validate(services, &svc, None).is_err());
    }
}
