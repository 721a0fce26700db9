"""rootfs_builder: the built-in busybox root filesystem, built for real (as root) in a temp data root."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

import rootfs_builder
from pycontain.errors import NotFound, Unsupported
from rootfs_builder import busybox

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = [
    pytest.mark.skipif(
        os.geteuid() != 0, reason="builds a root filesystem with root-owned files: run as root"
    ),
    pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (Debian host)"),
]


def _manifest(root: str) -> dict:
    with open(rootfs_builder.manifest_path(root)) as f:
        return json.load(f)


def _mtime(root: str) -> int:
    return os.stat(rootfs_builder.manifest_path(root)).st_mtime_ns


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> str:
    """One data root per session; the default rootfs is built once here (~1-2 s with a download)."""
    d = str(tmp_path_factory.mktemp("pycontain-data"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def built(data_root) -> str:
    path, _ = busybox.ensure_default(data_root, progress=False)
    return path


@pytest.fixture
def root(built, data_root) -> str:
    """The shared built rootfs, made intact again after a test that damages it."""
    yield built
    if not rootfs_builder.is_intact(built) or rootfs_builder.verify(built):
        rootfs_builder.build_default(data_root, force=True, progress=False)


def test_resolve_default_builds_under_data_root(built, data_root):
    assert rootfs_builder.resolve("default", data_root) == built
    assert built == os.path.join(data_root, "rootfs", "default")
    assert os.path.isabs(built)
    assert glob.glob(os.path.join(data_root, "cache", "debs", "busybox-static_*.deb"))
    # nothing left over from the build beside it; the manifest beside the tree, not in it
    assert sorted(os.listdir(os.path.dirname(built))) == [".lock", "default", "default.json"]
    assert rootfs_builder.OLD_MANIFEST not in os.listdir(built)


def test_busybox_shell_runs_on_host(root):
    out = subprocess.run(
        [os.path.join(root, "bin", "busybox"), "sh", "-c", "echo hi"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert out.stdout == "hi\n"


def test_applet_links_work_inside_chroot(root):
    out = subprocess.run(
        ["chroot", root, "/bin/sh", "-c", "echo hi; /usr/bin/env true && id -un; cat /etc/os-release"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:2] == ["hi", "root"]
    assert any(line.startswith("NAME=") and "pycontain" in line for line in lines)


def test_manifest_matches_binary_and_package(root, data_root):
    m = _manifest(root)
    with open(os.path.join(root, "bin", "busybox"), "rb") as f:
        data = f.read()
    assert m["busybox_sha256"] == hashlib.sha256(data).hexdigest()
    assert m["busybox_size"] == len(data)
    assert m["name"] == "default"
    assert m["source"]["package"] == "busybox-static"
    deb = os.path.join(data_root, "cache", "debs", m["source"]["deb"])
    version = subprocess.run(["dpkg-deb", "-f", deb, "Version"], capture_output=True, text=True, check=True)
    assert m["source"]["version"] == version.stdout.strip()
    assert m["applets"] == len(m["links"]) > 100
    assert "bin/sh" in m["links"] and "usr/bin/env" in m["links"]
    assert m["built_at"]
    assert rootfs_builder.verify(root) == []


def test_tree_and_etc(root):
    def mode(p):
        return os.stat(os.path.join(root, p)).st_mode & 0o7777

    assert mode("tmp") == 0o1777 and mode("var/tmp") == 0o1777 and mode("root") == 0o700
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "home", "var", "run"):
        assert os.path.isdir(os.path.join(root, d)), d
    assert os.readlink(os.path.join(root, "usr", "bin", "env")) == "../../bin/busybox"
    with open(os.path.join(root, "etc", "passwd")) as f:
        passwd = f.read()
    assert passwd.startswith("root:x:0:0:") and "nobody:x:65534:65534:" in passwd
    with open(os.path.join(root, "etc", "group")) as f:
        group = f.read().splitlines()
    assert {g.split(":")[0]: g.split(":")[2] for g in group} == {"root": "0", "tty": "5", "nogroup": "65534"}
    with open(os.path.join(root, "etc", "hosts")) as f:
        assert "localhost" in f.read()
    for name in ("nsswitch.conf", "os-release"):
        assert os.path.isfile(os.path.join(root, "etc", name))


def test_second_resolve_is_fast_and_light(root, data_root):
    before = _mtime(root)
    code = (
        "import sys, rootfs_builder\n"
        f"print(rootfs_builder.resolve('default', {data_root!r}))\n"
        "heavy = {'json', 'hashlib', 'subprocess', 'dataclasses', 'typing', 'rootfs_builder.busybox'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [root, "[]"]
    assert _mtime(root) == before  # not rebuilt


def _truncate(p: str) -> None:
    with open(p, "r+b") as f:
        f.truncate(1000)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda r: os.unlink(os.path.join(r, "bin", "busybox")), id="busybox-deleted"),
        pytest.param(lambda r: _truncate(os.path.join(r, "bin", "busybox")), id="busybox-truncated"),
        pytest.param(lambda r: os.unlink(rootfs_builder.manifest_path(r)), id="manifest-deleted"),
        pytest.param(lambda r: os.unlink(os.path.join(r, "bin", "sh")), id="sh-deleted"),
        pytest.param(lambda r: shutil.rmtree(r), id="rootfs-deleted"),
    ],
)
def test_damaged_rootfs_is_rebuilt_on_resolve(root, data_root, damage):
    # A file the build never makes: the rebuilt tree is a new one if it is gone (an inode number or the
    # manifest's built_at, to the second, can come back the same for a tree removed and rebuilt at once).
    marker = os.path.join(root, "etc", "made-before-the-damage")
    with open(marker, "w"):
        pass
    damage(root)
    assert not rootfs_builder.is_intact(root)
    assert rootfs_builder.resolve("default", data_root) == root
    assert rootfs_builder.is_intact(root)
    assert rootfs_builder.verify(root) == []
    assert not os.path.exists(marker)
    assert sorted(os.listdir(os.path.dirname(root))) == [".lock", "default", "default.json"]


def test_verify_finds_what_the_cheap_check_does_not(root, data_root):
    bb = os.path.join(root, "bin", "busybox")
    with open(bb, "r+b") as f:  # same size, different bytes
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 0xFF]))
    os.unlink(os.path.join(root, "usr", "bin", "env"))
    os.unlink(os.path.join(root, "usr", "bin", "wc"))
    os.symlink("/elsewhere", os.path.join(root, "usr", "bin", "wc"))

    assert rootfs_builder.is_intact(root)  # the cheap check passes...
    problems = rootfs_builder.verify(root)  # ...the full one does not
    assert any("sha256" in p for p in problems)
    assert any(p.startswith("usr/bin/env: missing") for p in problems)
    assert any(p.startswith("usr/bin/wc: points at '/elsewhere'") for p in problems)

    out = subprocess.run(
        [sys.executable, "-m", "rootfs_builder", "--data-root", data_root, "verify", "default"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert out.returncode == 1 and "sha256" in out.stdout

    out = subprocess.run(
        [sys.executable, "-m", "rootfs_builder", "--data-root", data_root, "verify", "--repair"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert rootfs_builder.verify(root) == []


def test_cli_build_and_verify(root, data_root):
    before = _mtime(root)
    run = [sys.executable, "-m", "rootfs_builder", "--data-root", data_root]
    out = subprocess.run([*run, "build"], capture_output=True, text=True, env=_env(), timeout=60)
    assert out.returncode == 0 and out.stdout == f"already built: {root}\n"
    out = subprocess.run([*run, "verify", "default"], capture_output=True, text=True, env=_env(), timeout=60)
    assert out.returncode == 0 and out.stdout == f"ok: {root}\n"
    assert _mtime(root) == before
    out = subprocess.run([*run, "build", "--force"], capture_output=True, text=True, env=_env(), timeout=120)
    assert out.returncode == 0 and out.stdout == f"built: {root}\n"
    assert _mtime(root) != before and rootfs_builder.verify(root) == []


def test_resolve_missing_path_raises_not_found(tmp_path):
    missing = str(tmp_path / "no-such-rootfs")
    with pytest.raises(NotFound) as e:
        rootfs_builder.resolve(missing)
    msg = str(e.value)
    assert msg.startswith("no such root filesystem: ") and missing in msg and "\n" not in msg
    assert "'default'" in msg

    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(NotFound, match="not a directory"):
        rootfs_builder.resolve(str(afile))
    with pytest.raises(NotFound):
        rootfs_builder.resolve("")


def test_resolve_directory_returns_realpath(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    assert rootfs_builder.resolve(str(tmp_path / "alias")) == os.path.realpath(real)
    assert rootfs_builder.resolve(os.path.relpath(real)) == os.path.realpath(real)


def test_concurrent_first_resolves_build_once(built, data_root, tmp_path):
    fresh = str(tmp_path / "data")
    os.makedirs(os.path.join(fresh, "cache", "debs"))
    for deb in glob.glob(os.path.join(data_root, "cache", "debs", "*.deb")):  # no second download
        shutil.copy(deb, os.path.join(fresh, "cache", "debs"))
    code = (
        "import sys\nfrom rootfs_builder.busybox import ensure_default\n"
        "path, built = ensure_default(sys.argv[1], progress=False)\nprint(path, built)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, fresh], stdout=subprocess.PIPE, text=True, env=_env())
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    target = os.path.join(fresh, "rootfs", "default")
    assert sorted(outs) == [[target, "False"]] * 3 + [[target, "True"]]
    assert rootfs_builder.verify(target) == []


def test_no_apt_get_and_no_cached_deb_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(Unsupported, match=r"^apt-get not found: .*put a busybox-static \.deb in "):
        rootfs_builder.build_default(str(tmp_path / "data"), progress=False)
    assert not os.path.exists(tmp_path / "data" / "rootfs" / "default")


def test_old_layout_manifest_moves_beside_the_tree_once(root, data_root):
    """A store built by an older pycontain (manifest at the tree's top) works as it is: its manifest moves
    beside the tree on first use, winning over a stale one already there; no rebuild."""
    beside = rootfs_builder.manifest_path(root)
    old = os.path.join(root, rootfs_builder.OLD_MANIFEST)
    m = _manifest(root)
    os.rename(beside, old)
    with open(beside, "w") as f:  # stale: written for a tree since replaced
        json.dump({**m, "built_at": "stale"}, f)
    ino = os.stat(os.path.join(root, "bin")).st_ino
    assert rootfs_builder.resolve("default", data_root) == root
    assert not os.path.lexists(old) and _manifest(root) == m
    assert os.stat(os.path.join(root, "bin")).st_ino == ino
    assert rootfs_builder.verify(root) == []
