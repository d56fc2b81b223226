//! The operations: one path per collection, item and subresource with the verbs the registry
//! allows, their parameters, and the discovery paths — what the documents describe.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, OnceLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;

use k8s_openapi::schemars::JsonSchema;
use serde_json::{json, Value};

use crate::registry::{ResourceInfo, Subresource};

use super::*;

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

/// A parameter of an operation other than the body.
#[derive(Clone, Copy)]
pub(super) struct Param {
    pub(super) name: &'static str,
    /// `"path"` or `"query"`.
    pub(super) location: &'static str,
    /// `"string"`, `"boolean"` or `"integer"`.
    pub(super) ty: &'static str,
    pub(super) description: &'static str,
}

pub(super) const fn query(
    name: &'static str,
    ty: &'static str,
    description: &'static str,
) -> Param {
    Param {
        name,
        location: "query",
        ty,
        description,
    }
}

pub(super) const P_NAME: Param = Param {
    name: "name",
    location: "path",
    ty: "string",
    description: "name of the object",
};
pub(super) const P_NAMESPACE: Param = Param {
    name: "namespace",
    location: "path",
    ty: "string",
    description: "object name and auth scope, such as for teams and projects",
};
pub(super) const P_PROXY_PATH: Param = Param {
    name: "path",
    location: "path",
    ty: "string",
    description: "path to the resource",
};
pub(super) const P_PRETTY: Param = query(
    "pretty",
    "string",
    "If 'true', the output is pretty printed.",
);
pub(super) const P_DRY_RUN: Param = query(
    "dryRun",
    "string",
    "When present, modifications are not persisted. The only valid value is All: all dry-run stages are processed.",
);
pub(super) const P_FIELD_MANAGER: Param = query(
    "fieldManager",
    "string",
    "A name for the actor or entity making these changes (at most 128 printable characters).",
);
pub(super) const P_FIELD_VALIDATION: Param = query(
    "fieldValidation",
    "string",
    "What the server does with unknown or duplicate fields in the object: Ignore (drop them silently), Warn (drop them with a warning per field; the default) or Strict (fail the request, listing every such field).",
);
pub(super) const P_FORCE: Param = query(
    "force",
    "boolean",
    "Take over fields other managers own when they conflict. Only for apply patches (application/apply-patch+yaml).",
);
pub(super) const LIST_PARAMS: &[Param] = &[
    query("allowWatchBookmarks", "boolean", "Ask for BOOKMARK watch events. Servers may ignore it."),
    query("continue", "string", "The continue token of the previous page of a paginated list."),
    query("fieldSelector", "string", "Restrict the list to objects whose fields match. Defaults to everything."),
    query("labelSelector", "string", "Restrict the list to objects whose labels match. Defaults to everything."),
    query("limit", "integer", "The most objects to return; a continue token in the response fetches the next page."),
    query("resourceVersion", "string", "Which version of the data the list (or watch start) must be at least as new as."),
    query("resourceVersionMatch", "string", "How resourceVersion applies to a list: Exact or NotOlderThan."),
    query("sendInitialEvents", "boolean", "Start a watch with synthetic ADDED events for the current state, then a bookmark."),
    query("timeoutSeconds", "integer", "Time limit of the list or watch call."),
    query("watch", "boolean", "Watch for changes instead of listing (the list's resourceVersion is where the watch starts)."),
];
pub(super) const DELETE_PARAMS: &[Param] = &[
    query("gracePeriodSeconds", "integer", "Seconds before the object is deleted; 0 deletes immediately. Defaults to the kind's default."),
    query("ignoreStoreReadErrorWithClusterBreakingPotential", "boolean", "Delete an object that cannot be read from storage (corrupt). Dangerous."),
    query("orphanDependents", "boolean", "Deprecated: use propagationPolicy. Whether dependents are orphaned."),
    query("propagationPolicy", "string", "Whether and how garbage collection deletes dependents: Orphan, Background or Foreground."),
];

/// What a request body or response holds.
#[derive(Clone)]
pub(super) enum Body {
    /// A definition.
    Def(String),
    /// A plain string (logs, proxied responses).
    Text,
}

impl Body {
    pub(super) fn schema(&self) -> Value {
        match self {
            Body::Def(name) => json!({ "$ref": format!("{V2_REF}{name}") }),
            Body::Text => json!({ "type": "string" }),
        }
    }
}

