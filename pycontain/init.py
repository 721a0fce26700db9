"""``--init``: a minimal PID 1 that forwards signals to the command and reaps every zombie.

Without it the command itself is PID 1, which the kernel shields from signals it has no handler
for (so ``docker stop``-style SIGTERM is ignored) and which inherits every orphan to reap. This init
is the container's first process itself (already forked from pycontain, nothing new is executed
from the host), and it exits with the command's status, 128+N when a signal killed it.
"""

from __future__ import annotations

import _signal as signal  # the C module: the signal package loads enum (2-3 ms on the start path)
import os

from . import libc


def run_as_pid1(
    args: list[str], env: dict[str, str], cwd: str, user: str | None, errw: int, sec=None
) -> None:
    from .process import _child, finish_and_exec

    libc.set_dumpable(False)  # it keeps the host's interpreter mapped: no /proc/1/exe for the container
    child = os.fork()
    if child == 0:
        for sig in range(1, signal.NSIG):
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
        _child(errw, lambda: finish_and_exec(args, env, cwd, user, errw, sec=sec))
    os.close(errw)

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    for sig in (
        signal.SIGTERM,
        signal.SIGINT,
        signal.SIGHUP,
        signal.SIGQUIT,
        signal.SIGUSR1,
        signal.SIGUSR2,
        signal.SIGWINCH,
        signal.SIGCONT,
    ):
        signal.signal(sig, forward)
    os.closerange(3, 65536)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(0)
        if pid == child:
            if os.WIFSIGNALED(status):
                os._exit(128 + os.WTERMSIG(status))
            os._exit(os.WEXITSTATUS(status))
