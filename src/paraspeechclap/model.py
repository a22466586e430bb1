"""The ParaSpeechCLAP dual encoder.

Attribute names are those of the official model, so its released state dicts load with strict key
checking: ``audio_branch`` (speech backbone, HF model at ``audio_branch.base``), ``text_branch``
(``text_branch.base``), ``audio_projection``, ``text_projection`` and ``log_logit_scale``.
"""

from __future__ import annotations

import fnmatch
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import ModelConfig
from .encoders.base import AudioEncoder, TextEncoder
from .encoders.registry import create_audio_encoder, create_text_encoder
from .inference import InferenceMixin
from .projection import Projection

logger = logging.getLogger(__name__)


class ParaSpeechCLAP(InferenceMixin, nn.Module):
    """Speech and style-caption encoders projected into one embedding space.

    Args:
        audio_encoder: the speech backbone (pooled features of width ``hidden_size``).
        text_encoder: the text backbone, or None for a model that embeds audio only (no
            ``text_branch``/``text_projection``: a worker that embeds clips need not import or load them).
        config: the architecture; ``config.audio_encoder``/``text_encoder`` describe the two
            backbones and are what ``save_pretrained`` writes.
    """

    #: buffers of the stored calibration (paraspeechclap.offset); None on a model without it
    OFFSET_BUFFERS = ("audio_offset", "audio_offset_gate")

    def __init__(self, audio_encoder: AudioEncoder, text_encoder: TextEncoder | None, config: ModelConfig):
        super().__init__()
        self.config = config
        self.audio_branch = audio_encoder
        self.text_branch = text_encoder
        self.audio_projection = Projection(audio_encoder.hidden_size, config.embed_dim, config.projection_dropout)
        self.text_projection = (None if text_encoder is None else
                                Projection(text_encoder.hidden_size, config.embed_dim, config.projection_dropout))
        self.log_logit_scale = nn.Parameter(torch.tensor(config.init_log_logit_scale))
        # A stored calibration (paraspeechclap.offset): zeros until fit, absent unless the config asks.
        self.register_buffer("audio_offset", torch.zeros(config.embed_dim) if config.audio_offset else None)
        gated = config.audio_offset and config.audio_offset_gate
        self.register_buffer("audio_offset_gate", torch.zeros(config.embed_dim + 1) if gated else None)
        # The head speaker centring scores with (paraspeechclap.centred_head), absent unless the config asks.
        self.centred_projection = (Projection(audio_encoder.hidden_size, config.embed_dim, config.projection_dropout)
                                   if config.centred_head else None)
        self._init_inference_state()

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: ModelConfig, audio_pretrained: bool = True,
                    text_pretrained: bool = True, text: bool = True) -> "ParaSpeechCLAP":
        """Build a model (randomly initialised heads) from its config.

        ``*_pretrained=False`` builds that backbone from its configuration only, for callers that
        overwrite its weights from a checkpoint right after (no download of pretrained weights).
        ``text=False`` builds the audio side only (see the class).
        """
        audio = create_audio_encoder(config.audio_encoder, pretrained=audio_pretrained)
        config.audio_encoder = audio.spec()
        if not text:
            return cls(audio, None, config)
        text_encoder = create_text_encoder(config.text_encoder, pretrained=text_pretrained)
        config.text_encoder = text_encoder.spec()
        return cls(audio, text_encoder, config)

    @property
    def has_text(self) -> bool:
        """Whether the model embeds captions (False when loaded with ``branches="audio"``)."""
        return self.text_branch is not None

    def require_text(self) -> None:
        """Raise :class:`~paraspeechclap.errors.ModelError` when the model embeds audio only."""
        if not self.has_text:
            from .errors import ModelError

            raise ModelError(f"model {getattr(self, 'model_id', '')!r} was loaded with branches='audio' and "
                             "embeds audio only; load it again without that to embed captions")

    @property
    def logit_scale(self) -> torch.Tensor:
        """The contrastive logit scale ``exp(log_logit_scale)`` (1 / temperature)."""
        return self.log_logit_scale.exp()

    # -- encoding --------------------------------------------------------------------------------
    def encode_audio(
        self, features: torch.Tensor, lengths: torch.Tensor, normalize: bool = True, **extras: torch.Tensor
    ) -> torch.Tensor:
        """Padded prepared audio ``(B, [C,] T)`` with ``lengths (B,)`` -> ``(B, embed_dim)``."""
        return self.project_audio(self.audio_branch(features, lengths, **extras), normalize)

    def project_audio(self, pooled: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Backbone-pooled ``(B, hidden)`` -> ``(B, embed_dim)``; if ``normalize``, L2-normalised and moved
        by the stored offset (:meth:`offset_audio`). Training uses the raw projection (``normalize=False``)."""
        emb = self.audio_projection(pooled)
        return self.offset_audio(nn.functional.normalize(emb, dim=-1)) if normalize else emb

    def offset_audio(self, emb: torch.Tensor) -> torch.Tensor:
        """Normalised ``(B, D)`` -> ``l2(emb - g * audio_offset)`` in ``emb``'s dtype, ``g`` the clip's gate
        (:meth:`offset_gate`; 1 without one); the identity without an offset."""
        if self.audio_offset is None:
            return emb
        return nn.functional.normalize(emb - self.offset_gate(emb) * self.audio_offset.to(emb.dtype), dim=-1)

    def offset_gate(self, emb: torch.Tensor) -> torch.Tensor:
        """Normalised ``(B, D)`` -> ``(B, 1)``: ``sigmoid(emb . w - b)`` of the stored gate ``[w, b]``, or ones."""
        if self.audio_offset_gate is None:
            return emb.new_ones(emb.shape[0], 1)
        gate = self.audio_offset_gate.to(emb.dtype)
        return torch.sigmoid(emb @ gate[:-1] - gate[-1]).unsqueeze(-1)

    def set_audio_offset(self, offset: torch.Tensor | None, gate: torch.Tensor | None = None) -> None:
        """Store ``offset`` ``(embed_dim,)`` and, for a gated model, ``gate`` ``(embed_dim + 1,)`` (None: zeros,
        which for the offset means no change); the config must have ``audio_offset``."""
        if self.audio_offset is None:
            from .errors import ModelError

            raise ModelError(f"model {getattr(self, 'model_id', '')!r} has no audio offset (config.audio_offset "
                             "is false)")
        for buffer, value in ((self.audio_offset, offset), (self.audio_offset_gate, gate)):
            if buffer is None:
                if value is not None:
                    raise ValueError("audio offset: this model has no gate (config.audio_offset_gate is false)")
                continue
            value = torch.zeros_like(buffer) if value is None else torch.as_tensor(value)
            if value.shape != buffer.shape:
                raise ValueError(f"audio offset: expected shape {tuple(buffer.shape)}, got {tuple(value.shape)}")
            buffer.copy_(value.to(buffer))

    @property
    def has_centred_head(self) -> bool:
        """Whether speaker centring scores with a head of its own (``centred_projection``)."""
        return self.centred_projection is not None

    def set_centred_head(self, head: Projection | None) -> None:
        """Store ``head`` (a :class:`~paraspeechclap.projection.Projection` of the audio projection's shape) as
        the centred head, or drop it (None); ``config.centred_head`` follows, so ``save_pretrained`` keeps it.
        ``centred_head_checksum`` (the loaded head file's) is cleared: records must not name a head no longer
        used (a head set here has a checksum once saved and loaded)."""
        self.centred_head_checksum = ""
        if head is None:
            self.centred_projection, self.config.centred_head = None, False
            return
        want = tuple(self.audio_projection.linear1.weight.shape)
        if tuple(head.linear1.weight.shape) != want:
            raise ValueError(f"centred head: expected linear1 of shape {want}, got {tuple(head.linear1.weight.shape)}")
        ref = self.audio_projection.linear1.weight
        self.centred_projection = head.to(device=ref.device, dtype=ref.dtype).eval()
        self.config.centred_head = True

    def set_speaker_prior(self, prior: float) -> None:
        """Shrink each speaker's mean towards the collection's by ``prior`` clips when this model centres on
        speakers (``config.speaker_prior``, so ``save_pretrained`` keeps it; 0: the plain speaker mean).

        Raises:
            InputError: ``prior`` is not a finite number >= 0.
        """
        from .centering import check_prior

        self.config.speaker_prior = check_prior(prior)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    normalize: bool = True) -> torch.Tensor:
        """Token ids and mask ``(B, L)`` -> ``(B, embed_dim)``."""
        self.require_text()
        emb = self.text_projection(self.text_branch(input_ids, attention_mask))
        return nn.functional.normalize(emb, dim=-1) if normalize else emb

    def forward(
        self, audio: dict[str, torch.Tensor], text: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Training forward: un-normalised embeddings and the logit scale, as the official model.

        Args:
            audio: ``{"features", "lengths", **extras}`` of a padded batch.
            text: ``{"input_ids", "attention_mask"}``.

        Returns:
            ``{"audio_features": (B, D), "text_features": (B, D), "logit_scale": ()}``.
        """
        audio = dict(audio)
        features, lengths = audio.pop("features"), audio.pop("lengths")
        return {
            "audio_features": self.encode_audio(features, lengths, normalize=False, **audio),
            "text_features": self.encode_text(text["input_ids"], text["attention_mask"], normalize=False),
            "logit_scale": self.logit_scale,
        }

    # -- trainable / stored parameters -----------------------------------------------------------
    def frozen_backbone_keys(self) -> set[str]:
        """State-dict keys of backbone parameters that are not trained (see ``ModelConfig``)."""
        keys: set[str] = set()
        for branch, trainable in (("audio_branch", self.config.audio_trainable),
                                  ("text_branch", self.config.text_trainable)):
            if trainable is None or getattr(self, branch) is None:
                continue
            for name, _ in getattr(self, branch).base.named_parameters():
                if not any(name == p or name.startswith(p.rstrip(".") + ".") or fnmatch.fnmatch(name, p)
                           for p in trainable):
                    keys.add(f"{branch}.base.{name}")
        return keys

    def apply_trainable(self) -> None:
        """Set ``requires_grad`` from the config (frozen backbone parameters get none)."""
        frozen = self.frozen_backbone_keys()
        for name, p in self.named_parameters():
            p.requires_grad_(name not in frozen)

    def stored_state_dict(self) -> dict[str, torch.Tensor]:
        """What ``save_pretrained`` writes: everything except frozen parameters of backbones that
        can be rebuilt from their spec (a frozen Whisper from its PyPI package is not copied)."""
        skip = {k for k in self.frozen_backbone_keys()
                if getattr(self, k.split(".", 1)[0]).reconstructible}
        return {k: v for k, v in self.state_dict().items() if k not in skip}

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into ``directory`` (atomically)."""
        from .pretrained import save_pretrained

        return save_pretrained(self, directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path, **kwargs: Any) -> "ParaSpeechCLAP":
        """Load a model written by :meth:`save_pretrained` (see :func:`paraspeechclap.load_model`)."""
        from .pretrained import load_saved_model

        return load_saved_model(Path(directory), **kwargs)

