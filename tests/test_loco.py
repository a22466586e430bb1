"""benchmarks/loco.py: what a left-out run trains on, and how corpora are summarised."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def loco(benchmark_module: Any) -> Any:
    return benchmark_module("loco")


def test_a_left_out_run_excludes_the_corpus_from_every_real_source(loco: Any, tmp_path: Path, shared_data: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import paraspeechclap.training.loop as loop

    seen = {}
    monkeypatch.setattr(loop, "train", lambda cfg: seen.setdefault("cfg", cfg))
    loco.train_without("emodb", str(ROOT / "configs/train/lite.yaml"), tmp_path / "run", 100)
    cfg = seen["cfg"]
    real = [s for s in [*cfg.data.train, *cfg.data.dev] if s.manifest is not None]
    assert real and all(s.synth is None for s in real)
    for s in real:
        if s.repitch is not None:  # derived clips of the corpus are dropped after deriving, the corpus kept
            assert s.repitch.exclude == {"source": ["emodb"]} and "source" not in s.exclude
        else:
            assert s.exclude == {"source": ["emodb"]}
    assert sum(s.repitch is not None for s in real) == 4
    assert (cfg.train.max_steps, cfg.eval.every_steps, cfg.train.output_dir) == (100, 100, str(tmp_path / "run"))


def _corpus(uar4: float, classes4: int, recall_sad: float | None = 0.5) -> dict[str, Any]:
    scores = {"uar4": uar4, "classes4": classes4, "uar8": uar4 / 2, "classes8": classes4,
              "recall": {"neutral": 0.9, "sad": recall_sad, "happy": 0.4, "angry": 0.8}}
    return {m: dict(scores) for m in ("plain", "speaker", "collection")}


def test_a_finished_fold_is_reused_only_for_the_config_that_trained_it(loco: Any, tmp_path: Path, shared_data: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    import paraspeechclap.training.loop as loop
    from paraspeechclap.training.config import config_to_yaml

    trained = []
    monkeypatch.setattr(loop, "train", trained.append)
    config, run = str(ROOT / "configs/train/lite.yaml"), tmp_path / "run"
    loco.train_without("emodb", config, run, 100)
    (run / "final").mkdir(parents=True)
    (run / "final" / "config.json").write_text("{}")
    saved = yaml.safe_load(config_to_yaml(trained[0]))
    del saved["data"]["sampler"], saved["data"]["train"][0]["synth"]["n"]  # a fold saved before these keys existed

    def reuse(**changes: Any) -> Path:
        data = {**saved, "train": {**saved["train"], **changes}}
        (run / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        return loco.train_without("emodb", config, run, 100)

    assert reuse() == run / "final" and reuse(output_dir="elsewhere", progress=True) == run / "final"
    assert len(trained) == 1  # reused, not retrained
    with pytest.raises(SystemExit, match=r"another config than .*lite\.yaml \(train\.seed differ\)"):
        reuse(seed=1234)
    with pytest.raises(SystemExit, match=r"train\.max_steps"):
        loco.train_without("emodb", config, run, 200)


def test_summary_is_over_corpora_with_three_of_four_classes_and_not_the_apart_ones(loco: Any) -> None:
    per = {"a": _corpus(0.6, 4), "b": _corpus(0.4, 3, None), "c": _corpus(0.9, 2),
           "ucm_es": _corpus(0.1, 4), "emospeech_in": _corpus(0.1, 4)}
    chosen, apart = loco.selection_corpora(per)
    assert chosen == ["a", "b"]
    assert set(apart) == {"c", "ucm_es", "emospeech_in"} and apart["c"] == "2 of the 4 classes"
    s = loco.summarize(per, chosen)["plain"]
    assert s["uar4_mean"] == pytest.approx(0.5) and s["uar4_min"] == pytest.approx(0.4)
    assert s["uar8_mean"] == pytest.approx(0.25)
    assert s["recall"]["sad"] == pytest.approx(0.5)  # b has no sad clips: averaged over the corpora that do


def test_plain_leaves_embeddings_and_speaker_mode_centres_each_speaker(loco: Any, tiny: Any) -> None:
    pooled = np.random.default_rng(0).standard_normal((5, tiny.audio_branch.hidden_size)).astype(np.float32)
    emb = tiny.embed_pooled(pooled)
    spk = ["x", "x", "y", "y", "z"]  # z has one clip: centred on the corpus's mean
    assert loco.centred(tiny, pooled, emb, "plain", spk) is emb
    got = loco.centred(tiny, pooled, emb, "speaker", spk)
    want = emb.astype(np.float64).copy()
    want[[0, 1]] -= emb[[0, 1]].mean(axis=0)
    want[[2, 3]] -= emb[[2, 3]].mean(axis=0)
    want[4] -= emb.mean(axis=0)
    np.testing.assert_allclose(got, want / np.linalg.norm(want, axis=1, keepdims=True), atol=1e-6)
    coll = emb - emb.mean(axis=0)
    np.testing.assert_allclose(loco.centred(tiny, pooled, emb, "collection", spk),
                               coll / np.linalg.norm(coll, axis=1, keepdims=True), atol=1e-6)


def test_posthoc_files_count_each_variant_they_scored(loco: Any, tmp_path: Path) -> None:
    import json

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"runs": {"v18": {"summary": {"own head": {}, "fitted head": {}}}}}))
    b.write_text(json.dumps({"runs": "runs/loco", "summary": {}}))
    assert loco.posthoc_entry(str(a))["variants"] == ["v18: fitted head", "v18: own head"]
    assert loco.posthoc_entry(str(b))["variants"] == ["b"]
    c = tmp_path / "c.json"  # centred_head_steps.py: one run, its variants named at the top
    c.write_text(json.dumps({"runs": "runs/loco", "variants": ["centred head fitted 25 steps"]}))
    assert loco.posthoc_entry(str(c))["variants"] == ["centred head fitted 25 steps"]


def test_fold_dev_reads_the_last_dev_evaluation(loco: Any, tmp_path: Path) -> None:
    import json

    lines = [{"step": 500, "train/loss": 1.0},
             {"step": 500, "val/emotion/uar": 0.5, "val/audio_to_text/R@1": 0.4, "val/audio_to_text/R@5": 0.9},
             {"step": 1000, "train/loss": 0.8},
             {"step": 1000, "val/emotion/uar": 0.7, "val/gender/uar": 0.9, "val/audio_to_text/R@1": 0.6,
              "val/clips": 12.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert loco.fold_dev(tmp_path) == {"audio_to_text/R@1": 0.6, "emotion/uar": 0.7, "gender/uar": 0.9}
