"""The client side of ``pycontain attach``: our terminal (or pipes) to a container's monitor and back.

The monitor (``monitor_loop``) sends the container's output to every attached client and writes what a
client sends to the container's stdin. The detach keys (docker's ``ctrl-p,ctrl-q`` by default) are
caught here: the connection closes and the container runs on.
"""

from __future__ import annotations

import os
import select
import socket

from .errors import InvalidArgument, InvalidState
from .stdio import write_all


def parse_detach_keys(spec: str) -> bytes:
    """``ctrl-p,ctrl-q`` → b"\\x10\\x11"; a plain character stands for itself."""
    out = bytearray()
    for key in spec.split(","):
        key = key.strip()
        if len(key) == 1:
            out.append(ord(key))
        elif (
            key.lower().startswith("ctrl-") and len(key) == 6 and (key[5].isalpha() or key[5] in "@[\\\\]^_")
        ):
            out.append(ord(key[5].upper()) & 0x1F)
        else:
            raise InvalidArgument(f"invalid --detach-keys {spec!r}: use keys like ctrl-p,ctrl-q or a,b")
    if not out:
        raise InvalidArgument("invalid --detach-keys '': give at least one key")
    return bytes(out)


def attach(container, detach_keys: str = "ctrl-p,ctrl-q", send_stdin: bool = True) -> int:
    """Relay until the detach keys (returns 0) or the container's end (returns its exit status)."""
    from .monitor_spawn import attach_socket

    keys = parse_detach_keys(detach_keys)
    if container.status() != "running" or not container.state.monitored():
        raise InvalidState(
            f"cannot attach to container {container.name}: it is not running under a monitor (-d)"
        )
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(attach_socket(container.id))
    except OSError as e:
        sock.close()
        raise InvalidState(f"cannot attach to container {container.name}: {e.strerror}") from None
    tty = container.state.config.tty and os.isatty(0)
    saved = None
    if tty and send_stdin:
        import termios
        import tty as ttymod

        saved = termios.tcgetattr(0)
        ttymod.setraw(0)
    detached = False
    try:
        detached = _relay(sock, keys, send_stdin)
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        sock.close()
    if detached:
        return 0
    return container.wait()


def _relay(sock: socket.socket, keys: bytes, send_stdin: bool) -> bool:
    fds = [sock.fileno()] + ([0] if send_stdin else [])
    matched = 0  # how many of the detach keys the input has just given, in order
    while True:
        ready, _, _ = select.select(fds, [], [])
        if sock.fileno() in ready:
            data = sock.recv(65536)
            if not data:
                return False  # the container ended: its monitor closed us
            write_all(1, data)
        if 0 in ready:
            data = os.read(0, 65536)
            if not data:
                fds.remove(0)  # our stdin ended; the output still comes
                continue
            out = bytearray()
            for b in data:
                if b == keys[matched]:
                    matched += 1
                    if matched == len(keys):
                        if out:
                            sock.sendall(bytes(out))  # what came before the keys still goes
                        return True
                    continue
                out += keys[:matched]
                matched = 1 if b == keys[0] else 0
                if not matched:
                    out.append(b)
            if out:
                sock.sendall(bytes(out))
