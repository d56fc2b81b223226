//! A pod's service-account token, end to end: the ServiceAccount admission plugin gives the pod
//! the `kube-api-access-*` volume, the kubelet asks the API server for a token bound to the pod
//! (as its node, which NodeRestriction allows only for its own pods) and projects it with the
//! cluster CA and the namespace; the token authenticates as the pod's service account, which
//! RBAC then holds to what it is granted.

use base64::Engine as _;

use super::common::Ferry;

const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// `pod` runs (as the `default` service account of `default`) on `node`.
pub fn the_pods_token_authenticates(
    ferry: &Ferry,
    pod: &str,
    node: &str,
    ca_file: &std::path::Path,
) {
    let volume = ferry.ok(&[
        "get", "pod", pod, "-o",
        "jsonpath={.spec.serviceAccountName} {.spec.volumes[0].name} {.spec.containers[0].volumeMounts[0].mountPath}",
    ]);
    let fields: Vec<&str> = volume.split(' ').collect();
    assert_eq!(fields[0], "default", "{volume}");
    assert!(
        fields[1].starts_with("kube-api-access-") && fields[1].len() == 21,
        "{volume}"
    );
    assert_eq!(fields[2], MOUNT, "{volume}");

    let read = |file: &str| ferry.ok(&["exec", pod, "--", "cat", &format!("{MOUNT}/{file}")]);
    assert_eq!(read("namespace"), "default");
    let ca = std::fs::read_to_string(ca_file).expect("cluster CA");
    assert_eq!(read("ca.crt"), ca);
    let token = read("token");

    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url"),
    )
    .expect("claims");
    assert_eq!(claims["sub"], "system:serviceaccount:default:default");
    assert_eq!(claims["kubernetes.io"]["pod"]["name"], pod);
    assert_eq!(claims["kubernetes.io"]["node"]["name"], node);
    assert_eq!(
        claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"),
        3607
    );

    let whoami = ferry.kubectl_with_token(
        &token,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&whoami.stdout),
        "system:serviceaccount:default:default",
        "{}",
        String::from_utf8_lossy(&whoami.stderr)
    );
    let secrets = ferry.kubectl_with_token(&token, &["get", "secrets"]);
    assert_eq!(
        String::from_utf8_lossy(&secrets.stderr).trim(),
        "Error from server (Forbidden): secrets is forbidden: User \"system:serviceaccount:default:default\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\""
    );
}
