"""Which labels of the attribute sets a free-text style prompt names ("a deep voice, speaking slowly").

The prompt's tags make ``/v1/reward``'s agreement term: per attribute set, the probability the clip's
zero-shot distribution gives the label the prompt asks for. Matching is by words, not by the model:
a set the prompt does not mention has no tag (agreement ``null``) rather than a guess.

Each label is known by its prompt phrases and caption-bank phrases (``deep``, ``low-pitched``,
``slowly``, ``at a slow pace``), with simple word forms added (``sad`` <-> ``sadly``, ``slowly`` ->
``slow``, ``a man`` -> ``man``). Phrases are matched whole-word and case-insensitively, longest
first over the whole prompt, and a matched span is not matched again, so ``at a low volume`` is
loudness ``soft`` and not also pitch ``deep``. A set of which the prompt names two labels ("happy and
sad") has no tag: the prompt is ambiguous there.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

_ARTICLES = ("a ", "an ", "the ")


def _forms(phrase: str) -> set[str]:
    """A phrase and its simple word forms (lower case)."""
    p = phrase.strip().lower()
    for art in _ARTICLES:
        if p.startswith(art):
            p = p[len(art):]
    forms = {p}
    if " " not in p and len(p) >= 3:
        if p.endswith("ily"):
            forms.add(p[:-3] + "y")  # angrily -> angry
        elif p.endswith("ly"):
            forms.add(p[:-2])  # slowly -> slow
        elif p.endswith("y"):
            forms.add(p[:-1] + "ily")  # angry -> angrily
        else:
            forms.add(p + "ly")  # sad -> sadly
    return {f for f in forms if f}


@functools.lru_cache(maxsize=64)
def _phrase_table(set_names: tuple[str, ...]) -> list[tuple[str, list[tuple[str, str]]]]:
    """``(phrase, [(set, label), ...])`` longest phrase first."""
    from ..data.attributes import get_attribute_set
    from ..data.vocabulary import paraphrase_data, tag_paraphrases

    banks = paraphrase_data()["labels"]
    table: dict[str, dict[tuple[str, str], None]] = {}
    for name in set_names:
        aset = get_attribute_set(name)
        for label in aset.candidates:
            phrases = [label, *aset.label_phrases(label), *tag_paraphrases(label)]
            for slot, bank in banks.get(aset.field, {}).get(label, {}).items():
                if slot != "sentence":
                    phrases.extend(bank)
            for phrase in phrases:
                for form in _forms(phrase):
                    table.setdefault(form, {})[(name, label)] = None
    return sorted(((p, list(owners)) for p, owners in table.items()), key=lambda t: (-len(t[0]), t[0]))


def prompt_tags(prompt: str, set_names: Sequence[str]) -> dict[str, str | None]:
    """Per attribute set, the label ``prompt`` names, or None (see module docstring)."""
    text = prompt.lower()
    taken = [False] * len(text)
    named: dict[str, set[str]] = {name: set() for name in set_names}
    for phrase, owners in _phrase_table(tuple(dict.fromkeys(set_names))):
        for m in re.finditer(r"(?<![\w-])" + re.escape(phrase) + r"(?![\w-])", text):
            if any(taken[m.start():m.end()]):
                continue
            taken[m.start():m.end()] = [True] * (m.end() - m.start())
            for name, label in owners:
                named[name].add(label)
    return {name: next(iter(labels)) if len(labels) == 1 else None for name, labels in named.items()}