/// One operation, before it is rendered as v2 or v3.
pub(super) struct Op {
    pub(super) method: &'static str,
    pub(super) action: &'static str,
    pub(super) id: String,
    pub(super) description: String,
    pub(super) tag: String,
    pub(super) gvk: Option<(&'static str, &'static str, &'static str)>,
    pub(super) params: Vec<Param>,
    /// Request body: media types and schema.
    pub(super) body: Option<(&'static [&'static str], Body)>,
    /// Response status codes with their body.
    pub(super) responses: Vec<(&'static str, Body)>,
    pub(super) produces: &'static [&'static str],
}

/// `apps` → `Apps`, `rbac.authorization.k8s.io` → `RbacAuthorization`,
/// core → `Core`: the group part of upstream's operation ids.
pub(super) fn group_camel(group: &str) -> String {
    if group.is_empty() {
        return "Core".into();
    }
    group
        .trim_end_matches(".k8s.io")
        .split('.')
        .map(capitalize)
        .collect()
}

pub(super) fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The operation tag of a group-version (`apps_v1`, `core_v1`).
pub(super) fn tag(group: &str, version: &str) -> String {
    let g = group_camel(group);
    let mut c = g.chars();
    let lower: String = match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => String::new(),
    };
    format!("{lower}_{version}")
}

/// The URL prefix of a group-version: `/api/v1`, `/apis/apps/v1`.
pub(super) fn gv_prefix(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

/// The group and version of a subresource's kind.
pub(super) fn sub_group_version<'a>(r: &'a ResourceInfo, s: &'a Subresource) -> (&'a str, &'a str) {
    if s.in_parent_group_version() {
        (r.group, r.version)
    } else {
        (s.group, s.version)
    }
}

/// The kinds of one group-version an operation list is made for: the built-in ones, or those
/// of CustomResourceDefinitions.
pub(super) struct Kinds<'a> {
    /// The resources, in discovery order.
    pub(super) resources: Vec<&'static ResourceInfo>,
    /// The definition name of a kind (group, version, kind), if it has one.
    pub(super) def_for: &'a dyn Fn(&str, &str, &str) -> Option<String>,
    /// The media types a PATCH takes.
    pub(super) patch_types: &'static [&'static str],
}

/// The operations of every path of one built-in group-version, by path.
pub(super) fn gv_operations(group: &str, version: &str) -> BTreeMap<String, Vec<Op>> {
    let model = &*MODEL;
    let def_for = |g: &str, v: &str, k: &str| model.def_for(g, v, k).map(String::from);
    let kinds = Kinds {
        resources: crate::registry::resources_in(group, version).collect(),
        def_for: &def_for,
        patch_types: PATCH_TYPES,
    };
    kinds_operations(group, version, &kinds)
}

