"""Channel augmentation: a clip as a random room, microphone and noise floor would have recorded it.

Users bring recordings from rooms and microphones the model never heard; much of what a model gets
wrong on a new corpus is that corpus's channel (leave-one-corpus-out, ``benchmarks/loco.py``). A
channel-augmented training variant passes through, in this order:

1. a room, with probability 1/2: a synthetic impulse response
   (:func:`paraspeechclap.synth.effects.room_impulse_response`, RT60 0.15-0.8 s, direct-to-reverberant
   ratio 0-12 dB), the tail cut at the clip's end so timing labels hold;
2. a microphone colouring, always: a high-pass at 40-200 Hz (order 1 or 2), one peaking band of -8..+8 dB
   at 250-4000 Hz (Q 0.7-2) and a high shelf of -8..+6 dB above 2-6 kHz (RBJ biquads);
3. a noise floor, with probability 1/2: white, pink or brown noise at an SNR of 8-35 dB to the active
   speech level.

The result keeps the input's RMS, so the level the model hears (and loudness relabelling after the gain)
is the speech's, not the channel's. A channel-augmented clip no longer sounds like its recording label, so
training drops that label (:func:`paraspeechclap.training.augment.drop_clarity`), as for band-limiting.
"""

from __future__ import annotations

import math

import numpy as np

from ..audio.features import active_level_dbfs
from ..encoders.base import SAMPLE_RATE

#: bumped when the channel model changes: part of the feature-cache key.
VERSION = 1


def _biquad(b: list[float], a: list[float], x: np.ndarray) -> np.ndarray:
    from scipy.signal import lfilter

    return lfilter(np.asarray(b) / a[0], np.asarray(a) / a[0], x)


def peaking(x: np.ndarray, f0: float, gain_db: float, q: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """RBJ peaking EQ: ``gain_db`` at ``f0`` Hz, bandwidth from ``q``."""
    amp, w = 10.0 ** (gain_db / 40.0), 2.0 * math.pi * f0 / sr
    alpha = math.sin(w) / (2.0 * q)
    b = [1 + alpha * amp, -2 * math.cos(w), 1 - alpha * amp]
    a = [1 + alpha / amp, -2 * math.cos(w), 1 - alpha / amp]
    return _biquad(b, a, x)


def high_shelf(x: np.ndarray, f0: float, gain_db: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """RBJ high shelf (slope 1): ``gain_db`` above about ``f0`` Hz."""
    amp, w = 10.0 ** (gain_db / 40.0), 2.0 * math.pi * f0 / sr
    alpha = math.sin(w) / 2.0 * math.sqrt(2.0)
    c, s2 = math.cos(w), 2.0 * math.sqrt(amp) * alpha
    b = [amp * ((amp + 1) + (amp - 1) * c + s2), -2 * amp * ((amp - 1) + (amp + 1) * c),
         amp * ((amp + 1) + (amp - 1) * c - s2)]
    a = [(amp + 1) - (amp - 1) * c + s2, 2 * ((amp - 1) - (amp + 1) * c), (amp + 1) - (amp - 1) * c - s2]
    return _biquad(b, a, x)


def coloured_noise(n: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` unit-RMS noise with a 1/f^k power spectrum: white (k=0), pink (1), brown (2)."""
    k = {"white": 0.0, "pink": 1.0, "brown": 2.0}[colour]
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    spec *= 1.0 / np.maximum(f, 20.0) ** (k / 2.0)
    y = np.fft.irfft(spec, n)
    return y / max(float(np.sqrt(np.mean(y**2))), 1e-12)


def room(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``x`` in a random synthetic room; same length (the tail past the end is cut)."""
    from scipy.signal import fftconvolve

    from ..synth.effects import room_impulse_response

    rir = room_impulse_response(SAMPLE_RATE, rng.uniform(0.15, 0.8), rng.uniform(0.0, 12.0), rng)
    return fftconvolve(x, rir)[: len(x)]


def microphone(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random microphone/preamp colouring: high-pass, one peaking band and a high shelf."""
    from scipy.signal import butter, sosfilt

    sos = butter(int(rng.integers(1, 3)), rng.uniform(40.0, 200.0), btype="highpass", fs=SAMPLE_RATE, output="sos")
    y = sosfilt(sos, x)
    y = peaking(y, math.exp(rng.uniform(math.log(250.0), math.log(4000.0))), rng.uniform(-8.0, 8.0),
                rng.uniform(0.7, 2.0))
    return high_shelf(y, rng.uniform(2000.0, 6000.0), rng.uniform(-8.0, 6.0))


def noise_floor(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``x`` plus white, pink or brown noise at a random SNR (8-35 dB) to its active speech level."""
    speech_db = active_level_dbfs(x.astype(np.float32))
    snr = rng.uniform(8.0, 35.0)
    noise = coloured_noise(len(x), str(rng.choice(["white", "pink", "brown"])), rng)
    return x + noise * 10.0 ** ((speech_db - snr) / 20.0)


def random_channel(wav: np.ndarray, seed: int) -> np.ndarray:
    """``(S,)`` 16 kHz float32 -> the same clip through a random room, microphone and noise floor
    (module docstring), at the input's RMS. Deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    x = wav.astype(np.float64)
    rms = float(np.sqrt(np.mean(x**2)))
    if rng.random() < 0.5:
        x = room(x, rng)
    x = microphone(x, rng)
    if rng.random() < 0.5:
        x = noise_floor(x, rng)
    out = x * (rms / max(float(np.sqrt(np.mean(x**2))), 1e-12))
    return np.clip(out, -1.0, 1.0).astype(np.float32)
