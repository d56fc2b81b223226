//! The RBAC group (`pkg/registry/rbac`, `pkg/apis/rbac/validation`): roles and bindings, each
//! pair of kinds sharing one strategy that knows whether it is the namespaced one. Who may
//! write them is [`crate::rbac::escalation`]'s business; here is only what a valid one is.

pub mod binding;
pub mod role;

/// The group's name, which role references and user and group subjects carry.
pub const GROUP: &str = "rbac.authorization.k8s.io";

/// Go's `%#v` of a string slice, as upstream's field errors print rule lists:
/// `[]string{"/a", "/b"}`.
fn go_strings(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}
