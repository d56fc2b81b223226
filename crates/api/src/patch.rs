//! Strategic merge patch (`application/strategic-merge-patch+json`), applied
//! server side the way upstream's `k8s.io/apimachinery/pkg/util/strategicpatch`
//! (`StrategicMergeMapPatch`) applies it to built-in types.
//!
//! This is what `kubectl apply` (client-side, three-way), `kubectl edit`,
//! `kubectl set image`, `kubectl rollout restart`, `kubectl label` and
//! `kubectl annotate` send. Semantics, as upstream:
//!
//! * maps merge recursively; a `null` value deletes the key; a map with
//!   `"$patch": "replace"` replaces the original map; a map with
//!   `"$patch": "delete"` becomes `{}` (upstream's test "delete map from
//!   nested map" expects `{}`, not a missing key);
//! * `"$retainKeys": [..]` in a map first drops every original key not
//!   listed (every non-null key of the patch map must be listed, else it is an
//!   error), whatever the schema says: upstream honours it on any map;
//! * lists whose field has `patchStrategy:"merge"` and a merge key merge
//!   element by element: a patch element updates (recursively) the original
//!   element with the same merge-key value, or is added; an element with
//!   `"$patch": "delete"` deletes every element with its key; an element with
//!   `"$patch": "replace"` makes the list the patch's other elements;
//!   lists of scalars with `patchStrategy:"merge"` are a union without
//!   duplicates; lists without a strategy are replaced;
//! * the order of a merged list is upstream's: patch elements in patch order,
//!   original-only elements in original order, interleaved by
//!   `mergeSortedSlice` (so an element new to the list comes before the
//!   original elements it is compared with first);
//! * `"$setElementOrder/<field>": [..]` (kubectl sends it for every merged
//!   list it changes) gives the final order of the elements it names; the
//!   others keep their relative order and are interleaved as upstream's
//!   `normalizeElementOrder` does; a patch list whose order disagrees with it
//!   is an error ("doesn't match");
//! * `"$deleteFromPrimitiveList/<field>": [..]` removes those values from a
//!   list of scalars (any strategy; nothing happens when the list is absent,
//!   as upstream v0.36's tests expect).
//!
//! Directives never remain in the result: values inserted where the original
//! had nothing (or a value of another JSON type) are cleaned the same way as
//! merged ones, `null`s in them dropped. (Upstream inserts the raw patch value
//! there and relies on decoding into the Go struct to drop what is not a
//! field; for a JSON store, cleaning is the equivalent.)
//!
//! Paths the schema does not know (custom resources, unknown fields) behave
//! like JSON merge patch (RFC 7386): maps merge, lists are replaced. Upstream
//! instead rejects unknown fields of built-in types and answers 415 to a
//! strategic merge patch of a custom resource: that choice is the caller's.
//!
//! Not supported: `patchStrategy:"replace"` on a map field (no built-in kind
//! ferry serves uses it outside `RawExtension`), and the client-side half
//! (computing a patch from two or three documents).

use std::collections::HashSet;

use serde_json::{Map, Value};

/// The directive key of a map or a list element: `"$patch": "replace" | "delete"`.
const DIRECTIVE: &str = "$patch";
/// The key of the list of keys a map keeps.
const RETAIN_KEYS: &str = "$retainKeys";
/// Prefix of the parallel list giving a merged list's final order.
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
/// Prefix of the parallel list of scalars to remove from a list.
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// How a list field merges: its patch strategy and merge key, as the Go
/// struct tags `patchStrategy:"merge" patchMergeKey:"name"` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// No patch strategy: the patch's list replaces the original one.
    Replace,
    /// `patchStrategy:"merge"` with this `patchMergeKey`: a list of maps
    /// merged element by element, elements matched by this key.
    MergeByKey(&'static str),
    /// `patchStrategy:"merge"` on a list of scalars (e.g.
    /// `metadata.finalizers`): the union of both lists.
    MergePrimitives,
}

/// The schema a strategic merge patch needs. Paths are JSON field names from
/// the object's root, list indices left out: `["spec", "containers", "env"]`
/// is the `env` list of any container of a pod.
pub trait PatchSchema {
    /// How the list at `path` merges.
    fn list_strategy(&self, path: &[&str]) -> ListStrategy;
    /// Whether the map at `path` (or each map element of the list at `path`)
    /// has `patchStrategy:"retainKeys"`. Applying a patch does not need it
    /// (`$retainKeys` is honoured wherever it appears, as upstream does); it
    /// is what a client computing a patch would consult.
    fn retain_keys(&self, path: &[&str]) -> bool;
}

/// Where a kind holds its pod spec, as a path of field names.
const POD_SPEC_POD: &[&str] = &["spec"];
const POD_SPEC_TEMPLATE: &[&str] = &["spec", "template", "spec"];
const POD_SPEC_POD_TEMPLATE: &[&str] = &["template", "spec"];
const POD_SPEC_CRON_JOB: &[&str] = &["spec", "jobTemplate", "spec", "template", "spec"];

/// The patch metadata of the built-in kinds, from the struct tags of
/// `k8s.io/api` (v1.33):
///
/// * every `ObjectMeta` (`metadata`, `spec.template.metadata`, ...):
///   `finalizers` merge (scalars), `ownerReferences` merge by `uid`;
/// * `PodSpec` (Pod `spec`; Deployment, ReplicaSet, StatefulSet, DaemonSet,
///   Job, ReplicationController `spec.template.spec`; PodTemplate
///   `template.spec`; CronJob `spec.jobTemplate.spec.template.spec`):
///   `containers`, `initContainers`, `ephemeralContainers` by `name`;
///   `volumes` by `name` with retainKeys; `imagePullSecrets` by `name`;
///   `hostAliases` by `ip`; `topologySpreadConstraints` by `topologyKey`;
///   `resourceClaims` by `name` with retainKeys; `schedulingGates` by `name`;
///   `tolerations`, `readinessGates` replaced (no strategy);
/// * `Container` and `EphemeralContainer`: `ports` by `containerPort`, `env`
///   by `name`, `volumeMounts` by `mountPath`, `volumeDevices` by
///   `devicePath`; `envFrom`, `resizePolicy` replaced;
/// * Pod `status`: `podIPs` and `hostIPs` by `ip`, `resourceClaimStatuses` by
///   `name` with retainKeys; `containerStatuses` and friends replaced;
/// * Node: `spec.podCIDRs` merge (scalars), `status.addresses` by `type`;
///   `spec.taints` replaced (`+listType=atomic`, no strategy);
/// * Service `spec.ports` by `port`;
/// * ServiceAccount `secrets` by `name` (`imagePullSecrets` replaced);
/// * Deployment `spec.strategy` retainKeys (StatefulSet and DaemonSet
///   `spec.updateStrategy` have no strategy);
/// * `status.conditions` by `type` for Pod, Node, PersistentVolumeClaim,
///   Namespace, ReplicationController, Service, Deployment, ReplicaSet,
///   StatefulSet, DaemonSet, Job, HorizontalPodAutoscaler,
///   PodDisruptionBudget, APIService; ComponentStatus `conditions` by
///   `type`. Other kinds' conditions (CertificateSigningRequest,
///   CustomResourceDefinition, FlowSchema, ...) have no strategy upstream and
///   are replaced.
///
/// Everything else, and every path of a kind it does not know (custom
/// resources), except `ObjectMeta`'s, is replaced like JSON merge patch does.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinSchema {
    /// Where the kind's pod spec is, if it has one.
    pod_spec: Option<&'static [&'static str]>,
    /// Which kind-specific table applies.
    kind: Kind,
    /// Whether `status.conditions` merges by `type`.
    conditions_by_type: bool,
}

