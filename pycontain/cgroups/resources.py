"""A container's resource limits (docker's flags, normalised); its usage figures are ``usage``'s.

``Resources`` holds docker's limits in cgroup v1 terms (bytes, cpu shares, cfs quota/period, blkio
weight 10-1000); the v2 driver converts them with the functions below, the only place where v1 and v2
values are mapped onto each other (the formulas runc and crun use). Plain ``__slots__`` classes, no
``dataclasses``: this module may sit on the start path of ``pycontain run``.
"""

from __future__ import annotations

import os

from ..errors import InvalidArgument
from ..units import MAX_SIZE, parse_cpus, parse_size

# docker's bounds (daemon/daemon_unix.go)
MIN_MEMORY = 6 * 1024 * 1024
MIN_CPU_PERIOD, MAX_CPU_PERIOD = 1000, 1000000
MIN_CPU_QUOTA = 1000
DEFAULT_CPU_PERIOD = 100000
MIN_BLKIO_WEIGHT, MAX_BLKIO_WEIGHT = 10, 1000
MIN_SHARES, MAX_SHARES = 2, 262144

# (Resources attribute, OCI blockIO key)
THROTTLES = (
    ("device_read_bps", "throttleReadBpsDevice"),
    ("device_write_bps", "throttleWriteBpsDevice"),
    ("device_read_iops", "throttleReadIOPSDevice"),
    ("device_write_iops", "throttleWriteIOPSDevice"),
)


# -- v1 -> v2 conversions (the one place) ---------------------------------------------------------
def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144) -> cpu.weight (1..10000), as runc and crun convert it; 0 stays 0 (unset)."""
    if shares == 0:
        return 0
    shares = min(max(shares, MIN_SHARES), MAX_SHARES)
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight (10..1000) -> io.weight (1..10000), crun's ``1 + (weight - 10) * 9999 / 990``."""
    if weight == 0:
        return 0
    weight = min(max(weight, MIN_BLKIO_WEIGHT), MAX_BLKIO_WEIGHT)
    return 1 + ((weight - 10) * 9999) // 990


def memory_v2(value: int) -> str:
    """A v1 byte limit (-1 = unlimited) as v2's memory.max / memory.low / memory.swap.max write it."""
    return "max" if value < 0 else str(value)


def swap_to_v2(memory: int | None, memory_swap: int) -> str:
    """docker's total memory+swap -> v2 ``memory.swap.max`` (swap alone): ``swap - memory``; -1 -> "max"."""
    if memory_swap < 0:
        return "max"
    if memory is None or memory < 0:
        raise InvalidArgument(f"invalid memory-swap: {memory_swap} without a memory limit (set --memory too)")
    if memory_swap < memory:
        raise InvalidArgument(
            f"invalid memory-swap: {memory_swap} is below the memory limit {memory} (set it to at least --memory, or -1)"
        )
    return str(memory_swap - memory)


def cpu_max(quota: int | None, period: int | None) -> str:
    """cfs quota/period (µs) -> v2 ``cpu.max``: "150000 100000", or "max 100000" when unlimited."""
    period = period or DEFAULT_CPU_PERIOD
    if quota is None or quota < 0:
        return f"max {period}"
    return f"{quota} {period}"


# -- parsing helpers --------------------------------------------------------------------------------
def _int(value: object, what: str, lo: int | None = None, hi: int | None = None, hint: str = "") -> int:
    if isinstance(value, bool):
        raise InvalidArgument(f"invalid {what}: {value!r} (use an integer{hint})")
    if isinstance(value, int):
        n = value
    else:
        # ASCII digits only: int() would also take "1_000", "+5" and other scripts' digits ("١٢").
        text = str(value).strip()
        digits = text[1:] if text.startswith("-") else text
        if not digits or not digits.isascii() or not digits.isdigit():
            raise InvalidArgument(f"invalid {what}: {value!r} (use an integer{hint})")
        try:
            n = int(text)
        except ValueError:  # more digits than Python converts
            raise InvalidArgument(f"invalid {what}: {value!r} is too large (use an integer{hint})") from None
    # Every cgroup file holds at most an int64: larger values would only fail later, in the kernel.
    hi = INT64_MAX if hi is None else hi
    lo = -INT64_MAX if lo is None else lo
    if n < lo or n > hi:
        if lo > -INT64_MAX and (hi < INT64_MAX or n > hi):
            raise InvalidArgument(f"invalid {what}: {n} (use a value from {lo} to {hi})")
        if lo > -INT64_MAX:
            raise InvalidArgument(f"invalid {what}: {n} (use a value of at least {lo})")
        raise InvalidArgument(f"invalid {what}: {n} (use a value of at most {hi})")
    return n


