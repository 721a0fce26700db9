"""What ``pycontain build`` shows: one line per step, with its latest output while it runs."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from rich.progress import TaskID


class BuildProgress:
    """One line per step: a spinner and the step's latest output while it runs, then "cached" or its time.

    On a terminal this is a rich live display on stderr; otherwise (``enabled`` None and no terminal) plain
    lines on stderr, and with ``enabled=False`` nothing. It also serves as the ``Progress`` the Debian and
    closure builders report to (``status``/``task``).
    """

    def __init__(self, enabled: bool | None = None) -> None:
        self.plain = enabled is None and not sys.stderr.isatty()
        self.quiet = enabled is False
        self._bar = None
        self._task: TaskID | None = None
        self._started = 0.0
        self._desc = ""
        if self.quiet or self.plain:
            return
        try:
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                SpinnerColumn(finished_text="[green]✓"),
                TextColumn("{task.description}"),
                TextColumn("[dim]{task.fields[info]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._bar.start()
        except Exception:
            self._bar = None
            self.plain = True

    def step(self, n: int, total: int, desc: str) -> None:
        self._desc = f"[{n}/{total}] {short(desc, 56)}"
        self._started = time.monotonic()
        if self._bar is not None:
            self._task = self._bar.add_task(self._desc, total=1, info="")

    def done(self, cached: bool) -> None:
        secs = time.monotonic() - self._started
        info = "cached" if cached else f"done in {secs:.1f}s"
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=1, info=info)
        elif self.plain:
            print(f"{self._desc}: {info}", file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        """A line said once, above the steps (not when quiet)."""
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        elif self.plain:
            print(text, file=sys.stderr, flush=True)

    def status(self, text: str) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, info=text[:80])

    def task(self, _description: str, _total: int | None) -> Callable[[int], None] | None:
        return None

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
