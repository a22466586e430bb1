"""Pitch and voice quality by WORLD analysis/resynthesis (``pyworld``).

Every clip goes through the same analysis -> modification -> synthesis chain, also when nothing
is modified, so that "vocoded or not" never correlates with a label. The F0 search range is set
from the voice's measured natural F0 (half to twice it), which avoids octave errors of DIO on
TTS voices.

Voice-quality transforms act on the WORLD parameters ``f0`` (T,), spectral envelope ``sp`` (T, K)
and aperiodicity ``ap`` (T, K), and may add a post-synthesis amplitude modulation:

- ``whispered``: no F0 at all, fully aperiodic excitation (noise through the vocal-tract envelope).
- ``breathy``: more aperiodicity (aspiration noise), strongest above 1 kHz, plus a steeper
  spectral tilt of the voiced frames.
- ``raspy``: frame-to-frame F0 jitter and amplitude shimmer, extra aperiodicity, and a
  period-doubling amplitude modulation at F0/2 (subharmonics: the rough, "gravelly" quality).
- ``creaky``: vocal fry on the last part of every voiced stretch: F0 dropped to 35-75 Hz with
  strong irregularity (the phrase-final creak of natural speech).
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelError
from .engines import EXTRA_HINT

FRAME_MS = 10.0  # 10 ms frames: half the cost of WORLD's 5 ms default, still smooth for speech


def import_pyworld() -> Any:
    """Import ``pyworld``, tolerating setuptools >= 81.

    pyworld 0.3.5 reads its version through ``pkg_resources`` at import time, which setuptools 81
    removed. When ``pkg_resources`` is missing, a stand-in that answers ``get_distribution`` is
    placed in ``sys.modules`` for the duration of the import only.

    Raises:
        ModelError: pyworld is not installed (the message names the extra).
    """
    if "pyworld" in sys.modules:
        return sys.modules["pyworld"]
    if importlib.util.find_spec("pyworld") is None:
        raise ModelError(f"WORLD resynthesis needs the optional extra: {EXTRA_HINT} (missing: pyworld)")
    if importlib.util.find_spec("pkg_resources") is not None:
        return importlib.import_module("pyworld")
    import importlib.metadata as md

    shim = types.ModuleType("pkg_resources")
    shim.get_distribution = lambda name: types.SimpleNamespace(version=md.version(name))  # type: ignore[attr-defined]
    sys.modules["pkg_resources"] = shim
    try:
        return importlib.import_module("pyworld")
    finally:
        if sys.modules.get("pkg_resources") is shim:
            del sys.modules["pkg_resources"]


@dataclass
class WorldParams:
    """WORLD parameters of one utterance.

    Attributes:
        f0: (T,) F0 in Hz, 0 in unvoiced frames.
        sp: (T, K) smoothed power spectral envelope.
        ap: (T, K) band aperiodicity in [0, 1].
        sample_rate: sample rate of the analysed signal.
        am: optional (S,) amplitude envelope applied after synthesis (1 = none).
    """

    f0: np.ndarray
    sp: np.ndarray
    ap: np.ndarray
    sample_rate: int
    am: np.ndarray | None = None


def analyse(x: np.ndarray, sr: int, f0_hz: float) -> WorldParams:
    """WORLD analysis (DIO + StoneMask, CheapTrick, D4C) of ``x`` (S,) with an F0 range around ``f0_hz``."""
    pw = import_pyworld()
    x64 = np.ascontiguousarray(x, dtype=np.float64)
    f0, t = pw.dio(x64, sr, f0_floor=max(40.0, f0_hz / 2.0), f0_ceil=min(800.0, f0_hz * 2.0), frame_period=FRAME_MS)
    f0 = pw.stonemask(x64, f0, t, sr)
    sp = pw.cheaptrick(x64, f0, t, sr)
    # D4C is half of the analysis cost; aperiodicity varies slowly, so estimate it every other
    # frame and repeat (saves ~25% of the WORLD time per clip).
    ap = pw.d4c(x64, np.ascontiguousarray(f0[::2]), np.ascontiguousarray(t[::2]), sr)
    ap = np.repeat(ap, 2, axis=0)[: len(f0)]
    return WorldParams(f0, sp, ap, sr)


def synthesize(params: WorldParams) -> np.ndarray:
    """Resynthesise a waveform (S,) float32 from WORLD parameters (plus the optional AM envelope)."""
    pw = import_pyworld()
    y = pw.synthesize(
        np.ascontiguousarray(params.f0, dtype=np.float64),
        np.ascontiguousarray(params.sp, dtype=np.float64),
        np.ascontiguousarray(np.clip(params.ap, 0.0, 1.0), dtype=np.float64),
        params.sample_rate,
        FRAME_MS,
    )
    if params.am is not None:
        n = min(len(y), len(params.am))
        y[:n] *= params.am[:n]
    return y.astype(np.float32)


def shift_pitch(params: WorldParams, semitones: float) -> WorldParams:
    """Scale F0 by ``2 ** (semitones / 12)`` (the envelope, hence the formants, stays)."""
    params.f0 = params.f0 * 2.0 ** (semitones / 12.0)
    return params


def scale_f0_range(params: WorldParams, factor: float) -> WorldParams:
    """Intonation: scale every voiced frame's distance from the clip's median F0, in semitones, by ``factor``.

    ``factor < 1`` flattens the melody (monotonous; 0 leaves one steady pitch), ``factor > 1`` widens
    it (singsong). The median F0 stays, so the pitch level does not change; unvoiced frames stay
    unvoiced. A building block for the rhythm tags of issue 21; not yet used by the corpus plan.
    """
    if factor < 0:
        raise ValueError(f"factor must be >= 0, got {factor}")
    voiced = params.f0 > 0
    if voiced.sum() < 2:
        return params
    log_f0 = np.log2(params.f0[voiced])
    centre = np.median(log_f0)
    f0 = params.f0.copy()
    f0[voiced] = 2.0 ** (centre + factor * (log_f0 - centre))
    params.f0 = f0
    return params


def semitones_to(params: WorldParams, target_hz: float) -> float:
    """Semitones from the median F0 of the voiced frames of ``params`` to ``target_hz`` (0 if none is voiced).

    The clip's own analysis is what gets resynthesised, so shifting by this lands its median F0
    on the target whatever the voice's nominal F0: a voice whose phonation DIO tracks at another
    F0 than the voice table's (Piper's joe: ~90 Hz by autocorrelation, ~160 Hz by DIO) would
    otherwise miss the target by that ratio.
    """
    voiced = params.f0[params.f0 > 0]
    return float(12.0 * np.log2(target_hz / np.median(voiced))) if voiced.size else 0.0


def _freq_axis(params: WorldParams) -> np.ndarray:
    return np.linspace(0.0, params.sample_rate / 2.0, params.sp.shape[1])  # (K,)


def _voiced_runs(voiced: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` frame ranges of consecutive voiced frames."""
    edges = np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def _subharmonic_am(f0: np.ndarray, sr: int, n_samples: int, depth: float) -> np.ndarray:
    """(S,) amplitude modulation at F0/2 (period doubling), active in voiced frames only."""
    t_frames = np.arange(len(f0)) * FRAME_MS / 1000.0
    t = np.arange(n_samples) / sr
    f = np.interp(t, t_frames, f0)  # (S,)
    phase = 2.0 * np.pi * np.cumsum(f / 2.0) / sr
    gate = np.interp(t, t_frames, (f0 > 0).astype(float))
    return 1.0 - depth * gate * (0.5 + 0.5 * np.cos(phase))


