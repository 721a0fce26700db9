"""The typer application and the commands of no other module (logs, stop, rm, gc...).

The command modules (``*_cmds``, ``commands``) import ``app`` from here and register on it; ``cli.commandline``
imports them all and runs it. Nothing here imports them back.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from . import GLOBALS, guarded
from .commands import container, for_each

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


def exit_with(code: int) -> None:
    if code:
        raise typer.Exit(code)


@app.command("logs")
def logs(
    ref: str,
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
    """Print a detached container's output (stdout and stderr, as its monitor logged them)."""

    def body() -> int:
        from ..logs import LogFilter, LogStream, follow_lines, read_lines

        c = container(ref)
        if not c.state.config.get("detach"):
            from ..errors import InvalidArgument

            raise InvalidArgument(f"container {c.name} was not detached: its output went to the terminal")
        filt = LogFilter.from_options(tail, since, until)
        out = sys.stdout.buffer
        stream = LogStream(c.log_path)
        try:
            for line in read_lines(stream, filt):
                out.write(line.render(timestamps))
            out.flush()
            if follow:
                for line in follow_lines(c, stream, filt):
                    out.write(line.render(timestamps))
                    out.flush()
        finally:
            stream.close()
        return 0

    exit_with(guarded(body))


@app.command("stop")
def stop(
    refs: list[str],
    time_: Annotated[float, typer.Option("-t", "--time", help="Seconds to wait before SIGKILL.")] = 10,
) -> None:
    """Stop running containers: SIGTERM, then SIGKILL after a grace period."""
    _for_each(refs, lambda c: c.stop(time_))


@app.command("wait")
def wait(refs: Annotated[list[str], typer.Argument(help="Container names or ids.")]) -> None:
    """Block until containers stop, then print their exit codes (one per line)."""

    def each(c) -> None:
        print(c.wait())

    _for_each(refs, each, quiet=True)


@app.command("restart")
def restart(
    refs: list[str],
    time_: Annotated[float, typer.Option("-t", "--time", help="Seconds to wait before SIGKILL.")] = 10,
) -> None:
    """Stop containers (if they run) and start them again with the same configuration and writable layer."""

    def each(c) -> None:
        c.stop(time_)
        c.start_again()

    _for_each(refs, each)


@app.command("restart-policy")
def restart_policy() -> None:
    """Start the containers whose --restart policy says they run: 'always' ones, and 'unless-stopped' ones
    not stopped with 'stop'. Run it once at boot, e.g. from the unit in examples/pycontain-restart.service."""

    def body() -> int:
        from .. import monitor

        failed = 0
        for line in monitor.boot(GLOBALS.root):
            if line.startswith("could not "):
                sys.stderr.write(f"pycontain: {line}\n")
                failed = 1
            else:
                print(line)
        return failed

    exit_with(guarded(body))


@app.command("port")
def port(
    ref: Annotated[str, typer.Argument(help="Container name or id.")],
    private: Annotated[
        str | None, typer.Argument(metavar="[PORT[/PROTO]]", help="Only this container port.")
    ] = None,
) -> None:
    """List a container's published ports: CONTAINERPORT/PROTO -> HOSTIP:HOSTPORT."""

    def body() -> int:
        from ..errors import NotFound
        from ..network import published

        c = container(ref)
        want_port, _, want_proto = (private or "").partition("/")
        lines = []
        for p in published(c.state.config):
            if private and (str(p.container_port) != want_port or p.proto != (want_proto or "tcp")):
                continue
            where = f"{p.host_ip or '0.0.0.0'}:{p.host_port}"
            lines.append(where if private else f"{p.container_port}/{p.proto} -> {where}")
        if private and not lines:
            raise NotFound(f"no public port {private!r} published for container {c.name}")
        for line in lines:
            print(line)
        return 0

    exit_with(guarded(body))


@app.command("cp")
def cp(
    src: Annotated[str, typer.Argument(metavar="SRC", help="CONTAINER:PATH or a host path.")],
    dest: Annotated[str, typer.Argument(metavar="DEST", help="A host path or CONTAINER:PATH.")],
) -> None:
    """Copy files between a running container and the host: cp ID:/path DEST, or cp SRC ID:/path."""

    def body() -> int:
        from .. import transfer

        direction, ref, inside, host = transfer.parse_cp_args(src, dest)
        c = container(ref)
        if direction == "from":
            transfer.copy_from(c, inside, host)
        else:
            transfer.copy_to(c, host, inside)
        return 0

    exit_with(guarded(body))


