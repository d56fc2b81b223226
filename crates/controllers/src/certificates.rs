//! The certificate controllers of kube-controller-manager, for TLS bootstrapping of nodes:
//!
//! - **csrapproving** approves kubelet client certificate requests (signer
//!   `kubernetes.io/kube-apiserver-client-kubelet`) for `CN=system:node:<name>, O=system:nodes`
//!   asked by a bootstrapper (a new node) or by that node itself (a renewal). Upstream asks a
//!   SubjectAccessReview for `certificatesigningrequests/nodeclient` (or `selfnodeclient`),
//!   which its default RBAC grants to exactly those requestors; ferry has no RBAC yet, so the
//!   requestor's groups and name are checked directly ([`approval`]). Requests it does not
//!   recognise stay pending for `kubectl certificate approve`.
//!   It also approves a node's own request for its kubelet serving certificate (signer
//!   `kubernetes.io/kubelet-serving`) when every IP address it names is one of the addresses
//!   in the node's status and every DNS name is the node's name or host name: upstream leaves
//!   these to an external approver (or a person), k3s hands its agents serving certificates
//!   directly; checking the names against the Node is what such approvers
//!   (kubelet-csr-approver) do, so one node cannot obtain a certificate for another's address.
//! - **csrsigning** signs approved requests of the `kube-apiserver-client`,
//!   `kube-apiserver-client-kubelet` and `kubelet-serving` signers with the cluster CA (`--cluster-signing-cert-file`,
//!   `--cluster-signing-key-file`) and writes the certificate into `status.certificate`
//!   ([`signing`] decides, [`CaSigner`] signs).
//!
//! Both keep their decisions in pure functions over the CSR, tested by tables at the bottom.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::api::core::v1::Node;
use kube::api::PostParams;
use kube::{Api, ResourceExt as _};
use x509_parser::prelude::FromDer as _;

use crate::queue::{Queue, Reconciler};
use crate::util::api_code;
use crate::{ApiContext as _, Context, Error};

/// Kubelet client certificates: `CN=system:node:<name>, O=system:nodes`.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// Client certificates for the API server, any subject.
pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// Kubelet serving certificates: `CN=system:node:<name>, O=system:nodes`, DNS and IP names.
pub const KUBELET_SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
/// The usages a kubelet serving certificate may ask for.
const SERVING_USAGES: &[&str] = &["digital signature", "key encipherment", "server auth"];

/// Upstream's condition message.
const APPROVED_MESSAGE: &str =
    "Auto approving kubelet client certificate after SubjectAccessReview.";
/// The condition message of an approved serving request.
const SERVING_APPROVED_MESSAGE: &str =
    "Auto approving kubelet serving certificate: the node's own names and addresses.";
/// The usages a client certificate may ask for.
const CLIENT_USAGES: &[&str] = &["digital signature", "key encipherment", "client auth"];

fn has_condition(csr: &CertificateSigningRequest, kind: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == kind))
}

fn issued(csr: &CertificateSigningRequest) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty())
}

/// Why a request is not a client certificate request this controller can approve or sign
/// (upstream's `ValidateKubeletClientCSR` and its usage checks). The message goes into the
/// Failed condition (reason `SignerValidationFailure`).
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum RequestError {
    /// `spec.request` is not PEM.
    #[error("not PEM: {0}")]
    NotPem(pem::PemError),
    /// The PEM block is not a `CERTIFICATE REQUEST`.
    #[error("PEM block is {0}")]
    PemBlock(String),
    /// The request does not parse as PKCS#10.
    #[error("unparsable request: {0}")]
    Unparsable(x509_parser::nom::Err<x509_parser::error::X509Error>),
    /// The request is not signed by the key it carries.
    #[error("request signature: {0}")]
    Signature(x509_parser::error::X509Error),
    /// The subject's organizations are not exactly `system:nodes`.
    #[error("subject organization is not system:nodes: {0:?}")]
    Organization(Vec<String>),
    /// The subject's one common name is not `system:node:<name>`.
    #[error("subject common name does not begin with system:node: {0:?}")]
    CommonName(String),
    /// The subject has no common name, or more than one.
    #[error("subject common names: {0:?}")]
    CommonNames(Vec<String>),
    /// The request names subject alternative names.
    #[error("subject alternative names are not allowed")]
    SubjectAltNames,
    /// A serving request names something other than DNS names and IP addresses.
    #[error("only DNS names and IP addresses are allowed as subject alternative names")]
    OtherAltNames,
    /// A serving request names no DNS name or IP address.
    #[error("at least one DNS name or IP address is required")]
    NoAltNames,
    /// `server auth` is not among a serving request's usages.
    #[error("missing usage \"server auth\"")]
    MissingServerAuth,
    /// A usage a client certificate does not have.
    #[error("usage not allowed: {0:?}")]
    Usage(String),
    /// `client auth` is not among the usages.
    #[error("missing usage \"client auth\"")]
    MissingClientAuth,
}

