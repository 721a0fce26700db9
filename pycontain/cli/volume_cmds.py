"""``pycontain volume create|ls|inspect|rm``: named volumes (see pycontain.volumes)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from . import GLOBALS, guarded
from .app import app, exit_with

volume_app = typer.Typer(
    help="Named volumes: directories that outlive containers (-v NAME:/path).", no_args_is_help=True
)
app.add_typer(volume_app, name="volume")


@volume_app.command("create")
def create(
    name: Annotated[str | None, typer.Argument(help="The volume's name (default: a random one).")] = None,
) -> None:
    """Create a volume (an existing one is left as it is) and print its name."""

    def body() -> int:
        from .. import volumes

        print(volumes.create(name)["Name"])
        return 0

    exit_with(guarded(body))


@volume_app.command("ls")
def ls(quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only print names.")] = False) -> None:
    """List volumes."""

    def body() -> int:
        from .. import volumes

        found = volumes.names()
        if not quiet:
            print("DRIVER    VOLUME NAME")
        for n in found:
            print(n if quiet else f"local     {n}")
        return 0

    exit_with(guarded(body))


@volume_app.command("inspect")
def inspect(names: Annotated[list[str], typer.Argument(help="Volume names.")]) -> None:
    """Show volumes' details as JSON."""

    def body() -> int:
        from .. import volumes

        print(json.dumps([volumes.inspect(n) for n in names], indent=2))
        return 0

    exit_with(guarded(body))


@volume_app.command("rm")
def rm(names: Annotated[list[str], typer.Argument(help="Volume names.")]) -> None:
    """Remove volumes and their data; one a container still mounts is refused."""
    worst = 0
    for n in names:

        def body(n: str = n) -> int:
            from .. import volumes

            volumes.remove(n, GLOBALS.root)
            print(n)
            return 0

        worst = max(worst, guarded(body))
    exit_with(worst)
