"""Crash leftovers collected (``gc``): what crashed runs left of containers' networks, and of the warm pool."""

from __future__ import annotations

import os

from . import filler, settings
from .files import refresh_hosts
from .members import resolve_state_root
from .upkeep import open_rtnl, prune, sync_nft


def gc(state_root: str | None = None) -> list[str]:
    """Remove what crashed runs left: allocations (with their veth and namespace) of containers that are
    gone, veths on pycontain's bridges that no member owns, namespace files under ``<state root>/netns``
    without a container, and published-port rules of gone containers. One line per thing removed."""
    import json

    from . import ipam, links, netns, nft

    root = resolve_state_root(state_root)
    reg = ipam.Registry()
    removed: list[str] = []
    nl = open_rtnl()
    try:
        with reg.lock():
            removed.extend(prune(reg, nl))
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
                sync_nft(
                    reg, trust_stamp=False
                )  # gc repairs: the live table is checked, whatever the stamp says
            for net in nets:
                refresh_hosts(net)
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
    if names == [] and os.path.isdir(nsdir):
        # A run killed between its last namespace's unlink and the directory's rmdir (netns.remove).
        try:
            os.rmdir(nsdir)
            removed.append(f"empty directory {nsdir}")
        except OSError:
            pass  # a namespace made meanwhile
    removed.extend(filler.leftovers(held, {cid for n in nets for cid in n["members"]}))
    return removed
