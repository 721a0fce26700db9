"""The commands of ``cli.commands`` (exec, ps, kill, inspect, pause...) never import typer, click or rich,
and their fast path prints what the typer path prints and ends with the same status: both are built from
one table and run one body."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from pycontain.cli import FAST_COMMANDS, execute, ocirun, options
from pycontain.cli import commands as docker_commands
from pycontain.cli.base import parse
from tests.conftest import ROOT_REQUIRED
from tests.importlist import imported

COMMANDS = {**docker_commands.COMMANDS, **ocirun.COMMANDS, **options.COMMANDS, **execute.COMMANDS}

HEAVY = ("typer", "click", "rich")
# cli.main, then the heavy top-level packages it loaded, on stderr's last line.
FAST = (
    "import sys; from pycontain.cli import main; code = main(sys.argv[1:]); "
    f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})); "
    "sys.stdout.flush(); sys.stderr.write(f'\\nHEAVY {heavy}\\n'); sys.exit(code)"
)
# The typer application itself, for the same arguments.
TYPER = (
    "import sys; from pycontain.cli import _run_app; from pycontain.cli.base import parse_globals; "
    "sys.exit(_run_app(parse_globals(sys.argv[1:])))"
)


def test_one_table_for_both_parsers():
    import typer

    from pycontain.cli.commandline import app  # with every command module registered

    assert set(COMMANDS) == set(FAST_COMMANDS)
    group = typer.main.get_command(app)
    for name, cmd in COMMANDS.items():
        declared = {tuple(sorted(p.opts)) for p in group.commands[name].params if p.opts[0].startswith("-")}
        assert declared == {tuple(sorted(o.flags)) for o in cmd.options}, name
        positionals = [p.name for p in group.commands[name].params if not p.opts[0].startswith("-")]
        assert positionals == [a.dest for a in cmd.args], name


def test_fast_parser():
    v = parse(COMMANDS["exec"], ["-it", "-e", "A=1", "-eB=2", "--cwd=/tmp", "c1", "sh", "-c", "echo -e x"])
    assert v is not None and v["interactive"] and v["tty"] and v["env"] == ["A=1", "B=2"]
    assert (v["workdir"], v["ref"], v["command"]) == ("/tmp", "c1", ["sh", "-c", "echo -e x"])
    v = parse(COMMANDS["kill"], ["c1", "-s", "TERM", "--all"])  # options after arguments, as click takes them
    assert v is not None and (v["refs"], v["signal"], v["all"]) == (["c1"], "TERM", True)
    v = parse(COMMANDS["ps"], ["-aq"])
    assert v is not None and v["all"] and v["quiet"] and v["container"] is None and v["format"] == []
    v = parse(COMMANDS["update"], ["-m", "64m", "--pids-limit=9", "c1"])
    assert v is not None and (v["memory"], v["pids_limit"], v["ref"], v["cpus"]) == ("64m", "9", "c1", None)
    # Whatever it does not take as is goes to typer, which explains it.
    for name, argv in [
        ("ps", ["-z"]),
        ("ps", ["a", "b"]),
        ("kill", []),
        ("kill", ["-s"]),
        ("ps", ["--all=1"]),
        ("exec", []),
        ("resume", ["a", "b"]),
        ("features", ["x"]),
    ]:
        assert parse(COMMANDS[name], argv) is None, (name, argv)


def _run(prelude: str, root: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", prelude, "--root", root, *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def _same_table(text: str) -> str:
    """ps' table with its ages ("3 seconds ago", "Up 4 seconds") made equal: the two runs differ in time."""
    return re.sub(r"\s+", " ", re.sub(r"\d+ (seconds|minutes)", "N", text))


@pytest.fixture
def sleeper(pyc):
    p = pyc.leaving("run", "-d", "--network", "none", "--name", "fast1", "default", "--", "sleep", "600")
    assert p.returncode == 0, p.stderr
    return "fast1"


@ROOT_REQUIRED
def test_fast_and_typer_paths_agree(pyc, sleeper):
    # Groups that change state (pause, then unpause) run whole on one path, then whole on the other.
    groups: list[list[tuple[tuple[str, ...], str]]] = [
        [(("ps",), "table")],
        [(("ps", "-a", "--json"), "json")],
        [(("ps", "-q"), "text")],
        [(("ps", sleeper), "table")],
        [(("ps", "--format", "json", sleeper), "json")],
        [(("inspect", sleeper), "json")],
        [(("exec", sleeper, "echo", "hi"), "text")],
        [(("exec", "-e", "X=1", "-w", "/tmp", sleeper, "sh", "-c", "echo $X $PWD; exit 3"), "text")],
        [(("exec", "nosuch", "true"), "text")],
        [(("kill", "-s", "CONT", sleeper), "text")],
        [(("kill", sleeper, "SIGFOO"), "text")],
        [(("kill", "nosuch"), "text")],
        [(("pause", sleeper), "text"), (("ps",), "table"), (("unpause", sleeper), "text")],
        [(("pause", sleeper), "text"), (("resume", sleeper), "text"), (("resume", sleeper), "text")],
        [(("events", "--stats", sleeper), "keys")],
        [(("update", "--pids-limit", "50", sleeper), "text")],
        [(("update", sleeper), "text")],
        [(("features",), "json")],
        [(("inspect", "nosuch"), "text")],
    ]
    for group in groups:
        fasts = [_run(FAST, pyc.root, *args) for args, _ in group]
        slows = [_run(TYPER, pyc.root, *args) for args, _ in group]
        for (args, kind), fast, slow in zip(group, fasts, slows, strict=True):
            _agree(args, kind, fast, slow)
    # Both paths really did the work: the pids limit is set, and the container still runs.
    assert json.loads(pyc("events", "--stats", sleeper, check=True).stdout)["data"]["pids_limit"] == 50


