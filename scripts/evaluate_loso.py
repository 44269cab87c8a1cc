"""Leave-one-source-out check of the camera checks' settings chosen in issue 11 (JSON).

The field evaluation (scripts/evaluate_field.py) scores every source with the shipped settings, which were chosen
while looking at those same sources. Here each setting is instead chosen without the source it is judged on: for
every setting on a small grid, every camera source of ../shared/data is scored once (false harmful on its valid
frames, on its frames under a hard shadow and on the clean frames between those, recall on the fault kinds the
setting is for); then, for each source held out, the grid point that does best on all the other sources (mean recall
minus PENALTY x mean false-harmful rate, valid, shadowed and between shadows; a tie keeps the shipped value) is
applied to it. The report gives, per source, the
held-out figures of that choice beside the shipped setting's, and how often the choice differs from the shipped
one. Faults are placed and drawn as in the field evaluation (in place of a frame of the running recording, each
source with a seed of its own). The shadowed frames stand for what the recordings lack: a hard shadow (a bridge, a
building) falling over part of a sunlit view between two frames halves its brightness there, and is no fault; nor is
the clean frame after it, which until 2026-12-01 was not counted (a check whose history the shadows upset could call
every clean frame harmful unseen).

    python scripts/evaluate_loso.py > models/evaluate_loso.json      # about 45 minutes on 1 core (--groups: halves)
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np
from _field_data import Source, camera_sources
from _field_eval import CAMERA_OVERRIDES, cold_starts, faults_in_stream, frame_of, judge, make, source_seed, valid

from agent.config.model import ScoringConfig
from agent.scoring import camera_baseline, camera_checks, camera_motion

PENALTY = 10.0  # one valid frame called harmful costs as much as ten faults missed
SEED = 7
# setting group -> (module constants, their grid values, the fault kinds they are for); the shipped values join the grid
GROUPS: dict[str, tuple[tuple[str, ...], list[tuple[float, ...]], tuple[str, ...]]] = {
    "soiling": (("SOIL_LOST_OF_TEXTURED", "SOIL_LOST_PER_GAINED"),
                list(itertools.product((0.1, 0.15, 0.2, 0.3, 9.0), (2.0, 4.0, 1e9))),
                ("water_drops", "smear", "mud")),
    "channel_swap": (("SWAP_MIN_SPREAD", "SWAP_MIN_CORR"),
                     list(itertools.product((0.02, 0.03, 0.04), (0.5, 0.6, 0.7, 0.8, 9.0))), ("channel_swap",)),
    # A name with a dot is a setting of the config (camera.: scoring.camera.*) or another module's constant
    # (baseline.: camera_baseline, motion.: camera_motion), not a camera_checks constant.
    "blur": (("camera.blur_min_ratio",), [(0.1,), (0.15,), (0.2,), (0.25,), (0.3,), (0.4,)], ("blur",)),
    # A tear against the camera's own seams; NEW_SEAM_MIN 9 turns that check off.
    "new_seam": (("NEW_SEAM_MIN", "NEW_SEAM_EXCESS", "NEW_SEAM_MIXED"),
                 [*itertools.product((0.15, 0.2, 0.25), (0.1, 0.15, 0.2), (0.3, 0.4, 0.5)), (9.0, 0.15, 0.4)],
                 ("tearing",)),
    # A vertical seam must be this much stronger than the camera's recent frames had; -1: the absolute check alone.
    "vseam": (("VSEAM_RISE",), [(-1.0,), (0.05,), (0.1,), (0.15,), (0.2,)], ("tearing",)),
    # ... and in a view's first frames, stronger than this prior; 0: the camera's few frames alone (before it).
    "vseam_prior": (("baseline.VSEAM_PRIOR",), [(0.0,), (0.25,), (0.3,), (0.35,), (0.4,), (0.5,), (9.0,)],
                    ("tearing",)),
    # Opaque dirt: tiles newly textureless and redder; DIRT_MIN_SHARE 9 turns the check off.
    "dirt": (("DIRT_MIN_SHARE", "DIRT_REDDER"),
             list(itertools.product((0.03, 0.04, 0.05, 0.08, 0.12, 9.0), (0.1, 0.15, 0.25))),
             ("mud", "water_drops", "smear")),
    # Exposure after a scene cut against the camera's level across views (baseline.*: camera_baseline's
    # constants); 1.0: only a level that never moved, about never.
    # A block grid of a period new for the camera (pixelation by other scales than 1/2, 1/4, 1/8); 0: off.
    "grid": (("GRID_NEW",), [(0.0,), (2.0,), (2.5,), (3.0,), (4.0,), (6.0,)], ("compression",)),
    # Drops or a smear since the last healthy frame: share of textured tiles lost, most allowed to gain; 9: off.
    "soft_since_last": (("LAST_LOST_MIN", "LAST_MAX_GAINED"),
                        list(itertools.product((0.05, 0.1, 0.15, 0.2, 0.3, 9.0), (0.02, 0.05, 0.1))),
                        ("water_drops", "smear", "mud")),
    # A new seam with the frame below it unlike the last healthy frame moved a little (camera_motion); 9: off.
    "moved_below_seam": (("motion.MOVED_SEAM_RISE", "motion.MOVED_STEP"),
                         list(itertools.product((0.08, 0.12, 0.16, 0.2, 9.0), (0.3, 0.4, 0.5, 0.6, 0.8))),
                         ("tearing",)),
    # The rows below some row matching the last frame far sideways (camera_motion.shifted_below); margin 9: off.
    "shifted_below": (("motion.SHIFT_MIN", "motion.SHIFT_MARGIN"),
                      list(itertools.product((8, 12, 16, 24), (0.1, 0.2, 0.3, 0.4, 9.0))), ("tearing",)),
    # The rows below some row following the last frame worse than those above, beyond the camera's own recent
    # frames (camera_motion.broke_below); margin 9: off.
    "broke_below": (("motion.BREAK_MARGIN", "motion.BREAK_ROWS", "motion.BREAK_MIN_FRAMES"),
                    list(itertools.product((0.1, 0.15, 0.2, 0.25, 9.0), (2, 4), (3, 5, 8))), ("tearing",)),
    # The bar for the first frames of a view, before the camera's own breaks are known; 9: those frames not judged.
    "break_prior": (("motion.BREAK_PRIOR",), [(0.3,), (0.35,), (0.4,), (0.45,), (0.5,), (0.6,), (9.0,)], ("tearing",)),
    # A cover: a view left with under this share of its textured area is covered, not a new scene; 0: off.
    "cover_left": (("COVER_TEXTURE_LEFT",), [(0.0,), (0.2,), (0.3,), (0.4,), (0.5,), (0.6,)], ("occluded",)),
    # Impulse noise: share of pixels standing out, times the camera's usual and last share; ratio 1e9: off.
    "speckle": (("SPECKLE_MIN", "SPECKLE_RATIO"), list(itertools.product((0.02, 0.05, 0.1), (2.0, 3.0, 4.0, 6.0, 1e9))),
                ("noise",)),
    "exposure_level": (("baseline.LEVEL_MAX_SPREAD",), [(1.0,), (2.0,), (3.0,), (4.0,), (6.0,), (1e9,)],
                       ("overexposed", "underexposed", "occluded")),
}


# Groups whose settings act only in a view's first frames: also judged on each recording's first frames from every
# frame on (_field_eval.cold_starts), whose valid frames called harmful count as the others do.
COLD_START_GROUPS = {"break_prior", "vseam_prior"}
_MODULES = {"baseline": camera_baseline, "motion": camera_motion}  # prefixes of other modules' constants


def _get(name: str) -> float:
    """The shipped value; a module's constant keeps its type (a count of rows stays an int when it is put back)."""
    if name.startswith("camera."):
        return float(getattr(ScoringConfig().camera, name.split(".", 1)[1]))
    if "." in name:
        return getattr(_MODULES[name.split(".", 1)[0]], name.split(".", 1)[1])
    return getattr(camera_checks, name)


