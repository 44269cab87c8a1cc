"""Merge the inputs into one time-ordered stream, with sensor names made unique across inputs."""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Iterator, Sequence

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


def _renamed(items: Iterator[Item], index: int, names: SensorNames) -> Iterator[Item]:
    for item in items:
        sensor = names(index, item.sensor)
        if sensor != item.sensor:
            if isinstance(item, Frame):
                item.sensor = sensor  # Frames are fresh objects owned by the stream: rename in place
            else:
                item = dataclasses.replace(item, sensor=sensor)  # Skips are frozen
        yield item


def merge(sources: Sequence[Source], max_frames: int = 0) -> Iterator[Item]:
    """All items of all sources by t_ns; equal times keep input order, then each input's own order.

    Stops after `max_frames` Frames (Skips do not count; 0 = no limit). Lazy: one pending item per input.
    """
    names = SensorNames()
    streams = [_renamed(iter(source), index, names) for index, source in enumerate(sources)]
    frames = 0
    for item in heapq.merge(*streams, key=lambda it: it.t_ns):
        yield item
        if isinstance(item, Frame):
            frames += 1
            if max_frames and frames >= max_frames:
                return
