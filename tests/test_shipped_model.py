"""The embedded default model (ParaSpeechCLAP-Lite) loads offline and still hears the example clips'
known styles (labels from the synthesis parameters and the corpus, examples/labels.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
LABELS = json.loads((EXAMPLES / "labels.json").read_text())

#: (attribute set, label field, clips): the predictions the shipped model must get right. The full
#: table, errors included, is in MODEL_CARD.md.
CHECKED = [
    ("speaking_rate", "speaking_rate", [k for k in LABELS if k.startswith("synth_")]),
    ("gender", "gender", [k for k in LABELS if k != "synth_whispered.flac"]),
    ("pitch_level", "pitch_level", ["synth_deep.flac", "synth_high-pitched.flac"]),
    ("emotion", "emotion", ["thorsten_angry.flac", "thorsten_neutral.flac"]),
    ("voice_quality", "voice_quality", ["synth_whispered.flac"]),
    ("loudness", "loudness", ["synth_loud.flac"]),
]


@pytest.fixture(scope="module", params=["fp32", "bf16"])
def lite(request):
    """Both precisions "auto" may pick (bf16 where the CPU computes it natively)."""
    from paraspeechclap import load_model

    return load_model(precision=request.param)


def test_lite_loads_offline_from_the_package(lite):
    from paraspeechclap.pretrained import EMBEDDED_DIR, file_checksum

    assert lite.model_id == "lite"
    assert lite.checksum == file_checksum(EMBEDDED_DIR / "lite" / "model.safetensors")
    weights = EMBEDDED_DIR / "lite" / "model.safetensors"
    assert weights.stat().st_size < 25 * 1024 * 1024  # only the trained heads are shipped


@pytest.mark.parametrize("set_name,field,clips", CHECKED, ids=[c[0] for c in CHECKED])
def test_lite_predicts_the_known_styles_of_the_examples(lite, set_name, field, clips):
    from paraspeechclap.data.attributes import get_attribute_set
    from paraspeechclap.evaluation.classification import embed_class_prompts

    aset = get_attribute_set(set_name)
    prompts = aset.prompts(ensemble=True)
    classes = embed_class_prompts(lite, prompts, aset.candidates)
    scores = lite.embed_audio([str(EXAMPLES / c) for c in clips]) @ classes.T
    predicted = [aset.candidates[i] for i in scores.argmax(1)]
    gold = [aset.gold(LABELS[c]) for c in clips]
    assert predicted == gold, list(zip(clips, gold, predicted))
