"""A throw-away namespace set in which an engine (podman, containerd, dockerd) runs as if it owned the host.

Engines put their cgroups at the root of every hierarchy (``/libpod_parent``, ``/k8s.io``, ``/docker``), write
under /run, /var/lib and /etc, and keep processes (conmon, shims) alive between calls. Inside a
``NamespaceSandbox`` all of that lands in places the test made and ``close()`` removes:

* a cgroup created beneath this process's own cgroup in every hierarchy (v1 controllers, name=systemd,
  cgroup2), never at a hierarchy's root, which belongs to whatever runs the tests;
* a cgroup namespace rooted there, and a mount namespace in which each hierarchy is mounted again, so an
  engine's absolute cgroup paths resolve beneath that cgroup;
* a private /run and /dev/shm, and overlays on the directories given (writes land in the temp dir);
* optionally a network namespace of its own (only lo), for engines that make bridges and veths;
* a pid namespace whose PID 1 (a small reaper) outlives single commands, so daemons and detached
  containers survive between them, and killing it ends every process started inside.
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

# PID 1 of the pid namespace: mounts each cgroup hierarchy again on a fresh /sys/fs/cgroup (so each one's
# root is the cgroup namespace's root), a private /dev/shm and /run, an overlay on each directory named
# (argv: ready-file, then TARGET=UPPERBASE pairs), brings lo up, says it is ready, then reaps.
_INIT = r"""
import ctypes, os, subprocess, sys, time
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
mount("run", "/run", "tmpfs", "mode=755")
for pair in sys.argv[2:]:
    target, base = pair.split("=", 1)
    mount("overlay", target, "overlay", f"lowerdir={target},upperdir={base}/upper,workdir={base}/work")
if os.environ.get("NSBOX_NET"):
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
open(sys.argv[1], "w").write(str(os.getpid()))
while True:
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(0.2)
"""

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def hybrid_or_v1() -> bool:
    """The sandbox is built for v1 and hybrid hosts (/sys/fs/cgroup a tmpfs of per-controller mounts).
    On a pure cgroup2 host an engine's cgroupfs manager would need controllers enabled in a cgroup that
    holds this process (v2's no-internal-processes rule), which a delegated subtree does not allow."""
    return not os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def own_hierarchies() -> list[tuple[str, str]]:
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


class NamespaceSandbox:
    """Open with ``open()`` (or ``with``); run commands inside with ``run()`` / ``popen()``."""

    prefix = "pycontain-nsbox-"  # of the temp dir and of the cgroups (a later run sweeps a killed one's)

    def __init__(self, overlays: tuple[str, ...] = ("/var/lib",), net: bool = False) -> None:
        self.tmp = tempfile.mkdtemp(prefix=self.prefix)
        self.overlays = overlays
        self.net = net
        self.cgroups: list[str] = []
        self.unshare: subprocess.Popen | None = None
        self.init_pid: int | None = None
        self.env = {"PATH": PATH, "HOME": self.tmp, "LANG": "C.UTF-8"}
        if os.environ.get("PYTHONPATH"):  # the pycontain under test, wherever the test run takes it from
            self.env["PYTHONPATH"] = os.environ["PYTHONPATH"]

    # -- set-up ----------------------------------------------------------------------------------

    def open(self):
        try:
            self._setup()
            self.setup()
        except BaseException:
            self.close()
            raise
        return self

    def setup(self) -> None:
        """What a subclass prepares once the namespaces exist (files, daemons)."""

    def _setup(self) -> None:
        t = self.tmp
        pairs = []
        for i, target in enumerate(self.overlays):
            base = os.path.join(t, f"overlay{i}")
            os.makedirs(os.path.join(base, "upper"))
            os.makedirs(os.path.join(base, "work"))
            pairs.append(f"{target}={base}")
        name = f"{self.prefix}{uuid.uuid4().hex[:12]}"
        for point, path in own_hierarchies():
            _sweep_stale(os.path.join(point, path.lstrip("/")), self.prefix)
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
        flags = ["--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--mount-proc"]
        flags += ["--cgroup", "--uts", "--ipc"] + (["--net"] if self.net else [])
        # The child moves itself into the new cgroups before exec'ing unshare, so the cgroup namespace
        # unshare makes is rooted at them.
        with open(os.path.join(t, "init.err"), "w") as err:
            self.unshare = subprocess.Popen(
                ["unshare", *flags, sys.executable, "-I", "-S", "-c", _INIT, ready, *pairs],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                preexec_fn=self._join_cgroups_tied,
                env={**self.env, "NSBOX_NET": "1" if self.net else ""},
            )
        deadline = time.monotonic() + 20
        while not os.path.exists(ready) or not open(ready).read():
            if self.unshare.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the namespace sandbox did not start: {open(os.path.join(t, 'init.err')).read()}"
                )
            time.sleep(0.02)
        with open(f"/proc/{self.unshare.pid}/task/{self.unshare.pid}/children") as f:
            self.init_pid = int(f.read().split()[0])

    def _join_cgroups_tied(self) -> None:
        """Join the cgroups, and die with this process (unshare --kill-child then ends the namespace):
        a killed test run leaves no daemon, shim or container behind."""
        import ctypes

        self._join_cgroups()
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    def _join_cgroups(self) -> None:
        for d in self.cgroups:
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write("0")

    # -- running commands inside -----------------------------------------------------------------

    def nsenter(self, *argv: str) -> list[str]:
        spaces = ["--mount", "--pid", "--cgroup", "--uts", "--ipc"] + (["--net"] if self.net else [])
        return ["nsenter", "-t", str(self.init_pid), *spaces, "--", *argv]

    def run(self, *argv: str, timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess:
        """``argv`` inside; stdout and stderr captured as text through files (a daemon or detached
        container that inherits them then holds no pipe this call waits on)."""
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            p = subprocess.run(
                self.nsenter(*argv),
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

    def popen(self, *argv: str, log: str) -> subprocess.Popen:
        """A long-lived process inside (a daemon), its output appended to ``log``."""
        with open(log, "a") as f:
            return subprocess.Popen(
                self.nsenter(*argv),
                env=self.env,
                preexec_fn=self._join_cgroups,
                stdin=subprocess.DEVNULL,
                stdout=f,
                stderr=subprocess.STDOUT,
            )

    # -- tear-down -------------------------------------------------------------------------------

    def teardown(self) -> None:
        """What a subclass undoes first, while the namespaces still exist (best effort)."""

    def close(self) -> None:
        if self.init_pid is not None:
            try:
                self.teardown()
            except Exception:
                pass
        if self.unshare is not None:
            # PID 1 of the namespace dies: the kernel kills every process in it (daemons, containers).
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

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _sweep_stale(parent: str, prefix: str) -> None:
    """Remove the cgroup trees a killed earlier run left beneath ``parent`` (ours, by name), when no
    process is left in them; a live run's tree always holds its namespace's PID 1."""
    for entry in os.listdir(parent):
        top = os.path.join(parent, entry)
        if not entry.startswith(prefix) or not os.path.isdir(top):
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
