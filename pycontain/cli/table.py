"""Commands declared as data, and the two parsers that read the declarations.

A ``Command`` names its positionals (``Arg``), its options (``cli.options.Opt``, the type ``run``'s table
uses) and the body that does the work. ``parse()`` reads the command line for ``cli.main``'s fast paths,
which never import typer, click or rich (~250 ms on a small machine, against ~10 ms for the work);
``register()`` builds the typer commands (help, completion, usage errors) from the same declarations.
``parse()`` answers None for anything it does not take as is (``--help``, an unknown flag, a missing value,
the wrong number of arguments), and typer then handles and explains it: the two paths run the same body,
so they print the same output and end with the same status. The tables: ``cli.commands`` (ps, exec,
kill...) and ``cli.ocirun`` (runc's create, start, state, delete).
"""

from __future__ import annotations

from .base import guarded
from .options import FLAG, MULTI, Opt, store

# typing.TYPE_CHECKING without importing typing (4 ms here); type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

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
        if arg.startswith("--"):
            name, eq, inline = arg.partition("=")
            opt = by_flag.get(name)
            if opt is None or (opt.kind == FLAG and eq):
                return None
            if opt.kind == FLAG:
                values[opt.dest] = True
                continue
            if not eq:
                if i >= len(argv):
                    return None
                inline = argv[i]
                i += 1
            store(values, opt, inline)
            continue
        j = 1  # one or more short flags: -it, -a, -s TERM, -sTERM
        while j < len(arg):
            opt = by_flag.get("-" + arg[j])
            if opt is None:
                return None
            if opt.kind == FLAG:
                values[opt.dest] = True
                j += 1
                continue
            value = arg[j + 1 :]
            if not value:
                if i >= len(argv):
                    return None
                value = argv[i]
                i += 1
            store(values, opt, value)
            break
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
