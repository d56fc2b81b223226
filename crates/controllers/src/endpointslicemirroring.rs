//! The EndpointSlice mirroring controller (upstream's `pkg/controller/endpointslicemirroring`,
//! `endpointslicemirroring-controller.k8s.io`): a Service without a selector whose Endpoints
//! were made by hand gets the same addresses as EndpointSlices, so that everything reading
//! slices (the service proxy, DNS) sees them too.
//!
//! Each Endpoints subset (after [`repack`]) becomes one slice per address type, of at most
//! 1,000 addresses, owned by the Endpoints and labelled as they are. Endpoints labelled
//! `endpointslice.kubernetes.io/skip-mirror: "true"` (the `kubernetes` Service's, whose slice
//! the API server writes) or holding a leader-election record are not mirrored; a Service that
//! gains a selector, or loses its Endpoints, loses its mirrored slices.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ferry_client::events::{reference, EventType};
use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt as _};

use crate::endpoints::repack;
use crate::endpointslice::reconciler::{endpoint_key, port_key, EndpointKey, Plan, PortKey};
use crate::endpointslice::tracker::Tracker;
use crate::endpointslice::{managed_service, MANAGED_BY_LABEL, SERVICE_NAME_LABEL};
use crate::informer::{key_of, Key};
use crate::queue::{Queue, Reconciler};
use crate::util::{api_code, new_controller_ref};
use crate::{ApiContext as _, Context, Error};

/// The value of the managed-by label on mirrored slices.
pub const CONTROLLER_NAME: &str = "endpointslicemirroring-controller.k8s.io";
/// At most this many addresses of one subset are mirrored (`--mirroring-max-endpoints-per-subset`).
pub const MAX_ENDPOINTS_PER_SUBSET: usize = 1000;
const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";
/// Annotations of the Endpoints that are not copied to their slices.
const UNMIRRORED_ANNOTATIONS: [&str; 2] = [
    "endpoints.kubernetes.io/last-change-trigger-time",
    "kubectl.kubernetes.io/last-applied-configuration",
];

