"""Merge the inputs into one time-ordered stream, with sensor names made unique across inputs."""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from agent.frame import Frame, Item
from agent.sources.base import Source


class SensorNames:
    """Gives each (input, sensor) pair a name no other input uses: the first comer keeps it, the next gets _2.

    Names are claimed as items are pulled. heapq.merge pulls the first item of every input in input order
    before anything else, so when inputs start together the earlier input keeps the plain name.
    """

    def __init__(self) -> None:
        self._names: dict[tuple[int, str], str] = {}
        self._taken: set[str] = set()

    def __call__(self, index: int, sensor: str) -> str:
        name = self._names.get((index, sensor))
        if name is None:
            name = self._names[(index, sensor)] = self._claim(sensor)
        return name

    def _claim(self, sensor: str) -> str:
        name, n = sensor, 1
        while name in self._taken:
            n += 1
            name = f"{sensor}_{n}"
        self._taken.add(name)
        return name


@dataclass
class MergeStats:
    """Per input (by index): frames yielded and the time of the first one, filled in as the merge runs."""

    frames: dict[int, int] = field(default_factory=dict)
    first_ns: dict[int, int] = field(default_factory=dict)


def _renamed(items: Iterator[Item], index: int, names: SensorNames, offset_ns: int,
             stats: MergeStats | None) -> Iterator[Item]:
    for item in items:
        sensor = names(index, item.sensor)
        if isinstance(item, Frame):
            # Frames are fresh objects owned by the stream: rename and re-time in place
            item.sensor = sensor
            item.t_ns += offset_ns
            if stats is not None:
                stats.frames[index] = stats.frames.get(index, 0) + 1
                stats.first_ns.setdefault(index, item.t_ns)
        elif sensor != item.sensor or offset_ns:
            item = dataclasses.replace(item, sensor=sensor, t_ns=item.t_ns + offset_ns)  # Skips are frozen
        yield item


def merge(sources: Sequence[Source], max_frames: int = 0, offsets: Sequence[int] | None = None,
          stats: MergeStats | None = None) -> Iterator[Item]:
    """All items of all sources by t_ns; equal times keep input order, then each input's own order.

    Stops after `max_frames` Frames (Skips do not count; 0 = no limit). Lazy: one pending item per input.
    `offsets` (ns, per input) move inputs without wall-clock time onto the others' timeline (see clocks.align).
    """
    names = SensorNames()
    shifts = list(offsets) if offsets is not None else [0] * len(sources)
    streams = [_renamed(iter(source), index, names, shifts[index], stats) for index, source in enumerate(sources)]
    frames = 0
    for item in heapq.merge(*streams, key=lambda it: it.t_ns):
        yield item
        if isinstance(item, Frame):
            frames += 1
            if max_frames and frames >= max_frames:
                return
