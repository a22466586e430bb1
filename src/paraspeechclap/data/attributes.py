"""Named attribute sets for zero-shot classification: candidates, prompts and gold labels.

An :class:`AttributeSet` bundles the candidate labels of one classification task, the phrase that
stands for each label in a prompt (the label and the phrase may differ: label ``medium``, phrase
"medium-pitched"; label ``male``, phrase "A man"), the prompt templates (the first is the default;
the rest form the ensemble) and how to read the gold label from a manifest row.

The six official ParaSpeechCLAP sets (pitch, texture, volume, clarity, rhythm, situational) read
``classification_tag`` and use "A person is speaking in a {} style."; our own sets read our label
fields through the label maps. See ``docs/data.md`` for the table.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from .manifest import parse_list
from .vocabulary import label_phrases, map_label, tag_paraphrases

OFFICIAL_TEMPLATE = "A person is speaking in a {} style."
#: Extra templates for adjective phrases (style words), used in prompt ensembles.
STYLE_TEMPLATES: tuple[str, ...] = (
    OFFICIAL_TEMPLATE,
    "A person speaks in a {} voice.",
    "Someone is talking in a {} manner.",
    "The speaker sounds {}.",
    "A recording of a person speaking in a {} way.",
)


def _gold_classification_tag(aset: AttributeSet, row: Mapping[str, Any]) -> str | None:
    """``classification_<set>`` (a row labelled for several sets: the tag-recipe corpora), else the
    official files' one ``classification_tag``."""
    value = row.get(f"classification_{aset.name}", row.get(aset.field))
    if not isinstance(value, str):
        return None
    value = value.strip().lower()
    return value if value in aset.candidates else None


def _gold_label_field(aset: AttributeSet, row: Mapping[str, Any]) -> str | None:
    value = map_label(row.get(aset.field), aset.field)
    return value if value in aset.candidates else None


def _gold_emotion(aset: AttributeSet, row: Mapping[str, Any]) -> str | None:
    """``emotion`` through the label maps; without it, a single matching situational tag."""
    if row.get("emotion") is not None:
        return _gold_label_field(aset, row)
    tags = {t.lower() for t in parse_list(row.get("situational_tags"), "situational_tags")}
    hits = [c for c in aset.candidates if c in tags]
    return hits[0] if len(hits) == 1 else None


def _gold_whisper(aset: AttributeSet, row: Mapping[str, Any]) -> str | None:
    """``voice_quality`` when present; else "whispered" if any tag or the emotion says so, else voiced.

    Rows with no voice information at all (no ``voice_quality``, no tags, no emotion) give None.
    """
    vq = map_label(row.get("voice_quality"), "voice_quality")
    if vq is not None:
        return "whispered" if vq == "whispered" else "voiced"
    tags = {t.lower() for f in ("intrinsic_tags", "situational_tags") for t in parse_list(row.get(f), f)}
    if "whispered" in tags or map_label(row.get("emotion"), "emotion") == "whispered":
        return "whispered"
    has_info = any(k in row for k in ("intrinsic_tags", "situational_tags", "emotion"))
    return "voiced" if has_info else None


GoldFn = Callable[["AttributeSet", Mapping[str, Any]], "str | None"]
GOLD_READERS: dict[str, GoldFn] = {
    "classification_tag": _gold_classification_tag,
    "label_field": _gold_label_field,
    "emotion": _gold_emotion,
    "whisper": _gold_whisper,
}


