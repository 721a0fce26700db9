"""The local image store: content-addressed layers unpacked once, and an index of images and their names.

Layout under the data root::

    <data>/layers/                     0700: layers hold setuid binaries and must not be reachable by users
    <data>/layers/<diff_id hex>/       one unpacked layer (overlayfs form), shared read-only by every image
    <data>/layers/.tmp-*               layers being unpacked (renamed into place when verified)
    <data>/layers/.trash-*             layers being deleted (renamed away first: never half a layer in place)
    <data>/layers/.lock-<hex>          held while that layer is unpacked, so it is unpacked once
    <data>/images/index.json           {"version", "images": {id: record}, "names": {"name:tag": id}}
    <data>/images/<id>/config.json     the image's config as imported (its sha256 is the id)
    <data>/images/<id>/manifest.json   the manifest it came with, when it had one
    <data>/images/build-cache/<key>.json  ``pycontain build``'s step cache: the layers after each step
    <data>/images/.lock                held (exclusively, briefly) while the index changes
    <data>/images/.gc.lock             shared by imports for their whole run, exclusive for rmi and clean-up,
                                       so no layer is collected between its unpacking and its image's record

``index.json`` is replaced atomically (write, fsync, rename): readers (``rootfs_builder.resolve_image`` on
every ``pycontain run``) read it without a lock and always see a whole version.
"""

from __future__ import annotations

import builtins  # `list` in annotations inside the classes that define a list() method
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import time
from collections.abc import Callable, Iterator

from pycontain.errors import InvalidArgument, InvalidState, NotFound, PycontainError
from rootfs_builder import data_root as _data_root
from rootfs_builder.layer import BadImage, LayerInfo, Reader, unpack
from rootfs_builder.store_lookup import find

INDEX_VERSION = 1
CONFIG_KEYS = ("Entrypoint", "Cmd", "Env", "WorkingDir", "User", "ExposedPorts", "Volumes")
_NAME_RE = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_HEX_RE = re.compile(r"^[0-9a-f]{64}$")


def arch() -> str:
    machine = platform.machine()
    return {
        "x86_64": "amd64",
        "aarch64": "arm64",
        "armv7l": "arm",
        "i686": "386",
        "ppc64le": "ppc64le",
        "s390x": "s390x",
        "riscv64": "riscv64",
    }.get(machine, machine)


def parse_name(ref: str) -> str:
    """``name[:tag]`` → ``name:tag`` (``latest`` by default), checked with docker's rules."""
    name, tag = ref, "latest"
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        name, tag = ref[:colon], ref[colon + 1 :]
    if not name or not _NAME_RE.match(name):
        raise InvalidArgument(
            f"invalid image name {ref!r}: use lower-case letters, digits and . _ - / "
            "(e.g. 'web' or 'tools/python:3.11')"
        )
    if not _TAG_RE.match(tag):
        raise InvalidArgument(
            f"invalid image tag {tag!r} in {ref!r}: use letters, digits and . _ - "
            "(at most 128, not starting with . or -)"
        )
    if _HEX_RE.match(name):
        raise InvalidArgument(f"invalid image name {ref!r}: a 64-hex-digit name would read as an image id")
    return f"{name}:{tag}"


def normalize_config(cfg: dict | None) -> dict:
    """The runtime part of an image config with every key present (docker's defaults for missing ones)."""
    cfg = cfg or {}
    out = {
        "Entrypoint": list(cfg["Entrypoint"]) if cfg.get("Entrypoint") else None,
        "Cmd": list(cfg["Cmd"]) if cfg.get("Cmd") else None,
        "Env": [str(e) for e in cfg.get("Env") or []],
        "WorkingDir": str(cfg.get("WorkingDir") or ""),
        "User": str(cfg.get("User") or ""),
        "ExposedPorts": dict(cfg.get("ExposedPorts") or {}),
        "Volumes": dict(cfg.get("Volumes") or {}),
    }
    for key in ("Labels", "StopSignal", "Resources"):
        if cfg.get(key):
            out[key] = cfg[key]
    return out


def _fsync_write(path: str, data: bytes, mode: int = 0o644) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


@contextlib.contextmanager
def _flock(path: str, how: int) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, how)
        yield fd
    finally:
        os.close(fd)


DEFAULT_MAX_LAYER_SIZE = 32 << 30


def layer_size_limit() -> int:
    """The most a layer may unpack to: $PYCONTAIN_MAX_LAYER_SIZE (docker's units), else 32 GiB."""
    value = os.environ.get("PYCONTAIN_MAX_LAYER_SIZE")
    if not value:
        return DEFAULT_MAX_LAYER_SIZE
    from pycontain.units import parse_size

    return parse_size(value, "PYCONTAIN_MAX_LAYER_SIZE")


