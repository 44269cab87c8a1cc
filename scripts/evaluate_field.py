"""Field evaluation of every scorer on every real source in ../shared/data, per source and condition (JSON).

    python scripts/evaluate_field.py > models/evaluate_field.json
    python scripts/evaluate_field.py --kinds heuristic --no-faults   # quick: valid frames only
    python scripts/evaluate_field.py --no-cold-starts  # skip judging each recording's first frames from every frame
    python scripts/evaluate_field.py --table models/evaluate_field.json  # the README tables from a saved run
    python scripts/evaluate_field.py --camera-folds DIR --lidar-folds DIR2 --kinds proxy hybrid  # LOSO models
    python scripts/evaluate_field.py --native > models/evaluate_field_native.json  # valid frames at their own size
    python scripts/evaluate_field.py --native-table models/evaluate_field_native.json

See scripts/_field_eval.py for the protocol (held out by source, faults on real frames, genuine faults, rare data)
and scripts/_field_folders.py for folders as `edgesift replay FOLDER` reads them.
Needs ../shared/data and imagecorruptions (the train extra).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import _field_eval
from _field_data import camera_sources, lidar_sources
from _field_eval import KINDS, evaluate, use_folds
from _field_folders import folders_table, replayed_folders
from _field_native import native_table, native_valid
from _field_sweep import choose
from _field_table import tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--no-faults", action="store_true", help="valid frames and genuine faults only")
    parser.add_argument("--max-items", type=int, default=40, help="frames per source that get each fault")
    parser.add_argument("--seed", type=int, default=7, help="seed of the faults' random draws (kind, row, severity)")
    parser.add_argument("--shared-draws", action="store_true",
                        help="every source's faults drawn from --seed itself, as the evaluation was before (by "
                             "default each source has a seed of its own, derived from --seed and its name)")
    parser.add_argument("--no-cold-starts", action="store_true",
                        help="skip judging each recording's first frames from every frame on (_field_eval.cold_starts)")
    parser.add_argument("--modalities", nargs="+", default=["camera", "lidar"], choices=("camera", "lidar"))
    parser.add_argument("--camera-folds", type=Path, help="a folder from scripts/train_camera_loso.py: each camera "
                        "source is scored with the model trained without its fold (proxy and hybrid)")
    parser.add_argument("--lidar-folds", type=Path, help="the same from scripts/train_lidar_loso.py")
    parser.add_argument("--sweep", action="store_true", help="also choose the hybrid scorer's model_fault_min_prob "
                        "and ood_trust_ratio leave-one-source-out (scripts/_field_sweep.py); needs hybrid in --kinds")
    parser.add_argument("--table", type=Path, help="print markdown tables from a saved JSON instead")
    parser.add_argument("--native", action="store_true", help="only the camera sources' valid frames, each at its "
                        "own resolution (scripts/_field_native.py)")
    parser.add_argument("--native-table", type=Path, help="print the markdown table of a saved --native JSON")
    args = parser.parse_args()
    if args.table:
        saved = json.loads(args.table.read_text())
        print(tables(saved) + "\n".join(folders_table(saved)))
        return
    if args.native_table:
        print(native_table(json.loads(args.native_table.read_text())))
        return
    if args.native:
        print(json.dumps(native_valid(tuple(args.kinds)), indent=1))
        return
    for modality, folder in (("camera", args.camera_folds), ("lidar", args.lidar_folds)):
        if folder:
            use_folds(folder, modality)
    if args.sweep:
        _field_eval.RECORDS = []
    result = evaluate(tuple(args.kinds), with_faults=not args.no_faults, max_items=args.max_items,
                      modalities=tuple(args.modalities), seed=args.seed, seed_per_source=not args.shared_draws,
                      cold=not args.no_cold_starts)
    for modality in args.modalities:
        for kind in args.kinds:
            result[modality][kind]["replayed_folders"] = replayed_folders(kind, modality)
    if args.sweep:
        for modality, sources in (("camera", camera_sources()), ("lidar", lidar_sources())):
            if modality in args.modalities:
                result[modality]["hybrid_operating_point_loso"] = choose(_field_eval.RECORDS, sources, modality)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