@dataclass(frozen=True)
class AttributeSet:
    """One zero-shot classification task.

    Attributes:
        name: registry name.
        candidates: candidate labels, in the official order for the official sets.
        field: manifest field holding the gold label.
        templates: prompt templates with one ``{}``; ``templates[0]`` is the default.
        phrases: per label, the phrases that fill ``{}``; ``phrases[label][0]`` is the default.
            Labels without an entry use the label itself.
        gold_reader: key of :data:`GOLD_READERS` (how :meth:`gold` reads a row).
        official: one of the six ParaSpeechCLAP evaluation sets.
        description: one line for listings.
    """

    name: str
    candidates: tuple[str, ...]
    field: str
    templates: tuple[str, ...] = (OFFICIAL_TEMPLATE,)
    phrases: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    gold_reader: str = "label_field"
    official: bool = False
    description: str = ""

    @property
    def template(self) -> str:
        """The default prompt template."""
        return self.templates[0]

    def label_phrases(self, label: str) -> tuple[str, ...]:
        """Prompt phrases of one candidate (default first)."""
        return tuple(self.phrases.get(label, (label,)))

    def prompts(self, template: str | None = None, ensemble: bool = False) -> dict[str, list[str]]:
        """Prompts per candidate label, in candidate order.

        Args:
            template: a template with one ``{}``, used instead of the set's templates.
            ensemble: all phrases x all templates (duplicates removed) instead of the single
                default prompt.

        Returns:
            ``{label: [prompt, ...]}``; without ``ensemble`` each list has one prompt.

        Raises:
            InputError: ``template`` has no ``{}`` placeholder.
        """
        if template is not None and "{}" not in template:
            raise InputError(f"template {template!r} has no '{{}}' placeholder")
        templates = (template,) if template is not None else self.templates
        out: dict[str, list[str]] = {}
        for label in self.candidates:
            phrases = self.label_phrases(label)
            if not ensemble:
                out[label] = [templates[0].format(phrases[0])]
                continue
            seen: dict[str, None] = {}
            for t in templates:
                for p in phrases:
                    seen.setdefault(t.format(p), None)
            out[label] = list(seen)
        return out

    def widened(self, templates: Sequence[str] = (), words: Mapping[str, Sequence[str]] | None = None) -> AttributeSet:
        """This set with more templates and more phrases per label (appended; the defaults stay first),
        e.g. for training prompts that word a class more ways than the inference ensemble does.

        Raises:
            InputError: a template has no ``{}`` or a label is not a candidate.
        """
        words = words or {}
        for t in templates:
            if "{}" not in t:
                raise InputError(f"template {t!r} has no '{{}}' placeholder")
        unknown = sorted(set(words) - set(self.candidates))
        if unknown:
            raise InputError(f"{unknown[0]!r} is not a candidate of {self.name!r} ({', '.join(self.candidates)})")
        phrases = {label: (*self.label_phrases(label), *words.get(label, ())) for label in self.candidates}
        return dataclasses.replace(self, templates=(*self.templates, *templates), phrases=phrases)

    def gold(self, row: Mapping[str, Any]) -> str | None:
        """The row's gold label among the candidates, or None when the row has none."""
        return GOLD_READERS[self.gold_reader](self, row)


def gold_indices(aset: AttributeSet, rows: Any) -> tuple[list[int], list[int]]:
    """The rows with a gold label among ``aset``'s candidates: ``(row indices, class indices)``."""
    idx, labels = [], []
    for i, row in enumerate(rows):
        gold = aset.gold(row)
        if gold is not None:
            idx.append(i)
            labels.append(aset.candidates.index(gold))
    return idx, labels


_REGISTRY: dict[str, AttributeSet] = {}


def register_attribute_set(aset: AttributeSet, overwrite: bool = False) -> AttributeSet:
    """Add a set to the registry (``overwrite`` to replace one of the same name)."""
    _builtins()  # make sure user sets cannot be shadowed by a later built-in load
    if aset.name in _REGISTRY and not overwrite:
        raise InputError(f"attribute set {aset.name!r} already exists")
    if aset.gold_reader not in GOLD_READERS:
        raise InputError(f"attribute set {aset.name!r}: unknown gold_reader {aset.gold_reader!r}")
    _REGISTRY[aset.name] = aset
    return aset


def get_attribute_set(name: str) -> AttributeSet:
    """Look up a registered attribute set by name.

    Raises:
        InputError: unknown name (the message lists the known ones).
    """
    _builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InputError(f"unknown attribute set {name!r}; known: {', '.join(_REGISTRY)}") from None


def list_attribute_sets(official: bool | None = None) -> list[str]:
    """Names of the registered sets (all, only official, or only ours)."""
    _builtins()
    return [n for n, s in _REGISTRY.items() if official is None or s.official == official]


# ---------------------------------------------------------------------------------------------
# Built-in sets (built on first use: the paraphrases come from package data).

OFFICIAL_CANDIDATES: dict[str, tuple[str, ...]] = {
    "pitch": ("shrill", "nasal", "deep"),
    "texture": ("silky", "husky", "raspy", "guttural", "vocal-fry"),
    "volume": ("booming", "authoritative", "loud", "hushed", "soft"),
    "clarity": ("crisp", "slurred", "lisp", "stammering"),
    "rhythm": ("flowing", "punctuated", "hesitant", "singsong", "monotonous"),
    "situational": (
        "angry", "guilt", "scared", "happy", "loud", "sarcastic", "sympathetic", "desirous", "enthusiastic",
        "saddened", "anxious", "sleepy", "admiring", "disgusted", "awed", "pained", "fast", "calm",
        "whispered", "enunciated", "confused",
    ),
}  # fmt: skip
EMOTION4 = ("angry", "happy", "saddened", "neutral")
EMOTION8 = ("angry", "happy", "saddened", "scared", "disgusted", "bored", "awed", "neutral")


