"""attach/detach on the real kernel: namespaces, bridges, TCP by address and by name, isolation between
networks, published ports on 127.0.0.1, internal networks, failures that leave nothing behind.

The "containers" are namespaces made by attach(); their processes are tests/network/nshelper.py, which
joins a namespace (and, for names, bind-mounts the generated hosts file on /etc/hosts in a private mount
namespace, as the runtime does) and serves or connects over TCP.
"""

from __future__ import annotations

import json
import os

import pytest

from pycontain import network
from pycontain.errors import AlreadyExists, InvalidArgument, InvalidState, NotFound
from pycontain.network import ipam, netns

from .conftest import TEST_BRIDGE, assert_same, connect, free_port, free_ports, helper, needs_net, snapshot

pytestmark = needs_net


def _links(info) -> dict:
    p = helper(info.netns_path, "links")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_attach_gives_eth0_address_route_and_files(fakes):
    info = fakes.new(name="web", hostname="webhost")
    assert info.network == "bridge" and info.bridge == TEST_BRIDGE
    assert netns.is_mounted(info.netns_path)
    inside = _links(info)
    assert inside["ifaces"] == ["eth0", "lo"]
    eth0 = next(a for a in inside["addr"] if a["ifname"] == "eth0")
    assert eth0["mtu"] == 1500 and eth0["address"] == info.mac and "UP" in eth0["flags"]
    assert [(i["local"], i["prefixlen"]) for i in eth0["addr_info"] if i["family"] == "inet"] == [
        (info.ip, info.prefixlen)
    ]
    lo = next(a for a in inside["addr"] if a["ifname"] == "lo")
    assert "UP" in lo["flags"]
    assert {"dst": "default", "gateway": info.gateway, "dev": "eth0"}.items() <= inside["route"][0].items()
    # the host end is on the bridge
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        br = ipr.link_lookup(ifname=TEST_BRIDGE)[0]
        veth = ipr.get_links(ipr.link_lookup(ifname=info.veth_host)[0])[0]
        assert veth.get_attr("IFLA_MASTER") == br and veth.get_attr("IFLA_MTU") == 1500
    files = {n: open(os.path.join(info.files_dir, n)).read() for n in ("hosts", "resolv.conf", "hostname")}
    assert f"{info.ip}\twebhost web\n" in files["hosts"] and files["hostname"] == "webhost\n"
    assert "127.0.0.1\tlocalhost" in files["hosts"]
    assert all(not line.startswith("nameserver 127.") for line in files["resolv.conf"].splitlines())
    assert network.NetInfo.from_dict(json.loads(json.dumps(info.to_dict()))).to_dict() == info.to_dict()
    assert network.inspect_network("bridge")["members"][info.container_id]["ip"] == info.ip


def test_two_containers_talk_by_address_and_name(fakes, network_name, servers):
    net = network_name()
    a = fakes.new(net, name="alpha")
    b = fakes.new(net, name="beta")
    servers(a.netns_path, 8000, "from-alpha")
    servers(b.netns_path, 8000, "from-beta")
    assert connect(b.netns_path, a.ip, 8000) == (True, "from-alpha")
    assert connect(b.netns_path, "alpha", 8000, hosts=os.path.join(b.files_dir, "hosts")) == (
        True,
        "from-alpha",
    )
    # alpha was attached first: its hosts file was updated in place when beta came
    assert connect(a.netns_path, "beta", 8000, hosts=os.path.join(a.files_dir, "hosts")) == (
        True,
        "from-beta",
    )


def test_hosts_files_follow_members_in_place(fakes, network_name):
    net = network_name()
    a = fakes.new(net, name="alpha")
    hosts = os.path.join(a.files_dir, "hosts")
    ino = os.stat(hosts).st_ino
    b = fakes.new(net, name="beta")
    assert f"{b.ip}\tbeta" in open(hosts).read()
    network.detach(b.container_id, b, fakes.root)
    assert "beta" not in open(hosts).read()
    assert os.stat(hosts).st_ino == ino
    assert not os.path.exists(b.files_dir)


def test_networks_are_isolated(fakes, network_name, servers):
    n1, n2 = network_name(), network_name()
    a = fakes.new(n1, name="alpha")
    b = fakes.new(n1, name="beta")
    c = fakes.new(n2, name="gamma")
    d = fakes.new("bridge", name="delta")
    servers(a.netns_path, 8000, "from-alpha")
    servers(c.netns_path, 8000, "from-gamma")
    assert connect(b.netns_path, a.ip, 8000)[0]
    for other in (c, d):
        ok, out = connect(other.netns_path, a.ip, 8000, timeout=1)
        assert not ok, out
    assert not connect(a.netns_path, c.ip, 8000, timeout=1)[0]
    assert "alpha" not in open(os.path.join(c.files_dir, "hosts")).read()


