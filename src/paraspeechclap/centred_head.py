"""A head of its own for speaker-centred scoring, fitted after training (issue 18).

Speaker centring (:mod:`paraspeechclap.centering`) scores a clip by how it differs from its speaker's usual
voice. A model's audio projection is trained on clips scored alone, so that difference is scored by a head made
for something else. A *centred head* is a second :class:`~paraspeechclap.projection.Projection` of the same
shape, used only for speaker centring:

    emb = l2(finish(linear1(h) - mean_s linear1(h_s)))

with ``h`` a clip's backbone-pooled features and the mean over the clips of its speaker (``linear1`` is the last
point that is linear in ``h``, so this equals centring ``h`` itself). It is fitted by :func:`fit_centred_head`:

- on labelled clips of training speakers heard in at least ``min_classes`` classes with at least ``min_clips``
  labelled clips (:func:`qualifying`), each moved off its speaker's mean;
- starting from a copy of the model's audio projection, against the model's own class prompt embeddings of an
  attribute set (the text side is not changed), class-balanced cross-entropy at the model's logit scale;
- full-batch AdamW on columns scaled to equal spread (folded back into ``linear1`` at the end), with the input
  and projection dropout the recipe trains with.

On the default model's leave-one-corpus-out folds this raised speaker-centred 4-class emotion UAR from 0.663 to
0.694 (``benchmarks/centred_head.py``). Collection centring and plain scoring keep the main head.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputError

if TYPE_CHECKING:
    from .model import ParaSpeechCLAP
    from .projection import Projection


@dataclass(frozen=True)
class CentredHeadFit:
    """How :func:`fit_centred_head` fits (the defaults are what the default model ships with).

    Attributes:
        attribute: the attribute set whose labels and class prompts the head is fitted against.
        min_clips: a speaker's labelled clips, at least (2: every speaker with two labelled clips).
        min_classes: distinct classes a speaker is heard in, at least (one class leaves nothing once centred).
        steps: full-batch optimiser steps; lr, weight_decay: AdamW's.
        input_dropout: dropout on the backbone-state columns of the input (the recipe's ``feature_dropout``).
        seed: of the dropout masks.
    """

    attribute: str = "emotion8"
    min_clips: int = 2
    min_classes: int = 2
    steps: int = 300
    lr: float = 1e-3
    weight_decay: float = 0.05
    input_dropout: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("min_clips", "min_classes", "steps"):
            if getattr(self, name) < 1:
                raise InputError(f"centred head: {name} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0 or self.weight_decay < 0 or not 0 <= self.input_dropout < 1:
            raise InputError("centred head: lr must be above 0, weight_decay at least 0, input_dropout in [0, 1)")


# -- pure pieces ----------------------------------------------------------------------------------------------
def qualifying(speakers: Sequence[Any], gold: Sequence[str | None], min_clips: int, min_classes: int = 2) -> set[Any]:
    """Speakers with at least ``min_clips`` labelled rows (``gold`` not None) in at least ``min_classes`` classes."""
    counts = Counter(s for s, g in zip(speakers, gold) if g is not None)
    classes: dict[Any, set[str]] = {}
    for s, g in zip(speakers, gold):
        if g is not None:
            classes.setdefault(s, set()).add(g)
    return {s for s, n in counts.items() if n >= min_clips and len(classes[s]) >= min_classes}


def select_rows(speakers: Sequence[Any], gold: Sequence[str | None], fit: CentredHeadFit) -> list[int]:
    """Indices of the rows a fit uses: every row (labelled or not) of a :func:`qualifying` speaker, in order.
    Their speakers' means are over all of them; the labelled ones are fitted on."""
    ok = qualifying(speakers, gold, fit.min_clips, fit.min_classes)
    return [i for i, s in enumerate(speakers) if s in ok]


def balanced_weights(target: np.ndarray, classes: int) -> np.ndarray:
    """``(classes,)`` cross-entropy weights ``n / (k * n_c)`` over the ``k`` classes present (absent: 0), so
    every class present weighs the same in total (scikit-learn's ``class_weight="balanced"``)."""
    counts = np.bincount(np.asarray(target), minlength=classes).astype(np.float64)
    present = counts > 0
    out = np.zeros(classes)
    out[present] = counts.sum() / (present.sum() * counts[present])
    return out


def speaker_centred(x: np.ndarray, speakers: Sequence[Any]) -> np.ndarray:
    """``(N, H)`` rows minus their speaker's mean row (float64); a speaker with one row becomes zeros."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    groups: dict[Any, list[int]] = {}
    for i, s in enumerate(speakers):
        groups.setdefault(s, []).append(i)
    for idx in groups.values():
        out[idx] = x[idx] - x[idx].mean(axis=0)
    return out


# -- fitting --------------------------------------------------------------------------------------------------
def fit_projection(projection: Projection, x: np.ndarray, target: np.ndarray, classes: np.ndarray, scale: float,
                   state_width: int | None, fit: CentredHeadFit) -> tuple[Projection, list[float]]:
    """A float32 copy of ``projection`` trained on centred rows; ``projection`` is left unchanged.

    The fit runs on each column divided by its spread over ``x`` (the copy's ``linear1`` multiplied by it, so it
    starts as ``projection``): the few columns where a speaker's clips differ most are then as easy to move as the
    rest. The spread is folded back into ``linear1`` at the end, so the head takes rows as given.

    Args:
        x: ``(N, H)`` centred pooled features; target: ``(N,)`` class index into ``classes``.
        classes: ``(C, D)`` normalised class embeddings; scale: the logit scale.
        state_width: the leading columns that are backbone states (input dropout applies to them only; None: all).

    Returns:
        the fitted head (eval mode) and the loss at the first and the last step.
    """
    heads, losses = fit_path(projection, x, target, classes, scale, state_width, fit, (fit.steps,))
    return heads[fit.steps], [losses[0], losses[-1]]


def fit_path(projection: Projection, x: np.ndarray, target: np.ndarray, classes: np.ndarray, scale: float,
             state_width: int | None, fit: CentredHeadFit, at: Sequence[int]) -> tuple[dict[int, Projection],
                                                                                    list[float]]:
    """:func:`fit_projection`'s fit, keeping the head after each step count in ``at`` (each ``<= fit.steps``): one
    run gives every shorter fit exactly (the same seed draws the same dropout masks), for choosing ``steps``.

    Returns:
        ``{step: head}`` (eval mode, spread folded back) and the loss at every step.
    """
    import torch

    bad = [s for s in at if not 1 <= s <= fit.steps]
    if bad:
        raise InputError(f"centred head: snapshot step(s) {bad} are outside 1..{fit.steps}")
    # the seed sets the dropout masks without touching the caller's RNG; gradients whatever the caller's mode
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(fit.seed)
        return _fit(projection, x, target, classes, scale, state_width, fit, set(at))


def _fit(projection: Projection, x: np.ndarray, target: np.ndarray, classes: np.ndarray, scale: float,
         state_width: int | None, fit: CentredHeadFit, at: set[int]) -> tuple[dict[int, Projection], list[float]]:
    """:func:`fit_path`'s loop, under its seed."""
    import torch
    from torch.nn import functional as F

    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(target, dtype=torch.long)
    spread = xt.std(0).clamp_min(1e-4) if len(xt) > 1 else torch.ones(xt.shape[1])
    xt = xt / spread
    head = copy.deepcopy(projection).float().train()
    with torch.no_grad():
        head.linear1.weight.mul_(spread[None, :])
    ct = torch.as_tensor(classes, dtype=torch.float32)
    weight = torch.as_tensor(balanced_weights(target, len(ct)), dtype=torch.float32)
    opt = torch.optim.AdamW(head.parameters(), lr=fit.lr, weight_decay=fit.weight_decay)
    losses: list[float] = []
    kept: dict[int, Projection] = {}
    state_width = xt.shape[1] if state_width is None else state_width  # None: every column is a backbone state
    for step in range(1, fit.steps + 1):
        states = F.dropout(xt[:, :state_width], p=fit.input_dropout, training=True)
        emb = F.normalize(head(torch.cat([states, xt[:, state_width:]], dim=1)), dim=-1)
        loss = F.cross_entropy(scale * emb @ ct.T, yt, weight=weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if step in at:
            kept[step] = copy.deepcopy(head)
            with torch.no_grad():
                kept[step].linear1.weight.div_(spread[None, :])
            kept[step].eval()
    return kept, losses


def fit_centred_head(model: ParaSpeechCLAP, pooled: np.ndarray, speakers: Sequence[Any], gold: Sequence[str | None],
                     fit: CentredHeadFit | None = None) -> dict[str, Any]:
    """Fit ``model``'s centred head (:meth:`~paraspeechclap.model.ParaSpeechCLAP.set_centred_head`) on clips.

    Args:
        pooled: ``(N, H)`` backbone-pooled features of the clips (:meth:`pool_audio`).
        speakers: ``(N,)`` speaker ids; gold: ``(N,)`` each clip's label in ``fit.attribute`` (None: unlabelled,
            still counted in its speaker's mean).
        fit: the settings (default :class:`CentredHeadFit`).

    Returns:
        what was fitted on: ``clips`` (labelled), ``rows`` (centred), ``speakers``, ``classes`` (clips per class),
        ``loss`` (first and last step) and the settings.

    Raises:
        InputError: mismatched lengths, a label that is not a class of the set, or fewer than two classes among
            the qualifying speakers' clips.
    """
    fit = fit or CentredHeadFit()
    inputs = fit_inputs(model, pooled, speakers, gold, fit)
    head, loss = fit_projection(model.audio_projection, *inputs.arrays, float(model.logit_scale.detach()),
                                model.audio_branch.state_width, fit)
    model.set_centred_head(head)
    return {**inputs.info, "loss": [round(v, 6) for v in loss], **asdict(fit)}


@dataclass(frozen=True)
class FitInputs:
    """What a fit trains on: ``arrays`` = (``(N, H)`` centred rows, ``(N,)`` class index, ``(C, D)`` class
    embeddings) and ``info`` (``clips``, ``rows``, ``speakers``, ``classes``: clips per class)."""

    arrays: tuple[np.ndarray, np.ndarray, np.ndarray]
    info: dict[str, Any]


def fit_inputs(model: ParaSpeechCLAP, pooled: np.ndarray, speakers: Sequence[Any], gold: Sequence[str | None],
               fit: CentredHeadFit) -> FitInputs:
    """:func:`fit_centred_head`'s rows, targets and class prompt embeddings (its arguments; the same errors)."""
    from .data.attributes import get_attribute_set
    from .evaluation.classification import embed_class_prompts

    pooled = np.asarray(pooled)
    if not len(pooled) == len(speakers) == len(gold):
        raise InputError(f"centred head: {len(pooled)} clips, {len(speakers)} speaker ids, {len(gold)} labels")
    aset = get_attribute_set(fit.attribute)
    index = {c: j for j, c in enumerate(aset.candidates)}
    unknown = sorted({str(g) for g in gold if g is not None and g not in index})
    if unknown:
        raise InputError(f"centred head: label(s) {', '.join(unknown[:3])} are not classes of {fit.attribute} "
                         f"({', '.join(aset.candidates)})")
    rows = select_rows(speakers, gold, fit)
    labelled = [k for k, i in enumerate(rows) if gold[i] is not None]
    target = np.array([index[gold[rows[k]]] for k in labelled], dtype=np.int64)
    if len(set(target.tolist())) < 2:
        raise InputError(f"centred head: no two classes of {fit.attribute} among speakers with >= {fit.min_clips} "
                         f"labelled clips in >= {fit.min_classes} classes ({len(rows)} clips qualify)")
    x = speaker_centred(pooled[rows], [speakers[i] for i in rows])[labelled]
    model.require_text()
    classes = embed_class_prompts(model, aset.prompts(ensemble=True), aset.candidates)
    counts = Counter(aset.candidates[t] for t in target.tolist())
    return FitInputs((x, target, classes), {"clips": len(labelled), "rows": len(rows),
                                            "speakers": len({speakers[i] for i in rows}),
                                            "classes": dict(sorted(counts.items()))})
