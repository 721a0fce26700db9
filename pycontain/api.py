"""The library API the CLI wraps: build a config, run a container in the foreground or detached::

    import pycontain
    code = pycontain.run("default", ["sh", "-c", "echo hello from $(hostname)"], hostname="demo")
    c = pycontain.start("default", ["sleep", "60"], name="sleeper", memory="64m")   # detached
    r = c.exec_run(["ps"])        # waits: r.exit_code, r.stdout, r.stderr
    c.stop(timeout=1); c.remove()

(tests/test_readme.py runs this example.)
"""

from __future__ import annotations

import _signal as signal  # the C module: the signal package loads enum (2-3 ms on the start path)
import os

from . import process, trace
from .config import ContainerConfig
from .container import Container, new_id
from .errors import AlreadyExists, InvalidArgument, PermissionDenied

# typing.TYPE_CHECKING without importing typing (several ms on the start path); type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .config_fields import HealthCheck
    from .state import ProcRef


def resolve_image(image: str, data_root: str | None = None):
    """``default``, a root filesystem directory, or an image of the local store → its layers and config."""
    import rootfs_builder

    return rootfs_builder.resolve_image(image, data_root)


def make_config(
    image: str,
    args: list[str],
    *,
    name: str | None = None,
    env: list[str] | None = None,
    env_files: list[str] | None = None,
    workdir: str | None = None,
    user: str | None = None,
    hostname: str | None = None,
    volumes: list[str] | None = None,
    tmpfs: list[str] | None = None,
    read_only: bool = False,
    tty: bool = False,
    interactive: bool = False,
    init: bool = False,
    auto_remove: bool = False,
    detach: bool = False,
    resources: dict | None = None,
    cgroup_parent: str | None = None,
    cgroup_manager: str = "auto",
    security: dict | None = None,
    network: str | None = None,
    publish: list[str] | None = None,
    userns: str | None = None,
    entrypoint: str | None = None,
    restart: str = "no",
    stop_signal: str | None = None,
    labels: dict[str, str] | list[str] | None = None,
    memory: str | int | None = None,
    cpus: str | float | None = None,
    pids: int | None = None,
    publish_all: bool = False,
    extra_hosts: list[str] | None = None,
    dns: list[str] | None = None,
    dns_search: list[str] | None = None,
    mount: list[str] | None = None,
    healthcheck: HealthCheck | None = None,
    log_opts: dict[str, str] | list[str] | None = None,
) -> ContainerConfig:
    """A validated ContainerConfig from docker-style options (``volumes=["/src:/dst:ro"]``...).

    An image's own config supplies the defaults, with docker's rules: the command runs after the
    image's Entrypoint and replaces its Cmd; its Env comes before ours; WorkingDir and User apply
    unless given here; its default limits (an appliance's ``Resources``) apply where ``resources`` sets none.
    ``entrypoint`` replaces the image's Entrypoint and Cmd (``""``: none, the command runs as given).
    Limits as keywords, docker's units: ``memory="64m"``, ``cpus=0.5``, ``pids=64`` (on top of ``resources``).
    ``log_opts``: a detached container's log rotation, docker's ``--log-opt`` (``{"max-size": "10m",
    "max-file": "3"}``; see ``pycontain.logs``).
    """
    from .config_check import parse_env
    from .spec import docker

    mounts = (
        [docker.volume(v) for v in volumes or []]
        + [docker.mount(m) for m in mount or []]
        + [docker.tmpfs(t) for t in tmpfs or []]
    )
    ref = resolve_image(image)
    ic = ref.config or {}
    if entrypoint is not None:
        args = ([entrypoint] if entrypoint else []) + list(args)
    else:
        args = list(ic.get("Entrypoint") or []) + (list(args) or list(ic.get("Cmd") or []))
    if publish_all:
        publish = list(publish or []) + exposed_port_specs(ic.get("ExposedPorts") or {})
    checked_log_opts = None
    if log_opts:
        from .logs import parse_log_opts

        checked_log_opts = parse_log_opts(log_opts)
    if memory is not None or cpus is not None or pids is not None:
        from .cgroups.resources import Resources

        given = Resources.from_options(memory=memory, cpus=cpus, pids_limit=pids)
        resources = (Resources.from_dict(resources).merged(given) if resources else given).to_dict()
    if ic.get("Resources"):
        resources = _image_resources(ic["Resources"], resources)
    id_mappings = None
    if userns not in (None, "", "host"):
        from .userns import resolve as resolve_userns

        id_mappings = resolve_userns(userns)
    return docker.to_config(
        ref.layers,
        args,
        name=name,
        image=image,
        image_id=ref.id,
        env=list(ic.get("Env") or []) + parse_env(env or [], env_files),
        cwd=workdir or ic.get("WorkingDir") or "/",
        user=user or ic.get("User") or None,
        hostname=hostname,
        mounts=mounts,
        read_only=read_only,
        resources=resources,
        security=security,
        network=network,
        id_mappings=id_mappings,
        tty=tty,
        interactive=interactive,
        init=init,
        auto_remove=auto_remove,
        detach=detach,
        cgroup_parent=cgroup_parent,
        cgroup_manager=cgroup_manager,
        publish=publish,
        restart=restart or "no",
        stop_signal=stop_signal,
        labels=parse_labels(labels),
        extra_hosts=extra_hosts,
        dns=dns,
        dns_search=dns_search,
        healthcheck=healthcheck,
        log_opts=checked_log_opts,
    )


