"""OCI runtime specs: the typed model and the roads into it.

- ``model``: :class:`OciSpec` and its parts (process, mounts, hooks, devices);
- ``bundle``: a bundle's ``config.json`` read and validated (``load_bundle``, ``parse``, ``load_process``),
  its ``linux`` object by ``linux``, every field through ``fields``' typed readers;
- ``docker``: docker-style options (``pycontain run``, the Python API) made into one;
- ``default``: the starter document ``pycontain spec`` writes (``default_spec``).

The names below are re-exported so that ``from pycontain import spec; spec.load_bundle(...)`` keeps working.
"""

from .. import lazy_exports

# Re-exported lazily: ``pycontain run`` loads ``model`` and ``docker`` alone, never the config.json parser;
# each module loaded costs start-up time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .bundle import (
        RLIMITS,
        UNSUPPORTED_FIELDS,
        decode,
        load_bundle,
        load_process,
        parse,
    )
    from .default import (
        DEFAULT_MASKED_PATHS,
        DEFAULT_READONLY_PATHS,
        default_spec,
    )
    from .linux import NAMESPACE_TYPES, NAMESPACES
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

_EXPORTS = {
    "NAMESPACE_TYPES": "linux",
    "NAMESPACES": "linux",
    "RLIMITS": "bundle",
    "UNSUPPORTED_FIELDS": "bundle",
    "decode": "bundle",
    "load_bundle": "bundle",
    "load_process": "bundle",
    "parse": "bundle",
    "DEFAULT_MASKED_PATHS": "default",
    "DEFAULT_READONLY_PATHS": "default",
    "default_spec": "default",
    "HOOK_KINDS": "model",
    "IDMAP_OPTIONS": "model",
    "MOUNT_FLAGS": "model",
    "MOUNT_PROPAGATION": "model",
    "RECURSIVE_OPTIONS": "model",
    "OciDevice": "model",
    "OciHook": "model",
    "OciMount": "model",
    "OciProcess": "model",
    "OciSpec": "model",
}
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


__getattr__ = lazy_exports(__name__, _EXPORTS)
