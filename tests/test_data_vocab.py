"""Vocabulary, label maps, paraphrase sets and attribute sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paraspeechclap.data.attributes import AttributeSet, get_attribute_set, list_attribute_sets, register_attribute_set
from paraspeechclap.data.vocabulary import (
    intrinsic_groups,
    label_values,
    labels_to_tags,
    map_label,
    situational_tags,
    tag_paraphrases,
)
from paraspeechclap.errors import InputError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Every emotion spelling in the two shared manifests -> ParaSpeechCaps word (hand-written).
EMOTION_EXPECTED = {
    "anger": "angry", "angry": "angry", "joy": "happy", "happiness": "happy", "happy": "happy",
    "sad": "saddened", "sadness": "saddened", "fear": "scared", "fearful": "scared",
    "disgust": "disgusted", "disgusted": "disgusted", "bored": "bored", "boredom": "bored",
    "surprise": "awed", "surprised": "awed", "amused": "laughing", "sleepy": "sleepy",
    "whisper": "whispered", "high emotion": "animated", "low emotion": "passive", "neutral": "neutral",
    "drunk": None,
}  # fmt: skip


@pytest.mark.parametrize("raw, expected", sorted(EMOTION_EXPECTED.items()))
def test_emotion_label_map(raw, expected):
    assert map_label(raw, "emotion") == expected
    assert map_label(f"  {raw.upper()} ", "emotion") == expected  # case and spaces do not matter


def test_other_label_maps():
    assert map_label("F", "gender") == "female" and map_label("man", "gender") == "male"
    assert map_label("unknown", "gender") is None and map_label(None, "gender") is None
    assert map_label(float("nan"), "emotion") is None
    assert map_label("high pitched", "pitch_level") == "high-pitched"
    assert map_label("vocal fry", "voice_quality") == "creaky"
    assert map_label("banana", "emotion") is None
    with pytest.raises(InputError, match="unknown label field"):
        map_label("x", "colour")


@pytest.mark.skipif(not (SHARED / "real2" / "manifest.jsonl").exists(), reason="shared data absent")
def test_label_map_agrees_with_the_data_providers_tags():
    """The shared manifests carry the providers' own mapping in situational_tags: ours must agree."""
    spellings = set()
    for name in ("real", "real2"):
        for line in (SHARED / name / "manifest.jsonl").read_text().splitlines():
            row = json.loads(line)
            spellings.add(row["emotion"])
            mapped = map_label(row["emotion"], "emotion")
            if row["situational_tags"]:
                assert [mapped] == row["situational_tags"], row
            else:
                assert mapped in ("neutral", None), row
    assert spellings <= set(EMOTION_EXPECTED)  # the table above covers every spelling


def test_vocabulary_contents():
    assert label_values("pitch_level") == ["deep", "medium", "high-pitched"]
    assert label_values("speaking_rate") == ["slow", "measured", "fast"]
    assert label_values("loudness") == ["soft", "normal", "loud"]
    assert label_values("voice_quality") == ["modal", "whispered", "breathy", "raspy", "creaky"]
    assert label_values("clarity") == ["crisp", "muffled", "reverberant", "telephone"]
    assert label_values("gender") == ["male", "female"]
    groups = intrinsic_groups()
    assert groups["texture"] == ["silky", "husky", "raspy", "guttural", "vocal-fry"]
    assert sum(len(g) for g in groups.values()) == 28
    assert len(situational_tags()) == 24 and "whispered" in situational_tags()


def test_labels_to_tags():
    labels = {"pitch_level": "deep", "speaking_rate": "slow", "loudness": "soft", "voice_quality": "raspy",
              "clarity": "muffled", "gender": "male"}  # fmt: skip
    assert labels_to_tags(labels) == (["deep", "slow", "soft", "raspy", "muffled"], [])
    neutral = {"pitch_level": "medium", "speaking_rate": "measured", "loudness": "normal", "voice_quality": "modal",
               "clarity": "crisp", "emotion": "neutral"}  # fmt: skip
    assert labels_to_tags(neutral) == ([], [])
    assert labels_to_tags({"voice_quality": "creaky"}) == (["vocal-fry"], [])
    assert labels_to_tags({"voice_quality": "whispered", "emotion": "anger"}) == ([], ["whispered", "angry"])
    with pytest.raises(InputError, match="pitch_level"):
        labels_to_tags({"pitch_level": "purple"})


