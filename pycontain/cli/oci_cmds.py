"""runc's commands over OCI bundles that engines do not call per container: list, spec.

``create``, ``start``, ``state``, ``delete`` and runc's ``run`` are in the fast table of ``cli.ocirun``;
``kill``, ``ps``, ``exec``, ``pause``, ``resume``, ``update``, ``events`` and ``features`` (``cli.commands``)
are shared with the docker-style family: each tells the two forms apart by its arguments.
"""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from .app import app
from .base import GLOBALS, command


@command(app, "list")
def list_(
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only ids.")] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
) -> None:
    """List containers the way runc does (ID, PID, STATUS, BUNDLE, CREATED, OWNER)."""
    from .. import oci

    states = oci.list_states(GLOBALS.root)
    if quiet:
        for s in states:
            print(s["id"])
    elif fmt == "json":
        print(json.dumps([{**s, "created": _rfc3339(s["created"])} for s in states]))
    else:
        print(f"{'ID':<24}{'PID':<8}{'STATUS':<10}{'BUNDLE':<40}{'CREATED':<32}OWNER")
        for s in states:
            print(
                f"{s['id']:<24}{s['pid']:<8}{s['status']:<10}{s['bundle']:<40}{_rfc3339(s['created']):<32}"
                f"{s['owner']}"
            )


def _rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e9):09d}Z"


@command(app, "spec")
def spec(
    bundle: Annotated[str, typer.Option("--bundle", "-b", help="Where to write config.json.")] = ".",
    rootless: Annotated[bool, typer.Option("--rootless", help="A spec for a rootless container.")] = False,
) -> None:
    """Write a default config.json (like 'runc spec').

    Example: mkdir -p b/rootfs && pycontain spec -b b && pycontain run -b b c1"""
    from .. import oci

    oci.write_spec(bundle, rootless)
