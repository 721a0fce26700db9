"""cgroup drivers against the real kernel (as root), plus the pure conversions and parsers.

Every cgroup a test makes is ``pycontain-test-<random>`` beneath the cgroup this process runs in (the
drivers' default), and every fixture kills the processes it started and removes the cgroups it made,
even when the test fails. Nothing else is written, moved or removed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from pycontain.cgroups import detect_mode, load_manager, new_manager, own_cgroups, v1_mounts
from pycontain.cgroups.resources import (
    Resources,
    blkio_weight_to_io_weight,
    cpu_max,
    memory_v2,
    shares_to_weight,
    swap_to_v2,
)
from pycontain.cgroups.usage import Stats, cpu_percent
from pycontain.cgroups.v1 import ALWAYS, V1Manager
from pycontain.cgroups.v2 import V2Manager, io_max_lines
from pycontain.errors import AlreadyExists, InvalidArgument, Unsupported

MiB = 1 << 20
ROOT = "/sys/fs/cgroup"
MODE = detect_mode(ROOT)
IS_ROOT = os.geteuid() == 0
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

needs_v1 = pytest.mark.skipif(
    not IS_ROOT or MODE == "unified" or not v1_mounts(ROOT),
    reason="needs root and cgroup v1 controllers (hybrid or legacy host)",
)
needs_v2 = pytest.mark.skipif(not IS_ROOT or MODE == "legacy", reason="needs root and a cgroup v2 mount")


def _v2_parent_controllers() -> list[str]:
    if MODE == "legacy":
        return []
    mount = ROOT if MODE == "unified" else os.path.join(ROOT, "unified")
    own = own_cgroups().get("", "/").strip("/")
    # The tests' cgroups are children of ours. The root cgroup may enable any controller it has for its
    # children; any other cgroup holding processes (ours holds pytest) only those already enabled in its
    # cgroup.subtree_control (v2's no-internal-processes rule), as on a delegated systemd scope.
    name = "cgroup.controllers" if not own else "cgroup.subtree_control"
    try:
        with open(os.path.join(mount, own, name)) as f:
            return f.read().split()
    except OSError:
        return []


V2_PARENT_CONTROLLERS = _v2_parent_controllers()


def needs_v2_controller(name: str):
    return pytest.mark.skipif(
        name not in V2_PARENT_CONTROLLERS,
        reason=f"cgroup v2 controller {name!r} is not in this process's cgroup.controllers "
        f"(this host binds it to v1); the v2 driver's {name} limits cannot be exercised here",
    )


# -- fixtures ---------------------------------------------------------------------------------
class Procs:
    """Processes a test started: killed (by pid, never by name) and reaped at teardown."""

    def __init__(self) -> None:
        self.popens: list[subprocess.Popen] = []
        self.forked: list[int] = []

    def popen(self, mgr, args: list[str], **kw) -> subprocess.Popen:
        files = mgr.procs_files()

        def join() -> None:
            for path in files:
                with open(path, "w") as f:
                    f.write(str(os.getpid()))

        p = subprocess.Popen(args, preexec_fn=join, **kw)
        self.popens.append(p)
        return p

    def python(self, mgr, code: str, **kw) -> subprocess.Popen:
        return self.popen(mgr, [sys.executable, "-c", textwrap.dedent(code)], **kw)

    def sleeper(self, mgr) -> subprocess.Popen:
        return self.popen(mgr, ["sleep", "300"])

    def fork_sleeper(self, mgr) -> int:
        """os.fork a child that joins through procs_files (no exec) and sleeps; returns once it has joined."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: never return into pytest
            try:
                os.close(r)
                for path in mgr.procs_files():
                    with open(path, "w") as f:
                        f.write(str(os.getpid()))
                os.write(w, b"1")
                time.sleep(300)
            finally:
                os._exit(0)
        os.close(w)
        self.forked.append(pid)
        assert os.read(r, 1) == b"1"
        os.close(r)
        return pid

    def cleanup(self) -> None:
        for p in self.popens:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
            p.wait(timeout=10)
            for stream in (p.stdout, p.stderr, p.stdin):
                if stream:
                    stream.close()
        for pid in self.forked:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


@pytest.fixture
def procs():
    p = Procs()
    yield p
    p.cleanup()


def _cleanup_manager(m) -> None:
    # only processes this test started (and their descendants) can be in a cgroup the test made
    if m.exists():
        try:
            if m.frozen():
                m.thaw()
        except Exception:
            pass
        for pid in m.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        m.destroy()


def _manager_fixture(driver: str, procs: Procs):
    m = new_manager("test-" + uuid.uuid4().hex[:12], driver=driver)
    m.create()
    try:
        yield m
    finally:
        procs.cleanup()  # the processes first, so the cgroups are empty
        _cleanup_manager(m)


@pytest.fixture
def v1(procs):
    yield from _manager_fixture("v1", procs)


@pytest.fixture
def v2(procs):
    yield from _manager_fixture("v2", procs)


def proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def wait_until(pred, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


BUSY = "while True: pass"

FORK_BOMB = """
    import errno, os, sys, time
    made = failed = 0
    for _ in range(60):
        try:
            pid = os.fork()
        except OSError as e:
            if e.errno != errno.EAGAIN:
                raise
            failed += 1
            continue
        if pid == 0:
            time.sleep(300)
            os._exit(0)
        made += 1
    print(made, failed, flush=True)
    sys.stdin.read()
"""


# -- v1 driver on this host --------------------------------------------------------------------
@needs_v1
class TestV1:
    def test_create_makes_one_dir_per_always_used_controller_under_own_cgroup(self, v1: V1Manager) -> None:
        """The cgroup is made in the hierarchies of ALWAYS (and those co-mounted with them) only; every
        mounted one has its directory planned, made when a limit needs it."""
        own = own_cgroups()
        mounts = v1_mounts(ROOT)
        assert set(v1.dirs) == set(mounts)
        always = {v1.dirs[c] for c in ALWAYS if c in v1.dirs}
        for c, d in v1.dirs.items():
            assert os.path.isdir(d) == (d in always), c
            assert os.path.basename(d) == os.path.basename(v1.path)
            expected = os.path.normpath(
                mounts[c][0] + "/" + own.get(c, "/") + "/" + os.path.basename(v1.path)
            )
            assert d == expected
        assert v1.exists()
        with pytest.raises(AlreadyExists):
            V1Manager(v1.path, v1.dirs).create()

    def test_every_v1_makes_every_hierarchy_at_create(self) -> None:
        """OCI bundles' cgroups (engines read cpu and pids statistics) are made everywhere, as runc does."""
        m = new_manager("test-" + uuid.uuid4().hex[:12], driver="v1", every_v1=True)
        m.create()
        try:
            assert all(os.path.isdir(d) for d in m.dirs.values())
            assert len(m.procs_files()) == len(set(m.dirs.values()))
        finally:
            m.destroy()
        assert not m.exists()

    def test_cpuset_starts_with_parent_cpus_and_mems(self, v1: V1Manager) -> None:
        if "cpuset" not in v1.dirs:
            pytest.skip("cpuset is not mounted")
        d = v1.dir("cpuset")
        assert read(f"{d}/cpuset.cpus") == read(f"{os.path.dirname(d)}/cpuset.cpus") != ""
        assert read(f"{d}/cpuset.mems") == read(f"{os.path.dirname(d)}/cpuset.mems") != ""

    def test_forked_child_joins_through_procs_files(self, v1: V1Manager, procs: Procs) -> None:
        pid = procs.fork_sleeper(v1)
        assert v1.pids() == [pid]
        for path in v1.procs_files():
            assert read(path).split() == [str(pid)]
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read()
        assert os.path.basename(v1.path) in lines

    def test_forked_child_moves_itself_through_tasks(self, v1: V1Manager, procs: Procs) -> None:
        """process.join_cgroup(files) with pid 0, as a container's first process and exec's joiner do:
        each v1 hierarchy is joined through its tasks file (no RCU grace period), and the kernel shows
        the child in the cgroup of every hierarchy."""
        from pycontain.process import join_cgroup, moves_itself

        assert all(moves_itself(f) for f in v1.procs_files())
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: never return into pytest
            try:
                os.close(r)
                join_cgroup(v1.procs_files())
                os.write(w, b"1")
                time.sleep(300)
            finally:
                os._exit(0)
        os.close(w)
        procs.forked.append(pid)
        assert os.read(r, 1) == b"1"
        os.close(r)
        assert v1.pids() == [pid]
        with open(f"/proc/{pid}/cgroup") as f:
            paths = {c: p for line in f for _h, cs, p in [line.strip().split(":", 2)] for c in cs.split(",")}
        made = [c for c, d in v1.dirs.items() if os.path.isdir(d)]
        assert set(ALWAYS) & set(v1.dirs) <= set(made)
        for controller in made:
            assert paths[controller].endswith("/" + os.path.basename(v1.path)), controller

    def test_a_limit_adds_its_hierarchy_and_moves_the_processes_in(self, v1: V1Manager, procs: Procs) -> None:
        """update on a running container: pids was not made at create; the limit makes it, and the
        process (and the child it forked, found through the freezer) joins it; stats see them."""
        if "pids" not in v1.dirs or v1.dirs["pids"] in {v1.dirs[c] for c in ALWAYS if c in v1.dirs}:
            pytest.skip("pids is not a hierarchy of its own here")
        pid = procs.fork_sleeper(v1)
        assert not os.path.isdir(v1.dirs["pids"])
        assert v1.stats().pids_current == 1  # counted through the freezer meanwhile
        v1.apply(Resources(pids_limit=5))
        d = v1.dirs["pids"]
        assert read(f"{d}/pids.max") == "5"
        assert read(f"{d}/cgroup.procs").split() == [str(pid)]
        assert f"{d}/cgroup.procs" in v1.procs_files()
        assert not v1.frozen()
        s = v1.stats()
        assert s.pids_current == 1 and s.pids_limit == 5

    def test_throttle_files_cover_every_throttle(self) -> None:
        from pycontain.cgroups import v1
        from pycontain.cgroups.resources import THROTTLES

        assert set(v1._THROTTLE_FILES) == {a for a, _ in THROTTLES}

    def test_memory_limit_is_written(self, v1: V1Manager, procs: Procs) -> None:
        procs.fork_sleeper(v1)
        v1.apply(Resources.from_options(memory="64m"))
        d = v1.dirs["memory"]
        assert int(read(f"{d}/memory.limit_in_bytes")) == 64 * MiB
        if os.path.exists(f"{d}/memory.memsw.limit_in_bytes"):
            assert (
                int(read(f"{d}/memory.memsw.limit_in_bytes")) == 128 * MiB
            )  # docker: swap as much as memory
        assert v1.stats().memory_limit == 64 * MiB

    def test_memory_limit_can_grow_past_swap_and_shrink_again(self, v1: V1Manager) -> None:
        d = v1.dirs["memory"]
        if not os.path.exists(f"{d}/memory.memsw.limit_in_bytes"):
            pytest.skip("no swap accounting (memory.memsw.*) on this host")
        v1.apply(Resources.from_options(memory="64m", memory_swap="64m"))
        v1.apply(Resources.from_options(memory="256m", memory_swap="300m"))  # memsw must be raised first
        assert (int(read(f"{d}/memory.limit_in_bytes")), int(read(f"{d}/memory.memsw.limit_in_bytes"))) == (
            256 * MiB,
            300 * MiB,
        )
        v1.apply(Resources.from_options(memory="32m", memory_swap="40m"))  # memory must be lowered first
        assert (int(read(f"{d}/memory.limit_in_bytes")), int(read(f"{d}/memory.memsw.limit_in_bytes"))) == (
            32 * MiB,
            40 * MiB,
        )
        v1.apply(Resources(memory=-1))
        assert int(read(f"{d}/memory.limit_in_bytes")) > 1 << 62
        v1.apply(Resources(memory_reservation=16 * MiB))
        assert int(read(f"{d}/memory.soft_limit_in_bytes")) == 16 * MiB

    def test_allocating_past_the_limit_is_oom_killed(self, v1: V1Manager, procs: Procs) -> None:
        v1.apply(Resources.from_options(memory="32m", memory_swap="32m"))
        assert not v1.oom_killed()
        p = procs.python(v1, "b = b'x' * (100 << 20); print('survived')", stdout=subprocess.PIPE)
        out, _ = p.communicate(timeout=60)
        assert p.returncode == -signal.SIGKILL, (p.returncode, out)
        assert b"survived" not in out
        assert v1.oom_killed()

    def test_small_allocation_under_the_limit_survives(self, v1: V1Manager, procs: Procs) -> None:
        v1.apply(Resources.from_options(memory="64m", memory_swap="64m"))
        p = procs.python(v1, "b = b'x' * (8 << 20); print('survived')", stdout=subprocess.PIPE)
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0 and b"survived" in out
        assert not v1.oom_killed()

    @pytest.mark.parametrize("limit", [5, 12])
    def test_pids_limit_stops_a_fork_bomb(self, v1: V1Manager, procs: Procs, limit: int) -> None:
        v1.apply(Resources.from_options(pids_limit=str(limit)))
        assert read(f"{v1.dirs['pids']}/pids.max") == str(limit)
        p = procs.python(v1, FORK_BOMB, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        made, failed = (int(x) for x in p.stdout.readline().split())
        assert made <= limit - 1  # the bomb itself is one of the limit's processes
        assert failed == 60 - made and failed > 0
        assert len(v1.pids()) <= limit
        s = v1.stats()
        assert s.pids_limit == limit
        assert s.pids_current == made + 1 == len(v1.pids())

    def test_pids_limit_unlimited(self, v1: V1Manager) -> None:
        v1.apply(Resources.from_options(pids_limit="5"))
        v1.apply(Resources.from_options(pids_limit="-1"))
        assert read(f"{v1.dirs['pids']}/pids.max") == "max"
        assert v1.stats().pids_limit is None

    def test_freeze_stops_processes_and_thaw_restarts_them(self, v1: V1Manager, procs: Procs) -> None:
        sleeper = procs.sleeper(v1)
        busy = procs.python(v1, BUSY)
        assert wait_until(lambda: cpu_ticks(busy.pid) > 0)
        state = f"{v1.dirs['freezer']}/freezer.state"
        v1.freeze()
        assert read(state) == "FROZEN" and v1.frozen()
        assert proc_state(sleeper.pid) == "D" and proc_state(busy.pid) == "D"
        before = cpu_ticks(busy.pid)
        time.sleep(0.3)
        assert cpu_ticks(busy.pid) == before  # frozen: no cpu time at all
        v1.thaw()
        assert read(state) == "THAWED" and not v1.frozen()
        assert proc_state(sleeper.pid) == "S"
        assert wait_until(lambda: cpu_ticks(busy.pid) > before)

    def test_kill_all_kills_a_frozen_cgroup(self, v1: V1Manager, procs: Procs) -> None:
        ps = [procs.sleeper(v1) for _ in range(3)]
        v1.freeze()
        v1.kill_all(signal.SIGKILL)
        for p in ps:
            assert p.wait(timeout=10) == -signal.SIGKILL
        assert v1.pids() == []

    def test_stats(self, v1: V1Manager, procs: Procs) -> None:
        p = procs.python(
            v1,
            "b = b'x' * (20 << 20); import sys; print('ok', flush=True); sys.stdin.read()",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert p.stdout.readline().strip() == b"ok"
        s = v1.stats()
        assert s.memory_usage is not None and s.memory_usage >= 20 * MiB
        assert s.pids_current == 1 == len(v1.pids())
        assert s.cpu_usage_ns is not None and s.cpu_usage_ns > 0
        assert s.memory_limit is None and s.pids_limit is None  # nothing applied
        json.dumps(s.to_dict())

    def test_cpu_and_cpuset_limits(self, v1: V1Manager) -> None:
        v1.apply(
            Resources.from_options(cpus="0.5", cpu_shares="512", cpuset_cpus="0", cpuset_mems="0", ncpus=2)
        )
        assert read(f"{v1.dirs['cpu']}/cpu.cfs_quota_us") == "50000"
        assert read(f"{v1.dirs['cpu']}/cpu.cfs_period_us") == "100000"
        assert read(f"{v1.dirs['cpu']}/cpu.shares") == "512"
        assert read(f"{v1.dirs['cpuset']}/cpuset.cpus") == "0"
        v1.apply(Resources(cpu_quota=-1))
        assert read(f"{v1.dirs['cpu']}/cpu.cfs_quota_us") == "-1"

    def test_blkio_weight(self, v1: V1Manager) -> None:
        d = v1.dirs["blkio"]
        if os.path.exists(f"{d}/blkio.weight"):
            v1.apply(Resources(blkio_weight=300))
            assert read(f"{d}/blkio.weight") == "300"
        elif os.path.exists(f"{d}/blkio.bfq.weight"):
            v1.apply(Resources(blkio_weight=300))  # runc's fallback: bfq's weight, same 10..1000 scale
            assert read(f"{d}/blkio.bfq.weight") == "300"
        else:
            with pytest.raises(Unsupported, match="blkio-weight"):
                v1.apply(Resources(blkio_weight=300))

    def test_kill_all_and_destroy_remove_every_directory(self, v1: V1Manager, procs: Procs) -> None:
        ps = [procs.sleeper(v1) for _ in range(2)]
        procs.fork_sleeper(v1)
        assert len(v1.pids()) == 3
        v1.kill_all(signal.SIGKILL)
        for p in ps:
            assert p.wait(timeout=10) == -signal.SIGKILL
        os.waitpid(procs.forked[0], 0)
        procs.forked.clear()
        v1.destroy()
        assert not v1.exists()
        assert not any(os.path.exists(d) for d in v1.dirs.values())
        v1.destroy()  # missing is fine

    def test_destroy_removes_cgroups_made_beneath(self, v1: V1Manager, procs: Procs) -> None:
        """A cgroup made inside the container's (by a process with its cgroup view writable, say): the
        first rmdir fails, the walk removes it deepest first."""
        freezer = v1.dirs["freezer"]
        os.makedirs(f"{freezer}/a/b")
        v1.destroy()
        assert not v1.exists() and not os.path.exists(freezer)

    def test_record_round_trips_through_json(self, v1: V1Manager, procs: Procs) -> None:
        pid = procs.fork_sleeper(v1)
        again = load_manager(json.loads(json.dumps(v1.record())))
        assert isinstance(again, V1Manager) and again.dirs == v1.dirs and again.path == v1.path
        assert again.pids() == [pid]


@needs_v1
def test_v1_blkio_weight_unsupported_without_weight_files(tmp_path) -> None:
    (tmp_path / "blkio").mkdir()
    m = V1Manager("/x", {"blkio": str(tmp_path / "blkio")})
    with pytest.raises(Unsupported) as exc:
        m.apply(Resources(blkio_weight=500))
    assert "blkio" in str(exc.value) and "drop --blkio-weight" in str(exc.value)


def test_v1_missing_controller_is_unsupported(tmp_path) -> None:
    m = V1Manager("/x", {"memory": str(tmp_path)})
    with pytest.raises(Unsupported, match="'pids' is not mounted"):
        m.apply(Resources(pids_limit=5))


@needs_v1
def test_plain_path_never_imports_cgroupspy() -> None:
    code = textwrap.dedent(
        """
        import sys, uuid
        from pycontain.cgroups import new_manager
        m = new_manager("test-" + uuid.uuid4().hex[:12], driver="v1")
        m.create()
        try:
            m.procs_files(); m.pids(); m.frozen(); m.oom_killed(); m.record()
            from pycontain.cgroups.resources import Resources
            m.apply(Resources())
            print("cgroupspy" in sys.modules, "dataclasses" in sys.modules)
        finally:
            m.destroy()
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


# -- v2 driver (this host: a controller-less cgroup2 at /sys/fs/cgroup/unified) --------------------
@needs_v2
class TestV2:
    def test_create_under_own_cgroup_and_join(self, v2: V2Manager, procs: Procs) -> None:
        mount = ROOT if MODE == "unified" else os.path.join(ROOT, "unified")
        own = own_cgroups()[""]
        assert v2.dir == os.path.normpath(f"{mount}/{own}/{os.path.basename(v2.path)}")
        assert os.path.isdir(v2.dir) and v2.exists()
        pid = procs.fork_sleeper(v2)
        assert v2.procs_files() == [f"{v2.dir}/cgroup.procs"]
        assert v2.pids() == [pid]
        with open(f"/proc/{pid}/cgroup") as f:
            assert f"0::{v2.path}\n" in f.read()

    def test_pids_include_nested_cgroups(self, v2: V2Manager, procs: Procs) -> None:
        a = procs.sleeper(v2)
        os.mkdir(f"{v2.dir}/inner")
        inner = V2Manager(v2.path + "/inner", v2.dir + "/inner")
        b = procs.sleeper(inner)
        assert sorted(v2.pids()) == sorted([a.pid, b.pid])
        assert v2.stats().pids_current == 2

    def test_freeze_and_thaw(self, v2: V2Manager, procs: Procs) -> None:
        busy = procs.python(v2, BUSY)
        assert wait_until(lambda: cpu_ticks(busy.pid) > 0)
        v2.freeze()
        assert v2.frozen() and read(f"{v2.dir}/cgroup.freeze") == "1"
        assert "frozen 1" in read(f"{v2.dir}/cgroup.events")
        before = cpu_ticks(busy.pid)
        time.sleep(0.3)
        assert cpu_ticks(busy.pid) == before
        v2.thaw()
        assert not v2.frozen() and "frozen 0" in read(f"{v2.dir}/cgroup.events")
        assert wait_until(lambda: cpu_ticks(busy.pid) > before)

    def test_kill_all_with_cgroup_kill_reaches_nested_and_frozen(self, v2: V2Manager, procs: Procs) -> None:
        if not os.path.exists(f"{v2.dir}/cgroup.kill"):
            pytest.skip("cgroup.kill needs linux 5.14")
        ps = [procs.sleeper(v2) for _ in range(3)]
        os.mkdir(f"{v2.dir}/inner")
        ps.append(procs.sleeper(V2Manager(v2.path + "/inner", v2.dir + "/inner")))
        v2.freeze()
        v2.kill_all(signal.SIGKILL)
        for p in ps:
            assert p.wait(timeout=10) == -signal.SIGKILL
        assert v2.pids() == []

    def test_kill_all_other_signals(self, v2: V2Manager, procs: Procs) -> None:
        ps = [procs.sleeper(v2) for _ in range(2)]
        v2.kill_all(signal.SIGTERM)
        for p in ps:
            assert p.wait(timeout=10) == -signal.SIGTERM

    def test_destroy_removes_nested_dirs_and_tolerates_missing(self, v2: V2Manager, procs: Procs) -> None:
        p = procs.sleeper(v2)
        os.makedirs(f"{v2.dir}/a/b")
        p.kill()
        p.wait()
        v2.destroy()  # retries while the killed process leaves
        assert not os.path.exists(v2.dir) and not v2.exists()
        v2.destroy()

    def test_destroy_with_live_process_fails_clearly(self, v2: V2Manager, procs: Procs, monkeypatch) -> None:
        from pycontain.cgroups import files
        from pycontain.errors import PycontainError

        p = procs.sleeper(v2)
        real = files.remove_tree
        monkeypatch.setattr("pycontain.cgroups.v2.remove_tree", lambda d: real(d, timeout=0.2))
        with pytest.raises(PycontainError, match=f"{p.pid}"):
            v2.destroy()
        assert v2.exists()

    def test_stats_without_controllers(self, v2: V2Manager, procs: Procs) -> None:
        procs.python(
            v2,
            "import time\nt=time.time()\nwhile time.time()-t < 0.2: pass\nimport sys; sys.stdin.read()",
            stdin=subprocess.PIPE,
        )
        assert wait_until(lambda: (v2.stats().cpu_usage_ns or 0) > 50_000_000)
        s = v2.stats()
        assert s.pids_current == 1
        if "memory" not in v2.controllers():
            assert s.memory_usage is None and not v2.oom_killed()

    def test_no_limits_needs_no_controller(self, v2: V2Manager) -> None:
        v2.apply(Resources())
        assert v2.plan(Resources()) == []

    @pytest.mark.parametrize(
        ("controller", "resources"),
        [
            ("memory", Resources(memory=64 * MiB)),
            ("pids", Resources(pids_limit=5)),
            ("cpu", Resources(cpu_shares=512)),
            ("io", Resources(blkio_weight=500)),
            ("cpuset", Resources(cpuset_cpus="0")),
        ],
    )
    def test_limit_without_delegated_controller_is_unsupported(
        self, v2: V2Manager, controller: str, resources: Resources
    ) -> None:
        if controller in V2_PARENT_CONTROLLERS:
            pytest.skip(f"{controller} is delegated here")
        with pytest.raises(Unsupported) as exc:
            v2.apply(resources)
        msg = str(exc.value)
        assert (
            f"'{controller}'" in msg
            and "\n" not in msg
            and ("--cgroup-parent" in msg or "--cgroup-manager v1" in msg)
        )

    @needs_v2_controller("memory")
    def test_memory_limit_and_oom(self, v2: V2Manager, procs: Procs) -> None:
        v2.apply(Resources.from_options(memory="32m", memory_swap="32m"))
        assert read(f"{v2.dir}/memory.max") == str(32 * MiB)
        p = procs.python(v2, "b = b'x' * (100 << 20)")
        assert p.wait(timeout=60) == -signal.SIGKILL
        assert v2.oom_killed()

    @needs_v2_controller("pids")
    def test_pids_limit_stops_a_fork_bomb(self, v2: V2Manager, procs: Procs) -> None:
        v2.apply(Resources(pids_limit=6))
        assert read(f"{v2.dir}/pids.max") == "6"
        p = procs.python(v2, FORK_BOMB, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        made, failed = (int(x) for x in p.stdout.readline().split())
        assert made <= 5 and failed > 0

    @needs_v2_controller("cpu")
    def test_cpu_limits(self, v2: V2Manager) -> None:
        v2.apply(Resources.from_options(cpus="0.5", cpu_shares="1024", ncpus=2))
        assert read(f"{v2.dir}/cpu.max") == "50000 100000"
        assert read(f"{v2.dir}/cpu.weight") == "39"

    def test_device_rules_are_a_bpf_program(self, v2: V2Manager, procs: Procs, tmp_path) -> None:
        """No devices files on v2: the rules become a BPF_CGROUP_DEVICE program (it needs no controller)."""
        from pycontain.cgroups.devices import DEFAULT_ALLOWED, DENY_ALL

        for name, major, minor in (("null", 1, 3), ("kmsg", 1, 11)):
            os.mknod(tmp_path / name, 0o600 | stat.S_IFCHR, os.makedev(major, minor))
        assert v2.set_devices([DENY_ALL, *DEFAULT_ALLOWED])
        p = procs.python(
            v2,
            f"""
            import os
            for n in ("null", "kmsg"):
                try:
                    os.close(os.open("{tmp_path}/" + n, os.O_WRONLY))
                    print(n, "OK")
                except OSError as e:
                    print(n, e.strerror)
            os.mknod("{tmp_path}/made", 0o600 | 0o020000, os.makedev(1, 11))  # mknod of any node stays allowed
            print("mknod OK")
            """,
            stdout=subprocess.PIPE,
            text=True,
        )
        out, _ = p.communicate(timeout=30)
        assert out.split("\n")[:3] == ["null OK", "kmsg Operation not permitted", "mknod OK"], out

    def test_device_rules_access_bits_and_order(self, v2: V2Manager, procs: Procs, tmp_path) -> None:
        from pycontain.cgroups.devices import DENY_ALL, DeviceRule

        for name, major, minor in (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7)):
            os.mknod(tmp_path / name, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        # null: read only; zero: allowed, then denied by a later rule (the later one wins); full: write, as c *:7
        assert v2.set_devices(
            [
                DENY_ALL,
                DeviceRule(True, "c", 1, 3, "r"),
                DeviceRule(True, "c", 1, 5, "rw"),
                DeviceRule(False, "c", 1, 5, "rwm"),
                DeviceRule(True, "c", -1, 7, "w"),
            ]
        )
        p = procs.python(
            v2,
            f"""
            import os
            for n, flags in (("null", os.O_RDONLY), ("null", os.O_WRONLY), ("zero", os.O_RDONLY), ("full", os.O_WRONLY),
                             ("full", os.O_RDONLY)):
                try:
                    os.close(os.open("{tmp_path}/" + n, flags))
                    print("OK")
                except OSError as e:
                    print(e.errno)
            """,
            stdout=subprocess.PIPE,
            text=True,
        )
        out, _ = p.communicate(timeout=30)
        assert out.split() == ["OK", "1", "1", "OK", "1"], out

    def test_record_round_trip(self, v2: V2Manager) -> None:
        again = load_manager(json.loads(json.dumps(v2.record())))
        assert isinstance(again, V2Manager) and again.dir == v2.dir and again.path == v2.path


def test_v2_enable_controller_ebusy_gives_clear_error(tmp_path, monkeypatch) -> None:
    """The target host's case: the parent offers the controller but holds processes (EBUSY)."""
    parent = tmp_path / "x"
    (parent / "pycontain-c").mkdir(parents=True)
    (parent / "cgroup.controllers").write_text("memory\n")
    (parent / "cgroup.subtree_control").write_text("")
    (parent / "pycontain-c" / "cgroup.controllers").write_text("")
    m = V2Manager("/x/pycontain-c", str(parent / "pycontain-c"))

    import pycontain.cgroups.v2 as v2mod

    def ebusy(path: str, value: str) -> None:
        raise v2mod.CgroupWriteError(path, value, OSError(errno.EBUSY, "Device or resource busy"))

    monkeypatch.setattr(v2mod, "write_file", ebusy)
    with pytest.raises(Unsupported) as exc:
        m.apply(Resources(memory=64 * MiB))
    assert str(exc.value) == (
        "cannot enable cgroup v2 controller 'memory' in /x: it holds processes of its own "
        "(pass --cgroup-parent a cgroup without processes, or move them into a leaf cgroup)"
    )


def test_v2_controller_not_delegated_names_the_fix(tmp_path) -> None:
    parent = tmp_path / "x"
    (parent / "pycontain-c").mkdir(parents=True)
    (parent / "cgroup.controllers").write_text("memory\n")
    (parent / "pycontain-c" / "cgroup.controllers").write_text("")
    m = V2Manager("/x/pycontain-c", str(parent / "pycontain-c"))
    with pytest.raises(Unsupported) as exc:
        m.apply(Resources(pids_limit=5))
    assert str(exc.value) == (
        f"cgroup v2 controller 'pids' is not delegated to /x (enable it in {tmp_path}/cgroup.subtree_control, "
        "or pass --cgroup-parent a cgroup that has it)"
    )


def test_v2_apply_writes_after_enabling(tmp_path) -> None:
    """With a fake cgroupfs: the controller is enabled in the parent, then the files are written."""
    parent = tmp_path / "x"
    child = parent / "pycontain-c"
    child.mkdir(parents=True)
    (parent / "cgroup.controllers").write_text("memory pids\n")
    (parent / "cgroup.subtree_control").write_text("")
    (child / "cgroup.controllers").write_text("memory pids\n")  # as after the kernel enabled them
    for name in ("memory.max", "memory.swap.max", "memory.low", "pids.max"):
        (child / name).write_text("")
    m = V2Manager("/x/pycontain-c", str(child))
    m.apply(Resources.from_options(memory="64m", memory_reservation="32m", pids_limit="0"))
    assert (child / "memory.max").read_text() == str(64 * MiB)
    assert (child / "memory.swap.max").read_text() == str(64 * MiB)  # docker default: total = 2 * memory
    assert (child / "memory.low").read_text() == str(32 * MiB)
    assert (child / "pids.max").read_text() == "max"
    assert (parent / "cgroup.subtree_control").read_text() == ""  # already present: parent untouched


def test_v2_plan_conversions(tmp_path) -> None:
    m = V2Manager("/x", str(tmp_path))
    r = Resources(
        memory=64 * MiB,
        memory_swap=-1,
        cpu_shares=1024,
        cpu_quota=150000,
        cpu_period=100000,
        pids_limit=-1,
        blkio_weight=1000,
        device_read_bps=[(8, 0, MiB)],
        device_write_iops=[(8, 0, 100), (8, 16, 5)],
    )
    assert m.plan(r) == [
        ("memory", "memory.max", str(64 * MiB)),
        ("memory", "memory.swap.max", "max"),
        ("cpu", "cpu.weight", "39"),
        ("cpu", "cpu.max", "150000 100000"),
        ("pids", "pids.max", "max"),
        ("io", "io.weight", "default 10000"),
        ("io", "io.max", f"8:0 rbps={MiB} wiops=100"),
        ("io", "io.max", "8:16 wiops=5"),
    ]
    (tmp_path / "cpu.max").write_text("20000 100000\n")
    assert m.plan(Resources(cpu_period=50000)) == [("cpu", "cpu.max", "20000 50000")]
    (tmp_path / "io.bfq.weight").write_text("default 100\n")
    assert m.plan(Resources(blkio_weight=300)) == [("io", "io.bfq.weight", "300")]


# -- conversions (pure) ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shares", "weight"), [(2, 1), (1024, 39), (512, 20), (262144, 10000), (1, 1), (10**9, 10000), (0, 0)]
)
def test_shares_to_weight(shares: int, weight: int) -> None:
    assert shares_to_weight(shares) == weight


@pytest.mark.parametrize(("w", "io"), [(10, 1), (1000, 10000), (500, 4950), (100, 910), (0, 0)])
def test_blkio_weight_to_io_weight(w: int, io: int) -> None:
    assert blkio_weight_to_io_weight(w) == io


def test_swap_and_memory_to_v2() -> None:
    assert swap_to_v2(64 * MiB, 128 * MiB) == str(64 * MiB)
    assert swap_to_v2(64 * MiB, 64 * MiB) == "0"
    assert swap_to_v2(64 * MiB, -1) == "max"
    with pytest.raises(InvalidArgument, match="below the memory limit"):
        swap_to_v2(64 * MiB, 32 * MiB)
    with pytest.raises(InvalidArgument, match="without a memory limit"):
        swap_to_v2(None, 32 * MiB)
    assert memory_v2(-1) == "max" and memory_v2(5) == "5"


def test_cpu_max() -> None:
    assert cpu_max(150000, 100000) == "150000 100000"
    assert cpu_max(None, None) == "max 100000"
    assert cpu_max(-1, 50000) == "max 50000"
    assert cpu_max(20000, None) == "20000 100000"


def test_io_max_lines_unlimited_value() -> None:
    assert io_max_lines(Resources(device_read_bps=[(8, 0, 0)])) == ["8:0 rbps=max"]


def test_cpu_percent() -> None:
    a, b = Stats(cpu_usage_ns=1_000_000_000), Stats(cpu_usage_ns=1_500_000_000)
    assert cpu_percent(a, b, 1.0, 2) == pytest.approx(50.0)
    assert cpu_percent(a, Stats(cpu_usage_ns=5_000_000_000), 1.0, 2) == 200.0  # clamped to ncpus * 100
    assert cpu_percent(a, Stats(), 1.0, 2) == 0.0
    assert cpu_percent(b, a, 1.0, 2) == 0.0
    assert cpu_percent(a, b, 0, 2) == 0.0


# -- Resources ---------------------------------------------------------------------------------
def test_from_options_normalises_docker_flags() -> None:
    r = Resources.from_options(
        memory="512m",
        memory_reservation="256m",
        cpus="1.5",
        cpu_shares="512",
        cpuset_cpus="0-1",
        pids_limit="100",
        blkio_weight="300",
        ncpus=2,
    )
    assert r.memory == 512 * MiB and r.memory_swap == 1024 * MiB and r.memory_reservation == 256 * MiB
    assert (r.cpus, r.cpu_quota, r.cpu_period, r.cpu_shares) == (1.5, 150000, 100000, 512)
    assert (r.cpuset_cpus, r.pids_limit, r.blkio_weight) == ("0-1", 100, 300)
    assert Resources.from_options(memory="1g", memory_swap="-1").memory_swap == -1
    assert Resources.from_options(pids_limit="0").pids_limit == -1
    assert Resources.from_options(pids_limit=-1).pids_limit == -1
    assert Resources.from_options(cpu_quota="-1").cpu_quota == -1
    assert Resources.from_options().is_empty()
    assert Resources.from_options(memory="", device_read_bps=[]).is_empty()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"memory": "12x"}, "'12x'"),
        ({"memory": "1m"}, "minimum memory limit is 6m"),
        ({"memory": "-1m"}, "'-1m'"),
        ({"memory_swap": "1g"}, "needs a memory limit"),
        ({"memory": "1g", "memory_swap": "512m"}, "below the memory limit"),
        ({"memory": "64m", "memory_reservation": "128m"}, "above the memory limit"),
        ({"cpus": "3", "ncpus": 2}, "from 0.01 to 2"),
        ({"cpus": "0.001"}, "from 0.01"),
        ({"cpus": "abc"}, "'abc'"),
        ({"cpus": "1", "cpu_quota": "50000"}, "conflicting options"),
        ({"cpu_period": "500"}, "cpu-period: 500"),
        ({"cpu_period": "2000000"}, "cpu-period: 2000000"),
        ({"cpu_quota": "10"}, "cpu-quota: 10"),
        ({"cpu_shares": "lots"}, "'lots'"),
        ({"cpuset_cpus": "0-"}, "'0-'"),
        ({"cpuset_cpus": "3-1"}, "runs backwards"),
        ({"cpuset_mems": "a"}, "'a'"),
        ({"pids_limit": "many"}, "'many'"),
        ({"blkio_weight": "5"}, "from 10 to 1000"),
        ({"blkio_weight": "2000"}, "from 10 to 1000"),
        ({"device_read_bps": ["/dev/null:1mb"]}, "not a block device"),
        ({"device_read_bps": ["/nonexistent/dev:1mb"]}, "cannot stat device"),
        ({"device_read_bps": ["nocolon"]}, "DEVICE:RATE"),
    ],
)
def test_from_options_rejects_bad_values(kwargs: dict, needle: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        Resources.from_options(**kwargs)
    msg = str(exc.value)
    assert needle in msg, msg
    assert "\n" not in msg and msg[0].islower()


def _a_block_device() -> str | None:
    import stat

    for name in sorted(os.listdir("/dev")):
        path = f"/dev/{name}"
        try:
            if stat.S_ISBLK(os.stat(path).st_mode):
                return path
        except OSError:
            continue
    return None


def test_from_options_device_throttles() -> None:
    dev = _a_block_device()
    if dev is None:
        pytest.skip("no block device in /dev")
    st = os.stat(dev)
    mm = (os.major(st.st_rdev), os.minor(st.st_rdev))
    r = Resources.from_options(device_read_bps=[f"{dev}:1mb"], device_write_iops=[f"{dev}:300"])
    assert r.device_read_bps == [(*mm, MiB)] and r.device_write_iops == [(*mm, 300)]
    with pytest.raises(InvalidArgument, match="'1mb'"):
        Resources.from_options(device_read_iops=[f"{dev}:1mb"])


def test_oci_round_trip() -> None:
    r = Resources(
        memory=64 * MiB,
        memory_swap=-1,
        memory_reservation=32 * MiB,
        cpu_shares=512,
        cpu_quota=50000,
        cpu_period=100000,
        cpuset_cpus="0",
        cpuset_mems="0",
        pids_limit=10,
        blkio_weight=300,
        device_read_bps=[(8, 0, 1024)],
        device_write_iops=[(8, 0, 10)],
    )
    doc = r.to_dict()
    assert doc == {
        "memory": {"limit": 64 * MiB, "swap": -1, "reservation": 32 * MiB},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 10},
        "blockIO": {
            "weight": 300,
            "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1024}],
            "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 10}],
        },
    }
    again = Resources.from_dict(json.loads(json.dumps(doc)))
    assert again == r
    assert Resources.from_options(memory="1g", cpus="1", ncpus=2).to_dict()["cpu"] == {
        "quota": 100000,
        "period": 100000,
    }
    assert Resources().to_dict() == {}


