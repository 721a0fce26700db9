"""``build``, ``commit``, ``snapshot`` and ``restore`` (on the typer ``app``): parse, call the library, print.

The work is ``pycontain.build.build`` and ``pycontain.snapshot``.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from .app import app
from .base import GLOBALS, command
from .image_cmds import DataRoot, human_size


@command(app, "build")
def build(
    file: Annotated[
        str,
        typer.Option(
            "-f",
            "--file",
            metavar="MANIFEST",
            help="The appliance manifest (TOML), or a directory holding appliance.toml.",
        ),
    ] = "appliance.toml",
    tag: Annotated[
        str | None,
        typer.Option(
            "-t", "--tag", metavar="NAME[:TAG]", help="Name the image (default: the manifest's 'name')."
        ),
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every step again.")] = False,
    mirror: Annotated[
        str | None,
        typer.Option(
            "--mirror",
            metavar="URL",
            help="The Debian mirror of a debian: base (default: the one apt uses). Manifests cannot name one.",
        ),
    ] = None,
    network: Annotated[
        str,
        typer.Option(
            "--network",
            metavar="none|host",
            help="The network of the manifest's 'run' commands: none (default) or host (the host's own: "
            "trusted manifests only).",
        ),
    ] = "none",
    quiet: Annotated[
        bool, typer.Option("-q", "--quiet", help="No progress; print only the image id.")
    ] = False,
    data_root: DataRoot = None,
) -> None:
    """Build an appliance image from a TOML manifest, with a cache of each step's layer.

    Example: pycontain build -f examples/appliances/static-web -t web"""
    from ..build import build as build_image
    from ..interrupts import unwinding

    with unwinding():  # SIGTERM, like Ctrl-C, removes the step containers and temporary files
        result = build_image(
            file,
            tag,
            data_root,
            progress=False if quiet else None,
            no_cache=no_cache,
            mirror=mirror,
            network=network,
        )
    rec = result.record
    if quiet:
        print(rec["id"])
    else:
        print(
            f"built {rec['id'][:12]} ({', '.join(rec['names'])}): {len(rec['layers'])} layer(s), "
            f"{human_size(sum(rec['layer_sizes']))}; {result.cached}/{result.steps} step(s) cached, "
            f"{result.seconds:.3f}s"
        )


@command(app, "commit")
def commit(
    container: Annotated[str, typer.Argument(metavar="CONTAINER", help="A container name or id.")],
    name: Annotated[str, typer.Argument(metavar="NAME[:TAG]", help="The new image's name.")],
    message: Annotated[
        str | None, typer.Option("-m", "--message", help="A comment for the image's history.")
    ] = None,
    data_root: DataRoot = None,
) -> None:
    """Make an image from a container's changes (a new layer on top of its image)."""
    from ..snapshot import commit as commit_container

    rec = commit_container(container, name, GLOBALS.root, data_root, message=message)
    print(f"sha256:{rec['id']}")


@command(app, "snapshot", context_settings={"allow_interspersed_args": False})
def snapshot(
    args: Annotated[
        list[str],
        typer.Argument(
            metavar="CONTAINER [NAME] | ls CONTAINER | rm CONTAINER NAME",
            help="Save a stopped container's filesystem as a snapshot (default name snap-N); 'ls' lists them, "
            "'rm' deletes one.",
        ),
    ],
) -> int:
    """Save, list or delete snapshots of a stopped container's filesystem (see 'pycontain restore').

    Examples: pycontain snapshot web before-upgrade; pycontain snapshot ls web"""
    from .. import snapshot as snap
    from ..errors import InvalidArgument

    if args[0] == "ls":
        if len(args) != 2:
            raise InvalidArgument("usage: pycontain snapshot ls CONTAINER")
        rows = snap.snapshots(args[1], GLOBALS.root)
        print(f"{'NAME':<24} {'CREATED':<20} {'FILES':>6} {'SIZE':>8}")
        for m in rows:
            created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m["created"]))
            print(f"{m['name']:<24} {created:<20} {m['files']:>6} {human_size(m['size']):>8}")
        return 0
    if args[0] == "rm":
        if len(args) != 3:
            raise InvalidArgument("usage: pycontain snapshot rm CONTAINER NAME")
        snap.remove_snapshot(args[1], args[2], GLOBALS.root)
        return 0
    if len(args) > 2:
        raise InvalidArgument("usage: pycontain snapshot CONTAINER [NAME]")
    meta = snap.snapshot(args[0], args[1] if len(args) > 1 else None, GLOBALS.root)
    print(meta["name"])
    return 0


@command(app, "restore")
def restore(
    container: Annotated[str, typer.Argument(metavar="CONTAINER", help="A stopped container.")],
    name: Annotated[str, typer.Argument(metavar="SNAPSHOT", help="A snapshot's name.")],
) -> None:
    """Roll a stopped container's filesystem back to a snapshot."""
    from ..snapshot import restore as restore_snapshot

    restore_snapshot(container, name, GLOBALS.root)