/// Why a sync did not finish.
#[derive(Debug, thiserror::Error)]
pub enum MirroringError {
    /// The slice cache has not seen this controller's last writes yet.
    #[error("EndpointSlice informer cache is out of date")]
    StaleCache,
    /// An API call failed.
    #[error(transparent)]
    Api(#[from] Error),
}

/// Whether hand-made Endpoints are mirrored (upstream's `shouldMirror`).
fn should_mirror(endpoints: &Endpoints) -> bool {
    endpoints
        .labels()
        .get(SKIP_MIRROR_LABEL)
        .map(String::as_str)
        != Some("true")
        && !endpoints.annotations().contains_key(LEADER_ANNOTATION)
}

/// One slice's worth of desired endpoints: its address type and ports.
type SliceKey = (&'static str, PortKey);

/// The desired endpoints of Endpoints, per address type and ports; and how many addresses
/// were not valid IPs, and how many were over the per-subset limit.
struct Desired {
    groups: BTreeMap<SliceKey, (Vec<EndpointPort>, BTreeMap<EndpointKey, Endpoint>)>,
    invalid: usize,
    skipped: usize,
}

fn address_to_endpoint(address: &EndpointAddress, ready: bool) -> Option<(&'static str, Endpoint)> {
    let ip: IpAddr = address.ip.parse().ok()?;
    let address_type = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
    let endpoint = Endpoint {
        addresses: vec![ip.to_string()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            ..EndpointConditions::default()
        }),
        target_ref: address.target_ref.clone(),
        node_name: address.node_name.clone(),
        hostname: address.hostname.clone().filter(|h| !h.is_empty()),
        ..Endpoint::default()
    };
    Some((address_type, endpoint))
}

fn desired(endpoints: &Endpoints) -> Desired {
    let mut desired = Desired {
        groups: BTreeMap::new(),
        invalid: 0,
        skipped: 0,
    };
    for subset in repack(endpoints.subsets.as_deref().unwrap_or_default()) {
        let ports: Vec<EndpointPort> = subset
            .ports
            .iter()
            .flatten()
            .map(|p| EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(p.port),
                protocol: p.protocol.clone(),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        let key = port_key(&ports);
        let listed = subset.addresses.iter().flatten().map(|a| (a, true)).chain(
            subset
                .not_ready_addresses
                .iter()
                .flatten()
                .map(|a| (a, false)),
        );
        let total = subset.addresses.as_ref().map_or(0, Vec::len)
            + subset.not_ready_addresses.as_ref().map_or(0, Vec::len);
        let mut added = 0;
        for (address, ready) in listed {
            if added >= MAX_ENDPOINTS_PER_SUBSET {
                break;
            }
            match address_to_endpoint(address, ready) {
                Some((address_type, endpoint)) => {
                    let (_, group) = desired
                        .groups
                        .entry((address_type, key.clone()))
                        .or_insert_with(|| (ports.clone(), BTreeMap::new()));
                    group.insert(endpoint_key(&endpoint), endpoint);
                    added += 1;
                }
                None => desired.invalid += 1,
            }
        }
        desired.skipped += total - added;
    }
    desired
}

/// A slice mirroring `endpoints` (upstream's `newEndpointSlice`): their labels and annotations
/// (but the trigger time and kubectl's last applied configuration), owned by them.
fn new_slice(
    endpoints: &Endpoints,
    ports: Vec<EndpointPort>,
    address_type: &str,
    name: Option<String>,
) -> EndpointSlice {
    let mut labels = endpoints.labels().clone();
    labels.insert(SERVICE_NAME_LABEL.into(), endpoints.name_any());
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    let annotations = mirrored_annotations(endpoints);
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: name.is_none().then(|| format!("{}-", endpoints.name_any())),
            name,
            namespace: endpoints.namespace(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![new_controller_ref(
                &endpoints.metadata,
                "v1",
                "Endpoints",
            )]),
            ..ObjectMeta::default()
        },
        address_type: address_type.into(),
        endpoints: Vec::new(),
        ports: Some(ports),
    }
}

fn mirrored_annotations(endpoints: &Endpoints) -> BTreeMap<String, String> {
    let mut annotations = endpoints.annotations().clone();
    for key in UNMIRRORED_ANNOTATIONS {
        annotations.remove(key);
    }
    annotations
}

/// Whether an existing slice already shows `wanted` endpoints, the Endpoints' labels and
/// annotations (upstream's `totalChanges` and its label and annotation checks).
fn unchanged(
    endpoints: &Endpoints,
    slice: &EndpointSlice,
    wanted: &BTreeMap<EndpointKey, Endpoint>,
) -> bool {
    let shown: BTreeMap<EndpointKey, &Endpoint> = slice
        .endpoints
        .iter()
        .map(|e| (endpoint_key(e), e))
        .collect();
    let same_endpoints = shown.len() == slice.endpoints.len()
        && shown.len() == wanted.len()
        && wanted.iter().all(|(k, want)| {
            shown.get(k).is_some_and(|have| {
                have.conditions.as_ref().and_then(|c| c.ready)
                    == want.conditions.as_ref().and_then(|c| c.ready)
                    && have.target_ref == want.target_ref
            })
        });
    let mut labels = slice.labels().clone();
    labels.remove(SERVICE_NAME_LABEL);
    labels.remove(MANAGED_BY_LABEL);
    let annotations = slice.metadata.annotations.clone().unwrap_or_default();
    same_endpoints
        && &labels == endpoints.labels()
        && annotations == mirrored_annotations(endpoints)
}

