"""What one pycontain command imports: the tests that keep a fast path's imports small ask here."""

from __future__ import annotations

import subprocess
import sys


def imported(root: str, *args: str, cwd: str | None = None) -> set[str]:
    """The modules ``python -m pycontain --root ROOT ARGS`` imports (``-X importtime``'s list, full dotted
    names); the command must succeed."""
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pycontain", "--root", root, *args],
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
