"""Pieces shared by the training loops of :mod:`.gan` and :mod:`.encoder`: interval checks, running loss
means for the log, and the one per-step decision whether to stop."""

from __future__ import annotations

import time

from . import distributed as tdist
from .distributed import DistInfo
from .stopping import GracefulStop


def crossed(interval_kimg: float, before: int, after: int) -> bool:
    """True when a step that took the image count from ``before`` to ``after`` crossed a multiple of
    ``interval_kimg`` thousand images (log, snapshot and checkpoint schedules)."""
    every = max(1, int(round(interval_kimg * 1000)))
    return after // every > before // every


class RunningMeans:
    """Means of each loss term since the last :meth:`clear` (what one log record holds)."""

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def add(self, stats: dict[str, float]) -> None:
        for k, v in stats.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
            self._counts[k] = self._counts.get(k, 0) + 1

    def means(self) -> dict[str, float]:
        return {k: self._sums[k] / self._counts[k] for k in self._sums}

    def clear(self) -> None:
        self._sums.clear()
        self._counts.clear()

    def __bool__(self) -> bool:
        return bool(self._sums)


def should_stop(*, done: bool, stop: GracefulStop, t_start: float, max_minutes: float | None,
                info: DistInfo) -> bool:
    """Stop before the next step? ``done``: the image/step budget is reached; also a Ctrl-C / SIGTERM or the
    ``max_minutes`` wall-clock budget on any rank (one collective per step under DDP)."""
    out_of_time = max_minutes is not None and time.perf_counter() - t_start >= max_minutes * 60
    return tdist.any_rank(done or stop.requested or out_of_time, info)
