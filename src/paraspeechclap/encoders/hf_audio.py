"""Hugging Face waveform encoders (WavLM, HuBERT, wav2vec2) by hub id or local directory.

This is the official ParaSpeechCLAP speech tower when ``model="microsoft/wavlm-large"``:
per-utterance zero-mean/unit-variance normalisation of the waveform (what ``Wav2Vec2FeatureExtractor``
with ``do_normalize=True`` does), ``last_hidden_state``, and mean pooling over the valid frames
(``pooling="masked_mean"``, official code since 2026-06-20) or over all frames including padding
(``pooling="mean"``, the older official code that produced the released checkpoints).
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import numpy as np
import torch

from .base import SAMPLE_RATE, AudioEncoder, PreparedAudio, lengths_to_mask, masked_mean, reuse_freed_memory
from .hf_loading import hf_config, hf_model
from .registry import register_audio_encoder

POOLINGS = ("masked_mean", "mean")
#: padded audio per forward pass at inference (``AudioEncoder.max_batch_positions``): 20 s. On CPU
#: (WavLM-Large, 2 cores) batches of about 1000 frames (4 x 5 s, 2 x 10 s) are about the fastest;
#: larger ones gain nothing or lose (two 30 s clips at once: 13-15 % slower than one at a time, the
#: attention tensors growing with batch x frames^2) and hold more memory, so 30 s windows go one at a
#: time (``benchmarks/inference.py``).
MAX_BATCH_SECONDS = 20


def normalize_waveform(wav: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the whole utterance, as HF's ``Wav2Vec2FeatureExtractor``."""
    wav = wav.astype(np.float32)
    return ((wav - wav.mean()) / np.sqrt(wav.var() + 1e-7)).astype(np.float32)


class HFAudioEncoder(AudioEncoder):
    """A HF waveform model wrapped as ``self.base``.

    Args:
        base: the HF model (``WavLMModel``, ``HubertModel``, ``Wav2Vec2Model``, ...).
        spec: the registry spec that rebuilds this encoder.
        pooling: ``"masked_mean"`` or ``"mean"`` (see module docstring).
        normalize: per-utterance waveform normalisation.
    """

    def __init__(self, base: torch.nn.Module, spec: dict[str, Any], pooling: str = "masked_mean", normalize: bool = True):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.base = base
        self.pooling = pooling
        self.normalize = normalize
        self.hidden_size = int(base.config.hidden_size)
        self._spec = dict(spec)
        # Group-normalised feature encoders (wav2vec2-base style) normalise over time including
        # padding, so a padded item's output changes with its batch: batch only equal lengths.
        # Unmasked mean pooling also averages padding in, so it must not mix lengths either.
        group_norm = getattr(base.config, "feat_extract_norm", "layer") == "group"
        self.batch_mode = "equal_length" if (group_norm or pooling == "mean") else "mask"
        self.min_samples = self._receptive_field()
        self.max_batch_positions = MAX_BATCH_SECONDS * SAMPLE_RATE

    def _receptive_field(self) -> int:
        k = list(getattr(self.base.config, "conv_kernel", [400]))
        s = list(getattr(self.base.config, "conv_stride", [1]))
        field, jump = 1, 1
        for ki, si in zip(k, s):
            field += (ki - 1) * jump
            jump *= si
        return field

    def prepare(self, wav: np.ndarray) -> PreparedAudio:
        x = normalize_waveform(wav) if self.normalize else wav.astype(np.float32)
        return PreparedAudio(torch.from_numpy(x))

    def num_frames(self, length: int) -> int:
        return int(self.base._get_feat_extract_output_lengths(torch.tensor([length]))[0])

    def forward(self, features: torch.Tensor, lengths: torch.Tensor, **extras: torch.Tensor) -> torch.Tensor:
        mask = lengths_to_mask(lengths, features.shape[-1])  # (B, S)
        # at inference, reuse freed memory: WavLM's eager attention allocates four (B, heads, T, T)
        # tensors per layer, and having the kernel map and zero them afresh every time made 30 s clips
        # 1.4x (one at a time) to 1.7x (batched) slower on CPU (see reuse_freed_memory)
        reuse = reuse_freed_memory() if not torch.is_grad_enabled() else contextlib.nullcontext()
        with warnings.catch_warnings(), reuse:
            # torch warns inside HF WavLM attention about its own mixed mask types; nothing to act on
            warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")
            hidden = self.base(features, attention_mask=mask).last_hidden_state  # (B, T, D)
        if self.pooling == "mean":
            return hidden.mean(dim=1)
        frame_mask = self.base._get_feature_vector_attention_mask(hidden.shape[1], mask)  # (B, T)
        return masked_mean(hidden, frame_mask)

    def spec(self) -> dict[str, Any]:
        return {**self._spec, "pooling": self.pooling, "normalize": self.normalize}

    def feed_forward_linears(self) -> list[str]:
        return [
            f"base.{name}"
            for name, mod in self.base.named_modules()
            if isinstance(mod, torch.nn.Linear) and ("feed_forward" in name or name.endswith(("fc1", "fc2")))
        ]


@register_audio_encoder("hf-audio")
def build_hf_audio(
    model: str,
    pooling: str = "masked_mean",
    normalize: bool = True,
    layerdrop: float = 0.0,
    pretrained: bool = True,
) -> HFAudioEncoder:
    """A HF audio encoder by hub id or local directory.

    ``layerdrop`` is set to 0 as the official code does (LayerDrop would make training steps skip
    layers at random and is pointless at inference).
    """
    config = hf_config(model, layerdrop=layerdrop)
    base = hf_model(model, config, pretrained)
    spec = {"type": "hf-audio", "model": model, "layerdrop": layerdrop}
    return HFAudioEncoder(base, spec, pooling=pooling, normalize=normalize)
