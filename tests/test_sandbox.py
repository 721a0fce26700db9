"""pycontain.sandbox: Sandbox, SandboxPool, ``pycontain sandbox run`` and the judge / code-runner examples.

Everything runs for real as root, in a private state root; every test checks that what it made is gone.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from conftest import ROOT_REQUIRED

pytestmark = ROOT_REQUIRED

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _gone(ids: list[str], root: str) -> None:
    """No container, state directory or cgroup directory is left of the sandboxes ``ids``."""
    from pycontain.container import Container

    assert not [c.id for c in Container.list(root) if c.id in ids]
    for cid in ids:
        assert not os.path.exists(os.path.join(root, cid))
    with open("/proc/self/cgroup") as f:
        lines = f.read().splitlines()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers.startswith("name=") or not controllers:
            continue
        base = os.path.join("/sys/fs/cgroup", controllers.split(",")[0], path.lstrip("/"))
        for cid in ids:
            assert not os.path.exists(os.path.join(base, f"pycontain-{cid}")), f"cgroup of {cid[:12]} left"


def _alive(pid: int, start: bytes | None) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    fields = data[data.rfind(b")") + 2 :].split()
    return fields[0] not in (b"Z", b"X") and fields[19] == start


def _start_time(pid: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rfind(b")") + 2 :].split()[19]


def _load_example(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- one sandbox ---------------------------------------------------------------------------------------
def test_run_collects_output_status_and_figures(state_root):
    from pycontain.sandbox import Sandbox

    with Sandbox("default", memory="64m", pids=32, env={"GREETING": "hi"}, root=state_root) as sb:
        r = sb.run(
            ["sh", "-c", 'echo "$GREETING $1"; cat; echo oops >&2; exit 3', "sh", "there"], input=b"in\n"
        )
        assert (r.returncode, r.stdout, r.stderr) == (3, b"hi there\nin\n", b"oops\n")
        assert not (r.truncated or r.timed_out or r.oom_killed or r.pids_limited)
        assert 0 < r.wall_time < 5 and r.cpu_time is not None and r.cpu_time >= 0
        assert r.peak_memory and r.peak_memory > 0
        r = sb.run("echo $((6 * 7)); hostname", env=["X=1"])  # a string runs through sh -c
        assert r.ok and r.stdout.split()[0] == b"42"
        r = sb.run(["no-such-command"])  # like a shell: 127 and the reason
        assert r.returncode == 127 and b"not found" in r.stderr
        r = sb.run("cat /proc/net/dev | tail -n +3 | cut -d: -f1")  # network "none": loopback only
        assert r.stdout.split() == [b"lo"]
        sb.put_file("/tmp/dir/blob", bytes(range(256)) * 100, mode=0o600)
        assert sb.get_file("/tmp/dir/blob") == bytes(range(256)) * 100
        assert sb.run("stat -c %a /tmp/dir/blob").stdout.strip() == b"600"
        with pytest.raises(Exception, match="cannot read /nope"):
            sb.get_file("/nope")
        sid = sb.id
    sb.close()  # idempotent
    _gone([sid], state_root)


def test_output_cap(state_root):
    from pycontain.sandbox import Sandbox

    with Sandbox(root=state_root) as sb:
        r = sb.run("yes", max_output=1000, timeout=10)
        assert r.truncated and len(r.stdout) == 1000 and not r.timed_out
        assert r.stdout.startswith(b"y\ny\n")
        r = sb.run("head -c 5000 /dev/zero >&2; echo done", max_output=100)
        assert r.truncated and len(r.stderr) == 100
        r = sb.run("head -c 1000 /dev/zero", max_output=1000)  # exactly the cap: not truncated
        assert not r.truncated and len(r.stdout) == 1000
        assert sb.alive  # a cap does not kill the sandbox


def test_timeout_kills_every_process_and_leaves_nothing(state_root):
    from pycontain.errors import InvalidState
    from pycontain.sandbox import Sandbox

    sb = Sandbox(root=state_root)
    sid = sb.id
    cg = sb.container.cgroup()
    r = sb.run("sleep 1000 & sleep 1000 & (sh -c 'sleep 1000' &) ; echo started")
    assert r.stdout == b"started\n"
    before = cg.pids()
    assert len(before) >= 4  # PID 1 and the three sleepers
    starts = {pid: _start_time(pid) for pid in before}
    t = time.monotonic()
    r = sb.run(["sh", "-c", "echo partial; sleep 1000 & while :; do :; done"], timeout=0.5)
    assert r.timed_out and r.returncode == 137 and r.stdout == b"partial\n"
    assert 0.5 <= r.wall_time < 3 and time.monotonic() - t < 5
    assert cg.pids() == []
    assert not [pid for pid, st in starts.items() if _alive(pid, st)]
    assert not sb.alive
    with pytest.raises(InvalidState, match="timed out"):
        sb.run(["true"])
    sb.close()
    _gone([sid], state_root)


def test_oom_is_reported(state_root):
    from pycontain.sandbox import Sandbox

    with Sandbox(memory="32m", root=state_root) as sb:
        r = sb.run(["tail", "/dev/zero"], timeout=20)
        assert r.oom_killed and r.returncode == 137 and not r.timed_out
        assert r.peak_memory is not None and r.peak_memory > 24 << 20
        r = sb.run(["echo", "still here"])  # the OOM killer took tail, not the sandbox
        assert r.stdout == b"still here\n" and not r.oom_killed


def test_pids_limit_is_reported(state_root):
    from pycontain.sandbox import Sandbox

    with Sandbox(pids=8, root=state_root) as sb:
        r = sb.run("for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 30 & done; echo forked", timeout=20)
        assert r.pids_limited and b"fork" in r.stderr
        assert sb.container.cgroup().stats().pids_current <= 8
        assert sb.alive  # refused forks do not kill the sandbox


def test_disk_limit_and_read_only_root(state_root):
    from pycontain.sandbox import Sandbox

    with Sandbox(disk="1m", root=state_root) as sb:
        r = sb.run("head -c 2000000 /dev/zero > /tmp/big")
        assert r.returncode != 0  # ENOSPC (busybox says "I/O error")
        assert int(sb.run("wc -c < /tmp/big").stdout) <= 1 << 20
        r = sb.run("touch /etc/x")
        assert r.returncode != 0 and b"Read-only" in r.stderr
        assert sb.run("rm /tmp/big").ok
        sb.put_file("/tmp/small", b"ok")
        assert sb.get_file("/tmp/small") == b"ok"


# -- the pool ------------------------------------------------------------------------------------------
def test_pool_isolation_between_borrowers(state_root):
    from pycontain.sandbox import SandboxPool

    ids = []
    with SandboxPool(size=2, root=state_root) as pool:
        with pool.acquire(timeout=30) as a:
            ids.append(a.id)
            a.put_file("/tmp/secret", b"from a")
            assert a.run("echo root-file > /etc/leak").ok
            with pool.acquire(timeout=30) as b:  # another borrower at the same time
                ids.append(b.id)
                assert b.run("cat /tmp/secret /etc/leak").returncode != 0
        for _ in range(3):  # and the next ones, made after a was destroyed
            with pool.acquire(timeout=30) as c:
                ids.append(c.id)
                r = c.run("ls /tmp; cat /etc/leak")
                assert b"secret" not in r.stdout and r.returncode != 0
        assert len(set(ids)) == len(ids)  # never the same sandbox twice
    _gone(ids, state_root)
    assert not [d for d in os.listdir(state_root) if len(d) == 64]


def _in_cgroup(sb, marker: bytes) -> list[int]:
    """Host pids of the sandbox's processes whose command line holds ``marker``."""
    found = []
    for pid in sb.container.cgroup().pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker in f.read():
                    found.append(pid)
        except OSError:
            pass
    return found


