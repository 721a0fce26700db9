"""Progress for imports and bootstraps: a rich progress bar on a terminal's stderr, nothing otherwise."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.progress import TaskID


class Reporter(Protocol):
    """What the Debian, closure and single-layer builders report to: a ``Progress`` when importing, the
    build's own display (``pycontain.build.builder.BuildProgress``) during ``pycontain build``."""

    def task(self, description: str, total: int | None, /) -> Callable[[int], None] | None: ...
    def status(self, text: str, /) -> None: ...


class Progress:
    """``task(description, total)`` returns an ``advance(nbytes)`` callback; ``status(text)`` a phase line."""

    def __init__(self, enabled: bool | None = None) -> None:
        self._bar = None
        if enabled is None:
            enabled = sys.stderr.isatty()
        if not enabled:
            return
        try:
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._bar.start()
        except Exception:
            self._bar = None
        self._status_task: TaskID | None = None

    def task(self, description: str, total: int | None) -> Callable[[int], None] | None:
        if self._bar is None:
            return None
        task_id = self._bar.add_task(description, total=total)
        bar = self._bar

        def advance(n: int) -> None:
            bar.advance(task_id, n)

        return advance

    def status(self, text: str) -> None:
        if self._bar is None:
            return
        if self._status_task is None:
            self._status_task = self._bar.add_task(text, total=None)
        else:
            self._bar.update(self._status_task, description=text)

    def close(self) -> None:
        if self._bar is not None:
            if self._status_task is not None:
                self._bar.remove_task(self._status_task)
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
