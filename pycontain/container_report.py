"""What a container reports and how its resources are changed while it runs: ``ports``, ``inspect``
(docker's form), ``pause``/``unpause``, ``stats`` and ``update``, the ``Container``'s methods kept apart
from its lifecycle (``pycontain.container``)."""

from __future__ import annotations

import time

from .errors import ContainerNotFound, InvalidArgument, InvalidState, PycontainError
from .state import CREATED, PAUSED, RUNNING

# typing.TYPE_CHECKING without importing typing; type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .state import ContainerState, StateStore


class ReportMixin:
    """``Container``'s reports and live resource changes."""

    if TYPE_CHECKING:
        state: ContainerState
        store: StateStore

        @property
        def name(self) -> str: ...
        @property
        def id(self) -> str: ...
        @property
        def dir(self) -> str: ...
        @property
        def log_path(self) -> str: ...

        def status(self) -> str: ...
        def cgroup(self): ...

    def ports(self, private: str | None = None) -> list:
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
