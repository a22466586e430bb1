"""How sure a UAR difference between two models on the same clips is: a paired, class-stratified bootstrap.

A model is kept or dropped on differences of a few hundredths of a UAR measured on a few hundred clips
(e.g. issue 18 keeps v15's in-corpus 8-class emotion UAR within 0.03). UAR is the mean of per-class
recalls, so a class of 11 clips moves it by 1 / (11 * 8) = 0.011 per clip on 8 classes. The bootstrap
resamples clips *within each gold class* (class sizes fixed, as UAR weighs classes equally) and *pairs*
the two models (a resampled clip is scored by both), so what the two models get right together cancels.

Pure numpy; no model is touched here (``benchmarks/paired.py`` embeds and predicts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _correct_by_class(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> list[np.ndarray]:
    """Per label present in ``gold``: a ``(n_c,)`` 0/1 array of which of its clips ``pred`` got right."""
    g, p = np.asarray(gold, dtype=object), np.asarray(pred, dtype=object)
    return [(p[g == c] == c).astype(np.float64) for c in labels if np.any(g == c)]


def paired_uar_bootstrap(gold: Sequence[str], pred_a: Sequence[str], pred_b: Sequence[str],
                         labels: Sequence[str], resamples: int = 10000, seed: int = 0,
                         tolerance: float | None = None) -> dict[str, Any]:
    """UAR of ``b`` minus UAR of ``a`` on the same clips, with a paired class-stratified bootstrap.

    UAR here is over the classes present in ``gold`` (``uar_present`` of the classification metrics).

    Args:
        gold: N gold labels (each in ``labels``; other clips must be left out before).
        pred_a: N predictions of the baseline.
        pred_b: N predictions of the candidate, for the same clips in the same order.
        labels: the candidate labels.
        resamples: bootstrap resamples R.
        seed: the resampling seed (same seed, same interval).
        tolerance: if given, also the share of resamples in which ``b`` loses more than it
            (``share_below_tolerance``: how often a rule "keep within tolerance" would fail by chance).

    Returns:
        ``uar_a``, ``uar_b``, ``difference`` (b - a), ``sd`` (of the resampled differences), ``ci95``
        ([2.5 %, 97.5 %] quantiles), ``share_below_zero``, ``clips``, ``classes`` and, with
        ``tolerance``, ``tolerance`` and ``share_below_tolerance``.
    """
    n = len(gold)
    if len(pred_a) != n or len(pred_b) != n:
        raise ValueError(f"gold, pred_a and pred_b must have one entry per clip ({n}, {len(pred_a)}, {len(pred_b)})")
    if n == 0:
        raise ValueError("no clips to compare")
    unknown = sorted(set(gold) - set(labels))
    if unknown:
        raise ValueError(f"gold labels not among the labels: {unknown}")
    right_a = _correct_by_class(gold, pred_a, labels)
    right_b = _correct_by_class(gold, pred_b, labels)
    rng = np.random.default_rng(seed)
    diffs = np.zeros(resamples)
    for ca, cb in zip(right_a, right_b):  # classes in ``labels`` order, each drawn once: reproducible by seed
        idx = rng.integers(0, len(ca), size=(resamples, len(ca)))  # (R, n_c) clips of this class
        diffs += cb[idx].mean(axis=1) - ca[idx].mean(axis=1)
    diffs /= len(right_a)
    uar_a = float(np.mean([c.mean() for c in right_a]))
    uar_b = float(np.mean([c.mean() for c in right_b]))
    out: dict[str, Any] = {
        "uar_a": uar_a, "uar_b": uar_b, "difference": uar_b - uar_a, "sd": float(diffs.std()),
        "ci95": [float(np.quantile(diffs, 0.025)), float(np.quantile(diffs, 0.975))],
        "share_below_zero": float(np.mean(diffs < 0)), "clips": n, "classes": len(right_a), "resamples": resamples,
    }
    if tolerance is not None:
        out["tolerance"] = tolerance
        out["share_below_tolerance"] = float(np.mean(diffs < -tolerance))
    return out
