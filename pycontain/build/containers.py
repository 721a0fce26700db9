"""Build containers: a step's command run in an ordinary pycontain container of the layers built so far,
in a private state root under ``<data>/tmp/build-*``; its overlayfs upper directory becomes the step's
layer (``rootfs_builder.changes``), and the container is removed."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from typing import TYPE_CHECKING

from pycontain import DEFAULT_PATH
from pycontain.build.cache import State
from pycontain.build.progress import BuildProgress, short
from pycontain.errors import PycontainError
from rootfs_builder.store import Store

if TYPE_CHECKING:
    from pycontain.config import ContainerConfig
    from pycontain.container import Container

DEFAULT_ENV = [f"PATH={DEFAULT_PATH}"]


class BuildError(PycontainError):
    """A build step failed: the message names the step and the command's last line of output."""


class BuildContainers:
    """The build's containers, in a scratch directory of the store's that ``cleanup`` removes."""

    def __init__(self, store: Store, progress: BuildProgress, where: str, network: str) -> None:
        self.store = store
        self.progress = progress
        self.where = where  # the manifest, for errors
        self.network = network  # what build commands get: "none" or "host"
        self.work: str | None = None
        self.n_containers = 0

    def layer(
        self,
        state: State,
        argv: list[str],
        what: str,
        *,
        mounts: list | None = None,
        skip: frozenset[str] = frozenset(),
    ) -> State:
        """Run ``argv`` in a container of the layers so far; its changes are the new layer (``what``)."""
        from rootfs_builder.changes import layer_from_dir

        try:
            code, out, container = self.run(state, argv, mounts=mounts, keep=True)
        except BuildError:
            raise
        except PycontainError as e:  # the container could not start (no /bin/sh...): a build error
            raise BuildError(f"{self.where}: step '{short(what)}' cannot run: {e}") from None
        assert container is not None  # kept
        try:
            if code != 0:
                raise BuildError(
                    f"{self.where}: step '{short(what)}' failed with exit status {code}"
                    f"{': ' + last_line(out) if last_line(out) else ''}"
                )
            self.progress.status("saving the layer")
            diff, size = layer_from_dir(
                self.store, os.path.join(container.dir, "upper"), what, skip=skip, upper=True
            )
        finally:
            container.remove(force=True)
        return state.plus(diff, size, f"pycontain build: {what}")

    def run(
        self,
        state: State,
        argv: list[str],
        *,
        mounts: list | None = None,
        keep: bool,
        network: str | None = None,
        extra_env: list[str] | None = None,
    ) -> tuple[int, str, Container | None]:
        """Run ``argv`` in a container of the layers so far; (exit status, output, the container if ``keep``)."""
        from pycontain import api, rootless
        from pycontain.container import Container
        from pycontain.spec import docker

        root = os.path.join(self.workdir(), "state")
        self.n_containers += 1
        name = f"build-{os.getpid()}-{self.n_containers}"
        env = list(state.config.get("Env") or DEFAULT_ENV) + list(extra_env or [])
        if network is None:
            network = "host" if self.network == "host" else None
        if rootless.active() and network == "bridge":
            network = "host"  # a rootless container's only way out: bridges, veths and NAT need root
        cfg = docker.to_config(
            [self.store.layer_path(d) for d in state.layers],
            argv,
            name=name,
            image="pycontain-build",
            env=env,
            mounts=mounts,
            hostname="build",
            network=network,
            detach=True,
        )
        # The container's output is relayed (as for 'run') into a file of the build's work directory, which
        # ``_follow`` shows as it grows and errors quote from.
        out_path = os.path.join(self.workdir(), f"{name}.out")
        out_fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        stop = threading.Event()
        tail = threading.Thread(target=self._follow, args=(out_path, stop), daemon=True)
        tail.start()
        try:
            if rootless.active():
                code = _run_in_child(cfg, root, out_fd)
            else:
                code = api.run_config(cfg, root, stop_on_signal=True, output_fd=out_fd)
        finally:
            os.close(out_fd)
            stop.set()
            tail.join()
        container = next(c for c in Container.list(root) if c.name == name)
        try:
            with open(out_path, "rb") as f:
                out = f.read().decode(errors="replace")
        except OSError:
            out = ""
        if not keep:
            container.remove(force=True)
            return code, out, None
        return code, out, container

    def _follow(self, path: str, stop: threading.Event) -> None:
        """Show the build container's latest line of output while it runs."""
        pos = 0
        while not stop.wait(0.2):
            try:
                with open(path, "rb") as f:
                    f.seek(pos)
                    data = f.read()
            except OSError:
                continue
            pos += len(data)
            line = last_line(data.decode(errors="replace"))
            if line:
                self.progress.status(line)

    def workdir(self) -> str:
        """The build's scratch directory (its containers' state root, their output, pip's wheels)."""
        if self.work is None:
            tmp = os.path.join(self.store.root, "tmp")
            os.makedirs(tmp, mode=0o700, exist_ok=True)
            self.work = tempfile.mkdtemp(prefix="build-", dir=tmp)
        return self.work

    def cleanup(self) -> None:
        if self.work is None:
            return
        from pycontain.container import Container

        root = os.path.join(self.work, "state")
        if os.path.isdir(root):
            for c in Container.list(root):
                with contextlib.suppress(PycontainError, OSError):
                    c.remove(force=True)
        shutil.rmtree(self.work, ignore_errors=True)
        self.work = None


def _run_in_child(cfg: ContainerConfig, root: str, output_fd: int) -> int:
    """``api.run_config`` in a forked child: a rootless run sets up the container's pid namespace from
    the calling process, which afterwards can start no thread and no second container; the child takes
    that with it. Its error comes back as one line; a signal that stops the build stops the child too,
    which kills its container before it exits."""
    import signal

    from pycontain import api
    from pycontain.interrupts import STOPPING_SIGNALS

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        os.close(r)
        code = 125
        try:
            code = api.run_config(cfg, root, stop_on_signal=True, output_fd=output_fd)
        except KeyboardInterrupt as e:
            code = 128 + getattr(e, "signum", signal.SIGINT)
        except BaseException as e:
            os.write(w, str(e).encode(errors="replace")[:4096] or type(e).__name__.encode())
        os._exit(code)
    os.close(w)
    try:
        with os.fdopen(r, "rb") as f:
            error = f.read().decode(errors="replace")
        status = os.waitpid(pid, 0)[1]
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)  # the child kills the container, then exits
        os.waitpid(pid, 0)
        raise
    code = os.waitstatus_to_exitcode(status)
    if error:
        raise PycontainError(error)
    if code - 128 in STOPPING_SIGNALS:
        from pycontain.interrupts import Interrupted

        raise Interrupted(code - 128)
    return code


def last_line(text: str) -> str:
    """The last non-empty line of a command's output, shortened for one line of an error or the display."""
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""
