"""The log a detached container's monitor writes (format and rotation: see ``monitor_loop``), and reading it.

Each record is ``<time> <stdout|stderr> <F|P> <text>``; P records are pieces of one line and are joined
with what follows them. ``LogFilter`` selects lines as docker's ``logs --tail/--since/--until`` do. A log
rotated by the monitor is ``container.log.<N>`` (oldest, highest N) ... ``container.log.1``, then
``container.log``: ``LogStream`` reads them in that order and follows the current one across rotations.

``--log-opt``: docker's ``max-size`` and ``max-file``, with the defaults of docker's ``local`` driver
(20m, 5 files: at most 100 MiB a container); ``max-size=-1`` never rotates.
"""

from __future__ import annotations

import os
import time

from .errors import InvalidArgument

# typing.TYPE_CHECKING without importing typing; type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

LOG_OPTS = {"max-size": "20m", "max-file": "5"}
_CHUNK = 1 << 20


def parse_log_opts(opts: dict[str, str] | list[str] | None) -> dict[str, str]:
    """``["max-size=10m", "max-file=3"]`` (docker's ``--log-opt`` values) or a dict → the options, checked."""
    items = opts.items() if isinstance(opts, dict) else (str(o).partition("=")[::2] for o in opts or [])
    out = {}
    for key, value in items:
        if key not in LOG_OPTS:
            raise InvalidArgument(
                f"unknown --log-opt {key!r}: pycontain's log takes max-size=SIZE and max-file=N"
            )
        out[key] = str(value)
    rotation(out)
    return out


def rotation(opts: dict[str, str] | None) -> tuple[int, int]:
    """The log's (max size in bytes, 0 for none; number of files) from ``--log-opt`` values and the defaults."""
    from .units import parse_size

    merged = {**LOG_OPTS, **(opts or {})}
    size_s, files_s = merged["max-size"], merged["max-file"]
    size = 0 if size_s.strip() == "-1" else parse_size(size_s, f"--log-opt max-size={size_s}")
    if size_s.strip() != "-1" and size < 1024:
        raise InvalidArgument(f"invalid --log-opt max-size={size_s}: at least 1k (or -1 for no limit)")
    if not (files_s.isascii() and files_s.isdigit()) or not 0 < int(files_s) <= 1000:
        raise InvalidArgument(f"invalid --log-opt max-file={files_s}: a whole number from 1 to 1000")
    return size, int(files_s)


# A duration (10m, 1h30m); re caches it compiled. re, calendar and collections are imported where they
# are used: a detached container's monitor imports this module for ``rotation`` on every start.
_RELATIVE = r"(\d+(?:\.\d+)?)(ms|s|m|h)"
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
_NS = 1_000_000_000


def _frac_ns(digits: str) -> int:
    """Nanoseconds in a decimal fraction's digits ("123" → 123000000), exactly: never through a float."""
    return int((digits + "000000000")[:9])


def parse_time(value: str, now_ns: int | None = None) -> int:
    """``2026-12-03T08:00:00[.123][Z]``, ``2026-12-03``, a Unix time, or a duration before now (``10m``,
    ``1h30m``) → nanoseconds since the epoch, exact to the nanosecond (a stamp copied from ``logs -t``
    selects that very line)."""
    import re

    v = value.strip()
    now_ns = time.time_ns() if now_ns is None else now_ns
    m = re.fullmatch(r"(\d+)(?:\.(\d+))?", v)
    if m:
        return int(m.group(1)) * _NS + _frac_ns(m.group(2) or "")
    if v and re.sub(_RELATIVE, "", v) == "":
        return now_ns - round(sum(float(n) * _UNITS[u] for n, u in re.findall(_RELATIVE, v)) * _NS)
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2})?)(?:\.(\d+))?)?Z?", v)
    if m:
        clock = m.group(2) or "00:00:00"
        if clock.count(":") == 1:
            clock += ":00"
        import calendar

        try:
            base = calendar.timegm(time.strptime(f"{m.group(1)}T{clock}", "%Y-%m-%dT%H:%M:%S"))
        except ValueError:
            pass
        else:
            return base * _NS + _frac_ns(m.group(3) or "")
    raise InvalidArgument(
        f"invalid time {value!r}: use 2026-12-03T08:00:00Z, a Unix time, or a duration such as 10m or 2h"
    )


