"""Replay report: summary counters, thumbnail selection and rendering, and the self-contained report.html."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import sample_frames, sample_png

from agent.frame import Encoding, Frame, Modality, Skip
from agent.report import SummaryBuilder, ThumbnailCollector, write_report
from agent.report import thumbs as thumbs_module
from agent.report.html import fmt_bytes
from agent.report.series import collect
from agent.report.thumbs import bev_image, render_thumbnail

T0 = 1_317_000_000_000_000_000  # the sample drive's start, 2011-09-26 00:00:00 UTC


# --- real frames and hand-made records ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def camera_frames() -> list[Frame]:
    """The sample drive's 30 consecutive camera frames (KITTI frames 0-29, 10 Hz), as PNG like KITTI ships them."""
    frames = []
    for seq in range(30):
        data = sample_png(seq)
        meta = {"width": "1242", "height": "375"}
        frames.append(
            Frame(
                "cam_front",
                Modality.CAMERA,
                T0 + seq * 100_000_000,
                seq,
                len(data),
                f"sample:camera/{seq}.png",
                Encoding.PNG,
                data,
                meta=meta,
            )
        )
    assert [f.t_ns for f in frames] == [f.t_ns for f in sample_frames("camera")[:30]]
    return frames


@pytest.fixture(scope="module")
def lidar_frames() -> list[Frame]:
    """The sample drive's 15 consecutive scans (every second KITTI scan of frames 0-28), at their own times."""
    frames = []
    for seq, scan in enumerate(sample_frames("lidar")[:15]):
        points = scan.array
        assert points is not None
        frames.append(
            Frame(
                "velo_top",
                Modality.LIDAR,
                scan.t_ns,  # T0 + seq * 200 ms + 50 ms
                seq,
                points.nbytes,
                f"sample:lidar/{seq}.bin",
                Encoding.RAW,
                None,
                points,
            )
        )
    assert frames[-1].t_ns == T0 + 2_850_000_000
    return frames


def record_for(frame: Frame, verdict: str, score: float, kept: bool, reasons: list[str], rule: str) -> dict:
    return {
        "sensor": frame.sensor,
        "modality": frame.modality.value,
        "seq": frame.seq,
        "t_ns": frame.t_ns,
        "verdict": verdict,
        "score": score,
        "kept": kept,
        "reasons": reasons,
        "rule": rule,
        "bytes": frame.nbytes,
        "frame_id": None,
    }


def camera_record(frame: Frame) -> dict:
    """Every 5th frame kept as novel, frames 7 and 8 harmful (blur), the rest dropped as redundant."""
    if frame.seq in (7, 8):
        return record_for(frame, "harmful", 0.05, False, ["blur"], "drop:harmful")
    if frame.seq % 5 == 0:
        return record_for(frame, "helpful", 0.8, True, ["novel"], "keep:helpful")
    return record_for(frame, "useless", 0.2 + frame.seq / 100, False, ["redundant"], "drop:useless")


def lidar_record(frame: Frame) -> dict:
    """Frames 0-9 kept (helpful, no reasons), 10-11 harmful (missing_sector + few_points), the rest redundant."""
    if frame.seq in (10, 11):
        return record_for(frame, "harmful", 0.1, False, ["missing_sector", "few_points"], "drop:harmful")
    if frame.seq < 10:
        return record_for(frame, "helpful", 0.9, True, [], "keep:coverage")
    return record_for(frame, "useless", 0.3, False, ["redundant"], "drop:low_score")


def drive(camera_frames: list[Frame], lidar_frames: list[Frame]) -> list[tuple[Frame, dict]]:
    pairs = [(f, camera_record(f)) for f in camera_frames] + [(f, lidar_record(f)) for f in lidar_frames]
    return sorted(pairs, key=lambda p: p[0].t_ns)


# --- summary -----------------------------------------------------------------------------------------------------


