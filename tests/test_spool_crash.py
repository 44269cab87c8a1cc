"""Crash safety: SIGKILL a process that is filling the spool with real frames, reopen, check what survived.

The child prints one line per operation, flushed, *before* it starts it ("begin-put", "begin-del") and *after* it
returns ("put" with the ids it evicted, "reject", "del"). Everything reported as done must be in the spool with a
complete, decodable blob; the one operation in flight at the kill may or may not have happened, as a whole.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from conftest import write_kitti_drive

from agent.config.model import SpoolConfig
from agent.spool import JPEG, XYZI_F32_ZSTD, Spool, decode_jpeg, decode_points

REPO = Path(__file__).resolve().parents[1]
MAX_MB = 4.0  # small enough that the child evicts (LiDAR blobs are ~1.1 MB) while it is being killed

CHILD = """
import itertools, sys, time
from pathlib import Path
from agent.config.model import SpoolConfig
from agent.frame import Encoding, Frame, Modality
from agent.scoring.base import Label, Verdict
from agent.spool import Spool, files

root, kitti, start, max_mb = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
hook, arm_after, durable = sys.argv[5], int(sys.argv[6]), sys.argv[7] == "durable"
pngs = [p.read_bytes() for p in sorted((kitti / "image_02" / "data").glob("*.png"))[:6]]
bins = [p.read_bytes() for p in sorted((kitti / "velodyne_points" / "data").glob("*.bin"))[:4]]

def frame(n):
    if n % 3 == 2:
        data = bins[n % len(bins)]
        return Frame("velodyne", Modality.LIDAR, n * 1_000_000, n, len(data), "kitti", Encoding.XYZI_F32, data)
    data = pngs[n % len(pngs)]
    return Frame("cam_02", Modality.CAMERA, n * 1_000_000, n, len(data), "kitti", Encoding.PNG, data)

def out(*words):
    print(*words, flush=True)

mine = []
armed = [False]

def slow(name, real, before=False, when=lambda *args: True):
    # Stretch one crash window (as a slow disk would) so that the parent's SIGKILL lands inside it.
    def pause(*args):
        if armed[0] and when(*args):
            out("hook", name)
            time.sleep(5.0)

    def wrapper(*args):
        if before:
            pause(*args)
        result = real(*args)
        if not before:
            pause(*args)
        return result
    return wrapper

if hook == "after-temp":  # temp blob written and fsync'd, not yet renamed
    files.write_temp = slow("temp", files.write_temp)
elif hook == "after-rename":  # blob renamed into place, index row not yet committed
    files.publish = slow("rename", files.publish)
elif hook == "after-commit":  # row removal committed (eviction or delete), blob not yet unlinked
    files.remove_quietly = slow("remove", files.remove_quietly, True, lambda path: path.exists())

with Spool.open(root, SpoolConfig(max_mb=max_mb), durable=durable) as spool:
    for n in itertools.count(start):
        f, score = frame(n), (n * 37 % 100) / 100
        fid = f"{f.t_ns:019d}-{f.sensor}-{n}"
        out("begin-put", fid, score)
        r = spool.put(f, Verdict(Label.HELPFUL, score, ("novel",)), "keep", frame_id=fid)
        out("put" if r.stored else "reject", fid, *r.evicted)
        if r.stored:
            mine.append(fid)
            armed[0] = hook != "free" and len(mine) >= arm_after
        if n % 4 == 3 and mine:
            victim = mine.pop(0)
            out("begin-del", victim)
            spool.delete(victim)
            out("del", victim)
"""


@dataclass
class Ledger:
    """What the child reported: frames known to be in the spool, and the operation in flight."""

    expected: dict[str, float] = field(default_factory=dict)
    pending: tuple[str, str, float] | None = None
    committed_puts: int = 0

    def apply(self, line: str) -> None:
        op, fid, *rest = line.split()
        if op == "hook":
            return
        if op == "begin-put":
            self.pending = ("put", fid, float(rest[0]))
        elif op == "put":
            assert self.pending is not None and self.pending[1] == fid
            self.expected[fid] = self.pending[2]
            for victim in rest:
                self.expected.pop(victim)
            self.committed_puts += 1
            self.pending = None
        elif op == "reject":
            self.pending = None
        elif op == "begin-del":
            self.pending = ("del", fid, 0.0)
        elif op == "del":
            self.expected.pop(fid, None)
            self.pending = None
        else:
            raise AssertionError(f"unexpected child output {line!r}")

    def may_be_missing(self, fid: str) -> bool:
        """Whether the in-flight operation may have removed `fid` (deleted it, or evicted it as lower-scored)."""
        if self.pending is None:
            return False
        op, target, score = self.pending
        return (op == "del" and target == fid) or (op == "put" and self.expected[fid] < score)


def _run_and_kill(
    root: Path, kitti: Path, start: int, hook: str, kill_after_puts: int, delay_s: float, log: Path, durable: bool
) -> list[str]:
    """Start the child on the KITTI folder `kitti`, wait for `kill_after_puts` committed puts (and, with a hook, for
    the child to stop in its crash window), wait `delay_s`, SIGKILL; return the child's complete lines."""
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(root), str(kitti), str(start), str(MAX_MB), hook, str(kill_after_puts),
             "durable" if durable else "batched"],
            stdout=subprocess.PIPE, stderr=err, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
            text=True,
        )  # fmt: skip
        watchdog = threading.Timer(30.0, proc.kill)
        watchdog.start()
        try:
            lines, puts = [], 0
            assert proc.stdout is not None
            while puts < kill_after_puts or (hook != "free" and not lines[-1].startswith("hook ")):
                line = proc.stdout.readline()
                if not line:
                    raise AssertionError(f"child ended early: {log.read_text()}")
                lines.append(line)
                puts += line.startswith("put ")
            time.sleep(delay_s)
            proc.send_signal(signal.SIGKILL)
            rest = proc.stdout.read()
            proc.wait()
        finally:
            watchdog.cancel()
    assert proc.returncode == -signal.SIGKILL
    complete = (lines + rest.splitlines(keepends=True)) if rest else lines
    return [line.strip() for line in complete if line.endswith("\n")]  # a half-written last line is no report


