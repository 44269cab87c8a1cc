"""Measuring frames in other processes (daemon.measure_processes): the same decisions as measuring in the scoring
thread; a process that hangs or dies costs one frame's measurement, never the daemon; the faster measuring code
computes what the plain formulas do."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import SHARED_DATA, sample_frames
from daemon_support import daemon_config, running, wait_for

from agent.app import App
from agent.config import load_config
from agent.daemon.measure_procs import MeasureError, MeasureProcesses
from agent.frame import Encoding, Frame, Modality
from agent.scoring import camera_signals
from agent.scoring.factory import make_scorer
from agent.scoring.heuristic import HeuristicScorer
from agent.scoring.measure import LocalMeasurer


def _jpeg_frame(sensor: str, seq: int, data: bytes) -> Frame:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return Frame(sensor, Modality.CAMERA, 10**9 + seq * 10**8, seq, len(data), "test", Encoding.JPEG, data,
                 meta={"width": str(image.shape[1]), "height": str(image.shape[0])})


def _stream() -> list[Frame]:
    """The sample drive (camera + LiDAR, interleaved), a night street from another source, a frame gone half grey,
    a black one, and a truncated JPEG."""
    frames: list[Frame] = []
    for camera, scan in zip(sample_frames("camera"), sample_frames("lidar"), strict=False):
        frames += [camera, scan]
    night = sorted((SHARED_DATA / "camera" / "night_singles_robotcar_nuscenes_md4all").glob("*.jpg"))[:3]
    frames += [_jpeg_frame("night", k, path.read_bytes()) for k, path in enumerate(night)]
    base = sample_frames("camera")[-1]
    image = cv2.imdecode(np.frombuffer(base.payload or b"", np.uint8), cv2.IMREAD_COLOR)
    torn = image.copy()
    torn[image.shape[0] // 2:] = 128
    black = np.zeros_like(image)
    for k, bad in enumerate((torn, black)):
        ok, data = cv2.imencode(".jpg", bad)
        assert ok
        frames.append(_jpeg_frame(base.sensor, base.seq + 1 + k, data.tobytes()))
    payload = base.payload or b""
    frames.append(Frame(base.sensor, Modality.CAMERA, base.t_ns + 10**9, base.seq + 3, len(payload) // 2, "test",
                        Encoding.JPEG, payload[: len(payload) // 2], meta=dict(base.meta)))
    return frames


def _decisions(scorer: Any, frames: list[Frame]) -> list[tuple]:
    out = []
    for frame in frames:
        verdict = scorer.score(frame)
        scorer.remember(frame, verdict)
        out.append((frame.sensor, frame.seq, verdict.label, verdict.reasons, verdict.score,
                    json.dumps(verdict.signals, sort_keys=True)))
    return out


@pytest.mark.parametrize("kind", ["heuristic", "hybrid"])
def test_measuring_in_processes_gives_the_decisions_of_measuring_in_the_thread(kind: str) -> None:
    config = load_config(None).model_copy(update={"scoring": load_config(None).scoring.model_copy(
        update={"kind": kind})})
    frames = _stream()
    local = _decisions(make_scorer(config), frames)
    processes = MeasureProcesses(2, 30.0)
    try:
        processes.start()
        remote_scorer = make_scorer(config)
        remote_scorer.measurer = processes
        remote = _decisions(remote_scorer, frames)
    finally:
        processes.close()
    assert remote == local
    labels = {row[2].value for row in local}
    assert "harmful" in labels and labels - {"harmful"}  # both kinds in the stream: the comparison means something
    assert local[-1][3] == ("undecodable",)  # the truncated JPEG's DecodeError crossed the process boundary


def test_frames_measured_ahead_give_the_decisions_of_measuring_in_turn() -> None:
    """As the daemon's scoring thread does: the next camera frame is sent to the thread's process before the
    current frame is judged (LiDAR scans and the truncated JPEG among them)."""
    config = load_config(None)
    frames = _stream()
    local = _decisions(make_scorer(config), frames)
    told: list[bool] = []
    processes = MeasureProcesses(1, 30.0, on_ahead=told.append)
    try:
        processes.start()
        scorer = make_scorer(config)
        scorer.measurer = processes
        remote = []
        for frame, following in zip(frames, [*frames[1:], None], strict=True):
            if following is not None:
                scorer.measure_ahead(following)
            remote += _decisions(scorer, [frame])
        idle = processes._idle.qsize()
    finally:
        processes.close()
    assert remote == local
    assert len(told) == sum(f.modality is Modality.CAMERA for f in frames[1:]) and all(told)
    assert idle == 1  # the stream is over: the thread gave its process back


def test_a_frame_sent_ahead_fits_in_the_socket_while_the_process_is_busy() -> None:
    """A 720p JPEG (about 140 KB) sent while the process still measures the last frame must not wait for it to
    read: the socket is widened past Linux's default (212 KB counted with overhead, where it did wait)."""
    processes = MeasureProcesses(1, 30.0)
    try:
        processes.start()
        conn = processes._workers[0]._conn
        assert conn is not None
        sock = socket.socket(fileno=conn.fileno())
        try:
            room = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        finally:
            sock.detach()
    finally:
        processes.close()
    assert room >= 400_000


