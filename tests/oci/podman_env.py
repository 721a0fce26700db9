"""A throw-away podman world for driving pycontain as podman's OCI runtime.

Everything podman touches lives in one temp directory (storage with the vfs driver, run root, its tmp
dir, events log, containers.conf) or in a namespace that ends with it, and podman runs inside
namespaces of its own:

* a cgroup created beneath this process's own cgroup in every hierarchy (v1 controllers, name=systemd,
  cgroup2), never at a hierarchy's root, which belongs to whatever runs the tests;
* a cgroup namespace rooted there, and a mount namespace in which each hierarchy is mounted again, so
  podman's absolute cgroup parent (``/libpod_parent``) and the ``cgroupsPath`` it hands pycontain resolve
  beneath that cgroup;
* a pid namespace whose PID 1 (a small reaper) outlives single podman commands, so conmon and detached
  containers survive between them, and killing it ends every process podman started.

``close()`` undoes all of it, in order, and is safe to call after any failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYCONTAIN = os.path.join(REPO, ".venv", "bin", "pycontain")
IMAGE = "localhost/pycontain-busybox:test"

# PID 1 of the pid namespace: mounts each cgroup hierarchy again on a fresh /sys/fs/cgroup (so each one's
# root is the cgroup namespace's root), hides the host's /dev/shm (podman's lock segment lives there),
# /run and /var/lib, says it is ready, then reaps.
_INIT = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
def mount(source, target, fstype, data, flags=0):
    if libc.mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode()) != 0:
        raise OSError(ctypes.get_errno(), f"mount {fstype} on {target} ({data})")
found = []
for line in open("/proc/self/mountinfo").readlines():
    f = line.split()
    sep = f.index("-")
    if f[sep + 1] in ("cgroup", "cgroup2") and f[4].startswith("/sys/fs/cgroup/"):
        found.append((f[4], f[sep + 1], ",".join(o for o in f[sep + 3].split(",") if o not in ("rw", "ro"))))
# The same superblock cannot be mounted on itself (EBUSY): a fresh tmpfs goes over /sys/fs/cgroup first.
mount("tmpfs", "/sys/fs/cgroup", "tmpfs", "mode=755")
for point, fstype, opts in found:
    os.mkdir(point)
    mount(fstype, point, fstype, opts)
mount("shm", "/dev/shm", "tmpfs", "mode=1777,size=64m")
# Private /run (pycontain's default state root /run/pycontain and its index live there) and /var/lib
# (podman's image copies write /var/lib/containers/cache whatever --root says): writes to the latter land
# in the temp dir through an overlay.
mount("run", "/run", "tmpfs", "mode=755")
varlib = sys.argv[2]
mount("overlay", "/var/lib", "overlay", f"lowerdir=/var/lib,upperdir={varlib}/upper,workdir={varlib}/work")
open(sys.argv[1], "w").write(str(os.getpid()))
while True:
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(0.2)
"""


def _containers_conf(tmp: str) -> str:
    return f"""\
[containers]
netns = "none"
log_driver = "k8s-file"
default_ulimits = ["nofile=1024:20000", "nproc=4096:32768"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{tmp}/events.log"
tmp_dir = "{tmp}/libpod-tmp"
runtime_supports_nocgroup = ["pycontain"]

[engine.runtimes]
pycontain = ["{PYCONTAIN}"]
"""


def hybrid_or_v1() -> bool:
    """This sandbox is built for v1 and hybrid hosts (/sys/fs/cgroup a tmpfs of per-controller mounts).
    On a pure cgroup2 host podman's cgroupfs manager would need controllers enabled in a cgroup that holds
    this process (v2's no-internal-processes rule), which a delegated subtree does not allow."""
    return not os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def _own_hierarchies() -> list[tuple[str, str]]:
    """(mount point, our cgroup path in it) for every cgroup hierarchy mounted under /sys/fs/cgroup."""
    own = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            own[ctrls] = path
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            point, fstype, opts = fields[4], fields[sep + 1], fields[sep + 3].split(",")
            if fstype == "cgroup2" and "" in own:
                found.append((point, own[""]))
            elif fstype == "cgroup":
                key = {
                    o
                    for o in opts
                    if o.startswith("name=")
                    or (
                        o not in ("rw", "ro", "xattr", "noprefix", "clone_children", "cpuset_v2_mode")
                        and "=" not in o
                    )
                }
                for ctrls, path in own.items():
                    if ctrls and set(ctrls.split(",")) == key:
                        found.append((point, path))
    return found


