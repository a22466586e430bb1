"""Natural-language style captions built from labels or tags.

- :func:`describe` turns our label fields (``gender``, ``pitch_level``, ``speaking_rate``,
  ``loudness``, ``voice_quality``, ``clarity``, ``emotion``) into one caption, e.g.
  ``"A man speaks slowly in a deep, raspy voice."``.
- :func:`describe_tags` builds a compositional caption from ParaSpeechCaps intrinsic and
  situational tags (the "Combined" style of caption).

Both are deterministic: with ``rng=None`` they return a fixed canonical caption (the first phrase of
every bank, a fixed sentence frame); with a ``random.Random`` they draw phrases and frames from it
and nothing else, so the same seed gives the same caption.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence

from ..errors import InputError
from .vocabulary import intrinsic_groups, label_phrases, label_values, map_label, tag_paraphrases

_CAPTION_FIELDS = ("gender", "pitch_level", "speaking_rate", "loudness", "voice_quality", "clarity", "emotion")


def _pick(options: Sequence[str], rng: random.Random | None) -> str:
    return options[0] if rng is None else rng.choice(list(options))


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _join_and(parts: Sequence[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _clean_labels(labels: Mapping[str, object]) -> dict[str, str]:
    """Validate and map the label fields used by captions; unknown keys are ignored."""
    out: dict[str, str] = {}
    for field in _CAPTION_FIELDS:
        raw = labels.get(field)
        if raw is None or raw == "":
            continue
        value = map_label(raw, field)
        if value is None:
            if field in ("emotion", "gender"):
                continue  # e.g. "drunk", "unknown": nothing to say
            raise InputError(f"label {field}={raw!r} is not one of {label_values(field)}")
        out[field] = value
    # "whispered" as an emotion word describes the voice: say it once, as a voice quality.
    if out.get("emotion") == "whispered":
        del out["emotion"]
        out.setdefault("voice_quality", "whispered")
    return out


def _emotion_tail(adj: str, rng: random.Random | None, bare: bool = False, after_with: bool = False) -> str:
    """The tone clause; ``after_with``: the sentence already ends in "with ..." (canonical avoids a second)."""
    if bare:
        # Nothing follows the verb ("A woman speaks"): no comma before the tone.
        return (
            f" with {_article(adj)} {adj} tone"
            if rng is None or rng.random() < 0.5
            else f" in {_article(adj)} {adj} tone"
        )
    forms: list[Callable[[str], str]] = [
        lambda a: f", with {_article(a)} {a} tone",
        lambda a: f", sounding {a}",
        lambda a: f" in {_article(a)} {a} tone",
        lambda a: f"; the speaker sounds {a}",
    ]
    form = forms[1 if after_with else 0] if rng is None else rng.choice(forms)
    return form(adj)


def _voice_phrase(adjs: list[str], gender_adj: str, with_gender: bool) -> str:
    words = ", ".join(adjs)
    if with_gender and gender_adj:
        words = f"{words} {gender_adj}" if words else gender_adj
    return f"{_article(words)} {words} voice"


def describe(labels: Mapping[str, object], rng: random.Random | None = None) -> str:
    """Turn label fields into a natural English style caption.

    Args:
        labels: any subset of ``gender``, ``pitch_level``, ``speaking_rate``, ``loudness``,
            ``voice_quality``, ``clarity`` and ``emotion`` (vocabulary words; corpus spellings
            such as ``anger`` are mapped through the label maps). Other keys are ignored.
        rng: source of randomness for phrase and frame choice; None gives the canonical caption,
            in which every label value appears as written (``male``/``female`` as "A man"/"A woman").

    Returns:
        One or two sentences, e.g. ``"A man speaks slowly in a deep, raspy voice, with an angry tone."``

    Raises:
        InputError: a value is not in its field's vocabulary (unmapped emotion/gender values are skipped).
    """
    lab = _clean_labels(labels)
    gender = lab.get("gender")
    subject = _pick(label_phrases("gender", gender, "subject"), rng)
    gender_adj = label_phrases("gender", gender, "adj")[0]
    adjs = [_pick(label_phrases(f, lab[f], "adj"), rng) for f in ("pitch_level", "voice_quality") if f in lab]
    advs = [_pick(label_phrases(f, lab[f], "adv"), rng) for f in ("speaking_rate", "loudness") if f in lab]
    if rng is not None:
        rng.shuffle(advs)
    verb = _pick(label_phrases_verbs(), rng)
    emotion = _pick(label_phrases("emotion", lab["emotion"], "adj"), rng) if "emotion" in lab else None

    frame = 0 if rng is None or not adjs else rng.randrange(3)
    if frame == 1:
        # "A deep, raspy male voice speaks slowly."
        text = _voice_phrase(adjs, gender_adj, with_gender=True)
        text = text[0].upper() + text[1:] + f" {verb}"
        if advs:
            text += " " + _join_and(advs)
    elif frame == 2:
        # "A woman with a high-pitched, breathy voice talks quickly."
        text = f"{subject} with {_voice_phrase(adjs, gender_adj, False)} {verb}"
        if advs:
            text += " " + _join_and(advs)
    else:
        # "A man speaks slowly in a deep, raspy voice."
        text = f"{subject} {verb}"
        if advs:
            text += " " + _join_and(advs)
        if adjs:
            text += f" in {_voice_phrase(adjs, gender_adj, False)}"
    if emotion is not None:
        text += _emotion_tail(emotion, rng, bare=not (adjs or advs))
    text += "."
    if "clarity" in lab:
        text += " " + _pick(label_phrases("clarity", lab["clarity"], "sentence"), rng)
    return text


def label_phrases_verbs() -> list[str]:
    """Speaking verbs used by :func:`describe` (third person; the first is canonical)."""
    from .vocabulary import paraphrase_data

    return list(paraphrase_data()["verbs"])


_VOICE_GROUPS = ("pitch", "texture", "volume")  # adjectives of the voice itself
_DELIVERY_GROUPS = ("clarity", "rhythm")  # adjectives of how it is delivered


def describe_tags(
    intrinsic_tags: Sequence[str] = (),
    situational_tags: Sequence[str] = (),
    gender: str | None = None,
    rng: random.Random | None = None,
) -> str:
    """Compositional caption from ParaSpeechCaps tags (intrinsic + situational).

    Intrinsic tags of the pitch/texture/volume groups describe the voice ("a deep, husky voice"),
    clarity/rhythm tags the delivery ("with a slurred, hesitant delivery"), situational tags the
    tone ("sounding happy"). Unknown tags are described as delivery words.

    Args:
        intrinsic_tags: e.g. ``["deep", "husky", "flowing"]``.
        situational_tags: e.g. ``["happy"]``.
        gender: ``male``/``female`` (any spelling the label maps know) or None.
        rng: None for the canonical caption (every tag appears as written, except the nouns guilt,
            lisp and vocal-fry, which become guilty, lisping and creaky), else the phrase source.

    Returns:
        e.g. ``"A woman speaks in a deep, husky voice with a flowing delivery, sounding happy."``
    """
    group_of = {t: g for g, tags in intrinsic_groups().items() for t in tags}
    norm = [str(t).strip().lower() for t in intrinsic_tags if str(t).strip()]
    voice = [_pick(_adjective_forms(t), rng) for t in norm if group_of.get(t) in _VOICE_GROUPS]
    delivery = [_pick(_adjective_forms(t), rng) for t in norm if group_of.get(t) not in _VOICE_GROUPS]
    situ = [_pick(_adjective_forms(str(t).strip().lower()), rng) for t in situational_tags if str(t).strip()]
    g = map_label(gender, "gender") if gender is not None else None
    text = f"{_pick(label_phrases('gender', g, 'subject'), rng)} {_pick(label_phrases_verbs(), rng)}"
    if voice:
        text += f" in {_voice_phrase(voice, '', False)}"
    if delivery:
        words = ", ".join(delivery)
        text += f" with {_article(words)} {words} delivery"
    if situ:
        text += _emotion_tail(_join_and(situ), rng, bare=not (voice or delivery), after_with=bool(delivery))
    return text + "."


# Tags whose own name is not an adjective ("a guilt tone"): the caption uses the next paraphrase.
_NOUN_TAGS = frozenset({"guilt", "lisp", "vocal-fry"})


def _adjective_forms(tag: str) -> list[str]:
    forms = tag_paraphrases(tag)
    return forms[1:] if tag in _NOUN_TAGS and len(forms) > 1 else forms
