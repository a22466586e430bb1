"""Names of the dev metrics the trainer logs: one definition for :mod:`.evaluate` (which writes
them) and :mod:`.config` (which checks ``eval.best_metric`` against them).

Light on purpose (no torch): the config imports it while it validates.

* retrieval: ``val/<direction>/<key>`` for each direction and key of
  :func:`paraspeechclap.evaluation.retrieval.retrieval_metrics`, plus ``val/audio_to_text/chance_R@1``;
* classification: ``val/<set>/<key>`` for each attribute set and :data:`CLASSIFICATION_KEYS`;
* bookkeeping: ``val/clips`` and ``val/skipped``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

PREFIX = "val"
#: per attribute set: what :func:`.evaluate.classification_scores` reports.
CLASSIFICATION_KEYS: tuple[str, ...] = ("uar", "uar_present", "accuracy", "count")
#: classification keys where higher is better (those ``eval.best_metric`` may select).
_BETTER_HIGHER = ("uar", "uar_present", "accuracy")
#: R@1 of a random ranking (1 / unique captions): a reference, not a score of the model.
CHANCE_R1 = f"{PREFIX}/audio_to_text/chance_R@1"
CLIPS = f"{PREFIX}/clips"
SKIPPED = f"{PREFIX}/skipped"


def retrieval_name(direction: str, key: str) -> str:
    """``val/<direction>/<key>``, e.g. ``val/audio_to_text/R@1``."""
    return f"{PREFIX}/{direction}/{key}"


def classification_name(set_name: str, key: str) -> str:
    """``val/<set>/<key>``, e.g. ``val/emotion/uar``."""
    return f"{PREFIX}/{set_name}/{key}"


@functools.lru_cache(maxsize=1)
def _retrieval_keys() -> tuple[tuple[str, str], ...]:
    """``(direction, key)`` pairs that ``retrieval_metrics`` returns.

    Read from the function's output on a one-clip input, so the list cannot drift from what the
    evaluation really reports (the cut-offs and rank statistics are defined there only).
    """
    import numpy as np

    from ..evaluation.retrieval import retrieval_metrics

    sample = retrieval_metrics(np.ones((1, 1), np.float32), np.zeros(1, np.int64))
    return tuple((direction, key) for direction, metrics in sample.items() for key in metrics)


def dev_metric_names(attribute_sets: Sequence[str]) -> list[str]:
    """Every name :func:`.evaluate.evaluate_dev` can log for these ``eval.attribute_sets``."""
    names = [CLIPS, SKIPPED, *(retrieval_name(d, k) for d, k in _retrieval_keys()), CHANCE_R1]
    return names + [classification_name(s, k) for s in attribute_sets for k in CLASSIFICATION_KEYS]


def best_metric_choices(attribute_sets: Sequence[str]) -> list[str]:
    """The names ``eval.best_metric`` may take: logged, and higher is better (recalls, UAR, accuracy)."""
    recalls = [retrieval_name(d, k) for d, k in _retrieval_keys() if k.startswith("R@")]
    return recalls + [classification_name(s, k) for s in attribute_sets for k in _BETTER_HIGHER]