/// What to change so that `existing` mirror `endpoints` (upstream's mirroring `reconcile`).
fn reconcile(endpoints: &Endpoints, existing: &[Arc<EndpointSlice>]) -> (Plan, usize, usize) {
    let desired = desired(endpoints);
    let mut by_key: BTreeMap<SliceKey, Vec<&EndpointSlice>> = BTreeMap::new();
    let mut plan = Plan::default();
    for slice in existing {
        let address_type = match slice.address_type.as_str() {
            "IPv4" => "IPv4",
            "IPv6" => "IPv6",
            _ => {
                plan.delete.push((**slice).clone());
                continue;
            }
        };
        let key = port_key(slice.ports.as_deref().unwrap_or_default());
        by_key.entry((address_type, key)).or_default().push(slice);
    }
    for (key, (ports, wanted)) in &desired.groups {
        let slices = by_key.remove(key).unwrap_or_default();
        let (first, rest) = match slices.split_first() {
            Some((first, rest)) => (Some(*first), rest),
            None => (None, &[][..]),
        };
        plan.delete.extend(rest.iter().map(|s| (*s).clone()));
        if first.is_some_and(|s| unchanged(endpoints, s, wanted)) {
            continue;
        }
        let mut slice = new_slice(endpoints, ports.clone(), key.0, first.map(|s| s.name_any()));
        if let Some(first) = first {
            slice.metadata.resource_version = first.metadata.resource_version.clone();
            slice.metadata.uid = first.metadata.uid.clone();
        }
        slice.endpoints = wanted.values().cloned().collect();
        match first {
            Some(_) => plan.update.push(slice),
            None => plan.create.push(slice),
        }
    }
    plan.delete.extend(by_key.into_values().flatten().cloned());
    // Creates paired with deletes of the same address type become updates.
    let mut i = 0;
    while i < plan.create.len() {
        let address_type = plan.create[i].address_type.clone();
        match plan
            .delete
            .iter()
            .position(|d| d.address_type == address_type)
        {
            Some(d) => {
                let gone = plan.delete.remove(d);
                let mut slice = plan.create.remove(i);
                slice.metadata.name = gone.metadata.name.clone();
                slice.metadata.generate_name = None;
                slice.metadata.resource_version = gone.metadata.resource_version.clone();
                plan.update.push(slice);
            }
            None => i += 1,
        }
    }
    (plan, desired.invalid, desired.skipped)
}

/// The controller and its queue of Services (keyed as their Endpoints).
pub struct MirroringController {
    ctx: Arc<Context>,
    queue: Arc<Queue<Key>>,
    tracker: Tracker,
}

impl Reconciler for MirroringController {
    type Key = Key;
    type Error = MirroringError;
    const NAME: &'static str = "endpointslice-mirroring";

    fn queue(&self) -> &Arc<Queue<Key>> {
        &self.queue
    }

    async fn reconcile(self: Arc<Self>, key: Key) -> Result<Option<Duration>, MirroringError> {
        self.sync(key).await
    }
}

fn mirrored_service(slice: &EndpointSlice) -> Option<Key> {
    managed_service(slice, CONTROLLER_NAME)
}

impl MirroringController {
    /// Registers the handlers.
    pub fn new(ctx: Arc<Context>) -> Arc<MirroringController> {
        let controller = Arc::new(MirroringController {
            ctx: ctx.clone(),
            queue: Queue::new(),
            tracker: Tracker::default(),
        });
        let c = controller.clone();
        ctx.services.add_handler(move |old, new| {
            if let Some(service) = new.or(old) {
                c.queue.add(key_of(service.as_ref()));
            }
        });
        let c = controller.clone();
        ctx.endpoints.add_handler(move |old, new| {
            let mirrored = |e: Option<&Arc<Endpoints>>| e.is_some_and(|e| should_mirror(e));
            if mirrored(old) || mirrored(new) {
                if let Some(endpoints) = new.or(old) {
                    c.queue.add(key_of(endpoints.as_ref()));
                }
            }
        });
        let c = controller.clone();
        ctx.endpoint_slices.add_handler(move |old, new| {
            // A slice taken over by (or from) this controller, or changed by someone else.
            let taken =
                old.and_then(|o| mirrored_service(o)) != new.and_then(|n| mirrored_service(n));
            for slice in [old, new].into_iter().flatten() {
                let Some(service) = mirrored_service(slice) else {
                    continue;
                };
                let news = match new {
                    Some(new) => c.tracker.should_sync(&service, new),
                    None => c.tracker.handle_deletion(&service, slice),
                };
                if news || taken {
                    c.queue.add(service);
                }
            }
        });
        controller
    }

