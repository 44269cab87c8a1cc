"""A full disk under the spool: every frame still gets a decision record (error:storage), replay finishes its
summary and report, the daemon keeps running. A real tmpfs of a few hundred KB is mounted for the spool."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_support import daemon_config, make_video, running, wait_for

from agent.app import App
from agent.pipeline import ERROR_STORAGE

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (no CAP_SYS_ADMIN?): {done.stderr.strip()[:200]}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)


def test_replay_onto_a_full_disk_records_every_frame_and_finishes(small_disk: Path, tmp_path: Path,
                                                                  sample_drive: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(f"spool:\n  path: {small_disk / 'spool'}\n")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "agent", "replay", str(sample_drive), "--out", str(out),
                           "--config", str(config), "-q"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(line) for line in (out / "decisions.jsonl").read_text().splitlines()]
    assert len(records) == summary["frames_in"] == 47  # every frame of the drive has its record
    failed = [r for r in records if r["rule"] == ERROR_STORAGE]
    assert failed and summary["by_rule"][ERROR_STORAGE] == len(failed)
    assert all(not r["kept"] and r["verdict"] == "error" and "space" in r["error"] + "full" for r in failed)
    assert summary["frames_kept"] >= 1 and (out / "report.html").stat().st_size > 0


def test_daemon_on_a_full_disk_keeps_deciding(small_disk: Path, tmp_path: Path) -> None:
    video = make_video(tmp_path / "cam.avi", frames=40, fps=30.0)
    config = daemon_config(tmp_path, [{"type": "video", "name": "cam", "path": str(video), "loop": True}],
                           policy={"camera": {"coverage_every_s": 0.001}})  # keep (nearly) every frame
    config = config.model_copy(update={"spool": config.spool.model_copy(update={"path": str(small_disk / "sp")})})
    app = App(config)
    with running(app):
        errors = app.metrics.decisions.labels("cam", "false", ERROR_STORAGE)
        wait_for(lambda: errors._value.get() >= 3, 30, "storage errors recorded as decisions")
        seen = app.metrics.frames_in.labels("cam")._value.get()
        wait_for(lambda: app.metrics.frames_in.labels("cam")._value.get() > seen + 5, 10, "the daemon to go on")
