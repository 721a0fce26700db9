"""Container networking: bridges, veth pairs, an address allocator, NAT and published ports, named networks.

A container on a bridge network gets a network namespace made *before* its process starts (as CNI does
for podman): a new namespace pinned by a bind mount on ``<state root>/netns/<container id>``, set up
through netlink (lo up; a veth pair with the host end on the network's bridge and the other end made
inside as ``eth0``; an address from the allocator; a default route via the bridge; the bridge's MTU).
The container's first process then joins it by path (``config.namespaces["network"] = info.netns_path``).

::

    info = network.attach(cid, "bridge", container_name="web", publish=["8080:80"], hostname="web")
    ...                                   # bind-mount info.files_dir/{hosts,resolv.conf,hostname} into /etc
    network.detach(cid, info)             # idempotent: veth, namespace, address, rules, files

Networks (``create_network``) are host-wide: one bridge each, a subnet that overlaps neither a host route
nor another network, isolated from one another by pycontain's nftables table (which also masquerades
their traffic out, except for ``internal`` ones, and DNATs published ports, for connections to the host's
own addresses too, 127.0.0.1 included). Members find each other by name through /etc/hosts, rewritten
in every member as containers come and go.

Netlink requests are pyroute2 messages sent in batches by ``rtnl`` (which imports pyroute2's message
modules alone: ~15 ms, against ~85 ms for the ``pyroute2`` package), and only by the functions that
need them, so ``resolve_mode`` and ``parse_publish`` stay cheap on ``pycontain run``'s start path.
"""

from __future__ import annotations

import os

from ..errors import AlreadyExists, InvalidArgument, InvalidState, NotFound, PycontainError
from . import settings

__all__ = [
    "NetInfo",
    "PortSpec",
    "attach",
    "container_files",
    "create_network",
    "detach",
    "gc",
    "inspect_network",
    "list_networks",
    "parse_publish",
    "remove_network",
    "resolve_mode",
]

DEFAULT_NETWORK = settings.DEFAULT_NETWORK


# -- published ports ----------------------------------------------------------------------------------
class PortSpec:
    """One published port: ``host_ip`` ("" for every address of the host), host port → container port."""

    __slots__ = ("host_ip", "host_port", "container_port", "proto")

    def __init__(self, host_port: int, container_port: int, proto: str = "tcp", host_ip: str = "") -> None:
        self.host_ip = host_ip
        self.host_port = host_port
        self.container_port = container_port
        self.proto = proto

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}

    @classmethod
    def from_dict(cls, d: dict) -> PortSpec:
        return cls(int(d["host_port"]), int(d["container_port"]), d.get("proto", "tcp"), d.get("host_ip", ""))

    def clashes(self, other: PortSpec) -> bool:
        return (
            self.proto == other.proto
            and self.host_port == other.host_port
            and (not self.host_ip or not other.host_ip or self.host_ip == other.host_ip)
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PortSpec) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(self.to_dict().values()))

    def __str__(self) -> str:
        return f"{self.host_ip or '0.0.0.0'}:{self.host_port}->{self.container_port}/{self.proto}"

    __repr__ = __str__


