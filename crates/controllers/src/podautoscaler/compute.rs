//! One metric's replica proposal and status, as upstream's `computeReplicasForMetric` and
//! `computeStatusFor*Metric`: fetch through the [`super::MetricsClient`], calculate with the
//! [`super::ReplicaCalculator`], and on failure the Warning event and ScalingActive condition
//! with upstream's reasons (`FailedGetResourceMetric`, ...) and wrapped messages.

use std::sync::Arc;

use ferry_api::quantity::{Format, Quantity as Amount};
use ferry_client::events::EventType;
use jiff::Timestamp;
use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, CrossVersionObjectReference, ExternalMetricStatus,
    HorizontalPodAutoscaler, MetricIdentifier, MetricSpec, MetricStatus, MetricTarget,
    MetricValueStatus, ObjectMetricStatus, PodsMetricStatus, ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::{selector, HorizontalController, MetricFailure};

/// What every metric of one sync is computed against.
pub(super) struct Target<'a> {
    pub hpa: &'a HorizontalPodAutoscaler,
    /// The target's `spec.replicas`.
    pub spec_replicas: i32,
    /// The target's `status.replicas`.
    pub status_replicas: i32,
    /// The target's pod selector, as the scale gives it.
    pub selector: &'a str,
    /// The pods it selects.
    pub pods: &'a [Arc<Pod>],
    pub now: Timestamp,
}

/// One metric's proposal.
pub(super) struct MetricProposal {
    pub replicas: i32,
    /// How the metric is named in messages (`cpu resource utilization (percentage of request)`).
    pub metric: String,
    pub status: MetricStatus,
}

/// A metric value as the status writes it (`resource.NewMilliQuantity(v, DecimalSI)`).
pub(super) fn milli_quantity(milli: i64) -> Quantity {
    Quantity(Amount::from_milli(milli).canonical(Format::DecimalSi))
}

fn milli_of(quantity: Option<&Quantity>) -> Option<i64> {
    quantity.map(|q| Amount::from_api(q).map(|a| a.milli_value()).unwrap_or(0))
}

type Failure = (MetricFailure, String);

impl HorizontalController {
    /// Records the failure of a metric: a Warning event, and the ScalingActive condition it
    /// asks for (upstream's `getUnableComputeReplicaCountCondition`).
    fn unable_to_compute(
        &self,
        hpa: &HorizontalPodAutoscaler,
        reason: &'static str,
        error: &str,
    ) -> MetricFailure {
        self.event(hpa, EventType::Warning, reason, error);
        MetricFailure {
            reason,
            message: format!("the HPA was unable to compute the replica count: {error}"),
        }
    }

