"""The interface every backbone implements.

An audio encoder turns one 16 kHz mono waveform into model inputs (:meth:`AudioEncoder.prepare`),
and a padded batch of those inputs into one pooled vector per item (:meth:`AudioEncoder.forward`).
Preprocessing, pooling, batching behaviour and any extra inputs are properties of the encoder, so
the model (:mod:`paraspeechclap.model`) never branches on the backbone type.

A text encoder tokenises captions and pools one vector per caption.

Both keep the wrapped Hugging Face module as ``self.base``: with the official attribute names of the
model (``audio_branch``/``text_branch``) this gives the state-dict prefixes ``audio_branch.base.*`` and
``text_branch.base.*`` of the released checkpoints.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000

BatchMode = Literal["mask", "equal_length"]


@dataclass
class PreparedAudio:
    """Model inputs of one waveform.

    Attributes:
        features: time-last tensor, ``(T,)`` for waveform backbones or ``(C, T)`` for spectrogram
            backbones. Padding is appended on the last axis.
        extras: fixed-size per-item inputs measured before any normalisation (e.g. level in dBFS);
            stacked into ``(B, ...)`` tensors and passed to ``forward`` as keyword arguments.
    """

    features: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return int(self.features.shape[-1])


class AudioEncoder(nn.Module):
    """Base class of audio backbones.

    Subclasses set ``self.base`` and implement :meth:`prepare`, :meth:`forward`,
    :meth:`num_frames` and :meth:`spec`, and set the class attributes below.
    """

    #: how items of different lengths may be batched: ``"mask"`` (pad + mask; the output of an
    #: item does not depend on its batch) or ``"equal_length"`` (only items with the same number of
    #: input frames share a batch; used where padding would leak into the result).
    batch_mode: BatchMode = "mask"
    #: longest waveform (in samples at 16 kHz) encoded in one pass; longer audio is embedded in
    #: windows of this size whose pooled features are averaged, weighted by their frame counts.
    window_samples: int = 30 * SAMPLE_RATE
    #: shortest waveform the encoder can produce at least one frame for.
    min_samples: int = 400
    #: whether the backbone weights can be rebuilt from ``spec()`` alone (an installed package or a
    #: hub id), so that a frozen backbone need not be stored in saved models.
    reconstructible: bool = True

    base: nn.Module
    hidden_size: int

    def prepare(self, wav: np.ndarray) -> PreparedAudio:
        """Turn a float32 16 kHz mono waveform of shape ``(S,)`` into model inputs."""
        raise NotImplementedError

    def forward(self, features: torch.Tensor, lengths: torch.Tensor, **extras: torch.Tensor) -> torch.Tensor:
        """Pool a padded batch.

        Args:
            features: ``(B, T)`` or ``(B, C, T)``, zero-padded on the last axis.
            lengths: ``(B,)`` number of valid positions of each item on the last axis.
            **extras: the stacked ``PreparedAudio.extras``.

        Returns:
            ``(B, hidden_size)`` pooled features (before the projection head).
        """
        raise NotImplementedError

    def forward_frozen(self, features: torch.Tensor, lengths: torch.Tensor, **extras: torch.Tensor) -> torch.Tensor:
        """The part of :meth:`forward` that does not train when the backbone is frozen.

        Frozen-backbone training caches this output per clip and trains only :meth:`forward_head`
        on top, so ``forward_head(forward_frozen(x)) == forward(x)`` must hold. The default caches the
        pooled features; encoders with trainable pooling (e.g. a learned mix of layers) cache what
        comes before it.

        Returns:
            ``(B, ...)`` a fixed-size per-item tensor.
        """
        return self.forward(features, lengths, **extras)

    def forward_head(self, cached: torch.Tensor) -> torch.Tensor:
        """``forward_frozen`` output ``(B, ...)`` -> ``(B, hidden_size)`` pooled features."""
        return cached

    def num_frames(self, length: int) -> int:
        """Number of output frames for an input of ``length`` positions (used to weight windows)."""
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """JSON-serialisable description that :func:`create_audio_encoder` rebuilds this encoder from."""
        raise NotImplementedError

    def cache_spec(self) -> dict[str, Any]:
        """What determines :meth:`forward_frozen`'s output (the feature-cache key): the spec by default."""
        return self.spec()

    def feed_forward_linears(self) -> list[str]:
        """Names (relative to ``self``) of the feed-forward ``nn.Linear`` layers that int8 dynamic
        quantisation may replace. Attention projections are excluded on purpose: some backbones
        (WavLM) read ``q_proj.bias`` directly and break when it is quantised."""
        return []

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        set_grad_checkpointing(self.base, enabled)


class TextEncoder(nn.Module):
    """Base class of text backbones: tokenisation plus pooling of ``self.base``'s hidden states."""

    base: nn.Module
    hidden_size: int
    #: longest token sequence; longer captions are truncated with a warning.
    max_length: int = 512
    reconstructible: bool = True

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Tokenise a batch, padded to the longest, truncated to ``max_length`` (with a warning)."""
        raise NotImplementedError

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` token ids and mask -> ``(B, hidden_size)`` pooled features."""
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        raise NotImplementedError

    def feed_forward_linears(self) -> list[str]:
        return []

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        set_grad_checkpointing(self.base, enabled)


def set_grad_checkpointing(base: nn.Module, enabled: bool) -> None:
    """Activation checkpointing of a HF backbone (non-reentrant, as the official code)."""
    if enabled and hasattr(base, "gradient_checkpointing_enable"):
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    elif not enabled and hasattr(base, "gradient_checkpointing_disable"):
        base.gradient_checkpointing_disable()


def masked_mean(hidden: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid frames.

    Args:
        hidden: ``(B, T, D)`` hidden states.
        frame_mask: ``(B, T)``, 1 for valid frames.

    Returns:
        ``(B, D)``; the denominator is clamped to at least 1 as the official pooling does.
    """
    m = frame_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``(B,)`` lengths -> ``(B, max_len)`` long mask with ones on the first ``length`` positions."""
    return (torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]).long()