def test_a_frame_measured_ahead_and_lost_with_its_process_costs_that_frame_only() -> None:
    failures: list[str] = []
    processes = MeasureProcesses(1, 30.0, failures.append)
    small, other = sample_frames("camera")[:2]
    big = _big_png_frame()
    try:
        processes.start()
        reference = processes.camera(small, 320)
        # Dies on the frame sent ahead while the thread waits for the frame it judges now (asked after it): the
        # frame judged now is measured by a new process, the one ahead fails in its turn.
        processes.ahead(big, 320)
        victim = processes._workers[0]._process.pid
        killer = threading.Timer(0.25, lambda: os.kill(victim, signal.SIGKILL))
        killer.start()
        assert processes.camera(small, 320).as_dict() == reference.as_dict()
        killer.join()
        assert processes._workers[0]._process.pid != victim
        with pytest.raises(MeasureError, match="died"):
            processes.camera(big, 320)
        assert processes.camera(small, 320).as_dict() == reference.as_dict()
        # Sent ahead at one width, judged at another (a config change): measured again at the new one; the
        # unclaimed answer is dropped when the next frame is sent ahead, and the process is given back.
        processes.ahead(small, 320)
        assert processes.camera(small, 160).grey.shape[1] == 160
        processes.ahead(other, 320)
        assert processes.camera(other, 320).as_dict() == LocalMeasurer().camera(other, 320).as_dict()
        assert processes._idle.qsize() == 1
    finally:
        processes.close()
    assert failures == ["died"]


