"""SnippetKeeper on the sample drive's real frames with hand-made outcomes, and snippets through replay."""

from __future__ import annotations

import heapq
import json
from pathlib import Path

import pytest
from conftest import sample_frames

from agent.config import AgentConfig
from agent.config.daemon import SnippetConfig
from agent.daemon.snippets import RULE_SNIPPET, SnippetKeeper
from agent.frame import Frame
from agent.pipeline import Outcome, frame_id_of
from agent.replay.runner import run_replay
from agent.scoring.base import Label, Verdict

NS = 1_000_000_000


def _drive() -> list[Frame]:
    cams, scans = sample_frames("camera")[:30], sample_frames("lidar")[:15]
    return list(heapq.merge(cams, scans, key=lambda f: f.t_ns))


def _outcome(frame: Frame, kept: bool = False, label: Label = Label.USELESS, score: float = 0.1) -> Outcome:
    record = {"frame_id": frame_id_of(frame), "kept": kept, "sensor": frame.sensor}
    return Outcome(record, Verdict(label, score, ("test",)), {})


def _run(keeper: SnippetKeeper, frames: list[Frame], triggers: set[int]) -> dict[str, str]:
    """Feed frames (those at `triggers` positions helpful 0.95 and kept); return frame id -> trigger id."""
    kept: dict[str, str] = {}
    for i, frame in enumerate(frames):
        outcome = _outcome(frame, True, Label.HELPFUL, 0.95) if i in triggers else _outcome(frame)
        for keep in keeper.offer(frame, outcome):
            assert keep.frame_id not in kept, "a frame is kept once"
            kept[keep.frame_id] = keep.trigger
    return kept


def test_window_holds_every_sensor_from_pre_to_post() -> None:
    frames = _drive()
    trig = next(i for i, f in enumerate(frames) if f.sensor == "cam" and f.seq == 15)
    t0 = frames[trig].t_ns
    keeper = SnippetKeeper(SnippetConfig(enabled=True, pre_s=0.45, post_s=0.35))
    kept = _run(keeper, frames, {trig})
    expected = {frame_id_of(f) for i, f in enumerate(frames)
                if i != trig and t0 - 450_000_000 <= f.t_ns <= t0 + 350_000_000}
    assert set(kept) == expected
    assert {f.sensor for f in frames if frame_id_of(f) in kept} == {"cam", "velo"}
    assert set(kept.values()) == {frame_id_of(frames[trig])}
    assert keeper.stats.triggers == 1 and keeper.stats.windows == 1 and keeper.stats.overflow == 0


def test_overlapping_windows_merge_and_credit_the_nearest_trigger() -> None:
    frames = _drive()
    cams = [i for i, f in enumerate(frames) if f.sensor == "cam"]
    first, second = cams[10], cams[14]  # 0.4 s apart: windows of +-0.3 s overlap
    keeper = SnippetKeeper(SnippetConfig(enabled=True, pre_s=0.3, post_s=0.3))
    kept = _run(keeper, frames, {first, second})
    assert keeper.stats.windows == 1 and keeper.stats.triggers == 2
    lo, hi = frames[first].t_ns - 300_000_000, frames[second].t_ns + 300_000_000
    assert set(kept) == {frame_id_of(f) for i, f in enumerate(frames)
                         if i not in (first, second) and lo <= f.t_ns <= hi}
    # credited to the trigger that kept it: the first until the second arrived, the second after it
    for frame in frames:
        fid = frame_id_of(frame)
        if fid in kept and frame.t_ns < frames[first].t_ns:
            assert kept[fid] == frame_id_of(frames[first])
        elif fid in kept and frame.t_ns > frames[second].t_ns:
            assert kept[fid] == frame_id_of(frames[second])


def test_sensor_filters_and_disabled_keeper() -> None:
    frames = _drive()
    trig = next(i for i, f in enumerate(frames) if f.sensor == "velo" and f.seq == 7)
    only_cam_triggers = SnippetKeeper(SnippetConfig(enabled=True, trigger_sensors=["cam"]))
    assert _run(only_cam_triggers, frames, {trig}) == {}
    lidar_only = SnippetKeeper(SnippetConfig(enabled=True, sensors=["velo"], pre_s=1.0, post_s=1.0))
    kept = _run(lidar_only, frames, {trig})
    assert kept and all("-velo-" in fid for fid in kept)
    assert _run(SnippetKeeper(SnippetConfig(enabled=False)), frames, {trig}) == {}


def test_ring_buffer_is_bounded_in_memory_and_counts_overflow() -> None:
    frames = _drive()
    keeper = SnippetKeeper(SnippetConfig(enabled=True, pre_s=5.0, post_s=0.0, buffer_mb=1.0))
    _run(keeper, frames[:-1], set())
    assert keeper.stats.buffered_bytes <= 1 * 2**20
    assert keeper.stats.overflow > 0  # 5 s of pre-trigger data does not fit in 1 MB


def test_refused_trigger_is_kept_by_its_own_snippet() -> None:
    frames = _drive()
    keeper = SnippetKeeper(SnippetConfig(enabled=True, pre_s=0.1, post_s=0.0))
    out = keeper.offer(frames[5], _outcome(frames[5], False, Label.HELPFUL, 0.99))  # over budget, say
    assert [k.frame_id for k in out] == [frame_id_of(frames[5])]


@pytest.mark.slow
def test_replay_keeps_snippet_windows(tmp_path: Path, sample_drive: Path) -> None:
    config = AgentConfig.model_validate({
        "policy": {"camera": {"coverage_every_s": 0.0}, "lidar": {"coverage_every_s": 0.0}},
        "snippets": {"enabled": True, "trigger_min_score": 0.0, "trigger_sensors": ["nothing-matches"]},
    })
    base = run_replay([str(sample_drive)], tmp_path / "a", config, progress=False)
    on = config.model_copy(update={"snippets": SnippetConfig(enabled=True, trigger_min_score=0.0, pre_s=0.3,
                                                             post_s=0.3)})
    summary = run_replay([str(sample_drive)], tmp_path / "b", on, progress=False)
    records = [json.loads(line) for line in (tmp_path / "b" / "decisions.jsonl").read_text().splitlines()]
    snipped = [r for r in records if r["rule"] == RULE_SNIPPET]
    assert snipped and all(r["kept"] and r.get("trigger") for r in snipped)
    assert {r["sensor"] for r in snipped} >= {r["sensor"] for r in records} - {"nothing"}
    assert summary["frames_kept"] == sum(r["kept"] for r in records) > base["frames_kept"]
    # every window spans pre_s before to post_s after a trigger
    triggers = {r["frame_id"]: r["t_ns"] for r in records}
    assert all(-300_000_000 <= r["t_ns"] - triggers[r["trigger"]] <= 300_000_000 for r in snipped)
