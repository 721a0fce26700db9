"""pycontain: an OS-level container runtime in Python.

The public API, loaded lazily so that ``import pycontain`` costs nothing on the CLI's start path::

    import pycontain
    pycontain.run("default", ["echo", "hi"])          # foreground; returns the exit status
    c = pycontain.start("default", ["sleep", "60"], name="web")    # detached; returns a Container
    pycontain.Container.get("web").stop(timeout=1)
    c.remove()

(tests/test_readme.py runs this example.)
"""

from __future__ import annotations

__version__ = "0.1.0"  # the one place: pyproject.toml reads it (setuptools' dynamic version)
# The OCI runtime-spec release pycontain implements: the newest config.json it reads field by field, the
# version its state and features report.
SPEC_VERSION = "1.3.0"
# The PATH a process gets when its image names none (docker's): here so that the image store, which must
# not import the runtime's modules, shares it.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
__all__ = [
    "Container",
    "ContainerConfig",
    "PycontainError",
    "Sandbox",
    "SandboxPool",
    "make_config",
    "run",
    "start",
]

_EXPORTS = {
    "Container": ("pycontain.container", "Container"),
    "ContainerConfig": ("pycontain.config", "ContainerConfig"),
    "PycontainError": ("pycontain.errors", "PycontainError"),
    "Sandbox": ("pycontain.sandbox", "Sandbox"),
    "SandboxPool": ("pycontain.sandbox", "SandboxPool"),
    "make_config": ("pycontain.api", "make_config"),
    "run": ("pycontain.api", "run"),
    "start": ("pycontain.api", "start"),
}


def __getattr__(name: str) -> object:
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'pycontain' has no attribute {name!r}") from None
    import importlib

    return getattr(importlib.import_module(module), attr)