def test_from_oci_reads_runtime_spec_and_ignores_unknown_keys() -> None:
    r = Resources.from_oci(
        {
            "memory": {"limit": 1 << 30, "kernel": 0, "swappiness": 0},
            "pids": {"limit": 0},
            "devices": [{"allow": False, "access": "rwm"}],
            "hugepageLimits": [],
        }
    )
    assert (r.memory, r.pids_limit, r.cpu_shares) == (1 << 30, None, None)


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"memory": 5},
        {"memory": {"limit": "1g"}},
        {"cpu": {"shares": 1.5}},
        {"pids": {"limit": True}},
        {"blockIO": {"throttleReadBpsDevice": {"major": 8}}},
        {"blockIO": {"throttleReadBpsDevice": [{"major": 8}]}},
        {"cpu": {"cpus": 3}},
        {"memory": {"limit": 1 << 20, "swap": 1 << 19}},
    ],
)
def test_from_oci_rejects_malformed(doc: object) -> None:
    with pytest.raises(InvalidArgument, match="^invalid "):
        Resources.from_oci(doc)  # type: ignore[arg-type]


def test_merged_update() -> None:
    saved = Resources.from_options(memory="64m", cpus="1", pids_limit="10", ncpus=2)
    new = saved.merged(Resources.from_options(pids_limit="20", partial=True))
    assert (new.memory, new.memory_swap, new.cpu_quota, new.pids_limit) == (64 * MiB, 128 * MiB, 100000, 20)
    swap_only = Resources.from_options(memory_swap="256m", partial=True)
    assert swap_only.memory is None and saved.merged(swap_only).memory_swap == 256 * MiB
    with pytest.raises(InvalidArgument, match="below the memory limit"):
        saved.merged(Resources.from_options(memory="512m", partial=True))  # docker: update --memory-swap too
    both = saved.merged(Resources.from_options(memory="512m", memory_swap="-1", partial=True))
    assert (both.memory, both.memory_swap) == (512 * MiB, -1)


