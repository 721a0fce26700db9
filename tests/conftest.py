"""Shared fixtures: a private state root per test, a CLI runner, and leak snapshots.

Every test runs the real thing as root. Each gets its own state root (``--root``), and whatever
containers it leaves behind are removed with ``rm -f`` afterwards, even when it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time

import pytest

import rootfs_builder
from pycontain.spec import default_spec

ROOT_REQUIRED = pytest.mark.root  # skipped without root: see pytest_collection_modifyitems

# Fixtures that start containers or make namespaces, bridges and cgroups: a test using one needs root.
ROOT_FIXTURES = frozenset({"pyc", "state_root", "net_env", "fakes", "network_name", "servers"})
# Markers of tests that boot VMs, drive podman or load the machine: they run as root in CI's full suite.
ROOT_MARKERS = ("root", "vm", "podman", "soak")


def needs_root(item: pytest.Item) -> bool:
    """Whether ``item`` needs root: marked so (or vm/podman/soak), using a fixture that starts containers,
    or skipped without root by a condition of its own (a skipif whose reason names root)."""
    if any(item.get_closest_marker(m) is not None for m in ROOT_MARKERS):
        return True
    if ROOT_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return True
    return any("root" in str(m.kwargs.get("reason", "")).lower() for m in item.iter_markers("skipif"))


def pytest_configure(config: pytest.Config) -> None:
    """A suite started in the background by a non-interactive shell (``nohup make test &``) inherits SIGINT
    ignored, and so would every pycontain it starts: the tests that press Ctrl-C (``stats``, ``import``,
    ``vm boot``) would then wait for an exit that never comes. A Python handler here is reset to the
    default by each child's exec, as under a terminal."""
    import signal

    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that needs root with ``root`` (``make check`` runs ``-m "not root"``), and skip
    those tests when pytest runs without root."""
    skip = pytest.mark.skip(reason="needs root (namespaces, mounts, cgroups)")
    for item in items:
        if needs_root(item):
            item.add_marker(pytest.mark.root)
            if os.geteuid() != 0:
                item.add_marker(skip)


class CLI:
    """Runs ``python -m pycontain --root ROOT ...`` and returns the CompletedProcess."""

    def __init__(self, root: str) -> None:
        self.root = root

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "pycontain", "--root", self.root, *args]

    def __call__(
        self, *args: str, input: str | None = None, timeout: float = 60, check: bool = False, **kw: object
    ) -> subprocess.CompletedProcess:
        p = subprocess.run(
            self.argv(*args), input=input, capture_output=True, text=True, timeout=timeout, **kw
        )
        if check and p.returncode != 0:
            raise AssertionError(f"pycontain {' '.join(args)} exited {p.returncode}: {p.stderr}")
        return p

    def leaving(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """For commands that leave a process behind holding the stdio they were given (OCI create,
        run --detach): its stdout goes to /dev/null and its stderr to a file, never to a pipe we wait on."""
        import tempfile

        with tempfile.TemporaryFile("w+") as err:
            p = subprocess.run(
                self.argv(*args),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                timeout=timeout,
                text=True,
            )
            err.seek(0)
            p.stderr = err.read()
        return p

    def popen(self, *args: str, **kw: object) -> subprocess.Popen:
        return subprocess.Popen(
            self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
        )

    def ids(self) -> list[str]:
        return [d for d in os.listdir(self.root) if len(d) == 64] if os.path.isdir(self.root) else []


@pytest.fixture
def state_root(tmp_path):
    root = str(tmp_path / "state")
    yield root
    _remove_all(root)


@pytest.fixture
def pyc(state_root) -> CLI:
    return CLI(state_root)


def _remove_all(root: str) -> None:
    if not os.path.isdir(root):
        return
    ids = [d for d in os.listdir(root) if len(d) == 64]
    if ids:
        subprocess.run(
            [sys.executable, "-m", "pycontain", "--root", root, "rm", "-f", *ids],
            capture_output=True,
            timeout=60,
        )


def own_cgroup_dirs() -> list[str]:
    """Every cgroup directory beneath the cgroups this process runs in (v1 hierarchies and cgroup2)."""
    found = []
    with open("/proc/self/cgroup") as f:
        lines = f.read().splitlines()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers.startswith("name="):
            continue
        base = (
            "/sys/fs/cgroup/unified"
            if controllers == "" and os.path.isdir("/sys/fs/cgroup/unified")
            else "/sys/fs/cgroup"
            if controllers == ""
            else f"/sys/fs/cgroup/{controllers.split(',')[0]}"
        )
        top = os.path.join(base, path.lstrip("/"))
        for d, subdirs, _files in os.walk(top):
            found.extend(os.path.join(d, s) for s in subdirs if "pycontain" in s)
    return sorted(found)


@contextlib.contextmanager
def engine_sandbox(env):
    """An engine's private sandbox (tests/nsbox.py) opened for a module, closed after it, and checked to leave
    no cgroup, mount or temporary directory of its own (other tests may make theirs at the same time)."""
    env.open()
    try:
        yield env
    finally:
        env.close()
    assert not any(os.path.exists(d) for d in env.cgroups)
    assert not any(env.tmp in m for m in mountinfo())
    assert not os.path.exists(env.tmp)


def mountinfo() -> list[str]:
    """The host's mount table without mount ids (which change as anything mounts elsewhere)."""
    with open("/proc/self/mountinfo") as f:
        return sorted(" ".join(line.split()[2:]) for line in f)


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@pytest.fixture(scope="session", autouse=True)
def default_rootfs():
    """Build the default root filesystem once (the Makefile does it too; this makes pytest standalone)."""
    if os.geteuid() == 0:
        import rootfs_builder

        rootfs_builder.resolve("default")


