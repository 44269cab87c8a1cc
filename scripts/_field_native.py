"""Valid camera frames at each recording's own resolution (JSON and a markdown table).

The field evaluation scales every camera frame to at most EVAL_WIDTH (640 px) before it encodes it, so the faults it
synthesises have one size everywhere. A camera's checks run on its own frames, though: a 1280-px frame is decoded
at a quarter of its size where a 640-px one is decoded at half, and textures, seams and block grids measure
differently. This pass scores every camera source's valid frames again at their own size (same order, same
streams, same JPEG encoding) and reports the share called harmful, per source and per condition, for each scorer.
Under the rule before the sudden-cover check it shows the Udacity test video's `occluded` frames (2 of 38, a car
leaving tree shadows) at 1280 px, as the 640-px pass does once videos are judged as one stream.
"""

from __future__ import annotations

import _field_data
from _field_data import camera_sources
from _field_eval import valid


def native_valid(kinds: tuple[str, ...]) -> dict:
    out: dict = {kind: {"per_source": {}, "per_condition": {}} for kind in kinds}
    saved = _field_data.EVAL_WIDTH
    sources = camera_sources()
    for source in sources:
        _field_data.EVAL_WIDTH = 1 << 30  # no source is wider: _fit keeps every frame as it is
        try:
            items = source.load()  # one source at a time: a video at full size is hundreds of MB
        finally:
            _field_data.EVAL_WIDTH = saved
        widths = sorted({int(image.shape[1]) for _, image in items})
        for kind in kinds:
            row, _ = valid(kind, source, items)
            out[kind]["per_source"][source.name] = {"condition": source.condition, "widths": widths, **row}
    for kind in kinds:
        rows = out[kind]["per_source"]
        for condition in dict.fromkeys(s.condition for s in sources):
            mine = [r for r in rows.values() if r["condition"] == condition]
            frames = sum(r["frames"] for r in mine)
            out[kind]["per_condition"][condition] = {
                "sources": len(mine), "frames": frames,
                "false_harmful": round(sum(r["false_harmful"] * r["frames"] for r in mine) / max(1, frames), 4),
                "worst_source_false_harmful": max(r["false_harmful"] for r in mine)}
    return out


def native_table(result: dict) -> str:
    kinds = list(result)
    lines = ["| source | condition | frames | width (px) | " + " | ".join(kinds) + " |",
             "|---|---|---|---|" + "---|" * len(kinds)]
    first = result[kinds[0]]["per_source"]
    for name, row in first.items():
        cells = [f"{100 * result[k]['per_source'][name]['false_harmful']:.0f}%" for k in kinds]
        widths = ", ".join(str(w) for w in row["widths"])
        lines.append(f"| {name} | {row['condition']} | {row['frames']} | {widths} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
