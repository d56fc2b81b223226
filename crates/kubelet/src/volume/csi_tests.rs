use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use serde_json::json;

use super::super::testing::{fixture, Fixture, UID};
use super::*;
use crate::volume::{CsiPublisher, StaticObjectSource};

const DRIVER: &str = "local.csi.ferry.dev";

/// A call the fake driver saw.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Stage {
        volume_id: String,
        staging: PathBuf,
        publish_context: BTreeMap<String, String>,
    },
    Publish {
        target: PathBuf,
        staging: Option<PathBuf>,
    },
    Unstage {
        volume_id: String,
        staging: PathBuf,
    },
}

/// A registered driver that stages (or not) and records its calls.
struct FakeCsi {
    stages: bool,
    calls: Mutex<Vec<Call>>,
}

#[async_trait]
impl CsiPublisher for FakeCsi {
    fn has_driver(&self, driver: &str) -> bool {
        driver == DRIVER
    }

    async fn stages(&self, _driver: &str) -> Result<bool, String> {
        Ok(self.stages)
    }

    async fn stage(&self, request: &CsiPublish) -> Result<(), String> {
        self.calls.lock().push(Call::Stage {
            volume_id: request.volume_id.clone(),
            staging: request.staging_target.clone().expect("staging path"),
            publish_context: request.publish_context.clone(),
        });
        Ok(())
    }

    async fn publish(&self, request: &CsiPublish) -> Result<(), String> {
        self.calls.lock().push(Call::Publish {
            target: request.target.clone(),
            staging: request.staging_target.clone(),
        });
        Ok(())
    }

    async fn unstage(&self, _driver: &str, volume_id: &str, staging: &Path) -> Result<(), String> {
        self.calls.lock().push(Call::Unstage {
            volume_id: volume_id.to_string(),
            staging: staging.to_path_buf(),
        });
        Ok(())
    }
}

fn with_driver(stages: bool) -> (Fixture, Arc<FakeCsi>) {
    let mut f = fixture();
    let csi = Arc::new(FakeCsi {
        stages,
        calls: Mutex::new(Vec::new()),
    });
    f.manager = f.manager.clone().with_csi(csi.clone());
    (f, csi)
}

/// A claim `data` bound to the CSI volume `pv-1` (handle `h1`), and the CSIDriver asking for
/// attachment or not.
fn source(attach_required: bool) -> StaticObjectSource {
    let source = StaticObjectSource::new();
    source.insert_claim(
        serde_json::from_value(json!({"metadata": {"name": "data", "namespace": "ns1"},
            "spec": {"volumeName": "pv-1"}, "status": {"phase": "Bound"}}))
        .expect("claim"),
    );
    source.insert_volume(
        serde_json::from_value(json!({"metadata": {"name": "pv-1"},
            "spec": {"csi": {"driver": DRIVER, "volumeHandle": "h1"}}}))
        .expect("volume"),
    );
    source.insert_csi_driver(
        serde_json::from_value(json!({"metadata": {"name": DRIVER},
            "spec": {"attachRequired": attach_required}}))
        .expect("driver"),
    );
    source
}

fn claim_pod(uid: &str) -> k8s_openapi::api::core::v1::Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "ns1", "uid": uid},
        "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "busybox"}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}
    }))
    .expect("pod")
}

fn attachment(attached: bool, error: Option<&str>) -> VolumeAttachment {
    serde_json::from_value(json!({
        "metadata": {"name": ferry_csi::attach::attachment_name("h1", DRIVER, "n1")},
        "spec": {"attacher": DRIVER, "nodeName": "n1", "source": {"persistentVolumeName": "pv-1"}},
        "status": {"attached": attached, "attachmentMetadata": {"k": "v"},
                   "attachError": error.map(|m| json!({"message": m}))}
    }))
    .expect("attachment")
}

fn global_dir(f: &Fixture) -> PathBuf {
    f.manager
        .plugins_dir()
        .join("kubernetes.io/csi")
        .join(DRIVER)
        .join(ferry_csi::attach::staging_dir_name("h1"))
}

