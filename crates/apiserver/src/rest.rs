//! The REST verbs over the store, one implementation for every resource (upstream's generic
//! registry `Store`): objects are JSON, kept in [`crate::storage`]; what a kind does differently
//! (defaulting, validation, what a status update may touch, graceful deletion, allocations) is
//! its [`Strategy`](crate::registry::Strategy)'s, called at upstream's points; admission is
//! [`crate::admission`]'s.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use ferry_store::{KeyRange, RangeRequest, Revision, StoreError};
use serde_json::{json, Map, Value};

use crate::admission::{Attributes, Chain, Operation};
use crate::fieldmanager;
use crate::journey;
use crate::object::{self, meta_str, metadata_mut};
use crate::registry::{generic, Registry, Resource};
use crate::status::{ApiError, Target};
use crate::storage::{key, prefix, Storage};
use ferry_api::selector::{FieldSelector, LabelSelector};

/// What the REST verbs work with: the storage, the admission chain writes go through, and the
/// served resources.
pub struct Rest {
    /// Where objects live.
    pub storage: Storage,
    /// Admission plugins, in order.
    pub admission: Chain,
    /// The served resources and their strategies.
    pub registry: Registry,
    /// Authentication and authorization, for the CEL `authorizer` of admission expressions.
    pub auth: Option<Arc<crate::auth::Auth>>,
}

/// A resource request after authentication and authorization.
pub struct Request<'a> {
    /// What the path names.
    pub resource: &'a Resource,
    /// Namespace from the path ("" for cluster-scoped or all namespaces).
    pub namespace: &'a str,
    /// Name from the path ("" for collections).
    pub name: &'a str,
    /// Subresource from the path.
    pub subresource: &'a str,
    /// Query parameters.
    pub query: &'a HashMap<String, String>,
    /// The request body.
    pub body: Bytes,
    /// The body's content type.
    pub content_type: &'a str,
    /// Warnings for the client (`Warning` response headers), e.g. unknown fields with
    /// `fieldValidation=Warn`.
    pub warnings: &'a parking_lot::Mutex<Vec<String>>,
    /// Audit annotations admission leaves for the audit log.
    pub audit_annotations: &'a parking_lot::Mutex<crate::audit::Annotations>,
    /// Who is asking (`None` for the server's own writes); strategies record it where upstream
    /// does (a CertificateSigningRequest's `spec.username`).
    pub user: Option<&'a crate::auth::UserInfo>,
    /// The client's `User-Agent`: the field manager of a write without `fieldManager`.
    pub user_agent: &'a str,
}

impl Request<'_> {
    fn target<'b>(&'b self, name: &'b str) -> Target<'b> {
        Target::of(self.resource.info, name)
    }

    fn dry_run(&self) -> bool {
        self.query.get("dryRun").is_some_and(|v| v == "All")
    }
}

/// What a request the server makes of itself (bootstrap objects, its own controllers) carries
/// beside its target: no query, warnings and audit annotations nobody reads, no user.
#[derive(Default)]
pub struct Internal {
    query: HashMap<String, String>,
    warnings: parking_lot::Mutex<Vec<String>>,
    audit_annotations: parking_lot::Mutex<crate::audit::Annotations>,
}

impl Internal {
    /// A request of `resource`'s object `namespace/name` (or collection, with `name` empty),
    /// with `body` as JSON.
    pub fn request<'a>(
        &'a self,
        resource: &'a Resource,
        namespace: &'a str,
        name: &'a str,
        subresource: &'a str,
        body: &Value,
    ) -> Request<'a> {
        Request {
            resource,
            namespace,
            name,
            subresource,
            query: &self.query,
            body: Bytes::from(body.to_string()),
            content_type: "application/json",
            warnings: &self.warnings,
            audit_annotations: &self.audit_annotations,
            user: None,
            user_agent: "kube-apiserver",
        }
    }
}

/// Decodes a stored object and stamps its resourceVersion.
pub fn decode(resource: &Resource, value: &[u8], revision: Revision) -> Result<Value, ApiError> {
    let object: Value = serde_json::from_slice(value).map_err(|e| {
        ApiError::internal(format!("stored {} is not JSON: {e}", resource.info.plural))
    })?;
    let mut object = resource.strategy.decode_stored(object);
    metadata_mut(&mut object).insert(
        "resourceVersion".into(),
        Value::String(revision.to_string()),
    );
    Ok(object)
}

/// Encodes an object for the store, without its resourceVersion.
pub fn encode(resource: &Resource, object: &Value) -> Bytes {
    let mut stored = resource.strategy.encode_for_storage(object.clone());
    metadata_mut(&mut stored).remove("resourceVersion");
    Bytes::from(serde_json::to_vec(&stored).unwrap_or_default())
}

/// Parses a request body: JSON, YAML, or protobuf (client-go's typed clients send it).
pub fn parse_body(body: &[u8], content_type: &str) -> Result<Value, ApiError> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media == ferry_protobuf::MEDIA_TYPE {
        return ferry_protobuf::decode(body).map_err(|e| match e {
            ferry_protobuf::ProtobufError::Unsupported { .. } => {
                ApiError::unsupported_media_type(&e.to_string())
            }
            _ => ApiError::bad_request(e.to_string()),
        });
    }
    if media.contains("yaml") {
        return serde_yaml_ng::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")));
    }
    if !media.is_empty() && !media.contains("json") {
        return Err(ApiError::unsupported_media_type(media));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding JSON: {e}")))
}

/// GET of one object.
pub async fn get(rest: &Rest, req: &Request<'_>) -> Result<Value, ApiError> {
    let (object, _) = read(&rest.storage, req.resource, req.namespace, req.name).await?;
    Ok(object)
}

/// Reads one object with its store revision.
pub async fn read(
    storage: &Storage,
    resource: &Resource,
    namespace: &str,
    name: &str,
) -> Result<(Value, Revision), ApiError> {
    let kv = storage
        .store
        .get(&key(resource.info, namespace, name))
        .await?;
    let kv = kv.ok_or_else(|| ApiError::not_found(Target::of(resource.info, name)))?;
    let mut object = [decode(resource, &kv.value, kv.mod_revision)?];
    resource
        .strategy
        .convert_stored(storage, &mut object)
        .await?;
    let [object] = object;
    Ok((object, kv.mod_revision))
}

/// `object` as it is written: encoded, after the strategy's conversion into the stored version.
async fn encode_converted(
    storage: &Storage,
    resource: &Resource,
    object: &Value,
) -> Result<Bytes, ApiError> {
    Ok(
        match resource
            .strategy
            .convert_for_storage(storage, object)
            .await?
        {
            Some(converted) => encode(resource, &converted),
            None => encode(resource, object),
        },
    )
}

