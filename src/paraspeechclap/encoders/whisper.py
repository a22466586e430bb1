"""Whisper encoder (converted from the CTranslate2 files of PyPI packages) as an audio backbone.

Registered as ``"whisper"``. Spec options (all JSON):

* ``variant``: ``"tiny.en"`` (384-d, 4 blocks, core dependency) or ``"base"`` (512-d, 6 blocks,
  extra ``base``).
* ``layers``: hidden states to pool, indexed like ``transformers``' ``output_hidden_states``:
  ``0`` = conv front end + positions, ``k`` = output of block ``k`` (before the final LayerNorm),
  ``"last"`` = ``last_hidden_state`` (after it). A single value or a list; default: the middle
  blocks (tiny.en ``[2, 3]``, base ``[2, 3, 4]``), which beat the last one for emotion and gender.
  Several states are combined (``combine``) by a learned softmax-weighted sum (``"mix"``, weights
  start uniform) or by concatenation (``"concat"``: the projection then learns its own map of each
  layer, which probes better for emotion on the shared dev split).
* ``pooling``: ``"mean"`` over the valid frames of each item, ``"mean_std"``: mean and standard
  deviation over the valid frames, concatenated (the spread carries prosody: monotony, arousal), or
  ``"mean_std_delta"``: those two plus the root-mean-square change of each dimension between frames
  1 and 2 apart (:data:`DELTA_LAGS`, 20 and 40 ms). Mean and spread are blind to the order of the
  frames, so they hear speaking rate only through what fast speech sounds like in one voice; how
  fast the states change is the tempo itself (a probe trained without Piper classified Piper's
  rate 0.86-0.88 with it, 0.82-0.83 without; the default model does not use it: MODEL_CARD.md).
* ``standardize``: layer-normalise (no affine) each pooled statistic of each layer before it is
  combined: Whisper's hidden states have a few huge dimensions that otherwise dominate the
  projection's input and stall the first training steps of a frozen-backbone head.
* ``pitch_input``: append ``[median log2(F0 / 150 Hz), voiced fraction]`` measured by
  :func:`paraspeechclap.audio.pitch.pitch_features` (after the level, if both are on): "deep" and
  "high-pitched" are relative to what is typical for a voice, which an explicit F0 makes nearly
  linear for the head.
* ``pitch_statistic``: how ``pitch_input`` summarises the clip's F0 track: ``"median"`` (default)
  or ``"trimmed_mean"`` (geometric mean of the frames within half an octave of the median; creaky
  stretches pull it down less). Omitted from the spec when ``"median"``, so earlier models and
  caches keep their meaning.
* ``level_input``: append the active-speech level (dBFS of the raw waveform, measured before any
  normalisation; ``(dB + 30) / 20``, so -50..-10 dBFS maps to -1..1) to the pooled vector.
* ``level_bins``: also encode the level as that many Gaussian bumps (centres evenly spaced over
  :data:`LEVEL_BINS_DBFS`, width = spacing), computed in :meth:`forward_head` from the cached level.
  One scalar is hard for a linear head to threshold twice (soft < normal < loud); bumps make each
  level band linearly separable. 0 (default) = the scalar only; omitted from the spec when 0.
* ``pitch_bins``: also encode the median log-F0 of ``pitch_input`` as that many Gaussian bumps
  (centres evenly spaced over :data:`PITCH_BINS_LOG2`, i.e. about 75-320 Hz, width = spacing), all
  zero for clips without a measured F0 (fewer than 3 voiced frames), in :meth:`forward_head`. A
  lone scalar among thousands of backbone features is easy for the head to ignore; bumps make each
  pitch band a feature of its own, which the head combines with the voice's gender cues. Needs
  ``pitch_input``; omitted from the spec when 0.
* ``feature_dropout``: dropout on the pooled backbone states (not on the level and pitch inputs)
  while training, in :meth:`forward_head`. With it the head cannot lean on the backbone alone for
  what an explicit input measures (e.g. pitch, which the backbone hears through voice-specific
  timbre that does not transfer to unseen voices). Omitted from the spec when 0.
* ``normalize``: waveform normalisation before the log-mel: ``"peak"`` (-1 dBFS), ``"rms"``
  (-23 dBFS active level) or ``"none"``. Normalisation removes loudness from the log-mel; the
  level input gives it back explicitly.
* ``sha256``: expected checksum of the source ``model.bin`` (default: the pinned one).
* ``merge_after`` / ``merge_factor``: after block ``merge_after`` (``0``: after the conv front end),
  average each run of ``merge_factor`` (default 2) adjacent frames into one, so the later blocks run
  on a shorter sequence (a 2:1 merge after block 1 makes blocks 2-5 cost about what blocks 2-3 did at
  the full rate). The positional table is added once, before block 1, so merged frames keep their
  order and position; a pooled state is pooled over its own frames (full rate up to the merge, merged
  after it). Linear probes of a corpus never heard read emotion at least as well from merged states as
  from full-rate ones (``benchmarks/merge_probe.py``). Omitted from the spec when unset.

The encoder runs on each clip's own length (no padding to 30 s): the positional table is sliced,
and a padded batch uses a key-padding attention mask, with padded mel frames and padded conv1
outputs zeroed so the convolutions see what a lone item sees. An item's output does not depend
on its batch (``batch_mode = "mask"``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..audio.features import N_FFT, NORMALIZERS, active_level_dbfs, log_mel_spectrogram
from ..audio.pitch import PITCH_STATISTICS, pitch_features
from ..errors import AudioError, ConfigError, InputError
from .base import SAMPLE_RATE, AudioEncoder, PreparedAudio, lengths_to_mask, masked_mean
from .ct2 import build_whisper_encoder, load_whisper_encoder, whisper_source
from .registry import register_audio_encoder

if TYPE_CHECKING:
    from .whisper_net import WhisperNet

LayerId = int | str
#: pooling -> the statistics it concatenates per layer (each ``D`` wide).
POOLINGS: dict[str, int] = {"mean": 1, "mean_std": 2, "mean_std_delta": 4}
#: frame lags of the ``mean_std_delta`` change statistics (frames are 20 ms apart).
DELTA_LAGS = (1, 2)
COMBINES = ("mix", "concat")
#: the level feature is ``(dBFS - LEVEL_CENTER_DB) / LEVEL_SCALE_DB``: typical speech levels
#: (-50..-10 dBFS) land in -1..1, next to LayerNorm-scale hidden features.
LEVEL_CENTER_DB = -30.0
LEVEL_SCALE_DB = 20.0
#: range of the level bumps' centres (``level_bins``), dBFS: from near-silent to near full scale.
LEVEL_BINS_DBFS = (-50.0, -5.0)
#: range of the pitch bumps' centres (``pitch_bins``) in log2(F0 / 150 Hz): 75-321 Hz, six
#: semitones below a deep man's voice to six above a high woman's.
PITCH_BINS_LOG2 = (-1.0, 1.1)
#: head-only options: they act in :meth:`WhisperAudioEncoder.forward_head` on cached values, so they
#: are left out of the feature-cache key (and out of the spec when 0, as older specs lack them).
_HEAD_ONLY_OPTIONS = ("level_bins", "pitch_bins", "feature_dropout")


def gaussian_bumps(x: torch.Tensor, lo: float, hi: float, n: int) -> torch.Tensor:
    """``(B, 1)`` values -> ``(B, n)`` Gaussian bumps, centres evenly spaced over ``[lo, hi]``,
    width = their spacing."""
    centres = torch.linspace(lo, hi, n, dtype=x.dtype, device=x.device)
    width = (hi - lo) / (n - 1)
    return torch.exp(-0.5 * ((x - centres) / width) ** 2)


def masked_delta_rms(hidden: torch.Tensor, frame_mask: torch.Tensor, lag: int) -> torch.Tensor:
    """Root-mean-square change of each dimension between frames ``lag`` apart.

    Args:
        hidden: ``(B, T, D)`` states.
        frame_mask: ``(B, T)``, 1 for valid frames.
        lag: frame distance, >= 1.

    Returns:
        ``(B, D)`` over the pairs whose two frames are both valid (about 0 for an item with
        ``lag`` frames or fewer).
    """
    pairs = frame_mask[:, lag:] * frame_mask[:, :-lag]  # (B, T - lag)
    change = (hidden[:, lag:] - hidden[:, :-lag]) ** 2
    return (masked_mean(change, pairs) + 1e-6).sqrt()


def _checked_bins(name: str, bins: int, input_name: str, input_on: bool) -> int:
    """A ``*_bins`` option: 0 (off) or at least 2 bumps, and only with the input it encodes."""
    if bins < 0 or bins == 1 or (bins and not input_on):
        raise ConfigError(f"audio encoder 'whisper': {name} must be 0 or >= 2 and needs {input_name}, got {bins}")
    return int(bins)


def _depth(layers: Sequence[LayerId], n_blocks: int) -> int:
    """How many blocks run to give the pooled ``layers`` (``"last"`` needs all ``n_blocks``)."""
    return max(n_blocks if x == "last" else int(x) for x in layers)


def _checked_merge(after: int | None, factor: int, depth: int) -> tuple[int | None, int]:
    """Validated ``(merge_after, merge_factor)``: the merge must come before the last of the ``depth`` blocks
    that run (after it, it would change nothing), and merge at least two frames into one."""
    if after is None:
        return None, 2
    if isinstance(after, bool) or not isinstance(after, int) or not 0 <= after < depth:
        raise ConfigError(f"audio encoder 'whisper': merge_after must be a block index from 0 to {depth - 1} "
                          f"(below the deepest pooled layer), got {after!r}")
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
        raise ConfigError(f"audio encoder 'whisper': merge_factor must be an integer >= 2, got {factor!r}")
    return after, factor


def merge_frames(x: torch.Tensor, frame_mask: torch.Tensor, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, T, D)`` states, ``(B, T)`` valid-frame mask -> ``(B, ceil(T / factor), D)``, its mask: each run
    of ``factor`` frames replaced by the mean of its valid ones (an item's last run may be shorter), so
    an item's merged frames do not depend on the padding of its batch."""
    bsz, n, width = x.shape
    pad = (-n) % factor
    if pad:
        x, frame_mask = F.pad(x, (0, 0, 0, pad)), F.pad(frame_mask, (0, pad))
    m = frame_mask.to(x.dtype).reshape(bsz, -1, factor, 1)
    counts = m.sum(2)  # (B, T', 1)
    merged = (x.reshape(bsz, -1, factor, width) * m).sum(2) / counts.clamp(min=1)
    return merged, (counts[..., 0] > 0).to(frame_mask.dtype)


