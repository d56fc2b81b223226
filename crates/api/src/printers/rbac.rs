//! Table printers of the `rbac.authorization.k8s.io` group's kinds, as upstream's `printers.go` prints them.

use serde_json::Value;

use super::cells::*;
use super::{Column, TablePrinter};

/// The table of `rolebindings.rbac.authorization.k8s.io` and
/// `clusterrolebindings.rbac.authorization.k8s.io` (the same columns upstream).
pub struct RoleBinding;

impl TablePrinter for RoleBinding {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Role", "string", "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable."),
            AGE,
            wide("Users", "string", "Users in the roleBinding"),
            wide("Groups", "string", "Groups in the roleBinding"),
            wide("ServiceAccounts", "string", "ServiceAccounts in the roleBinding"),
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        let role = format!(
            "{}/{}",
            st(o, &["roleRef", "kind"]),
            st(o, &["roleRef", "name"])
        );
        let (mut users, mut groups, mut sas) = (vec![], vec![], vec![]);
        for s in arr(o, &["subjects"]) {
            match st(s, &["kind"]) {
                "ServiceAccount" => {
                    sas.push(format!("{}/{}", st(s, &["namespace"]), st(s, &["name"])))
                }
                "User" => users.push(st(s, &["name"]).to_string()),
                "Group" => groups.push(st(s, &["name"]).to_string()),
                _ => {}
            }
        }
        vec![
            name(o),
            role.into(),
            age(o, now),
            users.join(", ").into(),
            groups.join(", ").into(),
            sas.join(", ").into(),
        ]
    }
}
