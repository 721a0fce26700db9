"""Reading the log a detached container's monitor writes (format: see ``monitor_loop``).

Each record is ``<time> <stdout|stderr> <F|P> <text>``; P records are pieces of one line and are joined
with what follows them. ``LogFilter`` selects lines as docker's ``logs --tail/--since/--until`` do.
"""

from __future__ import annotations

import calendar
import os
import re
import time
from collections.abc import Iterator

from .errors import InvalidArgument

_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def parse_time(value: str, now: float | None = None) -> float:
    """``2026-12-03T08:00:00[.123][Z]``, ``2026-12-03``, a Unix time, or a duration before now (``10m``, ``1h30m``)."""
    v = value.strip()
    now = time.time() if now is None else now
    if re.fullmatch(r"\d+(\.\d+)?", v):
        return float(v)
    if v and _RELATIVE.sub("", v) == "":
        return now - sum(float(n) * _UNITS[u] for n, u in _RELATIVE.findall(v))
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2})?)(\.\d+)?)?Z?", v)
    if m:
        clock = m.group(2) or "00:00:00"
        if clock.count(":") == 1:
            clock += ":00"
        try:
            base = calendar.timegm(time.strptime(f"{m.group(1)}T{clock}", "%Y-%m-%dT%H:%M:%S"))
        except ValueError:
            pass
        else:
            return base + float(m.group(3) or 0)
    raise InvalidArgument(
        f"invalid time {value!r}: use 2026-12-03T08:00:00Z, a Unix time, or a duration such as 10m or 2h"
    )


class LogLine:
    __slots__ = ("stamp", "when", "stream", "text", "complete")

    def __init__(self, stamp: str, stream: str, text: bytes, complete: bool) -> None:
        self.stamp = stamp
        self.when = _stamp_time(stamp)
        self.stream = stream
        self.text = text
        self.complete = complete

    def render(self, timestamps: bool = False) -> bytes:
        out = (self.stamp.encode() + b" " if timestamps else b"") + self.text
        return out + b"\n" if self.complete else out


def _stamp_time(stamp: str) -> float:
    try:
        base = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return 0.0
    frac = stamp[19:].rstrip("Z")
    return base + (float(frac) if frac.startswith(".") and frac[1:].isdigit() else 0.0)


class LogFilter:
    __slots__ = ("tail", "since", "until")

    def __init__(
        self, tail: int | None = None, since: float | None = None, until: float | None = None
    ) -> None:
        self.tail = tail
        self.since = since
        self.until = until

    @classmethod
    def from_options(cls, tail: str | None, since: str | None, until: str | None) -> LogFilter:
        n = None
        if tail not in (None, "all", "-1"):
            if not tail.isdigit():
                raise InvalidArgument(f"invalid --tail {tail!r}: a number of lines, or 'all'")
            n = int(tail)
        return cls(n, parse_time(since) if since else None, parse_time(until) if until else None)

    def keep(self, line: LogLine) -> bool:
        return (self.since is None or line.when >= self.since) and (
            self.until is None or line.when < self.until
        )


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


def read_lines(path: str, filt: LogFilter) -> list[LogLine]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    parser = _Parser()
    lines = []
    for record in data.split(b"\n"):
        line = parser.feed(record)
        if line is not None and filt.keep(line):
            lines.append(line)
    lines.extend(x for x in parser.rest() if filt.keep(x))
    if filt.tail is not None:
        lines = lines[-filt.tail :] if filt.tail else []
    return lines


def follow_lines(container, filt: LogFilter, poll_s: float = 0.1) -> Iterator[LogLine]:
    """Lines written after ``read_lines`` read the file, until the container ends and its monitor is gone."""
    try:
        offset = os.path.getsize(container.log_path)
    except FileNotFoundError:
        offset = 0
    parser = _Parser()
    buf = b""
    while True:
        st = container.store.load_id(container.id)
        done = st is None or not (st.alive() or st.monitored())
        try:
            with open(container.log_path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            data = b""
        offset += len(data)
        buf += data
        *records, buf = buf.split(b"\n")
        for record in records:
            line = parser.feed(record)
            if line is not None and (filt.until is None or line.when < filt.until):
                yield line
        if done:
            return
        time.sleep(poll_s)
