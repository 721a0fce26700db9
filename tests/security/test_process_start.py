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
from conftest import ROOT_REQUIRED, wait_until

import rootfs_builder

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
    from pycontain.libc import TIOCLINUX, TIOCSTI

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


# Scans /proc for processes other than itself; for each, records its executable and whether its root
# or working directory reaches a file that exists only on the host (argv[1]: its absolute path, argv[2]:
# its path relative to pycontain's working directory). Lines go to /out/seen and, for a process that
# shows the host's root, cwd or an interpreter of the host as its executable, to /out/hits.
RACER_C = r"""
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    FILE *seen = fopen("/out/seen", "a"), *hits = fopen("/out/hits", "a");
    if (!seen || !hits)
        return 2;
    setvbuf(seen, NULL, _IONBF, 0);
    setvbuf(hits, NULL, _IONBF, 0);
    int last = 0;
    for (;;) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!isdigit((unsigned char)e->d_name[0]))
                continue;
            int pid = atoi(e->d_name);
            if (pid == getpid())
                continue;
            char path[4096], exe[4096];
            snprintf(path, sizeof path, "/proc/%d/exe", pid);
            ssize_t n = readlink(path, exe, sizeof exe - 1);
            exe[n > 0 ? n : 0] = 0;
            if (pid != last && n > 0) {
                fprintf(seen, "%d %s\n", pid, exe);
                last = pid;
            }
            if (strstr(exe, "python"))
                fprintf(hits, "exe %d %s\n", pid, exe);
            snprintf(path, sizeof path, "/proc/%d/root%s", pid, argv[1]);
            if (access(path, F_OK) == 0)
                fprintf(hits, "root %d\n", pid);
            snprintf(path, sizeof path, "/proc/%d/cwd/%s", pid, argv[2]);
            if (access(path, F_OK) == 0)
                fprintf(hits, "cwd %d\n", pid);
        }
        if (d)
            closedir(d);
    }
}
"""


def test_exec_is_never_seen_holding_the_hosts_root_or_executable(pyc, helpers, tmp_path):
    """A container with CAP_SYS_PTRACE races 50 execs: none of the processes it can see has the host's
    root, cwd or interpreter (exec joins every namespace, and drops to the helper's sealed copy, before
    it forks into the pid namespace)."""
    racer_dir = tmp_path / "racer"
    racer_dir.mkdir()
    (racer_dir / "racer.c").write_text(RACER_C)
    subprocess.run(
        ["gcc", "-static", "-O2", "-o", str(racer_dir / "racer"), str(racer_dir / "racer.c")], check=True
    )
    out = tmp_path / "out"
    out.mkdir()
    marker = tmp_path / "host-only-marker"
    marker.write_text("")
    pyc(
        "run", "-d", "--name", "target", "--network", "none", "--cap-add", "SYS_PTRACE",
        "-v", f"{racer_dir}:/w:ro", "-v", f"{out}:/out", "default", "/w/racer", str(marker),
        os.path.relpath(marker, os.getcwd()), check=True,
    )  # fmt: skip
    for _ in range(50):
        p = pyc("exec", "target", "sh", "-c", "cat /proc/self/stat >/dev/null")
        assert p.returncode == 0, p.stderr
    assert wait_until(lambda: (out / "seen").exists() and (out / "seen").read_text())
    hits = (out / "hits").read_text()
    assert hits == "", hits


def _oci_bundle(tmp_path, args: list[str], process: dict) -> str:
    from pycontain.spec import default_spec

    b = tmp_path / "bundle"
    b.mkdir()
    subprocess.run(["cp", "-a", rootfs_builder.resolve("default"), str(b / "rootfs")], check=True)
    cfg = default_spec()
    cfg["process"].update(process, terminal=False, args=args)
    (b / "config.json").write_text(json.dumps(cfg))
    return str(b)


_SAME = (
    "Uid",
    "Gid",
    "Groups",
    "Umask",
    "CapInh",
    "CapPrm",
    "CapEff",
    "CapBnd",
    "CapAmb",
    "NoNewPrivs",
    "Seccomp",
)


def _nofile(pid: int) -> list[str]:
    with open(f"/proc/{pid}/limits") as f:
        return next(line.split()[3:5] for line in f if line.startswith("Max open files"))


def _exec_detached(pyc, tmp_path, *args: str) -> int:
    pid_file = tmp_path / "exec.pid"
    p = pyc.leaving("exec", "--detach", "--pid-file", str(pid_file), *args)
    assert p.returncode == 0, p.stderr
    return int(pid_file.read_text())


