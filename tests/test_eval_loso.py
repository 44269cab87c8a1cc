"""The leave-one-source-out choice of settings (scripts/evaluate_loso.py): a source's own figures never choose
the setting it is judged with, and a tie keeps the shipped value."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))


def _rows(recall: dict[str, float], false: dict[str, float] | None = None) -> dict[str, dict[str, float]]:
    false = false or {}
    return {n: {"recall": r, "false_harmful": false.get(n, 0.0), "shadowed_harmful": 0.0} for n, r in recall.items()}


def test_each_source_is_judged_with_the_setting_the_others_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    import evaluate_loso

    from agent.scoring import camera_checks

    shipped = (camera_checks.SWAP_MIN_CORR,)
    # "a" alone would pick 0.4 (its own recall), but the others prefer 0.8; 0.8 calls a valid frame of "c" harmful.
    grid = {(0.4,): _rows({"a": 1.0, "b": 0.5, "c": 0.5}),
            (0.8,): _rows({"a": 0.2, "b": 0.9, "c": 0.9}, {"c": 0.01}),
            shipped: _rows({"a": 0.5, "b": 0.5, "c": 0.5})}
    monkeypatch.setitem(evaluate_loso.GROUPS, "channel_swap", (("SWAP_MIN_CORR",), [(0.4,), (0.8,)], ("x",)))
    monkeypatch.setattr(evaluate_loso, "_grid_results", lambda names, points, kinds, max_items: grid)
    out = evaluate_loso.loso("channel_swap", 1)
    chosen = {name: row["chosen"]["SWAP_MIN_CORR"] for name, row in out["per_source"].items()}
    # a: b and c prefer 0.8 (0.9 - 10 x 0.005 > 0.5); b: a and c tie 0.4 (0.75) against 0.8 (0.55 - 0.05);
    # c: a and b prefer 0.4 (0.75 > 0.55).
    assert chosen == {"a": 0.8, "b": 0.4, "c": 0.4}
    assert out["per_source"]["a"]["held_out"]["recall"] == 0.2  # its own figure under the others' choice


def test_a_tie_keeps_the_shipped_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    import evaluate_loso

    from agent.scoring import camera_checks

    shipped = (camera_checks.SWAP_MIN_CORR,)
    same = _rows({"a": 0.5, "b": 0.5})
    monkeypatch.setattr(evaluate_loso, "_grid_results",
                        lambda names, points, kinds, max_items: {p: same for p in points})
    out = evaluate_loso.loso("channel_swap", 1)
    assert out["chosen_differs_from_shipped"] == 0
    assert all(row["chosen"]["SWAP_MIN_CORR"] == shipped[0] for row in out["per_source"].values())
