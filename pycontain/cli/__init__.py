"""pycontain's command line: parses, calls ``pycontain.api`` / ``Container``, prints. Nothing else.

This module is only the entry point. ``main()`` takes a fast path for ``pycontain [--root DIR] run ...``
(``cli.options``), the OCI commands an engine calls (``cli.ocirun``) and the commands of ``cli.commands``
(exec, ps, kill...): no typer, no click, no rich, whose import costs more than the work. It hands every
other command, ``--help`` and whatever the fast parsers do not take to the typer application
(``cli.commandline``). Every error becomes one line on stderr and its exit status (``cli.base.guarded``:
125 for pycontain's own failures, 126/127 when the command cannot be executed or found).

The modules import one way: this one -> the fast tables and ``commandline`` -> the command modules ->
``app`` and ``base`` (the global flags, the guard, the ``command`` decorator, the fast commands'
declarations and parser); none imports this one.
"""

from __future__ import annotations

import gc
import posix
import sys

from .. import trace
from ..errors import EXIT_RUNTIME
from .base import GLOBALS, OWN_PROCESS, check_log, fail, guarded, parse_globals

# The fast commands that only read states and print (they never live on, see main).
_READERS = ("ps", "state", "inspect")

# The commands of the fast tables, by module (cli.commands: docker's and runc's shared commands;
# cli.ocirun: runc's lifecycle; cli.options: update; cli.execute: exec), named here so that finding one
# imports nothing.
FAST_COMMANDS = {
    **dict.fromkeys(
        ("ps", "inspect", "kill", "pause", "unpause", "resume", "features", "events"), "commands"
    ),
    "exec": "execute",
    **dict.fromkeys(("create", "start", "state", "delete"), "ocirun"),
    "update": "options",  # (run's resource flags)
}


def main(argv: list[str] | None = None) -> int:
    trace.step("cli")
    argv = parse_globals(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["--version"], ["version"]):  # engines ask 'runtime --version' (podman info)
        from .. import SPEC_VERSION, __version__

        sys.stdout.write(f"pycontain version {__version__}\nspec: {SPEC_VERSION}\n")
        return 0
    bad_log = check_log()
    if bad_log:
        return fail(bad_log, EXIT_RUNTIME)
    if GLOBALS.systemd_cgroup:
        return fail(
            "--systemd-cgroup: the systemd cgroup driver is not available (pycontain manages cgroupfs "
            "itself); leave the flag out",
            EXIT_RUNTIME,
        )
    if GLOBALS.rootless in ("true", "1") and posix.geteuid() == 0:
        return fail(
            "--rootless=true: root runs containers with its privileges; run pycontain as the "
            "unprivileged user instead (it then enters rootless mode by itself)",
            EXIT_RUNTIME,
        )
    if argv[:1] == ["run"] and len(argv) > 1:
        rest = argv[1:]
        head = rest[: rest.index("--")] if "--" in rest else rest
        if "--help" not in head:
            from .ocirun import runc_run, runc_run_form

            if runc_run_form(rest):
                return guarded(runc_run, rest)
            from .options import run_args

            code = guarded(run_args, rest)
            sys.stdout.flush()
            _exit_now["ok"] = True
            return code
    if argv[:1] and argv[0] in FAST_COMMANDS:
        if argv[0] in _READERS:
            # Commands that read states, print and exit: the cyclic collector's passes over what their
            # imports made (two or three, ~0.1 ms each) find nothing to free.
            gc.disable()
        from .base import run_fast

        table = FAST_COMMANDS[argv[0]]
        if table == "ocirun":
            from .ocirun import COMMANDS
        elif table == "options":
            from .options import COMMANDS
        elif table == "execute":
            from .execute import COMMANDS
        else:
            from .commands import COMMANDS
        fast = run_fast(COMMANDS[argv[0]], argv[1:])
        if fast is not None:
            _exit_now["ok"] = True
            return fast
    return guarded(_run_app, argv)  # even a bug in the command-line layer ends in one line


# Set by the fast paths (run and the OCI commands), which register no atexit handler: they may skip
# Python's teardown. The typer commands may not (a Sandbox closes itself at exit).
_exit_now = {"ok": False}


def entry() -> None:
    """The console script: ``main()``, then, on the fast paths, leave without Python freeing every module
    (~8 ms of a ~30 ms ``pycontain run``)."""
    OWN_PROCESS["yes"] = True
    if sys.stdin is None or sys.stdout is None or sys.stderr is None:
        _fill_closed_stdio()
    code = main()
    if _exit_now["ok"]:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a reader that went away: nothing left to tell it
                pass
        from .. import preload

        preload.refresh()  # the modules this command loaded come from one file next time (see preload)
        posix._exit(code)
    sys.exit(code)


def _fill_closed_stdio() -> None:
    """/dev/null on whichever of our descriptors 0-2 our caller closed (Python then left its stream None):
    else the next files we open take those numbers, and exec's helper, handed a namespace or a cgroup file
    on 1 or 2, would find its stdout's pipe there instead; and writing a message would raise."""
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        if getattr(sys, name) is None:
            null = posix.open("/dev/null", posix.O_RDWR)
            if null != fd:  # (a lower one was open: only then can the lowest free number not be fd)
                posix.dup2(null, fd)
                posix.close(null)
            posix.set_inheritable(fd, True)  # (as stdio is: exec's helper and a container get it)
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False))


def _run_app(argv: list[str]) -> int:
    if sys.flags.no_site:  # started by pycontain.launcher: typer, rich and their plugins need all of site
        import site

        site.main()
    from .commandline import run_app  # importing every command's module is part of what may fail

    return run_app(argv)
