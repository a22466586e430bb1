"""A toy labelled corpus of synthetic "voices" (harmonic tones), for tests and benchmarks.

Each clip is a harmonic tone whose fundamental follows the label ``pitch_level`` within the
``gender`` range, whose level follows ``loudness`` (active level -35/-23/-13 dBFS), and whose
amplitude is modulated at a syllable-like rate that follows ``speaking_rate`` (3/5/8 Hz). A
``speaker`` is a fixed harmonic timbre. Rows follow the manifest schema (captions from the labels
by :func:`paraspeechclap.data.captions.describe`), so every part of the trainer can run on them in
milliseconds per clip, with no synthesis engine installed.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
_F0 = {"male": {"deep": 90.0, "medium": 120.0, "high-pitched": 160.0},
       "female": {"deep": 165.0, "medium": 210.0, "high-pitched": 270.0}}  # fmt: skip
_LEVEL_DBFS = {"soft": -35.0, "normal": -23.0, "loud": -13.0}
_RATE_HZ = {"slow": 3.0, "measured": 5.0, "fast": 8.0}


def tone_clip(f0: float, level_dbfs: float, rate_hz: float, timbre: np.ndarray, seconds: float,
              rng: np.random.Generator) -> np.ndarray:
    """One clip ``(S,)`` float32: harmonics of ``f0`` weighted by ``timbre``, AM at ``rate_hz``."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    vib = 1.0 + 0.01 * np.sin(2 * np.pi * 5.5 * t + rng.uniform(0, 6.28))
    phase = 2 * np.pi * np.cumsum(f0 * vib) / SAMPLE_RATE
    x = sum(w * np.sin(k * phase) for k, w in enumerate(timbre, start=1))
    env = np.clip(np.sin(np.pi * rate_hz * t + rng.uniform(0, 3.14)), 0.0, None) ** 0.7
    x = x * env + 0.002 * rng.standard_normal(t.shape)
    rms = np.sqrt(np.mean(x[env > 0.3] ** 2)) if np.any(env > 0.3) else np.sqrt(np.mean(x**2))
    return (x * (10 ** (level_dbfs / 20) / max(rms, 1e-9))).astype(np.float32)


def write_tone_corpus(out_dir: str | Path, n: int, seed: int = 0, speakers: int = 8,
                      speaker_offset: int = 0, seconds: tuple[float, float] = (1.0, 2.0)) -> Path:
    """Write ``n`` labelled clips and ``manifest.jsonl`` into ``out_dir``; returns the manifest path.

    Args:
        speakers: number of distinct timbres (``speaker`` ids ``toy<k>``), half male, half female.
        speaker_offset: first speaker number (a disjoint range gives unseen voices for a dev set).
        seconds: clip duration range.
    """
    import soundfile as sf

    from ..data.captions import describe

    out = Path(out_dir)
    (out / "toy").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    rows = []
    for i in range(n):
        spk = speaker_offset + i % speakers
        timbre = np.random.default_rng(1000 + spk).uniform(0.1, 1.0, 6)
        labels = {"gender": "male" if spk % 2 == 0 else "female", "pitch_level": pick.choice(list(_F0["male"])),
                  "loudness": pick.choice(list(_LEVEL_DBFS)), "speaking_rate": pick.choice(list(_RATE_HZ))}  # fmt: skip
        wav = tone_clip(_F0[labels["gender"]][labels["pitch_level"]], _LEVEL_DBFS[labels["loudness"]],
                        _RATE_HZ[labels["speaking_rate"]], timbre, rng.uniform(*seconds), rng)  # fmt: skip
        rel = f"{i:05d}.wav"
        sf.write(out / "toy" / rel, wav, SAMPLE_RATE, subtype="PCM_16")
        rows.append({"source": "toy", "relative_audio_path": rel, "text_description": describe(labels),
                     "speaker": f"toy{spk}", "duration": round(len(wav) / SAMPLE_RATE, 4), **labels})  # fmt: skip
    manifest = out / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return manifest
