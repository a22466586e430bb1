"""Corpus- or speaker-offset augmentation in the frozen-feature space (issue 18, "a model that needs centring less").

Much of what the model gets wrong on an unseen corpus is an offset that corpus shares: centring a
collection's embeddings on its mean recovers a large part of the lost accuracy
(:mod:`paraspeechclap.centering`). A model that has heard the *same* clip under several corpus offsets
cannot lean on the offset. So, with probability ``prob``, a cached training clip of domain ``c`` (its
row's ``domain_field``: by default the corpus in ``source``, or e.g. ``speaker``) is moved onto another
domain ``c'``, drawn uniformly from the others::

    x' = x + lam * (mu[c'] - mu[c]),    lam ~ U(scale[0], scale[1])

where ``mu[d]`` is the mean cached feature of domain ``d``'s training clips (every cached variant).
Only the backbone part of the cached vector moves (:attr:`AudioEncoder.state_width`): explicit
measurements appended after it (level, pitch) stay true, so loudness and pitch labels still hold. The
labels of the clip are untouched: the offset of a corpus is, by construction, what the clips of that
corpus share whatever their emotion.

Domains with fewer than ``min_clips`` clips and those named in ``skip`` (e.g. the synthetic engines,
whose offset is a TTS engine's, not a room's) neither move nor are moved onto. With ``match`` fields
(e.g. ``gender`` when the domains are speakers), a clip only moves onto a domain whose clips mostly
share its own domain's values of them. The draw uses its own
random stream per item, so turning the augmentation on leaves every other draw (caption wording,
cached variant) as it was.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from ..offset import carries


def row_domain(row: Mapping[str, Any], domain_field: str, require: Sequence[str] = ()) -> str | None:
    """A row's domain: its ``domain_field`` value, or ``None`` when that or a ``require``d field is missing."""
    if not carries(row, (domain_field, *require)):
        return None
    return str(row[domain_field])


def domain_means(clips: Iterable[tuple[str | None, list[torch.Tensor]]], width: int | None, min_clips: int,
                 skip: Iterable[str] = ()) -> dict[str, torch.Tensor]:
    """Mean cached feature of each domain with at least ``min_clips`` clips.

    Args:
        clips: ``(domain, variants)`` per distinct training clip: the clip's domain (``None``: it has
            none) and its cached ``(F,)`` feature variants.
        width: leading features that belong to the backbone (``None``: all of them).
        min_clips: smallest domain kept.
        skip: domains left out.

    Returns:
        domain -> ``(width,)`` float32 mean over its clips of each clip's mean variant.
    """
    skipped = set(skip)
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    for domain, variants in clips:
        if domain is None or domain in skipped or not variants:
            continue
        clip = torch.stack([v[:width].double() for v in variants]).mean(0)
        sums[domain] = sums[domain] + clip if domain in sums else clip
        counts[domain] = counts.get(domain, 0) + 1
    return {d: (sums[d] / counts[d]).float() for d in sorted(sums) if counts[d] >= min_clips}


def domain_groups(clips: Iterable[tuple[str | None, str]]) -> dict[str, str]:
    """Each domain's most common group value (ties: the first seen), from ``(domain, group)`` per clip."""
    counts: dict[str, Counter[str]] = {}
    for domain, group in clips:
        if domain is not None:
            counts.setdefault(domain, Counter())[group] += 1
    return {d: c.most_common(1)[0][0] for d, c in counts.items()}


class DomainShift:
    """Moves a cached feature onto another domain's offset (see module docstring).

    Args:
        means: from :func:`domain_means`; at least two domains, or nothing ever moves.
        prob: probability that a clip of a known domain moves.
        scale: ``(lo, hi)`` range of ``lam``.
        width: leading features that move (``None``: all).
        groups: domain -> group (:func:`domain_groups`); a clip moves only within its domain's group.
        domain_field, require: how :meth:`move` finds a row's domain (:func:`row_domain`).
    """

    def __init__(self, means: Mapping[str, torch.Tensor], prob: float, scale: tuple[float, float],
                 width: int | None, groups: Mapping[str, str] | None = None, domain_field: str = "source",
                 require: Sequence[str] = ()) -> None:
        self.domain_field, self.require = domain_field, tuple(require)
        self.means = dict(means)
        self.domains = sorted(self.means)
        self.prob, self.scale, self.width = float(prob), (float(scale[0]), float(scale[1])), width
        group = dict(groups or {})
        self.targets = {d: [t for t in self.domains if t != d and group.get(t) == group.get(d)] for d in self.domains}

    def __call__(self, features: torch.Tensor, domain: str | None, rng: random.Random) -> torch.Tensor:
        """``(F,)`` cached feature -> the same, possibly moved (a new tensor; the cache is not touched)."""
        targets = self.targets.get(domain) if domain is not None else None
        if not targets or rng.random() >= self.prob:
            return features
        target = rng.choice(targets)
        lam = rng.uniform(*self.scale)
        n = features.shape[0] if self.width is None else self.width
        offset = lam * (self.means[target] - self.means[domain])
        out = features.clone()
        out[:n] += offset.to(out.dtype)
        return out

    def move(self, features: torch.Tensor, row: Mapping[str, Any], rng: random.Random) -> torch.Tensor:
        """:meth:`__call__` on the domain of a training row."""
        return self(features, row_domain(row, self.domain_field, self.require), rng)

    def describe(self) -> dict[str, object]:
        """What a run log records: the domains and the settings."""
        return {"domains": self.domains, "prob": self.prob, "scale": list(self.scale), "width": self.width,
                "domain_field": self.domain_field, "require": list(self.require)}
