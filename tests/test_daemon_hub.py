"""FrameHub: bounded lanes that shed by the configured rule and count, served fairly."""

from __future__ import annotations

from dataclasses import replace

from conftest import sample_frames

from agent.daemon.hub import FrameHub
from agent.daemon.workers import ScoringLoop


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


def test_a_scoring_thread_that_measures_ahead_hands_on_the_next_frame_first_and_drains_it() -> None:
    """The frame after the one being judged is taken and given to `ahead` before that one is judged; every frame
    is judged once, in its sensor's order, the one held ahead included when the thread stops."""
    hub = FrameHub()
    for name in ("a", "b"):
        hub.add_lane(name, 100)
    events: list[tuple[str, str, int]] = []
    loop = ScoringLoop(hub, lambda f: events.append(("judge", f.sensor, f.seq)), 0, 1,
                       ahead=lambda f: events.append(("ahead", f.sensor, f.seq)))
    for f in _frames("a", 4) + _frames("b", 3):
        hub.put(f)
    loop.start()
    assert loop.stop(10.0)
    judged = [(s, q) for kind, s, q in events if kind == "judge"]
    assert sorted(judged) == sorted([("a", q) for q in range(4)] + [("b", q) for q in range(3)])
    assert [q for s, q in judged if s == "a"] == [0, 1, 2, 3] and [q for s, q in judged if s == "b"] == [0, 1, 2]
    for k, (kind, sensor, seq) in enumerate(events):
        if kind == "ahead":  # given ahead right before the frame taken before it is judged, and judged next
            assert events[k + 1][0] == "judge"
            assert next(e for e in events[k + 2:] if e[0] == "judge") == ("judge", sensor, seq)
    assert sum(kind == "ahead" for kind, _, _ in events) == len(judged) - 1
    assert hub.pending() == 0
