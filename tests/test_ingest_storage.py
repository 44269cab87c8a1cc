"""The ingest's storage: MCAP segments roll over by size and by time, every frame reads back from the segment its
index row names; PostgreSQL stopped under a running ingest loses nothing (no ack before the commit)."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import pytest
from mcap.reader import make_reader
from uplink_support import IngestThread, fill_spool, indexed, open_spool, uplink_config, wait_for

from agent.ingest.blobs import read_frames
from agent.ingest.mcap_sink import McapSink, ros_message
from agent.spool import JPEG
from agent.uplink import Uplink, wire


def _stream(broker_url: str, spool_root: Path, count: int, vehicle: str = "car-9") -> set[str]:
    with open_spool(spool_root) as spool:
        expected = set(fill_spool(spool, count))
        uplink = Uplink(spool, uplink_config(broker_url), vehicle)
        uplink.start()
        assert uplink.drain(60)
        uplink.stop()
    return expected


def test_segments_roll_over_by_size_and_every_frame_reads_back_from_its_segment(broker, tmp_path: Path) -> None:
    out = tmp_path / "ingest"
    with IngestThread(broker.url, out, segment_mb=0.3) as ingest:  # ~95 KB frames: 4 per segment
        expected = _stream(broker.url, tmp_path / "spool", 14)
        ingest.wait_frames(len(expected))
    assert ingest.ingest._sink is not None and ingest.ingest._sink.rolled >= 3
    rows = indexed(out)
    assert {r["frame_id"] for r in rows} == expected
    segments = sorted((out / "car-9").glob("*.mcap"))
    assert len(segments) >= 4 and len({r["mcap"] for r in rows}) == len(segments)
    for segment in segments:
        assert segment.stat().st_size < 0.3e6 + 200_000  # closed once past the bound: at most one frame over
        with segment.open("rb") as fh:
            assert make_reader(fh).get_summary() is not None  # finished: summary and footer written
    for row in rows:  # the blob is in the segment the index names
        header, blob = read_frames(out / row["mcap"], {row["frame_id"]})[row["frame_id"]]
        assert hashlib.sha256(blob).hexdigest() == row["sha256"] == header["sha256"]


def test_segments_roll_over_by_time(tmp_path: Path) -> None:
    from conftest import sample_frames

    jpeg = sample_frames("camera")[0].payload
    assert jpeg is not None
    sink = McapSink(tmp_path, "run", segment_mb=1000.0, segment_s=1e-6)  # every frame finds its segment too old
    paths = []
    for n in range(3):
        header = wire.FrameHeader(
            frame_id=f"f{n}", vehicle="car-1", sensor="cam", modality="camera", t_ns=n, seq=n, verdict="helpful",
            score=0.5, reasons=["novel"], rule="keep", encoding=JPEG, scorer="heuristic",
            sha256=wire.sha256_hex(jpeg), size=len(jpeg),
        )  # fmt: skip
        paths.append(sink.segment("car-1"))
        sink.write("car-1", header, ros_message(header, jpeg), n)
    assert sink.close() == {"car-1": 3}
    assert len(set(paths)) == 3 and all((tmp_path / p).is_file() for p in paths)


@pytest.mark.slow
def test_postgres_stopped_under_a_running_ingest_loses_nothing(broker, tmp_path: Path) -> None:
    from pg_server import PostgresServer, find_pg_bin

    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql; scripts/setup.sh does it)")
    root = Path(tempfile.mkdtemp(prefix="edgesift-pg-outage-"))
    server = PostgresServer(bin_dir, root)  # its own server: this test stops it
    try:
        server.start()
        db = server.create_database("outage")
        out = tmp_path / "ingest"
        with IngestThread(broker.url, out, db=db) as ingest:
            first = {("car-9", fid) for fid in _stream(broker.url, tmp_path / "spool-1", 5)}
            ingest.wait_frames(len(first))
            server.stop()  # the database goes away; frames keep coming
            with open_spool(tmp_path / "spool-2") as spool:
                second = {("car-8", fid) for fid in fill_spool(spool, 6)}
                uplink = Uplink(spool, uplink_config(broker.url), "car-8")
                uplink.start()
                wait_for(lambda: ingest.stat("storage_errors") >= 1, 20, "the ingest to notice the outage")
                server.start_again()
                assert uplink.drain(60)  # acked by the broker ...
                uplink.stop()
            wait_for(lambda: ingest.stat("frames") >= len(first | second), 60, "every frame after the outage")
        import psycopg

        with psycopg.connect(db) as conn:
            rows = conn.execute("SELECT vehicle, frame_id FROM frames").fetchall()
        assert len(rows) == len(first | second) and set(rows) == first | second  # each once
        assert ingest.final["storage_errors"] >= 1
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
