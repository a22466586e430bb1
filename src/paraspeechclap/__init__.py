"""paraspeechclap: speaking-style retrieval, zero-shot classification and reranking.

Public API::

    from paraspeechclap import load_model, list_models
    model = load_model()                      # the embedded default model
    model.embed_audio(["a.wav"])              # (N, D) L2-normalised float32
    model.embed_text(["a deep, raspy voice"]) # (M, D)
    model.score(items, captions)              # (N, M) cosine similarities
    model.classify(items, ["angry", "happy"]) # per item: [(label, score), ...] best first

Heavy modules (torch, transformers) are imported on first use of a public name, not at import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "load_model": "paraspeechclap.pretrained",
    "list_models": "paraspeechclap.pretrained",
    "ModelInfo": "paraspeechclap.pretrained",
    "ParaSpeechCLAP": "paraspeechclap.model",
    "ModelConfig": "paraspeechclap.config",
    "load_audio": "paraspeechclap.audio.io",
    "register_audio_encoder": "paraspeechclap.encoders.registry",
    "register_text_encoder": "paraspeechclap.encoders.registry",
    "ParaSpeechCLAPError": "paraspeechclap.errors",
    "rerank": "paraspeechclap.reranking",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from .audio.io import load_audio
    from .config import ModelConfig
    from .encoders.registry import register_audio_encoder, register_text_encoder
    from .errors import ParaSpeechCLAPError
    from .model import ParaSpeechCLAP
    from .pretrained import ModelInfo, list_models, load_model
    from .reranking import rerank


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'paraspeechclap' has no attribute {name!r}")
