"""The leave-one-source-out choice of settings (scripts/evaluate_loso.py): a source's own figures never choose
the setting it is judged with, and a tie keeps the shipped value."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))


def _rows(recall: dict[str, float], false: dict[str, float] | None = None) -> dict[str, dict[str, float]]:
    false = false or {}
    return {n: {"recall": r, "false_harmful": false.get(n, 0.0), "shadowed_harmful": 0.0,
                "between_shadows_harmful": 0.0} for n, r in recall.items()}


def test_each_source_is_judged_with_the_setting_the_others_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    import evaluate_loso

    from agent.scoring import camera_checks

    shipped = (camera_checks.SWAP_MIN_CORR,)
    # "a" alone would pick 0.4 (its own recall), but the others prefer 0.8; 0.8 calls a valid frame of "c" harmful.
    grid = {(0.4,): _rows({"a": 1.0, "b": 0.5, "c": 0.5}),
            (0.8,): _rows({"a": 0.2, "b": 0.9, "c": 0.9}, {"c": 0.01}),
            shipped: _rows({"a": 0.5, "b": 0.5, "c": 0.5})}
    monkeypatch.setitem(evaluate_loso.GROUPS, "channel_swap", (("SWAP_MIN_CORR",), [(0.4,), (0.8,)], ("x",)))
    monkeypatch.setattr(evaluate_loso, "_grid_results", lambda names, points, kinds, max_items, cold=False: grid)
    out = evaluate_loso.loso("channel_swap", 1)
    chosen = {name: row["chosen"]["SWAP_MIN_CORR"] for name, row in out["per_source"].items()}
    # a: b and c prefer 0.8 (0.9 - 10 x 0.005 > 0.5); b: a and c tie 0.4 (0.75) against 0.8 (0.55 - 0.05);
    # c: a and b prefer 0.4 (0.75 > 0.55).
    assert chosen == {"a": 0.8, "b": 0.4, "c": 0.4}
    assert out["per_source"]["a"]["held_out"]["recall"] == 0.2  # its own figure under the others' choice


def test_a_tie_keeps_the_shipped_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    import evaluate_loso

    from agent.scoring import camera_checks

    shipped = (camera_checks.SWAP_MIN_CORR,)
    same = _rows({"a": 0.5, "b": 0.5})
    monkeypatch.setattr(evaluate_loso, "_grid_results",
                        lambda names, points, kinds, max_items, cold=False: {p: same for p in points})
    out = evaluate_loso.loso("channel_swap", 1)
    assert out["chosen_differs_from_shipped"] == 0
    assert all(row["chosen"]["SWAP_MIN_CORR"] == shipped[0] for row in out["per_source"].values())


def test_a_grid_point_sets_the_constant_the_checks_read_and_the_shipped_value_comes_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import evaluate_loso

    from agent.scoring import camera_baseline, camera_checks

    names = ("baseline.LEVEL_MAX_SPREAD", "NEW_SEAM_MIN")  # a constant of camera_baseline, one of camera_checks
    shipped = (camera_baseline.LEVEL_MAX_SPREAD, camera_checks.NEW_SEAM_MIN)
    seen = []

    def faults(*_: object) -> dict:
        seen.append((camera_baseline.LEVEL_MAX_SPREAD, camera_checks.NEW_SEAM_MIN))
        return {}

    monkeypatch.setattr(evaluate_loso, "camera_sources", lambda: [SimpleNamespace(name="s", load=list)])
    monkeypatch.setattr(evaluate_loso, "faults_in_stream", faults)
    monkeypatch.setattr(evaluate_loso, "valid", lambda *_: ({"false_harmful": 0.0}, []))
    monkeypatch.setattr(evaluate_loso, "shadowed", lambda *_: (0.0, 0.0))
    evaluate_loso._grid_results(names, [(2.5, 0.3)], ("tearing",), 1)
    assert seen == [(2.5, 0.3)]
    assert shipped == (camera_baseline.LEVEL_MAX_SPREAD, camera_checks.NEW_SEAM_MIN)


def test_the_clean_frames_between_shadows_count_against_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    # A check that the shadowed frames upset and that then calls the recording's own clean frames harmful: only
    # the shadowed frames were counted, so it went unseen (a whole-frame motion check tried on 2026-12-01 called
    # 16% of those clean frames harmful, 67-70% on four sources, while the shadowed frames stayed at 1.8%).
    import evaluate_loso
    import numpy as np
    from _field_data import Source

    from agent.scoring.base import Label, Verdict

    monkeypatch.setattr(evaluate_loso, "make", lambda kind, source: object())

    def judge(scorer: object, frame: object) -> Verdict:  # every clean frame after the first is called harmful
        harmful = frame.seq % 2 == 0 and frame.seq > 0  # type: ignore[attr-defined]
        return Verdict(Label.HARMFUL if harmful else Label.HELPFUL, 0.6, ("x",), None, {})

    monkeypatch.setattr(evaluate_loso, "judge", judge)
    items = [(f"{i:04d}.jpg", np.full((48, 64, 3), 100, np.uint8)) for i in range(5)]
    assert evaluate_loso.shadowed(Source("s", "camera", "day", lambda: items), items) == (0.0, 1.0)
    rows = _rows({"a": 0.5, "b": 0.5})
    assert evaluate_loso._objective(rows, ["a", "b"]) == 0.5
    rows["a"]["between_shadows_harmful"] = 0.1
    assert evaluate_loso._objective(rows, ["a", "b"]) == pytest.approx(0.0)  # 10 x the mean 0.05 off


def test_a_scorer_started_at_every_frame_judges_each_recordings_first_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    # What a prior for a view's first frames costs shows only where a stream starts: `valid` starts once.
    import _field_eval
    import evaluate_loso
    import numpy as np
    from _field_data import Source

    from agent.scoring.base import Label, Verdict

    monkeypatch.setattr(_field_eval, "make", lambda kind, source: [])

    def judge(scorer: list, frame: object) -> Verdict:  # a scorer's third frame is called harmful
        scorer.append(frame)
        return Verdict(Label.HARMFUL if len(scorer) == 3 else Label.HELPFUL, 0.6, ("x",), None, {})

    monkeypatch.setattr(_field_eval, "judge", judge)
    items = [(f"{i:04d}.jpg", np.full((48, 64, 3), 100, np.uint8)) for i in range(8)]
    out = _field_eval.cold_starts("heuristic", Source("s", "camera", "day", lambda: items), items)
    # starts at frames 0-6, each judging up to 6 frames: 6+6+6 + 5+4+3+2; a third frame in the first six starts
    assert out == {"starts": 7, "frames": 32, "false_harmful": round(6 / 32, 4), "reasons": {"x": 6}}
    stills = Source("t", "camera", "day", lambda: items, sequence=False)
    assert _field_eval.cold_starts("heuristic", stills, items) is None  # not a recording: no stream to start
    rows = _rows({"a": 0.5, "b": 0.5})
    rows["a"]["cold_start_harmful"] = 0.1
    assert evaluate_loso._objective(rows, ["a", "b"]) == pytest.approx(0.0)  # they count as valid frames do


def _verdicts(source: str, valid_p: float, fault_p: float, checks_catch: bool = False) -> list[tuple]:
    """Recorded hybrid verdicts of one camera source: 10 valid frames with head probability valid_p, 10 blurred
    ones with fault_p (the checks catch them or not); ood 0.2, inside every trust radius of the grid."""
    valid = [("camera", source, "valid", False, valid_p, 0.2)] * 10
    blur = [("camera", source, "blur", checks_catch, fault_p, 0.2)] * 10
    return valid + blur


def test_the_hybrid_operating_point_of_a_source_is_chosen_by_the_other_sources() -> None:
    from _field_data import Source
    from _field_sweep import DEFAULT, choose

    def source(name: str) -> Source:
        return Source(name, "camera", "day", lambda: [])

    # "odd" strongly prefers 0.6: its blurred frames reach only p 0.65, its valid frames stay at 0.1. "a" mildly
    # prefers 0.9: one of its 10 valid frames reaches 0.85. Pooled, 0.6 wins; but "odd" is judged at what "a"
    # chose (0.9) and misses its faults there, and "a" at what "odd" chose (0.6).
    records = _verdicts("odd", 0.1, 0.65) + _verdicts("a", 0.1, 0.95)
    records[20] = ("camera", "a", "valid", False, 0.85, 0.2)
    out = choose(records, [source(n) for n in ("odd", "a")], "camera")
    assert out["chosen_on_all_sources"][0] == 0.6
    assert out["per_source"]["odd"]["chosen"][0] == 0.9 and out["per_source"]["odd"]["recall_trained"] == 0.0
    assert out["per_source"]["a"]["chosen"][0] == 0.6 and out["per_source"]["a"]["false_harmful"] == 0.1
    # Where the head adds nothing (the checks catch every fault) and costs nothing, the default is kept.
    quiet = _verdicts("a", 0.1, 0.1, checks_catch=True) + _verdicts("b", 0.1, 0.1, checks_catch=True)
    out = choose(quiet, [source("a"), source("b")], "camera")
    assert all(tuple(row["chosen"]) == DEFAULT for row in out["per_source"].values())


@pytest.mark.shared
def test_the_field_evaluation_judges_a_video_as_one_stream_and_can_score_it_at_its_own_size(shared_data: Path) -> None:
    # Named "x.mp4#N", a video's frames were taken for unrelated stills and judged without their history.
    import _field_data
    from _field_eval import valid

    from agent.sources.images import numbered_sequence

    source = next(s for s in _field_data.camera_sources() if s.name == "highway_video_2")
    saved = _field_data.EVAL_WIDTH
    _field_data.EVAL_WIDTH = 1 << 30
    try:
        items = source.load()
    finally:
        _field_data.EVAL_WIDTH = saved
    assert numbered_sequence([name for name, _ in items])
    assert items[0][1].shape[1] == 1280  # the recording's own size
    row, _ = valid("heuristic", source, items)
    assert row["frames"] == 38 and row["false_harmful"] == 0.0, row  # 2 were `occluded` before the sudden-cover rule


@pytest.mark.shared
@pytest.mark.parametrize(("prior", "harmful"), [(None, 0), (0.35, 2)])
def test_no_first_frames_of_a_highway_video_are_torn_wherever_its_stream_starts(
        prior: float | None, harmful: int, shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The second highway video's lower rows break the most of any valid camera (0.595 mid-drive): a scorer started
    # at any of its frames must not call its first frames torn. A lower first-frames bar (0.35: 0.55), which every
    # leave-one-source-out choice prefers for two more tears, calls two of them harmful.
    import _field_data
    from _field_eval import cold_starts

    from agent.scoring import camera_motion

    if prior is not None:
        monkeypatch.setattr(camera_motion, "BREAK_PRIOR", prior)
    source = next(s for s in _field_data.camera_sources() if s.name == "highway_video_2")
    out = cold_starts("heuristic", source, source.load())
    assert out is not None and out["frames"] == 212
    assert round(out["false_harmful"] * out["frames"]) == harmful, out


@pytest.mark.shared
@pytest.mark.parametrize(("prior", "torn"), [(None, []), (0.0, [42, 57])])
def test_an_upright_edge_in_a_views_first_frame_is_not_a_tear(
        prior: float | None, torn: list[int], shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two CamVid frames at dusk have the strongest, most mixed vertical seams of any valid frame (a building's
    # corner): a scorer that starts at one of them has no seams of the view to hold it to. Without the prior (0),
    # both were called torn.
    import _field_data
    from _field_eval import frame_of, make

    from agent.scoring import camera_baseline
    from agent.scoring.base import Label

    if prior is not None:
        monkeypatch.setattr(camera_baseline, "VSEAM_PRIOR", prior)
    source = next(s for s in _field_data.camera_sources() if s.name == "camvid_dusk_uk")
    items = source.load()
    called = [i for i in (41, 42, 57) if make("heuristic", source).score(frame_of(source, items[i][1], "cam", i)).label
              is Label.HARMFUL]
    assert called == torn


@pytest.mark.parametrize("name", ["{:04d}.bin", "capture.pcap#{}"])  # a pcap's scans are a recording too
@pytest.mark.parametrize("frames", [30, 12])
def test_the_field_evaluation_judges_each_fault_after_the_recordings_own_frames(monkeypatch: pytest.MonkeyPatch,
                                                                                 frames: int, name: str) -> None:
    # A faulted frame used to follow a clean copy of itself: history no vehicle has. Now each follows the frames
    # before it in the recording; faults too close for one pass (a short recording) get a pass each.
    import _field_eval
    from _field_data import Source
    from conftest import sample_frames

    from agent.scoring.base import Label, Verdict

    images = [f.array for f in sample_frames("lidar")[:2]] * (frames // 2)
    items = [(name.format(i), scan + i * 1e-3) for i, scan in enumerate(images)]  # each frame its own
    source = Source("t", "lidar", "day", lambda: items)
    passes: list[list[bytes]] = []
    monkeypatch.setattr(_field_eval, "make", lambda kind, src: passes.append([]) or object())

    def judge(scorer: object, frame: object) -> Verdict:
        passes[-1].append(frame.array.tobytes())  # type: ignore[attr-defined]
        return Verdict(Label.HELPFUL, 0.6, ("novel",), None, {})

    monkeypatch.setattr(_field_eval, "judge", judge)
    out = _field_eval.faults_in_stream("heuristic", source, items, 7, 10, ("sparse",))
    assert out == {"sparse": 0.0}
    clean = [scan.tobytes() for _, scan in items]
    faulted = [[k for k, b in enumerate(run) if b != clean[k]] for run in passes]
    at = [k for run in faulted for k in run]
    assert len(at) == 10 and min(at) >= 1 and len(set(at)) == 10  # 10 faults, none on the first frame
    for run, bad in zip(passes, faulted, strict=True):
        assert run[: bad[0]] == clean[: bad[0]]  # the recording itself up to the first fault of the pass
        assert len(run) == bad[-1] + 1  # and no clean copy of a faulted frame anywhere
    assert len(passes) == (1 if frames == 30 else 10)


def test_the_evaluation_reads_stills_as_replay_does_and_a_pcaps_scans_as_a_recording() -> None:
    import numpy as np
    from _field_data import Source
    from _field_eval import read_as_stills

    def source(modality: str) -> Source:
        return Source("s", modality, "day", lambda: [])

    scan = np.zeros((1, 4), np.float32)
    assert read_as_stills(source("camera"), [("0ace96c3-48481887.jpg", None), ("3c0e7240-96e390d2.jpg", None)])
    assert not read_as_stills(source("camera"), [("0001TP_006690.jpg", None), ("0001TP_006720.jpg", None)])
    assert read_as_stills(source("lidar"), [("40p_1673400149711850138.bin", scan), ("vls128_158589725.bin", scan)])
    # One capture file's scans share its name: not numbered files, but one recording (replay reads a pcap so).
    assert not read_as_stills(source("lidar"), [("vlp16.pcap#0", scan, {}), ("vlp16.pcap#1", scan, {})])


def test_rare_ranking_is_reported_per_condition_not_only_pooled() -> None:
    """A dusk drive ranked far up must not hide rain frames left at the bottom: the pooled ratio passes here while
    rain gets none of the kept frames, and the per-condition figures say so."""
    from _field_eval import rare_ranking

    scores = {"dusk": [(1.0, True)] * 10, "rain": [(0.6, False)] * 10, "day": [(0.5, False)] * 80}
    adverse = {"dusk": True, "rain": True, "day": False}
    out = rare_ranking(scores, adverse, conditions={"dusk": "dusk", "rain": "rain", "day": "day"})
    assert out["ratio"] == 5.0  # 20% adverse in the input, all 10 kept frames adverse
    assert out["per_condition"]["rain"] == {"frames": 10, "share_input": 0.1, "share_kept": 0.0, "ratio": 0.0,
                                            "reach": 0.0, "flagged_rare": 0.0}
    assert out["per_condition"]["dusk"]["ratio"] == 10.0 and out["per_condition"]["dusk"]["flagged_rare"] == 1.0
    assert set(out["per_source"]) == {"dusk", "rain", "day"}
    # ties at the cut-off: all of them reach it, whichever input order kept
    tied = rare_ranking({"a": [(1.0, True)] * 10, "b": [(1.0, True)] * 10, "c": [(0.5, False)] * 80},
                        {"a": True, "b": True, "c": False}, conditions={"a": "dusk", "b": "rain", "c": "day"})
    assert tied["per_condition"]["rain"]["share_kept"] == 0.0 and tied["per_condition"]["rain"]["reach"] == 1.0
    assert tied["reach_all"] == 0.2
    assert "per_condition" not in rare_ranking(scores, adverse)
