"""The official Python client (kubernetes on PyPI) against a real `ferry server`.

Run by crates/ferry/tests/python.rs, which starts the server and sets KUBECONFIG. Only what
needs no kubelet: the typed models, errors byte for byte, watches, patches and subresources.
The client's models check required fields as they are built, so every read below also checks
that ferry writes the fields upstream always writes.
"""

import json
import os
import uuid

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


@pytest.fixture(scope="module")
def api():
    config.load_kube_config(config_file=os.environ["KUBECONFIG"])
    return client.ApiClient()


@pytest.fixture
def namespace(api):
    name = "py-" + uuid.uuid4().hex[:8]
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def labels():
    return {"app": "py"}


def pod_template():
    return client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=labels()),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox:1.36")]),
    )


def test_errors_are_upstreams_status_bytes(api, namespace):
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="dup"))
    )
    with pytest.raises(ApiException) as conflict:
        core.create_namespaced_config_map(
            namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="dup"))
        )
    assert conflict.value.status == 409
    assert conflict.value.body == (
        '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        '"message":"configmaps \\"dup\\" already exists","reason":"AlreadyExists",'
        '"details":{"name":"dup","kind":"configmaps"},"code":409}\n'
    )
    with pytest.raises(ApiException) as missing:
        client.AppsV1Api(api).read_namespaced_deployment("nothing", namespace)
    assert missing.value.status == 404
    assert missing.value.body == (
        '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        '"message":"deployments.apps \\"nothing\\" not found","reason":"NotFound",'
        '"details":{"name":"nothing","group":"apps","kind":"deployments"},"code":404}\n'
    )
    with pytest.raises(ApiException) as invalid:
        core.create_namespaced_config_map(
            namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="Bad_Name"))
        )
    assert invalid.value.status == 422
    status = json.loads(invalid.value.body)
    assert list(status) == [
        "kind", "apiVersion", "metadata", "status", "message", "reason", "details", "code",
    ]
    assert status["details"]["causes"][0]["field"] == "metadata.name"


def test_workload_statuses_have_the_fields_upstream_always_writes(api, namespace):
    apps = client.AppsV1Api(api)
    selector = client.V1LabelSelector(match_labels=labels())
    apps.create_namespaced_daemon_set(
        namespace,
        client.V1DaemonSet(
            metadata=client.V1ObjectMeta(name="ds"),
            spec=client.V1DaemonSetSpec(selector=selector, template=pod_template()),
        ),
    )
    ds = apps.read_namespaced_daemon_set("ds", namespace)
    assert ds.status.current_number_scheduled == 0
    assert ds.status.number_misscheduled == 0
    assert ds.spec.update_strategy.type == "RollingUpdate"
    assert len(apps.list_namespaced_daemon_set(namespace).items) == 1

    apps.create_namespaced_replica_set(
        namespace,
        client.V1ReplicaSet(
            metadata=client.V1ObjectMeta(name="rs"),
            spec=client.V1ReplicaSetSpec(replicas=0, selector=selector, template=pod_template()),
        ),
    )
    assert apps.read_namespaced_replica_set("rs", namespace).status.replicas == 0

    apps.create_namespaced_stateful_set(
        namespace,
        client.V1StatefulSet(
            metadata=client.V1ObjectMeta(name="db"),
            spec=client.V1StatefulSetSpec(
                replicas=0, selector=selector, service_name="db", template=pod_template()
            ),
        ),
    )
    assert apps.read_namespaced_stateful_set("db", namespace).status.replicas == 0

    core = client.CoreV1Api(api)
    core.create_namespaced_replication_controller(
        namespace,
        client.V1ReplicationController(
            metadata=client.V1ObjectMeta(name="rc"),
            spec=client.V1ReplicationControllerSpec(
                replicas=0, selector=labels(), template=pod_template()
            ),
        ),
    )
    assert core.read_namespaced_replication_controller("rc", namespace).status.replicas == 0

    policy = client.PolicyV1Api(api)
    policy.create_namespaced_pod_disruption_budget(
        namespace,
        client.V1PodDisruptionBudget(
            metadata=client.V1ObjectMeta(name="pdb"),
            spec=client.V1PodDisruptionBudgetSpec(min_available=1, selector=selector),
        ),
    )
    pdb = policy.read_namespaced_pod_disruption_budget("pdb", namespace)
    assert pdb.status.disruptions_allowed == 0


def test_deployment_scale_and_patches(api, namespace):
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1DeploymentSpec(
                replicas=0,
                selector=client.V1LabelSelector(match_labels=labels()),
                template=pod_template(),
            ),
        ),
    )
    scale = apps.read_namespaced_deployment_scale("web", namespace)
    assert scale.spec.replicas == 0
    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 0}})
    patched = apps.patch_namespaced_deployment(
        "web", namespace, {"metadata": {"labels": {"tier": "front"}}}
    )
    assert patched.metadata.labels == {"tier": "front"}
    assert patched.metadata.generation == 1
    patched = apps.patch_namespaced_deployment(
        "web", namespace, [{"op": "replace", "path": "/spec/revisionHistoryLimit", "value": 3}]
    )
    assert patched.spec.revision_history_limit == 3
    assert patched.metadata.generation == 2
    apps.delete_namespaced_deployment("web", namespace)