/// What a node's certificate request asks for.
#[derive(Debug, Default, PartialEq)]
struct NodeRequest {
    /// The node in `CN=system:node:<name>`.
    node: String,
    /// Its DNS subject alternative names.
    dns_names: Vec<String>,
    /// Its IP subject alternative names.
    ips: Vec<std::net::IpAddr>,
    /// It has subject alternative names of other kinds (email, URI, …).
    other_names: bool,
}

impl NodeRequest {
    fn has_alt_names(&self) -> bool {
        self.other_names || !self.dns_names.is_empty() || !self.ips.is_empty()
    }
}

/// The node name a kubelet client certificate request is for, or why it is not one (upstream's
/// `ValidateKubeletClientCSR`).
fn kubelet_client_node(csr: &CertificateSigningRequest) -> Result<String, RequestError> {
    let request = node_request(csr)?;
    if request.has_alt_names() {
        return Err(RequestError::SubjectAltNames);
    }
    Ok(request.node)
}

/// A kubelet serving certificate request, or why it is not one (upstream's
/// `isKubeletServing` checks: the node's subject, DNS and IP names only, at least one, and
/// serving usages).
fn kubelet_serving_request(csr: &CertificateSigningRequest) -> Result<NodeRequest, RequestError> {
    let request = node_request(csr)?;
    if request.other_names {
        return Err(RequestError::OtherAltNames);
    }
    if !request.has_alt_names() {
        return Err(RequestError::NoAltNames);
    }
    let usages = csr.spec.usages.as_deref().unwrap_or_default();
    if let Some(bad) = usages
        .iter()
        .find(|u| !SERVING_USAGES.contains(&u.as_str()))
    {
        return Err(RequestError::Usage(bad.clone()));
    }
    if !usages.iter().any(|u| u == "server auth") {
        return Err(RequestError::MissingServerAuth);
    }
    Ok(request)
}

/// The subject and names of a node's request (`CN=system:node:<name>, O=system:nodes`).
fn node_request(csr: &CertificateSigningRequest) -> Result<NodeRequest, RequestError> {
    let block = pem::parse(&csr.spec.request.0).map_err(RequestError::NotPem)?;
    if block.tag() != "CERTIFICATE REQUEST" {
        return Err(RequestError::PemBlock(block.tag().to_string()));
    }
    let (_, request) =
        x509_parser::certification_request::X509CertificationRequest::from_der(block.contents())
            .map_err(RequestError::Unparsable)?;
    request
        .verify_signature()
        .map_err(RequestError::Signature)?;
    let info = &request.certification_request_info;
    let organizations: Vec<String> = info
        .subject
        .iter_organization()
        .map(|o| o.as_str().unwrap_or("").to_string())
        .collect();
    if organizations != ["system:nodes"] {
        return Err(RequestError::Organization(organizations));
    }
    let names: Vec<&str> = info
        .subject
        .iter_common_name()
        .map(|c| c.as_str().unwrap_or(""))
        .collect();
    let node = match names.as_slice() {
        [cn] => cn
            .strip_prefix("system:node:")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| RequestError::CommonName(cn.to_string()))?,
        _ => {
            return Err(RequestError::CommonNames(
                names.iter().map(|n| n.to_string()).collect(),
            ))
        }
    };
    let mut parsed = NodeRequest {
        node: node.to_string(),
        ..NodeRequest::default()
    };
    for extension in request.requested_extensions().into_iter().flatten() {
        let x509_parser::extensions::ParsedExtension::SubjectAlternativeName(names) = extension
        else {
            continue;
        };
        for name in &names.general_names {
            use x509_parser::extensions::GeneralName;
            match name {
                GeneralName::DNSName(dns) => parsed.dns_names.push(dns.to_string()),
                GeneralName::IPAddress(bytes) => match ferry_client::tls::san_ip(bytes) {
                    Some(ip) => parsed.ips.push(ip),
                    None => parsed.other_names = true,
                },
                _ => parsed.other_names = true,
            }
        }
    }
    Ok(parsed)
}

/// Why the usages are not those of a client certificate, if they are not.
fn check_client_usages(csr: &CertificateSigningRequest) -> Result<(), RequestError> {
    let usages = csr.spec.usages.as_deref().unwrap_or_default();
    if let Some(bad) = usages.iter().find(|u| !CLIENT_USAGES.contains(&u.as_str())) {
        return Err(RequestError::Usage(bad.clone()));
    }
    if !usages.iter().any(|u| u == "client auth") {
        return Err(RequestError::MissingClientAuth);
    }
    Ok(())
}

