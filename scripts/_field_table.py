"""Markdown tables of a field evaluation (scripts/evaluate_field.py --table)."""

from __future__ import annotations


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def tables(result: dict) -> str:
    lines: list[str] = []
    for modality in ("camera", "lidar"):
        if modality not in result:
            continue
        by_kind = {k: v for k, v in result[modality].items() if isinstance(v, dict) and "genuine_faults" in v}
        kinds = list(by_kind)
        lines += [f"### {modality}: valid frames called harmful, per source (held out by source)", "",
                  "| source | condition | frames | " + " | ".join(kinds) + " |",
                  "|---|---|---|" + "---|" * len(kinds)]
        first = by_kind[kinds[0]]["per_source"]
        for name, row in first.items():
            cells = [_pct(by_kind[k]["per_source"][name]["valid"]["false_harmful"]) for k in kinds]
            seen = " (models trained on it)" if row["seen_by_models"] else ""
            lines.append(f"| {name}{seen} | {row['condition']} | {row['valid']['frames']} | " + " | ".join(cells)
                         + " |")
        lines += _cold(by_kind, kinds, modality)
        lines += ["", f"### {modality}: per condition (false-harmful / recall on trained kinds / recall on kinds "
                  "no model saw)", "", "| condition | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
        for condition in by_kind[kinds[0]]["per_condition"]:
            cells = []
            for k in kinds:
                c = by_kind[k]["per_condition"][condition]
                cells.append(f"{_pct(c['false_harmful'])} / {_pct(c['recall_trained_kinds'])} / "
                             f"{_pct(c['recall_unseen_kinds'])}")
            lines.append(f"| {condition} | " + " | ".join(cells) + " |")
        faults = sorted({f for k in kinds for r in by_kind[k]["per_source"].values()
                         for g in ("recall_trained", "recall_unseen") for f in r.get(g, {})})
        if faults:
            lines += ["", f"### {modality}: recall per fault kind, mean over sources (* = no model trained on it)",
                      "", "| fault | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
            for fault in faults:
                cells = []
                for k in kinds:
                    vals = [r.get("recall_trained", {}).get(fault, r.get("recall_unseen", {}).get(fault))
                            for r in by_kind[k]["per_source"].values()]
                    vals = [v for v in vals if v is not None]
                    cells.append(_pct(sum(vals) / len(vals)) if vals else "-")
                unseen = any(fault in r.get("recall_unseen", {}) for r in by_kind[kinds[0]]["per_source"].values())
                lines.append(f"| {fault}{' *' if unseen else ''} | " + " | ".join(cells) + " |")
        lines += ["", f"### {modality}: genuine faults", "", "| recording | " + " | ".join(kinds) + " |",
                  "|---|" + "---|" * len(kinds)]
        for name, items in by_kind[kinds[0]]["genuine_faults"].items():
            for item in items:
                cells = [by_kind[k]["genuine_faults"][name][item] for k in kinds]
                lines.append(f"| {name}: {item} | " + " | ".join(cells) + " |")
        for key, what in (("rare_ranking", "all frames as in the data"),
                          ("rare_ranking_fleet_share", "adverse frames thinned to 10% of the input")):
            lines += _rare(by_kind, kinds, key, what)
        lines += _operating_point(result[modality].get("hybrid_operating_point_loso"), modality)
        lines.append("")
    return "\n".join(lines)


def _operating_point(sweep: dict | None, modality: str) -> list[str]:
    """The hybrid's model_fault_min_prob / ood_trust_ratio chosen leave-one-source-out (evaluate_field.py --sweep)."""
    if not sweep:
        return []
    lines = ["", f"### {modality}: hybrid operating point chosen leave-one-source-out (mean over sources)", "",
             f"Chosen on all sources: {sweep['chosen_on_all_sources']} (default {list(sweep['default'])}); held-out "
             f"choices: {sweep['held_out_choices']}.", "",
             "| condition | sources | with the others' choice | at the default |", "|---|---|---|---|"]
    for condition, c in sweep["per_condition_held_out"].items():
        chosen = " / ".join(_pct(c[k]) for k in ("false_harmful", "recall_trained", "recall_unseen"))
        default = " / ".join(_pct(c[f"{k}_at_default"]) for k in ("false_harmful", "recall_trained", "recall_unseen"))
        lines.append(f"| {condition} | {c['sources']} | {chosen} | {default} |")
    return lines


def _rare(by_kind: dict, kinds: list[str], key: str, what: str) -> list[str]:
    rare = {k: by_kind[k].get(key) for k in kinds if by_kind[k].get(key)}
    if not rare:
        return []
    lines = ["", f"### camera: rare data at a {_pct(next(iter(rare.values()))['budget'])} budget ({what})", "",
             "| scorer | adverse share in input | among kept | ratio |", "|---|---|---|---|"]
    for k, r in rare.items():
        share_in, share_kept = _pct(r["adverse_share_input"]), _pct(r["adverse_share_kept"])
        lines.append(f"| {k} | {share_in} | {share_kept} | {r['ratio']:.2f}x |")
    per = {k: r["per_condition"] for k, r in rare.items() if "per_condition" in r}
    if per:
        reach = " / ".join(f"{k} {_pct(rare[k]['reach_all'])}" for k in per)
        lines += ["", "Per condition: share of the input / of the kept (ratio); share of its frames scoring at or "
                  f"above the budget's cut-off, ties included (all frames: {reach}); share flagged rare or out of "
                  "domain:",
                  "", "| condition | " + " | ".join(per) + " |", "|---|" + "---|" * len(per)]
        for condition in next(iter(per.values())):
            cells = [f"{_pct(c['share_input'])} / {_pct(c['share_kept'])} ({c['ratio']:.2f}x); "
                     f"{_pct(c['reach'])}; {_pct(c['flagged_rare'])}" for c in (p[condition] for p in per.values())]
            lines.append(f"| {condition} | " + " | ".join(cells) + " |")
    return lines


def _cold(by_kind: dict, kinds: list[str], modality: str) -> list[str]:
    """Each recording's first frames, a scorer started afresh at every one of its frames (_field_eval.cold_starts)."""
    first = by_kind[kinds[0]]["per_source"]
    names = [n for n, r in first.items() if r.get("cold_starts")]
    if not names:
        return []
    lines = ["", f"### {modality}: valid frames called harmful in the first 6 frames of a scorer started at every "
             "frame of a recording", "", "| source | frames judged | " + " | ".join(kinds) + " |",
             "|---|---|" + "---|" * len(kinds)]
    for name in names:
        cells = [_pct((by_kind[k]["per_source"][name].get("cold_starts") or {}).get("false_harmful")) for k in kinds]
        lines.append(f"| {name} | {first[name]['cold_starts']['frames']} | " + " | ".join(cells) + " |")
    return lines
