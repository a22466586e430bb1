"""``synth.prosody``: pauses inserted between words, checked by the pause share and by the words kept whole."""

from __future__ import annotations

import numpy as np
import pytest

from paraspeechclap.synth.prosody import (MIN_PAUSE_S, close_pauses, frame_db, insert_pauses, internal_pause_share,
                                          pause_points)

SR = 16000


def _utterance(words: int = 6, word_s: float = 0.32, gap_s: float = 0.04, seed: int = 0) -> np.ndarray:
    """Harmonic 'words' with short joins between them (fluent speech: no pause), 0.2 s of silence at each end."""
    rng = np.random.default_rng(seed)
    parts = [np.zeros(int(0.2 * SR), np.float32)]
    for _ in range(words):
        t = np.arange(int(word_s * SR)) / SR
        f0 = 120 + 30 * rng.random()
        burst = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 12)) * np.hanning(len(t)) ** 0.3
        parts += [(0.2 * burst).astype(np.float32), np.zeros(int(gap_s * SR), np.float32)]
    parts.append(np.zeros(int(0.2 * SR), np.float32))
    return np.concatenate(parts)


def _words(x: np.ndarray) -> int:
    """Runs of active frames longer than 0.2 s: whole words (a cut word would split into two short runs)."""
    active = frame_db(x) > -35
    edges = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    return int((runs * 320 / SR > 0.2).sum())


def test_fluent_speech_has_no_pause_and_edges_do_not_count():
    x = _utterance()
    assert internal_pause_share(x) == 0.0  # 40 ms joins are below the 150 ms pause threshold
    assert _words(x) == 6


@pytest.mark.parametrize("n, pause_s", [(2, 0.3), (3, 0.5)])
def test_pauses_land_between_words_with_the_stated_share(n, pause_s):
    x = _utterance()
    y = insert_pauses(x, n, pause_s, np.random.default_rng(0))
    assert len(y) == len(x) + n * int(pause_s * SR)
    assert _words(y) == 6  # no word was cut
    share = internal_pause_share(y)
    spoken = 6 * 0.32 + 5 * 0.04 + n * pause_s
    # each pause lands in a 40 ms join and merges with it; stated tolerance: the measured share is within
    # 0.02 of (inserted pause + join) time over the spoken span
    assert abs(share - n * (pause_s + 0.04) / spoken) < 0.02, share
    assert share > 0.2  # "punctuated"/"hesitant" clips clear 0.2 here, fluent ones read 0


def test_pause_points_respect_edges_and_spacing():
    x = _utterance(words=8)
    pts = pause_points(x, 10, min_gap_s=0.4, edge_s=0.3)
    assert pts == sorted(pts) and np.all(np.diff(pts) >= 0.4 * SR - 320)
    assert pts[0] >= int((0.2 + 0.3) * SR) - 320 and pts[-1] <= len(x) - int((0.2 + 0.3) * SR) + 320
    assert pause_points(np.zeros(SR, np.float32), 3) == []
    assert MIN_PAUSE_S == 0.15


def test_close_pauses_makes_hesitant_speech_flowing_and_keeps_every_word():
    x = _utterance()
    hesitant = insert_pauses(x, 3, 0.5, np.random.default_rng(1))
    assert internal_pause_share(hesitant) > 0.2
    flowing = close_pauses(hesitant, keep_s=0.06)
    assert internal_pause_share(flowing) == 0.0  # "flowing": no silence of 150 ms or more is left inside
    assert _words(flowing) == 6  # the cuts fell inside the pauses: no word lost or split
    # each of the 3 pauses (0.5 s + its 40 ms join) shrinks to 60 ms, give or take a 20 ms frame per edge
    removed = (len(hesitant) - len(flowing)) / SR
    assert abs(removed - 3 * (0.54 - 0.06)) < 3 * 0.04, removed
    # the edges stay: leading and trailing silence (0.2 s each) are untouched
    assert np.array_equal(flowing[: int(0.2 * SR)], hesitant[: int(0.2 * SR)])
    assert np.array_equal(flowing[-int(0.2 * SR):], hesitant[-int(0.2 * SR):])


def test_close_pauses_leaves_fluent_and_silent_clips_alone():
    x = _utterance()
    assert np.array_equal(close_pauses(x), x)  # 40 ms joins are not pauses
    hesitant = insert_pauses(x, 2, 0.3, np.random.default_rng(2))
    assert np.array_equal(close_pauses(hesitant, keep_s=0.5), hesitant)  # pauses shorter than keep_s stay
    silent = np.zeros(SR, np.float32)
    assert np.array_equal(close_pauses(silent), silent)