INT64_MAX = (1 << 63) - 1
# The kernel's PID_MAX_LIMIT: pids.max takes nothing larger ("max" is unlimited).
PIDS_MAX = 4194304


def _size_or_unlimited(value: object, what: str) -> int:
    """A size, or -1 for unlimited (docker's --memory-swap -1)."""
    if value == -1 or (isinstance(value, str) and value.strip() == "-1"):
        return -1
    return parse_size(value, what)  # type: ignore[arg-type]


def _cpuset(value: object, what: str) -> str:
    """Validate a cpu/node list such as "0-3,5" (docker's --cpuset-cpus / --cpuset-mems) against the host's."""
    text = str(value).strip().replace(" ", "")
    hint = f"invalid {what}: {value!r} (use a list such as 0-3,5)"
    if not text:
        raise InvalidArgument(hint)
    ranges = []
    for part in text.split(","):
        lo, dash, hi = part.partition("-")
        if (
            not lo.isdigit()
            or not lo.isascii()
            or (dash and (not hi.isdigit() or not hi.isascii()))
            or len(lo) > 9
            or len(hi) > 9
        ):
            raise InvalidArgument(hint)
        if dash and int(hi) < int(lo):
            raise InvalidArgument(f"invalid {what}: {value!r} (range {part} runs backwards)")
        ranges.append((int(lo), int(hi) if dash else int(lo)))
    kind = "mems" if what.endswith("mems") else "cpus"
    online = _online(kind)
    # Compared range by range, never expanded: "0-999999999" must not build a set of a billion numbers.
    if online is not None and not all(any(a <= lo and hi <= b for a, b in online[1]) for lo, hi in ranges):
        raise InvalidArgument(
            f"invalid {what}: {value!r} (this host has {'cpus' if kind == 'cpus' else 'memory nodes'} "
            f"{online[0]} only)"
        )
    return text


def _online(kind: str) -> tuple[str, list[tuple[int, int]]] | None:
    """The host's online cpus or memory nodes as text and merged ranges; None where the kernel does not say."""
    path = "/sys/devices/system/cpu/online" if kind == "cpus" else "/sys/devices/system/node/online"
    try:
        with open(path) as f:
            text = f.read().strip()
        spans = sorted((int(a), int(b or a)) for a, _, b in (p.partition("-") for p in text.split(",")))
    except (OSError, ValueError):
        return None
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return text, merged


def _device_number(path: str, what: str) -> tuple[int, int]:
    import stat

    try:
        st = os.stat(path)
    except OSError as e:
        raise InvalidArgument(
            f"invalid {what}: cannot stat device {path!r} ({str(e.strerror).lower()})"
        ) from None
    if not stat.S_ISBLK(st.st_mode):
        raise InvalidArgument(f"invalid {what}: {path!r} is not a block device (use e.g. /dev/sda:1mb)")
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def parse_throttle(values: object, what: str, sizes: bool) -> list[tuple[int, int, int]]:
    """docker's --device-read-bps /dev/sda:1mb (sizes) or --device-read-iops /dev/sda:1000 -> (major, minor, value).

    Entries that already are (major, minor, value) triples are taken as they are.
    """
    if isinstance(values, (str, tuple)):
        values = [values]
    out: list[tuple[int, int, int]] = []
    for item in values:  # type: ignore[attr-defined]  # a list, unless one of the two forms above
        if isinstance(item, (tuple, list)):
            if len(item) != 3:
                raise InvalidArgument(f"invalid {what}: {item!r} (use major, minor, value)")
            major, minor, rate = (_int(v, what, lo=0) for v in item)
            out.append((major, minor, rate))
            continue
        path, colon, rate_text = str(item).rpartition(":")
        if not colon or not path or not rate_text:
            raise InvalidArgument(
                f"invalid {what}: {item!r} (use DEVICE:RATE, e.g. /dev/sda:{'1mb' if sizes else '1000'})"
            )
        major, minor = _device_number(path, what)
        rate = (
            parse_size(rate_text, what)
            if sizes
            else _int(rate_text, what, lo=0, hint=" number of operations per second")
        )
        out.append((major, minor, rate))
    return out


