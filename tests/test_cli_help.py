"""The command line explains itself: every command has a one-line summary in a section of 'pycontain --help',
examples where a newcomer needs them, and shell completion works."""

from __future__ import annotations

import os
import subprocess
import sys

import typer

from pycontain.cli.app import SECTIONS
from pycontain.cli.commandline import app


def _commands(group, path=()):
    for name, command in group.commands.items():
        yield (*path, name), command
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))


def test_every_command_has_a_one_line_summary_in_a_section():
    group = typer.main.get_command(app)
    placed = {name for _, names in SECTIONS for name in names}
    assert set(group.commands) == placed  # a new command belongs in a section, a removed one leaves it
    for path, command in _commands(group):
        summary = (command.help or "").strip().split("\n\n")[0]
        assert summary and "\n" not in summary and len(summary) <= 110, (path, summary)


def test_the_everyday_commands_show_examples():
    group = typer.main.get_command(app)
    for name in (
        "run",
        "ps",
        "exec",
        "logs",
        "stop",
        "kill",
        "cp",
        "port",
        "update",
        "create",
        "import",
        "build",
    ):
        assert "Example" in (group.commands[name].help or ""), name


def _pycontain(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pycontain", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
    )


def test_shell_completion(tmp_path):
    script = _pycontain("--show-completion", "bash")
    assert (
        script.returncode == 0 and "complete -o default -F _pycontain_completion pycontain" in script.stdout
    )
    # What bash asks for when the user types 'pycontain run --me<TAB>': the fast path must not take it.
    words = _pycontain(COMP_WORDS="pycontain run --me", COMP_CWORD="2", _PYCONTAIN_COMPLETE="complete_bash")
    assert words.stdout.split() == ["--memory", "--memory-swap", "--memory-reservation"], words.stderr
    installed = _pycontain("--install-completion", "bash", HOME=str(tmp_path))
    assert installed.returncode == 0, installed.stderr
    assert "_pycontain_completion" in (tmp_path / ".bash_completions" / "pycontain.sh").read_text()
    assert "pycontain.sh" in (tmp_path / ".bashrc").read_text()