def _agree(
    args: tuple[str, ...], kind: str, fast: subprocess.CompletedProcess, slow: subprocess.CompletedProcess
) -> None:
    *err, heavy = fast.stderr.rstrip("\n").split("\n")
    assert heavy == "HEAVY []", (args, fast.stderr)
    assert fast.returncode == slow.returncode, (args, fast.stderr, slow.stderr)
    assert "\n".join(err).strip() == slow.stderr.strip(), args
    if kind == "json":
        assert json.loads(fast.stdout) == json.loads(slow.stdout), args
    elif kind == "keys":
        assert json.loads(fast.stdout).keys() == json.loads(slow.stdout).keys(), args
    elif kind == "table":
        assert _same_table(fast.stdout) == _same_table(slow.stdout), args
        assert "sleep 600" in fast.stdout
    else:
        assert fast.stdout == slow.stdout, args


@ROOT_REQUIRED
@pytest.mark.parametrize("args", [("ps",), ("exec", "fast1", "true"), ("kill", "-s", "CONT", "fast1")])
def test_entry_point_imports_no_typer(pyc, sleeper, args):
    """Through ``python -m pycontain`` itself, as users run it."""
    modules = {m.split(".")[0] for m in imported(pyc.root, *args)}
    assert "pycontain" in modules and not modules & set(HEAVY)


@ROOT_REQUIRED
def test_exec_imports_neither_ctypes_nor_the_process_package(pyc, sleeper):
    """exec's joining and privilege drop are pycontain-init's (pycontain.execjoin): the command line imports
    its parser, the state reader and little else. (The first exec of a container resolves its security
    settings, with the security package, and keeps them in its state directory: the next ones read them.)"""
    assert pyc("exec", sleeper, "true").returncode == 0
    modules = imported(pyc.root, "exec", sleeper, "true")
    assert "pycontain.execjoin" in modules
    assert not modules & {
        "ctypes",
        "_prctl",
        "pycontain.process",
        "pycontain.security.apply",
        "pycontain.api",
    }


@ROOT_REQUIRED
def test_help_and_usage_errors_go_to_typer(pyc):
    p = pyc("ps", "--help")
    assert p.returncode == 0 and "--all" in p.stdout
    p = pyc("exec")
    assert p.returncode == 125 and "Missing argument" in p.stderr and "Traceback" not in p.stderr


def test_fastjson_prints_what_json_prints():
    """state, inspect and ps --json print through fastjson (no json package): the same text as json's."""
    from pycontain import fastjson

    docs = [{}, [], {"a": 1, "b": [1.5, {"c": None, "d": "é\n"}], "e": {}, "f": [], "g": True}, [[{}]], "s"]
    for doc in docs:
        assert fastjson.dumps_indented(doc) == json.dumps(doc, indent=2)
    # Malformed JSON is a ValueError even when nothing imported the json package (its scanner's
    # error class lives there): a fresh interpreter, as the CLI runs.
    code = "from pycontain import fastjson\ntry:\n    fastjson.loads('{bad')\nexcept ValueError:\n    print('ok')"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout == "ok\n"


@ROOT_REQUIRED
@pytest.mark.parametrize(
    ("args", "unwanted"),
    [
        # without -e or -u: no option to check, and no OCI process.json's attributes
        (("exec", "fast1", "true"), {"pycontain.config_check", "pycontain.config_fields"}),
        # the saved form's few fields (ContainerState.shown) and its status: not the lifecycle either
        (("ps",), {"pycontain.config", "pycontain.container"}),
        (
            ("state", "fast1"),
            {"pycontain.config", "pycontain.container", "pycontain.oci", "pycontain.listing"},
        ),
    ],
)
def test_the_frequent_commands_load_no_config_module_they_do_not_need(pyc, sleeper, args, unwanted):
    assert not unwanted & imported(pyc.root, *args)


@ROOT_REQUIRED
@pytest.mark.parametrize("args", [("state", "fast1"), ("ps",), ("exec", "fast1", "true")])
def test_the_frequent_commands_load_no_os_module(pyc, sleeper, args):
    """``import os`` is ~2.5 ms, a third of what ``state`` does above the interpreter's start: the console
    script's interpreter (-S) has not loaded it, and these commands take what they need from ``posix``
    (``pycontain.fastos``). (exec's first run resolves the security settings, in Python: the next ones.)"""
    assert pyc("exec", sleeper, "true").returncode == 0
    assert "os" not in imported(pyc.root, *args, launcher=True)


@ROOT_REQUIRED
def test_the_collector_is_back_once_a_foreground_container_runs(pyc):
    """A foreground run's start-up goes without the cyclic garbage collector (cli.options.run); once its
    container runs it is on again, the start-up's objects frozen out of its way: the run may last. A detached
    run never turns it off (its monitor, forked from the CLI, lives on)."""
    code = (
        "import gc, sys; from pycontain.cli import main; code = main(sys.argv[1:]); "
        "print(code, gc.isenabled(), gc.get_freeze_count() > 0)"
    )
    p = _run(code, pyc.root, "run", "--rm", "--network", "none", "default", "--", "sh", "-c", "exit 3")
    assert p.stdout.split() == ["3", "True", "True"], p.stderr
    p = _run(code, pyc.root, "run", "-d", "--network", "none", "default", "--", "true")
    assert p.stdout.split()[-3:] == ["0", "True", "False"], p.stderr