def _set(name: str, value: float | None) -> None:
    """Apply a grid value (None: back to the shipped one)."""
    if name.startswith("camera."):
        key = name.split(".", 1)[1]
        if value is None:
            CAMERA_OVERRIDES.pop(key, None)
        else:
            CAMERA_OVERRIDES[key] = value
    elif "." in name:
        if value is not None:
            setattr(_MODULES[name.split(".", 1)[0]], name.split(".", 1)[1], value)
    elif value is not None:
        setattr(camera_checks, name, value)


def shadowed(source: Source, items: list) -> tuple[float, float]:
    """Shares of frames called harmful when a hard shadow (half the light) covers the lower 30-50% of the view or
    one side of it, each right after its own clean frame; and of those clean frames, each right after the shadowed
    one before it (a check that learns from the shadowed frames, or loses its history to them, shows there)."""
    rng = np.random.default_rng(SEED)
    scorer = make("heuristic", source)
    harmful, between = [], []
    for i, (_, image) in enumerate(items):
        sensor = f"{source.name}#shadow" + ("" if source.sequence else f"/{i}")
        clean = judge(scorer, frame_of(source, image, sensor, 2 * i)).label.value == "harmful"
        if i > 0 and source.sequence:
            between.append(clean)
        dark = image.copy()
        h, w = image.shape[:2]
        part = float(rng.uniform(0.3, 0.5))
        region = (slice(int(h * (1 - part)), h), slice(0, w)) if i % 2 == 0 else (slice(0, h), slice(0, int(w * part)))
        dark[region] = (dark[region] * 0.5).astype(np.uint8)
        harmful.append(judge(scorer, frame_of(source, dark, sensor, 2 * i + 1)).label.value == "harmful")
    return (float(np.mean(harmful)) if harmful else 0.0), (float(np.mean(between)) if between else 0.0)


