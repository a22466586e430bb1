"""Model-free measurements of a speech clip (level, pitch, rate, noise, reverberation, clipping).

:func:`measure` returns a flat dict of JSON-serialisable numbers (or None) for one mono clip, meant
for annotating manifests. Every estimator is plain DSP (numpy/scipy/soxr) and cheap: under 10 ms
per second of audio. The estimators are blind, i.e. they see only the clip, so each rests on an
assumption that is stated where it is made (e.g. the clip has pauses, for the noise floor).

Analysis runs at 16 kHz (other rates are resampled with soxr first); the level is measured at the
input rate so content above 8 kHz still counts.
"""

from __future__ import annotations

import numpy as np

from .features import LEVEL_FLOOR_DBFS, active_level_dbfs, frame_powers
from .pitch import FRAME as PITCH_FRAME
from .pitch import HOP as PITCH_HOP
from .pitch import SAMPLE_RATE as PITCH_RATE
from .pitch import frame_f0, median_f0

SAMPLE_RATE = 16_000

#: envelope for syllable nuclei: 40 ms Hann window (a syllable nucleus is 50-200 ms), 10 ms hop.
RATE_WINDOW, RATE_HOP = 640, 160
#: de Jong & Wempe (2009) thresholds: a nucleus is an intensity peak at most SILENCE_DB below the
#: 99th-percentile intensity, standing out by at least MIN_DIP_DB from the dips around it, voiced.
SILENCE_DB, MIN_DIP_DB = 25.0, 2.0
#: no speaking rate for clips shorter than this (seconds): one syllable does not make a rate.
MIN_RATE_DURATION_S = 0.2
#: frames of the SNR measurement: 20 ms, as the active level.
SNR_FRAME = 320
#: percentile of frame powers taken as the noise floor (the clip must have >= this share of pauses).
NOISE_PERCENTILE = 10.0
#: range :func:`snr_db` reports; beyond it the estimate is meaningless (no noise floor / no speech).
SNR_RANGE_DB = (-10.0, 60.0)
#: envelope for free decays: 40 ms Hann window (smooths the random fluctuation of a reverberant
#: tail), 5 ms hop (a 15 dB decay of RT60 0.1 s lasts 25 ms).
DECAY_WINDOW, DECAY_HOP = 640, 80
#: a free decay is timed from DECAY_START_DB below its peak (past the loss of the direct sound at an
#: offset) over DECAY_SPAN_DB, or at least DECAY_MIN_SPAN_DB where the noise floor is closer.
DECAY_START_DB, DECAY_SPAN_DB, DECAY_MIN_SPAN_DB = 8.0, 15.0, 8.0
#: RT60 range :func:`rt60_s` reports, and so the C50 range of :func:`c50_from_rt60` (30.0 .. -5.9 dB).
RT60_RANGE_S = (0.1, 3.0)
#: a clip is clipped when its absolute peak reaches this, and samples this close to the peak are clipped.
CLIP_PEAK, CLIP_TOLERANCE = 0.99, 1e-3