    async fn sync(&self, key: Key) -> Result<Option<Duration>, MirroringError> {
        let (namespace, name) = &key;
        let mirrored: Vec<Arc<EndpointSlice>> = self
            .ctx
            .endpoint_slices
            .list_indexed(&format!("{namespace}/{name}"))
            .into_iter()
            .filter(|s| mirrored_service(s).is_some())
            .collect();
        let service = self.ctx.services.get(namespace, name);
        let endpoints = self.ctx.endpoints.get(namespace, name);
        let mirror = match (&service, &endpoints) {
            (Some(service), Some(endpoints)) => {
                service
                    .spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .is_none()
                    && should_mirror(endpoints)
            }
            _ => false,
        };
        let Some(endpoints) = endpoints.filter(|_| mirror) else {
            if service.is_none() {
                self.tracker.forget(&key);
            }
            let plan = Plan {
                delete: mirrored.iter().map(|s| (**s).clone()).collect(),
                ..Plan::default()
            };
            return Ok(self.apply(&key, None, plan).await.map(|()| None)?);
        };
        if self.tracker.stale(&key, &mirrored) {
            return Err(MirroringError::StaleCache);
        }
        let (plan, invalid, skipped) = reconcile(&endpoints, &mirrored);
        let recorder = self.ctx.recorder("endpointslice-mirroring-controller");
        if invalid > 0 {
            recorder.event(
                reference(endpoints.as_ref()),
                EventType::Warning,
                "InvalidIPAddress",
                format!("Skipped {invalid} invalid IP addresses when mirroring to EndpointSlices"),
            );
        }
        if skipped > invalid {
            recorder.event(
                reference(endpoints.as_ref()),
                EventType::Warning,
                "TooManyAddressesToMirror",
                format!("A max of {MAX_ENDPOINTS_PER_SUBSET} addresses can be mirrored to EndpointSlices per Endpoints subset. {skipped} addresses were skipped"),
            );
        }
        self.apply(&key, Some(&endpoints), plan).await?;
        Ok(None)
    }

