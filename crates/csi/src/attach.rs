//! The names Kubernetes derives from a CSI volume, shared by the attach-detach controller, the
//! attacher next to a driver and the kubelet, which must all compute them alike:
//!
//! - [`attachment_name`]: the VolumeAttachment of a volume on a node (upstream's
//!   `getAttachmentName` in `pkg/volume/csi/csi_attacher.go`).
//! - [`staging_dir_name`]: the directory under `<kubelet root>/plugins/kubernetes.io/csi/<driver>`
//!   a volume is staged in (`makeDeviceMountPath`).
//! - [`unique_volume_name`]: how a Node's `volumesAttached` and `volumesInUse` name the volume.
//! - [`attacher_finalizer`]: the external-attacher's finalizer on the attachments it attached.

use std::fmt::Write as _;

/// The hexadecimal SHA-256 of `bytes`.
fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// `csi-<sha256(volume handle + driver + node)>`: the VolumeAttachment of the volume with
/// `volume_handle` of `driver` on the node `node` (a Node's name).
pub fn attachment_name(volume_handle: &str, driver: &str, node: &str) -> String {
    format!(
        "csi-{}",
        sha256_hex(format!("{volume_handle}{driver}{node}").as_bytes())
    )
}

/// `<sha256(volume handle)>`: the volume's directory under its driver's plugin directory; the
/// staging target is its `globalmount`.
pub fn staging_dir_name(volume_handle: &str) -> String {
    sha256_hex(volume_handle.as_bytes())
}

/// `kubernetes.io/csi/<driver>^<volume handle>`: the volume in a Node's `volumesAttached` and
/// `volumesInUse`.
pub fn unique_volume_name(driver: &str, volume_handle: &str) -> String {
    format!("kubernetes.io/csi/{driver}^{volume_handle}")
}

/// `external-attacher/<driver>`, the driver's name with every character but `[A-Za-z0-9-]` made
/// `-` (and an `X` appended if it then ends with `-`): the finalizer the attacher puts on the
/// VolumeAttachments it attached, removed once the volume is detached.
pub fn attacher_finalizer(driver: &str) -> String {
    let mut name: String = driver
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if name.ends_with('-') {
        name.push('X');
    }
    format!("external-attacher/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_upstreams() {
        // sha256("") and sha256("abc"): the digest and its encoding are the standard ones.
        assert_eq!(
            staging_dir_name(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            attachment_name("a", "b", "c"),
            "csi-ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(attachment_name("vol", "driver", "node").len(), 68);
        assert_ne!(
            attachment_name("vol", "driver", "node-a"),
            attachment_name("vol", "driver", "node-b")
        );
        assert_eq!(
            unique_volume_name("local.csi.ferry.dev", "pvc-1"),
            "kubernetes.io/csi/local.csi.ferry.dev^pvc-1"
        );
        assert_eq!(
            attacher_finalizer("local.csi.ferry.dev"),
            "external-attacher/local-csi-ferry-dev"
        );
        assert_eq!(attacher_finalizer("x.y/"), "external-attacher/x-y-X");
    }
}
