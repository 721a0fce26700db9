"""The fast ``run`` parser and the typer command are built from one table; check they agree."""

from __future__ import annotations

import pytest

from pycontain.cli.base import Globals, parse_globals
from pycontain.cli.ocirun import runc_run_form
from pycontain.cli.options import RUN_OPTIONS, parse_run_args
from pycontain.errors import InvalidArgument


def test_docker_style_parsing():
    values, rootfs, args = parse_run_args(
        [
            "-it",
            "--rm",
            "-e",
            "A=1",
            "-eB=2",
            "--name=web",
            "-m512m",
            "-v",
            "/a:/b:ro",
            "default",
            "--",
            "sh",
            "-c",
            "echo hi",
        ]
    )
    assert values["interactive"] and values["tty"] and values["rm"]
    assert values["env"] == ["A=1", "B=2"] and values["name"] == "web" and values["memory"] == "512m"
    assert values["volume"] == ["/a:/b:ro"]
    assert rootfs == "default" and args == ["sh", "-c", "echo hi"]
    # Options stop at the root filesystem: the command's own flags are left alone.
    _, rootfs, args = parse_run_args(["default", "ls", "-la", "--rm"])
    assert rootfs == "default" and args == ["ls", "-la", "--rm"]


@pytest.mark.parametrize(
    "argv", [["--nope", "default"], ["-Z", "default"], ["--name"], ["--rm=yes", "d"], []]
)
def test_bad_flags(argv):
    with pytest.raises(InvalidArgument):
        parse_run_args(argv)


def test_global_flags_and_run_forms(tmp_path, monkeypatch):
    g = Globals()
    rest = parse_globals(
        ["--root", "/x", "--log=/l", "--log-format", "json", "--debug", "run", "d", "true"], g
    )
    assert rest == ["run", "d", "true"]
    assert (g.root, g.log, g.log_format, g.debug) == ("/x", "/l", "json", True)
    # docker's form has a root filesystem and a command; runc's has --bundle, or one id in a bundle directory.
    assert not runc_run_form(["default", "true"])
    assert runc_run_form(["--bundle", "b", "id"]) and runc_run_form(["-b", "b", "--detach", "id"])
    monkeypatch.chdir(tmp_path)
    assert not runc_run_form(["myid"])
    (tmp_path / "config.json").write_text("{}")
    assert runc_run_form(["myid"]) and not runc_run_form(["default", "--", "sh"])


def test_typer_command_has_every_option():
    import typer

    from pycontain.cli.commandline import app

    group = typer.main.get_command(app)
    run = group.commands["run"]
    declared = {tuple(sorted(p.opts)) for p in run.params if p.opts and p.opts[0].startswith("-")}
    table = {tuple(sorted(o.flags)) for o in RUN_OPTIONS}
    assert table <= declared


def test_global_flags_come_from_one_table():
    # cli.main parses the global flags with base.GLOBAL_OPTIONS; typer's callback is declared from it too.
    import typer

    from pycontain.cli.base import GLOBAL_OPTIONS
    from pycontain.cli.commandline import app

    group = typer.main.get_command(app)
    declared = {
        tuple(sorted(p.opts)) for p in group.params if p.name not in ("install_completion", "show_completion")
    }
    assert declared == {tuple(sorted(o.flags)) for o in GLOBAL_OPTIONS}