def _grid_results(names: tuple[str, ...], grid: list[tuple[float, ...]], kinds: tuple[str, ...],
                  max_items: int, cold: bool = False) -> dict[tuple[float, ...], dict[str, dict[str, float | None]]]:
    sources = camera_sources()
    loaded = {s.name: s.load() for s in sources}
    shipped = tuple(_get(n) for n in names)
    out: dict[tuple[float, ...], dict[str, dict[str, float | None]]] = {}
    try:
        for point in grid:
            for name, value in zip(names, point, strict=True):
                _set(name, value)
            rows = {}
            for s in sources:
                items = loaded[s.name]
                step = max(1, len(items) // max_items)
                recall = faults_in_stream("heuristic", s, items, source_seed(SEED, s.name, True), max_items, kinds)
                shadow, between = shadowed(s, items[::step])
                rows[s.name] = {"false_harmful": valid("heuristic", s, items)[0]["false_harmful"],
                                "shadowed_harmful": round(shadow, 4),
                                "between_shadows_harmful": round(between, 4),
                                **({"cold_start_harmful": (cold_starts("heuristic", s, items) or {}).get(
                                    "false_harmful", 0.0)} if cold else {}),
                                # None: no fault of the group changes this camera's frames (a swap on a grey one)
                                "recall": float(np.mean(list(recall.values()))) if recall else None}
            out[point] = rows
    finally:
        for name, value in zip(names, shipped, strict=True):
            _set(name, None if name.startswith("camera.") else value)
    return out


def _objective(rows: dict[str, dict[str, float | None]], names: list[str]) -> float:
    false = np.mean([rows[n]["false_harmful"] + rows[n]["shadowed_harmful"] + rows[n]["between_shadows_harmful"]
                     + rows[n].get("cold_start_harmful", 0.0)
                     for n in names])
    return float(np.mean([r for n in names if (r := rows[n]["recall"]) is not None]) - PENALTY * false)


def loso(group: str, max_items: int) -> dict:
    names, grid, kinds = GROUPS[group]
    shipped = tuple(_get(n) for n in names)
    grid = list(dict.fromkeys([*grid, shipped]))
    results = _grid_results(names, grid, kinds, max_items, group in COLD_START_GROUPS)
    sources = list(next(iter(results.values())))
    per_source = {}
    for held in sources:
        others = [n for n in sources if n != held]
        chosen = max(grid, key=lambda p: (round(_objective(results[p], others), 9), p == shipped))
        per_source[held] = {"chosen": dict(zip(names, chosen, strict=True)),
                            "held_out": results[chosen][held], "shipped": results[shipped][held]}

    def pooled(which: str, key: str) -> float:
        return round(float(np.mean([v for r in per_source.values() if (v := r[which].get(key)) is not None])), 4)

    measures = ("recall", "false_harmful", "shadowed_harmful", "between_shadows_harmful",
                *(("cold_start_harmful",) if group in COLD_START_GROUPS else ()))

    return {"settings": list(names), "fault_kinds": list(kinds), "shipped": dict(zip(names, shipped, strict=True)),
            "grid": [list(p) for p in grid], "per_source": per_source,
            "mean_over_sources": {w: {k: pooled(w, k) for k in measures} for w in ("held_out", "shipped")},
            "chosen_differs_from_shipped": sum(tuple(r["chosen"].values()) != shipped
                                               for r in per_source.values()),
            "chosen_on_all_sources": dict(zip(names, max(grid, key=lambda p: (
                round(_objective(results[p], sources), 9), p == shipped)), strict=True))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", nargs="+", default=list(GROUPS), choices=list(GROUPS))
    parser.add_argument("--max-items", type=int, default=10, help="frames per source that get each fault")
    args = parser.parse_args()
    started = time.perf_counter()
    out = {g: loso(g, args.max_items) for g in args.groups}
    out["elapsed_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
