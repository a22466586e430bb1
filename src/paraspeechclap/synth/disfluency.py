"""Stammering written into the text: part-word repetitions that any engine then speaks.

A stammer's commonest sound is the repeated first syllable of a word ("sta- sta- stars"). Engines read
a fragment that ends in a vowel letter as a syllable, so :func:`stammer` repeats each chosen word's
onset (its leading consonants and first vowel letters) before the word. The text changes, not the
audio, so the words stay the engine's own; the check is acoustic (extra syllable nuclei and time,
``tests/test_disfluency.py``). A building block for ``stammering`` (issue 21); not yet in the plan.
"""

from __future__ import annotations

import random
import re

VOWELS = "aeiouyAEIOUY"
#: a word is stammered on only when it has at least this many letters (short function words are not)
MIN_LETTERS = 4
_WORD = re.compile(r"[A-Za-z]+")


def onset(word: str) -> str | None:
    """``word``'s first syllable as spelled: leading consonants, then its first run of vowel letters
    ("stars" -> "sta", "bright" -> "bri", "open" -> "o"). None when it has no vowel letter."""
    m = re.match(rf"([^{VOWELS}]*)([{VOWELS}]+)", word)
    return m.group(0) if m else None


def stammer(text: str, rng: random.Random, words: int = 2, repeats: int = 2) -> tuple[str, int]:
    """``text`` with ``words`` of its words (those of :data:`MIN_LETTERS` letters or more, chosen by
    ``rng``) each preceded by ``repeats`` copies of its :func:`onset` ("sta- sta- stars").

    Returns:
        ``(new_text, inserted)``: the text and how many fragments were inserted (fewer than
        ``words * repeats`` when the text has fewer eligible words).
    """
    spans = [m for m in _WORD.finditer(text) if len(m.group(0)) >= MIN_LETTERS and onset(m.group(0))]
    chosen = sorted(rng.sample(range(len(spans)), min(words, len(spans))))
    out, last = [], 0
    for k in chosen:
        m = spans[k]
        out += [text[last:m.start()], "".join(f"{onset(m.group(0))}- " for _ in range(repeats))]
        last = m.start()
    out.append(text[last:])
    return "".join(out), len(chosen) * repeats
