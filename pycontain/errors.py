"""pycontain's errors: one class per kind of failure, each with the exit status the CLI reports.

Messages are one line, lower-case, and name the offending value and what to do about it, e.g.
``no such container: "web" (see 'pycontain ps -a')``. The CLI prints ``pycontain: <message>`` and
exits with ``exit_code``; nothing else reaches a user, never a traceback.
"""

from __future__ import annotations

# docker's conventions: 125 for the runtime's own failures, 126 cannot execute, 127 not found.
EXIT_RUNTIME = 125
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127


class PycontainError(Exception):
    """Base class: a failure pycontain explains to its user."""

    exit_code = EXIT_RUNTIME


class InvalidArgument(PycontainError):
    """A flag, value or config document is malformed."""


class ConfigError(InvalidArgument):
    """A config.json (or an equivalent) is malformed."""


class NotFound(PycontainError):
    """A container, image, network or file named by the user does not exist."""


class ContainerNotFound(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"no such container: {ref!r} (see 'pycontain ps -a')")
        self.ref = ref


class AlreadyExists(PycontainError):
    """A name or id is already taken."""


class InvalidState(PycontainError):
    """The container is not in a state that allows the operation (e.g. exec into a stopped one)."""


class Unsupported(PycontainError):
    """The host lacks a kernel feature or a tool pycontain needs."""


class PermissionDenied(PycontainError):
    """pycontain needs privileges it does not have (normally: run it as root)."""


class ExecFailed(PycontainError):
    """The container's process could not be started: the command is missing or not executable."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def printable(text: str, keep: str = "") -> str:
    """``text`` with each character a terminal would act on (ESC, the other controls, a lone surrogate)
    but those in ``keep`` written as its escape (``\\x1b``): a container's processes name themselves,
    and an image or a bundle chooses its command, its files and its /etc/passwd, so what we show of them
    must not drive the reader's terminal (retitle it, clear it, answer its queries). ps(1) shows them as '?'."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in text)


def warn(message: str) -> None:
    """A warning on stderr, written at once: a stderr an engine opened read-only (containerd does for pod
    sandboxes) loses it, and no bytes are left in Python's buffer to fail a later flush (before a fork).
    Shown ``printable``: it may quote a bundle's text."""
    import os

    shown = printable(message, keep="\n")
    try:
        os.write(2, f"pycontain: warning: {shown}\n".encode())
    except OSError:
        pass
