"""Fixtures for the networking tests: fake containers, and snapshots of everything networking could leak
(the session's private registry, bridge name and nftables table come from tests/conftest.py).

Traffic stays on the host: only loopback and the namespaces these tests create are ever addressed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from conftest import TEST_BRIDGE, TEST_TABLE

HERE = os.path.dirname(os.path.abspath(__file__))
NSHELPER = os.path.join(HERE, "nshelper.py")
__all__ = ["TEST_BRIDGE", "TEST_TABLE"]


def _usable() -> str | None:
    if os.geteuid() != 0:
        return "networking needs root"
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        return "pyroute2 is not installed"
    if not (shutil.which("nft") or os.path.exists("/usr/sbin/nft")):
        return "nftables is not installed (apt-get install nftables)"
    return None


SKIP_REASON = _usable()
needs_net = [pytest.mark.root, pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")]


@pytest.fixture(scope="session")
def net_env(private_network):
    """The session's own registry, default bridge and nft table (tests/conftest.py's private_network, which
    removes whatever the tests made at the end, even after failures), or None where networking cannot run."""
    return None if SKIP_REASON is not None else private_network


def new_id() -> str:
    return os.urandom(32).hex()


class Fakes:
    """Fake containers: a state directory and an attach(); all detached (and their dirs removed) at the end."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.made: list[str] = []

    def new(self, network: str = "bridge", name: str | None = None, **kw: object):
        from pycontain import network as net

        cid = new_id()
        os.makedirs(os.path.join(self.root, cid))
        self.made.append(cid)
        return net.attach(cid, network, container_name=name or f"c{cid[:6]}", state_root=self.root, **kw)

    def dir(self) -> str:
        cid = new_id()
        os.makedirs(os.path.join(self.root, cid))
        self.made.append(cid)
        return cid

    def cleanup(self) -> None:
        from pycontain import network as net

        for cid in self.made:
            try:
                net.detach(cid, None, self.root)
            finally:
                shutil.rmtree(os.path.join(self.root, cid), ignore_errors=True)


@pytest.fixture
def fakes(state_root):
    if SKIP_REASON is not None:
        pytest.skip(SKIP_REASON)
    os.makedirs(state_root, exist_ok=True)
    f = Fakes(state_root)
    yield f
    f.cleanup()


@pytest.fixture
def network_name(net_env):
    """A fresh user network's name; removed after the test."""
    made: list[str] = []

    def make(subnet: str | None = None, internal: bool = False) -> str:
        from pycontain import network as net

        name = f"t{os.urandom(3).hex()}"
        net.create_network(name, subnet=subnet, internal=internal)
        made.append(name)
        return name

    yield make
    from pycontain import network as net

    for name in made:
        try:
            net.remove_network(name)
        except Exception:
            pass


# -- fake containers' processes ---------------------------------------------------------------------------
def helper(
    netns: str, *args: str, hosts: str | None = None, timeout: float = 20
) -> subprocess.CompletedProcess:
    argv = [sys.executable, NSHELPER, netns, *(["--hosts", hosts] if hosts else []), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


class Server:
    """A TCP server inside a namespace that answers every connection with its tag."""

    def __init__(self, netns: str, port: int, tag: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, NSHELPER, netns, "serve", str(port), tag],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            raise AssertionError(f"server did not start: {line!r} {self.proc.stderr.read()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def servers():
    made: list[Server] = []

    def start(netns: str, port: int, tag: str) -> Server:
        s = Server(netns, port, tag)
        made.append(s)
        return s

    yield start
    for s in made:
        s.stop()


def connect(
    netns: str, host: str, port: int, hosts: str | None = None, timeout: float = 3
) -> tuple[bool, str]:
    p = helper(netns, "connect", host, str(port), str(timeout), hosts=hosts)
    return p.returncode == 0, (p.stdout + p.stderr).strip()


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports no process listens on (each held bound until all are chosen)."""
    import socket

    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("0.0.0.0", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


# -- leak snapshots ---------------------------------------------------------------------------------------
def _strip_handles(obj):
    if isinstance(obj, dict):
        return {k: _strip_handles(v) for k, v in obj.items() if k != "handle"}
    if isinstance(obj, list):
        return [_strip_handles(v) for v in obj]
    return obj


def _json(argv: list[str]) -> object:
    p = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(p.stdout or "null")


def snapshot(state_root: str) -> dict:
    """Everything attach could leave behind: links, addresses, routes, the nft table (without handles),
    namespace mounts, allocations and namespace files. Limited to what this session made (its bridges and
    their ports, its table, mounts under the test's state root): every pycontain run makes veths now, and
    other test sessions on the host run at the same time."""
    from conftest import mountinfo

    from pycontain.network import ipam

    nets = ipam.Registry().all()
    bridges = {TEST_BRIDGE} | {n["bridge"] for n in nets}
    # A veth is ours when it is on one of our bridges, or named after one of our containers.
    veths = {m["veth_host"] for n in nets for m in n["members"].values()}
    ours = {
        link["ifname"]
        for link in _json(["ip", "-j", "link"])
        if link["ifname"] in bridges or link.get("master") in bridges or link["ifname"] in veths
    }
    links = sorted(ours)
    addrs = sorted(
        (a["ifname"], i["local"], i["prefixlen"])
        for a in _json(["ip", "-j", "addr"])
        if a["ifname"] in ours
        for i in a.get("addr_info", [])
        if not i["local"].startswith("fe80")
    )
    # A bridge's carrier (the "linkdown" flag of its routes) follows its ports with a delay: not a leak.
    routes = sorted(
        json.dumps({k: v for k, v in r.items() if k != "flags"}, sort_keys=True)
        for r in _json(["ip", "-j", "-4", "route", "show", "table", "all"])
        if r.get("dev") in ours
    )
    table = subprocess.run(["nft", "-j", "list", "table", "ip", TEST_TABLE], capture_output=True, text=True)
    ruleset = _strip_handles(json.loads(table.stdout)) if table.returncode == 0 else None
    mounts = [m for m in mountinfo() if state_root in m]
    members = {n["name"]: sorted(n["members"]) for n in nets}
    nsdir = os.path.join(state_root, "netns")
    return {
        "links": links,
        "addrs": addrs,
        "routes": routes,
        "nft": ruleset,
        "mounts": mounts,
        "members": members,
        "netns": sorted(os.listdir(nsdir)) if os.path.isdir(nsdir) else [],
    }


def assert_same(before: dict, after: dict) -> None:
    for key in before:
        assert before[key] == after[key], f"{key} leaked: before {before[key]!r}\nafter {after[key]!r}"


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
