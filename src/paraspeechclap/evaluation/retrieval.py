"""Retrieval metrics: ranks of the ground-truth item, R@k, median and mean rank.

Pure functions on numpy arrays. The protocol follows the official ``scripts/evaluate_retrieval.py``:

* captions are de-duplicated by exact string in first-seen order (:func:`dedupe_captions`), so all
  clips sharing a caption share one ground-truth column, and differently worded but equivalent
  captions count as wrong;
* audio-to-text: the rank of a clip is ``1 +`` the position of its ground-truth column in the
  descending sort of its similarity row;
* ``median_rank`` is the *lower* median (``torch.median``), not the mean of the two middle values.

Text-to-audio is not part of the official protocol; it is reported separately: for each unique
caption every clip carrying that caption is a hit, and the rank is that of the best-ranked hit.

Ties. Equal scores must be ordered somehow; the official code inherits ``torch.sort``'s order, which
is unspecified. Here the rule is explicit (:data:`TIE_RULES`):

* ``"index"`` (default): among equal scores the lower column (or clip) index ranks first, i.e. a
  stable descending sort, as in open_clip's retrieval metric. Deterministic and input-order based.
* ``"pessimistic"``: every other item tied with the ground truth ranks before it (worst case).
* ``"optimistic"``: the ground truth ranks before every item tied with it (best case).

With continuous float similarities exact ties are rare; the two bounds show when they are not.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TIE_RULES: tuple[str, ...] = ("index", "pessimistic", "optimistic")
DEFAULT_KS: tuple[int, ...] = (1, 5, 10)


def dedupe_captions(captions: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """De-duplicate caption strings exactly, keeping first-seen order.

    Args:
        captions: one caption per clip, length N.

    Returns:
        ``(unique, gt)``: the U unique strings in first-seen order and the ``(N,)`` int64 index of
        each clip's caption in ``unique``.
    """
    index: dict[str, int] = {}
    gt = np.empty(len(captions), dtype=np.int64)
    for i, caption in enumerate(captions):
        gt[i] = index.setdefault(caption, len(index))
    return list(index), gt


def _check_scores(sim: np.ndarray, tie_rule: str) -> np.ndarray:
    sim = np.asarray(sim)
    if sim.ndim != 2 or sim.shape[0] == 0 or sim.shape[1] == 0:
        raise ValueError(f"similarity matrix must be 2-D and non-empty, got shape {sim.shape}")
    if not np.all(np.isfinite(sim)):
        raise ValueError("similarity matrix contains NaN or infinite values")
    if tie_rule not in TIE_RULES:
        raise ValueError(f"unknown tie rule {tie_rule!r}; expected one of {', '.join(TIE_RULES)}")
    return sim


def _rank_of_target(
    scores: np.ndarray, target_score: np.ndarray, before_target: np.ndarray, tie_rule: str
) -> np.ndarray:
    """1-based rank of a target in each row, counting the competitors that sort before it.

    Args:
        scores: ``(R, C)`` competitor scores (entries that are hits must already be masked to -inf).
        target_score: ``(R,)`` the target's score in each row.
        before_target: ``(R, C)`` bool, True where a competitor's index is lower than the target's
            (used by the ``"index"`` rule to break ties).
        tie_rule: one of :data:`TIE_RULES`.

    Returns:
        ``(R,)`` int64 ranks.
    """
    higher = scores > target_score[:, None]
    tied = scores == target_score[:, None]
    if tie_rule == "optimistic":
        ahead = higher
    elif tie_rule == "pessimistic":
        ahead = higher | tied
    else:
        ahead = higher | (tied & before_target)
    return 1 + ahead.sum(axis=1).astype(np.int64)


def audio_to_text_ranks(sim: np.ndarray, gt: np.ndarray, tie_rule: str = "index") -> np.ndarray:
    """Rank of each clip's ground-truth caption among all (unique) captions.

    Args:
        sim: ``(N, U)`` similarities, clips x unique captions (higher = more similar).
        gt: ``(N,)`` index of each clip's caption column.
        tie_rule: how equal scores are ordered, see :data:`TIE_RULES`.

    Returns:
        ``(N,)`` int64 ranks in ``[1, U]``.
    """
    sim = _check_scores(sim, tie_rule)
    n, u = sim.shape
    gt = np.asarray(gt, dtype=np.int64)
    if gt.shape != (n,) or gt.min() < 0 or gt.max() >= u:
        raise ValueError(f"gt must be {n} column indices in [0, {u}), got shape {gt.shape}")
    rows = np.arange(n)
    target = sim[rows, gt]
    competitors = sim.copy()
    competitors[rows, gt] = -np.inf  # the target never competes with itself
    before = np.arange(u)[None, :] < gt[:, None]
    return _rank_of_target(competitors, target, before, tie_rule)


def text_to_audio_ranks(sim: np.ndarray, gt: np.ndarray, tie_rule: str = "index") -> np.ndarray:
    """Rank of the best-ranked matching clip for each unique caption.

    Every clip whose caption is column ``u`` is a hit for ``u``; the rank is ``1 +`` the number of
    non-hit clips sorted before the best hit.

    Args:
        sim: ``(N, U)`` similarities, clips x unique captions.
        gt: ``(N,)`` index of each clip's caption column; every column needs at least one clip.
        tie_rule: how equal scores are ordered, see :data:`TIE_RULES`.

    Returns:
        ``(U,)`` int64 ranks in ``[1, N]``.
    """
    sim = _check_scores(sim, tie_rule)
    n, u = sim.shape
    gt = np.asarray(gt, dtype=np.int64)
    if gt.shape != (n,) or gt.min() < 0 or gt.max() >= u:
        raise ValueError(f"gt must be {n} column indices in [0, {u}), got shape {gt.shape}")
    hits = (gt[:, None] == np.arange(u)[None, :]).T  # (U, N)
    if not hits.any(axis=1).all():
        missing = int(np.flatnonzero(~hits.any(axis=1))[0])
        raise ValueError(f"caption column {missing} has no matching clip")
    scores = sim.T  # (U, N)
    best = np.where(hits, scores, -np.inf).max(axis=1)
    # Under the index rule the best hit is the lowest-index hit among those scoring ``best``.
    best_idx = np.argmax(hits & (scores == best[:, None]), axis=1)
    competitors = np.where(hits, -np.inf, scores)
    before = np.arange(n)[None, :] < best_idx[:, None]
    return _rank_of_target(competitors, best, before, tie_rule)


def lower_median(values: np.ndarray) -> float:
    """Median as ``torch.median`` computes it: the lower middle value for an even count."""
    values = np.sort(np.asarray(values).ravel())
    if values.size == 0:
        raise ValueError("median of an empty array")
    return float(values[(values.size - 1) // 2])


def rank_metrics(ranks: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Summarise 1-based ranks.

    Args:
        ranks: ``(N,)`` 1-based ranks of the ground truth.
        ks: cut-offs for recall.

    Returns:
        ``{"R@k": fraction of ranks <= k for each k, "median_rank": lower median,
        "mean_rank": mean, "count": N}``. R@k are fractions in [0, 1]; ranks are 1-based.
    """
    ranks = np.asarray(ranks)
    if ranks.ndim != 1 or ranks.size == 0:
        raise ValueError(f"ranks must be a non-empty 1-D array, got shape {ranks.shape}")
    out: dict[str, float] = {f"R@{k}": float(np.mean(ranks <= k)) for k in ks}
    out["median_rank"] = lower_median(ranks)
    out["mean_rank"] = float(np.mean(ranks))
    out["count"] = int(ranks.size)
    return out


