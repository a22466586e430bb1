"""Waveform-level rhythm transforms: pauses inserted between words, and the pause share that checks them.

Building blocks for the rhythm tags of issue 21 (``punctuated``, ``hesitant``: pauses where fluent
speech has none, :func:`insert_pauses`; ``flowing``: none, :func:`close_pauses`). Not yet used by the
corpus plan. Pauses go into the quietest points between words (local minima of the 20 ms frame
energy inside the spoken span), so no word is cut. Each pause holds a noise floor 60 dB below the
speech, not digital zeros, and the cut is faded over 10 ms on both sides so it makes no click.
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


def internal_pauses(x: np.ndarray, min_pause_s: float = MIN_PAUSE_S,
                    range_db: float = SILENCE_RANGE_DB) -> tuple[list[tuple[int, int]], int]:
    """The pauses inside the spoken span (first to last active 20 ms frame): silent runs of at least
    ``min_pause_s``, as ``[(start, end), ...]`` frame indices of ``x``, and the span's length in
    frames (0 for a clip without speech). Leading and trailing silence are not pauses."""
    db = frame_db(x)
    active = np.flatnonzero(db > -range_db)
    if len(active) < 2:
        return [], 0
    first = int(active[0])
    span = db[first: active[-1] + 1] <= -range_db
    min_frames = int(np.ceil(min_pause_s * SR / FRAME))
    return [(first + a, first + b) for a, b in _true_runs(span) if b - a >= min_frames], len(span)


def internal_pause_share(x: np.ndarray, min_pause_s: float = MIN_PAUSE_S,
                         range_db: float = SILENCE_RANGE_DB) -> float:
    """Share of the spoken span that lies in :func:`internal_pauses`; 0.0 for a clip without speech."""
    runs, span = internal_pauses(x, min_pause_s, range_db)
    return sum(b - a for a, b in runs) / span if span else 0.0


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


def close_pauses(x: np.ndarray, keep_s: float = 0.06, min_pause_s: float = MIN_PAUSE_S,
                 range_db: float = SILENCE_RANGE_DB, fade_s: float = 0.01) -> np.ndarray:
    """``x`` with every one of its :func:`internal_pauses` shortened to ``keep_s``: the middle of the
    run is cut, its two edges kept, so a word's decay and the next one's onset stay whole. Leading and trailing
    silence are left alone. The join is a ``fade_s`` crossfade, so it makes no click."""
    x = np.asarray(x, np.float32)
    runs, _ = internal_pauses(x, min_pause_s, range_db)
    # the kept edges are at least a fade long, so both sides of every join are inside the silence
    fade = max(1, int(fade_s * SR))
    half = max(int(keep_s * SR / 2), fade)
    # a pause already no longer than keep_s (plus a fade) stays as it is
    cuts = [(a * FRAME + half, b * FRAME - half) for a, b in runs if (b - a) * FRAME - 2 * half > fade]
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    pieces, start = [], 0
    for lo, hi in cuts:
        pieces += [x[start: lo - fade], x[lo - fade: lo] * ramp[::-1] + x[hi: hi + fade] * ramp]
        start = hi + fade
    return np.concatenate([*pieces, x[start:]]).astype(np.float32)
