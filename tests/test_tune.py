"""edgesift tune: the sweep simulates exactly what replay keeps, suggestions meet their budget when replayed,
baselines are held to the same budget, labels are read and bad ones refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from agent.config.model import AgentConfig
from agent.frame import Modality
from agent.replay.runner import run_replay
from agent.tune.baselines import run_baselines
from agent.tune.cache import score_recording
from agent.tune.simulate import LABEL_CODE, simulate
from agent.tune.sweep import base_knobs

CODES = {label.value: code for label, code in LABEL_CODE.items()}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, timeout=300)


def _decisions(out: Path) -> dict[tuple[str, int], dict]:
    rows = [json.loads(line) for line in (out / "decisions.jsonl").read_text().splitlines()]
    return {(r["sensor"], r["seq"]): r for r in rows}


CONFIGS = {
    "default": {},
    # Tight budgets: frames displaced by higher scores later in the window, and coverage frames forced in.
    "budgeted": {"policy": {"camera": {"coverage_every_s": 0.5, "keep_min_score": 0.6,
                                       "budget": {"frames_per_min": 6}},
                            "lidar": {"budget": {"mb_per_min": 3.0}}},
                 "scoring": {"camera": {"redundant_max_distance": 0.25}}},
    "proxy": {"scoring": {"kind": "proxy"}},
    "hybrid": {"scoring": {"kind": "hybrid"}},
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_sweep_simulation_keeps_exactly_what_replay_keeps(name: str, sample_drive: Path, tmp_path: Path) -> None:
    config = AgentConfig.model_validate(CONFIGS[name])
    run_replay([str(sample_drive)], tmp_path / "replay", config, progress=False)
    decisions = _decisions(tmp_path / "replay")
    cache = score_recording([str(sample_drive)], config, baselines=False, progress=False)
    assert len(cache.frames) == len(decisions)
    dropped_by_rule = 0
    for modality in Modality:
        idx = cache.of(modality)
        outcome = simulate(cache.frames, idx, base_knobs(config, cache.scorer, modality), config.scoring.memory_size)
        for j, i in enumerate(idx):
            frame = cache.frames[i].frame
            want = decisions[(frame.sensor, frame.seq)]
            assert (bool(outcome.kept[j]), int(outcome.verdict[j])) == (want["kept"], CODES[want["verdict"]]), want
            assert outcome.rules[j] == want["rule"], want
            dropped_by_rule += outcome.rules[j] in ("drop:over_budget", "drop:displaced", "drop:low_score")
    if name == "budgeted":
        assert dropped_by_rule > 0  # the budget and minimum score really were exercised


def test_tune_suggestion_meets_the_target_when_replayed(sample_drive: Path, tmp_path: Path) -> None:
    out = tmp_path / "tune"
    done = _cli("tune", str(sample_drive), "--out", str(out), "--target-mb-per-hour", "5000", "-q")
    assert done.returncode == 0, done.stderr
    assert "suggested:" in done.stdout and "report:" in done.stdout
    result = json.loads((out / "sweep.json").read_text())
    assert result["labels"]["pseudo"]  # no labels beside the sample drive: the current verdicts stand in
    suggested = result["suggested"]
    assert suggested["mb_per_hour"] <= 5000 < result["current"]["mb_per_hour"]
    html = (out / "sweep.html").read_text()
    assert "<svg" in html and "http" not in html.replace("http://www.w3.org", "")
    # The suggested config is valid, raises the version, and a replay with it keeps what the sweep predicted.
    assert _cli("config", "validate", str(out / "suggested.yaml")).returncode == 0
    data = yaml.safe_load((out / "suggested.yaml").read_text())
    assert data["version"] == 1
    summary = run_replay([str(sample_drive)], tmp_path / "check", AgentConfig.model_validate(data), progress=False)
    # tune counts stored bytes (what the spool holds), as the replay does in bytes_stored
    assert (summary["frames_kept"], summary["bytes_stored"]) == (suggested["kept"], suggested["bytes_kept"])
    assert summary["bytes_stored"] == summary["spool"]["bytes"]


def test_baselines_are_held_to_ours_frame_budget(sample_drive: Path) -> None:
    config = AgentConfig()
    cache = score_recording([str(sample_drive)], config, baselines=True, progress=False)
    budgets = {Modality.CAMERA: 5, Modality.LIDAR: 3}
    chosen = run_baselines(cache, budgets)
    assert chosen["keep-all"].all()
    for method in ("uniform", "reducto-pixel", "reducto-edge", "uncertainty"):
        for modality, budget in budgets.items():
            kept = int(chosen[method][cache.of(modality)].sum())
            assert 0 < kept <= budget, (method, modality, kept)
    camera = np.flatnonzero(chosen["uniform"][cache.of(Modality.CAMERA)])
    assert np.ptp(np.diff(camera)) <= 1  # evenly spread
    # Frames whose features could not be computed (undecodable) are never picked by differencing.
    assert all(cache.frames[i].features.grey is not None for i in np.flatnonzero(chosen["reducto-pixel"]))


def test_labels_are_joined_and_scored(sample_drive: Path, tmp_path: Path) -> None:
    config = AgentConfig()
    run_replay([str(sample_drive)], tmp_path / "replay", config, progress=False)
    decisions = _decisions(tmp_path / "replay")
    # Labels that say exactly what the default replay decided: the current config scores 100% against them.
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"sensor": s, "seq": q, "label": r["verdict"], "fault": None}) + "\n"
                              for (s, q), r in decisions.items()))
    done = _cli("tune", str(sample_drive), "--out", str(tmp_path / "t"), "--labels", str(labels), "--no-baselines",
                "-q")
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "t" / "sweep.json").read_text())
    assert result["labels"]["matched"] == len(decisions)
    helpful = [r for r in decisions.values() if r["verdict"] == "helpful"]
    assert result["current"]["helpful_kept"] == round(sum(r["kept"] for r in helpful) / len(helpful), 4)
    assert result["current"]["harmful_caught"] == 1.0


def test_bad_labels_and_unreachable_targets_are_one_line_errors(sample_drive: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"sensor": "x", "seq": 0, "label": "helpful"}\n{"sensor": "x", "seq": "one"}\n')
    done = _cli("tune", str(sample_drive), "--out", str(tmp_path / "a"), "--labels", str(labels), "-q")
    assert done.returncode == 1
    assert "labels.jsonl:2" in done.stderr and "Traceback" not in done.stderr
    done = _cli("tune", str(sample_drive), "--out", str(tmp_path / "b"), "--target-keep-rate", "0.001",
                "--no-baselines", "-q")
    assert done.returncode == 1 and "no setting in the sweep meets the target" in done.stderr
    assert "lowest any swept setting reaches while keeping frames" in done.stderr
    assert not (tmp_path / "b" / "suggested.yaml").exists()
    # 1 MB/h is met only by keeping nothing: that is no suggestion either (it used to write one, exit 0).
    done = _cli("tune", str(sample_drive), "--out", str(tmp_path / "b"), "--target-mb-per-hour", "1",
                "--no-baselines", "-q")
    assert done.returncode == 1 and "no suggestion written" in done.stderr
    assert not (tmp_path / "b" / "suggested.yaml").exists()
    assert json.loads((tmp_path / "b" / "sweep.json").read_text())["best_reachable"]["mb_per_hour"] > 1
    # A reachable target into the same folder suggests (reusing the scores); an unreachable one again removes it.
    assert _cli("tune", str(sample_drive), "--out", str(tmp_path / "b"), "--target-keep-rate", "0.9",
                "--no-baselines", "-q").returncode == 0
    assert (tmp_path / "b" / "suggested.yaml").exists()
    assert _cli("tune", str(sample_drive), "--out", str(tmp_path / "b"), "--target-keep-rate", "0.001",
                "--no-baselines", "-q").returncode == 1
    assert not (tmp_path / "b" / "suggested.yaml").exists()
    done = _cli("tune", str(sample_drive), "--out", str(tmp_path / "c"), "--target-keep-rate", "1.5")
    assert done.returncode == 2 and "keep rate" in done.stderr


@pytest.fixture(scope="module")
def labelled_drive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from make_eval_drive import build_drive

    out = tmp_path_factory.mktemp("evaldrive")
    build_drive(out, source="sample", minutes=0.5, idle_fraction=0.6, seed=1)
    return out


def test_tune_on_a_labelled_drive_compares_with_baselines_at_equal_budget(labelled_drive: Path, tmp_path: Path) -> None:
    done = _cli("tune", str(labelled_drive / "drive.mcap"), "--out", str(tmp_path / "t"), "-q")
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "t" / "sweep.json").read_text())
    assert result["labels"]["path"].endswith("labels.jsonl")  # found beside the drive
    assert result["labels"]["matched"] == result["frames"]
    table = {row["method"]: row for row in result["baselines"]}
    ours = table.pop("edgesift (current config)")
    assert set(table) == {"keep-all", "uniform", "reducto-pixel", "reducto-edge", "uncertainty"}
    assert table.pop("keep-all")["helpful_kept"] == 1.0
    for name, row in table.items():
        assert row["kept"] <= ours["kept"], name  # equal budget (differencing may land just under it)
        assert ours["helpful_kept"] >= row["helpful_kept"], (name, ours, row)
    assert set(ours["harmful_caught_by_fault"]) >= {"blur", "frozen", "overexposed", "underexposed", "nonfinite"}
    print({row["method"]: (row["helpful_kept"], row["harmful_caught"]) for row in result["baselines"]})


def test_scores_are_reused_only_for_the_same_inputs_and_scoring_config(sample_drive: Path, tmp_path: Path) -> None:
    import os
    import shutil

    from agent.tune.runner import run_tune
    from agent.tune.sweep import Target

    drive = tmp_path / "drive.mcap"
    shutil.copy(sample_drive, drive)
    out = tmp_path / "t"
    config = AgentConfig()
    first = run_tune([str(drive)], out, config, Target(), baselines=False, progress=False)
    again = run_tune([str(drive)], out, config, Target(4000.0), baselines=False, progress=False)
    assert not first["timing"]["scores_reused"] and again["timing"]["scores_reused"]
    assert again["current"] == first["current"]  # the same verdicts, without scoring again
    other = AgentConfig.model_validate({"scoring": {"camera": {"blur_min_sharpness": 80.0}}})
    assert not run_tune([str(drive)], out, other, Target(), baselines=False, progress=False)["timing"]["scores_reused"]
    stat = drive.stat()
    os.utime(drive, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the recording changed on disk
    assert not run_tune([str(drive)], out, other, Target(), baselines=False, progress=False)["timing"]["scores_reused"]
    (out / "scores.cache").write_bytes(b"not a cache")  # a damaged cache is ignored and rewritten
    assert not run_tune([str(drive)], out, other, Target(), baselines=False, progress=False)["timing"]["scores_reused"]
    assert run_tune([str(drive)], out, other, Target(), baselines=False, progress=False)["timing"]["scores_reused"]


def test_scores_made_by_other_code_are_not_reused(sample_drive: Path, tmp_path: Path, monkeypatch) -> None:
    # The version string changes at a release only; a check changed in between (a pulled checkout) must score
    # again, or tune would sweep the old code's verdicts while replay gives the new code's.
    import shutil

    from agent import fingerprint
    from agent.corpus.manifest import Drive
    from agent.corpus.runner import drive_key
    from agent.tune.runner import run_tune
    from agent.tune.sweep import Target

    drive = tmp_path / "drive.mcap"
    shutil.copy(sample_drive, drive)
    out, config = tmp_path / "t", AgentConfig()
    assert not run_tune([str(drive)], out, config, Target(), baselines=False, progress=False)["timing"]["scores_reused"]
    corpus_drive = Drive(id="d", vehicle="v", inputs=(str(drive),))
    key = drive_key(corpus_drive, {}, "replay", {}, [])
    monkeypatch.setattr(fingerprint, "code_fingerprint", lambda: "other code")
    assert not run_tune([str(drive)], out, config, Target(), baselines=False, progress=False)["timing"]["scores_reused"]
    assert drive_key(corpus_drive, {}, "replay", {}, []) != key  # a finished corpus drive is replayed again too


def test_the_code_fingerprint_changes_with_any_source_file(tmp_path: Path) -> None:
    from agent.fingerprint import fingerprint

    (tmp_path / "sub").mkdir()
    (tmp_path / "a.py").write_text("X = 1\n")
    (tmp_path / "sub" / "b.py").write_text("Y = 2\n")
    (tmp_path / "notes.txt").write_text("not code")
    first = fingerprint(tmp_path)
    (tmp_path / "notes.txt").write_text("still not code")
    assert fingerprint(tmp_path) == first
    (tmp_path / "sub" / "b.py").write_text("Y = 3\n")
    assert fingerprint(tmp_path) != first
