"""Signals that end a long command (pull, push, build, vm boot) unwind it like Ctrl-C, so its clean-up runs;
and signals as users name them (``kill``, ``--stop-signal``).

Python's default for SIGTERM and SIGHUP is to die where it stands, leaving temporary files and child
processes behind; inside ``unwinding()`` they raise ``Interrupted`` instead, a ``KeyboardInterrupt``
carrying the signal, and the CLI exits 128 + its number (130 for Ctrl-C, 143 for SIGTERM) as docker does.
"""

from __future__ import annotations

# The C module: the CLI and a build step's runs (api.run_config) import this, and signal, contextlib and
# collections.abc would bring enum and functools (~5 ms).
import _signal as signal

from .errors import InvalidArgument

_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
# What stops a long command: Ctrl-C and the two above
STOPPING_SIGNALS = (signal.SIGINT, *_SIGNALS)


class Interrupted(KeyboardInterrupt):
    def __init__(self, signum: int) -> None:
        import signal as signals  # the names live in the enum: loaded only once a signal arrived

        super().__init__(signals.Signals(signum).name)
        self.signum = signum


def exit_status(e: KeyboardInterrupt) -> int:
    """128 + the signal that stopped the command (SIGINT for a plain ``KeyboardInterrupt``)."""
    return 128 + getattr(e, "signum", signal.SIGINT)


def _raise(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


class unwinding:  # lower case: used as ``with unwinding():``, as the function it replaced was
    """SIGTERM and SIGHUP raise ``Interrupted`` while inside (on the main thread; elsewhere a no-op)."""

    def __enter__(self) -> None:
        try:
            self.old = [(s, signal.signal(s, _raise)) for s in _SIGNALS]
        except ValueError:  # not the main thread: signals are its owner's
            self.old = []

    def __exit__(self, *exc: object) -> None:
        for s, handler in self.old:
            signal.signal(s, handler)


def parse_signal(value: str | int) -> int:
    """``9``, ``KILL``, ``SIGKILL`` or ``sigkill`` → 9, as docker and runc accept them."""
    if isinstance(value, int):
        num = value
    elif value.isdigit():
        num = int(value)
    else:
        import signal as signals  # names need the enum; only 'kill' and 'stop' get here

        name = value.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        sig = signals.Signals.__members__.get(name)
        if sig is None:
            raise InvalidArgument(f"invalid signal {value!r}: use a name like TERM or KILL, or a number")
        num = int(sig)
    if not 0 < num < signal.NSIG:
        raise InvalidArgument(f"invalid signal {value!r}: signal numbers go from 1 to {signal.NSIG - 1}")
    return num
