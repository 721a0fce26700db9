"""Nothing leaks: 100 attach/detach cycles and 20 concurrent ones leave no veth, address, route, nft rule,
namespace mount or allocation; concurrent attaches never share an address."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from pycontain import network

from .conftest import assert_same, free_port, free_ports, needs_net, snapshot

pytestmark = needs_net

# One process per "container": attach when told, print the NetInfo, detach when told.
WORKER = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
from pycontain import network
from pycontain.network import rtnl  # loaded before the start signal: the attaches race, not the imports
rtnl.load()
root, cid, net, publish = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
print("ready", flush=True)
sys.stdin.readline()
info = network.attach(cid, net, container_name="w" + cid[:8], publish=publish, state_root=root)
print(json.dumps(info.to_dict()), flush=True)
sys.stdin.readline()
network.detach(cid, info, root)
print("done", flush=True)
"""
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _concurrent(fakes, net: str, n: int, publish: bool) -> list[dict]:
    procs = []
    host_ports = free_ports(n)
    try:
        for k in range(n):
            cid = fakes.dir()
            ports = [f"{host_ports[k]}:80"] if publish else []
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", WORKER, REPO, fakes.root, cid, net, *ports],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        for p in procs:  # as close to "at once" as a loop gets
            p.stdin.write("go\n")
            p.stdin.flush()
        infos = []
        for p in procs:
            line = p.stdout.readline()
            assert line.startswith("{"), f"attach failed: {line!r}"
            infos.append(json.loads(line))
        return infos
    finally:
        for p in procs:
            try:
                p.stdin.write("go\n")
                p.stdin.flush()
            except BrokenPipeError:
                pass
        for p in procs:
            p.wait(timeout=60)
            for f in (p.stdin, p.stdout):
                try:
                    f.close()
                except BrokenPipeError:
                    pass


def test_concurrent_attach_gives_distinct_addresses_and_leaves_nothing(fakes, network_name, state_root):
    net = network_name(subnet="10.232.0.0/24")
    fakes.new(name="warmup")
    before = snapshot(state_root)
    infos = _concurrent(fakes, net, 20, publish=True)
    ips = [i["ip"] for i in infos]
    assert len(set(ips)) == 20, ips
    assert len({i["mac"] for i in infos}) == 20
    assert len({p["host_port"] for i in infos for p in i["ports"]}) == 20
    after = snapshot(state_root)
    assert_same(before, after)


def test_concurrent_attach_to_the_default_network(fakes, state_root):
    fakes.new(name="warmup")
    before = snapshot(state_root)
    infos = _concurrent(fakes, "bridge", 20, publish=False)
    assert len({i["ip"] for i in infos}) == 20
    assert_same(before, snapshot(state_root))


def test_hundred_cycles_leave_nothing(fakes, network_name, state_root):
    net = network_name()
    fakes.new(net, name="resident")
    before = snapshot(state_root)
    seen = set()
    for i in range(100):
        cid = fakes.dir()
        info = network.attach(
            cid,
            net,
            container_name=f"cycle{i}",
            publish=[f"{free_port()}:80"] if i % 2 else [],
            state_root=state_root,
        )
        seen.add(info.ip)
        network.detach(cid, info, state_root)
        os.rmdir(os.path.join(state_root, cid))
    assert len(seen) == 1  # a freed address is the next one handed out
    assert_same(before, snapshot(state_root))
