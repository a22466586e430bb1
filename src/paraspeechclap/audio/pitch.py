"""A small, dependency-free pitch (F0) measurement for the speech tower's explicit pitch input.

"Deep" and "high-pitched" are judged relative to what is typical (for a man, for a woman), so a
model needs the absolute F0 together with cues of the speaker. Whisper's pooled hidden states carry
F0 only weakly and non-linearly; an explicit median log-F0 makes "lower than usual for this kind of
voice" a nearly linear function of the inputs.

Method: normalised autocorrelation of 40 ms frames (20 ms hop) of the waveform resampled to 8 kHz
(F0 and its first harmonics stay below 4 kHz; a quarter of the cost); a frame
is voiced when its best normalised correlation in the 60-500 Hz lag range exceeds a threshold and
it is not a pause. To avoid octave-low errors the shortest lag whose correlation is within a few per
cent of the best one is taken, refined by parabolic interpolation.
"""

from __future__ import annotations

import numpy as np

INPUT_RATE = 16_000
SAMPLE_RATE = 8_000  # analysis rate
FRAME = 320  # 40 ms: at least two periods at 60 Hz
HOP = 160  # 20 ms
F0_MIN, F0_MAX = 60.0, 500.0
VOICING_THRESHOLD = 0.5
#: log2(F0) reference of the pitch input: 150 Hz, between typical male and female voices.
F0_REFERENCE_HZ = 150.0


def _frames(wav: np.ndarray) -> np.ndarray:
    if len(wav) < FRAME:
        wav = np.pad(wav, (0, FRAME - len(wav)))
    n = 1 + (len(wav) - FRAME) // HOP
    idx = np.arange(FRAME)[None, :] + HOP * np.arange(n)[:, None]
    return wav[idx]


def frame_f0(wav: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame F0 in Hz (0 where unvoiced) and the voicing strength.

    Args:
        wav: ``(S,)`` 16 kHz waveform.

    Returns:
        ``(T,)`` F0 and ``(T,)`` best normalised autocorrelation in the F0 lag range.
    """
    import soxr

    x = _frames(soxr.resample(np.asarray(wav, dtype=np.float32), INPUT_RATE, SAMPLE_RATE).astype(np.float64))
    x = x - x.mean(axis=1, keepdims=True)
    energy = (x ** 2).sum(axis=1)
    spec = np.fft.rfft(x * np.hanning(FRAME), n=2 * FRAME, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :FRAME]
    # divide by the autocorrelation of the window itself, so long lags are not penalised
    win = np.fft.irfft(np.abs(np.fft.rfft(np.hanning(FRAME), n=2 * FRAME)) ** 2)[:FRAME]
    ac = ac / np.maximum(win, 1e-12) / np.maximum(ac[:, :1] / win[0], 1e-12)
    lo, hi = int(SAMPLE_RATE / F0_MAX), int(SAMPLE_RATE / F0_MIN)
    band = ac[:, lo:hi + 1]
    best = band.max(axis=1)
    # shortest lag within 5 % of the best peak (local maximum), against octave-low errors
    ok = (band >= 0.95 * best[:, None]) & (band >= np.roll(band, 1, axis=1)) & (band >= np.roll(band, -1, axis=1))
    lag = np.where(ok.any(axis=1), ok.argmax(axis=1), band.argmax(axis=1)) + lo
    rows = np.arange(len(lag))
    l, c, r = ac[rows, np.maximum(lag - 1, 0)], ac[rows, lag], ac[rows, np.minimum(lag + 1, FRAME - 1)]
    denom = l - 2 * c + r
    shift = np.where(np.abs(denom) > 1e-12, 0.5 * (l - r) / np.where(denom == 0, 1, denom), 0.0)
    f0 = SAMPLE_RATE / (lag + np.clip(shift, -0.5, 0.5))
    loud = energy >= energy.max() * 10 ** (-35 / 10) if energy.max() > 0 else np.zeros_like(energy, bool)
    voiced = (best >= VOICING_THRESHOLD) & loud
    return np.where(voiced, f0, 0.0), best


def median_f0(f0: np.ndarray) -> float | None:
    """Median of the voiced frames of a :func:`frame_f0` track in Hz; None when fewer than 3 are voiced."""
    voiced = f0[f0 > 0]
    return float(np.median(voiced)) if len(voiced) >= 3 else None


def trimmed_mean_f0(f0: np.ndarray, half_width_octaves: float = 0.5) -> float | None:
    """Geometric mean of the voiced frames within ``half_width_octaves`` of their median, in Hz;
    None when fewer than 3 are voiced.

    Creaky and rough stretches (and reverberant tails) give frames an octave or so below the
    modal F0; when they are many, the plain median drifts toward them. Averaging the frames
    near the median in log-F0 keeps the register a listener hears. Measured against the
    synthesis targets (benchmarks/pitch_estimators.py): clips more than 2.5 semitones off fall from 8.7 % to
    5.7 % of synthetic train clips and from 7.8 % to 2.6 % of dev clips.
    """
    voiced = f0[f0 > 0]
    if len(voiced) < 3:
        return None
    log_f0 = np.log2(voiced)
    centre = np.median(log_f0)
    near = log_f0[np.abs(log_f0 - centre) <= half_width_octaves]
    # an even count split far apart can leave no frame near the median (between the two halves)
    return float(2.0 ** (near.mean() if near.size else centre))


#: How :func:`pitch_features` summarises a clip's F0 track (``pitch_statistic`` of the Whisper encoder).
PITCH_STATISTICS = {"median": median_f0, "trimmed_mean": trimmed_mean_f0}


def pitch_features(wav: np.ndarray, statistic: str = "median") -> np.ndarray:
    """``[log2(F0 / 150 Hz), voiced fraction of active frames]`` (float32), F0 summarised over the
    voiced frames by ``statistic`` (a key of :data:`PITCH_STATISTICS`).

    The log-F0 is 0 when fewer than 3 frames are voiced (whispered or very short speech).
    """
    f0, _ = frame_f0(wav)
    frac = float((f0 > 0).sum()) / max(1, len(f0))
    hz = PITCH_STATISTICS[statistic](f0)
    return np.array([np.log2(hz / F0_REFERENCE_HZ) if hz is not None else 0.0, frac], dtype=np.float32)