class LogLine:
    __slots__ = ("stamp", "stream", "text", "complete")

    def __init__(self, stamp: str, stream: str, text: bytes, complete: bool) -> None:
        self.stamp = stamp
        self.stream = stream
        self.text = text
        self.complete = complete

    def render(self, timestamps: bool = False) -> bytes:
        out = (self.stamp.encode() + b" " if timestamps else b"") + self.text
        return out + b"\n" if self.complete else out


def stamp_of(t_ns: int) -> str:
    """A time (ns since the epoch) as the log writes it: RFC 3339 UTC, nanoseconds, fixed width, so stamps
    sort as the times they name."""
    sec, ns = divmod(t_ns, _NS)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{ns:09d}Z"


class LogFilter:
    """Which lines: the last ``tail``, those stamped from ``since`` and before ``until`` (ns since the epoch).
    Compared as stamps, never parsed: ``logs --tail`` of a full 100 MB log takes seconds, not minutes."""

    __slots__ = ("tail", "since", "until", "_since", "_until")

    def __init__(self, tail: int | None = None, since: int | None = None, until: int | None = None) -> None:
        self.tail = tail
        self.since = since
        self.until = until
        self._since = None if since is None else stamp_of(since)
        self._until = None if until is None else stamp_of(until)

    @classmethod
    def from_options(cls, tail: str | None, since: str | None, until: str | None) -> LogFilter:
        n = None
        if tail not in (None, "all", "-1"):
            if not tail.isdigit():
                raise InvalidArgument(f"invalid --tail {tail!r}: a number of lines, or 'all'")
            n = int(tail)
        return cls(n, parse_time(since) if since else None, parse_time(until) if until else None)

    def keep(self, line: LogLine) -> bool:
        return (self._since is None or line.stamp >= self._since) and self.before_until(line)

    def before_until(self, line: LogLine) -> bool:
        return self._until is None or line.stamp < self._until


class _Parser:
    """Records → lines, with P pieces joined (per stream) until the record that completes them."""

    def __init__(self) -> None:
        self.pending: dict[str, LogLine] = {}

    def feed(self, record: bytes) -> LogLine | None:
        parts = record.split(b" ", 3)
        if len(parts) < 3:
            return None
        stamp, stream, tag = parts[0].decode(errors="replace"), parts[1].decode(errors="replace"), parts[2]
        text = parts[3] if len(parts) > 3 else b""
        head = self.pending.pop(stream, None)
        if head is not None:
            head.text += text
            line = head
        else:
            line = LogLine(stamp, stream, text, complete=True)
        if tag == b"P":
            self.pending[stream] = line
            return None
        return line

    def rest(self) -> list[LogLine]:
        """Pieces never completed (the container ended mid-line): printed as they are, without newline."""
        out = []
        for line in self.pending.values():
            line.complete = False
            out.append(line)
        self.pending.clear()
        return out


def _rotated(path: str) -> list[str]:
    """The rotated files of the log at ``path``, oldest first (``path.N`` ... ``path.1``)."""
    head, base = os.path.split(path)
    try:
        names = os.listdir(head)
    except FileNotFoundError:
        return []
    prefix = base + "."
    nums = sorted(
        (int(n[len(prefix) :]) for n in names if n.startswith(prefix) and n[len(prefix) :].isdigit()),
        reverse=True,
    )
    return [f"{path}.{n}" for n in nums]


def _read_to_end(fd: int) -> Iterator[bytes]:
    while data := os.read(fd, _CHUNK):
        yield data


