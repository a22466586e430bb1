"""Training config: schema checks, base composition, overrides, and the shipped recipes."""

from __future__ import annotations

from pathlib import Path

import pytest

from paraspeechclap.errors import ConfigError
from paraspeechclap.training.config import RunConfig, apply_overrides, config_to_yaml, load_config

RECIPES = Path(__file__).resolve().parents[1] / "configs" / "train"
MINIMAL = {
    "model": {"audio_encoder": {"type": "tiny-wavlm"}, "text_encoder": {"type": "tiny-bert"}},
    "train": {"output_dir": "out", "max_steps": 3},
}


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_minimal_config_gets_official_defaults() -> None:
    cfg = load_config(data=MINIMAL)
    assert isinstance(cfg, RunConfig)
    # official recipe values (reference section 8)
    assert cfg.optim.name == "adam" and cfg.optim.lr == 1e-5 and cfg.optim.weight_decay == 0.0
    assert cfg.train.batch_size == 32 and cfg.train.seed == 3407 and cfg.train.checkpoint_every == 1500
    assert cfg.audio.crop_seconds == 10.0 and cfg.audio.pad_to_crop is True
    assert cfg.loss.clamp == "epoch" and cfg.loss.max_logit_scale == 100.0


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("optim.lrr=1e-4", "optim.lrr"),
        ("trian.max_steps=3", "trian"),
        ("data.train.0.wieght=2", "data.train.0.wieght"),
    ],
)
def test_unknown_keys_are_rejected_with_their_path(override: str, fragment: str) -> None:
    data = {**MINIMAL, "data": {"train": [{"manifest": "m.jsonl"}]}}
    with pytest.raises(ConfigError, match="unknown config key") as err:
        load_config(data=data, overrides=[override])
    assert fragment in str(err.value)


def test_unknown_key_in_file_is_rejected(tmp_path: Path) -> None:
    f = _write(tmp_path / "c.yaml", "model: {audio_encoder: {type: x}, text_encoder: {type: y}}\n"
                                    "train: {output_dir: o, max_steps: 1, batch_sise: 4}\n")
    with pytest.raises(ConfigError, match=r"train\.batch_sise.*did you mean 'train\.batch_size'"):
        load_config(f)


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("train.batch_size=abc", "train.batch_size: expected int"),
        ("train.batch_size=2.5", "train.batch_size: expected int"),
        ("train.grad_checkpointing=maybe", "expected bool"),
        ("optim.lr=fast", "optim.lr: expected float"),
        ("model.audio_trainable=5", "expected a list"),
        ("train.batch_size=0", "must be positive"),
        ("optim.schedule=exponential", "not one of"),
    ],
)
def test_override_values_are_type_checked(override: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_config(data=MINIMAL, overrides=[override])


def test_override_values_are_parsed_as_yaml() -> None:
    cfg = load_config(data=MINIMAL, overrides=["optim.lr=1e-4", "train.batch_size=8", "model.audio_trainable=[]",
                                               "eval.attribute_sets=[gender, loudness]", "augment.gain_db=[-6, 6]"])
    assert cfg.optim.lr == pytest.approx(1e-4)  # "1e-4" is a string in YAML 1.1; the schema makes it a float
    assert cfg.train.batch_size == 8 and cfg.model.audio_trainable == []
    assert cfg.eval.attribute_sets == ["gender", "loudness"]
    assert cfg.augment.gain_db == [-6.0, 6.0]


def test_required_fields_are_required() -> None:
    with pytest.raises(ConfigError, match="missing required config key 'train.output_dir'"):
        load_config(data={"model": MINIMAL["model"], "train": {"max_steps": 1}})
    with pytest.raises(ConfigError, match="train.max_steps or train.epochs"):
        load_config(data={**MINIMAL, "train": {"output_dir": "o"}})


def test_base_composition_merges_mappings_and_replaces_lists(tmp_path: Path) -> None:
    _write(tmp_path / "base.yaml", "model: {audio_encoder: {type: tiny-wavlm}, text_encoder: {type: tiny-bert}}\n"
                                   "train: {output_dir: o, max_steps: 10, batch_size: 4}\n"
                                   "eval: {attribute_sets: [gender, loudness]}\n")
    child = _write(tmp_path / "child.yaml",
                   "base: base.yaml\ntrain: {max_steps: 20}\neval: {attribute_sets: [emotion]}\n")
    cfg = load_config(child, ["train.batch_size=2"])
    assert cfg.train.max_steps == 20 and cfg.train.output_dir == "o"  # merged, not replaced
    assert cfg.eval.attribute_sets == ["emotion"]  # lists are replaced
    assert cfg.train.batch_size == 2  # --set wins over both files


def test_circular_base_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", "base: b.yaml\n")
    _write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError, match="circular"):
        load_config(tmp_path / "a.yaml")


