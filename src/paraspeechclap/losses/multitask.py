"""Intrinsic-model multitask loss: contrastive + multi-label tag classification (BCE).

The classifier has no head of its own: each vocabulary tag is embedded by the (trainable) text
tower from one paraphrase prompt drawn at random per step (:func:`draw_tag_prompts`), and the
logit of tag ``m`` for sample ``i`` is the plain cosine ``cos(audio_i, tag_m)``: no temperature,
no bias, so logits lie in ``[-1, 1]``. This follows the official ``MultiTaskLoss``.

Per step, the caller does::

    prompts = draw_tag_prompts(vocab, paraphrases, rng, "A person is speaking in a {} style.")
    tag_emb = model.encode_text(tokenize(prompts), normalize=False)      # (M, D), with gradient
    losses = loss_fn(audio_emb, text_emb, logit_scale, tag_emb, batch_tags, output_dict=True)
    total = sum(v for k, v in losses.items() if k.endswith("_loss"))
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Union

import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed
from .contrastive import ContrastiveLoss
from .gather import gather_features, gather_objects

__all__ = ["MultiTaskLoss", "SampleTags", "TagClassificationLoss", "draw_tag_prompts", "normalize_tag"]

#: One sample's tags: a list of tag names, a single tag name, or ``None`` (untagged).
SampleTags = Union[Sequence[str], str, None]  # noqa: UP007 (runtime alias; `|` needs 3.10 types)


def normalize_tag(tag: str) -> str:
    """Canonical tag spelling: stripped and lower-cased (how the official vocabulary is built)."""
    return tag.strip().lower()


def _tag_list(tags: SampleTags) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [tags]
    return [t for t in (normalize_tag(x) for x in tags) if t]


def draw_tag_prompts(
    vocab: Sequence[str],
    paraphrases: Mapping[str, Sequence[str]],
    rng: random.Random,
    default_template: str,
    broadcast: bool = True,
) -> list[str]:
    """Pick one prompt per vocabulary tag for this step.

    A tag with paraphrases gets ``rng.choice`` of them; any other tag gets
    ``default_template.format(tag)`` (officially ``"A person is speaking in a {} style."``).
    Under DDP (``broadcast=True``) rank 0 draws and broadcasts, so all ranks embed the same
    prompts whatever their RNG state (ranks are seeded ``seed + rank``).

    Args:
        vocab: ``M`` tag names.
        paraphrases: Tag -> candidate prompt sentences (e.g. ``synonym_templates.json``).
        rng: Random generator; only rank 0's is consumed under DDP.
        default_template: ``str.format`` template with one ``{}`` for the tag.
        broadcast: Share rank 0's draw when distributed.

    Returns:
        ``M`` prompts, aligned with ``vocab``.
    """
    prompts: list[str] | None = None
    if not broadcast or distributed.is_main():
        prompts = []
        for tag in vocab:
            candidates = paraphrases.get(tag) or ()
            prompts.append(rng.choice(list(candidates)) if candidates else default_template.format(tag))
    return distributed.broadcast_object(prompts) if broadcast else prompts  # type: ignore[return-value]


class TagClassificationLoss(nn.Module):
    """Multi-label BCE between raw cosines ``cos(audio_i, tag_m)`` and multi-hot tag targets.

    Samples whose tag list is ``None``/empty are excluded; the loss is the mean over
    (valid samples x ``M``), or ``0`` when no sample in the (global) batch has a tag. Tags outside
    the vocabulary are ignored. Under DDP, audio embeddings are gathered like
    :class:`ContrastiveLoss` does (official mode: no-grad gather + local re-insert) and the tag
    lists with ``all_gather_object``, in the same rank order, so row ``j`` of the gathered audio
    keeps its own tags. The loss is always computed on the global batch.

    Args:
        vocab: Tag vocabulary (``M`` names; normalised with :func:`normalize_tag`).
        rank: This process's rank.
        world_size: Number of processes.
        gather_with_grad: Use the autograd all-gather for the audio embeddings.
    """

    def __init__(
        self, vocab: Sequence[str], rank: int = 0, world_size: int = 1, gather_with_grad: bool = False
    ) -> None:
        super().__init__()
        self.vocab = [normalize_tag(t) for t in vocab]
        if not self.vocab or len(set(self.vocab)) != len(self.vocab):
            raise ValueError("tag vocabulary must be non-empty and free of duplicates")
        self.index = {tag: m for m, tag in enumerate(self.vocab)}
        self.rank = rank
        self.world_size = world_size
        self.gather_with_grad = gather_with_grad

    def targets(self, tags: Sequence[SampleTags]) -> tuple[torch.Tensor, torch.Tensor]:
        """Multi-hot targets ``(N, M)`` (float) and the validity mask ``(N,)`` (bool)."""
        target = torch.zeros(len(tags), len(self.vocab))
        valid = torch.zeros(len(tags), dtype=torch.bool)
        for i, sample_tags in enumerate(tags):
            names = _tag_list(sample_tags)
            valid[i] = bool(names)
            for name in names:
                if name in self.index:
                    target[i, self.index[name]] = 1.0
        return target, valid

    def forward(self, audio_emb: torch.Tensor, tag_emb: torch.Tensor, tags: Sequence[SampleTags]) -> torch.Tensor:
        """Compute the classification loss.

        Args:
            audio_emb: ``(B, D)`` local audio embeddings (normalised here).
            tag_emb: ``(M, D)`` tag-prompt embeddings, aligned with ``vocab`` (normalised here).
            tags: ``B`` local tag lists, aligned with ``audio_emb``.

        Returns:
            0-d loss tensor.
        """
        if len(tags) != audio_emb.shape[0] or tag_emb.shape[0] != len(self.vocab):
            raise ValueError(
                f"got {audio_emb.shape[0]} audio rows, {len(tags)} tag lists, "
                f"{tag_emb.shape[0]} tag embeddings for a vocabulary of {len(self.vocab)}"
            )
        all_audio = gather_features(audio_emb, self.rank, self.world_size, self.gather_with_grad)
        all_tags = gather_objects(tags, self.world_size)
        target, valid = self.targets(all_tags)
        if not valid.any():
            # Zero that still touches both inputs, so every parameter gets a (zero) gradient and DDP
            # with find_unused_parameters=False does not stall.
            return (all_audio.sum() + tag_emb.sum()) * 0.0
        logits = F.normalize(all_audio[valid.to(all_audio.device)], dim=-1) @ F.normalize(tag_emb, dim=-1).T
        return F.binary_cross_entropy_with_logits(logits, target[valid].to(logits))


class MultiTaskLoss(nn.Module):
    """``contrastive + classification_weight * classification`` (weight 1.0 officially).

    Args:
        vocab: Tag vocabulary for :class:`TagClassificationLoss`.
        rank: This process's rank.
        world_size: Number of processes.
        gather_with_grad: Autograd all-gather, for both terms.
        local_loss: Local contrastive logits (see :class:`ContrastiveLoss`); the classification
            term is always global.
        classification_weight: Multiplier of the classification term.
    """

    def __init__(
        self,
        vocab: Sequence[str],
        rank: int = 0,
        world_size: int = 1,
        gather_with_grad: bool = False,
        local_loss: bool = False,
        classification_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.contrastive = ContrastiveLoss(rank, world_size, gather_with_grad, local_loss)
        self.classification = TagClassificationLoss(vocab, rank, world_size, gather_with_grad)
        self.classification_weight = classification_weight

    def forward(
        self,
        audio_emb: torch.Tensor,
        text_emb: torch.Tensor,
        logit_scale: torch.Tensor | float,
        tag_emb: torch.Tensor,
        tags: Sequence[SampleTags],
        output_dict: bool = False,
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        """Compute both terms.

        Args:
            audio_emb: ``(B, D)`` audio embeddings.
            text_emb: ``(B, D)`` caption embeddings.
            logit_scale: Scalar ``exp(log_logit_scale)``.
            tag_emb: ``(M, D)`` tag-prompt embeddings.
            tags: ``B`` tag lists (``None``/empty = untagged).
            output_dict: Return ``{"contrastive_loss", "classification_loss"}``; the second is
                already multiplied by ``classification_weight``, so the total is the sum of the
                ``_loss`` values.

        Returns:
            0-d total loss, or the dict above.
        """
        contrastive = self.contrastive(audio_emb, text_emb, logit_scale)
        classification = self.classification_weight * self.classification(audio_emb, tag_emb, tags)
        if output_dict:
            return {"contrastive_loss": contrastive, "classification_loss": classification}
        return contrastive + classification
