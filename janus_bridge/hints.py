"""What events told the bridge, kept bounded: events are hints from the network, and whoever can post
them must not be able to grow the service's memory without limit.

`Recent` is an insertion-ordered map with a size cap and an age limit: the oldest entries go first when
it is full (counted in `evicted`), and entries older than `max_age` seconds are forgotten.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    def __init__(
        self, max_items: int, max_age: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self.max_items = max_items
        self.max_age = max_age
        self.evicted = 0
        self._clock = clock
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[K]:
        self._expire()
        return iter(list(self._items))

    def set(self, key: K, value: V) -> None:
        self._expire()
        self._items.pop(key, None)
        self._items[key] = (self._clock(), value)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)
            self.evicted += 1

    def get(self, key: K) -> V | None:
        self._expire()
        entry = self._items.get(key)
        return None if entry is None else entry[1]

    def pop(self, key: K) -> V | None:
        self._expire()
        entry = self._items.pop(key, None)
        return None if entry is None else entry[1]

    def items(self) -> list[tuple[K, V]]:
        self._expire()
        return [(key, value) for key, (_, value) in self._items.items()]

    def values(self) -> list[V]:
        self._expire()
        return [value for _, value in self._items.values()]

    def _expire(self) -> None:
        if self.max_age is None:
            return
        horizon = self._clock() - self.max_age
        while self._items:
            key, (stamp, _) = next(iter(self._items.items()))
            if stamp >= horizon:
                break
            del self._items[key]