def exposed_port_specs(exposed: dict | list) -> list[str]:
    """-P: each port an image exposes ("80/tcp") published on a free host port (picked when it is attached)."""
    specs = []
    for entry in exposed:
        port, _, proto = str(entry).partition("/")
        specs.append(f"{port}/{proto or 'tcp'}")
    return specs


def parse_labels(labels: dict[str, str] | list[str] | None) -> dict[str, str]:
    """``["a=1", "b"]`` (docker's --label values; a bare key gets "") or a dict → a dict."""
    if isinstance(labels, dict):
        return {str(k): str(v) for k, v in labels.items()}
    out = {}
    for item in labels or []:
        key, _, value = item.partition("=")
        if not key:
            from .errors import InvalidArgument

            raise InvalidArgument(f"invalid label {item!r}: use KEY=VALUE")
        out[key] = value
    return out


def _image_resources(defaults: dict, given: dict | None) -> dict:
    """An appliance's default limits (docker's option strings, from its manifest) under the caller's own."""
    from .cgroups.resources import Resources

    base = Resources.from_options(**defaults)
    return (base.merged(Resources.from_dict(given)) if given else base).to_dict()


def run_config(
    config: ContainerConfig,
    root: str | None = None,
    on_created=None,
    *,
    stop_on_signal: bool = False,
    output_fd: int | None = None,
) -> int:
    """Run a container in the foreground and return its exit status (128+N if signal N killed it).

    Signals sent to this process are forwarded to the container's PID 1 (when called from the main
    thread); with ``config.tty`` the caller's terminal is relayed to the container's pty. ``on_created``
    is called with the Container as soon as it exists (--cidfile).
    ``stop_on_signal``: SIGINT, SIGTERM or SIGHUP stop the caller itself (a build step): the container is
    killed, and once it is gone ``Interrupted`` is raised (a PID 1 that ignores the signal cannot hang it).
    ``output_fd``: where the container's stdout and stderr are relayed (default: ours), without a terminal.
    """
    stopping: tuple[int, ...] = ()
    if stop_on_signal:  # (the interrupts module only then: a module less on every foreground run)
        from .interrupts import STOPPING_SIGNALS as stopping

    # Handlers go in before the container starts: a signal that arrives while it is being created
    # is held and delivered as soon as its PID 1 exists.
    target: list[int] = []
    pending: list[int] = []
    saved = {}

    stopped: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if not target:
            pending.append(signum)
            return
        if signum in stopping:
            stopped.append(signum)
            signum = signal.SIGKILL
        try:
            os.kill(target[0], signum)
        except ProcessLookupError:
            pass

    try:
        for sig in process.FORWARDED_SIGNALS:
            # A signal our caller ignores (nohup's SIGHUP, a background job's SIGINT) stays ignored, here
            # and in the container, which inherits it: as exec's command does, and as nohup means.
            if signal.getsignal(sig) is not signal.SIG_IGN:
                saved[sig] = signal.signal(sig, forward)
    except ValueError:
        pass  # not the main thread: Python only lets it handle signals
    # Without a terminal the container's stdio is pipes relayed here: the caller's own descriptors
    # (perhaps a terminal) never reach it.
    relay = None
    try:
        if not config.tty:
            from .stdio import PipeRelay

            out = {} if output_fd is None else {"stdout_fd": output_fd, "stderr_fd": output_fd}
            relay = PipeRelay(config.interactive, **out)
        container, child = Container.create(config, root, stdio=relay.stdio() if relay else None)
    except BaseException:
        if relay is not None:
            relay.close()
        _restore(saved)
        raise
    target.append(child.pid)
    if on_created is not None:
        try:
            on_created(container)
        except BaseException:
            _restore(saved)
            container.remove(force=True)
            raise
    for sig in pending:
        forward(sig, None)
    try:
        if child.pty_master is not None:
            from . import tty

            tty.relay(child.pty_master, stdin_open=config.interactive)
        elif relay is not None:
            relay.run(child.pid)
        code = process.wait_status(child.pid)
        trace.step("exited")
    finally:
        if relay is not None:
            relay.close()
        _restore(saved)
    container.record_exit(code)
    trace.step("exit recorded")
    if stopped:
        from .interrupts import Interrupted

        raise Interrupted(stopped[0])
    return code