def test_paraphrase_sets_cover_every_tag_and_do_not_collide():
    for tag in [t for g in intrinsic_groups().values() for t in g] + situational_tags():
        phr = tag_paraphrases(tag)
        assert phr[0] == tag and len(phr) >= 5 and len(set(phr)) == len(phr), tag
    for name in list_attribute_sets():
        aset = get_attribute_set(name)
        owner: dict[str, str] = {}
        for label, prompts in aset.prompts(ensemble=True).items():
            for p in prompts:
                assert owner.setdefault(p, label) == label, f"{name}: {p!r} under {owner[p]} and {label}"


OFFICIAL_ORDER = {
    "pitch": ["shrill", "nasal", "deep"],
    "texture": ["silky", "husky", "raspy", "guttural", "vocal-fry"],
    "volume": ["booming", "authoritative", "loud", "hushed", "soft"],
    "clarity": ["crisp", "slurred", "lisp", "stammering"],
    "rhythm": ["flowing", "punctuated", "hesitant", "singsong", "monotonous"],
    "situational": ["angry", "guilt", "scared", "happy", "loud", "sarcastic", "sympathetic", "desirous",
                    "enthusiastic", "saddened", "anxious", "sleepy", "admiring", "disgusted", "awed", "pained",
                    "fast", "calm", "whispered", "enunciated", "confused"],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(OFFICIAL_ORDER))
def test_official_sets(name):
    aset = get_attribute_set(name)
    assert list(aset.candidates) == OFFICIAL_ORDER[name] and aset.field == "classification_tag" and aset.official
    prompts = aset.prompts()
    first = OFFICIAL_ORDER[name][0]
    assert prompts[first] == [f"A person is speaking in a {first} style."]
    assert aset.gold({"classification_tag": f" {first.upper()} "}) == first
    assert aset.gold({"classification_tag": "purple"}) is None and aset.gold({}) is None
    # a row labelled for several sets (tag-recipe corpora) names each set's tag; a dropped one stays dropped
    last = OFFICIAL_ORDER[name][-1]
    assert aset.gold({f"classification_{name}": last, "classification_tag": first}) == last
    assert aset.gold({f"classification_{name}": None, "classification_tag": first}) is None
    assert aset.gold({"classification_other": last}) is None


def test_our_sets_prompts_and_gold():
    assert get_attribute_set("gender").prompts() == {"male": ["A man is speaking."], "female": ["A woman is speaking."]}
    assert get_attribute_set("pitch_level").prompts()["medium"] == ["A person is speaking in a medium-pitched voice."]
    assert list(get_attribute_set("emotion8").candidates) == [
        "angry", "happy", "saddened", "scared", "disgusted", "bored", "awed", "neutral"]  # fmt: skip
    emo = get_attribute_set("emotion")
    assert emo.gold({"emotion": "sadness"}) == "saddened" and emo.gold({"emotion": "fear"}) is None
    assert get_attribute_set("emotion8").gold({"emotion": "fear"}) == "scared"
    assert emo.gold({"situational_tags": ["angry"]}) == "angry" and emo.gold({"emotion": "drunk"}) is None
    assert get_attribute_set("gender").gold({"gender": "F"}) == "female"
    w = get_attribute_set("whisper")
    assert w.gold({"emotion": "whisper"}) == "whispered" and w.gold({"voice_quality": "raspy"}) == "voiced"
    assert w.gold({"situational_tags": []}) == "voiced" and w.gold({"source": "x"}) is None
    ens = get_attribute_set("loudness").prompts(ensemble=True)
    assert ens["soft"][0] == "A person is speaking softly." and len(ens["soft"]) > 5
    custom = get_attribute_set("gender").prompts(template="Voice of {}.")
    assert custom == {"male": ["Voice of A man."], "female": ["Voice of A woman."]}
    with pytest.raises(InputError, match="placeholder"):
        get_attribute_set("gender").prompts(template="no slot")


def test_registry():
    with pytest.raises(InputError, match="unknown attribute set 'colour'.*pitch"):
        get_attribute_set("colour")
    aset = AttributeSet("test_age", ("young", "old"), "age_group", ("A {} person speaks.",))
    register_attribute_set(aset, overwrite=True)
    assert get_attribute_set("test_age").prompts() == {
        "young": ["A young person speaks."],
        "old": ["A old person speaks."],
    }
    with pytest.raises(InputError, match="already exists"):
        register_attribute_set(aset)
    assert "test_age" in list_attribute_sets(official=False) and "test_age" not in list_attribute_sets(official=True)
