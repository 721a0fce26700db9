"""The typed values of a container config's fields (``config.ContainerConfig``): ``Mount`` in mount(2)'s
terms, and the frozen ``HealthCheck``, ``TimeOffsets`` and ``ProcAttrs`` (with its ``Sched``). Each has its
state.json form (``to_dict``/``from_dict``). Apart from the config's class itself: reading a container's
state (``ps``, ``state``) needs none of them.
"""

from __future__ import annotations

from .errors import InvalidArgument

# typing.TYPE_CHECKING without importing typing; type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .spec.model import OciMount
    from .userns import IdMappings


class Mount:
    """One mount on top of the root filesystem, an OCI mount translated to mount(2)'s ``fstype``,
    ``flags`` and ``data`` (``spec.model.OciMount.flags_and_data``), with ``propagation`` flags applied
    after it and ``recursive`` for rbind. Every container's mounts have this form, docker-style ones
    included: ``spec.docker`` turns -v, --tmpfs and docker's own /proc, /sys and /dev into OCI mounts."""

    __slots__ = (
        "source",
        "target",
        "fstype",
        "flags",
        "data",
        "propagation",
        "recursive",
        "attr_set",
        "attr_clr",
        "id_mappings",
    )

    def __init__(
        self,
        target: str,
        source: str = "",
        fstype: str = "",
        flags: int = 0,
        data: str = "",
        propagation: list[int] | None = None,
        recursive: bool = False,
        attr_set: int = 0,
        attr_clr: int = 0,
        id_mappings: IdMappings | None = None,
    ) -> None:
        self.source = source
        self.target = target
        self.fstype = fstype
        self.flags = flags
        self.data = data
        self.propagation = list(propagation or [])
        self.recursive = recursive
        # OCI recursive options (rro, rnosuid, ...): mount_setattr(2) attributes for the whole mount tree
        self.attr_set = attr_set
        self.attr_clr = attr_clr
        # An id-mapped bind mount's own mappings, or None
        self.id_mappings = id_mappings

    @classmethod
    def from_oci(cls, m: OciMount) -> Mount:
        id_mappings = None
        if m.id_mapped:
            from .userns import IdMappings

            id_mappings = IdMappings(m.uid_mappings, m.gid_mappings)
        flags, propagation, data, recursive = m.flags_and_data()
        attr_set, attr_clr = m.recursive_attrs()
        return cls(
            m.destination,
            source=m.source,
            fstype=m.type or "",
            flags=flags,
            data=data,
            propagation=propagation,
            recursive=recursive or "ridmap" in m.options,
            attr_set=attr_set,
            attr_clr=attr_clr,
            id_mappings=id_mappings,
        )

    def to_dict(self) -> dict:
        """The fields that differ from their defaults (state.json is written several times per start)."""
        d = {k: v for k in self.__slots__ if (v := getattr(self, k)) or k == "target"}
        if self.id_mappings is not None:
            d["id_mappings"] = self.id_mappings.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Mount:
        kw = {k: d[k] for k in cls.__slots__ if k in d}
        if kw.get("id_mappings"):
            from .userns import IdMappings

            kw["id_mappings"] = IdMappings.from_dict(kw["id_mappings"])
        return cls(**kw)


class FrozenValue:
    """A config field's typed value: set once by its constructor, compared by value, never changed (a
    config is shared by state.json, the monitor and the child once validated)."""

    __slots__: tuple[str, ...] = ()

    def _init(self, **fields: object) -> None:
        for k, v in fields.items():
            object.__setattr__(self, k, v)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a {type(self).__name__} is not changed once made")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__
        )

    __hash__ = None  # type: ignore[assignment]  # compared by value, never a key

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={getattr(self, k)!r}' for k in self.__slots__)})"


class HealthCheck(FrozenValue):
    """docker's --health-*: the command the monitor runs in the container every ``interval`` seconds, which
    fails when it exits non-zero or outlasts ``timeout``; ``retries`` failures in a row (not counting those
    in the first ``start_period``) make the container unhealthy. No ``cmd``: none (--no-healthcheck)."""

    __slots__ = ("cmd", "interval", "timeout", "retries", "start_period")
    cmd: list[str]
    interval: float
    timeout: float
    retries: int
    start_period: float

    def __init__(
        self,
        cmd: list[str],
        interval: float = 30.0,
        timeout: float = 30.0,
        retries: int = 3,
        start_period: float = 0.0,
    ) -> None:
        # The one check of a health check, whoever made it (the CLI's flags, the Python API, a state file).
        if not isinstance(cmd, list) or not all(isinstance(a, str) for a in cmd):
            raise InvalidArgument(f"invalid health check command {cmd!r}: a list of strings")
        for what, v in (("interval", interval), ("timeout", timeout), ("start-period", start_period)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise InvalidArgument(f"invalid --health-{what} {v!r}: a duration such as 30s")
        if cmd and (interval <= 0 or timeout <= 0):
            raise InvalidArgument("--health-interval and --health-timeout must be above zero")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidArgument(f"invalid --health-retries {retries!r}: a whole number")
        self._init(
            cmd=list(cmd),
            interval=float(interval),
            timeout=float(timeout),
            retries=retries,
            start_period=float(start_period),
        )

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}

    @classmethod
    def from_dict(cls, d: dict) -> HealthCheck:
        return cls(**d)