def _restore(saved: dict) -> None:
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def run(image: str, args: list[str], root: str | None = None, **options: object) -> int:
    """Run ``args`` in a new container on ``image`` (a rootfs directory or ``"default"``); wait for it.

    Options are ``make_config``'s (name, env, workdir, user, hostname, volumes, tmpfs, read_only, tty,
    interactive, init, auto_remove, resources...). Returns the exit status.
    """
    return run_config(make_config(image, args, **options), root)  # type: ignore[arg-type]


def start(image: str, args: list[str], root: str | None = None, **options: object) -> Container:
    """Start a detached container (output goes to its log file, through its monitor) and return it at once."""
    options["detach"] = True
    return _detached(make_config(image, args, **options), root)  # type: ignore[arg-type]


def _detached(config: ContainerConfig, root: str | None) -> Container:
    """A new detached container, made by its monitor (``monitor_spawn``), once it runs."""
    from .monitor_spawn import spawn

    cid = new_id()  # chosen here: the monitor's command line names it from the start (see monitor_spawn)

    def make(stdio: process.Stdio, monitor: ProcRef) -> tuple[Container, process.Child]:
        return Container.create(config, root, stdio=stdio, monitor=monitor, cid=cid)

    return Container.get(spawn(make, config, cid), root)


def run_docker(
    image: str,
    args: list[str],
    root: str | None = None,
    *,
    rootless: str = "auto",
    cidfile: str | None = None,
    limits: dict | None = None,
    security: dict | None = None,
    health: dict | None = None,
    network: str | None = None,
    on_created: Callable[[Container], object] | None = None,
    **options: Any,
) -> int | Container:
    """``pycontain run``: docker's flags, as the command line gives them, to a running container.

    ``limits``: the resource flags given (``Resources.from_options``' names: ``{"memory": "64m"}``);
    ``security``: ``cap_add``, ``cap_drop``, ``privileged``, ``security_opt``, ``ulimit``; ``health``:
    ``cmd``, ``interval``, ``timeout``, ``retries``, ``start_period`` and ``none`` (--no-healthcheck);
    the other ``options`` are ``make_config``'s. Without root (``rootless`` "auto") the container is
    rootless: network none unless host is asked for; ``rootless="false"`` refuses to run unprivileged.
    ``cidfile`` gets the container's id, and must not exist. ``on_created``: as ``run_config``'s, in the
    foreground (after the cidfile is written).

    Returns the Container when it is detached (its monitor runs it), else the exit status.
    """
    from .spec.docker import network_for

    unprivileged = os.geteuid() != 0
    if unprivileged and rootless in ("false", "0"):
        raise PermissionDenied("pycontain needs root with --rootless=false: run it with sudo")
    network = network_for(network, rootless=unprivileged)
    if unprivileged:
        from . import rootless as rootless_mode

        rootless_mode.enter()
    given = {k: v for k, v in (limits or {}).items() if v not in (None, [], False)}
    if given:
        from .cgroups.resources import Resources

        options["resources"] = Resources.from_options(**given).to_dict()
    if security and any(security.values()):
        from .security.options import SecurityOptions

        options["security"] = SecurityOptions.from_cli(
            security.get("cap_add") or (),
            security.get("cap_drop") or (),
            bool(security.get("privileged")),
            security.get("security_opt") or (),
            security.get("ulimit") or (),
        ).to_dict()
    config = make_config(image, args, network=network, healthcheck=healthcheck(**(health or {})), **options)
    trace.step("config made")
    if cidfile and os.path.exists(cidfile):
        raise AlreadyExists(f"--cidfile {cidfile}: the file exists already (remove it, or choose another)")
    if config.healthcheck is not None and config.healthcheck.cmd and not config.detach:
        raise InvalidArgument("--health-cmd needs -d: the monitor of a detached container runs the checks")
    if config.log_opts and not config.detach:
        raise InvalidArgument(
            "--log-opt needs -d: a container in the foreground writes to the terminal, not to a log"
        )
    if config.restart != "no" and not config.detach:
        raise InvalidArgument(
            f"--restart {config.restart} needs -d: only a detached container has a monitor to restart it"
        )
    if config.detach:
        container = _detached(config, root)
        if cidfile:
            _write_cidfile(cidfile, container.id)
        return container
    if cidfile:

        def created(c: Container) -> None:
            _write_cidfile(cidfile, c.id)
            if on_created is not None:
                on_created(c)

        return run_config(config, root, on_created=created)
    return run_config(config, root, on_created=on_created)


