"""pycontain.launcher: the console script started with ``python -S``. The fast paths run without ``site``
and print what ``python -m pycontain`` prints; typer's commands (which run site.main() first) still find
everything installed. No timing is asserted."""

from __future__ import annotations

import os
import subprocess
import sys

from pycontain import launcher
from tests.conftest import ROOT_REQUIRED


def _launcher(tmp_path) -> str:
    path = str(tmp_path / "pycontain")
    launcher.write(path)
    return path


def test_launcher_starts_python_without_site(tmp_path):
    path = _launcher(tmp_path)
    with open(path) as f:
        assert f.readline() == f"#!{sys.executable} -S\n"
    assert os.access(path, os.X_OK)
    here = os.path.dirname(os.path.dirname(os.path.abspath(launcher.__file__)))
    assert repr(here) in launcher.launcher_text()


def test_fast_path_runs_without_site_and_typer_path_with_it(tmp_path):
    path = _launcher(tmp_path)
    root = str(tmp_path / "state")
    probe = (
        "import sys; from pycontain import cli; cli.main = lambda: print(sorted(m for m in ('site', 'typer') "
        "if m in sys.modules)) or 0"
    )
    # The launcher's own text with main() replaced by a probe of what is loaded on the fast path.
    with open(path) as f:
        text = f.read().replace(
            "from pycontain.cli import entry\n", f"{probe}\nfrom pycontain.cli import entry\n"
        )
    p = subprocess.run([sys.executable, "-S", "-c", text.split("\n", 1)[1]], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == "[]", p.stderr
    # --help goes to typer, which needs site-packages' typer and rich: it must work from the launcher.
    p = subprocess.run([path, "--root", root, "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "Usage" in p.stdout, p.stderr
    p = subprocess.run([path, "--root", root, "--version"], capture_output=True, text=True, timeout=60)
    assert p.stdout.startswith("pycontain version"), p.stderr


@ROOT_REQUIRED
def test_launcher_commands_match_python_m(tmp_path, pyc):
    path = _launcher(tmp_path)
    p = subprocess.run(
        [path, "--root", pyc.root, "run", "--rm", "--network", "none", "default", "--", "echo", "hi"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (p.returncode, p.stdout, p.stderr) == (0, "hi\n", "")
    for args in (["ps"], ["state", "nosuch"], ["exec", "nosuch", "true"], ["ps", "--bogus"]):
        a = subprocess.run([path, "--root", pyc.root, *args], capture_output=True, text=True, timeout=60)
        b = pyc(*args)
        assert (a.returncode, a.stdout, a.stderr) == (b.returncode, b.stdout, b.stderr), args
