"""What every command of the command line shares: the global flags, the guard that turns every error into
one line and an exit status, the ``command`` decorator that puts the two around a typer command, and the
declarations of the fast commands with their parser.

A ``Command`` names its positionals (``Arg``), its options (``Opt``, the type of ``run``'s table in
``cli.options`` too) and the body that does the work. ``parse()`` reads the command line for ``cli.main``'s
fast paths, which never import typer, click or rich (~250 ms on a small machine, against ~10 ms for the
work); ``register()`` builds the typer commands (help, completion, usage errors) from the same
declarations. ``parse()`` answers None for anything it does not take as is (``--help``, an unknown flag, a
missing value, the wrong number of arguments), and typer then handles and explains it: the two paths run
the same body, so they print the same output and end with the same status. The tables: ``cli.commands``
(ps, exec, kill...) and ``cli.ocirun`` (runc's create, start, state, delete).

A leaf, and one module (each module costs the fast paths an import): the command modules, the fast tables
and ``cli.main`` import it; it imports none of them, nor typer (only when a typer command runs).
"""

from __future__ import annotations

import posix
import sys

from .. import fastos
from ..errors import EXIT_RUNTIME, InvalidArgument, PycontainError, printable

# typing.TYPE_CHECKING without importing typing (4 ms on the fast paths); type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, TypeVar

    from ..container import Container

    Body = TypeVar("Body", bound=Callable[..., int | None])


FLAG, VALUE, MULTI = "flag", "value", "multi"


class Opt:
    """An option: its flags, where its value goes (``dest``), its kind (FLAG, VALUE, MULTI), its help."""

    __slots__ = ("flags", "dest", "kind", "metavar", "help", "default")

    def __init__(
        self,
        flags: tuple[str, ...],
        dest: str,
        kind: str,
        help: str,
        metavar: str = "",
        default: str | None = None,
    ) -> None:
        self.flags = flags
        self.dest = dest
        self.kind = kind
        self.metavar = metavar
        self.help = help
        self.default = default  # a VALUE option's value when it is not given

    def typer_param(self) -> tuple[object, object]:
        """The type and default typer gets for this option (run's options and the table-driven commands share them)."""
        if self.kind == FLAG:
            return bool, False
        if self.kind == MULTI:
            return list[str] | None, None
        return str | None, self.default


# The global flags (runc's set): parsed before any command, by cli.main (parse_globals); cli.app declares
# them to typer from this table too (--help, completion).
GLOBAL_OPTIONS: tuple[Opt, ...] = (
    Opt(
        ("--root",),
        "root",
        VALUE,
        "State root (default /var/lib/pycontain/containers; $PYCONTAIN_ROOT).",
        "DIR",
    ),
    Opt(("--log",), "log", VALUE, "Also write errors to this file.", "FILE"),
    Opt(("--log-format",), "log_format", VALUE, "text or json (for --log).", "FORMAT", "text"),
    Opt(("--debug",), "debug", FLAG, "Show tracebacks of internal errors."),
    Opt(("--systemd-cgroup",), "systemd_cgroup", FLAG, "Not available: cgroupfs only."),
    Opt(
        ("--rootless",),
        "rootless",
        VALUE,
        "auto (rootless when run by a user other than root) or false (refuse to run unprivileged).",
        "auto|false",
        "auto",
    ),
)


class Globals:
    """The global flags' values (``GLOBAL_OPTIONS``)."""

    __slots__ = tuple(o.dest for o in GLOBAL_OPTIONS)
    root: str | None
    log: str | None
    log_format: str
    debug: bool
    systemd_cgroup: bool
    rootless: str

    def __init__(self) -> None:
        for o in GLOBAL_OPTIONS:
            setattr(self, o.dest, False if o.kind == FLAG else o.default)


GLOBALS = Globals()

# Set by ``cli.entry`` (the console script, ``python -m pycontain``): this process is the command line's
# own, which a command may replace with another program (exec's pycontain-init); a caller of ``main()``
# in its own process (a test, a library user) keeps it.
OWN_PROCESS = {"yes": False}


