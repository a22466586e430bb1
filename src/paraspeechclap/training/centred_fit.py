"""The training speakers' mean embeddings for ``loss.centred`` (:mod:`paraspeechclap.losses.centred`),
gathered once from the feature cache and recomputed on the current weights every ``refresh`` steps."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..data.attributes import get_attribute_set
from ..errors import ConfigError
from ..losses.centred import SpeakerMeans, weighted_group_means
from .config import CentredConfig
from .data import Source, cached_clips
from .domain_shift import row_domain
from .evaluate import embed_cached
from .features import FeatureTable

if TYPE_CHECKING:
    from ..model import ParaSpeechCLAP


@dataclass
class SpeakerClips:
    """Every cached variant of the centred speakers' distinct training clips.

    Attributes:
        means: the speakers and their current means.
        features: ``N`` cached feature vectors (references into the feature table, not copies).
        ids: ``(N,)`` long, each variant's speaker index.
        weights: ``(N,)`` float, ``1 / variants`` of its clip, so each clip counts once.
    """

    means: SpeakerMeans
    features: list[torch.Tensor]
    ids: torch.Tensor
    weights: torch.Tensor
    at: str = "embedding"

    def refresh(self, model: ParaSpeechCLAP) -> None:
        """Recompute every speaker's mean (normalised embedding, or ``linear1`` output: ``at``) on ``model``'s
        current weights."""
        emb = torch.from_numpy(embed_cached(model, self.features, at=self.at))
        self.means.set(weighted_group_means(emb, self.ids, self.weights, len(self.means.groups)))


def speaker_clips(sources: Sequence[Source], plan: Sequence[tuple[int, int]], table: FeatureTable, dim: int,
                  cfg: CentredConfig) -> SpeakerClips:
    """The speakers with at least ``cfg.min_clips`` distinct cached training clips carrying ``cfg.require``,
    among them at least ``cfg.min_classes`` gold classes of ``cfg.sets``.

    Raises:
        ConfigError: no speaker qualifies.
    """
    sets = [get_attribute_set(name) for name in cfg.sets]
    clips: dict[str, tuple[str, list[torch.Tensor]]] = {}
    classes: dict[str, set[tuple[str, str]]] = {}
    for key, row, variants in cached_clips(sources, plan, table):
        speaker = row_domain(row, cfg.speaker_field, cfg.require)
        if speaker is not None:
            clips[key] = (speaker, variants)
            golds = {(a.name, str(gold)) for a in sets if (gold := a.gold(row)) is not None}
            classes.setdefault(speaker, set()).update(golds)
    counts = Counter(speaker for speaker, _ in clips.values())
    groups = sorted(g for g, n in counts.items() if n >= cfg.min_clips and len(classes[g]) >= cfg.min_classes)
    if not groups:
        raise ConfigError(f"loss.centred: no {cfg.speaker_field!r} has >= {cfg.min_clips} training clips carrying "
                          f"{cfg.require} with >= {cfg.min_classes} classes of {cfg.sets} "
                          f"(most clips: {counts.most_common(1) or 'none'})")
    means = SpeakerMeans(groups, dim)
    feats, ids, weights = [], [], []
    for speaker, variants in clips.values():
        if speaker in means.index:
            feats += variants
            ids += [means.index[speaker]] * len(variants)
            weights += [1.0 / len(variants)] * len(variants)
    return SpeakerClips(means, feats, torch.tensor(ids, dtype=torch.long), torch.tensor(weights), cfg.at)