def _oci_section(doc: dict, key: str) -> dict:
    section = doc.get(key)
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise InvalidArgument(f"invalid resources: {key!r} must be an object, not {type(section).__name__}")
    return section


def _oci_int(section: dict, key: str, what: str) -> int | None:
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"invalid resources: {what} must be an integer, not {value!r}")
    if not -INT64_MAX <= value <= INT64_MAX:
        raise InvalidArgument(f"invalid resources: {what}: {value} does not fit in 64 bits")
    return value


_FIELDS = (
    "memory",
    "memory_swap",
    "memory_reservation",
    "cpu_shares",
    "cpu_quota",
    "cpu_period",
    "cpus",
    "cpuset_cpus",
    "cpuset_mems",
    "pids_limit",
    "blkio_weight",
    "device_read_bps",
    "device_write_bps",
    "device_read_iops",
    "device_write_iops",
)


class Resources:
    """docker's resource limits, normalised; ``None`` means "not set, leave the cgroup's value alone".

    memory, memory_swap (memory + swap, -1 unlimited), memory_reservation: bytes.
    cpu_shares: v1 shares; cpu_quota (-1 unlimited) / cpu_period: µs; cpus: the --cpus value, already
    folded into cpu_quota/cpu_period. cpuset_cpus / cpuset_mems: lists such as "0-1". pids_limit: -1
    unlimited. blkio_weight: 10..1000. device_*: lists of (major, minor, bytes-or-ops per second).
    """

    __slots__ = _FIELDS

    def __init__(
        self,
        *,
        memory: int | None = None,
        memory_swap: int | None = None,
        memory_reservation: int | None = None,
        cpu_shares: int | None = None,
        cpu_quota: int | None = None,
        cpu_period: int | None = None,
        cpus: float | None = None,
        cpuset_cpus: str | None = None,
        cpuset_mems: str | None = None,
        pids_limit: int | None = None,
        blkio_weight: int | None = None,
        device_read_bps: list[tuple[int, int, int]] | None = None,
        device_write_bps: list[tuple[int, int, int]] | None = None,
        device_read_iops: list[tuple[int, int, int]] | None = None,
        device_write_iops: list[tuple[int, int, int]] | None = None,
    ) -> None:
        self.memory = memory
        self.memory_swap = memory_swap
        self.memory_reservation = memory_reservation
        self.cpu_shares = cpu_shares
        self.cpu_quota = cpu_quota
        self.cpu_period = cpu_period
        self.cpus = cpus
        self.cpuset_cpus = cpuset_cpus
        self.cpuset_mems = cpuset_mems
        self.pids_limit = pids_limit
        self.blkio_weight = blkio_weight
        self.device_read_bps = device_read_bps
        self.device_write_bps = device_write_bps
        self.device_read_iops = device_read_iops
        self.device_write_iops = device_write_iops

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_options(
        cls,
        *,
        memory: str | int | None = None,
        memory_swap: str | int | None = None,
        memory_reservation: str | int | None = None,
        cpus: str | float | None = None,
        cpu_shares: str | int | None = None,
        cpu_quota: str | int | None = None,
        cpu_period: str | int | None = None,
        cpuset_cpus: str | None = None,
        cpuset_mems: str | None = None,
        pids_limit: str | int | None = None,
        blkio_weight: str | int | None = None,
        device_read_bps: list[str] | None = None,
        device_write_bps: list[str] | None = None,
        device_read_iops: list[str] | None = None,
        device_write_iops: list[str] | None = None,
        ncpus: int | None = None,
        partial: bool = False,
    ) -> Resources:
        """Build from docker's CLI strings ("512m", "1.5", "/dev/sda:1mb"); ``None`` / "" / [] = flag not given.

        Follows docker: ``--memory`` without ``--memory-swap`` allows as much swap as memory
        (memory_swap = 2 * memory); ``--cpus`` becomes quota/period with period 100000 and conflicts
        with ``--cpu-quota``/``--cpu-period``; ``--pids-limit`` 0 or -1 means unlimited; blkio weight 0
        means unset. ``ncpus`` (default: this host's) bounds ``--cpus``.

        ``partial=True`` (``pycontain update``): only the flags given, no swap default and no checks
        across fields; combine with the saved limits through ``saved.merged(update)``, which checks them.
        """
        given = {
            k: v
            for k, v in locals().items()
            if k not in ("cls", "ncpus", "partial") and v not in (None, "", [], ())
        }
        r = cls()
        if "memory" in given:
            r.memory = parse_size(given["memory"], "memory")
            if r.memory < MIN_MEMORY:
                raise InvalidArgument(f"invalid memory: {given['memory']!r} (the minimum memory limit is 6m)")
        if "memory_swap" in given:
            r.memory_swap = _size_or_unlimited(given["memory_swap"], "memory-swap")
        if "memory_reservation" in given:
            r.memory_reservation = parse_size(given["memory_reservation"], "memory-reservation")
        if "cpus" in given:
            if "cpu_quota" in given or "cpu_period" in given:
                raise InvalidArgument(
                    "conflicting options: --cpus cannot be used with --cpu-quota or --cpu-period (use one or the other)"
                )
            value = parse_cpus(given["cpus"])
            limit = ncpus or os.cpu_count() or 1
            if value < 0.01 or value > limit:
                raise InvalidArgument(
                    f"invalid cpus: {given['cpus']!r} (use a value from 0.01 to {limit}, as there are {limit} cpus available)"
                )
            r.cpus = value
            r.cpu_period = DEFAULT_CPU_PERIOD
            r.cpu_quota = int(round(value * DEFAULT_CPU_PERIOD))
        if "cpu_shares" in given:
            shares = _int(given["cpu_shares"], "cpu-shares", lo=0)
            r.cpu_shares = shares or None  # docker: 0 = default
        if "cpu_period" in given:
            period = _int(given["cpu_period"], "cpu-period", lo=0, hi=MAX_CPU_PERIOD)
            if period and period < MIN_CPU_PERIOD:
                raise InvalidArgument(
                    f"invalid cpu-period: {period} (use a value from {MIN_CPU_PERIOD} to {MAX_CPU_PERIOD} microseconds)"
                )
            r.cpu_period = period or None
        if "cpu_quota" in given:
            quota = _int(given["cpu_quota"], "cpu-quota", lo=-1)
            if 0 < quota < MIN_CPU_QUOTA:
                raise InvalidArgument(
                    f"invalid cpu-quota: {quota} (use at least {MIN_CPU_QUOTA} microseconds, or -1 for unlimited)"
                )
            r.cpu_quota = quota or None
        if "cpuset_cpus" in given:
            r.cpuset_cpus = _cpuset(given["cpuset_cpus"], "cpuset-cpus")
        if "cpuset_mems" in given:
            r.cpuset_mems = _cpuset(given["cpuset_mems"], "cpuset-mems")
        if "pids_limit" in given:
            limit = _int(
                given["pids_limit"],
                "pids-limit",
                hi=PIDS_MAX,
                hint=" number of processes, or -1 for unlimited",
            )
            r.pids_limit = -1 if limit <= 0 else limit
        if "blkio_weight" in given:
            weight = _int(given["blkio_weight"], "blkio-weight")
            if weight and not MIN_BLKIO_WEIGHT <= weight <= MAX_BLKIO_WEIGHT:
                raise InvalidArgument(f"invalid blkio-weight: {weight} (use a value from 10 to 1000)")
            r.blkio_weight = weight or None
        for attr, _ in THROTTLES:
            if attr in given:
                what = attr.replace("_", "-")
                setattr(r, attr, parse_throttle(given[attr], what, sizes=attr.endswith("bps")))
        if partial:
            return r
        if r.memory is not None and r.memory_swap is None:
            r.memory_swap = 2 * r.memory
        r.validate()
        return r

    @classmethod
    def for_update(cls, limits: dict, resources_file: str | None = None) -> Resources:
        """docker's and runc's ``update``: the change to apply (``Container.update``) from the limits given
        (``from_options``' names, docker's units) over an OCI ``linux.resources`` file ("-": stdin)."""
        given = {k: v for k, v in limits.items() if v not in (None, "", [], ())}
        if not given and resources_file is None:
            raise InvalidArgument(
                "nothing to update: give at least one limit, e.g. --memory 512m (see 'pycontain update --help')"
            )
        change = cls.from_options(**given, partial=True)
        if resources_file is not None:
            change = cls.from_oci_file(resources_file).merged(change, validate=False)
        return change

    @classmethod
    def from_oci_file(cls, path: str) -> Resources:
        """An OCI ``linux.resources`` JSON document from the file ``path`` ("-": standard input)."""
        import json  # its errors say where a document is broken; fastjson's do not
        import sys

        try:
            if path == "-":
                text = sys.stdin.read()
            else:
                with open(path) as f:
                    text = f.read()
        except OSError as e:
            raise InvalidArgument(
                f"cannot read resources file {path!r} ({(e.strerror or str(e)).lower()})"
            ) from None
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise InvalidArgument(f"invalid resources file {path!r}: not JSON ({e})") from None
        return cls.from_oci(doc)

    @classmethod
    def from_oci(cls, doc: dict) -> Resources:
        """From an OCI ``linux.resources`` object (``pycontain update --resources FILE``, the state file).

        Read: memory.{limit,swap,reservation}, cpu.{shares,quota,period,cpus,mems}, pids.limit,
        blockIO.{weight,throttleReadBpsDevice,...} (entries {"major", "minor", "rate"}). Other keys are
        ignored, as runc does for fields it has no use for.
        """
        if not isinstance(doc, dict):
            raise InvalidArgument(f"invalid resources: expected a json object, not {type(doc).__name__}")
        memory = _oci_section(doc, "memory")
        cpu = _oci_section(doc, "cpu")
        pids = _oci_section(doc, "pids")
        blkio = _oci_section(doc, "blockIO")
        r = cls(
            memory=_oci_int(memory, "limit", "memory.limit"),
            memory_swap=_oci_int(memory, "swap", "memory.swap"),
            memory_reservation=_oci_int(memory, "reservation", "memory.reservation"),
            cpu_shares=_oci_int(cpu, "shares", "cpu.shares"),
            cpu_quota=_oci_int(cpu, "quota", "cpu.quota"),
            cpu_period=_oci_int(cpu, "period", "cpu.period"),
            pids_limit=_oci_int(pids, "limit", "pids.limit"),
            blkio_weight=_oci_int(blkio, "weight", "blockIO.weight"),
        )
        for key in ("cpus", "mems"):
            value = cpu.get(key)
            if value not in (None, ""):
                if not isinstance(value, str):
                    raise InvalidArgument(
                        f'invalid resources: cpu.{key} must be a string such as "0-1", not {value!r}'
                    )
                setattr(r, f"cpuset_{key}", _cpuset(value, f"cpu.{key}"))
        # Zero is "not set", as in runc: docker's update sends every field, 0 for those it leaves alone.
        for f in (
            "memory",
            "memory_swap",
            "memory_reservation",
            "cpu_shares",
            "cpu_quota",
            "cpu_period",
            "pids_limit",
            "blkio_weight",
        ):
            if getattr(r, f) == 0:
                setattr(r, f, None)
        if r.memory is not None and r.memory < 0:
            r.memory = -1
        if r.pids_limit is not None and r.pids_limit < 0:
            r.pids_limit = -1
        for attr, key in THROTTLES:
            entries = blkio.get(key)
            if entries is None:
                continue
            if not isinstance(entries, list):
                raise InvalidArgument(
                    f"invalid resources: blockIO.{key} must be a list of {{major, minor, rate}}"
                )
            out = []
            for e in entries:
                if not isinstance(e, dict):
                    raise InvalidArgument(
                        f"invalid resources: blockIO.{key} entry {e!r} must be an object {{major, minor, rate}}"
                    )
                major, minor, rate = (
                    _oci_int(e, k, f"blockIO.{key}.{k}") for k in ("major", "minor", "rate")
                )
                if major is None or minor is None or rate is None or min(major, minor, rate) < 0:
                    raise InvalidArgument(
                        f"invalid resources: blockIO.{key} entry {e!r} needs major, minor and rate (integers, 0 or more)"
                    )
                out.append((major, minor, rate))
            setattr(r, attr, out)
        r.validate()
        return r

    from_dict = from_oci

    def to_dict(self) -> dict:
        """The OCI ``linux.resources`` object for the fields that are set (``from_dict`` reads it back)."""
        out: dict = {}
        memory = {
            k: v
            for k, v in (
                ("limit", self.memory),
                ("swap", self.memory_swap),
                ("reservation", self.memory_reservation),
            )
            if v is not None
        }
        cpu = {
            k: v
            for k, v in (
                ("shares", self.cpu_shares),
                ("quota", self.cpu_quota),
                ("period", self.cpu_period),
                ("cpus", self.cpuset_cpus),
                ("mems", self.cpuset_mems),
            )
            if v is not None
        }
        blkio: dict = {}
        if self.blkio_weight is not None:
            blkio["weight"] = self.blkio_weight
        for attr, key in THROTTLES:
            entries = getattr(self, attr)
            if entries is not None:
                blkio[key] = [{"major": a, "minor": b, "rate": c} for a, b, c in entries]
        if memory:
            out["memory"] = memory
        if cpu:
            out["cpu"] = cpu
        if self.pids_limit is not None:
            out["pids"] = {"limit": self.pids_limit}
        if blkio:
            out["blockIO"] = blkio
        return out

    # -- checks and combination ---------------------------------------------------------------
    def validate(self) -> None:
        """Raise InvalidArgument when the limits contradict each other (docker's rules)."""
        if self.memory is not None and self.memory > MAX_SIZE:
            raise InvalidArgument(f"invalid memory: {self.memory} (at most {MAX_SIZE} bytes)")
        if self.memory_swap is not None and self.memory_swap >= 0:
            if self.memory is None or self.memory < 0:
                raise InvalidArgument(
                    f"invalid memory-swap: {self.memory_swap} bytes of memory+swap needs a memory limit (set --memory too, or --memory-swap -1)"
                )
            if self.memory_swap < self.memory:
                raise InvalidArgument(
                    f"invalid memory-swap: {self.memory_swap} is below the memory limit {self.memory} (set it to at least --memory, or -1 for unlimited swap)"
                )
        if (
            self.memory_reservation is not None
            and self.memory is not None
            and self.memory >= 0
            and self.memory_reservation > self.memory
        ):
            raise InvalidArgument(
                f"invalid memory-reservation: {self.memory_reservation} is above the memory limit {self.memory} (set it at or below --memory)"
            )
        if self.cpu_period is not None and not MIN_CPU_PERIOD <= self.cpu_period <= MAX_CPU_PERIOD:
            raise InvalidArgument(
                f"invalid cpu-period: {self.cpu_period} (use a value from {MIN_CPU_PERIOD} to {MAX_CPU_PERIOD} microseconds)"
            )
        if self.cpu_quota is not None and self.cpu_quota != -1 and self.cpu_quota < MIN_CPU_QUOTA:
            raise InvalidArgument(
                f"invalid cpu-quota: {self.cpu_quota} (use at least {MIN_CPU_QUOTA} microseconds, or -1 for unlimited)"
            )
        if self.cpu_shares is not None and self.cpu_shares < 0:
            raise InvalidArgument(f"invalid cpu-shares: {self.cpu_shares} (use a value of 2 or more)")
        if self.blkio_weight is not None and not MIN_BLKIO_WEIGHT <= self.blkio_weight <= MAX_BLKIO_WEIGHT:
            raise InvalidArgument(f"invalid blkio-weight: {self.blkio_weight} (use a value from 10 to 1000)")

    def is_empty(self) -> bool:
        """True when no limit is set (the plain ``pycontain run`` path: nothing to write)."""
        return all(getattr(self, f) is None for f in _FIELDS)

    def merged(self, update: Resources, validate: bool = True) -> Resources:
        """A copy with every field that ``update`` sets replaced (``pycontain update`` on top of the saved limits).

        Checked as a whole (``validate``): e.g. raising --memory past the saved --memory-swap fails, as in docker.
        ``validate=False`` for a change that is itself merged onto the saved limits later (the flags of
        ``update`` over its --resources file).
        """
        r = Resources()
        for f in _FIELDS:
            new = getattr(update, f)
            setattr(r, f, new if new is not None else getattr(self, f))
        if update.cpu_quota is not None and update.cpus is None:
            r.cpus = None
        if validate:
            r.validate()
        return r

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Resources):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in _FIELDS)

    def __repr__(self) -> str:
        fields = ", ".join(f"{f}={getattr(self, f)!r}" for f in _FIELDS if getattr(self, f) is not None)
        return f"Resources({fields})"
