"""`edgesift replay|tune --manifest FILE [--workers N | --ray ADDRESS]`: a fleet's corpus of drives."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from agent.errors import ConfigError
from agent.processes import CORPUS_PRELOAD, default_workers, start_fork_server


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


def wanted(args: argparse.Namespace, workers_without_manifest: bool = True) -> bool:
    """True when the command runs over a manifest; checks the options make sense together."""
    if args.manifest and args.inputs:
        raise ConfigError("give INPUT... or --manifest FILE, not both")
    if not args.manifest and not args.inputs:
        raise ConfigError("nothing to run: give INPUT... or --manifest FILE")
    if args.ray and args.workers:
        raise ConfigError("--workers is for the local pool; on Ray the cluster's CPUs set the parallelism")
    if args.ray and not args.manifest:
        raise ConfigError("--ray runs a --manifest of drives")
    if args.workers and not args.manifest and not workers_without_manifest:
        raise ConfigError("--workers runs a --manifest of drives")
    return bool(args.manifest)


def start_pool_early(args: argparse.Namespace) -> None:
    """A job for the local pool starts its fork server first, before this process imports the agent: the two
    import side by side (a pool's start was 0.3 s of one core's wall time before any drive ran). A manifest of
    one drive then runs inline and the server goes unused, at no cost to the job's wall time."""
    if not args.ray and (args.workers or default_workers()) > 1:
        start_fork_server(CORPUS_PRELOAD)


def _progress(args: argparse.Namespace) -> bool | None:
    return False if args.quiet else None


def cmd_replay(args: argparse.Namespace) -> int:
    if getattr(args, "broker", None):
        raise ConfigError("--broker streams one replay's spool; for a corpus run `edgesift uplink --spool "
                          "DIR/drives/<id>/spool` per drive")
    if getattr(args, "start", None):
        raise ConfigError("--start sets one replay's clock; a corpus's drives keep their own (or start together "
                          "when they have none)")
    start_pool_early(args)
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


def cmd_tune(args: argparse.Namespace, config: Any, target: Any) -> int:
    from agent.corpus.manifest import load_manifest
    from agent.corpus.tune import run_corpus_tune
    from agent.tune.cli import print_outcome

    if args.labels:
        raise ConfigError("--labels is for one drive; in a manifest each drive names its own labels")
    drives = load_manifest(args.manifest)
    out = Path(args.out)
    result, run = run_corpus_tune(drives, out, config, target, workers=args.workers, ray=args.ray,
                                  progress=_progress(args), baselines=not args.no_baselines,
                                  rerun=args.rerun or args.rescore, base_version=args.base_version)
    failed = [r for r in run.results if not r["ok"]]
    print(f"{len(drives)} drives ({run.reused} scored before, {len(failed)} failed; {run.executor}, {run.slots} "
          f"at once): {result['frames']} frames, {result['duration_s']:.0f} s of drive; swept "
          f"{result['timing']['settings']} settings in {result['timing']['sweep_s']:.1f} s")
    for r in failed:
        print(f"failed: {r['id']}: {r['error']}")
    more = tuple(_group_line(f"  {key[4:]} {name}", row["suggested"])
                 for key in ("per_vehicle", "per_condition") for name, row in result[key].items() if "suggested" in row)
    return print_outcome(result, target, out, more + _uneven(result, target))


def _uneven(result: dict[str, Any], target: Any) -> tuple[str, ...]:
    """The target holds for the corpus pooled: say which vehicles the suggestion puts over it, and which keep
    none of their helpful frames (a short drive's MB/h is a rough rate: its budgets' minute has not run out)."""
    rows = {name: row["suggested"] for name, row in result["per_vehicle"].items() if "suggested" in row}
    lines = []
    over = [f"{name} ({row['mb_per_hour']:,.1f} MB/h)" for name, row in rows.items()
            if target.mb_per_hour is not None and row["mb_per_hour"] > target.mb_per_hour]
    over += [f"{name} (keep {100 * row['keep_rate']:.1f}%)" for name, row in rows.items()
             if target.keep_rate is not None and row["keep_rate"] > target.keep_rate]
    if over:
        lines.append(f"note: the target holds for the corpus as a whole; over it: {', '.join(over)}")
    starved = [name for name, row in rows.items() if row.get("helpful_kept") == 0.0]
    if starved:
        lines.append(f"note: no helpful frame kept of vehicle{'s' if len(starved) > 1 else ''} {', '.join(starved)}")
    return tuple(lines)


def _group_line(name: str, row: dict[str, Any]) -> str:
    def pct(key: str) -> str:
        return "-" if row.get(key) is None else f"{100 * row[key]:.1f}%"

    return (f"{name}: keep {pct('keep_rate')} of frames, {row['mb_per_hour']:,.1f} MB/h, helpful kept "
            f"{pct('helpful_kept')}, harmful caught {pct('harmful_caught')}")