class LogStream:
    """A log's bytes across its rotated files: ``read()`` what is there now, oldest first, then ``more()``
    for what has been written since, following the monitor's rotations (a file is never read twice)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1
        self.ino = -1
        self.partial = b""  # a record being written when read_lines read: follow_lines starts with it

    def read(self) -> Iterator[bytes]:
        # Opened newest first, so a rotation meanwhile shows as an inode already open (skipped), never as
        # a file missed; then read oldest first.
        fds: list[tuple[int, int]] = []
        try:
            for p in [self.path, *reversed(_rotated(self.path))]:
                try:
                    fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue
                ino = os.fstat(fd).st_ino
                if any(ino == i for _f, i in fds):
                    os.close(fd)
                    continue
                fds.append((fd, ino))
            while len(fds) > 1:
                fd, _ino = fds.pop()
                try:
                    yield from _read_to_end(fd)
                finally:
                    os.close(fd)
            if fds:
                self.fd, self.ino = fds.pop()
                yield from _read_to_end(self.fd)
        finally:
            for fd, _ino in fds:
                os.close(fd)

    def more(self) -> bytes:
        """What was appended since the last read, across any rotations since (b"" when nothing)."""
        out = b"".join(_read_to_end(self.fd)) if self.fd >= 0 else b""
        try:
            ino = os.stat(self.path).st_ino
        except FileNotFoundError:
            return out
        if ino == self.ino:
            return out
        # Rotated: the rest of ours, then every file newer than it (all of them if ours was dropped).
        files = [*_rotated(self.path), self.path]
        newer = files
        if self.fd >= 0:
            out += b"".join(_read_to_end(self.fd))
            for i, p in enumerate(files):
                try:
                    if os.stat(p).st_ino == self.ino:
                        newer = files[i + 1 :]
                        break
                except FileNotFoundError:
                    continue
            os.close(self.fd)
            self.fd = -1
        for p in newer:
            try:
                fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            if self.fd >= 0:
                os.close(self.fd)
            self.fd, self.ino = fd, os.fstat(fd).st_ino
            out += b"".join(_read_to_end(fd))
        return out

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def read_lines(stream: LogStream, filt: LogFilter) -> list[LogLine]:
    """The lines of the log as it is now (every file), as ``filt`` selects them."""
    import collections

    parser = _Parser()
    lines: collections.deque[LogLine] = collections.deque(maxlen=filt.tail)
    rest = b""
    for data in stream.read():
        *records, rest = (rest + data).split(b"\n")
        for record in records:
            line = parser.feed(record)
            if line is not None and filt.keep(line):
                lines.append(line)
    stream.partial = rest
    lines.extend(x for x in parser.rest() if filt.keep(x))
    return list(lines)


def container_logs(
    container,
    tail: str | None = None,
    since: str | None = None,
    until: str | None = None,
    follow: bool = False,
) -> Iterator[LogLine]:
    """docker's ``logs``: a detached container's output lines, across its rotated files, filtered
    (``tail`` "all" or N, ``since``/``until`` as ``parse_time`` reads them); with ``follow``, then the new
    ones until the container ends."""
    if not container.state.config.detach:
        raise InvalidArgument(f"container {container.name} was not detached: its output went to the terminal")
    filt = LogFilter.from_options(tail, since, until)
    stream = LogStream(container.log_path)
    try:
        yield from read_lines(stream, filt)
        if follow:
            yield from follow_lines(container, stream, filt)
    finally:
        stream.close()


def follow_lines(container, stream: LogStream, filt: LogFilter, poll_s: float = 0.1) -> Iterator[LogLine]:
    """Lines written after ``read_lines`` read ``stream``, until the container ends and its monitor is gone."""
    parser = _Parser()
    buf = stream.partial
    while True:
        st = container.store.load_id(container.id)
        done = st is None or not (st.alive() or st.monitored())
        buf += stream.more()
        *records, buf = buf.split(b"\n")
        for record in records:
            line = parser.feed(record)
            if line is not None and filt.before_until(line):
                yield line
        if done:
            return
        time.sleep(poll_s)
