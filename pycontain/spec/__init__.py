"""OCI runtime specs: the typed model and the roads into it.

- ``model``: :class:`OciSpec` and its parts (process, mounts, hooks, devices);
- ``bundle``: a bundle's ``config.json`` read and validated (``load_bundle``, ``parse``, ``load_process``);
- ``default``: the starter document ``pycontain spec`` writes (``default_spec``).

The names below are re-exported so that ``from pycontain import spec; spec.load_bundle(...)`` keeps working.
"""

from .bundle import (
    NAMESPACE_TYPES,
    NAMESPACES,
    RLIMITS,
    UNSUPPORTED_FIELDS,
    decode,
    load_bundle,
    load_process,
    parse,
)
from .default import DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS, default_spec
from .model import (
    HOOK_KINDS,
    IDMAP_OPTIONS,
    MOUNT_FLAGS,
    MOUNT_PROPAGATION,
    RECURSIVE_OPTIONS,
    OciDevice,
    OciHook,
    OciMount,
    OciProcess,
    OciSpec,
)

__all__ = [
    "DEFAULT_MASKED_PATHS",
    "DEFAULT_READONLY_PATHS",
    "HOOK_KINDS",
    "IDMAP_OPTIONS",
    "MOUNT_FLAGS",
    "MOUNT_PROPAGATION",
    "NAMESPACES",
    "NAMESPACE_TYPES",
    "RECURSIVE_OPTIONS",
    "RLIMITS",
    "UNSUPPORTED_FIELDS",
    "OciDevice",
    "OciHook",
    "OciMount",
    "OciProcess",
    "OciSpec",
    "decode",
    "default_spec",
    "load_bundle",
    "load_process",
    "parse",
]
