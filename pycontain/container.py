"""The container lifecycle: create and start, wait, signal, stop, exec, remove — the library's core.

A detached container keeps no pycontain process alive: its processes, its cgroup and its state
directory are all there is, and every command rebuilds what it needs from the state file.
"""

from __future__ import annotations

import _signal as signal  # the C module: the signal package loads enum (2-3 ms on the start path)
import builtins  # `list` in annotations inside Container, which defines list()
import os
import time

from .errors import ContainerNotFound, InvalidArgument, InvalidState, PycontainError, Unsupported, warn
from .state import (
    CREATED,
    CREATING,
    PAUSED,
    REMOVING,
    RUNNING,
    STOPPED,
    ContainerState,
    ProcRef,
    StateStore,
    crash_point,
    current_boot_id,
    proc_start_time,
)

# The process module (and rootfs, security, libc below it) is imported by the methods that start
# processes: state, ps, kill and pause never pay for it. typing.TYPE_CHECKING without importing typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from . import process
    from .config import ContainerConfig
    from .config_fields import ProcAttrs


def new_id() -> str:
    return os.urandom(32).hex()


# The named steps at which PYCONTAIN_CRASH_AT=<step> makes pycontain SIGKILL itself, in the order each
# command passes them (the tests kill it at every one and check that nothing outlives 'rm -f' or 'gc').
CREATE_STEPS = ("reserved", "cgroup-created", "limits-applied", "network-attached", "started")
START_STEPS = ("start-fifo-opened", "start-released", "start-recorded")
EXEC_STEPS = ("exec-checked", "exec-started")
REMOVE_STEPS = ("rm-marked", "rm-killed", "rm-cgroup-destroyed", "rm-network-detached", "rm-contents-removed")