def test_resources_are_light() -> None:
    r = Resources()
    with pytest.raises(AttributeError):
        r.bogus = 1  # type: ignore[attr-defined]
    code = "import sys; import pycontain.cgroups.resources, pycontain.cgroups; print('dataclasses' in sys.modules, 'cgroupspy' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout.split()
    assert out == ["False", "False"]


# -- factory -----------------------------------------------------------------------------------
def test_detect_mode(tmp_path) -> None:
    assert detect_mode(str(tmp_path)) == "legacy"
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("")
    assert detect_mode(str(tmp_path)) == "hybrid"
    (tmp_path / "cgroup.controllers").write_text("")
    assert detect_mode(str(tmp_path)) == "unified"


def test_own_cgroups_and_v1_mounts_parse(tmp_path) -> None:
    cg = tmp_path / "cgroup"
    cg.write_text("12:cpu,cpuacct:/a\n4:memory:/process_api/x\n1:name=systemd:/\n0::/user.slice/s\n")
    assert own_cgroups(str(cg)) == {
        "cpu": "/a",
        "cpuacct": "/a",
        "memory": "/process_api/x",
        "name=systemd": "/",
        "": "/user.slice/s",
    }
    mi = tmp_path / "mountinfo"
    mi.write_text(
        "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:1 - cgroup cgroup rw,cpu,cpuacct\n"
        "35 31 0:32 /process_api /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
        "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
        "50 31 0:40 / /elsewhere/pids rw - cgroup cgroup rw,pids\n"
    )
    mounts = v1_mounts("/sys/fs/cgroup", str(mi))
    assert mounts == {
        "cpu": ("/sys/fs/cgroup/cpu,cpuacct", "/"),
        "cpuacct": ("/sys/fs/cgroup/cpu,cpuacct", "/"),
        "memory": ("/sys/fs/cgroup/memory", "/process_api"),
    }


