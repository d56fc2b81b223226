//! The RBAC objects the authorizer decides from, kept in memory as upstream's informer caches
//! keep them ([`crate::reflector`]): listed from the store once, then followed by watches of
//! the four resources, so a new binding takes effect as soon as it is written.
//!
//! Bindings are indexed by subject, so deciding a request looks only at the bindings of the
//! user, its groups and (for a service account's token) its service account — not at every
//! binding in the cluster.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ferry_store::{Event, EventKind, KeyValue, Store, StoreError};
use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef, Subject};
use serde::Deserialize;

use crate::auth::UserInfo;

/// The four RBAC resources, by their key prefix in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Role,
    ClusterRole,
    RoleBinding,
    ClusterRoleBinding,
}

impl Kind {
    const ALL: [Kind; 4] = [
        Kind::Role,
        Kind::ClusterRole,
        Kind::RoleBinding,
        Kind::ClusterRoleBinding,
    ];

    const fn prefix(self) -> &'static str {
        match self {
            Kind::Role => "/roles/",
            Kind::ClusterRole => "/clusterroles/",
            Kind::RoleBinding => "/rolebindings/",
            Kind::ClusterRoleBinding => "/clusterrolebindings/",
        }
    }

    fn namespaced(self) -> bool {
        matches!(self, Kind::Role | Kind::RoleBinding)
    }
}

/// The part of a stored Role or ClusterRole the authorizer needs.
#[derive(Deserialize)]
struct StoredRole {
    #[serde(default)]
    rules: Option<Vec<PolicyRule>>,
}

/// The part of a stored RoleBinding or ClusterRoleBinding the authorizer needs.
#[derive(Deserialize)]
struct StoredBinding {
    #[serde(rename = "roleRef")]
    role_ref: RoleRef,
    #[serde(default)]
    subjects: Option<Vec<Subject>>,
}

/// Whom a binding names, normalised for lookups.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum SubjectKey {
    User(String),
    Group(String),
    ServiceAccount(String, String),
}

impl SubjectKey {
    /// The key of `subject` in a binding of `namespace` ("" for cluster bindings); `None` for
    /// kinds RBAC does not know.
    fn of(subject: &Subject, namespace: &str) -> Option<SubjectKey> {
        Some(match subject.kind.as_str() {
            "User" => SubjectKey::User(subject.name.clone()),
            "Group" => SubjectKey::Group(subject.name.clone()),
            "ServiceAccount" => {
                let ns = subject
                    .namespace
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .unwrap_or(namespace);
                SubjectKey::ServiceAccount(ns.to_string(), subject.name.clone())
            }
            _ => return None,
        })
    }
}

/// The namespace and name of a service account's user name
/// (`system:serviceaccount:<namespace>:<name>`).
pub fn service_account(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix("system:serviceaccount:")?;
    let (namespace, name) = rest.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some((namespace, name))
}

/// A binding as the authorizer sees it.
#[derive(Debug)]
struct Binding {
    /// The binding's namespace ("" for a ClusterRoleBinding): where a Role it names lives.
    namespace: String,
    role_ref: RoleRef,
}

/// Everything known, with bindings indexed by subject.
#[derive(Default)]
struct State {
    /// Roles by namespace, then name.
    roles: HashMap<String, HashMap<String, Arc<Vec<PolicyRule>>>>,
    cluster_roles: HashMap<String, Arc<Vec<PolicyRule>>>,
    /// Bindings by (namespace, name); cluster bindings under namespace "".
    bindings: BTreeMap<(String, String), (Arc<Binding>, Vec<SubjectKey>)>,
    /// Bindings by namespace ("" for cluster bindings), then by subject.
    by_subject: HashMap<String, Subjects>,
}

/// The bindings of one namespace by whom they name, each map keyed so that a user's request
/// is looked up without building a key: users and groups by name, service accounts by
/// `<namespace>:<name>` (the tail of their user name).
#[derive(Default)]
struct Subjects {
    users: HashMap<String, Vec<Arc<Binding>>>,
    groups: HashMap<String, Vec<Arc<Binding>>>,
    accounts: HashMap<String, Vec<Arc<Binding>>>,
}

