"""Run a corpus of drives: skip what is done, farm out the rest, write each drive's outputs as it finishes.

    DIR/drives/<id>/      the drive's outputs, as `edgesift replay` writes them (tune: its scores.cache)
    DIR/drives/<id>/drive.json   what it was made from (key) and its figures: a rerun skips a drive whose key holds
    DIR/summary.json, DIR/report.html   the fleet view (agent.corpus.summary)

A drive's folder appears whole or not at all: it is written under DIR/drives/.<id>.partial and renamed. A drive
interrupted mid-way (Ctrl-C, a killed job) leaves no drive.json, so the rerun does it again.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from agent.config.model import AgentConfig
from agent.corpus.executors import Executor, InlineExecutor, PoolExecutor, RayExecutor
from agent.corpus.job import REPLAY, DriveJob
from agent.corpus.manifest import Drive
from agent.processes import default_workers
from agent.spool.files import flush_disk, fsync_dir

DRIVES = "drives"
DRIVE_JSON = "drive.json"


@dataclass
class CorpusRun:
    results: list[dict[str, Any]]  # one per drive, in manifest order
    executor: str
    slots: int
    elapsed_s: float
    reused: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def drive_config(config: AgentConfig) -> dict[str, Any]:
    """The config every drive runs with: the user's, with the spool inside the drive's own folder."""
    data = config.model_dump(mode="json")
    data["spool"]["path"] = "spool"  # an absolute spool path would be shared by every drive
    return data


def drive_key(drive: Drive, config: dict[str, Any], kind: str, extra: dict[str, Any],
              files: list[list[Any]] | None) -> str | None:
    """What a drive's outputs depend on (`files`: its inputs on disk, from input_files; config, code); None when
    the inputs are unreadable (the drive then always runs, and fails with its reason)."""
    from agent import __version__
    from agent.fingerprint import code_fingerprint

    if files is None:
        return None
    blob = {"kind": kind, "drive": drive.model_dump(mode="json"), "files": files, "config": config,
            "edgesift": __version__, "code": code_fingerprint(), **extra}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def input_files(drive: Drive) -> list[list[Any]] | None:
    """Per input: its path and (name, bytes, mtime) of each file in it; None when one cannot be read."""
    files = []
    try:
        for raw in drive.inputs:
            path = Path(raw)
            paths = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
            files.append([str(path), [(str(p.relative_to(path)) if path.is_dir() else p.name, p.stat().st_size,
                                       p.stat().st_mtime_ns) for p in paths]])
    except OSError:
        return None
    return files


def largest_first(drives: Sequence[Drive], files: dict[str, list[list[Any]] | None]) -> list[Drive]:
    """The drives by their inputs' size (`files`: input_files per drive id), largest first (ties, and unreadable
    inputs last, in manifest order): a long drive started last would leave the other workers idle while it ends
    alone."""
    def size(drive: Drive) -> int:
        return sum(entry[1] for _, entries in files.get(drive.id) or [] for entry in entries)

    return sorted(drives, key=lambda d: -size(d))


def _done(folder: Path, key: str | None) -> dict[str, Any] | None:
    if key is None:
        return None
    try:
        saved = json.loads((folder / DRIVE_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return saved.get("result") if isinstance(saved, dict) and saved.get("key") == key else None


def _install(drives_dir: Path, result: dict[str, Any], key: str | None) -> None:
    """Move (or write, from a Ray task's files) the drive's outputs into place, with drive.json last."""
    partial = drives_dir / f".{result['id']}.partial"
    final = drives_dir / result["id"]
    files = result.pop("files", None)
    if files is not None:
        shutil.rmtree(partial, ignore_errors=True)
        _write_durably(partial, files)
    if not result["ok"]:
        shutil.rmtree(partial, ignore_errors=True)
        return
    (partial / DRIVE_JSON).write_text(json.dumps({"key": key, "result": result}, indent=1) + "\n", encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    if files is not None:
        fsync_dir(drives_dir)


def _write_durably(root: Path, files: dict[str, Any]) -> None:
    """Write a Ray task's returned files under `root` and flush the disk once, as a local replay ends (the task
    replayed into a scratch copy, in memory where it could)."""
    for rel, data in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    flush_disk()


def make_executor(workers: int | None, ray: str | None, drives: int) -> Executor:
    if ray:
        return RayExecutor(ray)
    n = workers or default_workers()
    return InlineExecutor(multiprocessing.Value("q", 0)) if n <= 1 or drives <= 1 else PoolExecutor(min(n, drives))


class CorpusProgress:
    """The corpus progress bar: drives done (and time left) on the bar; frames decided and frames/s beside it,
    refreshed twice a second from the executor's frame counter (per finished drive where it has none: Ray)."""

    def __init__(self, bar: tqdm, counter: Any) -> None:
        self.bar, self.counter = bar, counter
        self.started = time.perf_counter()
        self.finished_frames = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="corpus-progress", daemon=True)
        if not bar.disable:
            self._thread.start()

    def frames(self) -> int:
        return max(self.finished_frames, self.counter.value if self.counter is not None else 0)

    def _show(self) -> None:
        n, elapsed = self.frames(), max(1e-9, time.perf_counter() - self.started)
        self.bar.set_postfix_str(f"{n:,} frames, {n / elapsed:,.1f} frames/s", refresh=True)

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            self._show()

    def drive_done(self, frames: int) -> None:
        self.finished_frames += frames
        self._show()
        self.bar.update()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.bar.close()