class Store:
    """One data root's images and layers. ``max_layer_size``: what one layer may unpack to, at most
    (default: ``layer_size_limit()``, read when a layer is unpacked); an import past it fails and leaves
    nothing."""

    def __init__(self, data_root: str | None = None, max_layer_size: int | None = None) -> None:
        self.max_layer_size = max_layer_size
        self.root = _data_root(data_root)
        self.layers_dir = os.path.join(self.root, "layers")
        self.images_dir = os.path.join(self.root, "images")
        self.index_path = os.path.join(self.images_dir, "index.json")

    # -- set-up and locks ---------------------------------------------------------------------------
    def ensure(self) -> None:
        os.makedirs(self.root, mode=0o755, exist_ok=True)
        for d, mode in ((self.layers_dir, 0o700), (self.images_dir, 0o700)):
            try:
                os.mkdir(d, mode)
            except FileExistsError:
                pass

    @contextlib.contextmanager
    def importing(self) -> Iterator[None]:
        """Held for a whole import: layers it unpacks are safe from collection until its image is recorded."""
        self.ensure()
        gc_lock = os.path.join(self.images_dir, ".gc.lock")
        with _flock(gc_lock, fcntl.LOCK_SH) as fd:
            try:  # alone in the store: whatever temporary layers exist were left by a crash
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._clean_leftovers()
            except BlockingIOError:
                pass
            # flock converts a lock by dropping it first: a failed upgrade may have left us with none, and
            # without one another import could take the store alone and sweep our temporary layers away.
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        self.ensure()
        with _flock(os.path.join(self.images_dir, ".gc.lock"), fcntl.LOCK_EX):
            self._clean_leftovers()
            yield

    @contextlib.contextmanager
    def _index_lock(self) -> Iterator[None]:
        with _flock(os.path.join(self.images_dir, ".lock"), fcntl.LOCK_EX):
            yield

    def _clean_leftovers(self) -> None:
        tmp = os.path.join(self.root, "tmp")
        if os.path.isdir(tmp):
            for entry in os.listdir(tmp):
                if entry.startswith(("archive-", "bootstrap-", "closure-", "build-", "pull-", "push-")):
                    path = os.path.join(tmp, entry)
                    if os.path.isdir(path) and not os.path.islink(path):
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        os.unlink(path)
        for entry in os.listdir(self.layers_dir):
            if entry.startswith((".tmp-", ".trash-")):
                shutil.rmtree(os.path.join(self.layers_dir, entry), ignore_errors=True)
            elif entry.startswith(".lock-"):
                try:
                    os.unlink(os.path.join(self.layers_dir, entry))
                except OSError:
                    pass

    # -- the index ----------------------------------------------------------------------------------
    def load(self) -> dict:
        try:
            with open(self.index_path, "rb") as f:
                data = json.loads(f.read())
        except FileNotFoundError:
            return {"version": INDEX_VERSION, "images": {}, "names": {}}
        except ValueError:
            raise PycontainError(
                f"the image index {self.index_path} is damaged (not JSON): move it away and "
                "re-import the images"
            ) from None
        data.setdefault("images", {})
        data.setdefault("names", {})
        return data

    def _save(self, index: dict) -> None:
        index["version"] = INDEX_VERSION
        _fsync_write(self.index_path, json.dumps(index, indent=1, sort_keys=True).encode(), 0o644)

    @contextlib.contextmanager
    def modify(self) -> Iterator[dict]:
        """Load the index under its lock; save it when the block ends without an error."""
        self.ensure()
        with self._index_lock():
            index = self.load()
            yield index
            self._save(index)

    # -- lookups ------------------------------------------------------------------------------------
    @staticmethod
    def find(index: dict, ref: str) -> str | None:
        """The id ``ref`` names (name[:tag], a docker.io-less short name, a full id or an id prefix)."""
        return Store.find_name(index, ref)[0]

    @staticmethod
    def find_name(index: dict, ref: str) -> tuple[str | None, str | None]:
        """(id, the name it was found by, or None when found by id)."""
        return find(index, ref)

    def get(self, ref: str, index: dict | None = None) -> dict:
        index = index if index is not None else self.load()
        image_id = self.find(index, ref)
        if image_id is None:
            raise NotFound(f"no such image: {ref!r} (see 'pycontain images')")
        return self.record(index, image_id)

    @staticmethod
    def record(index: dict, image_id: str) -> dict:
        rec = dict(index["images"][image_id])
        rec["names"] = sorted(n for n, i in index["names"].items() if i == image_id)
        return rec

    def layer_path(self, diff_id: str) -> str:
        return os.path.join(self.layers_dir, diff_id)

    def list(self) -> list[dict]:
        index = self.load()
        return sorted(
            (self.record(index, i) for i in index["images"]), key=lambda r: r.get("imported", 0), reverse=True
        )

    # -- layers -------------------------------------------------------------------------------------
    def add_layer(
        self,
        opener: Callable[[], Reader],
        what: str,
        *,
        expect_diff: str | None = None,
        expect_blob: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[str, int, bool]:
        """Unpack a layer unless the store already has it. Returns (diff_id, size, newly_unpacked).

        ``opener()`` returns a readable binary stream of the (possibly compressed) layer. With ``expect_diff``
        known beforehand the layer is unpacked at most once, even by concurrent imports.
        """
        if expect_diff is not None:
            final = self.layer_path(expect_diff)
            if os.path.isdir(final):
                return expect_diff, self._known_size(expect_diff), False
            lock = os.path.join(self.layers_dir, f".lock-{expect_diff}")
            with _flock(lock, fcntl.LOCK_EX):
                if os.path.isdir(final):
                    return expect_diff, self._known_size(expect_diff), False
                info = self._unpack(opener, what, expect_diff, expect_blob, progress)
                try:  # whoever waits on it re-checks for the layer, which is in place now
                    os.unlink(lock)
                except OSError:
                    pass
                return info.diff_id, info.size, True
        info = self._unpack(opener, what, None, expect_blob, progress)
        return info.diff_id, info.size, True

    def _known_size(self, diff: str) -> int:
        for rec in self.load()["images"].values():
            if diff in rec["layers"]:
                return rec["layer_sizes"][rec["layers"].index(diff)]
        return _layer_size(self.layer_path(diff))

    def _unpack(
        self,
        opener: Callable[[], Reader],
        what: str,
        expect_diff: str | None,
        expect_blob: str | None,
        progress: Callable[[int], None] | None,
    ) -> LayerInfo:
        import tempfile

        tmp = tempfile.mkdtemp(prefix=".tmp-", dir=self.layers_dir)
        try:
            src = opener()
            try:
                info = unpack(
                    src,
                    tmp,
                    what,
                    expect_blob=expect_blob,
                    expect_diff=expect_diff,
                    progress=progress,
                    max_size=self.max_layer_size if self.max_layer_size is not None else layer_size_limit(),
                )
            finally:
                close = getattr(src, "close", None)
                if close is not None:
                    close()
            final = self.layer_path(info.diff_id)
            try:
                os.rename(tmp, final)
            except OSError:
                if not os.path.isdir(final):
                    raise
                shutil.rmtree(tmp, ignore_errors=True)  # a concurrent import of the same content won
            return info
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(e, PermissionError):
                raise
            raise PycontainError(
                f"{what}: cannot unpack the layer into {self.layers_dir}: {e.strerror or e}"
            ) from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    # -- images -------------------------------------------------------------------------------------
    def add_image(
        self,
        config_bytes: bytes,
        layers: builtins.list[str],
        *,
        name: str | None,
        source: str,
        manifest_bytes: bytes | None = None,
        sizes: builtins.list[int] | None = None,
    ) -> dict:
        """Record an image whose layers are in the store. Its id is the sha256 of its config."""
        try:
            config = json.loads(config_bytes)
        except ValueError as e:
            raise BadImage(f"{source}: the image config is not JSON ({e})") from None
        image_id = hashlib.sha256(config_bytes).hexdigest()
        tag = parse_name(name) if name else None
        for diff in layers:
            if not os.path.isdir(self.layer_path(diff)):
                raise PycontainError(
                    f"layer {diff[:12]} vanished from the store during the import (try again)"
                )
        img_dir = os.path.join(self.images_dir, image_id)
        os.makedirs(img_dir, mode=0o700, exist_ok=True)
        _fsync_write(os.path.join(img_dir, "config.json"), config_bytes)
        if manifest_bytes is not None:
            _fsync_write(os.path.join(img_dir, "manifest.json"), manifest_bytes)
        inner = config.get("config") or {}
        with self.modify() as index:
            old = index["images"].get(image_id)
            index["images"][image_id] = {
                "id": image_id,
                "layers": list(layers),
                "layer_sizes": list(sizes) if sizes else [_layer_size(self.layer_path(d)) for d in layers],
                "config": normalize_config(inner),
                "architecture": config.get("architecture", ""),
                "os": config.get("os", ""),
                "created": config.get("created") or "",
                "imported": old["imported"] if old else time.time(),
                "source": source,
                "has_manifest": manifest_bytes is not None or bool(old and old.get("has_manifest")),
            }
            if tag:
                index["names"][tag] = image_id
            rec = self.record(index, image_id)
        return rec

    def tag(self, ref: str, new_name: str) -> str:
        tag = parse_name(new_name)
        with self.modify() as index:
            image_id = self.find(index, ref)
            if image_id is None:
                raise NotFound(f"no such image: {ref!r} (see 'pycontain images')")
            index["names"][tag] = image_id
        return tag

    def rmi(
        self, ref: str, in_use: Callable[[str], bool], force: bool = False
    ) -> tuple[builtins.list[str], builtins.list[str]]:
        """Untag ``ref``; remove its image when no name is left (or ``ref`` is its id), then its unused layers.

        Returns (untagged names, deleted ids). An image that ``in_use(id)`` says a container uses is refused.
        """
        with self.exclusive(), self.modify() as index:
            image_id, by_name = self.find_name(index, ref)
            if image_id is None:
                raise NotFound(f"no such image: {ref!r} (see 'pycontain images')")
            names = sorted(n for n, i in index["names"].items() if i == image_id)
            if by_name is not None and len(names) > 1:
                del index["names"][by_name]
                return [by_name], []
            if by_name is None and len(names) > 1 and not force:
                raise InvalidState(
                    f"image {image_id[:12]} has several names ({', '.join(names)}): remove them "
                    "one by one, or use --force to remove the image and all its names"
                )
            if in_use(image_id):
                raise InvalidState(
                    f"image {ref!r} ({image_id[:12]}) is in use by a container (remove the "
                    "container first: 'pycontain ps -a')"
                )
            for n in names:
                del index["names"][n]
            del index["images"][image_id]
            keep = {d for rec in index["images"].values() for d in rec["layers"]}
            self._save(index)
            shutil.rmtree(os.path.join(self.images_dir, image_id), ignore_errors=True)
            self._collect(keep)
            return names, [image_id]

    def _collect(self, keep: set[str]) -> builtins.list[str]:
        removed = []
        for entry in os.listdir(self.layers_dir):
            path = os.path.join(self.layers_dir, entry)
            if entry.startswith(".") or entry in keep or not _HEX_RE.match(entry):
                continue
            trash = os.path.join(self.layers_dir, f".trash-{entry}")
            os.rename(path, trash)
            shutil.rmtree(trash, ignore_errors=True)
            removed.append(entry)
        return removed

    def discard_new_layers(self, before: set[str]) -> builtins.list[str]:
        """After a failed import: delete the layers that appeared since ``before`` (a listing of the layers
        directory) and that no image references. Waits for other imports, which may be about to use them."""
        with self.exclusive(), self._index_lock():
            index = self.load()
            keep = before | {d for rec in index["images"].values() for d in rec["layers"]}
            return self._collect(keep)

    def prune_layers(self) -> builtins.list[str]:
        """Delete layers no image references (left by interrupted imports and failed builds), and the build
        cache's entries that named them."""
        with self.exclusive(), self._index_lock():
            index = self.load()
            removed = self._collect({d for rec in index["images"].values() for d in rec["layers"]})
            cache = os.path.join(self.images_dir, "build-cache")
            for entry in os.listdir(cache) if os.path.isdir(cache) else []:
                path = os.path.join(cache, entry)
                try:
                    with open(path, "rb") as f:
                        layers = json.loads(f.read())["layers"]
                except (OSError, ValueError, KeyError, TypeError):
                    layers = None
                if layers is None or not all(os.path.isdir(self.layer_path(d)) for d in layers):
                    os.unlink(path)
            return removed

    def inspect(self, ref: str) -> dict:
        index = self.load()
        rec = self.get(ref, index)
        out = {
            "Id": f"sha256:{rec['id']}",
            "RepoTags": rec["names"],
            "Created": rec["created"],
            "Architecture": rec["architecture"],
            "Os": rec["os"],
            "Size": sum(rec["layer_sizes"]),
            "Config": rec["config"],
            "Source": rec["source"],
            "RootFS": {"Type": "layers", "Layers": [f"sha256:{d}" for d in rec["layers"]]},
            "Layers": [self.layer_path(d) for d in rec["layers"]],
        }
        try:
            with open(os.path.join(self.images_dir, rec["id"], "config.json"), "rb") as f:
                full = json.loads(f.read())
            if full.get("history"):
                out["History"] = full["history"]
        except (OSError, ValueError):
            pass
        return out


def _layer_size(path: str) -> int:
    """The disk usage of an unpacked layer (bytes), counting hard-linked files once."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames + dirnames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total
