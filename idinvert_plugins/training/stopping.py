"""Graceful stop of a training run: Ctrl-C or SIGTERM ends it with a checkpoint, not a lost hour.

The training loops check :attr:`GracefulStop.requested` between steps, so the checkpoint they write is
exactly the state after a whole step and a resumed run continues as if never interrupted. A second
signal interrupts at once (the default behaviour).
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s is not None)


class GracefulStop:
    """Context manager: while active, the first SIGINT/SIGTERM sets :attr:`requested` instead of raising.

    Outside the main thread (where Python cannot install signal handlers) it does nothing.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:  # second signal: stop now
            previous = self._previous.get(signum)
            if callable(previous):
                previous(signum, frame)
            raise KeyboardInterrupt
        self.requested = True
        print(f"\n{signal.Signals(signum).name} received: finishing this step and writing a checkpoint "
              "(send it again to stop at once)", file=sys.stderr, flush=True)

    def install(self) -> GracefulStop:
        """Take over SIGINT/SIGTERM (main thread only); returns ``self``."""
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        """Give the signals back to their previous handlers."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def __enter__(self) -> GracefulStop:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.restore()
