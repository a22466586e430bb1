"""Zero-shot classification: prediction from scores and accuracy / UAR / macro-F1.

Pure functions on numpy arrays and label lists. The metrics match the official
``scripts/evaluate_classification.py`` (sklearn with ``labels=sorted(candidates)`` and
``zero_division=0``): a candidate that never occurs in the gold labels still counts in the macro
averages, with recall 0 and F1 0, so UAR is the mean recall over *all* candidates.

Gold labels that are not candidates: the official script stops with an error. Here these metric
functions exclude such clips from every metric and count them (``excluded``); whether an
evaluation stops or excludes is decided earlier (``on_unmatched`` of
:func:`paraspeechclap.evaluation.runner.run_classification`: ``evaluate classification
--candidates`` stops unless ``--drop-unmatched``, named attribute sets exclude).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Mapping

import numpy as np


def predict_labels(scores: np.ndarray, candidates: Sequence[str]) -> list[str]:
    """Arg-max candidate per row; ties go to the candidate listed first.

    Args:
        scores: ``(N, C)`` similarities, clips x candidates.
        candidates: the C candidate labels, in the column order of ``scores``.

    Returns:
        N predicted labels.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] != len(candidates):
        raise ValueError(f"scores must have shape (N, {len(candidates)}), got {scores.shape}")
    return [candidates[j] for j in np.argmax(scores, axis=1)]


def class_embeddings(prompt_embs: Sequence[np.ndarray]) -> np.ndarray:
    """One text embedding per class from an ensemble of prompt embeddings.

    Each prompt embedding is L2-normalised, the class mean is taken and renormalised (the CLIP
    prompt-ensembling recipe), so a class with more prompts does not get a longer vector.

    Args:
        prompt_embs: C arrays, each ``(P_c, D)``: the embeddings of the prompts of class c.

    Returns:
        ``(C, D)`` float32, unit-norm rows.
    """
    out = []
    for c, emb in enumerate(prompt_embs):
        emb = np.asarray(emb, dtype=np.float64)
        if emb.ndim != 2 or emb.shape[0] == 0:
            raise ValueError(f"class {c}: expected a non-empty (P, D) array, got shape {emb.shape}")
        mean = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).mean(axis=0)
        out.append(mean / np.linalg.norm(mean))
    return np.stack(out).astype(np.float32)


def embed_class_prompts(model: Any, prompts: Mapping[str, Sequence[str]], candidates: Sequence[str]) -> np.ndarray:
    """``(C, D)`` class embeddings: each candidate's prompts embedded by ``model.embed_text`` and
    combined by :func:`class_embeddings` (one prompt, or an ensemble)."""
    return class_embeddings([model.embed_text(list(prompts[c])) for c in candidates])


def attribute_set_scores(model: Any, audio: np.ndarray, aset: Any, ensemble: bool = True) -> np.ndarray:
    """Zero-shot cosine scores of clips against an attribute set's candidates.

    Args:
        model: anything with ``embed_text`` (the class prompts are embedded with it).
        audio: ``(N, D)`` normalised clip embeddings.
        aset: an :class:`~paraspeechclap.data.attributes.AttributeSet`.
        ensemble: each class the mean of its prompt ensemble (else its default prompt).

    Returns:
        ``(N, C)`` cosines, columns in ``aset.candidates`` order.
    """
    classes = embed_class_prompts(model, aset.prompts(ensemble=ensemble), aset.candidates)  # (C, D)
    return audio @ classes.T


