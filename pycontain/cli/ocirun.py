"""runc's ``run [--bundle B] [--detach] ID``, parsed without typer (like docker-style run's fast path)."""

from __future__ import annotations

import sys

from . import GLOBALS

# typing.TYPE_CHECKING without importing typing (several ms, with enum and re, on the engines' hot path).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _parse(rest: list[str], valued: dict, flags: dict, opts: dict) -> list[str] | None:
    """runc's flags (``--flag value``, ``--flag=value``, switches) into ``opts``; returns the positionals, or
    None at a flag it does not know or a value missing."""
    ids = []
    i = 0
    while i < len(rest):
        name, eq, value = rest[i].partition("=")
        if name in valued:
            if not eq:
                i += 1
                if i >= len(rest):
                    return None
                value = rest[i]
            opts[valued[name]] = value
        elif name in flags and not eq:
            if flags[name]:
                opts[flags[name]] = True
        elif rest[i].startswith("-"):
            return None
        else:
            ids.append(rest[i])
        i += 1
    return ids


# runc's 'run' flags: those taking a value, and switches (None: accepted, nothing to do)
RUN_VALUED = {
    "--bundle": "bundle",
    "-b": "bundle",
    "--pid-file": "pid_file",
    "--console-socket": "console_socket",
    "--preserve-fds": "preserve_fds",
}
RUN_FLAGS = {
    "--detach": "detach",
    "-d": "detach",
    "--no-pivot": "no_pivot",
    "--keep": "keep",
    "--no-new-keyring": None,
    "--no-subreaper": None,
}


def preserve_fds_count(value: str) -> int:
    """--preserve-fds N: a count of descriptors, 0 or more."""
    from ..errors import InvalidArgument

    if not value.isdigit():
        raise InvalidArgument(
            f"--preserve-fds {value!r}: give a number of descriptors, e.g. --preserve-fds 1"
        )
    return int(value)


def oci_run(rest: list[str]) -> int:
    """``run [--bundle B] [--detach] [--keep] [--pid-file F] [--console-socket S] [--preserve-fds N] [--no-pivot]
    ID`` (runc's run)."""
    from .. import oci
    from ..errors import InvalidArgument

    opts: dict[str, Any] = {
        "bundle": ".",
        "detach": False,
        "pid_file": None,
        "console_socket": None,
        "no_pivot": False,
        "keep": False,
        "preserve_fds": "0",
    }
    ids = _parse(rest, RUN_VALUED, RUN_FLAGS, opts)
    if ids is None:
        raise InvalidArgument(
            f"runc-style 'run': an unknown flag or a flag without its value in {' '.join(rest)!r} "
            "(see 'pycontain run --help')"
        )
    if len(ids) != 1:
        raise InvalidArgument(
            "runc-style 'run' takes exactly one container id: run [--bundle DIR] [--detach] ID"
        )
    code = oci.run(
        ids[0],
        opts["bundle"],
        GLOBALS.root,
        opts["detach"],
        opts["pid_file"],
        opts["console_socket"],
        opts["no_pivot"],
        preserve_fds_count(opts["preserve_fds"]),
        opts["keep"],
    )
    sys.stdout.flush()
    return code


# The commands an engine calls for every container (podman: create, start, state, delete), parsed here
# so that none of them pays for importing typer and rich (~150 ms on a small machine).
FAST_COMMANDS = ("create", "start", "state", "delete")
_FAST_VALUED: dict[str, dict[str, str]] = {
    "create": {
        "--bundle": "bundle",
        "-b": "bundle",
        "--pid-file": "pid_file",
        "--console-socket": "console_socket",
        "--preserve-fds": "preserve_fds",
    }
}
_FAST_FLAGS: dict[str, dict[str, str | None]] = {
    "create": {"--no-pivot": "no_pivot", "--no-new-keyring": None},
    "delete": {"--force": "force", "-f": "force"},
}


def parse_fast(cmd: str, rest: list[str]) -> tuple[str, dict] | None:
    """(id, options) for the runc form of ``cmd``; None for anything else (--help, an unknown flag, no or
    several ids), which the full command line then handles and explains."""
    opts: dict = {
        "bundle": ".",
        "pid_file": None,
        "console_socket": None,
        "preserve_fds": "0",
        "no_pivot": False,
        "force": False,
    }
    ids = _parse(rest, _FAST_VALUED.get(cmd, {}), _FAST_FLAGS.get(cmd, {}), opts)
    return (ids[0], opts) if ids is not None and len(ids) == 1 else None


def oci_fast(cmd: str, cid: str, opts: dict) -> int:
    from .. import fastjson, oci

    if cmd == "create":
        oci.create(
            cid,
            opts["bundle"],
            GLOBALS.root,
            opts["pid_file"],
            opts["console_socket"],
            opts["no_pivot"],
            preserve_fds_count(opts["preserve_fds"]),
        )
    elif cmd == "start":
        oci.start(cid, GLOBALS.root)
    elif cmd == "state":
        sys.stdout.write(fastjson.dumps_indented(oci.state(cid, GLOBALS.root)) + "\n")
    else:
        oci.delete(cid, GLOBALS.root, opts["force"])
    sys.stdout.flush()
    return 0
