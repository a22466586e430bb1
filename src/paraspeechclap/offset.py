"""The stored audio offset: a calibration that a model carries for every clip it embeds.

A trained model's audio embeddings share a large common direction: over the training recordings their
mean has a norm of about 0.7 (the embeddings sit in a narrow cone). Scoring a clip against a class
prompt ``t`` is then ``mu . t + (x - mu) . t``: the first term is the same for every clip, a prior that
the clip's own part must outweigh. Clips the model is unsure of (new corpora, new speakers) have a
small own part, so they fall to the classes that prior favours (on held-out corpora, "angry" and
"neutral" over "saddened").

A model with ``config.audio_offset`` subtracts a fixed vector ``o = scale * mean(E)`` from every
L2-normalised audio embedding and normalises again: ``x' = l2(x - o)``, where ``E`` are the normalised
embeddings (without any offset) of a reference set fixed at training time: the run's training
recordings. Unlike centring (:mod:`paraspeechclap.centering`), ``o`` does not depend on what else is
embedded with a clip, so single-clip results stay batch-independent; it applies to every candidate
and caption, the user's own included, because it moves the audio side only. No label is read: the
reference set is chosen by which fields its rows carry (``require``), not by their values.

The prior differs between kinds of audio: recorded speech and synthetic voices sit in different parts
of the cone, and an offset fit on recordings moves a synthetic clip's attributes (whispered or voiced,
voice quality) the wrong way. A **gated** offset (``config.audio_offset_gate``) is applied in proportion
to ``g = sigmoid(x . w - b)``: the soft nearest-mean choice between the reference clips' mean ``m_in``
and the other training clips' mean ``m_out`` (``w = (m_in - m_out) / T``, ``b = (|m_in|^2 - |m_out|^2) / 2T``,
temperature ``T``), so ``x' = l2(x - g * o)``: a clip like the recordings gets the offset, a clip like the
synthetic voices keeps its embedding.

The mean also carries what every recording shares beyond the emotion prior (that it is voiced speech, not
a whisper), so removing all of it moves other attributes of recordings. Restricted to the directions
that separate the classes of some attribute sets (``within``: the span of their class embeddings minus
each set's mean, :func:`within_span`), the offset changes those sets' rankings exactly as the whole mean
would (a class's score moves by ``-o . t``, and only differences between classes rank) and moves other
sets only through the directions they share with them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["apply_offset", "carries", "gate_vector", "gate_weights", "offset_vector", "within_span"]


def offset_vector(embeddings: np.ndarray, scale: float, weights: np.ndarray | None = None) -> np.ndarray:
    """``scale`` times the (weighted) mean of normalised embeddings.

    Args:
        embeddings: ``(N, D)`` L2-normalised audio embeddings of the reference set, computed without
            an offset.
        scale: fraction of the mean removed (1 = all of it).
        weights: ``(N,)`` non-negative weights (e.g. ``1 / variants`` so each clip counts once); None: equal.

    Returns:
        ``(D,)`` float32.
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.ndim != 2 or emb.shape[0] == 0:
        raise ValueError(f"offset_vector: expected a non-empty (N, D) array, got shape {emb.shape}")
    w = np.ones(len(emb)) if weights is None else np.asarray(weights, dtype=np.float64)
    return (scale * (w[:, None] * emb).sum(0) / w.sum()).astype(np.float32)


def carries(row: Mapping[str, Any], require: Sequence[str]) -> bool:
    """Whether ``row`` has every field in ``require`` (present and not None); the values are not read."""
    return all(row.get(f) is not None for f in require)


def gate_vector(mean_in: np.ndarray, mean_out: np.ndarray, temperature: float) -> np.ndarray:
    """``(D + 1,)`` float32 ``[w, b]`` of the soft nearest-mean gate between two normalised-embedding means."""
    if not temperature > 0:
        raise ValueError(f"gate_vector: temperature must be above 0, got {temperature}")
    m_in, m_out = np.asarray(mean_in, np.float64), np.asarray(mean_out, np.float64)
    w = (m_in - m_out) / temperature
    b = (m_in @ m_in - m_out @ m_out) / (2 * temperature)
    return np.append(w, b).astype(np.float32)


def gate_weights(emb: np.ndarray, gate: np.ndarray) -> np.ndarray:
    """``(N,)`` float64 ``sigmoid(emb . w - b)`` of normalised ``(N, D)`` embeddings and a gate ``[w, b]``."""
    emb = np.asarray(emb, np.float64)
    return 1 / (1 + np.exp(-(emb @ gate[:-1] - gate[-1])))


def apply_offset(emb: np.ndarray, offset: np.ndarray, gate: np.ndarray | None = None) -> np.ndarray:
    """Numpy ``l2(emb - g * offset)`` of normalised ``(N, D)`` embeddings (``g`` = 1 without a gate): what a model
    storing ``offset`` (and ``gate``) embeds, for analyses over embeddings already computed without one."""
    emb = np.asarray(emb, np.float64)
    g = np.ones((len(emb), 1)) if gate is None else gate_weights(emb, gate)[:, None]
    x = emb - g * np.asarray(offset, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def within_span(vector: np.ndarray, class_sets: Sequence[np.ndarray], tol: float = 1e-6) -> np.ndarray:
    """``vector`` projected onto the span of the class-embedding differences of each set.

    Args:
        vector: ``(D,)``.
        class_sets: per attribute set, its ``(C, D)`` class embeddings; each set's own mean is removed
            first, so the span holds the directions that tell its classes apart.
        tol: singular values below ``tol`` times the largest are dropped (rank-deficient spans).

    Returns:
        ``(D,)`` float32.
    """
    diffs = np.concatenate([np.asarray(c, np.float64) - np.asarray(c, np.float64).mean(0) for c in class_sets])
    _, sv, vt = np.linalg.svd(diffs, full_matrices=False)
    basis = vt[sv > tol * sv[0]]  # (r, D) orthonormal rows
    return (basis.T @ (basis @ np.asarray(vector, np.float64))).astype(np.float32)
