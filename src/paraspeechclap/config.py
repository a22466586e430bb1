"""Model configuration: what ``config.json`` of a saved model holds."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

FORMAT_NAME = "paraspeechclap"
FORMAT_VERSION = 1


@dataclass
class ModelConfig:
    """Architecture of a ParaSpeechCLAP model.

    Attributes:
        audio_encoder: registry spec of the speech backbone (``{"type": ..., **options}``).
        text_encoder: registry spec of the text backbone.
        embed_dim: width of the shared embedding space.
        projection_dropout: dropout of both projection heads (train mode only).
        init_logit_scale: initial contrastive logit scale (1/temperature); stored as its log.
        audio_trainable: prefixes (relative to the backbone) of the speech-backbone parameters that
            are trained; ``None`` = all, ``[]`` = frozen. Saved models omit the frozen parameters of
            backbones that can be rebuilt from their spec (installed package or hub id).
        text_trainable: the same for the text backbone.
        name: model name reported in outputs.
        audio_offset: the model holds a fixed vector ``audio_offset`` ``(embed_dim,)`` that is subtracted
            from every L2-normalised audio embedding before it is normalised again (a calibration fit
            after training on the training recordings: :mod:`paraspeechclap.offset`). Off for official
            checkpoints and models trained without it.
        audio_offset_gate: the offset is applied to each clip in proportion to a gate ``sigmoid(x . w - b)``
            stored beside it (``audio_offset_gate``, ``(embed_dim + 1,)``): how much the clip resembles the
            recordings the offset was fit on rather than the rest of the training clips.
        centred_head: the model holds a second audio projection ``centred_projection`` (same shape as
            ``audio_projection``) that speaker centring scores with, fitted after training on speaker-centred
            training clips (:mod:`paraspeechclap.centred_head`). Off for official checkpoints and models
            trained without it.
        speaker_prior: speaker centring shrinks each speaker's mean towards the collection's by this many clips
            (:mod:`paraspeechclap.centering`; 0: the plain speaker mean, as official checkpoints centre).
    """

    audio_encoder: dict[str, Any]
    text_encoder: dict[str, Any]
    embed_dim: int = 768
    projection_dropout: float = 0.5
    init_logit_scale: float = 1.0 / 0.07
    audio_trainable: list[str] | None = None
    text_trainable: list[str] | None = None
    name: str = "custom"
    audio_offset: bool = False
    audio_offset_gate: bool = False
    centred_head: bool = False
    speaker_prior: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def init_log_logit_scale(self) -> float:
        return math.log(self.init_logit_scale)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("audio_offset", "audio_offset_gate", "centred_head", "speaker_prior"):
            if not data[key]:  # written only when on: models without one keep the config.json they had
                del data[key]
        return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "ModelConfig":
        data = dict(data)
        fmt = data.pop("format", FORMAT_NAME)
        version = data.pop("format_version", FORMAT_VERSION)
        if fmt != FORMAT_NAME:
            raise ConfigError(f"{source}: not a paraspeechclap model config (format {fmt!r})")
        if version > FORMAT_VERSION:
            raise ConfigError(f"{source}: format version {version} is newer than this paraspeechclap supports")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {', '.join(unknown)}")
        missing = [k for k in ("audio_encoder", "text_encoder") if k not in data]
        if missing:
            raise ConfigError(f"{source}: missing field(s) {', '.join(missing)}")
        prior = data.get("speaker_prior", 0.0)
        if isinstance(prior, bool) or not isinstance(prior, (int, float)) or not 0 <= prior < math.inf:
            raise ConfigError(f"{source}: speaker_prior must be a finite number of clips >= 0, got {prior!r}")
        return cls(**data)