@app.command("diff")
def diff(ref: Annotated[str, typer.Argument(help="Container name or id.")]) -> None:
    """What the container changed in its file system: A added, C changed, D deleted."""

    def body() -> int:
        from .. import transfer

        for line in transfer.diff(container(ref)):
            print(line)
        return 0

    exit_with(guarded(body))


@app.command("top")
def top(ref: Annotated[str, typer.Argument(help="Container name or id.")]) -> None:
    """The processes of a running container (host pids)."""

    def body() -> int:
        from .. import transfer
        from .commands import render_table

        print(render_table(("UID", "PID", "PPID", "CMD"), transfer.top(container(ref))))
        return 0

    exit_with(guarded(body))


@app.command("attach")
def attach(
    ref: Annotated[str, typer.Argument(help="Container name or id.")],
    detach_keys: Annotated[
        str,
        typer.Option("--detach-keys", help="Keys that leave the container running (default ctrl-p,ctrl-q)."),
    ] = "ctrl-p,ctrl-q",
    no_stdin: Annotated[
        bool, typer.Option("--no-stdin", help="Do not send our stdin to the container.")
    ] = False,
) -> None:
    """Connect to a detached container's output (and its stdin, with -i or -t): its monitor relays both.

    The detach keys leave it running; when the container ends, attach exits with its status."""

    def body() -> int:
        from ..attach import attach as run_attach

        return run_attach(container(ref), detach_keys, not no_stdin)

    exit_with(guarded(body))


@app.command("rm")
def rm(
    refs: list[str],
    force: Annotated[bool, typer.Option("-f", "--force", help="Kill it first if it runs.")] = False,
) -> None:
    """Remove containers and everything they own (cgroups, writable layer, state)."""
    _for_each(refs, lambda c: c.remove(force=force))


def _for_each(refs: list[str], action, quiet: bool = False) -> None:
    exit_with(for_each(refs, action, quiet))


def _register_run() -> None:
    """``run`` as a typer command whose signature is generated from the fast parser's option table."""
    import inspect

    from .options import MULTI, RUN_OPTIONS

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

    def run(rootfs: str, command: list[str], **values: object) -> None:
        from . import run_command

        args = command[1:] if command[:1] == ["--"] else command
        values = {k: (v if v is not None or k not in multi else []) for k, v in values.items()}
        exit_with(guarded(run_command, values, rootfs, args, GLOBALS.root))

    multi = {o.dest for o in RUN_OPTIONS if o.kind == MULTI}
    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in params}
    run.__doc__ = (
        "Run a command in a new container: pycontain run [OPTIONS] ROOTFS [--] CMD...\n\n"
        "ROOTFS is a directory holding a root filesystem, or 'default' for the built-in busybox one. "
        "The exit status is the command's (128+N if signal N killed it; 125 when pycontain itself "
        "fails, 126 when the command cannot be executed, 127 when it is not found)."
    )
    app.command("run", context_settings={"allow_interspersed_args": False})(run)


_register_run()


@app.command("gc")
def gc() -> None:
    """Remove what crashed or interrupted runs left: abandoned creates, exited --rm containers, orphan cgroups."""

    def body() -> int:
        from .. import gc as collector

        return _report(collector.collect(GLOBALS.root))

    exit_with(guarded(body))


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


system_app = typer.Typer(help="Host-wide maintenance.", no_args_is_help=True)
app.add_typer(system_app, name="system")


@system_app.command("prune")
def system_prune(
    force: Annotated[bool, typer.Option("-f", "--force", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove every stopped container (docker's 'system prune'), after the crash leftovers."""

    def body() -> int:
        from .. import gc as collector

        if not force and sys.stdin.isatty() and not typer.confirm("Remove all stopped containers?"):
            return 0
        return _report(collector.prune(GLOBALS.root))

    exit_with(guarded(body))


@app.command("check")
def check(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Report the host's kernel features, cgroup mode and delegated controllers, and missing tools."""

    def body() -> int:
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

    exit_with(guarded(body))