/// The operations of every path of `kinds`, by path.
pub(super) fn kinds_operations(
    group: &str,
    version: &str,
    kinds: &Kinds<'_>,
) -> BTreeMap<String, Vec<Op>> {
    let model = &*MODEL;
    let mut paths: BTreeMap<String, Vec<Op>> = BTreeMap::new();
    let prefix = gv_prefix(group, version);
    let gv_camel = format!("{}{}", group_camel(group), capitalize(version));
    let tag = tag(group, version);

    // The group-version's discovery document.
    paths.entry(format!("{prefix}/")).or_default().push(Op {
        method: "get",
        action: "",
        id: format!("get{gv_camel}APIResources"),
        description: "get available resources".into(),
        tag: tag.clone(),
        gvk: None,
        params: Vec::new(),
        body: None,
        responses: vec![("200", Body::Def(model_def_name::<meta::APIResourceList>()))],
        produces: PRODUCES,
    });

    for r in kinds.resources.iter().copied() {
        let Some(def) = (kinds.def_for)(r.group, r.version, r.kind) else {
            continue;
        };
        let kind_body = Body::Def(def);
        let list_body = (kinds.def_for)(r.group, r.version, &r.list_kind()).map(Body::Def);
        let gvk = Some((r.group, r.version, r.kind));
        let ns = if r.namespaced { "Namespaced" } else { "" };
        let (collection, path_params): (String, Vec<Param>) = if r.namespaced {
            (
                format!("{prefix}/namespaces/{{namespace}}/{}", r.plural),
                vec![P_NAMESPACE],
            )
        } else {
            (format!("{prefix}/{}", r.plural), Vec::new())
        };
        let item = format!("{collection}/{{name}}");
        let item_params: Vec<Param> = [P_NAME]
            .into_iter()
            .chain(path_params.iter().copied())
            .collect();
        let with = |base: &[Param], extra: &[Param]| -> Vec<Param> {
            base.iter()
                .chain(extra)
                .copied()
                .chain([P_PRETTY])
                .collect()
        };
        let write_params = [P_DRY_RUN, P_FIELD_MANAGER, P_FIELD_VALIDATION];
        let patch_params = [P_DRY_RUN, P_FIELD_MANAGER, P_FIELD_VALIDATION, P_FORCE];
        let delete_params: Vec<Param> = [P_DRY_RUN]
            .into_iter()
            .chain(DELETE_PARAMS.iter().copied())
            .collect();
        let op = |method, action, verb: &str, suffix: &str, description: String| Op {
            method,
            action,
            id: format!("{verb}{gv_camel}{ns}{}{suffix}", r.kind),
            description,
            tag: tag.clone(),
            gvk,
            params: Vec::new(),
            body: None,
            responses: Vec::new(),
            produces: PRODUCES,
        };

        // Collection.
        let mut ops = Vec::new();
        if r.has_verb("list") {
            if let Some(list_body) = &list_body {
                ops.push(Op {
                    params: with(&path_params, LIST_PARAMS),
                    responses: vec![("200", list_body.clone())],
                    produces: PRODUCES_LIST,
                    ..op(
                        "get",
                        "list",
                        "list",
                        "",
                        format!("list or watch objects of kind {}", r.kind),
                    )
                });
                if r.namespaced {
                    paths
                        .entry(format!("{prefix}/{}", r.plural))
                        .or_default()
                        .push(Op {
                            params: with(&[], LIST_PARAMS),
                            responses: vec![("200", list_body.clone())],
                            produces: PRODUCES_LIST,
                            id: format!("list{gv_camel}{}ForAllNamespaces", r.kind),
                            ..op(
                                "get",
                                "list",
                                "list",
                                "",
                                format!("list or watch objects of kind {}", r.kind),
                            )
                        });
                }
            }
        }
        if r.has_verb("create") {
            ops.push(Op {
                params: with(&path_params, &write_params),
                body: Some((&["*/*"], kind_body.clone())),
                responses: vec![
                    ("200", kind_body.clone()),
                    ("201", kind_body.clone()),
                    ("202", kind_body.clone()),
                ],
                ..op("post", "post", "create", "", format!("create a {}", r.kind))
            });
        }
        if r.has_verb("deletecollection") {
            let params: Vec<Param> = delete_params
                .iter()
                .copied()
                .chain(LIST_PARAMS.iter().copied())
                .collect();
            ops.push(Op {
                params: with(&path_params, &params),
                body: Some((&["*/*"], Body::Def(model.aux.delete_options.clone()))),
                responses: vec![("200", Body::Def(model.aux.status.clone()))],
                ..op(
                    "delete",
                    "deletecollection",
                    "deletecollection",
                    "",
                    format!("delete collection of {}", r.kind),
                )
            });
        }
        if !ops.is_empty() {
            paths.entry(collection.clone()).or_default().extend(ops);
        }

        // Item.
        let mut ops = Vec::new();
        if r.has_verb("get") {
            ops.push(Op {
                params: with(&item_params, &[]),
                responses: vec![("200", kind_body.clone())],
                ..op(
                    "get",
                    "get",
                    "read",
                    "",
                    format!("read the specified {}", r.kind),
                )
            });
        }
        if r.has_verb("update") {
            ops.push(Op {
                params: with(&item_params, &write_params),
                body: Some((&["*/*"], kind_body.clone())),
                responses: vec![("200", kind_body.clone()), ("201", kind_body.clone())],
                ..op(
                    "put",
                    "put",
                    "replace",
                    "",
                    format!("replace the specified {}", r.kind),
                )
            });
        }
        if r.has_verb("patch") {
            ops.push(Op {
                params: with(&item_params, &patch_params),
                body: Some((kinds.patch_types, Body::Def(model.aux.patch.clone()))),
                responses: vec![("200", kind_body.clone()), ("201", kind_body.clone())],
                ..op(
                    "patch",
                    "patch",
                    "patch",
                    "",
                    format!("partially update the specified {}", r.kind),
                )
            });
        }
        if r.has_verb("delete") {
            ops.push(Op {
                params: with(&item_params, &delete_params),
                body: Some((&["*/*"], Body::Def(model.aux.delete_options.clone()))),
                responses: vec![
                    ("200", Body::Def(model.aux.status.clone())),
                    ("202", Body::Def(model.aux.status.clone())),
                ],
                ..op(
                    "delete",
                    "delete",
                    "delete",
                    "",
                    format!("delete a {}", r.kind),
                )
            });
        }
        if !ops.is_empty() {
            paths.entry(item.clone()).or_default().extend(ops);
        }

        // Subresources.
        for s in r.subresources {
            let sub_path = format!("{item}/{}", s.name);
            let suffix = capitalize(s.name);
            let (sg, sv) = sub_group_version(r, s);
            let sub_gvk = Some((sg, sv, s.kind));
            let mut ops = Vec::new();
            match (s.name, (kinds.def_for)(sg, sv, s.kind)) {
                ("log", _) => {
                    let log_params = [
                        query("container", "string", "The container to stream the logs of. Defaults to the only container, if there is one."),
                        query("follow", "boolean", "Keep streaming the log as it grows."),
                        query("limitBytes", "integer", "Stop after this many bytes."),
                        query("previous", "boolean", "The log of the previous, terminated instance of the container."),
                        query("sinceSeconds", "integer", "Only lines from the last this many seconds."),
                        query("tailLines", "integer", "Only this many lines from the end of the log."),
                        query("timestamps", "boolean", "Prefix each line with an RFC3339 timestamp."),
                    ];
                    ops.push(Op {
                        params: with(&item_params, &log_params),
                        responses: vec![("200", Body::Text)],
                        produces: &["text/plain", "application/json", "application/yaml"],
                        gvk: sub_gvk,
                        ..op(
                            "get",
                            "get",
                            "read",
                            &suffix,
                            format!("read log of the specified {}", r.kind),
                        )
                    });
                }
                (_, Some(sdef)) => {
                    let body = Body::Def(sdef);
                    for verb in s.verbs {
                        let o = match *verb {
                            "get" => Op {
                                params: with(&item_params, &[]),
                                responses: vec![("200", body.clone())],
                                ..op(
                                    "get",
                                    "get",
                                    "read",
                                    &suffix,
                                    format!("read {} of the specified {}", s.name, r.kind),
                                )
                            },
                            "update" => Op {
                                params: with(&item_params, &write_params),
                                body: Some((&["*/*"], body.clone())),
                                responses: vec![("200", body.clone()), ("201", body.clone())],
                                ..op(
                                    "put",
                                    "put",
                                    "replace",
                                    &suffix,
                                    format!("replace {} of the specified {}", s.name, r.kind),
                                )
                            },
                            "patch" => Op {
                                params: with(&item_params, &patch_params),
                                body: Some((kinds.patch_types, Body::Def(model.aux.patch.clone()))),
                                responses: vec![("200", body.clone()), ("201", body.clone())],
                                ..op(
                                    "patch",
                                    "patch",
                                    "patch",
                                    &suffix,
                                    format!(
                                        "partially update {} of the specified {}",
                                        s.name, r.kind
                                    ),
                                )
                            },
                            "create" => Op {
                                params: with(&item_params, &write_params),
                                body: Some((&["*/*"], body.clone())),
                                responses: vec![
                                    ("200", body.clone()),
                                    ("201", body.clone()),
                                    ("202", body.clone()),
                                ],
                                ..op(
                                    "post",
                                    "post",
                                    "create",
                                    &suffix,
                                    format!("create {} of a {}", s.name, r.kind),
                                )
                            },
                            _ => continue,
                        };
                        ops.push(Op { gvk: sub_gvk, ..o });
                    }
                }
                (_, None) => {
                    // `connect` subresources: attach, exec, portforward, proxy.
                    let extra: &[Param] = match s.name {
                        "exec" => &[
                            query("command", "string", "The command to run; repeat the parameter for each argument."),
                            query("container", "string", "The container to run it in. Defaults to the only container, if there is one."),
                            query("stderr", "boolean", "Stream the command's standard error."),
                            query("stdin", "boolean", "Stream standard input to the command."),
                            query("stdout", "boolean", "Stream the command's standard output."),
                            query("tty", "boolean", "Allocate a terminal."),
                        ],
                        "attach" => &[
                            query("container", "string", "The container to attach to. Defaults to the only container, if there is one."),
                            query("stderr", "boolean", "Stream the container's standard error."),
                            query("stdin", "boolean", "Stream standard input to the container."),
                            query("stdout", "boolean", "Stream the container's standard output."),
                            query("tty", "boolean", "Whether the container was started with a terminal."),
                        ],
                        "portforward" => &[query("ports", "integer", "The ports to forward.")],
                        "proxy" => &[query("path", "string", "Path to the resource on the target.")],
                        _ => &[],
                    };
                    let mut targets = vec![(sub_path.clone(), item_params.clone(), "")];
                    if s.name == "proxy" {
                        let params: Vec<Param> =
                            item_params.iter().copied().chain([P_PROXY_PATH]).collect();
                        targets.push((format!("{sub_path}/{{path}}"), params, "WithPath"));
                    }
                    for (target, params, with_path) in targets {
                        let mut ops = Vec::new();
                        for verb in s.verbs {
                            let (method, m) = match *verb {
                                "create" => ("post", "Post"),
                                "delete" => ("delete", "Delete"),
                                "get" => ("get", "Get"),
                                "patch" => ("patch", "Patch"),
                                "update" => ("put", "Put"),
                                _ => continue,
                            };
                            let extra: &[Param] = if with_path.is_empty() { extra } else { &[] };
                            ops.push(Op {
                                method,
                                action: "connect",
                                id: format!(
                                    "connect{gv_camel}{m}{ns}{}{suffix}{with_path}",
                                    r.kind
                                ),
                                description: format!(
                                    "connect {} requests to {} of {}",
                                    method.to_uppercase(),
                                    s.name,
                                    r.kind
                                ),
                                tag: tag.clone(),
                                gvk: sub_gvk,
                                params: params.iter().chain(extra).copied().collect(),
                                body: None,
                                responses: vec![("200", Body::Text)],
                                produces: &["*/*"],
                            });
                        }
                        paths.entry(target).or_default().extend(ops);
                    }
                    continue;
                }
            }
            if !ops.is_empty() {
                paths.entry(sub_path).or_default().extend(ops);
            }
        }
    }
    paths
}

