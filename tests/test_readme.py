"""Every Python block of the README runs as written, with a private state root and a temporary working
directory (nothing in them may touch the host outside one)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT_REQUIRED

pytestmark = ROOT_REQUIRED

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def _blocks() -> list[str]:
    with open(README) as f:
        return re.findall(r"^```python\n(.*?)^```", f.read(), re.M | re.S)


def test_readme_has_python_blocks():
    assert _blocks()


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_readme_python_block_runs(index, state_root, tmp_path):
    env = dict(os.environ, PYCONTAIN_ROOT=state_root)
    p = subprocess.run(
        [sys.executable, "-c", _blocks()[index]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
