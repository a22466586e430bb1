"""Test setup: never reach a model hub; shared fixtures (tiny model, audio files)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _auto_precision_is_fp32():
    """``precision="auto"`` (the default) picks bf16 on CPUs with native bf16 and fp32 elsewhere;
    in-process tests compare against fp32 references and must not depend on the CI machine's
    CPU, so here auto means fp32. Tests that need bf16 ask for it (the shipped-model test runs
    both; test_inference checks the resolution itself)."""
    from paraspeechclap import inference

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(inference, "cpu_has_bf16", lambda cpuinfo=None: False)
        yield


@pytest.fixture(scope="session")
def tiny():
    from paraspeechclap.testing import tiny_model

    return tiny_model()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory, tiny):
    d = tmp_path_factory.mktemp("tiny_model")
    tiny.save_pretrained(d)
    return d


@pytest.fixture()
def wav_files(tmp_path):
    """Three short 16 kHz clips of different lengths and pitches."""
    import soundfile as sf

    from paraspeechclap.testing import tone

    paths = []
    for i, (sec, f0) in enumerate([(1.0, 120.0), (1.7, 220.0), (0.6, 330.0)]):
        p = tmp_path / f"clip{i}.wav"
        sf.write(p, tone(sec, f0, seed=i), 16000)
        paths.append(str(p))
    return paths


@pytest.fixture(scope="session")
def rng():
    return np.random.default_rng(0)
