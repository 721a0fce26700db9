"""Resources running out: a full state root or image store gives one clear line and a consistent store; an
image import killed half-way never leaves a half-visible image."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator

import pytest
from conftest import ROOT_REQUIRED, wait_until

from .conftest import CrashCLI, Host, processes_with, sleeper

pytestmark = ROOT_REQUIRED


def _one_line(stderr: str) -> str:
    assert stderr.endswith("\n") and stderr.count("\n") == 1, f"not one line: {stderr!r}"
    assert (
        stderr.startswith("pycontain: ") and "Traceback" not in stderr and "internal error" not in stderr
    ), stderr
    return stderr[:-1]


@pytest.fixture
def tiny_tmpfs(tmp_path) -> Iterator[str]:
    """A 64 KiB tmpfs, unmounted at the end even when the test fails (its containers removed first)."""
    path = str(tmp_path / "tiny")
    os.mkdir(path)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", path], check=True)
    try:
        yield path
    finally:
        ids = [n for n in os.listdir(path) if len(n) == 64]
        if ids:
            subprocess.run(
                [sys.executable, "-m", "pycontain", "--root", path, "rm", "-f", *ids],
                capture_output=True,
                timeout=60,
            )
        subprocess.run(["umount", path], check=True)


def fill(path: str, leave: int = 0) -> str:
    """Fill the filesystem at ``path`` but for about ``leave`` bytes; returns the filler's path."""
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    filler = os.path.join(path, "filler")
    with open(filler, "ab") as f:
        try:
            f.write(b"\0" * max(free - leave, 0))
        except OSError:
            pass  # full: exactly what we want
    return filler


def states_intact(root: str) -> None:
    """Every container's state.json is whole JSON, and no temporary state file is left behind."""
    for cid in (n for n in os.listdir(root) if len(n) == 64):
        names = os.listdir(os.path.join(root, cid))
        assert not [n for n in names if n.endswith(".tmp")], names
        with open(os.path.join(root, cid, "state.json")) as f:
            json.load(f)


def test_full_state_root_refuses_new_containers_in_one_line(tiny_tmpfs):
    cli = CrashCLI(tiny_tmpfs)
    fill(tiny_tmpfs)
    for args in (
        ("run", "--rm", "default", "--", "true"),
        ("run", "-d", "--name", "full", "default", "--", "true"),
    ):
        p = cli(*args)
        assert p.returncode == 125
        line = _one_line(p.stderr)
        assert "no space left on device" in line and tiny_tmpfs in line, line
        assert sorted(os.listdir(tiny_tmpfs)) == [".lock", "filler"]


def test_state_written_atomically_when_the_disk_fills_up(tiny_tmpfs):
    """A container made with room to spare, then the disk filled: its state stays whole, what needs to
    write says so in one line, and rm -f still frees everything."""
    cli = CrashCLI(tiny_tmpfs)
    host = Host(tiny_tmpfs)
    marker = "exhaustion-atomic"
    before = host.snapshot(marker)
    cli("run", "-d", "--name", "c1", "default", "--", *sleeper(marker), check=True)
    host.note_ids()
    filler = fill(tiny_tmpfs, leave=1024)  # room for part of a state file, not all of it
    p = cli("stop", "-t", "1", "c1")
    assert p.returncode == 125, "the test meant to fill the disk before this write"
    assert "no space left on device" in _one_line(p.stderr)
    states_intact(tiny_tmpfs)
    assert cli("inspect", "c1").returncode == 0
    for args in (("run", "-d", "--name", "c2", "default", "--", "true"), ("update", "--memory", "64m", "c1")):
        p = cli(*args)
        if p.returncode != 0:
            _one_line(p.stderr)
        states_intact(tiny_tmpfs)
    assert cli("rm", "-f", "c1").returncode == 0, "rm must work on a full disk: it is how space is freed"
    cli("rm", "-f", "c2")
    os.unlink(filler)
    assert wait_until(lambda: not processes_with(marker))
    assert Host.leaks(before, host.snapshot(marker)) == {}


