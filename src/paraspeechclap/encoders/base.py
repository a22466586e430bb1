"""The interface every backbone implements.

An audio encoder turns one 16 kHz mono waveform into model inputs (:meth:`AudioEncoder.prepare`),
and a padded batch of those inputs into one pooled vector per item (:meth:`AudioEncoder.forward`).
Preprocessing, pooling, batching behaviour and any extra inputs are properties of the encoder, so
the model (:mod:`paraspeechclap.model`) never branches on the backbone type.

A text encoder tokenises captions and pools one vector per caption.

Both keep the wrapped Hugging Face module as ``self.base``: with the official attribute names of the
model (``audio_branch``/``text_branch``) this gives the state-dict prefixes ``audio_branch.base.*`` and
``text_branch.base.*`` of the released checkpoints.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000

BatchMode = Literal["mask", "equal_length"]


@dataclass
class PreparedAudio:
    """Model inputs of one waveform.

    Attributes:
        features: time-last tensor, ``(T,)`` for waveform backbones or ``(C, T)`` for spectrogram
            backbones. Padding is appended on the last axis.
        extras: fixed-size per-item inputs measured before any normalisation (e.g. level in dBFS);
            stacked into ``(B, ...)`` tensors and passed to ``forward`` as keyword arguments.
    """

    features: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return int(self.features.shape[-1])


class AudioEncoder(nn.Module):
    """Base class of audio backbones.

    Subclasses set ``self.base`` and implement :meth:`prepare`, :meth:`forward`,
    :meth:`num_frames` and :meth:`spec`, and set the class attributes below.
    """

    #: how items of different lengths may be batched: ``"mask"`` (pad + mask; the output of an
    #: item does not depend on its batch) or ``"equal_length"`` (only items with the same number of
    #: input frames share a batch; used where padding would leak into the result).
    batch_mode: BatchMode = "mask"
    #: longest waveform (in samples at 16 kHz) encoded in one pass; longer audio is embedded in
    #: windows of this size. Encoders with :meth:`window_moments` combine the windows' frame
    #: statistics exactly; for the others the pooled features of the windows are averaged, weighted
    #: by their frame counts (exact for mean pooling, the only pooling those encoders have).
    window_samples: int = 30 * SAMPLE_RATE
    #: shortest waveform the encoder can produce at least one frame for.
    min_samples: int = 400
    #: most padded positions on the features' last axis (samples for waveform encoders) per forward
    #: pass: the longest window of a batch times its number of windows. Inference batches fewer
    #: windows of long audio at a time (a window longer than this goes alone) where bigger batches
    #: only cost memory, not time; None: only the ``batch_size`` argument limits a batch.
    max_batch_positions: int | None = None
    #: whether the backbone weights can be rebuilt from ``spec()`` alone (an installed package or a
    #: hub id), so that a frozen backbone need not be stored in saved models.
    reconstructible: bool = True

    base: nn.Module
    hidden_size: int

    def prepare(self, wav: np.ndarray) -> PreparedAudio:
        """Turn a float32 16 kHz mono waveform of shape ``(S,)`` into model inputs."""
        raise NotImplementedError

    def forward(self, features: torch.Tensor, lengths: torch.Tensor, **extras: torch.Tensor) -> torch.Tensor:
        """Pool a padded batch.

        Args:
            features: ``(B, T)`` or ``(B, C, T)``, zero-padded on the last axis.
            lengths: ``(B,)`` number of valid positions of each item on the last axis.
            **extras: the stacked ``PreparedAudio.extras``.

        Returns:
            ``(B, hidden_size)`` pooled features (before the projection head).
        """
        raise NotImplementedError

    def forward_frozen(self, features: torch.Tensor, lengths: torch.Tensor, **extras: torch.Tensor) -> torch.Tensor:
        """The part of :meth:`forward` that does not train when the backbone is frozen.

        Frozen-backbone training caches this output per clip and trains only :meth:`forward_head`
        on top, so ``forward_head(forward_frozen(x)) == forward(x)`` must hold. The default caches the
        pooled features; encoders with trainable pooling (e.g. a learned mix of layers) cache what
        comes before it.

        Returns:
            ``(B, ...)`` a fixed-size per-item tensor.
        """
        return self.forward(features, lengths, **extras)

    def forward_head(self, cached: torch.Tensor) -> torch.Tensor:
        """``forward_frozen`` output ``(B, ...)`` -> ``(B, hidden_size)`` pooled features."""
        return cached

    def num_frames(self, length: int) -> int:
        """Number of output frames for an input of ``length`` positions (used to weight windows)."""
        raise NotImplementedError

    @property
    def state_width(self) -> int | None:
        """Leading entries of a :meth:`forward_frozen` row that come from the backbone (the rest are
        explicit measurements, e.g. a level); ``None``: all of them."""
        return None

    #: whether :meth:`window_moments` and :meth:`frozen_from_moments` are implemented.
    has_window_moments: bool = False

    def window_moments(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor | None:
        """Additive frame statistics of a padded batch of windows (if :attr:`has_window_moments`).

        Returns:
            ``(B, K)`` float64 sums (frame counts, sums, sums of squares, ...): the sum of these
            rows over a long clip's windows, given to :meth:`frozen_from_moments`, is exactly what
            pooling the concatenated frames of those windows gives.
        """
        return None

    def frozen_from_moments(self, moments: torch.Tensor, **extras: torch.Tensor) -> torch.Tensor:
        """``(B, K)`` summed :meth:`window_moments` plus whole-clip extras (:meth:`clip_extras`) ->
        what :meth:`forward_frozen` gives for one window (so :meth:`forward_head` applies)."""
        raise NotImplementedError

    def clip_extras(self, wav: np.ndarray) -> dict[str, torch.Tensor]:
        """The per-item extras (see :class:`PreparedAudio`) measured on a whole clip of any length."""
        return {}

    def spec(self) -> dict[str, Any]:
        """JSON-serialisable description that :func:`create_audio_encoder` rebuilds this encoder from."""
        raise NotImplementedError

    def cache_spec(self) -> dict[str, Any]:
        """What determines :meth:`forward_frozen`'s output (the feature-cache key): the spec by default."""
        return self.spec()

    def feed_forward_linears(self) -> list[str]:
        """Names (relative to ``self``) of the feed-forward ``nn.Linear`` layers that int8 dynamic
        quantisation may replace. Attention projections are excluded on purpose: some backbones
        (WavLM) read ``q_proj.bias`` directly and break when it is quantised."""
        return []

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        set_grad_checkpointing(self.base, enabled)


