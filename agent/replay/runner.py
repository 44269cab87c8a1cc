"""`edgesift replay`: run recorded drives through the on-vehicle path and write what it would keep, and why."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from agent.config.model import AgentConfig
from agent.daemon.snippets import SnippetKeeper, store_snippet
from agent.frame import Skip
from agent.health import SensorHealth
from agent.pipeline import FramePipeline
from agent.policy import Policy, rules
from agent.replay.mcap_out import write_kept_mcap
from agent.report import SummaryBuilder, ThumbnailCollector, write_report
from agent.scoring.factory import make_scorer
from agent.sources import merge, open_inputs
from agent.spool import Spool

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
                record["rule"] = revoked.get(fid, rules.DROP_EVICTED)
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
            records.append(record)
    partial.unlink()
    return records


def run_replay(inputs: list[str], out_dir: Path, config: AgentConfig, progress: bool | None = None) -> dict[str, Any]:
    """Replay `inputs` through the policy; write decisions, summary, kept.mcap and report.html into out_dir."""
    sources = open_inputs(inputs, config.inputs)  # raises InputError before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    summary = SummaryBuilder()
    thumbs = ThumbnailCollector(config.report.thumbnails_per_group, config.report.thumbnail_width)
    revoked: dict[str, str] = {}
    snipped: dict[str, dict[str, Any]] = {}  # frame id -> its keep:snippet record
    snippets = SnippetKeeper(config.snippets)
    health = SensorHealth(config.health)  # the alerts the vehicle would raise on this drive
    partial = out_dir / (DECISIONS + ".partial")
    with Spool.open(_fresh_spool_root(config, out_dir), config.spool) as spool:
        pipeline = FramePipeline(make_scorer(config), Policy(config.policy), spool)
        with partial.open("w", encoding="utf-8") as fh, tqdm(
            desc="replay", unit="frame", disable=None if progress is None else not progress, leave=False
        ) as bar:
            for item in merge(sources, config.inputs.max_frames):
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
        present = {entry.frame_id for entry in spool.entries()}
        records = _finalise(partial, out_dir / DECISIONS, revoked, present, snipped)
        elapsed = time.perf_counter() - started
        for record in records:
            summary.add(record)
        mcap_counts = write_kept_mcap(out_dir / KEPT_MCAP, spool, records)
        spool_stats = spool.stats()
    result = summary.build(elapsed, list(inputs), config.version)
    result["spool"] = dataclasses.asdict(spool_stats)
    result["kept_mcap"] = mcap_counts
    result["scorer"] = pipeline.scorer.name
    result["alerts"] = list(health.events)
    (out_dir / SUMMARY).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    write_report(out_dir / REPORT, result, records, thumbs.groups())
    return result