def test_out_of_file_descriptors_is_one_line_and_gc_cleans_up(state_root):
    """pycontain under ever smaller RLIMIT_NOFILE: it works, or says in one line that it ran out of
    descriptors; what a failed create could not undo without descriptors, gc removes afterwards."""
    import resource

    cli = CrashCLI(state_root)
    host = Host(state_root)
    marker = "exhaustion-fds"
    before = host.snapshot(marker)
    outcomes = {}
    for limit in range(5, 17):

        def cap(limit: int = limit) -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        p = subprocess.run(
            cli.argv("run", "--rm", "default", "--", "sh", "-c", "echo ok", marker),
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=cap,
        )
        host.note_ids()
        if p.returncode == 0:
            assert p.stdout == "ok\n", p
        else:
            assert p.returncode == 125, (limit, p.returncode, p.stderr)
            assert "file descriptors" in _one_line(p.stderr), p.stderr
        outcomes[limit] = p.returncode
    assert 125 in outcomes.values() and 0 in outcomes.values(), outcomes
    p = cli("gc")
    assert p.returncode == 0, p.stderr
    assert cli("ps", "-a", "-q").stdout.split() == []
    assert wait_until(lambda: not processes_with(marker))
    assert Host.leaks(before, host.snapshot(marker)) == {}


def test_full_image_store_fails_in_one_line_and_stays_consistent(tmp_path, tiny_tmpfs):
    tarball = _tarball(str(tmp_path / "layer.tar"), "/usr/lib/python3.11/json")
    cli = CrashCLI(str(tmp_path / "state"))
    p = cli("import", "-q", "--data-root", tiny_tmpfs, "tar:" + tarball, "full:1")
    assert p.returncode == 125
    assert "no space left on device" in _one_line(p.stderr).lower()
    _assert_store_consistent(tiny_tmpfs, tarball)
    assert cli("images", "-q", "--data-root", tiny_tmpfs).stdout.split() == []


def _tarball(path: str, source: str) -> str:
    with tarfile.open(path, "w") as tar:
        tar.add(source, arcname=".")
    return path


def _tar_entries(path: str) -> int:
    with tarfile.open(path) as tar:
        return len({os.path.normpath(m.name) for m in tar.getmembers()} - {"."})


def _assert_store_consistent(data: str, tarball: str) -> list[str]:
    """Every layer in place is whole, and every image in the index has all of its layers; returns the images."""
    from rootfs_builder.store import Store

    store = Store(data)
    layers = os.path.join(data, "layers")
    visible = [n for n in os.listdir(layers) if not n.startswith(".")] if os.path.isdir(layers) else []
    want = _tar_entries(tarball)
    for name in visible:
        count = sum(len(dirs) + len(files) for _, dirs, files in os.walk(os.path.join(layers, name)))
        assert count == want, f"layer {name[:12]} is in place with {count} of {want} entries"
    images = store.list() if os.path.isdir(os.path.join(data, "images")) else []
    for rec in images:
        for diff in rec["layers"]:
            assert os.path.isdir(store.layer_path(diff)), f"image {rec['id'][:12]} lacks layer {diff[:12]}"
    return [rec["id"] for rec in images]


def test_import_killed_half_way_is_never_half_visible(tmp_path):
    seed = int(os.environ.get("PYCONTAIN_SOAK_SEED") or random.randrange(1 << 32))
    rng = random.Random(seed)
    tarball = _tarball(str(tmp_path / "layer.tar"), "/usr/lib/python3.11")
    data = str(tmp_path / "data")
    cli = CrashCLI(str(tmp_path / "state"))
    argv = cli.argv("import", "-q", "--data-root", data, "tar:" + tarball, "half:1")
    started = time.monotonic()
    subprocess.run(argv, check=True, capture_output=True, timeout=300)
    whole = time.monotonic() - started
    assert cli("rmi", "--data-root", data, "half:1").returncode == 0
    assert cli("image", "prune", "--data-root", data).returncode == 0
    kills = 0
    for _ in range(6):
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 0.9) * whole)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)  # our own child, by its pid
            kills += 1
        proc.wait()
        images = _assert_store_consistent(data, tarball)
        listed = cli("images", "-q", "--data-root", data).stdout.split()
        assert len(listed) == len(images) <= 1, (seed, listed, images)
        if images:  # the kill came after the image was recorded: it is whole, and removable
            assert cli("rmi", "--data-root", data, "half:1").returncode == 0
    assert kills, f"seed {seed}: every import finished before its kill ({whole:.2f} s each)"
    subprocess.run(argv, check=True, capture_output=True, timeout=300)
    assert len(_assert_store_consistent(data, tarball)) == 1
    leftovers = [n for n in os.listdir(os.path.join(data, "layers")) if n.startswith(".tmp-")]
    assert leftovers == [], (
        f"seed {seed}: an import alone in the store clears crashed ones' layers: {leftovers}"
    )