def test_published_port_answers_on_host_loopback(fakes, servers):
    p1, p2 = free_ports(2)
    info = fakes.new(name="web", publish=[f"127.0.0.1:{p1}:80", f"{p2}:80/tcp"])
    assert [str(p) for p in info.ports] == [f"127.0.0.1:{p1}->80/tcp", f"0.0.0.0:{p2}->80/tcp"]
    servers(info.netns_path, 80, "published")
    assert connect("-", "127.0.0.1", p1) == (True, "published")
    assert connect("-", "127.0.0.1", p2) == (True, "published")
    # a second container reaches the first through the host's port too (hairpin through the gateway)
    other = fakes.new(name="client")
    assert connect(other.netns_path, info.gateway, p2) == (True, "published")
    network.detach(info.container_id, info, fakes.root)
    assert not connect("-", "127.0.0.1", p1, timeout=1)[0]


def test_published_port_conflicts(fakes, network_name):
    p = free_port()
    fakes.new(name="first", publish=[f"{p}:80"])
    before = ipam.Registry().load("bridge")["members"]
    with pytest.raises(AlreadyExists, match=f"host port {p}/tcp is already published by container first"):
        fakes.new(network_name(), name="second", publish=[f"127.0.0.1:{p}:81"])
    with pytest.raises(InvalidArgument, match="published twice"):
        fakes.new(name="third", publish=[f"{p + 1}:80", f"{p + 1}:81"])
    fakes.new(name="udp-ok", publish=[f"{p}:80/udp"])
    assert len(ipam.Registry().load("bridge")["members"]) == len(before) + 1


def test_port_used_by_a_host_process(fakes):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
        with pytest.raises(AlreadyExists, match="in use by a process on the host"):
            fakes.new(publish=[f"{port}:80"])
    with pytest.raises(InvalidArgument, match="not an address of this host"):
        fakes.new(publish=[f"10.123.45.67:{port}:80"])


def test_internal_network(fakes, network_name, servers):
    net = network_name(internal=True)
    a = fakes.new(net, name="alpha")
    b = fakes.new(net, name="beta")
    assert a.internal and a.gateway is None
    assert _links(a)["route"] and all(r["dst"] != "default" for r in _links(a)["route"])
    servers(a.netns_path, 8000, "internal")
    assert connect(b.netns_path, "alpha", 8000, hosts=os.path.join(b.files_dir, "hosts")) == (
        True,
        "internal",
    )
    outside = fakes.new("bridge", name="outside")
    assert not connect(outside.netns_path, a.ip, 8000, timeout=1)[0]
    with pytest.raises(InvalidArgument, match="internal"):
        fakes.new(net, publish=[f"{free_port()}:80"])


def test_network_lifecycle_and_errors(fakes, network_name):
    name = network_name(subnet="10.231.7.0/24")
    info = network.inspect_network(name)
    assert (
        info["subnet"] == "10.231.7.0/24"
        and info["gateway"] == "10.231.7.1"
        and info["bridge"] == f"pcn-{name}"
    )
    assert name in [n["name"] for n in network.list_networks()]
    with pytest.raises(AlreadyExists):
        network.create_network(name)
    with pytest.raises(InvalidArgument, match=f"overlaps network '{name}'"):
        network.create_network("other1", subnet="10.231.7.128/25")
    with pytest.raises(InvalidArgument, match="reserved"):
        network.create_network("host")
    with pytest.raises(InvalidArgument, match="invalid network name"):
        network.create_network("a/b")
    member = fakes.new(name, name="user")
    with pytest.raises(InvalidState, match="in use by container\\(s\\) user"):
        network.remove_network(name)
    with pytest.raises(InvalidArgument, match="default network"):
        network.remove_network("bridge")
    with pytest.raises(NotFound, match="no such network"):
        network.remove_network("nope")
    with pytest.raises(NotFound, match="no such network"):
        fakes.new("nope")
    network.detach(member.container_id, member, fakes.root)
    network.remove_network(name)
    assert name not in [n["name"] for n in network.list_networks()]
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        assert not ipr.link_lookup(ifname=f"pcn-{name}")