def parse_globals(argv: list[str], g: Globals = GLOBALS) -> list[str]:
    """Take the global flags off the front of ``argv`` into ``g``; return the rest (the command and its args)."""
    by_flag = {f: o for o in GLOBAL_OPTIONS for f in o.flags}
    i = 0
    while i < len(argv) and argv[i].startswith("--"):
        name, eq, value = argv[i].partition("=")
        o = by_flag.get(name)
        if o is not None and o.kind == FLAG:
            setattr(g, o.dest, True if not eq else value.lower() in ("1", "true", "yes"))
            i += 1
        elif o is not None and (eq or i + 1 < len(argv)):
            if not eq:
                value = argv[i + 1]
                i += 1
            setattr(g, o.dest, value)
            i += 1
        else:
            break
    if g.root is None:
        g.root = fastos.getenv("PYCONTAIN_ROOT") or None
    return argv[i:]


def _log_error(message: str) -> None:
    """Engines (podman via conmon) read a runtime's errors from --log, as JSON lines with --log-format json."""
    if not GLOBALS.log:
        return
    try:
        import time

        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if GLOBALS.log_format == "json":
            from .. import fastjson

            line = fastjson.dumps({"level": "error", "msg": message, "time": stamp})
        else:
            line = f"{stamp} error: {message}"
        with open(GLOBALS.log, "a") as f:
            f.write(line + "\n")
    except OSError:
        pass


def check_log() -> str | None:
    """runc refuses a --log-format it does not know and a --log it cannot open, before doing anything: an
    engine that reads errors from the log must not wait on a file nothing will be written to."""
    if GLOBALS.log_format not in ("text", "json"):
        fmt, GLOBALS.log_format = GLOBALS.log_format, "text"
        return f"--log-format {fmt!r} is not a log format: use text or json"
    if GLOBALS.log:
        try:
            posix.close(
                posix.open(
                    GLOBALS.log, posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC, 0o644
                )
            )
        except OSError as e:
            path, GLOBALS.log = GLOBALS.log, None
            return f"--log {path}: cannot write the log there: {e.strerror}"
    return None


