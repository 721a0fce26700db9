"""``pycontain build``: an appliance manifest (``pycontain.build.manifest``) to an image of the store.

Steps, in order: **base** (``default``, ``debian:SUITE`` with its packages, ``closure:...`` or a stored image),
**pip** (wheels fetched by the image's own python3 in a build container, installed offline in another),
**files** (copied from beneath the manifest's directory), **run** (each command in a container of the image
being built). Every step but an image base adds one layer.

The step cache: a step's key is the sha256 of its parent's key and of the step itself (for files, their
contents), and ``<data>/images/build-cache/<key>.json`` records the layers the image has after it. A build
walks the keys from the top and resumes after the last step whose layers are all still in the store, so an
unchanged manifest costs only the hashing. Identical manifests give identical configs, hence the same image id.

Build containers are ordinary pycontain containers (``Container.create``) on the layers built so far,
in a private state root under ``<data>/tmp/build-*``; each one's overlayfs upper directory becomes the step's
layer (``rootfs_builder.changes``), and the container is removed.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pycontain import DEFAULT_PATH
from pycontain.build.cache import State, StepCache, step_key, tree_digest
from pycontain.build.manifest import Manifest
from pycontain.build.progress import BuildProgress, short
from pycontain.errors import InvalidArgument, NotFound, PycontainError
from rootfs_builder.store import Store, arch

if TYPE_CHECKING:
    from pycontain.config import ContainerConfig
    from pycontain.container import Container

# At the root: a /tmp mount point would be hidden by an image-less /tmp tmpfs.
WHEELS_MOUNT = ".pycontain-wheels"
PIP_MOUNT = ".pycontain-pip"
CA_MOUNT = ".pycontain-ca.pem"
# The host's pip settings a fetch container gets (where the index is, how long to wait): host config.
PIP_HOST_SETTINGS = frozenset(
    {"PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_DEFAULT_TIMEOUT", "PIP_RETRIES"}
)
DEFAULT_ENV = [f"PATH={DEFAULT_PATH}"]


class BuildError(PycontainError):
    """A build step failed: the message names the step and the command's last line of output."""


# -- steps ----------------------------------------------------------------------------------------------
class Step:
    def __init__(self, desc: str, key_parts: Callable[[], tuple], run: Callable[[State], State]) -> None:
        self.desc = desc
        self.key_parts = key_parts
        self.run = run


