"""What every input source is: a named, re-iterable, lazy stream of Frames and Skips in its own time order."""

from __future__ import annotations

import abc
import heapq
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import ClassVar

from agent.frame import Frame, Item
from agent.sources.limits import DEFAULT_LIMITS, InputLimits

NS_PER_S = 1_000_000_000

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class Source(abc.ABC):
    """One input (a drive folder, a recording, a video...).

    Each call to `iter()` starts a fresh pass over the input and reads it lazily, so a drive of any length
    is never held in memory. Items come out in the source's own time order (non-decreasing `t_ns`).
    """

    kind: ClassVar[str]
    limits: InputLimits = DEFAULT_LIMITS  # open_inputs sets the configured ones (inputs.max_pixels, ...)
    # What the item times are: wall-clock (ns since the epoch) or relative to the input's start (see clocks.py).
    wall_clock: bool = True
    clock: str = "recorded time"

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = Path(path).name or path

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Item]:
        """Yield the input's Frames and Skips in time order."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"


class SeqCounter:
    """Hands out `seq` per sensor: the 0-based position of an item in that sensor's stream, in input order.

    Skips take a number too, so that a gap in the kept sequence shows where an unreadable item was.
    """

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def __call__(self, sensor: str) -> int:
        seq = self._next.get(sensor, 0)
        self._next[sensor] = seq + 1
        return seq


def safe_name(text: str) -> str:
    """`text` reduced to letters, digits, '_', '.' and '-' (sensor names become file names and topic levels)."""
    return _UNSAFE.sub("_", text).strip("_.")


def nominal_t_ns(index: int, hz: float) -> int:
    """Time of item `index` at a nominal rate, in integer ns from 0 (exact for integer rates)."""
    return round(index * NS_PER_S / hz)


def reorder(items: Iterable[Item], window: int, max_bytes: int = 256 * 2**20) -> Iterator[Item]:
    """Sort a nearly time-ordered stream with a bounded buffer: at most `window` items and about `max_bytes`.

    Recordings are written in arrival order, while frames are stamped at capture: the two differ by a few
    frames across topics. A bounded heap fixes that without loading the recording; ties keep input order.
    The byte bound keeps a burst of large raw images from filling memory (order may then suffer, never RAM).
    """
    heap: list[tuple[int, int, Item]] = []
    held = 0
    for order, item in enumerate(items):
        heapq.heappush(heap, (item.t_ns, order, item))
        held += _size(item)
        while heap and (len(heap) > window or held > max_bytes):
            out = heapq.heappop(heap)[2]
            held -= _size(out)
            yield out
    while heap:
        yield heapq.heappop(heap)[2]


def _size(item: Item) -> int:
    return item.nbytes if isinstance(item, Frame) else 0
