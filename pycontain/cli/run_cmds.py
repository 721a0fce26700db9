"""``pycontain run`` as a typer command (help, completion, usage errors), its signature generated from
``cli.options.RUN_OPTIONS``, the table the fast parser reads; both end in ``options.run``."""

from __future__ import annotations

import inspect
from typing import Annotated

import typer

from .app import app
from .base import MULTI, command
from .options import RUN_OPTIONS, run

_LISTS = {o.dest for o in RUN_OPTIONS if o.kind == MULTI}


def _run(rootfs: str, command: list[str], **values: object) -> int:
    args = command[1:] if command[:1] == ["--"] else command
    return run({k: ([] if v is None and k in _LISTS else v) for k, v in values.items()}, rootfs, args)


def _signature() -> inspect.Signature:
    params = [
        inspect.Parameter(
            "rootfs",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=Annotated[
                str, typer.Argument(help="A root filesystem directory, or 'default' for the built-in one.")
            ],
        ),
        inspect.Parameter(
            "command",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=Annotated[list[str], typer.Argument(help="The command and its arguments (after --).")],
        ),
    ]
    for o in RUN_OPTIONS:
        ann: object
        default: object
        ann, default = o.typer_param()
        info = typer.Option(*o.flags, help=o.help, metavar=o.metavar or None, show_default=False)
        params.append(
            inspect.Parameter(
                o.dest, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[ann, info], default=default
            )
        )
    return inspect.Signature(params)


_run.__signature__ = _signature()  # type: ignore[attr-defined]
_run.__annotations__ = {p.name: p.annotation for p in _run.__signature__.parameters.values()}  # type: ignore[attr-defined]
_run.__doc__ = (
    "Run a command in a new container: pycontain run [OPTIONS] ROOTFS [--] CMD...\n\n"
    "ROOTFS is a directory holding a root filesystem, or 'default' for the built-in busybox one. "
    "The exit status is the command's (128+N if signal N killed it; 125 when pycontain itself "
    "fails, 126 when the command cannot be executed, 127 when it is not found).\n\n"
    "Examples: pycontain run --rm default -- echo hi; "
    "pycontain run -d --name web -p 8080:80 -m 256m IMAGE"
)
command(app, "run", context_settings={"allow_interspersed_args": False})(_run)
