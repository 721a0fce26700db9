"""pycontain.fastos answers as os does: the fast paths call it instead of os (which they do not load)."""

from __future__ import annotations

import os
import subprocess
import sys

from pycontain import fastos

PATHS = [
    "/",
    "/a",
    "/a/",
    "a",
    "a/b",
    "",
    "//a",
    "/a//b",
    "/a/./b",
    "/a/../b",
    "/a/b/..",
    ".",
    "..",
    "/a/b/c.d",
]


def test_path_helpers_are_os_paths(tmp_path):
    for p in PATHS:
        assert fastos.dirname(p) == os.path.dirname(p), p
        assert fastos.abspath(p) == os.path.abspath(p), p
        for q in ("x", "/x", "x/", "", "x/y"):
            assert fastos.join(p, q) == os.path.join(p, q), (p, q)
            assert fastos.join(p, q, "z") == os.path.join(p, q, "z"), (p, q)
    (tmp_path / "f").write_text("data")
    (tmp_path / "l").symlink_to(tmp_path / "f")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for name in ("f", "l", "dangling", "nowhere", "f/x", "\0"):
        path = str(tmp_path / name) if name != "\0" else "a\0b"
        assert fastos.exists(path) == os.path.exists(path), name
        assert fastos.isdir(path) == os.path.isdir(path), name
    assert fastos.isdir(str(tmp_path)) and fastos.read_file(str(tmp_path / "f")) == b"data"


def test_getenv_is_os_environ_once_os_is_loaded_and_the_start_environment_before():
    env = {**os.environ, "PYCONTAIN_PROBE": "caf\u00e9"}
    code = (
        "import sys; from pycontain import fastos; before = fastos.getenv('PYCONTAIN_PROBE'); "
        "import os; os.environ['PYCONTAIN_PROBE'] = 'changed'; "
        "print(before, fastos.getenv('PYCONTAIN_PROBE'), fastos.getenv('PYCONTAIN_NO_SUCH'), 'os' in sys.modules)"
    )
    p = subprocess.run(
        [sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert p.stdout.split() == ["caf\u00e9", "changed", "None", "True"], p.stderr
