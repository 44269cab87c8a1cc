"""What the vehicle's sensors saw a moment ago: evidence one sensor gives about another.

Cameras and LiDARs of one vehicle see one world. A camera that sees nothing while a LiDAR sees a street at the
same moment is faulty; a LiDAR gone empty while the cameras see a road is faulty; every sensor agreeing that it is
dark or foggy is a condition. Each sensor notes whether its latest frame showed a scene; the others ask.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.frame import Modality

WINDOW_NS = 1_000_000_000  # evidence older than this (sensor time) says nothing about the current frame
MAX_SENSORS = 256  # a bound on the table: sensors beyond it are not used as evidence


@dataclass(frozen=True, slots=True)
class Seen:
    modality: Modality
    t_ns: int
    scene: bool


class SceneContext:
    """The latest 'did it show a scene?' of each sensor. Reads and writes are single dict operations, so the
    daemon's per-sensor scoring threads may share one without a lock (a reader sees the old or the new entry)."""

    def __init__(self) -> None:
        self._seen: dict[str, Seen] = {}
        self.overflow = 0  # notes refused because MAX_SENSORS sensors are already known

    def note(self, sensor: str, modality: Modality, t_ns: int, scene: bool) -> None:
        if sensor not in self._seen and len(self._seen) >= MAX_SENSORS:
            self.overflow += 1
            return
        self._seen[sensor] = Seen(modality, t_ns, scene)

    def other_modality_sees(self, sensor: str, modality: Modality, t_ns: int) -> bool:
        """True when a sensor of the other modality showed a scene within WINDOW_NS of `t_ns`."""
        for name, seen in list(self._seen.items()):
            if name != sensor and seen.modality is not modality and seen.scene and abs(t_ns - seen.t_ns) <= WINDOW_NS:
                return True
        return False
