"""Preference pairs from best-of-N decisions, for preference-tuning a TTS model (DPO and the like).

Per prompt, the *chosen* clip is always the winner ``b`` of the ranking. A scored candidate ``j``
can be *rejected* against it when the winner is better by a margin:

    margin = r_b - r_j > 0   and   margin >= m          (m = ``--pairs-margin``, default 0)

where ``r`` is the ranked reward (the style score, or ``z(style) - λ z(WER)``). With a WER
threshold, a candidate that fails it is also rejected against a winner that passes, whatever the
margin (its ``reason`` is ``"wer"``; otherwise ``"margin"``). Rules (``--pairs-rule``):

- ``best-vs-rest``: the winner against every such candidate (up to ``N - 1`` pairs per prompt);
- ``best-vs-worst``: the winner against the last-ranked scored candidate only, if it qualifies.

Unscored candidates (silent, missing, unreadable) never appear in pairs: they would teach the
model nothing about style. A prompt with fewer than two scored candidates gives no pair.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

from ..atomic import atomic_write_text
from ..errors import InputError
from .best_of_n import Selection, json_score

#: rule name -> function(selection, eligible candidates in rank order) -> rejected candidates
PAIR_RULES: dict[str, Callable[[Selection, list[int]], list[int]]] = {
    "best-vs-rest": lambda sel, eligible: eligible,
    "best-vs-worst": lambda sel, eligible: [j for j in eligible if j == _worst(sel)],
}


def _worst(sel: Selection) -> int:
    return [k for k in sel.ranking.order if sel.ranking.scored[k]][-1]


def _reason(sel: Selection, j: int, margin: float) -> str | None:
    """Why ``j`` loses to the winner (``"margin"`` or ``"wer"``), or None when it does not qualify."""
    b, r = sel.best, sel.ranking.reward
    assert b is not None
    gap = r[b] - r[j]
    if math.isfinite(gap) and gap > 0 and gap >= margin:
        return "margin"
    passes = sel.ranking.passes
    if passes is not None and not sel.ranking.fallback and passes[b] and not passes[j]:
        return "wer"
    return None


def make_pairs(selections: Sequence[Selection], rule: str = "best-vs-rest", margin: float = 0.0) -> list[dict[str, Any]]:
    """Preference pairs (see the module docstring).

    Args:
        selections: best-of-N decisions.
        rule: a key of :data:`PAIR_RULES`.
        margin: the smallest reward margin ``m`` of a pair.

    Returns:
        One dict per pair: ``prompt_idx``, ``prompt``, ``chosen``, ``rejected`` (candidate names),
        ``chosen_idx`` / ``rejected_idx`` (1-based), ``chosen_score`` / ``rejected_score`` (style
        scores), ``margin`` (reward difference; null when not finite), ``reason``, and with WER
        ``chosen_wer`` / ``rejected_wer``.

    Raises:
        InputError: unknown rule or a negative margin.
    """
    if rule not in PAIR_RULES:
        raise InputError(f"unknown pair rule {rule!r}; choose from {', '.join(PAIR_RULES)}")
    if not math.isfinite(margin) or margin < 0:
        raise InputError(f"--pairs-margin must be a number >= 0, got {margin}")
    out = []
    for sel in selections:
        b = sel.best
        if b is None:
            continue
        ranked = [k for k in sel.ranking.order if sel.ranking.scored[k] and k != b]
        reasons = {j: _reason(sel, j, margin) for j in ranked}
        eligible = [j for j in ranked if reasons[j] is not None]
        for j in PAIR_RULES[rule](sel, eligible):
            out.append(_pair(sel, b, j, reasons[j] or "margin"))
    return out


def _pair(sel: Selection, b: int, j: int, reason: str) -> dict[str, Any]:
    row = {
        "prompt_idx": sel.prompt_idx, "prompt": sel.prompt,
        "chosen": sel.names[b], "rejected": sel.names[j], "chosen_idx": b + 1, "rejected_idx": j + 1,
        "chosen_score": json_score(sel.scores[b]), "rejected_score": json_score(sel.scores[j]),
        "margin": json_score(sel.ranking.reward[b] - sel.ranking.reward[j]), "reason": reason,
    }  # fmt: skip
    if sel.wer is not None:
        row["chosen_wer"], row["rejected_wer"] = json_score(sel.wer[b]), json_score(sel.wer[j])
    return row


def write_pairs(path: str | os.PathLike, pairs: Sequence[dict[str, Any]]) -> None:
    """Write pairs as JSONL, atomically."""
    atomic_write_text(path, "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs))
