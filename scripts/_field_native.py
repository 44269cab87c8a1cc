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
from _field_eval import summary, valid


def native_valid(kinds: tuple[str, ...]) -> dict:
    per_source: dict = {kind: {} for kind in kinds}
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
            per_source[kind][source.name] = {"condition": source.condition, "widths": widths,
                                             "valid": valid(kind, source, items)[0]}
    return {kind: {"per_source": rows, "per_condition": summary(rows, sources, kind)}
            for kind, rows in per_source.items()}


def native_table(result: dict) -> str:
    kinds = list(result)
    lines = ["| source | condition | frames | width (px) | " + " | ".join(kinds) + " |",
             "|---|---|---|---|" + "---|" * len(kinds)]
    first = result[kinds[0]]["per_source"]
    for name, row in first.items():
        cells = [f"{100 * result[k]['per_source'][name]['valid']['false_harmful']:.0f}%" for k in kinds]
        widths = ", ".join(str(w) for w in row["widths"])
        frames = row["valid"]["frames"]
        lines.append(f"| {name} | {row['condition']} | {frames} | {widths} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
