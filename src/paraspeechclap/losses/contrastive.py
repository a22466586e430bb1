"""Symmetric InfoNCE (CLIP) loss between audio and text embeddings, with a learnable temperature.

The model owns the temperature as ``log_logit_scale`` (initialised to ``ln(1/0.07)``, see
:data:`INIT_LOG_LOGIT_SCALE`) and passes ``logit_scale = log_logit_scale.exp()`` to the loss.
The official recipe clamps ``log_logit_scale`` to ``[0, ln 100]`` at the end of each epoch (and
once more after a ``max_steps`` stop) with :func:`clamp_logit_scale_`; open_clip clamps after
every step instead. Both keep the scale <= 100.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .gather import gather_features

__all__ = [
    "INIT_LOG_LOGIT_SCALE",
    "ContrastiveLoss",
    "LossConfigError",
    "clamp_logit_scale_",
]

#: Initial value of the model's ``log_logit_scale``: ln(1 / 0.07) = 2.6593 (scale 14.29).
INIT_LOG_LOGIT_SCALE: float = math.log(1 / 0.07)


class LossConfigError(ConfigError, ValueError):
    """An invalid combination of loss options (both a :class:`ConfigError` and a ``ValueError``)."""


@torch.no_grad()
def clamp_logit_scale_(param: torch.Tensor, max_scale: float = 100.0) -> torch.Tensor:
    """Clamp a ``log_logit_scale`` parameter in place to ``[0, ln(max_scale)]``.

    The official code calls this at the end of each epoch (and after the ``max_steps`` break),
    so the scale may exceed ``max_scale`` within an epoch. In DDP every rank holds the same value,
    so clamping on every rank equals the official "rank 0 clamps and broadcasts".

    Args:
        param: 0-d tensor holding the *log* of the scale (modified in place, outside autograd).
        max_scale: Largest allowed scale (100 in the official config; ln 100 = 4.6052).

    Returns:
        ``param``.
    """
    return param.clamp_(0.0, math.log(max_scale))


class ContrastiveLoss(nn.Module):
    """Bidirectional InfoNCE over (optionally all-gathered) audio/text pairs.

    ``S = scale * normalize(A) @ normalize(T).T`` (rows = audio), labels ``arange``,
    ``L = (CE(S, labels) + CE(S.T, labels)) / 2`` with mean reduction. No label smoothing, no
    masking of duplicate captions: identical captions in a batch are negatives, as officially.

    Distributed modes (``world_size > 1``):

    * default (official): gather without gradient and re-insert the local rows; every rank
      computes the full ``N x N`` global loss (``N = world_size * B``) but differentiates only its
      own rows. DDP's averaged gradient is then the global-batch gradient divided by
      ``world_size`` for the towers, while ``logit_scale`` gets the full global gradient (Adam
      makes the scale of each parameter's gradient irrelevant).
    * ``gather_with_grad=True``: autograd all-gather; DDP's averaged gradient equals the
      single-process gradient on the concatenated batch, for every parameter.
    * ``gather_with_grad=True, local_loss=True``: local rows x global columns (``B x N``); same
      averaged gradient as above at ``1/world_size`` of the logits memory. The loss value on one
      rank is that rank's share; its mean over ranks is the global loss.

    Args:
        rank: This process's rank.
        world_size: Number of processes.
        gather_with_grad: Use the autograd all-gather.
        local_loss: Compute only the local rows of the logits (requires ``gather_with_grad``).

    Raises:
        LossConfigError: ``local_loss`` without ``gather_with_grad``.
    """

    def __init__(
        self, rank: int = 0, world_size: int = 1, gather_with_grad: bool = False, local_loss: bool = False
    ) -> None:
        super().__init__()
        if local_loss and not gather_with_grad:
            # Without an autograd gather, the global columns are constants: a sample then gets no
            # gradient for being a negative of another rank's rows, so the step optimises a
            # different (smaller) objective than the global InfoNCE. open_clip accepts this
            # silently (issues #616/#894); we refuse it.
            raise LossConfigError("loss: local_loss=True requires gather_with_grad=True")
        if world_size < 1 or not 0 <= rank < world_size:
            raise LossConfigError(f"loss: invalid rank {rank} for world_size {world_size}")
        self.rank = rank
        self.world_size = world_size
        self.gather_with_grad = gather_with_grad
        self.local_loss = local_loss

    def get_logits(
        self, audio_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor | float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled similarity logits.

        Args:
            audio_emb: ``(B, D)`` L2-normalised local audio embeddings.
            text_emb: ``(B, D)`` L2-normalised local text embeddings.
            logit_scale: Scalar multiplicative scale (``exp(log_logit_scale)``).

        Returns:
            ``(logits_per_audio, logits_per_text)``, each ``(R, N)``: ``R = N = B`` in one process,
            ``R = N = world_size * B`` in global mode, ``R = B`` with ``local_loss``.
        """
        if self.world_size == 1:
            logits_per_audio = logit_scale * audio_emb @ text_emb.T
            return logits_per_audio, logits_per_audio.T
        all_audio = gather_features(audio_emb, self.rank, self.world_size, self.gather_with_grad)
        all_text = gather_features(text_emb, self.rank, self.world_size, self.gather_with_grad)
        if self.local_loss:
            return logit_scale * audio_emb @ all_text.T, logit_scale * text_emb @ all_audio.T
        logits_per_audio = logit_scale * all_audio @ all_text.T
        return logits_per_audio, logits_per_audio.T

    def get_labels(self, num_rows: int, device: torch.device) -> torch.Tensor:
        """Index of the positive column for each of ``num_rows`` logit rows, ``(num_rows,)``."""
        labels = torch.arange(num_rows, device=device)
        if self.world_size > 1 and self.local_loss:
            # Local row i is global sample rank*B + i.
            labels = labels + num_rows * self.rank
        return labels

    def forward(
        self,
        audio_emb: torch.Tensor,
        text_emb: torch.Tensor,
        logit_scale: torch.Tensor | float,
        output_dict: bool = False,
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        """Compute the loss.

        Args:
            audio_emb: ``(B, D)`` audio embeddings (normalised here; un-normalised input is fine).
            text_emb: ``(B, D)`` text embeddings of the matching captions.
            logit_scale: Scalar scale ``exp(log_logit_scale)`` (not its log).
            output_dict: Return ``{"contrastive_loss": loss}`` instead of the tensor.

        Returns:
            0-d loss tensor, or a dict as above.
        """
        if audio_emb.shape != text_emb.shape or audio_emb.ndim != 2:
            raise ValueError(f"expected two (B, D) tensors, got {tuple(audio_emb.shape)} and {tuple(text_emb.shape)}")
        audio_emb = F.normalize(audio_emb, dim=-1)
        text_emb = F.normalize(text_emb, dim=-1)
        logits_per_audio, logits_per_text = self.get_logits(audio_emb, text_emb, logit_scale)
        labels = self.get_labels(logits_per_audio.shape[0], logits_per_audio.device)
        loss = (F.cross_entropy(logits_per_audio, labels) + F.cross_entropy(logits_per_text, labels)) / 2
        return {"contrastive_loss": loss} if output_dict else loss
