"""Every Python block of the README, and the examples in the docstrings of pycontain and pycontain.api, run
as written, with a private state root and a temporary working directory (nothing in them may touch the
host outside one)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT_REQUIRED

pytestmark = ROOT_REQUIRED

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def _blocks() -> list[str]:
    with open(README) as f:
        return re.findall(r"^```python\n(.*?)^```", f.read(), re.M | re.S)


def _docstring_examples() -> list[str]:
    """The indented block after the ``::`` of each module's docstring."""
    import pycontain
    import pycontain.api

    out = []
    for module in (pycontain, pycontain.api):
        doc = module.__doc__ or ""
        block = doc.split("::\n", 1)[1].split("\n\n", 1)[0]
        out.append(textwrap.dedent(block))
    return out


def _run(code: str, state_root: str, tmp_path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYCONTAIN_ROOT=state_root)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


def test_readme_has_python_blocks():
    assert _blocks()


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_readme_python_block_runs(index, state_root, tmp_path):
    p = _run(_blocks()[index], state_root, tmp_path)
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("index", range(len(_docstring_examples())))
def test_docstring_example_runs(index, state_root, tmp_path):
    p = _run(_docstring_examples()[index], state_root, tmp_path)
    assert p.returncode == 0, p.stderr
