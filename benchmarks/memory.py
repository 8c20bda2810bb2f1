"""Peak resident host memory over a block of code, sampled by a thread (psutil)."""

from __future__ import annotations

import threading

import psutil


class PeakRSS:
    """``with PeakRSS() as peak: ...`` then ``peak.bytes``; also ``peak.extra`` above the start."""

    def __init__(self, interval_s: float = 0.02):
        self.interval_s = interval_s
        self._process = psutil.Process()
        self._stop = threading.Event()
        self.start = self.bytes = 0

    def _sample(self):
        while not self._stop.wait(self.interval_s):
            self.bytes = max(self.bytes, self._process.memory_info().rss)

    def __enter__(self):
        self.start = self.bytes = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.bytes = max(self.bytes, self._process.memory_info().rss)

    @property
    def extra(self) -> int:
        return self.bytes - self.start