/// The kinds with fields of their own in [`BuiltinSchema`]'s table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pod,
    Node,
    Service,
    ServiceAccount,
    Deployment,
    ComponentStatus,
    Other,
}

/// The patch metadata of kind `kind` in API group `group` (`""` for the core
/// group). A kind it does not know gets a schema with only `ObjectMeta`'s
/// lists (`metadata.finalizers`, `metadata.ownerReferences`): the rest merges
/// like JSON merge patch.
pub fn schema_for(group: &str, kind: &str) -> BuiltinSchema {
    let pod_spec = match (group, kind) {
        ("", "Pod") => Some(POD_SPEC_POD),
        ("", "PodTemplate") => Some(POD_SPEC_POD_TEMPLATE),
        ("", "ReplicationController")
        | ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch", "Job") => Some(POD_SPEC_TEMPLATE),
        ("batch", "CronJob") => Some(POD_SPEC_CRON_JOB),
        _ => None,
    };
    let kind_table = match (group, kind) {
        ("", "Pod") => Kind::Pod,
        ("", "Node") => Kind::Node,
        ("", "Service") => Kind::Service,
        ("", "ServiceAccount") => Kind::ServiceAccount,
        ("", "ComponentStatus") => Kind::ComponentStatus,
        ("apps", "Deployment") => Kind::Deployment,
        _ => Kind::Other,
    };
    let conditions_by_type = matches!(
        (group, kind),
        (
            "",
            "Pod"
                | "Node"
                | "PersistentVolumeClaim"
                | "Namespace"
                | "ReplicationController"
                | "Service"
        ) | (
            "apps",
            "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet"
        ) | ("batch", "Job")
            | ("autoscaling", "HorizontalPodAutoscaler")
            | ("policy", "PodDisruptionBudget")
            | ("apiregistration.k8s.io", "APIService")
    );
    BuiltinSchema {
        pod_spec,
        kind: kind_table,
        conditions_by_type,
    }
}

/// The list strategy of a path inside a `PodSpec`.
fn pod_spec_list(rest: &[&str]) -> ListStrategy {
    use ListStrategy::{MergeByKey, Replace};
    match rest {
        ["containers" | "initContainers" | "ephemeralContainers"] => MergeByKey("name"),
        ["containers" | "initContainers" | "ephemeralContainers", field] => match *field {
            "ports" => MergeByKey("containerPort"),
            "env" => MergeByKey("name"),
            "volumeMounts" => MergeByKey("mountPath"),
            "volumeDevices" => MergeByKey("devicePath"),
            _ => Replace,
        },
        ["volumes"] => MergeByKey("name"),
        ["imagePullSecrets"] => MergeByKey("name"),
        ["hostAliases"] => MergeByKey("ip"),
        ["topologySpreadConstraints"] => MergeByKey("topologyKey"),
        ["resourceClaims"] => MergeByKey("name"),
        ["schedulingGates"] => MergeByKey("name"),
        _ => Replace,
    }
}

impl PatchSchema for BuiltinSchema {
    fn list_strategy(&self, path: &[&str]) -> ListStrategy {
        use ListStrategy::{MergeByKey, MergePrimitives, Replace};
        // ObjectMeta, wherever it is.
        if path.ends_with(&["metadata", "finalizers"]) {
            return MergePrimitives;
        }
        if path.ends_with(&["metadata", "ownerReferences"]) {
            return MergeByKey("uid");
        }
        if let Some(prefix) = self.pod_spec {
            if let Some(rest) = path.strip_prefix(prefix) {
                return pod_spec_list(rest);
            }
        }
        if self.conditions_by_type && path == ["status", "conditions"] {
            return MergeByKey("type");
        }
        match (self.kind, path) {
            (Kind::Pod, ["status", "podIPs" | "hostIPs"]) => MergeByKey("ip"),
            (Kind::Pod, ["status", "resourceClaimStatuses"]) => MergeByKey("name"),
            (Kind::Node, ["spec", "podCIDRs"]) => MergePrimitives,
            (Kind::Node, ["status", "addresses"]) => MergeByKey("type"),
            (Kind::Service, ["spec", "ports"]) => MergeByKey("port"),
            (Kind::ServiceAccount, ["secrets"]) => MergeByKey("name"),
            (Kind::ComponentStatus, ["conditions"]) => MergeByKey("type"),
            _ => Replace,
        }
    }

    fn retain_keys(&self, path: &[&str]) -> bool {
        if let Some(prefix) = self.pod_spec {
            if let Some(rest) = path.strip_prefix(prefix) {
                return matches!(rest, ["volumes"] | ["resourceClaims"]);
            }
        }
        matches!(
            (self.kind, path),
            (Kind::Deployment, ["spec", "strategy"])
                | (Kind::Pod, ["status", "resourceClaimStatuses"])
        )
    }
}

/// Why a strategic merge patch cannot be applied; the messages are upstream's
/// (`mergepatch` and `strategicpatch` errors) where it has one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatchError {
    /// The patch is not a JSON object.
    #[error("invalid JSON document: a strategic merge patch must be a JSON object")]
    NotAnObject,
    /// A list whose elements are lists.
    #[error("lists of lists are not supported")]
    ListOfLists,
    /// Lists whose elements are of different JSON types.
    #[error("list element types are not identical: {0}")]
    MixedElementTypes(String),
    /// An element of a list merged by key lacks the key.
    #[error("map: {map} does not contain declared merge key: {key}")]
    NoMergeKey {
        /// The element.
        map: Value,
        /// The merge key.
        key: String,
    },
    /// An element of a list merged by key is not a map.
    #[error("expected a map, but got {value} in a list merged by key {key}")]
    NotAMap {
        /// The element.
        value: Value,
        /// The merge key.
        key: String,
    },
    /// A `$patch` directive that is not known here.
    #[error("Unexpected patch type: {directive} in map: {map}")]
    BadPatchType {
        /// The directive.
        directive: Value,
        /// The map it stands in.
        map: Value,
    },
    /// `$retainKeys` is not a list.
    #[error("invalid patch format of retainKeys")]
    RetainKeysNotAList,
    /// A patch field that `$retainKeys` does not keep.
    #[error("invalid patch format of retainKeys: field {0} of the patch is not in $retainKeys")]
    NotRetained(String),
    /// A `$setElementOrder/<field>` that is not a list.
    #[error("invalid patch format of {0}: expected a list, got {1}")]
    SetElementOrderNotAList(String, Value),
    /// A field ordered by `$setElementOrder` whose patch value is not a list.
    #[error("expected a list for {0} in the patch, got {1}")]
    ExpectedList(String, Value),
    /// A patch list out of the `$setElementOrder` list's order.
    #[error("The order in patch list:\n{patch}\n doesn't match {directive} list:\n{order}\n")]
    OrderMismatch {
        /// The patch list.
        patch: Value,
        /// The directive (`$setElementOrder`).
        directive: String,
        /// The order list.
        order: Value,
    },
    /// `$deleteFromPrimitiveList/<field>` that is not a list.
    #[error("invalid patch format of primitive list: {directive}{field} must be a list")]
    DeleteFromPrimitiveListNotAList {
        /// The directive prefix.
        directive: String,
        /// The field.
        field: String,
    },
    /// A list of maps without a merge key in the schema.
    #[error("cannot merge lists without merge key for type map")]
    NoMergeKeyForMaps,
    /// `$patch: merge` in a list.
    #[error("merging lists cannot yet be specified in the patch")]
    MergeDirectiveInList,
}

