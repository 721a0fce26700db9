"""Reading a monitor's log without a container: times to the nanosecond, filters, rotated files, following
across rotations (the monitor's renames done here by hand, as monitor_loop does them)."""

from __future__ import annotations

import os

import pytest

from pycontain.errors import InvalidArgument
from pycontain.logs import LogFilter, LogStream, parse_log_opts, parse_time, read_lines, rotation, stamp_of

T0 = 1_796_289_600 * 1_000_000_000  # 2026-12-03T09:20:00Z


def _record(i: int, text: str, tag: str = "F", stream: str = "stdout") -> bytes:
    return f"{stamp_of(T0 + i)} {stream} {tag} {text}\n".encode()


def _write(path, *records: bytes) -> None:
    with open(path, "ab") as f:
        f.write(b"".join(records))


def _texts(lines) -> list[str]:
    return [line.text.decode() for line in lines]


def test_parse_time_is_exact_to_the_nanosecond():
    stamp = "2026-12-03T09:20:00.000000007Z"
    assert parse_time(stamp) == T0 + 7 and stamp_of(parse_time(stamp)) == stamp
    assert parse_time("1796289600.5") == T0 + 500_000_000
    assert (
        parse_time("2026-12-03T09:20") == T0 and parse_time("2026-12-03") == T0 - (9 * 3600 + 20 * 60) * 10**9
    )
    assert parse_time("1h30m", now_ns=T0) == T0 - 5400 * 10**9
    with pytest.raises(InvalidArgument, match="invalid time 'yesterday'"):
        parse_time("yesterday")


def test_filters_compare_stamps(tmp_path):
    log = tmp_path / "container.log"
    _write(log, *(_record(i, f"l{i}") for i in range(5)))
    assert _texts(read_lines(LogStream(str(log)), LogFilter(since=T0 + 2))) == ["l2", "l3", "l4"]
    assert _texts(read_lines(LogStream(str(log)), LogFilter(until=T0 + 2))) == ["l0", "l1"]
    assert _texts(read_lines(LogStream(str(log)), LogFilter(tail=2, since=T0 + 1))) == ["l3", "l4"]
    assert _texts(read_lines(LogStream(str(log)), LogFilter(tail=0))) == []


def test_rotated_files_read_oldest_first_and_pieces_join_across_them(tmp_path):
    log = str(tmp_path / "container.log")
    _write(log + ".2", _record(0, "a"), _record(1, "b-", "P"))
    _write(log + ".1", _record(2, "continued"), _record(3, "c"))
    _write(log, _record(4, "d"))
    stream = LogStream(log)
    assert _texts(read_lines(stream, LogFilter())) == ["a", "b-continued", "c", "d"]
    assert _texts(read_lines(LogStream(log), LogFilter(tail=2))) == ["c", "d"]
    stream.close()


def test_more_follows_rotations_without_losing_or_repeating(tmp_path):
    log = str(tmp_path / "container.log")
    _write(log, _record(0, "a"))
    stream = LogStream(log)
    assert _texts(read_lines(stream, LogFilter())) == ["a"]
    _write(log, _record(1, "b"))
    assert stream.more() == _record(1, "b")
    # Two rotations between polls: what was appended to ours, then each newer file, once.
    _write(log, _record(2, "c"))
    os.rename(log, log + ".1")
    _write(log, _record(3, "d"))
    os.rename(log + ".1", log + ".2")
    os.rename(log, log + ".1")
    _write(log, _record(4, "e"))
    assert stream.more() == _record(2, "c") + _record(3, "d") + _record(4, "e")
    assert stream.more() == b""
    # Ours dropped (more rotations than files kept): every file left is newer.
    _write(log, _record(5, "f"))
    os.rename(log + ".1", log + ".2")
    os.rename(log, log + ".1")
    _write(log, _record(6, "g"))
    os.rename(log + ".1", log + ".2")
    os.rename(log, log + ".1")
    _write(log, _record(7, "h"))
    assert stream.more() == _record(5, "f") + _record(6, "g") + _record(7, "h")
    stream.close()


def test_log_opts():
    assert rotation(None) == (20 << 20, 5)
    assert rotation(parse_log_opts(["max-size=10k", "max-file=2"])) == (10 << 10, 2)
    assert rotation(parse_log_opts({"max-size": "-1"})) == (0, 5)
    for bad, words in (
        (["compress=true"], "unknown --log-opt 'compress'"),
        (["max-size=1"], "at least 1k"),
        (["max-file=x"], "max-file=x"),
        (["max-size=lots"], "max-size=lots"),
    ):
        with pytest.raises(InvalidArgument, match=words):
            parse_log_opts(bad)
