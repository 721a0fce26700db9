"""Docker's human units: sizes ("512m", "1.5g", "1GiB") and CPU counts ("1.5").

Sits on the start path of ``pycontain run``: imports nothing (not even ``re`` or ``math``).
"""

from __future__ import annotations

from .errors import InvalidArgument

_MULT = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_ABBRS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")

MAX_SIZE = (1 << 63) - 1  # int64, what the kernel's cgroup files and docker's API hold


def parse_size(s: str | int, what: str = "size") -> int:
    """Bytes in a docker size: "512m", "1g", "1.5g", "100k", "1024", "1GiB", "1gb" (case-insensitive).

    Multipliers are binary (k = 1024), as docker's ``RAMInBytes``. ``what`` names the option in errors.
    """
    if isinstance(s, bool):
        raise InvalidArgument(f"invalid {what}: {s!r} (use a size such as 512m or 1g)")
    if isinstance(s, int):
        if s < 0 or s > MAX_SIZE:
            raise InvalidArgument(f"invalid {what}: {s} (use a size between 0 and {MAX_SIZE} bytes)")
        return s
    bad = InvalidArgument(
        f"invalid {what}: {s!r} (use a number with an optional unit b, k, m, g, t or p, e.g. 512m)"
    )
    number, unit = _split_size(str(s).strip().lower())
    if not _is_decimal(number):
        raise bad
    if len(number.partition(".")[0].lstrip("0")) > 20:
        # Beyond any int64 whatever the unit; and int() refuses strings of more than 4300 digits.
        raise InvalidArgument(
            f"invalid {what}: {s!r} is too large (the largest size is {MAX_SIZE} bytes, just under 8192p)"
        )
    if "." in number:
        value = float(number)
        size = MAX_SIZE + 1 if value == _INF else int(value * _MULT[unit])
    else:
        size = int(number) * _MULT[unit]  # exact for integers of any length
    if size > MAX_SIZE:
        raise InvalidArgument(
            f"invalid {what}: {s!r} is too large (the largest size is {MAX_SIZE} bytes, just under 8192p)"
        )
    return size


_INF = float("inf")
_DIGITS = frozenset("0123456789")


def _split_size(text: str) -> tuple[str, str]:
    """Split a lower-cased size into number and unit: "1.5 gib" -> ("1.5", "g") (go-units' ` ?[kmgtp]?i?b?`)."""
    if text.endswith("b"):
        text = text[:-1]
    if text.endswith("i"):
        text = text[:-1]
        if not text or text[-1] not in _MULT:  # "i" needs a unit before it ("1ib" is not a size)
            return "", ""
    unit = ""
    if text and text[-1] in _MULT:
        unit, text = text[-1], text[:-1]
    if text.endswith(" "):
        text = text[:-1]
    return text, unit


def _is_decimal(number: str) -> bool:
    """Whether ``number`` reads like 12 or 1.5: ASCII digits, at most one point, digits on both sides."""
    whole, dot, frac = number.partition(".")
    if not whole or not set(whole) <= _DIGITS:
        return False
    return not dot or (bool(frac) and set(frac) <= _DIGITS)


def parse_cpus(s: str | float | int, what: str = "cpus") -> float:
    """A CPU count such as "1.5" (docker's ``--cpus``); must be a finite number above zero."""
    if isinstance(s, bool):
        raise InvalidArgument(f"invalid {what}: {s!r} (use a number of cpus such as 1.5)")
    try:
        value = float(str(s).strip()) if isinstance(s, str) else float(s)
    except ValueError:
        raise InvalidArgument(f"invalid {what}: {s!r} (use a number of cpus such as 1.5)") from None
    if value != value or value in (_INF, -_INF) or value <= 0:
        raise InvalidArgument(f"invalid {what}: {s!r} (use a number of cpus above 0, such as 1.5)")
    return value


def format_size(n: int | float) -> str:
    """Binary human size as docker stats prints it: 512 MiB -> "512MiB", 1.5 GiB -> "1.5GiB"."""
    value = float(n)
    i = 0
    while abs(value) >= 1024 and i < len(_ABBRS) - 1:
        value /= 1024
        i += 1
    return f"{value:.4g}{_ABBRS[i]}"


_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(s: str | float | int, what: str = "duration") -> float:
    """Go's durations as docker takes them: ``30s``, ``1m30s``, ``500ms``, ``1.5h``; a bare number is seconds."""
    import re

    from .errors import InvalidArgument

    if isinstance(s, (int, float)):
        value = float(s)
    else:
        text = s.strip()
        parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
        if re.fullmatch(r"\d+(\.\d+)?", text):
            value = float(text)
        elif parts and "".join(n + u for n, u in parts) == text:
            value = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
        else:
            raise InvalidArgument(f"invalid {what} {s!r}: use a duration such as 30s, 1m30s or 500ms")
    if value < 0 or value != value:
        raise InvalidArgument(f"invalid {what} {s!r}: it cannot be negative")
    return value
