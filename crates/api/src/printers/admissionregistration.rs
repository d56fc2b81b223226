//! Table printers of the `admissionregistration.k8s.io` group's kinds, as upstream's `printers.go` prints them.

use serde_json::Value;

use super::cells::*;
use super::{Column, TablePrinter};

/// The table of `mutatingwebhookconfigurations` and `validatingwebhookconfigurations`
/// (`admissionregistration.k8s.io`): the same columns upstream.
pub struct WebhookConfiguration;

impl TablePrinter for WebhookConfiguration {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col(
                "Webhooks",
                "integer",
                "Webhooks indicates the number of webhooks registered in this configuration",
            ),
            AGE,
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        vec![
            name(o),
            (arr(o, &["webhooks"]).len() as i64).into(),
            age(o, now),
        ]
    }
}

/// The table of `validatingadmissionpolicies` and `mutatingadmissionpolicies`
/// (`admissionregistration.k8s.io`): the number of rules, and the paramKind.
pub struct AdmissionPolicy {
    /// The spec's list of rules (`validations`, `mutations`).
    rules: &'static str,
    /// Its column's name and description.
    column: (&'static str, &'static str),
}

/// The table of `validatingadmissionpolicies.admissionregistration.k8s.io`.
pub const VALIDATING_ADMISSION_POLICY: AdmissionPolicy = AdmissionPolicy {
    rules: "validations",
    column: (
        "Validations",
        "Validations indicates the number of validation rules defined in this configuration",
    ),
};

/// The table of `mutatingadmissionpolicies.admissionregistration.k8s.io`.
pub const MUTATING_ADMISSION_POLICY: AdmissionPolicy = AdmissionPolicy {
    rules: "mutations",
    column: (
        "Mutations",
        "Mutation indicates the number of mutations rules defined in this configuration",
    ),
};

impl TablePrinter for AdmissionPolicy {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col(self.column.0, "integer", self.column.1),
            col(
                "ParamKind",
                "string",
                "ParamKind specifies the kind of resources used to parameterize this policy",
            ),
            AGE,
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        let pk = at(o, &["spec", "paramKind"]);
        let pk = if pk.is_null() {
            "<unset>".to_string()
        } else {
            format!("{}/{}", st(pk, &["apiVersion"]), st(pk, &["kind"]))
        };
        vec![
            name(o),
            (arr(o, &["spec", self.rules]).len() as i64).into(),
            pk.into(),
            age(o, now),
        ]
    }
}

/// The table of `validatingadmissionpolicybindings` and `mutatingadmissionpolicybindings`
/// (`admissionregistration.k8s.io`).
pub struct AdmissionPolicyBinding;

impl TablePrinter for AdmissionPolicyBinding {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col(
                "PolicyName",
                "string",
                "PolicyName indicates the policy definition which the policy binding binded to",
            ),
            col(
                "ParamRef",
                "string",
                "ParamRef indicates the param resource which sets the configration param",
            ),
            AGE,
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        let pr = at(o, &["spec", "paramRef"]);
        let param = if pr.is_null() {
            "<unset>".to_string()
        } else if !st(pr, &["name"]).is_empty() {
            let ns = st(pr, &["namespace"]);
            if ns.is_empty() {
                format!("*/{}", st(pr, &["name"]))
            } else {
                format!("{ns}/{}", st(pr, &["name"]))
            }
        } else if !at(pr, &["selector"]).is_null() {
            selector_string(at(pr, &["selector"])).unwrap_or_default()
        } else {
            "<unset>".to_string()
        };
        vec![
            name(o),
            st(o, &["spec", "policyName"]).into(),
            param.into(),
            age(o, now),
        ]
    }
}
