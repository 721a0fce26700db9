"""The typer application, with the global flags, and nothing else.

The command modules (``*_cmds``, ``commands``, ``ocirun``) import ``app`` from here and register their
commands on it (``cli.base.command``); ``cli.commandline`` imports them all and runs it. Nothing here imports
them back.
"""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    name="pycontain",
    help="An OS-level container runtime: namespaces, cgroups and pivot_root, no hypervisor.\n\n"
    "Run 'pycontain run default -- sh -c \"echo hi\"' to start a container on the built-in root filesystem.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["--help"]},
)


@app.callback()
def _global(
    root: Annotated[
        str | None,
        typer.Option(
            "--root", help="State root (default /var/lib/pycontain/containers).", envvar="PYCONTAIN_ROOT"
        ),
    ] = None,
    log: Annotated[str | None, typer.Option("--log", help="Also write errors to this file.")] = None,
    log_format: Annotated[str, typer.Option("--log-format", help="text or json (for --log).")] = "text",
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of internal errors.")] = False,
    systemd_cgroup: Annotated[
        bool, typer.Option("--systemd-cgroup", help="Not available: cgroupfs only.")
    ] = False,
    rootless: Annotated[
        str,
        typer.Option(
            "--rootless",
            help="auto (rootless when run by a user other than root) or false (refuse to run unprivileged).",
        ),
    ] = "auto",
) -> None:
    """Global flags are parsed by pycontain.cli.parse_globals before this runs; they are declared here
    for --help and completion."""


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
