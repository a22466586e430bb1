"""benchmarks/centred_shrink.py: speaker means shrunk towards the collection's through the model's own
``center="speaker"``, the prior saved with the model (the arithmetic itself is pinned in
tests/test_centering.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from paraspeechclap.testing import tiny_model, tiny_model_with_centred_head


@pytest.fixture(scope="module")
def shrink(benchmark_module: Any) -> Any:
    return benchmark_module("centred_shrink")


def test_at_k_zero_the_embeddings_are_the_models_own_speaker_centring(shrink: Any) -> None:
    model = tiny_model_with_centred_head(3)
    pooled = np.random.default_rng(1).standard_normal((6, model.audio_branch.hidden_size)).astype(np.float32)
    spk = ["p", "p", "q", "q", "q", "r"]
    got = shrink.shrunk_embeddings(model, pooled, spk, [0.0, 4.0])
    np.testing.assert_allclose(got[0.0], model.embed_pooled(pooled, "speaker", spk, reference=pooled), atol=1e-5)
    assert np.allclose(np.linalg.norm(got[4.0], axis=1), 1.0, atol=1e-5)
    assert not np.allclose(got[4.0], got[0.0], atol=1e-3)  # shrinking moves them
    assert model.config.speaker_prior == 0.0  # the model's own prior is left as it was


def test_the_models_speaker_prior_centres_as_the_benchmark_measured(shrink: Any, tmp_path: Any) -> None:
    from paraspeechclap.pretrained import load_model

    model = tiny_model_with_centred_head(4)
    pooled = np.random.default_rng(2).standard_normal((7, model.audio_branch.hidden_size)).astype(np.float32)
    spk = ["p", "p", "q", "q", "q", "r", "p"]  # r alone: centred on the shrunk mean like the rest
    want = shrink.shrunk_embeddings(model, pooled, spk, [4.0])[4.0]
    model.set_speaker_prior(4)
    np.testing.assert_allclose(model.embed_pooled(pooled, "speaker", spk), want, atol=1e-5)
    model.save_pretrained(tmp_path / "m")  # the prior is part of the saved model
    again = load_model(str(tmp_path / "m"), precision="fp32")
    assert again.config.speaker_prior == 4.0
    np.testing.assert_allclose(again.embed_pooled(pooled, "speaker", spk), want, atol=1e-5)


def test_a_bad_speaker_prior_in_a_config_is_named() -> None:
    from paraspeechclap.config import ModelConfig
    from paraspeechclap.errors import ConfigError

    base = tiny_model().config.to_dict()
    assert "speaker_prior" not in base  # written only when set: older models keep their config.json
    assert ModelConfig.from_dict({**base, "speaker_prior": 4}).speaker_prior == 4
    for bad in (-1, "4", float("nan"), True):
        with pytest.raises(ConfigError, match="config: speaker_prior must be a finite number"):
            ModelConfig.from_dict({**base, "speaker_prior": bad})
