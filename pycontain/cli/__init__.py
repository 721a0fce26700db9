"""pycontain's command line: parses, calls ``pycontain.api`` / ``Container``, prints. Nothing else.

``main()`` takes a fast path for ``pycontain [--root DIR] run ...`` (no typer, no click: the start of a
container costs less than importing them) and hands every other command, and ``--help``, to the typer
application in ``cli.app``. Every ``PycontainError`` becomes one line on stderr and its exit status
(125 for pycontain's own failures, 126/127 when the command cannot be executed or found).
"""

from __future__ import annotations

import os
import sys

from ..errors import EXIT_RUNTIME, PycontainError


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"pycontain: {message}\n")
    return code


def guarded(fn, *args: object) -> int:  # noqa: ANN001
    """Run a command body, turning every error into one line and an exit status."""
    try:
        return fn(*args) or 0
    except PycontainError as e:
        return _fail(str(e), e.exit_code)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except PermissionError as e:
        if os.geteuid() != 0:
            return _fail("pycontain needs root: run it with sudo (rootless mode is not supported yet)",
                         EXIT_RUNTIME)
        return _fail(f"permission denied: {e.filename or e}", EXIT_RUNTIME)
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        return _fail(f"{e.strerror or e}{where}", EXIT_RUNTIME)
    except Exception as e:  # noqa: BLE001 - a user sees a sentence, never a traceback
        if os.environ.get("PYCONTAIN_DEBUG"):
            import traceback

            traceback.print_exc()
        return _fail(f"internal error: {type(e).__name__}: {e} (run with PYCONTAIN_DEBUG=1 for details)",
                     EXIT_RUNTIME)


def _split_global(argv: list[str]) -> tuple[str | None, list[str]] | None:
    """``[--root DIR] run ...`` → (root, rest after 'run'); None when this is not the fast path."""
    root = None
    i = 0
    while i < len(argv) and argv[i].startswith("--root"):
        if argv[i] == "--root" and i + 1 < len(argv):
            root, i = argv[i + 1], i + 2
        elif argv[i].startswith("--root="):
            root, i = argv[i][7:], i + 1
        else:
            return None
    if i < len(argv) and argv[i] == "run":
        rest = argv[i + 1:]
        head = rest[: rest.index("--")] if "--" in rest else rest
        if "--help" in head or not rest:
            return None
        # runc's form, 'run [--bundle B] ID', belongs to the OCI commands in the full CLI.
        if "--bundle" in head or "-b" in head or any(a.startswith("--bundle=") for a in head):
            return None
        return root, rest
    return None


def run_command(values: dict, rootfs: str, args: list[str], root: str | None) -> int:
    """``pycontain run``: shared by the fast parser and the click command."""
    from .. import api
    from .options import RESOURCE_DESTS

    if os.geteuid() != 0:
        return _fail("pycontain needs root: run it with sudo (rootless mode is not supported yet)", EXIT_RUNTIME)
    resources = None
    given = {k: values[k] for k in RESOURCE_DESTS if values.get(k) not in (None, [], False)}
    if given:
        from ..cgroups.resources import Resources

        resources = Resources.from_options(**given).to_dict()
    config = api.make_config(
        rootfs, args, name=values["name"], env=values["env"], env_files=values["env_file"],
        workdir=values["workdir"] or "/", user=values["user"], hostname=values["hostname"],
        volumes=values["volume"], tmpfs=values["tmpfs"], read_only=values["read_only"], tty=values["tty"],
        interactive=values["interactive"], init=values["init"], auto_remove=values["rm"], detach=values["detach"],
        resources=resources, cgroup_parent=values["cgroup_parent"],
        cgroup_manager=values["cgroup_manager"] or "auto")
    if config.detach:
        from ..container import Container

        container, _child = Container.create(config, root)
        sys.stdout.write(container.id + "\n")
        return 0
    return api.run_config(config, root)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    fast = _split_global(argv)
    if fast is not None:
        root, rest = fast

        def body() -> int:
            from .options import parse_run_args

            values, rootfs, args = parse_run_args(rest)
            return run_command(values, rootfs, args, root)

        code = guarded(body)
        sys.stdout.flush()
        return code
    from .app import run_app

    return run_app(argv)
