"""Corpus replay: manifest, identity across the inline run, the local pool and assess-ahead threads, resume after
an interruption, and a bad drive that does not stop the others."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, SAMPLE_DRIVE
from corpus_support import corpus_config, corpus_drives, corpus_files, decisions_of, write_config, write_manifest

from agent.config.model import AgentConfig
from agent.corpus.manifest import Drive, load_manifest
from agent.corpus.runner import input_files, largest_first, run_corpus
from agent.errors import ConfigError
from agent.replay.runner import DECISIONS, run_replay


def test_manifest_jsonl_and_yaml_resolve_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    jsonl = tmp_path / "d" / "m.jsonl"
    jsonl.write_text('# a comment\n{"id": "a-1", "vehicle": "v1", "inputs": ["x.mcap"], "condition": "night"}\n\n'
                     '{"id": "b", "inputs": ["/abs/y.mcap"], "labels": "l.jsonl"}\n', encoding="utf-8")
    yaml_file = tmp_path / "d" / "m.yaml"
    yaml_file.write_text("- {id: a-1, vehicle: v1, inputs: [x.mcap], condition: night}\n"
                         "- {id: b, inputs: [/abs/y.mcap], labels: l.jsonl}\n", encoding="utf-8")
    for path in (jsonl, yaml_file):
        drives = load_manifest(path)
        assert [d.id for d in drives] == ["a-1", "b"]
        assert drives[0].inputs == (str(tmp_path / "d" / "x.mcap"),)
        assert drives[0].condition == "night" and drives[1].vehicle == "unknown"
        assert drives[1].inputs == ("/abs/y.mcap",) and drives[1].labels == str(tmp_path / "d" / "l.jsonl")


@pytest.mark.parametrize(("text", "message"), [
    ('{"id": "../x", "inputs": ["a"]}\n', "drive id"),
    ('{"id": "a", "inputs": []}\n', "inputs"),
    ('{"id": "a", "inputs": ["a"], "colour": "red"}\n', "colour"),
    ('{"id": "a", "inputs": ["a"]}\n{"id": "a", "inputs": ["b"]}\n', "twice"),
    ('{"id": "a", "inputs": ["a"]\n', "not a JSON object"),
    ("\n", "no drives"),
])
def test_manifest_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_manifest(path)


def test_drives_are_handed_out_largest_first(tmp_path: Path) -> None:
    """A long drive started last ends alone while the other workers idle: the largest inputs go first, equal
    sizes and unreadable inputs in manifest order."""
    (tmp_path / "folder").mkdir()
    for name, size in (("small.mcap", 10), ("big.mcap", 5000), ("same.mcap", 10), ("folder/a.png", 3000),
                       ("folder/b.png", 3000)):
        (tmp_path / name).write_bytes(b"x" * size)
    drives = [Drive.model_validate({"id": i, "inputs": [str(tmp_path / p) for p in paths]}) for i, paths in
              (("small", ["small.mcap"]), ("gone", ["missing.mcap"]), ("big", ["big.mcap"]),
               ("same", ["same.mcap"]), ("folder", ["folder"]), ("two", ["big.mcap", "small.mcap"]))]
    files = {d.id: input_files(d) for d in drives}
    assert [d.id for d in largest_first(drives, files)] == ["folder", "two", "big", "small", "same", "gone"]


@pytest.mark.slow
def test_one_and_two_workers_decide_identically_and_a_missing_drive_is_reported(tmp_path: Path) -> None:
    drives = [Drive.model_validate(d) for d in corpus_drives(tmp_path)]
    drives.insert(1, Drive(id="missing", vehicle="ghost", inputs=(str(tmp_path / "nowhere.mcap"),)))
    config = corpus_config(tmp_path / "agent.yaml")
    one = run_corpus(drives, tmp_path / "w1", config, workers=1, progress=False)
    two = run_corpus(drives, tmp_path / "w2", config, workers=2, progress=False)
    assert (one.executor, two.executor) == ("inline", "local")
    ok = [d.id for d in drives if d.id != "missing"]
    assert sorted(decisions_of(tmp_path / "w1")) == sorted(ok)
    assert decisions_of(tmp_path / "w1") == decisions_of(tmp_path / "w2")
    for run in (one, two):
        failed = [r for r in run.results if not r["ok"]]
        assert [(r["id"], r["error"]) for r in failed] == [("missing", f"input not found: {tmp_path / 'nowhere.mcap'}")]
        assert all(r["frames_in"] > 0 for r in run.results if r["ok"])
    assert not list((tmp_path / "w2" / "drives").glob(".*"))  # no partial folders left


def test_assessing_ahead_in_threads_keeps_every_decision(tmp_path: Path) -> None:
    config = AgentConfig()
    run_replay([str(SAMPLE_DRIVE)], tmp_path / "inline", config, progress=False)
    run_replay([str(SAMPLE_DRIVE)], tmp_path / "ahead", config, progress=False, assess_threads=3)
    inline = (tmp_path / "inline" / DECISIONS).read_bytes()
    assert inline == (tmp_path / "ahead" / DECISIONS).read_bytes()
    assert (tmp_path / "inline" / "kept.mcap").read_bytes() == (tmp_path / "ahead" / "kept.mcap").read_bytes()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "agent", "replay", "-q", *args]


@pytest.mark.slow
def test_rerun_after_an_interruption_replays_only_what_was_missing(tmp_path: Path) -> None:
    drives, _, config = corpus_files(tmp_path)
    # The last drive's input is a FIFO: reading it blocks, so the interruption always comes before the last drive
    # is done, however fast the machine replays the others.
    gate = tmp_path / "gate.mcap"
    os.mkfifo(gate)
    drives.append({"id": "gated", "vehicle": "kitti-car", "inputs": [str(gate)]})
    manifest = write_manifest(tmp_path / "gated.jsonl", drives)
    out = tmp_path / "out"
    args = _cli("--manifest", str(manifest), "--out", str(out), "--config", str(config), "--workers", "1")
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(out.glob("drives/*/drive.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        # The FIFO is opened in a worker thread: the interrupted main thread then waits for it, so let it through.
        with contextlib.suppress(OSError):
            os.close(os.open(gate, os.O_WRONLY | os.O_NONBLOCK))
        proc.communicate(timeout=60)
    done_before = {p.parent.name for p in out.glob("drives/*/drive.json")}
    assert 1 <= len(done_before) < len(drives), "the interruption came after the first drive and before the last"
    gate.unlink()
    shutil.copyfile(SAMPLE_DRIVE, gate)
    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["drives"] == {"total": len(drives), "ok": len(drives), "failed": 0,
                                 "reused": len(done_before), "replayed": len(drives) - len(done_before)}
    reused = {d["id"] for d in summary["per_drive"] if d["reused"]}
    assert reused == done_before
    # The same command once more replays nothing; a changed config replays everything.
    again = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert f"0 replayed, {len(drives)} already done" in again.stdout
    config.write_text(config.read_text() + "policy:\n  camera:\n    keep_min_score: 0.6\n", encoding="utf-8")
    changed = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert f"{len(drives)} replayed, 0 already done" in changed.stdout, changed.stderr


def test_fleet_summary_and_report_cover_drives_vehicles_and_failures(tmp_path: Path) -> None:
    drives = [*corpus_drives(tmp_path)[:2], {"id": "bad", "vehicle": "v9", "inputs": [str(tmp_path / "x.txt")]},
              {"id": "cut", "vehicle": "v9", "inputs": [str(tmp_path / "cut.mcap")]}]
    (tmp_path / "x.txt").write_text("not a recording", encoding="utf-8")
    data = SAMPLE_DRIVE.read_bytes()
    (tmp_path / "cut.mcap").write_bytes(data[: len(data) // 4])  # power lost a quarter of the way in: 8 frames
    manifest = write_manifest(tmp_path / "m.jsonl", drives)
    out = tmp_path / "out"
    result = subprocess.run(_cli("--manifest", str(manifest), "--out", str(out), "--config",
                                 str(write_config(tmp_path / "agent.yaml"))),
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "failed: bad: " in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["drives"]["ok"] == 3 and summary["failed"][0]["id"] == "bad"
    # A damaged drive replays as far as it holds, and the fleet view names it with its first damaged stretch.
    assert [(d["id"], d["stretches"]) for d in summary["damaged"]] == [("cut", 1)]
    assert summary["damaged"][0]["first"].startswith("damaged record at byte"), summary["damaged"]
    per_drive = {d["id"]: d for d in summary["per_drive"]}
    assert summary["frames_in"] == sum(per_drive[i]["frames_in"] for i in ("sample", "kitti-png", "cut"))
    assert per_drive["cut"]["frames_in"] == 8 and per_drive["cut"]["skipped_by_reason"] == {"corrupt_recording": 1}
    assert set(summary["per_vehicle"]) == {"kitti-car", "v9"}
    for drive_id in ("sample", "kitti-png"):
        own = json.loads((out / "drives" / drive_id / "summary.json").read_text())
        assert own["frames_kept"] == per_drive[drive_id]["frames_kept"]
    # The sample drive's frame 77 is a truncated scan: a harmful verdict the fleet view carries.
    assert summary["by_verdict"]["harmful"] >= 1
    page = (out / "report.html").read_text()
    assert 'href="drives/sample/report.html"' in page and "Failed drives" in page and "bad" in page
    assert "Damaged recordings" in page and "<td>cut</td>" in page


def test_cli_refuses_both_inputs_and_a_manifest(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.jsonl", [{"id": "a", "inputs": [str(SAMPLE_DRIVE)]}])
    result = subprocess.run(_cli(str(SAMPLE_DRIVE), "--manifest", str(manifest), "--out", str(tmp_path / "o")),
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "not both" in result.stderr


def test_tune_over_a_corpus_of_one_drive_sweeps_as_tune_does_and_reports_groups(tmp_path: Path) -> None:
    from agent.corpus.tune import run_corpus_tune
    from agent.tune.runner import run_tune
    from agent.tune.sweep import Target

    config = corpus_config(tmp_path / "agent.yaml")
    target = Target(keep_rate=0.5)
    drives = [Drive.model_validate(d) for d in corpus_drives(tmp_path)[:2]]
    plain = run_tune([str(SAMPLE_DRIVE)], tmp_path / "plain", config, target, baselines=False, progress=False)
    one, _ = run_corpus_tune(drives[:1], tmp_path / "one", config, target, workers=1, baselines=False, progress=False)
    assert one["settings"] == plain["settings"] and one["suggested"] == plain["suggested"]
    both, run = run_corpus_tune(drives, tmp_path / "both", config, target, workers=2, baselines=False,
                                progress=False)
    assert run.executor == "local" and both["frames"] == sum(r["frames_in"] for r in run.results)
    assert set(both["per_vehicle"]) == {"kitti-car"} and set(both["per_condition"]) == {"unspecified"}
    group = both["per_vehicle"]["kitti-car"]["suggested"]
    assert group["kept"] == both["suggested"]["kept"]
    assert (tmp_path / "both" / "suggested.yaml").exists()
    assert "Per vehicle and per condition" in (tmp_path / "both" / "sweep.html").read_text()
    again, rerun = run_corpus_tune(drives, tmp_path / "both", config, target, workers=2, baselines=False,
                                   progress=False)
    assert rerun.reused == 2 and again["settings"] == both["settings"]


def test_harmful_streaks_are_the_longest_run_per_sensor(tmp_path: Path) -> None:
    from agent.corpus.job import harmful_streaks

    verdicts = {"cam": "HHUHHHHHUH", "velo": "UUUU"}
    lines = [json.dumps({"sensor": sensor, "t_ns": 100 + i, "verdict": "harmful" if v == "H" else "useless"})
             for sensor, seq in verdicts.items() for i, v in enumerate(seq)]
    path = tmp_path / "decisions.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert harmful_streaks(path) == {"cam": {"frames": 5, "start_t_ns": 103}, "velo": {"frames": 0, "start_t_ns": 0}}


@pytest.mark.slow
def test_a_pool_worker_killed_mid_job_is_replaced_and_changes_nothing(tmp_path: Path) -> None:
    import psutil

    drives, manifest, config = corpus_files(tmp_path)
    reference = tmp_path / "ref"
    run_corpus([Drive.model_validate(d) for d in drives], reference, corpus_config(config), workers=1,
               progress=False)
    out = tmp_path / "out"
    proc = subprocess.Popen(_cli("--manifest", str(manifest), "--out", str(out), "--config", str(config),
                                 "--workers", "2"), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        # the pool's workers are forked by its fork server, a child of the command
        workers = [w for child in psutil.Process(proc.pid).children() for w in child.children()]
        if workers and list((out / "drives").glob(".*.partial")):  # a drive is being written
            killed = workers[0]
            killed.kill()
        time.sleep(0.02)
    stdout, stderr = proc.communicate(timeout=300)
    assert killed is not None, "no pool worker was seen running a drive"
    assert proc.returncode == 0, stderr
    assert "event=worker_lost" in stderr  # the pool broke, was rebuilt and its drives ran again
    assert decisions_of(out) == decisions_of(reference)
    assert f"{len(drives)} drives: {len(drives)} replayed, 0 already done, 0 failed" in stdout


def test_progress_bar_counts_drives_and_frames(tmp_path: Path, capsys) -> None:
    drives = [Drive(id=f"s{k}", vehicle="v", inputs=(str(SAMPLE_DRIVE),)) for k in range(2)]
    run_corpus(drives, tmp_path / "out", AgentConfig(), workers=1, progress=True)
    shown = capsys.readouterr().err.replace("\r", "\n")
    assert "2/2" in shown and "94 frames" in shown and "frames/s" in shown


def test_corpus_tune_keeps_the_honest_tune_exits(tmp_path: Path, capsys) -> None:
    """A corpus tune ends as plain tune does (issue 14): an unreachable target exits 1 with the best reachable
    figure and writes no suggestion; a reachable one writes version --base-version + 1; pseudo-labels are marked."""
    from agent.cli import main

    manifest = write_manifest(tmp_path / "m.jsonl", [{"id": "a", "inputs": [str(SAMPLE_DRIVE)]}])
    common = ["tune", "--manifest", str(manifest), "--out", str(tmp_path / "t"), "--config",
              str(write_config(tmp_path / "agent.yaml")), "--workers", "1", "--no-baselines", "-q"]
    assert main([*common, "--target-mb-per-hour", "0.001"]) == 1
    out, err = capsys.readouterr()
    assert "lowest any swept setting reaches" in err and "no suggestion written" in err
    assert "(pseudo-labels" in out and not (tmp_path / "t" / "suggested.yaml").exists()
    assert main([*common, "--target-keep-rate", "0.5", "--base-version", "7"]) == 0  # reuses the scores
    assert "version: 8" in (tmp_path / "t" / "suggested.yaml").read_text()


def test_replay_refuses_start_with_a_manifest(tmp_path: Path, capsys) -> None:
    from agent.cli import main

    manifest = write_manifest(tmp_path / "m.jsonl", [{"id": "a", "inputs": [str(SAMPLE_DRIVE)]}])
    assert main(["replay", "--manifest", str(manifest), "--out", str(tmp_path / "o"), "--start", "0"]) == 1
    assert "--start sets one replay's clock" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_returned_files_are_written_back_byte_for_byte(tmp_path: Path) -> None:
    """A Ray task's outputs travel as uint8 arrays (stored out of band); the driver writes exactly what was there."""
    import numpy as np

    from agent.corpus.job import _pack
    from agent.corpus.runner import _install

    src = tmp_path / "src"
    (src / "spool" / "blobs").mkdir(parents=True)
    contents = {"decisions.jsonl": b'{"a": 1}\n', "empty.txt": b"", "spool/blobs/x.bin": bytes(range(256)) * 999}
    for rel, data in contents.items():
        (src / rel).write_bytes(data)
    files = _pack(src)
    assert all(isinstance(v, np.ndarray) and v.dtype == np.uint8 for v in files.values())
    for array in files.values():  # what ray.get hands back: read-only views of the object store
        array.flags.writeable = False
    drives = tmp_path / "drives"
    drives.mkdir()
    _install(drives, {"id": "d1", "ok": True, "files": files}, "key")
    assert {str(p.relative_to(drives / "d1")): p.read_bytes() for p in (drives / "d1").rglob("*")
            if p.is_file() and p.name != "drive.json"} == contents