def whispered(params: WorldParams, qp: Mapping[str, float], rng: np.random.Generator) -> WorldParams:
    """No F0, all-noise excitation."""
    params.f0 = np.zeros_like(params.f0)
    params.ap = np.ones_like(params.ap)
    return params


def breathy(params: WorldParams, qp: Mapping[str, float], rng: np.random.Generator) -> WorldParams:
    """Aspiration noise (aperiodicity raised toward 1, most above 1 kHz) and a steeper tilt."""
    amount = float(qp["breathiness"])  # fraction of the periodic part turned into noise, above ~2 kHz
    freq = _freq_axis(params)
    ramp = amount * (0.5 + 0.5 * np.clip(freq / 2000.0, 0.0, 1.0))  # (K,)
    voiced = params.f0 > 0
    params.ap[voiced] = 1.0 - (1.0 - params.ap[voiced]) * (1.0 - ramp)
    tilt = 10.0 ** (-float(qp["tilt_db_per_octave"]) * np.log2(np.maximum(freq, 500.0) / 500.0) / 10.0)  # power
    params.sp[voiced] = params.sp[voiced] * tilt
    return params


def raspy(params: WorldParams, qp: Mapping[str, float], rng: np.random.Generator) -> WorldParams:
    """Jitter, shimmer, extra aperiodicity and subharmonics."""
    voiced = params.f0 > 0
    n = len(params.f0)
    params.f0 = params.f0 * np.exp(rng.normal(0.0, float(qp["jitter"]), n)) * voiced
    shimmer = 10.0 ** (rng.normal(0.0, float(qp["shimmer_db"]), n) / 10.0)  # per-frame power factor
    params.sp = params.sp * np.where(voiced, shimmer, 1.0)[:, None]
    params.ap[voiced] = np.clip(params.ap[voiced] + float(qp["noise"]), 0.0, 1.0)
    n_samples = round(n * FRAME_MS / 1000.0 * params.sample_rate)
    params.am = _subharmonic_am(params.f0, params.sample_rate, n_samples, float(qp["subharmonic_depth"]))
    return params


