"""The typer application, with the global flags, and nothing else.

The command modules (``*_cmds``, ``commands``, ``ocirun``) import ``app`` from here and register their
commands on it (``cli.base.command``); ``cli.commandline`` imports them all and runs it. Nothing here imports
them back.
"""

from __future__ import annotations

from typing import Annotated

import typer

from .base import GLOBAL_OPTIONS

app = typer.Typer(
    name="pycontain",
    help="An OS-level container runtime: namespaces, cgroups and pivot_root, no hypervisor.\n\n"
    "Run 'pycontain run default -- sh -c \"echo hi\"' to start a container on the built-in root filesystem.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["--help"]},
)


def _global(**_flags: object) -> None:
    """cli.main has taken the global flags off the command line already (base.parse_globals); typer gets
    them declared, from the same table, for --help and completion."""


def _declare_globals() -> None:
    import inspect

    params = []
    for o in GLOBAL_OPTIONS:
        ann: object
        default: object
        ann, default = o.typer_param()
        info = typer.Option(
            *o.flags, help=o.help, metavar=o.metavar or None, show_default=o.default is not None
        )
        params.append(
            inspect.Parameter(
                o.dest, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[ann, info], default=default
            )
        )
    _global.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    _global.__annotations__ = {p.name: p.annotation for p in params}
    app.callback()(_global)


_declare_globals()


# 'pycontain --help' lists the commands in these sections, in this order. A new command belongs in one
# (tests/test_cli_help.py checks that each is placed).
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Containers",
        (
            "run", "ps", "exec", "logs", "attach", "stop", "kill", "restart", "wait", "rm", "pause",
            "unpause", "inspect", "port", "top", "stats", "update", "cp", "diff", "commit", "snapshot",
            "restore",
        ),
    ),
    (
        "Images",
        ("images", "image", "pull", "push", "import", "build", "tag", "rmi", "save", "load", "login", "logout"),
    ),
    (
        "OCI runtime (runc's commands, for engines such as podman and containerd)",
        ("create", "start", "state", "delete", "list", "spec", "resume", "events", "features"),
    ),
    ("Host", ("check", "gc", "system", "restart-policy", "bench")),
    ("Networks, volumes, sandboxes, virtual machines", ("network", "volume", "sandbox", "vm")),
)  # fmt: skip


def arrange(group: typer.Typer) -> None:
    """Put every registered command in its section of ``SECTIONS``, in that order (typer lists commands in
    the order they were registered, which is the order their modules happen to be imported in)."""
    names = [name for _, members in SECTIONS for name in members]
    section = {name: title for title, members in SECTIONS for name in members}

    def place(name: object) -> int:
        return names.index(name) if isinstance(name, str) and name in names else len(names)

    for command in group.registered_commands:
        command.rich_help_panel = section.get(command.name or "")
    for sub in group.registered_groups:
        sub.rich_help_panel = section.get(sub.name if isinstance(sub.name, str) else "")
    group.registered_commands.sort(key=lambda info: place(info.name))
    group.registered_groups.sort(key=lambda info: place(info.name))
