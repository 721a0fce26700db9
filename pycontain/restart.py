"""docker's restart policies (``--restart``): parsed, decided after each exit, and the back-off between tries.

The monitor (``pycontain.monitor``) applies them; the config checks a policy where it is given.
"""

from __future__ import annotations

from .errors import InvalidArgument

POLICIES = ("no", "on-failure", "always", "unless-stopped")
# docker's back-off: 100 ms before the first restart, doubled each time up to a minute; a run that lasted
# this long starts the sequence over.
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 60.0
RESET_AFTER_S = 10.0


def parse_restart(value: str) -> tuple[str, int]:
    """``on-failure:3`` → ("on-failure", 3); a policy without a count → (name, 0)."""
    name, colon, count = value.partition(":")
    if name not in POLICIES:
        raise InvalidArgument(
            f"invalid --restart {value!r}: use no, on-failure[:N], always or unless-stopped"
        )
    if colon and (name != "on-failure" or not count.isdigit()):
        raise InvalidArgument(
            f"invalid --restart {value!r}: only on-failure takes a count, a whole number (on-failure:3)"
        )
    return name, int(count or 0)


def should_restart(policy: str, exit_code: int, restarts: int, manual_stop: bool) -> bool:
    name, limit = parse_restart(policy or "no")
    if manual_stop or name == "no":
        return False
    if name == "on-failure":
        return exit_code != 0 and (limit == 0 or restarts < limit)
    return True


def backoff(restarts: int, ran_for: float) -> float:
    if ran_for >= RESET_AFTER_S:
        return BACKOFF_FIRST_S
    return min(BACKOFF_FIRST_S * 2**restarts, BACKOFF_MAX_S)
