"""Centring audio embeddings against a reference: ``x' = l2(x - mean(R))``.

Much of what a model gets wrong on a corpus it never heard is an offset shared by that corpus's clips
(its room, microphone, language, acting style) or by one speaker's clips. Subtracting the mean
embedding of a reference set ``R`` and re-normalising removes that offset before scoring. Only the
projected audio embeddings are centred; text embeddings are untouched, and no label is ever read.

Modes (``center=``):

- ``"none"`` (the default): embeddings as they are, so an item's result never depends on the other
  items it is embedded with. With ``reference`` clips, every item is centred on their mean (a single
  clip centred on, e.g., neutral speech of the same speaker or room).
- ``"collection"``: ``R`` is every item of the call (or ``reference`` when given, which then stands
  for the collection).
- ``"speaker"``: ``R`` is the items of the same speaker (``speakers``, one id per item). A speaker
  with a single item has no mean of their own: that item is centred on ``reference`` when given,
  and is an error otherwise (centring a clip on itself would leave nothing).

A collection of one item is an error without ``reference`` for the same reason.

Speaker means of few clips (``prior``, in clips; a model's ``speaker_prior``). A speaker's mean over ``n``
clips estimates their own offset plus whatever their clips share besides it; heard in a few clips of one
emotion, that is the emotion itself, and centring removes it. With ``prior = k > 0`` each speaker is centred on
``(sum of their n items + k * m) / (n + k)``, where ``m`` is the mean of ``reference`` if given, else of all the
items: the random-effects (empirical Bayes) estimate of a speaker's offset, which trusts a speaker of many
clips and pulls one of few towards the collection. A speaker with a single item then needs no ``reference``
(unless it is the only item). ``k = 0`` is the plain speaker mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError

CENTER_MODES = ("none", "collection", "speaker")


@dataclass(frozen=True)
class Centering:
    """How a call centres its audio embeddings (recorded in reports and ``--json`` outputs).

    Attributes:
        mode: one of :data:`CENTER_MODES`.
        reference: number of reference clips (0: none).
        speakers: number of distinct speakers (``speaker`` mode), else 0.
        fallback: items centred on ``reference`` because their speaker had only them.
        head: the audio head the centred rows went through: ``"main"`` (the model's audio projection:
            ``l2(x - mean(R))`` of its embeddings) or ``"centred"`` (the model's centred head, for speaker
            centring: ``l2(finish(linear1(h) - mean_R linear1(h_R)))``, :mod:`paraspeechclap.centred_head`).
        prior: ``speaker`` mode: clips of weight each speaker's mean gave the collection's (0: none).
    """

    mode: str = "none"
    reference: int = 0
    speakers: int = 0
    fallback: int = 0
    head: str = "main"
    prior: float = 0.0

    @property
    def applied(self) -> bool:
        return self.mode != "none" or self.reference > 0


def head_for(mode: str, model: Any) -> str:
    """The head a model's own centring (:meth:`~paraspeechclap.model.ParaSpeechCLAP.embed_audio`) scores ``mode``
    with: ``"centred"`` for speaker centring on a model with a centred head, else ``"main"``. Centring of stored
    embeddings (search indexes, annotation shards) always uses ``"main"``: the centred head needs the clips."""
    return "centred" if mode == "speaker" and getattr(model, "has_centred_head", False) else "main"


def check_mode(mode: str) -> str:
    if mode not in CENTER_MODES:
        raise InputError(f"center must be one of {', '.join(CENTER_MODES)}, got {mode!r}")
    return mode


def has_speaker_id(speaker: Any) -> bool:
    """True for a usable speaker id: not None and not empty or blank once written as text."""
    return speaker is not None and str(speaker).strip() != ""


def check_speakers(n: int, speakers: Sequence[Any] | None) -> None:
    """``speakers`` must give one non-empty id for each of ``n`` clips (``center="speaker"``)."""
    if speakers is None or len(speakers) != n:
        got = "none" if speakers is None else len(speakers)
        raise InputError(f"center=speaker needs one speaker id per clip ({n} clips, {got} ids)")
    for i, s in enumerate(speakers):
        if not has_speaker_id(s):
            raise InputError(f"center=speaker: clip {i} has no speaker id")


def manifest_speakers(manifest: Any, field: str, indices: Sequence[int] | None = None) -> list[Any]:
    """The ``field`` of manifest rows (all, or ``indices``) as speaker ids for ``center="speaker"``.

    Raises:
        InputError: rows without the field, named by the manifest and the first such row's key.
    """
    idx = range(len(manifest)) if indices is None else indices
    ids = [manifest[i].get(field) for i in idx]
    missing = [i for i, s in zip(idx, ids) if not has_speaker_id(s)]
    if missing:
        raise InputError(f"{manifest.name}: center=speaker: {len(missing)} row(s) have no {field!r} field, "
                         f"e.g. {manifest.key(missing[0])}")
    return ids


def collection_of_one() -> InputError:
    """The error of a collection centred without reference clips that has a single clip."""
    return InputError("center=collection needs at least 2 clips, or reference clips (a clip centred on itself is "
                      "nothing)")


def lone_speaker(speaker: Any) -> InputError:
    """The error of a speaker with a single clip centred without reference clips."""
    return InputError(f"center=speaker: speaker {speaker!r} has only one clip; give reference clips (--reference) "
                      "or use center=collection")


def check_prior(prior: Any, name: str = "speaker prior") -> float:
    """``prior`` as a float: clips of weight on the collection mean, finite and at least 0."""
    try:
        value = float(prior)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number of clips, got {prior!r}") from None
    if not 0.0 <= value < float("inf"):  # also refuses nan
        raise InputError(f"{name} must be a finite number of clips >= 0, got {prior!r}")
    return value


def speaker_mean(total: np.ndarray, n: int, pool: np.ndarray, prior: float) -> np.ndarray | None:
    """The mean a speaker of ``n`` items summing to ``total`` ``(D,)`` is centred on: ``(total + prior * pool) /
    (n + prior)``, ``pool`` ``(D,)`` the reference's or the collection's mean; None for a speaker of one item
    without a prior, whose item falls back to the reference (or is an error)."""
    if n == 1 and prior == 0:
        return None
    return (total + prior * pool) / (n + prior)


def l2_rows(x: np.ndarray) -> np.ndarray:
    """``(N, D)`` rows scaled to unit length (float32); an all-zero row stays zero."""
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


def center_embeddings(
    emb: np.ndarray,
    mode: str = "none",
    speakers: Sequence[Any] | None = None,
    reference: np.ndarray | None = None,
    *,
    normalize: bool = True,
    prior: float = 0.0,
) -> tuple[np.ndarray, Centering]:
    """Centre ``(N, D)`` audio embeddings; returns ``(N, D)`` float32 unit rows and what was done.

    Args:
        emb: ``(N, D)`` embeddings (the projected, L2-normalised audio embeddings).
        mode: ``"none"``, ``"collection"`` or ``"speaker"`` (see the module docstring).
        speakers: ``(N,)`` speaker ids, for ``"speaker"`` (any hashable; None or "" is an error).
        reference: ``(R, D)`` embeddings of reference clips, or None.
        normalize: False: the centred rows as they are, not scaled to unit length (float64), for centring
            at a stage that more layers follow (e.g. the projection's first linear output).
        prior: ``speaker`` mode: each speaker's mean shrunk towards the collection's by this many clips
            (see the module docstring; 0: the plain speaker mean). Other modes ignore it.

    Raises:
        InputError: an unknown mode; ``speaker`` without one id per item; a group of one item
            (collection or speaker) without ``reference``; an empty reference.
    """
    check_mode(mode)
    emb = np.asarray(emb, dtype=np.float64)
    ref_mean = None
    if reference is not None:
        reference = np.asarray(reference, dtype=np.float64)
        if reference.ndim != 2 or len(reference) == 0:
            raise InputError("reference: no reference clips to centre on")
        if reference.shape[1] != emb.shape[1]:
            raise InputError(f"reference: embeddings of size {reference.shape[1]}, items of {emb.shape[1]}")
        ref_mean = reference.mean(axis=0)
    n_ref = 0 if reference is None else len(reference)
    if mode == "none":
        out, done = (emb if ref_mean is None else emb - ref_mean), Centering("none", n_ref)
    elif mode == "collection":
        if ref_mean is None and len(emb) < 2:
            raise collection_of_one()
        mean = ref_mean if ref_mean is not None else emb.mean(axis=0)
        out, done = emb - mean, Centering("collection", n_ref)
    else:
        out, done = _center_speakers(emb, speakers, ref_mean, n_ref, check_prior(prior))
    return (l2_rows(out) if normalize else out), done


def _center_speakers(emb: np.ndarray, speakers: Sequence[Any] | None, ref_mean: np.ndarray | None,
                     n_ref: int, prior: float) -> tuple[np.ndarray, Centering]:
    """Each speaker's rows minus their mean, shrunk towards the collection's by ``prior`` clips (``prior`` 0: a
    lone row minus ``ref_mean``); not yet normalised."""
    check_speakers(len(emb), speakers)
    groups: dict[Any, list[int]] = {}
    for i, s in enumerate(speakers):  # type: ignore[arg-type]
        groups.setdefault(s, []).append(i)
    if prior > 0 and ref_mean is None and len(emb) < 2:
        raise lone_speaker(speakers[0])  # type: ignore[index]  # the collection would be the clip itself
    pool = emb.mean(axis=0) if ref_mean is None else ref_mean
    out = np.empty_like(emb)
    fallback = 0
    for s, idx in groups.items():
        mean = speaker_mean(emb[idx].sum(axis=0), len(idx), pool, prior)
        if mean is None:
            if ref_mean is None:
                raise lone_speaker(s)
            mean, fallback = ref_mean, fallback + 1
        out[idx] = emb[idx] - mean
    return out, Centering("speaker", n_ref, len(groups), fallback, prior=prior)
