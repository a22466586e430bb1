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


@pytest.mark.parametrize("name", sorted(p.stem for p in RECIPES.glob("*.yaml") if p.stem != "base"))
def test_recipes_validate(name: str, request: pytest.FixtureRequest) -> None:
    if "${PARASPEECHCLAP_SHARED_DATA}" in (RECIPES / f"{name}.yaml").read_text():
        request.getfixturevalue("shared_data")  # its manifests must resolve: skipped without the data
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


# -- one line per rule kind: the dotted key, the bad value, what is allowed --------------------------
@pytest.mark.parametrize(
    "override, needles",
    [
        # choice
        ("optim.schedule=exponential", ["optim.schedule", "'exponential'", "constant, cosine, linear"]),
        ("data.train=[{manifest: m, captions: words}]",
         ["data.train.0.captions", "'words'", "manifest, describe, tags"]),
        # range
        ("train.batch_size=0", ["train.batch_size", "got 0", "positive (> 0)"]),
        ("augment.narrowband_rate=20000", ["augment.narrowband_rate", "20000", "[1000, 16000)"]),
        ("train.max_steps=0", ["train.max_steps", "got 0", ">= 1 or null"]),
        ("optim.betas=[0.9, 1.5]", ["optim.betas.1", "1.5", "[0, 1)"]),
        # type
        ("train.batch_size=2.5", ["train.batch_size", "2.5", "expected int"]),
        ("train.progress=1", ["train.progress", "int 1", "expected bool"]),
        ("optim.lr=true", ["optim.lr", "True", "expected float"]),
        ("model.init_from=3", ["model.init_from", "3", "expected str or null"]),
        # cross-field
        ("loss.local_loss=true", ["loss.local_loss", "true", "loss.gather_with_grad=true"]),
        ("augment.gain_db=[6, -6]", ["augment.gain_db", "[6.0, -6.0]", "low <= high"]),
        ("features.cache=true", ["features.cache", "true", "model.audio_trainable: []"]),
        ("data.train=[{manifest: m, hf_dataset: a/b}]", ["data.train.0", "manifest, hf_dataset", "exactly one of"]),
        # metric name
        ("eval.best_metric=val/uar/emotion", ["eval.best_metric", "'val/uar/emotion'", "val/audio_to_text/R@1"]),
        # attribute set
        ("eval.attribute_sets=[gender, emotionn]", ["eval.attribute_sets.1", "'emotionn'", "emotion8"]),
        ("loss.attribute_sets=[pich]", ["loss.attribute_sets.0", "'pich'", "pitch_level"]),
    ],
)
def test_errors_name_the_key_the_value_and_what_is_allowed(override: str, needles: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(data=MINIMAL, overrides=[override])
    message = str(err.value)
    assert "\n" not in message and "pydantic" not in message, message
    for needle in needles:
        assert needle in message, (needle, message)


def test_unknown_key_without_a_close_match_lists_the_section_keys() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'logging.xyz'; logging has: tensorboard"):
        load_config(data=MINIMAL, overrides=["logging.xyz=1"])


def test_best_metric_names_come_from_the_dev_evaluation() -> None:
    from paraspeechclap.training.metric_names import best_metric_choices, dev_metric_names

    cfg = load_config(data=MINIMAL, overrides=["eval.attribute_sets=[emotion]", "eval.best_metric=val/emotion/uar"])
    assert cfg.eval.best_metric == "val/emotion/uar"
    assert set(best_metric_choices(["emotion"])) <= set(dev_metric_names(["emotion"]))
    assert "val/audio_to_text/median_rank" in dev_metric_names([])  # logged, but lower is better: not selectable
    with pytest.raises(ConfigError, match="median_rank' is not a higher-is-better dev metric"):
        load_config(data=MINIMAL, overrides=["eval.best_metric=val/audio_to_text/median_rank"])
    # a set's metrics exist only when the set is evaluated
    with pytest.raises(ConfigError, match=r"eval\.best_metric: 'val/emotion/uar'"):
        load_config(data=MINIMAL, overrides=["eval.best_metric=val/emotion/uar"])


def test_lite_recipe_selects_best_by_a_metric_it_logs(shared_data: Path) -> None:
    from paraspeechclap.training.metric_names import classification_name

    cfg = load_config(RECIPES / "lite.yaml")
    assert cfg.eval.best_metric == classification_name("emotion", "uar") == "val/emotion/uar"
    assert "emotion" in cfg.eval.attribute_sets


def test_lite_recipe_trains_the_speaker_centred_term_and_v17_recipe_is_it_without(shared_data: Path) -> None:
    """v18 added loss.centred to lite.yaml; `centred: null` in lite-v17.yaml, on which every older experiment is
    based, must turn it off and change nothing else, or those experiments silently change recipe."""
    import dataclasses

    lite = load_config(RECIPES / "lite.yaml")
    v17 = load_config(RECIPES / "experiments" / "lite-v17.yaml")
    assert lite.loss.centred is not None and lite.loss.centred.weight == 0.1 and lite.loss.centred.sets == ["emotion8"]
    assert v17.loss.centred is None
    a, b = dataclasses.asdict(lite), dataclasses.asdict(v17)
    for d in (a, b):
        del d["loss"]["centred"], d["train"]["output_dir"]
    assert a == b
    older = load_config(RECIPES / "experiments" / "lite-group-dro.yaml")  # a recipe tried on v17's before v18
    assert older.loss.centred is None and older.loss.group_dro is not None


def test_model_section_is_checked_but_saved_model_configs_load_unchanged() -> None:
    import dataclasses
    import json

    import pydantic

    from paraspeechclap.config import ModelConfig

    with pytest.raises(ConfigError, match=r"model\.embed_dim: must be positive \(> 0\), got 0"):
        load_config(data=MINIMAL, overrides=["model.embed_dim=0"])
    cfg = load_config(data=MINIMAL)
    arch = cfg.model.model_config()
    assert type(arch) is ModelConfig and not pydantic.dataclasses.is_pydantic_dataclass(ModelConfig)
    assert [f.name for f in dataclasses.fields(cfg.model)][:-1] == [f.name for f in dataclasses.fields(ModelConfig)]
    shipped = Path(__file__).resolve().parents[1] / "src" / "paraspeechclap" / "pretrained" / "lite" / "config.json"
    data = json.loads(shipped.read_text())
    assert ModelConfig.from_dict(data).to_dict() == data


# -- --set on the command line ------------------------------------------------------------------------
def _print_config(capsys, *args: str) -> dict:
    import yaml

    from paraspeechclap.cli.main import main

    assert main(["train", "--config", str(RECIPES / "tiny.yaml"), *args, "--print-config"]) == 0
    return yaml.safe_load(capsys.readouterr().out)


def test_set_takes_several_pairs_after_one_flag(capsys) -> None:
    cfg = _print_config(capsys, "--set", "train.batch_size=3", "optim.lr=2e-3", "eval.every_steps=null")
    assert (cfg["train"]["batch_size"], cfg["optim"]["lr"], cfg["eval"]["every_steps"]) == (3, 2e-3, None)


def test_set_can_be_repeated_and_mixed(capsys) -> None:
    cfg = _print_config(capsys, "--set", "train.batch_size=3", "--set", "optim.lr=2e-3", "train.seed=5")
    assert (cfg["train"]["batch_size"], cfg["optim"]["lr"], cfg["train"]["seed"]) == (3, 2e-3, 5)


def test_set_an_empty_list(capsys) -> None:
    cfg = _print_config(capsys, "--set", "data.train=[]", "data.dev=[]")
    assert cfg["data"]["train"] == [] and cfg["data"]["dev"] == []


@pytest.mark.parametrize("shorthand, section", [("train_manifest", "train"), ("dev_manifest", "dev")])
def test_manifest_override_replaces_the_recipe_list(shorthand: str, section: str, caplog) -> None:
    recipe = load_config(RECIPES / "tiny.yaml")
    assert getattr(recipe.data, section)  # the recipe has its own list
    with caplog.at_level("INFO", logger="paraspeechclap.training.config"):
        cfg = load_config(RECIPES / "tiny.yaml", [f"data.{shorthand}=m.jsonl"])
    sources = getattr(cfg.data, section)
    assert [s.manifest for s in sources] == ["m.jsonl"]
    assert f"--set data.{shorthand} replaces the recipe's data.{section} (1 source)" in caplog.text
    # the other list is untouched
    other = "dev" if section == "train" else "train"
    assert getattr(cfg.data, other) == getattr(recipe.data, other)


def test_source_list_override_replaces_the_recipe_shorthand(tmp_path: Path, caplog) -> None:
    recipe = _write(tmp_path / "r.yaml", "model: {audio_encoder: {type: x}, text_encoder: {type: y}}\n"
                                         "train: {output_dir: o, max_steps: 1}\ndata: {train_manifest: a.jsonl}\n")
    with caplog.at_level("INFO", logger="paraspeechclap.training.config"):
        cfg = load_config(recipe, ["data.train=[{manifest: b.jsonl}]"])
    assert [s.manifest for s in cfg.data.train] == ["b.jsonl"]
    assert "--set data.train replaces the recipe's data.train_manifest (a.jsonl)" in caplog.text


def test_manifest_override_info_line_reaches_the_cli(capsys) -> None:
    import logging

    from paraspeechclap.cli.main import main

    handler = logging.StreamHandler()  # what logging.basicConfig installs in a fresh CLI process
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        assert main(["train", "--config", str(RECIPES / "tiny.yaml"), "--set", "data.train_manifest=m.jsonl",
                     "--print-config"]) == 0
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger("paraspeechclap.training.config").setLevel(logging.NOTSET)  # as before the CLI ran
    assert "INFO: --set data.train_manifest replaces the recipe's data.train" in capsys.readouterr().err


# -- ${PARASPEECHCLAP_SHARED_DATA} ---------------------------------------------------------------------
def test_shared_data_variable_resolves_recipe_manifests(tmp_path: Path, monkeypatch) -> None:
    for name in ("real", "real2", "real3"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.jsonl").write_text('{"source": "s", "relative_audio_path": "a.flac"}\n')
    monkeypatch.setenv("PARASPEECHCLAP_SHARED_DATA", str(tmp_path))
    cfg = load_config(RECIPES / "lite.yaml")
    manifests = [s.manifest for s in [*cfg.data.train, *cfg.data.dev] if s.manifest]
    assert manifests and all(Path(m).parent.parent == tmp_path for m in manifests)
    assert {Path(m).parent.name for m in manifests} == {"real", "real2", "real3"}  # real3 since v16
    assert all(Path(m).is_file() for m in manifests)


def test_shared_data_defaults_beside_the_repository_not_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    from paraspeechclap.data import splits

    default = tmp_path / "shared" / "data"
    default.mkdir(parents=True)
    monkeypatch.delenv("PARASPEECHCLAP_SHARED_DATA", raising=False)
    monkeypatch.setattr(splits, "find_shared_data", lambda data_root=None: default)  # the checkout's default
    monkeypatch.chdir(tmp_path / "shared")  # a working directory where ../shared/data does not exist
    cfg = load_config(data=MINIMAL, overrides=["data.train_manifest=${PARASPEECHCLAP_SHARED_DATA}/real/m.jsonl"])
    assert cfg.data.train[0].manifest == f"{default}/real/m.jsonl"


def test_shared_data_missing_is_an_error_naming_the_variable(tmp_path: Path, monkeypatch) -> None:
    from paraspeechclap.data import splits
    from paraspeechclap.errors import InputError

    def nowhere(data_root=None):
        raise InputError("shared data folder not found")

    monkeypatch.delenv("PARASPEECHCLAP_SHARED_DATA", raising=False)
    monkeypatch.setattr(splits, "find_shared_data", nowhere)
    # the first real source's position in lite.yaml (after the synthetic and tag sources): the error names it
    with pytest.raises(ConfigError, match=r"data\.train\.3\.manifest: '\$\{PARASPEECHCLAP_SHARED_DATA\}/real/manifest"
                                          r"\.jsonl' cannot be resolved: PARASPEECHCLAP_SHARED_DATA is not set"):
        load_config(RECIPES / "lite.yaml")
    monkeypatch.setenv("PARASPEECHCLAP_SHARED_DATA", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match=r"PARASPEECHCLAP_SHARED_DATA='.*nope' is not a folder"):
        load_config(RECIPES / "lite.yaml")
