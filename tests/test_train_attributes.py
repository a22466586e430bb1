"""The trainer's attribute-set loss term: present, equal to a reference, and it learns."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from paraspeechclap.distributed import DistributedInfo
from paraspeechclap.training.config import load_config
from paraspeechclap.training.loop import Trainer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    from paraspeechclap.training.toy import write_tone_corpus

    root = tmp_path_factory.mktemp("attr")
    manifest = write_tone_corpus(root / "train", 16, seed=0, speakers=4)
    cfg = load_config(REPO / "configs" / "train" / "tiny.yaml", [
        f"data.train_manifest={manifest}", "data.train=[]", "train.batch_size=8", "train.num_threads=1",
        f"train.output_dir={root / 'run'}", "train.progress=false",
        "loss.attribute_sets=[gender, pitch_level, speaking_rate]", "loss.attribute_weight=0.5"])
    info = DistributedInfo(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"), backend=None)
    return Trainer(cfg, info)


def test_attribute_loss_matches_a_reference(trainer):
    batch = next(iter(trainer.loader))
    trainer.model.eval()  # no dropout / SpecAugment draws: the reference recomputes the same forward
    losses = trainer.compute_losses(batch, step=3)
    assert "contrastive_loss" in losses and "attribute_loss" in losses
    # reference: embed the same step's prompts with the model, cross-entropy per set, mean, weight
    prompts = trainer.attribute_prompts(3)
    assert prompts == trainer.attribute_prompts(3) and len(prompts) == 2 + 3 + 3
    with torch.no_grad():
        out = trainer.module(batch["audio"], batch["captions"], prompts)
    audio = torch.nn.functional.normalize(out["audio"], dim=-1)
    cls = torch.nn.functional.normalize(out["tags"], dim=-1)
    scale, start, per_set = out["logit_scale"].item(), 0, []
    for aset in trainer.attr_sets:
        c = cls[start:start + len(aset.candidates)]
        start += len(aset.candidates)
        terms = []
        for a, row in zip(audio, batch["rows"]):
            gold = aset.gold(row)
            if gold in aset.candidates:
                logits = [scale * float(a @ v) for v in c]
                terms.append(-logits[list(aset.candidates).index(gold)] + math.log(sum(math.exp(x) for x in logits)))
        if terms:
            per_set.append(sum(terms) / len(terms))
    assert per_set and abs(losses["attribute_loss"].item() - 0.5 * sum(per_set) / len(per_set)) < 1e-4


def test_attribute_loss_decreases_with_training(trainer):
    batch = next(iter(trainer.loader))
    trainer.model.train()
    before = trainer.compute_losses(batch, step=0)["attribute_loss"].item()
    for _ in range(30):
        trainer.train_step(batch, step=0)
    after = trainer.compute_losses(batch, step=0)["attribute_loss"].item()
    assert after < 0.8 * before


def test_widened_set_keeps_its_defaults_first_and_adds_every_combination() -> None:
    from paraspeechclap.data.attributes import get_attribute_set
    from paraspeechclap.errors import InputError

    base = get_attribute_set("pitch_level")
    wide = base.widened(["{}"], {"deep": ["rumbling"]})
    assert wide.templates == (*base.templates, "{}") and wide.template == base.template
    assert wide.label_phrases("deep") == (*base.label_phrases("deep"), "rumbling")
    assert wide.prompts() == base.prompts()  # the default prompt is unchanged
    got = wide.prompts(ensemble=True)["deep"]
    want = {t.format(p) for t in wide.templates for p in wide.label_phrases("deep")}
    assert set(got) == want and len(got) == len(want) and f"{base.template.format('rumbling')}" in got
    assert set(base.prompts(ensemble=True)["deep"]) < set(got)
    with pytest.raises(InputError, match="not a candidate"):
        base.widened(words={"purple": ["x"]})
    with pytest.raises(InputError, match="placeholder"):
        base.widened(["no slot"])


def test_training_prompts_widen_and_the_config_checks_them(tmp_path: Path) -> None:
    from paraspeechclap.data.attributes import get_attribute_set
    from paraspeechclap.errors import ConfigError
    from paraspeechclap.training.toy import write_tone_corpus

    manifest = write_tone_corpus(tmp_path / "train", 8, seed=0, speakers=2)
    common = [f"data.train_manifest={manifest}", "data.train=[]", "train.num_threads=1", "data.dev=[]",
              f"train.output_dir={tmp_path / 'run'}", "train.progress=false",
              "loss.attribute_sets=[gender, pitch_level]"]
    extra = "loss.attribute_prompts={templates: ['{} voice'], words: {pitch_level: {deep: [rumbling]}}}"
    cfg = load_config(REPO / "configs" / "train" / "tiny.yaml", [*common, extra])
    t = Trainer(cfg, DistributedInfo(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"), backend=None))
    assert "rumbling voice" in t.attr_prompts["pitch_level"]["deep"]
    assert f"{get_attribute_set('gender').label_phrases('male')[0]} voice" in t.attr_prompts["gender"]["male"]
    only = extra.replace("templates:", "template_sets: [pitch_level], templates:")
    t = Trainer(load_config(REPO / "configs" / "train" / "tiny.yaml", [*common, only]), t.info)
    assert "rumbling voice" in t.attr_prompts["pitch_level"]["deep"]
    assert t.attr_prompts["gender"] == get_attribute_set("gender").prompts(ensemble=True)  # not widened
    for bad, key in [("{words: {emotion8: {angry: [x]}}}", "attribute_prompts.words.emotion8"),
                     ("{words: {pitch_level: {purple: [x]}}}", "attribute_prompts.words.pitch_level"),
                     ("{templates: ['no slot']}", "attribute_prompts.templates.0"),
                     ("{template_sets: [emotion8]}", "attribute_prompts.template_sets.0")]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_config(REPO / "configs" / "train" / "tiny.yaml", [*common, f"loss.attribute_prompts={bad}"])
