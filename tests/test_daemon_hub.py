"""FrameHub: bounded lanes that shed by the configured rule and count, served fairly."""

from __future__ import annotations

from dataclasses import replace

from conftest import sample_frames

from agent.daemon.hub import FrameHub


def _frames(sensor: str, n: int) -> list:
    frame = sample_frames("camera")[0]
    return [replace(frame, sensor=sensor, seq=i) for i in range(n)]


def test_drop_oldest_keeps_the_freshest_and_drop_newest_the_first() -> None:
    shed: list[str] = []
    hub = FrameHub(on_shed=shed.append)
    hub.add_lane("old", 3, "drop_oldest")
    hub.add_lane("new", 3, "drop_newest")
    accepted = [hub.put(f) for f in _frames("old", 5)] + [hub.put(f) for f in _frames("new", 5)]
    assert accepted == [True] * 5 + [True, True, True, False, False]
    assert hub.shed() == {"old": 2, "new": 2} and sorted(shed) == ["new", "new", "old", "old"]
    assert hub.depths() == {"old": 3, "new": 3}
    taken = [hub.take(0.01) for _ in range(6)]
    assert [(f.sensor, f.seq) for f in taken] == [("old", 2), ("new", 0), ("old", 3), ("new", 1), ("old", 4),
                                                  ("new", 2)]
    assert hub.take(0.01) is None


def test_a_busy_sensor_does_not_starve_the_others_and_shards_split_lanes() -> None:
    hub = FrameHub()
    for name in ("a", "b", "c"):
        hub.add_lane(name, 100)
    for f in _frames("a", 50) + _frames("b", 2) + _frames("c", 2):
        hub.put(f)
    first = [hub.take(0.01).sensor for _ in range(6)]
    assert sorted(first) == ["a", "a", "b", "b", "c", "c"]
    for f in _frames("b", 3) + _frames("c", 3):
        hub.put(f)
    # lanes a (0) and c (2) belong to shard 0 of 2, lane b (1) to shard 1
    assert [hub.take(0.01, 1, 2).sensor for _ in range(3)] == ["b", "b", "b"]
    assert hub.take(0.01, 1, 2) is None
    assert {hub.take(0.01, 0, 2).sensor for _ in range(10)} == {"a", "c"}
