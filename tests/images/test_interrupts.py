"""Ctrl-C and SIGTERM during a build or a Debian import: exit 130 / 143 every time, and nothing is left in
/tmp, in the store's tmp directory or running."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT_REQUIRED

from . import need, seeded_data_root

pytestmark = ROOT_REQUIRED

MARK = "6123"  # the sleep of the build step, found by its command line


def _start(tmp_path, *args: str) -> tuple[subprocess.Popen, str, str]:
    data = seeded_data_root(str(tmp_path / "data"))
    private_tmp = str(tmp_path / "tmp")
    os.makedirs(private_tmp)
    env = {**os.environ, "PYCONTAIN_DATA": data, "TMPDIR": private_tmp}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pycontain", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(tmp_path),
    )
    return proc, data, private_tmp


def _wait_for(proc: subprocess.Popen, found, what: str) -> None:
    deadline = time.monotonic() + 300
    while not found():
        assert proc.poll() is None, f"ended before {what}: {proc.stderr.read()}"
        assert time.monotonic() < deadline, f"no {what}"
        time.sleep(0.05)


def _sleepers() -> list[int]:
    pids = []
    for d in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(d, "rb") as f:
                if f.read().split(b"\0")[:2] == [b"sleep", MARK.encode()]:
                    pids.append(int(d.split("/")[2]))
        except OSError:
            pass
    return pids


def _after(proc: subprocess.Popen, signum: int, data: str, private_tmp: str) -> None:
    proc.send_signal(signum)
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 128 + signum, err
    assert "Traceback" not in err
    assert os.listdir(private_tmp) == []
    assert os.listdir(os.path.join(data, "tmp")) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_build(tmp_path, signum):
    with open(tmp_path / "appliance.toml", "w") as f:
        f.write(f'name = "slow"\nbase = "default"\nrun = ["echo started; exec sleep {MARK}"]\n')
    proc, data, private_tmp = _start(tmp_path, "build", "-q", "-f", str(tmp_path / "appliance.toml"))
    _wait_for(proc, lambda: _sleepers(), "build step")
    _after(proc, signum, data, private_tmp)
    assert _sleepers() == []


def test_interrupted_debian_import(tmp_path):
    need("mmdebstrap")
    proc, data, private_tmp = _start(tmp_path, "import", "-q", "debian:bookworm", "deb")
    # mmdebstrap has made its temporary directories (its gpg home among them)
    _wait_for(proc, lambda: glob.glob(os.path.join(data, "tmp", "bootstrap-*", "tmp", "*")), "mmdebstrap")
    _after(proc, signal.SIGINT, data, private_tmp)
    assert not [
        p
        for p in glob.glob("/proc/[0-9]*/cmdline")
        if os.path.exists(p) and data.encode() in open(p, "rb").read()
    ]
