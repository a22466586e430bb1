"""benchmarks/block_cost.py: each variant is the shipped encoder with other blocks; the estimate's arithmetic."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="module")
def cost(benchmark_module: Any) -> Any:
    return benchmark_module("block_cost")


def test_the_whole_model_estimate_swaps_the_encoder_time(cost: Any) -> None:
    # model 50 ms per 5 s clip, shipped encoder 40 ms, variant 50 ms -> 60 ms per clip -> 5 / 0.06 x real time
    assert cost.estimated_model_rtf(5 / 0.050, 5 / 0.050, 5 / 0.040) == pytest.approx(5 / 0.060)
    assert cost.estimated_model_rtf(100.0, 125.0, 125.0) == pytest.approx(100.0)  # the shipped blocks: unchanged


def test_the_shipped_block_set_is_the_shipped_encoder_and_others_run_to_their_last_block(cost: Any) -> None:
    import torch

    from paraspeechclap import load_model
    from paraspeechclap.testing import tone
    from paraspeechclap.training.features import frozen_features

    model = load_model("lite", precision="fp32")
    spec = model.config.audio_encoder
    enc = cost.encoder(spec, cost.BLOCK_SETS[cost.SHIPPED_NAME], "fp32")
    assert enc.spec() == model.audio_branch.spec()
    clip = tone(2.0, 150)
    with torch.inference_mode():
        got = frozen_features(enc, [enc.prepare(clip)], 1)[0]
        ref = frozen_features(model.audio_branch, [model.audio_branch.prepare(clip)], 1)[0]
    assert torch.equal(got, ref)
    depths = [len(cost.encoder(spec, {"layers": b}, "fp32").base.layers) for b in [[3, 4, 5], [1, 2, 3, 4, 5, 6]]]
    assert depths == [5, 6]
    assert cost.encoder(spec, {"layers": [1, 2]}, "bf16").base.conv1.weight.dtype == torch.bfloat16
    merged = cost.encoder(spec, cost.BLOCK_SETS["3-5, merged after block 1"], "fp32")
    assert (merged.layers, merged.merge_after, merged.merge_factor) == ([3, 4, 5], 1, 2)
    assert all(set(o) <= {"layers", "merge_after"} for o in cost.BLOCK_SETS.values())