def creaky(params: WorldParams, qp: Mapping[str, float], rng: np.random.Generator) -> WorldParams:
    """Vocal fry over the final ``creak_fraction`` of every voiced stretch."""
    frac = float(qp["creak_fraction"])
    f0 = params.f0.copy()
    creak = np.zeros(len(f0), bool)
    for start, end in _voiced_runs(f0 > 0):
        length = end - start
        if length >= 3:
            creak[end - max(2, round(length * frac)) : end] = True
    k = int(creak.sum())
    target = np.clip(f0[creak] * 0.45, 35.0, 75.0) * np.exp(rng.normal(0.0, float(qp["irregularity"]), k))
    f0[creak] = target
    params.f0 = f0
    params.ap[creak] = np.clip(params.ap[creak] + 0.1, 0.0, 1.0)
    shimmer = 10.0 ** (rng.normal(0.0, 3.0, k) / 10.0)
    params.sp[creak] = params.sp[creak] * shimmer[:, None]
    return params


def modal(params: WorldParams, qp: Mapping[str, float], rng: np.random.Generator) -> WorldParams:
    """Unchanged (still resynthesised, like every other quality)."""
    return params


QualityFn = Callable[[WorldParams, Mapping[str, float], np.random.Generator], WorldParams]
VOICE_QUALITIES: dict[str, QualityFn] = {
    "modal": modal,
    "whispered": whispered,
    "breathy": breathy,
    "raspy": raspy,
    "creaky": creaky,
}


def warp_formants(params: WorldParams, scale: float) -> WorldParams:
    """Scale every formant frequency by ``scale`` (a shorter or longer vocal tract; F0 stays).

    The spectral envelope is resampled along frequency, ``sp'(f) = sp(f / scale)``, per frame;
    above the top of the axis the last bin is held.
    """
    if scale == 1.0:
        return params
    freqs = _freq_axis(params)  # (K,)
    src = np.clip(freqs / scale, 0.0, freqs[-1])
    pos = src / freqs[-1] * (len(freqs) - 1)  # fractional source bin of every target bin
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(freqs) - 1)
    w = (pos - lo)[None, :]
    params.sp = params.sp[:, lo] * (1.0 - w) + params.sp[:, hi] * w  # (T, K)
    return params


def change_tempo(params: WorldParams, rate: float) -> WorldParams:
    """Speak ``rate`` times faster (``rate`` < 1: slower); pitch and formants stay (:func:`read_frames`)."""
    if rate == 1.0:
        return params
    return read_frames(params, np.arange(max(1, round(len(params.f0) / rate))) * rate)