def test_pods_services_and_selectors(api, namespace):
    core = client.CoreV1Api(api)
    for name in ["a", "b"]:
        core.create_namespaced_pod(
            namespace,
            client.V1Pod(
                metadata=client.V1ObjectMeta(name=name, labels={"name": name}),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="c", image="busybox:1.36")],
                    node_name="nowhere",
                ),
            ),
        )
    pod = core.read_namespaced_pod("a", namespace)
    assert pod.status.phase == "Pending"
    assert pod.status.qos_class == "BestEffort"
    assert pod.spec.containers[0].image_pull_policy == "IfNotPresent"
    selected = core.list_namespaced_pod(namespace, label_selector="name=b")
    assert [p.metadata.name for p in selected.items] == ["b"]
    by_field = core.list_namespaced_pod(namespace, field_selector="metadata.name=a")
    assert [p.metadata.name for p in by_field.items] == ["a"]
    page = core.list_namespaced_pod(namespace, limit=1)
    assert len(page.items) == 1 and page.metadata._continue
    svc = core.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1ServiceSpec(
                selector=labels(), ports=[client.V1ServicePort(port=80, target_port=8080)]
            ),
        ),
    )
    assert svc.spec.cluster_ip.startswith("10.43.")
    assert svc.spec.ports[0].protocol == "TCP"


def test_watch_sees_changes(api, namespace):
    core = client.CoreV1Api(api)
    start = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="watched"), data={"k": "v"}),
    )
    core.delete_namespaced_config_map("watched", namespace)
    seen = []
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_config_map,
        namespace,
        resource_version=start,
        timeout_seconds=5,
    ):
        if event["object"].metadata.name == "watched":
            seen.append(event["type"])
        if len(seen) == 2:
            w.stop()
    assert seen == ["ADDED", "DELETED"]


def test_jobs_and_the_immortal_namespaces(api, namespace):
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job(
        namespace,
        client.V1Job(
            metadata=client.V1ObjectMeta(name="pi"),
            spec=client.V1JobSpec(
                suspend=True,
                template=client.V1PodTemplateSpec(
                    spec=client.V1PodSpec(
                        restart_policy="Never",
                        containers=[client.V1Container(name="c", image="busybox:1.36")],
                    )
                ),
            ),
        ),
    )
    job = batch.read_namespaced_job("pi", namespace)
    assert job.spec.backoff_limit == 6
    assert "batch.kubernetes.io/controller-uid" in job.spec.selector.match_labels
    with pytest.raises(ApiException) as refused:
        client.CoreV1Api(api).delete_namespace("default")
    assert refused.value.status == 403


def test_custom_objects(api, namespace):
    """A CRD through ApiextensionsV1Api, its objects through CustomObjectsApi, as the client's
    own custom-object tests use them."""
    ext = client.ApiextensionsV1Api(api)
    group, plural = "py.ferry.dev", "gadgets"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": "gadget", "kind": "Gadget", "shortNames": ["gd"]},
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "size": {"type": "integer", "minimum": 1, "default": 1}}},
                    "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}}}},
            }],
        },
    }
    created = ext.create_custom_resource_definition(crd)
    assert created.spec.names.list_kind == "GadgetList"
    for _ in range(100):
        read = ext.read_custom_resource_definition(f"{plural}.{group}")
        conditions = {c.type: c.status for c in (read.status.conditions or [])}
        if conditions.get("Established") == "True":
            break
        import time
        time.sleep(0.1)
    else:
        pytest.fail("the definition was not established")
    custom = client.CustomObjectsApi(api)
    body = {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {}}
    made = custom.create_namespaced_custom_object(group, "v1", namespace, plural, body)
    assert made["spec"]["size"] == 1
    listed = custom.list_namespaced_custom_object(group, "v1", namespace, plural)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["g"]
    patched = custom.patch_namespaced_custom_object(group, "v1", namespace, plural, "g", {"spec": {"size": 3}})
    assert patched["spec"]["size"] == 3
    status = custom.patch_namespaced_custom_object_status(group, "v1", namespace, plural, "g", {"status": {"ready": True}})
    assert status["status"] == {"ready": True}
    with pytest.raises(ApiException) as bad:
        custom.patch_namespaced_custom_object(group, "v1", namespace, plural, "g", {"spec": {"size": 0}})
    assert bad.value.status == 422
    assert "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1" in json.loads(bad.value.body)["message"]
    custom.delete_namespaced_custom_object(group, "v1", namespace, plural, "g")
    ext.delete_custom_resource_definition(f"{plural}.{group}")


def test_server_side_apply(api, namespace):
    """Server-side apply as the client's dynamic client sends it: an apply patch with a field
    manager; a second manager's conflicting apply is a 409 until forced."""
    from kubernetes import dynamic
    from kubernetes.dynamic.exceptions import ConflictError
    deployments = dynamic.DynamicClient(api).resources.get(api_version="apps/v1", kind="Deployment")
    body = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "applied", "namespace": namespace},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels()},
                 "template": {"metadata": {"labels": labels()},
                              "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}},
    }
    made = deployments.server_side_apply(body=body, namespace=namespace, field_manager="py")
    assert made.spec.replicas == 1
    assert [(m.manager, m.operation) for m in made.metadata.managedFields] == [("py", "Apply")]
    scaled = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "applied"},
              "spec": {"replicas": 2}}
    with pytest.raises(ConflictError) as conflict:
        deployments.server_side_apply(body=scaled, namespace=namespace, field_manager="other")
    assert conflict.value.status == 409
    status = json.loads(conflict.value.body)
    assert status["reason"] == "Conflict"
    assert status["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": "conflict with \"py\"", "field": ".spec.replicas"}]
    forced = deployments.server_side_apply(
        body=scaled, namespace=namespace, field_manager="other", force_conflicts=True)
    assert forced.spec.replicas == 2
    # The typed client reads the object with its managed fields (the appliers' entries; the
    # deployment controller's status writes may have added an Update entry of its own).
    typed = client.AppsV1Api(api).read_namespaced_deployment("applied", namespace)
    appliers = {m.manager for m in typed.metadata.managed_fields if m.operation == "Apply"}
    assert appliers == {"py", "other"}
    client.AppsV1Api(api).delete_namespaced_deployment("applied", namespace)
