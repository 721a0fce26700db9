"""Relaying between the caller's terminal and a container's pty (the master side, held by pycontain).

The caller's terminal goes raw, so Ctrl-C is a byte that reaches the container's line discipline and
becomes SIGINT for the container's foreground process, not for pycontain. Window size is copied at
start and on every SIGWINCH.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import termios

from .process import copy_winsize
from .stdio import write_all


def relay(master: int, stdin_open: bool, stdin_fd: int = 0, stdout_fd: int = 1) -> None:
    """Copy stdin → master and master → stdout until the container side closes its terminal."""
    in_tty = os.isatty(stdin_fd)
    saved = None
    if in_tty:
        copy_winsize(stdin_fd, master)
        signal.signal(signal.SIGWINCH, lambda *_: copy_winsize(stdin_fd, master))
        if stdin_open:
            import tty

            saved = termios.tcgetattr(stdin_fd)
            tty.setraw(stdin_fd)
    try:
        fds = [master] + ([stdin_fd] if stdin_open else [])
        while True:
            try:
                ready, _, _ = select.select(fds, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError as e:
                    if e.errno == errno.EIO:  # every slave fd is closed: the container's side is gone
                        break
                    raise
                if not data:
                    break
                write_all(stdout_fd, data)
            if stdin_fd in ready:
                data = os.read(stdin_fd, 65536)
                if not data:
                    fds.remove(stdin_fd)
                    if not in_tty:
                        write_all(master, b"\x04")  # end of piped input: an EOF for the container's reader
                    continue
                write_all(master, data)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
        if in_tty:
            signal.signal(signal.SIGWINCH, signal.SIG_DFL)
        os.close(master)
