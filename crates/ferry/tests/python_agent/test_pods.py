"""The official Python client (kubernetes on PyPI) against a `ferry server` whose local agent
runs the pods: what upstream's client e2e suite checks of pods, exec and port-forward, through
the client's own WebSocket streaming (`kubernetes.stream`).

Run by crates/ferry/tests/agent.rs, which starts the server with its agent, a registries file
mirroring docker.io to the local test registry, and sets KUBECONFIG.
"""

import os
import time
import uuid

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.stream import portforward, stream


@pytest.fixture(scope="module")
def core():
    config.load_kube_config(config_file=os.environ["KUBECONFIG"])
    return client.CoreV1Api()


@pytest.fixture(scope="module")
def namespace(core):
    name = "py-pods-" + uuid.uuid4().hex[:6]
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def running_pod(core, namespace, name, image, command=None):
    container = client.V1Container(name=name, image=image, command=command)
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(containers=[container], termination_grace_period_seconds=1),
    )
    core.create_namespaced_pod(namespace, pod)
    deadline = time.time() + 60
    while time.time() < deadline:
        read = core.read_namespaced_pod(name, namespace)
        if read.status.phase == "Running":
            return read
        time.sleep(0.5)
    raise AssertionError(f"pod {name} never ran: {read.status}")


@pytest.fixture(scope="module")
def shell(core, namespace):
    running_pod(core, namespace, "shell", "busybox", ["sh", "-c", "echo started; sleep 3600"])
    return "shell"


@pytest.fixture(scope="module")
def web(core, namespace):
    running_pod(core, namespace, "web", "nginx")
    return "web"


def test_pod_lifecycle_and_log(core, namespace, shell):
    pod = core.read_namespaced_pod(shell, namespace)
    assert pod.status.pod_ip
    assert pod.status.container_statuses[0].ready
    assert core.read_namespaced_pod_log(shell, namespace) == "started\n"
    listed = core.list_namespaced_pod(namespace, field_selector=f"metadata.name={shell}")
    assert [p.metadata.name for p in listed.items] == [shell]


def test_exec_output(core, namespace, shell):
    out = stream(
        core.connect_get_namespaced_pod_exec,
        shell,
        namespace,
        command=["/bin/sh", "-c", "echo hello; echo oops >&2"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    assert "hello" in out


def test_exec_exit_code(core, namespace, shell):
    resp = stream(
        core.connect_get_namespaced_pod_exec,
        shell,
        namespace,
        command=["/bin/sh", "-c", "exit 3"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    resp.run_forever(timeout=10)
    assert resp.returncode == 3


def test_exec_stdin(core, namespace, shell):
    resp = stream(
        core.connect_get_namespaced_pod_exec,
        shell,
        namespace,
        command=["/bin/sh"],
        stderr=True,
        stdin=True,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    resp.write_stdin("echo from-stdin $((40 + 2))\n")
    seen = ""
    deadline = time.time() + 10
    while "from-stdin 42" not in seen and time.time() < deadline:
        resp.update(timeout=1)
        seen += resp.read_stdout()
    resp.write_stdin("exit 0\n")
    resp.close()
    assert "from-stdin 42" in seen


def test_exec_in_a_missing_pod_is_refused(core, namespace):
    # The client reports a refused WebSocket handshake with the status in its reason.
    with pytest.raises(ApiException) as missing:
        stream(
            core.connect_get_namespaced_pod_exec,
            "nothing",
            namespace,
            command=["true"],
            stdout=True,
        )
    assert "404" in str(missing.value), str(missing.value)


def test_portforward_raw_http(core, namespace, web):
    pf = portforward(core.connect_get_namespaced_pod_portforward, web, namespace, ports="80")
    sock = pf.socket(80)
    sock.setblocking(True)
    sock.sendall(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
    data = b""
    deadline = time.time() + 10
    while time.time() < deadline:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
        if b"</html>" in data:
            break
    sock.close()
    assert pf.error(80) is None
    assert b"200 OK" in data, data
    assert b"hello from ferry httpd" in data, data
