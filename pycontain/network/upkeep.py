"""Keeping the registry and the host in step: stale members pruned, the nftables table synced, the default
network defined on first use (crash leftovers: ``leftovers.gc``; members' hosts files: ``files``)."""

from __future__ import annotations

import os

from ..errors import InvalidArgument, NotFound, PycontainError
from . import settings


def is_stale(member: dict) -> bool:
    """A member whose container is gone from its state root (removed, or lost with a reboot's /run), or a
    warm pool entry whose namespace is (a reboot unmounted it: it could serve no container)."""
    if not os.path.isdir(os.path.join(member["state_root"], member["container_id"])):
        return True
    if member["state_root"] != settings.pool_dir():
        return False
    from .netns import is_mounted

    return not is_mounted(member["netns_path"])


def open_rtnl():
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


def prune(reg, nl) -> list[str]:
    removed = []
    for net in reg.all():
        stale = [m for m in net["members"].values() if is_stale(m)]
        for m in stale:
            removed.extend(_release(nl, m))
            removed.append(f"address {m['ip']} of network {net['name']} (container {m['container_id'][:12]})")
            del net["members"][m["container_id"]]
        if stale:
            reg.save(net)
    return removed


def sync_nft(reg, trust_stamp: bool = True, nets: list[dict] | None = None) -> None:
    """Make the nftables table the registry's (under its lock), or what ``nets`` will make it (saved after).
    ``trust_stamp``: skip the check when the ruleset is as the last sync left it (``nft._Stamp``); gc checks
    the table itself."""
    from . import nft

    stamp = os.path.join(reg.path, ".nft-synced")
    if not trust_stamp:
        try:
            os.unlink(stamp)
        except FileNotFoundError:
            pass
    nft.sync(settings.nft_table(), reg.all() if nets is None else nets, stamp)


def host_routes(nl, reg, exclude: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    from . import links

    ours = frozenset(n["bridge"] for n in reg.all()) | exclude
    return links.host_routes(nl, ours)


def define_default(reg, nl) -> dict:
    from . import ipam

    net = reg.load(settings.DEFAULT_NETWORK)
    if net is not None:
        return net
    bridge = settings.default_bridge()
    nets = reg.all()
    routes = host_routes(nl, reg, frozenset({bridge}))
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
    net = ipam.new_network(settings.DEFAULT_NETWORK, bridge, str(subnet), internal=False, default=True)
    reg.save(net)
    return net


def load_network(reg, nl, name: str) -> dict:
    if name in (settings.DEFAULT_NETWORK, "default"):
        return define_default(reg, nl)
    net = reg.load(name)
    if net is None:
        raise NotFound(
            f"no such network: {name!r} (see 'pycontain network ls', or create it with "
            f"'pycontain network create {name}')"
        )
    return net