    pub(super) async fn compute_replicas_for_metric(
        &self,
        target: &Target<'_>,
        spec: &MetricSpec,
    ) -> Result<MetricProposal, Failure> {
        let hpa = target.hpa;
        let missing = |what: &str| {
            let error = format!("invalid metric source: {what} is not set");
            (
                self.unable_to_compute(hpa, "InvalidMetricSourceType", &error),
                error,
            )
        };
        match spec.type_.as_str() {
            "Resource" => {
                let Some(source) = spec.resource.as_ref() else {
                    return Err(missing("resource"));
                };
                match self
                    .resource_metric(target, &source.target, &source.name, None)
                    .await
                {
                    Ok((replicas, current, metric)) => Ok(MetricProposal {
                        replicas,
                        metric,
                        status: MetricStatus {
                            type_: "Resource".into(),
                            resource: Some(ResourceMetricStatus {
                                name: source.name.clone(),
                                current,
                            }),
                            ..Default::default()
                        },
                    }),
                    Err(error) => Err((
                        self.unable_to_compute(hpa, "FailedGetResourceMetric", &error),
                        format!(
                            "failed to get {} resource metric value: {error}",
                            source.name
                        ),
                    )),
                }
            }
            "ContainerResource" => {
                let Some(source) = spec.container_resource.as_ref() else {
                    return Err(missing("containerResource"));
                };
                match self
                    .resource_metric(
                        target,
                        &source.target,
                        &source.name,
                        Some(&source.container),
                    )
                    .await
                {
                    Ok((replicas, current, metric)) => Ok(MetricProposal {
                        replicas,
                        metric,
                        status: MetricStatus {
                            type_: "ContainerResource".into(),
                            container_resource: Some(ContainerResourceMetricStatus {
                                name: source.name.clone(),
                                container: source.container.clone(),
                                current,
                            }),
                            ..Default::default()
                        },
                    }),
                    Err(error) => Err((
                        self.unable_to_compute(hpa, "FailedGetContainerResourceMetric", &error),
                        format!(
                            "failed to get {} container metric value: {error}",
                            source.container
                        ),
                    )),
                }
            }
            "Pods" => {
                let Some(source) = spec.pods.as_ref() else {
                    return Err(missing("pods"));
                };
                let name = &source.metric.name;
                match self
                    .pods_metric(target, source.metric.clone(), &source.target)
                    .await
                {
                    Ok((replicas, usage)) => Ok(MetricProposal {
                        replicas,
                        metric: format!("pods metric {name}"),
                        status: MetricStatus {
                            type_: "Pods".into(),
                            pods: Some(PodsMetricStatus {
                                metric: source.metric.clone(),
                                current: MetricValueStatus {
                                    average_value: Some(milli_quantity(usage)),
                                    ..Default::default()
                                },
                            }),
                            ..Default::default()
                        },
                    }),
                    Err(error) => Err((
                        self.unable_to_compute(hpa, "FailedGetPodsMetric", &error),
                        format!("failed to get pods metric value: {error}"),
                    )),
                }
            }
            "Object" => {
                let Some(source) = spec.object.as_ref() else {
                    return Err(missing("object"));
                };
                self.object_metric(
                    target,
                    &source.described_object,
                    &source.metric,
                    &source.target,
                )
                .await
                .map_err(|(failure, error)| {
                    (
                        failure,
                        format!("failed to get object metric value: {error}"),
                    )
                })
            }
            "External" => {
                let Some(source) = spec.external.as_ref() else {
                    return Err(missing("external"));
                };
                self.external_metric(target, &source.metric, &source.target)
                    .await
                    .map_err(|(failure, error)| {
                        let name = &source.metric.name;
                        (
                            failure,
                            format!("failed to get {name} external metric value: {error}"),
                        )
                    })
            }
            other => {
                let error = format!("unknown metric source type {other:?}");
                Err((
                    self.unable_to_compute(hpa, "InvalidMetricSourceType", &error),
                    error,
                ))
            }
        }
    }

    /// A `Resource` or `ContainerResource` metric (upstream's
    /// `computeStatusForResourceMetricGeneric`): the proposal, the current value, the name.
    async fn resource_metric(
        &self,
        target: &Target<'_>,
        metric_target: &MetricTarget,
        resource: &str,
        container: Option<&str>,
    ) -> Result<(i32, MetricValueStatus, String), String> {
        let namespace = target.hpa.metadata.namespace.as_deref().unwrap_or_default();
        let calculator = &self.options.calculator;
        if let Some(average) = milli_of(metric_target.average_value.as_ref()) {
            let (replicas, usage) = async {
                let metrics = self
                    .metrics
                    .resource_metric(resource, namespace, target.selector, container)
                    .await
                    .map_err(|e| format!("unable to get metrics for resource {resource}: {e}"))?;
                calculator
                    .plain_metric_replicas(
                        target.spec_replicas,
                        average,
                        Some(resource),
                        target.pods,
                        metrics,
                        target.now,
                    )
                    .map_err(|e| e.to_string())
            }
            .await
            .map_err(|e| format!("failed to get {resource} usage: {e}"))?;
            let current = MetricValueStatus {
                average_value: Some(milli_quantity(usage)),
                ..Default::default()
            };
            return Ok((replicas, current, format!("{resource} resource")));
        }
        let Some(utilization_target) = metric_target.average_utilization else {
            return Err("invalid resource metric source: neither an average utilization target nor an average value (usage) target was set".into());
        };
        let result = async {
            let metrics = self
                .metrics
                .resource_metric(resource, namespace, target.selector, container)
                .await
                .map_err(|e| format!("unable to get metrics for resource {resource}: {e}"))?;
            calculator
                .resource_replicas(
                    target.spec_replicas,
                    utilization_target,
                    resource,
                    container,
                    target.pods,
                    metrics,
                    target.now,
                )
                .map_err(|e| e.to_string())
        }
        .await
        .map_err(|e| format!("failed to get {resource} utilization: {e}"))?;
        let metric = match container {
            Some(_) => format!("{resource} container resource utilization (percentage of request)"),
            None => format!("{resource} resource utilization (percentage of request)"),
        };
        let current = MetricValueStatus {
            average_utilization: Some(result.utilization),
            average_value: Some(milli_quantity(result.raw_average)),
            ..Default::default()
        };
        Ok((result.replicas, current, metric))
    }

