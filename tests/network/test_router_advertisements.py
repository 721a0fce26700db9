"""Router advertisements from a container (which has CAP_NET_RAW) change neither the host nor a neighbour.

The CVE-2020-13401 class: with the kernel's defaults (``accept_ra=1`` on new devices, forwarding off) one
RA sent by a container to ff02::1 on the bridge gives the host, and every other container on it, an IPv6
address in the advertised prefix, a prefix route and a default route through the attacker.

The attack runs in one helper process pinned to one CPU: a raw socket made in the attacker's namespace
sends the RA under test, then a second one (a marker). Frames from one veth are handled in order on that
CPU's backlog, each to the end (the host's IPv6 input, the bridge's flooding to the other ports), so once
packet sockets on the bridge and on the neighbour's eth0 have seen the marker, the first RA was processed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import TEST_BRIDGE

from .conftest import needs_net

pytestmark = needs_net

PREFIX = "2001:db8:ad:1::"
MARKER = "2001:db8:ad:2::"

ATTACK = r"""
import json, os, socket, struct, sys, threading
sys.path.insert(0, sys.argv[1])
from pycontain import libc

attacker_ns, neighbour_ns, bridge, prefix, marker = sys.argv[2:7]
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
ETH_P_IPV6 = 0x86DD

def in_ns(path, make):
    out = []
    def body():
        fd = os.open(path, os.O_RDONLY)
        libc.setns(fd, libc.CLONE_NEWNET)
        os.close(fd)
        out.append(make())
    t = threading.Thread(target=body)
    t.start()
    t.join()
    return out[0]

def sniffer(ifname):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IPV6))
    s.bind((ifname, ETH_P_IPV6))
    s.settimeout(10)
    return s

def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF

def ra(prefix_text):
    src, dst = socket.inet_pton(socket.AF_INET6, "fe80::bad"), socket.inet_pton(socket.AF_INET6, "ff02::1")
    option = struct.pack("!BBBBIII", 3, 4, 64, 0xC0, 86400, 14400, 0) + socket.inet_pton(
        socket.AF_INET6, prefix_text
    )
    body = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0) + option
    pseudo = src + dst + struct.pack("!I3xB", len(body), 58)
    body = body[:2] + struct.pack("!H", checksum(pseudo + body)) + body[4:]
    header = struct.pack("!IHBB", 6 << 28, len(body), 58, 255) + src + dst
    return header + body

def wait_for_marker(s):
    want = socket.inet_pton(socket.AF_INET6, marker)
    while True:
        frame = s.recv(65536)
        if frame[14 + 6] == 58 and frame[14 + 40] == 134 and want in frame:
            return

host_sniffer = sniffer(bridge)
neighbour_sniffer = in_ns(neighbour_ns, lambda: sniffer("eth0"))
# A packet socket: what CAP_NET_RAW allows, and no source address (eth0's is still tentative) needed.
sender = in_ns(attacker_ns, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
sender_mac = in_ns(attacker_ns, lambda: open("/sys/class/net/eth0/address").read())
for p in (prefix, marker):
    frame = bytes.fromhex("333300000001") + bytes.fromhex(sender_mac.strip().replace(":", ""))
    sender.sendto(frame + struct.pack("!H", ETH_P_IPV6) + ra(p), ("eth0", ETH_P_IPV6))
wait_for_marker(host_sniffer)
wait_for_marker(neighbour_sniffer)
print("delivered")
"""


def _ipv6(ns: str | None, what: str, dev: str) -> list[dict]:
    argv = ["ip", "-j", "-6", what, "show", "dev", dev]
    if ns:
        argv = ["nsenter", f"--net={ns}", *argv]
    p = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(p.stdout or "[]")


def _taken(ns: str | None, dev: str) -> list[str]:
    """What an RA for PREFIX (or any RA) left on ``dev``: addresses in it, routes to it, default routes."""
    addrs = [
        i["local"]
        for a in _ipv6(ns, "addr", dev)
        for i in a.get("addr_info", [])
        if i["local"].startswith(PREFIX)
    ]
    routes = [
        r["dst"] for r in _ipv6(ns, "route", dev) if r["dst"].startswith(PREFIX) or r["dst"] == "default"
    ]
    return addrs + routes


def test_a_containers_router_advertisement_changes_neither_the_host_nor_a_neighbour(fakes):
    attacker, neighbour = fakes.new(), fakes.new()
    assert _taken(None, TEST_BRIDGE) == [] and _taken(neighbour.netns_path, "eth0") == []
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        p = subprocess.run(
            [sys.executable, "-c", ATTACK, root, attacker.netns_path, neighbour.netns_path, TEST_BRIDGE]
            + [PREFIX, MARKER],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert p.stdout.strip() == "delivered", p.stderr
        assert _taken(None, TEST_BRIDGE) == [], "the host accepted the container's router advertisement"
        assert _taken(neighbour.netns_path, "eth0") == [], "a neighbour accepted the router advertisement"
    finally:  # what the RA gave the host, should it have been accepted
        for argv in (
            ["addr", "flush", "dev", TEST_BRIDGE, "to", f"{PREFIX}/64"],
            ["route", "del", f"{PREFIX}/64", "dev", TEST_BRIDGE],
            ["route", "del", "default", "dev", TEST_BRIDGE],
        ):
            subprocess.run(["ip", "-6", *argv], capture_output=True)
