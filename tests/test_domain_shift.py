"""Corpus-offset augmentation of cached features (training.domain_shift): the arithmetic against a
hand-written reference, what never moves, the dataset hook and a training run that uses it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from test_train_data import StubEncoder, _manifest  # tests/test_train_data.py
from test_train_loop import _args, toy  # noqa: F401  (toy is a fixture)

from paraspeechclap.cli.main import main
from paraspeechclap.training.augment import ClipPipeline
from paraspeechclap.training.config import AugmentConfig, DomainShiftConfig, SourceConfig
from paraspeechclap.training.data import TrainDataset, load_source
from paraspeechclap.training.domain_shift import DomainShift, domain_groups, domain_means, row_domain
from paraspeechclap.training.features import FeatureTable


def _v(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def test_domain_means_average_each_clips_variants_then_the_clips() -> None:
    clips = [("a", [_v(1, 2, 9), _v(3, 4, 9)]),  # clip mean (2, 3)
             ("a", [_v(6, 7, 9)]),               # (6, 7)
             ("b", [_v(10, 0, 9)]), ("b", [_v(20, 2, 9)]),
             ("c", [_v(5, 5, 9)]),               # one clip: below min_clips
             (None, [_v(100, 100, 9)]),          # no domain
             ("s", [_v(0, 0, 9)]), ("s", [_v(1, 1, 9)])]  # skipped
    means = domain_means(clips, width=2, min_clips=2, skip=["s"])
    assert sorted(means) == ["a", "b"]
    # hand-written: a = mean((2, 3), (6, 7)) = (4, 5); b = (15, 1); only the first `width` entries
    assert torch.equal(means["a"], _v(4, 5)) and torch.equal(means["b"], _v(15, 1))
    assert domain_means(clips, width=None, min_clips=1)["c"].shape == (3,)


def test_a_moved_clip_takes_the_other_domains_offset_and_keeps_its_measurements() -> None:
    means = {"a": _v(4, 5), "b": _v(15, 1)}
    x = _v(1, 1, 7)  # two backbone entries, then a measurement (a level) that must not move
    out = DomainShift(means, prob=1.0, scale=(1.0, 1.0), width=2)(x, "a", random.Random(0))
    assert torch.equal(out, _v(1 - 4 + 15, 1 - 5 + 1, 7))  # x - mu[a] + mu[b]
    assert torch.equal(x, _v(1, 1, 7))  # the cached tensor itself is untouched
    half = DomainShift(means, prob=1.0, scale=(0.5, 0.5), width=2)(x, "b", random.Random(0))
    assert torch.equal(half, _v(1 + 0.5 * (4 - 15), 1 + 0.5 * (5 - 1), 7))


def test_what_never_moves() -> None:
    means = {"a": _v(4, 5), "b": _v(15, 1)}
    x = _v(1, 1, 7)
    rng = random.Random(0)
    assert DomainShift(means, prob=0.0, scale=(1.0, 1.0), width=2)(x, "a", rng) is x
    assert DomainShift(means, prob=1.0, scale=(1.0, 1.0), width=2)(x, "unknown", rng) is x
    assert DomainShift(means, prob=1.0, scale=(1.0, 1.0), width=2)(x, None, rng) is x
    assert DomainShift({"a": means["a"]}, prob=1.0, scale=(1.0, 1.0), width=2)(x, "a", rng) is x


def test_moves_happen_at_the_rate_asked_onto_other_domains_only() -> None:
    means = {"a": _v(0.0), "b": _v(10.0), "c": _v(20.0), "d": _v(100.0)}
    shift = DomainShift(means, prob=0.5, scale=(0.25, 0.75), width=None)
    x = torch.zeros(1)
    gaps = {"a": -10.0, "c": 10.0, "d": 90.0}  # mu[target] - mu[b]; b itself (gap 0) is never a target
    hits: dict[str, int] = {}
    for i in range(400):
        out = shift(x, "b", random.Random(i))
        if out is x:
            continue
        value = float(out[0])  # lam * gap with lam in [0.25, 0.75]: the three ranges do not overlap
        target = [d for d, g in gaps.items() if 0.25 * abs(g) - 1e-4 <= value * np.sign(g) <= 0.75 * abs(g) + 1e-4]
        assert len(target) == 1, value
        hits[target[0]] = hits.get(target[0], 0) + 1
    assert 160 < sum(hits.values()) < 240
    assert sorted(hits) == ["a", "c", "d"] and min(hits.values()) > 40


def test_config_checks_the_scale() -> None:
    assert DomainShiftConfig().scale == [1.0, 1.0]
    with pytest.raises(Exception, match="low <= high"):
        DomainShiftConfig(scale=[1.0, 0.5])


def test_dataset_moves_the_cached_features_and_keeps_every_other_draw(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    rows = []
    for k, corpus in enumerate(["x", "y"]):
        sf.write(tmp_path / "a" / f"{k}.wav", (0.2 * np.sin(2 * np.pi * 200 * np.arange(8000) / 16000)).astype(
            np.float32), 16000)
        rows.append({"source": corpus, "relative_audio_path": f"{k}.wav", "gender": "female",
                     "text_description": "a voice", "speaker": f"p{k}"})
    src = load_source(SourceConfig(manifest=str(_manifest(tmp_path, rows)), captions="describe"))
    enc = StubEncoder()
    pipe = ClipPipeline(None, False, None)
    plain = TrainDataset([src], [(0, 0), (0, 1)], enc, pipe, AugmentConfig(), seed=0)
    table = FeatureTable({plain.key(0): [{"features": _v(1, 2, 3)}, {"features": _v(3, 4, 3)}],
                          plain.key(1): [{"features": _v(10, 10, 3)}]})
    shift = DomainShift({"x": _v(2, 3), "y": _v(10, 10)}, prob=1.0, scale=(1.0, 1.0), width=2)

    def item(with_shift: bool):
        return TrainDataset([src], [(0, 0), (0, 1)], enc, pipe, AugmentConfig(), seed=0, features=table,
                            shift=shift if with_shift else None)[0]

    moved, kept = item(True), item(False)
    assert torch.equal(moved.audio[:2], kept.audio[:2] - _v(2, 3) + _v(10, 10))
    assert moved.audio[2] == kept.audio[2] == 3
    assert moved.caption == kept.caption  # its own random stream: the caption draw is unchanged
    assert torch.equal(table.entries[plain.key(0)][0]["features"], _v(1, 2, 3))


def test_training_runs_with_it_and_refuses_a_single_domain(toy, tmp_path: Path, capsys) -> None:  # noqa: F811
    common = ["model.audio_trainable=[]", "features.cache=true", "features.variants=1",
              f"features.cache_dir={tmp_path / 'features'}", "train.max_steps=3", "eval.every_steps=null"]
    ok = "features.domain_shift={domain_field: speaker, min_clips: 2, prob: 1.0}"
    assert main(_args(toy, tmp_path / "run", *common, ok)) == 0
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "domain_shift" in saved and "speaker" in saved
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 3
    assert summary["domain_shift"]["domains"] == [f"toy{k}" for k in range(6)]  # 6 speakers of 4 clips each
    one = "features.domain_shift={domain_field: source}"  # every toy row is source "toy"
    assert main(_args(toy, tmp_path / "one", *common, one)) == 2
    err = capsys.readouterr().err
    assert "features.domain_shift" in err and "fewer than two domains" in err
    uncached = [c for c in common if not c.startswith("features.cache=")] + ["features.cache=false"]
    assert main(_args(toy, tmp_path / "uncached", *uncached, ok)) == 2
    assert "features.domain_shift" in capsys.readouterr().err


def test_groups_keep_moves_within_a_group() -> None:
    # hand-written: speakers m1, m2 (male), f1 (female); f1 has no other female speaker to move onto
    groups = domain_groups([("m1", "male"), ("m1", "male"), ("m2", "male"), ("f1", "female"), ("f1", "male"),
                            ("f1", "female"), (None, "male")])
    assert groups == {"m1": "male", "m2": "male", "f1": "female"}
    means = {"m1": _v(1.0), "m2": _v(3.0), "f1": _v(50.0)}
    shift = DomainShift(means, prob=1.0, scale=(1.0, 1.0), width=None, groups=groups)
    x = torch.zeros(1)
    assert {float(shift(x, "m1", random.Random(i))[0]) for i in range(20)} == {2.0}  # always onto m2, never f1
    assert shift(x, "f1", random.Random(0)) is x


def test_require_keeps_unlabelled_clips_still() -> None:
    assert row_domain({"speaker": "a", "emotion": "sad"}, "speaker", ["emotion"]) == "a"
    assert row_domain({"speaker": "a"}, "speaker", ["emotion"]) is None  # e.g. a re-pitched clip of speaker a
    assert row_domain({"emotion": "sad"}, "speaker") is None
    shift = DomainShift({"a": _v(0.0), "b": _v(1.0)}, prob=1.0, scale=(1.0, 1.0), width=None,
                        domain_field="speaker", require=["emotion"])
    x = torch.zeros(1)
    assert shift.move(x, {"speaker": "a"}, random.Random(0)) is x
    assert float(shift.move(x, {"speaker": "a", "emotion": "sad"}, random.Random(0))[0]) == 1.0
