"""``pycontain build``: images made by running containers, above both the runtime and the image store.

``manifest`` reads and checks an appliance manifest (one TOML file); ``builder`` runs its steps (``pip``
the pip step) in build containers (``containers``) and stores each step's layer in ``rootfs_builder``'s
store. The store itself never starts a
container: it only holds what the build gives it.
"""

from __future__ import annotations

from .builder import BuildResult, build
from .containers import BuildError
from .manifest import Manifest

__all__ = ["BuildError", "BuildResult", "Manifest", "build"]
