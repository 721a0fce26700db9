"""runc's commands over OCI bundles: create, start, state, delete, list, spec.

``run`` (cli.ocirun), and ``kill``, ``ps``, ``exec``, ``pause``, ``resume``, ``update``, ``events`` and
``features`` (cli.commands) are shared with the docker-style family: each tells the two forms apart by
its arguments.
"""

from __future__ import annotations

import json
import os
import time
from typing import Annotated

import typer

from . import GLOBALS, guarded
from .app import app, exit_with


@app.command("create")
def create(
    container_id: Annotated[str, typer.Argument(metavar="ID", help="The container's id (unique).")],
    bundle: Annotated[
        str, typer.Option("--bundle", "-b", help="The bundle directory (holds config.json).")
    ] = ".",
    pid_file: Annotated[
        str | None, typer.Option("--pid-file", help="Write the container's pid here.")
    ] = None,
    console_socket: Annotated[
        str | None, typer.Option("--console-socket", help="Unix socket that receives the pty master.")
    ] = None,
    no_pivot: Annotated[
        bool, typer.Option("--no-pivot", help="Use MS_MOVE + chroot instead of pivot_root.")
    ] = False,
    no_new_keyring: Annotated[
        bool, typer.Option("--no-new-keyring", help="Accepted; pycontain makes no session keyring.")
    ] = False,
    preserve_fds: Annotated[
        int, typer.Option("--preserve-fds", help="Pass descriptors 3 .. 3+N-1 on to the container.")
    ] = 0,
) -> None:
    """OCI create: set the container up; its process waits until 'start'."""

    def body() -> int:
        from .. import oci

        oci.create(container_id, bundle, GLOBALS.root, pid_file, console_socket, no_pivot, preserve_fds)
        return 0

    exit_with(guarded(body))


@app.command("start")
def start(container_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """OCI start: run the user process of a created container."""

    def body() -> int:
        from .. import oci

        oci.start(container_id, GLOBALS.root)
        return 0

    exit_with(guarded(body))


@app.command("state")
def state(container_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """OCI state: the container's state as the runtime spec's JSON."""

    def body() -> int:
        from .. import oci

        print(json.dumps(oci.state(container_id, GLOBALS.root), indent=2))
        return 0

    exit_with(guarded(body))


@app.command("delete")
def delete(
    container_id: Annotated[str, typer.Argument(metavar="ID")],
    force: Annotated[bool, typer.Option("--force", "-f", help="Kill it first if it runs.")] = False,
) -> None:
    """OCI delete: remove a stopped (or, with --force, any) container."""

    def body() -> int:
        from .. import oci

        oci.delete(container_id, GLOBALS.root, force)
        return 0

    exit_with(guarded(body))


@app.command("list")
def list_(
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only ids.")] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
) -> None:
    """List containers the way runc does (ID, PID, STATUS, BUNDLE, CREATED, OWNER)."""

    def body() -> int:
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
        return 0

    exit_with(guarded(body))


def _rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e9):09d}Z"


@app.command("spec")
def spec(
    bundle: Annotated[str, typer.Option("--bundle", "-b", help="Where to write config.json.")] = ".",
    rootless: Annotated[bool, typer.Option("--rootless", help="A spec for a rootless container.")] = False,
) -> None:
    """Write a default config.json (like 'runc spec')."""

    def body() -> int:
        from ..errors import AlreadyExists
        from ..spec import default_spec

        path = os.path.join(bundle, "config.json")
        if os.path.exists(path):
            raise AlreadyExists(f"{path} already exists: remove it first")
        with open(path, "w") as f:
            json.dump(default_spec(rootless=rootless), f, indent=2)
            f.write("\n")
        return 0

    exit_with(guarded(body))
