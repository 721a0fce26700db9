"""A harness that puts a process behind pycontain.security's walls the way a container's child will.

``walled(opts, argv)`` forks; the child unshares its mount namespace (so that nothing it mounts, even
with the walls down, reaches the host), then runs the real sequence: ``before_setuid``, setgroups/
setgid/setuid when a user is asked for, ``after_setuid``, ``last``, and execve. ``probe(opts,
checks)`` runs the host's Python behind the walls with a list of checks (system calls, files, the
status lines of /proc/self/status) and returns what each one did: "OK" or the errno's name.

Every attack a probe makes is chosen to be harmless even if a wall is down: wrong magic numbers,
missing files, NULL pointers, the kernel's own validation failing after the permission checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import pytest

from pycontain import libc
from pycontain.security import apply as security_apply
from pycontain.security import options

# The probe: argv[1] is a JSON list of checks; prints a JSON list of results.
PROBE = r"""
import ctypes, errno, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def err(e):
    return errno.errorcode.get(e, str(e))

def arg(a):
    if isinstance(a, str):
        return ctypes.c_char_p(a.encode())
    if a is None:
        return ctypes.c_void_p(0)
    return ctypes.c_long(a)

def run(check):
    kind = check[0]
    if kind == "syscall":
        ctypes.set_errno(0)
        r = libc.syscall(ctypes.c_long(check[2]), *[arg(a) for a in check[3]])
        return "OK" if r >= 0 else err(ctypes.get_errno())
    if kind == "status":
        with open("/proc/self/status") as f:
            return dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
    try:
        if kind == "open_w":
            os.close(os.open(check[1], os.O_WRONLY))
        elif kind == "read":
            with open(check[1], "rb") as f:
                return len(f.read(65536))
        elif kind == "listdir":
            return sorted(os.listdir(check[1]))
        elif kind == "socket":
            import socket
            socket.socket(check[1], check[2], check[3]).close()
        elif kind == "mknod":
            os.mknod(check[1], check[2], os.makedev(check[3], check[4]))
        elif kind == "rlimit":
            import resource
            return list(resource.getrlimit(check[1]))
        elif kind == "ids":
            return [os.getuid(), os.geteuid()]
        else:
            return "unknown check"
    except OSError as e:
        return err(e.errno)
    return "OK"

out = []
for c in json.loads(sys.argv[1]):
    try:
        out.append(run(c))
    except Exception as e:
        out.append("crash: %r" % (e,))
print(json.dumps(out))
"""


class Result:
    __slots__ = ("status", "stdout", "stderr")

    def __init__(self, status: int, stdout: str, stderr: str) -> None:
        self.status = status
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self) -> str:
        return f"Result(status={self.status}, stdout={self.stdout!r}, stderr={self.stderr!r})"


def walled(
    opts: options.SecurityOptions | None,
    argv: list[str],
    uid: int = 0,
    gid: int | None = None,
    masked: list[str] | None = None,
    readonly: list[str] | None = None,
    mask: bool = False,
    pre=None,
    timeout: float = 30,
) -> Result:
    """Run ``argv`` behind the walls ``opts`` asks for; ``mask`` also runs mask_paths(masked, readonly);
    ``pre`` runs in the child first (to give it what a careless runtime might have leaked to it)."""
    p = security_apply.prepare(opts)
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 125
        try:
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            libc.unshare(libc.CLONE_NEWNS)
            libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)
            if pre is not None:
                pre()
            if mask:
                security_apply.mask_paths(masked, readonly)
            security_apply.before_setuid(p)
            if uid:
                g = uid if gid is None else gid
                os.setgroups([])
                os.setgid(g)
                os.setuid(uid)
            security_apply.after_setuid(p, uid)
            security_apply.last(p)
            os.execve(argv[0], argv, {"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
        except BaseException as e:
            try:
                os.write(2, f"walled child: {type(e).__name__}: {e}\n".encode())
            except OSError:
                pass
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    status = None
    while status is None:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(st)
        elif time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise AssertionError(f"walled child {argv} did not finish in {timeout}s")
        else:
            time.sleep(0.005)
    out.seek(0)
    err.seek(0)
    return Result(status, out.read().decode(errors="replace"), err.read().decode(errors="replace"))


def probe(opts: options.SecurityOptions | None, checks: list, **kw: object) -> list:
    """Run the probe behind the walls; one result per check."""
    r = walled(opts, [sys.executable, "-I", "-S", "-c", PROBE, json.dumps(checks)], **kw)
    assert r.status == 0, r
    results = json.loads(r.stdout)
    assert len(results) == len(checks), r
    return results


def nr(name: str) -> int:
    """The native number of a system call (through libseccomp's table)."""
    import pyseccomp

    n = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
    assert n >= 0, f"{name} has no number on this machine"
    return n


def status_mask(status: dict, field: str) -> int:
    return int(status[field].strip(), 16)


@pytest.fixture(scope="session", autouse=True)
def seccomp_cache(tmp_path_factory):
    """Compiled filters go to a private cache for the session, not the host's /run."""
    old = os.environ.get("PYCONTAIN_SECCOMP_CACHE")
    os.environ["PYCONTAIN_SECCOMP_CACHE"] = str(tmp_path_factory.mktemp("seccomp-cache"))
    yield
    if old is None:
        os.environ.pop("PYCONTAIN_SECCOMP_CACHE", None)
    else:
        os.environ["PYCONTAIN_SECCOMP_CACHE"] = old


@pytest.fixture
def sleeper():
    """A process outside the walls (root, every capability) for the walled one to attack."""
    p = subprocess.Popen(["sleep", "60"])
    yield p.pid
    p.kill()
    p.wait()


@pytest.fixture
def open_dir():
    """A directory anyone can enter, on a filesystem that honours setuid bits (not nosuid)."""
    d = tempfile.mkdtemp(prefix="pycontain-sec-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    subprocess.run(["rm", "-rf", d], check=False)