class Container:
    """One container, as recorded in a state root. Get one with ``Container.create`` or ``Container.get``."""

    def __init__(self, state: ContainerState, store: StateStore) -> None:
        self.state = state
        self.store = store

    # -- lookup ----------------------------------------------------------------------------
    @classmethod
    def get(cls, ref: str, root: str | None = None) -> Container:
        store = StateStore(root)
        return cls(store.find(ref), store)

    @classmethod
    def list(cls, root: str | None = None) -> list[Container]:
        store = StateStore(root)
        return [cls(st, store) for st in store.all()]

    @property
    def id(self) -> str:
        return self.state.id

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def pid(self) -> int:
        return self.state.pid

    @property
    def dir(self) -> str:
        return self.store.dir(self.id)

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, "container.log")

    def cgroup(self):
        if not self.state.cgroup:
            return None
        from .cgroups import load_manager

        return load_manager(self.state.cgroup)

    def status(self) -> str:
        """The container's status now, from the kernel's view rather than the last one recorded."""
        return self.state.status_now()

    def running(self) -> bool:
        return self.status() in (RUNNING, PAUSED)

    # -- creation --------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        config,
        root: str | None = None,
        *,
        wait_for_start: bool = False,
        stdio: process.Stdio | None = None,
        monitor: ProcRef | None = None,
        cid: str | None = None,
    ) -> tuple[Container, process.Child]:
        """Make the container and start its process; on any failure nothing is left behind.

        ``wait_for_start`` (OCI create): everything is set up and the process waits, status "created",
        until ``start()``. ``stdio``: where its fds 0-2 come from (default: docker's rules). ``monitor``:
        the container's monitor (``pycontain.monitor``: the caller, or the loop it runs beside), recorded.
        ``cid``: its id, if the caller chose it (a new one by default).
        """
        from . import process
        from .config_check import validate
        from .process.create import start_container

        validate(config)
        store = StateStore(root)
        cid = cid or new_id()
        if config.hostname is None and "uts" in config.namespaces:
            config = config.replace(hostname=cid[:12])  # docker's default: the container's short id
        state = ContainerState(cid, config.name or cid[:12], config)
        if monitor is not None:
            from .health import new_health

            state.monitor = monitor
            state.health = new_health(config)
        self = cls(state, store)
        manager = self._cgroup_manager(config)
        # Its path goes into the first save (before the cgroup exists, as _cgroup_manager says): no save more.
        state.cgroup = manager.record() if manager is not None else None
        store.reserve(state)
        crash_point("reserved")
        cg = None
        try:
            cg = self._new_cgroup(config, manager)
            crash_point("limits-applied")
            if stdio is None:
                stdio = process.Stdio(
                    stdin_null=not config.interactive,
                    log_path=self.log_path if config.detach else None,
                    tty=config.tty,
                )
            fifo = None
            if wait_for_start:
                fifo = os.path.join(self.dir, "exec.fifo")
                os.mkfifo(fifo, 0o600)
                if config.id_mappings is not None:
                    # Its writer is root of the container's user namespace by then (runc does the same).
                    os.chown(fifo, *config.id_mappings.host_root())
            config = self._setup_network(config)
            crash_point("network-attached")
            child = start_container(config, self.dir, cg.procs_files() if cg else [], stdio, start_fifo=fifo)
            crash_point("started")
        except BaseException:
            self._undo_create(cg)
            raise
        state.pid = child.pid
        state.pid_start = proc_start_time(child.pid, allow_zombie=True)
        state.bundle = config.bundle
        if wait_for_start:
            state.status = CREATED
        else:
            state.status = RUNNING
            state.started = time.time()
        store.save(state)
        return self, child

    def _cgroup_manager(self, config):
        """The manager of the container's cgroup, not made yet (None for a rootless container without
        delegation). Its ``record()`` is saved before ``_new_cgroup`` makes it: a runtime killed right after
        mkdir still leaves its path behind."""
        from .cgroups import new_manager

        parent, name = config.cgroup_parent, None
        if config.cgroup_path:
            # OCI linux.cgroupsPath: an absolute path is taken from the hierarchy root as given; a
            # relative one is kept whole beneath the cgroup pycontain runs in (a/x and b/x differ).
            if config.cgroup_path.startswith("/"):
                head, _, name = config.cgroup_path.rstrip("/").rpartition("/")
                parent = head or "/"
            else:
                name = config.cgroup_path.strip("/")
        from . import rootless

        if rootless.active() and not rootless.cgroup_delegated():
            # Device rules are not limits: without a cgroup the user namespace already denies mknod.
            if config.resources is not None or config.cgroup_writes:
                raise Unsupported(
                    "rootless containers get no cgroup here, so no resource limits: no cgroup was "
                    "delegated to this user (run as root, or in a systemd unit with Delegate=yes)"
                )
            return None
        # OCI bundles (engines: podman, containerd) get every v1 hierarchy, as runc makes them: their stats
        # read cpu and pids too. Docker-style containers get those a limit needs (cgroups.v1.ALWAYS).
        return new_manager(self.id, parent, config.cgroup_manager, name=name, every_v1=bool(config.bundle))

    def _new_cgroup(self, config, cg):
        """Make ``cg``'s cgroup (its record saved already) and apply the config's limits; return it (None: no
        cgroup)."""
        if cg is None:
            return None
        try:
            cg.create()
            crash_point("cgroup-created")
            if config.resources is not None:
                cg.apply(config.resources)
            if config.cgroup_writes:
                from .cgroups import extras

                for message in extras.apply(cg, config.cgroup_writes):
                    warn(message)
            if config.device_rules is not None:
                cg.set_devices(config.device_rules)
        except BaseException:
            self._destroy_resources(cg)
            raise
        return cg

    def _setup_network(self, config: ContainerConfig) -> ContainerConfig:
        """--network: the config to start with. A bridge network gets a namespace made and wired before the
        process starts (joined by path) and its /etc/hosts, resolv.conf and hostname bound over the image's;
        container:X joins X's namespace; none, host (``spec.docker`` left its namespace out) and None (OCI
        bundles, the Python API) change nothing. 'pycontain run' passes bridge unless told otherwise."""
        if config.network in (None, "none", "host"):
            return config
        from . import network
        from .config_fields import Mount
        from .spec.docker import network_mounts

        mode, arg = network.resolve_mode(config.network)
        if mode == "host":  # a network's name cannot be host: --network host is the literal above
            return config
        assert arg is not None  # only none and host name no container or network
        if mode == "container":
            other = Container.get(arg, self.store.root)
            if not other.running():
                raise InvalidState(f"cannot join the network of container {other.name}: it is not running")
            info = other.state.net_info
            netns = info.netns_path if info else f"/proc/{other.pid}/ns/net"
            files_dir = info.files_dir if info else None
        else:
            attached = network.attach(
                self.id,
                arg,
                container_name=self.name,
                publish=config.publish,
                hostname=config.hostname,
                state_root=self.store.root,
                extra_hosts=config.extra_hosts,
                dns=config.dns,
                dns_search=config.dns_search,
            )
            self.state.net_info = attached
            netns, files_dir = attached.netns_path, attached.files_dir
        namespaces = {**config.namespaces, "network": netns}
        # Saved with the process's pid, not here: 'rm -f' after a crash in between finds what to undo in the
        # network registry by the container's id (detach needs no NetInfo), and a save is a rename over the
        # state file that ext4 flushes (~1 ms).
        self.state.config = self.state.config.replace(namespaces=namespaces)
        mounts = list(config.mounts)
        if files_dir:
            mounts += [Mount.from_oci(m) for m in network_mounts(files_dir)]
        return config.replace(namespaces=namespaces, mounts=mounts)

    def _teardown_network(self, wait: bool = True):
        """The network attachment removed; ``wait=False``: what is left of it (``network.detach``) goes on
        in a thread, returned for the caller to wait for."""
        net_info, mode = self.state.net_info, self.state.config.network
        if net_info is not None or (mode not in (None, "none", "host") and not mode.startswith("container:")):
            from . import network

            return network.detach(self.id, net_info, self.store.root, wait=wait)
        return None

    def start(self) -> None:
        """Let a created container's process exec its command (OCI start); start an exited one again."""
        status = self.status()
        if status == STOPPED and not (self.state.bundle or self.state.config.bundle):
            self.start_again()
            return
        if status != CREATED:
            raise InvalidState(f"cannot start container {self.name}: it is {status}, not created")
        fifo = os.path.join(self.dir, "exec.fifo")
        try:
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise InvalidState(f"cannot start container {self.name}: it was started already") from None
        crash_point("start-fifo-opened")
        try:
            # The process opens the FIFO for writing once a reader exists, writes one byte and execs.
            deadline = time.monotonic() + 10
            while True:
                try:
                    if os.read(fd, 1):
                        break
                except BlockingIOError:
                    pass
                if not self.state.alive():
                    raise InvalidState(f"container {self.name}'s process exited before it could start")
                if time.monotonic() > deadline:
                    raise PycontainError(f"container {self.name} did not start within 10 s")
                time.sleep(0.001)
        finally:
            os.close(fd)
        crash_point("start-released")
        os.unlink(fifo)
        with self.store.lock():
            st = self.store.load_id(self.id) or self.state
            st.status = RUNNING
            st.started = time.time()
            self.state = st
            self.store.save(st)
        crash_point("start-recorded")

    def restart(self, timeout: float = 10) -> None:
        """docker's ``restart``: stop (if it runs: the stop signal, SIGKILL after ``timeout`` seconds), then
        ``start_again``."""
        self.stop(timeout)
        self.start_again()

    def start_again(self) -> None:
        """Start an exited container again, detached under a new monitor, with the same configuration and
        writable layer (docker's 'start')."""
        from .monitor_spawn import spawn

        status = self.status()
        if status != STOPPED:
            raise InvalidState(f"cannot start container {self.name}: it is {status}")
        if self.state.monitored():
            raise InvalidState(f"container {self.name} is restarting (its restart policy): wait, or stop it")
        with self.store.lock():
            st = self.store.load_id(self.id)
            if st is None:
                raise ContainerNotFound(self.name)
            st.manual_stop = False
            st.monitor = None
            self.state = st
            self.store.save(st)
        config = st.config
        self.state = self.store.find(
            spawn(lambda: (lambda stdio, monitor: (self, self.relaunch(stdio, monitor)), config), self.id)
        )

    def relaunch(self, stdio: process.Stdio, monitor: ProcRef) -> process.Child:
        """Start an exited container's process again from its saved configuration (for its ``monitor``, the
        same one for a restart by the policy, a new one for 'start'): a new cgroup and network attachment,
        the same writable layer."""
        from .process.create import start_container

        with self.store.lock():
            st = self.store.load_id(self.id)
            if st is None:
                raise ContainerNotFound(self.name)
            if st.alive():
                raise InvalidState(f"container {self.name} is running already")
            if st.status == REMOVING:
                raise InvalidState(f"container {self.name} is being removed")
            self.state = st
        namespaces = dict(st.config.namespaces)
        if st.config.network not in (None, "none", "host"):
            namespaces["network"] = ""  # a new one: the old namespace may be gone (after a reboot)
        config = st.config = st.config.replace(detach=True, namespaces=namespaces)
        old = self.cgroup()
        if old is not None:
            try:
                old.destroy()  # empty: its processes died with PID 1's namespace
            except OSError:
                pass
        self._teardown_network()
        st.net_info = None
        cg = None
        try:
            manager = self._cgroup_manager(config)
            if manager is not None:
                st.cgroup = manager.record()
                self.store.save(st)
            cg = self._new_cgroup(config, manager)
            config = self._setup_network(config)
            child = start_container(config, self.dir, cg.procs_files() if cg else [], stdio)
        except BaseException:
            try:
                self._destroy_resources(cg)
                self._teardown_network()
            except Exception:
                pass  # the start's own error is the one to report; 'rm' finishes the rest
            raise
        with self.store.lock():
            st.pid = child.pid
            st.pid_start = proc_start_time(child.pid, allow_zombie=True)
            st.boot_id = current_boot_id()
            st.status = RUNNING
            st.started = time.time()
            st.oom_killed = False
            from .health import new_health

            st.health = new_health(st.config)
            if st.monitor is not None and st.monitor.pid == monitor.pid:
                st.restarts += 1
            else:
                st.monitor = monitor
            self.store.save(st)
        return child

    def wait(self, timeout: float | None = None) -> int:
        """Block until the container's current run ends; return its exit status (docker's 'wait').

        A container restarted by its policy meanwhile counts as ended: its last run's status is returned."""
        deadline = None if timeout is None else time.monotonic() + timeout
        started = self.state.started
        while True:
            st = self.store.load_id(self.id)
            if st is None:
                raise ContainerNotFound(self.name)
            self.state = st
            recorded = st.finished is not None and st.finished >= (started or 0) and st.exit_code is not None
            if recorded and (st.status == STOPPED or st.started != started):
                return st.exit_code  # type: ignore[return-value]  # recorded: not None
            if not st.alive() and not st.monitored() and st.status not in (CREATING, CREATED):
                if st.exit_code is None:
                    raise PycontainError(f"the exit status of container {self.name} was not recorded")
                return st.exit_code
            if deadline is not None and time.monotonic() >= deadline:
                raise PycontainError(f"container {self.name} still runs after {timeout} s")
            time.sleep(0.02)

    def record_exit(self, exit_code: int) -> bool:
        """Called by whoever waited for PID 1: keep its exit status (and whether OOM killed it).

        Returns False when there is nothing to record: the container is gone, or being removed."""
        if self.state.config.auto_remove:
            try:
                self.remove(force=True)
            except ContainerNotFound:
                pass  # removed meanwhile ('rm -f' from another shell)
            return False
        with self.store.lock():
            # Re-read: 'update' may have changed the recorded limits while the container ran.
            st = self.store.load_id(self.id)
            if st is None:
                return False  # removed meanwhile ('rm -f' from another shell)
            if st.status == REMOVING:
                # An 'rm' killed PID 1 and was itself killed before it finished: "removing" is what tells
                # 'gc' and 'rm -f' to finish the job, so "exited" must not replace it.
                self.state = st
                return False
            st.exit_code = exit_code
            st.finished = time.time()
            st.status = STOPPED
            cg = self.cgroup()
            if cg is not None:
                try:
                    st.oom_killed = cg.oom_killed()
                except (OSError, PycontainError):
                    pass
            self.state = st
            self.store.save(st)
        self._release_network()
        return True

    def _release_network(self) -> None:
        """An exited container's network attachment goes, as docker's: its address, veth and host ports
        (another container may publish them now); a start attaches it again. Left for 'rm' on failure.
        Nobody can start it meanwhile: its monitor (or the foreground 'run') is the one recording its exit."""
        if self.state.net_info is None:
            return
        try:
            self._teardown_network()
        except Exception:  # whatever it is: the exit is recorded, and a restart policy must still apply
            return
        with self.store.lock():
            st = self.store.load_id(self.id)
            if st is not None and st.status == STOPPED:
                st.net_info = None
                self.store.save(st)
                self.state = st

    # -- signals ---------------------------------------------------------------------------
    def kill(self, sig: str | int = signal.SIGKILL, all_processes: bool = False) -> None:
        from .interrupts import parse_signal

        sig = parse_signal(sig)
        if all_processes and self.status() == STOPPED:
            # runc's 'kill --all' of a stopped container signals its empty cgroup and succeeds;
            # containerd sends it after every exit and retries for ever on an error.
            return
        if not self.running() and self.status() != CREATED:
            raise InvalidState(f"container {self.name} is not running")
        if all_processes:
            cg = self.cgroup()
            if cg is not None:
                cg.kill_all(sig)
                return
        self._signal_pid1(sig)

    def _signal_pid1(self, sig: int) -> bool:
        """Signal PID 1 through a pidfd checked against its start time: never a recycled pid."""
        from . import libc

        try:
            fd = libc.pidfd_open(self.state.pid)
        except OSError:
            return False
        try:
            if proc_start_time(self.state.pid) != self.state.pid_start:
                return False
            signal.pidfd_send_signal(fd, sig)
            return True
        except ProcessLookupError:
            return False
        finally:
            os.close(fd)

    def wait_stopped(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.state.alive():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def stop(self, timeout: float = 10) -> None:
        """The stop signal (--stop-signal, default SIGTERM), then SIGKILL after ``timeout`` seconds, like
        ``docker stop``. A stopped container stays stopped whatever its restart policy."""
        if timeout != timeout:  # NaN: no deadline would ever pass, and a PID 1 that ignores TERM runs on
            raise InvalidArgument(f"invalid stop timeout {timeout!r}: use a number of seconds, e.g. 10")
        if self.state.monitored():
            # Said before the signal: the monitor, seeing PID 1 exit, must not restart it.
            with self.store.lock():
                st = self.store.load_id(self.id)
                if st is None:
                    raise ContainerNotFound(self.name)
                st.manual_stop = True
                self.state = st
                self.store.save(st)
        if not self.running():
            return
        from .interrupts import parse_signal

        cg = self.cgroup()
        if self.status() == PAUSED and cg is not None:
            cg.thaw()
        self._signal_pid1(parse_signal(self.state.config.stop_signal or signal.SIGTERM))
        killed = False
        if not self.wait_stopped(timeout):
            killed = self._signal_pid1(signal.SIGKILL)
            if cg is not None:
                cg.kill_all(signal.SIGKILL)
            self.wait_stopped(10)
        if self.state.monitored():
            self._wait_recorded(10)  # the monitor reaps PID 1 and records how it ended
            return
        # Nobody waits for this PID 1; when our SIGKILL ended it, its status is known.
        self._mark_stopped(128 + signal.SIGKILL if killed else None)

    def _wait_recorded(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.store.load_id(self.id)
            if st is None or st.status == STOPPED or not st.monitored():
                if st is not None:
                    self.state = st
                return
            time.sleep(0.01)

    def _mark_stopped(self, exit_code: int | None = None) -> None:
        if self.state.status in (RUNNING, PAUSED, CREATED):
            if self.state.exit_code is None:
                self.state.exit_code = exit_code
            self.state.status = STOPPED
            self.state.finished = self.state.finished or time.time()
            if os.path.isdir(self.dir):
                self.store.save(self.state)

    # -- removal ---------------------------------------------------------------------------
    def remove(self, force: bool = False) -> None:
        """Remove the container and everything it owns; ``force`` kills it first if it runs."""
        with self.store.lock():
            current = self.store.load_id(self.id)
            if current is None:
                raise ContainerNotFound(self.name)
            self.state = current
            alive = self.state.alive()
            if alive and not force and current.status != REMOVING:
                raise InvalidState(f"container {self.name} is running: stop it first, or use 'rm -f'")
            cg = self.cgroup()
            # A half-made container (the runtime died while creating it) may have a process whose pid was
            # never recorded, and a half-removed one may have been left running: the cgroup finds both.
            half_done = current.status in (CREATING, REMOVING)
            if current.status_now() != STOPPED or not current.shown.auto_remove:
                self._mark_removing()
            # else: an exited --rm container already reads as one to remove ('gc', 'ps' and 'rm -f' finish a
            # removal cut short), so the mark would add nothing but its save, a rename over the state file that
            # ext4 flushes: every foreground 'run --rm' ends here.
            crash_point("rm-marked")
            if alive or half_done:
                self._kill_everything(cg)
            crash_point("rm-killed")
            if cg is not None:
                cg.destroy()
            crash_point("rm-cgroup-destroyed")
            # The kernel removes the veth while the container's directory goes (rm waits for both).
            releasing = self._teardown_network(wait=False)
            try:
                crash_point("rm-network-detached")
                self.store.remove(self.id, current.name)
            finally:
                if releasing is not None:
                    releasing.wait()

    def _mark_removing(self) -> None:
        """Record that we are removing it: if we die half-way, gc knows to finish the job."""
        st = self.state
        st.status = REMOVING
        st.creator = ProcRef.me()
        try:
            self.store.save(st)
        except (OSError, PycontainError):
            pass  # a full disk must not stop the removal that frees it

    def _kill_everything(self, cg) -> None:
        if cg is not None:
            try:
                if cg.exists():
                    cg.kill_all(signal.SIGKILL)
            except OSError:
                pass
        self._signal_pid1(signal.SIGKILL)
        self.wait_stopped(10)

    def _undo_create(self, cg) -> None:
        """Undo a create that failed part-way, every step tried whatever the others do. What cannot be undone
        now (out of descriptors, say) keeps its state directory: once we have exited, that container is
        abandoned, and 'rm -f' or 'gc' finishes the job. The create's own error is the one reported."""
        undone = True
        for step in (lambda: self._destroy_resources(cg), self._teardown_network):
            try:
                step()
            except Exception:
                undone = False
        if undone:
            try:
                with self.store.lock():  # the name's entry is released under it (StateStore.remove)
                    self.store.remove(self.id)
            except OSError:
                pass  # an abandoned container too

    def _destroy_resources(self, cg) -> None:
        """Undo a create that failed part-way: its process, if any, then its cgroup."""
        if cg is None:
            return
        try:
            cg.kill_all(signal.SIGKILL)
        except OSError:
            pass
        cg.destroy()

    # -- exec ------------------------------------------------------------------------------
    def exec(
        self,
        args: builtins.list[str],
        *,
        env: builtins.list[str] | None = None,
        cwd: str | None = None,
        user: str | None = None,
        tty: bool = False,
        interactive: bool = False,
        detach: bool = False,
        stdio: process.Stdio | None = None,
        security: dict | None = None,
        extra_gids: builtins.list[int] | None = None,
        umask: int | None = None,
        preserve_fds: int = 0,
        proc_attrs: ProcAttrs | None = None,
    ) -> process.Child:
        """Start ``args`` in the running container (all its namespaces, its cgroup) with what create gave
        its first process: security settings, additional groups and umask, unless given here (an OCI
        process.json's own).

        The caller reaps the returned child (``process.wait_status``). ``stdio`` overrides where its
        fds 0-2 come from (e.g. pipes to capture output); ``preserve_fds`` of the caller's descriptors
        after stderr (3, 4, ...) are passed on to it (runc's exec --preserve-fds); ``proc_attrs``: its
        I/O priority and scheduling policy (pycontain.procattr.check of an OCI process.json).
        """
        from . import process
        from .execjoin import exec_plan
        from .process.exec import exec_in

        plan = exec_plan(self.state, args, env=env, cwd=cwd, user=user, tty=tty)
        cg = self.cgroup()
        if stdio is None:
            stdio = process.Stdio(
                stdin_null=not interactive, log_path="/dev/null" if detach else None, tty=tty
            )
        crash_point("exec-checked")
        child = exec_in(
            self.state.pid,
            cg.procs_files() if cg else [],
            args,
            plan.env,
            plan.cwd,
            plan.user,
            stdio,
            security if security is not None else plan.security,
            extra_gids if extra_gids is not None else plan.extra_gids,
            umask if umask is not None else plan.umask,
            keep_fds=tuple(range(3, 3 + preserve_fds)),
            proc_attrs=proc_attrs,
        )
        crash_point("exec-started")
        return child

    def exec_run(
        self,
        args: builtins.list[str],
        *,
        env: builtins.list[str] | None = None,
        cwd: str | None = None,
        user: str | None = None,
        input: bytes | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        """Run ``args`` in the running container, wait for it and return its exit status and output.

        ``input`` is its stdin (else /dev/null). After ``timeout`` seconds it is killed and
        ``PycontainError`` raised; the process is reaped on every path.
        """
        import select

        from . import process

        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        in_r, in_w = os.pipe2(os.O_CLOEXEC) if input is not None else (None, None)
        stdio = process.Stdio(stdin_null=input is None, stdin_fd=in_r, stdout_fd=out_w, stderr_fd=err_w)
        try:
            child = self.exec(args, env=env, cwd=cwd, user=user, stdio=stdio)
        except BaseException:
            for fd in (out_r, err_r, in_w):
                if fd is not None:
                    os.close(fd)
            raise
        finally:
            for fd in (out_w, err_w, in_r):
                if fd is not None:
                    os.close(fd)
        if in_w is not None:
            try:
                os.write(in_w, input or b"")  # a pipe holds 64 KiB: larger inputs belong in a volume
            except BrokenPipeError:
                pass
            os.close(in_w)
        fds = {out_r: bytearray(), err_r: bytearray()}
        out, err = bytearray(), bytearray()
        deadline = None if timeout is None else time.monotonic() + timeout
        timed_out = False
        try:
            while fds and not timed_out:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                ready, _, _ = select.select(list(fds), [], [], left)
                if not ready:
                    timed_out = True
                for fd in ready:
                    data = os.read(fd, 65536)
                    if data:
                        fds[fd] += data
                    else:
                        (out if fd == out_r else err).extend(fds.pop(fd))
                        os.close(fd)
        finally:
            if fds:
                for fd in fds:
                    os.close(fd)
                try:
                    os.kill(child.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            code = process.wait_status(child.pid)
        if timed_out:
            raise PycontainError(f"{args[0]!r} in container {self.name} did not finish within {timeout} s")
        return ExecResult(code, bytes(out), bytes(err))

    # -- reporting -------------------------------------------------------------------------
    def ports(self, private: str | None = None) -> builtins.list:
        """The ports published on the host (``network.PortSpec``s); with ``private`` ("80" or "80/udp"), only
        that container port's, and NotFound when it has none (docker's ``port``)."""
        from .errors import NotFound
        from .network import published

        want_port, _, want_proto = (private or "").partition("/")
        found = []
        for p in published(self.state.net_info):
            if private and (str(p.container_port) != want_port or p.proto != (want_proto or "tcp")):
                continue
            found.append(p)
        if private and not found:
            raise NotFound(f"no public port {private!r} published for container {self.name}")
        return found

    def inspect(self) -> dict:
        st = self.state
        cfg = st.config
        status = self.status()
        d = {
            "Id": st.id,
            "Name": st.name,
            "Created": _iso(st.created),
            "State": {
                "Status": status,
                "Running": status in (RUNNING, PAUSED),
                "Paused": status == PAUSED,
                "Pid": st.pid if status in (RUNNING, PAUSED, CREATED) else 0,
                # docker's: 0 while it runs, not the code of a run its restart policy ended (kept in the
                # state for 'wait', which returns it)
                "ExitCode": 0 if status in (RUNNING, PAUSED, CREATED) else st.exit_code,
                "OOMKilled": st.oom_killed or self._oom_now(status),
                "StartedAt": _iso(st.started),
                "FinishedAt": _iso(st.finished),
                "Error": st.error,
                **({"Health": st.health.to_dict()} if st.health else {}),
            },
            "Image": cfg.image,
            "Rootfs": cfg.rootfs,
            "Path": (cfg.args or [""])[0],
            "Args": cfg.args[1:],
            "Config": st.config_dict(),
            "RestartCount": st.restarts,
            "RestartPolicy": cfg.restart,
            "Labels": cfg.labels,
            "Cgroup": st.cgroup,
            "StateDir": self.dir,
            "LogPath": self.log_path if cfg.detach else "",
        }
        host: dict = {}
        if cfg.detach:
            from .logs import LOG_OPTS

            host["LogConfig"] = {"Type": "pycontain", "Config": {**LOG_OPTS, **cfg.log_opts}}
        if cfg.publish:
            from .network import parse_publish, published

            # As asked (HostPort "" for one to pick), and as bound (the picked ones), docker's two views.
            host["PortBindings"] = _port_map(map(parse_publish, cfg.publish))
            d["NetworkSettings"] = {"Ports": _port_map(published(st.net_info))}
        if host:
            d["HostConfig"] = host
        return d

    def _oom_now(self, status: str) -> bool:
        if status in (RUNNING, PAUSED):
            return False
        cg = self.cgroup()
        try:
            return bool(cg is not None and cg.exists() and cg.oom_killed())
        except (OSError, PycontainError):
            return False

    # -- resources: pause, stats, update -----------------------------------------------------
    def _live_cgroup(self, action: str):
        """The cgroup of a running (or paused) container, for ``action``; InvalidState otherwise."""
        status = self.status()
        if status not in (RUNNING, PAUSED):
            raise InvalidState(f"cannot {action} container {self.name}: it is not running (status: {status})")
        cg = self.cgroup()
        if cg is None or not cg.exists():
            raise InvalidState(f"cannot {action} container {self.name}: it has no cgroup")
        return cg

    def pause(self) -> None:
        """Freeze every process of the container (the freezer cgroup), like ``docker pause``."""
        cg = self._live_cgroup("pause")
        if cg.frozen():
            raise InvalidState(f"container {self.name} is already paused")
        cg.freeze()

    def unpause(self) -> None:
        """Thaw a paused container."""
        cg = self._live_cgroup("unpause")
        if not cg.frozen():
            raise InvalidState(f"container {self.name} is not paused")
        cg.thaw()

    def stats(self):
        """One sample of the container's usage (cpu time, memory, pids, block I/O) from its cgroup."""
        return self._live_cgroup("read the stats of").stats()

    def update(self, resources):
        """Change a running container's limits: ``resources`` (only the fields it sets) on top of the saved
        ones, checked as a whole, written to the cgroup and saved in the container's state.

        Returns the merged limits. If the kernel refuses one of them, the saved limits are written back
        (as far as the kernel allows) and nothing is saved.
        """
        from .cgroups.resources import Resources

        with self.store.lock():
            current = self.store.load_id(self.id)
            if current is None:
                raise ContainerNotFound(self.name)
            self.state = current
            cg = self._live_cgroup("update")
            saved = current.config.resources or Resources()
            try:
                merged = saved.merged(resources)
            except InvalidArgument:
                swap = saved.memory_swap
                if (
                    resources.memory is not None
                    and resources.memory_swap is None
                    and swap is not None
                    and 0 <= swap < resources.memory
                ):
                    raise InvalidArgument(
                        f"invalid memory: {resources.memory} is above container {self.name}'s memory+swap limit "
                        f"{swap} (give --memory-swap too, e.g. --memory-swap -1)"
                    ) from None
                raise
            try:
                cg.apply(merged)
            except BaseException:
                try:
                    cg.apply(saved)
                except (OSError, PycontainError):
                    pass  # best effort: the first error is the one to report
                raise
            current.config = current.config.replace(resources=None if merged.is_empty() else merged)
            self.store.save(current)
        return merged


class ExecResult:
    """What ``Container.exec_run`` returns: the exit status (128+N for signal N) and the captured output."""

    __slots__ = ("exit_code", "stdout", "stderr")

    def __init__(self, exit_code: int, stdout: bytes, stderr: bytes) -> None:
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr

    @property
    def output(self) -> str:
        """stdout as text."""
        return self.stdout.decode(errors="replace")

    def __repr__(self) -> str:
        return f"ExecResult(exit_code={self.exit_code}, stdout={self.stdout!r}, stderr={self.stderr!r})"


def _port_map(ports) -> dict:
    """PortSpecs as docker's inspect shows them: {"80/tcp": [{"HostIp": ..., "HostPort": "8080"}]}."""
    out: dict = {}
    for p in ports:
        out.setdefault(f"{p.container_port}/{p.proto}", []).append(
            {"HostIp": p.host_ip, "HostPort": str(p.host_port) if p.host_port else ""}
        )
    return out


def _iso(ts: float | None) -> str:
    if not ts:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e6):06d}Z"