class Builder:
    def __init__(
        self,
        manifest: Manifest,
        store: Store,
        progress: BuildProgress,
        data_root: str | None,
        *,
        mirror: str | None = None,
        network: str = "none",
    ) -> None:
        self.m = manifest
        self.mirror = mirror  # the command line's choices, never the manifest's
        self.network = network
        self.store = store
        self.progress = progress
        self.data_root = data_root
        self.work: str | None = None
        self.n_containers = 0

    # -- the steps' list ----------------------------------------------------------------------------
    def steps(self) -> list[Step]:
        m = self.m
        steps = [self._base_step()]
        if m.pip:
            steps.append(Step(f"pip {' '.join(m.pip)}", lambda: ("pip", m.pip), self._pip))
        if m.files:
            steps.append(
                Step(
                    f"files {', '.join(f.dest for f in m.files)}",
                    lambda: (
                        "files",
                        [
                            (
                                f.dest,
                                f.into,
                                os.path.basename(f.src),
                                f.mode,
                                f.uid,
                                f.gid,
                                tree_digest(f.src),
                            )
                            for f in m.files
                        ],
                    ),
                    self._files,
                )
            )
        for cmd in m.run:
            steps.append(
                Step(
                    f"run {cmd}",
                    functools.partial(tuple, ("run", cmd, self.network)),  # the key, known now
                    functools.partial(self._run_step, cmd=cmd),
                )
            )
        return steps

    def _base_step(self) -> Step:
        base = self.m.base
        if base == "default":

            def key() -> tuple:
                import rootfs_builder

                path = rootfs_builder.resolve("default", self.data_root)
                with rootfs_builder.open_manifest(path) as f:
                    # "2": layers cached before the manifest left the tree hold it at /; never reuse them.
                    return ("base-default", 2, hashlib.sha256(f.read()).hexdigest())

            return Step("base default (busybox)", key, self._base_default)
        if base.startswith("debian:"):
            desc = f"base {base} ({self.m.variant}{': ' + ', '.join(self.m.packages) if self.m.packages else ''})"
            return Step(
                desc,
                lambda: (
                    "base-debian",
                    base[7:],
                    self.m.variant,
                    sorted(self.m.packages),
                    self.mirror or "",
                ),
                self._base_debian,
            )
        if base.startswith("closure:"):
            paths = [p for p in base[8:].split(",") if p]

            def closure_key() -> tuple:
                stats = []
                for p in paths:
                    full = shutil.which(p) or p
                    try:
                        st = os.stat(full)
                    except OSError:
                        raise NotFound(
                            f"{self.m.where}: base {base!r}: no such binary on this host: {p!r}"
                        ) from None
                    stats.append((full, st.st_size, st.st_mtime_ns))
                return ("base-closure", stats)

            return Step(f"base {base}", closure_key, self._base_closure)
        return Step(f"base image {base}", lambda: ("base-image", self._image(base)["id"]), self._base_image)

    def _image(self, ref: str) -> dict:
        try:
            return self.store.get(ref)
        except NotFound:
            raise NotFound(
                f"{self.m.where}: 'base' is {ref!r}, which is not an image of the store: import it, or "
                'use "default", "debian:SUITE" or "closure:BINARY"'
            ) from None

    # -- base -----------------------------------------------------------------------------------------
    def _base_default(self, _state: State) -> State:
        import rootfs_builder
        from rootfs_builder.onelayer import tree_pipe

        path = rootfs_builder.resolve("default", self.data_root)
        diff, size, _ = self.store.add_layer(lambda: tree_pipe(path), "default rootfs")
        return State(
            [diff],
            [size],
            {"Env": DEFAULT_ENV, "Cmd": ["/bin/sh"]},
            [{"created_by": "pycontain build: base default (busybox)"}],
        )

    def _base_debian(self, _state: State) -> State:
        from rootfs_builder.debian import bootstrap

        suite = self.m.base[7:]
        with bootstrap(
            self.store,
            suite,
            self.progress,
            variant=self.m.variant,
            include=self.m.packages,
            mirror=self.mirror,
        ) as (opener, _size, what, _source, comment):
            self.progress.status("unpacking the bootstrap")
            diff, size, _ = self.store.add_layer(opener, what)
        cmd = ["/bin/bash"] if self.m.variant not in ("extract", "custom") else None
        return State([diff], [size], {"Env": DEFAULT_ENV, "Cmd": cmd}, [{"created_by": comment}])

    def _base_closure(self, _state: State) -> State:
        from rootfs_builder.closure import closure_opener

        opener, resolved, source = closure_opener(self.m.base[8:].split(","), self.progress)
        diff, size, _ = self.store.add_layer(opener, source)
        return State(
            [diff],
            [size],
            {"Env": DEFAULT_ENV, "Cmd": [resolved[0]]},
            [{"created_by": f"pycontain closure {' '.join(resolved)}"}],
        )

    def _base_image(self, _state: State) -> State:
        rec = self._image(self.m.base)
        return State(
            list(rec["layers"]),
            list(rec["layer_sizes"]),
            dict(rec["config"]),
            [{"created_by": f"FROM {self.m.base} (sha256:{rec['id']})"}] * len(rec["layers"]),
        )

    # -- pip ------------------------------------------------------------------------------------------
    def _pip(self, state: State) -> State:
        """The manifest's requirements (PEP 508 names and versions, checked by the manifest) are fetched by
        the image's own python3 in a build container on the bridge network, wheels only, then installed
        offline in a second one: nothing the manifest names is read or run on the host. The host only
        downloads pip's own wheel, by its fixed name, for images that have no pip."""
        try:
            code, out, _ = self._container(
                state, ["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], keep=False
            )
        except PycontainError as e:
            code, out = e.exit_code, str(e)
        version = out.strip().splitlines()[-1] if code == 0 and out.strip() else ""
        if code != 0 or not version.replace(".", "").isdigit():
            raise BuildError(
                f"{self.m.where}: 'pip' needs python3 in the image, and it does not run there "
                f'({_last(out) or f"exit status {code}"}): add packages = ["python3"]'
            )
        tools = os.path.join(self._workdir(), "pip")
        wheels = os.path.join(self._workdir(), "wheels")
        os.makedirs(tools, exist_ok=True)
        os.makedirs(wheels, exist_ok=True)
        self.progress.status("pip download pip on the host")
        self._host(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--disable-pip-version-check",
                "--only-binary=:all:",
                "--no-deps",
                "-d",
                tools,
                "pip",
            ],
            "pip download pip",
        )
        pip_whl = sorted(glob.glob(os.path.join(tools, "pip-*.whl")))
        if not pip_whl:
            raise BuildError("pip download did not fetch pip's own wheel")
        from pycontain.spec.docker import bind

        tools_at, wheels_at = f"/{PIP_MOUNT}", f"/{WHEELS_MOUNT}"
        pip = ["python3", f"{tools_at}/{os.path.basename(pip_whl[-1])}/pip"]
        common = ["--disable-pip-version-check", "--no-cache-dir"]
        mounts = [bind(tools, tools_at, readonly=True)]
        env = []
        ca = _ca_bundle()
        if ca is not None:  # the host's trust anchors, for a host behind a TLS-inspecting proxy
            mounts.append(bind(ca, f"/{CA_MOUNT}", readonly=True))
            env.append(f"PIP_CERT=/{CA_MOUNT}")
        env += [f"{k}={v}" for k, v in os.environ.items() if k in PIP_HOST_SETTINGS]
        self.progress.status("pip download in a build container")
        fetch = [*pip, "download", *common, "--only-binary=:all:", "-d", wheels_at, "--", *self.m.pip]
        try:
            code, out, _ = self._container(
                state,
                fetch,
                mounts=[*mounts, bind(wheels, wheels_at)],
                keep=False,
                network="bridge",
                extra_env=env,
            )
        except PycontainError as e:
            raise BuildError(f"{self.m.where}: pip download cannot run in a build container: {e}") from None
        if code != 0:
            lines = [ln for ln in out.splitlines() if ln.strip()]
            err = [ln for ln in lines if "ERROR" in ln] or lines[-1:]
            raise BuildError(
                f"{self.m.where}: pip download {' '.join(self.m.pip)} failed: "
                f"{err[0].strip() if err else f'exit status {code}'} "
                "(check the 'pip' requirements; wheels must exist for the image's Python)"
            )
        argv = [
            *pip,
            "install",
            *common,
            "--no-index",
            "--find-links",
            wheels_at,
            "--root-user-action=ignore",
            "--no-warn-script-location",
            "--break-system-packages",
            "--",
            *self.m.pip,
        ]
        return self._container_layer(
            state,
            argv,
            f"pip install {' '.join(self.m.pip)}",
            mounts=[*mounts[:1], bind(wheels, wheels_at, readonly=True)],
            skip=frozenset({PIP_MOUNT, WHEELS_MOUNT}),
        )

    def _host(self, argv: list[str], what: str) -> None:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
            err = [ln for ln in lines if "ERROR" in ln] or lines[-1:]
            raise BuildError(f"{self.m.where}: {what} failed: {err[0].strip() if err else proc.returncode}")

    # -- files ----------------------------------------------------------------------------------------
    def _files(self, state: State) -> State:
        from rootfs_builder.onelayer import tar_pipe

        def fill(tf: tarfile.TarFile) -> None:
            done: set[str] = set()
            for spec in self.m.files:
                rel = spec.dest.lstrip("/")
                if not os.path.isdir(spec.src) and (spec.into or self._lookup(state, rel) == "dir"):
                    rel = f"{rel}/{os.path.basename(spec.src)}"  # never a file over a whole directory
                parts = rel.split("/")
                for i in range(1, len(parts)):
                    parent = "/".join(parts[:i])
                    if parent not in done:
                        tf.addfile(self._parent_dir(state, parent))
                        done.add(parent)

                def own(ti: tarfile.TarInfo, spec=spec) -> tarfile.TarInfo:
                    ti.uid, ti.gid, ti.uname, ti.gname = spec.uid, spec.gid, "", ""
                    if spec.mode is not None and ti.isreg():
                        ti.mode = spec.mode
                    return ti

                tf.add(spec.src, arcname=rel, recursive=True, filter=own)

        diff, size, _ = self.store.add_layer(lambda: tar_pipe(fill), f"{self.m.where}: files")
        return state.plus(diff, size, f"pycontain build: files {' '.join(f.dest for f in self.m.files)}")

    def _lookup(self, state: State, rel: str) -> str | None:
        """What ``rel`` is in the image: "dir", "other", or None (absent or deleted)."""
        for layer in reversed(state.layers):
            try:
                st = os.lstat(os.path.join(self.store.layer_path(layer), rel))
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                return None
            return "dir" if stat.S_ISDIR(st.st_mode) else "other"
        return None

    def _parent_dir(self, state: State, rel: str) -> tarfile.TarInfo:
        """A directory entry for ``rel`` with the attributes the image already gives it (the top layer's)."""
        ti = tarfile.TarInfo(rel)
        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
        for layer in reversed(state.layers):
            try:
                st = os.lstat(os.path.join(self.store.layer_path(layer), rel))
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                ti.mode, ti.uid, ti.gid, ti.mtime = (
                    st.st_mode & 0o7777,
                    st.st_uid,
                    st.st_gid,
                    int(st.st_mtime),
                )
            elif stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                pass  # deleted by a later layer: the directory is new
            else:
                raise BuildError(
                    f"{self.m.where}: 'files' copies to /{rel}/..., but /{rel} is not a directory "
                    "in the image: choose another dest"
                )
            break
        return ti

    # -- run ------------------------------------------------------------------------------------------
    def _run_step(self, state: State, cmd: str) -> State:
        return self._container_layer(state, ["/bin/sh", "-c", cmd], f"run {cmd}")

    def _container_layer(
        self,
        state: State,
        argv: list[str],
        what: str,
        *,
        mounts: list | None = None,
        skip: frozenset[str] = frozenset(),
    ) -> State:
        from rootfs_builder.changes import layer_from_dir

        try:
            code, out, container = self._container(state, argv, mounts=mounts, keep=True)
        except BuildError:
            raise
        except PycontainError as e:  # the container could not start (no /bin/sh...): a build error
            raise BuildError(f"{self.m.where}: step '{short(what)}' cannot run: {e}") from None
        assert container is not None  # kept
        try:
            if code != 0:
                raise BuildError(
                    f"{self.m.where}: step '{short(what)}' failed with exit status {code}"
                    f"{': ' + _last(out) if _last(out) else ''}"
                )
            self.progress.status("saving the layer")
            diff, size = layer_from_dir(
                self.store, os.path.join(container.dir, "upper"), what, skip=skip, upper=True
            )
        finally:
            container.remove(force=True)
        return state.plus(diff, size, f"pycontain build: {what}")

    def _container(
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

        root = os.path.join(self._workdir(), "state")
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
        # _follow shows as it grows and errors quote from.
        out_path = os.path.join(self._workdir(), f"{name}.out")
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
            line = _last(data.decode(errors="replace"))
            if line:
                self.progress.status(line)

    def _workdir(self) -> str:
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


def _ca_bundle() -> str | None:
    """The host's CA bundle (pip's, requests' or OpenSSL's setting, else Debian's file), if any."""
    for candidate in (
        os.environ.get("PIP_CERT"),
        os.environ.get("REQUESTS_CA_BUNDLE"),
        os.environ.get("SSL_CERT_FILE"),
        "/etc/ssl/certs/ca-certificates.crt",
    ):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


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


def _last(text: str) -> str:
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


# -- the entry point ------------------------------------------------------------------------------------
class BuildResult:
    def __init__(self, record: dict, steps: int, cached: int, seconds: float) -> None:
        self.record = record
        self.steps = steps
        self.cached = cached
        self.seconds = seconds


def build(
    manifest_path: str,
    tag: str | None = None,
    data_root: str | None = None,
    *,
    progress: bool | None = False,
    no_cache: bool = False,
    mirror: str | None = None,
    network: str = "none",
) -> BuildResult:
    """Build the appliance ``manifest_path`` into the store, named ``tag`` (else the manifest's ``name``).

    ``progress``: True a live display, None plain lines when stderr is not a terminal, False nothing.
    ``mirror``: the Debian mirror of a ``debian:`` base (default: apt's). ``network``: what build commands
    get, "none" or "host" (the host's own network: for trusted manifests only).
    """
    from rootfs_builder.store import parse_name

    if network not in ("none", "host"):
        raise InvalidArgument(f"--network {network!r}: a build's commands get 'none' (the default) or 'host'")
    started = time.monotonic()
    manifest = Manifest.load(manifest_path)
    name = tag or manifest.name
    if not name:
        raise InvalidArgument(
            f'{manifest_path}: no image name: give one with -t NAME, or name = "..." in the manifest'
        )
    name = parse_name(name)
    from pycontain import rootless

    unprivileged = rootless.unprivileged()
    if unprivileged:
        # Build steps are rootless containers, as 'pycontain run' makes for this user. The user namespace
        # comes first: unshare(CLONE_NEWUSER) refuses a process with threads (the live display's).
        rootless.enter()
    store = Store(data_root)
    cache = StepCache(store)
    bar = BuildProgress(progress)
    if unprivileged and not rootless.cgroup_delegated():
        bar.note(
            "rootless build: no cgroup is delegated to this user, so build steps run without cgroup limits"
        )
    builder = Builder(manifest, store, bar, data_root, mirror=mirror, network=network)
    cached = 0
    try:
        with store.importing():
            steps = builder.steps()
            keys, key = [], "pycontain-build-v1"
            for step in steps:
                key = step_key(key, *step.key_parts())
                keys.append(key)
            # Resume after the last step the cache still holds: every step before it is then cached too.
            resume, state = 0, State([], [], {}, [])
            if not no_cache:
                for i in range(len(steps) - 1, -1, -1):
                    hit = cache.get(keys[i])
                    if hit is not None:
                        resume, state = i + 1, hit
                        break
            for i, step in enumerate(steps):
                bar.step(i + 1, len(steps), step.desc)
                if i < resume:
                    cached += 1
                    bar.done(cached=True)
                    continue
                state = step.run(state)
                cache.put(keys[i], state)
                bar.done(cached=False)
            config = manifest.image_config(state.config)
            doc = {
                "architecture": arch(),
                "os": "linux",
                "config": config,
                "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in state.layers]},
                "history": state.history,
            }
            config_bytes = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
            record = store.add_image(
                config_bytes,
                state.layers,
                name=name,
                source=f"build:{os.path.abspath(manifest_path)}",
                sizes=state.sizes,
            )
    finally:
        bar.close()
        builder.cleanup()
    return BuildResult(record, len(steps), cached, time.monotonic() - started)
