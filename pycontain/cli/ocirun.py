"""runc's ``run [--bundle B] [--detach] ID``, parsed without typer (like docker-style run's fast path)."""

from __future__ import annotations

import sys

from . import GLOBALS


def oci_run(rest: list[str]) -> int:
    """``run [--bundle B] [--detach] [--pid-file F] [--console-socket S] [--no-pivot] ID`` (runc's run)."""
    from .. import oci
    from ..errors import InvalidArgument

    opts = {"bundle": ".", "detach": False, "pid_file": None, "console_socket": None, "no_pivot": False}
    valued = {"--bundle": "bundle", "-b": "bundle", "--pid-file": "pid_file", "--console-socket": "console_socket"}
    flags = {"--detach": "detach", "-d": "detach", "--no-pivot": "no_pivot", "--no-new-keyring": None,
             "--keep": None, "--no-subreaper": None}
    ids = []
    i = 0
    while i < len(rest):
        name, eq, value = rest[i].partition("=")
        if name in valued:
            if not eq:
                i += 1
                if i >= len(rest):
                    raise InvalidArgument(f"flag {name} needs a value")
                value = rest[i]
            opts[valued[name]] = value
        elif name in flags:
            if flags[name]:
                opts[flags[name]] = True
        elif rest[i].startswith("-"):
            raise InvalidArgument(f"unknown flag {rest[i]!r} for runc-style 'run' (see 'pycontain run --help')")
        else:
            ids.append(rest[i])
        i += 1
    if len(ids) != 1:
        raise InvalidArgument("runc-style 'run' takes exactly one container id: run [--bundle DIR] [--detach] ID")
    code = oci.run(ids[0], opts["bundle"], GLOBALS.root, opts["detach"], opts["pid_file"], opts["console_socket"],
                   opts["no_pivot"])
    sys.stdout.flush()
    return code
