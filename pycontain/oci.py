"""The OCI runtime interface over bundles: create, start, state, kill, delete, exec — what engines call.

A bundle's config.json is parsed and validated by ``pycontain.spec`` before anything is created; this
module has it converted (``config_check.from_spec``, as docker-style options are) and drives the same Container lifecycle the docker-style
commands use. The OCI container id is the container's name in the state root.
"""

from __future__ import annotations

import os
import time

# process (and subprocess, for hooks) are imported where a process starts: state, kill and delete
# without hooks skip them.
from . import SPEC_VERSION, fastjson, fastos
from .container import Container
from .errors import ContainerNotFound, InvalidArgument, InvalidState, PycontainError, warn
from .state import CREATED, PAUSED, RUNNING, StateStore

# typing.TYPE_CHECKING without importing typing; type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .security.options import SecurityOptions
    from .spec.model import OciHook


def host_warnings(spec) -> list[str]:
    """What this host cannot give a bundle that runc would start anyway, saying so (the spec requires a
    warning for an ungrantable capability): capabilities outside pycontain's own bounding set are left
    out, and an oomScoreAdj below pycontain's own is kept at its own (lowering it needs CAP_SYS_RESOURCE)."""
    from .security.caps import CAP_NUMBER, own_bounding_set, own_set

    out = []
    p = spec.process
    caps = p.capabilities if p is not None else None
    if caps:
        available = own_bounding_set()
        lacking = sorted(
            {
                n
                for names in caps.values()
                for n in names or []
                if n in CAP_NUMBER and not available >> CAP_NUMBER[n] & 1
            }
        )
        if lacking:
            out.append(
                f"process.capabilities: {', '.join(lacking)} left out: pycontain itself does not hold "
                f"{'it' if len(lacking) == 1 else 'them'} (CapBnd in /proc/self/status)"
            )
    if (
        p is not None
        and p.oom_score_adj is not None
        and not own_set("CapEff") >> CAP_NUMBER["CAP_SYS_RESOURCE"] & 1
    ):
        with open("/proc/self/oom_score_adj") as f:
            own = int(f.read())
        if p.oom_score_adj < own:
            out.append(
                f"process.oomScoreAdj: {p.oom_score_adj} kept at {own}: lowering it needs CAP_SYS_RESOURCE, "
                "which pycontain does not hold"
            )
            p.oom_score_adj = own
    return out


def _security_from_spec(spec) -> SecurityOptions:
    """A bundle's process as the security settings the child applies (its exact capability sets)."""
    from .security.options import SecurityOptions

    p = spec.process
    opts = SecurityOptions(
        capabilities=p.capabilities,
        no_new_privs=p.no_new_privileges,
        seccomp="unconfined" if spec.seccomp is None else "default",
        seccomp_profile=spec.seccomp,
        ulimits=[f"{_rlimit_name(t)}={soft}:{hard}" for t, soft, hard in p.rlimits],
    )
    return opts


def exec_overrides(proc, saved_security: SecurityOptions | None) -> dict:
    """What an OCI process.json (``exec --process``) changes from what create applied, as keyword
    arguments of ``Container.exec``: capabilities and rlimits when it gives them, its noNewPrivileges,
    additional groups and umask; the seccomp filter stays the container's (runc's rules)."""
    from .security.options import SecurityOptions

    security = (saved_security or SecurityOptions()).to_dict()
    if proc.capabilities is not None:
        security["capabilities"] = proc.capabilities
        security["cap_add"], security["cap_drop"] = [], []
    if proc.rlimits:
        security["ulimits"] = [f"{_rlimit_name(t)}={soft}:{hard}" for t, soft, hard in proc.rlimits]
    security["no_new_privs"] = proc.no_new_privileges
    return {"security": security, "extra_gids": proc.additional_gids, "umask": proc.umask}


def _rlimit_name(rtype: str) -> str:
    return rtype.removeprefix("RLIMIT_").lower()


# -- the lifecycle ------------------------------------------------------------------------------


def create(
    container_id: str,
    bundle: str = ".",
    root: str | None = None,
    pid_file: str | None = None,
    console_socket: str | None = None,
    no_pivot: bool = False,
    preserve_fds: int = 0,
) -> Container:
    """OCI create: everything set up, the process waiting for ``start``.

    ``preserve_fds``: how many descriptors after stderr (3, 4, ...) the container's process keeps."""
    from . import process
    from .config_check import from_spec, validate_name
    from .spec import load_bundle

    validate_name(container_id)
    check_preserved_fds(preserve_fds)
    bundle = os.path.abspath(bundle)
    spec = load_bundle(bundle)
    for message in spec.warnings + host_warnings(spec):
        warn(message)
    config = from_spec(
        spec,
        container_id,
        image=bundle,
        security=_security_from_spec(spec),
        hostname=spec.hostname or "",  # none given: the UTS namespace keeps the name it starts with
        interactive=True,
        no_pivot=no_pivot,
        bundle=bundle,
        preserve_fds=preserve_fds,
    )
    if config.tty and not console_socket:
        raise InvalidArgument(
            "config.json: process.terminal is true: pass --console-socket to receive the "
            "terminal (or set terminal to false)"
        )
    stdio = process.Stdio(tty=config.tty)
    container, child = Container.create(config, root, wait_for_start=True, stdio=stdio)
    try:
        if child.pty_master is not None:
            assert console_socket is not None  # checked above: a terminal needs one
            send_console(console_socket, child.pty_master)
        _run_hooks(container, "prestart")
        _run_hooks(container, "createRuntime")
        _run_hooks(container, "createContainer", inside=True, host_path=True)
        if pid_file:
            write_pid_file(pid_file, child.pid)
    except BaseException:
        container.remove(force=True)
        raise
    return container


