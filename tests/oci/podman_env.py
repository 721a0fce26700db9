"""A throw-away podman world for driving pycontain as podman's OCI runtime.

Everything podman touches lives in one temp directory (storage with the vfs driver, run root, its tmp
dir, events log, containers.conf) or in the namespaces of a ``nsbox.NamespaceSandbox``: its cgroups beneath
ours (podman's absolute cgroup parent ``/libpod_parent`` and the ``cgroupsPath`` it hands pycontain resolve
there), a private /run (pycontain's default state root) and /dev/shm (podman's lock segment), an overlay on
/var/lib (podman's image copies write /var/lib/containers/cache whatever --root says), and a PID 1 that
keeps conmon and detached containers alive between podman commands.
"""

from __future__ import annotations

import os
import subprocess

from nsbox import NamespaceSandbox, hybrid_or_v1

__all__ = ["IMAGE", "PYCONTAIN", "PodmanEnv", "hybrid_or_v1"]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYCONTAIN = os.path.join(REPO, ".venv", "bin", "pycontain")
IMAGE = "localhost/pycontain-busybox:test"


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


class PodmanEnv(NamespaceSandbox):
    prefix = "pycontain-podman-"

    def __init__(self) -> None:
        super().__init__(overlays=("/var/lib",))
        self.env.update(
            CONTAINERS_CONF=os.path.join(self.tmp, "containers.conf"),
            CONTAINERS_STORAGE_CONF=os.path.join(self.tmp, "storage.conf"),
            TMPDIR=os.path.join(self.tmp, "tmpdir"),
        )

    def _setup(self) -> None:
        t = self.tmp
        for d in ("storage", "runroot", "libpod-tmp", "tmpdir"):
            os.makedirs(os.path.join(t, d))
        with open(self.env["CONTAINERS_CONF"], "w") as f:
            f.write(_containers_conf(t))
        with open(self.env["CONTAINERS_STORAGE_CONF"], "w") as f:
            f.write(f'[storage]\ndriver = "vfs"\ngraphroot = "{t}/storage"\nrunroot = "{t}/runroot"\n')
        super()._setup()

    # -- running podman --------------------------------------------------------------------------

    def podman(self, *args: str) -> list[str]:
        """podman's command line, with everything it keeps pointed into the temp dir."""
        t = self.tmp
        return [
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
        return self.run(*self.podman(*args), timeout=timeout, input=input)

    def runtime(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """``pycontain ARGS`` in the namespaces, with the state root podman's runtime calls use."""
        return self.run(PYCONTAIN, *args, timeout=timeout)

    def teardown(self) -> None:
        self("rm", "--all", "--force", "--time", "0", timeout=60)