/// The `continue` token: upstream's format, base64 of `{"v":"meta.k8s.io/v1","rv":N,"start":K}`
/// where K is the key to resume at, relative to the collection's prefix.
fn encode_continue(revision: Revision, start: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": revision, "start": start});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(Revision, String), ApiError> {
    let bad = || {
        ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
    let value: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let revision = value
        .get("rv")
        .and_then(Value::as_i64)
        .filter(|r| *r > 0)
        .ok_or_else(bad)?;
    let start = value.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    if start.contains("..") || start.starts_with('/') {
        return Err(bad());
    }
    Ok((revision, start.to_string()))
}

/// The selectors of a list or watch.
pub struct Selectors {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Selectors {
    /// Parses `labelSelector` and `fieldSelector`, refusing fields the resource cannot select on.
    pub fn from_query(
        resource: &Resource,
        query: &HashMap<String, String>,
    ) -> Result<Self, ApiError> {
        let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
        let fields = FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let supported = fields_of(resource, &json!({}));
        for field in fields.fields() {
            if !supported.contains_key(field) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
        }
        Ok(Selectors { labels, fields })
    }

    /// Whether an object matches.
    pub fn matches(&self, resource: &Resource, object: &Value) -> bool {
        (self.labels.is_empty() || self.labels.matches(&object::labels(object)))
            && (self.fields.is_empty() || self.fields.matches(&fields_of(resource, object)))
    }

    /// Whether nothing is filtered.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
}

/// The selectable fields of an object (upstream's `GetAttrs`): `metadata.name` and
/// `metadata.namespace`, and its kind's own.
pub fn fields_of(resource: &Resource, object: &Value) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    for (name, pointer) in [
        ("metadata.name", "/metadata/name"),
        ("metadata.namespace", "/metadata/namespace"),
    ] {
        fields.insert(name.into(), ferry_api::selector::text_at(object, pointer));
    }
    resource.strategy.selectable_fields(object, &mut fields);
    fields
}

/// LIST: selectors, `limit`/`continue` over one consistent revision, and `resourceVersion` /
/// `resourceVersionMatch` as upstream reads them.
pub async fn list(rest: &Rest, req: &Request<'_>) -> Result<Value, ApiError> {
    let resource = req.resource;
    let info = resource.info;
    // Upstream's ListOptions validation (422s), before this verb's own reading of them.
    crate::list_options::ListOptions::parse(req.query, false, false)?;
    let selectors = Selectors::from_query(resource, req.query)?;
    let limit: i64 = match req.query.get("limit") {
        Some(l) => l
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        None => 0,
    };
    let prefix = prefix(info, req.namespace);
    let prefix_str = String::from_utf8_lossy(&prefix).into_owned();
    let resource_version = req
        .query
        .get("resourceVersion")
        .map(String::as_str)
        .unwrap_or("");
    let rv_match = req
        .query
        .get("resourceVersionMatch")
        .map(String::as_str)
        .unwrap_or("");
    let (mut revision, mut start) = (0, prefix.clone());
    if let Some(token) = req.query.get("continue").filter(|c| !c.is_empty()) {
        if !resource_version.is_empty() && resource_version != "0" {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        let (rv, relative) = decode_continue(token)?;
        revision = rv;
        start = Bytes::from(format!("{prefix_str}{relative}"));
    } else if !resource_version.is_empty() && resource_version != "0" {
        let rv: Revision = resource_version.parse().map_err(|_| {
            ApiError::bad_request(format!("invalid resource version {resource_version:?}"))
        })?;
        match rv_match {
            "Exact" => revision = rv,
            "" | "NotOlderThan" => {
                let current = rest.storage.store.current_revision().await?;
                if rv > current {
                    return Err(StoreError::FutureRevision {
                        requested: rv,
                        current,
                    }
                    .into());
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "resourceVersionMatch: Unsupported value: {other:?}"
                )))
            }
        }
    } else if rv_match == "Exact" {
        return Err(ApiError::bad_request(
            "resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"\" or \"0\"",
        ));
    }
    let range_of = |from: Bytes| match ferry_store::prefix_end(&prefix) {
        Some(end) => KeyRange::between(from, end),
        None => KeyRange::prefix(from),
    };
    let mut items = Vec::new();
    let mut next_start: Option<Bytes> = None;
    let mut remaining: Option<i64> = None;
    let page = if limit > 0 { limit } else { 0 };
    loop {
        let request = RangeRequest::new(range_of(start.clone()))
            .at(revision)
            .limit(page);
        let response = match rest.storage.store.range(request).await {
            Err(StoreError::Compacted { .. }) if req.query.contains_key("continue") => {
                return Err(ApiError::gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter."));
            }
            other => other?,
        };
        if revision == 0 {
            revision = response.header_revision;
        }
        let scanned = response.kvs.len();
        for (i, kv) in response.kvs.iter().enumerate() {
            let object = decode(resource, &kv.value, kv.mod_revision)?;
            if selectors.matches(resource, &object) {
                items.push(object);
            }
            if limit > 0 && items.len() as i64 >= limit {
                let more_here = i + 1 < scanned || response.more;
                if more_here {
                    let mut after = kv.key.to_vec();
                    after.push(0);
                    next_start = Some(Bytes::from(after));
                    if selectors.is_empty() {
                        remaining = Some(response.count - (i as i64 + 1));
                    }
                }
                break;
            }
        }
        if limit == 0 || items.len() as i64 >= limit || !response.more {
            break;
        }
        // Filtered out too many: read the next page of the same revision.
        let Some(last) = response.kvs.last() else {
            break;
        };
        let mut after = last.key.to_vec();
        after.push(0);
        start = Bytes::from(after);
    }
    let mut metadata = Map::new();
    metadata.insert(
        "resourceVersion".into(),
        Value::String(revision.to_string()),
    );
    if let Some(next) = next_start {
        let relative = String::from_utf8_lossy(&next[prefix.len()..]).into_owned();
        metadata.insert(
            "continue".into(),
            Value::String(encode_continue(revision, &relative)),
        );
        if let Some(remaining) = remaining {
            metadata.insert("remainingItemCount".into(), json!(remaining));
        }
    }
    resource
        .strategy
        .convert_stored(&rest.storage, &mut items)
        .await?;
    // Typed lists leave out their items' type; a custom resource's (unstructured) keep it.
    if !info.custom {
        for item in &mut items {
            if let Value::Object(m) = item {
                m.remove("kind");
                m.remove("apiVersion");
            }
        }
    }
    Ok(json!({
        "kind": format!("{}List", info.kind),
        "apiVersion": info.api_version(),
        "metadata": metadata,
        "items": items,
    }))
}

/// Checks `kind`/`apiVersion` of a body against the endpoint and fills them in.
fn check_type(
    object: &mut Value,
    expected_kind: &str,
    expected_api_version: &str,
) -> Result<(), ApiError> {
    if !object.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    match object.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != expected_api_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected_api_version})"
            )))
        }
        _ => {}
    }
    // The version of the expected kind (a view's, such as the Scale's, may not be the
    // resource's).
    let version = expected_api_version
        .rsplit_once('/')
        .map_or(expected_api_version, |(_, v)| v);
    match object.get("kind").and_then(Value::as_str) {
        Some(k) if k != expected_kind => {
            return Err(ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: the kind in the data ({k}) does not match the expected kind ({expected_kind})",
                expected_kind, version, expected_kind
            )))
        }
        _ => {}
    }
    object["apiVersion"] = Value::String(expected_api_version.to_string());
    object["kind"] = Value::String(expected_kind.to_string());
    Ok(())
}

