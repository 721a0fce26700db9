"""The walls that process start must hold (issue 13), tried for real as root.

- a container cannot type into the caller's terminal (TIOCSTI) nor reach a file the caller gave it as
  stdin: its first process and every exec'd one start a session of their own and see pipes that
  pycontain relays, never the caller's descriptors;
- the default seccomp profile refuses TIOCSTI and TIOCLINUX whatever the ioctl argument's high bits.

The C programs are compiled here with the gcc that ``make setup`` installs (static: the default rootfs
has no C library).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import shutil
import subprocess
import termios

import pytest
from conftest import ROOT_REQUIRED

pytestmark = [
    ROOT_REQUIRED,
    pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is installed by make setup"),
]

# Tries TIOCSTI on fds 0-2 and on /dev/tty, each with the request as is and with high bits set (the
# kernel reads 32 bits), then writes into whatever reopening fd 0 for writing gives.
STI_C = r"""
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static void sti(const char *label, int fd) {
    unsigned long reqs[2] = {TIOCSTI, TIOCSTI | 0xdead00000000UL};
    for (int i = 0; i < 2; i++) {
        int r = ioctl(fd, reqs[i], "x");
        printf("%s/%d:%s\n", label, i, r == 0 ? "INJECTED" : strerror(errno));
    }
}