def check_preserved_fds(count: int) -> None:
    """runc's --preserve-fds N: descriptors 3 .. N+2 must be open in the caller, to be passed on."""
    if count < 0:
        raise InvalidArgument(f"--preserve-fds {count}: give a number of descriptors, 0 or more")
    for fd in range(3, 3 + count):
        try:
            os.fstat(fd)
        except OSError:
            raise InvalidArgument(
                f"--preserve-fds {count}: descriptor {fd} is not open (the caller passes descriptors "
                f"3 to {2 + count} to keep)"
            ) from None


def start(container_id: str, root: str | None = None) -> Container:
    container = Container.get(container_id, root)
    _run_hooks(container, "startContainer", inside=True)
    poststart = container.state.config.hooks.get("poststart")
    before = _exe_of(container.pid) if poststart else None
    container.start()
    if poststart:
        _wait_for_exec(container.pid, before)
    _run_hooks(container, "poststart", fail_ok=True)
    return container


def _exe_of(pid: int) -> tuple[int, int] | None:
    try:
        st = os.stat(f"/proc/{pid}/exe")
        return st.st_dev, st.st_ino
    except OSError:
        return None


def _wait_for_exec(pid: int, before: tuple[int, int] | None, timeout: float = 2.0) -> None:
    """The spec runs poststart hooks after the user's process is executed; the FIFO byte that ``start``
    reads comes just before the execve, so wait for the executable to change (or the process to end)."""
    deadline = time.monotonic() + timeout
    while _exe_of(pid) == before and before is not None and time.monotonic() < deadline:
        time.sleep(0.0005)


def delete(container_id: str, root: str | None = None, force: bool = False) -> None:
    """OCI delete: a stopped container goes; one that is created or running stays unless ``force``
    (the spec: deleting a container that is not stopped MUST fail). With ``force`` a container that
    is already gone is no error: engines delete with --force after every exit, as with runc."""
    try:
        c = Container.get(container_id, root)
    except ContainerNotFound:
        if force:
            return
        raise
    status = c.status()
    if status in (CREATED, RUNNING, PAUSED) and not force:
        raise InvalidState(
            f"cannot delete container {container_id}: it is {status}, not stopped (kill it first, or use --force)"
        )
    hooks = c.state.config.hooks
    c.remove(force=True)
    if hooks.get("poststop"):
        _run_hook_list(c, hooks["poststop"], "poststop", fail_ok=True, state_override={"status": "stopped"})


def run(
    container_id: str,
    bundle: str = ".",
    root: str | None = None,
    detach: bool = False,
    pid_file: str | None = None,
    console_socket: str | None = None,
    no_pivot: bool = False,
    preserve_fds: int = 0,
    keep: bool = False,
) -> int:
    """OCI run: create + start, then (unless detached) wait and delete, returning the exit status.

    ``keep`` (runc's --keep): leave the stopped container for 'state' and 'delete' instead of deleting it."""
    from . import process
    from .spec import load_bundle

    if not detach:
        spec = load_bundle(os.path.abspath(bundle))
        if spec.process is not None and spec.process.terminal and not console_socket:
            raise InvalidArgument(
                "config.json: process.terminal is true: run it with --detach and "
                "--console-socket, or set terminal to false"
            )
    c = create(container_id, bundle, root, pid_file, console_socket, no_pivot, preserve_fds)
    start(container_id, root)
    if detach:
        return 0
    code = process.wait_status(c.pid)
    c.record_exit(code)
    if not keep:
        delete(container_id, root, force=True)
    return code


def write_spec(bundle: str = ".", rootless: bool = False) -> str:
    """runc's ``spec``: a default config.json in ``bundle`` (one for a rootless container with ``rootless``),
    never over an existing one. Returns its path."""
    import json

    from .errors import AlreadyExists
    from .spec import default_spec

    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise AlreadyExists(f"{path} already exists: remove it first")
    with open(path, "w") as f:
        json.dump(default_spec(rootless=rootless), f, indent=2)
        f.write("\n")
    return path


def write_pid_file(path: str, pid: int) -> None:
    fastos.write_replace(path, str(pid).encode(), 0o644)


def send_console(path: str, master: int) -> None:
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(path)
            socket.send_fds(sock, [b"/dev/ptmx"], [master])
    except OSError as e:
        raise PycontainError(f"cannot send the terminal to --console-socket {path}: {e.strerror}") from None
    finally:
        os.close(master)


# -- hooks ---------------------------------------------------------------------------------------


