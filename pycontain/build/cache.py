"""The build's step cache: a step's key hashes its parent's key and the step itself (for files, their
contents); ``<data>/images/build-cache/<key>.json`` records the image's layers after it."""

from __future__ import annotations

import hashlib
import json
import os

from rootfs_builder.store import Store


class State:
    """The image after a step: its layers (lowest first) and their sizes, the base's config, its history."""

    def __init__(self, layers: list[str], sizes: list[int], config: dict, history: list[dict]) -> None:
        self.layers = layers
        self.sizes = sizes
        self.config = config
        self.history = history

    def to_dict(self) -> dict:
        return {"layers": self.layers, "sizes": self.sizes, "config": self.config, "history": self.history}

    def plus(self, diff: str, size: int, created_by: str) -> State:
        return State(
            self.layers + [diff],
            self.sizes + [size],
            self.config,
            self.history + [{"created_by": created_by}],
        )


class StepCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.dir = os.path.join(store.images_dir, "build-cache")

    def get(self, key: str) -> State | None:
        try:
            with open(os.path.join(self.dir, f"{key}.json"), "rb") as f:
                d = json.loads(f.read())
            state = State(list(d["layers"]), list(d["sizes"]), dict(d["config"]), list(d["history"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        # An entry whose layers were collected (their images removed) is a miss: the step runs again.
        if not all(os.path.isdir(self.store.layer_path(diff)) for diff in state.layers):
            return None
        return state

    def put(self, key: str, state: State) -> None:
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        tmp = os.path.join(self.dir, f".{key}.{os.getpid()}")
        with open(tmp, "w") as f:
            json.dump(state.to_dict(), f)
        os.rename(tmp, os.path.join(self.dir, f"{key}.json"))


def step_key(parent: str, *parts: object) -> str:
    h = hashlib.sha256(parent.encode())
    for p in parts:
        h.update(b"\0" + json.dumps(p, sort_keys=True).encode())
    return h.hexdigest()


def tree_digest(path: str) -> str:
    """Content, modes and link targets of a host file or tree: what a files step's key depends on."""
    h = hashlib.sha256()

    def one(p: str, rel: str) -> None:
        st = os.lstat(p)
        h.update(f"{rel}\0{st.st_mode:o}\0".encode())
        if os.path.islink(p):
            h.update(os.readlink(p).encode())
        elif os.path.isfile(p):
            with open(p, "rb") as f:
                while data := f.read(1 << 20):
                    h.update(data)

    if os.path.isdir(path) and not os.path.islink(path):
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                full = os.path.join(dirpath, name)
                one(full, os.path.relpath(full, path))
    else:
        one(path, ".")
    return h.hexdigest()