def test_exec_applies_what_create_applied(pyc, tmp_path):
    """User, additional groups (without the primary gid), umask, capabilities, rlimits, no_new_privs
    and seccomp of an exec'd process are those of the container's first process."""
    caps = ["CAP_KILL", "CAP_CHOWN"]
    bundle = _oci_bundle(
        tmp_path,
        ["sleep", "300"],
        {
            "user": {"uid": 1000, "gid": 1000, "umask": 0o027, "additionalGids": [5, 7]},
            "capabilities": {
                k: caps for k in ("bounding", "effective", "permitted", "inheritable", "ambient")
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 123, "soft": 100}],
            "noNewPrivileges": True,
        },
    )
    p = pyc.leaving("run", "--bundle", bundle, "--detach", "c1")
    assert p.returncode == 0, p.stderr
    first = int(json.loads(pyc("state", "c1").stdout)["pid"])
    execd = _exec_detached(pyc, tmp_path, "c1", "sleep", "301")
    a, b = _status(first), _status(execd)
    assert {k: a[k] for k in _SAME} == {k: b[k] for k in _SAME}
    assert a["Groups"].split() == ["5", "7"] and a["Umask"] == "0027"
    assert _nofile(first) == _nofile(execd) == ["100", "123"]


def test_exec_process_json_honours_caps_rlimits_and_no_new_privs(pyc, tmp_path):
    bundle = _oci_bundle(tmp_path, ["sleep", "300"], {"noNewPrivileges": False})
    assert pyc.leaving("run", "--bundle", bundle, "--detach", "c2").returncode == 0
    caps = ["CAP_NET_BIND_SERVICE"]
    proc = {
        "args": ["sleep", "302"],
        "env": ["PATH=/bin:/usr/bin"],
        "cwd": "/",
        "terminal": False,
        "user": {"uid": 1000, "gid": 1000, "umask": 0o077, "additionalGids": [9]},
        "capabilities": {k: caps for k in ("bounding", "effective", "permitted", "inheritable", "ambient")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 77, "soft": 66}],
        "noNewPrivileges": True,
    }
    (tmp_path / "process.json").write_text(json.dumps(proc))
    pid = _exec_detached(pyc, tmp_path, "--process", str(tmp_path / "process.json"), "c2")
    st = _status(pid)
    assert (st["Uid"].split()[0], st["Gid"].split()[0], st["Groups"].split()) == ("1000", "1000", ["9"])
    assert st["Umask"] == "0077" and st["NoNewPrivs"].strip() == "1"
    for key in ("CapBnd", "CapEff", "CapPrm", "CapAmb"):
        assert int(st[key], 16) == 1 << 10, (key, st[key])  # CAP_NET_BIND_SERVICE
    assert _nofile(pid) == ["66", "77"]


def _user_namespace(c: dict) -> None:
    c["linux"]["namespaces"] += [{"type": "user"}]
    c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 300000, "size": 65536}]


def _oci_bundle_with(tmp_path, args: list[str], mutate) -> str:
    b = _oci_bundle(tmp_path, args, {})
    cfg = json.loads((tmp_path / "bundle" / "config.json").read_text())
    mutate(cfg)
    (tmp_path / "bundle" / "config.json").write_text(json.dumps(cfg))
    return b


def test_created_process_is_already_in_its_user_namespace(pyc, tmp_path):
    bundle = _oci_bundle_with(tmp_path, ["sh", "-c", "cat /proc/self/uid_map"], _user_namespace)
    p = pyc.leaving("create", "--bundle", bundle, "u1")
    assert p.returncode == 0, p.stderr
    pid = int(json.loads(pyc("state", "u1").stdout)["pid"])
    with open(f"/proc/{pid}/uid_map") as f:
        assert f.read().split() == ["0", "200000", "65536"]
    st = _status(pid)
    assert st["Uid"].split()[0] == "200000" and st["Gid"].split()[0] == "300000"
    assert pyc("start", "u1").returncode == 0


def test_namespace_path_of_the_wrong_type_is_refused_at_create(pyc, tmp_path):
    def mutate(c: dict) -> None:
        c["linux"]["namespaces"] += [{"type": "user", "path": "/proc/self/ns/net"}]
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]

    bundle = _oci_bundle_with(tmp_path, ["true"], mutate)
    p = pyc("create", "--bundle", bundle, "wrongns")
    assert p.returncode == 125, p.stderr
    assert "/proc/self/ns/net" in p.stderr and "network namespace" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and pyc.ids() == []