def test_manifest_shorthand_becomes_a_source() -> None:
    cfg = load_config(data=MINIMAL, overrides=["data.train_manifest=m.jsonl", "data.audio_root=/audio"])
    assert len(cfg.data.train) == 1
    assert cfg.data.train[0].manifest == "m.jsonl" and cfg.data.train[0].audio_root == "/audio"
    with pytest.raises(ConfigError, match="either data.train or data.train_manifest"):
        load_config(data={**MINIMAL, "data": {"train": [{"manifest": "a"}], "train_manifest": "b"}})


def test_source_needs_exactly_one_kind() -> None:
    with pytest.raises(ConfigError, match="exactly one of manifest, hf_dataset, synth"):
        load_config(data={**MINIMAL, "data": {"train": [{"manifest": "a", "hf_dataset": "b/c"}]}})
    with pytest.raises(ConfigError, match="exactly one"):
        load_config(data={**MINIMAL, "data": {"train": [{"weight": 2}]}})


def test_cache_requires_a_frozen_speech_backbone() -> None:
    with pytest.raises(ConfigError, match="audio_trainable"):
        load_config(data=MINIMAL, overrides=["features.cache=true"])
    assert load_config(data=MINIMAL, overrides=["features.cache=true", "model.audio_trainable=[]"]).features.cache


def test_list_index_overrides() -> None:
    raw = apply_overrides({"data": {"train": [{"manifest": "a"}, {"manifest": "b"}]}}, ["data.train.1.weight=3"])
    assert raw["data"]["train"][1] == {"manifest": "b", "weight": 3}
    with pytest.raises(ConfigError, match="not an index"):
        apply_overrides({"data": {"train": [{}]}}, ["data.train.5.weight=3"])


def test_resolved_config_round_trips_through_yaml(tmp_path: Path) -> None:
    cfg = load_config(data=MINIMAL, overrides=["data.train_manifest=m.jsonl", "optim.lr=3e-4"])
    again = load_config(_write(tmp_path / "r.yaml", config_to_yaml(cfg)))
    assert again == cfg


@pytest.mark.parametrize("name", ["intrinsic", "situational", "combined", "lite", "tiny"])
def test_recipes_validate(name: str) -> None:
    cfg = load_config(RECIPES / f"{name}.yaml")
    assert cfg.data.train, name


def test_official_recipes_carry_the_official_hyperparameters() -> None:
    for name in ("intrinsic", "situational", "combined"):
        cfg = load_config(RECIPES / f"{name}.yaml")
        assert cfg.model.audio_encoder["model"] == "microsoft/wavlm-large", name
        assert cfg.model.text_encoder["model"] == "ibm-granite/granite-embedding-278m-multilingual", name
        o = cfg.optim
        assert (o.name, o.lr, o.weight_decay, o.schedule, o.grad_clip_norm) == ("adam", 1e-5, 0.0, "constant", None)
        assert (cfg.train.batch_size, cfg.train.seed, cfg.train.checkpoint_every) == (32, 3407, 1500)
        assert cfg.audio.crop_seconds == 10.0 and cfg.audio.pad_to_crop and cfg.train.grad_checkpointing
        assert cfg.model.projection_dropout == 0.5 and cfg.model.embed_dim == 768
    intrinsic = load_config(RECIPES / "intrinsic.yaml")
    assert intrinsic.loss.name == "multitask" and intrinsic.data.sampler == "class_balanced"
    assert intrinsic.train.max_steps == 4500
    assert load_config(RECIPES / "situational.yaml").train.epochs == 25
    combined = load_config(RECIPES / "combined.yaml")
    assert combined.data.mixing == "interleave" and len(combined.data.train) == 2 and combined.train.epochs == 5
