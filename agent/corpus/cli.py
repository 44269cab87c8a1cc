"""`edgesift replay|tune --manifest FILE [--workers N | --ray ADDRESS]`: a fleet's corpus of drives."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from agent.errors import ConfigError


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 4096:
        raise argparse.ArgumentTypeError(f"must be 1..4096: {text!r}")
    return value


def add_options(cmd: argparse.ArgumentParser) -> None:
    group = cmd.add_argument_group("corpus (many drives)")
    group.add_argument("--manifest", metavar="FILE", help="drives to run: JSON lines or a YAML list of "
                       '{"id", "vehicle", "inputs": [paths], "labels", "condition"}; outputs in DIR/drives/<id>/')
    group.add_argument("--workers", type=_workers, metavar="N", help="local processes (default: this machine's "
                       "cores); with plain INPUTs, threads that assess frames ahead")
    group.add_argument("--ray", metavar="ADDRESS", help="run the drives as Ray tasks on this cluster (host:port, "
                       "or auto for RAY_ADDRESS); needs pip install 'edgesift[fleet]' and inputs every node sees")
    group.add_argument("--rerun", action="store_true", help="run every drive again, even those already done with "
                       "the same inputs and config")


def wanted(args: argparse.Namespace) -> bool:
    """True when the command runs over a manifest; checks the options make sense together."""
    if args.manifest and args.inputs:
        raise ConfigError("give INPUT... or --manifest FILE, not both")
    if not args.manifest and not args.inputs:
        raise ConfigError("nothing to run: give INPUT... or --manifest FILE")
    if args.ray and args.workers:
        raise ConfigError("--workers is for the local pool; on Ray the cluster's CPUs set the parallelism")
    if args.ray and not args.manifest:
        raise ConfigError("--ray runs a --manifest of drives")
    return bool(args.manifest)


def _progress(args: argparse.Namespace) -> bool | None:
    return False if args.quiet else None


def cmd_replay(args: argparse.Namespace) -> int:
    from agent.config import load_config
    from agent.corpus.manifest import load_manifest
    from agent.corpus.report import write_fleet_report
    from agent.corpus.runner import run_corpus
    from agent.corpus.summary import fleet_summary

    drives = load_manifest(args.manifest)
    config = load_config(args.config)
    out = Path(args.out)
    run = run_corpus(drives, out, config, workers=args.workers, ray=args.ray, progress=_progress(args),
                     rerun=args.rerun)
    summary = fleet_summary(run)
    write_json(out / "summary.json", summary)
    write_fleet_report(out / "report.html", summary)
    print_summary(summary, out)
    return 0 if summary["drives"]["ok"] else 1


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


def print_summary(summary: dict[str, Any], out: Path) -> None:
    d, run = summary["drives"], summary["run"]
    print(f"{d['total']} drives: {d['replayed']} replayed, {d['reused']} already done, {d['failed']} failed "
          f"({run['executor']}, {run['slots']} at once, {run['frames_per_s']:.1f} frames/s)")
    print(f"kept {summary['frames_kept']} of {summary['frames_in']} frames "
          f"({summary['bytes_kept'] / 1e6:.1f} of {summary['bytes_in'] / 1e6:.1f} MB); "
          f"verdicts: {json.dumps(summary['by_verdict'], sort_keys=True)}")
    for failure in summary["failed"]:
        print(f"failed: {failure['id']}: {failure['reason']}")
    print(f"report: {out / 'report.html'}")