    /// A `Pods` metric (upstream's `GetMetricReplicas`): the proposal and the average.
    async fn pods_metric(
        &self,
        target: &Target<'_>,
        metric: MetricIdentifier,
        metric_target: &MetricTarget,
    ) -> Result<(i32, i64), String> {
        let namespace = target.hpa.metadata.namespace.as_deref().unwrap_or_default();
        let average = milli_of(metric_target.average_value.as_ref()).unwrap_or(0);
        let metric_selector = selector::format(metric.selector.as_ref());
        let metrics = self
            .metrics
            .raw_metric(&metric.name, namespace, target.selector, &metric_selector)
            .await
            .map_err(|e| format!("unable to get metric {}: {e}", metric.name))?;
        self.options
            .calculator
            .plain_metric_replicas(
                target.spec_replicas,
                average,
                None,
                target.pods,
                metrics,
                target.now,
            )
            .map_err(|e| e.to_string())
    }

    /// An `Object` metric (upstream's `computeStatusForObjectMetric`).
    async fn object_metric(
        &self,
        target: &Target<'_>,
        object: &CrossVersionObjectReference,
        metric: &MetricIdentifier,
        metric_target: &MetricTarget,
    ) -> Result<MetricProposal, Failure> {
        let hpa = target.hpa;
        let namespace = hpa.metadata.namespace.as_deref().unwrap_or_default();
        let metric_selector = selector::format(metric.selector.as_ref());
        let calculator = &self.options.calculator;
        let fetch = || async {
            self.metrics
                .object_metric(&metric.name, namespace, object, &metric_selector)
                .await
                .map_err(|e| {
                    // Upstream's arguments, in upstream's (shuffled) order.
                    format!(
                        "unable to get metric {}: {} on {} {}/{}",
                        metric.name, object.kind, namespace, object.name, e
                    )
                })
        };
        let value = milli_of(metric_target.value.as_ref());
        let average = milli_of(metric_target.average_value.as_ref());
        match (metric_target.type_.as_str(), value, average) {
            ("Value", Some(value), _) => {
                let result = async {
                    let usage = fetch().await?;
                    let ratio = usage as f64 / value as f64;
                    let replicas = calculator
                        .usage_ratio_replicas(target.spec_replicas, ratio, target.pods)
                        .map_err(|e| format!("unable to calculate ready pods: {e}"))?;
                    Ok::<_, String>((replicas, usage))
                }
                .await;
                let (replicas, usage) = result.map_err(|error| {
                    (
                        self.unable_to_compute(hpa, "FailedGetObjectMetric", &error),
                        error,
                    )
                })?;
                Ok(MetricProposal {
                    replicas,
                    metric: format!("{} metric {}", object.kind, metric.name),
                    status: MetricStatus {
                        type_: "Object".into(),
                        object: Some(ObjectMetricStatus {
                            described_object: object.clone(),
                            metric: metric.clone(),
                            current: MetricValueStatus {
                                value: Some(milli_quantity(usage)),
                                ..Default::default()
                            },
                        }),
                        ..Default::default()
                    },
                })
            }
            ("AverageValue", _, Some(average)) => {
                let usage = fetch().await.map_err(|error| {
                    let failure = self.unable_to_compute(hpa, "FailedGetObjectMetric", &error);
                    (
                        failure,
                        format!("failed to get {} object metric: {error}", metric.name),
                    )
                })?;
                let (replicas, per_pod) =
                    calculator.per_pod_replicas(target.status_replicas, usage, average);
                Ok(MetricProposal {
                    replicas,
                    // Upstream names it so.
                    metric: format!(
                        "external metric {}({})",
                        metric.name,
                        selector::go_debug(metric.selector.as_ref())
                    ),
                    status: MetricStatus {
                        type_: "Object".into(),
                        object: Some(ObjectMetricStatus {
                            metric: metric.clone(),
                            current: MetricValueStatus {
                                average_value: Some(milli_quantity(per_pod)),
                                ..Default::default()
                            },
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                })
            }
            _ => {
                let error = "invalid object metric source: neither a value target nor an average value target was set".to_string();
                Err((
                    self.unable_to_compute(hpa, "FailedGetObjectMetric", &error),
                    error,
                ))
            }
        }
    }

    /// An `External` metric (upstream's `computeStatusForExternalMetric`).
    async fn external_metric(
        &self,
        target: &Target<'_>,
        metric: &MetricIdentifier,
        metric_target: &MetricTarget,
    ) -> Result<MetricProposal, Failure> {
        let hpa = target.hpa;
        let namespace = hpa.metadata.namespace.as_deref().unwrap_or_default();
        let name = &metric.name;
        let described = selector::go_debug(metric.selector.as_ref());
        let calculator = &self.options.calculator;
        let fetch = || async {
            let values = self
                .metrics
                .external_metric(name, namespace, &selector::format(metric.selector.as_ref()))
                .await
                .map_err(|e| {
                    format!("unable to get external metric {namespace}/{name}/{described}: {e}")
                })?;
            Ok::<_, String>(values.iter().fold(0i64, |sum, v| sum.saturating_add(*v)))
        };
        let metric_name = format!("external metric {name}({described})");
        let status = |current: MetricValueStatus| MetricStatus {
            type_: "External".into(),
            external: Some(ExternalMetricStatus {
                metric: metric.clone(),
                current,
            }),
            ..Default::default()
        };
        if let Some(average) = milli_of(metric_target.average_value.as_ref()) {
            let usage = fetch().await.map_err(|error| {
                let failure = self.unable_to_compute(hpa, "FailedGetExternalMetric", &error);
                (
                    failure,
                    format!("failed to get {name} external metric: {error}"),
                )
            })?;
            let (replicas, per_pod) =
                calculator.per_pod_replicas(target.status_replicas, usage, average);
            return Ok(MetricProposal {
                replicas,
                metric: metric_name,
                status: status(MetricValueStatus {
                    average_value: Some(milli_quantity(per_pod)),
                    ..Default::default()
                }),
            });
        }
        if let Some(value) = milli_of(metric_target.value.as_ref()) {
            let result = async {
                let usage = fetch().await?;
                let ratio = usage as f64 / value as f64;
                let replicas = calculator
                    .usage_ratio_replicas(target.spec_replicas, ratio, target.pods)
                    .map_err(|e| format!("unable to calculate ready pods: {e}"))?;
                Ok::<_, String>((replicas, usage))
            }
            .await;
            let (replicas, usage) = result.map_err(|error| {
                let failure = self.unable_to_compute(hpa, "FailedGetExternalMetric", &error);
                (
                    failure,
                    format!("failed to get external metric {name}: {error}"),
                )
            })?;
            return Ok(MetricProposal {
                replicas,
                metric: metric_name,
                status: status(MetricValueStatus {
                    value: Some(milli_quantity(usage)),
                    ..Default::default()
                }),
            });
        }
        let error = "invalid external metric source: neither a value target nor an average value target was set".to_string();
        Err((
            self.unable_to_compute(hpa, "FailedGetExternalMetric", &error),
            error,
        ))
    }
}
