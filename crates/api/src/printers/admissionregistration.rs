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

/// The table of `validatingadmissionpolicies.admissionregistration.k8s.io`.
pub struct ValidatingAdmissionPolicy;

impl TablePrinter for ValidatingAdmissionPolicy {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Validations", "integer", "Validations indicates the number of validation rules defined in this configuration"),
            col("ParamKind", "string", "ParamKind specifies the kind of resources used to parameterize this policy"),
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
            (arr(o, &["spec", "validations"]).len() as i64).into(),
            pk.into(),
            age(o, now),
        ]
    }
}

/// The table of `validatingadmissionpolicybindings.admissionregistration.k8s.io`.
pub struct ValidatingAdmissionPolicyBinding;

impl TablePrinter for ValidatingAdmissionPolicyBinding {
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
