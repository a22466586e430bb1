"""Reward gaming: how often a degraded copy of a clip outranks its clean original under the style reward.

An RL policy (or a best-of-N sampler) optimised against a reward finds the reward's blind spots: a
degradation that raises the reward is a shortcut the policy can learn instead of the style. The
reward here is the one ``paraspeechclap rerank`` and the service's ``/v1/reward`` compute: the cosine
between the clip's audio embedding and its style prompt's text embedding.

Data: the held-out synthetic clips of ``benchmarks/quality.py --split test`` (the default model's
held-out test voices plus every Kokoro voice, an engine the model never heard, speaking the test
sentences no training corpus speaks). Each clip's prompt is :func:`paraspeechclap.data.captions.describe`
of the clip's own labels (gender, pitch, rate, loudness, voice quality, recording clarity), phrased
at random as in ``benchmarks/rerank.py``, so the clean clip matches its prompt. A second set, ``real``,
is the shared real test split (speakers no model trained on), prompted with each clip's gender and
emotion: the emotion reward of the published reward-hacking results.

Perturbations (pure functions of a 16 kHz float32 array and a seeded rng, below):

- ``noise 20/10/0 dB``: white Gaussian noise at that SNR relative to the clip's active-speech power
  (:func:`paraspeechclap.audio.features.active_level_dbfs`, 20 ms frames within 35 dB of the loudest);
- ``speech-shaped noise 10 dB``: noise with the clip's own long-term spectrum, same SNR definition;
- ``clip 10% (full scale)``: gain so that 10 % of all samples reach +-1, then hard clipping at +-1
  (an overdriven recording: louder, and peak at full scale);
- ``clip 10% (level kept)``: hard clipping at the 90th percentile of ``|x|`` (10 % of samples clip),
  then rescaled to the clean clip's active level (clipped, then attenuated: the level is unchanged);
- ``silence 1 s``: 1 s of digital zeros before and after the clip;
- ``silence 1 s (noise floor)``: the same 1 s pads filled with white noise 60 dB below the clip's
  active-speech level;
- ``noise 10 dB + silence 1 s``: both (digital silence is what a blind noise-floor estimate is fooled by);
- ``stretch 2x``: pitch-preserving time-stretch to half the duration (WSOLA, :func:`time_stretch`), only
  for clips whose prompt does not say fast (``speaking_rate`` slow or measured): a clip that speaks
  twice as fast as asked outranking its clean original is a blind spot of the rate.

Measure, per perturbation: the share of clips whose degraded copy outranks the clean one,
``reward(degraded) > reward(clean) + margin``, for margin 0 and :data:`MARGIN` (0.02 in cosine), each
with a 95 % bootstrap interval over clips; the mean reward change (with interval); a breakdown by the
prompt's attributes. The same shares under candidate fixes, each simulated here so it can move into the
library as it is:

- "with gate": :func:`quality_gate` fails a clip whose blind SNR is below 6 dB (chosen on the dev split by
  :func:`choose_snr_threshold`) or with more than 1 % of its samples on a clipped peak, both measured on
  the clip with its edges trimmed (:data:`GATE`); the
  ranking is tiered as ``rerank``'s WER threshold is: clips that pass first, then those that fail, each
  by reward (:func:`outranks`). Its false rejections of clean clips are reported, and for the noise
  perturbations a sweep of the SNR threshold;
- "with trim": both clips' leading and trailing silence cut to 0.1 s before embedding (:func:`trim_edges`);
- "gate+trim": both, the recommended fix.

Targets: at most :data:`TARGET` (20 %) outranking at the stated margin for noise (each SNR), clipping and
silence; the stretch is reported, not targeted.

    python benchmarks/reward_robustness.py                 # lite, 400 clips -> results/reward_robustness_fp32.json
    python benchmarks/reward_robustness.py --n 24 --out /tmp/rr.json   # smoke test
    python benchmarks/reward_robustness.py --split dev --json benchmarks/results/reward_robustness_dev_fp32.json
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paraspeechclap.reranking.quality import (FRAME, SILENCE_RANGE_DB, GateVerdict, QualityGate, edge_silence_s,
                                              plateau_share, trim_edges)  # noqa: F401 - the tests use them from here

sys.path.insert(0, str(Path(__file__).resolve().parent))

SR = 16_000
#: the stated margin in cosine: a degraded copy "outranks" its original when its reward is higher by more
MARGIN = 0.02
#: the target: at most this share of clips outranked (noise, clipping, silence)
TARGET = 0.20
#: the prompt fields (the synthetic corpus' labels; no emotion)
PROMPT_FIELDS = ("gender", "pitch_level", "speaking_rate", "loudness", "voice_quality", "clarity")
#: prompt attributes (and the engine) the shares are broken down by
BREAKDOWN = ("voice_quality", "clarity", "loudness", "speaking_rate", "pitch_level", "engine", "emotion", "gender",
             "source")


# -- perturbations: pure functions of a 16 kHz float32 clip (and a seeded rng) -------------------------------
def active_power(x: np.ndarray) -> float:
    """Active-speech mean square of ``x`` (:func:`~paraspeechclap.audio.features.active_level_dbfs`, 20 ms
    frames within 35 dB of the loudest frame)."""
    from paraspeechclap.audio.features import active_level_dbfs

    return 10.0 ** (active_level_dbfs(np.asarray(x, np.float64), frame=FRAME) / 10.0)


def _scaled(noise: np.ndarray, power: float) -> np.ndarray:
    """``noise`` scaled to exactly mean square ``power``."""
    return noise * math.sqrt(power / max(float(np.mean(noise.astype(np.float64) ** 2)), 1e-30))


def white_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian white noise as long as ``x`` (unit variance)."""
    return rng.standard_normal(len(x))