/// Field validation (`fieldValidation=Strict|Warn|Ignore`): with Strict, fields the kind's
/// schema does not know fail the request with upstream's "strict decoding error"; with Warn
/// (upstream's default) they are accepted and reported in `Warning` headers, which kubectl
/// prints; Ignore accepts them silently.
fn check_fields(req: &Request<'_>, object: &mut Value) -> Result<(), ApiError> {
    let info = req.resource.info;
    let mode = req
        .query
        .get("fieldValidation")
        .map(String::as_str)
        .unwrap_or("Warn");
    // Unknown fields are dropped (upstream decodes into the typed object) and reported.
    let unknown = req.resource.strategy.prune_unknown_fields(info, object);
    if unknown.is_empty() || mode == "Ignore" {
        return Ok(());
    }
    let fields: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field {f:?}"))
        .collect();
    if mode != "Strict" {
        req.warnings.lock().extend(fields);
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "{} in version {:?} cannot be handled as a {}: strict decoding error: {}",
        info.kind,
        info.version,
        info.kind,
        fields.join(", ")
    )))
}

/// CREATE: names, namespace, generated fields, admission, defaulting, validation, then a
/// create-if-absent in the store.
pub async fn create(rest: &Rest, req: &Request<'_>) -> Result<(u16, Value), ApiError> {
    let object = parse_body(&req.body, req.content_type)?;
    fieldmanager::validate_manager(req.query, false)?;
    create_object(rest, req, object, Fields::Record).await
}

/// Whether a write records its manager's fields in `metadata.managedFields`, or brings them
/// already (an apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fields {
    Record,
    Applied,
}

/// The create path from a decoded object.
async fn create_object(
    rest: &Rest,
    req: &Request<'_>,
    mut object: Value,
    fields: Fields,
) -> Result<(u16, Value), ApiError> {
    let resource = req.resource;
    let info = resource.info;
    check_type(&mut object, info.kind, &info.api_version())?;
    check_fields(req, &mut object)?;
    let meta = metadata_mut(&mut object);
    if info.namespaced {
        match meta.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != req.namespace => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ))
            }
            _ => {
                meta.insert("namespace".into(), Value::String(req.namespace.to_string()));
            }
        }
    } else {
        meta.remove("namespace");
    }
    let has_name = meta
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if !has_name {
        if let Some(prefix) = meta
            .get("generateName")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
        {
            let generated = object::generate_name(prefix);
            meta.insert("name".into(), Value::String(generated));
        }
    }
    // System-set fields are the server's, whatever the client sent.
    meta.insert("uid".into(), Value::String(object::new_uid()));
    meta.insert(
        "creationTimestamp".into(),
        Value::String(object::now_rfc3339()),
    );
    for field in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(field);
    }
    crate::journey::name_request(info.plural, &object);
    generic::prepare_for_create(resource, &mut object, req.user);
    let mut object = generic::canonical(info, object)?;
    let field_manager = resource.field_manager();
    let attributes = Attributes {
        resource: info,
        subresource: "",
        operation: Operation::Create,
        user: req.user,
        old: None,
        dry_run: req.dry_run(),
        warnings: Some(req.warnings),
        audit_annotations: Some(req.audit_annotations),
        field_manager: Some(&field_manager),
        auth: rest.auth.as_ref(),
        strategy: Some(&*resource.strategy),
    };
    admit_and_validate(rest, resource, &attributes, &mut object, None).await?;
    let name = meta_str(&object, "name").unwrap_or("").to_string();
    if fields == Fields::Record {
        let manager = fieldmanager::manager(req.query, req.user_agent);
        resource
            .field_manager()
            .update(None, &mut object, manager, "");
    }
    journey::annotate(&mut object, None);
    if req.dry_run() {
        return Ok((201, object));
    }
    let key = key(info, req.namespace, &name);
    let lease = match resource.strategy.ttl() {
        Some(ttl) => rest.storage.lease_for(ttl).await?,
        None => 0,
    };
    let strategy = &resource.strategy;
    strategy
        .begin_create(&rest.storage, info, &key, &mut object)
        .await?;
    let encoded = match encode_converted(&rest.storage, resource, &object).await {
        Ok(encoded) => encoded,
        Err(e) => {
            strategy.release(&rest.storage, &object).await;
            return Err(e);
        }
    };
    let persisted = journey::Timed::start("persisted");
    let created = rest.storage.store.create(key, encoded, lease).await;
    match created {
        Ok(Some(revision)) => {
            persisted.done(&[("revision", &revision.to_string())], None);
            metadata_mut(&mut object).insert(
                "resourceVersion".into(),
                Value::String(revision.to_string()),
            );
            Ok((201, object))
        }
        other => {
            persisted.done(&[], other.as_ref().err().map(|e| e as _));
            strategy.release(&rest.storage, &object).await;
            match other {
                Err(e) => Err(e.into()),
                _ => Err(ApiError::already_exists(req.target(&name))),
            }
        }
    }
}

/// What an update is based on.
enum Precondition {
    /// The client sent this resourceVersion: it must still be current.
    ResourceVersion(Revision),
    /// No resourceVersion: the update applies to whatever is current (retried on races).
    None,
}