def _cmdline(pid: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return None


def _sysv_shm(pid1: int, create: bool) -> str:
    """/proc/sysvipc/shm as the sandbox's IPC namespace shows it; with ``create``, a segment made there
    first (what a run could do with any program calling shmget)."""
    code = "import ctypes; assert ctypes.CDLL(None).shmget(4242, 4096, 0o1666) >= 0; " if create else ""
    code += "print(open('/proc/sysvipc/shm').read())"
    return subprocess.run(
        ["nsenter", "-t", str(pid1), "-i", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_pool_resets_a_read_only_sandbox_and_no_run_reaches_the_next(state_root):
    """A read-only-root pool lends the same container again after a reset: what one borrower leaves (files
    in /tmp, /dev/shm and the mqueue filesystem, a running process, a System V segment, /tmp's metadata)
    is gone for the next, PID 1 cannot be written into, and a change to /dev makes the pool destroy the
    sandbox instead."""
    from pycontain.errors import InvalidState
    from pycontain.sandbox import SandboxPool

    ids = set()
    with SandboxPool(size=1, root=state_root, read_only=True) as pool:
        a = pool.acquire(timeout=30)
        ids.add(a.id)
        assert a.not_resettable is None
        leave = (
            "echo s > /tmp/secret && echo s > /dev/shm/secret && : > /dev/mqueue/secret && "
            "chmod 700 /tmp && touch -d '2001-01-01 00:00' /tmp && "
            "(sh -c 'while :; do echo leak > /tmp/bg; sleep 0.01; done' leakloop >/dev/null 2>&1 &)"
        )
        assert a.run(leave).ok
        assert _in_cgroup(a, b"leakloop")  # the attack is in place: a process that outlives its run
        assert "4242" not in _sysv_shm(a.pid, create=False)
        assert "4242" in _sysv_shm(a.pid, create=True)
        # PID 1 outlives every borrower: no run may ptrace it or open its memory (/proc is read-only, but
        # ptrace and process_vm_writev go by the same check as these).
        for attack in ("head -c1 /proc/1/environ", "exec 3</proc/1/mem", "ls /proc/1/root/"):
            r = a.run(attack)
            assert r.returncode != 0 and b"denied" in r.stderr, (attack, r)
        old, pid1 = a, a.pid
        a.close()
        b = pool.acquire(timeout=30)
        assert (b.id, b.pid) == (old.id, pid1) and pool.reused == 1 and pool.created == 1
        with pytest.raises(InvalidState):  # the first borrower's object never reaches the next one's
            old.run("true")
        assert not _in_cgroup(b, b"leakloop")
        assert "4242" not in _sysv_shm(pid1, create=False)
        r = b.run("ls -A /tmp /dev/shm /dev/mqueue; stat -c '%a %Y' /tmp; sleep 0.05; cat /tmp/bg")
        assert r.stdout.decode().split() == [
            "/dev/mqueue:",
            "/dev/shm:",
            "/tmp:",
            "1777",
            r.stdout.split()[-1].decode(),
        ]
        assert int(r.stdout.split()[-1]) > 978307200 and r.returncode != 0  # no /tmp/bg: its writer is dead
        # A change a reset does not undo (a node in /dev): that sandbox is destroyed, a new one lent.
        assert b.run("mknod /dev/leak c 1 3 || mkdir /dev/leak").ok
        b.close()
        c = pool.acquire(timeout=30)
        ids.add(c.id)
        assert c.id != pid1 and pool.destroyed == 1
        assert c.run("test -e /dev/leak").returncode == 1
        # Nor a time set on a node (64 bits for whoever stats it next).
        assert c.run("touch -d @424242 /dev/null").ok
        c.close()
        d = pool.acquire(timeout=30)
        ids.add(d.id)
        assert d.id != c.id and pool.destroyed == 2
        assert d.run("stat -c %Y /dev/null").stdout != b"424242\n"
        d.close()
    _gone(list(ids), state_root)


_LONE_THREAD_C = r"""
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static void *loop(void *arg) {
    for (;;) {
        FILE *f = fopen("/tmp/thread-leak", "w");
        if (f) { fputs("leak\n", f); fclose(f); }
        usleep(10000);
    }
    return arg;
}
int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, loop, NULL);
    pthread_exit(NULL); /* the leader exits: a zombie whose other thread runs on */
}
"""


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed (make setup)")
def test_pool_reset_kills_a_process_whose_leader_thread_exited(state_root, tmp_path):
    """A process outlives its leader thread (pthread_exit in main): its pid reads as a zombie while its
    other thread runs on. The reset kills it like any other, or its writes would reach the next borrower."""
    from pycontain.sandbox import SandboxPool

    (tmp_path / "lone.c").write_text(_LONE_THREAD_C)
    exe = tmp_path / "lone"
    subprocess.run(["gcc", "-static", "-O", "-pthread", "-o", str(exe), str(tmp_path / "lone.c")], check=True)
    with SandboxPool(size=1, root=state_root, read_only=True) as pool:
        with pool.acquire(timeout=30) as a:
            a.put_file("/tmp/lone", exe.read_bytes(), mode=0o755)
            assert a.run("/tmp/lone >/dev/null 2>&1 &").ok
            deadline = time.monotonic() + 10
            while not a.run("cat /tmp/thread-leak").ok and time.monotonic() < deadline:
                time.sleep(0.01)
            assert a.run("cat /tmp/thread-leak").stdout == b"leak\n"  # the thread runs, its leader is gone
            assert any(_cmdline(p) == b"" for p in a.container.cgroup().pids())  # the zombie leader
        with pool.acquire(timeout=30) as b:
            assert pool.reused == 1
            # Nothing left but PID 1 and its idle loop's sleep (a zombie leader has no command line).
            assert [_cmdline(p) for p in b.container.cgroup().pids() if p != b.pid] == [b"sleep\x003600\x00"]
            assert b.run("cat /tmp/thread-leak").returncode != 0


def test_pool_destroys_a_sandbox_released_while_one_of_its_runs_goes_on(state_root):
    """A borrower that closes its sandbox while another of its threads still runs a command gets it
    destroyed, not reset: that run's process would otherwise live on into the next borrower's."""
    from pycontain.sandbox import SandboxPool

    with SandboxPool(size=1, root=state_root, read_only=True) as pool:
        sb = pool.acquire(timeout=30)
        first = sb.id
        results = []
        t = threading.Thread(target=lambda: results.append(sb.run("echo started; sleep 2", timeout=30)))
        t.start()
        deadline = time.monotonic() + 10
        while not _in_cgroup(sb, b"sleep\x002") and time.monotonic() < deadline:
            time.sleep(0.01)
        sb.close()
        t.join()
        with pool.acquire(timeout=30) as nxt:
            assert nxt.id != first and pool.reused == 0 and pool.destroyed == 1
        assert results and results[0].stdout == b"started\n"
    _gone([first], state_root)


def test_pool_does_not_reset_a_writable_root(state_root):
    from pycontain.sandbox import SandboxPool

    with SandboxPool(size=1, root=state_root) as pool, pool.acquire(timeout=30) as sb:
        assert "/" in sb.not_resettable and "writable overlay" in sb.not_resettable


def test_pool_twenty_concurrent_runs_from_threads(state_root):
    from pycontain.sandbox import SandboxPool

    results: dict[int, object] = {}
    ids: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        try:
            with pool.acquire(timeout=60) as sb:
                r = sb.run(["sh", "-c", f"echo {i}; cat"], input=f"in{i}".encode(), timeout=30)
                with lock:
                    ids.append(sb.id)
                    results[i] = r
        except BaseException as e:
            errors.append(e)

    with SandboxPool(size=4, root=state_root, memory="64m", pids=32) as pool:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        assert sorted(results) == list(range(20))
        for i, r in results.items():
            assert r.returncode == 0 and r.stdout == f"{i}\nin{i}".encode(), r
        assert len(set(ids)) == 20
    _gone(ids, state_root)
    assert not [d for d in os.listdir(state_root) if len(d) == 64]


def test_pool_twenty_concurrent_runs_from_asyncio(state_root):
    from pycontain.sandbox import SandboxPool

    ids: list[str] = []

    async def one(pool: SandboxPool, i: int) -> bytes:
        async with pool.acquire_async(timeout=60) as sb:
            ids.append(sb.id)
            r = await sb.run_async(["sh", "-c", f"sleep 0.1; echo {i}"], timeout=30)
            assert r.returncode == 0
            return r.stdout

    async def main() -> list[bytes]:
        async with SandboxPool(size=4, root=state_root) as pool:
            t = time.monotonic()
            out = await asyncio.gather(*(one(pool, i) for i in range(20)))
            assert time.monotonic() - t < 30
            sb = await pool.acquire_async()  # the awaitable form
            ids.append(sb.id)
            assert (await sb.run_async("echo x")).stdout == b"x\n"
            await sb.aclose()
            return out

    out = asyncio.run(main())
    assert out == [f"{i}\n".encode() for i in range(20)]
    _gone(ids, state_root)


def test_pool_close_destroys_lent_and_ready_sandboxes(state_root):
    from pycontain.errors import InvalidState
    from pycontain.sandbox import SandboxPool

    pool = SandboxPool(size=3, root=state_root)
    assert pool.wait_ready(60)
    lent = pool.acquire()
    ids = [lent.id] + [sb.id for sb in list(pool._ready)]
    pool.close()
    pool.close()  # idempotent
    assert not lent.alive or lent._closed
    with pytest.raises(InvalidState):
        pool.acquire(timeout=1)
    lent.close()
    _gone(ids, state_root)
    assert not [d for d in os.listdir(state_root) if len(d) == 64]


# A forked child that needs a lock another thread of its parent held at the fork waits for ever: its copy of
# the lock is held and nobody in the child will release it. An at-fork hook that takes a lock stands for
# any such lock (a library's, a stream's); it runs in a separate interpreter so the hook dies with it.
_LOCK_HELD_SCRIPT = """
import os, sys, threading
from pycontain.sandbox import SandboxPool

lock = threading.Lock()
os.register_at_fork(after_in_child=lambda: (lock.acquire(), lock.release()))
held, done = threading.Event(), threading.Event()

def holder():
    with lock:
        held.set()
        done.wait()

t = threading.Thread(target=holder, daemon=True)
t.start()
held.wait()
pool = SandboxPool(size=2, root=sys.argv[1])
ready = pool.wait_ready(30)
done.set()
t.join()  # released for good: the run below forks from this very process (its joiner), which runs the hook
if not ready:
    # The old design: containers' first processes hang in the hook. Kill them so the pool cleans up.
    for tid in os.listdir("/proc/self/task"):
        for pid in open(f"/proc/self/task/{tid}/children").read().split():
            os.kill(int(pid), 9)
server = getattr(pool, "_forkserver", None)
threads = open(f"/proc/{server.pid}/status").read().split("Threads:")[1].split()[0] if server else "none"
with pool.acquire(timeout=30) as sb:
    out = sb.run(["echo", "ran"]).stdout.decode().strip()
pool.close()
print(ready, threads, out)
"""


def test_pool_prepares_sandboxes_while_a_thread_holds_a_lock_forked_children_need(state_root):
    proc = subprocess.run(
        [sys.executable, "-c", _LOCK_HELD_SCRIPT, state_root], capture_output=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    # Prepared in time, by a fork server with exactly one thread, and the sandboxes run commands.
    assert proc.stdout.decode().split() == ["True", "1", "ran"]
    assert not [d for d in os.listdir(state_root) if len(d) == 64]


def test_pool_reports_a_bad_image_at_once(state_root):
    from pycontain.errors import PycontainError
    from pycontain.sandbox import SandboxPool

    with pytest.raises(PycontainError):
        SandboxPool(size=1, image="/nonexistent/rootfs", root=state_root)
    with pytest.raises(PycontainError):
        SandboxPool(size=1, root=state_root, memory="lots")


# -- the examples and the CLI --------------------------------------------------------------------------
def test_judge_example_verdicts(state_root):
    judge = _load_example("examples/judge/judge.py", "pycontain_example_judge")
    here = os.path.join(REPO, "examples", "judge")
    results = judge.judge(os.path.join(here, "programs"), os.path.join(here, "tests"), 1.0, root=state_root)
    assert {name: r["verdict"] for name, r in results.items()} == {
        "correct.sh": "AC",
        "wrong.sh": "WA",
        "loop.sh": "TLE",
        "forkbomb.sh": "PLE",
        "memhog.sh": "MLE",
    }
    assert not [d for d in os.listdir(state_root) if len(d) == 64]


def test_code_runner_example(state_root):
    server_mod = _load_example("examples/code-runner/server.py", "pycontain_example_code_runner")
    from pycontain.sandbox import SandboxPool

    with pytest.raises(SystemExit):
        server_mod.serve("0.0.0.0", 0, None)
    with SandboxPool(size=1, root=state_root, memory="64m", read_only=True) as pool:  # as server.main
        server = server_mod.serve("127.0.0.1", 0, server_mod.Runner(pool))
        t = threading.Thread(target=server.serve_forever, daemon=True)
        t.start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/run"
            with urllib.request.urlopen(urllib.request.Request(url, data=b"echo hello; exit 4")) as resp:
                doc = json.load(resp)
            assert doc["stdout"] == "hello\n" and doc["returncode"] == 4
            req = urllib.request.Request(
                url,
                data=json.dumps({"code": "read x; echo $((x*2))", "stdin": "21", "timeout": 0.5}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req) as resp:
                assert json.load(resp)["stdout"] == "42\n"
            req = urllib.request.Request(
                url,
                data=json.dumps({"code": "while :; do :; done", "timeout": 0.3}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req) as resp:
                assert json.load(resp)["timed_out"] is True
        finally:
            server.shutdown()
            server.server_close()
    assert not [d for d in os.listdir(state_root) if len(d) == 64]


def _cli(root: str, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    """``pycontain --root ROOT sandbox ...``; imports the command's module first, so it works before
    cli.app registers it too."""
    code = (
        "import sys; import pycontain.cli.sandbox_cmds; from pycontain.cli import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    return subprocess.run(
        [sys.executable, "-c", code, "--root", root, "sandbox", *args],
        input=input,
        capture_output=True,
        timeout=60,
        cwd=REPO,
    )


def test_cli_sandbox_run_statuses_and_json(state_root):
    p = _cli(state_root, "run", "default", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (p.returncode, p.stdout, p.stderr) == (3, b"out\n", b"err\n")
    p = _cli(state_root, "run", "--timeout", "0.3", "default", "--", "sh", "-c", "while :; do :; done")
    assert p.returncode == 124 and b"timed out" in p.stderr
    p = _cli(state_root, "run", "--memory", "32m", "--json", "default", "--", "tail", "/dev/zero")
    assert p.returncode == 137
    doc = json.loads(p.stdout)
    assert doc["oom_killed"] is True and doc["returncode"] == 137 and doc["encoding"] == "utf-8"
    p = _cli(state_root, "run", "--json", "--max-output", "4", "default", "--", "printf", r"\377\376abcdef")
    doc = json.loads(p.stdout)
    assert p.returncode == 0 and doc["truncated"] is True and doc["stdout"] == "\ufffd\ufffdab"
    p = _cli(
        state_root,
        "run",
        "-i",
        "--json",
        "--base64",
        "--pids-limit",
        "16",
        "default",
        "--",
        "cat",
        input=b"\x00\x01binary",
    )
    doc = json.loads(p.stdout)
    assert doc["encoding"] == "base64" and doc["stdout"] == "AAFiaW5hcnk=" and p.returncode == 0
    p = _cli(state_root, "run", "default", "--", "no-such-command")
    assert p.returncode == 127
    p = _cli(state_root, "run", "--memory", "lots", "default", "--", "true")
    assert p.returncode == 125 and b"pycontain: invalid memory" in p.stderr
    assert not [d for d in os.listdir(state_root) if len(d) == 64] if os.path.isdir(state_root) else True
