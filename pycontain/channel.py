"""The one channel between pycontain and a process it starts: named messages over a socket pair.

A SOCK_SEQPACKET pair keeps each message whole (one write, one read). The child's end is close-on-exec,
so its closing is a message too: every copy gone means the process has executed its command.

    parent → child   GO      it sits in its cgroup now: go on (create)
    child → parent   READY   set up, waiting for 'start' (OCI create)
    child → parent   PID     <host pid>: the process a joiner forked into the container (exec)
    child → parent   ERROR   <exit status>\\t<message>: it failed before its execve, and exits
    (end of channel)         the command was executed
"""

from __future__ import annotations

import os

from . import libc

GO = b"G"
READY = b"R"
PID = b"P"
ERROR = b"E"


def pair() -> tuple[int, int]:
    """(the parent's end, the child's end), both close-on-exec."""
    return libc.seqpacket_pair()


def send(fd: int, kind: bytes, payload: str = "") -> None:
    os.write(fd, kind + payload.encode(errors="replace"))


def recv(fd: int) -> tuple[bytes, str] | None:
    """The next message as (kind, payload), or None once every copy of the other end is closed."""
    while True:
        try:
            data = os.read(fd, 65536)
            break
        except ConnectionResetError:
            # The other end was closed with a message of ours unread (a child that failed early). The
            # kernel reports that once, before the messages still queued for us: read on.
            continue
    if not data:
        return None
    return data[:1], data[1:].decode(errors="replace")