def test_new_manager_with_parent_and_bad_arguments(tmp_path) -> None:
    for c in ("memory", "pids"):
        (tmp_path / c).mkdir()
        (tmp_path / c / "cgroup.procs").write_text("")
    m = new_manager("abc", parent="/my/parent", driver="v1", root=str(tmp_path))
    assert isinstance(m, V1Manager)
    assert m.dirs == {
        "memory": f"{tmp_path}/memory/my/parent/pycontain-abc",
        "pids": f"{tmp_path}/pids/my/parent/pycontain-abc",
    }
    assert m.path == "/my/parent/pycontain-abc"
    with pytest.raises(Unsupported, match="cgroup v2 is not mounted"):
        new_manager("abc", driver="v2", root=str(tmp_path))
    (tmp_path / "cgroup.controllers").write_text("")
    m2 = new_manager("abc", parent="/p", root=str(tmp_path))
    assert isinstance(m2, V2Manager) and m2.dir == f"{tmp_path}/p/pycontain-abc"
    with pytest.raises(Unsupported, match="no cgroup v1 controller"):
        new_manager("abc", driver="v1", root=str(tmp_path))
    with pytest.raises(InvalidArgument, match="'v3'"):
        new_manager("abc", driver="v3", root=str(tmp_path))
    with pytest.raises(InvalidArgument, match="cgroup parent"):
        new_manager("abc", parent="/a/../../etc", root=str(tmp_path))
    with pytest.raises(InvalidArgument, match="container id"):
        new_manager("a/b", root=str(tmp_path))


