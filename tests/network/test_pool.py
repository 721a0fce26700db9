"""The warm pool of network namespaces (pycontain.network.pool) on the session's private default network:
claims take ready entries (atomically: concurrent runs get distinct ones), the pool refills in the
background, turning it off removes every entry, and stale entries or a filler's leftovers are collected by
gc. What the kernel shows is checked: mounts, veths on the bridge, the container's own eth0 address."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from pycontain.network import ipam, netns, pool
from tests.conftest import wait_until
from tests.importlist import imported

from .conftest import TEST_BRIDGE, needs_net

pytestmark = needs_net


def _bridge_ports() -> set[str]:
    p = subprocess.run(["ip", "-j", "link", "show", "master", TEST_BRIDGE], capture_output=True, text=True)
    return {link["ifname"] for link in json.loads(p.stdout or "[]")}


def _entries() -> list[dict]:
    return pool.entries(ipam.Registry())


def _no_filler() -> None:
    """Wait until no background filler is at work (it holds the pool's lock while it makes entries)."""
    fd = pool.lock_pool(pool.pool_dir(), blocking=True)
    assert fd is not None
    os.close(fd)


def _fillers() -> list[str]:
    """The pids of the filler processes at work on this session's registry."""
    registry = f"PYCONTAIN_NETWORKS_DIR={ipam.Registry().path}".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"pycontain.network.filler" not in f.read():
                    continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                if registry in f.read().split(b"\0"):
                    found.append(pid)
        except OSError:
            continue
    return found


def _settled() -> None:
    """After a claim: wait until the filler it started has topped the pool up, then until it has left (a
    filler not started yet would otherwise take the lock after _no_filler, and gc would skip the pool)."""
    assert wait_until(lambda: len(pool.entries(ipam.Registry(), ready_only=True)) == 2, timeout=30)
    _no_filler()


def _turn_off(pyc) -> None:
    """The fixtures' end: their containers removed, the filler gone, the pool off and empty."""
    for cid in pyc.ids():
        pyc("rm", "-f", cid)
    _no_filler()
    off = pyc("network", "pool", "0")
    assert (off.returncode, off.stdout) == (0, "0\n"), off.stderr
    assert _entries() == []


@pytest.fixture
def warm(pyc):
    """The pool on, with 2 entries; off again (every entry removed) at the end, even after a failure."""
    p = pyc("network", "pool", "2")
    try:
        assert (p.returncode, p.stdout) == (0, "2\n"), p.stderr
        yield pyc
    finally:
        _turn_off(pyc)


def test_entries_are_ready_namespaces_on_the_bridge(warm):
    entries = _entries()
    assert len(entries) == 2
    ports = _bridge_ports()
    for m in entries:
        assert netns.is_mounted(m["netns_path"])
        assert m["netns_path"].startswith(pool.pool_dir() + "/")
        assert m["veth_host"] in ports
        assert not m["container_name"] and not m.get("hostname")  # listed in no hosts file


def test_run_takes_an_entry_which_goes_with_the_container(warm):
    before = {m["ip"]: m for m in _entries()}
    p = warm(
        "run",
        "--rm",
        "--name",
        "pooled",
        "default",
        "--",
        "sh",
        "-c",
        "ip -4 -o addr show eth0; cat /etc/hosts",
    )
    assert p.returncode == 0, p.stderr
    ip = p.stdout.split()[3].split("/")[0]
    assert ip in before, (p.stdout, before)
    assert f"{ip}\tpooled" in p.stdout or "pooled" in p.stdout.split("\n", 1)[1]
    taken = before[ip]
    # --rm removed what the container took, like any namespace of its own
    assert not os.path.exists(taken["netns_path"])
    assert taken["veth_host"] not in _bridge_ports()
    # and the pool is topped up again in the background, by the filler, which sweeps the entry's directory
    assert wait_until(lambda: len(pool.entries(ipam.Registry(), ready_only=True)) == 2, timeout=30)
    _no_filler()
    assert not os.path.exists(os.path.join(pool.pool_dir(), taken["container_id"]))


def test_concurrent_runs_take_distinct_entries(warm):
    procs = [warm.popen("run", "-d", "--name", f"c{i}", "default", "--", "sleep", "60") for i in range(3)]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    nets = {}
    for i in range(3):
        info = json.loads(warm("inspect", f"c{i}", check=True).stdout)[0]
        nets[info["Config"]["net_info"]["ip"]] = i
    assert len(nets) == 3  # every container its own address (two from the pool, one made as usual)
    members = ipam.Registry().load("bridge")["members"]
    assert len({m["netns_path"] for m in members.values()}) == len(members)


def test_stale_entry_is_never_claimed_and_gc_collects_it(warm):
    stale = _entries()[0]
    netns.remove(stale["netns_path"])  # as after a reboot: the record stays, the namespace is gone
    p = warm("run", "--rm", "default", "--", "ip", "-4", "-o", "addr", "show", "eth0")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[3].split("/")[0] != stale["ip"]
    _settled()
    # the filler's own attach pruned it, and it swept the entry's directory
    assert stale["container_id"] not in {m["container_id"] for m in _entries()}
    assert not os.path.exists(os.path.join(pool.pool_dir(), stale["container_id"]))
    # with no run (and so no filler) after it, gc collects one
    assert wait_until(lambda: _fillers() == [], 30)
    stale = _entries()[0]
    netns.remove(stale["netns_path"])
    g = warm("network", "gc", check=True)
    assert stale["container_id"][:12] in g.stdout
    assert stale["container_id"] not in {m["container_id"] for m in _entries()}
    assert not os.path.exists(os.path.join(pool.pool_dir(), stale["container_id"]))


def test_gc_removes_a_fillers_leftovers(warm, tmp_path):
    """A filler killed half-way: an entry directory and a namespace file no registry member owns."""
    d = pool.pool_dir()
    orphan = os.urandom(32).hex()
    os.mkdir(os.path.join(d, orphan))
    path = os.path.join(d, "netns", orphan)
    netns.create(path)
    _no_filler()
    g = warm("network", "gc", check=True)
    assert orphan in g.stdout
    assert not os.path.exists(os.path.join(d, orphan)) and not os.path.exists(path)
    assert len(_entries()) == 2  # the pool's own entries stay


def test_pool_size_is_checked(pyc):
    p = pyc("network", "pool", "-1")
    assert p.returncode != 0 and "Traceback" not in p.stderr


def test_an_unfinished_entry_is_never_claimed_and_gc_removes_it(warm):
    """A filler killed after attach but before marking its entry ready: recorded, with a veth and a
    namespace, yet never handed out; gc (with no filler at work) removes all of it."""
    from pycontain import network

    d = pool.pool_dir()
    entry_id = os.urandom(32).hex()
    os.mkdir(os.path.join(d, entry_id))
    info = network.attach(entry_id, "bridge", container_name="", state_root=d)
    assert entry_id not in {m["container_id"] for m in pool.entries(ipam.Registry(), ready_only=True)}
    p = warm("run", "--rm", "default", "--", "ip", "-4", "-o", "addr", "show", "eth0")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[3].split("/")[0] != info.ip
    _settled()
    g = warm("network", "gc", check=True)
    assert "unusable pool entry" in g.stdout
    assert entry_id not in {m["container_id"] for m in _entries()}
    assert info.veth_host not in _bridge_ports()
    assert not os.path.exists(info.netns_path) and not os.path.exists(os.path.join(d, entry_id))


def test_the_filler_is_never_a_child_of_the_claimer(warm):
    """A claimer that lives on (a container's monitor, a Python program) must not collect zombies: the
    filler is started through a short-lived intermediate, and reparented; the intermediate, which the
    claimer does not wait for, is reaped by its next start of one."""

    def stat(pid: str) -> list[str]:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()
        except OSError:
            return ["X", "0"]

    def children() -> dict[str, str]:
        return {
            p: f[0] for p in filter(str.isdigit, os.listdir("/proc")) if int((f := stat(p))[1]) == os.getpid()
        }

    before = children()
    pool.spawn_fill()
    assert wait_until(lambda: _fillers() != [], 10)
    assert all(int(stat(pid)[1]) != os.getpid() for pid in _fillers())
    # the intermediate exits at once, a zombie until reaped
    assert wait_until(lambda: all(state == "Z" for pid, state in children().items() if pid not in before))
    netns.reap_detached()
    assert children().keys() == before.keys()
    _no_filler()


def test_an_entry_whose_veth_was_deleted_is_never_claimed(warm):
    """A veth deleted by hand (or with its bridge): the entry would give no network. It is skipped, and
    gc removes what is left of it."""
    gone = _entries()[0]
    subprocess.run(["ip", "link", "del", gone["veth_host"]], check=True)
    p = warm("run", "--rm", "default", "--", "ip", "-4", "-o", "addr", "show", "eth0")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[3].split("/")[0] != gone["ip"]
    _settled()
    g = warm("network", "gc", check=True)
    assert "unusable pool entry" in g.stdout
    assert gone["container_id"] not in {m["container_id"] for m in _entries()}
    assert not os.path.exists(gone["netns_path"])


def test_a_pooled_run_and_its_removal_load_no_netlink_library(warm):
    """A claim and ``--rm``'s detach are files and one netlink socket: neither pyroute2 (40 ms to import)
    nor the socket (5-8 ms: selectors, enum) or ipaddress (2 ms) module, nor, without -p, the network's
    modules for published ports and for netlink and nftables upkeep."""
    mods = imported(warm.root, "run", "--rm", "default", "true")
    assert "pycontain.network.pool" in mods  # the pool's path was taken
    assert not {"pyroute2", "socket", "ipaddress"} & {m.split(".")[0] for m in mods}
    assert not {"pycontain.network.ports", "pycontain.network.upkeep"} & set(mods)
    _settled()


@pytest.fixture
def default_pool(pyc):
    """No pool size set (the session sets 0): the default. Off again at the end (every entry removed)."""
    os.unlink(os.path.join(pool.pool_dir(), "size"))
    try:
        yield pyc
    finally:
        _turn_off(pyc)
        with open("/proc/self/mountinfo") as f:
            assert pool.pool_dir() not in f.read()  # every entry's namespace unmounted
        assert not {p for p in _bridge_ports() if p.startswith("pcv")} - {
            m["veth_host"] for m in ipam.Registry().load("bridge")["members"].values()
        }


def test_the_pool_is_on_by_default_and_filled_by_the_first_run(default_pool):
    """Nobody set a size: the first run on the default network makes its own namespace and starts the
    filler, which makes DEFAULT_SIZE entries; the next run takes one of them."""
    assert pool.size() == pool.DEFAULT_SIZE > 0
    first = default_pool("run", "--rm", "default", "--", "true")
    assert first.returncode == 0, first.stderr
    assert wait_until(lambda: len(pool.entries(ipam.Registry(), ready_only=True)) == pool.DEFAULT_SIZE, 30)
    ready = {m["ip"] for m in _entries()}
    p = default_pool("run", "--rm", "default", "--", "ip", "-4", "-o", "addr", "show", "eth0")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[3].split("/")[0] in ready
    _settled()


def test_the_filler_holds_none_of_the_claimers_files(warm):
    """A claimer's inheritable descriptors (a container's pipes) are closed in the filler, which lingers
    for seconds: a pipe's reader would otherwise wait that long for its end."""
    r, w = os.pipe()
    os.set_inheritable(w, True)
    try:
        pipe = os.readlink(f"/proc/self/fd/{w}")
        _no_filler()
        pool.spawn_fill()
        assert wait_until(lambda: _fillers() != [], 10)
        for pid in _fillers():
            fds = []
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    fds.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
                except OSError:
                    pass
            assert pipe not in fds
    finally:
        os.close(r)
        os.close(w)
        _no_filler()


def test_a_run_publishing_ports_takes_an_entry_and_gets_its_rules(warm):
    """-p on the default network: a pool entry as well, its port checked against every other container's
    and DNATed to the entry's address by the nftables table; a clash is refused in one line before the
    entry is touched; rm -f takes the rules away."""
    from .conftest import TEST_TABLE, free_port

    def rules() -> str:
        return subprocess.run(
            ["nft", "list", "table", "ip", TEST_TABLE], capture_output=True, text=True
        ).stdout

    ready = {m["ip"] for m in _entries()}
    port = free_port()
    p = warm("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", "default", "--", "sleep", "60")
    assert p.returncode == 0, p.stderr
    info = json.loads(warm("inspect", "web", check=True).stdout)[0]["Config"]["net_info"]
    assert info["ip"] in ready
    table = rules()
    assert f"dport {port}" in table and f"dnat to {info['ip']}:80" in table
    assert info["container_id"] in table
    clash = warm("run", "-d", "--name", "web2", "-p", f"127.0.0.1:{port}:80", "default", "--", "true")
    assert clash.returncode == 125 and "already published" in clash.stderr
    assert len(clash.stderr.strip().splitlines()) == 1 and "Traceback" not in clash.stderr
    assert "web2" not in {m["container_name"] for n in ipam.Registry().all() for m in n["members"].values()}
    assert warm("rm", "-f", "web").returncode == 0
    assert info["container_id"] not in rules() and f"dport {port}" not in rules()
    _settled()


def test_the_filler_runs_no_code_from_the_claimers_working_directory(warm, tmp_path, monkeypatch):
    """A claim made in a directory another user can write: the filler (``python -m``, in the claimer's
    working directory) imported the package planted there, as root."""
    from tests.security.test_session5_walls import planted_package

    hostile = tmp_path / "shared"
    hostile.mkdir()
    marker = planted_package(hostile)
    _no_filler()
    monkeypatch.chdir(hostile)
    pool.spawn_fill()
    assert wait_until(lambda: os.path.exists(marker) or _fillers() != [], 10)
    _no_filler()
    assert not os.path.exists(marker)
