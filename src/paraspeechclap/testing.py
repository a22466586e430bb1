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


def tiny_model_with_centred_head(seed: int = 5) -> ParaSpeechCLAP:
    """:func:`tiny_model` carrying a random centred head (:mod:`paraspeechclap.centred_head`) whose LayerNorm is
    moved off its identity start, so centring through it differs from centring through the main head."""
    import torch

    from .projection import Projection

    model = tiny_model()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = Projection(model.audio_branch.hidden_size, model.config.embed_dim, 0.0)
        with torch.no_grad():
            head.layer_norm.weight.uniform_(0.5, 1.5)
            head.layer_norm.bias.normal_(0, 0.1)
    model.set_centred_head(head)
    return model


def tone(seconds: float = 1.0, freq: float = 220.0, sr: int = 16_000, amp: float = 0.3, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a little noise: a cheap stand-in for a voiced clip, ``(S,)`` float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 6))
    x = amp * x / np.abs(x).max() + 0.01 * rng.standard_normal(t.shape)
    return x.astype(np.float32)


def clustered_unit_vectors(n: int, dim: int, clusters: int = 4096, queries: int = 0,
                           seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic embeddings with cluster structure, for approximate-search tests and benchmarks.

    Cluster centres scatter around up to 64 super-centres (so each cluster has near neighbours, as
    similar styles do), cluster sizes are log-normal and each cluster's spread is uniform in
    [0.5, 1] (noise norm relative to the unit centre). Queries are fresh draws from the same mixture,
    not rows of the data. Generated in blocks of 100k rows (bounded float64 temporaries).

    Returns:
        ``(rows, queries)``: ``(n, dim)`` and ``(queries, dim)`` float32, L2-normalised.
    """
    rng = np.random.default_rng(seed)
    sup = rng.standard_normal((min(64, clusters), dim)) / np.sqrt(dim)  # norm ~1
    centres = sup[rng.integers(0, len(sup), clusters)] + 0.5 * rng.standard_normal((clusters, dim)) / np.sqrt(dim)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = rng.lognormal(0.0, 1.0, clusters)
    weights /= weights.sum()
    spread = rng.uniform(0.5, 1.0, clusters)

    def draw(m: int, r: np.random.Generator) -> np.ndarray:
        c = r.choice(clusters, m, p=weights)
        x = (centres[c] + spread[c, None] * r.standard_normal((m, dim)) / np.sqrt(dim)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    rows = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        rows[start:start + 100_000] = draw(min(100_000, n - start), rng)
    return rows, draw(queries, np.random.default_rng(seed + 1))
