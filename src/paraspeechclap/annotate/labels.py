"""Tags from embeddings: calibrated probabilities per attribute set, abstention, label fields,
ParaSpeechCaps tags and captions.

Per attribute set the zero-shot logits are ``logit_scale * cosine(audio, class)`` (each class the
mean of its prompt ensemble, as ``classify --attribute`` and ``calibrate`` score them), and the
probabilities ``softmax(logits / T)`` with the set's calibrated temperature ``T`` (1 without a
calibration: the model's own, uncalibrated softmax). A top label below the confidence threshold is
``None``: abstained, not guessed.

Confident labels then fill the row: a set whose gold field is one of this project's label fields
(``emotion``, ``pitch_level`` ...) writes its label there when the label is a value of that field
(``whisper``'s "voiced" is not, so it writes nothing); the first set in the order wins a field. The
official ParaSpeechCLAP sets (``classification_tag``) give ParaSpeechCaps tags directly. Captions
are composed from the confident labels only.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: the sets an annotation uses by default for a model of this project that does not list its own:
#: the attribute sets the embedded Lite recipe trains (configs/train/lite.yaml, ``loss.attribute_sets``)
DEFAULT_SETS: tuple[str, ...] = ("emotion8", "gender", "pitch_level", "speaking_rate", "loudness",
                                 "voice_quality", "whisper", "recording")
#: official checkpoints: the sets of the data each was trained on
OFFICIAL_SETS: dict[str, tuple[str, ...]] = {
    "intrinsic": ("pitch", "texture", "volume", "clarity", "rhythm"),
    "situational": ("situational",),
    "combined": ("pitch", "texture", "volume", "clarity", "rhythm", "situational"),
}
#: the default ``--min-confidence``: a label must be more likely than all the others together
DEFAULT_MIN_CONFIDENCE = 0.5
#: the default number of captions (wordings) per clip
DEFAULT_CAPTIONS = 3


def default_attribute_sets(model: Any, official: bool) -> list[str]:
    """The sets a model was trained for: ``config.extra["attribute_sets"]`` when it lists them, the
    official sets of an official checkpoint (by release name; all six when the name does not say),
    else :data:`DEFAULT_SETS`."""
    listed = (getattr(model.config, "extra", None) or {}).get("attribute_sets")
    if listed:
        return list(listed)
    if official:
        name = str(model.model_id).lower()
        for release, sets in OFFICIAL_SETS.items():
            if release in name:
                return list(sets)
        return list(OFFICIAL_SETS["combined"])
    return list(DEFAULT_SETS)


@dataclass
class SetScorer:
    """One attribute set ready to score: class embeddings and temperature.

    Attributes:
        aset: the :class:`~paraspeechclap.data.attributes.AttributeSet`.
        classes: ``(C, D)`` unit class embeddings (prompt ensembles).
        temperature: ``T`` of the calibrated softmax (1.0 when not calibrated).
        calibrated: whether ``temperature`` comes from a calibration.
    """

    aset: Any
    classes: np.ndarray
    temperature: float = 1.0
    calibrated: bool = False

    def probabilities(self, audio: np.ndarray, logit_scale: float) -> np.ndarray:
        """``(N, C)`` float64 probabilities of ``(N, D)`` unit audio embeddings."""
        from ..calibration import apply

        logits = logit_scale * (np.asarray(audio, dtype=np.float64) @ self.classes.T.astype(np.float64))
        return apply(logits, self.temperature)


def build_scorers(model: Any, set_names: Sequence[str], calibration: Any | None) -> list[SetScorer]:
    """Class embeddings of each set, with the calibration's temperatures where it has them.

    Raises:
        InputError: an unknown set; a set the calibration does not cover (it lists those it does).
    """
    from ..data.attributes import get_attribute_set
    from ..evaluation.classification import embed_class_prompts

    out = []
    for name in dict.fromkeys(set_names):
        aset = get_attribute_set(name)
        classes = embed_class_prompts(model, aset.prompts(ensemble=True), aset.candidates)
        t = calibration.temperature(name) if calibration is not None else 1.0
        out.append(SetScorer(aset, classes, float(t), calibration is not None))
    return out


def decide(probs: np.ndarray, candidates: Sequence[str], min_confidence: float) -> list[str | None]:
    """Top label per row, or None where its probability is below ``min_confidence``."""
    top = probs.argmax(axis=1)
    return [candidates[j] if probs[i, j] >= min_confidence else None for i, j in enumerate(top)]


def fields_and_tags(labels: Mapping[str, str | None], scorers: Sequence[SetScorer]
                    ) -> tuple[dict[str, str], list[str], list[str]]:
    """Label fields, intrinsic tags and situational tags of one clip from its confident labels.

    Args:
        labels: set name -> label or None (abstained).
        scorers: the sets, in priority order (the first set to write a field wins it).

    Returns:
        ``(fields, intrinsic_tags, situational_tags)``.
    """
    from ..data.vocabulary import label_fields, label_values, labels_to_tags, map_label

    known = set(label_fields())
    fields: dict[str, str] = {}
    official_intrinsic: list[str] = []
    official_situational: list[str] = []
    for s in scorers:
        label = labels.get(s.aset.name)
        if label is None:
            continue
        if s.aset.field == "classification_tag":
            target = official_situational if s.aset.name == "situational" else official_intrinsic
            if label not in target:
                target.append(label)
            continue
        field = s.aset.field
        value = map_label(label, field) if field in known else None
        if value is not None and value in label_values(field):
            fields.setdefault(field, value)
    intrinsic, situational = labels_to_tags(fields)
    return (fields, list(dict.fromkeys([*intrinsic, *official_intrinsic])),
            list(dict.fromkeys([*situational, *official_situational])))


def compose_captions(fields: Mapping[str, str], intrinsic: Sequence[str], situational: Sequence[str],
                     count: int, seed: str) -> list[str]:
    """``count`` distinct-where-possible captions of one clip, seeded by ``seed`` (a string: the same
    clip gets the same captions whatever shard or process it is in).

    The first caption is the canonical one (every confident label as written); the others draw
    wordings from the caption banks. Models of this project's label fields get
    :func:`~paraspeechclap.data.captions.describe` (the captions they were trained on); official
    sets' tags get :func:`~paraspeechclap.data.captions.describe_tags`.
    """
    from ..data.captions import describe, describe_tags

    use_tags = bool(set(intrinsic) | set(situational)) and not fields

    def one(rng: random.Random | None) -> str:
        if use_tags:
            return describe_tags(intrinsic, situational, fields.get("gender"), rng)
        return describe(fields, rng)

    rng = random.Random(seed)
    out = [one(None)]
    for _ in range(4 * count):  # a few extra draws to find distinct wordings
        if len(out) >= count:
            break
        text = one(rng)
        if text not in out:
            out.append(text)
    return out[:count]
