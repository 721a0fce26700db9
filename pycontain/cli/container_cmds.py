"""docker's commands on containers that the fast table (``cli.commands``) does not carry: logs, stop, wait,
restart, restart-policy, port, cp, diff, top, attach, rm; and the host's: gc, system prune, check.

Each parses (typer did), calls the library (``Container``, ``pycontain.transfer``, ``gc``, ``doctor``...) and
prints.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from .app import app
from .base import GLOBALS, command, container, for_each, printable, render_table

Refs = Annotated[list[str], typer.Argument(metavar="CONTAINER", help="Container names or ids.")]
Ref = Annotated[str, typer.Argument(metavar="CONTAINER", help="Container name or id.")]
GraceTime = Annotated[float, typer.Option("-t", "--time", help="Seconds to wait before SIGKILL.")]


@command(app, "logs")
def logs(
    ref: Ref,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new output.")] = False,
    tail: Annotated[
        str, typer.Option("-n", "--tail", help="Only the last N lines ('all' for every line).")
    ] = "all",
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Lines from this time on: 2026-12-03T08:00:00Z, a Unix time, or 10s/5m/2h ago."
        ),
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Lines before this time (same forms).")] = None,
    timestamps: Annotated[bool, typer.Option("-t", "--timestamps", help="Show each line's time.")] = False,
) -> None:
    """Print a detached container's output (stdout and stderr, as its monitor logged them).

    Example: pycontain logs -f --since 10m web"""
    from ..logs import container_logs

    out = sys.stdout.buffer
    for line in container_logs(container(ref), tail, since, until, follow):
        out.write(line.render(timestamps))
        if follow:
            out.flush()
    out.flush()


@command(app, "stop")
def stop(refs: Refs, time_: GraceTime = 10) -> int:
    """Stop running containers: the stop signal (TERM), then SIGKILL after a grace period.

    Example: pycontain stop -t 2 web"""
    return for_each(refs, lambda c: c.stop(time_))


@command(app, "wait")
def wait(refs: Refs) -> int:
    """Block until containers stop, then print their exit codes (one per line)."""
    return for_each(refs, lambda c: print(c.wait()), quiet=True)


@command(app, "restart")
def restart(refs: Refs, time_: GraceTime = 10) -> int:
    """Stop containers (if they run) and start them again with the same configuration and writable layer."""
    return for_each(refs, lambda c: c.restart(time_))


@command(app, "restart-policy")
def restart_policy() -> int:
    """Start the containers whose --restart policy says they run (run it once at boot).

    'always' ones, and 'unless-stopped' ones not stopped with 'stop'. examples/pycontain-restart.service is
    a systemd unit that runs it."""
    from .. import monitor

    failed = 0
    for line in monitor.boot(GLOBALS.root):
        if line.startswith("could not "):
            sys.stderr.write(f"pycontain: {line}\n")
            failed = 1
        else:
            print(line)
    return failed


@command(app, "port")
def port(
    ref: Ref,
    private: Annotated[
        str | None, typer.Argument(metavar="[PORT[/PROTO]]", help="Only this container port.")
    ] = None,
) -> None:
    """List a container's published ports: CONTAINERPORT/PROTO -> HOSTIP:HOSTPORT.

    Example: pycontain port web 80/tcp"""
    for p in container(ref).ports(private):
        where = f"{p.host_ip or '0.0.0.0'}:{p.host_port}"
        print(where if private else f"{p.container_port}/{p.proto} -> {where}")


@command(app, "cp")
def cp(
    src: Annotated[str, typer.Argument(metavar="SRC", help="CONTAINER:PATH or a host path.")],
    dest: Annotated[str, typer.Argument(metavar="DEST", help="A host path or CONTAINER:PATH.")],
) -> None:
    """Copy files between a running container and the host.

    Examples: pycontain cp web:/etc/hostname ./hostname; pycontain cp ./site web:/srv"""
    from .. import transfer

    transfer.copy(src, dest, GLOBALS.root)


@command(app, "diff")
def diff(ref: Ref) -> None:
    """What the container changed in its file system: A added, C changed, D deleted."""
    from .. import transfer

    for line in transfer.diff(container(ref)):
        print(printable(line))  # (the container names its files: a newline in one would forge a line)


@command(app, "top")
def top(ref: Ref) -> None:
    """The processes of a running container (host pids)."""
    from .. import transfer

    print(render_table(("UID", "PID", "PPID", "CMD"), transfer.top(container(ref))))


@command(app, "attach")
def attach(
    ref: Ref,
    detach_keys: Annotated[
        str,
        typer.Option("--detach-keys", help="Keys that leave the container running (default ctrl-p,ctrl-q)."),
    ] = "ctrl-p,ctrl-q",
    no_stdin: Annotated[
        bool, typer.Option("--no-stdin", help="Do not send our stdin to the container.")
    ] = False,
) -> int:
    """Connect to a detached container's output (and its stdin, with -i or -t): its monitor relays both.

    The detach keys leave it running; when the container ends, attach exits with its status."""
    from ..attach import attach as run_attach

    return run_attach(container(ref), detach_keys, not no_stdin)


@command(app, "rm")
def rm(
    refs: Refs,
    force: Annotated[bool, typer.Option("-f", "--force", help="Kill it first if it runs.")] = False,
) -> int:
    """Remove containers and everything they own (cgroups, writable layer, state)."""
    return for_each(refs, lambda c: c.remove(force=force))


@command(app, "gc")
def gc() -> int:
    """Remove what crashed or interrupted runs left: abandoned creates, exited --rm containers, orphan cgroups."""
    from .. import gc as collector

    return _report(collector.collect(GLOBALS.root))


def _report(lines: list[str]) -> int:
    """gc's lines: what was removed on stdout, what could not be as warnings (and exit status 1)."""
    failed = 0
    for line in lines:
        if line.startswith("could not "):
            sys.stderr.write(f"pycontain: warning: {line}\n")
            failed = 1
        else:
            print(f"removed {line}")
    return failed


system_app = typer.Typer(help="Host-wide maintenance: prune.", no_args_is_help=True)
app.add_typer(system_app, name="system")


@command(system_app, "prune")
def system_prune(
    force: Annotated[bool, typer.Option("-f", "--force", help="Do not ask for confirmation.")] = False,
) -> int:
    """Remove every stopped container (docker's 'system prune'), after the crash leftovers."""
    from .. import gc as collector

    if not force and sys.stdin.isatty() and not typer.confirm("Remove all stopped containers?"):
        return 0
    return _report(collector.prune(GLOBALS.root))


@command(app, "check")
def check(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> int:
    """Report the host's kernel features, cgroup mode and delegated controllers, and missing tools."""
    from ..doctor import run_checks

    checks = run_checks()
    if as_json:
        print(json.dumps([c.to_dict() for c in checks], indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(box=None, pad_edge=False, header_style="bold")
        for col in ("", "CHECK", "DETAIL", "WHAT TO DO"):
            table.add_column(col)
        for c in checks:
            mark = "[green]ok[/]" if c.ok else "[red]FAIL[/]" if c.ok is False else "[yellow]--[/]"
            table.add_row(mark, c.name, c.detail, c.fix)
        Console().print(table)
    return 0 if all(c.ok is not False for c in checks) else 1