def healthcheck(
    cmd: str | None = None,
    interval: str | None = None,
    timeout: str | None = None,
    retries: str | None = None,
    start_period: str | None = None,
    none: bool = False,
) -> HealthCheck | None:
    """docker's --health-* flags as a config's healthcheck, with docker's defaults for what is not given;
    ``none`` (--no-healthcheck) turns off the image's own check. None: no flag given (the image's applies)."""
    from .config_fields import HealthCheck

    tuning = (interval, timeout, retries, start_period)
    if none:
        if cmd or any(tuning):
            raise InvalidArgument("--no-healthcheck conflicts with the other --health-* options")
        return HealthCheck([])
    if not cmd:
        if any(tuning):
            raise InvalidArgument("--health-interval, --health-timeout, ... need --health-cmd")
        return None
    from .units import parse_duration

    retries = retries or "3"
    if not retries.isdigit():
        raise InvalidArgument(f"invalid --health-retries {retries!r}: a whole number")
    return HealthCheck(
        ["sh", "-c", cmd],
        parse_duration(interval or "30s", "--health-interval"),
        parse_duration(timeout or "30s", "--health-timeout"),
        int(retries),
        parse_duration(start_period or "0s", "--health-start-period"),
    )


def _write_cidfile(path: str, cid: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, cid.encode())
    finally:
        os.close(fd)


