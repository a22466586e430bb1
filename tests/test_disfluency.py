"""Stammering in the text (``synth.disfluency``, issue 21): the written repetitions, and what an engine
makes of them, measured by syllable nuclei (``audio.measure.syllable_nuclei``) and duration."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

from paraspeechclap.synth.disfluency import onset, stammer
from paraspeechclap.synth.engines import ENGINES

TEXT = "Look at all the stars tonight, they are so bright."


def test_onset_is_the_first_spelled_syllable():
    assert [onset(w) for w in ("stars", "bright", "open", "tonight", "rhythm", "psst")] == \
        ["sta", "bri", "o", "to", "rhy", None]


def test_stammer_inserts_onset_repetitions_and_keeps_every_word():
    text, inserted = stammer(TEXT, random.Random(3), words=2, repeats=2)
    assert inserted == 4
    fragments = re.findall(r"([A-Za-z]+)- ", text)
    assert len(fragments) == 4
    assert re.sub(r"[A-Za-z]+- ", "", text) == TEXT  # removing the fragments gives the sentence back
    for frag in fragments:  # each fragment is the onset of the word it precedes
        word = text[text.index(frag + "- "):].replace(frag + "- ", "").split()[0].strip(",.")
        assert onset(word) == frag
    assert stammer(TEXT, random.Random(3), words=2, repeats=2) == (text, inserted)  # seeded


def test_stammer_on_a_text_without_long_words_changes_nothing():
    assert stammer("I am so up.", random.Random(0), words=2) == ("I am so up.", 0)


@pytest.mark.skipif(not ENGINES["flite"].available(), reason="needs the flite program (apt-get install flite)")
def test_spoken_stammer_adds_syllables_and_time():
    from paraspeechclap.audio.measure import syllable_nuclei
    from paraspeechclap.audio.pitch import frame_f0
    from paraspeechclap.synth.engines import get_engine

    engine = get_engine("flite")

    def spoken(text: str, voice) -> tuple[int, float]:
        x, sr = engine.synthesize(text, voice, 1.0, {})
        f0, _ = frame_f0(np.asarray(x, np.float32))
        return len(syllable_nuclei(np.asarray(x, np.float64), f0)), len(x) / sr

    added = total = 0
    for seed in (1, 2, 3):
        stammered, inserted = stammer(TEXT, random.Random(seed), words=2, repeats=2)
        for voice in ENGINES["flite"].voices:
            (n0, d0), (n1, d1) = spoken(TEXT, voice), spoken(stammered, voice)
            # stated bounds per clip: a syllable more at least, and 0.15 s per fragment
            assert n1 > n0 and d1 - d0 >= 0.15 * inserted, (seed, voice.id, n0, n1, d0, d1)
            added, total = added + n1 - n0, total + inserted
    # and over the 12 clips, at least 3 of 4 fragments heard as syllables (measured: 59 for 48)
    assert added >= 0.75 * total, (added, total)
