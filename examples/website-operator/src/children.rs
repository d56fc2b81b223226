//! The objects a `Website` owns, computed from it alone: a ConfigMap with the page and a
//! Deployment of web servers mounting it. Applying them is the reconciler's job.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, PodSpec, PodTemplateSpec, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::{Resource, ResourceExt};

use crate::website::Website;
use crate::Error;

/// The `app.kubernetes.io/managed-by` value on every child, which the operator's watches of
/// ConfigMaps and Deployments select on.
pub const MANAGED_BY: &str = "website-operator";

/// The label selector matching every child of every Website.
pub fn managed_by_selector() -> String {
    format!("app.kubernetes.io/managed-by={MANAGED_BY}")
}

/// The image the web servers run; pods need not start for the operator to do its work.
pub const IMAGE: &str = "nginx:1.27";

/// The name of the ConfigMap holding the page of the Website `website`.
pub fn config_map_name(website: &str) -> String {
    format!("{website}-content")
}

/// The labels selecting the pods of the Website named `website`.
fn selector_labels(website: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "website".to_string()),
        (
            "app.kubernetes.io/instance".to_string(),
            website.to_string(),
        ),
    ])
}

/// Name, namespace, labels and the controller owner reference every child carries.
fn child_metadata(website: &Website, name: String) -> Result<ObjectMeta, Error> {
    let owner = website
        .controller_owner_ref(&())
        .ok_or(Error::MissingField("metadata.uid"))?;
    let mut labels = selector_labels(&website.name_any());
    labels.insert(
        "app.kubernetes.io/managed-by".to_string(),
        MANAGED_BY.to_string(),
    );
    Ok(ObjectMeta {
        name: Some(name),
        namespace: website.namespace(),
        labels: Some(labels),
        owner_references: Some(vec![owner]),
        ..ObjectMeta::default()
    })
}

/// The ConfigMap serving `spec.content` as `index.html`.
pub fn config_map(website: &Website) -> Result<ConfigMap, Error> {
    Ok(ConfigMap {
        metadata: child_metadata(website, config_map_name(&website.name_any()))?,
        data: Some(BTreeMap::from([(
            "index.html".to_string(),
            website.spec.content.clone(),
        )])),
        ..ConfigMap::default()
    })
}

/// The Deployment of `spec.replicas` web servers mounting the ConfigMap.
pub fn deployment(website: &Website) -> Result<Deployment, Error> {
    let name = website.name_any();
    let labels = selector_labels(&name);
    Ok(Deployment {
        metadata: child_metadata(website, name.clone())?,
        spec: Some(DeploymentSpec {
            replicas: Some(website.spec.replicas),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "web".to_string(),
                        image: Some(IMAGE.to_string()),
                        ports: Some(vec![ContainerPort {
                            container_port: 80,
                            ..ContainerPort::default()
                        }]),
                        volume_mounts: Some(vec![VolumeMount {
                            name: "content".to_string(),
                            mount_path: "/usr/share/nginx/html".to_string(),
                            read_only: Some(true),
                            ..VolumeMount::default()
                        }]),
                        ..Container::default()
                    }],
                    volumes: Some(vec![Volume {
                        name: "content".to_string(),
                        config_map: Some(ConfigMapVolumeSource {
                            name: config_map_name(&name),
                            ..ConfigMapVolumeSource::default()
                        }),
                        ..Volume::default()
                    }]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::website::WebsiteSpec;

    fn website() -> Website {
        let mut website = Website::new(
            "blog",
            WebsiteSpec {
                content: "<h1>hi</h1>".to_string(),
                replicas: 3,
            },
        );
        website.metadata.namespace = Some("web".to_string());
        website.metadata.uid = Some("1234".to_string());
        website
    }

    #[test]
    fn children_are_controlled_by_their_website_in_its_namespace() {
        let cm = config_map(&website()).expect("configmap");
        let deploy = deployment(&website()).expect("deployment");
        for meta in [&cm.metadata, &deploy.metadata] {
            assert_eq!(meta.namespace.as_deref(), Some("web"));
            let owners = meta.owner_references.as_ref().expect("owners");
            assert_eq!(owners.len(), 1);
            assert_eq!(owners[0].kind, "Website");
            assert_eq!(owners[0].uid, "1234");
            assert_eq!(owners[0].controller, Some(true));
            let labels = meta.labels.as_ref().expect("labels");
            assert_eq!(labels["app.kubernetes.io/managed-by"], MANAGED_BY);
        }
    }

    #[test]
    fn the_spec_becomes_the_page_and_the_replica_count() {
        let cm = config_map(&website()).expect("configmap");
        assert_eq!(cm.metadata.name.as_deref(), Some("blog-content"));
        assert_eq!(cm.data.expect("data")["index.html"], "<h1>hi</h1>");

        let spec = deployment(&website())
            .expect("deployment")
            .spec
            .expect("spec");
        assert_eq!(spec.replicas, Some(3));
        let pod = spec.template.spec.expect("pod spec");
        let volume = &pod.volumes.expect("volumes")[0];
        assert_eq!(
            volume.config_map.as_ref().map(|c| c.name.as_str()),
            Some("blog-content")
        );
        assert_eq!(
            spec.selector.match_labels,
            spec.template.metadata.expect("meta").labels
        );
    }

    #[test]
    fn a_website_without_a_uid_cannot_own_anything() {
        let mut website = website();
        website.metadata.uid = None;
        assert!(matches!(
            config_map(&website),
            Err(Error::MissingField("metadata.uid"))
        ));
    }
}