class PodmanEnv:
    def __init__(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pycontain-podman-")
        self.cgroups: list[str] = []
        self.unshare: subprocess.Popen | None = None
        self.init_pid: int | None = None
        self.env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": self.tmp,
            "CONTAINERS_CONF": os.path.join(self.tmp, "containers.conf"),
            "CONTAINERS_STORAGE_CONF": os.path.join(self.tmp, "storage.conf"),
            "TMPDIR": os.path.join(self.tmp, "tmpdir"),
            "LANG": "C.UTF-8",
        }

    # -- set-up ----------------------------------------------------------------------------------

    def open(self) -> PodmanEnv:
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def _setup(self) -> None:
        t = self.tmp
        for d in ("storage", "runroot", "libpod-tmp", "tmpdir", "varlib/upper", "varlib/work"):
            os.makedirs(os.path.join(t, d))
        with open(self.env["CONTAINERS_CONF"], "w") as f:
            f.write(_containers_conf(t))
        with open(self.env["CONTAINERS_STORAGE_CONF"], "w") as f:
            f.write(f'[storage]\ndriver = "vfs"\ngraphroot = "{t}/storage"\nrunroot = "{t}/runroot"\n')
        name = f"pycontain-podman-{uuid.uuid4().hex[:12]}"
        for point, path in _own_hierarchies():
            _sweep_stale(os.path.join(point, path.lstrip("/")))
            d = os.path.join(point, path.lstrip("/"), name)
            os.mkdir(d)
            self.cgroups.append(d)
            if os.path.exists(os.path.join(d, "cpuset.cpus")):
                for f in ("cpuset.cpus", "cpuset.mems"):
                    with open(os.path.join(os.path.dirname(d), f)) as src:
                        value = src.read().strip()
                    with open(os.path.join(d, f), "w") as dst:
                        dst.write(value or "\n")
        ready = os.path.join(t, "init.pid")
        # The child moves itself into the new cgroups before exec'ing unshare, so the cgroup namespace
        # unshare makes is rooted at them.
        with open(os.path.join(t, "init.err"), "w") as err:
            self.unshare = subprocess.Popen(
                [
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "--pid",
                    "--fork",
                    "--kill-child",
                    "--mount-proc",
                    "--cgroup",
                    sys.executable,
                    "-I",
                    "-S",
                    "-c",
                    _INIT,
                    ready,
                    os.path.join(t, "varlib"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                preexec_fn=self._join_cgroups_tied,
                env=self.env,
            )
        deadline = time.monotonic() + 20
        while not os.path.exists(ready) or not open(ready).read():
            if self.unshare.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the podman namespace did not start: {open(os.path.join(t, 'init.err')).read()}"
                )
            time.sleep(0.02)
        with open(f"/proc/{self.unshare.pid}/task/{self.unshare.pid}/children") as f:
            self.init_pid = int(f.read().split()[0])

    def _join_cgroups_tied(self) -> None:
        """Join the cgroups, and die with this process (unshare --kill-child then ends the namespace):
        a killed test run leaves no podman, conmon or container behind."""
        import ctypes

        self._join_cgroups()
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    def _join_cgroups(self) -> None:
        for d in self.cgroups:
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write("0")

    # -- running podman --------------------------------------------------------------------------

    def argv(self, *args: str) -> list[str]:
        t = self.tmp
        return [
            "nsenter",
            "-t",
            str(self.init_pid),
            "--mount",
            "--pid",
            "--cgroup",
            "--",
            "podman",
            "--root",
            f"{t}/storage",
            "--runroot",
            f"{t}/runroot",
            "--storage-driver",
            "vfs",
            "--runtime",
            PYCONTAIN,
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            *args,
        ]

    def __call__(
        self, *args: str, timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess:
        """Run ``podman ARGS`` in the namespaces; stdout and stderr are captured as text. Detached
        containers' conmon keeps no pipe of ours open (podman hands it /dev/null)."""
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            p = subprocess.run(
                self.argv(*args),
                env=self.env,
                preexec_fn=self._join_cgroups,
                timeout=timeout,
                stdin=subprocess.DEVNULL if input is None else None,
                input=input,
                stdout=out,
                stderr=err,
                text=True,
            )
            out.seek(0)
            err.seek(0)
            p.stdout, p.stderr = out.read(), err.read()
        return p

    def runtime(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """``pycontain ARGS`` in the namespaces, with the state root podman's runtime calls use."""
        argv = ["nsenter", "-t", str(self.init_pid), "--mount", "--pid", "--cgroup", "--", PYCONTAIN, *args]
        return subprocess.run(
            argv,
            env=self.env,
            preexec_fn=self._join_cgroups,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )

    # -- tear-down -------------------------------------------------------------------------------

    def close(self) -> None:
        if self.init_pid is not None:
            try:
                self("rm", "--all", "--force", "--time", "0", timeout=60)
            except Exception:
                pass
        if self.unshare is not None:
            # PID 1 of the namespace dies: the kernel kills every process in it (conmon, containers).
            if self.init_pid is not None:
                _kill(self.init_pid)
            if self.unshare.poll() is None:
                try:
                    self.unshare.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.unshare.kill()
                    self.unshare.wait(timeout=10)
        for d in self.cgroups:
            _remove_cgroup_tree(d)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> PodmanEnv:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _sweep_stale(parent: str) -> None:
    """Remove the cgroup trees a killed earlier run of this module left beneath ``parent`` (ours, by
    name), when no process is left in them; a live run's tree always holds its namespace's PID 1."""
    for entry in os.listdir(parent):
        top = os.path.join(parent, entry)
        if not entry.startswith("pycontain-podman-") or not os.path.isdir(top):
            continue
        try:
            if any(open(os.path.join(d, "cgroup.procs")).read().strip() for d, _, _ in os.walk(top)):
                continue
            for d in sorted((d for d, _, _ in os.walk(top)), key=lambda p: p.count("/"), reverse=True):
                os.rmdir(d)
        except OSError:
            pass


def _remove_cgroup_tree(top: str) -> None:
    """rmdir ``top`` and everything beneath it, deepest first, once their processes are gone."""
    deadline = time.monotonic() + 10
    while os.path.isdir(top):
        dirs = [d for d, _, _ in os.walk(top)]
        for d in sorted(dirs, key=lambda p: p.count("/"), reverse=True):
            try:
                os.rmdir(d)
            except FileNotFoundError:
                pass
            except OSError:
                if time.monotonic() > deadline:
                    raise
        if os.path.isdir(top):
            time.sleep(0.05)
