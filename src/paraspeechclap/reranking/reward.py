"""Composite reward: the style score combined with a per-candidate word error rate (WER).

For one prompt with candidates ``i = 1..N``, style scores ``s_i`` (cosine similarity) and WERs
``w_i`` (in whatever unit the WER file uses; the threshold is in the same unit):

- **style only** (default): ``r_i = s_i``.
- **weighted z-score** (``wer_weight = λ > 0``): ``r_i = z(s)_i - λ · z(w)_i`` with the per-prompt
  standardisation ``z(x)_i = (x_i - mean(x)) / std(x)`` (population std, over the prompt's usable
  candidates; ``z = 0`` when ``std = 0``). Standardising per prompt puts both terms on one scale
  whatever the model's cosine range and the WER unit.
- **threshold** (``wer_threshold = T``): a candidate *passes* when ``w_i <= T``. Passing candidates
  are ranked first (by ``r_i``), the others after them (by ``r_i``). If no candidate passes, all
  are ranked by ``r_i`` alone (the fallback). Threshold and weight combine.

Candidates with no style score (``s_i`` not finite: silent or skipped clips) are always ranked last
and get ``r_i = -inf``. A candidate without a WER (``w_i`` NaN) never passes a threshold, and in the
z-score its ``r_i`` is NaN, ranked after the candidates of its group that have one. Ties keep the
candidate order: the lowest index wins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class RewardConfig:
    """How the style score and the WER combine (see the module docstring).

    Attributes:
        wer_threshold: rank candidates with WER above this after the others (None: off).
        wer_weight: λ in ``z(style) - λ · z(WER)`` (0: style score only).
    """

    wer_threshold: float | None = None
    wer_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.wer_threshold is not None and not math.isfinite(self.wer_threshold):
            raise InputError(f"--wer-threshold must be a finite number, got {self.wer_threshold}")
        if not math.isfinite(self.wer_weight) or self.wer_weight < 0:
            raise InputError(f"--wer-weight must be a number >= 0, got {self.wer_weight}")

    @property
    def uses_wer(self) -> bool:
        return self.wer_threshold is not None or self.wer_weight > 0

    def as_dict(self) -> dict[str, float | None]:
        return {"wer_threshold": self.wer_threshold, "wer_weight": self.wer_weight}


@dataclass
class Ranking:
    """One prompt's candidates ranked by the reward.

    Attributes:
        order: every candidate index, best first; candidates without a style score last.
        reward: ``(N,)`` the ranked value ``r_i`` (``-inf`` without a style score).
        passes: ``(N,)`` bool, WER at most the threshold (None without a threshold).
        scored: ``(N,)`` bool, the candidate has a style score.
        passes: ``(N,)`` bool, WER at most the threshold (None without a threshold).
        fallback: a threshold was set but no scored candidate passed it, so it was ignored.
    """

    order: list[int]
    reward: np.ndarray
    scored: np.ndarray
    passes: np.ndarray | None = None
    fallback: bool = False

    @property
    def best(self) -> int | None:
        """Index of the winner, or None when no candidate has a style score."""
        return self.order[0] if self.order and self.scored[self.order[0]] else None


def zscore(x: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` over the finite entries of ``(N,)`` (population std; 0 where std is 0).

    Non-finite entries stay NaN.
    """
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x)
    out = np.full(x.shape, np.nan)
    if not ok.any():
        return out
    mean, std = x[ok].mean(), x[ok].std()
    out[ok] = (x[ok] - mean) / std if std > 0 else 0.0
    return out


def composite_reward(style: np.ndarray, wer: np.ndarray | None, config: RewardConfig) -> np.ndarray:
    """``(N,)`` reward ``r_i``: ``s_i``, or ``z(s)_i - λ z(w)_i`` over the scored candidates."""
    style = np.asarray(style, dtype=np.float64)
    scored = np.isfinite(style)
    if config.wer_weight <= 0:
        return np.where(scored, style, -np.inf)
    if wer is None:
        raise InputError("--wer-weight needs word error rates (wer_per_example.txt or --wer)")
    w = np.where(scored, np.asarray(wer, dtype=np.float64), np.nan)
    reward = zscore(np.where(scored, style, np.nan)) - config.wer_weight * zscore(w)
    return np.where(scored, reward, -np.inf)


def rank_candidates(style: np.ndarray, wer: np.ndarray | None = None, config: RewardConfig | None = None,
                    quality_ok: np.ndarray | None = None) -> Ranking:
    """Rank one prompt's candidates by the composite reward.

    Args:
        style: ``(N,)`` style scores (``-inf``/NaN: no score).
        wer: ``(N,)`` word error rates (NaN: unknown), needed when ``config`` uses them.
        config: the reward settings (default: the style score only).
        quality_ok: ``(N,)`` bool, the candidate passed the quality gate
            (:mod:`~paraspeechclap.reranking.quality`): those that pass rank before those that fail,
            ahead of the WER tiers (None: no gate).

    Returns:
        The :class:`Ranking`; ties keep the lowest index first.

    Raises:
        InputError: the config uses WER but ``wer`` is None or of another length.
    """
    config = config or RewardConfig()
    style = np.asarray(style, dtype=np.float64)
    if wer is not None and len(wer) != len(style):
        raise InputError(f"{len(wer)} WER values for {len(style)} candidates")
    reward = composite_reward(style, wer, config)
    scored = np.isfinite(style)
    passes, fallback = None, False
    if config.wer_threshold is not None:
        if wer is None:
            raise InputError("--wer-threshold needs word error rates (wer_per_example.txt or --wer)")
        w = np.asarray(wer, dtype=np.float64)
        passes = np.isfinite(w) & (w <= config.wer_threshold)
        fallback = bool(scored.any() and not (passes & scored).any())
    group = np.zeros(len(style), dtype=int) if passes is None or fallback else np.where(passes, 0, 1)
    gate = np.zeros(len(style), dtype=int) if quality_ok is None else np.where(np.asarray(quality_ok, bool), 0, 1)

    def key(i: int) -> tuple:
        r = reward[i]
        # scored first; then through the quality gate; then passing the WER threshold; then higher
        # reward (NaN after finite); then lower index
        return (not scored[i], int(gate[i]), int(group[i]), bool(np.isnan(r)), -r if np.isfinite(r) else 0.0, i)

    return Ranking(sorted(range(len(style)), key=key), reward, scored, passes, fallback)