def _tag_phrases(labels: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    return {t: tuple(tag_paraphrases(t)) for t in labels}


def _bank(
    field_name: str, labels: tuple[str, ...], slot: str, first: Mapping[str, str] | None = None
) -> dict[str, tuple[str, ...]]:
    """Label phrases from the caption banks, with an optional different default phrase first."""
    out = {}
    for label in labels:
        bank = label_phrases(field_name, label, slot)
        head = (first or {}).get(label)
        out[label] = tuple([head] + [b for b in bank if b != head] if head else bank)
    return out


def _official_sets() -> list[AttributeSet]:
    return [
        AttributeSet(
            name,
            cands,
            "classification_tag",
            STYLE_TEMPLATES,
            _tag_phrases(cands),
            "classification_tag",
            official=True,
            description=f"official ParaSpeechCLAP {name} classification",
        )
        for name, cands in OFFICIAL_CANDIDATES.items()
    ]


def _our_sets() -> list[AttributeSet]:
    emotion_phr = {**_tag_phrases(EMOTION8), "neutral": tuple(label_phrases("emotion", "neutral", "adj"))}
    emo_templates = (OFFICIAL_TEMPLATE, "A person speaks in a {} tone.", "The speaker sounds {}.",
                     "Someone is talking in a {} manner.")  # fmt: skip
    voice_t = ("A person is speaking in a {} voice.", "A person with a {} voice is talking.",
               "The speaker's voice is {}.", "Someone talks in a {} voice.")  # fmt: skip
    adv_t = ("A person is speaking {}.", "Someone talks {}.", "The speaker is talking {}.")
    return [
        AttributeSet("emotion", EMOTION4, "emotion", emo_templates, {k: emotion_phr[k] for k in EMOTION4},
                     "emotion", description="4 emotions (angry/happy/saddened/neutral) from the emotion field"),
        AttributeSet("emotion8", EMOTION8, "emotion", emo_templates, emotion_phr, "emotion",
                     description="8 emotions from the emotion field"),
        AttributeSet("pitch_level", ("deep", "medium", "high-pitched"), "pitch_level", voice_t,
                     _bank("pitch_level", ("deep", "medium", "high-pitched"), "adj"), description="speaker pitch level"),
        AttributeSet("speaking_rate", ("slow", "measured", "fast"), "speaking_rate", adv_t,
                     _bank("speaking_rate", ("slow", "measured", "fast"), "adv"), description="speaking rate"),
        AttributeSet("loudness", ("soft", "normal", "loud"), "loudness", adv_t,
                     _bank("loudness", ("soft", "normal", "loud"), "adv"), description="loudness"),
        AttributeSet("gender", ("male", "female"), "gender", ("{} is speaking.", "{} is talking.", "{} says something."),
                     _bank("gender", ("male", "female"), "subject"), description="speaker gender"),
        AttributeSet("voice_quality", ("modal", "whispered", "breathy", "raspy", "creaky"), "voice_quality", voice_t,
                     _bank("voice_quality", ("modal", "whispered", "breathy", "raspy", "creaky"), "adj",
                           first={"modal": "normal"}),
                     description="phonation / voice quality"),
        AttributeSet("whisper", ("whispered", "voiced"), "voice_quality", ("A person is {}.", "Someone is {}."),
                     {"whispered": ("whispering", "speaking in a whisper", "talking in a hushed whisper"),
                      "voiced": ("speaking aloud", "speaking in a normal voice", "talking with a full voice")},
                     "whisper", description="whispered vs voiced speech"),
        AttributeSet("recording", ("crisp", "muffled", "reverberant", "telephone"), "clarity",
                     ("A person is speaking in a {} recording.", "A {} recording of someone talking.",
                      "Speech in a {} recording."),
                     {"crisp": ("clean, crisp", "clear", "studio-quality"), "muffled": ("muffled", "dull"),
                      "reverberant": ("reverberant", "echoey"),
                      "telephone": ("telephone-quality", "phone-line", "narrow-band telephone")},
                     description="recording condition / channel (the clarity label field)"),
    ]  # fmt: skip


@functools.lru_cache(maxsize=1)
def _builtins() -> None:
    for aset in (*_official_sets(), *_our_sets()):
        _REGISTRY.setdefault(aset.name, aset)
