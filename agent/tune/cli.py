"""`edgesift tune INPUT... --out DIR [--target-mb-per-hour X] [--target-keep-rate R] [--labels FILE]`."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from agent.config import load_config
from agent.corpus import cli as corpus_cli


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def _rate(text: str) -> float:
    value = _positive(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"a keep rate is a fraction in (0, 1]: {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cmd = sub.add_parser("tune", help="what-if sweep of thresholds and budgets on recorded drives; suggest a config")
    cmd.add_argument("inputs", nargs="*", metavar="INPUT", help="recorded drives (as for replay)")
    cmd.add_argument("--out", required=True, metavar="DIR", help="output folder (sweep.json, sweep.html, "
                     "suggested.yaml)")
    cmd.add_argument("--config", metavar="FILE", help="agent config the sweep starts from; defaults when omitted")
    cmd.add_argument("--target-mb-per-hour", type=_positive, metavar="X",
                     help="suggest the config with the best helpful-kept rate at or under X MB per hour")
    cmd.add_argument("--target-keep-rate", type=_rate, metavar="R",
                     help="suggest the config with the best helpful-kept rate keeping at most this fraction of frames")
    cmd.add_argument("--labels", metavar="FILE", help="ground-truth labels.jsonl (default: one beside the input)")
    cmd.add_argument("--no-baselines", action="store_true", help="skip the baseline comparison (faster)")
    cmd.add_argument("--rescore", action="store_true", help="score again even if DIR holds scores of these inputs")
    cmd.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    corpus_cli.add_options(cmd)
    cmd.set_defaults(func=_cmd_tune)


def _line(name: str, row: dict[str, Any]) -> str:
    text = (f"{name}: keep {100 * row['keep_rate']:.1f}% of frames, {row['mb_per_hour']:,.1f} MB/h, "
            f"{100 * row['bytes_dropped']:.1f}% of bytes dropped")
    if row.get("helpful_kept") is not None:
        text += f", helpful kept {100 * row['helpful_kept']:.1f}%, harmful caught {100 * row['harmful_caught']:.1f}%"
    return text


def _cmd_tune(args: argparse.Namespace) -> int:
    from agent.tune.runner import run_tune  # deferred: keeps `edgesift --help` fast
    from agent.tune.sweep import Target

    config = load_config(args.config)
    target = Target(args.target_mb_per_hour, args.target_keep_rate)
    out = Path(args.out)
    if corpus_cli.wanted(args, workers_without_manifest=False):
        return corpus_cli.cmd_tune(args, config, target)
    result = run_tune(args.inputs, out, config, target, Path(args.labels) if args.labels else None,
                      baselines=not args.no_baselines, progress=False if args.quiet else None,
                      rescore=args.rescore)
    t = result["timing"]
    how = f"reused the scores in {out} (made in {t['score_s']:.1f} s)" if t["scores_reused"] else \
        f"scored them in {t['score_s']:.1f} s"
    print(f"{result['frames']} frames ({result['duration_s']:.0f} s of drive): {how}; "
          f"swept {t['settings']} settings in {t['sweep_s']:.1f} s")
    return print_outcome(result, target, out)


def print_outcome(result: dict[str, Any], target: Any, out: Path, suggested_more: tuple[str, ...] = ()) -> int:
    """The current, baseline and suggested figures; exit status 1 when no setting meets the target."""
    from agent.tune.runner import SUGGESTED, SWEEP_HTML

    print(_line("current config", result["current"]))
    for row in result.get("baselines", [])[1:]:
        print(_line(f"  baseline {row['method']}", row))
    status = 0
    if target.given:
        if result["suggested"] is None:
            print("edgesift: error: no setting in the sweep meets the target", flush=True)
            status = 1
        else:
            print(_line("suggested", result["suggested"]))
            for line in suggested_more:
                print(line)
            print(f"config: {out / SUGGESTED} (check with `edgesift config validate`, push with "
                  "`edgesift fleet config push`)")
    print(f"report: {out / SWEEP_HTML}")
    return status