/// Why the approver leaves a request alone (for `kubectl certificate approve`, or because it
/// is decided already).
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum NotApproved {
    /// Approved, denied or issued already.
    #[error("already decided")]
    AlreadyDecided,
    /// For a signer other than kubelet client certificates.
    #[error("signer {0} is not ours")]
    Signer(String),
    /// Not a valid kubelet client certificate request.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// A serving request asked by someone other than the node it is for.
    #[error("serving certificate for node {node} asked by {username:?}")]
    NotTheNode {
        /// `spec.username`.
        username: String,
        /// The node named in the request.
        node: String,
    },
    /// A serving request for a node that does not exist (yet).
    #[error("node {0} not found")]
    UnknownNode(String),
    /// A serving request naming an address or name the node does not have.
    #[error("{0} is not one of the node's addresses or names")]
    ForeignName(String),
    /// Asked by neither a bootstrapper nor the node the certificate is for.
    #[error("requestor {username:?} is neither a bootstrapper nor node {node}")]
    Requestor {
        /// `spec.username`.
        username: String,
        /// The node named in the request.
        node: String,
    },
}

/// The approver's decision: `Ok(())` to approve, `Err(why not)` to leave the request alone.
/// `node` finds a Node by name (for serving requests, whose names are checked against it).
pub fn approval(
    csr: &CertificateSigningRequest,
    node: impl Fn(&str) -> Option<Arc<Node>>,
) -> Result<(), NotApproved> {
    if has_condition(csr, "Approved") || has_condition(csr, "Denied") || issued(csr) {
        return Err(NotApproved::AlreadyDecided);
    }
    if csr.spec.signer_name == KUBELET_SERVING_SIGNER {
        return serving_approval(csr, node);
    }
    if csr.spec.signer_name != KUBELET_CLIENT_SIGNER {
        return Err(NotApproved::Signer(csr.spec.signer_name.clone()));
    }
    let node = kubelet_client_node(csr)?;
    check_client_usages(csr)?;
    let groups = csr.spec.groups.as_deref().unwrap_or_default();
    let new_node = groups.iter().any(|g| g == "system:bootstrappers");
    let renewal = csr.spec.username.as_deref() == Some(&format!("system:node:{node}"))
        && groups.iter().any(|g| g == "system:nodes");
    if !new_node && !renewal {
        return Err(NotApproved::Requestor {
            username: csr.spec.username.clone().unwrap_or_default(),
            node,
        });
    }
    Ok(())
}

/// A serving request is approved when the node asks for itself, names only its own addresses
/// (from its status) and its own name or host name.
fn serving_approval(
    csr: &CertificateSigningRequest,
    node: impl Fn(&str) -> Option<Arc<Node>>,
) -> Result<(), NotApproved> {
    let request = kubelet_serving_request(csr)?;
    let groups = csr.spec.groups.as_deref().unwrap_or_default();
    let own = csr.spec.username.as_deref() == Some(&format!("system:node:{}", request.node))
        && groups.iter().any(|g| g == "system:nodes");
    if !own {
        return Err(NotApproved::NotTheNode {
            username: csr.spec.username.clone().unwrap_or_default(),
            node: request.node,
        });
    }
    let Some(found) = node(&request.node) else {
        return Err(NotApproved::UnknownNode(request.node));
    };
    let addresses: Vec<&str> = found
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|a| a.address.as_str())
        .collect();
    for ip in &request.ips {
        if !addresses.contains(&ip.to_string().as_str()) {
            return Err(NotApproved::ForeignName(ip.to_string()));
        }
    }
    for dns in &request.dns_names {
        if dns != &request.node && !addresses.contains(&dns.as_str()) {
            return Err(NotApproved::ForeignName(dns.clone()));
        }
    }
    Ok(())
}

/// What the signer does with a request.
#[derive(Debug, PartialEq)]
pub enum Signing {
    /// Not for this signer, not approved, refused, or already issued.
    Skip,
    /// Sign it.
    Sign,
    /// Approved but not signable: mark it Failed (upstream's `SignerValidationFailure`) with
    /// this message.
    Fail(RequestError),
}