def recall_curve(ranks: np.ndarray, max_k: int) -> np.ndarray:
    """Recall@k for k = 1..max_k.

    Args:
        ranks: ``(N,)`` 1-based ranks.
        max_k: largest cut-off K (>= 1).

    Returns:
        ``(K,)`` float64 fractions; element ``k - 1`` is the fraction of ranks <= k.
    """
    if max_k < 1:
        raise ValueError(f"max_k must be >= 1, got {max_k}")
    ranks = np.asarray(ranks)
    counts = np.bincount(np.clip(ranks, 1, max_k + 1), minlength=max_k + 2)[1 : max_k + 1]
    return np.cumsum(counts) / ranks.size


def retrieval_metrics(
    sim: np.ndarray,
    gt: np.ndarray,
    ks: Sequence[int] = DEFAULT_KS,
    tie_rule: str = "index",
) -> dict[str, dict[str, float]]:
    """Audio-to-text (official) and text-to-audio retrieval metrics from one similarity matrix.

    Args:
        sim: ``(N, U)`` similarities, clips x de-duplicated captions.
        gt: ``(N,)`` caption column of each clip (from :func:`dedupe_captions`).
        ks: recall cut-offs.
        tie_rule: see :data:`TIE_RULES`.

    Returns:
        ``{"audio_to_text": rank_metrics(...), "text_to_audio": rank_metrics(...)}``.
    """
    return {
        "audio_to_text": rank_metrics(audio_to_text_ranks(sim, gt, tie_rule), ks),
        "text_to_audio": rank_metrics(text_to_audio_ranks(sim, gt, tie_rule), ks),
    }