def _big_png_frame() -> Frame:
    """A 6000 x 6000 PNG: several tenths of a second to decode (no reduced decode for PNG)."""
    ramp = (np.arange(6000, dtype=np.uint16) % 256).astype(np.uint8)
    grey = np.tile(ramp[None, :], (6000, 1))
    ok, png = cv2.imencode(".png", cv2.merge([grey, grey.T.copy(), grey]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    assert ok
    return Frame("cam", Modality.CAMERA, 1, 0, len(png), "test", Encoding.PNG, png.tobytes(),
                 meta={"width": "6000", "height": "6000"})


def test_a_measuring_process_that_hangs_or_dies_costs_one_frame() -> None:
    failures: list[str] = []
    processes = MeasureProcesses(1, 30.0, failures.append)
    small = sample_frames("camera")[0]
    big = _big_png_frame()
    try:
        processes.start()
        reference = processes.camera(small, 320)
        worker = processes._workers[0]

        # Dies on a frame (killed while it decodes the big PNG): that frame fails, the next one is measured.
        victim = worker._process.pid
        killer = threading.Timer(0.25, lambda: os.kill(victim, signal.SIGKILL))
        killer.start()
        with pytest.raises(MeasureError, match="died"):
            processes.camera(big, 320)
        killer.join()
        assert processes.camera(small, 320).as_dict() == reference.as_dict()
        assert worker._process.pid != victim

        # Hangs (slower than the timeout): killed and replaced.
        processes._timeout_s = 0.05
        with pytest.raises(MeasureError, match="took over"):
            processes.camera(big, 320)
        processes._timeout_s = 30.0
        assert processes.camera(small, 320).as_dict() == reference.as_dict()

        # Killed from outside between frames: not the next frame's fault, which is measured by a new process.
        idle = worker._process
        os.kill(idle.pid, signal.SIGKILL)
        idle.join(5)
        assert processes.camera(small, 320).as_dict() == reference.as_dict()
    finally:
        processes.close()
    assert failures == ["died", "hung"]
    assert processes.failures == 2
    with pytest.raises(MeasureError, match="closed"):
        processes.camera(small, 320)


def test_the_daemon_measures_in_its_processes_and_stops_them(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    decisions = tmp_path / "decisions.jsonl"
    config = daemon_config(tmp_path, [{"type": "folder", "name": "rec", "path": str(drop), "settle_s": 0.2,
                                       "existing": True}],
                           daemon={"decisions_path": str(decisions), "measure_processes": 1})
    app = App(config)
    assert app.measure is not None and app.scorer.inner.measurer is app.measure
    cameras, scans = sample_frames("camera")[:3], sample_frames("lidar")[:3]
    with running(app):
        process = app.measure._workers[0]._process
        assert process is not None and process.is_alive()
        for n, (camera, scan) in enumerate(zip(cameras, scans, strict=True)):
            (drop / f"{n:03d}.jpg").write_bytes(camera.payload or b"")
            assert scan.array is not None
            (drop / f"{n:03d}.bin").write_bytes(scan.array.astype("<f4").tobytes())

        def scored() -> list[dict]:
            if not decisions.exists():
                return []
            return [r for r in map(json.loads, decisions.read_text().splitlines()) if "verdict" in r]

        wait_for(lambda: len(scored()) == 6, 60, "six decisions")
    rows = scored()
    assert not [r for r in rows if r["verdict"] == "error"]
    assert {r["modality"] for r in rows} == {"camera", "lidar"}
    deadline = time.monotonic() + 5
    while process.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process.is_alive()  # shutdown stops the measuring processes


def test_the_daemon_counts_the_frames_it_measures_ahead(tmp_path: Path) -> None:
    """App's wiring: a camera frame handed to the scoring thread's `ahead` hook goes to a measuring process and is
    counted (edgesift_frames_measured_ahead_total{result="sent"}); its turn collects the same signals."""
    drop = tmp_path / "drop"
    drop.mkdir()
    config = daemon_config(tmp_path, [{"type": "folder", "name": "rec", "path": str(drop), "existing": True}],
                           daemon={"measure_processes": 2})
    app = App(config)
    camera = sample_frames("camera")[0]
    width = config.scoring.camera.analysis_width
    with running(app):
        assert app.scoring[0]._ahead is not None
        app._ahead(camera)  # from this thread, as a scoring thread does with its next frame
        assert app.measure is not None
        signals = app.measure.camera(camera, width)
    assert app.metrics.measured_ahead.labels("sent")._value.get() == 1
    assert signals.as_dict() == LocalMeasurer().camera(camera, width).as_dict()


def _seam_reference(grey: np.ndarray) -> tuple[float, float, bool]:
    """seam() as first written, in plain NumPy."""
    h = grey.shape[0]
    if h < 16:
        return 0.0, 0.0, False
    size = cv2.absdiff(grey[2:], grey[:-2]).astype(np.int16)
    mid = size[2:-2]
    strong = (mid > 12.0) & (2 * mid > 5 * np.maximum(size[:-4], size[4:]) + 4)
    share = strong.mean(axis=1)
    margin = max(1, int(h * 0.08))
    share[:margin] = 0.0
    share[len(share) - margin:] = 0.0
    i = int(share.argmax())
    top, cols = i + 2, strong[i]
    if cols.sum() < 3:
        return float(share[i]), 0.0, False
    ratio = np.log((grey[top + 2] + 4.0) / (grey[top] + 4.0))
    mixed = float((cols & (np.abs(ratio - np.median(ratio[cols])) > 0.25)).mean())
    below = grey[top + 4:]
    flat = (len(below) >= 0.15 * h and float(np.median(below.std(axis=1))) < 1.5
            and 8.0 < float(below.mean()) < 247.0)
    return float(share[i]), mixed, bool(flat)


def test_the_fast_seam_and_flat_row_checks_compute_the_plain_formulas() -> None:
    rng = np.random.default_rng(7)
    images = []
    for frame in sample_frames("camera")[:6]:
        grey = cv2.cvtColor(cv2.imdecode(np.frombuffer(frame.payload or b"", np.uint8), cv2.IMREAD_COLOR),
                            cv2.COLOR_BGR2GRAY)
        grey = cv2.resize(grey, (320, 97), interpolation=cv2.INTER_NEAREST)
        torn = grey.copy()
        torn[50:] = np.roll(grey[50:], 40, axis=1)
        filled = grey.copy()
        filled[48:] = 128
        noisy_fill = filled.copy()
        noisy_fill[48:] += rng.integers(0, 3, size=noisy_fill[48:].shape, dtype=np.uint8)
        images += [grey, torn, filled, noisy_fill, np.ascontiguousarray(grey.T)]
    images += [rng.integers(0, 256, size=(120, 160), dtype=np.uint8), np.full((40, 64), 77, np.uint8)]
    flats = 0
    for grey in images:
        assert camera_signals.seam(grey) == _seam_reference(grey)
        assert camera_signals._rows_flat(grey) == (float(np.median(grey.std(axis=1))) < 1.5)
        mean = cv2.reduce(grey, 1, cv2.REDUCE_AVG, dtype=cv2.CV_64F).ravel()
        square = cv2.reduce(cv2.multiply(grey, grey, dtype=cv2.CV_32F), 1, cv2.REDUCE_AVG, dtype=cv2.CV_64F).ravel()
        std = np.sqrt(np.maximum(square - mean * mean, 0.0))
        assert np.array_equal(camera_signals.flat_rows(grey), (std < 0.75) & (mean > 8.0) & (mean < 247.0))
        flats += camera_signals._rows_flat(grey)
        values = grey[:, :37].astype(np.float64).ravel()
        assert float(camera_signals._median_rows(values)) == float(np.median(values))
        assert float(camera_signals._median_rows(values[1:])) == float(np.median(values[1:]))
    assert flats >= 7  # both outcomes of the shortcut were exercised


@pytest.mark.parametrize("quality", [6, 10])
def test_compression_damage_on_a_jpeg_that_is_decoded_at_half_size_is_caught(quality: int) -> None:
    # The sample drive's 1242-px frames are decoded at half size for the 320-px analysis, where an 8-pixel JPEG
    # grid is faint (blockiness 1.19-1.21: missed); it is measured on a whole grey decode (2.4-3.2: caught).
    def jpeg(image: np.ndarray, seq: int, q: int = 92) -> Frame:
        data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, q])[1].tobytes()
        return Frame("cam", Modality.CAMERA, 10**9 + seq * 10**8, seq, len(data), "test", Encoding.JPEG, data,
                     meta={"width": str(image.shape[1]), "height": str(image.shape[0])})

    images = [cv2.imdecode(np.frombuffer(f.payload or b"", np.uint8), cv2.IMREAD_COLOR)
              for f in sample_frames("camera")[:11]]
    assert images[0].shape[1] == 1242
    scorer = HeuristicScorer(load_config(None).scoring)
    valid = 0
    for seq, image in enumerate(images[:10]):  # the sample drive holds faults of its own: those are not remembered
        frame = jpeg(image, seq)
        verdict = scorer.score(frame)
        if verdict.label.value != "harmful":
            scorer.remember(frame, verdict)
            valid += 1
    assert valid >= 6
    damaged = cv2.imdecode(np.frombuffer(jpeg(images[10], 10, quality).payload or b"", np.uint8), cv2.IMREAD_COLOR)
    verdict = scorer.score(jpeg(damaged, 10))
    assert verdict.label.value == "harmful" and "compression" in verdict.reasons, (verdict.reasons, verdict.signals)