/// The signer's decision.
pub fn signing(csr: &CertificateSigningRequest) -> Signing {
    let ours = matches!(
        csr.spec.signer_name.as_str(),
        KUBELET_CLIENT_SIGNER | CLIENT_SIGNER | KUBELET_SERVING_SIGNER
    );
    let pending = has_condition(csr, "Approved")
        && !has_condition(csr, "Denied")
        && !has_condition(csr, "Failed")
        && !issued(csr);
    if !ours || !pending {
        return Signing::Skip;
    }
    if csr.spec.signer_name == KUBELET_SERVING_SIGNER {
        return match kubelet_serving_request(csr) {
            Ok(_) => Signing::Sign,
            Err(why) => Signing::Fail(why),
        };
    }
    if let Err(why) = check_client_usages(csr) {
        return Signing::Fail(why);
    }
    if csr.spec.signer_name == KUBELET_CLIENT_SIGNER {
        if let Err(why) = kubelet_client_node(csr) {
            return Signing::Fail(why);
        }
    }
    Signing::Sign
}

/// Why signing failed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// Reading the CA files.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A certificate, key or request that does not parse, or rcgen refusing.
    #[error("{0}")]
    Certificate(String),
}

fn cert_err(e: impl std::fmt::Display) -> SignError {
    SignError::Certificate(e.to_string())
}

/// The cluster CA as a signer of client certificates (upstream's `--cluster-signing-*`).
pub struct CaSigner {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// Issued certificates expire no later than the CA.
    ca_not_after: SystemTime,
    /// `--cluster-signing-duration`: the validity when the request names none.
    duration: Duration,
}

impl std::fmt::Debug for CaSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaSigner")
            .field("ca_not_after", &self.ca_not_after)
            .field("duration", &self.duration)
            .finish_non_exhaustive()
    }
}

/// Upstream's default `--cluster-signing-duration`: a year.
pub const DEFAULT_SIGNING_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
/// Upstream backdates certificates by five minutes, for clocks a little behind.
const BACKDATE: Duration = Duration::from_secs(300);

impl CaSigner {
    /// The CA from its certificate and key files (PEM).
    pub fn load(cert_file: &Path, key_file: &Path, duration: Duration) -> Result<Self, SignError> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| SignError::Io {
                path: path.display().to_string(),
                source,
            })
        };
        Self::from_pem(&read(cert_file)?, &read(key_file)?, duration)
    }

    /// The CA from its certificate and key (PEM).
    pub fn from_pem(cert_pem: &str, key_pem: &str, duration: Duration) -> Result<Self, SignError> {
        let block = pem::parse(cert_pem).map_err(cert_err)?;
        let (_, ca) = x509_parser::parse_x509_certificate(block.contents()).map_err(cert_err)?;
        let not_after = u64::try_from(ca.validity().not_after.timestamp()).unwrap_or(0);
        let key = rcgen::KeyPair::from_pem(key_pem).map_err(cert_err)?;
        let issuer = rcgen::Issuer::from_ca_cert_pem(cert_pem, key).map_err(cert_err)?;
        Ok(CaSigner {
            issuer,
            ca_not_after: SystemTime::UNIX_EPOCH + Duration::from_secs(not_after),
            duration,
        })
    }

    /// A certificate (PEM) for the request `csr_pem`: its subject, alternative names and public
    /// key, the key and extended (client or server auth) usages asked for, valid from five minutes before
    /// `now` for `expiration` (or the signing duration), never past the CA.
    pub fn sign(
        &self,
        csr_pem: &str,
        usages: &[String],
        expiration: Option<Duration>,
        now: SystemTime,
    ) -> Result<String, SignError> {
        let mut request =
            rcgen::CertificateSigningRequestParams::from_pem(csr_pem).map_err(cert_err)?;
        let params = &mut request.params;
        params.not_before = (now - BACKDATE).into();
        // Upstream: what the request asks, at least 10 minutes, at most the signing duration.
        let lifetime = expiration.map_or(self.duration, |e| {
            e.clamp(
                Duration::from_secs(600),
                self.duration.max(Duration::from_secs(600)),
            )
        });
        params.not_after = (now + lifetime).min(self.ca_not_after).into();
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.key_usages = usages
            .iter()
            .filter_map(|u| match u.as_str() {
                "digital signature" => Some(rcgen::KeyUsagePurpose::DigitalSignature),
                "key encipherment" => Some(rcgen::KeyUsagePurpose::KeyEncipherment),
                _ => None,
            })
            .collect();
        params.extended_key_usages = usages
            .iter()
            .filter_map(|u| match u.as_str() {
                "client auth" => Some(rcgen::ExtendedKeyUsagePurpose::ClientAuth),
                "server auth" => Some(rcgen::ExtendedKeyUsagePurpose::ServerAuth),
                _ => None,
            })
            .collect();
        params.use_authority_key_identifier_extension = true;
        params.name_constraints = None;
        params.crl_distribution_points = Vec::new();
        params.custom_extensions = Vec::new();
        Ok(request.signed_by(&self.issuer).map_err(cert_err)?.pem())
    }
}