int main(void) {
    sti("fd0", 0);
    sti("fd1", 1);
    sti("fd2", 2);
    int tty = open("/dev/tty", O_RDWR);
    if (tty >= 0)
        sti("tty", tty);
    else
        printf("tty:open %s\n", strerror(errno));
    int w = open("/proc/self/fd/0", O_WRONLY | O_NONBLOCK);
    if (w >= 0 && write(w, "OVERWRITTEN", 11) == 11)
        printf("stdin:reopened for writing\n");
    fflush(stdout);
    return 0;
}
"""


@pytest.fixture(scope="module")
def helpers(tmp_path_factory) -> str:
    """A directory holding the compiled C helpers, mounted read-only into the containers."""
    d = tmp_path_factory.mktemp("c-helpers")
    src = d / "sti.c"
    src.write_text(STI_C)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(d / "sti"), str(src)], check=True)
    return str(d)


def _under_pty(argv: list[str], stdin_file: str | None) -> tuple[int, str, int]:
    """Run ``argv`` in a new session whose controlling terminal is a fresh pty (an interactive shell's
    situation), stdin from the pty or from ``stdin_file`` opened read-only. Returns the exit status,
    everything written to the terminal, and how many bytes sit in the terminal's input queue after the
    command has exited (what TIOCSTI would have pushed for the shell to read)."""
    master, slave = pty.openpty()
    stdin = os.open(stdin_file, os.O_RDONLY) if stdin_file else slave

    def take_terminal() -> None:
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    try:
        p = subprocess.Popen(
            argv, stdin=stdin, stdout=slave, stderr=slave, start_new_session=True, preexec_fn=take_terminal
        )
        code = p.wait(timeout=120)
        # What it wrote is small enough to wait in the terminal's buffer until now.
        os.set_blocking(master, False)
        out = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except (BlockingIOError, OSError):
                break
            out += chunk
        queued = int.from_bytes(fcntl.ioctl(slave, termios.FIONREAD, b"\0\0\0\0"), "little")
        return code, out.decode(errors="replace"), queued
    finally:
        os.close(master)
        os.close(slave)
        if stdin_file:
            os.close(stdin)


@pytest.mark.parametrize("how", ["run", "exec"])
@pytest.mark.parametrize("interactive", [False, True], ids=["no-i", "i-stdin-file"])
def test_no_terminal_injection_or_stdin_reopen(pyc, helpers, tmp_path, how, interactive):
    stdin_file = None
    if interactive:
        stdin_file = str(tmp_path / "stdin.txt")
        with open(stdin_file, "w") as f:
            f.write("original\n")
    opts = ["-i"] if interactive else []
    if how == "run":
        argv = pyc.argv(
            "run", "--rm", "--network", "none", *opts, "-v", f"{helpers}:/w:ro", "default", "/w/sti"
        )
    else:
        pyc(
            "run", "-d", "--name", "target", "--network", "none", "-v", f"{helpers}:/w:ro", "default",
            "sleep", "300", check=True,
        )  # fmt: skip
        argv = pyc.argv("exec", *opts, "target", "/w/sti")
    code, out, queued = _under_pty(argv, stdin_file)
    assert code == 0, out
    assert "INJECTED" not in out
    assert queued == 0, f"{queued} bytes were pushed into the caller's terminal: {out}"
    assert "tty:open No such device or address" in out, out  # no controlling terminal: its own session
    if stdin_file:
        with open(stdin_file) as f:
            assert f.read() == "original\n"


def test_exec_gets_its_own_session_and_process_group(pyc):
    pyc("run", "-d", "--name", "target", "--network", "none", "default", "sleep", "300", check=True)
    p = pyc("exec", "target", "sh", "-c", "cut -d' ' -f1,5,6 /proc/self/stat", check=True)
    pid, pgid, sid = p.stdout.split()
    assert pid == pgid == sid, p.stdout


def test_seccomp_refuses_tiocsti_and_tioclinux_by_low_32_bits():
    """The compiled default filter: the two requests with any high bits are refused, their neighbours are not."""
    from pycontain.seccomp_default import TIOCLINUX, TIOCSTI

    from .conftest import probe

    checks = []
    for req in (TIOCSTI, TIOCLINUX, TIOCSTI | 1 << 32, TIOCLINUX | 0xFFFF << 40, TIOCSTI + 1, 0x5401):
        checks.append(["syscall", "ioctl", 16, [0, req, None]])
    results = probe(None, checks)
    assert results[:4] == ["EPERM"] * 4, results
    assert "EPERM" not in results[4:], results


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)


def test_init_holds_no_more_than_the_command(pyc):
    """--init's PID 1: the command's capabilities, no_new_privs and seccomp, a short command line of its
    own, and an executable that is a sealed memfd (nothing on the host to overwrite through /proc/1/exe)."""
    p = pyc(
        "run", "-d", "--init", "--name", "target", "--network", "none", "--cap-add", "SYS_PTRACE", "default",
        "sleep", "300", check=True,
    )  # fmt: skip
    pid1 = json.loads(pyc("inspect", "target").stdout)[0]["State"]["Pid"]
    with open(f"/proc/{pid1}/task/{pid1}/children") as f:
        (command,) = f.read().split()
    init, cmd = _status(pid1), _status(int(command))
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Uid", "Gid"):
        assert init[key] == cmd[key], (key, init[key], cmd[key])
    assert init["Seccomp"].strip() == "2"
    assert not int(init["CapEff"], 16) & 1 << 21, "PID 1 holds CAP_SYS_ADMIN"
    with open(f"/proc/{pid1}/cmdline", "rb") as f:
        assert f.read() == b"\0".join([b"pycontain-init", b"--", b"sleep", b"300", b""])
    assert os.readlink(f"/proc/{pid1}/exe").startswith("/memfd:pycontain-init")
    fd = os.open(f"/proc/{pid1}/exe", os.O_RDONLY)
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    finally:
        os.close(fd)
    assert seals & fcntl.F_SEAL_WRITE and seals & fcntl.F_SEAL_SEAL, hex(seals)
    # From inside, with CAP_SYS_PTRACE: PID 1's executable cannot be opened for writing.
    p = pyc("exec", "target", "sh", "-c", "echo x >> /proc/1/exe && echo WROTE")
    assert "WROTE" not in p.stdout, p.stdout + p.stderr


def test_init_reports_what_it_cannot_execute(pyc):
    p = pyc("run", "--rm", "--init", "--network", "none", "default", "/etc/passwd")
    assert p.returncode == 126, p.stderr
    assert "cannot execute" in p.stderr and "/etc/passwd" in p.stderr
