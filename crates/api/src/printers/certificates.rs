//! Table printers of the `certificates.k8s.io` group's kinds, as upstream's `printers.go` prints them.

use serde_json::Value;

use super::cells::*;
use super::{Column, TablePrinter};

/// The table of `certificatesigningrequests.certificates.k8s.io`.
pub struct CertificateSigningRequest;

impl TablePrinter for CertificateSigningRequest {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            AGE,
            col("SignerName", "string", "Requested signer for the request. It is a qualified name in the form: `scope-hostname.io/name`. If empty, it will be defaulted:\n 1. If it's a kubelet client certificate, it is assigned\n    \"kubernetes.io/kube-apiserver-client-kubelet\".\n 2. If it's a kubelet serving certificate, it is assigned\n    \"kubernetes.io/kubelet-serving\".\n 3. Otherwise, it is assigned \"kubernetes.io/legacy-unknown\".\nDistribution of trust for signers happens out of band. You can select on this field using `spec.signerName`."),
            col("Requestor", "string", "Base64-encoded PKCS#10 CSR data"),
            col("RequestedDuration", "string", "expirationSeconds is the requested duration of validity of the issued certificate. The certificate signer may issue a certificate with a different validity duration so a client must check the delta between the notBefore and and notAfter fields in the issued certificate to determine the actual duration."),
            col("Condition", "string", "Conditions applied to the request, such as approval or denial."),
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        let (mut approved, mut denied, mut failed) = (false, false, false);
        for c in arr(o, &["status", "conditions"]) {
            match st(c, &["type"]) {
                "Approved" => approved = true,
                "Denied" => denied = true,
                "Failed" => failed = true,
                _ => {}
            }
        }
        let mut status = if denied {
            "Denied"
        } else if approved {
            "Approved"
        } else {
            "Pending"
        }
        .to_string();
        if failed {
            status.push_str(",Failed");
        }
        if !st(o, &["status", "certificate"]).is_empty() {
            status.push_str(",Issued");
        }
        let signer = non_empty_or(st(o, &["spec", "signerName"]), "<none>");
        let duration = match opt_int(o, &["spec", "expirationSeconds"]) {
            Some(s) => human_duration(s),
            None => "<none>".to_string(),
        };
        vec![
            name(o),
            age(o, now),
            signer.into(),
            st(o, &["spec", "username"]).into(),
            duration.into(),
            status.into(),
        ]
    }
}