/// What an update or patch reads and writes of an object, as upstream's `rest.UpdatedObjectInfo`
/// does: the object itself or one of its parts ([`ObjectView`]), or another object computed from
/// it (the `scale` subresource's Scale, `crate::scale::ScaleView`). Chosen by the handler from the
/// subresource's registration, so the update path below has no case per subresource.
pub trait View: Sync {
    /// What the client reads, and patches, of `object`.
    fn read(&self, req: &Request<'_>, object: &Value) -> Result<Value, ApiError>;
    /// `old` with `requested` (a body in the shape [`View::read`] gives) written over it.
    fn write(&self, req: &Request<'_>, old: &Value, requested: Value) -> Result<Value, ApiError>;
    /// `None` when a body is an object of the resource's own kind (its type, fields and name
    /// are checked, its resourceVersion must parse); for a view of another kind, that kind and
    /// its apiVersion (its bodies are checked by `write`; an applied configuration must name
    /// them).
    fn other_kind(&self) -> Option<(&'static str, &'static str)>;
    /// What a server-side apply through the view merges into: what [`View::read`] gives, with
    /// the managed fields that concern it.
    fn read_for_apply(&self, req: &Request<'_>, object: &Value) -> Result<Value, ApiError> {
        self.read(req, object)
    }
    /// The field manager of what the view reads.
    fn field_manager(&self, req: &Request<'_>) -> Arc<fieldmanager::FieldManager> {
        req.resource.field_manager()
    }
}

/// The object, or one of its parts (`status`, a namespace's `finalize`, a CSR's `approval`),
/// merged over the old object by the kind's strategy.
pub struct ObjectView;

impl View for ObjectView {
    fn read(&self, _req: &Request<'_>, object: &Value) -> Result<Value, ApiError> {
        Ok(object.clone())
    }

    fn write(&self, req: &Request<'_>, old: &Value, requested: Value) -> Result<Value, ApiError> {
        let resource = req.resource;
        resource
            .strategy
            .merge_update(resource.info, req.subresource, old, requested)
    }

    fn other_kind(&self) -> Option<(&'static str, &'static str)> {
        None
    }
}

/// UPDATE (PUT) of an object or of a subresource, through `view`.
pub async fn update(rest: &Rest, req: &Request<'_>, view: &dyn View) -> Result<Value, ApiError> {
    let info = req.resource.info;
    let mut body = parse_body(&req.body, req.content_type)?;
    fieldmanager::validate_manager(req.query, false)?;
    if view.other_kind().is_some() {
        let precondition = match meta_str(&body, "resourceVersion").and_then(|rv| rv.parse().ok()) {
            Some(rv) => Precondition::ResourceVersion(rv),
            None => Precondition::None,
        };
        return write_update(rest, req, view, precondition, Fields::Record, |_old| {
            Ok(body.clone())
        })
        .await;
    }
    check_type(&mut body, info.kind, &info.api_version())?;
    check_fields(req, &mut body)?;
    match meta_str(&body, "name") {
        Some(n) if n != req.name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({})",
                req.name
            )))
        }
        _ => {}
    }
    let precondition = match meta_str(&body, "resourceVersion").filter(|v| !v.is_empty()) {
        Some(rv) => Precondition::ResourceVersion(
            rv.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        ),
        None => Precondition::None,
    };
    write_update(rest, req, view, precondition, Fields::Record, |_old| {
        Ok(body.clone())
    })
    .await
}

/// PATCH: JSON patch, merge patch or strategic merge patch against the current object, then the
/// update path. Retried when the object changes underneath, unless the patch pins a
/// resourceVersion.
pub async fn patch(
    rest: &Rest,
    req: &Request<'_>,
    view: &dyn View,
) -> Result<(u16, Value), ApiError> {
    let media = req
        .content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let patch: Value = match media.as_str() {
        "application/strategic-merge-patch+json"
            if !req.resource.strategy.accepts_strategic_merge() =>
        {
            return Err(ApiError {
                code: 415,
                reason: "UnsupportedMediaType",
                message: "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".into(),
                details: None,
            })
        }
        "application/json-patch+json"
        | "application/merge-patch+json"
        | "application/strategic-merge-patch+json" => serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?,
        "application/apply-patch+yaml" => return apply(rest, req, view).await,
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    fieldmanager::validate_manager(req.query, false)?;
    let pinned = patch
        .get("metadata")
        .and_then(|m| m.get("resourceVersion"))
        .and_then(Value::as_str)
        .and_then(|rv| rv.parse().ok());
    let precondition = match pinned {
        Some(rv) => Precondition::ResourceVersion(rv),
        None => Precondition::None,
    };
    let info = req.resource.info;
    let subresource = req.subresource;
    let patched = write_update(rest, req, view, precondition, Fields::Record, move |old| {
        let mut current = view.read(req, old)?;
        match media.as_str() {
            "application/json-patch+json" => {
                let ops: json_patch::Patch =
                    serde_json::from_value(patch.clone()).map_err(|e| {
                        ApiError::bad_request(format!("error decoding JSON patch: {e}"))
                    })?;
                apply_json_patch(&mut current, &ops)?;
            }
            "application/merge-patch+json" => json_patch::merge(&mut current, &patch),
            _ => ferry_api::patch::strategic_merge(
                &mut current,
                &patch,
                &ferry_api::patch::schema_for(info.group, info.kind),
            )
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
        }
        if subresource.is_empty() {
            check_fields(req, &mut current)?;
        }
        Ok(current)
    })
    .await?;
    Ok((200, patched))
}

/// A JSON patch (RFC 6902), applied as upstream applies it ([`ferry_api::jsonpatch`]); a failed
/// operation is upstream's 422.
fn apply_json_patch(object: &mut Value, ops: &json_patch::Patch) -> Result<(), ApiError> {
    ferry_api::jsonpatch::apply(object, ops).map_err(|e| ApiError {
        code: 422,
        reason: "Invalid",
        message: format!("the server rejected our request due to an error in our request: {e}"),
        details: None,
    })
}

/// Server-side apply (`application/apply-patch+yaml`): the applied configuration merged into
/// the object by [`fieldmanager`] — or into nothing, creating it — then the update (or create)
/// path.
async fn apply(rest: &Rest, req: &Request<'_>, view: &dyn View) -> Result<(u16, Value), ApiError> {
    let config: Value = serde_yaml_ng::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    fieldmanager::validate_manager(req.query, true)?;
    let resource = req.resource;
    let info = resource.info;
    let mut config = config;
    match view.other_kind() {
        Some((kind, api_version)) => check_type(&mut config, kind, api_version)?,
        None => check_type(&mut config, info.kind, &info.api_version())?,
    }
    if req.subresource.is_empty() {
        // Unknown fields as for any write (`fieldValidation`), before the merge types them.
        check_fields(req, &mut config)?;
    }
    // Upstream checks the name of the merged object: a configuration may leave it out when the
    // object exists (as controllers applying a status do), not name another one.
    let name_differs = |object: &Value| {
        let name = meta_str(object, "name").unwrap_or("");
        (name != req.name).then(|| {
            ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                req.name
            ))
        })
    };
    if let Some(error) = meta_str(&config, "name").and_then(|_| name_differs(&config)) {
        return Err(error);
    }
    let manager = fieldmanager::manager(req.query, req.user_agent);
    let force = req
        .query
        .get("force")
        .is_some_and(|f| crate::request::query_bool(f));
    let fields = view.field_manager(req);
    let subresource = req.subresource;
    let updated = write_update(
        rest,
        req,
        view,
        Precondition::None,
        Fields::Applied,
        |old| {
            let mut current = view.read_for_apply(req, old)?;
            metadata_mut(&mut current).remove("resourceVersion");
            let mut applied = fields.apply(Some(&current), &config, manager, subresource, force)?;
            if subresource.is_empty() {
                check_fields(req, &mut applied)?;
            }
            Ok(applied)
        },
    )
    .await;
    match updated {
        Ok(applied) => Ok((200, applied)),
        Err(e) if e.code == 404 && subresource.is_empty() => {
            // Applying what does not exist creates it.
            if let Some(error) = name_differs(&config) {
                return Err(error);
            }
            let mut object = fields.apply(None, &config, manager, "", force)?;
            if info.namespaced {
                metadata_mut(&mut object)
                    .insert("namespace".into(), Value::String(req.namespace.to_string()));
            }
            create_object(rest, req, object, Fields::Applied).await
        }
        Err(e) => Err(e),
    }
}

