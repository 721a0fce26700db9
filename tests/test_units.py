"""docker's size and cpu units (pycontain.units): pure functions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pycontain.errors import InvalidArgument
from pycontain.units import MAX_SIZE, format_size, parse_cpus, parse_size

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1024", 1024),
        ("0", 0),
        ("100b", 100),
        ("100B", 100),
        ("100k", 100 * KiB),
        ("100K", 100 * KiB),
        ("100kb", 100 * KiB),
        ("100KiB", 100 * KiB),
        ("512m", 512 * MiB),
        ("512M", 512 * MiB),
        ("512mb", 512 * MiB),
        ("1g", GiB),
        ("1G", GiB),
        ("1gb", GiB),
        ("1GiB", GiB),
        ("1gib", GiB),
        ("1.5g", GiB + GiB // 2),
        ("0.5m", MiB // 2),
        ("1 g", GiB),
        ("  64m  ", 64 * MiB),
        ("2t", 2 << 40),
        ("1p", 1 << 50),
        ("8191p", 8191 << 50),
    ],
)
def test_parse_size_accepts_docker_sizes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "12x",
        "-1m",
        "-1",
        "1.5.5g",
        "m",
        "g1",
        "1e3",
        ".5g",
        "1.g",
        "1i",
        "1ib",
        "1gg",
        "1 2m",
        "0x10",
        "nan",
        "inf",
        "1,5g",
        "١٢m",
        "12 m b",
        "1kk",
    ],
)
def test_parse_size_rejects_malformed_sizes(text: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        parse_size(text, "memory")
    msg = str(exc.value)
    assert repr(text) in msg and "memory" in msg
    assert "\n" not in msg and msg == msg.lower()


@pytest.mark.parametrize(
    "text",
    ["8192p", "99999999999999999999999", "9223372036854775808", "1" + "0" * 400 + "g", "9" * 400 + ".5k"],
)
def test_parse_size_rejects_values_past_int64(text: str) -> None:
    with pytest.raises(InvalidArgument, match="too large"):
        parse_size(text)


def test_parse_size_limits_and_ints() -> None:
    assert parse_size(str(MAX_SIZE)) == MAX_SIZE
    assert parse_size(64 * MiB) == 64 * MiB
    with pytest.raises(InvalidArgument):
        parse_size(-1)
    with pytest.raises(InvalidArgument):
        parse_size(True)  # type: ignore[arg-type]


@given(
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(["", "b", "k", "kb", "kib", "m", "M", "mib", "g", "GB"]),
)
def test_parse_size_integer_property(n: int, unit: str) -> None:
    mult = {"": 1, "b": 1, "k": KiB, "m": MiB, "g": GiB}[unit[:1].lower()]
    assert parse_size(f"{n}{unit}") == n * mult


@pytest.mark.parametrize(
    ("text", "expected"), [("1", 1.0), ("1.5", 1.5), ("0.01", 0.01), (" 2 ", 2.0), (3, 3.0), (0.5, 0.5)]
)
def test_parse_cpus(text: object, expected: float) -> None:
    assert parse_cpus(text) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", "0", "-1", "abc", "1.5.5", "nan", "inf", "-inf", "1cpu"])
def test_parse_cpus_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        parse_cpus(text)
    assert repr(text) in str(exc.value)


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0B"),
        (1000, "1000B"),
        (1024, "1KiB"),
        (512 * MiB, "512MiB"),
        (GiB + GiB // 2, "1.5GiB"),
        (2047 * KiB, "1.999MiB"),
        (3 << 40, "3TiB"),
    ],
)
def test_format_size(n: int, expected: str) -> None:
    assert format_size(n) == expected


def test_units_imports_nothing_heavy() -> None:
    import subprocess
    import sys

    code = "import sys; import pycontain.units; print(sorted(m for m in ('re', 'math', 'dataclasses', 'typing') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=__file__.rsplit("/tests/", 1)[0],
    ).stdout.strip()
    assert out == "[]"