def _envelope_db(x: np.ndarray, window: int, hop: int) -> np.ndarray:
    """Hann-windowed short-time power in dB of ``(S,)`` ``x``.

    Returns:
        ``(1 + S // hop,)`` float64, frame ``t`` centred on sample ``t * hop``; floored at -200 dB.
    """
    from scipy.signal import fftconvolve

    w = np.hanning(window)
    # a (frames, window) gather would need window / hop times the clip's memory; an FFT convolution
    # of the squared signal with the (symmetric) window gives every frame at once
    power = fftconvolve(np.pad(np.square(x), (window // 2, window // 2)), w / w.sum())
    return 10.0 * np.log10(np.maximum(power[window - 1 :: hop][: 1 + len(x) // hop], 1e-20))


def pitch_statistics(
    f0: np.ndarray, speaker_f0_hz: float | None = None
) -> tuple[float | None, float | None, float | None]:
    """Median F0 (Hz), its spread (semitones) and the median relative to the speaker (semitones).

    Args:
        f0: ``(T,)`` F0 track of :func:`paraspeechclap.audio.pitch.frame_f0` (0 where unvoiced).
        speaker_f0_hz: the speaker's typical F0 in Hz, or None.

    Returns:
        ``(median_hz, iqr_semitones, semitones_re_speaker)``; each None when it cannot be measured
        (fewer than 3 voiced frames; no or a non-positive speaker F0 for the last).
    """
    median = median_f0(f0)
    if median is None:
        return None, None, None
    semitones = 12.0 * np.log2(f0[f0 > 0])
    q75, q25 = np.percentile(semitones, [75.0, 25.0])
    # interquartile range: robust to the octave errors and creaky frames at the track's tails
    spread = float(q75 - q25)
    re_speaker = None
    if speaker_f0_hz is not None and np.isfinite(speaker_f0_hz) and speaker_f0_hz > 0:
        re_speaker = float(12.0 * np.log2(median / speaker_f0_hz))
    return median, spread, re_speaker


def _voiced_at(f0: np.ndarray, times_s: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: is the F0 track voiced at (or one frame either side of) each time in seconds."""
    # frame i of frame_f0 is centred on (i * HOP + FRAME / 2) samples at the pitch analysis rate
    idx = np.rint((times_s * PITCH_RATE - PITCH_FRAME / 2) / PITCH_HOP).astype(int)
    voiced = f0 > 0
    near = np.zeros(len(idx), dtype=bool)
    for shift in (-1, 0, 1):  # a nucleus peak may sit at the edge of a 40 ms pitch frame
        near |= voiced[np.clip(idx + shift, 0, len(f0) - 1)]
    return near


def syllable_nuclei(x: np.ndarray, f0: np.ndarray) -> np.ndarray:
    """Times in seconds of the syllable nuclei of a 16 kHz clip (de Jong & Wempe 2009, simplified).

    A nucleus is a local maximum of the intensity (dB, 40 ms window) that is (1) at most
    :data:`SILENCE_DB` below the clip's 99th-percentile intensity, (2) at least :data:`MIN_DIP_DB`
    above the deepest dip between it and the next higher peak on its either side (its prominence;
    de Jong & Wempe require that dip towards the following peak) and (3) voiced in the F0 track
    ``f0`` of the same clip.

    Returns:
        ``(N,)`` float64 nucleus times, increasing.
    """
    from scipy.signal import find_peaks

    env = _envelope_db(x, RATE_WINDOW, RATE_HOP)
    # the 99th percentile rather than the maximum, so a single click does not set the threshold
    threshold = np.percentile(env, 99.0) - SILENCE_DB
    # prominence, not height above a neighbour: ripples on a held vowel or a floor are not nuclei
    peaks, _ = find_peaks(env, height=threshold, prominence=MIN_DIP_DB)
    times = peaks.astype(np.float64) * RATE_HOP / SAMPLE_RATE
    return times[_voiced_at(f0, times)] if len(times) else times


def speaking_rate(nuclei_s: np.ndarray, duration_s: float) -> float:
    """Syllable nuclei per second over the speech span.

    The span is from the first to the last nucleus plus one median nucleus interval (half a
    syllable period at either end), so leading and trailing silence (which differs between corpora
    and engines) do not count, while pauses inside the clip do (a speech rate, not an articulation
    rate). With fewer than 2 nuclei there is no interval, and the rate is ``N / duration_s``.

    Args:
        nuclei_s: ``(N,)`` increasing nucleus times (:func:`syllable_nuclei`).
        duration_s: the clip's duration, > 0.
    """
    n = len(nuclei_s)
    if n < 2:
        return n / duration_s
    span = nuclei_s[-1] - nuclei_s[0] + np.median(np.diff(nuclei_s))
    return float(n / span)


def snr_db(x: np.ndarray) -> float | None:
    """Blind SNR in dB: active-speech power over noise power, clamped to :data:`SNR_RANGE_DB`.

    From the distribution of 20 ms frame powers ``p``: the noise power ``N`` is their
    :data:`NOISE_PERCENTILE`-th percentile, corrected for its bias below the mean for white noise
    (so the clip must pause for at least that share of its frames, as speech does; stationary noise
    is assumed). A frame is active speech when its excess ``p - N`` is beyond the frame-to-frame
    spread of noise power (3 standard deviations of a ``chi2(320) / 320`` variable) and within
    35 dB of the largest excess (as in the active level); the speech power is the mean excess of
    the active frames. Digital silence in the pauses (``N == 0``) reads the top of the range, a
    clip without any frame above the noise (stationary noise, a steady tone) the bottom.

    Args:
        x: ``(S,)`` 16 kHz waveform.

    Returns:
        the SNR in dB, or None when the clip is shorter than 10 frames (200 ms).
    """
    from statistics import NormalDist

    p = frame_powers(x, SNR_FRAME)
    if len(p) < 10:
        return None
    # A noise-only frame's power varies by sqrt(2 / frame) of its mean (chi-square, white noise),
    # so the percentile sits z (< 0) standard deviations below the mean noise power; undo that bias.
    spread = np.sqrt(2.0 / SNR_FRAME)
    z = NormalDist().inv_cdf(NOISE_PERCENTILE / 100.0)
    noise = float(np.percentile(p, NOISE_PERCENTILE)) / (1.0 + z * spread)
    if noise <= 0.0:
        return SNR_RANGE_DB[1]
    excess = p - noise
    # 3 sigma of noise-frame power keeps noise-only frames out of the speech frames
    floor = max(3.0 * spread * noise, excess.max() * 10.0 ** (-35.0 / 10.0))
    active = excess > floor
    if not active.any():
        return SNR_RANGE_DB[0]
    snr = 10.0 * np.log10(excess[active].mean() / noise)
    return float(np.clip(snr, *SNR_RANGE_DB))


def _crossing(env: np.ndarray, j: int, level: float) -> float:
    """Fractional frame where ``env`` falls through ``level`` between frames ``j - 1`` and ``j``
    (linear interpolation: the decay is timed finer than the 5 ms hop)."""
    drop = env[j - 1] - env[j]
    return j - 1 + (float(np.clip((env[j - 1] - level) / drop, 0.0, 1.0)) if drop > 0 else 1.0)


def free_decay_rt60s(x: np.ndarray) -> np.ndarray:
    """RT60 in seconds implied by each free decay of a 16 kHz clip's intensity (one per decay).

    A free decay starts at a local maximum of the intensity (dB, 40 ms window, 5 ms hop) within
    30 dB of the loudest frame and is timed from :data:`DECAY_START_DB` below that peak over a span
    of :data:`DECAY_SPAN_DB` (less where the noise floor, the 2nd percentile of the intensity, is
    closer: down to :data:`DECAY_MIN_SPAN_DB`, 5 dB above the floor). It is kept only when the
    intensity never rises more than 3 dB above its running minimum on the way (no new onset) and
    the span is reached before the clip ends.

    Returns:
        ``(K,)`` RT60 values ``60 dB / decay rate``; empty when no decay qualifies.
    """
    env = _envelope_db(x, DECAY_WINDOW, DECAY_HOP)
    floor = np.percentile(env, 2.0)
    is_peak = (env[1:-1] >= env[:-2]) & (env[1:-1] > env[2:]) & (env[1:-1] >= env.max() - 30.0)
    rt60s = []
    for p in np.flatnonzero(is_peak) + 1:
        span = min(DECAY_SPAN_DB, env[p] - DECAY_START_DB - floor - 5.0)
        if span < DECAY_MIN_SPAN_DB:
            continue  # too close to the noise floor to see a decay
        start = None
        low = env[p]
        for j in range(p + 1, len(env)):
            low = min(low, env[j])
            if env[j] > low + 3.0:
                break  # a new onset before the decay was complete
            if start is None and env[j] <= env[p] - DECAY_START_DB:
                start = _crossing(env, j, env[p] - DECAY_START_DB)
            if env[j] <= env[p] - DECAY_START_DB - span:
                frames = _crossing(env, j, env[p] - DECAY_START_DB - span) - start
                rt60s.append(60.0 / span * max(frames, 0.5) * DECAY_HOP / SAMPLE_RATE)
                break
    return np.asarray(rt60s, dtype=np.float64)


def rt60_s(x: np.ndarray) -> float | None:
    """Blind reverberation time in seconds of a 16 kHz clip, clamped to :data:`RT60_RANGE_S`.

    A room cannot make sound die away faster than its own decay, and speech offsets are mostly
    faster than a room's, so the free decays of a clip (:func:`free_decay_rt60s`) cluster at the
    room's; their median is the estimate (an order statistic as in blind maximum-likelihood RT60
    estimators). A lower percentile would reach for the room's bound, but picks the decays that
    random fluctuations of the reverberant tail (and the loss of the direct sound at an offset)
    make look fast: on synthetic rooms the median is less biased. Slow speech decays (a fading
    vowel) pull it up; so the estimate is a rough, room-ranking one.

    Returns:
        RT60 in seconds, or None when the clip has no measurable free decay (too short, no pause,
        or too noisy: a decay needs about 20 dB above the noise floor).
    """
    rt60s = free_decay_rt60s(x)
    if len(rt60s) == 0:
        return None
    return float(np.clip(np.median(rt60s), *RT60_RANGE_S))


def c50_from_rt60(rt60: float) -> float:
    """Clarity index C50 in dB of an ideal diffuse room of reverberation time ``rt60`` seconds.

    With an energy decay ``exp(-a t)``, ``a = 6 ln(10) / rt60`` (60 dB in ``rt60``), the energy in
    the first 50 ms over the energy after it is ``exp(0.05 a) - 1 = 10 ** (0.3 / rt60) - 1`` (0 dB
    at 1 s, 4.8 dB at 0.5 s, 30 dB at 0.1 s). This model has no separate direct sound, so a talker
    close to the microphone has a higher true C50 than this; it ranks rooms, it does not measure a
    particular talker-microphone distance.
    """
    return float(10.0 * np.log10(10.0 ** (0.3 / rt60) - 1.0))


def clipping_share(x: np.ndarray) -> float:
    """Share of samples at (within :data:`CLIP_TOLERANCE` of) the absolute peak, when the peak
    reaches :data:`CLIP_PEAK` full scale; 0.0 otherwise (and for an empty clip).

    A waveform clipped at full scale sits on its peak for runs of samples; an unclipped one touches
    it in a few isolated samples. Caveat: a full-scale low-frequency sine also reads a few per cent
    (e.g. 3 samples per period of 100 Hz within 1e-3 of its peak); speech at full scale is almost
    always clipped. Clipping below 0.99 full scale (clipped, then attenuated) is not detected.
    """
    if len(x) == 0:
        return 0.0
    peak = float(np.abs(x).max())
    if peak < CLIP_PEAK:
        return 0.0
    return float(np.mean(np.abs(x) >= peak - CLIP_TOLERANCE))


#: the keys of :func:`measure`, in order.
def _loud_frames(x: np.ndarray, n: int, range_db: float) -> np.ndarray:
    """``(n,)`` bool: the 40 ms frames (20 ms hop, as :func:`paraspeechclap.audio.pitch.frame_f0`'s) within
    ``range_db`` of the loudest one."""
    x = np.asarray(x, np.float64)
    energy = np.concatenate([[0.0], np.cumsum(x * x)])  # frame power from running sums: no per-frame loop
    starts = np.minimum(320 * np.arange(n), len(x))
    ends = np.minimum(starts + 640, len(x))
    p = np.where(ends > starts, (energy[ends] - energy[starts]) / np.maximum(ends - starts, 1), 0.0)
    return p >= p.max() * 10 ** (-range_db / 10) if p.max() > 0 else np.zeros(n, bool)


def hnr_db(x: np.ndarray, range_db: float = 15.0) -> float | None:
    """Harmonics-to-noise ratio in dB, by the autocorrelation method (Boersma 1993).

    Each 40 ms frame within ``range_db`` of the loudest gives ``r``, the normalised autocorrelation peak
    in the F0 lag range (the voicing strength of :func:`paraspeechclap.audio.pitch.frame_f0`). Its HNR
    is ``10 log10(r / (1 - r))`` and the clip's is the median over those frames. Frames are chosen by
    level, not by voicing, so breathy frames that fail a voicing threshold still count. None with
    fewer than 3 such frames.
    """
    from .pitch import frame_f0

    _, best = frame_f0(np.asarray(x, np.float32))
    loud = _loud_frames(x, len(best), range_db)
    if loud.sum() < 3:
        return None
    r = np.clip(best[loud], 1e-4, 1 - 1e-4)
    return float(np.median(10 * np.log10(r / (1 - r))))


def f0_perturbation_st(x: np.ndarray) -> float | None:
    """Frame-to-frame F0 instability: the median absolute change of F0 between consecutive voiced
    20 ms frames, in semitones. A frame-level stand-in for jitter (cycle-level jitter needs period
    marks); smooth intonation reads a few hundredths. None with fewer than 3 voiced pairs."""
    from .pitch import frame_f0

    f0 = frame_f0(np.asarray(x, np.float32))[0]
    pairs = (f0[1:] > 0) & (f0[:-1] > 0)
    if pairs.sum() < 3:
        return None
    return float(np.median(np.abs(12 * np.log2(f0[1:][pairs] / f0[:-1][pairs]))))


def _ltas(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Long-term average spectrum: ``(frequencies, power)`` by Welch's method, 64 ms Hann segments
    with half overlap (the spectrum both tilt and formant-shift estimates read)."""
    from scipy.signal import welch

    return welch(np.asarray(x, np.float64), fs=sr, nperseg=int(0.064 * sr))


#: band over which :func:`spectral_tilt_db_per_octave` fits its line: above most F0s, below the
#: 8 kHz Nyquist of 16 kHz audio
TILT_BAND_HZ = (250.0, 6000.0)


def spectral_tilt_db_per_octave(x: np.ndarray, sr: int = SAMPLE_RATE,
                                band: tuple[float, float] = TILT_BAND_HZ) -> float | None:
    """Spectral tilt: the slope, in dB per octave, of the least-squares line through the long-term
    average spectrum (:func:`_ltas`) against log2 frequency over ``band``.
    White noise reads 0, pink (1/f) noise -3, brown -6; the project's example speech clips read -3 to
    -9, brighter (tenser, shriller) voices less negative, muffled or dark ones more. None for a silent
    clip or one shorter than a segment."""
    if len(x) < int(0.064 * sr) or not np.any(x):
        return None
    f, pxx = _ltas(x, sr)
    keep = (f >= band[0]) & (f <= min(band[1], sr / 2)) & (pxx > 0)
    if keep.sum() < 8:
        return None
    slope = np.polyfit(np.log2(f[keep]), 10 * np.log10(pxx[keep]), 1)[0]
    return float(slope)


#: bands of :func:`nasal_a1_p0_db`: P0, the nasal resonance's region below the first formant, and A1,
#: the first formant's region in vowels
NASAL_P0_BAND_HZ, NASAL_A1_BAND_HZ = (200.0, 320.0), (400.0, 1000.0)


def nasal_a1_p0_db(x: np.ndarray, sr: int = SAMPLE_RATE) -> float | None:
    """A long-term A1-P0 (after Chen 1997, a standard acoustic correlate of vowel nasality): the level
    of the strongest long-term spectral peak (:func:`_ltas`) in the first-formant region
    (:data:`NASAL_A1_BAND_HZ`) minus that in the nasal-resonance region (:data:`NASAL_P0_BAND_HZ`), in
    dB. Nasal coupling raises P0 and weakens A1, so the value falls. Chen reads harmonics of single
    vowels; this reads the whole clip's spectrum, which also depends on F0 and on the words, so compare
    clips of one speaker and text (twins), not speakers. None for a silent clip or one shorter than a
    segment."""
    if len(x) < int(0.064 * sr) or not np.any(x):
        return None
    f, pxx = _ltas(x, sr)
    db = 10 * np.log10(pxx + 1e-20)

    def peak(band: tuple[float, float]) -> float:
        return float(db[(f >= band[0]) & (f <= band[1])].max())

    return peak(NASAL_A1_BAND_HZ) - peak(NASAL_P0_BAND_HZ)


#: envelopes of :func:`fast_modulation_share`: band powers every 10 ms in third-octave bands from 100 Hz,
#: and the modulation rates it compares (phoneme-rate changes against all syllable- and phoneme-rate ones)
MOD_HOP_S, MOD_LOW_HZ = 0.01, 100.0
MOD_FAST_HZ, MOD_ALL_HZ = (8.0, 20.0), (1.0, 20.0)


def fast_modulation_share(x: np.ndarray, sr: int = SAMPLE_RATE, range_db: float = 30.0) -> float | None:
    """Share of the envelope modulation power at phoneme rates: for each third-octave band within
    ``range_db`` of the strongest, the power spectrum of its 10 ms band-power envelope (the modulation
    spectrum of speech-intelligibility measures), and the fraction of it in :data:`MOD_FAST_HZ` among
    :data:`MOD_ALL_HZ`; the median over bands. Crisp articulation (bursts, onsets, fast formant
    transitions) reads higher than smeared, slurred speech. None for a clip under half a second."""
    x = np.asarray(x, np.float64)
    n, hop = 2 * int(MOD_HOP_S * sr), int(MOD_HOP_S * sr)
    if len(x) < sr // 2 or not np.any(x):
        return None
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[::hop] * np.hanning(n)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    f = np.fft.rfftfreq(n, 1 / sr)
    edges = MOD_LOW_HZ * 2.0 ** np.arange(0, np.log2(sr / 2 / MOD_LOW_HZ), 1 / 3)
    sel = [(f >= lo) & (f < hi) for lo, hi in zip(edges[:-1], edges[1:])]
    env = np.stack([power[:, m].sum(1) for m in sel if m.any()], axis=1)  # (frames, bands)
    strong = 10 * np.log10(env.sum(0) + 1e-20)
    env = env[:, strong >= strong.max() - range_db]
    spec = np.abs(np.fft.rfft(env - env.mean(0), axis=0)) ** 2
    fm = np.fft.rfftfreq(len(env), MOD_HOP_S)
    fast = spec[(fm >= MOD_FAST_HZ[0]) & (fm < MOD_FAST_HZ[1])].sum(0)
    every = spec[(fm >= MOD_ALL_HZ[0]) & (fm < MOD_ALL_HZ[1])].sum(0)
    return float(np.median(fast / np.maximum(every, 1e-30)))


#: log-frequency step of :func:`envelope_shift_ratio`'s spectra (1/96 octave: a 0.7 % ratio)
ENVELOPE_STEP_OCT = 1 / 96


def _log_envelope(x: np.ndarray, sr: int, band: tuple[float, float]) -> np.ndarray:
    """Long-term average spectrum in dB on a log2 frequency grid over ``band``, smoothed over a third
    of an octave so that the harmonics' ripple goes and the formant envelope stays."""
    from scipy.ndimage import uniform_filter1d

    f, pxx = _ltas(x, sr)
    grid = 2.0 ** np.arange(np.log2(band[0]), np.log2(band[1]), ENVELOPE_STEP_OCT)
    db = 10 * np.log10(np.interp(grid, f, pxx) + 1e-20)
    return uniform_filter1d(db, size=round(1 / 3 / ENVELOPE_STEP_OCT), mode="nearest")


def envelope_shift_ratio(reference: np.ndarray, x: np.ndarray, sr: int = SAMPLE_RATE,
                         band: tuple[float, float] = (300.0, 5000.0), max_octaves: float = 0.4) -> float:
    """How far ``x``'s formants sit above (> 1) or below (< 1) ``reference``'s, as a frequency ratio: the
    shift along log frequency that best correlates the two smoothed long-term spectra
    (:func:`_log_envelope`), searched within ``max_octaves``. Meant for twins of one utterance (a
    vocal-tract change, e.g. guttural speech's lowered formants). The smoothing needs harmonics closer
    than a third of an octave, i.e. an F0 below about 150 Hz near the lowest formant; higher voices
    read too close to 1."""
    a, b = _log_envelope(reference, sr, band), _log_envelope(x, sr, band)
    k = int(max_octaves / ENVELOPE_STEP_OCT)
    best, shift = -np.inf, 0
    for s in range(-k, k + 1):
        u, v = (a[: len(a) - s], b[s:]) if s >= 0 else (a[-s:], b[: len(b) + s])
        u, v = u - u.mean(), v - v.mean()
        corr = float(u @ v / np.sqrt((u @ u) * (v @ v) + 1e-20))
        if corr > best:
            best, shift = corr, s
    return float(2.0 ** (shift * ENVELOPE_STEP_OCT))


#: frames of :func:`tempo_spread`'s alignment (25 ms Hann, 10 ms hop) and the span its local rates are read over
ALIGN_WINDOW, ALIGN_HOP, LOCAL_RATE_S = 400, 160, 0.2


def _align_frames(x: np.ndarray) -> np.ndarray:
    """(T, ALIGN_WINDOW) frames of 16 kHz ``x`` every ALIGN_HOP samples (a view, no copy)."""
    return np.lib.stride_tricks.sliding_window_view(x, ALIGN_WINDOW)[::ALIGN_HOP]


def _log_spectrogram(frames: np.ndarray) -> np.ndarray:
    """(T, F) unit-norm mean-removed log power spectra of (T, W) ``frames``: what DTW compares."""
    spec = np.log(np.abs(np.fft.rfft(frames * np.hanning(ALIGN_WINDOW), axis=1)) ** 2 + 1e-8)
    spec -= spec.mean(axis=1, keepdims=True)
    return spec / (np.linalg.norm(spec, axis=1, keepdims=True) + 1e-12)


def dtw_path(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dynamic time warping of two (T, F) feature sequences by cosine distance, steps (1,1), (1,0), (0,1):
    the (K, 2) frame pairs of the cheapest monotonic path from (0, 0) to the last frames."""
    cost = 1.0 - a @ b.T
    acc = np.full((len(a) + 1, len(b) + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, len(a) + 1):  # one row at a time: the (0,1) step runs along the row
        diag = np.minimum(acc[i - 1, :-1], acc[i - 1, 1:])
        row = cost[i - 1] + diag
        for j in range(1, len(b)):
            row[j] = min(row[j], cost[i - 1, j] + row[j - 1])
        acc[i, 1:] = row
    path, i, j = [], len(a), len(b)
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        step = int(np.argmin([acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]]))
        i, j = (i - 1, j - 1) if step == 0 else (i - 1, j) if step == 1 else (i, j - 1)
    return np.asarray(path[::-1])


def tempo_spread(reference: np.ndarray, x: np.ndarray) -> float:
    """How unevenly ``x`` (16 kHz) is timed against ``reference``, a twin of the same utterance: the
    interquartile range, in octaves, of the local rate ``x`` runs at relative to the reference (the slope
    of their DTW alignment over :data:`LOCAL_RATE_S`, within the reference's speech frames). Twins timed
    alike read near 0; stretches read faster and slower spread it."""
    ref = _align_frames(np.asarray(reference, np.float64))
    path = dtw_path(_log_spectrogram(ref), _log_spectrogram(_align_frames(np.asarray(x, np.float64))))
    # the mean x frame matched to each reference frame (the path visits every reference frame)
    matched = np.bincount(path[:, 0], weights=path[:, 1]) / np.bincount(path[:, 0])
    k = round(LOCAL_RATE_S * SAMPLE_RATE / ALIGN_HOP)
    slope = (matched[k:] - matched[:-k]) / k
    power = np.mean(ref**2, axis=1)
    speech = 10 * np.log10(power + 1e-20) > 10 * np.log10(power.max() + 1e-20) - 30.0
    keep = speech[:-k] & speech[k:] & (slope > 0)
    q1, q3 = np.percentile(np.log2(slope[keep]), [25, 75])
    return float(q3 - q1)


KEYS = (
    "duration_s", "active_level_dbfs", "f0_median_hz", "f0_spread_semitones", "f0_semitones_re_speaker",
    "speaking_rate_syll_per_s", "snr_db", "c50_db", "clipping_share",
)


def measure(
    wav: np.ndarray, sample_rate: int = SAMPLE_RATE, speaker_f0_hz: float | None = None
) -> dict[str, float | None]:
    """Measure one mono clip.

    Args:
        wav: ``(S,)`` mono float waveform (full scale 1.0), any length; ``(S, 1)`` and ``(1, S)``
            are accepted, several channels raise ValueError.
        sample_rate: its rate in Hz; resampled to 16 kHz with soxr for everything but the level.
        speaker_f0_hz: the speaker's typical F0 in Hz, for ``f0_semitones_re_speaker``.

    Returns:
        A dict with the keys of :data:`KEYS`, floats or None:

        - ``duration_s``: ``S / sample_rate`` seconds (always given);
        - ``active_level_dbfs``: active-speech RMS level, dBFS (a full-scale sine is -3.01),
          :func:`paraspeechclap.audio.features.active_level_dbfs` with 20 ms frames;
        - ``f0_median_hz``: median F0 of the voiced frames, Hz;
        - ``f0_spread_semitones``: interquartile range of the voiced frames' F0, semitones;
        - ``f0_semitones_re_speaker``: ``12 log2(f0_median_hz / speaker_f0_hz)``, semitones
          (None without ``speaker_f0_hz``);
        - ``speaking_rate_syll_per_s``: syllable nuclei per second of speech span
          (:func:`syllable_nuclei`, :func:`speaking_rate`);
        - ``snr_db``: active-speech power over noise power, dB, in :data:`SNR_RANGE_DB`
          (:func:`snr_db`);
        - ``c50_db``: clarity index C50, dB, in [-5.9, 30.0], from the blind RT60 of :func:`rt60_s`
          under a diffuse exponential decay (:func:`c50_from_rt60`);
        - ``clipping_share``: share of samples at a full-scale peak, in [0, 1] (:func:`clipping_share`).

        A value that cannot be measured is None: all but the duration for an empty clip or one
        with a NaN or infinite sample (nothing in it can be trusted); all but the duration and
        ``clipping_share`` (0.0) for a silent (all-zero) clip; the F0 values with fewer than 3
        voiced frames; ``speaking_rate_syll_per_s`` and ``snr_db`` for clips under 200 ms;
        ``c50_db`` without a measurable free decay (:func:`rt60_s`).
    """
    x = np.atleast_1d(np.squeeze(np.asarray(wav, dtype=np.float64)))
    if x.ndim != 1:
        raise ValueError(f"measure() takes a mono waveform, got shape {np.shape(wav)}")
    if not sample_rate > 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    out: dict[str, float | None] = dict.fromkeys(KEYS)
    out["duration_s"] = len(x) / float(sample_rate)
    if len(x) == 0 or not np.all(np.isfinite(x)):
        return out
    out["clipping_share"] = clipping_share(x)
    level = active_level_dbfs(x, frame=max(1, round(0.02 * sample_rate)))
    if level <= LEVEL_FLOOR_DBFS:  # silence: no speech to measure
        return out
    out["active_level_dbfs"] = level
    if sample_rate != SAMPLE_RATE:
        import soxr

        x = soxr.resample(x, sample_rate, SAMPLE_RATE)
    f0, _ = frame_f0(x)
    median, spread, re_speaker = pitch_statistics(f0, speaker_f0_hz)
    out.update(f0_median_hz=median, f0_spread_semitones=spread, f0_semitones_re_speaker=re_speaker)
    if out["duration_s"] >= MIN_RATE_DURATION_S:
        out["speaking_rate_syll_per_s"] = speaking_rate(syllable_nuclei(x, f0), out["duration_s"])
    out["snr_db"] = snr_db(x)
    rt60 = rt60_s(x)
    out["c50_db"] = None if rt60 is None else c50_from_rt60(rt60)
    return out