/// The approver and its queue of CSR names.
pub struct CsrApprovingController {
    ctx: Arc<Context>,
    queue: Arc<Queue<String>>,
}

fn enqueue_all(ctx: &Context, queue: &Arc<Queue<String>>) {
    let q = queue.clone();
    ctx.csrs.add_handler(move |_, new| {
        if let Some(csr) = new {
            q.add(csr.name_any());
        }
    });
}

impl Reconciler for CsrApprovingController {
    type Key = String;
    type Error = Error;
    const NAME: &'static str = "csrapproving";

    fn queue(&self) -> &Arc<Queue<String>> {
        &self.queue
    }

    async fn reconcile(self: Arc<Self>, key: String) -> Result<Option<Duration>, Error> {
        let Some(csr) = self.ctx.csrs.get("", &key) else {
            return Ok(None);
        };
        let nodes = &self.ctx.nodes;
        if let Err(why) = approval(&csr, |name| nodes.get("", name)) {
            tracing::trace!(csr = %key, %why, "not approving");
            return Ok(None);
        }
        let mut approved = (*csr).clone();
        let status = approved.status.get_or_insert_with(Default::default);
        status
            .conditions
            .get_or_insert_with(Vec::new)
            .push(CertificateSigningRequestCondition {
                type_: "Approved".into(),
                status: "True".into(),
                reason: Some("AutoApproved".into()),
                message: Some(
                    if csr.spec.signer_name == KUBELET_SERVING_SIGNER {
                        SERVING_APPROVED_MESSAGE
                    } else {
                        APPROVED_MESSAGE
                    }
                    .into(),
                ),
                ..Default::default()
            });
        let api: Api<CertificateSigningRequest> = Api::all(self.ctx.client.clone());
        match api
            .replace_subresource("approval", &key, &PostParams::default(), &approved)
            .await
        {
            Ok(_) => {
                tracing::info!(csr = %key, signer = %csr.spec.signer_name, "approved a node's certificate request")
            }
            // Gone, or changed since the informer saw it: the next event brings it back.
            Err(e) if matches!(api_code(&e), Some(404) | Some(409)) => {}
            Err(e) => return Err(e).context("approving"),
        }
        Ok(None)
    }
}

impl CsrApprovingController {
    /// Registers the handlers.
    pub fn new(ctx: Arc<Context>) -> Arc<CsrApprovingController> {
        let controller = Arc::new(CsrApprovingController {
            ctx: ctx.clone(),
            queue: Queue::new(),
        });
        enqueue_all(&ctx, &controller.queue);
        controller
    }
}

/// The signer and its queue of CSR names.
pub struct CsrSigningController {
    ctx: Arc<Context>,
    queue: Arc<Queue<String>>,
    signer: CaSigner,
}

impl Reconciler for CsrSigningController {
    type Key = String;
    type Error = Error;
    const NAME: &'static str = "csrsigning";

    fn queue(&self) -> &Arc<Queue<String>> {
        &self.queue
    }

    async fn reconcile(self: Arc<Self>, key: String) -> Result<Option<Duration>, Error> {
        let Some(csr) = self.ctx.csrs.get("", &key) else {
            return Ok(None);
        };
        let mut updated = (*csr).clone();
        let status = updated.status.get_or_insert_with(Default::default);
        match signing(&csr) {
            Signing::Skip => return Ok(None),
            Signing::Fail(why) => {
                tracing::info!(csr = %key, %why, "refusing to sign");
                status.conditions.get_or_insert_with(Vec::new).push(
                    CertificateSigningRequestCondition {
                        type_: "Failed".into(),
                        status: "True".into(),
                        reason: Some("SignerValidationFailure".into()),
                        message: Some(why.to_string()),
                        ..Default::default()
                    },
                );
            }
            Signing::Sign => {
                let request = String::from_utf8_lossy(&csr.spec.request.0);
                let expiration = csr
                    .spec
                    .expiration_seconds
                    .and_then(|s| u64::try_from(s).ok())
                    .map(Duration::from_secs);
                let usages = csr.spec.usages.clone().unwrap_or_default();
                match self
                    .signer
                    .sign(&request, &usages, expiration, SystemTime::now())
                {
                    Ok(certificate) => {
                        status.certificate = Some(k8s_openapi::ByteString(certificate.into_bytes()))
                    }
                    Err(why) => {
                        status.conditions.get_or_insert_with(Vec::new).push(
                            CertificateSigningRequestCondition {
                                type_: "Failed".into(),
                                status: "True".into(),
                                reason: Some("SignerValidationFailure".into()),
                                message: Some(why.to_string()),
                                ..Default::default()
                            },
                        );
                    }
                }
            }
        }
        let api: Api<CertificateSigningRequest> = Api::all(self.ctx.client.clone());
        match api
            .replace_status(&key, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => tracing::info!(csr = %key, "signed certificate signing request"),
            Err(e) if matches!(api_code(&e), Some(404) | Some(409)) => {}
            Err(e) => return Err(e).context("writing the certificate"),
        }
        Ok(None)
    }
}