def image_in_use(image_id: str, root: str | None = None, data_root: str | None = None) -> bool:
    """Whether a container (in any state) of state root ``root`` was made from the image ``image_id``: each
    container's recorded image (its id, or the name it was run by, resolved through the store's index)."""
    from rootfs_builder.store import Store
    from rootfs_builder.store_lookup import find

    index = Store(data_root).load()
    for c in Container.list(root):
        cfg = c.state.config
        if cfg.image_id == image_id:
            return True
        ref = cfg.image
        if ref:
            try:
                if find(index, ref)[0] == image_id:
                    return True
            except Exception:
                pass
    return False


def remove_image(
    ref: str, root: str | None = None, data_root: str | None = None, force: bool = False
) -> tuple[list[str], list[str]]:
    """docker's ``rmi``: untag ``ref``, remove the image when no name is left (or ``ref`` is its id, with
    ``force`` even when it has several names), then its unused layers; never an image a container of state
    root ``root`` was made from. Returns (untagged names, deleted image ids)."""
    from rootfs_builder.store import Store

    return Store(data_root).rmi(ref, lambda i: image_in_use(i, root, data_root), force=force)


def exec_attached(
    ref: str,
    args: list[str],
    root: str | None = None,
    *,
    env: list[str] | None = None,
    workdir: str | None = None,
    user: str | None = None,
    tty: bool = False,
    interactive: bool = False,
    detach: bool = False,
    process_file: str | None = None,
    console_socket: str | None = None,
    pid_file: str | None = None,
    preserve_fds: int = 0,
) -> int:
    """docker's and runc's ``exec``: ``args`` in the running container ``ref``, attached to our stdio (a pty
    relayed with ``tty``, pipes otherwise: our own descriptors never reach the container); its exit status
    (0 at once with ``detach``).

    runc's form: ``process_file``, an OCI process.json, gives what the flags do not (args, env before
    ``env``, cwd, user, terminal, capabilities, rlimits...); ``console_socket`` receives the pty's master;
    ``pid_file`` gets the process's pid; ``preserve_fds`` N passes our descriptors 3 .. 3+N-1 on.
    """
    env_list: list[str] = []
    if env:
        from .config_check import parse_env  # (an exec without -e needs none of the config's checks)

        env_list = parse_env(env)
    cwd, usr, use_tty = workdir, user, tty
    target = Container.get(ref, root)
    overrides: dict = {}
    proc_attrs = None
    if process_file:
        from .oci import exec_overrides
        from .spec import load_process

        proc = load_process(process_file)
        args = args or proc.args
        env_list = proc.env + env_list
        cwd = cwd or proc.cwd
        usr = usr or f"{proc.uid}:{proc.gid}"
        use_tty = use_tty or proc.terminal
        overrides = exec_overrides(proc, target.state.config.security)
        proc_attrs = proc.proc_attrs
    stdin_open = interactive or bool(console_socket) or bool(process_file)
    if preserve_fds:
        from .oci import check_preserved_fds

        check_preserved_fds(preserve_fds)
    relay = None
    if not (use_tty or detach):
        from .stdio import PipeRelay

        relay = PipeRelay(stdin_open)
    try:
        child = target.exec(
            args,
            env=env_list,
            cwd=cwd,
            user=usr,
            tty=use_tty,
            interactive=stdin_open,
            detach=detach and not (console_socket or process_file),
            stdio=relay.stdio() if relay else None,
            **overrides,
            preserve_fds=preserve_fds,
            proc_attrs=proc_attrs,
        )
    except BaseException:
        if relay is not None:
            relay.close()
        raise
    if pid_file:
        from .oci import write_pid_file

        write_pid_file(pid_file, child.pid)
    if child.pty_master is not None and console_socket:
        from .oci import send_console

        send_console(console_socket, child.pty_master)
        child.pty_master = None
    if detach:
        return 0
    if child.pty_master is not None:
        from . import tty as terminal

        terminal.relay(child.pty_master, stdin_open=interactive)
    elif relay is not None:
        relay.run(child.pid)
    return process.wait_status(child.pid)
