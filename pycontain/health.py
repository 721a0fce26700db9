"""A container's health as its monitor records it (``State.Health`` in docker's inspect, and in
state.json): ``HealthState`` and its ``HealthResult`` log. Apart from ``state``: only a container with a
health check has one, and ``ps`` and ``state`` should not load this for every other.
"""

from __future__ import annotations

# typing.TYPE_CHECKING without importing typing; type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .config import ContainerConfig


class HealthResult:
    """One health check's result, as docker's ``State.Health.Log`` shows it."""

    __slots__ = ("start", "end", "exit_code", "output")

    def __init__(self, start: float, end: float, exit_code: int, output: str) -> None:
        self.start = start
        self.end = end
        self.exit_code = exit_code
        self.output = output

    def to_dict(self) -> dict:
        return {"Start": self.start, "End": self.end, "ExitCode": self.exit_code, "Output": self.output}

    @classmethod
    def from_dict(cls, d: object) -> HealthResult:
        if not (
            isinstance(d, dict)
            and _is_num(d.get("Start"))
            and _is_num(d.get("End"))
            and _is_int(d.get("ExitCode"))
            and isinstance(d.get("Output"), str)
        ):
            raise ValueError(f"health: Log: expected Start, End, ExitCode and Output, not {d!r}")
        return cls(d["Start"], d["End"], d["ExitCode"], d["Output"])


class HealthState:
    """A container's health (with a health check): docker's ``State.Health``, its form on disk too."""

    __slots__ = ("status", "failing_streak", "log")

    def __init__(
        self, status: str = "starting", failing_streak: int = 0, log: list[HealthResult] | None = None
    ) -> None:
        self.status = status  # starting, healthy or unhealthy
        self.failing_streak = failing_streak  # failed checks in a row
        self.log = list(log or [])  # the last results, oldest first

    def to_dict(self) -> dict:
        return {
            "Status": self.status,
            "FailingStreak": self.failing_streak,
            "Log": [r.to_dict() for r in self.log],
        }

    @classmethod
    def from_dict(cls, d: object) -> HealthState:
        if not (
            isinstance(d, dict)
            and isinstance(d.get("Status"), str)
            and _is_int(d.get("FailingStreak", 0))
            and isinstance(d.get("Log", []), list)
        ):
            raise ValueError(f"health: expected Status, FailingStreak and Log, not {d!r}")
        return cls(
            d["Status"], d.get("FailingStreak", 0), [HealthResult.from_dict(r) for r in d.get("Log", [])]
        )


def _is_int(v: object) -> bool:
    return type(v) is int


def _is_num(v: object) -> bool:
    return type(v) is int or type(v) is float


def new_health(config: ContainerConfig) -> HealthState | None:
    """A container's health record when it starts: "starting" until its first check passes."""
    return HealthState() if config.healthcheck is not None and config.healthcheck.cmd else None