impl CsrSigningController {
    /// Registers the handlers; signs with `signer`.
    pub fn new(ctx: Arc<Context>, signer: CaSigner) -> Arc<CsrSigningController> {
        let controller = Arc::new(CsrSigningController {
            ctx: ctx.clone(),
            queue: Queue::new(),
            signer,
        });
        enqueue_all(&ctx, &controller.queue);
        controller
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::certificates::v1::{
        CertificateSigningRequestSpec, CertificateSigningRequestStatus,
    };

    fn request(cn: &str, orgs: &[&str], sans: &[&str]) -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        let mut dn = rcgen::DistinguishedName::new();
        for o in orgs {
            dn.push(rcgen::DnType::OrganizationName, *o);
        }
        dn.push(rcgen::DnType::CommonName, cn);
        params.distinguished_name = dn;
        params
            .serialize_request(&key)
            .expect("csr")
            .pem()
            .expect("pem")
    }

    struct Csr(CertificateSigningRequest);

    impl Csr {
        fn new(request: String) -> Csr {
            Csr(CertificateSigningRequest {
                metadata: Default::default(),
                spec: CertificateSigningRequestSpec {
                    request: k8s_openapi::ByteString(request.into_bytes()),
                    signer_name: KUBELET_CLIENT_SIGNER.into(),
                    usages: Some(vec!["digital signature".into(), "client auth".into()]),
                    username: Some("system:bootstrap:abcdef".into()),
                    groups: Some(vec![
                        "system:bootstrappers".into(),
                        "system:authenticated".into(),
                    ]),
                    ..Default::default()
                },
                status: None,
            })
        }
        fn node(name: &str) -> Csr {
            Csr::new(request(
                &format!("system:node:{name}"),
                &["system:nodes"],
                &[],
            ))
        }
        fn signer(mut self, signer: &str) -> Csr {
            self.0.spec.signer_name = signer.into();
            self
        }
        fn usages(mut self, usages: &[&str]) -> Csr {
            self.0.spec.usages = Some(usages.iter().map(|u| u.to_string()).collect());
            self
        }
        fn by(mut self, user: &str, groups: &[&str]) -> Csr {
            self.0.spec.username = Some(user.into());
            self.0.spec.groups = Some(groups.iter().map(|g| g.to_string()).collect());
            self
        }
        fn condition(mut self, kind: &str) -> Csr {
            let status = self.0.status.get_or_insert_with(Default::default);
            status.conditions.get_or_insert_with(Vec::new).push(
                CertificateSigningRequestCondition {
                    type_: kind.into(),
                    status: "True".into(),
                    ..Default::default()
                },
            );
            self
        }
        fn issued(mut self) -> Csr {
            self.0.status = Some(CertificateSigningRequestStatus {
                certificate: Some(k8s_openapi::ByteString(b"cert".to_vec())),
                ..self.0.status.unwrap_or_default()
            });
            self
        }
    }