class TextEncoder(nn.Module):
    """Base class of text backbones: tokenisation plus pooling of ``self.base``'s hidden states."""

    base: nn.Module
    hidden_size: int
    #: longest token sequence; longer captions are truncated with a warning.
    max_length: int = 512
    reconstructible: bool = True

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Tokenise a batch, padded to the longest, truncated to ``max_length`` (with a warning)."""
        raise NotImplementedError

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` token ids and mask -> ``(B, hidden_size)`` pooled features."""
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        raise NotImplementedError

    def feed_forward_linears(self) -> list[str]:
        return []

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        set_grad_checkpointing(self.base, enabled)


def set_grad_checkpointing(base: nn.Module, enabled: bool) -> None:
    """Activation checkpointing of a HF backbone (non-reentrant, as the official code)."""
    if enabled and hasattr(base, "gradient_checkpointing_enable"):
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    elif not enabled and hasattr(base, "gradient_checkpointing_disable"):
        base.gradient_checkpointing_disable()


def masked_mean(hidden: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid frames.

    Args:
        hidden: ``(B, T, D)`` hidden states.
        frame_mask: ``(B, T)``, 1 for valid frames.

    Returns:
        ``(B, D)``; the denominator is clamped to at least 1 as the official pooling does.
    """
    m = frame_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``(B,)`` lengths -> ``(B, max_len)`` long mask with ones on the first ``length`` positions."""
    return (torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]).long()


