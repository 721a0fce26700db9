"""``pycontain build``: an appliance manifest (``pycontain.build.manifest``) to an image of the store.

Steps, in order: **base** (``default``, ``debian:SUITE`` with its packages, ``closure:...`` or a stored image),
**pip** (wheels fetched by the image's own python3 in a build container, installed offline in another),
**files** (copied from beneath the manifest's directory), **run** (each command in a container of the image
being built). Every step but an image base adds one layer.

The step cache: a step's key is the sha256 of its parent's key and of the step itself (for files, their
contents), and ``<data>/images/build-cache/<key>.json`` records the layers the image has after it. A build
walks the keys from the top and resumes after the last step whose layers are all still in the store, so an
unchanged manifest costs only the hashing. Identical manifests give identical configs, hence the same image id.

Build containers (``containers``) run the pip step (``pip``) and the run steps; this module lists the
steps, makes the base and files layers itself, and walks the cache.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import stat
import tarfile
import time
from collections.abc import Callable

from pycontain.build.cache import State, StepCache, step_key, tree_digest
from pycontain.build.containers import DEFAULT_ENV, BuildContainers, BuildError
from pycontain.build.manifest import Manifest
from pycontain.build.pip import pip_step
from pycontain.build.progress import BuildProgress
from pycontain.errors import InvalidArgument, NotFound
from rootfs_builder.store import Store, arch


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
        self.containers = BuildContainers(store, progress, manifest.where, network)

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

    # -- pip and run ----------------------------------------------------------------------------------
    def _pip(self, state: State) -> State:
        return pip_step(self.containers, self.m, state)

    def _run_step(self, state: State, cmd: str) -> State:
        return self.containers.layer(state, ["/bin/sh", "-c", cmd], f"run {cmd}")

    def cleanup(self) -> None:
        self.containers.cleanup()


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