def test_summary_counts_real_drive(camera_frames: list[Frame], lidar_frames: list[Frame]) -> None:
    builder = SummaryBuilder()
    for _, record in drive(camera_frames, lidar_frames):
        builder.add(record)
    builder.add_skip(Skip("cam_front", 30, T0 + 3_000_000_000, "x.png", "decode_error", "truncated"))
    summary = builder.build(elapsed_s=2.0, inputs=["a.mcap", "b"], config_version=7)
    json.dumps(summary)  # serialisable as is

    cam_bytes = sum(f.nbytes for f in camera_frames)
    cam_kept = sum(f.nbytes for f in camera_frames if f.seq % 5 == 0)
    velo_bytes = sum(f.nbytes for f in lidar_frames)
    velo_kept = sum(f.nbytes for f in lidar_frames if f.seq < 10)
    assert summary["frames_in"] == 30 + 15
    assert summary["frames_kept"] == 6 + 10
    assert summary["bytes_in"] == cam_bytes + velo_bytes
    assert summary["bytes_kept"] == cam_kept + velo_kept
    assert summary["by_verdict"] == {"helpful": 16, "useless": 22 + 3, "harmful": 4}
    assert summary["by_sensor"]["cam_front"] == {
        "modality": "camera",
        "frames_in": 30,
        "frames_kept": 6,
        "bytes_in": cam_bytes,
        "bytes_kept": cam_kept,
        "bytes_stored": 0,  # these records carry no stored_bytes (as decisions files from before it)
        "by_verdict": {"helpful": 6, "useless": 22, "harmful": 2},
    }
    assert summary["by_sensor"]["velo_top"]["by_verdict"] == {"helpful": 10, "useless": 3, "harmful": 2}
    assert summary["by_reason"] == {"redundant": 25, "novel": 6, "blur": 2, "few_points": 2, "missing_sector": 2}
    assert summary["by_primary_reason"]["missing_sector"] == 2
    assert "few_points" not in summary["by_primary_reason"]
    assert summary["by_primary_reason"]["helpful"] == 10  # no reasons: the verdict stands in
    assert summary["by_rule"] == {
        "drop:useless": 22,
        "drop:low_score": 3,
        "keep:coverage": 10,
        "keep:helpful": 6,
        "drop:harmful": 4,
    }
    assert summary["skipped"]["count"] == 1
    assert summary["skipped"]["by_reason"] == {"decode_error": 1}
    assert summary["skipped"]["items"][0]["detail"] == "truncated"
    assert summary["frames_per_s"] == 22.5
    assert summary["elapsed_s"] == 2.0
    assert summary["inputs"] == ["a.mcap", "b"]
    assert summary["config_version"] == 7
    assert summary["t_first_ns"] == T0
    assert summary["t_last_ns"] == T0 + 29 * 100_000_000  # the last camera frame, after the last scan


def test_summary_skip_items_are_capped_but_counts_exact() -> None:
    builder = SummaryBuilder(max_skip_items=10)
    for i in range(25):
        skip = Skip("s", i, i, "src", "bad_size" if i % 5 else "corrupt_chunk")
        builder.add_skip(skip if i % 2 else skip.as_dict())
    skipped = builder.build(0.0, [], 0)["skipped"]
    assert skipped["count"] == 25
    assert skipped["by_reason"] == {"bad_size": 20, "corrupt_chunk": 5}
    assert [item["seq"] for item in skipped["items"]] == list(range(10))
    assert skipped["items_truncated"] is True


def test_summary_empty_and_odd_records() -> None:
    builder = SummaryBuilder()
    assert builder.build(0.0, [], 0)["by_verdict"] == {"helpful": 0, "useless": 0, "harmful": 0}
    builder.add(
        {
            "sensor": "c",
            "modality": "camera",
            "verdict": "helpful",
            "kept": True,
            "bytes": 5,
            "reasons": ["blur", "blur"],
            "rule": "keep:helpful",
            "t_ns": 3,
            "score": 0.5,
        }
    )
    summary = builder.build(0.0, [], 1)
    assert summary["by_reason"] == {"blur": 1}  # one frame, counted once
    assert summary["frames_per_s"] == 0.0