#[tokio::test]
async fn a_staging_driver_stages_once_per_node_and_unstages_after_the_last_pod() {
    let (f, csi) = with_driver(true);
    let source = source(false);
    let global = global_dir(&f);
    let staging = global.join("globalmount");
    // The kubelet root's layout: `<root>/plugins` beside `<root>/pods`.
    assert_eq!(
        f.manager.plugins_dir(),
        f.manager.pods_dir().parent().expect("root").join("plugins")
    );

    let first = f
        .manager
        .prepare(&claim_pod(UID), &source)
        .await
        .expect("first pod");
    let target = f
        .manager
        .pod_volumes_dir(UID)
        .join("kubernetes.io~csi/data/mount");
    assert_eq!(first["data"].host_path, target.to_string_lossy());
    f.manager
        .prepare(&claim_pod("other-uid"), &source)
        .await
        .expect("second pod");
    let other_target = f
        .manager
        .pod_volumes_dir("other-uid")
        .join("kubernetes.io~csi/data/mount");
    let stage = Call::Stage {
        volume_id: "h1".into(),
        staging: staging.clone(),
        publish_context: BTreeMap::new(),
    };
    assert_eq!(
        *csi.calls.lock(),
        vec![
            stage.clone(),
            Call::Publish {
                target,
                staging: Some(staging.clone()),
            },
            // Staging again is the driver's no-op; the kubelet does not track mounts.
            stage,
            Call::Publish {
                target: other_target,
                staging: Some(staging.clone()),
            },
        ]
    );
    assert_eq!(
        read_vol_data(&global),
        Some(VolData {
            driver: DRIVER.into(),
            volume_handle: "h1".into()
        })
    );

    let in_use = vec!["kubernetes.io/csi/local.csi.ferry.dev^h1".to_string()];
    assert_eq!(f.manager.csi_volumes_in_use(), in_use);

    // One pod gone: the volume stays staged for the other.
    csi.calls.lock().clear();
    f.manager.cleanup(UID).expect("cleanup");
    f.manager
        .unstage_unused_csi_volumes()
        .await
        .expect("unstage");
    assert!(csi.calls.lock().is_empty());

    // The last one gone: unstaged, its directory removed.
    f.manager.cleanup("other-uid").expect("cleanup");
    f.manager
        .unstage_unused_csi_volumes()
        .await
        .expect("unstage");
    assert_eq!(
        *csi.calls.lock(),
        vec![Call::Unstage {
            volume_id: "h1".into(),
            staging,
        }]
    );
    assert!(!global.exists());
    assert!(f.manager.csi_volumes_in_use().is_empty());
    f.manager
        .unstage_unused_csi_volumes()
        .await
        .expect("nothing left");
    assert_eq!(csi.calls.lock().len(), 1);
}

#[tokio::test]
async fn a_driver_that_does_not_stage_is_published_directly() {
    let (f, csi) = with_driver(false);
    f.manager
        .prepare(&claim_pod(UID), &source(false))
        .await
        .expect("prepare");
    assert_eq!(
        *csi.calls.lock(),
        vec![Call::Publish {
            target: f
                .manager
                .pod_volumes_dir(UID)
                .join("kubernetes.io~csi/data/mount"),
            staging: None,
        }]
    );
    assert!(!global_dir(&f).exists());
}

#[tokio::test(start_paused = true)]
async fn an_attached_volume_is_staged_with_its_publish_context() {
    let (f, csi) = with_driver(true);
    let source = source(true);

    // Not attached (no attachment yet): the setup waits, then fails as upstream's.
    let f = Fixture {
        manager: f.manager.clone().with_attach_wait(Duration::from_secs(2)),
        ..f
    };
    let err = f
        .manager
        .prepare(&claim_pod(UID), &source)
        .await
        .expect_err("not attached");
    assert_eq!(
        err.to_string(),
        "MountVolume.WaitForAttach failed for volume \"data\" : timed out waiting for \
         external-attacher of local.csi.ferry.dev CSI driver to attach volume h1"
    );
    assert!(csi.calls.lock().is_empty());

    source.insert_volume_attachment(attachment(false, Some("disk on fire")));
    let err = f
        .manager
        .prepare(&claim_pod(UID), &source)
        .await
        .expect_err("attach failed");
    assert_eq!(
        err.to_string(),
        "MountVolume.WaitForAttach failed for volume \"data\" : disk on fire"
    );

    source.insert_volume_attachment(attachment(true, None));
    f.manager
        .prepare(&claim_pod(UID), &source)
        .await
        .expect("attached");
    assert_eq!(
        csi.calls.lock().first(),
        Some(&Call::Stage {
            volume_id: "h1".into(),
            staging: global_dir(&f).join("globalmount"),
            publish_context: [("k".to_string(), "v".to_string())].into(),
        })
    );
}

#[test]
fn attachment_states_follow_upstream() {
    assert_eq!(attachment_state(None), Attachment::Pending);
    assert_eq!(
        attachment_state(Some(&attachment(false, None))),
        Attachment::Pending
    );
    assert_eq!(
        attachment_state(Some(&attachment(true, None))),
        Attachment::Attached([("k".to_string(), "v".to_string())].into())
    );
    let mut deleting = attachment(true, None);
    deleting.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
    );
    assert_eq!(
        attachment_state(Some(&deleting)),
        Attachment::Failed("volume attachment is being deleted".into())
    );
}