def fail(message: str, code: int) -> int:
    # --log first: containerd opens a sandbox runtime's stderr read-only, so writing there fails, and
    # the log file is the only place the engine reads the reason from.
    _log_error(message)
    shown = printable(message, keep="\n")  # (a message may quote an image's text, e.g. its /etc/passwd)
    try:
        sys.stderr.write(f"pycontain: {shown}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    return code


def guarded(fn: Callable[..., int | None], *args: Any, **kwargs: Any) -> int:
    """Run a command body, turning every error into one line and an exit status."""
    try:
        return fn(*args, **kwargs) or 0
    except PycontainError as e:
        return fail(str(e), e.exit_code)
    except KeyboardInterrupt as e:
        from ..interrupts import exit_status

        return exit_status(e)
    except BrokenPipeError as e:
        if _stdout_gone():
            return 0  # 'pycontain ps | head': the reader has all it wanted
        return fail(f"broken pipe: {e.strerror or e}", EXIT_RUNTIME)
    except PermissionError as e:
        from .. import rootless

        if rootless.unprivileged():
            return fail(
                f"permission denied: {e.filename or e} (as a user other than root pycontain manages only "
                "your own rootless containers: use sudo for the rest)",
                EXIT_RUNTIME,
            )
        return fail(f"permission denied: {e.filename or e}", EXIT_RUNTIME)
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        return fail(f"{e.strerror or e}{where}{_what_to_do(e.errno)}", EXIT_RUNTIME)
    except Exception as e:
        if fastos.getenv("PYCONTAIN_DEBUG") or GLOBALS.debug:
            import traceback

            traceback.print_exc()
        return fail(
            f"internal error: {type(e).__name__}: {e} (run with PYCONTAIN_DEBUG=1 for details)", EXIT_RUNTIME
        )


def _what_to_do(errno_: int | None) -> str:
    """For the resources a host runs out of: what to do about it."""
    import errno

    return {
        errno.EMFILE: " (pycontain ran out of file descriptors: raise its limit with 'ulimit -n')",
        errno.ENFILE: " (the host ran out of file descriptors: see /proc/sys/fs/file-max)",
        errno.ENOSPC: " (free some space there)",
        errno.EDQUOT: " (a disk quota is exhausted: free some space there)",
        errno.EAGAIN: " (a process limit is reached: the host's pid_max, a cgroup's pids.max or 'ulimit -u')",
        errno.ENOMEM: " (the host is out of memory)",
    }.get(errno_ or 0, "")


def _stdout_gone() -> bool:
    """Whether our stdout is a pipe whose reader has gone (as opposed to some other pipe breaking)."""
    import select

    try:
        poller = select.poll()
        poller.register(1, select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError):
        return False


def exit_with(code: int) -> None:
    """End a typer command with ``code`` (typer's way: an exception its runner turns into the status)."""
    if code:
        import typer

        raise typer.Exit(code)


def command(group: Any, name: str, **settings: Any) -> Callable[[Body], Body]:
    """Register the decorated function as the command ``name`` of the typer ``group`` (``app``, or a
    sub-application such as ``network``), run through ``guarded``.

    The function is the whole command: typer has parsed its parameters, it calls one library function and
    prints the result; what it returns is the exit status (None: 0), what it raises becomes one line.
    It is returned as it is, so a command can call another's function (``image ls`` is ``images``).
    """
    import functools

    def register(fn: Body) -> Body:
        @functools.wraps(fn)  # typer reads the parameters and the help from fn's signature and docstring
        def run(*args: Any, **kwargs: Any) -> None:
            exit_with(guarded(fn, *args, **kwargs))

        group.command(name, **settings)(run)
        return fn

    return register


def container(ref: str) -> Container:
    """The container a name or id refers to, in the state root of ``--root``."""
    from ..container import Container

    return Container.get(ref, GLOBALS.root)


def for_each(refs: list[str], action: Callable[[Container], object], quiet: bool = False) -> int:
    """Apply ``action`` to each container (printing its reference unless ``quiet``); the worst status: one
    container that fails does not stop the others (docker's rule for stop, rm, kill...)."""
    return for_each_ref(refs, lambda ref: action(container(ref)), quiet)


def for_each_ref(refs: list[str], action: Callable[[str], object], quiet: bool = False) -> int:
    """``for_each`` for any reference (an image, a volume, a network): the worst status of them all."""
    worst = 0
    for ref in refs:

        def one(ref: str = ref) -> int:
            action(ref)
            if not quiet:
                print(ref)
            return 0

        worst = max(worst, guarded(one))
    return worst


def render_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]], gap: int = 2) -> str:
    """Left-aligned columns ``gap`` spaces apart (docker's layout); the header bold on a terminal. Cells
    are shown ``printable``: their text may be a container's (a command line, an image's name)."""
    rows = [tuple(printable(c) for c in r) for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]

    def line(cells: tuple[str, ...]) -> str:
        return (" " * gap).join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    head = line(header)
    if sys.stdout.isatty():
        head = f"\x1b[1m{head}\x1b[0m"
    return "\n".join([head, *(line(r) for r in rows)])


# -- commands declared as data: the fast paths' parser and their typer registration --------------
ONE, OPTIONAL, SOME, ANY = "1", "?", "+", "*"  # how many values a positional takes


class Arg:
    """A positional argument."""

    __slots__ = ("dest", "metavar", "help", "nargs")

    def __init__(self, dest: str, metavar: str, help: str, nargs: str = ONE) -> None:
        self.dest = dest
        self.metavar = metavar
        self.help = help
        self.nargs = nargs


class Command:
    __slots__ = ("name", "args", "options", "body", "help", "interspersed")

    def __init__(
        self,
        name: str,
        body: Callable[[dict], int],
        help: str,
        args: tuple[Arg, ...] = (),
        options: tuple[Opt, ...] = (),
        interspersed: bool = True,
    ) -> None:
        self.name = name
        self.body = body
        self.help = help
        self.args = args
        self.options = options
        # False: options end at the first positional (exec: what follows the container is the command's).
        self.interspersed = interspersed


