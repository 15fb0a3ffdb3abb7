"""The lines of recently read files, bounded by their estimated size in memory."""

from __future__ import annotations

import threading
from collections import OrderedDict

# What the line cache may hold, estimated as below (within 10 % of tracemalloc's count): a long-lived
# server keeps its tools for hours, and every file it ever showed stayed in memory before (80 MB grew to
# 732 MB). Django's source fits (37 MiB by this estimate); the verl adapter keeps up to 8 tool sets.
LINE_CACHE_BYTES = 64 << 20
# an estimate of a line's own cost beyond its text: a str object's header and its slot in the list
_LINE_OVERHEAD_BYTES = 57


def line_cost(size: int, lines: int) -> int:
    """The estimated memory of a file's ``lines`` lines read from ``size`` bytes."""
    return size + _LINE_OVERHEAD_BYTES * lines


class LineCache:
    """The lines of recently read files, the least recently used dropped first once their estimated size
    passes ``limit`` bytes. A file larger than the whole cache is not kept. Thread-safe."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.bytes = 0
        self._entries: OrderedDict[str, tuple[list[str], int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def paths(self) -> list[str]:
        """The cached files, least recently used first."""
        with self._lock:
            return list(self._entries)

    def get(self, path: str) -> list[str] | None:
        with self._lock:
            entry = self._entries.get(path)
            if entry is None:
                return None
            self._entries.move_to_end(path)
            return entry[0]

    def put(self, path: str, lines: list[str], cost: int) -> None:
        with self._lock:
            if path in self._entries or cost > self.limit:
                return
            self._entries[path] = (lines, cost)
            self.bytes += cost
            while self.bytes > self.limit:
                _, (_, dropped) = self._entries.popitem(last=False)
                self.bytes -= dropped