/// The shared update path: `change` turns the current object into the requested one (in the
/// shape `view` reads); `view` writes it over the current object, which is then defaulted,
/// admitted, validated and written with compare-and-swap on the current revision.
async fn write_update(
    rest: &Rest,
    req: &Request<'_>,
    view: &dyn View,
    precondition: Precondition,
    fields: Fields,
    change: impl Fn(&Value) -> Result<Value, ApiError>,
) -> Result<Value, ApiError> {
    let resource = req.resource;
    let info = resource.info;
    let strategy = &resource.strategy;
    let key = key(info, req.namespace, req.name);
    loop {
        let (old, old_revision) = read(&rest.storage, resource, req.namespace, req.name).await?;
        if let Precondition::ResourceVersion(rv) = precondition {
            if rv != old_revision {
                return Err(ApiError::conflict(req.target(req.name), ApiError::MODIFIED));
            }
        }
        let requested = change(&old)?;
        let mut new = view.write(req, &old, requested)?;
        // Metadata the client may not change.
        for field in [
            "uid",
            "creationTimestamp",
            "namespace",
            "name",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            match old.get("metadata").and_then(|m| m.get(field)) {
                Some(v) => {
                    metadata_mut(&mut new).insert(field.into(), v.clone());
                }
                None => {
                    metadata_mut(&mut new).remove(field);
                }
            }
        }
        metadata_mut(&mut new).remove("resourceVersion");
        generic::prepare_for_update(resource, &mut new, &old);
        let mut new = generic::canonical(info, new)?;
        let field_manager = resource.field_manager();
        let attributes = Attributes {
            resource: info,
            subresource: req.subresource,
            operation: Operation::Update,
            user: req.user,
            old: Some(&old),
            dry_run: req.dry_run(),
            warnings: Some(req.warnings),
            audit_annotations: Some(req.audit_annotations),
            field_manager: req.subresource.is_empty().then_some(&*field_manager),
            auth: rest.auth.as_ref(),
            strategy: Some(&*resource.strategy),
        };
        admit_and_validate(rest, resource, &attributes, &mut new, Some(&old)).await?;
        if fields == Fields::Record {
            let manager = fieldmanager::manager(req.query, req.user_agent);
            resource
                .field_manager()
                .update(Some(&old), &mut new, manager, req.subresource);
        }
        journey::annotate(&mut new, Some(&old));
        if req.dry_run() {
            return Ok(new);
        }
        // Removing the last finalizer of an object being deleted completes the deletion.
        let finishing = meta_str(&new, "deletionTimestamp").is_some()
            && object::finalizers(&new).is_empty()
            && !strategy.awaits_graceful_termination(&new)
            && !strategy.has_spec_finalizers(&new);
        if finishing {
            match rest.storage.store.delete(key.clone(), old_revision).await? {
                Ok(_) => {
                    strategy.release(&rest.storage, &old).await;
                    return Ok(new);
                }
                Err(_) if matches!(precondition, Precondition::None) => continue,
                Err(_) => return Err(ApiError::conflict(req.target(req.name), ApiError::MODIFIED)),
            }
        }
        if new == strip_rv(&old) && !rest.storage.store.is_stale(&key).await? {
            // No change: upstream answers with the object as it is, without a write (unless
            // it is held encrypted with a key that is no longer the first).
            return view.read(req, &old);
        }
        // What the new object needs that the old one did not hold (node ports of a service
        // that became NodePort) is reserved now, and settled by the write.
        let reservations = strategy.begin_update(&rest.storage, &mut new, &old).await?;
        let encoded = match encode_converted(&rest.storage, resource, &new).await {
            Ok(encoded) => encoded,
            Err(e) => {
                reservations.revert(&rest.storage).await;
                return Err(e);
            }
        };
        let persisted = journey::Timed::start("persisted");
        let written = rest
            .storage
            .store
            .update(key.clone(), old_revision, encoded)
            .await;
        match &written {
            Ok(Ok(revision)) => persisted.done(&[("revision", &revision.to_string())], None),
            // A lost compare-and-swap is a step without a revision; the update is tried again.
            Ok(Err(_)) => persisted.done(&[], None),
            Err(error) => persisted.done(&[], Some(error)),
        }
        match written {
            Ok(Ok(revision)) => {
                reservations.commit(&rest.storage).await;
                metadata_mut(&mut new).insert(
                    "resourceVersion".into(),
                    Value::String(revision.to_string()),
                );
                return view.read(req, &new);
            }
            Ok(Err(_)) => {
                reservations.revert(&rest.storage).await;
                if matches!(precondition, Precondition::None) {
                    continue;
                }
                return Err(ApiError::conflict(req.target(req.name), ApiError::MODIFIED));
            }
            Err(e) => {
                reservations.revert(&rest.storage).await;
                return Err(e.into());
            }
        }
    }
}

/// A write's mutating admission, validation (against `old` for an update) and validating
/// admission, in that order, each a journey step of a traced request.
async fn admit_and_validate(
    rest: &Rest,
    resource: &Resource,
    attributes: &Attributes<'_>,
    object: &mut Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    journey::Timed::start("mutating admission").finish(
        rest.admission
            .admit(&rest.storage, attributes, object)
            .await,
    )?;
    journey::Timed::start("validation").finish(generic::validate(resource, object, old))?;
    journey::Timed::start("validating admission").finish(
        rest.admission
            .validate(&rest.storage, attributes, object)
            .await,
    )
}

fn strip_rv(object: &Value) -> Value {
    let mut copy = object.clone();
    metadata_mut(&mut copy).remove("resourceVersion");
    copy
}

