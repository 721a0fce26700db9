"""A container's filesystem changes: ``commit`` them as a new image, or ``snapshot`` / ``restore`` them in place.

A docker-style container's changes are its overlayfs upper directory (``<state dir>/upper``): new and changed
files, 0/0 character devices for deleted ones, ``trusted.overlay.opaque=y`` on directories that replace a
lower one. ``commit`` turns it into a layer of the image store (``rootfs_builder.changes`` converts the
whiteouts) on top of the container's image. Snapshots are copies of it kept in the container's own
directory, ``<state dir>/snapshots/<name>/`` (removed with the container); ``restore`` puts one back. Both
only touch a stopped container: overlayfs's upper directory must not change under a mounted overlay.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import time

from . import DEFAULT_PATH
from .config_check import validate_name
from .container import Container
from .errors import AlreadyExists, InvalidArgument, InvalidState, NotFound, PycontainError


def _upper(c: Container) -> str:
    upper = os.path.join(c.dir, "upper")
    if not c.state.config.overlay or not os.path.isdir(upper):
        raise InvalidArgument(
            f"container {c.name} has no copy-on-write layer (an OCI bundle's root filesystem "
            "is used in place): nothing to commit or snapshot"
        )
    return upper


def _stopped(c: Container, action: str) -> None:
    if c.state.alive():
        raise InvalidState(
            f"cannot {action} container {c.name}: it is {c.status()}; stop it first "
            f"('pycontain stop {c.name}')"
        )


def _copy_tree(src: str, dest: str) -> None:
    """An exact copy: whiteouts (device nodes), xattrs (opaque directories), owners, modes, times, hard links."""
    proc = subprocess.run(
        ["cp", "-a", "--reflink=auto", "--", src, dest], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        shutil.rmtree(dest, ignore_errors=True)
        raise PycontainError(
            f"cannot copy {src}: {proc.stderr.strip().splitlines()[-1] if proc.stderr else 'cp failed'}"
        )


def _du(path: str) -> tuple[int, int]:
    size = files = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames + dirnames:
            try:
                size += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
                files += 1
            except OSError:
                pass
    return size, files


# -- commit ---------------------------------------------------------------------------------------------
def commit(
    ref: str, name: str, root: str | None = None, data_root: str | None = None, *, message: str | None = None
) -> dict:
    """Make image ``name`` from container ``ref``: its image's layers plus one layer of its changes.

    The image keeps the container's image config (Entrypoint, Cmd, Env...). A running container is paused
    while its changes are read, so the layer is one consistent state. Returns the image's store record.
    """
    from rootfs_builder.changes import layer_from_dir
    from rootfs_builder.onelayer import tree_pipe
    from rootfs_builder.store import Store, arch, parse_name

    tag = parse_name(name)
    c = Container.get(ref, root)
    upper = _upper(c)
    cfg = c.state.config
    store = Store(data_root)
    paused_here = False
    if c.status() == "running":
        try:
            c.pause()
            paused_here = True
        except PycontainError:
            pass  # no freezer: commit anyway, as docker does with --pause=false
    try:
        with store.importing():
            index = store.load()
            image_id = cfg.image_id
            if image_id in index["images"]:
                rec = index["images"][image_id]
                layers, sizes = list(rec["layers"]), list(rec["layer_sizes"])
                with open(os.path.join(store.images_dir, image_id, "config.json"), "rb") as f:
                    doc = json.loads(f.read())
            else:
                # 'default' or a root filesystem directory: its tree becomes the base layer.
                layers, sizes = [], []
                for path in cfg.layers:
                    diff, size, _ = store.add_layer(functools.partial(tree_pipe, path), path)
                    layers.append(diff)
                    sizes.append(size)
                image_cmd = ["/bin/sh"] if cfg.image == "default" else None
                doc = {
                    "architecture": arch(),
                    "os": "linux",
                    "config": {k: v for k, v in (("Env", [f"PATH={DEFAULT_PATH}"]), ("Cmd", image_cmd)) if v},
                    "history": [{"created_by": f"pycontain import {cfg.image}"}],
                }
            diff, size = layer_from_dir(store, upper, f"container {c.name}'s changes", upper=True)
            layers.append(diff)
            sizes.append(size)
            doc["rootfs"] = {"type": "layers", "diff_ids": [f"sha256:{d}" for d in layers]}
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            doc["created"] = stamp
            entry = {"created": stamp, "created_by": f"pycontain commit {c.id[:12]} ({c.name})"}
            if message:
                entry["comment"] = message
            doc["history"] = list(doc.get("history") or []) + [entry]
            config_bytes = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
            return store.add_image(config_bytes, layers, name=tag, source=f"commit:{c.id}", sizes=sizes)
    finally:
        if paused_here:
            try:
                c.unpause()
            except PycontainError:
                pass


# -- snapshots ------------------------------------------------------------------------------------------
def _snap_dir(c: Container) -> str:
    return os.path.join(c.dir, "snapshots")


def snapshot(ref: str, name: str | None = None, root: str | None = None) -> dict:
    """Save stopped container ``ref``'s filesystem changes as snapshot ``name`` (default ``snap-N``)."""
    c = Container.get(ref, root)
    with c.store.lock():
        _stopped(c, "snapshot")
        upper = _upper(c)
        snaps = _snap_dir(c)
        os.makedirs(snaps, mode=0o700, exist_ok=True)
        if name is None:
            n = 1
            while os.path.exists(os.path.join(snaps, f"snap-{n}")):
                n += 1
            name = f"snap-{n}"
        try:
            validate_name(name)
        except InvalidArgument:
            raise InvalidArgument(
                f"invalid snapshot name {name!r}: use letters, digits, '_', '.' and '-'"
            ) from None
        dest = os.path.join(snaps, name)
        if os.path.exists(dest):
            raise AlreadyExists(
                f"container {c.name} already has a snapshot {name!r} (see 'pycontain snapshot ls "
                f"{c.name}'; choose another name)"
            )
        tmp = os.path.join(snaps, f".tmp-{name}")
        shutil.rmtree(tmp, ignore_errors=True)
        os.mkdir(tmp, 0o700)
        try:
            _copy_tree(upper, os.path.join(tmp, "upper"))
            size, files = _du(os.path.join(tmp, "upper"))
            meta = {"name": name, "created": time.time(), "size": size, "files": files}
            with open(os.path.join(tmp, "snapshot.json"), "w") as f:
                json.dump(meta, f)
            os.rename(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return meta


def snapshots(ref: str, root: str | None = None) -> list[dict]:
    """Container ``ref``'s snapshots, oldest first."""
    c = Container.get(ref, root)
    snaps = _snap_dir(c)
    out = []
    for entry in sorted(os.listdir(snaps)) if os.path.isdir(snaps) else []:
        if entry.startswith("."):
            continue
        try:
            with open(os.path.join(snaps, entry, "snapshot.json")) as f:
                out.append(json.load(f))
        except (OSError, ValueError):
            continue
    return sorted(out, key=lambda m: m["created"])


def restore(ref: str, name: str, root: str | None = None) -> dict:
    """Roll stopped container ``ref``'s filesystem back to snapshot ``name`` (the snapshot is kept)."""
    c = Container.get(ref, root)
    with c.store.lock():
        _stopped(c, "restore")
        upper = _upper(c)
        src = os.path.join(_snap_dir(c), name, "upper")
        if "/" in name or name.startswith(".") or not os.path.isdir(src):
            raise NotFound(
                f"container {c.name} has no snapshot {name!r} (see 'pycontain snapshot ls {c.name}')"
            )
        fresh, old = f"{upper}.restore", f"{upper}.old"
        for d in (fresh, old):
            shutil.rmtree(d, ignore_errors=True)
        _copy_tree(src, fresh)
        # Two renames: an interruption leaves either the old upper or the restored one in place, never a mix.
        os.rename(upper, old)
        os.rename(fresh, upper)
        shutil.rmtree(old, ignore_errors=True)
        work = os.path.join(c.dir, "work")
        if os.path.isdir(work):  # overlayfs's scratch space refers to the old upper: start it afresh
            shutil.rmtree(work, ignore_errors=True)
            os.mkdir(work, 0o755)
        with open(os.path.join(_snap_dir(c), name, "snapshot.json")) as f:
            return json.load(f)


def remove_snapshot(ref: str, name: str, root: str | None = None) -> None:
    c = Container.get(ref, root)
    path = os.path.join(_snap_dir(c), name)
    if "/" in name or name.startswith(".") or not os.path.isdir(path):
        raise NotFound(f"container {c.name} has no snapshot {name!r} (see 'pycontain snapshot ls {c.name}')")
    trash = os.path.join(_snap_dir(c), f".trash-{name}")
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)
