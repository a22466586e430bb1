"""The model under training: construction from the run config, and the module DDP wraps.

:class:`TrainingModule` computes, in one ``forward``, everything a step needs (audio embeddings,
caption embeddings, tag-prompt embeddings for the multitask loss and the logit scale), so DDP sees
exactly one forward per backward. Audio comes either as a padded batch for the full backbone or,
in frozen-backbone mode, as cached ``forward_frozen`` outputs that only go through
``forward_head`` and the projection. A frozen text backbone's outputs are cached per string.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..encoders.base import AudioEncoder, TextEncoder
from ..errors import CheckpointError
from ..model import ParaSpeechCLAP
from .config import TrainModelConfig

logger = logging.getLogger(__name__)


def _frozen_branch(trainable: list[str] | None) -> bool:
    return trainable is not None and len(trainable) == 0


def build_model(model_cfg: TrainModelConfig, device: torch.device, *, cached_audio: bool = False,
                grad_checkpointing: bool = False) -> ParaSpeechCLAP:
    """Build the model (optionally from ``model_cfg.init_from``), set what trains, move it to ``device``.

    Args:
        model_cfg: architecture and trainable parts.
        cached_audio: frozen-backbone mode. With an encoder whose ``forward_head`` is the
            identity, the encoder's own parameters outside the backbone (e.g. a learned layer mix
            inside ``forward``) are frozen too: the cache holds outputs computed with their
            initial values.
        grad_checkpointing: activation checkpointing of the backbones that have trainable weights.
    """
    model = ParaSpeechCLAP.from_config(model_cfg.model_config())
    if model_cfg.init_from:
        _load_initial_weights(model, model_cfg.init_from)
    model.apply_trainable()
    pooler = getattr(model.text_branch.base, "pooler", None)
    if isinstance(pooler, nn.Module):
        # The text tower pools hidden states itself; the HF pooler never gets a gradient. The
        # official code freezes it too (DDP without find_unused_parameters needs that).
        pooler.requires_grad_(False)
    if cached_audio and type(model.audio_branch).forward_head is AudioEncoder.forward_head:
        for p in model.audio_branch.parameters():
            p.requires_grad_(False)
    if grad_checkpointing:
        for branch in (model.audio_branch, model.text_branch):
            if any(p.requires_grad for p in branch.base.parameters()):
                branch.set_grad_checkpointing(True)
    model.model_id = model_cfg.name
    return model.to(device)


def _load_initial_weights(model: ParaSpeechCLAP, directory: str) -> None:
    from ..pretrained import load_saved_model

    saved = load_saved_model(Path(directory))
    state = saved.state_dict()
    for key in model.OFFSET_BUFFERS:  # a stored offset is refit on the new weights, never carried over
        state.pop(key, None)
        if getattr(model, key) is not None:
            state[key] = getattr(model, key)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        reason = str(exc).splitlines()[0]
        raise CheckpointError(f"model.init_from={directory}: does not match model config ({reason})") from None


def set_train_mode(model: ParaSpeechCLAP) -> None:
    """``model.train()``, but fully frozen backbones (``*_trainable: []`` in the model config) stay in
    eval mode (no dropout/SpecAugment), so frozen training sees the outputs the feature cache holds."""
    model.train()
    if _frozen_branch(model.config.audio_trainable):
        model.audio_branch.base.eval()
    if _frozen_branch(model.config.text_trainable):
        model.text_branch.base.eval()


class FrozenTextCache:
    """LRU cache of a frozen text backbone's pooled outputs per caption string (CPU float32)."""

    def __init__(self, encoder: TextEncoder, max_size: int = 200_000) -> None:
        self.encoder = encoder
        self.max_size = max_size
        self.table: OrderedDict[str, torch.Tensor] = OrderedDict()

    @torch.no_grad()
    def __call__(self, texts: Sequence[str], device: torch.device) -> torch.Tensor:
        """``(B, hidden)`` backbone outputs of ``texts``."""
        missing = list(dict.fromkeys(t for t in texts if t not in self.table))
        was_training = self.encoder.training
        self.encoder.eval()  # the cached value must not depend on a dropout draw
        for s in range(0, len(missing), 64):
            chunk = missing[s:s + 64]
            tok = {k: v.to(device) for k, v in self.encoder.tokenize(chunk).items()}
            out = self.encoder(tok["input_ids"], tok["attention_mask"]).float().cpu()
            for t, row in zip(chunk, out):
                self.table[t] = row.clone()
        self.encoder.train(was_training)
        rows = []
        for t in texts:
            self.table.move_to_end(t)
            rows.append(self.table[t])
        while len(self.table) > self.max_size:
            self.table.popitem(last=False)
        return torch.stack(rows).to(device)


class TrainingModule(nn.Module):
    """One training forward (see module docstring).

    Args:
        model: the model.
        cached_audio: audio batches hold ``{"cached": (B, ...)}`` backbone outputs.
        text_cache: cache of the frozen text backbone, or ``None`` to run it every step.
    """

    def __init__(self, model: ParaSpeechCLAP, cached_audio: bool, text_cache: FrozenTextCache | None) -> None:
        super().__init__()
        self.model = model
        self.cached_audio = cached_audio
        self.text_cache = text_cache

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Captions -> ``(B, embed_dim)`` un-normalised embeddings (with gradient where trainable)."""
        device = self.model.log_logit_scale.device
        if self.text_cache is not None:
            pooled = self.text_cache(texts, device)
        else:
            tok = {k: v.to(device) for k, v in self.model.text_branch.tokenize(list(texts)).items()}
            pooled = self.model.text_branch(tok["input_ids"], tok["attention_mask"])
        return self.model.text_projection(pooled)

    def forward(self, audio: dict[str, torch.Tensor], captions: Sequence[str],
                prompts: Sequence[str] | None = None) -> dict[str, Any]:
        """Returns ``{"audio": (B, D), "audio_linear1": (B, D), "text": (B, D), "tags": (M, D) | None,
        "logit_scale": ()}`` (``audio_linear1``: the audio projection's first linear layer, before the rest)."""
        branch = self.model.audio_branch
        if self.cached_audio:
            pooled = branch.forward_head(audio["cached"])
        else:
            audio = dict(audio)
            pooled = branch(audio.pop("features"), audio.pop("lengths"), **audio)
        linear1 = self.model.audio_projection.linear1(pooled)
        return {
            "audio": self.model.audio_projection.finish(linear1),
            "audio_linear1": linear1,
            "text": self.encode_texts(captions),
            "tags": self.encode_texts(prompts) if prompts else None,
            "logit_scale": self.model.logit_scale,
        }
