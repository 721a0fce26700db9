"""The VM appliance export: the image's layers on an ext4 disk, Debian's kernel, an initramfs that runs the
image's entrypoint (Env and WorkingDir applied) — booted here under QEMU with software emulation."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import urllib.request

import pytest

from pycontain import vm
from pycontain.errors import PycontainError
from pycontain.vm import appliance as vm_appliance
from rootfs_builder.sources import import_source

pytestmark = [pytest.mark.vm, pytest.mark.timeout(600)]

PYCONTAIN = os.path.join(os.path.dirname(sys.executable), "pycontain")


@pytest.fixture(scope="module")
def appliance(tmp_path_factory):
    """An image with its own entrypoint, env and workdir, in a private store, exported as a VM."""
    import rootfs_builder

    base = tmp_path_factory.mktemp("vmimg")
    data = str(base / "data")
    tree = base / "tree"
    shutil.copytree(rootfs_builder.resolve("default"), tree, symlinks=True)
    (tree / "app").mkdir()
    (tree / "app" / "hello.sh").write_text(
        'echo "greeting=$GREETING cwd=$(pwd) host=$(hostname) args=$*"\ncat /proc/1/comm; exit 42\n'
    )
    import_source(
        str(tree),
        "hello:1",
        data_root=data,
        progress=False,
        config={
            "Entrypoint": ["/bin/sh", "/app/hello.sh"],
            "Cmd": ["a b", "c"],
            "Env": ["GREETING=hello world"],
            "WorkingDir": "/app",
        },
    )
    out = str(base / "vm")
    try:
        a = vm.export_vm("hello:1", out, data_root=data)
    except vm.VMUnavailable as e:
        pytest.skip(str(e))
    yield a


def test_export_files(appliance) -> None:
    for name in ("disk.img", "vmlinux", "initramfs.cpio", "boot.sh", "appliance.json"):
        assert os.path.isfile(os.path.join(appliance.dir, name)), name
    p = subprocess.run(["dumpe2fs", "-h", appliance.disk], capture_output=True, text=True)
    assert "Filesystem volume name:   pycontain" in p.stdout and "extent" in p.stdout  # ext4's extents
    p = subprocess.run(["debugfs", "-R", "cat /app/hello.sh", appliance.disk], capture_output=True, text=True)
    assert "greeting=$GREETING" in p.stdout
    assert os.stat(os.path.join(appliance.dir, "boot.sh")).st_mode & stat.S_IXUSR
    assert vm.load_appliance(appliance.dir).image_id == appliance.image_id


def test_boots_and_runs_the_entrypoint(appliance) -> None:
    r = appliance.run(timeout=240)
    assert not r.timed_out and r.boot_seconds is not None, r.tail(40)
    assert "greeting=hello world cwd=/app host=hello args=a b c" in r.output, r.tail(40)
    assert r.rc == 42, r.tail(40)


def test_a_given_command_runs_instead_and_writes_do_not_persist(appliance) -> None:
    r = appliance.run("echo scribble > /app/hello.sh; cat /app/hello.sh; exit 3", timeout=240)
    assert r.rc == 3 and "scribble" in r.output, r.tail(20)
    r = appliance.run("head -1 /app/hello.sh", timeout=240)  # snapshot=on: every boot starts from the export
    assert r.rc == 0 and "greeting=$GREETING" in r.output, r.tail(20)


def test_cli_boot_keeps_argv_and_exit_status(appliance, tmp_path) -> None:
    """``vm boot DIR -- CMD...`` runs that argv word for word (quotes, spaces, an empty word), with an empty
    stdin (``cat`` alone ends), and exits with its status."""
    script = 'printf "[%s]" "$@"; echo; cat; echo "A  B"; exit 3'
    p = subprocess.run(
        [
            PYCONTAIN,
            "vm",
            "boot",
            "--accel",
            "tcg",
            appliance.dir,
            "--",
            "sh",
            "-c",
            script,
            "sh",
            "x y",
            "",
            "'q'",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert p.returncode == 3, p.stderr[-2000:]
    assert "[x y][]['q']\n" in p.stderr and "A  B\n" in p.stderr, p.stderr[-2000:]


def _initrds() -> set[str]:
    import glob
    import tempfile

    return set(glob.glob(os.path.join(tempfile.gettempdir(), "pycontain-vm-initrd-*")))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_boot_cleans_up(appliance, signum) -> None:
    """SIGTERM or Ctrl-C while the guest runs: QEMU is gone, the boot's initramfs is removed from /tmp, and
    the exit status is 128 + the signal."""
    before = _initrds()
    proc = subprocess.Popen(
        [PYCONTAIN, "vm", "boot", "--accel", "tcg", appliance.dir, "--", "sleep", "600"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = ""
    while vm.READY not in seen and proc.poll() is None:
        seen += proc.stderr.readline()
    assert vm.READY in seen, seen[-2000:]
    qemu = [int(c) for c in open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()]
    proc.send_signal(signum)
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 128 + signum, rest[-2000:]
    assert "Traceback" not in rest
    assert _initrds() <= before
    for pid in qemu:
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read().lower()


def test_layers_are_flattened_with_whiteouts(tmp_path) -> None:
    low, high = tmp_path / "low", tmp_path / "high"
    (low / "d").mkdir(parents=True)
    (low / "d" / "gone").write_text("x")
    (low / "kept").write_text("low")
    high.mkdir()
    (high / "kept").write_text("high")
    (high / "d").mkdir()
    os.mknod(high / "d" / "gone", stat.S_IFCHR | 0o600, os.makedev(0, 0))  # overlayfs' whiteout
    with vm_appliance._flattened([str(low), str(high)]) as tree:
        assert (open(os.path.join(tree, "kept")).read()) == "high"
        assert not os.path.exists(os.path.join(tree, "d", "gone"))
    with open("/proc/self/mountinfo") as f:
        assert "pycontain-vm-flat" not in f.read()


def test_bad_input(tmp_path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(PycontainError, match="not empty"):
        vm.export_vm("default", str(tmp_path / "full"))
    assert os.listdir(tmp_path / "full") == ["x"]
    with pytest.raises(PycontainError, match="not a VM export"):
        vm.load_appliance(str(tmp_path))
    with pytest.raises(PycontainError, match="no such image"):
        vm.export_vm("no-such-image-here", str(tmp_path / "new"))
    assert not (tmp_path / "new").exists()


def test_static_web_answers_from_its_vm(tmp_path) -> None:
    """The static-web example, built and exported as a VM, serves HTTP on 127.0.0.1 through ``-p``."""
    import socket

    data = str(tmp_path / "data")
    os.makedirs(os.path.join(data, "cache"))
    host_debs = "/var/lib/pycontain/cache/debs"
    if os.path.isdir(host_debs):
        shutil.copytree(host_debs, os.path.join(data, "cache", "debs"))
    env = {**os.environ, "PYCONTAIN_DATA": data}
    example = os.path.join(os.path.dirname(os.path.dirname(__file__)), "examples", "appliances", "static-web")
    p = subprocess.run(
        [PYCONTAIN, "build", "-q", "-f", example, "-t", "static-web"], capture_output=True, text=True, env=env
    )
    assert p.returncode == 0, p.stderr
    out = str(tmp_path / "vm")
    try:
        vm.export_vm("static-web", out, data_root=data)
    except vm.VMUnavailable as e:
        pytest.skip(str(e))
    with open(os.path.join(out, "boot.sh")) as f:
        assert "hostfwd=tcp:127.0.0.1:8080-:8080" in f.read()  # the exposed port, for a plain boot.sh
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [PYCONTAIN, "vm", "boot", "--accel", "tcg", "-p", f"{port}:8080", out],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        body = None
        deadline = time.monotonic() + 300
        while body is None and proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    body = r.read().decode()
            except OSError:
                time.sleep(0.5)
        assert body is not None and "<html" in body.lower(), body
    finally:
        proc.terminate()
        assert proc.wait(timeout=120) == 143