impl Subjects {
    fn add(&mut self, subject: &SubjectKey, binding: &Arc<Binding>) {
        let (map, key) = match subject {
            SubjectKey::User(name) => (&mut self.users, name.clone()),
            SubjectKey::Group(name) => (&mut self.groups, name.clone()),
            SubjectKey::ServiceAccount(ns, name) => (&mut self.accounts, format!("{ns}:{name}")),
        };
        map.entry(key).or_default().push(binding.clone());
    }

    /// The bindings naming `user`: by name, by each group, by service account.
    fn of<'a>(&'a self, user: &'a UserInfo) -> impl Iterator<Item = &'a Arc<Binding>> + 'a {
        let account = user
            .name
            .strip_prefix("system:serviceaccount:")
            .filter(|_| service_account(&user.name).is_some());
        let by_name = self.users.get(user.name.as_str());
        let by_group = user
            .groups
            .iter()
            .filter_map(|g| self.groups.get(g.as_str()));
        let by_account = account.and_then(|key| self.accounts.get(key));
        by_name
            .into_iter()
            .chain(by_group)
            .chain(by_account)
            .flatten()
    }
}

/// Splits a key `/<plural>/[<namespace>/]<name>` into namespace and name.
fn key_parts(kind: Kind, key: &[u8]) -> Option<(String, String)> {
    let rest = std::str::from_utf8(key).ok()?.strip_prefix(kind.prefix())?;
    if kind.namespaced() {
        let (ns, name) = rest.split_once('/')?;
        Some((ns.to_string(), name.to_string()))
    } else {
        Some((String::new(), rest.to_string()))
    }
}

impl State {
    fn put(&mut self, kind: Kind, key: &[u8], value: &[u8]) {
        let Some((namespace, name)) = key_parts(kind, key) else {
            return;
        };
        match kind {
            Kind::Role | Kind::ClusterRole => {
                let rules = match serde_json::from_slice::<StoredRole>(value) {
                    Ok(role) => role.rules.unwrap_or_default(),
                    Err(error) => {
                        tracing::warn!(%error, ?kind, name, "unreadable RBAC role");
                        Vec::new()
                    }
                };
                if kind == Kind::Role {
                    self.roles
                        .entry(namespace)
                        .or_default()
                        .insert(name, Arc::new(rules));
                } else {
                    self.cluster_roles.insert(name, Arc::new(rules));
                }
            }
            Kind::RoleBinding | Kind::ClusterRoleBinding => {
                let stored = match serde_json::from_slice::<StoredBinding>(value) {
                    Ok(b) => b,
                    Err(error) => {
                        tracing::warn!(%error, ?kind, name, "unreadable RBAC binding");
                        return;
                    }
                };
                let subjects = stored
                    .subjects
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|s| SubjectKey::of(s, &namespace))
                    .collect();
                let binding = Arc::new(Binding {
                    namespace: namespace.clone(),
                    role_ref: stored.role_ref,
                });
                self.bindings.insert((namespace, name), (binding, subjects));
            }
        }
    }

    fn delete(&mut self, kind: Kind, key: &[u8]) {
        let Some((namespace, name)) = key_parts(kind, key) else {
            return;
        };
        match kind {
            Kind::Role => {
                if let Some(roles) = self.roles.get_mut(&namespace) {
                    roles.remove(&name);
                }
            }
            Kind::ClusterRole => {
                self.cluster_roles.remove(&name);
            }
            Kind::RoleBinding | Kind::ClusterRoleBinding => {
                self.bindings.remove(&(namespace, name));
            }
        }
    }

    /// Rebuilds the subject index (after binding changes; bindings change rarely).
    fn reindex(&mut self) {
        let mut by_subject: HashMap<String, Subjects> = HashMap::new();
        for ((namespace, _), (binding, subjects)) in &self.bindings {
            let scope = by_subject.entry(namespace.clone()).or_default();
            for subject in subjects {
                scope.add(subject, binding);
            }
        }
        self.by_subject = by_subject;
    }
}

