"""Training-time clip processing: channel, narrowband and gain augmentation, the backbone's ``prepare``, random crop.

Order (as the official recipe for the crop): raw waveform -> a random room/microphone/noise channel
(optional, :mod:`paraspeechclap.training.channel`) -> narrowband (optional) -> random gain
(optional) -> the backbone's ``prepare`` on the whole clip (per-utterance normalisation for WavLM,
log-mel for Whisper, level measured on the raw waveform) -> random crop of the prepared input to
``crop_seconds`` (zero-padded to that length when ``pad_to_crop``, as audtorch's ``RandomCrop`` does
in the official code, so the padding counts as audio).

A gain changes loudness, so with ``relabel_loudness`` the ``loudness`` label of a row is re-derived
from the active level after the gain (:func:`loudness_from_level`): loudness is then learned from
level while every other attribute sees level changes that do not change its label.

Narrowband augmentation resamples a clip to a low rate (8 kHz: telephone and old corpora) and
back with soxr, exactly what loading such a recording at 16 kHz gives, so the model hears the
same emotion or voice with the top band missing. Such a clip no longer sounds like its recording
label (a "crisp" clip is not crisp any more), so :func:`drop_clarity` removes that label and its
tags; nothing else about the speaker changes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..audio.features import active_level_dbfs
from ..data.vocabulary import label_values
from ..encoders.base import SAMPLE_RATE, AudioEncoder, PreparedAudio
from .config import AudioConfig, AugmentConfig

#: tags that state a loudness; replaced when the loudness label is re-derived.
_LOUDNESS_TAGS = {"soft": "soft", "loud": "loud"}


@dataclass(frozen=True)
class ClipPipeline:
    """How one training clip becomes backbone input.

    Attributes:
        crop_positions: crop length in positions of the prepared input's last axis (samples for
            waveform backbones, frames for spectrogram ones); ``None`` = no crop.
        pad_to_crop: zero-pad shorter inputs to ``crop_positions``.
        gain_db: ``(low, high)`` uniform random gain in dB, or ``None``.
        narrowband: ``(probability, rate_hz)``: band-limit a clip to ``rate_hz`` with that
            probability, or ``None``.
        channel: probability of a random room, microphone and noise floor
            (:mod:`paraspeechclap.training.channel`), or ``None``.
    """

    crop_positions: int | None
    pad_to_crop: bool
    gain_db: tuple[float, float] | None
    narrowband: tuple[float, int] | None = None
    channel: float | None = None

    @property
    def is_random(self) -> bool:
        """True when two passes over the same clip may give different inputs."""
        return (self.crop_positions is not None or self.gain_db is not None or self.narrowband is not None
                or self.channel is not None)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly identity (part of the feature-cache key; ``narrowband`` only when set, so
        the ids of pipelines without it, hence their caches, stay as they were)."""
        out = {"crop_positions": self.crop_positions, "pad_to_crop": self.pad_to_crop,
               "gain_db": list(self.gain_db) if self.gain_db else None}  # fmt: skip
        if self.narrowband is not None:
            out["narrowband"] = list(self.narrowband)
        if self.channel is not None:
            from .channel import VERSION

            out["channel"] = [self.channel, VERSION]
        return out


def positions_per_sample(encoder: AudioEncoder) -> float:
    """Positions of the prepared input per waveform sample (1 for waveforms, 1/160 for log-mels)."""
    probe = np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32) * 0.1
    return encoder.prepare(probe).length / SAMPLE_RATE


def make_pipeline(audio: AudioConfig, augment: AugmentConfig, encoder: AudioEncoder) -> ClipPipeline:
    """The clip pipeline of a config for ``encoder``.

    Clips longer than the encoder's ``window_samples`` are always cropped to it (a backbone such as
    Whisper cannot take more in one pass).
    """
    rate = positions_per_sample(encoder)
    window = math.floor(encoder.window_samples * rate)
    crop = None if audio.crop_seconds is None else round(audio.crop_seconds * SAMPLE_RATE * rate)
    crop = window if crop is None else min(crop, window)
    gain = tuple(augment.gain_db) if augment.gain_db is not None else None
    narrow = (float(augment.narrowband_prob), int(augment.narrowband_rate)) if augment.narrowband_prob > 0 else None
    channel = float(augment.channel_prob) if augment.channel_prob > 0 else None
    return ClipPipeline(crop, audio.pad_to_crop and audio.crop_seconds is not None, gain, narrow,  # type: ignore[arg-type]
                        channel)


def crop_prepared(prepared: PreparedAudio, length: int | None, pad: bool, rng: random.Random) -> PreparedAudio:
    """Random crop (uniform start) of the last axis to ``length``; zero-pad shorter inputs if ``pad``.

    Args:
        prepared: features ``(T,)`` or ``(C, T)``.
        length: crop length in positions, or ``None`` (unchanged).
        pad: pad inputs shorter than ``length`` with zeros to exactly ``length``.
        rng: source of the crop start (consumed only when the input is longer).
    """
    return _crop(prepared, length, pad, rng)[0]


def _crop(prepared: PreparedAudio, length: int | None, pad: bool, rng: random.Random) -> tuple[PreparedAudio, bool]:
    """:func:`crop_prepared`, also telling whether a random start was drawn."""
    if length is None:
        return prepared, False
    feats = prepared.features
    t = feats.shape[-1]
    if t > length:
        start = rng.randrange(t - length + 1)
        return PreparedAudio(feats[..., start:start + length].contiguous(), prepared.extras), True
    if t < length and pad:
        feats = torch.nn.functional.pad(feats, (0, length - t))
    return PreparedAudio(feats.contiguous(), prepared.extras), False


