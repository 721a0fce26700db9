"""Links, addresses and routes, all through netlink (pyroute2's messages, see ``rtnl``): bridges, veth
pairs, a container's eth0.

Every function takes an open ``rtnl.Rtnl`` (host side) so one socket serves a whole attach, and batches
what it can: the common case (the bridge is there and right, a container joins it) is three round trips.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket

from ..errors import PycontainError
from . import ipam, rtnl

AF_INET = socket.AF_INET


def lookup(nl: rtnl.Rtnl, ifname: str) -> int | None:
    (req,) = nl.call(rtnl.get_link(ifname))
    return rtnl.index_of(req)


def host_routes(nl: rtnl.Rtnl, exclude_ifnames: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """The host's IPv4 routes with a prefix (every table), as (destination/len, device name)."""
    (links,) = nl.call(rtnl.dump_links())
    (routes,) = nl.call(rtnl.dump_routes(AF_INET))
    names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in links.replies}
    out = []
    for r in routes.replies:
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


def _sysctl(path: str, value: str, optional: bool = False) -> None:
    """Write a sysctl unless it already has ``value``; ``optional``: a missing one (no IPv6) is no error."""
    try:
        with open(path) as f:
            if f.read().strip() == value:
                return  # already so: no write, which also works where /proc/sys is read-only
        with open(path, "w") as f:
            f.write(value)
    except FileNotFoundError:
        if not optional:
            raise PycontainError(f"cannot set {path} to {value}: no such setting") from None
    except OSError as e:
        raise PycontainError(f"cannot set {path} to {value}: {e.strerror}") from None


def _kind(link) -> str | None:
    info = link.get_attr("IFLA_LINKINFO")
    return info.get_attr("IFLA_INFO_KIND") if info is not None else None


def ensure_bridge(nl: rtnl.Rtnl, net: dict) -> int:
    """Make the network's bridge if it is missing, and put its address, MTU and state right; its index.

    One round trip when all is well: the bridge and the host's IPv4 addresses are asked for together.
    """
    br = net["bridge"]
    prefixlen = ipaddress.IPv4Network(net["subnet"]).prefixlen
    get, addrs = nl.call(rtnl.get_link(br), rtnl.dump_addrs(AF_INET))
    if not get.replies:
        # A fixed MAC: a bridge otherwise takes its lowest port's, which changes as containers come and go.
        create = rtnl.new_link(br, "bridge", up=True, mtu=net["mtu"], mac=ipam.mac_for(net["gateway"]))
        create.ok = (errno.EEXIST,)
        try:
            nl.call(create)
        except rtnl.netlink_error() as e:
            hint = (
                " (no bridge support in this kernel? --network none runs without one)"
                if e.code in (errno.EOPNOTSUPP, errno.ENOENT)
                else ""
            )
            raise PycontainError(e.args[1] + hint) from None
        get, addrs = nl.call(rtnl.get_link(br), rtnl.dump_addrs(AF_INET))
        if not get.replies:
            raise PycontainError(f"bridge {br} vanished while it was being set up")
    link = get.replies[0]
    idx = link["index"]
    if _kind(link) != "bridge":
        raise PycontainError(f"device {br} exists and is not a bridge: remove it, or choose another network")
    fixes = []
    have = {
        (a.get_attr("IFA_LOCAL") or a.get_attr("IFA_ADDRESS"), a["prefixlen"])
        for a in addrs.replies
        if a["index"] == idx
    }
    if (net["gateway"], prefixlen) not in have:
        fixes.append(rtnl.new_addr(idx, net["gateway"], prefixlen, ok=(errno.EEXIST,)))
    if link.get_attr("IFLA_MTU") != net["mtu"] or not link["flags"] & rtnl.IFF_UP:
        fixes.append(rtnl.set_link(idx, up=True, mtu=net["mtu"]))
    if fixes:
        try:
            nl.call(*fixes)
        except rtnl.netlink_error() as e:
            raise PycontainError(f"bridge {br}: {e.args[1]}") from None
    # The bridge is the host's address on the network: one router advertisement from a container (which
    # has CAP_NET_RAW) would give the host an IPv6 address and a default route through that container
    # (CVE-2020-13401; docker turns both off on its bridges since).
    for key in ("accept_ra", "accept_redirects"):
        _sysctl(f"/proc/sys/net/ipv6/conf/{br}/{key}", "0", optional=True)
    if not net.get("internal"):
        # route_localnet: connections to 127.0.0.1 DNATed to a container may leave through the bridge.
        _sysctl(f"/proc/sys/net/ipv4/conf/{br}/route_localnet", "1")
        _sysctl("/proc/sys/net/ipv4/ip_forward", "1")
    return idx


def delete_link(nl: rtnl.Rtnl, ifname: str) -> bool:
    """Delete a device by name (one message, no lookup); False when there was none."""
    (req,) = nl.call(rtnl.del_link(ifname))
    return req.error == 0


def add_container_link(nl: rtnl.Rtnl, inner: rtnl.Rtnl, net: dict, member: dict, bridge_index: int) -> None:
    """A veth pair: the host end, up, on the bridge; the other made inside the container's namespace as
    eth0 (no renaming: the host's own eth0 never clashes); then, through ``inner`` (a socket in that
    namespace), lo and eth0 up, eth0's address and the default route."""
    veth, mtu = member["veth_host"], net["mtu"]
    nsfd = open_ns(member["netns_path"])
    try:
        # A device left with this very name by a crashed run goes in the same datagram, just before; and the
        # new host end is read back after: its IFLA_LINK is eth0's index inside the container's namespace.
        _old, _new, host_end = nl.call(
            rtnl.del_link(veth),
            rtnl.new_link(
                veth,
                "veth",
                up=True,
                mtu=mtu,
                master=bridge_index,
                data=rtnl.veth_peer("eth0", nsfd, mtu=mtu, mac=member["mac"]),
            ),
            rtnl.get_link(veth),
        )
    except rtnl.netlink_error() as e:
        raise PycontainError(f"{e.args[1]} (on bridge {net['bridge']})") from None
    finally:
        os.close(nsfd)
    try:
        eth0 = host_end.replies[0].get_attr("IFLA_LINK") if host_end.replies else None
        if not eth0:
            eth0 = lookup(inner, "eth0")
            if eth0 is None:
                raise PycontainError("the container's network namespace lacks eth0")
        prefixlen = ipaddress.IPv4Network(net["subnet"]).prefixlen
        reqs = [
            rtnl.set_link(1, up=True),  # lo: ifindex 1 in every namespace
            rtnl.set_link(eth0, up=True),
            rtnl.new_addr(eth0, member["ip"], prefixlen),
        ]
        if not net.get("internal"):
            reqs.append(rtnl.new_default_route(net["gateway"], eth0))
        inner.call(*reqs)
    except rtnl.netlink_error() as e:
        raise PycontainError(f"in the container's network namespace: {e.args[1]}") from None


def open_ns(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise PycontainError(f"cannot open network namespace {path}: {e.strerror}") from None


def bridge_ports(nl: rtnl.Rtnl, bridge: str) -> list[str]:
    idx = lookup(nl, bridge)
    if idx is None:
        return []
    (links,) = nl.call(rtnl.dump_links())
    return [link.get_attr("IFLA_IFNAME") for link in links.replies if link.get_attr("IFLA_MASTER") == idx]