def confusion_matrix(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Counts ``[i, j]`` = clips with gold ``labels[i]`` predicted as ``labels[j]``.

    Pairs whose gold or predicted label is not in ``labels`` are ignored.

    Returns:
        ``(L, L)`` int64.
    """
    index = {label: i for i, label in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for g, p in zip(gold, pred):
        if g in index and p in index:
            cm[index[g], index[p]] += 1
    return cm


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # zero_division=0: a class never predicted has precision 0, one never in gold has recall 0.
    return np.divide(num, den, out=np.zeros(num.shape, dtype=np.float64), where=den > 0)


def classification_metrics(
    gold: Sequence[str], pred: Sequence[str], candidates: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, UAR, macro-F1, per-class recall/precision/F1 and the confusion matrix.

    Args:
        gold: N gold labels.
        pred: N predicted labels (normally candidates).
        candidates: the candidate labels; metrics use them sorted, as the official code does.

    Returns:
        A dict with ``accuracy``, ``uar`` (macro recall over every candidate: the official
        definition, where a class absent from gold counts as recall 0), ``uar_present`` (macro
        recall over the classes present in gold, sklearn's balanced accuracy: the meaningful view
        of a subset that lacks some classes, e.g. one corpus), ``macro_f1`` (fractions in [0, 1]),
        ``labels`` (sorted candidates), ``per_class`` (label -> recall, precision, f1, support,
        predicted), ``confusion_matrix`` (rows gold, columns predicted, in ``labels`` order),
        ``count`` (clips evaluated), ``excluded`` (clips whose gold label is not a candidate) and
        ``excluded_labels`` (label -> count).
    """
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} labels but pred has {len(pred)}")
    labels = sorted(set(candidates))
    if not labels:
        raise ValueError("no candidate labels")
    known = set(labels)
    keep = [i for i, g in enumerate(gold) if g in known]
    excluded = Counter(g for g in gold if g not in known)
    if not keep:
        raise ValueError("no gold label is among the candidates")
    g_kept = [gold[i] for i in keep]
    p_kept = [pred[i] for i in keep]
    cm = confusion_matrix(g_kept, p_kept, labels)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    # Predictions outside the candidates (never from predict_labels) count as wrong, not as a class.
    predicted = cm.sum(axis=0).astype(np.float64)
    recall = _safe_div(tp, support)
    precision = _safe_div(tp, predicted)
    f1 = _safe_div(2 * tp, support + predicted)  # = 2PR/(P+R), 0 when both are 0
    per_class = {
        label: {
            "recall": float(recall[i]),
            "precision": float(precision[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
            "predicted": int(predicted[i]),
        }
        for i, label in enumerate(labels)
    }
    return {
        "accuracy": float(tp.sum() / len(keep)),
        "uar": float(recall.mean()),
        "uar_present": float(recall[support > 0].mean()),
        "macro_f1": float(f1.mean()),
        "labels": labels,
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "count": len(keep),
        "excluded": int(sum(excluded.values())),
        "excluded_labels": dict(sorted(excluded.items())),
    }


def score_attribute_set(model: Any, audio: np.ndarray, rows: Sequence[Mapping[str, Any]], set_name: str,
                        ensemble: bool = True, among: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Zero-shot scores of one named attribute set on embedded clips.

    Args:
        model: anything with ``embed_text`` (the class prompts are embedded with it).
        audio: ``(N, D)`` normalised clip embeddings.
        rows: the clips' label rows (the set reads its gold label from them).
        set_name: a registered attribute set (``paraspeechclap data sets``).
        ensemble: average each class over its prompt ensemble (else its default prompt).
        among: choose among these candidates only (e.g. the official tags a synthetic corpus produces);
            clips whose gold label is not one of them are left out. None: all.

    Returns:
        ``uar`` (official: over every candidate chosen among, absent classes count 0), ``uar_present``
        (over the classes present), ``accuracy``, ``count``, ``chance`` (1 / candidates), ``classes``,
        ``classes_present``, ``labels`` (sorted: the confusion matrix's order, as
        :func:`classification_metrics` gives it), ``confusion`` (``[gold][pred]`` counts) and
        ``predicted`` (per clip, None for clips without a gold label); None when no clip has a gold label.
    """
    from ..data.attributes import get_attribute_set

    aset = get_attribute_set(set_name)
    candidates = list(aset.candidates)
    labels = candidates if among is None else [c for c in among if c in aset.candidates]
    gold = [aset.gold(r) for r in rows]
    keep = [i for i, g in enumerate(gold) if g in labels]
    if not keep:
        return None
    scores = attribute_set_scores(model, audio[keep], aset, ensemble)  # (n, all candidates)
    pred = predict_labels(scores[:, [candidates.index(c) for c in labels]], labels)
    m = classification_metrics([gold[i] for i in keep], pred, labels)  # type: ignore[misc]
    predicted: list[str | None] = [None] * len(rows)
    for i, p in zip(keep, pred):
        predicted[i] = p
    present = sum(1 for c in m["per_class"].values() if c["support"] > 0)
    return {"uar": m["uar"], "uar_present": m["uar_present"], "accuracy": m["accuracy"], "count": m["count"],
            "chance": 1.0 / len(labels), "classes": len(labels), "classes_present": present,
            "labels": m["labels"], "confusion": m["confusion_matrix"], "predicted": predicted}
