"""Spectrogram front-ends and level measurements of 16 kHz mono waveforms.

* :func:`log_mel_spectrogram` is Whisper's log-mel front-end (the same computation as
  ``transformers.WhisperFeatureExtractor``, in torch) on the clip's own length, without the padding to 30 s.
* :func:`active_level_dbfs` measures the speech level of the raw waveform. It must be measured before
  any normalisation: Whisper's log-mel keeps the level, but peak/RMS normalisation removes it, so a
  model that should hear "loud"/"soft" needs it as an explicit input.
* :data:`NORMALIZERS` maps a mode name to a waveform normaliser (``"none"``, ``"peak"``, ``"rms"``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

SAMPLE_RATE = 16_000
#: Whisper's STFT: 25 ms Hann window, 10 ms hop.
N_FFT = 400
HOP_LENGTH = 160
N_MELS = 80

#: level reported for a silent (all-zero) waveform, and the lower clamp of every level.
LEVEL_FLOOR_DBFS = -100.0
#: frames quieter than the loudest frame by more than this are pauses, not speech.
ACTIVE_RANGE_DB = 35.0
#: frame length of the level measurement: 20 ms, about one syllable nucleus.
LEVEL_FRAME = 320
#: targets of the normalisers: peak at -1 dBFS; active-speech RMS at -23 dBFS.
PEAK_TARGET = 10.0 ** (-1.0 / 20.0)
RMS_TARGET_DBFS = -23.0


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) * (27.0 / np.log(6.4))
    return np.where(hz >= 1000.0, log_part, 3.0 * hz / 200.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), 200.0 * mel / 3.0)


@lru_cache(maxsize=4)
def whisper_mel_filters(n_mels: int = N_MELS) -> torch.Tensor:
    """Whisper's mel filter bank: ``n_mels`` triangles evenly spaced on Slaney's mel scale over
    0-8 kHz, each scaled to unit area (Slaney norm), on the STFT's ``N_FFT // 2 + 1`` bins.

    The bank Whisper was trained with (``librosa.filters.mel``, as ``transformers``'
    ``WhisperFeatureExtractor`` builds it; pinned by a test), computed here in numpy so that the
    audio side imports neither.

    Returns:
        ``(n_mels, N_FFT // 2 + 1)`` float32 tensor (cached; do not modify in place).
    """
    import torch  # lazily, with the spectrogram

    fft_hz = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), n_mels + 2))  # (n_mels + 2,)
    width = np.diff(edges)
    slopes = edges[None, :] - fft_hz[:, None]  # (F, n_mels + 2)
    rising, falling = -slopes[:, :-2] / width[:-1], slopes[:, 2:] / width[1:]
    bank = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (edges[2:] - edges[:-2]))[None, :]  # (F, n_mels)
    return torch.from_numpy(np.ascontiguousarray(bank.T, dtype=np.float32))


def num_mel_frames(num_samples: int) -> int:
    """Number of log-mel frames :func:`log_mel_spectrogram` returns for ``num_samples`` samples.

    The centred STFT gives ``1 + S // HOP_LENGTH`` frames; Whisper drops the last one.
    """
    return int(num_samples) // HOP_LENGTH


def log_mel_spectrogram(wav: np.ndarray | torch.Tensor, n_mels: int = N_MELS) -> torch.Tensor:
    """Whisper log-mel spectrogram of one waveform, on its own length.

    Centred STFT (reflect padding), power spectrum, mel bank, ``log10`` clamped at ``1e-10``,
    floored at ``max - 8`` (the clip's own maximum), then ``(x + 4) / 4``; all in float32 as
    Whisper and ``WhisperFeatureExtractor`` do.

    Args:
        wav: ``(S,)`` 16 kHz mono waveform, ``S > N_FFT // 2`` (reflect padding needs it).

    Returns:
        ``(n_mels, S // HOP_LENGTH)`` float32 tensor.
    """
    import torch  # lazily: the level and frame helpers serve processes that never load a model

    x = torch.as_tensor(wav, dtype=torch.float32)
    window = torch.hann_window(N_FFT, dtype=torch.float32)
    stft = torch.stft(x, N_FFT, HOP_LENGTH, window=window, center=True, pad_mode="reflect", return_complex=True)
    power = (stft[..., :-1].abs() ** 2).contiguous()  # (F, T); contiguous keeps the matmul on the fast path
    mel = whisper_mel_filters(n_mels) @ power  # (n_mels, T)
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


def frame_powers(wav: np.ndarray, frame: int = LEVEL_FRAME) -> np.ndarray:
    """Mean square of non-overlapping frames (a trailing partial frame is dropped unless it is all there is).

    Args:
        wav: ``(S,)`` waveform.

    Returns:
        ``(N,)`` float64 mean squares, ``N = max(1, S // frame)``.
    """
    x = np.asarray(wav, dtype=np.float64).reshape(-1)
    n = len(x) // frame
    if n == 0:
        return np.array([np.mean(x**2) if len(x) else 0.0])
    return np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1)


def active_level_dbfs(wav: np.ndarray, active_range_db: float = ACTIVE_RANGE_DB, frame: int = LEVEL_FRAME) -> float:
    """Active-speech RMS level in dBFS (``20 log10(rms)``, so a full-scale sine reads -3.01 dBFS).

    A frame is active when its level is within ``active_range_db`` of the loudest frame. The
    threshold is relative, so the measurement follows gain exactly (``g * wav`` reads
    ``20 log10 g`` dB more) while pauses do not dilute it. This is a simple stand-in for ITU-T P.56.

    Args:
        wav: ``(S,)`` raw waveform, before any normalisation.

    Returns:
        the level in dB, clamped below at :data:`LEVEL_FLOOR_DBFS` (also the value for silence).
    """
    p = frame_powers(wav, frame)
    peak = float(p.max())
    if peak <= 0.0:
        return LEVEL_FLOOR_DBFS
    active = p[p >= peak * 10.0 ** (-active_range_db / 10.0)]
    return max(LEVEL_FLOOR_DBFS, 10.0 * float(np.log10(active.mean())))


def _no_normalization(wav: np.ndarray) -> np.ndarray:
    return wav


def _peak_normalize(wav: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(wav))) if len(wav) else 0.0
    if peak < 1e-8:  # silence: nothing to scale
        return wav
    return (wav * (PEAK_TARGET / peak)).astype(np.float32)


def _rms_normalize(wav: np.ndarray) -> np.ndarray:
    level = active_level_dbfs(wav)
    if level <= LEVEL_FLOOR_DBFS:
        return wav
    # No clipping on purpose: clipped "loud" clips would leak level through the waveform shape.
    return (wav * 10.0 ** ((RMS_TARGET_DBFS - level) / 20.0)).astype(np.float32)


#: waveform normalisers by name; each maps a float32 ``(S,)`` array to a float32 ``(S,)`` array.
NORMALIZERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": _no_normalization,
    "peak": _peak_normalize,
    "rms": _rms_normalize,
}
