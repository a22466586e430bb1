"""Test doubles shipped with the package (as lhotse does): tiny models and synthetic audio."""

from __future__ import annotations

import numpy as np

from .config import ModelConfig
from .model import ParaSpeechCLAP


def tiny_config(embed_dim: int = 16, text: str = "tiny-bert", seed: int = 0) -> ModelConfig:
    """Config of a tiny random model: 2-layer WavLM + 2-layer BERT/XLM-R, ``embed_dim``-d space."""
    return ModelConfig(
        audio_encoder={"type": "tiny-wavlm", "seed": seed},
        text_encoder={"type": text, "seed": seed},
        embed_dim=embed_dim,
        name="tiny",
    )


def tiny_model(embed_dim: int = 16, text: str = "tiny-bert", seed: int = 0) -> ParaSpeechCLAP:
    """A tiny randomly initialised model in eval mode (deterministic for a seed; loads in < 1 s)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ParaSpeechCLAP.from_config(tiny_config(embed_dim, text, seed))
    model.model_id = "tiny"
    return model.eval()


def tone(seconds: float = 1.0, freq: float = 220.0, sr: int = 16_000, amp: float = 0.3, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a little noise: a cheap stand-in for a voiced clip, ``(S,)`` float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 6))
    x = amp * x / np.abs(x).max() + 0.01 * rng.standard_normal(t.shape)
    return x.astype(np.float32)
