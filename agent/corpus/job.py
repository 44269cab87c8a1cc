"""One drive's work, as it runs where the work runs (the driver itself, a pool process or a Ray task).

`run_drive` replays (or, for tune, scores) one drive with exactly the single-drive code path and returns a small,
picklable result: the figures the fleet summary needs, or `ok: False` with a one-line reason. Outputs go to
`job.dest` when the worker shares the driver's disk (local pool), or are returned as file contents (`files`) for
the driver to write (Ray: a retried task then never leaves half a drive or a drive twice on disk).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.config.model import AgentConfig
from agent.corpus.manifest import Drive
from agent.errors import EdgesiftError

log = logging.getLogger(__name__)

REPLAY = "replay"
SCORE = "score"  # tune: the drive's scores.cache
STREAK_MIN = 5  # consecutive harmful frames of one sensor that the fleet summary lists as a harmful streak
DAMAGED = "corrupt_recording"  # the skip reason of a damaged stretch of a recording, read past or up to
# Where a Ray task writes the drive's outputs before returning them (memory, when it has room); the task's folder
# in it is made by mkdtemp (private, unique name).
SCRATCH = "/dev/shm"  # noqa: S108
SCRATCH_ROOM = 16  # /dev/shm is used when it has this many times the drive's input bytes free (and 1 GiB) ...
SCRATCH_MIN_FREE = 1 << 30  # ... outputs (kept frames, their spool copies) stay well below that, even from video


@dataclass(frozen=True)
class DriveJob:
    drive: Drive
    config: dict[str, Any]  # AgentConfig as JSON: the same on every node
    kind: str = REPLAY
    dest: str | None = None  # output folder on a disk the driver sees; None: return the files
    assess_threads: int = 1
    baselines: bool = True  # tune only


_frames: Any = None  # multiprocessing.Value("q") this process adds each decided frame to (the progress bar)


def count_frames_into(counter: Any) -> None:
    """Count this process's decided frames into `counter` (None: stop); a pool's worker initializer."""
    global _frames
    _frames = counter


def _count_frame() -> None:
    with _frames.get_lock():
        _frames.value += 1


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    return message if isinstance(exc, EdgesiftError) else f"{type(exc).__name__}: {message}".rstrip(": ")


def harmful_streaks(decisions: Path) -> dict[str, dict[str, int]]:
    """Per sensor, its longest run of consecutive harmful verdicts (frames, first t_ns), in decision order."""
    longest: dict[str, dict[str, int]] = {}
    run: dict[str, tuple[int, int]] = {}  # sensor -> (length, start t_ns)
    with decisions.open(encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            sensor = str(record["sensor"])
            if record["verdict"] != "harmful":
                run[sensor] = (0, 0)
                longest.setdefault(sensor, {"frames": 0, "start_t_ns": 0})
                continue
            length, start = run.get(sensor, (0, 0))
            run[sensor] = (length + 1, start if length else int(record["t_ns"]))
            best = longest.setdefault(sensor, {"frames": 0, "start_t_ns": 0})
            if run[sensor][0] > best["frames"]:
                best.update(frames=run[sensor][0], start_t_ns=run[sensor][1])
    return longest


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _replay(job: DriveJob, config: AgentConfig, out: Path) -> dict[str, Any]:
    from agent.replay.runner import DECISIONS, run_replay  # deferred: the Ray worker imports this module first

    summary = run_replay(list(job.drive.inputs), out, config, progress=False, assess_threads=job.assess_threads,
                         on_frame=_count_frame if _frames is not None else None, flush=job.dest is not None)
    keys = ("frames_in", "frames_kept", "bytes_in", "bytes_kept", "by_verdict", "by_primary_reason", "by_reason",
            "by_rule", "by_sensor", "t_first_ns", "t_last_ns", "elapsed_s", "frames_per_s")
    result = {k: summary[k] for k in keys}
    result["skipped"] = summary["skipped"]["count"]
    result["skipped_by_reason"] = summary["skipped"]["by_reason"]
    # The first damaged stretch of the drive's recordings, for the fleet view's list of damaged drives.
    result["damage"] = next((i["detail"] for i in summary["skipped"]["items"] if i["reason"] == DAMAGED), "")
    result["harmful_streaks"] = harmful_streaks(out / DECISIONS)
    result["decisions_sha256"] = _digest(out / DECISIONS)
    return result


def _score(job: DriveJob, config: AgentConfig, out: Path) -> dict[str, Any]:
    from agent.tune.cache import CACHE_FILE, cache_key, save_cached, score_recording

    inputs = list(job.drive.inputs)
    cache = score_recording(inputs, config, baselines=job.baselines, progress=False)
    save_cached(out / CACHE_FILE, cache_key(inputs, config, job.baselines), cache)
    return {"frames_in": len(cache.frames), "skipped": len(cache.skipped), "elapsed_s": round(cache.score_s, 3),
            "frames_per_s": round(len(cache.frames) / cache.score_s, 2) if cache.score_s > 0 else 0.0}


def _pack(root: Path) -> dict[str, np.ndarray]:
    # uint8 arrays, not bytes: Ray stores numpy buffers out of band, so a drive's tens of MB are copied once into
    # the object store and the driver writes them from shared memory (bytes are pickled in band and copied on both
    # sides; measured ~0.1 s more per 20 MB drive, see issue 12b)
    return {str(p.relative_to(root)): np.fromfile(p, dtype=np.uint8) for p in sorted(root.rglob("*")) if p.is_file()}


def input_bytes(paths: tuple[str, ...] | list[str]) -> int:
    total = 0
    for raw in paths:
        path = Path(raw)
        with contextlib.suppress(OSError):
            files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
            total += sum(p.stat().st_size for p in files)
    return total


def scratch_dir(job: DriveJob) -> str | None:
    """The folder a task that returns its files (Ray) replays into: memory (/dev/shm) when it has ample room, else
    the default temporary folder. That copy is read back and deleted, so it is not flushed to disk (that would
    only stall the worker); the driver flushes the copy it installs (runner._install)."""
    try:
        free = shutil.disk_usage(SCRATCH).free
    except OSError:
        return None
    room = max(SCRATCH_MIN_FREE, SCRATCH_ROOM * input_bytes(job.drive.inputs))
    return SCRATCH if free >= room and os.access(SCRATCH, os.W_OK) else None


def run_drive(job: DriveJob) -> dict[str, Any]:
    """Do one drive's work; never raises for a bad drive (the result says why it failed)."""
    started, cpu = time.perf_counter(), time.process_time()
    head = {"id": job.drive.id, "vehicle": job.drive.vehicle, "condition": job.drive.condition,
            "worker": f"{socket.gethostname()}:{os.getpid()}"}
    work = _replay if job.kind == REPLAY else _score
    try:
        config = AgentConfig.model_validate(job.config)
        if job.dest is not None:
            dest = Path(job.dest)
            dest.mkdir(parents=True, exist_ok=True)
            result = work(job, config, dest)
        else:
            with tempfile.TemporaryDirectory(prefix=f"edgesift-{job.drive.id}-", dir=scratch_dir(job)) as tmp:
                result = work(job, config, Path(tmp))
                result["files"] = _pack(Path(tmp))
    except Exception as exc:  # a bad drive is reported, the corpus goes on (the traceback goes to the log)
        expected = isinstance(exc, EdgesiftError)
        log.log(logging.INFO if expected else logging.WARNING, "event=drive_failed drive=%s", job.drive.id,
                exc_info=not expected)
        return {**head, "ok": False, "error": one_line(exc), "wall_s": round(time.perf_counter() - started, 3)}
    # cpu_s: this process's CPU time on the drive (all its threads), what the drive costs on a core of its own
    return {**head, "ok": True, **result, "wall_s": round(time.perf_counter() - started, 3),
            "cpu_s": round(time.process_time() - cpu, 3)}
