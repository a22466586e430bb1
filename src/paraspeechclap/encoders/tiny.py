"""Tiny randomly initialised backbones for tests and smoke runs (no download, milliseconds per call).

``tiny-wavlm`` is a 2-layer WavLM with the stable-layer-norm feature encoder of WavLM-Large, so it
exercises exactly the official speech-tower code path. ``tiny-bert`` and ``tiny-xlmr`` are 2-layer
text models that borrow the MiniLM WordPiece tokenizer shipped offline (30,522 tokens); ``tiny-xlmr``
has XLM-R's module layout (the official text tower's key names) and CLS pooling.

Weights are drawn from a seeded generator, so the same spec always gives the same model.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import AudioEncoder, TextEncoder
from .hf_audio import HFAudioEncoder
from .hf_text import HFTextEncoder, _tokenizer, minilm_path
from .registry import register_audio_encoder, register_text_encoder

_VOCAB = 30522  # the MiniLM (BERT uncased) WordPiece vocabulary


def _seeded(seed: int, build: Any) -> Any:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


@register_audio_encoder("tiny-wavlm")
def build_tiny_wavlm(hidden_size: int = 32, layers: int = 2, pooling: str = "masked_mean", seed: int = 0,
                     normalize: bool = True) -> AudioEncoder:
    """A 2-layer WavLM with stable layer norm (as WavLM-Large); ``hidden_size`` features."""
    from transformers import WavLMConfig, WavLMModel

    cfg = WavLMConfig(
        hidden_size=hidden_size, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=2 * hidden_size,
        conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, num_buckets=32,
        feat_extract_norm="layer", do_stable_layer_norm=True, layerdrop=0.0,
    )
    base = _seeded(seed, lambda: WavLMModel(cfg))
    spec = {"type": "tiny-wavlm", "hidden_size": hidden_size, "layers": layers, "seed": seed}
    enc = HFAudioEncoder(base, spec, pooling=pooling, normalize=normalize)
    enc.reconstructible = False
    return enc


def _tiny_text(model_type: str, spec: dict[str, Any], hidden_size: int, layers: int, pooling: str, seed: int) -> TextEncoder:
    from transformers import BertConfig, BertModel, XLMRobertaConfig, XLMRobertaModel

    kw = dict(vocab_size=_VOCAB, hidden_size=hidden_size, num_hidden_layers=layers, num_attention_heads=2,
              intermediate_size=2 * hidden_size)
    if model_type == "xlmr":
        build = lambda: XLMRobertaModel(XLMRobertaConfig(**kw, max_position_embeddings=130, pad_token_id=0))  # noqa: E731
    else:
        build = lambda: BertModel(BertConfig(**kw, max_position_embeddings=128))  # noqa: E731
    base = _seeded(seed, build)
    enc = HFTextEncoder(base, _tokenizer(str(minilm_path())), spec, pooling, max_length=128)
    enc.reconstructible = False
    return enc


@register_text_encoder("tiny-bert")
def build_tiny_bert(hidden_size: int = 32, layers: int = 2, pooling: str = "mean", seed: int = 0,
                    max_length: int = 128) -> TextEncoder:
    """A 2-layer BERT with the MiniLM tokenizer, mean pooled."""
    spec = {"type": "tiny-bert", "hidden_size": hidden_size, "layers": layers, "seed": seed}
    return _tiny_text("bert", spec, hidden_size, layers, pooling, seed)


@register_text_encoder("tiny-xlmr")
def build_tiny_xlmr(hidden_size: int = 32, layers: int = 2, pooling: str = "cls", seed: int = 0,
                    max_length: int = 128) -> TextEncoder:
    """A 2-layer XLM-R (the official text tower's layout) with the MiniLM tokenizer, CLS pooled."""
    spec = {"type": "tiny-xlmr", "hidden_size": hidden_size, "layers": layers, "seed": seed}
    return _tiny_text("xlmr", spec, hidden_size, layers, pooling, seed)


#: WavLM-Large's architecture (microsoft/wavlm-large config), for speed and memory measurements
#: without the hub: 24 layers, 1024 hidden, 16 heads, 4096 FFN, stable layer norm.
_WAVLM_LARGE = dict(
    hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
    conv_dim=(512,) * 7, conv_bias=False, num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16,
    num_buckets=320, max_bucket_distance=800, feat_extract_norm="layer", do_stable_layer_norm=True, layerdrop=0.0,
)


@register_audio_encoder("random-wavlm-large")
def build_random_wavlm_large(pooling: str = "masked_mean", seed: int = 0, normalize: bool = True) -> AudioEncoder:
    """WavLM-Large's architecture with random weights (317M parameters): benchmarks only."""
    from transformers import WavLMConfig, WavLMModel

    base = _seeded(seed, lambda: WavLMModel(WavLMConfig(**_WAVLM_LARGE)))
    enc = HFAudioEncoder(base, {"type": "random-wavlm-large", "seed": seed}, pooling=pooling, normalize=normalize)
    enc.reconstructible = False
    return enc