    #[test]
    fn serving_requests_are_approved_for_the_nodes_own_names() {
        let n1 = "system:node:n1";
        let serving = |sans: &[&str]| {
            Csr::new(request(n1, &["system:nodes"], sans))
                .signer(KUBELET_SERVING_SIGNER)
                .usages(&["digital signature", "server auth"])
                .by(n1, &["system:nodes", "system:authenticated"])
        };
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1"},
            "status": {"addresses": [
                {"type": "InternalIP", "address": "10.0.0.1"},
                {"type": "Hostname", "address": "host1"}]}
        }))
        .expect("node");
        let node = Arc::new(node);
        let find = |name: &str| (name == "n1").then(|| node.clone());
        #[rustfmt::skip]
        let table: Vec<(&str, Csr, Result<(), String>)> = vec![
            ("its address, name and host name", serving(&["10.0.0.1", "n1", "host1"]), Ok(())),
            ("another address", serving(&["10.0.0.2"]), Err("10.0.0.2 is not one of the node's addresses or names".into())),
            ("another name", serving(&["n2"]), Err("n2 is not one of the node's addresses or names".into())),
            ("no names", serving(&[]), Err("at least one DNS name or IP address is required".into())),
            ("client usages", serving(&["10.0.0.1"]).usages(&["digital signature", "client auth"]),
                Err("usage not allowed: \"client auth\"".into())),
            ("no server auth", serving(&["10.0.0.1"]).usages(&["digital signature"]),
                Err("missing usage \"server auth\"".into())),
            ("asked by another node", serving(&["10.0.0.1"]).by("system:node:n2", &["system:nodes"]),
                Err("serving certificate for node n1 asked by \"system:node:n2\"".into())),
            ("asked by a bootstrapper", serving(&["10.0.0.1"]).by("system:bootstrap:x", &["system:bootstrappers"]),
                Err("serving certificate for node n1 asked by \"system:bootstrap:x\"".into())),
        ];
        for (case, csr, want) in table {
            assert_eq!(
                approval(&csr.0, find).map_err(|e| e.to_string()),
                want,
                "{case}"
            );
        }
        assert_eq!(
            approval(&serving(&["10.0.0.1"]).0, |_| None).map_err(|e| e.to_string()),
            Err("node n1 not found".into())
        );
        // Signed as a server certificate naming what it asked for.
        let csr = serving(&["10.0.0.1", "n1"]).condition("Approved");
        assert_eq!(signing(&csr.0), Signing::Sign);
        let (ca_pem, ca_key) = ca();
        let signer = CaSigner::from_pem(&ca_pem, &ca_key, DEFAULT_SIGNING_DURATION).expect("ca");
        let usages = csr.0.spec.usages.clone().unwrap_or_default();
        let pem_text = signer
            .sign(
                &String::from_utf8_lossy(&csr.0.spec.request.0),
                &usages,
                None,
                SystemTime::now(),
            )
            .expect("signed");
        let block = pem::parse(&pem_text).expect("pem");
        let (_, cert) = x509_parser::parse_x509_certificate(block.contents()).expect("x509");
        let eku = cert
            .extended_key_usage()
            .expect("eku")
            .expect("present")
            .value;
        assert!(eku.server_auth && !eku.client_auth);
        let sans = cert
            .subject_alternative_name()
            .expect("san")
            .expect("present")
            .value;
        assert_eq!(sans.general_names.len(), 2);
    }

    #[test]
    fn approver_decisions() {
        let n1 = "system:node:n1";
        #[rustfmt::skip]
        let table: Vec<(&str, Csr, bool)> = vec![
            ("bootstrapper asks for a new node", Csr::node("n1"), true),
            ("node renews its own", Csr::node("n1").by(n1, &["system:nodes", "system:authenticated"]), true),
            ("key encipherment too", Csr::node("n1").usages(&["digital signature", "key encipherment", "client auth"]), true),
            ("only client auth", Csr::node("n1").usages(&["client auth"]), true),
            ("node asks for another node", Csr::node("n2").by(n1, &["system:nodes"]), false),
            ("a user asks", Csr::node("n1").by("bob", &["system:authenticated"]), false),
            ("named like the node, not in system:nodes", Csr::node("n1").by(n1, &[]), false),
            ("other signer", Csr::node("n1").signer(CLIENT_SIGNER), false),
            ("server auth", Csr::node("n1").usages(&["digital signature", "server auth"]), false),
            ("no client auth", Csr::node("n1").usages(&["digital signature"]), false),
            ("extra organization", Csr::new(request("system:node:n1", &["system:nodes", "system:masters"], &[])), false),
            ("masters", Csr::new(request("system:node:n1", &["system:masters"], &[])), false),
            ("no organization", Csr::new(request("system:node:n1", &[], &[])), false),
            ("not a node name", Csr::new(request("admin", &["system:nodes"], &[])), false),
            ("empty node name", Csr::new(request("system:node:", &["system:nodes"], &[])), false),
            ("with SANs", Csr::new(request("system:node:n1", &["system:nodes"], &["n1.example"])), false),
            ("garbage request", Csr::new("hello".into()), false),
            ("already approved", Csr::node("n1").condition("Approved"), false),
            ("denied", Csr::node("n1").condition("Denied"), false),
        ];
        for (case, csr, approve) in table {
            assert_eq!(
                approval(&csr.0, |_| None).is_ok(),
                approve,
                "{case}: {:?}",
                approval(&csr.0, |_| None)
            );
        }
        let reason = |csr: Csr| approval(&csr.0, |_| None).map_err(|e| e.to_string());
        assert_eq!(
            reason(Csr::node("n1").by("bob", &["system:authenticated"])),
            Err("requestor \"bob\" is neither a bootstrapper nor node n1".into())
        );
        assert_eq!(
            reason(Csr::node("n1").signer(CLIENT_SIGNER)),
            Err(format!("signer {CLIENT_SIGNER} is not ours"))
        );
        assert_eq!(
            reason(Csr::new(request("admin", &["system:nodes"], &[]))),
            Err("subject common name does not begin with system:node: \"admin\"".into())
        );
    }

    #[test]
    fn signer_decisions() {
        #[rustfmt::skip]
        let table: Vec<(&str, Csr, Signing)> = vec![
            ("pending", Csr::node("n1"), Signing::Skip),
            ("approved", Csr::node("n1").condition("Approved"), Signing::Sign),
            ("approved client", Csr::new(request("bob", &["dev"], &[])).signer(CLIENT_SIGNER).condition("Approved"), Signing::Sign),
            ("other signer", Csr::node("n1").signer("example.com/x").condition("Approved"), Signing::Skip),
            ("denied", Csr::node("n1").condition("Approved").condition("Denied"), Signing::Skip),
            ("failed", Csr::node("n1").condition("Approved").condition("Failed"), Signing::Skip),
            ("issued", Csr::node("n1").condition("Approved").issued(), Signing::Skip),
            ("server auth", Csr::node("n1").usages(&["server auth"]).condition("Approved"),
                Signing::Fail(RequestError::Usage("server auth".into()))),
            ("kubelet signer, not a node", Csr::new(request("bob", &["dev"], &[])).condition("Approved"),
                Signing::Fail(RequestError::Organization(vec!["dev".into()]))),
        ];
        for (case, csr, decision) in table {
            assert_eq!(signing(&csr.0), decision, "{case}");
        }
        // The messages of the Failed condition, as before the errors were typed.
        assert_eq!(
            RequestError::Usage("server auth".into()).to_string(),
            "usage not allowed: \"server auth\""
        );
        assert_eq!(
            RequestError::Organization(vec!["dev".into()]).to_string(),
            "subject organization is not system:nodes: [\"dev\"]"
        );
    }

    fn ca() -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ferry-ca");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(2045, 1, 1);
        let cert = params.self_signed(&key).expect("ca");
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn signed_certificates_are_client_certificates_of_the_ca() {
        let (ca_pem, ca_key) = ca();
        let signer = CaSigner::from_pem(&ca_pem, &ca_key, DEFAULT_SIGNING_DURATION).expect("ca");
        let now = SystemTime::now();
        let usages = vec!["digital signature".to_string(), "client auth".to_string()];
        let pem_text = signer
            .sign(
                &request("system:node:n1", &["system:nodes"], &[]),
                &usages,
                Some(Duration::from_secs(3600)),
                now,
            )
            .expect("signed");
        let block = pem::parse(&pem_text).expect("pem");
        let (_, cert) = x509_parser::parse_x509_certificate(block.contents()).expect("x509");
        let subject = cert.subject().to_string();
        assert!(subject.contains("CN=system:node:n1"), "{subject}");
        assert!(subject.contains("O=system:nodes"), "{subject}");
        let eku = cert
            .extended_key_usage()
            .expect("eku")
            .expect("present")
            .value;
        assert!(eku.client_auth && !eku.server_auth);
        let ku = cert.key_usage().expect("ku").expect("present").value;
        assert!(ku.digital_signature() && !ku.key_encipherment());
        assert!(!cert.is_ca());
        let ca_block = pem::parse(&ca_pem).expect("pem");
        let (_, ca_cert) = x509_parser::parse_x509_certificate(ca_block.contents()).expect("ca");
        cert.verify_signature(Some(ca_cert.public_key()))
            .expect("signed by the CA");
        assert_eq!(cert.issuer(), ca_cert.subject());
        let now_unix = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("time")
            .as_secs() as i64;
        let validity = cert.validity();
        assert_eq!(validity.not_after.timestamp(), now_unix + 3600);
        assert_eq!(validity.not_before.timestamp(), now_unix - 300);
        // A request for longer than the signing duration gets the signing duration.
        let long = signer
            .sign(
                &request("system:node:n1", &["system:nodes"], &[]),
                &usages,
                Some(Duration::from_secs(100 * 365 * 86400)),
                now,
            )
            .expect("signed");
        let block = pem::parse(&long).expect("pem");
        let (_, cert) = x509_parser::parse_x509_certificate(block.contents()).expect("x509");
        assert_eq!(
            cert.validity().not_after.timestamp(),
            now_unix + DEFAULT_SIGNING_DURATION.as_secs() as i64
        );
        assert!(cert.validity().not_after <= ca_cert.validity().not_after);
        assert!(signer.sign("garbage", &usages, None, now).is_err());
    }
}