def _port(text: str, spec: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise InvalidArgument(
            f"invalid --publish {spec!r}: {what} port {text!r} must be a number from 1 to 65535"
        )
    return int(text)


def parse_publish(spec: str) -> PortSpec:
    """``[HOSTIP:]HOSTPORT:CTRPORT[/tcp|/udp]`` → PortSpec (docker's -p without ranges or random ports)."""
    if not isinstance(spec, str) or not spec:
        raise InvalidArgument("invalid --publish '': expected [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]")
    body, slash, proto = spec.partition("/")
    if slash and proto not in ("tcp", "udp"):
        raise InvalidArgument(f"invalid --publish {spec!r}: the protocol must be tcp or udp, not {proto!r}")
    parts = body.split(":")
    if len(parts) == 2:
        host_ip, host, ctr = "", *parts
    elif len(parts) == 3:
        host_ip, host, ctr = parts
        if host_ip.startswith("["):
            raise InvalidArgument(f"invalid --publish {spec!r}: IPv6 host addresses are not supported")
        import ipaddress

        try:
            ipaddress.IPv4Address(host_ip)
        except ValueError:
            raise InvalidArgument(f"invalid --publish {spec!r}: {host_ip!r} is not an IPv4 address") from None
        if host_ip == "0.0.0.0":
            host_ip = ""
    else:
        raise InvalidArgument(
            f"invalid --publish {spec!r}: expected [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp], "
            "e.g. 8080:80 or 127.0.0.1:8080:80/tcp"
        )
    return PortSpec(_port(host, spec, "host"), _port(ctr, spec, "container"), proto or "tcp", host_ip)


# -- what attach returns ------------------------------------------------------------------------------
class NetInfo:
    """A container's place on a network: everything ``detach`` and the runtime need, JSON-able."""

    __slots__ = (
        "container_id",
        "network",
        "bridge",
        "netns_path",
        "ip",
        "prefixlen",
        "gateway",
        "mac",
        "veth_host",
        "ports",
        "internal",
        "files_dir",
    )

    def __init__(
        self,
        container_id: str,
        network: str,
        bridge: str,
        netns_path: str,
        ip: str,
        prefixlen: int,
        gateway: str | None,
        mac: str,
        veth_host: str,
        ports: list[PortSpec] | None = None,
        internal: bool = False,
        files_dir: str = "",
    ) -> None:
        self.container_id = container_id
        self.network = network
        self.bridge = bridge
        self.netns_path = netns_path
        self.ip = ip
        self.prefixlen = prefixlen
        self.gateway = gateway  # the default route's next hop; None on an internal network (no route out)
        self.mac = mac
        self.veth_host = veth_host
        self.ports = list(ports or [])
        self.internal = internal
        self.files_dir = files_dir  # holds hosts, resolv.conf and hostname, to bind-mount into /etc

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__slots__}
        d["ports"] = [p.to_dict() for p in self.ports]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> NetInfo:
        kw = {k: d[k] for k in cls.__slots__ if k in d}
        kw["ports"] = [p if isinstance(p, PortSpec) else PortSpec.from_dict(p) for p in d.get("ports", [])]
        return cls(**kw)

    def __repr__(self) -> str:
        return f"NetInfo({self.to_dict()!r})"


def _as_dict(info: dict | NetInfo | None) -> dict:
    if info is None:
        return {}
    return info.to_dict() if isinstance(info, NetInfo) else dict(info)


# -- --network values --------------------------------------------------------------------------------
def resolve_mode(value: str) -> tuple[str, str | None]:
    """``--network`` → ("none"|"host"|"bridge"|"container", argument).

    ``none`` and ``host`` have no argument; ``bridge``/``default`` and a network's name give ("bridge",
    network name); ``container:ID`` gives ("container", "ID") for the caller to look up.
    """
    if value in ("none", "host"):
        return value, None
    if value in ("bridge", "default"):
        return "bridge", DEFAULT_NETWORK
    if value.startswith("container:"):
        ref = value[len("container:") :]
        if not ref or "/" in ref or "\0" in ref or ref in (".", ".."):
            raise InvalidArgument(f"invalid --network {value!r}: expected container:NAME or container:ID")
        return "container", ref
    from .ipam import Registry, valid_network_name

    if not valid_network_name(value):
        raise InvalidArgument(
            f"invalid --network {value!r}: use none, host, bridge, container:NAME or the name of "
            "a network ('pycontain network ls')"
        )
    if Registry().load(value) is None:
        raise NotFound(
            f"no such network: {value!r} (see 'pycontain network ls', or create it with "
            f"'pycontain network create {value}')"
        )
    return "bridge", value


# -- helpers --------------------------------------------------------------------------------------------
def _check_id(container_id: str) -> None:
    if not container_id or "/" in container_id or "\0" in container_id or container_id in (".", ".."):
        raise InvalidArgument(f"invalid container id {container_id!r}")


def _veth_name(container_id: str) -> str:
    if len(container_id) == 64 and all(c in "0123456789abcdef" for c in container_id):
        return settings.veth_name(container_id)
    import hashlib

    return settings.veth_name(hashlib.sha256(container_id.encode()).hexdigest())