    async fn apply(
        &self,
        key: &Key,
        endpoints: Option<&Endpoints>,
        plan: Plan,
    ) -> Result<(), Error> {
        let api: Api<EndpointSlice> = Api::namespaced(self.ctx.client.clone(), &key.0);
        let params = PostParams::default();
        // No new slices for Endpoints being deleted.
        if endpoints.is_some_and(|e| e.metadata.deletion_timestamp.is_none()) {
            for slice in plan.create {
                match api.create(&params, &slice).await {
                    Ok(made) => self.tracker.written(key, &made),
                    Err(kube::Error::Api(status))
                        if status.code == 403
                            && status.message.contains("because it is being terminated") =>
                    {
                        return Ok(())
                    }
                    Err(e) => return Err(e).context("creating a mirrored EndpointSlice"),
                }
            }
        }
        for slice in plan.update {
            let updated = api
                .replace(&slice.name_any(), &params, &slice)
                .await
                .context("updating a mirrored EndpointSlice")?;
            self.tracker.written(key, &updated);
        }
        for slice in plan.delete {
            match api
                .delete(&slice.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => self.tracker.expect_deletion(key, &slice),
                Err(e) if api_code(&e) == Some(404) => {}
                Err(e) => return Err(e).context("deleting a mirrored EndpointSlice"),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn endpoints(subsets: serde_json::Value) -> Endpoints {
        serde_json::from_value(json!({"metadata": {"name": "db", "namespace": "default", "uid": "ep-uid",
            "labels": {"app": "db"}, "annotations": {"note": "x", "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "subsets": subsets}))
        .expect("endpoints")
    }

    fn applied(plan: Plan) -> Vec<Arc<EndpointSlice>> {
        plan.create
            .into_iter()
            .enumerate()
            .map(|(i, mut s)| {
                s.metadata.name = Some(format!("db-{i}"));
                Arc::new(s)
            })
            .chain(plan.update.into_iter().map(Arc::new))
            .collect()
    }

    #[test]
    fn subsets_become_slices_per_address_type_with_the_endpoints_labels() {
        let ep = endpoints(json!([
            {"addresses": [{"ip": "192.168.1.5", "hostname": "a"}, {"ip": "fd00::5"}],
             "notReadyAddresses": [{"ip": "192.168.1.6"}, {"ip": "not-an-ip"}],
             "ports": [{"name": "sql", "port": 5432, "protocol": "TCP"}]}]));
        let (plan, invalid, skipped) = reconcile(&ep, &[]);
        assert_eq!((invalid, skipped), (1, 1));
        assert!(plan.update.is_empty() && plan.delete.is_empty());
        let slices: Vec<serde_json::Value> = plan
            .create
            .iter()
            .map(|s| serde_json::to_value(s).expect("json"))
            .collect();
        assert_eq!(slices.len(), 2);
        let v4 = &slices[0];
        assert_eq!(v4["addressType"], "IPv4");
        assert_eq!(
            v4["metadata"]["labels"],
            json!({"app": "db", "kubernetes.io/service-name": "db",
                "endpointslice.kubernetes.io/managed-by": "endpointslicemirroring-controller.k8s.io"})
        );
        assert_eq!(v4["metadata"]["annotations"], json!({"note": "x"}));
        assert_eq!(v4["metadata"]["ownerReferences"][0]["kind"], "Endpoints");
        assert_eq!(
            v4["ports"],
            json!([{"name": "sql", "port": 5432, "protocol": "TCP"}])
        );
        assert_eq!(
            v4["endpoints"],
            json!([{"addresses": ["192.168.1.5"], "conditions": {"ready": true}, "hostname": "a"},
                   {"addresses": ["192.168.1.6"], "conditions": {"ready": false}}])
        );
        assert_eq!(slices[1]["addressType"], "IPv6");
        // Mirrored once, nothing changes; a changed port replaces the slice by an update.
        let existing = applied(plan);
        let (again, _, _) = reconcile(&ep, &existing);
        assert!(again.create.is_empty() && again.update.is_empty() && again.delete.is_empty());
        let moved = endpoints(json!([
            {"addresses": [{"ip": "192.168.1.5", "hostname": "a"}, {"ip": "fd00::5"}],
             "ports": [{"name": "sql", "port": 5433, "protocol": "TCP"}]}]));
        let (changed, _, _) = reconcile(&moved, &existing);
        assert!(changed.create.is_empty() && changed.delete.is_empty());
        assert_eq!(changed.update.len(), 2);
    }

    #[test]
    fn skip_mirror_and_leader_election_records_are_not_mirrored() {
        let mut ep = endpoints(json!([]));
        assert!(should_mirror(&ep));
        ep.metadata.labels = Some([(SKIP_MIRROR_LABEL.to_string(), "true".to_string())].into());
        assert!(!should_mirror(&ep));
        let mut leader = endpoints(json!([]));
        leader.metadata.annotations =
            Some([(LEADER_ANNOTATION.to_string(), "{}".to_string())].into());
        assert!(!should_mirror(&leader));
    }
}
