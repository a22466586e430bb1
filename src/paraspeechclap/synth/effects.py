"""Channel (clarity) effects, silence trimming, level setting and level measurement (numpy/scipy).

Clarity effects, one function per value, registered in :data:`CLARITY_EFFECTS`:

- ``crisp``: nothing.
- ``muffled``: 4th-order Butterworth low-pass at 600-1000 Hz (speech through a wall or a cloth).
- ``reverberant``: convolution with a synthetic room impulse response (exponentially decaying
  noise with an RT60 of 0.7-1.3 s, sparse early reflections, direct-to-reverberant ratio -4..0 dB).
- ``telephone``: 300-3400 Hz band-pass, 8 kHz resampling and 8-bit mu-law companding (G.711).

Level: :func:`set_level` scales a clip to a target *active-speech* RMS (frames within 35 dB of
the loudest, in dBFS) and limits every clip to the same crest factor (peak at most
``crest_db`` above the active RMS) with a look-ahead limiter. The limiter acts on every clip,
whatever its loudness label, so the waveform shape (how compressed the peaks are) carries no
loudness information, and loud clips never clip (peak < 1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..audio.features import active_level_dbfs, frame_powers

FRAME_S = 0.02
#: Peak-to-active-RMS ceiling in dB applied to every clip (speech is ~15-20 dB unlimited).
CREST_DB = 11.0


def frame_levels_db(x: np.ndarray, sr: int, frame_s: float = FRAME_S) -> np.ndarray:
    """(F,) RMS level in dBFS of consecutive non-overlapping frames."""
    return 10.0 * np.log10(frame_powers(x, max(1, round(frame_s * sr))) + 1e-20)


def active_level_db(x: np.ndarray, sr: int) -> float:
    """Active-speech RMS level in dBFS (:func:`paraspeechclap.audio.features.active_level_dbfs`, the
    model's own level measurement) with 20 ms frames at any sample rate."""
    return active_level_dbfs(x, frame=max(1, round(FRAME_S * sr)))


def trim_silence(x: np.ndarray, sr: int, threshold_db: float = 40.0, pad_s: float = 0.12) -> np.ndarray:
    """Cut to the frames within ``threshold_db`` of the loudest, fade the edges, add ``pad_s`` of silence.

    Engines differ in leading/trailing silence (eSpeak stops on the last sample of the last
    phoneme, Piper and Kokoro leave some), so every clip gets the same margins: the duration then
    reflects the speaking rate only. The 10 ms raised-cosine fades avoid clicks at hard cuts.
    """
    n = round(0.01 * sr)
    levels = frame_levels_db(x, sr, 0.01)
    keep = np.flatnonzero(levels >= levels.max() - threshold_db)
    if keep.size == 0:
        return x
    y = np.array(x[keep[0] * n : (keep[-1] + 1) * n], dtype=np.float64)
    fade = min(n, len(y) // 2)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, fade))
    y[:fade] *= ramp
    y[len(y) - fade :] *= ramp[::-1]
    pad = np.zeros(round(pad_s * sr))
    return np.concatenate([pad, y, pad])


def limit_peaks(x: np.ndarray, ceiling: float, sr: int, lookahead_s: float = 0.005) -> np.ndarray:
    """Look-ahead peak limiter: ``|y| <= ceiling`` everywhere, with smooth gain changes.

    The gain needed per sample, ``min(1, ceiling / |x|)``, is spread by a running minimum over
    +-3 look-ahead widths and then smoothed by a moving average one look-ahead wide; since every
    averaged value is at most the gain needed at the centre, the ceiling holds exactly.
    """
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    w = max(1, round(lookahead_s * sr))
    need = np.minimum(1.0, ceiling / np.maximum(np.abs(x), 1e-12))
    gain = uniform_filter1d(minimum_filter1d(need, size=6 * w + 1, mode="nearest"), size=w, mode="nearest")
    gain = np.minimum(gain, need)  # guards the last float rounding at the ceiling
    return x * gain


def set_level(x: np.ndarray, sr: int, target_db: float, crest_db: float = CREST_DB) -> np.ndarray:
    """Scale to an active RMS of ``target_db`` dBFS with peaks at most ``crest_db`` above it.

    Three passes of gain + limiting; the limiter acts last, so the crest bound holds exactly and
    the level ends within a few tenths of a dB below the target. A final safety scale keeps the
    peak below 0.98 (only reachable with targets above ``-crest_db`` dBFS).
    """
    y = np.asarray(x, np.float64)
    for _ in range(3):
        y = y * 10.0 ** ((target_db - active_level_db(y, sr)) / 20.0)
        y = limit_peaks(y, 10.0 ** ((target_db + crest_db) / 20.0), sr)
    peak = float(np.abs(y).max())
    if peak > 0.98:
        y = y * (0.98 / peak)
    return y.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Clarity


def crisp(x: np.ndarray, sr: int, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Unchanged."""
    return x


def muffled(x: np.ndarray, sr: int, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Low-pass at ``p["cutoff_hz"]``."""
    from scipy.signal import butter, sosfilt

    sos = butter(4, float(p["cutoff_hz"]), btype="lowpass", fs=sr, output="sos")
    return sosfilt(sos, x).astype(np.float32)


#: the tilt's gain is held at its value here below and above: no boost of DC or rumble, no runaway at Nyquist
TILT_LIMITS_HZ = (100.0, 7600.0)


def tilt(x: np.ndarray, sr: int, db_per_octave: float, pivot_hz: float = 1000.0) -> np.ndarray:
    """``x`` with its spectrum tilted by ``db_per_octave`` about ``pivot_hz`` (unchanged there): a
    zero-phase gain of ``db_per_octave * log2(f / pivot_hz)`` dB, flat outside :data:`TILT_LIMITS_HZ`.
    Positive is brighter (a building block for ``shrill``), negative darker (``booming``, ``muffled``
    voices); the level is not restored (:func:`set_level` does that). Issue 21; not yet in the plan."""
    x = np.asarray(x, np.float32)
    f = np.fft.rfftfreq(len(x), 1.0 / sr)
    octaves = np.log2(np.clip(f, *TILT_LIMITS_HZ) / pivot_hz)
    gain = 10.0 ** (db_per_octave * octaves / 20.0)
    return np.fft.irfft(np.fft.rfft(x) * gain, n=len(x)).astype(np.float32)


#: Klatt's (1980) nasal pole-zero pair: the pole sits at 270 Hz; without nasal coupling the zero sits on
#: it and the pair cancels; nasalisation moves the zero up (about 450 Hz in his rules), leaving a nasal
#: resonance near 270 Hz and an anti-resonance on the first formant's lower flank
NASAL_POLE_HZ, NASAL_BANDWIDTH_HZ = 270.0, 100.0


def _klatt_resonator(freq_hz: float, bandwidth_hz: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """``(b, a)`` of Klatt's digital resonator at ``freq_hz``, normalised to unit gain at 0 Hz."""
    c = -np.exp(-2 * np.pi * bandwidth_hz / sr)
    b_ = 2 * np.exp(-np.pi * bandwidth_hz / sr) * np.cos(2 * np.pi * freq_hz / sr)
    return np.array([1.0 - b_ - c]), np.array([1.0, -b_, -c])


def nasalize(x: np.ndarray, sr: int, zero_hz: float, pole_hz: float = NASAL_POLE_HZ,
             bandwidth_hz: float = NASAL_BANDWIDTH_HZ) -> np.ndarray:
    """``x`` through Klatt's nasal pole-zero pair (a resonator at ``pole_hz``, an anti-resonator at
    ``zero_hz``, both ``bandwidth_hz`` wide and unit gain at 0 Hz): the nasal murmur and the
    anti-resonance that coupling the nasal tract adds. ``zero_hz == pole_hz`` is the identity; above
    both the pair leaves a gain of about ``(pole_hz / zero_hz) ** 2`` (-8.9 dB for a 450 Hz zero), as in
    Klatt's cascade synthesiser. The level is not restored (:func:`set_level` does that). A building
    block for ``nasal`` (issue 21); not yet in the plan."""
    from scipy.signal import lfilter

    bp, ap = _klatt_resonator(pole_hz, bandwidth_hz, sr)
    bz, az = _klatt_resonator(zero_hz, bandwidth_hz, sr)
    # the anti-resonator is the resonator's inverse: its numerator is the resonator's denominator
    y = lfilter(az / bz[0], [1.0], lfilter(bp, ap, np.asarray(x, np.float64)))
    return y.astype(np.float32)


#: time over which :func:`smear` averages each frequency's magnitude (articulation smeared over about a
#: phoneme's length, as in slurred speech), and its STFT frame
SMEAR_FRAME_S = 0.032


def smear(x: np.ndarray, sr: int, span_s: float, iterations: int = 16) -> np.ndarray:
    """``x`` with its short-time magnitude spectrum averaged over ``span_s`` at each frequency (32 ms
    frames, 75 % overlap; each frame keeps its own phase), resynthesised: transitions between sounds
    blur while the long-term spectrum and the duration stay (smeared articulation, a building block for
    ``slurred``, issue 21; not yet in the plan)."""
    from scipy.ndimage import uniform_filter1d
    from scipy.signal import istft, stft

    n = int(SMEAR_FRAME_S * sr)
    frame = {"fs": sr, "nperseg": n, "noverlap": 3 * n // 4}
    _, _, z = stft(np.asarray(x, np.float64), **frame)
    frames = max(1, round(span_s / (n / 4 / sr)))
    mag = np.sqrt(np.maximum(uniform_filter1d(np.abs(z) ** 2, size=frames, axis=1, mode="nearest"), 0.0))
    phase = np.exp(1j * np.angle(z))
    for _ in range(iterations):  # Griffin-Lim from the original phase: phases that fit the smeared magnitudes
        _, _, z = stft(istft(mag * phase, **frame)[1][: len(x)], **frame)
        phase = np.exp(1j * np.angle(z))
    return istft(mag * phase, **frame)[1][: len(x)].astype(np.float32)


def room_impulse_response(sr: int, rt60: float, drr_db: float, rng: np.random.Generator) -> np.ndarray:
    """(L,) synthetic RIR: unit direct path, sparse early reflections, exponentially decaying noise tail."""
    n = round(rt60 * sr)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)  # -60 dB at rt60
    tail[: int(0.005 * sr)] = 0.0
    for _ in range(6):  # early reflections within 5-50 ms
        k = int(rng.uniform(0.005, 0.05) * sr)
        tail[k] += rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.7)
    tail *= 10.0 ** (-drr_db / 20.0) / np.sqrt(np.sum(tail**2))  # energy ratio direct/reverberant
    tail[0] = 1.0
    return tail


def reverberant(x: np.ndarray, sr: int, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Convolve with a synthetic room; the output keeps 0.4 s of the tail."""
    from scipy.signal import fftconvolve

    rir = room_impulse_response(sr, float(p["rt60_s"]), float(p["drr_db"]), rng)
    y = fftconvolve(x, rir)
    return y[: len(x) + int(0.4 * sr)].astype(np.float32)


def _mu_law(x: np.ndarray, mu: float = 255.0) -> np.ndarray:
    """8-bit mu-law encode/decode round trip (G.711 quantisation)."""
    peak = float(np.abs(x).max()) or 1.0
    u = x / peak
    c = np.sign(u) * np.log1p(mu * np.abs(u)) / np.log1p(mu)
    c = np.round(c * 127.0) / 127.0
    return np.sign(c) * np.expm1(np.abs(c) * np.log1p(mu)) / mu * peak


def telephone(x: np.ndarray, sr: int, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Narrow-band telephone channel: 300-3400 Hz, 8 kHz, mu-law."""
    import soxr
    from scipy.signal import butter, sosfilt

    sos = butter(4, [300.0, 3400.0], btype="bandpass", fs=sr, output="sos")
    y = soxr.resample(sosfilt(sos, x).astype(np.float32), sr, 8000)
    y = _mu_law(y.astype(np.float64))
    return soxr.resample(y.astype(np.float32), 8000, sr).astype(np.float32)[: len(x)]


ClarityFn = Callable[[np.ndarray, int, Mapping[str, Any], np.random.Generator], np.ndarray]
CLARITY_EFFECTS: dict[str, ClarityFn] = {
    "crisp": crisp,
    "muffled": muffled,
    "reverberant": reverberant,
    "telephone": telephone,
}
