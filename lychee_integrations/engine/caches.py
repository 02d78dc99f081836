"""Caches that outlive a call: bounded, thread-safe, exact, and counted for ``/metrics``.

One store, :class:`BoundedCache` (least recently used first out, bounded by bytes or by
entries, optional time to live), serves the engine's three caches (what each saves:
:class:`~lychee_integrations.config.RerankerConfig`): ``vision``, the vision tower's output per
image by :func:`image_key`; ``prefix``, a prompt prefix's keys and values by its token ids and
image keys; ``score``, a whole pair's score by the model and the pair's token ids and image keys.

Every lookup emits a telemetry event (:mod:`lychee_integrations.telemetry`),
``<name>_cache_hit`` or ``<name>_cache_miss`` (value 1), and every change of size
``<name>_cache_bytes`` and ``<name>_cache_entries`` (the new totals).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from lychee_integrations.telemetry import emit

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = ["BoundedCache", "CacheStats", "image_key", "tensor_bytes"]

V = TypeVar("V")


@dataclass(frozen=True)
class CacheStats:
    """A snapshot of one cache's counters."""

    hits: int
    misses: int
    entries: int
    bytes: int


class BoundedCache(Generic[V]):
    """A thread-safe LRU map bounded by total size (bytes) or by entries, with an optional TTL.

    Args:
        name: The cache's name in telemetry (``vision``, ``prefix``, ``score``).
        max_bytes: Most bytes held (sizes from ``size_of``); ``None``: no byte bound.
        max_entries: Most entries held; ``None``: no entry bound.
        ttl: Seconds an entry stays valid after it is stored; ``None``: until evicted.
        size_of: The size of a value in bytes (default: 1 per entry).
        clock: Monotonic seconds (for tests of the TTL).

    A value larger than ``max_bytes`` is not stored. Values are returned as stored: callers
    must not change them.

    Example:
        >>> cache = BoundedCache[str]("demo", max_entries=2)
        >>> cache.put("a", "1"); cache.put("b", "2"); cache.put("c", "3")
        >>> cache.get("a") is None, cache.get("c")
        (True, '3')

    """

    def __init__(
        self,
        name: str,
        *,
        max_bytes: int | None = None,
        max_entries: int | None = None,
        ttl: float | None = None,
        size_of: Callable[[V], int] = lambda value: 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_bytes is None and max_entries is None:
            raise ValueError("a cache needs max_bytes or max_entries")
        self.name = name
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.ttl = ttl
        self._size_of = size_of
        self._clock = clock
        self._items: OrderedDict[Hashable, tuple[V, int, float]] = OrderedDict()
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        """Return the value stored under ``key`` (and mark it recently used), or ``None``."""
        with self._lock:
            item = self._items.get(key)
            if item is not None and self.ttl is not None and self._clock() - item[2] > self.ttl:
                self._drop(key)
                item = None
            if item is None:
                self._misses += 1
            else:
                self._items.move_to_end(key)
                self._hits += 1
        emit(f"{self.name}_cache_{'miss' if item is None else 'hit'}", 1)
        return None if item is None else item[0]

    def best(self, score: Callable[[Hashable, V], int]) -> tuple[V, int] | None:
        """Return the held value of highest ``score(key, value)`` and that score, or ``None`` if none is over 0.

        Counts one lookup (a hit when a value is returned) and marks the value recently used.
        For lookups by the longest shared prefix (the prefix cache); ``score`` runs under the
        cache's lock, so it must be quick and must not use the cache.
        """
        with self._lock:
            now = self._clock()
            found: tuple[Hashable, V, int] | None = None
            for key, (value, _, stored) in self._items.items():
                if self.ttl is not None and now - stored > self.ttl:
                    continue
                points = score(key, value)
                if points > 0 and (found is None or points > found[2]):
                    found = (key, value, points)
            if found is None:
                self._misses += 1
            else:
                self._items.move_to_end(found[0])
                self._hits += 1
        emit(f"{self.name}_cache_{'miss' if found is None else 'hit'}", 1)
        return None if found is None else (found[1], found[2])

    def peek(self, key: Hashable) -> bool:
        """Whether ``key`` is held (and not expired), without counting a lookup."""
        with self._lock:
            item = self._items.get(key)
            return item is not None and (self.ttl is None or self._clock() - item[2] <= self.ttl)

    def put(self, key: Hashable, value: V) -> None:
        """Store ``value`` under ``key``, evicting the least recently used entries to fit."""
        size = self._size_of(value)
        if self.max_bytes is not None and size > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                self._drop(key)
            self._items[key] = (value, size, self._clock())
            self._bytes += size
            while (self.max_bytes is not None and self._bytes > self.max_bytes) or (
                self.max_entries is not None and len(self._items) > self.max_entries
            ):
                self._drop(next(iter(self._items)))
            entries, total = len(self._items), self._bytes
        emit(f"{self.name}_cache_entries", entries)
        emit(f"{self.name}_cache_bytes", total)

    def clear(self) -> None:
        """Drop every entry (counters are kept)."""
        with self._lock:
            self._items.clear()
            self._bytes = 0
        emit(f"{self.name}_cache_entries", 0)
        emit(f"{self.name}_cache_bytes", 0)

    def _drop(self, key: Hashable) -> None:
        _, size, _ = self._items.pop(key)
        self._bytes -= size

    def stats(self) -> CacheStats:
        """Return the hits, misses, entries and bytes now."""
        with self._lock:
            return CacheStats(self._hits, self._misses, len(self._items), self._bytes)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def tensor_bytes(value: Any) -> int:
    """Bytes held by the tensors in ``value`` (a tensor, or nested tuples/lists of them)."""
    if isinstance(value, (tuple, list)):
        return sum(tensor_bytes(v) for v in value)
    nbytes = getattr(value, "nbytes", None)
    return int(nbytes) if nbytes is not None else 0


def image_key(image: PILImage, settings: tuple[object, ...]) -> bytes:
    """Return a content key of ``image`` as the processor receives it, under the image ``settings``.

    Hashes the decoded pixels, mode and size (so the same picture from a path, bytes or a
    URL gets one key) and the settings that decide the patches (planned grid, processor
    bounds, the recipe's resize), so a cached vision output is only reused where it is exact.
    """
    digest = hashlib.blake2b(digest_size=20)
    digest.update(repr((image.mode, image.size, settings)).encode())
    digest.update(image.tobytes())
    return digest.digest()