def test_nested_parent_is_created_and_cpuset_filled(tmp_path) -> None:
    """v1 create with a --cgroup-parent that does not exist yet (fake cgroupfs: plain files)."""
    cs = tmp_path / "cpuset"
    cs.mkdir()
    (cs / "cgroup.procs").write_text("")
    (cs / "cpuset.cpus").write_text("0-1\n")
    (cs / "cpuset.mems").write_text("0\n")
    m = new_manager("abc", parent="/p/q", driver="v1", root=str(tmp_path))

    # a real cpuset directory comes with empty cpuset files; mimic that for the directories create() makes
    real_mkdir = os.mkdir

    def mkdir(path, *a, **kw):
        real_mkdir(path, *a, **kw)
        for name in ("cpuset.cpus", "cpuset.mems"):
            with open(os.path.join(path, name), "w"):
                pass

    import unittest.mock

    with unittest.mock.patch("os.mkdir", mkdir):
        m.create()
    for d in (cs / "p", cs / "p" / "q", cs / "p" / "q" / "pycontain-abc"):
        assert (d / "cpuset.cpus").read_text() == "0-1" and (d / "cpuset.mems").read_text() == "0"


def test_load_manager_rejects_garbage() -> None:
    for bad in (
        None,
        {},
        {"driver": "v2", "path": "/x"},
        {"driver": "v1", "path": "/x", "dirs": "no"},
        {"driver": "v9", "path": "/x", "dir": "/y"},
    ):
        with pytest.raises(InvalidArgument, match="invalid cgroup record"):
            load_manager(bad)  # type: ignore[arg-type]


def test_is_frozen_reads_the_record_alone(tmp_path) -> None:
    """pycontain.freezer: the freezer state from a state file's cgroup record, v1 and v2, without a driver;
    no freezer, a cgroup gone or a damaged record read as not frozen."""
    from pycontain.freezer import is_frozen

    (tmp_path / "freezer.state").write_text("FROZEN\n")
    (tmp_path / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    assert is_frozen({"driver": "v1", "path": "/x", "dirs": {"freezer": str(tmp_path)}})
    assert is_frozen({"driver": "v2", "path": "/x", "dir": str(tmp_path)})
    (tmp_path / "freezer.state").write_text("FREEZING\n")
    (tmp_path / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    assert not is_frozen({"driver": "v1", "path": "/x", "dirs": {"freezer": str(tmp_path)}})
    assert not is_frozen({"driver": "v2", "path": "/x", "dir": str(tmp_path)})
    assert not is_frozen({"driver": "v1", "path": "/x", "dirs": {"memory": str(tmp_path)}})
    assert not is_frozen({"driver": "v1", "path": "/x", "dirs": {"freezer": str(tmp_path / "gone")}})
    assert not is_frozen(None) and not is_frozen("garbage")  # type: ignore[arg-type]