def test_subnet_overlapping_a_host_route_is_refused():
    import ipaddress
    import subprocess

    routes = json.loads(subprocess.run(["ip", "-j", "-4", "route"], capture_output=True, text=True).stdout)
    ours = {n["bridge"] for n in ipam.Registry().all()} | {TEST_BRIDGE}
    prefixed = [
        r["dst"] for r in routes if r["dst"] != "default" and "/" in r["dst"] and r.get("dev") not in ours
    ]
    if not prefixed:
        pytest.skip("the host has no IPv4 route with a prefix")
    subnet = ipaddress.ip_network(prefixed[0])
    inner = next(subnet.subnets(new_prefix=min(subnet.prefixlen + 1, 29)))
    with pytest.raises(InvalidArgument, match="overlaps the host's route"):
        network.create_network("overlapper", subnet=str(inner))


def test_failed_attach_leaves_nothing(fakes, monkeypatch, state_root):
    from pycontain.network import links

    fakes.new(name="warmup")  # the bridge and table exist already: compare like with like
    before = snapshot(state_root)

    def boom(*a, **kw):
        raise RuntimeError("injected failure after the veth")

    real = links.add_container_link

    def half(*args):
        real(*args)
        boom()

    for stage in (boom, half):
        monkeypatch.setattr(links, "add_container_link", stage)
        cid = fakes.dir()
        with pytest.raises(RuntimeError, match="injected"):
            network.attach(
                cid, "bridge", container_name="broken", publish=[f"{free_port()}:80"], state_root=state_root
            )
        assert_same(before, snapshot(state_root))
    monkeypatch.undo()


def test_attach_refuses_unknown_or_missing(fakes, state_root):
    with pytest.raises(InvalidState, match="no state directory"):
        network.attach("f" * 64, container_name="x", state_root=state_root)
    cid = fakes.dir()
    with pytest.raises(InvalidArgument, match="not a bridge network"):
        network.attach(cid, "host", container_name="x", state_root=state_root)
    with pytest.raises(InvalidArgument, match="invalid --publish"):
        network.attach(cid, container_name="x", publish=["80:x"], state_root=state_root)
    network.attach(cid, container_name="x", state_root=state_root)
    with pytest.raises(AlreadyExists, match="already attached"):
        network.attach(cid, container_name="x", state_root=state_root)


def test_detach_is_idempotent_and_works_from_the_id(fakes, state_root):
    fakes.new(name="warmup")
    before = snapshot(state_root)
    info = fakes.new(name="x", publish=[f"{free_port()}:80"])
    network.detach(info.container_id, None, state_root)
    network.detach(info.container_id, info.to_dict(), state_root)
    network.detach(info.container_id, info, state_root)
    assert_same(before, snapshot(state_root))


def test_detach_removes_the_veth_even_while_its_namespace_lives_on(fakes, servers, state_root):
    """detach lets the kernel remove the veth with the namespace; a namespace some process still holds
    (here a server in it) keeps its veth, which detach then deletes itself."""
    import subprocess
    import time

    from pycontain.network.settings import netns_path

    fakes.new(name="warmup")
    before = snapshot(state_root)
    info = fakes.new(name="held")
    servers(info.netns_path, free_port(), "held")  # a process inside: the namespace outlives its mount
    started = time.monotonic()
    network.detach(info.container_id, info, state_root)
    assert time.monotonic() - started < 5
    assert subprocess.run(["ip", "link", "show", info.veth_host], capture_output=True).returncode != 0
    assert not os.path.exists(netns_path(state_root, info.container_id))
    assert_same(before, snapshot(state_root))


def test_detach_in_the_background_leaves_nothing_once_waited_for(fakes, servers, state_root):
    """rm's detach: the container's files go at once, the veth (deleted here after its grace when a process
    holds the namespace) and the address while the caller goes on; after wait(), nothing is left, and the
    address can be handed out again."""
    import subprocess

    fakes.new(name="warmup")
    before = snapshot(state_root)
    info = fakes.new(name="bg")
    held = fakes.new(name="held")
    servers(held.netns_path, free_port(), "held")
    pending = [network.detach(i.container_id, i, state_root, wait=False) for i in (info, held)]
    assert not os.path.exists(info.files_dir) and not os.path.exists(held.files_dir)
    for p in pending:
        assert p is not None
        p.wait()
    for i in (info, held):
        assert subprocess.run(["ip", "link", "show", i.veth_host], capture_output=True).returncode != 0
    assert_same(before, snapshot(state_root))
    assert network.detach(info.container_id, None, state_root, wait=False) is None  # nothing left to do
    again = fakes.new(name="again")
    assert again.ip in (info.ip, held.ip)  # the lowest free address: one of theirs, released


