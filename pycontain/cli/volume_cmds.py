"""``pycontain volume create|ls|inspect|rm``: named volumes (see pycontain.volumes)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from .app import app
from .base import GLOBALS, command, for_each_ref

volume_app = typer.Typer(
    help="Named volumes: directories that outlive containers (-v NAME:/path).", no_args_is_help=True
)
app.add_typer(volume_app, name="volume")


@command(volume_app, "create")
def create(
    name: Annotated[str | None, typer.Argument(help="The volume's name (default: a random one).")] = None,
) -> None:
    """Create a volume (an existing one is left as it is) and print its name."""
    from .. import volumes

    print(volumes.create(name)["Name"])


@command(volume_app, "ls")
def ls(quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only print names.")] = False) -> None:
    """List volumes."""
    from .. import volumes

    found = volumes.names()
    if not quiet:
        print("DRIVER    VOLUME NAME")
    for n in found:
        print(n if quiet else f"local     {n}")


@command(volume_app, "inspect")
def inspect(names: Annotated[list[str], typer.Argument(help="Volume names.")]) -> None:
    """Show volumes' details as JSON."""
    from .. import volumes

    print(json.dumps([volumes.inspect(n) for n in names], indent=2))


@command(volume_app, "rm")
def rm(names: Annotated[list[str], typer.Argument(help="Volume names.")]) -> int:
    """Remove volumes and their data; one a container still mounts is refused."""
    from .. import volumes

    return for_each_ref(names, lambda n: volumes.remove(n, GLOBALS.root))