def _stale(member: dict) -> bool:
    """A member whose container is gone from its state root (removed, or lost with a reboot's /run)."""
    return not os.path.isdir(os.path.join(member["state_root"], member["container_id"]))


def _rtnl():
    from .rtnl import Rtnl

    return Rtnl()


def _release(nl, member: dict) -> list[str]:
    """Remove a member's veth and namespace (its allocation is the caller's to drop)."""
    from . import links, netns

    done = []
    if links.delete_link(nl, member["veth_host"]):
        done.append(f"veth {member['veth_host']}")
    if member.get("netns_path") and netns.remove(member["netns_path"]):
        done.append(f"netns {member['netns_path']}")
    return done


def _prune(reg, nl) -> list[str]:
    removed = []
    for net in reg.all():
        stale = [m for m in net["members"].values() if _stale(m)]
        for m in stale:
            removed.extend(_release(nl, m))
            removed.append(f"address {m['ip']} of network {net['name']} (container {m['container_id'][:12]})")
            del net["members"][m["container_id"]]
        if stale:
            reg.save(net)
    return removed


def _sync(reg) -> None:
    from . import nft

    nft.sync(settings.nft_table(), reg.all())


def _refresh_hosts(net: dict) -> None:
    """Rewrite the hosts file of every member whose files exist (under the registry lock)."""
    from . import files

    members = list(net["members"].values())
    for m in members:
        path = os.path.join(settings.files_dir(m["state_root"], m["container_id"]), "hosts")
        if os.path.exists(path):
            try:
                files.write_in_place(path, files.hosts(m, members))
            except OSError:
                pass  # a container being removed right now


