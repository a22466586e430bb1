"""Reading and validating audio items.

An *item* is a path (anything soundfile decodes: wav, flac, ogg, mp3, ...) or an in-memory waveform
(1-D, or 2-D with a channel axis). Every item becomes a finite float32 mono waveform at 16 kHz, or
raises :class:`~paraspeechclap.errors.AudioError` with a one-line reason that names the item.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..errors import AudioError
from ..storage import is_uri, read_bytes

SAMPLE_RATE = 16_000
#: Peak amplitude below which a signal counts as digital silence (-120 dBFS): nothing to embed.
SILENCE_PEAK = 1e-6

AudioItem = Union[str, os.PathLike, np.ndarray]
_SF_PREFIX = re.compile(r"^Error opening (<[^>]*>|'.*?'|\".*?\"): ")


def describe_item(item: AudioItem, index: int | None = None) -> str:
    """Short human-readable name of an item for error messages and outputs."""
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    return f"array #{index}" if index is not None else "array"


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Decode a file at its own rate: ``((S,) float32 mono, sample_rate)``; channels are averaged.

    ``path`` may be a URI of an object store (``s3://bucket/clip.wav``; :mod:`paraspeechclap.storage`).

    No validation beyond decoding (:func:`load_audio` checks and resamples); ``load_audio(wav,
    sample_rate)`` of the result equals ``load_audio(path)``, so a caller that needs the native
    samples too (``annotate`` measures them) decodes once.

    Raises:
        AudioError: missing, a directory, unreadable or undecodable.
    """
    if is_uri(path):  # object storage (s3://, gs:// ...): read whole, decode from memory
        source: Any = io.BytesIO(read_bytes(str(path)))
    else:
        path = Path(path)
        if not path.exists():
            raise AudioError(f"{path}: file not found")
        if path.is_dir():
            raise AudioError(f"{path}: is a directory, not an audio file")
        source = str(path)
    return decode_audio(source, path)


def decode_audio(source: Any, name: Any) -> tuple[np.ndarray, int]:
    """:func:`read_audio` of a source soundfile opens (a path, or bytes already read into a file object),
    named ``name`` in the error.

    Raises:
        AudioError: undecodable.
    """
    import soundfile as sf

    try:
        data, sr = sf.read(source, dtype="float32", always_2d=True)  # (S, C)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise AudioError(f"{name}: cannot decode audio ({decode_reason(exc)})") from None
    return data.mean(axis=1), int(sr)


def decode_reason(exc: BaseException) -> str:
    """soundfile's error as a short reason: its last line, without the "Error opening <file>: " prefix
    (libsndfile repeats the path, or an in-memory buffer's repr; the caller's message names the clip)."""
    text = str(exc).strip()
    return _SF_PREFIX.sub("", text.splitlines()[-1]) if text else type(exc).__name__


def _as_mono(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.ndim == 1:
        return arr
    if arr.ndim == 2:
        # The channel axis is the short one: (C, S) from torch-style code, (S, C) from soundfile.
        return arr.mean(axis=0 if arr.shape[0] < arr.shape[1] else 1)
    raise AudioError(f"{name}: expected a 1-D waveform or a 2-D (channels, samples) array, got shape {arr.shape}")


def load_audio(
    item: AudioItem,
    sample_rate: int | None = None,
    *,
    min_samples: int = 1,
    name: str | None = None,
) -> np.ndarray:
    """Load one item as a validated float32 mono 16 kHz waveform.

    Args:
        item: a path, or a waveform array (1-D, or 2-D with a channel axis).
        sample_rate: sample rate of an array item (default 16 kHz); ignored for files, whose
            header gives the rate.
        min_samples: shortest acceptable length at 16 kHz (the encoder's receptive field).
        name: how to call the item in error messages (default: its path).

    Returns:
        ``(S,)`` float32 waveform at 16 kHz.

    Raises:
        AudioError: missing, unreadable, empty, non-finite, silent or too short.
    """
    if isinstance(item, (str, os.PathLike)):
        name = name or str(item)
        wav, sr = read_audio(item)
    else:
        name = name or "array"
        try:
            arr = np.asarray(item, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise AudioError(f"{name}: not a numeric waveform ({exc})") from None
        wav, sr = _as_mono(arr, name), int(sample_rate or SAMPLE_RATE)
    if sr <= 0:
        raise AudioError(f"{name}: invalid sample rate {sr}")
    if wav.size == 0:
        raise AudioError(f"{name}: audio has zero samples")
    if not np.isfinite(wav).all():
        raise AudioError(f"{name}: audio contains NaN or infinite samples")
    if float(np.abs(wav).max()) < SILENCE_PEAK:
        raise AudioError(f"{name}: audio is digital silence (peak below -120 dBFS)")
    if sr != SAMPLE_RATE:
        import soxr

        wav = soxr.resample(wav, sr, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)
    if wav.shape[0] < min_samples:
        raise AudioError(
            f"{name}: audio is too short ({wav.shape[0] / SAMPLE_RATE * 1000:.1f} ms); the encoder needs at "
            f"least {min_samples} samples ({min_samples / SAMPLE_RATE * 1000:.1f} ms at 16 kHz)"
        )
    return np.ascontiguousarray(wav, dtype=np.float32)
