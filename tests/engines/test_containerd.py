"""containerd drives pycontain as a kubelet would: a pod through the CRI API, and ctr's run/exec/kill/rm.

containerd 1.6 (Debian) runs in a namespace sandbox of its own (engines_env), with pycontain as the
default runtime handler behind the io.containerd.runc.v2 shim, which calls it by runc's command line.
"""

from __future__ import annotations

import ipaddress
import os
import shutil

import pytest
from conftest import ROOT_REQUIRED, engine_sandbox
from nsbox import hybrid_or_v1

from .cri import Cri, load_stubs
from .engines_env import IMAGE, NAMESPACE, POD_SUBNET, PYCONTAIN, ContainerdEnv

pytestmark = [
    ROOT_REQUIRED,
    pytest.mark.engines,
    pytest.mark.skipif(
        shutil.which("containerd") is None or shutil.which("containerd-shim-runc-v2") is None,
        reason="containerd is not installed (make setup installs it: apt-get install containerd)",
    ),
    pytest.mark.skipif(
        not os.path.isfile("/usr/lib/cni/bridge"),
        reason="the CNI plugins are not installed (apt-get install containernetworking-plugins)",
    ),
    pytest.mark.skipif(
        not hybrid_or_v1(), reason="the engine sandbox (tests/nsbox.py) needs a v1 or hybrid host"
    ),
]
pytest.importorskip("grpc_tools", reason="grpcio-tools is not installed (the test extra has it)")

SHIM_ROOT = f"/run/containerd/runc/{NAMESPACE}"  # where the shim points pycontain's --root


@pytest.fixture(scope="module")
def containerd(images):
    with engine_sandbox(ContainerdEnv(images)) as env:
        yield env


@pytest.fixture(scope="module")
def cri(containerd, tmp_path_factory):
    client = Cri(containerd.socket, load_stubs(str(tmp_path_factory.mktemp("cri-stubs"))))
    yield client
    client.close()


def _leftovers(env: ContainerdEnv) -> list[str]:
    """Containers pycontain still knows of in the shim's state root."""
    return env.run(PYCONTAIN, "--root", SHIM_ROOT, "list", "-q").stdout.split()


def test_pod_lifecycle_through_cri(cri, containerd, tmp_path):
    assert cri.version().runtime_name == "containerd"
    pod_config = cri.sandbox_config("web", log_dir=str(tmp_path))
    pod = cri.run_pod(pod_config)
    status = cri.pod_status(pod)
    assert status.state == cri.pb.SANDBOX_READY
    assert ipaddress.ip_address(status.network.ip) in ipaddress.ip_network(POD_SUBNET)

    cid = cri.create(
        pod, pod_config, "app", IMAGE, ["sh", "-c", "echo started; exec sleep 60"], log="app.log"
    )
    assert cri.status(cid).state == cri.pb.CONTAINER_CREATED
    cri.start(cid)
    assert cri.status(cid).state == cri.pb.CONTAINER_RUNNING
    # ExecSync: output, exit status, and the pod's hostname and network (eth0 with the pod's address).
    r = cri.exec_sync(cid, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (r.stdout, r.stderr, r.exit_code) == (b"out\n", b"err\n", 3)
    r = cri.exec_sync(cid, ["sh", "-c", "hostname; ip -4 -o addr show eth0"])
    assert r.exit_code == 0, r.stderr
    hostname, addr = r.stdout.decode().splitlines()
    assert hostname == "web" and f" {status.network.ip}/" in addr
    assert "started" in (tmp_path / "app.log").read_text()

    cri.stop(cid, grace=0)
    st = cri.wait_exited(cid)
    assert (st.state, st.exit_code) == (cri.pb.CONTAINER_EXITED, 137)
    cri.remove(cid)

    # A container that exits by itself: its status carries the exit code.
    cid = cri.create(pod, pod_config, "job", IMAGE, ["sh", "-c", "exit 7"])
    cri.start(cid)
    st = cri.wait_exited(cid)
    assert (st.state, st.exit_code, st.reason) == (cri.pb.CONTAINER_EXITED, 7, "Error")
    cri.remove(cid)

    cri.stop_pod(pod)
    cri.stop_pod(pod)  # idempotent, as kubelet expects
    cri.remove_pod(pod)
    assert _leftovers(containerd) == []


def test_host_network_pod_has_no_hostname_of_its_own(cri, containerd):
    pod_config = cri.sandbox_config("hostnet", host_network=True)
    pod = cri.run_pod(pod_config)
    try:
        cid = cri.create(pod, pod_config, "app", IMAGE, ["sleep", "60"])
        cri.start(cid)
        r = cri.exec_sync(cid, ["sh", "-c", "hostname; cat /proc/net/dev | grep -c cni0"])
        # The node's hostname, and the node's network (the CNI bridge of the other pods is there).
        assert r.stdout.decode().split()[0] == containerd.run("hostname").stdout.strip()
        cri.stop(cid)
        cri.remove(cid)
    finally:
        cri.stop_pod(pod)
        cri.remove_pod(pod)
    assert _leftovers(containerd) == []


def test_memory_limit_and_oom_kill_reported(cri, containerd):
    pod_config = cri.sandbox_config("oom")
    pod = cri.run_pod(pod_config)
    try:
        limit = 32 << 20
        cid = cri.create(
            pod,
            pod_config,
            "hog",
            IMAGE,
            ["sh", "-c", "sleep 0.2; dd if=/dev/zero of=/dev/null bs=96M count=1"],
            memory=limit,
        )
        cri.start(cid)
        st = cri.wait_exited(cid)
        assert (st.exit_code, st.reason) == (137, "OOMKilled")
        cri.remove(cid)
    finally:
        cri.stop_pod(pod)
        cri.remove_pod(pod)


def test_ctr_run_exec_kill_rm(containerd):
    ctr = containerd.ctr
    p = ctr("run", "--rm", "--runc-binary", PYCONTAIN, IMAGE, "ctr-fg", "sh", "-c", "echo hello; exit 5")
    assert (p.returncode, p.stdout) == (5, "hello\n"), p.stderr
    p = ctr("run", "-d", "--runc-binary", PYCONTAIN, IMAGE, "ctr-bg", "sleep", "60")
    assert p.returncode == 0, p.stderr
    p = ctr("task", "exec", "--exec-id", "e1", "ctr-bg", "sh", "-c", "echo in-exec; exit 2")
    assert (p.returncode, p.stdout) == (2, "in-exec\n"), p.stderr
    assert "RUNNING" in ctr("task", "ls").stdout
    assert ctr("task", "kill", "--signal", "SIGKILL", "ctr-bg").returncode == 0
    p = ctr("task", "delete", "ctr-bg")  # waits for the exit containerd records
    for _ in range(100):
        if p.returncode == 0:
            break
        p = ctr("task", "delete", "ctr-bg")
    assert p.returncode == 0, p.stderr
    assert ctr("container", "rm", "ctr-bg").returncode == 0
    assert "ctr-bg" not in ctr("container", "ls", "-q").stdout
    assert _leftovers(containerd) == []
