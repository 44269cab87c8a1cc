"""A corpus tune sizes its per-sensor budget candidates by the sensors that record at once over the corpus's
time, not by the most of any drive."""

from __future__ import annotations

import pytest

from agent.corpus.manifest import Drive
from agent.corpus.tune import join
from agent.frame import Frame, Modality
from agent.tune.cache import CachedFrame, ScoreCache
from agent.tune.sweep import Target, budget_candidates


def _drive_cache(cameras: int, seconds: int) -> ScoreCache:
    frames = []
    for s in range(seconds + 1):  # one frame per camera a second: the drive spans `seconds` s (+ one gap)
        for c in range(cameras):
            frame = Frame(f"cam{c}", Modality.CAMERA, s * 1_000_000_000, s, 100_000, "test")
            frames.append(CachedFrame(frame, None, None))  # type: ignore[arg-type]  # the join reads frames only
    return ScoreCache(frames)


def test_budget_candidates_follow_the_sensors_recording_over_the_corpus_time() -> None:
    six = _drive_cache(6, 9)  # a 6-camera drive of 10 s
    one = _drive_cache(1, 89)  # a 1-camera drive of 90 s
    corpus = join([(Drive(id="six", inputs=["x"]), six), (Drive(id="one", inputs=["y"]), one)])
    assert corpus.duration_s == pytest.approx(100.0)
    # 6 cameras for 10 s and 1 for 90 s: 1.5 cameras on average, not 6
    assert corpus.sensors_at_once(Modality.CAMERA) == pytest.approx(1.5)
    assert corpus.sensors_at_once(Modality.LIDAR) == 1.0
    target = Target(mb_per_hour=900.0)
    # all bytes are camera bytes: 900 MB/h over 1.5 cameras is 10 MB/min per camera (at the first budget share)
    assert budget_candidates(corpus, Modality.CAMERA, target)[0] == pytest.approx(10.0)
    # one drive alone: all its cameras record at once, as a one-drive tune has it
    alone = join([(Drive(id="six", inputs=["x"]), six)])
    assert alone.sensors_at_once(Modality.CAMERA) == six.sensors_at_once(Modality.CAMERA) == 6


def test_corpus_tune_names_vehicles_over_the_target_and_those_starved() -> None:
    from agent.corpus.cli import _uneven

    def row(mb: float, keep: float, helpful: float | None) -> dict:
        return {"suggested": {"mb_per_hour": mb, "keep_rate": keep, "helpful_kept": helpful}}

    result = {"per_vehicle": {"a": row(1139.2, 0.8, 0.92), "b": row(0.0, 0.0, 0.0), "c": row(300.0, 0.1, None),
                              "d": row(450.0, 0.2, 0.5)}}
    assert _uneven(result, Target(mb_per_hour=500.0)) == (
        "note: the target holds for the corpus as a whole; over it: a (1,139.2 MB/h)",
        "note: no helpful frame kept of vehicle b")
    assert _uneven(result, Target(keep_rate=0.5)) == (
        "note: the target holds for the corpus as a whole; over it: a (keep 80.0%)",
        "note: no helpful frame kept of vehicle b")
    assert _uneven({"per_vehicle": {"d": row(450.0, 0.2, 0.5)}}, Target(mb_per_hour=500.0)) == ()