def speech_shaped_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Stationary noise with the long-term magnitude spectrum of ``x`` (random phases), as long as ``x``."""
    mag = np.abs(np.fft.rfft(np.asarray(x, np.float64)))
    phase = rng.uniform(0.0, 2.0 * np.pi, len(mag))
    phase[0] = 0.0
    return np.fft.irfft(mag * np.exp(1j * phase), n=len(x))


def add_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator, kind: str = "white") -> np.ndarray:
    """``x`` plus noise (``kind`` white or speech-shaped) whose mean square is the active-speech power of
    ``x`` minus ``snr_db`` dB. Nothing is clipped (the model peak-normalises its input)."""
    make = {"white": white_noise, "speech-shaped": speech_shaped_noise}[kind]
    noise = _scaled(make(x, rng), active_power(x) * 10.0 ** (-snr_db / 10.0))
    return (np.asarray(x, np.float64) + noise).astype(np.float32)


def clip_threshold(x: np.ndarray, share: float) -> float:
    """The ``1 - share`` quantile of ``|x|``: clipping there clips ``share`` of the samples."""
    return float(np.quantile(np.abs(np.asarray(x, np.float64)), 1.0 - share))


def clip_full_scale(x: np.ndarray, share: float = 0.10) -> np.ndarray:
    """Gain so that ``share`` of all samples reach +-1, then hard clipping at +-1 (an overdriven recording)."""
    t = clip_threshold(x, share)
    if t <= 0.0:
        return np.asarray(x, np.float32).copy()
    return np.clip(np.asarray(x, np.float64) / t, -1.0, 1.0).astype(np.float32)


def clip_level_kept(x: np.ndarray, share: float = 0.10) -> np.ndarray:
    """Hard clipping at the ``1 - share`` quantile of ``|x|``, then rescaled to the active level of ``x``
    (clipped, then attenuated: the distortion without the change of level)."""
    t = clip_threshold(x, share)
    if t <= 0.0:
        return np.asarray(x, np.float32).copy()
    y = np.clip(np.asarray(x, np.float64), -t, t)
    return (y * math.sqrt(active_power(x) / max(active_power(y), 1e-30))).astype(np.float32)


def pad_silence(x: np.ndarray, seconds: float = 1.0, floor_db: float | None = None,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """``seconds`` of silence before and after ``x``: digital zeros, or with ``floor_db`` white noise that
    many dB re the active-speech power of ``x`` (e.g. -60) in the pads only."""
    n = round(seconds * SR)
    pads = [np.zeros(n), np.zeros(n)]
    if floor_db is not None:
        if rng is None:
            raise ValueError("a noise floor needs an rng")
        power = active_power(x) * 10.0 ** (floor_db / 10.0)
        pads = [_scaled(rng.standard_normal(n), power) for _ in range(2)]
    return np.concatenate([pads[0], np.asarray(x, np.float64), pads[1]]).astype(np.float32)


def time_stretch(x: np.ndarray, rate: float = 2.0, frame: int = 512, tolerance: int = 320) -> np.ndarray:
    """Pitch-preserving time-stretch by WSOLA (Verhelst & Roelands 1993): ``rate`` 2 halves the duration.

    Periodic-Hann frames of ``frame`` samples (32 ms) are overlap-added every ``frame // 2`` samples of
    the output; output frame ``k`` (centred on output sample ``k * frame // 2``) is read around input
    sample ``k * rate * frame // 2``, shifted by up to ``tolerance`` samples (20 ms, longer than the period
    of a 60 Hz voice) to the offset whose waveform best continues the frame read before it
    (normalised cross-correlation), so the periods join in phase and the pitch is kept.

    Returns:
        float32, ``round(len(x) / rate)`` samples.
    """
    from scipy.signal import correlate

    x = np.asarray(x, np.float64)
    out_len = round(len(x) / rate)
    hop, half = frame // 2, frame // 2
    n_frames = (out_len + half) // hop + 2
    # padded so that every candidate read (nominal start - tolerance .. + frame + tolerance) is in range
    xp = np.pad(x, (half + tolerance, int(n_frames * hop * rate) + 2 * frame + 2 * tolerance))
    win = np.hanning(frame + 1)[:-1]  # periodic Hann: sums to 1 at half-frame hops
    y = np.zeros(n_frames * hop + frame)
    norm = np.zeros_like(y)
    prev = 0
    for k in range(n_frames):
        nominal = tolerance + round(k * hop * rate)  # input frame centred on input sample k * hop * rate
        delta = 0
        if k > 0:
            target = xp[prev + hop : prev + hop + frame]  # the natural continuation of the previous frame
            region = xp[nominal - tolerance : nominal + tolerance + frame]
            corr = correlate(region, target, mode="valid", method="fft")
            # normalised by each candidate's energy, so a louder stretch of the input does not win for its level
            energy = np.convolve(region ** 2, np.ones(frame), mode="valid")
            score = corr / np.sqrt(np.maximum(energy, 1e-20))
            delta = int(np.argmax(score)) - tolerance if np.any(target) and np.any(energy > 1e-20) else 0
        start = nominal + delta
        y[k * hop : k * hop + frame] += win * xp[start : start + frame]
        norm[k * hop : k * hop + frame] += win
        prev = start
    # y[j] is output sample j - half (frame 0 is centred on output sample 0)
    return (y[half : half + out_len] / np.maximum(norm[half : half + out_len], 1e-8)).astype(np.float32)


@dataclass(frozen=True)
class Perturbation:
    """A named degradation: ``apply(x, rng)`` of a 16 kHz float32 clip; ``applies(row)`` says which clips
    (by their manifest row) get it; ``targeted``: held to :data:`TARGET`."""

    name: str
    apply: Callable[[np.ndarray, np.random.Generator], np.ndarray]
    applies: Callable[[dict[str, Any]], bool] = lambda row: True
    targeted: bool = True


def _not_fast(row: dict[str, Any]) -> bool:
    return row.get("speaking_rate") != "fast"


PERTURBATIONS: tuple[Perturbation, ...] = (
    Perturbation("noise 20 dB", lambda x, rng: add_noise(x, 20.0, rng)),
    Perturbation("noise 10 dB", lambda x, rng: add_noise(x, 10.0, rng)),
    Perturbation("noise 0 dB", lambda x, rng: add_noise(x, 0.0, rng)),
    Perturbation("speech-shaped noise 10 dB", lambda x, rng: add_noise(x, 10.0, rng, "speech-shaped")),
    Perturbation("clip 10% (full scale)", lambda x, rng: clip_full_scale(x, 0.10)),
    Perturbation("clip 10% (level kept)", lambda x, rng: clip_level_kept(x, 0.10)),
    Perturbation("silence 1 s", lambda x, rng: pad_silence(x, 1.0)),
    Perturbation("silence 1 s (noise floor)", lambda x, rng: pad_silence(x, 1.0, floor_db=-60.0, rng=rng)),
    Perturbation("noise 10 dB + silence 1 s", lambda x, rng: pad_silence(add_noise(x, 10.0, rng), 1.0)),
    Perturbation("stretch 2x", lambda x, rng: time_stretch(x, 2.0), _not_fast, targeted=False),
)


def perturbation_rng(seed: int, clip: int, which: int) -> np.random.Generator:
    """The rng of perturbation number ``which`` of clip number ``clip``: independent of every other."""
    return np.random.default_rng([seed, clip, which])


# -- measurements of what a perturbation did ----------------------------------------------------------------
def measured_snr_db(clean: np.ndarray, degraded: np.ndarray) -> float:
    """Active-speech power of ``clean`` over the power of what was added (``degraded - clean``), dB."""
    added = np.asarray(degraded, np.float64) - np.asarray(clean, np.float64)
    return 10.0 * math.log10(active_power(clean) / max(float(np.mean(added ** 2)), 1e-30))


def clipped_share(y: np.ndarray) -> float:
    """Share of samples on the clip's absolute peak (within 1e-6 of it, relative): the flat tops of a
    hard-clipped waveform, whatever its level."""
    a = np.abs(np.asarray(y, np.float64))
    if len(a) == 0 or a.max() <= 0.0:
        return 0.0
    return float(np.mean(a >= a.max() * (1.0 - 1e-6)))


def f0_shift_semitones(clean: np.ndarray, changed: np.ndarray) -> float | None:
    """Semitones from the clean clip's F0 to the changed one's (the model's own statistic, the trimmed mean
    of :mod:`paraspeechclap.audio.pitch`); None when either has fewer than 3 voiced frames."""
    from paraspeechclap.audio.pitch import frame_f0, trimmed_mean_f0

    a, b = trimmed_mean_f0(frame_f0(clean)[0]), trimmed_mean_f0(frame_f0(changed)[0])
    return None if a is None or b is None else float(12.0 * math.log2(b / a))


def effect(p: Perturbation, clean: np.ndarray, degraded: np.ndarray) -> dict[str, float | None]:
    """What the perturbation measurably did to one clip (the quantities the unit tests pin)."""
    if p.name.startswith(("noise", "speech-shaped")):
        if "silence" in p.name:  # noise, then 1 s pads
            (l0, _), (l1, _) = edge_silence_s(clean), edge_silence_s(degraded)
            return {"snr_db": measured_snr_db(clean, degraded[SR:-SR]), "added_lead_s": l1 - l0}
        return {"snr_db": measured_snr_db(clean, degraded)}
    if p.name.startswith("clip"):
        return {"clipped_share": clipped_share(degraded),
                "level_change_db": 10.0 * math.log10(active_power(degraded) / active_power(clean))}
    if p.name.startswith("silence"):
        (l0, t0), (l1, t1) = edge_silence_s(clean), edge_silence_s(degraded)
        return {"added_lead_s": l1 - l0, "added_trail_s": t1 - t0}
    if p.name.startswith("stretch"):
        return {"duration_ratio": len(degraded) / len(clean), "f0_shift_semitones": f0_shift_semitones(clean, degraded)}
    return {}


# -- the quality gate and edge trimming: the library's (paraspeechclap.reranking.quality) -------------------
#: the gate as rerank --quality-gate and the service's quality_gate apply it
GATE = QualityGate()
#: the edge trimming applied before embedding ("with trim")
TRIM = {"range_db": SILENCE_RANGE_DB, "keep_s": GATE.keep_s}


def gate_measures(x: np.ndarray) -> dict[str, float | None]:
    return GATE.measures(x)


def gate_reasons(m: dict[str, float | None], **thresholds: float | None) -> list[str]:
    """The checks ``m`` fails under :data:`GATE` with ``thresholds`` changed (e.g. ``min_snr_db``)."""
    return dataclasses.replace(GATE, **thresholds).reasons(m)


def quality_gate(x: np.ndarray, **thresholds: float | None) -> GateVerdict:
    return dataclasses.replace(GATE, **thresholds).check(x)


# -- statistics ---------------------------------------------------------------------------------------------
def outranks(clean: np.ndarray, degraded: np.ndarray, margin: float, clean_ok: np.ndarray | None = None,
             degraded_ok: np.ndarray | None = None) -> np.ndarray:
    """``(N,)`` bool: the degraded copy ranks above the clean one by more than ``margin``.

    With gate verdicts (``*_ok``), the ranking is tiered as ``rerank``'s WER threshold is: clips that pass
    come first, those that fail after them, each tier by reward. So a passing degraded copy beats a failing
    clean clip whatever the rewards, a failing one never beats a passing one, and within a tier the reward
    decides.
    """
    clean, degraded = np.asarray(clean, np.float64), np.asarray(degraded, np.float64)
    by_reward = degraded > clean + margin
    if clean_ok is None or degraded_ok is None:
        return by_reward
    clean_ok, degraded_ok = np.asarray(clean_ok, bool), np.asarray(degraded_ok, bool)
    return (degraded_ok & ~clean_ok) | ((degraded_ok == clean_ok) & by_reward)


def bootstrap_ci(values: np.ndarray, rng: np.random.Generator, boots: int = 2000) -> list[float]:
    """95 % percentile bootstrap interval of the mean of ``values`` (resampling clips)."""
    v = np.asarray(values, np.float64)
    if len(v) == 0:
        return [math.nan, math.nan]
    means = v[rng.integers(0, len(v), (boots, len(v)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return [float(lo), float(hi)]


def share_entry(hits: np.ndarray, rng: np.random.Generator, boots: int = 2000) -> dict[str, Any]:
    """``{"share", "ci95"}`` of a bool array."""
    h = np.asarray(hits, np.float64)
    return {"share": float(h.mean()) if len(h) else math.nan, "ci95": bootstrap_ci(h, rng, boots)}


# -- data ---------------------------------------------------------------------------------------------------
@dataclass
class ClipSet:
    """Clean clips with their manifest rows and style prompts."""

    name: str
    rows: list[dict[str, Any]]
    wavs: list[np.ndarray]
    prompts: list[str]


def prompt_for(row: dict[str, Any], fields: Sequence[str], seed: int, i: int) -> str:
    """The style prompt of a clip: :func:`~paraspeechclap.data.captions.describe` of its own labels,
    phrased at random (a stream fixed by ``seed`` and the clip's position)."""
    from paraspeechclap.data.captions import describe

    return describe({k: row[k] for k in fields if row.get(k)}, random.Random(f"reward-robustness:{seed}:{i}"))


def load_set(name: str, manifest: Any, fields: Sequence[str], seed: int, n: int | None = None) -> ClipSet:
    """The first ``n`` clips (all with None) of ``manifest`` as 16 kHz float32, with their prompts."""
    from paraspeechclap.audio import load_audio

    count = len(manifest) if n is None else min(n, len(manifest))
    rows = [manifest[i] for i in range(count)]
    wavs = [load_audio(str(manifest.audio_path(i))) for i in range(count)]
    return ClipSet(name, rows, wavs, [prompt_for(r, fields, seed, i) for i, r in enumerate(rows)])


def synthetic_set(n: int, jobs: int, seed: int, split: str = "test") -> ClipSet:
    """The held-out synthetic clips of ``benchmarks/quality.py``'s ``split`` (generated once, cached)."""
    from quality import synthetic_manifest

    t0 = time.perf_counter()
    manifest = synthetic_manifest(split, n, jobs)
    print(f"synthetic: {len(manifest)} clips ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return load_set("synthetic", manifest, PROMPT_FIELDS, seed)


def real_set(n: int | None, seed: int, split: str = "test") -> ClipSet:
    """The shared real clips of ``split`` (speakers no model trained on), prompted with gender and emotion."""
    from paraspeechclap.data.splits import load_shared_manifest

    return load_set("real", load_shared_manifest(split), ("gender", "emotion"), seed, n)


# -- evaluation ---------------------------------------------------------------------------------------------
def _quantiles(values: Sequence[float | None]) -> dict[str, float] | None:
    v = np.array([x for x in values if x is not None], np.float64)
    if len(v) == 0:
        return None
    q = np.percentile(v, [5, 50, 95])
    return {"p5": float(q[0]), "median": float(q[1]), "p95": float(q[2]), "min": float(v.min()),
            "max": float(v.max()), "count": len(v)}


def _rewards(model: Any, wavs: Sequence[np.ndarray], text: np.ndarray, batch_size: int) -> np.ndarray:
    """Cosine of each clip with its own prompt's row of ``text``: what ``rerank`` and ``/v1/reward`` compute."""
    audio = model.embed_audio(list(wavs), sample_rate=SR, batch_size=batch_size)
    return np.sum(audio.astype(np.float64) * text.astype(np.float64), axis=1)


def _gate_summary(measures: Sequence[dict[str, float | None]]) -> dict[str, float]:
    """Share of clips failing the gate (:data:`GATE`) overall and per check, and the share an edge-silence
    check at 0.5 s would fail (it is off; for the record)."""
    reasons = [gate_reasons(m) for m in measures]
    n = max(len(reasons), 1)
    return {"any": sum(bool(r) for r in reasons) / n,
            **{c: sum(c in r for r in reasons) / n for c in ("snr", "clipping")},
            "edge_silence_over_0.5s": sum(max(m["lead_s"], m["trail_s"]) > 0.5 for m in measures) / n}


def _outrank_block(clean: np.ndarray, degraded: np.ndarray, rng: np.random.Generator, boots: int,
                   clean_ok: np.ndarray | None = None, degraded_ok: np.ndarray | None = None) -> dict:
    """``{"0": share entry, "0.02": share entry}``: outranking at margin 0 and :data:`MARGIN`."""
    return {f"{m:g}": share_entry(outranks(clean, degraded, m, clean_ok, degraded_ok), rng, boots)
            for m in (0.0, MARGIN)}


def _value(row: dict[str, Any], f: str) -> str | None:
    """A row's value of breakdown field ``f``; emotions in the vocabulary's words (``sadness`` -> saddened)."""
    v = row.get(f)
    if v is None:
        return None
    if f == "emotion":
        from paraspeechclap.data.vocabulary import map_label

        return map_label(v, "emotion")
    return str(v)


def _breakdown(rows: Sequence[dict[str, Any]], change: np.ndarray, hits: np.ndarray) -> dict[str, Any]:
    """Per prompt attribute value (at least 8 clips): clips, share outranking at the margin, mean change."""
    out: dict[str, Any] = {}
    for f in BREAKDOWN:
        vals = [_value(r, f) for r in rows]
        per = {}
        for v in sorted({v for v in vals if v is not None}):
            keep = np.array([x == v for x in vals])
            if keep.sum() >= 8:
                per[v] = {"clips": int(keep.sum()), "outrank": float(hits[keep].mean()),
                          "mean_change": float(change[keep].mean())}
        if len(per) > 1:
            out[f] = per
    return out


SNR_SWEEP = (5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 12.0, 15.0, 20.0, 25.0)
#: how the gate's SNR threshold is chosen, on the dev split only (then confirmed once on test): the
#: highest threshold of the sweep that fails fewer than this share of the clean clips of every set
MAX_CLEAN_REJECTED = 0.05


def choose_snr_threshold(sets: dict[str, Any]) -> dict[str, Any]:
    """The sweep's worst clean-rejection share per threshold (over the sets) and the threshold the rule
    (:data:`MAX_CLEAN_REJECTED`) picks: None when no threshold of the sweep passes it."""
    worst: dict[float, float] = {}
    for res in sets.values():
        for entry in res["perturbations"].values():
            for t, v in entry.get("with_gate_snr_sweep", {}).items():
                worst[float(t)] = max(worst.get(float(t), 0.0), v["clean_rejected"])
    passing = [t for t, r in worst.items() if r < MAX_CLEAN_REJECTED]
    return {"rule": f"highest swept threshold failing < {MAX_CLEAN_REJECTED:g} of clean clips in every set",
            "clean_rejected_worst": {f"{t:g}": r for t, r in sorted(worst.items())},
            "chosen_min_snr_db": max(passing) if passing else None}


def sweep_snr(clean_r: np.ndarray, deg_r: np.ndarray, clean_m: Sequence[dict], deg_m: Sequence[dict],
              thresholds: Sequence[float] = SNR_SWEEP) -> dict[str, dict[str, float]]:
    """Outranking share at the margin (tiered gate, no trim) and the share of clean clips the gate fails,
    with the gate's SNR threshold varied (the clipping check as in :data:`GATE`)."""
    out = {}
    for t in thresholds:
        ok_c = np.array([not gate_reasons(m, min_snr_db=t) for m in clean_m])
        ok_d = np.array([not gate_reasons(m, min_snr_db=t) for m in deg_m])
        out[f"{t:g}"] = {"outrank": float(outranks(clean_r, deg_r, MARGIN, ok_c, ok_d).mean()),
                         "clean_rejected": float(1.0 - ok_c.mean())}
    return out


def evaluate_set(model: Any, cs: ClipSet, seed: int, boots: int, batch_size: int,
                 perturbations: Sequence[Perturbation] = PERTURBATIONS,
                 dump: dict[str, Any] | None = None) -> dict[str, Any]:
    """Clean rewards and gate verdicts, then per perturbation the outranking shares: plain, with the gate
    (tiered ranking), with both clips' edges trimmed before embedding, and with both (the recommended fix)."""
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    text = model.embed_text(cs.prompts).astype(np.float64)
    audio_clean = model.embed_audio(cs.wavs, sample_rate=SR, batch_size=batch_size).astype(np.float64)
    sims = audio_clean @ text.T
    clean_r = np.diag(sims).copy()
    clean_trim_r = _rewards(model, [trim_edges(w) for w in cs.wavs], text, batch_size)
    clean_m = [gate_measures(w) for w in cs.wavs]
    clean_ok = np.array([not gate_reasons(m) for m in clean_m])
    # the reward's own scale: a clip against its prompt versus against the other clips' prompts
    other = (sims.sum(axis=1) - clean_r) / max(len(sims) - 1, 1)
    out: dict[str, Any] = {
        "clips": len(cs.wavs),
        "clean": {
            "reward_mean": float(clean_r.mean()), "reward_std": float(clean_r.std()),
            "own_minus_other_prompts": float((clean_r - other).mean()),
            "trim_mean_change": float((clean_trim_r - clean_r).mean()),
            "trim_mean_abs_change": float(np.abs(clean_trim_r - clean_r).mean()),
            "gate_rejected": _gate_summary(clean_m),
            "measures": {k: _quantiles([m[k] for m in clean_m]) for k in clean_m[0]},
        },
        "perturbations": {},
    }
    if dump is not None:
        dump[cs.name] = {"rows": cs.rows, "prompts": cs.prompts, "clean": {
            "reward": clean_r, "trim_reward": clean_trim_r, "measures": clean_m}}
    print(f"{cs.name}: clean embedded in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    for j, p in enumerate(perturbations):
        t1 = time.perf_counter()
        idx = [i for i, r in enumerate(cs.rows) if p.applies(r)]
        if not idx:
            continue
        deg = [p.apply(cs.wavs[i], perturbation_rng(seed, i, j)) for i in idx]
        deg_r = _rewards(model, deg, text[idx], batch_size)
        deg_trim_r = _rewards(model, [trim_edges(w) for w in deg], text[idx], batch_size)
        deg_m = [gate_measures(w) for w in deg]
        deg_ok = np.array([not gate_reasons(m) for m in deg_m])
        c_r, c_ok, c_tr, change = clean_r[idx], clean_ok[idx], clean_trim_r[idx], deg_r - clean_r[idx]
        effects = [effect(p, cs.wavs[i], d) for i, d in zip(idx, deg)]
        entry: dict[str, Any] = {
            "clips": len(idx), "targeted": p.targeted,
            "effect": {k: _quantiles([e[k] for e in effects]) for k in effects[0]},
            "mean_change": float(change.mean()), "mean_change_ci95": bootstrap_ci(change, rng, boots),
            "outrank": _outrank_block(c_r, deg_r, rng, boots),
            "with_gate": _outrank_block(c_r, deg_r, rng, boots, c_ok, deg_ok),
            "with_trim": _outrank_block(c_tr, deg_trim_r, rng, boots),
            "with_gate_and_trim": _outrank_block(c_tr, deg_trim_r, rng, boots, c_ok, deg_ok),
            "with_trim_mean_change": float((deg_trim_r - c_tr).mean()),
            "gate_rejected": _gate_summary(deg_m),
            "breakdown": _breakdown([cs.rows[i] for i in idx], change, outranks(c_r, deg_r, MARGIN)),
        }
        if p.name.startswith("stretch"):
            voiced = [abs(e["f0_shift_semitones"]) < 1.0 for i, e in zip(idx, effects)
                      if cs.rows[i].get("voice_quality") != "whispered" and e["f0_shift_semitones"] is not None]
            entry["effect"]["f0_within_1_semitone_not_whispered"] = float(np.mean(voiced)) if voiced else None
        if p.name.startswith(("noise", "speech-shaped")) and "silence" not in p.name:
            entry["with_gate_snr_sweep"] = sweep_snr(c_r, deg_r, [clean_m[i] for i in idx], deg_m)
        if p.targeted:
            entry["meets_target"] = entry["outrank"][f"{MARGIN:g}"]["share"] <= TARGET
            entry["meets_target_with_gate_and_trim"] = entry["with_gate_and_trim"][f"{MARGIN:g}"]["share"] <= TARGET
        out["perturbations"][p.name] = entry
        if dump is not None:
            dump[cs.name][p.name] = {"idx": idx, "reward": deg_r, "trim_reward": deg_trim_r, "measures": deg_m,
                                     "effects": effects}
        print(f"{cs.name}: {p.name}: {len(idx)} clips in {time.perf_counter() - t1:.0f} s", file=sys.stderr)
    return out


def print_results(sets: dict[str, Any]) -> None:
    """The results table (shares at the margin, with the 95 % interval of the plain one) and the clean lines."""
    from paraspeechclap.cli.common import print_table

    m = f"{MARGIN:g}"
    rows = []
    for name, res in sets.items():
        for pname, e in res["perturbations"].items():
            o = e["outrank"]
            ci = o[m]["ci95"]
            verdict = "-" if not e["targeted"] else ("met" if e["meets_target"] else "MISSED")
            verdict_f = "-" if not e["targeted"] else ("met" if e["meets_target_with_gate_and_trim"] else "MISSED")
            rows.append([name, pname, e["clips"], f"{e['mean_change']:+.4f}", f"{o['0']['share']:.3f}",
                         f"{o[m]['share']:.3f} ({ci[0]:.3f}-{ci[1]:.3f})", verdict,
                         f"{e['with_gate'][m]['share']:.3f}", f"{e['with_trim'][m]['share']:.3f}",
                         f"{e['with_gate_and_trim'][m]['share']:.3f}", verdict_f])
    print_table(["set", "perturbation", "clips", "mean change", "outrank >0", f"outrank >{m} (95% CI)",
                 f"target <={TARGET:g}", "with gate", "with trim", "gate+trim", "target"], rows)
    for name, res in sets.items():
        c = res["clean"]
        g = c["gate_rejected"]
        print(f"{name}: clean reward {c['reward_mean']:.3f} +- {c['reward_std']:.3f}; own prompt - other prompts "
              f"{c['own_minus_other_prompts']:+.3f}; trimming changes it by {c['trim_mean_change']:+.4f} "
              f"(mean |change| {c['trim_mean_abs_change']:.4f}); the gate fails {g['any']:.3f} of clean clips "
              f"(snr {g['snr']:.3f}, clipping {g['clipping']:.3f}); edge silence > 0.5 s: "
              f"{g['edge_silence_over_0.5s']:.3f}")


def main() -> int:
    from common import add_json_arg, json_path, model_fields, write_results

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="model name or directory (default: the embedded default, lite)")
    ap.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16", "int8"])
    ap.add_argument("--n", type=int, default=400, help="held-out synthetic clips (400: the test set of quality.py)")
    ap.add_argument("--real-n", type=int, default=None,
                    help="shared real test clips (default: all; 0 leaves the real set out)")
    ap.add_argument("--split", default="test", choices=["dev", "test"],
                    help="the clips: test (the reported numbers) or dev (where thresholds are chosen; pass --json "
                         "benchmarks/results/reward_robustness_dev_fp32.json)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--boots", type=int, default=2000, help="bootstrap resamples")
    ap.add_argument("--jobs", type=int, default=2, help="synthesis processes")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--dump", default=None, help="also pickle the per-clip rewards and measures here (analysis)")
    add_json_arg(ap, "reward_robustness_{precision}.json")
    args = ap.parse_args()

    from paraspeechclap.pretrained import load_model

    t_start = time.perf_counter()
    t0 = time.perf_counter()
    model = load_model(args.model, precision=args.precision)
    load_s = time.perf_counter() - t0
    clip_sets = [synthetic_set(args.n, args.jobs, args.seed, args.split)]
    if args.real_n != 0:
        clip_sets.append(real_set(args.real_n, args.seed, args.split))
    dump: dict[str, Any] | None = {} if args.dump else None  # per-clip rewards and measures, for analysis
    sets = {cs.name: evaluate_set(model, cs, args.seed, args.boots, args.batch_size, dump=dump) for cs in clip_sets}
    if args.dump:
        import pickle

        with open(args.dump, "wb") as f:
            pickle.dump(dump, f)
    targeted = {f"{s}/{p}": e["meets_target"] for s, r in sets.items() for p, e in r["perturbations"].items()
                if e["targeted"]}
    targeted_fixed = {f"{s}/{p}": e["meets_target_with_gate_and_trim"] for s, r in sets.items()
                      for p, e in r["perturbations"].items() if e["targeted"]}
    result = {
        **model_fields(model), "load_s": round(load_s, 2),
        "settings": {"split": args.split, "n": args.n, "real_n": args.real_n, "seed": args.seed, "boots": args.boots,
                     "margin": MARGIN, "target": TARGET, "gate": GATE.as_dict(), "trim": TRIM,
                     "prompt_fields": list(PROMPT_FIELDS),
                     "synthetic": f"quality.py {args.split} split: held-out voices (test: + every Kokoro voice), "
                                  f"{args.split} sentences",
                     "real": f"shared real {args.split} split, prompts from gender + emotion"},
        "sets": sets,
        "targets_met": targeted, "all_targets_met": all(targeted.values()),
        "targets_met_with_gate_and_trim": targeted_fixed,
        "all_targets_met_with_gate_and_trim": all(targeted_fixed.values()),
        "snr_threshold_choice": choose_snr_threshold(sets),
        "total_s": round(time.perf_counter() - t_start, 1),
    }
    print(f"model {model.model_id} ({model.checksum[:12]}, {model.precision}); margin {MARGIN:g}, target <= {TARGET:g}")
    print_results(sets)
    write_results(json_path(args, precision=model.precision), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
