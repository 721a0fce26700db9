"""The fast ``run`` parser and the typer command are built from one table; check they agree."""

from __future__ import annotations

import pytest

from pycontain.cli import _split_global
from pycontain.cli.options import RUN_OPTIONS, parse_run_args
from pycontain.errors import InvalidArgument


def test_docker_style_parsing():
    values, rootfs, args = parse_run_args(["-it", "--rm", "-e", "A=1", "-eB=2", "--name=web", "-m512m",
                                           "-v", "/a:/b:ro", "default", "--", "sh", "-c", "echo hi"])
    assert values["interactive"] and values["tty"] and values["rm"]
    assert values["env"] == ["A=1", "B=2"] and values["name"] == "web" and values["memory"] == "512m"
    assert values["volume"] == ["/a:/b:ro"]
    assert rootfs == "default" and args == ["sh", "-c", "echo hi"]
    # Options stop at the root filesystem: the command's own flags are left alone.
    _, rootfs, args = parse_run_args(["default", "ls", "-la", "--rm"])
    assert rootfs == "default" and args == ["ls", "-la", "--rm"]


@pytest.mark.parametrize("argv", [["--nope", "default"], ["-Z", "default"], ["--name"], ["--rm=yes", "d"], []])
def test_bad_flags(argv):
    with pytest.raises(InvalidArgument):
        parse_run_args(argv)


def test_fast_path_selection():
    assert _split_global(["run", "default", "true"]) == (None, ["default", "true"])
    assert _split_global(["--root", "/x", "run", "d", "true"]) == ("/x", ["d", "true"])
    assert _split_global(["run", "--help"]) is None
    assert _split_global(["run", "--bundle", "b", "id"]) is None
    assert _split_global(["ps"]) is None


def test_typer_command_has_every_option():
    import typer

    from pycontain.cli.app import app

    group = typer.main.get_command(app)
    run = group.commands["run"]
    declared = {tuple(sorted(p.opts)) for p in run.params if p.opts and p.opts[0].startswith("-")}
    table = {tuple(sorted(o.flags)) for o in RUN_OPTIONS}
    assert table <= declared
