"""Evaluation: pure metric functions (retrieval, classification), reports and the eval runner.

Only the numpy-only metric functions are re-exported here; :mod:`.runner` (which needs the model)
and :mod:`.report` (which needs matplotlib) are imported explicitly by their users.
"""

from .classification import class_embeddings, classification_metrics, confusion_matrix, predict_labels
from .retrieval import (
    TIE_RULES,
    audio_to_text_ranks,
    dedupe_captions,
    lower_median,
    rank_metrics,
    recall_curve,
    retrieval_metrics,
    text_to_audio_ranks,
)

__all__ = [
    "TIE_RULES",
    "audio_to_text_ranks",
    "class_embeddings",
    "classification_metrics",
    "confusion_matrix",
    "dedupe_captions",
    "lower_median",
    "predict_labels",
    "rank_metrics",
    "recall_curve",
    "retrieval_metrics",
    "text_to_audio_ranks",
]
