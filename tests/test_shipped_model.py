"""The embedded default model (ParaSpeechCLAP-Lite) loads offline and holds its regression floors.

The regression set (:mod:`paraspeechclap.evaluation.regression`): the example clips' known labels,
synthetic clips made here from held-out voices and sentences (Kokoro included: an engine the model
never heard), and the shared real test speakers. Each score must stay at or above its floor in
``tests/shipped_model_floors.json`` (measured by ``benchmarks/regression.py`` minus a stated margin;
MODEL_CARD.md lists them, and a floor is never lowered without a model-card note saying why).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

FLOORS = json.loads((Path(__file__).resolve().parent / "shipped_model_floors.json").read_text())
PARTS = sorted({k.split("/")[0] for k in FLOORS["floors"]})


def _skip_reason(part: str) -> str | None:
    needs = {"synthetic": ("espeakng_loader", "kokoro_onnx"), "official": ("espeakng_loader", "kokoro_onnx", "pyworld")}
    if any(importlib.util.find_spec(m) is None for m in needs.get(part, ())):
        return "the synth extra (eSpeak NG, Kokoro, WORLD) is not installed"
    if part == "real_test":
        from paraspeechclap.data.splits import find_shared_data
        from paraspeechclap.errors import InputError

        try:
            find_shared_data()
        except InputError:
            return "the shared real speech (../shared/data) is not present"
    return None


@pytest.fixture(scope="module", params=["fp32", pytest.param("auto", marks=pytest.mark.precision)])
def lite(request):
    """fp32 (the reference) and whatever this run resolves ``auto`` to (bf16 on CPUs with it)."""
    from paraspeechclap import load_model

    return load_model(precision=request.param)


def test_lite_loads_offline_from_the_package(lite):
    from paraspeechclap.pretrained import EMBEDDED_DIR, file_checksum

    assert lite.model_id == "lite"
    assert lite.checksum == file_checksum(EMBEDDED_DIR / "lite" / "model.safetensors")
    weights = EMBEDDED_DIR / "lite" / "model.safetensors"
    assert weights.stat().st_size < 25 * 1024 * 1024  # only the trained heads are shipped


def test_floors_belong_to_the_shipped_weights():
    from paraspeechclap.pretrained import EMBEDDED_DIR, file_checksum

    assert FLOORS["model_checksum"] == file_checksum(EMBEDDED_DIR / "lite" / "model.safetensors"), \
        "new weights: re-measure with benchmarks/regression.py --write-floors (see its docstring)"


@pytest.mark.slow
@pytest.mark.parametrize("part", PARTS)
def test_lite_holds_its_regression_floors(lite, part):
    from paraspeechclap.evaluation.regression import regression_scores

    reason = _skip_reason(part)
    if reason:
        pytest.skip(reason)
    scores = regression_scores(lite, parts=[part])
    floors = {k: v["floor"] for k, v in FLOORS["floors"].items() if k.startswith(part + "/")}
    assert set(floors) <= set(scores), sorted(set(floors) - set(scores))
    below = {k: (round(scores[k], 4), f) for k, f in floors.items() if scores[k] < f}
    assert not below, f"{lite.precision}: below the floor (score, floor): {below}"


def test_audio_only_load_embeds_the_same_and_refuses_text(lite):
    import numpy as np

    from paraspeechclap import load_model
    from paraspeechclap.errors import InputError, ModelError

    audio_only = load_model(precision=lite.precision, branches="audio")
    assert not audio_only.has_text and lite.has_text
    assert audio_only.checksum == lite.checksum
    rng = np.random.default_rng(0)
    clips = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (8000, 23000)]
    np.testing.assert_array_equal(audio_only.embed_audio(clips, sample_rate=16000),
                                  lite.embed_audio(clips, sample_rate=16000))
    with pytest.raises(ModelError, match="embeds audio only"):
        audio_only.embed_text(["a calm voice"])
    with pytest.raises(InputError, match="branches"):
        load_model(branches="text")
