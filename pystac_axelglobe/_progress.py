"""The progress bar of :func:`~pystac_axelglobe.downloads.download`: one byte count, all files.

Every transfer adds its file's size to the total once known and its bytes as they arrive,
from many threads at once; without a terminal (or with ``progress=False``) nothing is shown
and nothing is imported.

Example:
    >>> bar = Progress(enabled=False)
    >>> bar.add_total(10); bar.update(10); bar.close()
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["Progress"]


class Progress:
    """One thread-safe byte counter over all files (tqdm, or nothing)."""

    def __init__(self, enabled: bool) -> None:
        self._lock = threading.Lock()
        self._bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024,
                             desc="download", dynamic_ncols=True)

    def add_total(self, n: int) -> None:
        """Add ``n`` bytes (negative: remove them) to the total to download."""
        if self._bar is not None and n:
            with self._lock:
                self._bar.total += n
                self._bar.refresh()

    def update(self, n: int) -> None:
        """Count ``n`` more bytes downloaded (negative: bytes dropped by a restart)."""
        if self._bar is not None and n:
            with self._lock:
                self._bar.update(n)

    def close(self) -> None:
        """Take the bar off the terminal."""
        if self._bar is not None:
            self._bar.close()