class TimeOffsets(FrozenValue):
    """A new time namespace's offsets (OCI ``linux.timeOffsets``): (seconds, nanoseconds) added to the
    monotonic and boot-time clocks, None for a clock left alone. On disk in OCI's form."""

    __slots__ = ("monotonic", "boottime")
    monotonic: tuple[int, int] | None
    boottime: tuple[int, int] | None

    def __init__(
        self, monotonic: tuple[int, int] | None = None, boottime: tuple[int, int] | None = None
    ) -> None:
        self._init(
            monotonic=None if monotonic is None else tuple(monotonic),
            boottime=None if boottime is None else tuple(boottime),
        )

    def lines(self) -> str:
        """What /proc/self/timens_offsets takes: one "CLOCK SECS NANOSECS" line per clock."""
        return "".join(
            f"{clock} {v[0]} {v[1]}\n" for clock in self.__slots__ if (v := getattr(self, clock)) is not None
        )

    def to_dict(self) -> dict:
        return {
            clock: {"secs": v[0], "nanosecs": v[1]}
            for clock in self.__slots__
            if (v := getattr(self, clock)) is not None
        }

    @classmethod
    def from_dict(cls, d: dict) -> TimeOffsets:
        """OCI's form (checked by ``spec.bundle`` for a config.json; a state file's is what to_dict gave)."""
        unknown = set(d) - set(cls.__slots__)
        if unknown:
            raise ValueError(f"unknown clock {min(unknown)!r} (use monotonic or boottime)")
        return cls(
            **{clock: (int(v.get("secs") or 0), int(v.get("nanosecs") or 0)) for clock, v in d.items()}
        )


class Sched(FrozenValue):
    """process.scheduler in the kernel's terms: struct sched_attr's fields (``libc.SchedAttr``)."""

    __slots__ = (
        "sched_policy",
        "sched_flags",
        "sched_nice",
        "sched_priority",
        "sched_runtime",
        "sched_deadline",
        "sched_period",
    )

    def __init__(self, **fields: int) -> None:
        if set(fields) != set(self.__slots__) or not all(type(v) is int for v in fields.values()):
            raise ValueError(f"a scheduler needs the integers {', '.join(self.__slots__)}, not {fields!r}")
        self._init(**fields)

    def to_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


class ProcAttrs(FrozenValue):
    """OCI process.ioPriority, process.scheduler and linux.memoryPolicy as ``procattr.check`` validated
    them, in the kernel's terms: the I/O priority (ioprio_set's value), the scheduler
    (``Sched``) and the memory policy (mode with its flags, NUMA nodes); None for what config.json left out.
    On disk (state.json) as {"ioprio": int, "sched": {...}, "mempolicy": [mode, nodes]}, those given."""

    __slots__ = ("ioprio", "sched", "mempolicy")
    ioprio: int | None
    sched: Sched | None
    mempolicy: tuple[int, list[int]] | None

    def __init__(
        self,
        ioprio: int | None = None,
        sched: Sched | None = None,
        mempolicy: tuple[int, list[int]] | None = None,
    ) -> None:
        self._init(ioprio=ioprio, sched=sched, mempolicy=None if mempolicy is None else tuple(mempolicy))

    def to_dict(self) -> dict:
        d: dict = {}
        if self.ioprio is not None:
            d["ioprio"] = self.ioprio
        if self.sched is not None:
            d["sched"] = self.sched.to_dict()
        if self.mempolicy is not None:
            d["mempolicy"] = [self.mempolicy[0], list(self.mempolicy[1])]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ProcAttrs:
        """``to_dict``'s form (a state file's), its types checked (ValueError)."""
        ioprio, sched, mpol = d.get("ioprio"), d.get("sched"), d.get("mempolicy")
        if ioprio is not None and type(ioprio) is not int:
            raise ValueError(f"ioprio: {ioprio!r} is not an integer")
        if mpol is not None and not (
            isinstance(mpol, list)
            and len(mpol) == 2
            and type(mpol[0]) is int
            and isinstance(mpol[1], list)
            and all(type(n) is int for n in mpol[1])
        ):
            raise ValueError(f"mempolicy: {mpol!r} is not [mode, [nodes]]")
        return cls(
            ioprio, None if sched is None else Sched(**sched), None if mpol is None else (mpol[0], mpol[1])
        )
