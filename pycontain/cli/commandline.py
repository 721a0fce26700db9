"""The whole typer command line: every command module registered on ``cli.app``'s application, then run.

Only ``pycontain.cli`` imports this (for what its fast paths do not take), so registration goes one way:
this module -> the command modules -> ``cli.app``.
"""

from __future__ import annotations

import sys

import typer

# Commands defined in their own modules register themselves on ``app`` when imported.
from . import (  # noqa: F401
    bench_cmds,
    build_cmds,
    commands,
    container_cmds,
    execute,
    image_cmds,
    network_cmds,
    oci_cmds,
    ocirun,
    options,
    registry_cmds,
    resource_cmds,
    run_cmds,
    sandbox_cmds,
    vm_cmds,
    volume_cmds,
)
from .app import app, arrange
from .base import register

register(app, commands.COMMANDS)  # ps, kill, inspect, pause...: declared in cli.commands
register(app, execute.COMMANDS)  # exec: declared alone in cli.execute
register(app, options.COMMANDS)  # update: declared in cli.options, beside run's flags it takes
register(app, ocirun.COMMANDS)  # runc's create, start, state, delete: declared in cli.ocirun
arrange(app)


def run_app(argv: list[str]) -> int:
    try:  # typer >= 0.22 carries its own click; older ones use click itself
        from typer._click import exceptions as cx
    except ImportError:
        from click import exceptions as cx  # type: ignore[import-not-found,no-redef]
    from .base import fail

    NoArgsIsHelpError = getattr(cx, "NoArgsIsHelpError", ())  # click < 8.2 prints the help itself
    UsageError, ClickException, Abort = cx.UsageError, cx.ClickException, typer.Abort

    try:
        code = app(args=argv, prog_name="pycontain", standalone_mode=False)
    except NoArgsIsHelpError as e:
        # 'pycontain' or 'pycontain system' alone: the help, with click's usage-error status (125 for us).
        print(e.ctx.get_help() if e.ctx is not None else e.format_message())
        return 125
    except UsageError as e:
        # One line, like every other error (click's standalone mode draws a multi-line box), naming the
        # value click refused (its own message does not).
        where = e.ctx.command_path if e.ctx is not None else "pycontain"
        param = getattr(e, "param", None)
        given = _given(argv, param.opts) if param is not None and getattr(param, "opts", None) else None
        got = f": {given!r}" if given is not None else ""
        return fail(f"{_one_line(e.format_message())}{got} (see '{where} --help')", 125)
    except ClickException as e:
        return fail(_one_line(e.format_message()), 125)
    except Abort:
        sys.stderr.write("\n")
        return 130
    except SystemExit as e:
        code = e.code
        if code is None:
            return 0
        if isinstance(code, int):
            return 125 if code == 2 else code
        sys.stderr.write(f"pycontain: {code}\n")
        return 125
    if isinstance(code, bool) or not isinstance(code, int):
        return 0
    # click reports usage errors with 2; docker's convention for its own failures is 125.
    return 125 if code == 2 else code


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _given(argv: list[str], flags: list[str]) -> str | None:
    """The value given on the command line to the option named by ``flags`` (the last one, as click takes)."""
    found = None
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        name, eq, value = arg.partition("=")
        if name in flags and eq and name.startswith("--"):
            found = value
        elif arg in flags and i + 1 < len(argv):
            found = argv[i + 1]
        elif any(
            f.startswith("-") and not f.startswith("--") and arg.startswith(f) and len(arg) > 2 for f in flags
        ):
            found = arg[2:]
    return found
