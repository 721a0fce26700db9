"""Write pycontain's console script as a launcher that starts Python with ``-S``: 4-5 ms off every command.

    python -m pycontain.launcher PATH      # `make venv` runs it on .venv/bin/pycontain

The interpreter's ``site`` step (the venv's site-packages and its .pth files, Debian's sitecustomize with
its apport hook, setuptools' distutils shim) takes 4-5 ms of a 15 ms start on the dev machine, as much as
``pycontain state``'s own work. The launcher skips it: it appends to ``sys.path``, after the standard
library and ``PYTHONPATH`` as ``site`` would, the directory holding the pycontain package (an editable
install's .pth entry) and the site-packages directories (pyroute2, cgroupspy, prctl), as found when the
launcher was written: pycontain's first, so that importing it does not list site-packages (~100 entries)
first. That is all the fast paths (run, state, ps, exec, the OCI commands) import.
Every other command goes to typer, which first runs ``site.main()`` (``cli._run_app``), so whatever else
is installed resolves as usual. Processes pycontain starts from ``sys.executable`` start normally.
"""

from __future__ import annotations

import os
import sys
import sysconfig

TEMPLATE = """#!{python} -S
# pycontain's console script, written by `python -m pycontain.launcher` (see pycontain/launcher.py): -S
# skips the interpreter's site step; the directories it would have added for pycontain come here.
import sys

sys.path.extend({paths!r})
from pycontain.cli import entry

entry()
"""


def launcher_text(python: str = sys.executable) -> str:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths: list[str] = []
    for p in (here, sysconfig.get_path("purelib"), sysconfig.get_path("platlib")):
        if p not in paths:
            paths.append(p)
    return TEMPLATE.format(python=python, paths=paths)


def write(path: str, python: str = sys.executable) -> None:
    """Write the launcher at ``path`` (atomically: a command running meanwhile reads the old or the new)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(launcher_text(python))
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m pycontain.launcher PATH")
    write(sys.argv[1])
