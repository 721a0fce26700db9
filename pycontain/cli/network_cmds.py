"""``pycontain network create|ls|inspect|rm|gc|pool``: named bridge networks (registered on the typer ``app``).

Parsing and printing only: everything is a call into ``pycontain.network``.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from .app import app
from .base import GLOBALS, command, for_each_ref, render_table

network_app = typer.Typer(
    help="Networks: a bridge each, joined with 'pycontain run --network NAME'.\n\n"
    "Members reach each other by container name; different networks cannot reach each other.",
    no_args_is_help=True,
)
app.add_typer(network_app, name="network")


@command(network_app, "create")
def network_create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The network's name.")],
    subnet: Annotated[
        str | None,
        typer.Option(
            "--subnet",
            metavar="CIDR",
            help="IPv4 subnet, e.g. 10.90.0.0/24 (default: the first free /24 of 10.89.0.0/16 and up).",
        ),
    ] = None,
    internal: Annotated[
        bool, typer.Option("--internal", help="No NAT and no route out of the network; no published ports.")
    ] = False,
    mtu: Annotated[
        int | None, typer.Option("--mtu", help="MTU of the bridge and the containers' eth0 (default 1500).")
    ] = None,
) -> None:
    """Create a network with its own bridge; print its name.

    Example: pycontain network create --subnet 10.90.0.0/24 backend; pycontain run --network backend ..."""
    from .. import network

    net = network.create_network(name, subnet=subnet, internal=internal, mtu=mtu)
    print(net["name"])


@command(network_app, "ls")
def network_ls(
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only names.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (one array).")] = False,
) -> None:
    """List networks: name, bridge, subnet, gateway, whether internal, and how many containers are attached."""
    from .. import network

    nets = network.list_networks()
    if as_json:
        print(json.dumps(nets, indent=2))
    elif quiet:
        for n in nets:
            print(n["name"])
    else:
        header = ("NETWORK ID", "NAME", "BRIDGE", "SUBNET", "GATEWAY", "INTERNAL", "CONTAINERS")
        rows = [
            (
                n["id"][:12],
                n["name"],
                n["bridge"],
                n["subnet"],
                n["gateway"],
                "yes" if n["internal"] else "no",
                str(n["containers"]),
            )
            for n in nets
        ]
        print(render_table(header, rows, gap=3))


@command(network_app, "inspect")
def network_inspect(names: Annotated[list[str], typer.Argument(metavar="NAME...", help="Networks.")]) -> None:
    """Print networks' full records as a JSON array: subnet, bridge, members with addresses and ports."""
    from .. import network

    print(json.dumps([network.inspect_network(n) for n in names], indent=2))


@command(network_app, "rm")
def network_rm(names: Annotated[list[str], typer.Argument(metavar="NAME...", help="Networks.")]) -> int:
    """Remove networks (refused while containers are attached); print each name removed."""
    from .. import network

    return for_each_ref(names, network.remove_network)


@command(network_app, "gc")
def network_gc() -> None:
    """Remove what crashed runs left: addresses, veths, namespaces and rules of containers that are gone."""
    from .. import network

    for line in network.gc(GLOBALS.root):
        print(f"removed {line}")


@command(network_app, "pool")
def network_pool(
    size: Annotated[
        int | None,
        typer.Argument(metavar="SIZE", help="Entries to keep ready (0: off, and every entry removed)."),
    ] = None,
) -> None:
    """Keep a warm pool of network namespaces on the default network; print how many are ready.

    Their veths are already on the bridge: 'run' takes one instead of making its own. On by default (2
    ready, made after the first run); with SIZE, keep that many ready (host-wide; 0: off). Example:
    pycontain network pool 4"""
    from ..network import filler, ipam, pool

    print(filler.set_size(size) if size is not None else len(pool.entries(ipam.Registry(), ready_only=True)))
