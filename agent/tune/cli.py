"""`edgesift tune INPUT... --out DIR [--target-mb-per-hour X] [--target-keep-rate R] [--labels FILE]`."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

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
    cmd.add_argument("--base-version", type=int, metavar="N", help="config version the vehicles run now: the "
                     "suggestion gets N+1 (default: the --config file's version + 1)")
    cmd.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    corpus_cli.add_options(cmd)
    cmd.set_defaults(func=_cmd_tune)


def _pct(value: float | None, none: str) -> str:
    return none if value is None else f"{100 * value:.1f}%"


def _line(name: str, row: dict[str, Any], pseudo: bool = False) -> str:
    text = (f"{name}: keep {100 * row['keep_rate']:.1f}% of frames, {row['mb_per_hour']:,.1f} MB/h stored, "
            f"{100 * row['bytes_dropped']:.1f}% of bytes dropped")
    if row.get("helpful_kept") is not None or row.get("harmful_caught") is not None:
        text += (f", helpful kept {_pct(row.get('helpful_kept'), 'n/a (none)')}, "
                 f"harmful caught {_pct(row.get('harmful_caught'), 'n/a (no harmful frame)')}")
        if pseudo:
            text += " (pseudo-labels: the current config's verdicts)"
    return text


def _cmd_tune(args: argparse.Namespace) -> int:
    corpus = corpus_cli.wanted(args, workers_without_manifest=False)
    if corpus:
        corpus_cli.start_pool_early(args)
    from agent.config import load_config  # deferred: keeps `edgesift --help` fast (and the pool's start early)
    from agent.tune.runner import run_tune
    from agent.tune.sweep import Target

    config = load_config(args.config)
    target = Target(args.target_mb_per_hour, args.target_keep_rate)
    out = Path(args.out)
    if corpus:
        return corpus_cli.cmd_tune(args, config, target)
    result = run_tune(args.inputs, out, config, target, Path(args.labels) if args.labels else None,
                      baselines=not args.no_baselines, progress=False if args.quiet else None,
                      rescore=args.rescore, base_version=args.base_version)
    t = result["timing"]
    how = f"reused the scores in {out} (made in {t['score_s']:.1f} s)" if t["scores_reused"] else \
        f"scored them in {t['score_s']:.1f} s"
    print(f"{result['frames']} frames ({result['duration_s']:.0f} s of drive): {how}; "
          f"swept {t['settings']} settings in {t['sweep_s']:.1f} s")
    return print_outcome(result, target, out)


def print_outcome(result: dict[str, Any], target: Any, out: Path, suggested_more: tuple[str, ...] = ()) -> int:
    """The bytes basis, current, baseline and suggested figures; exit status 1 when no setting meets the target
    (the best reachable figure is stated and no suggestion is written)."""
    from agent.tune.runner import SUGGESTED, SWEEP_HTML

    pseudo = result["labels"].get("path") is None
    b = result["bytes"]
    print(f"bytes: {b['input'] / 1e6:,.1f} MB as input, {b['stored'] / 1e6:,.1f} MB if all were stored; "
          "MB/h and budgets count stored bytes")
    print(_line("current config", result["current"], pseudo))
    for row in result.get("baselines", [])[1:]:
        print(_line(f"  baseline {row['method']}", row, pseudo))
    status = 0
    if target.given:
        if result["suggested"] is None:
            best = result.get("best_reachable")
            reach = (f"; the lowest any swept setting reaches while keeping frames is {best['mb_per_hour']:,.1f} "
                     f"MB/h ({best['modality']}) and a keep rate of {100 * best['keep_rate']:.1f}%") if best else ""
            print(f"edgesift: error: no setting in the sweep meets the target{reach}; no suggestion written",
                  file=sys.stderr, flush=True)
            status = 1
        else:
            print(_line("suggested", result["suggested"], pseudo))
            for line in suggested_more:
                print(line)
            print(f"config: {out / SUGGESTED} (check with `edgesift config validate`, push with "
                  "`edgesift fleet config push`)")
    print(f"report: {out / SWEEP_HTML}")
    return status