#: environment variable; ``0`` turns :func:`reuse_freed_memory` off (glibc's default behaviour).
REUSE_MEMORY_ENV = "PARASPEECHCLAP_REUSE_MEMORY"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
_KEEP = 2**31 - 1  # mallopt takes an int: the largest thresholds it accepts (2 GiB)
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX (64-bit): where its own heuristic ends
_malloc_lock = threading.Lock()
_malloc_depth = 0
_glibc_functions: dict[str, Any] = {}  # name -> the C function once looked up, False where there is none


def _glibc(name: str, argtypes: list[Any]) -> Any:
    """glibc's function ``name`` (returning int), or False off Linux/glibc."""
    if name not in _glibc_functions:
        _glibc_functions[name] = False
        try:
            if os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):  # type: ignore[union-attr]
                fn = getattr(ctypes.CDLL(None), name)
                fn.argtypes, fn.restype = argtypes, ctypes.c_int
                _glibc_functions[name] = fn
        except (AttributeError, OSError, ValueError):  # not Linux/glibc: nothing to tune
            pass
    return _glibc_functions[name]


def _glibc_mallopt() -> Any:
    return _glibc("mallopt", [ctypes.c_int, ctypes.c_int])


def release_freed_memory() -> None:
    """Hand the pages of freed heap memory back to the system (glibc ``malloc_trim(0)``; a no-op elsewhere).

    glibc raises its mmap threshold after a large tensor is freed, so later tensors up to 32 MiB come
    from the heap, and only the heap's top is returned on ``free``: the freed holes in between stay
    resident. Over a long job that embeds batch after batch of other shapes, resident memory then
    creeps up (``annotate`` on 4,000 clips: 0.69 GB after the first shard, 1.67 GB after the
    sixteenth). Cheap (about a millisecond); the next batch faults in the pages it needs again, which
    costs little next to a forward pass (:func:`paraspeechclap.annotate.stage.embed_releasing` calls
    it between batches at unchanged speed), but it undoes :func:`reuse_freed_memory`, so not inside one.
    """
    trim = _glibc("malloc_trim", [ctypes.c_size_t])
    if trim:
        trim(0)


@contextlib.contextmanager
def reuse_freed_memory() -> Iterator[None]:
    """Keep memory freed inside the block in the process's heap, for the next allocation to reuse.

    glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh ``mmap``
    and unmaps it on ``free``, so each large tensor's pages are faulted in and zeroed by the kernel
    again. A transformer forward on long audio allocates several such tensors per layer (WavLM-Large:
    four ``(B, 16, T, T)`` float32 attention tensors of 144 MB per 30 s item: 16 GB of fresh pages per
    30 s clip), and that page-fault work made batched WavLM-Large inference slower than one clip at a
    time. Inside this block large allocations come from the heap instead and freed memory is not
    returned to the system, so a forward pass maps its peak once; on leaving the outermost block the
    thresholds are set to 32 MiB (mmap) and 64 MiB (trim), where glibc's own adaptive thresholds end
    up, after which they stay fixed. A no-op off glibc or with :data:`REUSE_MEMORY_ENV` ``=0``;
    thread-safe and reentrant (the setting is process-wide while any block is open).
    """
    global _malloc_depth
    fn = _glibc_mallopt() if os.environ.get(REUSE_MEMORY_ENV, "").strip() != "0" else False
    if not fn:
        yield
        return
    with _malloc_lock:
        if _malloc_depth == 0:
            fn(_M_MMAP_THRESHOLD, _KEEP)
            fn(_M_TRIM_THRESHOLD, _KEEP)
        _malloc_depth += 1
    try:
        yield
    finally:
        with _malloc_lock:
            _malloc_depth -= 1
            if _malloc_depth == 0:
                fn(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
                fn(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD_MAX)