/// The definition name of a type (registering it is the model's job; this
/// only names it).
pub(super) fn model_def_name<T: JsonSchema>() -> String {
    T::schema_name().into_owned()
}

/// The operations of the discovery documents: `/api/`, `/apis/`,
/// `/apis/<group>/`.
pub(super) fn discovery_operations(path: &str) -> BTreeMap<String, Vec<Op>> {
    let (url, id, def, tag) = match path {
        "api" => (
            "/api/".to_string(),
            "getCoreAPIVersions".to_string(),
            model_def_name::<meta::APIVersions>(),
            "core".to_string(),
        ),
        "apis" => (
            "/apis/".to_string(),
            "getAPIVersions".to_string(),
            model_def_name::<meta::APIGroupList>(),
            "apis".to_string(),
        ),
        _ => {
            let group = path.trim_start_matches("apis/");
            let camel = group_camel(group);
            let mut c = camel.chars();
            let lower: String = c
                .next()
                .map(|f| f.to_lowercase().chain(c).collect())
                .unwrap_or_default();
            (
                format!("/apis/{group}/"),
                format!("get{camel}APIGroup"),
                model_def_name::<meta::APIGroup>(),
                lower,
            )
        }
    };
    let mut paths = BTreeMap::new();
    paths.insert(
        url,
        vec![Op {
            method: "get",
            action: "",
            id,
            description: "get available API versions".into(),
            tag,
            gvk: None,
            params: Vec::new(),
            body: None,
            responses: vec![("200", Body::Def(def))],
            produces: PRODUCES,
        }],
    );
    paths
}

