"""The `edgesift` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from agent import __version__
from agent.config import AgentConfig, load_config, validate_file
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
    from agent.replay.runner import REPORT, run_replay  # deferred: keeps `edgesift --help` fast

    if corpus_cli.wanted(args):
        return corpus_cli.cmd_replay(args)
    config = load_config(args.config)
    summary = run_replay(args.inputs, Path(args.out), config, progress=False if args.quiet else None,
                         assess_threads=args.workers or 1)
    kept, total = summary["frames_kept"], summary["frames_in"]
    mb_in, mb_kept = summary["bytes_in"] / 1e6, summary["bytes_kept"] / 1e6
    skipped = summary.get("skipped", {}).get("count", 0)
    print(
        f"replayed {total} frames in {summary['elapsed_s']:.1f} s ({summary['frames_per_s']:.1f} frames/s): "
        f"kept {kept} ({mb_kept:.1f} of {mb_in:.1f} MB), skipped {skipped}"
    )
    print(f"verdicts: {json.dumps(summary['by_verdict'], sort_keys=True)}")
    print(f"report: {Path(args.out) / REPORT}")
    uplink_cli.after_replay(args, config, summary)
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from agent.app import App  # deferred: keeps `edgesift --help` fast
    from agent.daemon.lifecycle import setup_logging

    config = load_config(args.config)
    setup_logging(config.daemon.log_format, logging.INFO - 10 * min(args.verbose, 1))
    return App(config, args.config).run()


def _cmd_config_validate(args: argparse.Namespace) -> int:
    config, issues = validate_file(args.file)
    if config is None:
        for issue in issues:
            print(f"{args.file}: {issue}", file=sys.stderr)
        print(f"{args.file}: invalid ({len(issues)} error{'s' if len(issues) != 1 else ''})", file=sys.stderr)
        return EXIT_ERROR
    print(f"{args.file}: valid (version {config.version}, vehicle {config.vehicle_id})")
    return EXIT_OK


def _cmd_config_schema(args: argparse.Namespace) -> int:
    print(json.dumps(AgentConfig.model_json_schema(), indent=2))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgesift", description="Edge data filtering for camera and LiDAR fleets.")
    parser.add_argument("--version", action="version", version=f"edgesift {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True)

    replay = sub.add_parser("replay", help="run recorded drives through the filtering policy")
    replay.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="KITTI drive folder, MCAP file, video file, image folder or Velodyne pcap")
    replay.add_argument("--out", required=True, metavar="DIR", help="output folder")
    replay.add_argument("--config", metavar="FILE", help="agent config (YAML); defaults when omitted")
    replay.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
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