/// Applies the strategic merge patch `patch` (a JSON object) to `original`
/// in place, with the list strategies of `schema`. A non-object `original`
/// counts as `{}`. On error `original` is left unchanged; the messages are
/// upstream's where it has one.
pub fn strategic_merge(
    original: &mut Value,
    patch: &Value,
    schema: &dyn PatchSchema,
) -> Result<(), PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::NotAnObject);
    };
    let base = match original {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let mut merger = Merger {
        schema,
        path: Vec::new(),
    };
    let merged = merger.merge_map(base, patch)?;
    *original = Value::Object(merged);
    Ok(())
}

/// The JSON type of a list element, as upstream's `sliceElementType` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ElemKind {
    Map,
    Scalar(u8),
}

fn elem_kind(v: &Value) -> Result<ElemKind, PatchError> {
    Ok(match v {
        Value::Object(_) => ElemKind::Map,
        Value::Array(_) => return Err(PatchError::ListOfLists),
        Value::String(_) => ElemKind::Scalar(0),
        Value::Number(_) => ElemKind::Scalar(1),
        Value::Bool(_) => ElemKind::Scalar(2),
        Value::Null => ElemKind::Scalar(3),
    })
}

/// The common element kind of `lists`, `None` when they are all empty.
fn slice_elem_kind(lists: &[&[Value]]) -> Result<Option<ElemKind>, PatchError> {
    let mut kind = None;
    for v in lists.iter().flat_map(|l| l.iter()) {
        let k = elem_kind(v)?;
        match kind {
            None => kind = Some(k),
            Some(prev) if prev != k => {
                return Err(PatchError::MixedElementTypes(
                    lists
                        .iter()
                        .map(|l| Value::Array(l.to_vec()).to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(kind)
}

/// Equality of JSON values as Go's `==` on decoded `interface{}` values sees
/// it for scalars: numbers compare by value (`1` equals `1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        _ => a == b,
    }
}

/// The value of merge key `key` of list element `v`, or `None` if `v` is not
/// a map or lacks it.
fn key_of<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object().and_then(|m| m.get(key))
}

fn err_no_merge_key(v: &Value, key: &str) -> PatchError {
    PatchError::NoMergeKey {
        map: v.clone(),
        key: key.to_string(),
    }
}

/// The merge-key value of a list element that must be a map holding it.
fn required_key<'a>(v: &'a Value, key: &str) -> Result<&'a Value, PatchError> {
    match v {
        Value::Object(m) => m.get(key).ok_or_else(|| err_no_merge_key(v, key)),
        _ => Err(PatchError::NotAMap {
            value: v.clone(),
            key: key.to_string(),
        }),
    }
}

/// Position of `item` in `list`: by merge key for lists of maps, by value for
/// scalars (upstream's `index`).
fn index_in(list: &[Value], item: &Value, key: Option<&str>) -> Option<usize> {
    match key {
        Some(k) => {
            let want = key_of(item, k);
            list.iter().position(|v| match (key_of(v, k), want) {
                (Some(a), Some(b)) => json_eq(a, b),
                (None, None) => true,
                _ => false,
            })
        }
        None => list.iter().position(|v| json_eq(v, item)),
    }
}

/// Splits `merged` into the elements present in `by` and the others, each in
/// its order in `merged` (upstream's `partition*ByPresentInList`).
fn partition(
    merged: Vec<Value>,
    by: &[Value],
    key: Option<&str>,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut present = Vec::with_capacity(merged.len());
    let mut absent = Vec::new();
    for v in merged {
        if let Some(k) = key {
            required_key(&v, k)?;
        }
        if index_in(by, &v, key).is_some() {
            present.push(v);
        } else {
            absent.push(v);
        }
    }
    Ok((present, absent))
}

/// Stable sort of `items` by their position in `order` (upstream's
/// `normalizeSliceOrder`; every item is in `order` where it is called).
fn sort_by_order(items: &mut [Value], order: &[Value], key: Option<&str>) {
    items.sort_by_cached_key(|v| index_in(order, v, key).unwrap_or(usize::MAX));
}

/// Upstream's `mergeSortedSlice`: inserts the server-only elements `left`
/// among the patch elements `right`, both already sorted, keeping each one's
/// relative order; a left element goes first only when both are in
/// `server_order` and it comes earlier there.
fn merge_sorted(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (index_in(server_order, l, key), index_in(server_order, r, key)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

/// Upstream's `normalizeElementOrder`.
fn normalize_element_order(
    mut patch_items: Vec<Value>,
    mut server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    sort_by_order(&mut patch_items, patch_order, key);
    sort_by_order(&mut server_only, server_order, key);
    merge_sorted(server_only, patch_items, server_order, key)
}

/// Compares a patch list element with a `$setElementOrder` element.
fn merge_key_value_equal(a: &Value, b: &Value, key: Option<&str>) -> Result<bool, PatchError> {
    match key {
        None => Ok(json_eq(a, b)),
        Some(k) => Ok(json_eq(required_key(a, k)?, required_key(b, k)?)),
    }
}

/// Upstream's `validatePatchWithSetOrderList`: the patch list's elements
/// (deletions aside) must appear in the `$setElementOrder` list, in its order.
fn validate_set_order(
    patch: &[Value],
    order: &[Value],
    key: Option<&str>,
) -> Result<(), PatchError> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<&Value> = match key {
        Some(_) => patch
            .iter()
            .filter(|v| key_of(v, DIRECTIVE).and_then(Value::as_str) != Some("delete"))
            .collect(),
        None => patch.iter().collect(),
    };
    let (mut p, mut s) = (0, 0);
    while p < non_delete.len() && s < order.len() {
        if key_of(non_delete[p], DIRECTIVE).is_some() {
            p += 1;
            continue;
        }
        if merge_key_value_equal(non_delete[p], &order[s], key)? {
            p += 1;
        }
        s += 1;
    }
    if p < non_delete.len() && s >= order.len() {
        return Err(PatchError::OrderMismatch {
            patch: Value::Array(patch.to_vec()),
            directive: SET_ELEMENT_ORDER.trim_end_matches('/').to_string(),
            order: Value::Array(order.to_vec()),
        });
    }
    Ok(())
}

/// Removes duplicates, keeping each value's first occurrence.
fn dedup_scalars(values: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(values.len());
    for v in values {
        if !out.iter().any(|o| json_eq(o, &v)) {
            out.push(v);
        }
    }
    out
}

/// The merge key of a strategy, if it has one.
fn merge_key(strategy: ListStrategy) -> Option<&'static str> {
    match strategy {
        ListStrategy::MergeByKey(k) => Some(k),
        _ => None,
    }
}

/// The state of one patch application: the schema and the current path.
struct Merger<'s> {
    schema: &'s dyn PatchSchema,
    path: Vec<String>,
}