# -- networking ---------------------------------------------------------------------------------------------
# 'pycontain run' puts a container on the default bridge network unless told --network none. So that tests
# never touch a real pycontain's pycontain0 and nftables table, nor another test session's (people run parts
# of the suite side by side), each session gets names of its own.
_NET_TOKEN = os.urandom(3).hex()
TEST_BRIDGE = f"pyct{_NET_TOKEN}"
TEST_TABLE = f"pycontain_test_{_NET_TOKEN}"


def _host_routes() -> list[str]:
    import json

    p = subprocess.run(["ip", "-j", "-4", "route", "show", "table", "all"], capture_output=True, text=True)
    routes = json.loads(p.stdout or "[]") if p.returncode == 0 else []
    return [r["dst"] for r in routes if r.get("dst") not in (None, "default")]


def _free_test_subnet() -> str:
    """A /24 of 10.240.0.0/12 that no host route (another session's bridge included) overlaps."""
    import ipaddress
    import random

    taken = [ipaddress.ip_network(d, strict=False) for d in _host_routes() if ":" not in d]
    candidates = [f"10.{a}.{b}.0/24" for a in range(240, 256) for b in range(256)]
    random.shuffle(candidates)
    for cand in candidates:
        net = ipaddress.ip_network(cand)
        if not any(net.overlaps(t) for t in taken):
            return cand
    raise RuntimeError("no free /24 in 10.240.0.0/12 for the tests' default network")


@pytest.fixture(scope="session", autouse=True)
def private_network():
    """A registry, default bridge, subnet and nftables table for this session (the environment every
    pycontain the tests start inherits); at the end, whatever networking the session made is removed, even
    after failures: veths, namespaces, bridges, the table, the registry."""
    import shutil
    import tempfile

    registry = tempfile.mkdtemp(prefix="pycontain-netreg-")
    # The warm network pool (on by default) off, as 'pycontain network pool 0' leaves it: no filler works
    # behind the tests' backs, and every run makes its own namespace. tests/network/test_pool.py turns it on.
    os.makedirs(os.path.join(registry, "netpool"), mode=0o700)
    with open(os.path.join(registry, "netpool", "size"), "w") as f:
        f.write("0\n")
    env = {
        "PYCONTAIN_NETWORKS_DIR": registry,
        "PYCONTAIN_BRIDGE": TEST_BRIDGE,
        "PYCONTAIN_NFT_TABLE": TEST_TABLE,
    }
    if os.geteuid() == 0:
        env["PYCONTAIN_BRIDGE_SUBNET"] = _free_test_subnet()
    saved = {k: os.environ.get(k) for k in (*env, "PYCONTAIN_BRIDGE_SUBNET")}
    os.environ.update(env)
    try:
        yield registry
    finally:
        try:
            if os.geteuid() == 0:
                _remove_networking(registry)
        finally:
            shutil.rmtree(registry, ignore_errors=True)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _remove_networking(registry: str) -> None:
    import json

    from pycontain.network import ipam, netns

    nets = ipam.Registry(registry).all()
    bridges = {TEST_BRIDGE} | {n["bridge"] for n in nets}
    for net in nets:
        for m in net["members"].values():
            subprocess.run(["ip", "link", "del", m["veth_host"]], capture_output=True)
            netns.remove(m["netns_path"])
    p = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True)
    for link in json.loads(p.stdout or "[]") if p.returncode == 0 else []:
        if link.get("master") in bridges:  # veths no record names: a run killed half-way
            subprocess.run(["ip", "link", "del", link["ifname"]], capture_output=True)
    for br in sorted(bridges):
        subprocess.run(["ip", "link", "del", br], capture_output=True)
    subprocess.run(["nft", "delete", "table", "ip", TEST_TABLE], capture_output=True)


@pytest.fixture
def bundle(tmp_path):
    """A bundle with a private copy of the default root filesystem and runc spec's defaults."""
    b = tmp_path / "bundle"
    b.mkdir()
    subprocess.run(["cp", "-a", rootfs_builder.resolve("default"), str(b / "rootfs")], check=True)
    return b


def write_config(bundle, args, mutate=None) -> dict:
    """Write an OCI config.json into BUNDLE: runc spec's defaults running ARGS without a terminal, then MUTATE."""
    cfg = default_spec()
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = args
    if mutate:
        mutate(cfg)
    (bundle / "config.json").write_text(json.dumps(cfg))
    return cfg