/// Delete options, from the body (kubectl) or the query (curl).
#[derive(Default)]
struct DeleteOptions {
    grace_period_seconds: Option<i64>,
    propagation_policy: Option<String>,
    precondition_uid: Option<String>,
    precondition_resource_version: Option<String>,
}

fn delete_options(req: &Request<'_>) -> Result<DeleteOptions, ApiError> {
    let mut options = DeleteOptions::default();
    if !req.body.is_empty() {
        let body = parse_body(&req.body, req.content_type)?;
        options.grace_period_seconds = body.get("gracePeriodSeconds").and_then(Value::as_i64);
        options.propagation_policy = body
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_string);
        if body.get("orphanDependents").and_then(Value::as_bool) == Some(true) {
            options
                .propagation_policy
                .get_or_insert_with(|| "Orphan".into());
        }
        options.precondition_uid = body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        options.precondition_resource_version = body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    if let Some(g) = req.query.get("gracePeriodSeconds") {
        options.grace_period_seconds = Some(
            g.parse()
                .map_err(|_| ApiError::bad_request("invalid gracePeriodSeconds"))?,
        );
    }
    if let Some(p) = req.query.get("propagationPolicy") {
        options.propagation_policy = Some(p.clone());
    }
    if let Some(p) = &options.propagation_policy {
        if !["Background", "Foreground", "Orphan"].contains(&p.as_str()) {
            return Err(ApiError::bad_request(format!(
                "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    }
    Ok(options)
}

/// DELETE of one object: preconditions, graceful deletion of bound pods, finalizers (including
/// the ones propagation policies add), then removal from the store.
pub async fn delete(rest: &Rest, req: &Request<'_>) -> Result<Value, ApiError> {
    let options = delete_options(req)?;
    delete_one(rest, req, req.name, &options).await
}

async fn delete_one(
    rest: &Rest,
    req: &Request<'_>,
    name: &str,
    options: &DeleteOptions,
) -> Result<Value, ApiError> {
    let resource = req.resource;
    let info = resource.info;
    let strategy = &resource.strategy;
    let key = key(info, req.namespace, name);
    loop {
        let (mut object, revision) = read(&rest.storage, resource, req.namespace, name).await?;
        if let Some(uid) = &options.precondition_uid {
            if meta_str(&object, "uid") != Some(uid.as_str()) {
                return Err(ApiError::conflict(
                    req.target(name),
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta_str(&object, "uid").unwrap_or("")
                    ),
                ));
            }
        }
        if let Some(rv) = &options.precondition_resource_version {
            if *rv != revision.to_string() {
                return Err(ApiError::conflict(req.target(name), &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {revision}"
                )));
            }
        }
        let attributes = Attributes {
            resource: info,
            subresource: "",
            operation: Operation::Delete,
            user: req.user,
            old: None,
            dry_run: req.dry_run(),
            warnings: Some(req.warnings),
            audit_annotations: Some(req.audit_annotations),
            field_manager: None,
            auth: rest.auth.as_ref(),
            strategy: None,
        };
        let mut admitted = object.clone();
        rest.admission
            .admit(&rest.storage, &attributes, &mut admitted)
            .await?;
        rest.admission
            .validate(&rest.storage, &attributes, &admitted)
            .await?;
        let mut finalizers = object::finalizers(&object);
        match options.propagation_policy.as_deref() {
            Some("Foreground") if !finalizers.iter().any(|f| f == "foregroundDeletion") => {
                finalizers.push("foregroundDeletion".into())
            }
            Some("Orphan") if !finalizers.iter().any(|f| f == "orphan") => {
                finalizers.push("orphan".into())
            }
            _ => {}
        }
        let grace = strategy.grace_period(&object, options.grace_period_seconds);
        let already_deleting = meta_str(&object, "deletionTimestamp").is_some();
        if !already_deleting {
            for finalizer in strategy.delete_finalizers() {
                if !finalizers.iter().any(|f| f == finalizer) {
                    finalizers.push(finalizer.to_string());
                }
            }
        }
        if let Some(conflict) = strategy
            .repeated_delete_conflict()
            .filter(|_| already_deleting)
        {
            return Err(ApiError::conflict(req.target(name), conflict));
        }
        if finalizers.is_empty() && grace == 0 && !strategy.has_spec_finalizers(&object) {
            if req.dry_run() {
                return Ok(object);
            }
            match rest.storage.store.delete(key.clone(), revision).await? {
                Ok(_) => {
                    strategy.release(&rest.storage, &object).await;
                    return Ok(object);
                }
                Err(None) => return Err(ApiError::not_found(req.target(name))),
                Err(Some(_)) => continue,
            }
        }
        // Graceful: mark the object; its finalizers' owners (or the kubelet) finish it.
        let current_grace = object
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64);
        if already_deleting
            && current_grace.is_some_and(|g| g <= grace)
            && finalizers == object::finalizers(&object)
        {
            return Ok(object);
        }
        let now = jiff::Timestamp::now().as_second();
        let meta = metadata_mut(&mut object);
        meta.insert(
            "deletionTimestamp".into(),
            Value::String(object::rfc3339(now + grace)),
        );
        meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
        if !finalizers.is_empty() {
            meta.insert("finalizers".into(), json!(finalizers));
        }
        strategy.prepare_for_graceful_delete(&mut object);
        if req.dry_run() {
            return Ok(object);
        }
        match rest
            .storage
            .store
            .update(
                key.clone(),
                revision,
                encode_converted(&rest.storage, resource, &object).await?,
            )
            .await?
        {
            Ok(new_revision) => {
                metadata_mut(&mut object).insert(
                    "resourceVersion".into(),
                    Value::String(new_revision.to_string()),
                );
                return Ok(object);
            }
            Err(None) => return Err(ApiError::not_found(req.target(name))),
            Err(Some(_)) => continue,
        }
    }
}

/// DELETECOLLECTION: every object the selectors match, one by one, as upstream.
pub async fn delete_collection(rest: &Rest, req: &Request<'_>) -> Result<Value, ApiError> {
    let options = delete_options(req)?;
    let mut listed = list(
        rest,
        &Request {
            query: req.query,
            body: Bytes::new(),
            ..*req
        },
    )
    .await?;
    let items = listed["items"].as_array().cloned().unwrap_or_default();
    let mut deleted = Vec::new();
    for item in items {
        let name = meta_str(&item, "name").unwrap_or("").to_string();
        let namespace = meta_str(&item, "namespace").unwrap_or("").to_string();
        let one = Request {
            namespace: &namespace,
            name: &name,
            body: Bytes::new(),
            ..*req
        };
        match delete_one(rest, &one, &name, &options).await {
            Ok(object) => deleted.push(object),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    listed["items"] = Value::Array(deleted);
    Ok(listed)
}

#[cfg(test)]
mod tests {
    //! The generic verbs over an embedded store, without a socket: what the handlers call.

    use std::sync::Arc;

    use ferry_store::embedded::{Config, EmbeddedStore};
    use serde_json::json;

    use super::*;
    use crate::scale::ScaleView;
    use tracing::Instrument as _;

    struct Fixture {
        rest: Rest,
        _dir: tempfile::TempDir,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::new(dir.path());
        config.auto_compaction = None;
        let store = Arc::new(EmbeddedStore::open(config).await.expect("open"));
        Fixture {
            rest: Rest {
                storage: Storage::new(store),
                admission: Chain::from_names::<&str>(&[]).expect("empty chain"),
                registry: Registry::builtin(),
                auth: None,
            },
            _dir: dir,
        }
    }

    /// Everything a [`Request`] borrows, for one call.
    struct Call {
        group: &'static str,
        version: &'static str,
        plural: &'static str,
        name: &'static str,
        subresource: &'static str,
        query: HashMap<String, String>,
        body: Value,
        content_type: &'static str,
        warnings: parking_lot::Mutex<Vec<String>>,
        audit_annotations: parking_lot::Mutex<crate::audit::Annotations>,
    }

    impl Call {
        fn new(group: &'static str, plural: &'static str, name: &'static str) -> Call {
            Call {
                group,
                version: "v1",
                plural,
                name,
                subresource: "",
                query: HashMap::new(),
                body: Value::Null,
                content_type: "application/json",
                warnings: parking_lot::Mutex::new(Vec::new()),
                audit_annotations: Default::default(),
            }
        }

        fn sub(mut self, subresource: &'static str) -> Call {
            self.subresource = subresource;
            self
        }

        fn body(mut self, body: Value) -> Call {
            self.body = body;
            self
        }

        fn patch(mut self, content_type: &'static str, body: Value) -> Call {
            self.content_type = content_type;
            self.body = body;
            self
        }

        fn query(mut self, key: &str, value: &str) -> Call {
            self.query.insert(key.into(), value.into());
            self
        }

        fn request<'a>(&'a self, rest: &'a Rest) -> Request<'a> {
            Request {
                resource: rest
                    .registry
                    .builtin_resource(self.group, self.version, self.plural)
                    .expect("served"),
                namespace: "default",
                name: self.name,
                subresource: self.subresource,
                query: &self.query,
                body: if self.body.is_null() {
                    Bytes::new()
                } else {
                    Bytes::from(serde_json::to_vec(&self.body).expect("json"))
                },
                content_type: self.content_type,
                warnings: &self.warnings,
                audit_annotations: &self.audit_annotations,
                user: None,
                user_agent: "test",
            }
        }
    }

    fn deployment(replicas: i64) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}
                }
            }
        })
    }

    async fn create_deployment(rest: &Rest) -> Value {
        let call = Call::new("apps", "deployments", "").body(deployment(1));
        let (code, created) = create(rest, &call.request(rest)).await.expect("create");
        assert_eq!(code, 201);
        created
    }

    #[tokio::test]
    async fn a_traced_write_records_its_steps_and_carries_the_trace_on_the_object() {
        let f = fixture().await;
        let rest = &f.rest;
        let capture = ferry_journey::testing::capture();
        let annotation = |o: &Value| {
            o.pointer("/metadata/annotations")
                .and_then(|a| a.get(ferry_journey::ANNOTATION))
                .and_then(Value::as_str)
                .map(String::from)
        };
        let request = || {
            ferry_journey::step!(
                "request",
                parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                component = "kube-apiserver",
                object = "deployments/default/",
                uid = tracing::field::Empty
            )
        };
        let span = request();
        let call = Call::new("apps", "deployments", "").body(deployment(1));
        let (_, created) = create(rest, &call.request(rest))
            .instrument(span.clone())
            .await
            .expect("create");
        let context = ferry_journey::context_of(&span).expect("a journey span");
        drop(span);
        assert_eq!(annotation(&created), Some(context.to_string()));
        assert_eq!(
            capture.steps(),
            [
                "mutating admission",
                "validation",
                "validating admission",
                "persisted",
                "request"
            ]
        );
        let spans = capture.spans();
        let object = spans[4].object.as_ref().expect("named");
        assert_eq!(object.key(), "deployments/default/web");
        assert_eq!(
            object.uid.as_deref(),
            created.pointer("/metadata/uid").and_then(Value::as_str)
        );
        assert_eq!(
            spans[3].attributes.get("revision"),
            created
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(String::from)
                .as_ref()
        );
        assert!(spans
            .iter()
            .all(|s| s.trace_id == "0af7651916cd43dd8448eb211c80319c"));

        // A write that leaves the generation alone keeps the trace the object had…
        let mut labelled = created.clone();
        labelled["metadata"]["labels"] = json!({"tier": "front"});
        labelled["metadata"]["annotations"] = json!({});
        let span = request();
        let call = Call::new("apps", "deployments", "web").body(labelled);
        let updated = update(rest, &call.request(rest), &ObjectView)
            .instrument(span)
            .await
            .expect("update");
        assert_eq!(annotation(&updated), Some(context.to_string()));
        // …a spec change starts the next leg from its own request…
        let mut scaled = updated.clone();
        scaled["spec"]["replicas"] = json!(3);
        let span = request();
        let call = Call::new("apps", "deployments", "web").body(scaled);
        let rescaled = update(rest, &call.request(rest), &ObjectView)
            .instrument(span.clone())
            .await
            .expect("update");
        let next = ferry_journey::context_of(&span).expect("a journey span");
        assert_eq!(annotation(&rescaled), Some(next.to_string()));
        // …and untraced writes record nothing.
        capture.clear();
        let mut untraced = rescaled.clone();
        untraced["spec"]["replicas"] = json!(4);
        let call = Call::new("apps", "deployments", "web").body(untraced);
        let written = update(rest, &call.request(rest), &ObjectView)
            .await
            .expect("update");
        assert_eq!(annotation(&written), Some(next.to_string()));
        assert!(capture.steps().is_empty());
    }

    #[test]
    fn a_failed_json_patch_is_invalid() {
        let ops: json_patch::Patch =
            serde_json::from_value(json!([{"op": "test", "path": "/a", "value": 1}])).expect("ops");
        let error = apply_json_patch(&mut json!({"a": 2}), &ops).expect_err("fails");
        assert_eq!((error.code, error.reason), (422, "Invalid"));
    }

    #[tokio::test]
    async fn create_defaults_and_get_reads_it_back() {
        let f = fixture().await;
        let created = create_deployment(&f.rest).await;
        assert_eq!(created["metadata"]["namespace"], "default");
        assert!(created["metadata"]["uid"].is_string());
        assert_eq!(created["metadata"]["generation"], 1);
        assert_eq!(
            created["spec"]["strategy"]["type"], "RollingUpdate",
            "defaulted"
        );
        let call = Call::new("apps", "deployments", "web");
        let got = get(&f.rest, &call.request(&f.rest)).await.expect("get");
        assert_eq!(got, created);

        let again = Call::new("apps", "deployments", "").body(deployment(1));
        let err = create(&f.rest, &again.request(&f.rest))
            .await
            .expect_err("exists");
        assert_eq!((err.code, err.reason), (409, "AlreadyExists"));
    }

    #[tokio::test]
    async fn dry_run_create_writes_nothing() {
        let f = fixture().await;
        let call = Call::new("apps", "deployments", "")
            .body(deployment(1))
            .query("dryRun", "All");
        create(&f.rest, &call.request(&f.rest))
            .await
            .expect("dry run");
        let get_call = Call::new("apps", "deployments", "web");
        let err = get(&f.rest, &get_call.request(&f.rest))
            .await
            .expect_err("absent");
        assert_eq!(err.code, 404);
    }

    #[tokio::test]
    async fn update_with_a_stale_resource_version_conflicts() {
        let f = fixture().await;
        let created = create_deployment(&f.rest).await;
        let mut newer = created.clone();
        newer["spec"]["replicas"] = json!(2);
        let call = Call::new("apps", "deployments", "web").body(newer.clone());
        let updated = update(&f.rest, &call.request(&f.rest), &ObjectView)
            .await
            .expect("update");
        assert_eq!(updated["metadata"]["generation"], 2);

        // The same body again carries the first resourceVersion, now stale.
        let call = Call::new("apps", "deployments", "web").body(newer);
        let err = update(&f.rest, &call.request(&f.rest), &ObjectView)
            .await
            .expect_err("stale");
        assert_eq!(err.code, 409);
        assert!(
            err.message.contains("the object has been modified"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn status_update_leaves_the_spec_alone() {
        let f = fixture().await;
        create_deployment(&f.rest).await;
        let mut body = deployment(7);
        body["status"] = json!({"replicas": 1, "observedGeneration": 1});
        let call = Call::new("apps", "deployments", "web")
            .sub("status")
            .body(body);
        let updated = update(&f.rest, &call.request(&f.rest), &ObjectView)
            .await
            .expect("status");
        assert_eq!(
            updated["spec"]["replicas"], 1,
            "spec unchanged through status"
        );
        assert_eq!(updated["status"]["replicas"], 1);
        assert_eq!(updated["metadata"]["generation"], 1);
    }

    #[tokio::test]
    async fn scale_is_read_and_patched_through_its_view() {
        let f = fixture().await;
        create_deployment(&f.rest).await;
        let call = Call::new("apps", "deployments", "web").sub("scale").patch(
            "application/merge-patch+json",
            json!({"spec": {"replicas": 5}}),
        );
        let (_, scale) = patch(&f.rest, &call.request(&f.rest), &ScaleView)
            .await
            .expect("patch");
        assert_eq!(scale["kind"], "Scale");
        assert_eq!(scale["spec"]["replicas"], 5);
        assert_eq!(scale["status"]["selector"], "app=web");
        let get_call = Call::new("apps", "deployments", "web");
        let object = get(&f.rest, &get_call.request(&f.rest)).await.expect("get");
        assert_eq!(object["spec"]["replicas"], 5);
        assert_eq!(object["metadata"]["generation"], 2);
        assert_eq!(
            scale["metadata"]["resourceVersion"],
            object["metadata"]["resourceVersion"]
        );

        let call = Call::new("apps", "deployments", "web")
            .sub("scale")
            .body(json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": "web"}, "spec": {"replicas": -1}}));
        let err = update(&f.rest, &call.request(&f.rest), &ScaleView)
            .await
            .expect_err("negative");
        assert_eq!(err.code, 422);
        assert!(
            err.message.contains("must be greater than or equal to 0"),
            "{}",
            err.message
        );
    }

    /// The reservation keys (cluster IPs, node ports) in the store.
    async fn reservations(rest: &Rest) -> usize {
        let range = ferry_store::RangeRequest::new(ferry_store::KeyRange::prefix("/ranges/"));
        rest.storage
            .store
            .range(range)
            .await
            .expect("range")
            .kvs
            .len()
    }

    #[tokio::test]
    async fn services_hold_reservations_while_they_need_them() {
        let f = fixture().await;
        let service = |spec: Value| {
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "finalizers": ["example.com/hold"]}, "spec": spec})
        };
        let refused = Call::new("", "services", "").body(service(json!({"type": "NodePort"})));
        let err = create(&f.rest, &refused.request(&f.rest))
            .await
            .expect_err("no ports");
        assert_eq!(
            err.message,
            "Service \"web\" is invalid: spec.ports: Required value"
        );
        assert_eq!(
            reservations(&f.rest).await,
            0,
            "a refused create keeps nothing"
        );

        let call = Call::new("", "services", "").body(service(
            json!({"type": "NodePort", "ports": [{"port": 80}]}),
        ));
        create(&f.rest, &call.request(&f.rest))
            .await
            .expect("create");
        assert_eq!(reservations(&f.rest).await, 2, "an address and a node port");

        let merge = |body: Value| {
            Call::new("", "services", "web").patch("application/merge-patch+json", body)
        };
        let call = merge(json!({"spec": {"type": "ClusterIP"}}));
        let (_, patched) = patch(&f.rest, &call.request(&f.rest), &ObjectView)
            .await
            .expect("to ClusterIP");
        assert_eq!(patched["spec"]["ports"][0].get("nodePort"), None);
        assert_eq!(reservations(&f.rest).await, 1, "the node port is given up");

        let call = Call::new("", "services", "web");
        delete(&f.rest, &call.request(&f.rest))
            .await
            .expect("marked for deletion");
        assert_eq!(
            reservations(&f.rest).await,
            1,
            "held until the finalizer goes"
        );
        let call = merge(json!({"metadata": {"finalizers": null}}));
        patch(&f.rest, &call.request(&f.rest), &ObjectView)
            .await
            .expect("finalized");
        assert_eq!(reservations(&f.rest).await, 0, "released with the service");
    }

    #[tokio::test]
    async fn a_patch_that_changes_nothing_writes_nothing() {
        let f = fixture().await;
        let created = create_deployment(&f.rest).await;
        let call = Call::new("apps", "deployments", "web").patch(
            "application/strategic-merge-patch+json",
            json!({"spec": {"replicas": 1}}),
        );
        let (_, patched) = patch(&f.rest, &call.request(&f.rest), &ObjectView)
            .await
            .expect("patch");
        assert_eq!(
            patched["metadata"]["resourceVersion"],
            created["metadata"]["resourceVersion"]
        );
    }
}