# -- the fast parser ------------------------------------------------------------------------------
def parse(cmd: Command, argv: list[str]) -> dict | None:
    """``argv`` (after the command's name) as the body's values, or None when typer should handle it."""
    by_flag = {f: o for o in cmd.options for f in o.flags}
    values: dict = {
        o.dest: (False if o.kind == FLAG else [] if o.kind == MULTI else o.default) for o in cmd.options
    }
    positionals: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            positionals += argv[i:]
            break
        if not arg.startswith("-") or arg == "-":
            positionals.append(arg)
            if not cmd.interspersed:
                positionals += argv[i:]
                break
            continue
        pending: list[tuple[Opt, str | None]] = []  # each option this word names, with its value if given
        if arg.startswith("--"):
            name, eq, inline = arg.partition("=")
            opt = by_flag.get(name)
            if opt is None or (opt.kind == FLAG and eq):
                return None
            pending.append((opt, inline if eq else None))
        else:  # one or more short flags: -it, -a, -s TERM, -sTERM
            for j in range(1, len(arg)):
                opt = by_flag.get("-" + arg[j])
                if opt is None:
                    return None
                if opt.kind != FLAG:
                    pending.append((opt, arg[j + 1 :] or None))
                    break
                pending.append((opt, None))
        for opt, value in pending:
            if opt.kind == FLAG:
                values[opt.dest] = True
                continue
            if value is None:
                if i >= len(argv):
                    return None
                value = argv[i]
                i += 1
            store(values, opt, value)
    for a in cmd.args:
        if a.nargs == ONE or (a.nargs == OPTIONAL and positionals and _more_than_needed(cmd, a, positionals)):
            if not positionals:
                return None
            values[a.dest] = positionals.pop(0)
        elif a.nargs == OPTIONAL:
            values[a.dest] = None
        else:
            if a.nargs == SOME and not positionals:
                return None
            values[a.dest], positionals = positionals, []
    return values if not positionals else None


def _more_than_needed(cmd: Command, arg: Arg, positionals: list[str]) -> bool:
    """Whether an optional positional gets a value: when the ones after it still get theirs."""
    after = cmd.args[cmd.args.index(arg) + 1 :]
    return len(positionals) > sum(1 for a in after if a.nargs in (ONE, SOME))


def run_fast(cmd: Command, argv: list[str]) -> int | None:
    """Run ``cmd`` without typer when ``argv`` parses; None otherwise."""
    if "--help" in (argv[: argv.index("--")] if "--" in argv else argv):
        return None
    values = parse(cmd, argv)
    return None if values is None else guarded(cmd.body, values)


# -- the typer commands, from the same table ------------------------------------------------------
def register(app: Any, table: dict[str, Command]) -> None:
    """Add every command of ``table`` to the typer ``app`` (help, completion and usage errors)."""
    for cmd in table.values():
        _register(app, cmd)


def _register(app: Any, cmd: Command) -> None:
    import inspect
    from typing import Annotated

    import typer

    params = []
    for a in cmd.args:
        many = a.nargs in (SOME, ANY)
        ann: Any = list[str] if many else str
        default: Any = inspect.Parameter.empty
        if a.nargs in (OPTIONAL, ANY):
            ann, default = ann | None, None
        info = typer.Argument(metavar=a.metavar, help=a.help, show_default=False)
        params.append(
            inspect.Parameter(
                a.dest,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=Annotated[ann, info],
                default=default,
            )
        )
    for o in cmd.options:
        ann, default = o.typer_param()
        info = typer.Option(
            *o.flags, help=o.help, metavar=o.metavar or None, show_default=o.default is not None
        )
        params.append(
            inspect.Parameter(
                o.dest, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[ann, info], default=default
            )
        )
    lists = {a.dest for a in cmd.args if a.nargs in (SOME, ANY)} | {
        o.dest for o in cmd.options if o.kind == MULTI
    }

    def command(**values: Any) -> None:
        values = {k: ([] if v is None and k in lists else v) for k, v in values.items()}
        code = guarded(cmd.body, values)
        if code:
            raise typer.Exit(code)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = cmd.help
    command.__name__ = cmd.name
    settings = None if cmd.interspersed else {"allow_interspersed_args": False}
    app.command(cmd.name, context_settings=settings)(command)


def store(values: dict, opt: Opt, value: str) -> None:
    """An option's value into the parsed ``values``: a MULTI option's list grows, a VALUE's is replaced."""
    if opt.kind == MULTI:
        values[opt.dest].append(value)
    else:
        values[opt.dest] = value


def preserve_fds_count(value: str) -> int:
    """--preserve-fds N (exec, and runc's create and run): a count of descriptors, 0 or more."""
    if not value.isdigit():
        raise InvalidArgument(
            f"--preserve-fds {value!r}: give a number of descriptors, e.g. --preserve-fds 1"
        )
    return int(value)
