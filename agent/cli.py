"""The `edgesift` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from agent import __version__
from agent.corpus import cli as corpus_cli
from agent.errors import EdgesiftError
from agent.fleet import cli as fleet_cli
from agent.ingest import cli as ingest_cli
from agent.tune import cli as tune_cli
from agent.uplink import cli as uplink_cli

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def _cmd_replay(args: argparse.Namespace) -> int:
    if corpus_cli.wanted(args):
        return corpus_cli.cmd_replay(args)
    from agent.config import load_config  # deferred (as every heavy import here): keeps `edgesift --help` fast
    from agent.replay.runner import REPORT, run_replay
    from agent.sources.clocks import parse_start

    config = load_config(args.config)
    start_ns = parse_start(args.start) if args.start else None
    uplink_cli.check_broker_first(args, config)
    summary = run_replay(args.inputs, Path(args.out), config, progress=False if args.quiet else None,
                         start_ns=start_ns, assess_threads=args.workers or 1)
    kept, total = summary["frames_kept"], summary["frames_in"]
    mb_in, mb_kept, mb_stored = (summary[k] / 1e6 for k in ("bytes_in", "bytes_kept", "bytes_stored"))
    skipped = summary.get("skipped", {}).get("count", 0)
    print(
        f"replayed {total} frames in {summary['elapsed_s']:.1f} s ({summary['frames_per_s']:.1f} frames/s): "
        f"kept {kept}: {mb_stored:.1f} MB stored (spool and uplink), {mb_kept:.1f} of {mb_in:.1f} MB as input; "
        f"skipped {skipped}"
    )
    for clock in summary.get("clocks", []):
        if not clock["wall_clock"]:
            print(f"clock: {clock['input']} has no wall-clock time ({clock['clock']}): aligned to "
                  f"{clock['aligned_to']}")
    print(f"verdicts: {json.dumps(summary['by_verdict'], sort_keys=True)}")
    print(f"report: {Path(args.out) / REPORT}")
    uplink_cli.after_replay(args, config, summary)
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from agent.app import App
    from agent.config import load_config
    from agent.daemon.lifecycle import setup_logging

    config = load_config(args.config)
    setup_logging(config.daemon.log_format, logging.INFO - 10 * min(args.verbose, 1))
    return App(config, args.config).run()


def _cmd_config_validate(args: argparse.Namespace) -> int:
    from agent.config import validate_file

    config, issues = validate_file(args.file)
    if config is None:
        for issue in issues:
            print(f"{args.file}: {issue}", file=sys.stderr)
        print(f"{args.file}: invalid ({len(issues)} error{'s' if len(issues) != 1 else ''})", file=sys.stderr)
        return EXIT_ERROR
    print(f"{args.file}: valid (version {config.version}, vehicle {config.vehicle_id})")
    return EXIT_OK


def _cmd_config_schema(args: argparse.Namespace) -> int:
    from agent.config import AgentConfig

    print(json.dumps(AgentConfig.model_json_schema(), indent=2))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgesift", description="Edge data filtering for camera and LiDAR fleets.")
    parser.add_argument("--version", action="version", version=f"edgesift {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True)

    replay = sub.add_parser("replay", help="run recorded drives through the filtering policy")
    replay.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="KITTI drive, nuScenes sample or image/scan folder, MCAP, ROS bag or rosbag2 folder, "
                        "video file, Velodyne or Ouster pcap")
    replay.add_argument("--out", required=True, metavar="DIR", help="output folder")
    replay.add_argument("--config", metavar="FILE", help="agent config (YAML); defaults when omitted")
    replay.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    replay.add_argument("--start", metavar="TIME", help="wall-clock start (ISO 8601 or epoch s) for inputs without "
                        "one (video, image folders); default: the start of the other inputs")
    uplink_cli.add_broker_option(replay)
    corpus_cli.add_options(replay)
    replay.set_defaults(func=_cmd_replay)

    run = sub.add_parser("run", help="run the on-vehicle daemon: live sources -> score -> spool -> uplink")
    run.add_argument("--config", required=True, metavar="FILE", help="agent config (YAML); SIGHUP re-reads it")
    run.set_defaults(func=_cmd_run)

    config = sub.add_parser("config", help="check or describe configuration files")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    validate = config_sub.add_parser("validate", help="validate a config file, printing every error")
    validate.add_argument("file", metavar="FILE")
    validate.set_defaults(func=_cmd_config_validate)
    schema = config_sub.add_parser("schema", help="print the config JSON schema")
    schema.set_defaults(func=_cmd_config_schema)
    tune_cli.register(sub)
    ingest_cli.register(sub)
    uplink_cli.register(sub)
    fleet_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except EdgesiftError as exc:
        print(f"edgesift: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("edgesift: interrupted", file=sys.stderr)
        return 130
