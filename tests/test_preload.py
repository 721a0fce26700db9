"""pycontain.preload: our modules served from one file, never a module other than the one its source gives.

Each test works on a copy of the source tree (its preload file written there, its sources changed there), and
runs its commands as separate processes: the preload is read when ``pycontain`` is imported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

import pycontain
from pycontain import preload

TREE = os.path.dirname(os.path.dirname(os.path.abspath(pycontain.__file__)))
PROBE = """
import json, sys
import pycontain.state, pycontain.listing, rootfs_builder.layout
print(json.dumps({
    name: [type(sys.modules[name].__spec__.loader).__module__, sys.modules[name].__file__]
    for name in ("pycontain.state", "pycontain.listing", "rootfs_builder.layout")
}))
print(getattr(pycontain.state, "PRELOAD_PROBE", None))
"""


@pytest.fixture
def tree(tmp_path):
    for package in ("pycontain", "rootfs_builder"):
        shutil.copytree(
            os.path.join(TREE, package),
            tmp_path / package,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    return tmp_path


def _env(tree, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(tree)
    env.update(extra)
    return env


def _command(tree, **extra: str) -> None:
    """A fast-path command of the copy (ps of an empty root): the command line refreshes the preload on exit."""
    root = tree / "state"
    p = subprocess.run(
        [sys.executable, "-m", "pycontain", "--root", str(root), "ps"],
        cwd=tree,
        env=_env(tree, **extra),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr


def _probe(tree) -> tuple[dict, str]:
    p = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tree, env=_env(tree), capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr
    loaders, probe = p.stdout.splitlines()
    return json.loads(loaders), probe


def _preload_file(tree) -> str:
    path = preload.path_for(str(tree / "pycontain"))
    assert os.path.isfile(path), os.listdir(os.path.dirname(path))
    return path


def test_a_command_leaves_its_modules_in_the_preload_and_the_next_process_is_served_from_it(tree):
    _command(tree)
    loaders, _ = _probe(tree)
    for name, source in (
        ("pycontain.state", "pycontain/state.py"),
        ("pycontain.listing", "pycontain/listing.py"),
    ):
        assert loaders[name] == ["pycontain.preload", str(tree / source)]
    # a module no fast command of the copy imported yet comes the usual way, from its own .pyc
    assert loaders["rootfs_builder.layout"][0] != "pycontain.preload"
    assert loaders["rootfs_builder.layout"][1] == str(tree / "rootfs_builder" / "layout.py")


def _rewrite(source, size_change: int) -> None:
    """Put ``PRELOAD_PROBE = 7`` in ``source`` in place of a comment, its size changed by ``size_change``, and
    (with 0) its mtime moved by 1 ns within the same second: what importlib's own .pyc check cannot see."""
    st = source.stat()
    lines = source.read_text().splitlines(keepends=True)
    i = next(i for i, line in enumerate(lines) if line.startswith("# ") and len(line) > 30)
    probe = "PRELOAD_PROBE = 7  #"
    lines[i] = probe + "x" * (len(lines[i]) - len(probe) - 1 + size_change) + "\n"
    source.write_text("".join(lines))
    second, ns = divmod(st.st_mtime_ns, 10**9)
    os.utime(source, ns=(st.st_atime_ns, second * 10**9 + (ns + 1) % 10**9))
    assert source.stat().st_size == st.st_size + size_change


def test_a_changed_source_is_not_served_from_the_preload_and_its_new_code_replaces_the_old(tree):
    _command(tree)
    _rewrite(tree / "pycontain" / "state.py", 5)
    loaders, probe = _probe(tree)
    assert probe == "7"
    assert loaders["pycontain.state"][0] != "pycontain.preload"
    _command(tree)  # takes the new code
    loaders, probe = _probe(tree)
    assert probe == "7"
    assert loaders["pycontain.state"][0] == "pycontain.preload"


def test_a_source_of_the_same_size_and_second_is_not_served_either(tree):
    _command(tree)
    _rewrite(tree / "pycontain" / "listing.py", 0)
    loaders, _ = _probe(tree)
    assert loaders["pycontain.listing"][0] != "pycontain.preload"
    assert loaders["pycontain.state"][0] == "pycontain.preload"


def test_a_damaged_or_foreign_preload_is_ignored_then_replaced(tree):
    _command(tree)
    path = _preload_file(tree)
    with open(path, "rb") as f:
        good = f.read()
    for bad in (good[: len(good) // 2], b"not marshal data", good.replace(good[:4], b"\x00\x00\x00\x00", 1)):
        with open(path, "wb") as f:
            f.write(bad)
        loaders, _ = _probe(tree)
        assert loaders["pycontain.state"][0] != "pycontain.preload"
    _command(tree)
    loaders, _ = _probe(tree)
    assert loaders["pycontain.state"][0] == "pycontain.preload"


def test_nothing_is_written_without_bytecode_writes(tree):
    _command(tree, PYTHONDONTWRITEBYTECODE="1")
    assert not os.path.exists(preload.path_for(str(tree / "pycontain")))


SWAP = """
import marshal, os
import pycontain
from pycontain import preload
path = preload._PATH
with open(path, "rb") as f:
    data = bytearray(f.read())
size = int.from_bytes(data[:4], "little")
header, table = marshal.loads(data[4 : 4 + size])
base = 4 + size
# another command's refresh replaces the file meanwhile, the same index but listing's code now fastjson's
# (the smaller: marshal reads one object and ignores what follows)
offset, length = table["pycontain.listing"][3:]
other = bytes(data[base + table["pycontain.fastjson"][3] :][: table["pycontain.fastjson"][4]])
assert len(other) <= length
data[base + offset : base + offset + len(other)] = other
with open(path + ".new", "wb") as f:
    f.write(data)
os.replace(path + ".new", path)
import pycontain.listing
print(type(pycontain.listing.__spec__.loader).__module__, hasattr(pycontain.listing, "dumps"))
"""


def test_a_preload_replaced_after_it_was_read_is_not_read_from(tree):
    _command(tree)
    p = subprocess.run(
        [sys.executable, "-c", SWAP], cwd=tree, env=_env(tree), capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr
    # served by the finder (its source is unchanged), but its code read from its own .pyc, not the new file
    assert p.stdout.split() == ["pycontain.preload", "False"]