def run_corpus(
    drives: Sequence[Drive], out: Path, config: AgentConfig, *, kind: str = REPLAY, workers: int | None = None,
    ray: str | None = None, progress: bool | None = None, baselines: bool = True, rerun: bool = False,
) -> CorpusRun:
    """Run every drive not already done with the same inputs and config; returns all drives' results."""
    drives_dir = out / DRIVES
    drives_dir.mkdir(parents=True, exist_ok=True)
    cfg = drive_config(config)
    extra = {"baselines": baselines} if kind != REPLAY else {}
    files = {d.id: input_files(d) for d in drives}  # one walk of each drive's inputs: its key and its size
    keys = {d.id: drive_key(d, cfg, kind, extra, files[d.id]) for d in drives}
    results: dict[str, dict[str, Any]] = {}
    todo: list[Drive] = []
    for drive in drives:
        saved = None if rerun else _done(drives_dir / drive.id, keys[drive.id])
        if saved is not None:
            results[drive.id] = {**saved, "reused": True}
        else:
            todo.append(drive)
    todo = largest_first(todo, files)
    executor = make_executor(workers, ray, len(todo))
    # Fewer drives than cores: each drive assesses its frames ahead on the spare ones; side by side, one core each.
    threads = 1 if ray or not todo else max(1, min(4, (workers or default_workers()) // len(todo)))
    local = executor.name != "ray"
    jobs = [DriveJob(d, cfg, kind, str(drives_dir / f".{d.id}.partial") if local else None, threads, baselines)
            for d in todo]
    for drive in todo:  # what an interrupted run left half-written
        shutil.rmtree(drives_dir / f".{drive.id}.partial", ignore_errors=True)
    started = time.perf_counter()
    bar = CorpusProgress(tqdm(total=len(drives), initial=len(results), unit="drive", desc=kind,
                              disable=None if progress is None else not progress), executor.counter)
    try:
        for job, result in executor.run(jobs):
            _install(drives_dir, result, keys[job.drive.id])
            results[job.drive.id] = {**result, "reused": False}
            bar.drive_done(int(result.get("frames_in", 0)))
    finally:
        bar.close()
        executor.close()
    elapsed = time.perf_counter() - started
    ordered = [results[d.id] for d in drives]
    return CorpusRun(ordered, executor.name, executor.slots, elapsed, reused=len(drives) - len(todo))
