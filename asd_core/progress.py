"""Per-stage progress lines with counts and rates, through ``logging`` (Prefect captures it)."""

from __future__ import annotations

import logging
import time

logger = logging.getLogger("asd")


class Progress:
    """Log ``label: done/total (rate unit/s)`` at most every ``every_s`` seconds and at the end."""

    def __init__(self, label: str, total: int | None, unit: str = "clips", every_s: float = 5.0):
        self.label, self.total, self.unit, self.every_s = label, total, unit, every_s
        self.done = 0
        self.start = self._last = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self._last >= self.every_s:
            self._last = now
            self._log(now)

    def close(self) -> None:
        self._log(time.perf_counter(), final=True)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    @property
    def rate(self) -> float:
        elapsed = self.elapsed
        return self.done / elapsed if elapsed > 0 else 0.0

    def _log(self, now: float, final: bool = False) -> None:
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        of = f"/{self.total}" if self.total is not None else ""
        end = " done" if final else ""
        logger.info("%s: %d%s %s (%.1f %s/s, %.1f s)%s", self.label, self.done, of, self.unit, rate, self.unit, elapsed, end)