def test_a_task_that_returns_its_files_replays_in_memory_when_there_is_room(tmp_path: Path, monkeypatch) -> None:
    """A Ray task's own copy of the outputs is scratch: in /dev/shm where it has ample room (no fsync stalls), on
    disk otherwise; either way the returned files and decisions are those of a replay into the drive's folder."""
    from agent.corpus import job as job_module
    from agent.corpus.job import DriveJob, run_drive, scratch_dir
    from agent.corpus.runner import drive_config

    if not os.access("/dev/shm", os.W_OK):
        pytest.skip("no writable /dev/shm on this machine: tasks replay into the default temporary folder")
    config = drive_config(corpus_config(tmp_path / "agent.yaml"))
    drive = Drive(id="sample", vehicle="v", inputs=(str(SAMPLE_DRIVE),))
    returning = DriveJob(drive, config)
    assert scratch_dir(returning) == "/dev/shm"
    made: list[str | None] = []  # the parent folder of each scratch copy (TemporaryDirectory -> mkdtemp)
    real_mkdtemp = job_module.tempfile.mkdtemp

    def mkdtemp(suffix: str | None = None, prefix: str | None = None, dir: str | None = None) -> str:
        made.append(dir)
        return real_mkdtemp(suffix, prefix, dir)

    monkeypatch.setattr(job_module.tempfile, "mkdtemp", mkdtemp)
    in_memory = run_drive(returning)
    monkeypatch.setattr(job_module, "SCRATCH_MIN_FREE", 1 << 62)  # no room: the default temporary folder
    assert scratch_dir(returning) is None
    on_disk = run_drive(returning)
    assert made == ["/dev/shm", None]
    direct = run_drive(DriveJob(drive, config, dest=str(tmp_path / "direct")))
    assert in_memory["ok"] and on_disk["ok"] and direct["ok"]
    assert in_memory["decisions_sha256"] == on_disk["decisions_sha256"] == direct["decisions_sha256"]
    assert set(in_memory["files"]) == set(on_disk["files"]) == {
        str(p.relative_to(tmp_path / "direct")) for p in (tmp_path / "direct").rglob("*") if p.is_file()}


def test_a_pool_job_starts_its_fork_server_before_it_imports_the_agent() -> None:
    """The CLI module imports no config (pydantic) or replay code, so a corpus job can start the pool's fork server
    first: the server imports the replay code while the job imports its own (side by side on two cores)."""
    code = (
        "import argparse, sys, multiprocessing.forkserver as fs\n"
        "import agent.cli, agent.corpus.cli as corpus_cli\n"
        "assert 'agent.config' not in sys.modules and 'agent.replay.runner' not in sys.modules\n"
        "corpus_cli.start_pool_early(argparse.Namespace(ray=None, workers=1))\n"
        "assert fs._forkserver._forkserver_pid is None, 'one worker runs inline: no server'\n"
        "corpus_cli.start_pool_early(argparse.Namespace(ray=None, workers=2))\n"
        "assert fs._forkserver._forkserver_pid, 'no fork server started'\n"
        "from agent.processes import CORPUS_PRELOAD\n"
        "assert fs._forkserver._preload_modules == CORPUS_PRELOAD\n"
        "assert 'agent.config' not in sys.modules, 'the server imports the agent, not the job'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
