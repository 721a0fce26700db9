"""pycontain's command line: parses, calls ``pycontain.api`` / ``Container``, prints. Nothing else.

``main()`` takes a fast path for ``pycontain [--root DIR] run ...``, the OCI commands an engine calls
(cli.ocirun) and the commands of ``cli.commands`` (exec, ps, kill...): no typer, no click, no rich, whose
import costs more than the work. It hands every other command, ``--help`` and whatever the fast parsers
do not take to the typer application in ``cli.app``. Every ``PycontainError`` becomes one line on stderr and its exit status
(125 for pycontain's own failures, 126/127 when the command cannot be executed or found).
"""

from __future__ import annotations

import os
import sys

from .. import trace
from ..errors import EXIT_RUNTIME, PycontainError


class Globals:
    """The global flags (runc's set): parsed here, before any command, by both parsers."""

    __slots__ = ("root", "log", "log_format", "debug", "systemd_cgroup", "rootless")

    def __init__(self) -> None:
        self.root: str | None = None
        self.log: str | None = None
        self.log_format = "text"
        self.debug = False
        self.systemd_cgroup = False
        self.rootless = "auto"


GLOBALS = Globals()
_VALUED = {"--root": "root", "--log": "log", "--log-format": "log_format", "--rootless": "rootless"}
_FLAGS = {"--debug": "debug", "--systemd-cgroup": "systemd_cgroup"}


def parse_globals(argv: list[str], g: Globals = GLOBALS) -> list[str]:
    """Take the global flags off the front of ``argv`` into ``g``; return the rest (the command and its args)."""
    i = 0
    while i < len(argv) and argv[i].startswith("--"):
        name, eq, value = argv[i].partition("=")
        if name in _FLAGS:
            setattr(g, _FLAGS[name], True if not eq else value.lower() in ("1", "true", "yes"))
            i += 1
        elif name in _VALUED and (eq or i + 1 < len(argv)):
            if not eq:
                value = argv[i + 1]
                i += 1
            setattr(g, _VALUED[name], value)
            i += 1
        else:
            break
    if g.root is None:
        g.root = os.environ.get("PYCONTAIN_ROOT") or None
    return argv[i:]


def _log_error(message: str) -> None:
    """Engines (podman via conmon) read a runtime's errors from --log, as JSON lines with --log-format json."""
    if not GLOBALS.log:
        return
    try:
        import time

        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if GLOBALS.log_format == "json":
            from .. import fastjson

            line = fastjson.dumps({"level": "error", "msg": message, "time": stamp})
        else:
            line = f"{stamp} error: {message}"
        with open(GLOBALS.log, "a") as f:
            f.write(line + "\n")
    except OSError:
        pass


def _check_log() -> str | None:
    """runc refuses a --log-format it does not know and a --log it cannot open, before doing anything: an
    engine that reads errors from the log must not wait on a file nothing will be written to."""
    if GLOBALS.log_format not in ("text", "json"):
        fmt, GLOBALS.log_format = GLOBALS.log_format, "text"
        return f"--log-format {fmt!r} is not a log format: use text or json"
    if GLOBALS.log:
        try:
            os.close(os.open(GLOBALS.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644))
        except OSError as e:
            path, GLOBALS.log = GLOBALS.log, None
            return f"--log {path}: cannot write the log there: {e.strerror}"
    return None


