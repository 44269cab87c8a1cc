"""`edgesift replay`: run recorded drives through the on-vehicle path and write what it would keep, and why."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from agent.config.model import AgentConfig
from agent.corpus.ahead import assess_ahead
from agent.daemon.snippets import SnippetKeeper, store_snippet
from agent.errors import InputError
from agent.frame import Skip
from agent.health import SensorHealth
from agent.pipeline import FramePipeline
from agent.policy import Policy, rules
from agent.processes import opencv_one_thread
from agent.replay.mcap_out import clock_metadata, write_kept_mcap
from agent.report import SummaryBuilder, ThumbnailCollector, write_report
from agent.scoring.factory import make_scorer
from agent.sources import merge, open_inputs
from agent.sources.clocks import align, clock_report
from agent.sources.merge import MergeStats
from agent.spool import Spool
from agent.spool.files import flush_disk

log = logging.getLogger(__name__)

DECISIONS = "decisions.jsonl"
SUMMARY = "summary.json"
KEPT_MCAP = "kept.mcap"
REPORT = "report.html"


def _fresh_spool_root(config: AgentConfig, out_dir: Path) -> Path:
    root = Path(config.spool.path)
    root = root if root.is_absolute() else out_dir / root
    # A replay's spool shows what this run keeps; leftovers from an earlier run in the same folder would lie.
    if root.exists() and out_dir.resolve() in root.resolve().parents:
        shutil.rmtree(root)
    return root


def _read_records(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)


def _finalise(
    partial: Path, final: Path, revoked: dict[str, str], present: set[str], snipped: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Rewrite the decisions with each frame's final fate: kept means 'in the spool at the end'."""
    records = []
    with final.open("w", encoding="utf-8") as out:
        for record in _read_records(partial):
            fid = record["frame_id"]
            record.update(snipped.get(fid, {}))  # dropped by the policy, kept by a snippet window later
            if record["kept"] and fid not in present:
                record["kept"] = False
                record["stored_bytes"] = 0
                record["rule"] = revoked.get(fid, rules.DROP_EVICTED)
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
            records.append(record)
    partial.unlink()
    return records


def run_replay(
    inputs: list[str], out_dir: Path, config: AgentConfig, progress: bool | None = None,
    start_ns: int | None = None, assess_threads: int = 1, on_frame: Callable[[], None] | None = None,
    flush: bool = True,
) -> dict[str, Any]:
    """Replay `inputs` through the policy; write decisions, summary, kept.mcap and report.html into out_dir.

    Inputs without wall-clock time start at `start_ns` when given, else with the others (see sources.clocks).
    With `assess_threads` > 1 the history-free part of each verdict runs ahead in threads (agent.corpus.ahead);
    the decisions are the same. `flush=False` leaves the outputs unflushed (a scratch copy that the caller reads
    back and installs elsewhere).
    """
    sources = open_inputs(inputs, config.inputs)  # raises InputError before anything is written
    opencv_one_thread()  # parallel across frames (assess_threads, corpus workers), not inside each OpenCV call
    make_out_dir(out_dir)
    clocks = align(sources, start_ns)
    stats = MergeStats()
    started = time.perf_counter()
    summary = SummaryBuilder()
    thumbs = ThumbnailCollector(config.report.thumbnails_per_group, config.report.thumbnail_width)
    revoked: dict[str, str] = {}
    snipped: dict[str, dict[str, Any]] = {}  # frame id -> its keep:snippet record
    snippets = SnippetKeeper(config.snippets)
    health = SensorHealth(config.health)  # the alerts the vehicle would raise on this drive
    partial = out_dir / (DECISIONS + ".partial")
    # The run's spool shows what the policy keeps; a rerun rebuilds it, so it is written without per-frame fsyncs
    # (fsyncs and index commits took about a sixth of a 60-frame replay here) and the output is flushed once at the end.
    with Spool.open(_fresh_spool_root(config, out_dir), config.spool, durable=False) as spool:
        merged = merge(sources, config.inputs.max_frames, [c.offset_ns for c in clocks], stats)
        scorer, items = assess_ahead(make_scorer(config), merged, assess_threads)
        pipeline = FramePipeline(scorer, Policy(config.policy), spool)
        with partial.open("w", encoding="utf-8") as fh, tqdm(
            desc="replay", unit="frame", disable=None if progress is None else not progress, leave=False
        ) as bar:
            for item in items:
                if isinstance(item, Skip):
                    summary.add_skip(item.as_dict())
                    continue
                outcome = pipeline.process(item)
                revoked.update(outcome.revoked)
                health.observe(outcome.record)
                for keep in snippets.offer(item, outcome):
                    snipped[keep.frame_id] = store_snippet(spool, pipeline.scorer, keep)
                thumbs.offer(item, outcome.record)
                fh.write(json.dumps(outcome.record, separators=(",", ":")) + "\n")
                bar.update()
                if on_frame is not None:
                    on_frame()
        present = {entry.frame_id for entry in spool.entries()}
        records = _finalise(partial, out_dir / DECISIONS, revoked, present, snipped)
        elapsed = time.perf_counter() - started
        for record in records:
            summary.add(record)
        clock_rows = clock_report(clocks, stats.first_ns)
        clock_meta = {"edgesift.clocks": clock_metadata(clock_rows)}
        mcap_counts = write_kept_mcap(out_dir / KEPT_MCAP, spool, records, clock_meta)
        spool_stats = spool.stats()
    result = summary.build(elapsed, list(inputs), config.version)
    result["spool"] = dataclasses.asdict(spool_stats)
    result["kept_mcap"] = mcap_counts
    result["scorer"] = pipeline.scorer.name
    result["clocks"] = clock_rows
    result["alerts"] = list(health.events)
    (out_dir / SUMMARY).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    write_report(out_dir / REPORT, result, records, thumbs.groups())
    if flush:
        flush_disk()
    _no_frame_inputs(sources, stats, result, config.inputs.max_frames)
    return result


def make_out_dir(out_dir: Path) -> None:
    """Create the output folder, or say in one line why it cannot be (a file there, no permission)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} is a file, not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".edgesift-write-check"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"cannot write to --out {out_dir}: {exc.strerror or exc}") from exc


def _no_frame_inputs(sources: list[Any], stats: MergeStats, result: dict[str, Any], max_frames: int) -> None:
    """An input that gave no frame at all is an error that says why (its skips), unless --max-frames cut it off."""
    if max_frames and result["frames_in"] >= max_frames:
        return
    empty = [s for i, s in enumerate(sources) if not stats.frames.get(i)]
    if not empty:
        return
    reasons = Counter(str(item.get("reason")) for item in result["skipped"]["items"]
                      if any(str(item.get("source", "")).startswith(s.path) for s in empty))
    why = ", ".join(f"{n} {reason}" for reason, n in reasons.most_common(3)) or "nothing readable in it"
    names = ", ".join(s.path for s in empty)
    raise InputError(f"{names} yielded no frame ({why}; see {SUMMARY} under skipped)")
