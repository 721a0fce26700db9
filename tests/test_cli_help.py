"""The command line explains itself: every command has a one-line summary in a section of 'pycontain --help',
examples where a newcomer needs them, and shell completion works."""

from __future__ import annotations

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


def test_shell_completion(tmp_path, monkeypatch, capsys):
    # In this process, as the console script runs typer (a subprocess would cost more than the test).
    import shellingham

    from pycontain.cli.commandline import run_app

    # --show-completion names the shell the user's terminal runs (shellingham reads the process's ancestors).
    # A test run under nohup, CI or an IDE may have no shell above it: stand in a bash parent.
    monkeypatch.setattr(shellingham, "detect_shell", lambda *a, **k: ("bash", "/bin/bash"))
    assert run_app(["--show-completion"]) == 0
    assert "complete -o default -F _pycontain_completion pycontain" in capsys.readouterr().out
    # What bash asks when the user types 'pycontain run --me<TAB>' (argv is empty then: no fast path).
    for key, value in {
        "COMP_WORDS": "pycontain run --me",
        "COMP_CWORD": "2",
        "_PYCONTAIN_COMPLETE": "complete_bash",
    }.items():
        monkeypatch.setenv(key, value)
    run_app([])
    assert capsys.readouterr().out.split() == ["--memory", "--memory-swap", "--memory-reservation"]
    monkeypatch.delenv("_PYCONTAIN_COMPLETE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert run_app(["--install-completion", "bash"]) == 0
    assert "_pycontain_completion" in (tmp_path / ".bash_completions" / "pycontain.sh").read_text()
    assert "pycontain.sh" in (tmp_path / ".bashrc").read_text()
