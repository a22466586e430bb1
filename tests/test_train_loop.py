"""The trainer end to end on the tiny recipe: outputs, resumption after SIGKILL (from outside, see
crash.py), bad items."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from paraspeechclap.cli.main import main
from paraspeechclap.training.checkpoint import is_valid_checkpoint, list_checkpoints, load_training_checkpoint

from crash import kill_run, metrics_reached, start_run, wait_until  # tests/crash.py

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "train" / "tiny.yaml")


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> dict[str, str]:
    from paraspeechclap.training.toy import write_tone_corpus

    root = tmp_path_factory.mktemp("toy")
    train = write_tone_corpus(root / "train", 24, seed=0, speakers=6)
    dev = write_tone_corpus(root / "dev", 8, seed=1, speakers=2, speaker_offset=10)
    return {"train": str(train), "dev": str(dev)}


def _args(toy: dict[str, str], out: Path, *extra: str) -> list[str]:
    sets = [f"data.train_manifest={toy['train']}", "data.train=[]", "train.batch_size=4", "train.num_threads=1",
            f"train.output_dir={out}", "train.progress=false", *extra]
    return ["train", "--config", TINY, *[a for s in sets for a in ("--set", s)]]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_tiny_run_writes_a_loadable_model_and_logs(toy, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    args = _args(toy, out, f"data.dev_manifest={toy['dev']}", "data.dev=[]", "train.max_steps=8",
                 "train.checkpoint_every=4", "eval.every_steps=4", "train.log_every=2",
                 "eval.best_metric=val/gender/uar")
    assert main(args) == 0
    assert "trained 8 steps" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_metric"] == "val/gender/uar" and summary["best_step"] in (4, 8)
    n_train = sum(1 for line in Path(toy["train"]).read_text().splitlines() if line.strip())
    assert [s["rows"] for s in summary["train_sources"]] == [n_train]  # what trained the model, in the summary
    # resolved config beside the run, and inside every checkpoint
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["train"]["max_steps"] == 8 and saved["data"]["dev"][0]["manifest"] == toy["dev"]
    steps = [s for s, _ in list_checkpoints(out / "checkpoints")]
    assert steps == [8, 4]
    state = load_training_checkpoint(out / "checkpoints" / "step_00000008.pt")
    assert state["config"] == saved and state["step"] == 8
    # metrics: train lines every 2 steps, dev metrics at steps 4 and 8 (fractions)
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "train/loss" in x] == [2, 4, 6, 8]
    val = [x for x in lines if "val/audio_to_text/R@1" in x]
    assert [x["step"] for x in val] == [4, 8]
    # every dev metric logged is one the config knows (what eval.best_metric is checked against)
    from paraspeechclap.training.metric_names import dev_metric_names

    assert {k for x in val for k in x if k.startswith("val/")} <= set(dev_metric_names(["gender", "loudness"]))
    assert all(0.0 <= x["val/audio_to_text/R@1"] <= 1.0 and 0.0 <= x["val/gender/uar"] <= 1.0 for x in val)
    assert all(x["train/samples_per_s"] > 0 for x in lines if "train/loss" in x)
    # the final model is the trained one and loads by path
    import paraspeechclap

    model = paraspeechclap.load_model(str(out / "final"))
    final = _weights(out / "final")
    for k, v in state["model"].items():
        torch.testing.assert_close(final[k], v)
    emb = model.embed_text(["A man speaks slowly."])
    assert emb.shape == (1, 16) and np.isclose(np.linalg.norm(emb), 1.0)
    assert (out / "best" / "model.safetensors").is_file() and (out / "summary.json").is_file()
    # a second fresh run into the same folder is refused (it would mix two runs)
    assert main(args) == 2
    assert "--resume auto" in capsys.readouterr().err


def test_best_metric_selects_best_but_does_not_change_the_final_weights(toy, tmp_path: Path) -> None:
    common = [f"data.dev_manifest={toy['dev']}", "data.dev=[]", "train.max_steps=4", "eval.every_steps=2",
              "train.checkpoint_every=4"]
    finals = []
    for metric in ("val/audio_to_text/R@1", "val/loudness/accuracy"):
        out = tmp_path / metric.replace("/", "-")
        assert main(_args(toy, out, *common, f"eval.best_metric={metric}")) == 0
        assert json.loads((out / "best" / "metrics.json").read_text())["step"] in (2, 4)
        finals.append(_weights(out / "final"))
    assert finals[0].keys() == finals[1].keys()
    for k in finals[0]:
        torch.testing.assert_close(finals[1][k], finals[0][k], rtol=0, atol=0, msg=k)


def _run_cli(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "paraspeechclap", *args], check=False, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120, cwd=REPO)


@pytest.mark.slow
def test_sigkill_and_resume_gives_the_uninterrupted_weights(toy, tmp_path: Path) -> None:
    common = ["train.max_steps=40", "train.checkpoint_every=8", "eval.every_steps=null", "eval.at_end=false",
              "data.dev=[]", "model.projection_dropout=0.3", "train.log_every=1"]  # dropout: the RNG must be restored
    ref, crashed = tmp_path / "ref", tmp_path / "crashed"
    assert main(_args(toy, ref, *common)) == 0
    # SIGKILLed from outside once step 9 is logged: the step-8 checkpoint is complete (it is written
    # before step 9 runs) and the log holds lines past it, which the resumed run must drop. 31 steps
    # remain, so the kill lands long before the run could finish.
    log = tmp_path / "crashed.log"
    proc = start_run([sys.executable, "-m", "paraspeechclap", *_args(toy, crashed, *common)], REPO,
                     {**os.environ, "HF_HUB_OFFLINE": "1"}, log)
    wait_until(proc, metrics_reached(crashed / "metrics.jsonl", 9), "step 9 in metrics.jsonl", log)
    assert kill_run(proc) == -9
    assert not (crashed / "final").exists()
    newest = next(s for s, p in list_checkpoints(crashed / "checkpoints") if is_valid_checkpoint(p))
    assert 8 <= newest < 40
    # a half-written newer checkpoint (no sidecar, truncated) must be ignored
    (crashed / "checkpoints" / "step_00000039.pt").write_bytes(b"PK\x03\x04 truncated")
    resumed = _run_cli([*_args(toy, crashed, *common), "--resume", "auto"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = _weights(ref / "final"), _weights(crashed / "final")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6, msg=k)
    # the log reads like one run: no duplicated steps after the resume
    steps = [json.loads(x)["step"] for x in (crashed / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 41))


def _corrupt_corpus(toy: dict[str, str], tmp_path: Path) -> Path:
    """The toy train manifest plus three unreadable rows (missing, corrupt, silent)."""
    rows = [json.loads(x) for x in Path(toy["train"]).read_text().splitlines()]
    audio = Path(toy["train"]).parent
    bad_dir = tmp_path / "toy"
    bad_dir.mkdir()
    (bad_dir / "corrupt.wav").write_bytes(b"garbage" * 50)
    sf.write(bad_dir / "silent.wav", np.zeros(16000, np.float32), 16000)
    out = [dict(r, relative_audio_path=str((audio / "toy" / r["relative_audio_path"]).resolve())) for r in rows]
    for name in ("missing.wav", "corrupt.wav", "silent.wav"):
        out.append(dict(rows[0], relative_audio_path=str(bad_dir / name)))
    path = tmp_path / "with_bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in out))
    return path


def test_bad_items_are_skipped_counted_and_limited(toy, tmp_path: Path, capsys) -> None:
    manifest = _corrupt_corpus(toy, tmp_path)
    # "/" as audio root: relative_audio_path holds absolute paths here
    base = [f"data.train_manifest={manifest}", "data.audio_root=/", "data.dev=[]", "eval.at_end=false",
            "train.epochs=1", "train.max_steps=null", "train.checkpoint_every=100"]
    assert main([*_args(toy, tmp_path / "ok", *base), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["bad_items"] == 3 and summary["steps"] == 7  # 27 rows / batch 4, every row visited once
    assert main(_args(toy, tmp_path / "strict", *base, "data.max_bad_items=1")) == 2
    assert "data.max_bad_items=1" in capsys.readouterr().err


def test_features_seed_fixes_the_cached_variants_across_training_seeds(toy, tmp_path: Path, monkeypatch) -> None:
    # features.seed (default: train.seed) seeds the cached augmented variants and is part of their
    # cache key: runs that differ only in train.seed share the cache when it is fixed.
    from paraspeechclap.training import loop

    seen: list[tuple[int, int]] = []
    real = loop.build_feature_table

    def spy(reqs, encoder, root, pipeline, **kwargs):
        table = real(reqs, encoder, root, pipeline, **kwargs)
        if pipeline is not None:  # the training clips (dev clips have no augmentation)
            seen.append((kwargs["seed"], table.computed))
        return table

    monkeypatch.setattr(loop, "build_feature_table", spy)
    common = ["model.audio_trainable=[]", "features.cache=true", "features.variants=2", "augment.gain_db=[-6.0,6.0]",
              f"features.cache_dir={tmp_path / 'features'}", "train.max_steps=2", "eval.every_steps=null"]
    for i, extra in enumerate((["train.seed=1", "features.seed=7"], ["train.seed=2", "features.seed=7"],
                               ["train.seed=2"])):
        assert main(_args(toy, tmp_path / f"run{i}", *common, *extra)) == 0
    assert [s for s, _ in seen] == [7, 7, 2]
    computed = [c for _, c in seen]
    assert computed[0] == 24 and computed[1] == 0 and computed[2] == 24, computed