def _routes(nl, reg, exclude: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    from . import links

    ours = frozenset(n["bridge"] for n in reg.all()) | exclude
    return links.host_routes(nl, ours)


def _define_default(reg, nl) -> dict:
    from . import ipam

    net = reg.load(DEFAULT_NETWORK)
    if net is not None:
        return net
    bridge = settings.default_bridge()
    nets = reg.all()
    routes = _routes(nl, reg, frozenset({bridge}))
    configured = settings.configured_subnet()
    candidates = [configured] if configured else [settings.DEFAULT_SUBNET, *settings.DEFAULT_SUBNET_FALLBACKS]
    for cand in candidates:
        subnet = ipam.parse_subnet(cand)
        what = ipam.overlap(subnet, nets, routes)
        if what is None:
            break
        if configured:
            raise InvalidArgument(
                f"PYCONTAIN_BRIDGE_SUBNET {configured} overlaps {what}: choose another subnet"
            )
    else:
        raise PycontainError(
            "no free subnet for the default network: 10.88.0.0/16 and 172.20-31.0.0/16 all overlap "
            "host routes (set PYCONTAIN_BRIDGE_SUBNET)"
        )
    net = ipam.new_network(DEFAULT_NETWORK, bridge, str(subnet), internal=False, default=True)
    reg.save(net)
    return net


def _load(reg, nl, name: str) -> dict:
    if name in (DEFAULT_NETWORK, "default"):
        return _define_default(reg, nl)
    net = reg.load(name)
    if net is None:
        raise NotFound(
            f"no such network: {name!r} (see 'pycontain network ls', or create it with "
            f"'pycontain network create {name}')"
        )
    return net


def _port_free(p: PortSpec) -> None:
    """Fail unless a host process could bind the port: DNAT would silently steal its traffic."""
    import errno
    import socket

    kind = socket.SOCK_STREAM if p.proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((p.host_ip or "0.0.0.0", p.host_port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise AlreadyExists(
                    f"cannot publish {p}: host port {p.host_port}/{p.proto} is in use by a process "
                    "on the host (choose another host port)"
                ) from None
            if e.errno == errno.EADDRNOTAVAIL:
                raise InvalidArgument(
                    f"cannot publish {p}: {p.host_ip} is not an address of this host"
                ) from None
            raise


def _check_ports(ports: list[PortSpec], nets: list[dict]) -> None:
    for i, p in enumerate(ports):
        for q in ports[:i]:
            if p.clashes(q):
                raise InvalidArgument(f"host port {p.host_port}/{p.proto} is published twice ({q} and {p})")
        for net in nets:
            for m in net["members"].values():
                for d in m.get("ports", []):
                    if p.clashes(PortSpec.from_dict(d)):
                        raise AlreadyExists(
                            f"host port {p.host_port}/{p.proto} is already published by container "
                            f"{m.get('container_name') or m['container_id'][:12]} "
                            f"({PortSpec.from_dict(d)}): choose another host port"
                        )
        _port_free(p)


def _info(net: dict, m: dict) -> NetInfo:
    import ipaddress

    return NetInfo(
        m["container_id"],
        net["name"],
        net["bridge"],
        m["netns_path"],
        m["ip"],
        ipaddress.IPv4Network(net["subnet"]).prefixlen,
        None if net.get("internal") else net["gateway"],
        m["mac"],
        m["veth_host"],
        [PortSpec.from_dict(p) for p in m.get("ports", [])],
        bool(net.get("internal")),
        settings.files_dir(m["state_root"], m["container_id"]),
    )


def _write_files(net: dict, m: dict) -> None:
    from . import files

    d = settings.files_dir(m["state_root"], m["container_id"])
    os.makedirs(d, mode=0o755, exist_ok=True)
    content = container_files(_info(net, m), m.get("hostname"), m.get("container_name"), net)
    for fname in files.NAMES:
        files.write_in_place(os.path.join(d, fname), content[fname])


# -- attach / detach ----------------------------------------------------------------------------------
def attach(
    container_id: str,
    name: str = DEFAULT_NETWORK,
    *,
    container_name: str,
    publish=(),
    hostname: str | None = None,
    state_root: str | None = None,
    extra_hosts=(),
    dns=(),
    dns_search=(),
) -> NetInfo:
    """Give container ``container_id`` (whose state directory must exist) a network namespace on network
    ``name``, with ``publish`` ([HOSTIP:]HOSTPORT:CTRPORT[/proto] strings or PortSpecs) DNATed to it.
    ``extra_hosts`` (NAME:IP, docker's --add-host) go into its hosts file; ``dns`` and ``dns_search``
    replace the host's nameservers and search domains in its resolv.conf.

    Writes ``<state root>/<id>/net/{hosts,resolv.conf,hostname}`` and updates the hosts file of every
    other member. On any failure everything already made is removed before the error propagates.
    """
    from . import ipam, links, netns, rtnl

    _check_id(container_id)
    root = settings.state_root(state_root)
    if not os.path.isdir(os.path.join(root, container_id)):
        raise InvalidState(
            f"container {container_id[:12]} has no state directory in {root}: attach it to a "
            "network after reserving it"
        )
    if name in ("none", "host") or name.startswith("container:"):
        raise InvalidArgument(
            f"network {name!r} is not a bridge network: the runtime handles it without attach()"
        )
    ports = [p if isinstance(p, PortSpec) else parse_publish(p) for p in publish]
    reg = ipam.Registry()
    # Checked again under the lock; here, before the namespace path (which would be this member's) is touched.
    _not_attached(container_id, container_name, reg.all())
    path = settings.netns_path(root, container_id)
    netns.remove(path)  # a leftover of a crashed attach of this very id
    pending = netns.create_with_socket(path)  # made while the registry and the bridge are seen to
    recorded = False
    nl = None
    try:
        try:
            nl = rtnl.Rtnl()
            with reg.lock():
                _prune(reg, nl)
                net = _load(reg, nl, name)
                nets = reg.all()
                _not_attached(container_id, container_name, nets)
                if ports and net.get("internal"):
                    raise InvalidArgument(f"network {net['name']!r} is internal: it cannot publish ports")
                _check_ports(ports, nets)
                veth = _veth_name(container_id)
                if any(m["veth_host"] == veth for other in nets for m in other["members"].values()):
                    raise AlreadyExists(
                        f"veth name {veth} is taken: container ids clash in their first digits"
                    )
                ip = ipam.allocate(net)
                member = {
                    "container_id": container_id,
                    "container_name": container_name,
                    "hostname": hostname,
                    "ip": ip,
                    "mac": ipam.mac_for(ip),
                    "veth_host": veth,
                    "state_root": root,
                    "netns_path": path,
                    "ports": [p.to_dict() for p in ports],
                    "extra_hosts": list(extra_hosts),
                    "dns": list(dns),
                    "dns_search": list(dns_search),
                }
                net["members"][container_id] = member
                reg.save(net)
                recorded = True
                bridge_index = links.ensure_bridge(nl, net)
                _sync(reg)
            with rtnl.Rtnl(pending.wait()) as inner:  # type: ignore[arg-type]
                links.add_container_link(nl, inner, net, member, bridge_index)
            with reg.lock():
                net = reg.load(net["name"]) or net
                _write_files(net, member)
                _refresh_hosts(net)
        except BaseException:
            netns.abandon(pending)
            try:
                if recorded:
                    detach(container_id, None, root, _nl=nl)
                else:
                    netns.remove(path)
            except Exception:
                pass
            raise
    finally:
        if nl is not None:
            nl.close()
    return _info(net, member)


def _not_attached(container_id: str, container_name: str, nets: list[dict]) -> None:
    for other in nets:
        if container_id in other["members"]:
            raise AlreadyExists(
                f"container {container_name} is already attached to network {other['name']!r}"
            )


def detach(
    container_id: str, info: dict | NetInfo | None = None, state_root: str | None = None, _nl=None
) -> None:
    """Remove everything ``attach`` made for the container: veth, namespace mount and file, address,
    published-port rules, its files; and drop it from the other members' hosts files. Idempotent; works
    from the container id alone (``info`` only adds paths a crashed attach may not have recorded)."""
    from . import files, ipam

    _check_id(container_id)
    root = settings.state_root(state_root)
    d = _as_dict(info)
    reg = ipam.Registry()
    records = [m for net in reg.all() for cid, m in net["members"].items() if cid == container_id]
    veths = {_veth_name(container_id)} | {m["veth_host"] for m in records}
    if d.get("veth_host"):
        veths.add(d["veth_host"])
    paths = {settings.netns_path(root, container_id)} | {
        m["netns_path"] for m in records if m.get("netns_path")
    }
    if d.get("netns_path"):
        paths.add(d["netns_path"])
    if records or d or any(os.path.lexists(p) for p in paths):
        _remove_links_and_namespaces(sorted(veths), sorted(paths), _nl)
    if records:
        with reg.lock():
            changed = []
            for net in reg.all():
                if container_id in net["members"]:
                    ported = bool(net["members"][container_id].get("ports"))
                    del net["members"][container_id]
                    reg.save(net)
                    changed.append((net, ported))
            # Only published ports name a container in the nftables table: without any, it is unchanged.
            if any(ported for _net, ported in changed):
                _sync(reg)
            for net, _ported in changed:
                _refresh_hosts(net)
    files.remove(settings.files_dir(root, container_id))


# How long a veth may take to go with its namespace before it is deleted here (see below).
VETH_GRACE_S = 0.3


def _remove_links_and_namespaces(veths: list[str], paths: list[str], nl=None) -> None:
    """Unmount the namespaces, and return once the veths are gone from the host.

    Unmounted, a container's namespace goes as soon as nothing else holds it (its processes are dead by
    now), and the kernel removes its eth0, and so the veth, in a worker of its own: waiting for that costs
    ~10 ms, deleting the veth here ~20 (the deletion waits for RCU grace periods in the caller). A veth
    still there after VETH_GRACE_S (its namespace held by a container that joined it with
    --network container:, or by any other process) is deleted here. Either way it is gone when this
    returns, before its address can be handed out again.
    """
    from . import netns, rtnl

    own = nl is None
    nl = nl or _rtnl()
    try:
        with rtnl.LinkWatch() as watch:  # before anything goes: no removal is missed
            found = nl.call(*(rtnl.get_link(v) for v in veths))
            present = {r.replies[0]["index"]: v for r, v in zip(found, veths, strict=True) if r.replies}
            for p in paths:
                netns.remove(p)
            left = watch.wait_gone(set(present), VETH_GRACE_S) if present else set()
        if left:
            nl.call(*(rtnl.del_link(present[i]) for i in sorted(left)))
    finally:
        if own:
            nl.close()


def container_files(
    info: dict | NetInfo, hostname: str | None, container_name: str | None, _net: dict | None = None
) -> dict[str, str]:
    """The contents of the container's ``hosts``, ``resolv.conf`` and ``hostname`` files: its own names
    and every other member's in hosts; the host's resolvers minus loopback ones."""
    from . import files, ipam

    d = _as_dict(info)
    net = _net if _net is not None else (ipam.Registry().load(d["network"]) or {"members": {}})
    record = net["members"].get(d["container_id"]) or {}
    own = {
        "container_id": d["container_id"],
        "ip": d["ip"],
        "hostname": hostname,
        "container_name": container_name,
        "extra_hosts": record.get("extra_hosts") or [],
    }
    members = [m for m in net["members"].values() if m["container_id"] != own["container_id"]] + [own]
    return {
        "hosts": files.hosts(own, members),
        "resolv.conf": files.resolv_conf(dns=record.get("dns"), search=record.get("dns_search")),
        "hostname": (hostname or container_name or d["container_id"][:12]) + "\n",
    }


# -- named networks ---------------------------------------------------------------------------------------
def _summary(net: dict) -> dict:
    return {
        "name": net["name"],
        "id": net["id"],
        "bridge": net["bridge"],
        "subnet": net["subnet"],
        "gateway": net["gateway"],
        "internal": bool(net.get("internal")),
        "mtu": net["mtu"],
        "default": bool(net.get("default")),
        "containers": len(net["members"]),
        "created": net.get("created"),
    }


def _bridge_name(name: str, nets: list[dict]) -> str:
    import hashlib

    taken = {n["bridge"] for n in nets} | {settings.default_bridge()}
    short = "pcn-" + name
    if len(short) <= 15 and short not in taken:
        return short
    return "pcn-" + hashlib.sha256(name.encode()).hexdigest()[:11]


def create_network(
    name: str, subnet: str | None = None, internal: bool = False, mtu: int | None = None
) -> dict:
    """A new network with its own bridge; ``subnet`` (CIDR) defaults to the first free /24 of 10.89-99.x.
    ``internal``: no NAT and no route out, and nothing in or out but its members' own traffic. ``mtu``
    (default 1500) is the bridge's and every member's eth0's; larger ones suit internal networks (traffic
    that leaves the host goes out at the uplink's MTU)."""
    from . import ipam, links

    if mtu is not None and not 1280 <= mtu <= 65535:
        raise InvalidArgument(f"invalid MTU {mtu}: it must be between 1280 and 65535")
    if not ipam.valid_network_name(name):
        raise InvalidArgument(
            f"invalid network name {name!r}: use letters, digits, '_', '.' and '-', starting with "
            "a letter or digit, at most 64 characters"
        )
    if name in settings.RESERVED_NAMES:
        raise InvalidArgument(f"network name {name!r} is reserved: choose another")
    want = ipam.parse_subnet(subnet) if subnet else None
    reg = ipam.Registry()
    nl = _rtnl()
    made = None
    try:
        with reg.lock():
            if reg.load(name) is not None:
                raise AlreadyExists(
                    f"network {name!r} already exists (see 'pycontain network inspect {name}')"
                )
            _define_default(reg, nl)
            nets = reg.all()
            routes = _routes(nl, reg)
            if want is not None:
                what = ipam.overlap(want, nets, routes)
                if what:
                    raise InvalidArgument(f"subnet {want} overlaps {what}: choose another --subnet")
                chosen = want
            else:
                for cand in settings.user_subnet_pool():
                    chosen = ipam.parse_subnet(cand)
                    if ipam.overlap(chosen, nets, routes) is None:
                        break
                else:
                    raise PycontainError(
                        "no free subnet left in 10.89.0.0-10.99.255.0/24: give one with --subnet"
                    )
            bridge = _bridge_name(name, nets)
            if links.lookup(nl, bridge) is not None:
                raise AlreadyExists(
                    f"a device named {bridge} exists already on the host: remove it, or choose "
                    "another network name"
                )
            net = ipam.new_network(name, bridge, str(chosen), internal=internal)
            if mtu is not None:
                net["mtu"] = mtu
            try:
                reg.save(net)
                made = net
                links.ensure_bridge(nl, net)
                _sync(reg)
            except BaseException:
                links.delete_link(nl, bridge)
                reg.delete(name)
                made = None
                try:
                    _sync(reg)
                except Exception:
                    pass
                raise
    finally:
        nl.close()
    return _summary(made)


def list_networks() -> list[dict]:
    """Every network (the default one included), as summaries sorted by name."""
    from . import ipam

    reg = ipam.Registry()
    if reg.load(DEFAULT_NETWORK) is None:
        nl = _rtnl()
        try:
            with reg.lock():
                _define_default(reg, nl)
        finally:
            nl.close()
    return [_summary(n) for n in reg.all()]


def inspect_network(name: str) -> dict:
    """A network's full record: its definition and its members (address, MAC, veth, ports, names)."""
    from . import ipam

    if name == "default":
        name = DEFAULT_NETWORK
    if name == DEFAULT_NETWORK:
        list_networks()
    net = ipam.Registry().load(name)
    if net is None:
        raise NotFound(f"no such network: {name!r} (see 'pycontain network ls')")
    out = _summary(net)
    out["members"] = {
        cid: {
            k: m.get(k)
            for k in ("container_name", "hostname", "ip", "mac", "veth_host", "netns_path", "ports")
        }
        | {"stale": _stale(m)}
        for cid, m in sorted(net["members"].items())
    }
    return out


def remove_network(name: str) -> None:
    """Remove a network and its bridge; refused while a container is attached to it."""
    from . import ipam, links

    if name in (DEFAULT_NETWORK, "default"):
        raise InvalidArgument(f"{name!r} is pycontain's default network and cannot be removed")
    reg = ipam.Registry()
    if reg.load(name) is None:
        raise NotFound(f"no such network: {name!r} (see 'pycontain network ls')")
    nl = _rtnl()
    try:
        with reg.lock():
            _prune(reg, nl)
            net = reg.load(name)
            if net is None:
                raise NotFound(f"no such network: {name!r} (see 'pycontain network ls')")
            if net["members"]:
                users = ", ".join(
                    sorted(m.get("container_name") or cid[:12] for cid, m in net["members"].items())
                )
                raise InvalidState(
                    f"network {name!r} is in use by container(s) {users}: remove them first "
                    "('pycontain rm -f ...')"
                )
            links.delete_link(nl, net["bridge"])
            reg.delete(name)
            _sync(reg)
    finally:
        nl.close()


# -- crash leftovers -----------------------------------------------------------------------------------------
def gc(state_root: str | None = None) -> list[str]:
    """Remove what crashed runs left: allocations (with their veth and namespace) of containers that are
    gone, veths on pycontain's bridges that no member owns, namespace files under ``<state root>/netns``
    without a container, and published-port rules of gone containers. One line per thing removed."""
    import json

    from . import ipam, links, netns, nft

    root = settings.state_root(state_root)
    reg = ipam.Registry()
    removed: list[str] = []
    nl = _rtnl()
    try:
        with reg.lock():
            removed.extend(_prune(reg, nl))
            nets = reg.all()
            veths = {m["veth_host"] for n in nets for m in n["members"].values()}
            for net in nets:
                for port in links.bridge_ports(nl, net["bridge"]):
                    if port not in veths and links.delete_link(nl, port):
                        removed.append(f"veth {port} (no container, on bridge {net['bridge']})")
            members = {cid for n in nets for cid in n["members"]}
            table = nft.list_table(settings.nft_table()) if nets else None
            for item in (table or {}).get("nftables", []):
                comment = item.get("rule", {}).get("comment", "")
                if comment.startswith("pycontain container ") and comment.split()[-1] not in members:
                    removed.append(f"nft rule {json.dumps(item['rule']['expr'][-1])} ({comment})")
            if nets or table is not None:
                _sync(reg)
            for net in nets:
                _refresh_hosts(net)
            held = {m["netns_path"] for n in nets for m in n["members"].values()}
    finally:
        nl.close()
    nsdir = os.path.join(root, "netns")
    try:
        names = sorted(os.listdir(nsdir))
    except FileNotFoundError:
        names = []
    for n in names:
        path = os.path.join(nsdir, n)
        if path not in held and not os.path.isdir(os.path.join(root, n)) and netns.remove(path):
            removed.append(f"netns {path}")
    return removed
