"""Named networks: create, list, inspect, remove (one bridge and one subnet each)."""

from __future__ import annotations

from ..errors import AlreadyExists, InvalidArgument, InvalidState, NotFound, PycontainError
from . import settings
from .upkeep import define_default, host_routes, is_stale, open_rtnl, prune, sync_nft


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
    nl = open_rtnl()
    made = None
    try:
        with reg.lock():
            if reg.load(name) is not None:
                raise AlreadyExists(
                    f"network {name!r} already exists (see 'pycontain network inspect {name}')"
                )
            define_default(reg, nl)
            nets = reg.all()
            routes = host_routes(nl, reg)
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
                sync_nft(reg)
            except BaseException:
                links.delete_link(nl, bridge)
                reg.delete(name)
                made = None
                try:
                    sync_nft(reg)
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
    if reg.load(settings.DEFAULT_NETWORK) is None:
        nl = open_rtnl()
        try:
            with reg.lock():
                define_default(reg, nl)
        finally:
            nl.close()
    return [_summary(n) for n in reg.all()]


def inspect_network(name: str) -> dict:
    """A network's full record: its definition and its members (address, MAC, veth, ports, names)."""
    from . import ipam

    if name == "default":
        name = settings.DEFAULT_NETWORK
    if name == settings.DEFAULT_NETWORK:
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
        | {"stale": is_stale(m)}
        for cid, m in sorted(net["members"].items())
    }
    return out


def remove_network(name: str) -> None:
    """Remove a network and its bridge; refused while a container is attached to it."""
    from . import ipam, links

    if name in (settings.DEFAULT_NETWORK, "default"):
        raise InvalidArgument(f"{name!r} is pycontain's default network and cannot be removed")
    reg = ipam.Registry()
    if reg.load(name) is None:
        raise NotFound(f"no such network: {name!r} (see 'pycontain network ls')")
    nl = open_rtnl()
    try:
        with reg.lock():
            prune(reg, nl)
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
            sync_nft(reg)
    finally:
        nl.close()