impl Merger<'_> {
    fn strategy(&self) -> ListStrategy {
        let path: Vec<&str> = self.path.iter().map(String::as_str).collect();
        self.schema.list_strategy(&path)
    }

    /// Upstream's `mergeMap`: merges `patch` into `original`.
    fn merge_map(
        &mut self,
        mut original: Map<String, Value>,
        patch: &Map<String, Value>,
    ) -> Result<Map<String, Value>, PatchError> {
        if let Some(directive) = patch.get(DIRECTIVE) {
            return match directive.as_str() {
                Some("replace") => {
                    let mut rest = patch.clone();
                    rest.remove(DIRECTIVE);
                    self.merge_map(Map::new(), &rest)
                }
                Some("delete") => Ok(Map::new()),
                _ => Err(PatchError::BadPatchType {
                    directive: directive.clone(),
                    map: Value::Object(patch.clone()),
                }),
            };
        }

        if let Some(retain) = patch.get(RETAIN_KEYS) {
            let Value::Array(retain) = retain else {
                return Err(PatchError::RetainKeysNotAList);
            };
            let keep: HashSet<&str> = retain.iter().filter_map(Value::as_str).collect();
            for (k, v) in patch {
                if v.is_null()
                    || k == RETAIN_KEYS
                    || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
                    || k.starts_with(SET_ELEMENT_ORDER)
                {
                    continue;
                }
                if !keep.contains(k.as_str()) {
                    return Err(PatchError::NotRetained(k.clone()));
                }
            }
            original.retain(|k, _| keep.contains(k.as_str()));
        }

        // `$setElementOrder/<field>`: merge the list with its patch, then order it.
        let mut ordered: HashSet<&str> = HashSet::new();
        for (k, order) in patch {
            let Some(field) = k.strip_prefix(SET_ELEMENT_ORDER) else {
                continue;
            };
            let Value::Array(order) = order else {
                return Err(PatchError::SetElementOrderNotAList(
                    k.clone(),
                    order.clone(),
                ));
            };
            let patch_list = match patch.get(field) {
                None => None,
                // A `null` deletes the list below; the order has nothing to order.
                Some(Value::Null) => continue,
                Some(Value::Array(list)) => Some(list),
                Some(other) => {
                    return Err(PatchError::ExpectedList(field.to_string(), other.clone()))
                }
            };
            let original_list = match original.get(field) {
                None | Some(Value::Null) => None,
                Some(Value::Array(list)) => Some(list.clone()),
                // A value of another type is replaced by the patch's list.
                Some(_) if patch_list.is_some() => None,
                Some(_) => continue,
            };
            self.path.push(field.to_owned());
            let merged = self.ordered_list(original_list.as_deref(), patch_list, order);
            self.path.pop();
            if let Some(list) = merged? {
                original.insert(field.to_owned(), Value::Array(list));
            }
            ordered.insert(field);
        }

        let mut deletions = Vec::new();
        for (k, patch_value) in patch {
            if k == RETAIN_KEYS || k.starts_with(SET_ELEMENT_ORDER) || ordered.contains(k.as_str())
            {
                continue;
            }
            if let Some(field) = k.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
                deletions.push((field, patch_value));
                continue;
            }
            if patch_value.is_null() {
                original.remove(k);
                continue;
            }
            self.path.push(k.clone());
            let result = match (original.remove(k), patch_value) {
                (Some(Value::Object(orig)), Value::Object(p)) => {
                    self.merge_map(orig, p).map(Value::Object)
                }
                (Some(Value::Array(orig)), Value::Array(p)) => {
                    let strategy = self.strategy();
                    self.merge_list(&orig, p, strategy).map(Value::Array)
                }
                (_, p) => self.fresh(p),
            };
            self.path.pop();
            original.insert(k.clone(), result?);
        }

        // `$deleteFromPrimitiveList/<field>`, after the merges.
        for (field, values) in deletions {
            let Value::Array(values) = values else {
                return Err(PatchError::DeleteFromPrimitiveListNotAList {
                    directive: DELETE_FROM_PRIMITIVE_LIST.to_string(),
                    field: field.to_string(),
                });
            };
            if let Some(Value::Array(list)) = original.get_mut(field) {
                list.retain(|v| !values.iter().any(|d| json_eq(v, d)));
            }
        }
        Ok(original)
    }

    /// Upstream's `mergePatchIntoOriginal` for one field: merges the list at
    /// the current path with its patch list, then orders it by the
    /// `$setElementOrder` list `order`. `None` when neither list exists.
    fn ordered_list(
        &mut self,
        original_list: Option<&[Value]>,
        patch_list: Option<&Vec<Value>>,
        order: &[Value],
    ) -> Result<Option<Vec<Value>>, PatchError> {
        let strategy = self.strategy();
        let key = merge_key(strategy);
        if let Some(list) = patch_list {
            validate_set_order(list, order, key)?;
        }
        let merged = match (original_list, patch_list) {
            (Some(orig), None) => orig.to_vec(),
            (None, Some(list)) => self.fresh_list(list)?,
            (Some(orig), Some(list)) => self.merge_list(orig, list, strategy)?,
            (None, None) => return Ok(None),
        };
        let key = match slice_elem_kind(&[&merged])? {
            Some(ElemKind::Map) => key,
            _ => None,
        };
        let (items, server_only) = partition(merged, order, key)?;
        Ok(Some(normalize_element_order(
            items,
            server_only,
            order,
            original_list.unwrap_or(&[]),
            key,
        )))
    }

    /// Merges the patch list `patch` into the list `original` at the current
    /// path, as `strategy` says (upstream's `mergeSliceHandler`).
    fn merge_list(
        &mut self,
        original: &[Value],
        patch: &[Value],
        strategy: ListStrategy,
    ) -> Result<Vec<Value>, PatchError> {
        match strategy {
            ListStrategy::Replace => self.fresh_list(patch),
            ListStrategy::MergeByKey(_) | ListStrategy::MergePrimitives => {
                self.merge_slice(original, patch, merge_key(strategy))
            }
        }
    }

    /// Upstream's `mergeSlice` for a list with `patchStrategy:"merge"`.
    fn merge_slice(
        &mut self,
        original: &[Value],
        patch: &[Value],
        key: Option<&'static str>,
    ) -> Result<Vec<Value>, PatchError> {
        if original.is_empty() && patch.is_empty() {
            return Ok(Vec::new());
        }
        let Some(kind) = slice_elem_kind(&[original, patch])? else {
            return Ok(Vec::new());
        };
        if kind != ElemKind::Map {
            let merged = dedup_scalars(original.iter().chain(patch).cloned().collect());
            let (items, server_only) = partition(merged, patch, None)?;
            return Ok(normalize_element_order(
                items,
                server_only,
                patch,
                original,
                None,
            ));
        }
        let Some(key) = key else {
            return Err(PatchError::NoMergeKeyForMaps);
        };

        // Special elements: `$patch: delete` and `$patch: replace`.
        let mut merged: Vec<Value> = original.to_vec();
        let mut plain: Vec<&Value> = Vec::with_capacity(patch.len());
        let mut replace = false;
        for v in patch {
            match key_of(v, DIRECTIVE) {
                None => plain.push(v),
                Some(directive) => match directive.as_str() {
                    Some("delete") => {
                        let value = required_key(v, key)?;
                        merged.retain(|o| !key_of(o, key).is_some_and(|ov| json_eq(ov, value)));
                    }
                    Some("replace") => replace = true,
                    Some("merge") => return Err(PatchError::MergeDirectiveInList),
                    _ => {
                        return Err(PatchError::BadPatchType {
                            directive: directive.clone(),
                            map: v.clone(),
                        });
                    }
                },
            }
        }
        if replace {
            let list: Vec<Value> = plain.into_iter().cloned().collect();
            let list = self.fresh_list(&list)?;
            for v in &list {
                required_key(v, key)?;
            }
            return Ok(list);
        }
        for v in &merged {
            required_key(v, key)?;
        }
        let server_order = merged.clone();

        for v in &plain {
            let value = required_key(v, key)?;
            let Value::Object(p) = v else {
                continue; // `required_key` checked it is a map.
            };
            let found = merged
                .iter()
                .position(|o| key_of(o, key).is_some_and(|ov| json_eq(ov, value)));
            match found {
                Some(i) => {
                    let Value::Object(o) = std::mem::take(&mut merged[i]) else {
                        unreachable!("element kinds were checked")
                    };
                    merged[i] = Value::Object(self.merge_map(o, p)?);
                }
                None => merged.push(Value::Object(self.merge_map(Map::new(), p)?)),
            }
        }

        let patch_order: Vec<Value> = plain.into_iter().cloned().collect();
        let (items, server_only) = partition(merged, &patch_order, Some(key))?;
        Ok(normalize_element_order(
            items,
            server_only,
            &patch_order,
            &server_order,
            Some(key),
        ))
    }

    /// A patch value inserted where the original has nothing to merge with,
    /// cleaned of directives and `null`s.
    fn fresh(&mut self, value: &Value) -> Result<Value, PatchError> {
        Ok(match value {
            Value::Object(m) => Value::Object(self.merge_map(Map::new(), m)?),
            Value::Array(list) => Value::Array(self.fresh_list(list)?),
            other => other.clone(),
        })
    }

    /// A patch list taken as it is (a replaced list, or one the original does
    /// not have): elements with a `$patch` directive are dropped, map
    /// elements cleaned; order and duplicates are kept, as upstream does.
    fn fresh_list(&mut self, list: &[Value]) -> Result<Vec<Value>, PatchError> {
        let mut out = Vec::with_capacity(list.len());
        for v in list {
            match v {
                Value::Object(m) => match m.get(DIRECTIVE) {
                    None => out.push(Value::Object(self.merge_map(Map::new(), m)?)),
                    Some(d) if matches!(d.as_str(), Some("delete" | "replace")) => {}
                    Some(d) => {
                        return Err(PatchError::BadPatchType {
                            directive: d.clone(),
                            map: v.clone(),
                        })
                    }
                },
                Value::Array(inner) => out.push(Value::Array(self.fresh_list(inner)?)),
                other => out.push(other.clone()),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A schema from a table of exact paths, like upstream's test `MergeItem`.
    struct TestSchema;

    impl PatchSchema for TestSchema {
        fn list_strategy(&self, path: &[&str]) -> ListStrategy {
            match path.last() {
                Some(&"mergingList") | Some(&"retainKeysMergingList") => {
                    ListStrategy::MergeByKey("name")
                }
                Some(&"mergingIntList") => ListStrategy::MergePrimitives,
                _ => ListStrategy::Replace,
            }
        }
        fn retain_keys(&self, path: &[&str]) -> bool {
            matches!(
                path.last(),
                Some(&"retainKeysMap") | Some(&"retainKeysMergingList")
            )
        }
    }

    fn apply(schema: &dyn PatchSchema, original: Value, patch: Value) -> Result<Value, PatchError> {
        let mut doc = original;
        strategic_merge(&mut doc, &patch, schema)?;
        Ok(doc)
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "labels": {"app": "web", "tier": "front"},
                "finalizers": ["a.example/x", "b.example/y"]
            },
            "spec": {
                "replicas": 2,
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}
                },
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "app",
                                "image": "nginx:1.25",
                                "env": [{"name": "A", "value": "1"}],
                                "ports": [{"containerPort": 80, "protocol": "TCP"}]
                            },
                            {"name": "sidecar", "image": "busybox:1.36"}
                        ],
                        "tolerations": [
                            {"key": "k1", "operator": "Exists"},
                            {"key": "k2", "operator": "Exists"}
                        ],
                        "volumes": [
                            {"name": "data", "emptyDir": {}}
                        ]
                    }
                }
            }
        })
    }

    #[test]
    fn builtin_kinds() {
        let deploy = schema_for("apps", "Deployment");
        let cases: &[(&str, &[&str], ListStrategy)] = &[
            (
                "deploy containers",
                &["spec", "template", "spec", "containers"],
                ListStrategy::MergeByKey("name"),
            ),
            (
                "deploy env",
                &["spec", "template", "spec", "initContainers", "env"],
                ListStrategy::MergeByKey("name"),
            ),
            (
                "deploy ports",
                &["spec", "template", "spec", "containers", "ports"],
                ListStrategy::MergeByKey("containerPort"),
            ),
            (
                "deploy mounts",
                &["spec", "template", "spec", "containers", "volumeMounts"],
                ListStrategy::MergeByKey("mountPath"),
            ),
            (
                "deploy args",
                &["spec", "template", "spec", "containers", "args"],
                ListStrategy::Replace,
            ),
            (
                "deploy tolerations",
                &["spec", "template", "spec", "tolerations"],
                ListStrategy::Replace,
            ),
            (
                "deploy finalizers",
                &["metadata", "finalizers"],
                ListStrategy::MergePrimitives,
            ),
            (
                "template finalizers",
                &["spec", "template", "metadata", "finalizers"],
                ListStrategy::MergePrimitives,
            ),
            (
                "owner refs",
                &["metadata", "ownerReferences"],
                ListStrategy::MergeByKey("uid"),
            ),
            (
                "deploy conditions",
                &["status", "conditions"],
                ListStrategy::MergeByKey("type"),
            ),
            (
                "pod-level path on a deployment",
                &["spec", "containers"],
                ListStrategy::Replace,
            ),
        ];
        for (name, path, want) in cases {
            assert_eq!(deploy.list_strategy(path), *want, "{name}");
        }
        assert!(deploy.retain_keys(&["spec", "strategy"]));
        assert!(deploy.retain_keys(&["spec", "template", "spec", "volumes"]));
        assert!(!deploy.retain_keys(&["spec", "template", "spec"]));

        let pod = schema_for("", "Pod");
        assert_eq!(
            pod.list_strategy(&["spec", "containers"]),
            ListStrategy::MergeByKey("name")
        );
        assert_eq!(
            pod.list_strategy(&["spec", "ephemeralContainers", "volumeDevices"]),
            ListStrategy::MergeByKey("devicePath")
        );
        assert_eq!(
            pod.list_strategy(&["status", "podIPs"]),
            ListStrategy::MergeByKey("ip")
        );
        assert_eq!(
            pod.list_strategy(&["status", "containerStatuses"]),
            ListStrategy::Replace
        );
        let cron = schema_for("batch", "CronJob");
        assert_eq!(
            cron.list_strategy(&["spec", "jobTemplate", "spec", "template", "spec", "volumes"]),
            ListStrategy::MergeByKey("name")
        );
        let node = schema_for("", "Node");
        assert_eq!(
            node.list_strategy(&["spec", "taints"]),
            ListStrategy::Replace
        );
        assert_eq!(
            node.list_strategy(&["spec", "podCIDRs"]),
            ListStrategy::MergePrimitives
        );
        assert_eq!(
            node.list_strategy(&["status", "addresses"]),
            ListStrategy::MergeByKey("type")
        );
        let svc = schema_for("", "Service");
        assert_eq!(
            svc.list_strategy(&["spec", "ports"]),
            ListStrategy::MergeByKey("port")
        );
        let csr = schema_for("certificates.k8s.io", "CertificateSigningRequest");
        assert_eq!(
            csr.list_strategy(&["status", "conditions"]),
            ListStrategy::Replace
        );
        let custom = schema_for("example.com", "Widget");
        assert_eq!(
            custom.list_strategy(&["spec", "items"]),
            ListStrategy::Replace
        );
        assert_eq!(
            custom.list_strategy(&["metadata", "finalizers"]),
            ListStrategy::MergePrimitives
        );
    }

    /// `(name, patch, check)`: applies the patch to [`deployment`] and runs
    /// `check` on the result.
    type Case = (&'static str, Value, fn(&Value));

    #[test]
    fn kubectl_patches_on_a_deployment() {
        let cases: Vec<Case> = vec![
            (
                "kubectl set image: container image by name",
                json!({"spec": {"template": {"spec": {"containers": [
                    {"name": "sidecar", "image": "busybox:1.37"}
                ]}}}}),
                |d| {
                    let c = &d["spec"]["template"]["spec"]["containers"];
                    assert_eq!(c.as_array().map(Vec::len), Some(2));
                    assert_eq!(c[0]["name"], "app");
                    assert_eq!(c[0]["image"], "nginx:1.25");
                    assert_eq!(c[0]["env"], json!([{"name": "A", "value": "1"}]));
                    assert_eq!(c[1], json!({"name": "sidecar", "image": "busybox:1.37"}));
                },
            ),
            (
                "add an env var",
                json!({"spec": {"template": {"spec": {"containers": [
                    {"name": "app", "env": [{"name": "B", "value": "2"}]}
                ]}}}}),
                |d| {
                    let c = &d["spec"]["template"]["spec"]["containers"][0];
                    // A new element goes before the original ones (upstream's mergeSortedSlice).
                    assert_eq!(
                        c["env"],
                        json!([{"name": "B", "value": "2"}, {"name": "A", "value": "1"}])
                    );
                    assert_eq!(c["image"], "nginx:1.25");
                    assert_eq!(
                        c["ports"],
                        json!([{"containerPort": 80, "protocol": "TCP"}])
                    );
                },
            ),
            (
                "kubectl set env style, with $setElementOrder",
                json!({"spec": {"template": {"spec": {
                    "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
                    "containers": [{
                        "name": "app",
                        "$setElementOrder/env": [{"name": "A"}, {"name": "B"}],
                        "env": [{"name": "B", "value": "2"}]
                    }]
                }}}}),
                |d| {
                    let c = &d["spec"]["template"]["spec"]["containers"];
                    assert_eq!(
                        c[0]["env"],
                        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
                    );
                    assert_eq!(c[1]["name"], "sidecar");
                },
            ),
            (
                "delete a container with $patch: delete",
                json!({"spec": {"template": {"spec": {"containers": [
                    {"name": "sidecar", "$patch": "delete"}
                ]}}}}),
                |d| {
                    let c = &d["spec"]["template"]["spec"]["containers"];
                    assert_eq!(c.as_array().map(Vec::len), Some(1));
                    assert_eq!(c[0]["name"], "app");
                },
            ),
            (
                "$setElementOrder reorders the containers",
                json!({"spec": {"template": {"spec": {
                    "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}]
                }}}}),
                |d| {
                    let c = &d["spec"]["template"]["spec"]["containers"];
                    assert_eq!(c[0]["name"], "sidecar");
                    assert_eq!(c[1]["name"], "app");
                    assert_eq!(c[1]["image"], "nginx:1.25");
                },
            ),
            (
                "$retainKeys: RollingUpdate to Recreate drops rollingUpdate",
                json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
                |d| assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"})),
            ),
            (
                "without $retainKeys rollingUpdate stays",
                json!({"spec": {"strategy": {"type": "Recreate"}}}),
                |d| assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%"),
            ),
            (
                "finalizers union",
                json!({"metadata": {"finalizers": ["c.example/z", "a.example/x"]}}),
                |d| {
                    assert_eq!(
                        d["metadata"]["finalizers"],
                        // Patch order first where it decides (c is new, a precedes b
                        // in the original), as upstream's mergeSortedSlice does.
                        json!(["c.example/z", "a.example/x", "b.example/y"])
                    )
                },
            ),
            (
                "$deleteFromPrimitiveList on finalizers",
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example/x"]}}),
                |d| assert_eq!(d["metadata"]["finalizers"], json!(["b.example/y"])),
            ),
            (
                "kubectl apply removing a finalizer",
                json!({"metadata": {
                    "$setElementOrder/finalizers": ["b.example/y"],
                    "$deleteFromPrimitiveList/finalizers": ["a.example/x"]
                }}),
                |d| assert_eq!(d["metadata"]["finalizers"], json!(["b.example/y"])),
            ),
            (
                "null deletes a label (kubectl label tier-)",
                json!({"metadata": {"labels": {"tier": null}}}),
                |d| assert_eq!(d["metadata"]["labels"], json!({"app": "web"})),
            ),
            (
                "tolerations are replaced",
                json!({"spec": {"template": {"spec": {"tolerations": [
                    {"key": "k3", "operator": "Exists"}
                ]}}}}),
                |d| {
                    assert_eq!(
                        d["spec"]["template"]["spec"]["tolerations"],
                        json!([{"key": "k3", "operator": "Exists"}])
                    )
                },
            ),
            (
                "kubectl rollout restart annotation",
                json!({"spec": {"template": {"metadata": {"annotations": {
                    "kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"
                }}}}}),
                |d| {
                    let m = &d["spec"]["template"]["metadata"];
                    assert_eq!(
                        m["annotations"]["kubectl.kubernetes.io/restartedAt"],
                        "2025-01-01T00:00:00Z"
                    );
                    assert_eq!(m["labels"], json!({"app": "web"}));
                },
            ),
            (
                "kubectl scale style scalar",
                json!({"spec": {"replicas": 5}}),
                |d| assert_eq!(d["spec"]["replicas"], 5),
            ),
            (
                "volume element with $retainKeys switches source",
                json!({"spec": {"template": {"spec": {"volumes": [
                    {"name": "data", "$retainKeys": ["name", "configMap"], "configMap": {"name": "cm"}}
                ]}}}}),
                |d| {
                    assert_eq!(
                        d["spec"]["template"]["spec"]["volumes"],
                        json!([{"name": "data", "configMap": {"name": "cm"}}])
                    )
                },
            ),
            (
                "$patch: replace element replaces the list",
                json!({"spec": {"template": {"spec": {"containers": [
                    {"$patch": "replace"},
                    {"name": "only", "image": "x"}
                ]}}}}),
                |d| {
                    assert_eq!(
                        d["spec"]["template"]["spec"]["containers"],
                        json!([{"name": "only", "image": "x"}])
                    )
                },
            ),
            (
                "$patch: replace on a map",
                json!({"metadata": {"labels": {"$patch": "replace", "new": "1"}}}),
                |d| assert_eq!(d["metadata"]["labels"], json!({"new": "1"})),
            ),
            (
                "$patch: delete on a map empties it",
                json!({"metadata": {"labels": {"$patch": "delete"}}}),
                |d| assert_eq!(d["metadata"]["labels"], json!({})),
            ),
            (
                "new container port merges by containerPort",
                json!({"spec": {"template": {"spec": {"containers": [
                    {"name": "app", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}]}
                ]}}}}),
                |d| {
                    assert_eq!(
                        d["spec"]["template"]["spec"]["containers"][0]["ports"],
                        json!([{"containerPort": 80, "protocol": "TCP", "name": "http"}, {"containerPort": 443}])
                    )
                },
            ),
            (
                "directives in an added subtree do not remain",
                json!({"spec": {"template": {"spec": {"containers": [{
                    "name": "new",
                    "image": "x",
                    "$setElementOrder/env": [{"name": "E"}],
                    "env": [{"name": "E", "value": "e"}, {"name": "gone", "$patch": "delete"}],
                    "resources": {"$retainKeys": ["limits"], "limits": {"cpu": "1"}, "requests": null}
                }]}}}}),
                |d| {
                    let c = &d["spec"]["template"]["spec"]["containers"];
                    assert_eq!(
                        c[0],
                        json!({
                            "name": "new",
                            "image": "x",
                            "env": [{"name": "E", "value": "e"}],
                            "resources": {"limits": {"cpu": "1"}}
                        })
                    );
                    assert_eq!(c.as_array().map(Vec::len), Some(3));
                },
            ),
        ];
        let schema = schema_for("apps", "Deployment");
        for (name, patch, check) in cases {
            let got = apply(&schema, deployment(), patch)
                .unwrap_or_else(|e| panic!("{name}: unexpected error {e}"));
            check(&got);
            let text = got.to_string();
            for directive in [
                "$patch",
                "$retainKeys",
                "$setElementOrder",
                "$deleteFromPrimitiveList",
            ] {
                assert!(
                    !text.contains(directive),
                    "{name}: {directive} left in {text}"
                );
            }
        }
    }

    /// `(name, original, patch, expected)` with upstream's test `MergeItem`
    /// schema, from apimachinery's `patch_test.go`.
    #[test]
    fn upstream_cases() {
        let cases: Vec<(&str, Value, Value, Value)> = vec![
            (
                "unique scalars when merging lists",
                json!({"mergingIntList": [1, 2]}),
                json!({"mergingIntList": [2, 3]}),
                json!({"mergingIntList": [1, 2, 3]}),
            ),
            (
                "delete map from nested map",
                json!({"simpleMap": {"key1": 1, "key2": 1}}),
                json!({"simpleMap": {"$patch": "delete"}}),
                json!({"simpleMap": {}}),
            ),
            (
                "delete all items from merging list",
                json!({"mergingList": [{"name": 1}, {"name": 2}]}),
                json!({"mergingList": [{"$patch": "replace"}]}),
                json!({"mergingList": []}),
            ),
            (
                "merge empty merging lists",
                json!({"mergingList": []}),
                json!({"mergingList": []}),
                json!({"mergingList": []}),
            ),
            (
                "delete all keys from map",
                json!({"name": 1, "value": 1}),
                json!({"$patch": "replace"}),
                json!({}),
            ),
            (
                "add key and delete all keys from map",
                json!({"name": 1, "value": 1}),
                json!({"other": "a", "$patch": "replace"}),
                json!({"other": "a"}),
            ),
            (
                "delete all duplicate entries in a merging list",
                json!({"mergingList": [{"name": 1}, {"name": 1}, {"name": 2, "value": "a"}, {"name": 3}, {"name": 3}]}),
                json!({"mergingList": [{"name": 1, "$patch": "delete"}, {"name": 3, "$patch": "delete"}]}),
                json!({"mergingList": [{"name": 2, "value": "a"}]}),
            ),
            (
                "retainKeys map merge an empty map",
                json!({"retainKeysMap": {"name": "foo", "value": "a"}}),
                json!({"retainKeysMap": {}}),
                json!({"retainKeysMap": {"name": "foo", "value": "a"}}),
            ),
            (
                "retainKeys list can delete a field when no retainKeys directive present",
                json!({"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "a"}]}),
                json!({"retainKeysMergingList": [{"name": "foo", "value": null}]}),
                json!({"retainKeysMergingList": [{"name": "bar"}, {"name": "foo"}]}),
            ),
            (
                "preserve the order from the patch in a merging list",
                json!({"mergingList": [{"name": 1}, {"name": 2, "value": "b"}, {"name": 3}]}),
                json!({"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}, {"name": 2, "other": "x"}]}),
                json!({"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}, {"name": 2, "value": "b", "other": "x"}]}),
            ),
            (
                "preserve the order from the patch in a merging list 2",
                json!({"mergingList": [{"name": 1}, {"name": 2, "value": "b"}, {"name": 3}]}),
                json!({"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}]}),
                json!({"mergingList": [{"name": 2, "value": "b"}, {"name": 3, "value": "c"}, {"name": 1, "value": "a"}]}),
            ),
            (
                "preserve the order from the patch in a merging int list",
                json!({"mergingIntList": [1, 2, 3]}),
                json!({"mergingIntList": [3, 1]}),
                json!({"mergingIntList": [2, 3, 1]}),
            ),
            (
                "$setElementOrder contains item that is not present in the list to be merged",
                json!({"mergingList": [{"name": 1}, {"name": 3}]}),
                json!({
                    "$setElementOrder/mergingList": [{"name": 3}, {"name": 2}, {"name": 1}],
                    "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]
                }),
                json!({"mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]}),
            ),
            (
                "$setElementOrder contains item that is not present in the int list",
                json!({"mergingIntList": [1, 3]}),
                json!({"$setElementOrder/mergingIntList": [3, 2, 1]}),
                json!({"mergingIntList": [3, 1]}),
            ),
            (
                "$deleteFromPrimitiveList of nonexistent item",
                json!({"mergingIntList": [1, 2]}),
                json!({"$deleteFromPrimitiveList/mergingIntList": [3]}),
                json!({"mergingIntList": [1, 2]}),
            ),
            (
                "$deleteFromPrimitiveList on empty primitive list",
                json!({"mergingIntList": null}),
                json!({"$deleteFromPrimitiveList/mergingIntList": [3]}),
                json!({"mergingIntList": null}),
            ),
            (
                "$deleteFromPrimitiveList on nonexistent primitive list",
                json!({"foo": ["bar"]}),
                json!({"$deleteFromPrimitiveList/mergingIntList": [3]}),
                json!({"foo": ["bar"]}),
            ),
            (
                "$deleteFromPrimitiveList on a list without merge strategy",
                json!({"nonMergingIntList": [1, 2, 3]}),
                json!({"$deleteFromPrimitiveList/nonMergingIntList": [2]}),
                json!({"nonMergingIntList": [1, 3]}),
            ),
            (
                "delete items in lists of scalars (three-way on current)",
                json!({"mergingIntList": [1, 2, 3, 4]}),
                json!({"$setElementOrder/mergingIntList": [1, 2], "$deleteFromPrimitiveList/mergingIntList": [3]}),
                json!({"mergingIntList": [1, 2, 4]}),
            ),
            (
                "delete all duplicate items in lists of scalars",
                json!({"mergingIntList": [1, 2, 3, 3, 4]}),
                json!({"$setElementOrder/mergingIntList": [1, 2], "$deleteFromPrimitiveList/mergingIntList": [3]}),
                json!({"mergingIntList": [1, 2, 4]}),
            ),
            (
                "merge lists of maps (three-way on current)",
                json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]}),
                json!({
                    "$setElementOrder/mergingList": [{"name": 4}, {"name": 1}, {"name": 2}, {"name": 3}],
                    "mergingList": [{"name": 4, "value": 4}, {"name": 3, "value": 3}]
                }),
                json!({"mergingList": [
                    {"name": 4, "value": 4},
                    {"name": 1, "other": "a"},
                    {"name": 2, "value": 2, "other": "b"},
                    {"name": 3, "value": 3}
                ]}),
            ),
            (
                "nested patch merge with empty list (three-way on current)",
                json!({"name": "hi", "mergingList": [{"name": "hello2"}]}),
                json!({
                    "$setElementOrder/mergingList": [{"name": "hello"}, {"name": "doesntexist"}],
                    "mergingList": [{"name": "hello"}, {"$patch": "delete", "name": "doesntexist"}]
                }),
                json!({"name": "hi", "mergingList": [{"name": "hello"}, {"name": "hello2"}]}),
            ),
            (
                "retainKeys map should clear defaulted field",
                json!({"retainKeysMap": {"value": "foo"}}),
                json!({"retainKeysMap": {"$retainKeys": ["other"], "other": "bar"}}),
                json!({"retainKeysMap": {"other": "bar"}}),
            ),
            (
                "defined null values are not added",
                json!({"name": "a", "other": "a"}),
                json!({"name": 1, "value": 1, "other": null}),
                json!({"name": 1, "value": 1}),
            ),
            (
                "custom resource paths fall back to JSON merge patch",
                json!({"spec": {"items": [1, 2], "nested": {"a": 1}}}),
                json!({"spec": {"items": [3], "nested": {"b": 2}}}),
                json!({"spec": {"items": [3], "nested": {"a": 1, "b": 2}}}),
            ),
        ];
        for (name, original, patch, expected) in cases {
            let got = apply(&TestSchema, original, patch)
                .unwrap_or_else(|e| panic!("{name}: unexpected error {e}"));
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn upstream_errors() {
        let cases: Vec<(&str, Value, Value, &str)> = vec![
            (
                "order in $setElementOrder and patch list must match",
                json!({"mergingList": [{"name": 1}, {"name": 3}, {"name": 2}]}),
                json!({
                    "$setElementOrder/mergingList": [{"name": 1}, {"name": 2}, {"name": 3}],
                    "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]
                }),
                "doesn't match",
            ),
            (
                "order in $setElementOrder and int patch list must match",
                json!({"mergingIntList": [1, 3, 2]}),
                json!({"$setElementOrder/mergingIntList": [1, 2, 3], "mergingIntList": [3, 1]}),
                "doesn't match",
            ),
            (
                "missing merge key",
                json!({"mergingList": [{"name": 1, "value": "a"}]}),
                json!({"mergingList": [{"value": "b"}]}),
                "does not contain declared merge key",
            ),
            (
                "patch key missing from $retainKeys",
                json!({"retainKeysMap": {"name": "foo"}}),
                json!({"retainKeysMap": {"$retainKeys": ["name"], "value": "x"}}),
                "retainKeys",
            ),
            (
                "$patch: merge in a list",
                json!({"mergingList": [{"name": 1}]}),
                json!({"mergingList": [{"name": 1, "$patch": "merge"}]}),
                "merging lists cannot yet be specified",
            ),
            (
                "unknown $patch on a map",
                json!({"simpleMap": {"a": 1}}),
                json!({"simpleMap": {"$patch": "bogus"}}),
                "bogus",
            ),
            (
                "mixed element types",
                json!({"mergingList": [{"name": 1}]}),
                json!({"mergingList": ["x"]}),
                "not identical",
            ),
        ];
        for (name, original, patch, want) in cases {
            let mut doc = original.clone();
            let err = strategic_merge(&mut doc, &patch, &TestSchema).expect_err(name);
            let err = err.to_string();
            assert!(err.contains(want), "{name}: error {err:?} lacks {want:?}");
            assert_eq!(doc, original, "{name}: original changed on error");
        }
        let mut doc = json!({});
        assert!(strategic_merge(&mut doc, &json!([1]), &TestSchema).is_err());
    }

    #[test]
    fn three_way_apply_on_a_pod() {
        // What kubectl apply sends after the user dropped container "b",
        // changed "a"'s image and added env "Y", while the server added
        // container "injected".
        let live = json!({
            "metadata": {"name": "p", "labels": {"app": "p", "old": "x"}},
            "spec": {"containers": [
                {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
                {"name": "b", "image": "b:1"},
                {"name": "injected", "image": "proxy:1"}
            ]}
        });
        let patch = json!({
            "metadata": {"labels": {"old": null}},
            "spec": {
                "$setElementOrder/containers": [{"name": "a"}],
                "containers": [
                    {
                        "name": "a",
                        "image": "a:2",
                        "$setElementOrder/env": [{"name": "X"}, {"name": "Y"}],
                        "env": [{"name": "Y", "value": "2"}]
                    },
                    {"name": "b", "$patch": "delete"}
                ]
            }
        });
        let got = apply(&schema_for("", "Pod"), live, patch).expect("patch applies");
        assert_eq!(
            got,
            json!({
                "metadata": {"name": "p", "labels": {"app": "p"}},
                "spec": {"containers": [
                    {"name": "a", "image": "a:2", "env": [
                        {"name": "X", "value": "1"}, {"name": "Y", "value": "2"}
                    ]},
                    {"name": "injected", "image": "proxy:1"}
                ]}
            })
        );
    }
}