def test_a_detach_cut_short_before_its_rules_leaves_records_that_finish_it(fakes, state_root, monkeypatch):
    """Published ports' rules go before the records that name them: a detach killed in between (here, its
    nftables sync fails) leaves the container in the registry, and the next detach removes the rest."""
    import subprocess

    from pycontain.network import upkeep

    from .conftest import TEST_TABLE

    info = fakes.new(name="ported", publish=[f"{free_port()}:80"])

    def rules() -> str:
        return subprocess.run(
            ["nft", "list", "table", "ip", TEST_TABLE], capture_output=True, text=True
        ).stdout

    assert info.container_id in rules()

    def cut(*_a, **_kw):
        raise OSError("killed")

    monkeypatch.setattr(upkeep, "sync_nft", cut)
    with pytest.raises(OSError):
        network.detach(info.container_id, None, state_root)
    monkeypatch.undo()
    assert info.container_id in {cid for n in ipam.Registry().all() for cid in n["members"]}
    network.detach(info.container_id, None, state_root)
    assert info.container_id not in rules()
    assert info.container_id not in {cid for n in ipam.Registry().all() for cid in n["members"]}


def test_gc_removes_leftovers_of_crashed_runs(fakes, state_root):
    import shutil

    fakes.new(name="warmup")
    before = snapshot(state_root)
    info = fakes.new(name="crashed", publish=[f"{free_port()}:80"])
    shutil.rmtree(os.path.join(state_root, info.container_id))  # the container went without detach
    # a namespace file whose container never got recorded
    orphan = os.path.join(state_root, "netns", "0" * 64)
    netns.create(orphan)
    removed = network.gc(state_root)
    text = "\n".join(removed)
    assert f"veth {info.veth_host}" in text and f"address {info.ip}" in text and f"netns {orphan}" in text
    assert_same(before, snapshot(state_root))
    assert network.gc(state_root) == []


def test_gc_removes_the_namespace_directory_a_killed_run_left_empty(fakes, state_root):
    """netns.remove unlinks a namespace file, then removes its directory if it was the last: a run killed
    between the two left an empty <state root>/netns that nothing else removes."""
    nsdir = os.path.join(state_root, "netns")
    os.makedirs(nsdir, exist_ok=True)
    assert os.listdir(nsdir) == []
    assert f"empty directory {nsdir}" in network.gc(state_root)
    assert not os.path.exists(nsdir)
    assert network.gc(state_root) == []


def _table_chains() -> set[str]:
    import subprocess

    from .conftest import TEST_TABLE

    p = subprocess.run(["nft", "-j", "list", "table", "ip", TEST_TABLE], capture_output=True, text=True)
    if p.returncode:
        return set()
    return {i["chain"]["name"] for i in json.loads(p.stdout)["nftables"] if "chain" in i}


def test_attach_trusts_the_table_only_while_the_ruleset_is_unchanged(fakes, monkeypatch):
    """The nftables table is checked on every attach unless nothing in the host's ruleset changed since the
    last check (its generation): then it is neither listed nor replaced. A table deleted by hand (a change)
    is made again by the next attach; a damaged stamp file only makes attach check."""
    import subprocess

    from pycontain.network import nft

    from .conftest import TEST_TABLE

    fakes.new()
    assert "postrouting" in _table_chains()
    listed: list[str] = []
    real = nft.list_table
    monkeypatch.setattr(nft, "list_table", lambda t: listed.append(t) or real(t))
    for _ in range(10):  # other test sessions on this host may change their own tables meanwhile
        gen = nft.generation()
        fakes.new()
        if nft.generation() == gen:
            break
        listed.clear()
    assert listed == []  # the generation has not moved: nothing to check
    subprocess.run(["nft", "delete", "table", "ip", TEST_TABLE], check=True)
    assert _table_chains() == set()
    fakes.new()
    assert listed == [TEST_TABLE] and "postrouting" in _table_chains()  # repaired
    with open(os.path.join(ipam.Registry().path, ".nft-synced"), "w") as f:
        f.write("garbage")
    fakes.new()
    assert listed == [TEST_TABLE] * 2 and "postrouting" in _table_chains()


def test_nft_generation_moves_with_every_ruleset_change():
    import subprocess

    from pycontain.network import nft

    before = nft.generation()
    assert isinstance(before, int)
    name = f"pyctest{os.getpid()}"
    subprocess.run(["nft", "add", "table", "ip", name], check=True)
    try:
        after = nft.generation()
    finally:
        subprocess.run(["nft", "delete", "table", "ip", name], check=True)
    assert after != before and nft.generation() != after