def _run_hooks(
    c: Container, kind: str, inside: bool = False, fail_ok: bool = False, host_path: bool = False
) -> None:
    """``host_path``: the hook runs in the container's namespaces, but its path is the host's (the spec's
    rule for createContainer; startContainer's path resolves in the container)."""
    hooks = c.state.config.hooks.get(kind)
    if hooks:
        _run_hook_list(c, hooks, kind, inside=inside, fail_ok=fail_ok, host_path=host_path)


def _run_hook_list(
    c: Container,
    hooks: list[OciHook],
    kind: str,
    inside: bool = False,
    fail_ok: bool = False,
    state_override: dict | None = None,
    host_path: bool = False,
) -> None:
    """Run hooks in order with the container's state JSON on stdin; a failing one fails the operation
    (poststart and poststop only warn, as the spec says)."""
    import subprocess

    st = c.state.oci_state() if state_override is None else {**_basic_state(c), **state_override}
    payload = fastjson.dumps(st).encode()
    for h in hooks:
        path, timeout = h.path, h.timeout
        detail = ""
        try:
            code = _run_inside(c, h, payload, host_path) if inside else _run_host(h, payload)
        except subprocess.TimeoutExpired:
            code, detail = None, f"timed out after {timeout} s"
        except OSError as e:
            code, detail = None, f"could not run: {e.strerror}"
        if code != 0:
            msg = f"{kind} hook {path} " + (detail or f"failed with exit status {code}")
            if not fail_ok:
                raise PycontainError(msg)
            warn(msg)


def _hook_env(h: OciHook) -> dict[str, str]:
    return dict(e.partition("=")[::2] for e in h.env)


def _run_host(h: OciHook, payload: bytes) -> int:
    import subprocess

    p = subprocess.run(
        h.args or [h.path],
        executable=h.path,
        input=payload,
        env=_hook_env(h),
        timeout=h.timeout,
        capture_output=True,
    )
    return p.returncode


def _basic_state(c: Container) -> dict:
    return {
        "ociVersion": SPEC_VERSION,
        "id": c.name,
        "pid": c.pid,
        "bundle": c.state.bundle,
        "annotations": c.state.config.annotations,
    }


def _run_inside(c: Container, h: OciHook, payload: bytes, host_path: bool = False) -> int:
    """createContainer / startContainer hooks: run in the container's namespaces; the path resolved there,
    or with ``host_path`` on the host: the file is opened here and executed through its descriptor."""
    import subprocess

    from . import process
    from .process.exec import exec_in

    exe = os.open(h.path, os.O_PATH | os.O_CLOEXEC) if host_path else None
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        cg = c.cgroup()
        argv = h.args or [h.path]
        child = exec_in(
            c.pid,
            cg.procs_files() if cg else [],
            [h.path if exe is None else f"/proc/self/fd/{exe}", *argv[1:]],
            _hook_env(h),
            "/",
            "0:0",
            process.Stdio(stdin_fd=r),
            keep_fds=() if exe is None else (exe,),
        )
    finally:
        os.close(r)
        if exe is not None:
            os.close(exe)
    try:
        os.write(w, payload)
    except BrokenPipeError:
        pass
    finally:
        os.close(w)
    timeout = h.timeout
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        pid, status = os.waitpid(child.pid, os.WNOHANG)
        if pid:
            return os.waitstatus_to_exitcode(status)
        if deadline is not None and time.monotonic() > deadline:
            os.kill(child.pid, 9)
            os.waitpid(child.pid, 0)
            raise subprocess.TimeoutExpired(h.path, timeout)  # type: ignore[arg-type]  # set when deadline is
        time.sleep(0.005)


def list_states(root: str | None = None) -> list[dict]:
    store = StateStore(root)
    out = []
    for st in store.all():
        c = Container(st, store)
        d = c.state.oci_state()
        d["created"] = st.created
        d["owner"] = "root"
        out.append(d)
    return out


def features() -> dict:
    """``pycontain features``: what this runtime supports, in the runtime-spec's features.json shape."""
    from . import procattr
    from .spec import IDMAP_OPTIONS, RECURSIVE_OPTIONS

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": [
            "ro",
            "rw",
            "nosuid",
            "suid",
            "nodev",
            "dev",
            "noexec",
            "exec",
            "sync",
            "async",
            "remount",
            "mand",
            "nomand",
            "dirsync",
            "atime",
            "noatime",
            "diratime",
            "nodiratime",
            "relatime",
            "norelatime",
            "strictatime",
            "nostrictatime",
            "bind",
            "rbind",
            "private",
            "rprivate",
            "shared",
            "rshared",
            "slave",
            "rslave",
            "unbindable",
            "runbindable",
            *RECURSIVE_OPTIONS,
            *IDMAP_OPTIONS,
        ],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "mountExtensions": {"idmap": {"enabled": True}},
            "memoryPolicy": {"modes": list(procattr.MPOL_MODES), "flags": list(procattr.MPOL_FLAGS)},
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": False},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
        },
        "annotations": {"org.opencontainers.runtime-spec.features.implementation": "pycontain"},
    }