@dataclass
class ProcessedClip:
    """One processed clip: backbone input, the gain applied, the resulting level, whether it was
    band-limited, and whether any random choice (narrowband, gain, window, crop start) shaped it (if
    not, every pass gives the same input)."""

    prepared: PreparedAudio
    gain_db: float
    level_dbfs: float | None
    randomized: bool = True
    narrowband: bool = False
    channel: bool = False


def band_limit(wav: np.ndarray, rate: int) -> np.ndarray:
    """``(S,)`` 16 kHz -> ``rate`` -> 16 kHz (soxr): the clip as recorded at ``rate`` and loaded here."""
    import soxr

    low = soxr.resample(wav, SAMPLE_RATE, rate)
    return soxr.resample(low, rate, SAMPLE_RATE)[: len(wav)].astype(np.float32)


def process_clip(wav: np.ndarray, encoder: AudioEncoder, pipeline: ClipPipeline, rng: random.Random,
                 measure_level: bool = False) -> ProcessedClip:
    """Channel -> narrowband -> gain -> ``prepare`` -> crop one 16 kHz waveform (see module docstring).

    Args:
        wav: ``(S,)`` float32 waveform; a clip longer than the encoder's ``window_samples`` is first
            cut to a random window of that length (``prepare`` of a Whisper backbone takes at most 30 s).
        measure_level: also report the active level after the gain (for loudness relabelling).
    """
    gain = rng.uniform(*pipeline.gain_db) if pipeline.gain_db is not None else 0.0
    window = encoder.window_samples
    windowed = len(wav) > window
    if windowed:  # longer than one backbone pass (e.g. Whisper's 30 s): a random window first
        start = rng.randrange(len(wav) - window + 1)
        wav = wav[start:start + window]
    # drawn only when configured, so pipelines without it consume the generator as before
    narrow = pipeline.narrowband is not None and rng.random() < pipeline.narrowband[0]
    channel = pipeline.channel is not None and rng.random() < pipeline.channel
    if channel:  # a room and microphone come before any band limit (a phone line, an 8 kHz corpus)
        from .channel import random_channel

        wav = random_channel(wav, rng.getrandbits(63))
    if narrow:
        wav = band_limit(wav, pipeline.narrowband[1])  # type: ignore[index]
    if gain:
        wav = (wav * np.float32(10.0 ** (gain / 20.0))).astype(np.float32)
    level = active_level_dbfs(wav) if measure_level else None
    prepared, cropped = _crop(encoder.prepare(wav), pipeline.crop_positions, pipeline.pad_to_crop, rng)
    randomized = (pipeline.gain_db is not None or pipeline.narrowband is not None or pipeline.channel is not None
                  or windowed or cropped)
    return ProcessedClip(prepared, gain, level, randomized, narrow, channel)


def loudness_from_level(level_dbfs: float, thresholds: Sequence[float]) -> str:
    """``soft`` below ``thresholds[0]``, ``loud`` above ``thresholds[1]``, else ``normal``."""
    soft_below, loud_above = thresholds
    return "soft" if level_dbfs < soft_below else "loud" if level_dbfs > loud_above else "normal"


def relabel_loudness(row: Mapping[str, Any], level_dbfs: float, thresholds: Sequence[float]) -> dict[str, Any]:
    """A copy of ``row`` whose ``loudness`` label and soft/loud intrinsic tags follow ``level_dbfs``.

    Official volume tags that need another loudness (``hushed`` is soft, ``booming`` loud:
    :func:`paraspeechclap.synth.tags.level_defined_tags`) are dropped, tag and ``classification_volume``
    alike: the clip keeps its breathiness or room, but no longer the level its tag means.
    Rows without a ``loudness`` label are returned unchanged (copied): nothing states their
    loudness, so a gain cannot make a caption wrong.
    """
    from ..synth.tags import level_defined_tags

    out = dict(row)
    if out.get("loudness") is None:
        return out
    new = loudness_from_level(level_dbfs, thresholds)
    out["loudness"] = new
    stale = {t for t, needs in level_defined_tags().items() if needs != new}
    if out.get("classification_volume") in stale:
        out["classification_volume"] = None
    drop = stale | set(_LOUDNESS_TAGS)  # the soft/loud tag is re-added from the new label below
    tags = [t for t in out.get("intrinsic_tags") or [] if str(t).lower() not in drop]
    if new in _LOUDNESS_TAGS:
        tags.append(_LOUDNESS_TAGS[new])
    out["intrinsic_tags"] = tags
    return out


def drop_clarity(row: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``row`` without its ``clarity`` label and the tags naming a recording condition.

    For band-limited clips: their recording label no longer holds, and no other label depends on
    the band. An official ``classification_clarity`` of ``crisp`` goes too (the word names a full-band
    recording in the captions the model learns); slurred and stammering survive a band limit.
    """
    out = dict(row)
    recording = set(label_values("clarity"))  # crisp, muffled, reverberant, telephone
    official = out.get("classification_clarity") in recording  # an official "crisp" the band limit made false
    if out.get("clarity") is None and not official:
        return out
    if official:
        out["classification_clarity"] = None
    out["clarity"] = None
    out["intrinsic_tags"] = [t for t in out.get("intrinsic_tags") or [] if str(t).lower() not in recording]
    return out
