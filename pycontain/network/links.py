"""Links, addresses and routes, all through netlink (pyroute2): bridges, veth pairs, a container's eth0.

Every function takes an open ``IPRoute`` (host side) so one socket serves a whole attach.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket

from ..errors import PycontainError
from . import ipam, netns

AF_INET = socket.AF_INET


def _netlink_error():  # noqa: ANN202
    from pyroute2 import NetlinkError

    return NetlinkError


def lookup(ipr, ifname: str) -> int | None:  # noqa: ANN001
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def host_routes(ipr, exclude_ifnames: frozenset[str] = frozenset()) -> list[tuple[str, str]]:  # noqa: ANN001
    """The host's IPv4 routes with a prefix (every table), as (destination/len, device name)."""
    names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
    out = []
    for r in ipr.route("dump", family=AF_INET):
        if not r["dst_len"]:
            continue
        dst = r.get_attr("RTA_DST")
        if dst is None:
            continue
        dev = names.get(r.get_attr("RTA_OIF"), "")
        if dev in exclude_ifnames:
            continue
        out.append((f"{dst}/{r['dst_len']}", dev))
    return out


def _sysctl(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise PycontainError(f"cannot set {path} to {value}: {e.strerror}") from None


def ensure_bridge(ipr, net: dict) -> bool:  # noqa: ANN001
    """Make the network's bridge if it is missing, and check its address, MTU and state; True if made."""
    br = net["bridge"]
    made = False
    idx = lookup(ipr, br)
    if idx is None:
        try:
            # A fixed MAC: a bridge otherwise takes its lowest port's, which changes as containers come and go.
            ipr.link("add", ifname=br, kind="bridge", address=ipam.mac_for(net["gateway"]), mtu=net["mtu"])
            made = True
        except _netlink_error() as e:
            if e.code != errno.EEXIST:
                raise PycontainError(f"cannot create bridge {br}: {e}") from None
        idx = lookup(ipr, br)
        if idx is None:
            raise PycontainError(f"bridge {br} vanished while it was being set up")
    link = ipr.get_links(idx)[0]
    if link.get_attr("IFLA_LINKINFO") is None or link.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_KIND") != "bridge":
        raise PycontainError(f"device {br} exists and is not a bridge: remove it, or choose another network")
    prefixlen = ipaddress.IPv4Network(net["subnet"]).prefixlen
    have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx, family=AF_INET)}
    if (net["gateway"], prefixlen) not in have:
        try:
            ipr.addr("add", index=idx, address=net["gateway"], prefixlen=prefixlen)
        except _netlink_error() as e:
            if e.code != errno.EEXIST:
                raise PycontainError(f"cannot give bridge {br} the address {net['gateway']}: {e}") from None
    if link.get_attr("IFLA_MTU") != net["mtu"]:
        ipr.link("set", index=idx, mtu=net["mtu"])
    if not link["flags"] & 1:
        ipr.link("set", index=idx, state="up")
    if not net.get("internal"):
        # route_localnet: connections to 127.0.0.1 DNATed to a container may leave through the bridge.
        _sysctl(f"/proc/sys/net/ipv4/conf/{br}/route_localnet", "1")
        _sysctl("/proc/sys/net/ipv4/ip_forward", "1")
    return made


def delete_link(ipr, ifname: str) -> bool:  # noqa: ANN001
    idx = lookup(ipr, ifname)
    if idx is None:
        return False
    try:
        ipr.link("del", index=idx)
    except _netlink_error() as e:
        if e.code != errno.ENODEV:
            raise
        return False
    return True


def add_container_link(ipr, net: dict, member: dict) -> None:  # noqa: ANN001
    """A veth pair: the host end on the bridge, the other made inside the container's namespace as eth0
    (no renaming: the host's own eth0 never clashes); then lo, eth0's address and the default route."""
    br_idx = lookup(ipr, net["bridge"])
    if br_idx is None:
        raise PycontainError(f"bridge {net['bridge']} of network {net['name']!r} is missing")
    veth, mtu = member["veth_host"], net["mtu"]
    delete_link(ipr, veth)  # a leftover of a crashed run with this very name
    nsfd = open_ns(member["netns_path"])
    try:
        ipr.link("add", ifname=veth, kind="veth", mtu=mtu, master=br_idx,
                 peer={"ifname": "eth0", "net_ns_fd": nsfd, "address": member["mac"], "mtu": mtu})
    except _netlink_error() as e:
        raise PycontainError(f"cannot create veth {veth}: {e}") from None
    finally:
        os.close(nsfd)
    idx = lookup(ipr, veth)
    if idx is None:
        raise PycontainError(f"veth {veth} vanished while it was being set up")
    ipr.link("set", index=idx, state="up")
    inner = netns.iproute(member["netns_path"])
    try:
        lo = lookup(inner, "lo")
        eth0 = lookup(inner, "eth0")
        if lo is None or eth0 is None:
            raise PycontainError("the container's network namespace lacks lo or eth0")
        inner.link("set", index=lo, state="up")
        inner.addr("add", index=eth0, address=member["ip"],
                   prefixlen=ipaddress.IPv4Network(net["subnet"]).prefixlen)
        inner.link("set", index=eth0, state="up")
        if not net.get("internal"):
            inner.route("add", dst="0.0.0.0/0", gateway=net["gateway"], oif=eth0)
    finally:
        inner.close()


def open_ns(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise PycontainError(f"cannot open network namespace {path}: {e.strerror}") from None


def bridge_ports(ipr, bridge: str) -> list[str]:  # noqa: ANN001
    idx = lookup(ipr, bridge)
    if idx is None:
        return []
    return [link.get_attr("IFLA_IFNAME") for link in ipr.get_links() if link.get_attr("IFLA_MASTER") == idx]