def _key_padding(frame_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
    """``(B, T)`` valid-frame mask -> ``(B, 1, 1, T)`` additive attention mask, or ``None`` without padding."""
    if bool(frame_mask.all()):
        return None
    attn_mask = torch.zeros(frame_mask.shape[0], 1, 1, frame_mask.shape[1], dtype=dtype, device=frame_mask.device)
    return attn_mask.masked_fill_(frame_mask[:, None, None, :] == 0, torch.finfo(dtype).min)


def _resolve_layers(layers: LayerId | Sequence[LayerId] | None, n_blocks: int, default: Sequence[int]) -> list[LayerId]:
    items: list[LayerId] = (list(default) if layers is None else [layers] if isinstance(layers, (int, str))
                            else list(layers))
    if not items:
        raise ConfigError("audio encoder 'whisper': 'layers' is empty")
    for item in items:
        ok = item == "last" or (isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= n_blocks)
        if not ok:
            raise ConfigError(f"audio encoder 'whisper': layer {item!r} is not 'last' or an int in [0, {n_blocks}]")
    if len(set(items)) != len(items):
        raise ConfigError(f"audio encoder 'whisper': duplicate entries in layers {items!r}")
    return items


class WhisperAudioEncoder(AudioEncoder):
    """Whisper's encoder (``self.base``, a :class:`~paraspeechclap.encoders.whisper_net.WhisperNet`) with
    length-aware pooling.

    Build it with :func:`create_whisper_encoder` (or the registry); the arguments mirror the spec
    options described in the module docstring.
    """

    batch_mode = "mask"
    window_samples = 30 * SAMPLE_RATE
    has_window_moments = True
    #: one full FFT window: 2 mel frames, 1 output frame.
    min_samples = N_FFT
    reconstructible = True
    base: WhisperNet

    def __init__(
        self,
        base: WhisperNet,
        *,
        variant: str,
        layers: list[LayerId],
        pooling: str = "mean",
        combine: str = "mix",
        standardize: bool = False,
        level_input: bool = True,
        pitch_input: bool = False,
        normalize: str = "peak",
        sha256: str,
        level_bins: int = 0,
        pitch_bins: int = 0,
        feature_dropout: float = 0.0,
        pitch_statistic: str = "median",
        merge_after: int | None = None,
        merge_factor: int = 2,
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"audio encoder 'whisper': unknown pooling {pooling!r}; choose from {tuple(POOLINGS)}")
        if normalize not in NORMALIZERS:
            choices = tuple(NORMALIZERS)
            raise ConfigError(f"audio encoder 'whisper': unknown normalize {normalize!r}; choose from {choices}")
        self.base = base
        self.variant, self.layers, self.pooling = variant, list(layers), pooling
        self.level_input, self.normalize, self.sha256 = bool(level_input), normalize, sha256
        self.pitch_input = bool(pitch_input)
        if pitch_statistic not in PITCH_STATISTICS:
            raise ConfigError(f"audio encoder 'whisper': unknown pitch_statistic {pitch_statistic!r}; "
                              f"choose from {tuple(PITCH_STATISTICS)}")
        self.pitch_statistic = pitch_statistic
        self.level_bins = _checked_bins("level_bins", level_bins, "level_input", self.level_input)
        self.pitch_bins = _checked_bins("pitch_bins", pitch_bins, "pitch_input", self.pitch_input)
        if not 0.0 <= feature_dropout < 1.0:
            raise ConfigError(f"audio encoder 'whisper': feature_dropout must be in [0, 1), got {feature_dropout}")
        self.feature_dropout = float(feature_dropout)
        self.n_mels = int(base.config.num_mel_bins)
        self.max_mel_frames = 2 * int(base.config.max_source_positions)
        if combine not in COMBINES:
            raise ConfigError(f"audio encoder 'whisper': unknown combine {combine!r}; choose from {COMBINES}")
        self.combine = combine
        self.merge_after, self.merge_factor = _checked_merge(merge_after, merge_factor,
                                                             _depth(self.layers, len(base.layers)))
        self.standardize = bool(standardize)
        self._width = int(base.config.d_model) * POOLINGS[pooling]
        n_out = len(self.layers) if combine == "concat" else 1
        self.hidden_size = (n_out * self._width + int(self.level_input) + 2 * int(self.pitch_input)
                            + self.level_bins + self.pitch_bins)
        # softmax(0, ..., 0) = uniform mix; a single state or a concatenation needs no weights.
        mixed = len(self.layers) > 1 and combine == "mix"
        self.layer_logits = nn.Parameter(torch.zeros(len(self.layers))) if mixed else None
        self._trim_unused()

    def _trim_unused(self) -> None:
        """Drop blocks after the deepest pooled state and the final LayerNorm if "last" is not pooled.

        Unused parameters would get no gradient (DDP without ``find_unused_parameters`` fails on
        them) and cost memory; the spec rebuilds the same trimmed module.
        """
        depth = _depth(self.layers, len(self.base.layers))
        del self.base.layers[depth:]
        self.base.config.encoder_layers = depth
        if "last" not in self.layers:
            self.base.layer_norm = nn.Identity()  # type: ignore[assignment]

    # ---- preprocessing -------------------------------------------------------------------

    def prepare(self, wav: np.ndarray) -> PreparedAudio:
        """``(S,)`` float 16 kHz waveform -> ``(n_mels, S // 160)`` log-mel (+ ``level_dbfs`` extra)."""
        wav = np.asarray(wav, dtype=np.float32)
        if wav.ndim != 1:
            raise AudioError(f"Whisper expects a mono waveform of shape (S,), got {wav.shape}")
        if not (self.min_samples <= len(wav) <= self.window_samples):
            raise AudioError(
                f"Whisper needs {self.min_samples}..{self.window_samples} samples per window, got {len(wav)}"
            )
        if not np.isfinite(wav).all():
            raise AudioError("waveform contains NaN or infinite samples")
        mel = log_mel_spectrogram(NORMALIZERS[self.normalize](wav), self.n_mels)
        return PreparedAudio(features=mel, extras=self.clip_extras(wav))

    def clip_extras(self, wav: np.ndarray) -> dict[str, torch.Tensor]:
        """``level_dbfs`` ``(1,)`` and ``pitch`` ``(2,)`` (as enabled) of a raw waveform of any length."""
        extras = {}
        if self.level_input:  # measured on the raw waveform: normalisation would erase it
            extras["level_dbfs"] = torch.tensor([active_level_dbfs(wav)], dtype=torch.float32)
        if self.pitch_input:
            extras["pitch"] = torch.from_numpy(pitch_features(wav, self.pitch_statistic))
        return extras

    def num_frames(self, length: int) -> int:
        """Output frames for ``length`` mel frames (conv2 has stride 2 and padding 1)."""
        return (int(length) - 1) // 2 + 1

    # ---- encoder -------------------------------------------------------------------------

    def hidden_states(self, features: torch.Tensor,
                      lengths: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Run the encoder on a padded batch of log-mels of any length up to 3000 frames.

        Args:
            features: ``(B, n_mels, T)`` zero-padded log-mels.
            lengths: ``(B,)`` valid mel frames per item.

        Returns:
            the pooled states in ``self.layers`` order, each ``(B, T', D)``, and each state's
            ``(B, T')`` valid-frame mask: ``T' = (T - 1) // 2 + 1``, or ``ceil(T' / merge_factor)`` for
            the states after ``merge_after``.
        """
        enc = self.base
        n_frames = features.shape[-1]
        if n_frames > self.max_mel_frames:
            raise InputError(f"Whisper input has {n_frames} mel frames; at most {self.max_mel_frames} (30 s) fit")
        lengths = lengths.to(features.device)
        features = features.to(enc.conv1.weight.dtype)  # e.g. weights cast to bf16 for inference
        mel_mask = lengths_to_mask(lengths, n_frames).to(features.dtype)[:, None, :]  # (B, 1, T)
        # Zero what lies past each item's end, so conv1/conv2 read zeros there as their own
        # zero padding gives a lone item.
        x = F.gelu(enc.conv1(features * mel_mask)) * mel_mask
        x = F.gelu(enc.conv2(x)).transpose(1, 2)  # (B, T', D)
        out_lengths = (lengths - 1) // 2 + 1
        frame_mask = lengths_to_mask(out_lengths, x.shape[1])  # (B, T')
        x = x + enc.embed_positions.weight[: x.shape[1]]
        x = F.dropout(x, p=enc.dropout, training=self.training)
        states: dict[LayerId, tuple[torch.Tensor, torch.Tensor]] = {0: (x, frame_mask)}
        attn_mask = _key_padding(frame_mask, x.dtype)  # key padding only; padded queries are ignored
        for i, block in enumerate(enc.layers):  # merge_after < len(enc.layers): checked at construction
            if i == self.merge_after:
                x, frame_mask = merge_frames(x, frame_mask, self.merge_factor)
                attn_mask = _key_padding(frame_mask, x.dtype)
            x = block(x, attn_mask)
            states[i + 1] = (x, frame_mask)
        if "last" in self.layers:
            states["last"] = (enc.layer_norm(x), frame_mask)
        return [states[k][0] for k in self.layers], [states[k][1] for k in self.layers]

    def forward_frozen(
        self,
        features: torch.Tensor,
        lengths: torch.Tensor,
        level_dbfs: torch.Tensor | None = None,
        pitch: torch.Tensor | None = None,
        **extras: torch.Tensor,
    ) -> torch.Tensor:
        """Per-layer pooled states (and the scaled level, the pitch): what frozen-backbone training caches.

        Args:
            features: ``(B, n_mels, T)`` zero-padded log-mels from :meth:`prepare`.
            lengths: ``(B,)`` valid mel frames.
            level_dbfs: ``(B, 1)`` or ``(B,)`` raw levels; required when ``level_input`` is on.
            pitch: ``(B, 2)`` pitch features; required when ``pitch_input`` is on.

        Returns:
            ``(B, L * P [+ 1] [+ 2])``: ``L`` pooled states of width ``P`` (``D`` times the
            statistics of :data:`POOLINGS`), flattened, then the scaled level and the pitch features if enabled.
        """
        states, masks = self.hidden_states(features, lengths)
        pooled = torch.stack([self._pool(h, m) for h, m in zip(states, masks)], dim=1)  # (B, L, P)
        return self._with_extras(pooled.flatten(1), level_dbfs, pitch)

    def _with_extras(self, pooled: torch.Tensor, level_dbfs: torch.Tensor | None,
                     pitch: torch.Tensor | None) -> torch.Tensor:
        """``(B, L * P)`` pooled states -> the :meth:`forward_frozen` layout (scaled level, pitch appended)."""
        parts = [pooled]
        if self.level_input:
            if level_dbfs is None:
                raise InputError("this Whisper encoder has level_input=True but got no 'level_dbfs' extra")
            parts.append((level_dbfs.reshape(-1, 1).to(parts[0]) - LEVEL_CENTER_DB) / LEVEL_SCALE_DB)
        if self.pitch_input:
            if pitch is None:
                raise InputError("this Whisper encoder has pitch_input=True but got no 'pitch' extra")
            parts.append(pitch.reshape(-1, 2).to(parts[0]))
        return torch.cat(parts, dim=1)

    def window_moments(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Per layer: frame count, sum and sum of squares of each dimension and, for
        ``mean_std_delta``, the summed squared changes and pair counts of each lag (pairs within a
        window only: two windows are encoded apart, so the step across their seam is no tempo).

        Returns:
            ``(B, L * (1 + 2D [+ (1 + D) per lag]))`` float64 (bf16 states are exact in float64).
        """
        states, masks = self.hidden_states(features, lengths)
        rows = []
        for h, frame_mask in zip(states, masks):
            h, m = h.double(), frame_mask.double()[..., None]  # (B, T, D), (B, T, 1)
            rows += [m.sum(1), (h * m).sum(1), (h * h * m).sum(1)]
            if self.pooling == "mean_std_delta":
                for lag in DELTA_LAGS:
                    pairs = m[:, lag:] * m[:, :-lag]
                    rows += [pairs.sum(1), ((h[:, lag:] - h[:, :-lag]) ** 2 * pairs).sum(1)]
        return torch.cat(rows, dim=1)

    def frozen_from_moments(self, moments: torch.Tensor, level_dbfs: torch.Tensor | None = None,
                            pitch: torch.Tensor | None = None, **extras: torch.Tensor) -> torch.Tensor:
        """Summed :meth:`window_moments` ``(B, K)`` -> the :meth:`forward_frozen` layout: mean, standard
        deviation (and change RMS) of the frames of all windows, as :meth:`_pool` computes them over one."""
        d = int(self.base.config.d_model)
        lags = DELTA_LAGS if self.pooling == "mean_std_delta" else ()
        widths = [1, d, d, *[w for _ in lags for w in (1, d)]] * len(self.layers)
        cols = iter(torch.split(moments, widths, dim=1))  # in window_moments' order
        stats = []
        for _ in self.layers:
            n, s1, s2 = next(cols).clamp(min=1.0), next(cols), next(cols)
            mean = s1 / n
            layer = [mean]
            if self.pooling != "mean":  # E[h^2] - E[h]^2 in float64; clamp the rounding below 0
                layer.append((s2 / n - mean * mean + 1e-6).clamp(min=1e-6).sqrt())
            for _lag in lags:
                pairs, sq = next(cols).clamp(min=1.0), next(cols)
                layer.append((sq / pairs + 1e-6).sqrt())
            stats.append(torch.cat(layer, dim=1))
        dtype = self.base.conv1.weight.dtype  # the model's compute dtype (bf16 weights for bf16)
        return self._with_extras(torch.cat(stats, dim=1).to(dtype), level_dbfs, pitch)

    def _pool(self, h: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """``(B, T, D)`` -> ``(B, P)`` over the valid frames."""
        mean = masked_mean(h, frame_mask)
        if self.pooling == "mean":
            return mean
        stats = [mean, (masked_mean((h - mean[:, None]) ** 2, frame_mask) + 1e-6).sqrt()]
        if self.pooling == "mean_std_delta":
            stats += [masked_delta_rms(h, frame_mask, lag) for lag in DELTA_LAGS]
        return torch.cat(stats, dim=-1)

    @property
    def state_width(self) -> int:
        """The pooled states' share of a :meth:`forward_frozen` row (level and pitch follow it)."""
        return len(self.layers) * self._width

    def forward_head(self, cached: torch.Tensor) -> torch.Tensor:
        """``forward_frozen`` output -> ``(B, hidden_size)``: the learned mix of the pooled states
        (or, for ``combine="concat"``, the cached vector itself)."""
        n_layers = len(self.layers)
        pooled = cached[:, : self.state_width].reshape(len(cached), n_layers, self._width)
        if self.standardize:  # each statistic (mean, std) of each layer separately: (B, L, S, D)
            stats = pooled.reshape(len(cached), n_layers, -1, int(self.base.config.d_model))
            pooled = F.layer_norm(stats, stats.shape[-1:]).reshape_as(pooled)
        pooled = F.dropout(pooled, p=self.feature_dropout, training=self.training)
        tail = cached[:, self.state_width:]  # (B, [1 level] [+ 2 pitch])
        if self.level_bins:
            tail = torch.cat([tail, self._level_bumps(tail[:, :1])], dim=1)
        if self.pitch_bins:
            log_f0 = tail[:, int(self.level_input):int(self.level_input) + 1]
            voiced = (log_f0 != 0).to(log_f0.dtype)  # pitch_features gives exactly 0 without an F0
            tail = torch.cat([tail, gaussian_bumps(log_f0, *PITCH_BINS_LOG2, self.pitch_bins) * voiced], dim=1)
        if self.combine == "concat":
            return torch.cat([pooled.flatten(1), tail], dim=1)
        if self.layer_logits is None:
            out = pooled[:, 0]
        else:  # pooling is per layer, so mixing pooled states equals pooling the mixed states for the mean
            out = torch.einsum("l,bld->bd", torch.softmax(self.layer_logits, 0).to(pooled.dtype), pooled)
        return torch.cat([out, tail], dim=1)

    def _level_bumps(self, scaled_level: torch.Tensor) -> torch.Tensor:
        """``(B, 1)`` scaled level -> ``(B, level_bins)`` Gaussian bumps over :data:`LEVEL_BINS_DBFS`."""
        return gaussian_bumps(scaled_level * LEVEL_SCALE_DB + LEVEL_CENTER_DB, *LEVEL_BINS_DBFS, self.level_bins)

    def cache_spec(self) -> dict[str, Any]:
        """The spec without the head-only options (``level_bins``, ``pitch_bins``,
        ``feature_dropout``): they act in :meth:`forward_head` only, so they never change what
        :meth:`forward_frozen` caches (``combine``/``standardize`` are head-only too but stay in
        the key, as they always were, so existing caches stay valid)."""
        return {k: v for k, v in self.spec().items() if k not in _HEAD_ONLY_OPTIONS}

    def forward(self, features: torch.Tensor, lengths: torch.Tensor, **extras: torch.Tensor) -> torch.Tensor:
        """Pool a padded batch: ``(B, n_mels, T)`` log-mels, ``(B,)`` lengths -> ``(B, hidden_size)``."""
        return self.forward_head(self.forward_frozen(features, lengths, **extras))

    def layer_weights(self) -> dict[str, float]:
        """Current mixing weight of each pooled state (for logging)."""
        if self.layer_logits is None:
            return {str(self.layers[0]): 1.0}
        w = torch.softmax(self.layer_logits.detach().float(), 0).tolist()
        return {str(k): float(v) for k, v in zip(self.layers, w)}

    def spec(self) -> dict[str, Any]:
        return {
            "type": "whisper",
            "variant": self.variant,
            "layers": list(self.layers),
            "pooling": self.pooling,
            "combine": self.combine,
            "standardize": self.standardize,
            "level_input": self.level_input,
            "pitch_input": self.pitch_input,
            "normalize": self.normalize,
            "sha256": self.sha256,
            **({"pitch_statistic": self.pitch_statistic} if self.pitch_statistic != "median" else {}),
            **({"merge_after": self.merge_after, "merge_factor": self.merge_factor}
               if self.merge_after is not None else {}),
            **{k: getattr(self, k) for k in _HEAD_ONLY_OPTIONS if getattr(self, k)},
        }

    def feed_forward_linears(self) -> list[str]:
        return [f"base.layers.{i}.{fc}" for i in range(len(self.base.layers)) for fc in ("fc1", "fc2")]


@register_audio_encoder("whisper")
def create_whisper_encoder(
    variant: str = "tiny.en",
    layers: LayerId | Sequence[LayerId] | None = None,
    pooling: str = "mean",
    combine: str = "mix",
    standardize: bool = False,
    level_input: bool = True,
    pitch_input: bool = False,
    normalize: str = "peak",
    sha256: str | None = None,
    level_bins: int = 0,
    pitch_bins: int = 0,
    feature_dropout: float = 0.0,
    pitch_statistic: str = "median",
    merge_after: int | None = None,
    merge_factor: int = 2,
    pretrained: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> WhisperAudioEncoder:
    """Build the ``"whisper"`` audio encoder (options: see the module docstring).

    Args:
        pretrained: load the converted weights (from the cache, converting on first use). With
            ``False`` the encoder has the variant's shape and random weights, e.g. before loading
            a full saved model; the package is then not needed.
        cache_dir: where converted weights are cached (default ``$PARASPEECHCLAP_CACHE`` or
            ``~/.cache/paraspeechclap``); not part of the spec.
    """
    source = whisper_source(variant)
    expected = (sha256 or source.sha256).lower()
    if pretrained:
        base = load_whisper_encoder(variant, expected, cache_dir)
    else:
        base = build_whisper_encoder({"num_mel_bins": 80, "max_source_positions": 1500, **source.architecture})
    resolved = _resolve_layers(layers, len(base.layers), source.default_layers)
    return WhisperAudioEncoder(
        base,
        variant=variant,
        layers=resolved,
        pooling=pooling,
        combine=combine,
        standardize=standardize,
        level_input=level_input,
        pitch_input=pitch_input,
        normalize=normalize,
        sha256=expected,
        level_bins=level_bins,
        pitch_bins=pitch_bins,
        feature_dropout=feature_dropout,
        pitch_statistic=pitch_statistic,
        merge_after=merge_after,
        merge_factor=merge_factor,
    )