def fail(message: str, code: int) -> int:
    # --log first: containerd opens a sandbox runtime's stderr read-only, so writing there fails, and
    # the log file is the only place the engine reads the reason from.
    _log_error(message)
    try:
        sys.stderr.write(f"pycontain: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    return code


def guarded(fn, *args: object) -> int:
    """Run a command body, turning every error into one line and an exit status."""
    try:
        return fn(*args) or 0
    except PycontainError as e:
        return fail(str(e), e.exit_code)
    except KeyboardInterrupt as e:
        from ..interrupts import exit_status

        return exit_status(e)
    except BrokenPipeError as e:
        if _stdout_gone():
            return 0  # 'pycontain ps | head': the reader has all it wanted
        return fail(f"broken pipe: {e.strerror or e}", EXIT_RUNTIME)
    except PermissionError as e:
        from .. import rootless

        if rootless.unprivileged():
            return fail(
                f"permission denied: {e.filename or e} (as a user other than root pycontain manages only "
                "your own rootless containers: use sudo for the rest)",
                EXIT_RUNTIME,
            )
        return fail(f"permission denied: {e.filename or e}", EXIT_RUNTIME)
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        return fail(f"{e.strerror or e}{where}{_what_to_do(e.errno)}", EXIT_RUNTIME)
    except Exception as e:
        if os.environ.get("PYCONTAIN_DEBUG") or GLOBALS.debug:
            import traceback

            traceback.print_exc()
        return fail(
            f"internal error: {type(e).__name__}: {e} (run with PYCONTAIN_DEBUG=1 for details)", EXIT_RUNTIME
        )


def _what_to_do(errno_: int | None) -> str:
    """For the resources a host runs out of: what to do about it."""
    import errno

    return {
        errno.EMFILE: " (pycontain ran out of file descriptors: raise its limit with 'ulimit -n')",
        errno.ENFILE: " (the host ran out of file descriptors: see /proc/sys/fs/file-max)",
        errno.ENOSPC: " (free some space there)",
        errno.EDQUOT: " (a disk quota is exhausted: free some space there)",
        errno.EAGAIN: " (a process limit is reached: the host's pid_max, a cgroup's pids.max or 'ulimit -u')",
        errno.ENOMEM: " (the host is out of memory)",
    }.get(errno_ or 0, "")


def _stdout_gone() -> bool:
    """Whether our stdout is a pipe whose reader has gone (as opposed to some other pipe breaking)."""
    import select

    try:
        poller = select.poll()
        poller.register(1, select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError):
        return False


def _oci_run_form(rest: list[str]) -> bool:
    """Which 'run' is this? runc's callers pass --bundle/-b, or run in the bundle's directory with one
    argument (the id); docker's form always has a root filesystem and a command."""
    head = rest[: rest.index("--")] if "--" in rest else rest
    if any(a in ("--bundle", "-b") or a.startswith("--bundle=") for a in head):
        return True
    from .ocirun import RUN_FLAGS, RUN_VALUED

    # runc's flags with their values left out: 'run --pid-file F ID' has one positional, the id
    positionals = []
    i = 0
    while i < len(head):
        arg = head[i]
        if arg in RUN_VALUED:
            i += 1
        elif not arg.startswith("-"):
            positionals.append(arg)
        elif arg.partition("=")[0] not in RUN_VALUED and arg not in RUN_FLAGS:
            return False  # a docker-style flag
        i += 1
    return "--" not in rest and len(positionals) == 1 and os.path.isfile("config.json")


def run_command(values: dict, rootfs: str, args: list[str], root: str | None) -> int:
    """``pycontain run``: shared by the fast parser and the click command."""
    from .. import api
    from .options import DEFAULT_NETWORK, RESOURCE_DESTS

    trace.step("run imported")

    network = values["network"] or DEFAULT_NETWORK
    if os.geteuid() != 0:
        if GLOBALS.rootless in ("false", "0"):
            return fail("pycontain needs root with --rootless=false: run it with sudo", EXIT_RUNTIME)
        if network not in ("none", "host") and values["network"]:
            return fail(
                f"--network {network}: rootless containers get none (loopback only) or host; bridges, "
                "veths and NAT need root",
                EXIT_RUNTIME,
            )
        network = values["network"] or "none"
        from .. import rootless

        rootless.enter()
    resources = None
    given = {k: values[k] for k in RESOURCE_DESTS if values.get(k) not in (None, [], False)}
    if given:
        from ..cgroups.resources import Resources

        resources = Resources.from_options(**given).to_dict()
    security = None
    if (
        values["cap_add"]
        or values["cap_drop"]
        or values["privileged"]
        or values["security_opt"]
        or values["ulimit"]
    ):
        from ..security.options import SecurityOptions

        security = SecurityOptions.from_cli(
            values["cap_add"],
            values["cap_drop"],
            values["privileged"],
            values["security_opt"],
            values["ulimit"],
        ).to_dict()
    config = api.make_config(
        rootfs,
        args,
        name=values["name"],
        env=values["env"],
        env_files=values["env_file"],
        workdir=values["workdir"],
        user=values["user"],
        hostname=values["hostname"],
        volumes=values["volume"],
        tmpfs=values["tmpfs"],
        read_only=values["read_only"],
        tty=values["tty"],
        interactive=values["interactive"],
        init=values["init"],
        auto_remove=values["rm"],
        detach=values["detach"],
        resources=resources,
        cgroup_parent=values["cgroup_parent"],
        cgroup_manager=values["cgroup_manager"] or "auto",
        security=security,
        network=network,
        publish=values["publish"],
        userns=values["userns"],
        entrypoint=values["entrypoint"],
        restart=values["restart"] or "no",
        stop_signal=values["stop_signal"],
        labels=values["label"],
        publish_all=values["publish_all"],
        extra_hosts=values["add_host"],
        dns=values["dns"],
        dns_search=values["dns_search"],
        mount=values["mount"],
        healthcheck=_healthcheck(values),
        log_opts=values["log_opt"],
    )
    trace.step("config made")
    cidfile = values["cidfile"]
    if cidfile and os.path.exists(cidfile):
        return fail(
            f"--cidfile {cidfile}: the file exists already (remove it, or choose another)", EXIT_RUNTIME
        )
    if (config.healthcheck or {}).get("cmd") and not config.detach:
        return fail(
            "--health-cmd needs -d: the monitor of a detached container runs the checks", EXIT_RUNTIME
        )
    if config.log_opts and not config.detach:
        return fail(
            "--log-opt needs -d: a container in the foreground writes to the terminal, not to a log",
            EXIT_RUNTIME,
        )
    if config.restart != "no" and not config.detach:
        return fail(
            f"--restart {config.restart} needs -d: only a detached container has a monitor to restart it",
            EXIT_RUNTIME,
        )
    if config.detach:
        from ..monitor import spawn

        container = spawn(config, root)
        if cidfile:
            _write_cidfile(cidfile, container.id)
        sys.stdout.write(container.id + "\n")
        return 0
    if cidfile:
        return api.run_config(config, root, on_created=lambda c: _write_cidfile(cidfile, c.id))
    return api.run_config(config, root)


def _healthcheck(values: dict) -> dict | None:
    """--health-* into the config's healthcheck (docker's defaults for what is not given)."""
    from ..errors import InvalidArgument

    tuning = ("health_interval", "health_timeout", "health_retries", "health_start_period")
    if values["no_healthcheck"]:
        if values["health_cmd"] or any(values[k] for k in tuning):
            raise InvalidArgument("--no-healthcheck conflicts with the other --health-* options")
        return {"cmd": []}
    if not values["health_cmd"]:
        if any(values[k] for k in tuning):
            raise InvalidArgument("--health-interval, --health-timeout, ... need --health-cmd")
        return None
    from ..units import parse_duration

    retries = values["health_retries"] or "3"
    if not retries.isdigit():
        raise InvalidArgument(f"invalid --health-retries {retries!r}: a whole number")
    interval = parse_duration(values["health_interval"] or "30s", "--health-interval")
    timeout = parse_duration(values["health_timeout"] or "30s", "--health-timeout")
    if interval <= 0 or timeout <= 0:
        raise InvalidArgument("--health-interval and --health-timeout must be above zero")
    return {
        "cmd": ["sh", "-c", values["health_cmd"]],
        "interval": interval,
        "timeout": timeout,
        "retries": int(retries),
        "start_period": parse_duration(values["health_start_period"] or "0s", "--health-start-period"),
    }


def _write_cidfile(path: str, cid: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, cid.encode())
    finally:
        os.close(fd)


# cli.commands' table (ps, exec, kill...), named here so that other commands do not import it.
FAST_COMMANDS = frozenset(
    ("ps", "inspect", "exec", "kill", "pause", "unpause", "resume", "features", "events", "update")
)


def main(argv: list[str] | None = None) -> int:
    trace.step("cli")
    argv = parse_globals(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["--version"], ["version"]):  # engines ask 'runtime --version' (podman info)
        from .. import SPEC_VERSION, __version__

        sys.stdout.write(f"pycontain version {__version__}\nspec: {SPEC_VERSION}\n")
        return 0
    bad_log = _check_log()
    if bad_log:
        return fail(bad_log, EXIT_RUNTIME)
    if GLOBALS.systemd_cgroup:
        return fail(
            "--systemd-cgroup: the systemd cgroup driver is not available (pycontain manages cgroupfs "
            "itself); leave the flag out",
            EXIT_RUNTIME,
        )
    if GLOBALS.rootless in ("true", "1") and os.geteuid() == 0:
        return fail(
            "--rootless=true: root runs containers with its privileges; run pycontain as the "
            "unprivileged user instead (it then enters rootless mode by itself)",
            EXIT_RUNTIME,
        )
    if argv[:1] == ["run"] and len(argv) > 1:
        rest = argv[1:]
        head = rest[: rest.index("--")] if "--" in rest else rest
        if "--help" not in head:
            if _oci_run_form(rest):
                from .ocirun import oci_run

                return guarded(oci_run, rest)

            def body() -> int:
                from .options import parse_run_args

                values, rootfs, args = parse_run_args(rest)
                return run_command(values, rootfs, args, GLOBALS.root)

            code = guarded(body)
            sys.stdout.flush()
            _exit_now["ok"] = True
            return code
    if argv[:1] and argv[0] in ("create", "start", "state", "delete"):
        from .ocirun import oci_fast, parse_fast

        parsed = parse_fast(argv[0], argv[1:])
        if parsed is not None:
            _exit_now["ok"] = True
            return guarded(oci_fast, argv[0], *parsed)
    if argv[:1] and argv[0] in FAST_COMMANDS:
        from .commands import run_fast

        fast = run_fast(argv[0], argv[1:])
        if fast is not None:
            _exit_now["ok"] = True
            return fast
    return guarded(_run_app, argv)  # even a bug in the command-line layer ends in one line


# Set by the fast paths (run and the OCI commands), which register no atexit handler: they may skip
# Python's teardown. The typer commands may not (a Sandbox closes itself at exit).
_exit_now = {"ok": False}


def entry() -> None:
    """The console script: ``main()``, then, on the fast paths, leave without Python freeing every module
    (~8 ms of a ~30 ms ``pycontain run``)."""
    code = main()
    if _exit_now["ok"]:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a reader that went away: nothing left to tell it
                pass
        os._exit(code)
    sys.exit(code)


def _run_app(argv: list[str]) -> int:
    if sys.flags.no_site:  # started by pycontain.launcher: typer, rich and their plugins need all of site
        import site

        site.main()
    from .commandline import run_app  # importing every command's module is part of what may fail

    return run_app(argv)