/// What a v3 path serves: a group-version's resources or a discovery
/// endpoint.
pub(super) enum DocKind {
    GroupVersion(&'static str, &'static str),
    Discovery,
}

/// Every path [`v3_group_version`] serves, each with its document's cache.
pub(super) static V3_DOCS: LazyLock<BTreeMap<String, OnceLock<Arc<super::Document>>>> =
    LazyLock::new(|| {
        let mut docs = BTreeMap::new();
        docs.insert("api".to_string(), OnceLock::new());
        docs.insert("apis".to_string(), OnceLock::new());
        for r in crate::registry::served() {
            let gv = if r.group.is_empty() {
                format!("api/{}", r.version)
            } else {
                docs.insert(format!("apis/{}", r.group), OnceLock::new());
                format!("apis/{}/{}", r.group, r.version)
            };
            docs.insert(gv, OnceLock::new());
        }
        docs
    });

pub(super) fn doc_kind(path: &str) -> Option<DocKind> {
    if path == "api" || path == "apis" {
        return Some(DocKind::Discovery);
    }
    crate::registry::served().find_map(|r| {
        if r.group.is_empty() {
            (path == format!("api/{}", r.version))
                .then_some(DocKind::GroupVersion(r.group, r.version))
        } else if path == format!("apis/{}/{}", r.group, r.version) {
            Some(DocKind::GroupVersion(r.group, r.version))
        } else if path == format!("apis/{}", r.group) {
            Some(DocKind::Discovery)
        } else {
            None
        }
    })
}

pub(super) fn operations_for(path: &str) -> BTreeMap<String, Vec<Op>> {
    match doc_kind(path) {
        Some(DocKind::GroupVersion(g, v)) => gv_operations(g, v),
        Some(DocKind::Discovery) => discovery_operations(path),
        None => BTreeMap::new(),
    }
}