/// The RBAC objects, kept up to date from the store.
#[derive(Default)]
pub struct Policy {
    state: parking_lot::RwLock<State>,
}

impl Policy {
    /// An empty policy; [`Policy::start`] fills it.
    pub fn new() -> Arc<Policy> {
        Arc::default()
    }

    /// Lists the RBAC objects from `store` (the policy is complete when this returns), then
    /// follows their changes in a task of its own.
    pub async fn start(self: &Arc<Self>, store: Arc<dyn Store>) -> Result<(), StoreError> {
        crate::reflector::start(self, store).await
    }

    /// Calls `visit` with every rule that applies to `user` in `namespace` ("" for cluster-wide
    /// requests: ClusterRoleBindings only), ClusterRoleBindings first, until it returns false.
    /// Returns the problems met (bindings to roles that do not exist), worded as upstream.
    pub fn visit_rules(
        &self,
        user: &UserInfo,
        namespace: &str,
        mut visit: impl FnMut(&PolicyRule) -> bool,
    ) -> Vec<String> {
        let state = self.state.read();
        let mut errors = Vec::new();
        let mut seen: Vec<*const Binding> = Vec::new();
        let scopes: &[&str] = if namespace.is_empty() {
            &[""]
        } else {
            &["", namespace]
        };
        for scope in scopes {
            let Some(subjects) = state.by_subject.get(*scope) else {
                continue;
            };
            for binding in subjects.of(user) {
                // A binding naming the user twice (as user and by group) counts once.
                let id = Arc::as_ptr(binding);
                if seen.contains(&id) {
                    continue;
                }
                seen.push(id);
                let rules = match binding.role_ref.kind.as_str() {
                    "ClusterRole" => state.cluster_roles.get(&binding.role_ref.name),
                    "Role" if !binding.namespace.is_empty() => state
                        .roles
                        .get(binding.namespace.as_str())
                        .and_then(|roles| roles.get(binding.role_ref.name.as_str())),
                    _ => None,
                };
                let Some(rules) = rules else {
                    errors.push(missing_role(binding));
                    continue;
                };
                for rule in rules.iter() {
                    if !visit(rule) {
                        return errors;
                    }
                }
            }
        }
        errors
    }

    /// Every rule that applies to `user` in `namespace`, and the problems met.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<PolicyRule>, Vec<String>) {
        let mut rules = Vec::new();
        let errors = self.visit_rules(user, namespace, |rule| {
            rules.push(rule.clone());
            true
        });
        (rules, errors)
    }

    /// The rules of the role `role_ref` refers to from a binding in `namespace`.
    pub fn role_rules(&self, role_ref: &RoleRef, namespace: &str) -> Option<Arc<Vec<PolicyRule>>> {
        let state = self.state.read();
        match role_ref.kind.as_str() {
            "ClusterRole" => state.cluster_roles.get(&role_ref.name).cloned(),
            "Role" => state
                .roles
                .get(namespace)
                .and_then(|roles| roles.get(role_ref.name.as_str()))
                .cloned(),
            _ => None,
        }
    }
}

impl crate::reflector::Reflected for Policy {
    fn prefixes(&self) -> &'static [&'static str] {
        &PREFIXES
    }

    fn replace(&self, listed: Vec<(usize, KeyValue)>) {
        let mut fresh = State::default();
        for (index, kv) in listed {
            fresh.put(Kind::ALL[index], &kv.key, &kv.value);
        }
        fresh.reindex();
        *self.state.write() = fresh;
    }

    fn apply(&self, index: usize, events: &[Event]) {
        let kind = Kind::ALL[index];
        let mut state = self.state.write();
        for event in events {
            match event.kind {
                EventKind::Put => state.put(kind, &event.kv.key, &event.kv.value),
                EventKind::Delete => state.delete(kind, &event.kv.key),
            }
        }
        if matches!(kind, Kind::RoleBinding | Kind::ClusterRoleBinding) {
            state.reindex();
        }
    }
}

/// The prefixes of [`Kind::ALL`], in order.
const PREFIXES: [&str; 4] = [
    Kind::Role.prefix(),
    Kind::ClusterRole.prefix(),
    Kind::RoleBinding.prefix(),
    Kind::ClusterRoleBinding.prefix(),
];

