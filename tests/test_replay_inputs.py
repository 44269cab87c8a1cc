"""Replay as a new user runs it on the recordings a team has: one timeline across clocks, stored-byte figures that
match the spool, and commands that fail fast and in one line when they did nothing."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _sources_fixtures import SHARED, VIDEO, shared_data
from mcap.reader import make_reader

VLP16_BAG = SHARED / "bags" / "nebula_velodyne_vlp16" / "1673400471837873222"


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, timeout=timeout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one_line_error(done: subprocess.CompletedProcess[str], text: str) -> None:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and text in done.stderr
    assert len([line for line in done.stderr.splitlines() if line.startswith("edgesift: error")]) == 1


@shared_data
def test_video_and_bag_share_one_timeline_and_stored_bytes_match_the_spool(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = _cli("replay", str(VIDEO), str(VLP16_BAG), "--out", str(out), "-q")
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    # The video (no wall clock) starts with the bag (2023-01-11), not in 1970: the drive spans seconds.
    span_s = (summary["t_last_ns"] - summary["t_first_ns"]) / 1e9
    assert 1.0 < span_s < 5.0
    clocks = {Path(c["input"]).name: c for c in summary["clocks"]}
    video, bag = clocks[VIDEO.name], clocks[VLP16_BAG.name]
    assert bag["wall_clock"] and bag["offset_ns"] == 0 and bag["start_utc"].startswith("2023-01-11")
    assert not video["wall_clock"] and "start of the wall-clock inputs" in video["aligned_to"]
    assert video["start_utc"].startswith("2023-01-11")
    assert "has no wall-clock time" in done.stdout
    assert "aligned to start of the wall-clock inputs" in (out / "report.html").read_text()
    with (out / "kept.mcap").open("rb") as fh:
        metadata = {m.name: m.metadata for m in make_reader(fh).iter_metadata()}
    assert json.loads(metadata["edgesift.clocks"][str(VIDEO)])["wall_clock"] is False
    # Stored bytes are what the spool holds: for a video every kept frame is a JPEG far larger than the
    # container's per-frame share of the file.
    spool_bytes = sum(p.stat().st_size for p in (out / "spool" / "blobs").rglob("*") if p.is_file())
    assert summary["bytes_stored"] == summary["spool"]["bytes"] == spool_bytes
    camera = summary["by_modality"]["camera"]
    assert camera["bytes_stored"] > 2 * camera["bytes_kept"]
    assert f"{summary['bytes_stored'] / 1e6:.1f} MB stored" in done.stdout


@shared_data
def test_start_sets_the_clock_of_inputs_without_one(tmp_path: Path) -> None:
    done = _cli("replay", str(VIDEO), "--out", str(tmp_path / "out"), "-q", "--start", "2024-05-01T12:00:00Z")
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["clocks"][0]["start_utc"] == "2024-05-01T12:00:00.000+00:00"
    assert summary["t_first_ns"] == 1_714_564_800 * 10**9


def test_input_that_yields_no_frame_is_an_error_saying_why(tmp_path: Path) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    (folder / "000000.bin").write_bytes(b"\x00" * 15)  # not a whole 16-byte point
    (folder / "000001.pcd").write_bytes(b"# .PCD v0.7\nnot a header\n")
    done = _cli("replay", str(folder), "--out", str(tmp_path / "out"), "-q")
    _one_line_error(done, "yielded no frame (1 bad_size, 1 decode_error")
    done = _cli("tune", str(folder), "--out", str(tmp_path / "tune"), "-q", "--no-baselines")
    _one_line_error(done, "yielded no frame (1 bad_size, 1 decode_error")


def test_out_onto_a_file_is_one_line(tmp_path: Path, sample_drive: Path) -> None:
    target = tmp_path / "report.txt"
    target.write_text("")
    _one_line_error(_cli("replay", str(sample_drive), "--out", str(target), "-q"), "is a file, not a folder")


def test_uplink_of_a_missing_spool_fails(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    done = _cli("uplink", "--spool", str(missing), "--until-empty")
    _one_line_error(done, "does not exist")
    assert not missing.exists()  # and no empty spool was made there


def test_dead_broker_fails_in_seconds(tmp_path: Path, sample_drive: Path) -> None:
    url = f"mqtt://127.0.0.1:{_free_port()}"
    for args in (("replay", str(sample_drive), "--out", str(tmp_path / "r"), "-q", "--broker", url),
                 ("ingest", "--broker", url, "--out", str(tmp_path / "i"), "--timeout", "60"),
                 ("uplink", "--spool", str(tmp_path), "--broker", url, "--until-empty")):
        started = time.monotonic()
        done = _cli(*args, timeout=60)
        assert time.monotonic() - started < 20
        _one_line_error(done, "cannot be reached")
    assert not (tmp_path / "r" / "summary.json").exists()  # refused before replaying anything


@pytest.mark.parametrize("kind", ["mcap", "video"])
def test_summary_states_both_byte_figures(tmp_path: Path, kind: str, sample_drive: Path) -> None:
    if kind == "video" and not VIDEO.exists():
        pytest.skip(f"{VIDEO} is absent")
    source = sample_drive if kind == "mcap" else VIDEO
    done = _cli("replay", str(source), "--out", str(tmp_path / "out"), "-q")
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    for tally in (summary, *summary["by_sensor"].values(), *summary["by_modality"].values()):
        assert {"bytes_in", "bytes_kept", "bytes_stored"} <= tally.keys()
    assert summary["bytes_stored"] == summary["spool"]["bytes"]


@shared_data
def test_budget_counts_stored_bytes(tmp_path: Path) -> None:
    """A 1 MB/min camera budget on a video holds the spool to 1 MB: it used to count the container's per-frame
    share of the file (about 21 KB a frame) and let all 5.6 MB of kept JPEGs through."""
    config = tmp_path / "budget.yaml"
    config.write_text("policy:\n  camera:\n    budget:\n      mb_per_min: 1.0\n")
    done = _cli("replay", str(VIDEO), "--out", str(tmp_path / "out"), "-q", "--config", str(config))
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert 0.5e6 < summary["bytes_stored"] <= 1.0e6  # the clip is 1.5 s: one budget window
    assert summary["bytes_stored"] == summary["spool"]["bytes"]


def test_clockless_inputs_alone_start_together(tmp_path: Path) -> None:
    from _sources_fixtures import make_jpeg_folder, make_kitti

    from agent.config.model import InputsConfig
    from agent.sources import open_inputs
    from agent.sources.clocks import align

    stills, drive = make_jpeg_folder(tmp_path / "stills"), make_kitti(tmp_path / "drive")
    clocks = align(open_inputs([str(stills), str(drive)], InputsConfig()))
    assert [c.wall_clock for c in clocks] == [False, False]
    assert clocks[0].offset_ns == clocks[1].offset_ns > 1_600_000_000 * 10**9  # one start, not 1970
    assert "give --start" in clocks[0].aligned_to
    started = align(open_inputs([str(stills)], InputsConfig()), start_ns=5 * 10**18)
    assert started[0].offset_ns == 5 * 10**18 and started[0].aligned_to.startswith("--start")
