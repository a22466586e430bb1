"""The style vocabulary, label maps and paraphrase banks, read from the package's JSON files.

Three data files ship with the package (``paraspeechclap/data/*.json``):

- ``vocabulary.json``: the ParaSpeechCaps intrinsic tags grouped by attribute (pitch, texture,
  volume, clarity, rhythm), the situational tags, and this project's label fields with their values
  (``pitch_level``, ``speaking_rate``, ``loudness``, ``voice_quality``, ``clarity``, ``gender``,
  ``emotion``).
- ``label_maps.json``: corpus spellings (``anger``, ``joy``, ``high emotion`` ...) to label values.
- ``paraphrases.json``: our own paraphrase sets for every tag, and caption phrase banks per label
  value.

Everything is loaded lazily on first use and cached; nothing is read at import time.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from importlib import resources
from typing import Any

from ..errors import InputError

#: Label fields that describe the voice or the recording (their non-neutral values become
#: intrinsic tags); ``gender`` and ``emotion`` are handled separately.
INTRINSIC_LABEL_FIELDS: tuple[str, ...] = ("pitch_level", "speaking_rate", "loudness", "voice_quality", "clarity")


@functools.cache
def _load(name: str) -> dict[str, Any]:
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    return json.loads(text)


def vocabulary() -> dict[str, Any]:
    """The parsed ``vocabulary.json`` (shared cached object: do not mutate)."""
    return _load("vocabulary.json")


def paraphrase_data() -> dict[str, Any]:
    """The parsed ``paraphrases.json`` (shared cached object: do not mutate)."""
    return _load("paraphrases.json")


def label_map_data() -> dict[str, Any]:
    """The parsed ``label_maps.json`` (shared cached object: do not mutate)."""
    return _load("label_maps.json")


def intrinsic_groups() -> dict[str, list[str]]:
    """Intrinsic ParaSpeechCaps tags grouped by attribute: ``{"pitch": [...], "texture": [...], ...}``."""
    return {k: list(v) for k, v in vocabulary()["intrinsic"].items()}


def intrinsic_tags() -> list[str]:
    """All intrinsic ParaSpeechCaps tags, in group order (pitch, texture, volume, clarity, rhythm)."""
    return [t for group in vocabulary()["intrinsic"].values() for t in group]


def situational_tags() -> list[str]:
    """The 24 situational ParaSpeechCaps tags."""
    return list(vocabulary()["situational"])


def label_fields() -> list[str]:
    """Names of this project's label fields."""
    return list(vocabulary()["label_fields"])


def label_values(field: str) -> list[str]:
    """The allowed values of a label field, e.g. ``label_values("pitch_level") -> ["deep", "medium", "high-pitched"]``.

    Raises:
        InputError: ``field`` is not a label field.
    """
    fields = vocabulary()["label_fields"]
    if field not in fields:
        raise InputError(f"unknown label field {field!r}; known: {', '.join(fields)}")
    return list(fields[field])


def neutral_value(field: str) -> str | None:
    """The neutral ("unmarked") value of a label field (``medium``, ``measured`` ...), or None."""
    return vocabulary()["neutral_values"].get(field)


def _normalise(value: object) -> str:
    return " ".join(str(value).strip().lower().replace("_", " ").split())


def map_label(value: object, field: str) -> str | None:
    """Map a corpus spelling of a label to the value used in our vocabulary.

    Values already in the field's vocabulary map to themselves; other spellings go through
    ``label_maps.json`` (case and surrounding whitespace are ignored). Spellings with no vocabulary
    word (``drunk``, ``unknown``), unknown spellings and missing values give None.

    Example: ``map_label("anger", "emotion") -> "angry"``, ``map_label("high emotion", "emotion") ->
    "animated"``, ``map_label("F", "gender") -> "female"``.

    Args:
        value: the raw value (string; None/NaN give None).
        field: a label field name (see :func:`label_fields`).

    Raises:
        InputError: ``field`` is not a label field.
    """
    allowed = label_values(field)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    key = _normalise(value)
    if key in allowed:
        return key
    # Vocabulary values written with spaces (e.g. "high pitched") match their hyphenated form.
    hyphen = key.replace(" ", "-")
    if hyphen in allowed:
        return hyphen
    return label_map_data().get(field, {}).get(key)


def tag_paraphrases(tag: str) -> list[str]:
    """Our paraphrases of a ParaSpeechCaps tag; the first entry is the tag itself.

    Unknown tags give ``[tag]`` so callers can always build at least the plain prompt.
    """
    return list(paraphrase_data()["tags"].get(_normalise(tag).replace(" ", "-"), [tag]))


def label_phrases(field: str, value: str | None, slot: str) -> list[str]:
    """Caption phrase bank for one label value; the first entry is the canonical phrase.

    Args:
        field: label field (``gender``, ``pitch_level`` ...).
        value: the label value (already mapped); None selects the ``_none`` bank where one exists
            (the genderless subject "A person").
        slot: grammatical slot: ``subject``, ``adj``, ``adv`` or ``sentence``.

    Raises:
        InputError: no bank exists for this field/value/slot.
    """
    banks = paraphrase_data()["labels"].get(field, {})
    entry = banks.get("_none" if value is None else value)
    if entry is None and field == "emotion" and value in paraphrase_data()["tags"]:
        # Emotion words that are ParaSpeechCaps situational tags reuse the tag paraphrases.
        entry = {"adj": paraphrase_data()["tags"][value]}
    if entry is None or slot not in entry:
        raise InputError(f"no caption phrases for {field}={value!r} (slot {slot!r})")
    return list(entry[slot])


def labels_to_tags(labels: Mapping[str, str | None]) -> tuple[list[str], list[str]]:
    """Turn label fields into ParaSpeechCaps-style ``(intrinsic_tags, situational_tags)``.

    Neutral values (``medium``, ``measured``, ``normal``, ``modal``, ``crisp``, ``neutral``) give no
    tag; ``creaky`` becomes ``vocal-fry``; ``whispered`` is a situational tag in ParaSpeechCaps, and
    so is every emotion word. Other values are used as they are (our recording tags ``muffled``,
    ``reverberant``, ``telephone`` and ``breathy`` are intrinsic tags of our own).

    Raises:
        InputError: a value is not in its field's vocabulary.
    """
    vocab = vocabulary()
    situational_only = set(vocab["situational"]) - set(intrinsic_tags())
    intrinsic: list[str] = []
    situational: list[str] = []
    for field in (*INTRINSIC_LABEL_FIELDS, "emotion"):
        raw = labels.get(field)
        if raw is None:
            continue
        value = map_label(raw, field)
        if value is None:
            if field == "emotion":
                continue
            raise InputError(f"label {field}={raw!r} is not one of {label_values(field)}")
        if value == neutral_value(field):
            continue
        tag = vocab["tag_renames"].get(value, value)
        target = situational if field == "emotion" or tag in situational_only else intrinsic
        if tag not in target:
            target.append(tag)
    return intrinsic, situational
