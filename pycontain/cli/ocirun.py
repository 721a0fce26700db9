"""runc's commands over OCI bundles that an engine calls for every container (podman: create, start, state,
delete; containerd's shim: run), declared once as data (``cli.base.Command``): ``cli.main`` runs them without
typer (~150 ms on a small machine), ``cli.commandline`` registers the same declarations on typer's app.

runc's ``run`` has no typer command of its own (typer's ``run`` is docker's): ``cli.main`` tells the two
forms apart (``runc_run_form``) and parses runc's with ``RUNC_RUN``'s options.
"""

from __future__ import annotations

import sys

from .base import FLAG, GLOBALS, VALUE, Arg, Command, Opt, parse, preserve_fds_count


def create_body(v: dict) -> int:
    from .. import oci

    oci.create(
        v["id"],
        v["bundle"],
        GLOBALS.root,
        v["pid_file"],
        v["console_socket"],
        v["no_pivot"],
        preserve_fds_count(v["preserve_fds"]),
    )
    return 0


def start_body(v: dict) -> int:
    from .. import oci

    oci.start(v["id"], GLOBALS.root)
    return 0


def state_body(v: dict) -> int:
    # From the saved state alone: neither oci.py nor container.py is loaded for it.
    from .. import fastjson
    from ..state import StateStore

    sys.stdout.write(fastjson.dumps_indented(StateStore(GLOBALS.root).find(v["id"]).oci_state()) + "\n")
    return 0


def delete_body(v: dict) -> int:
    from .. import oci

    oci.delete(v["id"], GLOBALS.root, v["force"])
    return 0


def run_body(v: dict) -> int:
    from .. import oci

    code = oci.run(
        v["id"],
        v["bundle"],
        GLOBALS.root,
        v["detach"],
        v["pid_file"],
        v["console_socket"],
        v["no_pivot"],
        preserve_fds_count(v["preserve_fds"]),
        v["keep"],
    )
    sys.stdout.flush()
    return code


_ID = Arg("id", "ID", "The container's id (unique).")
_CREATE_OPTIONS = (
    Opt(("--bundle", "-b"), "bundle", VALUE, "The bundle directory (holds config.json).", "DIR", "."),
    Opt(("--pid-file",), "pid_file", VALUE, "Write the container's pid here.", "FILE"),
    Opt(
        ("--console-socket",), "console_socket", VALUE, "Unix socket that receives the pty master.", "SOCKET"
    ),
    Opt(
        ("--preserve-fds",),
        "preserve_fds",
        VALUE,
        "Pass descriptors 3 .. 3+N-1 on to the container.",
        "N",
        "0",
    ),
    Opt(("--no-pivot",), "no_pivot", FLAG, "Use MS_MOVE + chroot instead of pivot_root."),
    Opt(("--no-new-keyring",), "no_new_keyring", FLAG, "Accepted; pycontain makes no session keyring."),
)

COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command(
            "create",
            create_body,
            "OCI create: set the container up from a bundle; its process waits until 'start'.\n\n"
            "Example: pycontain create --bundle /srv/bundle c1 && pycontain start c1",
            (_ID,),
            _CREATE_OPTIONS,
        ),
        Command("start", start_body, "OCI start: run the user process of a created container.", (_ID,)),
        Command("state", state_body, "OCI state: the container's state as the runtime spec's JSON.", (_ID,)),
        Command(
            "delete",
            delete_body,
            "OCI delete: remove a stopped (or, with --force, any) container.",
            (_ID,),
            (Opt(("--force", "-f"), "force", FLAG, "Kill it first if it runs."),),
        ),
    )
}

# runc's 'run': create and start in one, in the foreground unless --detach.
RUNC_RUN = Command(
    "run",
    run_body,
    "runc's run: create and start the container of a bundle.",
    (_ID,),
    (
        *_CREATE_OPTIONS,
        Opt(("--detach", "-d"), "detach", FLAG, "Do not wait for the container's process."),
        Opt(("--keep",), "keep", FLAG, "Keep the container's state after it exits."),
        Opt(("--no-subreaper",), "no_subreaper", FLAG, "Accepted; pycontain's parent always reaps."),
    ),
)


def runc_run_form(rest: list[str]) -> bool:
    """Which 'run' is this? runc's callers pass --bundle/-b, or run in the bundle's directory with one
    argument (the id); docker's form always has a root filesystem and a command."""
    import os

    head = rest[: rest.index("--")] if "--" in rest else rest
    if any(a in ("--bundle", "-b") or a.startswith("--bundle=") for a in head):
        return True
    valued = {f for o in RUNC_RUN.options if o.kind == VALUE for f in o.flags}
    switches = {f for o in RUNC_RUN.options if o.kind == FLAG for f in o.flags}
    # runc's flags with their values left out: 'run --pid-file F ID' has one positional, the id
    positionals = []
    i = 0
    while i < len(head):
        arg = head[i]
        if arg in valued:
            i += 1
        elif not arg.startswith("-"):
            positionals.append(arg)
        elif arg.partition("=")[0] not in valued and arg not in switches:
            return False  # a docker-style flag
        i += 1
    return "--" not in rest and len(positionals) == 1 and os.path.isfile("config.json")


def runc_run(rest: list[str]) -> int:
    """``run [--bundle B] [--detach] [--keep] [--pid-file F] [--console-socket S] [--preserve-fds N]
    [--no-pivot] ID`` (runc's run)."""
    from ..errors import InvalidArgument

    values = parse(RUNC_RUN, rest)
    if values is None:
        raise InvalidArgument(
            f"runc-style 'run': an unknown flag, a flag without its value or not exactly one container id "
            f"in {' '.join(rest)!r}: run [--bundle DIR] [--detach] ID (see 'pycontain run --help')"
        )
    return run_body(values)