# --- thumbnails --------------------------------------------------------------------------------------------------


def _decode_uri(uri: str) -> np.ndarray:
    header, data = uri.split(",", 1)
    assert header in ("data:image/jpeg;base64", "data:image/png;base64")
    image = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def test_thumbnails_are_capped_spread_and_deterministic(camera_frames: list[Frame], lidar_frames: list[Frame]) -> None:
    def run() -> ThumbnailCollector:
        collector = ThumbnailCollector(per_group=4, width=160)
        for frame, record in drive(camera_frames, lidar_frames):
            collector.offer(frame, record)
        return collector

    collector = run()
    groups = collector.groups()
    assert set(groups) == {
        (True, "novel"),
        (True, "helpful"),
        (False, "redundant"),
        (False, "blur"),
        (False, "missing_sector"),
    }
    assert collector.counts()[(False, "redundant")] == 22 + 3
    assert all(0 < len(items) <= 4 for items in groups.values())
    assert len(groups[(False, "blur")]) == 2
    redundant = groups[(False, "redundant")]
    assert {t.sensor for t in redundant} == {"cam_front", "velo_top"}  # both sensors get slots
    assert [t.t_ns for t in redundant] == sorted(t.t_ns for t in redundant)
    helpful = groups[(True, "helpful")]  # LiDAR frames 0..9: an even spread, not the first four
    assert helpful[0].seq == 0 and helpful[-1].seq >= 7
    assert groups == run().groups()  # deterministic

    cam = groups[(True, "novel")][0]
    assert cam.rule == "keep:helpful" and cam.reasons == ("novel",) and not cam.placeholder
    image = _decode_uri(cam.data_uri)
    assert image.shape[1] == 160 and abs(image.shape[0] - round(375 * 160 / 1242)) <= 1
    bev = _decode_uri(groups[(False, "missing_sector")][0].data_uri)
    assert bev.shape[:2] == (160, 160)
    assert (bev.max(axis=2) > 60).mean() > 0.02  # points were drawn