def _check_entry(spool: Spool, entry_id: str) -> None:
    entry = spool.get(entry_id)
    assert entry is not None
    assert entry.blob_path.stat().st_size == entry.blob_bytes
    blob = spool.read_blob(entry)
    if entry.encoding == JPEG:
        assert decode_jpeg(blob).shape == (375, 1242, 3)
    else:
        assert entry.encoding == XYZI_F32_ZSTD
        points = decode_points(blob)
        assert points.shape == (entry.input_bytes // 16, 4) and np.isfinite(points).all()


@pytest.mark.slow
@pytest.mark.parametrize("durable", [True, False], ids=["durable", "replay_spool_without_fsync"])
def test_sigkill_mid_stream_loses_nothing_committed(tmp_path: Path, durable: bool) -> None:
    # Without fsyncs (a replay's spool) a killed process must leave the same consistent spool: only a power cut
    # can cost written frames there.
    root = tmp_path / "spool"
    kitti = write_kitti_drive(tmp_path / "kitti", frames=range(6))  # real frames from the sample drive
    ledger = Ledger()
    orphans_total = 0
    # (crash window held open by the child, committed puts before the kill, extra delay): "free" rounds kill at
    # whatever point the child has reached; the others hold one crash window open and kill inside it.
    rounds = [
        ("free", 2, 0.0), ("after-temp", 3, 0.0), ("free", 5, 0.013), ("after-rename", 2, 0.0),
        ("free", 3, 0.029), ("after-commit", 3, 0.0), ("free", 7, 0.006), ("free", 4, 0.047),
    ]  # fmt: skip
    for round_no, (hook, kill_after, delay) in enumerate(rounds):
        log = tmp_path / f"child{round_no}.log"
        lines = _run_and_kill(root, kitti, 1000 * round_no, hook, kill_after, delay, log, durable)
        for line in lines:
            ledger.apply(line)
        files_before = {p.name for p in (root / "blobs").iterdir()}

        with Spool.open(root, SpoolConfig(max_mb=MAX_MB)) as spool:
            stats = spool.stats()
            entries = {e.frame_id: e for e in spool.entries()}
            files_after = {p.name for p in spool.blobs_dir.iterdir()}

            assert stats.lost_frames == 0  # no committed row ever lacks its complete blob
            for fid, score in ledger.expected.items():
                assert fid in entries or ledger.may_be_missing(fid), f"round {round_no}: committed {fid} lost"
                if fid in entries:
                    assert entries[fid].score == score
            in_flight = ledger.pending[1] if ledger.pending and ledger.pending[0] == "put" else None
            assert set(entries) <= set(ledger.expected) | {in_flight}
            for fid in entries:
                _check_entry(spool, fid)

            # exactly the unreferenced files (temp files, blobs renamed but never committed) were removed, counted
            assert files_after == {e.blob_path.name for e in entries.values()}
            assert files_after <= files_before
            assert stats.orphans_removed - orphans_total == len(files_before - files_after)
            if hook != "free":  # killed inside a crash window: there was an orphan to remove
                assert stats.orphans_removed > orphans_total, f"round {round_no} ({hook}): no orphan"
            if hook == "after-rename":  # renamed, never committed: not in the spool
                assert in_flight is not None and in_flight not in entries
            orphans_total = stats.orphans_removed
            assert stats.frames == len(entries) and stats.bytes == sum(e.blob_bytes for e in entries.values())
            assert stats.bytes <= spool.budget_bytes

        ledger.expected = {fid: e.score for fid, e in entries.items()}
        ledger.pending = None
    assert ledger.committed_puts >= sum(k for _, k, _ in rounds)
    assert orphans_total >= 3
