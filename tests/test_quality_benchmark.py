"""``benchmarks/quality.py``'s evaluation of one manifest: the plain scores do not depend on whether the centred
scores are also asked for (which pools the clips once and projects the pooled features)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from paraspeechclap.data.manifest import Manifest
from paraspeechclap.testing import tone


@pytest.fixture(scope="module")
def quality(benchmark_module: Any) -> Any:
    return benchmark_module("quality")


def _manifest(root: Path) -> Manifest:
    rows = []
    for i in range(8):
        source, speaker = ("corpA", f"a{i % 2}") if i < 5 else ("corpB", "b0")
        rel = f"{speaker}/{i}.wav"
        (root / source / speaker).mkdir(parents=True, exist_ok=True)
        sf.write(root / source / rel, tone(0.6 + 0.1 * i, 110.0 + 25 * i, seed=i), 16000)
        rows.append({"source": source, "relative_audio_path": rel, "speaker": speaker,
                     "gender": ("male", "female")[i % 2], "situational_tags": [("Happy", "Sad", "Angry")[i % 3]],
                     "intrinsic_tags": [], "text_description": "A voice."})
    return Manifest(rows, root, "mem")


def test_plain_scores_are_the_same_with_and_without_the_centred_ones(quality: Any, tiny: Any, tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    sets = ["gender", "emotion"]
    alone = quality.evaluate(tiny, manifest, sets, ensemble=False, retrieval=False, prefix="real")
    both = quality.evaluate(tiny, manifest, sets, ensemble=False, retrieval=False, prefix="real", centred=True)
    assert set(both) == {"real", "real/center=speaker", "real/center=collection"} and set(alone) == {"real"}
    for name in sets:
        np.testing.assert_allclose(both["real"][name]["uar"], alone["real"][name]["uar"])
        np.testing.assert_array_equal(both["real"][name]["confusion"], alone["real"][name]["confusion"])
