"""Waveform-level rhythm transforms: pauses inserted between words, and the pause share that checks them.

Building blocks for the rhythm tags of issue 21 (``punctuated``, ``hesitant``: pauses where fluent
speech has none; ``flowing``: none). Not yet used by the corpus plan. Pauses go into the quietest
points between words (local minima of the 20 ms frame energy inside the spoken span), so no word is
cut. Each pause holds a noise floor 60 dB below the speech, not digital zeros, and the cut is faded
over 10 ms on both sides so it makes no click.
"""

from __future__ import annotations

import numpy as np

from ..audio.features import frame_powers
from .world import _voiced_runs as _true_runs  # runs of True frames: voiced there, silent here

SR = 16_000
#: 20 ms frames, as the active level of :mod:`paraspeechclap.audio.measure`
FRAME = 320
#: a frame is silent when it is more than this many dB below the loudest frame
SILENCE_RANGE_DB = 35.0
#: the shortest silence that counts as a pause (shorter gaps are stop closures and word joins)
MIN_PAUSE_S = 0.15


def frame_db(x: np.ndarray) -> np.ndarray:
    """``(T,)`` power of each 20 ms frame in dB relative to the loudest (``-inf`` for silence)."""
    p = frame_powers(x, FRAME)
    with np.errstate(divide="ignore"):
        return 10 * np.log10(p / p.max()) if p.max() > 0 else np.full(len(p), -np.inf)


def internal_pause_share(x: np.ndarray, min_pause_s: float = MIN_PAUSE_S,
                         range_db: float = SILENCE_RANGE_DB) -> float:
    """Share of the spoken span (first to last active frame) that lies in pauses: silent runs of at
    least ``min_pause_s``. Leading and trailing silence do not count; 0.0 for a clip without speech."""
    db = frame_db(x)
    active = np.flatnonzero(db > -range_db)
    if len(active) < 2:
        return 0.0
    span = db[active[0]: active[-1] + 1] <= -range_db
    min_frames = int(np.ceil(min_pause_s * SR / FRAME))
    paused = sum(b - a for a, b in _true_runs(span) if b - a >= min_frames)
    return paused / len(span)


def pause_points(x: np.ndarray, n: int, min_gap_s: float = 0.4, edge_s: float = 0.3) -> list[int]:
    """Up to ``n`` sample positions for pauses: the quietest local minima of the frame energy inside
    the spoken span, at least ``edge_s`` from its ends and ``min_gap_s`` from each other; sorted."""
    db = frame_db(x)
    active = np.flatnonzero(np.isfinite(db) & (db > -SILENCE_RANGE_DB))
    if len(active) < 3 or n < 1:
        return []
    lo, hi = active[0] + int(edge_s * SR / FRAME), active[-1] - int(edge_s * SR / FRAME)
    inner = np.arange(max(lo, 1), min(hi, len(db) - 1))
    minima = [t for t in inner if db[t] <= db[t - 1] and db[t] <= db[t + 1]]
    chosen: list[int] = []
    gap = min_gap_s * SR / FRAME
    for t in sorted(minima, key=lambda t: (db[t], t)):
        if all(abs(t - c) >= gap for c in chosen):
            chosen.append(t)
        if len(chosen) == n:
            break
    return sorted(int(t * FRAME + FRAME // 2) for t in chosen)


def insert_pauses(x: np.ndarray, n: int, pause_s: float, rng: np.random.Generator,
                  floor_db: float = -60.0, fade_s: float = 0.01) -> np.ndarray:
    """``x`` with ``n`` pauses of ``pause_s`` at :func:`pause_points` (fewer when the clip has fewer
    places between words); each pause holds white noise ``floor_db`` below the clip's loudest frame."""
    x = np.asarray(x, np.float32)
    points = pause_points(x, n)
    if not points:
        return x.copy()
    loudest_rms = np.sqrt(frame_powers(x, FRAME).max())
    fade = max(1, int(fade_s * SR))
    ramp = np.linspace(1.0, 0.0, fade, dtype=np.float32)
    pieces, start = [], 0
    for p in points:
        seg = x[start:p].copy()
        if start > 0:
            seg[:fade] *= ramp[::-1][: len(seg[:fade])]
        seg[-fade:] *= ramp[-len(seg[-fade:]):]
        pieces.append(seg)
        pieces.append((loudest_rms * 10 ** (floor_db / 20) * rng.standard_normal(int(pause_s * SR))).astype(np.float32))
        start = p
    tail = x[start:].copy()
    tail[:fade] *= ramp[::-1][: len(tail[:fade])]
    pieces.append(tail)
    return np.concatenate(pieces)
