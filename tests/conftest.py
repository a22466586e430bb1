"""Test setup: never reach a model hub; shared fixtures (tiny model, audio files)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_addoption(parser):
    parser.addoption(
        "--auto-precision", default="machine", choices=["machine", "bf16", "fp32", "other"],
        help="what precision='auto' resolves to in this run (sets PARASPEECHCLAP_AUTO_PRECISION, which "
             "subprocesses inherit): machine = leave it to the CPU (or an already set variable); other = "
             "the opposite of what this machine picks, so tests marked 'precision' run under both",
    )


def pytest_configure(config):
    from paraspeechclap.inference import AUTO_PRECISION_ENV, cpu_has_bf16

    choice = config.getoption("--auto-precision")
    if choice == "other":
        choice = "fp32" if cpu_has_bf16() else "bf16"
    if choice != "machine":
        os.environ[AUTO_PRECISION_ENV] = choice


def pytest_report_header(config):
    from paraspeechclap.inference import resolve_precision

    return f"precision='auto' resolves to {resolve_precision('auto', 'cpu')} in this run"


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
def shared_data() -> Path:
    """The shared real speech (``$PARASPEECHCLAP_SHARED_DATA`` or ``../shared/data``), which a recipe's
    manifests name; the test is skipped on a machine without it (CI has it beside its clone)."""
    from paraspeechclap.data.splits import find_shared_data
    from paraspeechclap.errors import InputError

    try:
        return find_shared_data()
    except InputError as exc:
        pytest.skip(f"the shared real speech is not here ({exc})")


@pytest.fixture(scope="session")
def benchmark_module():
    """``load(name)``: the script ``benchmarks/<name>.py`` imported as a module (registered in ``sys.modules``,
    which dataclasses defined in it need while it runs)."""
    import importlib.util
    import sys

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"{name}_bench", REPO / "benchmarks" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        return mod

    return load


@pytest.fixture(scope="session")
def rng():
    return np.random.default_rng(0)


@pytest.fixture()
def no_faiss(monkeypatch):
    """``import faiss`` fails, as on an install without the ``faiss`` extra."""
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("no faiss")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
