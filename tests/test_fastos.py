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


def test_write_replace_swaps_the_whole_file_and_leaves_no_temporary_on_failure(tmp_path):
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    fastos.write_replace(str(target), b"new" * 100000, 0o600)
    assert target.read_bytes() == b"new" * 100000
    assert target.stat().st_mode & 0o777 == 0o600
    # A rename that fails (a directory where the file goes) raises and leaves only what was there.
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "inside").write_bytes(b"")
    try:
        fastos.write_replace(str(tmp_path / "taken"), b"x", 0o600)
    except OSError:
        pass
    else:
        raise AssertionError("renaming a file over a non-empty directory succeeded")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "taken"]
    # A planted link where the temporary file goes is not written through.
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (tmp_path / f"out.{os.getpid()}.tmp").symlink_to(victim)
    try:
        fastos.write_replace(str(tmp_path / "out"), b"x", 0o600)
    except OSError:
        pass
    assert victim.read_bytes() == b"keep"