/// Upstream's error for a binding whose role does not exist.
fn missing_role(binding: &Binding) -> String {
    let role = &binding.role_ref;
    match role.kind.as_str() {
        "Role" => format!("role.rbac.authorization.k8s.io \"{}\" not found", role.name),
        _ => format!(
            "clusterrole.rbac.authorization.k8s.io \"{}\" not found",
            role.name
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rbac::rules::tests::rule;
    use serde_json::json;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            uid: String::new(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn put(state: &mut State, key: &str, value: serde_json::Value) {
        let kind = Kind::ALL
            .into_iter()
            .find(|k| key.starts_with(k.prefix()))
            .expect("kind");
        state.put(kind, key.as_bytes(), value.to_string().as_bytes());
    }

    fn policy() -> Policy {
        let mut state = State::default();
        put(
            &mut state,
            "/clusterroles/view",
            json!({"rules": [rule(&["get", "list"], &[""], &["pods"])]}),
        );
        put(
            &mut state,
            "/roles/team/deployer",
            json!({"rules": [rule(&["create"], &["apps"], &["deployments"])]}),
        );
        put(
            &mut state,
            "/clusterrolebindings/everyone-views",
            json!({
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "Group", "name": "viewers", "apiGroup": "rbac.authorization.k8s.io"}]}),
        );
        put(
            &mut state,
            "/rolebindings/team/jane-deploys",
            json!({
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer"},
            "subjects": [{"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"},
                         {"kind": "ServiceAccount", "name": "ci"}]}),
        );
        put(
            &mut state,
            "/rolebindings/team/dangling",
            json!({
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "gone"},
            "subjects": [{"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"}]}),
        );
        state.reindex();
        Policy {
            state: parking_lot::RwLock::new(state),
        }
    }

    fn verbs(rules: &[PolicyRule]) -> Vec<String> {
        let mut verbs: Vec<String> = rules.iter().flat_map(|r| r.verbs.clone()).collect();
        verbs.sort();
        verbs
    }

    #[test]
    fn rules_come_from_the_bindings_of_the_user_its_groups_and_its_service_account() {
        let policy = policy();
        let (rules, errors) = policy.rules_for(&user("jane", &["viewers"]), "team");
        assert_eq!(verbs(&rules), ["create", "get", "list"]);
        assert_eq!(
            errors,
            ["clusterrole.rbac.authorization.k8s.io \"gone\" not found"]
        );
        // Role bindings count only in their namespace.
        let (rules, _) = policy.rules_for(&user("jane", &["viewers"]), "other");
        assert_eq!(verbs(&rules), ["get", "list"]);
        let (rules, _) = policy.rules_for(&user("jane", &[]), "");
        assert!(rules.is_empty());
        // A service-account subject without namespace means the binding's.
        let (rules, _) = policy.rules_for(&user("system:serviceaccount:team:ci", &[]), "team");
        assert_eq!(verbs(&rules), ["create"]);
        let (rules, _) = policy.rules_for(&user("system:serviceaccount:other:ci", &[]), "team");
        assert!(rules.is_empty());
    }

    #[test]
    fn deletes_take_effect() {
        let policy = policy();
        {
            let mut state = policy.state.write();
            state.delete(
                Kind::ClusterRoleBinding,
                b"/clusterrolebindings/everyone-views",
            );
            state.delete(Kind::Role, b"/roles/team/deployer");
            state.reindex();
        }
        let (rules, errors) = policy.rules_for(&user("jane", &["viewers"]), "team");
        assert!(rules.is_empty());
        assert_eq!(errors.len(), 2, "{errors:?}");
    }

    #[test]
    fn service_account_names_parse_as_upstream() {
        assert_eq!(
            service_account("system:serviceaccount:ns:sa"),
            Some(("ns", "sa"))
        );
        assert_eq!(service_account("system:serviceaccount:ns"), None);
        assert_eq!(service_account("system:serviceaccount::sa"), None);
        assert_eq!(service_account("jane"), None);
    }
}
