"""What the vehicle's sensors saw a moment ago: evidence one sensor gives about another.

Cameras and LiDARs of one vehicle see one world. A camera that sees nothing while a LiDAR sees a street at the
same moment is faulty; a LiDAR gone empty while the cameras see a road is faulty; every sensor agreeing that it is
dark or foggy is a condition. Each sensor notes whether its latest frame showed a scene; the others ask.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from agent.frame import Modality

WINDOW_NS = 1_000_000_000  # evidence older than this (sensor time) says nothing about the current frame
MAX_SENSORS = 256  # a bound on the table: sensors beyond it are not used as evidence
HISTORY = 64  # notes kept per sensor (a LiDAR at 20 Hz: 3 s), so a frame can ask about its own moment


@dataclass(frozen=True, slots=True)
class Seen:
    t_ns: int
    scene: bool


class SceneContext:
    """What each sensor's recent frames showed. Only frames at or before the asking frame's time count, so the
    answer does not depend on how far ahead another sensor's scoring has run. One note or one read is a few dict
    and deque operations: the daemon's scoring threads share one context without a lock (a reader may miss the
    very latest note of another sensor, which a window of a second makes harmless)."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[Modality, deque[Seen]]] = {}
        self.overflow = 0  # notes refused because MAX_SENSORS sensors are already known

    def note(self, sensor: str, modality: Modality, t_ns: int, scene: bool) -> None:
        entry = self._seen.get(sensor)
        if entry is None:
            if len(self._seen) >= MAX_SENSORS:
                self.overflow += 1
                return
            entry = self._seen[sensor] = (modality, deque(maxlen=HISTORY))
        entry[1].append(Seen(t_ns, scene))

    def other_modality_sees(self, sensor: str, modality: Modality, t_ns: int) -> bool:
        """True when a sensor of the other modality showed a scene in the WINDOW_NS before `t_ns`."""
        for name, (kind, seen) in list(self._seen.items()):
            if name == sensor or kind is modality:
                continue
            if any(s.scene and 0 <= t_ns - s.t_ns <= WINDOW_NS for s in list(seen)):
                return True
        return False