def test_only_picked_frames_are_rendered(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def fake_render(frame: Frame, width: int) -> tuple[str, bool]:
        calls.append(frame.seq)
        return "data:image/png;base64,", False

    monkeypatch.setattr(thumbs_module, "render_thumbnail", fake_render)
    collector = ThumbnailCollector(per_group=5, width=64)
    array = np.zeros((4, 4, 3), np.uint8)
    for seq in range(10_000):
        frame = Frame("cam", Modality.CAMERA, seq * 1000, seq, 48, "mem", array=array)
        collector.offer(
            frame,
            {
                "kept": False,
                "reasons": ["redundant"],
                "verdict": "useless",
                "seq": seq,
                "t_ns": seq * 1000,
                "score": 0.1,
                "rule": "drop:useless",
            },
        )
    assert len(calls) < 100  # about 2N + N*log2(n / 2N), not 10 000
    picked = [t.seq for t in collector.groups()[(False, "redundant")]]
    assert len(picked) == 5 and picked[0] == 0 and picked[-1] > 8000
    gaps = np.diff(picked)
    assert gaps.max() <= 2 * gaps.min()  # evenly spread


def test_corrupt_frames_give_placeholders(camera_frames: list[Frame]) -> None:
    good = camera_frames[0]
    broken = [
        Frame(
            "cam",
            Modality.CAMERA,
            1,
            1,
            10,
            "x",
            Encoding.PNG,
            good.payload[: len(good.payload) // 2],
            meta=dict(good.meta),
        ),
        Frame("cam", Modality.CAMERA, 2, 2, 10, "x", Encoding.JPEG, b"\xff\xd8not a jpeg\xff\xd9"),
        Frame("cam", Modality.CAMERA, 3, 3, 0, "x", Encoding.RAW),
        Frame("velo", Modality.LIDAR, 4, 4, 17, "x", Encoding.XYZI_F32, b"\x00" * 17),
        Frame("velo", Modality.LIDAR, 5, 5, 0, "x", Encoding.RAW, array=np.zeros((3, 2), np.float32)),
    ]
    collector = ThumbnailCollector(per_group=10, width=96)
    for frame in broken:
        uri, failed = render_thumbnail(frame, 96)
        assert failed and uri.startswith("data:image/svg+xml;base64,")
        assert b"no preview" in base64.b64decode(uri.split(",", 1)[1])
        collector.offer(frame, {"kept": False, "reasons": ["nonfinite"], "verdict": "harmful"})
    thumbs = collector.groups()[(False, "nonfinite")]
    assert len(thumbs) == 5 and all(t.placeholder for t in thumbs)


def test_bev_orientation_and_nonfinite_points() -> None:
    points = np.array([[20, 0, 0, 1], [0, 20, 0, 1], [np.nan, 1, 1, 1], [1e9, 0, 0, 1]], np.float32)
    image = bev_image(points, 100)
    lit = image.max(axis=2) > 120
    lit[45:56, 45:56] = False  # the ego marker
    rows, cols = np.nonzero(lit)
    assert set(zip(rows.tolist(), cols.tolist(), strict=True)) == {(30, 50), (50, 30)}  # ahead is up, left is left


# --- timeline series ---------------------------------------------------------------------------------------------


def test_series_thins_ordinary_points_but_keeps_important_ones() -> None:
    def records() -> Iterator[dict]:
        for i in range(200_000):
            kept = i % 1000 == 0
            verdict = "harmful" if i % 777 == 0 else "useless"
            yield {
                "sensor": "cam",
                "modality": "camera",
                "seq": i,
                "t_ns": i * 10**8,
                "verdict": verdict,
                "score": (i % 100) / 100,
                "kept": kept,
                "reasons": [],
                "rule": "r",
                "bytes": 1,
            }

    series = collect(records(), max_points=3000)
    cam = series.sensors["cam"]
    points = cam.points()
    assert cam.frames == 200_000
    important = [p for p in points if p.kept or p.verdict == "harmful"]
    assert len(important) == 200 + 258 - 1  # all of them (seq 0 is both)
    assert 1500 <= len(points) - len(important) <= 3000
    assert sum(series.histograms["camera"]["useless"]) + sum(series.histograms["camera"]["harmful"]) == 200_000
    assert series.t_min == 0 and series.t_max == 199_999 * 10**8


# --- report.html -------------------------------------------------------------------------------------------------


class _Checker(HTMLParser):
    """Collects tags and attributes and checks that non-void elements are properly nested."""

    VOID = frozenset({"meta", "img", "br", "hr", "input", "link", "source", "col", "wbr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _check_html(page: str) -> _Checker:
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert checker.errors == [] and checker.stack == []
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert "@import" not in page and "url(http" not in page
    return checker


def test_report_html_is_self_contained_and_complete(
    tmp_path: Path, camera_frames: list[Frame], lidar_frames: list[Frame]
) -> None:
    builder = SummaryBuilder()
    collector = ThumbnailCollector(per_group=3, width=192)
    records = []
    for frame, record in drive(camera_frames, lidar_frames):
        builder.add(record)
        collector.offer(frame, record)
        records.append(record)
    odd = Frame("cam<script>", Modality.CAMERA, T0 + 1, 99, 5, "x", Encoding.JPEG, b"junk")
    odd_record = record_for(odd, "harmful", 0.0, False, ["<b>bold</b>"], "drop:harmful")
    builder.add(odd_record)
    collector.offer(odd, odd_record)
    records.append(odd_record)
    builder.add_skip(Skip("velo_top", 31, T0, "drive.pcap", "corrupt_chunk", "CRC mismatch & <junk>"))
    summary = builder.build(elapsed_s=1.5, inputs=["/data/drive 1.mcap"], config_version=3)
    out = tmp_path / "report.html"
    write_report(out, summary, iter(records), collector.groups())

    page = out.read_text(encoding="utf-8")
    checker = _check_html(page)
    text = " ".join(" ".join(checker.text).split())
    assert "<script>" not in page and "<b>bold</b>" not in page  # escaped
    assert "cam<script>" in text and "CRC mismatch & <junk>" in text
    assert "/data/drive 1.mcap" in text
    assert f"{summary['frames_kept']:,} of {summary['frames_in']:,}" in text
    assert fmt_bytes(summary["bytes_in"]) in text and fmt_bytes(summary["bytes_kept"]) in text
    dropped = 100 * (summary["bytes_in"] - summary["bytes_kept"]) / summary["bytes_in"]
    assert f"{dropped:.1f}% of input bytes dropped" in text
    timelines = [
        a.get("aria-label") for tag, a in checker.tags if tag == "svg" and "timeline" in (a.get("class") or "")
    ]
    assert timelines == ["timeline of cam<script>", "timeline of cam_front", "timeline of velo_top"]
    histograms = [a for tag, a in checker.tags if tag == "svg" and "histogram" in (a.get("class") or "")]
    assert len(histograms) == 2  # camera, lidar
    circles = [a for tag, a in checker.tags if tag == "circle" and a.get("cx")]
    assert len(circles) >= 30 + 15 + 1
    images = [a["src"] for tag, a in checker.tags if tag == "img"]
    n_thumbs = sum(len(v) for v in collector.groups().values())
    assert len(images) == n_thumbs and all(src.startswith("data:image/") for src in images)
    assert any(src.startswith("data:image/svg+xml") for src in images)  # the junk frame's placeholder
    assert "Skipped items" in text and "corrupt_chunk" in text
    for heading in ("Kept", "Dropped", "novel", "redundant", "missing_sector"):
        assert heading in text


def test_report_with_no_frames(tmp_path: Path) -> None:
    summary = SummaryBuilder().build(0.0, [], 0)
    out = tmp_path / "sub" / "report.html"
    write_report(out, summary, [], {})
    page = out.read_text(encoding="utf-8")
    _check_html(page)
    assert "no frames" in page and not (tmp_path / "sub" / "report.html.tmp").exists()


def test_long_drive_report_stays_small(tmp_path: Path) -> None:
    def records() -> Iterator[dict]:
        for i in range(60_000):
            for sensor, modality in (("cam", "camera"), ("velo", "lidar")):
                kept = i % 500 == 0
                yield {
                    "sensor": sensor,
                    "modality": modality,
                    "seq": i,
                    "t_ns": i * 200_000_000,
                    "verdict": "helpful" if kept else "useless",
                    "score": 0.5,
                    "kept": kept,
                    "reasons": ["redundant"],
                    "rule": "keep:coverage" if kept else "drop:useless",
                    "bytes": 9,
                }

    builder = SummaryBuilder()
    for record in records():
        builder.add(record)
    out = tmp_path / "report.html"
    write_report(out, builder.build(10.0, ["drive.mcap"], 1), records(), {})
    page = out.read_text(encoding="utf-8")
    checker = _check_html(page)
    circles = [a for tag, a in checker.tags if tag == "circle" and a.get("r") == "3"]  # not the legend's
    assert len(circles) <= 2 * 2 * 3000
    assert sum(1 for a in circles if a.get("class", "").startswith("k")) == 2 * 120  # every kept frame
    assert "time since start of drive (h)" in page  # 3.3 h of drive
    assert "of 60,000 frames shown" in page
    assert len(page) < 3_000_000
