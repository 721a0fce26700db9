"""What one pycontain command imports: the tests that keep a fast path's imports small ask here."""

from __future__ import annotations

import subprocess
import sys

from pycontain.launcher import launcher_text


def imported(root: str, *args: str, cwd: str | None = None, launcher: bool = False) -> set[str]:
    """The modules ``python -m pycontain --root ROOT ARGS`` imports (``-X importtime``'s list, full dotted
    names); the command must succeed. ``launcher``: started as the console script ``pycontain.launcher``
    writes starts it (``-S``; ``-m`` loads runpy and os, which that interpreter has not loaded)."""
    start = ["-S", "-c", launcher_text().partition("\n")[2]] if launcher else ["-m", "pycontain"]
    p = subprocess.run(
        [sys.executable, "-X", "importtime", *start, "--root", root, *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    return {
        line.rsplit("|", 1)[1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")
    }
