"""A quality gate for reward candidates: blind noise and clipping checks, and edge-silence trimming.

An RL policy or a best-of-N search that is rewarded by the style cosine learns the reward's blind
spots. ``benchmarks/reward_robustness.py`` measured them (``docs/rerank.md``, "Reward gaming"):

- on real speech with emotion prompts, white noise at 10 dB SNR lifted 21 % of degraded copies above
  their clean originals (by more than 0.02), and 1 s of leading and trailing silence lifted 11 %;
- clipping lifted about 9 %.

:class:`QualityGate` is the fix. It fails a clip whose blind SNR
(:func:`~paraspeechclap.audio.measure.snr_db`) is below 6 dB, or whose samples sit on a clipped peak for
more than 1 % of the clip, at full scale or at any level (:func:`plateau_share`). Both are measured on
the clip with its edges trimmed. It also trims every candidate's leading and trailing silence to 0.1 s
before embedding (:func:`trim_edges`).

Ranking puts clips that pass first and those that fail after them, each tier by reward, as the WER
threshold does. The 6 dB threshold was chosen on the dev split (the highest that fails under 5 % of
clean clips; 12 dB failed 11.6 % of clean real dev recordings) and confirmed once on test: clipping
drops from 9 % to 0.2 % and 0 dB noise from 10.5 % to 0.2 %, silence to 1.7 %, at a cost of 1.7 % of
clean real recordings. 10 dB noise is no longer caught (23.7 % with gate and trim); ``min_snr_db=12.0``
caught it (1.5 %) at 3.7 % of clean test recordings and 11.6 % of clean dev ones.

Noise at 20 dB is not caught (23 %): catching it would reject many clean recordings, so it needs
training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..audio.io import SAMPLE_RATE

#: 20 ms frames, as the active level of :mod:`paraspeechclap.audio.measure`
FRAME = 320
#: a frame is silent when it is more than this many dB below the loudest frame (the active-level range)
SILENCE_RANGE_DB = 35.0


def edge_silence_s(x: np.ndarray, range_db: float = SILENCE_RANGE_DB) -> tuple[float, float]:
    """Leading and trailing silence of a 16 kHz clip, in seconds.

    Silence is the 20 ms frames before the first frame and after the last frame that are within
    ``range_db`` of the loudest frame. A trailing partial frame counts as trailing silence. An
    all-silent clip is all leading and all trailing silence.
    """
    from ..audio.features import frame_powers

    x = np.asarray(x, np.float64)
    duration = len(x) / SAMPLE_RATE
    p = frame_powers(x, FRAME) if len(x) >= FRAME else np.array([np.mean(x ** 2) if len(x) else 0.0])
    if p.max() <= 0.0:
        return duration, duration
    active = np.flatnonzero(p >= p.max() * 10.0 ** (-range_db / 10.0))
    lead = active[0] * FRAME / SAMPLE_RATE
    trail = duration - (active[-1] + 1) * FRAME / SAMPLE_RATE
    return float(lead), float(max(trail, 0.0))


def trim_edges(x: np.ndarray, keep_s: float = 0.1, range_db: float = SILENCE_RANGE_DB) -> np.ndarray:
    """``(S,)`` -> ``(S',)``: ``x`` with its leading and trailing silence (:func:`edge_silence_s`) cut to
    ``keep_s`` each, so a natural onset and release remain. An all-silent clip is returned unchanged."""
    return _trim_at(x, *edge_silence_s(x, range_db), keep_s)


def _trim_at(x: np.ndarray, lead: float, trail: float, keep_s: float) -> np.ndarray:
    """:func:`trim_edges` with the edge silence already measured."""
    if lead >= len(x) / SAMPLE_RATE:
        return np.asarray(x, np.float32)
    start = round(max(lead - keep_s, 0.0) * SAMPLE_RATE)
    stop = len(x) - round(max(trail - keep_s, 0.0) * SAMPLE_RATE)
    return np.asarray(x[start:stop], np.float32)


def plateau_share(y: np.ndarray, tolerance: float = 1e-3) -> float:
    """Share of samples within ``tolerance`` (relative) of the clip's absolute peak, at any level.

    This is the scale-free counterpart of :func:`~paraspeechclap.audio.measure.clipping_share`, which
    looks only at peaks of at least 0.99 full scale. Audio that was clipped and then attenuated sits on
    its peak for runs of samples. Unclipped speech touches its peak in a few isolated samples. A steady
    tone is near its peak for a few per cent of samples (a sine: 2.8 % within 1e-3), so the gate is for
    speech, not for test tones.
    """
    a = np.abs(np.asarray(y, np.float64))
    if len(a) == 0 or a.max() <= 0.0:
        return 0.0
    return float(np.mean(a >= a.max() * (1.0 - tolerance)))


@dataclass
class GateVerdict:
    """What :meth:`QualityGate.check` measured and decided for one clip.

    Attributes:
        ok: the clip passes.
        reasons: the failed checks: ``"snr"``, ``"clipping"`` and ``"silence"``.
        measures: ``snr_db`` (None when it cannot be measured), ``clipping_share`` and ``plateau_share``
            of the trimmed clip; ``lead_s`` and ``trail_s`` of the clip as given.
    """

    ok: bool
    reasons: list[str] = field(default_factory=list)
    measures: dict[str, float | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "reasons": list(self.reasons),
                "measures": {k: None if v is None else round(float(v), 4) for k, v in self.measures.items()}}


@dataclass(frozen=True)
class QualityGate:
    """Blind checks of a 16 kHz candidate, and the trimming applied before it is embedded.

    Attributes:
        min_snr_db: fail below this blind SNR (None: no noise check). An SNR that cannot be measured
            (a clip under 200 ms) passes.
        max_clipping_share: fail when more than this share of samples sit on a clipped peak (None: off).
        max_edge_silence_s: fail on more leading or trailing silence than this (None, the default: off;
            a quarter of clean real recordings have over 0.5 s, and trimming is the fix).
        trim: embed candidates with their edge silence cut to ``keep_s`` (:func:`trim_edges`).
        keep_s: the silence kept at each end when trimming.
    """

    min_snr_db: float | None = 6.0
    max_clipping_share: float | None = 0.01
    max_edge_silence_s: float | None = None
    trim: bool = True
    keep_s: float = 0.1

    def measures(self, x: np.ndarray) -> dict[str, float | None]:
        """The blind measures of ``x``, taken on the trimmed clip.

        Trimming first matters: ``snr_db`` takes the noise floor from the quietest 10 % of frames, so a
        second of digital silence around a noisy clip would read as a clean floor (60 dB). Trimmed to
        0.1 s, the silence no longer does, for clips longer than about 2 s.
        """
        return self._measures_of(*self._trimmed(x))

    def _trimmed(self, x: np.ndarray) -> tuple[np.ndarray, float, float]:
        """The clip with its edge silence cut to ``keep_s`` (float32), and that silence as given."""
        x = np.asarray(x, np.float64)
        lead, trail = edge_silence_s(x)
        return _trim_at(x, lead, trail, self.keep_s), lead, trail

    @staticmethod
    def _measures_of(t: np.ndarray, lead: float, trail: float) -> dict[str, float | None]:
        from ..audio.measure import clipping_share, snr_db

        t64 = t.astype(np.float64)
        return {"snr_db": snr_db(t64), "clipping_share": clipping_share(t64), "plateau_share": plateau_share(t64),
                "lead_s": lead, "trail_s": trail}

    def reasons(self, m: dict[str, float | None]) -> list[str]:
        """The checks that the measures ``m`` fail."""
        out = []
        if self.min_snr_db is not None and m["snr_db"] is not None and m["snr_db"] < self.min_snr_db:
            out.append("snr")
        if self.max_clipping_share is not None and \
                max(m["clipping_share"] or 0.0, m["plateau_share"] or 0.0) > self.max_clipping_share:
            out.append("clipping")
        edge = max(m["lead_s"] or 0.0, m["trail_s"] or 0.0)
        if self.max_edge_silence_s is not None and edge > self.max_edge_silence_s:
            out.append("silence")
        return out

    def check(self, x: np.ndarray) -> GateVerdict:
        """The verdict on one 16 kHz clip."""
        return self.apply(x)[0]

    def apply(self, x: np.ndarray) -> tuple[GateVerdict, np.ndarray]:
        """:meth:`check` and :meth:`prepare` in one pass: the edge silence is found once and the
        trimmed clip is both measured and (with :attr:`trim`) embedded."""
        t, lead, trail = self._trimmed(x)
        m = self._measures_of(t, lead, trail)
        reasons = self.reasons(m)
        return GateVerdict(not reasons, reasons, m), (t if self.trim else x)

    def prepare(self, x: np.ndarray) -> np.ndarray:
        """The waveform to embed: trimmed when :attr:`trim` is set, else ``x`` itself."""
        return trim_edges(x, self.keep_s) if self.trim else x

    def as_dict(self) -> dict[str, Any]:
        return {"min_snr_db": self.min_snr_db, "max_clipping_share": self.max_clipping_share,
                "max_edge_silence_s": self.max_edge_silence_s, "trim": self.trim, "keep_s": self.keep_s}
