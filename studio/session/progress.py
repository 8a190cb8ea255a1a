"""How fast a batch renders and how long it has left: one rule for the window and the command line.

The clock starts when the first image arrives, so model loading, prompt encoding and warm-up (the seconds
before anything is drawn) do not drag the rate down; images that arrive with the first one (the same
micro-batch) are not counted against time that has not passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

SAME_BURST_S = 0.005  # results this close to the first came out of the same micro-batch


class BatchRate:
    def __init__(self, total: int, clock: Callable[[], float] = time.perf_counter):
        self.total = total
        self.done = 0
        self._clock = clock
        self._first: float | None = None
        self._counted_from = 0  # images already done when the clock started

    def step(self, count: int = 1) -> None:
        """``count`` more images are ready."""
        now = self._clock()
        if self._first is None or now - self._first < SAME_BURST_S:
            self._first = self._first if self._first is not None else now
            self._counted_from = self.done + count
        self.done += count

    @property
    def rate(self) -> float | None:
        """Images per second since the first image (None until there is a second moment to measure)."""
        if self._first is None or self.done <= self._counted_from:
            return None
        elapsed = self._clock() - self._first
        return (self.done - self._counted_from) / elapsed if elapsed > 0 else None

    @property
    def seconds_left(self) -> float | None:
        rate = self.rate
        return (self.total - self.done) / rate if rate else None

    def summary(self) -> str:
        """'12.5 img/s · about 3 s left' (or '' before the rate is known)."""
        rate = self.rate
        if rate is None:
            return ""
        left = self.seconds_left or 0.0
        if self.done >= self.total:
            return f"{rate:.1f} img/s"
        return f"{rate:.1f} img/s · about {format_duration(left)} left"


def format_duration(seconds: float) -> str:
    """'3 s', '2 min 05 s', '1 h 04 min'."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
