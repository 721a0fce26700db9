"""``pycontain network create|ls|inspect|rm|gc|pool``: named bridge networks (registered on the typer ``app``).

Parsing and printing only: everything is a call into ``pycontain.network``.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from . import GLOBALS, guarded
from .app import app, exit_with

network_app = typer.Typer(
    help="Networks: a bridge each, joined with 'pycontain run --network NAME'. Members reach each other by "
    "container name; different networks cannot reach each other.",
    no_args_is_help=True,
)
app.add_typer(network_app, name="network")


@network_app.command("create")
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
    """Create a network with its own bridge; print its name."""

    def body() -> int:
        from .. import network

        net = network.create_network(name, subnet=subnet, internal=internal, mtu=mtu)
        print(net["name"])
        return 0

    exit_with(guarded(body))


@network_app.command("ls")
def network_ls(
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only names.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (one array).")] = False,
) -> None:
    """List networks: name, bridge, subnet, gateway, whether internal, and how many containers are attached."""

    def body() -> int:
        from .. import network

        nets = network.list_networks()
        if as_json:
            print(json.dumps(nets, indent=2))
        elif quiet:
            for n in nets:
                print(n["name"])
        else:
            rows = [("NETWORK ID", "NAME", "BRIDGE", "SUBNET", "GATEWAY", "INTERNAL", "CONTAINERS")]
            rows += [
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
            widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
            for r in rows:
                print("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        return 0

    exit_with(guarded(body))


@network_app.command("inspect")
def network_inspect(names: Annotated[list[str], typer.Argument(metavar="NAME...", help="Networks.")]) -> None:
    """Print networks' full records as a JSON array: subnet, bridge, members with addresses and ports."""

    def body() -> int:
        from .. import network

        print(json.dumps([network.inspect_network(n) for n in names], indent=2))
        return 0

    exit_with(guarded(body))


@network_app.command("rm")
def network_rm(names: Annotated[list[str], typer.Argument(metavar="NAME...", help="Networks.")]) -> None:
    """Remove networks (refused while containers are attached); print each name removed."""
    worst = 0
    for name in names:

        def body(name: str = name) -> int:
            from .. import network

            network.remove_network(name)
            print(name)
            return 0

        worst = max(worst, guarded(body))
    exit_with(worst)


@network_app.command("gc")
def network_gc() -> None:
    """Remove what crashed runs left: addresses, veths, namespaces and rules of containers that are gone."""

    def body() -> int:
        from .. import network

        for line in network.gc(GLOBALS.root):
            print(f"removed {line}")
        return 0

    exit_with(guarded(body))


@network_app.command("pool")
def network_pool(
    size: Annotated[
        int | None,
        typer.Argument(metavar="SIZE", help="Entries to keep ready (0: off, and every entry removed)."),
    ] = None,
) -> None:
    """A warm pool of network namespaces on the default network, their veths already on the bridge: 'run'
    takes one instead of making its own. With SIZE, keep that many ready (host-wide); print how many are."""

    def body() -> int:
        from ..network import ipam, pool

        print(
            pool.set_size(size) if size is not None else len(pool.entries(ipam.Registry(), ready_only=True))
        )
        return 0

    exit_with(guarded(body))
