"""CUDA: a GPU gives the CPU's results (skipped without one; CI has none). On a GPU machine:
``python -m pytest tests/test_cuda.py``.

The tiny model (random, offline) stands in for every model: the device handling (weights, inputs,
masks and outputs moved; ``precision="auto"`` resolved to bf16 where the GPU computes it) is the same
code for all of them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TINY = str(Path(__file__).resolve().parents[1] / "configs" / "train" / "tiny.yaml")
CAPTIONS = ["A man speaks slowly.", "A woman whispers.", "A high, fast voice."]


def _on_cuda(model) -> bool:
    return all(p.device.type == "cuda" for p in model.parameters())


def test_fp32_on_cuda_gives_the_cpu_embeddings(tiny_dir, wav_files):
    from paraspeechclap import load_model

    cpu = load_model(str(tiny_dir), device="cpu", precision="fp32")
    gpu = load_model(str(tiny_dir), device="cuda", precision="fp32")
    assert _on_cuda(gpu) and gpu.precision == "fp32"
    a_cpu, a_gpu = cpu.embed_audio(wav_files), gpu.embed_audio(wav_files)
    t_cpu, t_gpu = cpu.embed_text(CAPTIONS), gpu.embed_text(CAPTIONS)
    assert isinstance(a_gpu, np.ndarray) and a_gpu.dtype == np.float32
    print(f"max |cpu - cuda|: audio {np.abs(a_cpu - a_gpu).max():.2e}, text {np.abs(t_cpu - t_gpu).max():.2e}")
    # cuDNN may run fp32 convolutions in TF32 (torch's default), about 1e-3 relative
    np.testing.assert_allclose(a_gpu, a_cpu, atol=2e-3)
    np.testing.assert_allclose(t_gpu, t_cpu, atol=1e-4)
    np.testing.assert_array_equal(np.argmax(a_gpu @ t_gpu.T, axis=1), np.argmax(a_cpu @ t_cpu.T, axis=1))


def test_auto_precision_on_a_bf16_gpu_is_bf16_and_close_to_fp32(tiny_dir, wav_files):
    from paraspeechclap import load_model

    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no native bf16")
    auto = load_model(str(tiny_dir), device="cuda")
    fp32 = load_model(str(tiny_dir), device="cuda", precision="fp32")
    assert auto.precision == "bf16" and _on_cuda(auto)
    cos = np.sum(auto.embed_audio(wav_files) * fp32.embed_audio(wav_files), axis=1)
    print(f"bf16 vs fp32 cosine: {cos.min():.5f}")
    assert cos.min() > 0.99


def test_tiny_recipe_trains_on_cuda_in_bf16_and_loads_on_the_cpu(tmp_path, wav_files):
    from paraspeechclap import load_model
    from paraspeechclap.cli.main import main
    from paraspeechclap.training.toy import write_tone_corpus

    train = write_tone_corpus(tmp_path / "train", 16, seed=0, speakers=4)
    out = tmp_path / "run"
    sets = [f"data.train_manifest={train}", "data.train=[]", "train.batch_size=4", f"train.output_dir={out}",
            "train.progress=false", "train.max_steps=6", "train.log_every=2", "train.device=cuda",
            "train.precision=bf16"]
    assert main(["train", "--config", TINY, *[a for s in sets for a in ("--set", s)]]) == 0
    losses = [json.loads(x)["train/loss"] for x in (out / "metrics.jsonl").read_text().splitlines()
              if "train/loss" in x]
    assert len(losses) == 3 and all(np.isfinite(losses))
    model = load_model(str(out / "final"), device="cpu", precision="fp32")
    emb = model.embed_audio(wav_files)
    assert emb.shape[0] == len(wav_files) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
