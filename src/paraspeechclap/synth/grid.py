"""The style grid of the synthetic corpus: attributes, unrealisable combinations, balanced plans.

Every clip gets one value of each style attribute in :data:`STYLE_ATTRIBUTES`. Some combinations
cannot be realised truthfully; they are listed in :data:`EXCLUSIONS` (with the reason) and never
planned. When an exclusion removes *every* value of an attribute (the pitch level of whispered
speech), the attribute is left unlabelled (``None``) for that clip.

:func:`plan_styles` draws a sequence of style dicts whose per-attribute value counts stay balanced
at every prefix (a greedy deficit rule over the valid combinations, ties broken by a seeded RNG),
so the first ``k`` clips of a plan are the same whatever the total ``n``.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

#: Style attributes and their values, in planning order (voice quality first: it constrains the rest).
STYLE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "voice_quality": ("modal", "whispered", "breathy", "raspy", "creaky"),
    "loudness": ("soft", "normal", "loud"),
    "pitch_level": ("deep", "medium", "high-pitched"),
    "speaking_rate": ("slow", "measured", "fast"),
    "clarity": ("crisp", "muffled", "reverberant", "telephone"),
}

#: The unmarked value of each attribute (what an unprompted attribute is realised as).
NEUTRAL: dict[str, str] = {
    "voice_quality": "modal",
    "loudness": "normal",
    "pitch_level": "medium",
    "speaking_rate": "measured",
    "clarity": "crisp",
}

Style = dict[str, "str | None"]
T = TypeVar("T")


@dataclass(frozen=True)
class Exclusion:
    """A set of values of ``attribute`` that cannot be realised when ``when`` holds.

    Attributes:
        when: ``(attribute, value)`` pairs that must all hold for the exclusion to apply.
        attribute: the constrained attribute.
        values: its values that cannot be realised in that context.
        reason: why (shown in docs and error messages).
    """

    when: tuple[tuple[str, str], ...]
    attribute: str
    values: tuple[str, ...]
    reason: str

    def applies(self, style: Mapping[str, str | None]) -> bool:
        """True when every condition of ``when`` holds in ``style``."""
        return all(style.get(k) == v for k, v in self.when)


EXCLUSIONS: tuple[Exclusion, ...] = (
    Exclusion(
        (("voice_quality", "whispered"),), "pitch_level", STYLE_ATTRIBUTES["pitch_level"],
        "whispered speech has no vocal-fold vibration, hence no F0 and no pitch level",
    ),
    Exclusion(
        (("voice_quality", "whispered"),), "loudness", ("loud",),
        "a whisper cannot reach loud-speech level: forcing it there makes it a shouted (voiced) whisper",
    ),
    Exclusion(
        (("voice_quality", "creaky"),), "pitch_level", ("high-pitched",),
        "creak (vocal fry) is the lowest phonation register; it cannot be high-pitched",
    ),
)  # fmt: skip


def allowed_values(attribute: str, style: Mapping[str, str | None]) -> tuple[str, ...]:
    """Values of ``attribute`` that can be realised given the other attributes in ``style``.

    Returns:
        The allowed values in :data:`STYLE_ATTRIBUTES` order; empty when the attribute is
        undefined in that context (then it stays unlabelled).
    """
    banned = {v for ex in EXCLUSIONS if ex.attribute == attribute and ex.applies(style) for v in ex.values}
    return tuple(v for v in STYLE_ATTRIBUTES[attribute] if v not in banned)


def is_realisable(style: Mapping[str, str | None]) -> bool:
    """Whether a (possibly partial) style dict avoids every exclusion.

    An attribute set to None is fine only when no value of it is allowed in that context.
    """
    for attr in STYLE_ATTRIBUTES:
        if attr not in style:
            continue
        allowed = allowed_values(attr, style)
        value = style[attr]
        if (value is None and allowed) or (value is not None and value not in allowed):
            return False
    return True


def valid_combinations() -> list[Style]:
    """All realisable full style dicts (unlabelled attributes as None), in grid order."""
    out: list[Style] = []
    seen: set[tuple] = set()
    for values in itertools.product(*STYLE_ATTRIBUTES.values()):
        style: Style = dict(zip(STYLE_ATTRIBUTES, values))
        for attr in STYLE_ATTRIBUTES:
            if not allowed_values(attr, style):
                style[attr] = None
        key = tuple(style.values())
        if key not in seen and is_realisable(style):
            seen.add(key)
            out.append(style)
    return out


def plan_styles(n: int, rng: random.Random) -> list[Style]:
    """Draw ``n`` realisable styles with balanced per-attribute value counts.

    At each step every valid combination is scored by the summed *deficit* of its values (expected
    count so far minus actual count, per attribute; unlabelled attributes score 0), and one of the
    best-scoring combinations is drawn at random. This keeps every attribute's marginal within a
    few clips of uniform at every prefix, while pairings between attributes stay random.

    Args:
        n: number of styles.
        rng: the only source of randomness (consumed in a fixed pattern: prefix-stable).

    Returns:
        ``n`` style dicts (fresh copies).
    """
    combos = valid_combinations()
    attrs = list(STYLE_ATTRIBUTES)
    # (C, A) value indices, -1 for unlabelled.
    idx = np.array([[STYLE_ATTRIBUTES[a].index(c[a]) if c[a] is not None else -1 for a in attrs] for c in combos])
    counts = [np.zeros(len(STYLE_ATTRIBUTES[a])) for a in attrs]
    labelled = [0] * len(attrs)
    out: list[Style] = []
    for _ in range(n):
        score = np.zeros(len(combos))
        for j, a in enumerate(attrs):
            deficit = (labelled[j] + 1) / len(STYLE_ATTRIBUTES[a]) - counts[j]  # (V,)
            col = idx[:, j]
            score += np.where(col >= 0, deficit[np.maximum(col, 0)], 0.0)
        best = np.flatnonzero(score >= score.max() - 1e-9)
        pick = int(best[rng.randrange(len(best))])
        for j in range(len(attrs)):
            if idx[pick, j] >= 0:
                counts[j][idx[pick, j]] += 1
                labelled[j] += 1
        out.append(dict(combos[pick]))
    return out


class Deck(Generic[T]):
    """Draws items as consecutive shuffled passes over a list: counts never differ by more than one.

    Args:
        items: the items (order matters only for reproducibility).
        rng: the deck's own random source.
    """

    def __init__(self, items: Sequence[T], rng: random.Random) -> None:
        if not items:
            raise ValueError("Deck needs at least one item")
        self._items = list(items)
        self._rng = rng
        self._pending: list[T] = []

    def draw(self) -> T:
        """The next item (a new shuffled pass starts when the current one is used up)."""
        if not self._pending:
            self._pending = list(self._items)
            self._rng.shuffle(self._pending)
        return self._pending.pop()


def apportion(weights: Mapping[str, float], n: int, rng: random.Random) -> list[str]:
    """Assign ``n`` slots to keys in proportion to ``weights``, prefix-balanced and interleaved.

    At step ``t`` the key with the largest ``weight * (t + 1) - count`` gets the slot (random
    tie-break), so every prefix follows the weights to within one slot per key.
    """
    keys = [k for k, w in weights.items() if w > 0]
    total = sum(weights[k] for k in keys)
    share = {k: weights[k] / total for k in keys}
    counts = dict.fromkeys(keys, 0)
    out: list[str] = []
    for t in range(n):
        need = {k: share[k] * (t + 1) - counts[k] for k in keys}
        top = max(need.values())
        best = [k for k in keys if need[k] >= top - 1e-9]
        key = best[rng.randrange(len(best))]
        counts[key] += 1
        out.append(key)
    return out