def vary_tempo(params: WorldParams, depth: float, stretch_s: float, rng: np.random.Generator) -> WorldParams:
    """Uneven timing: stretches of about ``stretch_s`` spoken alternately faster and slower.

    Each stretch of the input is read at rate ``1 + depth * u`` or ``1 - depth * u`` (``u`` uniform in
    [0.6, 1], the sign alternating stretch by stretch, the first one drawn), then the whole time axis is
    scaled so the clip keeps its duration: its overall speaking rate (and its rate label) stands while the
    syllables crowd and drag. ``depth`` in [0, 1).
    """
    if not 0.0 <= depth < 1.0 or stretch_s <= 0:
        raise ValueError(f"vary_tempo: depth must be in [0, 1) and stretch_s > 0, got {depth}, {stretch_s}")
    n_in = len(params.f0)
    seg = max(1, round(stretch_s * 1000.0 / FRAME_MS))
    n_seg = -(-n_in // seg)
    sign = rng.choice([-1.0, 1.0]) * (-1.0) ** np.arange(n_seg)
    rate = np.repeat(1.0 + depth * sign * rng.uniform(0.6, 1.0, n_seg), seg)[:n_in]  # (T,) per input frame
    t_out = np.concatenate([[0.0], np.cumsum(1.0 / rate)])  # output time at each input frame's start
    t_out *= n_in / t_out[-1]  # the same duration as the input
    return read_frames(params, np.interp(np.arange(n_in), t_out, np.arange(n_in + 1.0)))


def read_frames(params: WorldParams, pos: np.ndarray) -> WorldParams:
    """Resample the frames at fractional input positions ``pos`` (T',): the time map of a tempo change.

    The envelope and aperiodicity are interpolated linearly between the two nearest frames, F0 likewise
    where both are voiced; voicing itself comes from the nearest frame (interpolating across a voicing
    edge would invent F0 values halfway to 0). An amplitude envelope is dropped (nothing here sets one
    before a tempo change).
    """
    n_in = len(params.f0)
    lo = np.minimum(np.floor(pos).astype(int), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    w = np.clip(pos - lo, 0.0, 1.0)
    nearest = np.where(w < 0.5, lo, hi)
    both = (params.f0[lo] > 0) & (params.f0[hi] > 0)
    f0 = np.where(both, params.f0[lo] * (1.0 - w) + params.f0[hi] * w, params.f0[nearest])
    wk = w[:, None]
    params.f0, params.am = f0, None
    params.sp = params.sp[lo] * (1.0 - wk) + params.sp[hi] * wk
    params.ap = params.ap[lo] * (1.0 - wk) + params.ap[hi] * wk
    return params


def restyle(
    x: np.ndarray, sr: int, f0_hz: float, semitones: float, quality: str, qp: Mapping[str, float], seed: int,
    formant_scale: float = 1.0, rate: float = 1.0, target_f0_hz: float | None = None,
) -> np.ndarray:
    """Analyse ``x`` (S,), shift its pitch, apply a voice quality and resynthesise.

    Args:
        x: (S,) waveform.
        sr: its sample rate.
        f0_hz: the voice's natural median F0 (sets the F0 search range).
        semitones: pitch shift.
        quality: a key of :data:`VOICE_QUALITIES`.
        qp: parameters of the quality transform.
        seed: seeds the transform's randomness (jitter, shimmer).
        formant_scale: factor on the formant frequencies (1 = the voice's own vocal tract).
        rate: tempo factor (:func:`change_tempo`; 1 = the clip's own tempo).
        target_f0_hz: when given, ``semitones`` counts from this F0 instead of the clip's own: the
            analysed median F0 is moved to ``target_f0_hz * 2 ** (semitones / 12)``.

    Returns:
        (S',) float32 waveform at ``sr`` (S' within one frame of S / rate).
    """
    params = analyse(x, sr, f0_hz)
    if target_f0_hz is not None:
        semitones += semitones_to(params, target_f0_hz)
    params = warp_formants(shift_pitch(params, semitones), formant_scale)
    params = change_tempo(params, rate)
    params = VOICE_QUALITIES[quality](params, qp, np.random.default_rng(seed))
    return synthesize(params)
