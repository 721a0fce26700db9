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

from . import preload

# Before any other of our modules is imported: they come from the preload when it has them (see preload).
preload.install()

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

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


def merge_env(base: list[str], extra: list[str]) -> dict[str, str]:
    """A process's environment: ``KEY=VALUE`` items, a later one replacing an earlier one's value. (Here, beside
    ``DEFAULT_PATH``, which every one starts from: the command line's ``exec`` loads no config module.)"""
    env: dict[str, str] = {}
    for item in (*base, *extra):
        k, _, v = item.partition("=")
        env[k] = v
    return env


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], object]:
    """A package's ``__getattr__`` for names its modules define (``exports``: name -> module, relative to
    ``package``), each module imported on the first use of one of its names: every module loaded costs
    start-up time, and the CLI's paths need only a few."""

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        import sys

        # __import__, not importlib.import_module: the importlib package (and warnings) costs ~0.7 ms to
        # import, and a plain run --network none loads none of it.
        __import__(f"{package}.{module}")
        value = getattr(sys.modules[f"{package}.{module}"], name)
        setattr(sys.modules[package], name, value)  # found by the next lookup without coming here
        return value

    return __getattr__


__getattr__ = lazy_exports(
    __name__,
    {
        "Container": "container",
        "ContainerConfig": "config",
        "PycontainError": "errors",
        "Sandbox": "sandbox",
        "SandboxPool": "sandbox",
        "make_config": "api",
        "run": "api",
        "start": "api",
    },
)
